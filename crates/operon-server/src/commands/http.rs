//! The HTTP edge of the commands service: `/v1/commands`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::service::{CommandId, NewCommand, Requester};
use super::targets::TargetSpec;
use crate::AppState;
use crate::access::Ctx;
use crate::documents::DocumentVersion;
use crate::error::{ApiError, ApiResult};
use crate::live::LiveEvent;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/commands", post(create_command).get(list_commands))
        .route("/v1/commands/{id}", get(show_command))
        .route("/v1/commands/{id}/cancel", post(cancel_command))
        .route("/v1/commands/{id}/stream", get(stream_command))
}

/// `POST /v1/commands`.
#[derive(Default, Deserialize, Serialize)]
pub struct CreateCommand {
    #[serde(default)]
    document: Option<String>,
    /// A version number, `$DEFAULT` or `$LATEST`; the default when absent.
    #[serde(default)]
    document_version: Option<Value>,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    node_ids: Vec<String>,
    /// `tag:KEY=VALUE` or `all` strings, or SSM `{"Key", "Values"}` objects;
    /// all must hold.
    #[serde(default)]
    targets: Vec<Value>,
    max_concurrency: Option<String>,
    max_errors: Option<String>,
    timeout_secs: Option<i64>,
    delivery_timeout_secs: Option<i64>,
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    user: Option<String>,
}

async fn create_command(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateCommand>,
) -> ApiResult<Json<Value>> {
    let targets = TargetSpec::parse(&body.node_ids, &body.targets, "targets")
        .map_err(super::service::target_error)?;
    let document_version = match &body.document_version {
        None => DocumentVersion::Default,
        Some(v) => DocumentVersion::from_json(v).map_err(ApiError::invalid)?,
    };
    let mut request = serde_json::to_value(&body).unwrap_or(Value::Null);
    // The request is kept for everyone to see: environment values are not.
    if let Some(env) = request.get_mut("env").and_then(Value::as_object_mut) {
        for value in env.values_mut() {
            *value = Value::String("(sealed)".into());
        }
    }
    let new = NewCommand {
        document: body.document,
        document_version,
        parameters: body.parameters,
        targets,
        max_concurrency: body.max_concurrency,
        max_errors: body.max_errors,
        timeout_secs: body.timeout_secs,
        delivery_timeout_secs: body.delivery_timeout_secs,
        cwd: body.cwd,
        env: body.env,
        user: body.user,
        request,
    };
    let commands = state.commands();
    let created = commands
        .create(CommandId::Fresh, new, Requester::Principal(&principal))
        .await?;
    principal.note("command_id", created.command.id.clone());
    principal.note("targets", created.targets.clone());
    if !created.refused.is_empty() {
        principal.note(
            "refused",
            serde_json::to_value(&created.refused).unwrap_or(Value::Null),
        );
    }
    let view = commands.view(created.command).await?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list_commands(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let views = state.commands().list(q.limit.unwrap_or(50)).await?;
    let out = views
        .into_iter()
        .map(|view| {
            let mut value = serde_json::to_value(view).unwrap_or(Value::Null);
            if let Some(map) = value.as_object_mut() {
                map.remove("invocations");
            }
            value
        })
        .collect();
    Ok(Json(out))
}

async fn show_command(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let commands = state.commands();
    let view = commands.view(commands.get(&id).await?).await?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

async fn cancel_command(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.commands().cancel(&id).await?;
    Ok(Json(
        serde_json::json!({"id": id, "cancel_requested": true}),
    ))
}

/// Server-sent events: the backlog, then live events, until the command is done.
async fn stream_command(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let command = state.commands().get(&id).await?;
    let (backlog, receiver) = state.live.subscribe(&id);
    let already_done = command.status.is_final().then_some(command.status);
    let events = futures_util::stream::unfold(
        (backlog.into_iter(), receiver, already_done, false),
        |(mut backlog, mut receiver, already_done, finished)| async move {
            if finished {
                return None;
            }
            let event = if let Some(status) = already_done {
                LiveEvent::Done { status }
            } else if let Some(event) = backlog.next() {
                event
            } else {
                loop {
                    match receiver.recv().await {
                        Ok(event) => break event,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            };
            let done = matches!(event, LiveEvent::Done { .. });
            let sse = Event::default()
                .json_data(&event)
                .unwrap_or_else(|_| Event::default());
            Some((Ok(sse), (backlog, receiver, None, done)))
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}
