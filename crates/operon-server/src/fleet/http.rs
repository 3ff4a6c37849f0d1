//! The HTTP edge of the fleet: `/v1/nodes`, `/v1/enroll-tokens`, `/metrics`.

use operon_store::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use operon_store::EnrollToken;
use serde::{Deserialize, Serialize};

use super::service::{NodeView, TagChange};
use crate::AppState;
use crate::access::Ctx;
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/v1/enroll-tokens",
            post(create_enroll_token).get(list_enroll_tokens),
        )
        .route("/v1/enroll-tokens/{id}/revoke", post(revoke_enroll_token))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{key}", get(show_node))
        .route("/v1/nodes/{key}/tags", post(tag_node))
        .route("/v1/nodes/{key}/revoke", post(revoke_node))
        .route(
            "/v1/nodes/{key}/rotate-credential",
            post(super::rotation::rotate_credential),
        )
        .route("/metrics", get(metrics))
}

#[derive(Deserialize)]
struct CreateEnrollToken {
    #[serde(default)]
    tags: BTreeMap<String, String>,
    uses: Option<i64>,
    expires_in_secs: Option<i64>,
}

#[derive(Serialize)]
struct CreatedEnrollToken {
    token: String,
    /// The fingerprint agents pin (`--server-fingerprint`), when serving TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_fingerprint: Option<String>,
    #[serde(flatten)]
    record: EnrollToken,
}

async fn create_enroll_token(
    State(state): State<Arc<AppState>>,
    Json(body): Json<CreateEnrollToken>,
) -> ApiResult<Json<CreatedEnrollToken>> {
    let (token, record) = state
        .fleet()
        .create_enroll_token(
            body.tags,
            body.uses.unwrap_or(1),
            body.expires_in_secs.unwrap_or(24 * 3600),
        )
        .await?;
    Ok(Json(CreatedEnrollToken {
        token,
        server_fingerprint: state.tls_fingerprint.clone(),
        record,
    }))
}

async fn list_enroll_tokens(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<EnrollToken>>> {
    Ok(Json(state.fleet().list_enroll_tokens().await?))
}

/// Authorized by the route layer (`enrollTokens:Revoke` on
/// `enroll-token/{id}`) and audited by the middleware.
async fn revoke_enroll_token(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<EnrollToken>> {
    let token = state.fleet().revoke_enroll_token(&id).await?;
    principal.note("enroll_token_id", token.id.clone());
    Ok(Json(token))
}

async fn list_nodes(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<NodeView>>> {
    Ok(Json(state.fleet().list().await?))
}

async fn show_node(
    Ctx { state, principal }: Ctx,
    Path(key): Path<String>,
) -> ApiResult<Json<NodeView>> {
    let fleet = state.fleet();
    let node = fleet.find_for(&principal, "nodes:Get", &key).await?;
    Ok(Json(fleet.view(node)))
}

#[derive(Deserialize)]
struct TagBody {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn tag_node(
    Ctx { state, principal }: Ctx,
    Path(key): Path<String>,
    Json(body): Json<TagBody>,
) -> ApiResult<Json<NodeView>> {
    let change = TagChange {
        set: body.set,
        remove: body.remove,
    };
    Ok(Json(state.fleet().tag(&principal, &key, change).await?))
}

async fn revoke_node(
    Ctx { state, principal }: Ctx,
    Path(key): Path<String>,
) -> ApiResult<Json<NodeView>> {
    Ok(Json(state.fleet().revoke(&principal, &key).await?))
}

/// Prometheus text exposition (format 0.0.4) of the fleet and command state.
/// Authenticated like every other call: scrapers send a bearer token.
async fn metrics(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
    use std::fmt::Write;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, i64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let connected = state.hub.connected_count() as i64;
    gauge(
        "operon_agents_connected",
        "Agents with a live session.",
        &[(String::new(), connected)],
    );
    let mut nodes: BTreeMap<&str, i64> =
        BTreeMap::from([("online", 0), ("offline", 0), ("revoked", 0)]);
    for view in state.fleet().list().await? {
        *nodes.entry(view.status).or_default() += 1;
    }
    let nodes: Vec<(String, i64)> = nodes
        .into_iter()
        .map(|(status, n)| (format!("{{status=\"{status}\"}}"), n))
        .collect();
    gauge("operon_nodes", "Enrolled nodes by status.", &nodes);
    for (name, help, table) in [
        (
            "operon_commands",
            "Commands by status.",
            operon_store::StatusTable::Commands,
        ),
        (
            "operon_invocations",
            "Command invocations (one per node) by status.",
            operon_store::StatusTable::Invocations,
        ),
    ] {
        let samples: Vec<(String, i64)> = state
            .store
            .count_by_status(table)
            .await?
            .into_iter()
            .map(|(status, n)| (format!("{{status=\"{status}\"}}"), n))
            .collect();
        gauge(name, help, &samples);
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response())
}
