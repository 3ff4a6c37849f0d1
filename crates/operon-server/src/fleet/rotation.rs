//! Node credential rotation without downtime.
//!
//! `POST /v1/nodes/{key}/rotate-credential` gives a connected node a new
//! credential over its live session:
//!
//! 1. the new credential's hash is stored as *pending*: from now on both the
//!    old and the new credential are accepted;
//! 2. [`ServerMessage::RotateCredential`] goes to the agent, which writes the
//!    new credential to its `credential.json` (temporary file, fsync, rename)
//!    and answers `CredentialStored`;
//! 3. only then is the new credential made current and the old one retired;
//!    an agent presenting the old one is refused with the time it was
//!    replaced. If the answer is lost (the link drops), the agent's next
//!    connection with the new credential completes the rotation instead.
//!
//! A node without a live session cannot receive a credential, so rotating it
//! is refused with 409 (nothing is queued: an offline node keeps its
//! credential, and revoking it is the tool for a node that may be
//! compromised). Agents older than this protocol addition do not announce
//! [`CAPABILITY_CREDENTIAL_ROTATION`] and are refused with 409 as well, so the
//! secret is never sent to an agent that would not store it.
//!
//! The API call waits for the agent's answer (at most [`CONFIRM_TIMEOUT`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use operon_api::fleet::CredentialRotated;
use operon_proto::{CAPABILITY_CREDENTIAL_ROTATION, ServerMessage};
use operon_store::Node;
use tokio::sync::oneshot;

use crate::access::Ctx;
use crate::auth::{self, NODE_CREDENTIAL_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, now_millis};

/// How long the API call waits for the agent to confirm the new credential.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);

/// What the agent answered.
#[derive(Debug)]
enum Outcome {
    Stored { at: i64 },
    NotStored(String),
}

/// API calls waiting for an agent's answer, by rotation id.
#[derive(Default)]
pub struct Waiters(Mutex<HashMap<String, (String, oneshot::Sender<Outcome>)>>);

impl Waiters {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (String, oneshot::Sender<Outcome>)>> {
        // Every critical section is one insert or remove: a panic elsewhere
        // cannot leave the map half-changed.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, rotation_id: &str, node_id: &str) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.lock()
            .insert(rotation_id.to_owned(), (node_id.to_owned(), tx));
        rx
    }

    /// The waiter of `rotation_id`, if it is for `node_id`.
    fn take(&self, rotation_id: &str, node_id: &str) -> Option<oneshot::Sender<Outcome>> {
        let mut waiters = self.lock();
        if waiters.get(rotation_id).is_some_and(|(n, _)| n == node_id) {
            waiters.remove(rotation_id).map(|(_, tx)| tx)
        } else {
            None
        }
    }

    fn forget(&self, rotation_id: &str) {
        self.lock().remove(rotation_id);
    }
}

/// `POST /v1/nodes/{key}/rotate-credential`.
pub async fn rotate_credential(
    Ctx { state, principal }: Ctx,
    Path(key): Path<String>,
) -> ApiResult<Json<CredentialRotated>> {
    let node = state
        .fleet()
        .find_for(&principal, "nodes:RotateCredential", &key)
        .await?;
    check_rotatable(&state, &node)?;

    let credential = auth::new_secret(NODE_CREDENTIAL_PREFIX);
    let rotation_id = auth::new_id("rot-");
    state
        .store
        .begin_credential_rotation(
            &node.id,
            &rotation_id,
            &auth::hash_secret(&credential),
            now_millis(),
        )
        .await?;
    let answer = state.rotations.insert(&rotation_id, &node.id);
    let message = ServerMessage::RotateCredential {
        rotation_id: rotation_id.clone(),
        credential: operon_proto::Secret(credential),
    };
    if !state.hub.send(&node.id, message) {
        state.rotations.forget(&rotation_id);
        return Err(offline(&node));
    }
    tracing::info!(node_id = %node.id, %rotation_id, "new node credential sent; waiting for the agent to store it");
    let outcome = tokio::time::timeout(CONFIRM_TIMEOUT, answer).await;
    state.rotations.forget(&rotation_id);
    match outcome {
        Ok(Ok(Outcome::Stored { at })) => Ok(Json(CredentialRotated {
            node_id: node.id,
            name: node.name,
            rotation_id,
            rotated_at: at,
        })),
        Ok(Ok(Outcome::NotStored(reason))) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "AgentError",
            format!(
                "the agent of node {} could not store the new credential ({reason}); it keeps its current credential, which stays valid",
                node.id
            ),
        )),
        Ok(Err(_)) | Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!(
                "the agent of node {} did not confirm the new credential within {} s; its current credential stays valid, and the new one takes over as soon as the agent connects with it",
                node.id,
                CONFIRM_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Refuse nodes that cannot take a new credential now.
fn check_rotatable(state: &AppState, node: &Node) -> ApiResult<()> {
    if node.revoked_at.is_some() {
        return Err(ApiError::conflict(format!(
            "node {} is revoked; a revoked node gets no new credential (enroll it again)",
            node.id
        )));
    }
    match state.hub.supports(&node.id, CAPABILITY_CREDENTIAL_ROTATION) {
        None => Err(offline(node)),
        Some(false) => Err(ApiError::conflict(format!(
            "the agent of node {} is too old to rotate its credential (it does not announce {CAPABILITY_CREDENTIAL_ROTATION}); upgrade the agent, or revoke the node and enroll it again",
            node.id
        ))),
        Some(true) => Ok(()),
    }
}

fn offline(node: &Node) -> ApiError {
    ApiError::conflict(format!(
        "node {} ({}) is not connected: a new credential is handed to the agent over its live connection, so start the agent and try again (or revoke the node if it is lost)",
        node.id, node.name
    ))
}

/// The agent proved it holds the new credential of `rotation_id` (it stored
/// it, or connected with it): make it current, retire the old one, and
/// answer the waiting API call.
pub(crate) async fn complete(
    state: &AppState,
    node: &Node,
    rotation_id: &str,
    how: &'static str,
) -> ApiResult<()> {
    let at = now_millis();
    if state
        .store
        .complete_credential_rotation(&node.id, rotation_id, at)
        .await?
    {
        tracing::info!(node_id = %node.id, %rotation_id, how, "node credential rotated; the old one is refused from now on");
    }
    if let Some(waiter) = state.rotations.take(rotation_id, &node.id) {
        let _ = waiter.send(Outcome::Stored { at });
    }
    Ok(())
}

/// The agent could not store the new credential. Its pending record stays
/// (harmless: only this agent ever saw it, and the agent may yet have it on
/// disk after a partial failure); the next completed rotation retires it.
pub(crate) fn not_stored(state: &AppState, node: &Node, rotation_id: &str, reason: String) {
    tracing::warn!(node_id = %node.id, %rotation_id, %reason, "the agent could not store its new credential");
    if let Some(waiter) = state.rotations.take(rotation_id, &node.id) {
        let _ = waiter.send(Outcome::NotStored(reason));
    }
}
