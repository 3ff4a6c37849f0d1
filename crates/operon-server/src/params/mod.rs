//! Parameter Store: versioned configuration and secrets.
//!
//! ```text
//! service.rs      ParamService: puts, reads, labels, tags, deletes, decrypted
//!                 reads audited, change events on the default bus
//! keys.rs         KeyService: the key ring listed, rotated, and rewrapped
//!                 (every sealed SecureString version and access-key secret)
//! access_keys.rs  AccessKeyService: AWS-style access keys (secret sealed)
//! http.rs         /v1/parameters, /v1/parameters-by-path, /v1/keys, /v1/access-keys
//! policies.rs     Expiration, ExpirationNotification, NoChangeNotification,
//!                 evaluated by one process, durably
//! refs.rs         {{ssm:...}} / {{ssm-secure:...}} references in commands,
//!                 resolved when sent, as the requester
//! render.rs       pure: a sync's file (dotenv, JSON, YAML) from parameters
//! sync.rs         SyncService and the reconciler: files that follow parameters
//! aws.rs          the SSM JSON 1.1 protocol (AWS CLI and SDKs), SigV4-signed
//! ```
//!
//! The rules of Parameter Store (names, labels, values, filters, policies,
//! the SSM wire) are the pure `operon-params` crate; envelope encryption is
//! `operon-seal` under the server's key ring (`crate::keyring`).

pub mod access_keys;
pub mod aws;
pub mod http;
pub mod keys;
pub mod policies;
pub mod refs;
pub mod render;
pub mod service;
pub mod sync;

use crate::events::envelope::PutEntry;

use crate::AppState;

impl AppState {
    /// The params service over this server's store, key ring, audit and bus.
    pub(crate) fn params(&self) -> service::ParamService<'_> {
        service::ParamService { state: self }
    }

    pub(crate) fn key_ring(&self) -> keys::KeyService<'_> {
        keys::KeyService { state: self }
    }

    pub(crate) fn access_keys(&self) -> access_keys::AccessKeyService<'_> {
        access_keys::AccessKeyService { state: self }
    }

    pub(crate) fn param_syncs(&self) -> sync::SyncService<'_> {
        sync::SyncService { state: self }
    }
}

/// The source of Parameter Store's events.
pub const EVENT_SOURCE: &str = "operon.params";

/// Put one `operon.params` event on the default bus, naming the parameter
/// as its resource. Never carries a value. Best effort, like the server's
/// other events: the change has committed; a failure is logged.
pub(crate) async fn put_event(
    state: &AppState,
    detail_type: &str,
    name: &str,
    detail: serde_json::Value,
) {
    let arn = operon_params::names::arn(
        crate::events::envelope::REGION,
        crate::events::envelope::ACCOUNT,
        name,
    );
    put_event_with(state, detail_type, vec![arn], detail).await;
}

/// Put one `operon.params` event about a file on the nodes (a sync's).
pub(crate) async fn put_event_about(
    state: &AppState,
    detail_type: &str,
    file: &str,
    detail: serde_json::Value,
) {
    put_event_with(state, detail_type, vec![format!("file:{file}")], detail).await;
}

async fn put_event_with(
    state: &AppState,
    detail_type: &str,
    resources: Vec<String>,
    detail: serde_json::Value,
) {
    let name = resources.first().cloned().unwrap_or_default();
    let entry = PutEntry {
        source: Some(EVENT_SOURCE.into()),
        detail_type: Some(detail_type.into()),
        detail: Some(detail.to_string()),
        resources,
        ..PutEntry::default()
    };
    let envelope = match crate::events::envelope::envelope(&entry, crate::now_millis()) {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::warn!(error = %e.message, "a parameter event was refused");
            return;
        }
    };
    if let Err(e) = crate::events::accept(state, vec![envelope]).await {
        tracing::warn!(error = %e.message, resource = %name, "putting a parameter event failed");
    }
}
