//! `/v1/sessions`: the WebSocket a session runs on, listings, terminate and
//! the recording. Parse, call the sessions service, shape the answer.

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use operon_api::sessions::{self as api, ConnectQuery};
use operon_proto::session::MAX_DATA_FRAME;
use operon_store::{SessionEnd, SessionRecord};
use serde::Deserialize;

use crate::access::{Ctx, Principal};
use crate::error::{ApiError, ApiResult};
use crate::now_millis;
use crate::service::ServiceError;

pub fn routes() -> Router<Arc<crate::AppState>> {
    Router::new()
        .route("/v1/sessions/connect", get(connect))
        .route("/v1/sessions", get(list))
        .route("/v1/sessions/{id}", get(describe))
        .route("/v1/sessions/{id}/terminate", post(terminate))
        .route("/v1/sessions/{id}/recording", get(recording))
}

/// The service's code (`InvalidSession`, `UnknownNode`, ...) as the answer's.
fn coded(err: ServiceError) -> ApiError {
    let code = err.code;
    let mut api: ApiError = err.into();
    if !matches!(code, "Forbidden" | "InternalError") {
        api.code = code;
    }
    api
}

/// The query of a session's WebSocket, or why it is unreadable.
pub(crate) type ConnectQueryResult =
    Result<Query<ConnectQuery>, axum::extract::rejection::QueryRejection>;
/// The upgrade of a session's WebSocket, or why the request is not one.
pub(crate) type UpgradeResult =
    Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

/// Authorized by the service (`sessions:Start` or `sessions:PortForward`
/// on the node, with its tags and the session's condition keys).
async fn connect(
    Ctx { state, principal }: Ctx,
    query: ConnectQueryResult,
    upgrade: UpgradeResult,
) -> ApiResult<Response> {
    open(state, principal, query, upgrade).await.map_err(coded)
}

/// Open a session for `principal` and relay it on the upgraded WebSocket:
/// the one path of the API's `/v1/sessions/connect` and the console's
/// `/sessions/connect` (which authenticate the caller their own way), so
/// both check, authorize, record and audit a session alike.
pub(crate) async fn open(
    state: Arc<crate::AppState>,
    principal: Principal,
    query: ConnectQueryResult,
    upgrade: UpgradeResult,
) -> Result<Response, ServiceError> {
    let Query(query) = query.map_err(|e| {
        ServiceError::invalid("InvalidSession", format!("the query: {}", e.body_text()))
    })?;
    // Authorized (and refusals audited) before anything else, so a plain
    // GET learns exactly what an upgrade would.
    let opening = state.sessions().authorize(&principal, &query).await?;
    let upgrade = upgrade.map_err(|e| {
        ServiceError::invalid(
            "NotAWebSocket",
            format!(
                "{}: this endpoint opens a session over a WebSocket",
                e.body_text()
            ),
        )
    })?;
    state.sessions().record(&principal, &opening).await?;
    let failed = (state.clone(), opening.record.clone());
    let upgrade = upgrade
        // A frame is a data frame at most (plus its header) or a small message.
        .max_message_size(MAX_DATA_FRAME + 64 * 1024)
        .on_failed_upgrade(move |error| {
            let (state, record) = failed;
            tokio::spawn(async move {
                let end = SessionEnd {
                    status: "failed".into(),
                    ended_at: now_millis(),
                    reason: format!("the WebSocket upgrade failed: {error}"),
                    exit_code: None,
                    recording_sha256: None,
                    recording_bytes: None,
                };
                let _ = state.sessions().end(&record, &end).await;
            });
        });
    Ok(upgrade.on_upgrade(move |socket| super::pump::run(state, opening, socket)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    active: bool,
    node: Option<String>,
}

async fn list(
    Ctx { state, principal }: Ctx,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<api::SessionList>> {
    let Query(query) = query.map_err(|e| {
        coded(ServiceError::invalid(
            "InvalidQuery",
            format!("the query: {}", e.body_text()),
        ))
    })?;
    let records = state
        .sessions()
        .list(&principal, query.active, query.node.as_deref())
        .await
        .map_err(coded)?;
    Ok(Json(api::SessionList {
        sessions: records.into_iter().map(view).collect(),
    }))
}

async fn describe(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<api::SessionView>> {
    let record = state.sessions().get(&principal, &id).await.map_err(coded)?;
    Ok(Json(view(record)))
}

async fn terminate(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<api::SessionView>> {
    let record = state
        .sessions()
        .terminate(&principal, &id)
        .await
        .map_err(coded)?;
    Ok(Json(view(record)))
}

async fn recording(Ctx { state, principal }: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let (text, sha) = state
        .sessions()
        .recording(&principal, &id)
        .await
        .map_err(coded)?;
    Ok((
        [
            (CONTENT_TYPE, "application/x-asciicast".to_string()),
            (CACHE_CONTROL, "no-store".to_string()),
            (
                axum::http::HeaderName::from_static(api::RECORDING_SHA256_HEADER),
                sha,
            ),
        ],
        text,
    )
        .into_response())
}

fn view(r: SessionRecord) -> api::SessionView {
    api::SessionView {
        id: r.id,
        node_id: r.node_id,
        node_name: r.node_name,
        kind: r.kind,
        user: r.run_as,
        command: r.command,
        remote: r.remote,
        started_by: r.started_by,
        started_at: r.started_at,
        ended_at: r.ended_at,
        status: r.status,
        end_reason: r.end_reason,
        exit_code: r.exit_code,
        idle_timeout_secs: r.idle_timeout_secs.max(0) as u64,
        max_duration_secs: r.max_duration_secs.max(0) as u64,
        recording_sha256: r.recording_sha256,
        recording_bytes: r.recording_bytes.map(|b| b.max(0) as u64),
    }
}
