//! The HTTP edge of the commands service: `/v1/commands`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use operon_api::commands as api;
use operon_api::commands::CreateCommand;
use serde::Deserialize;
use serde_json::Value;

use super::service::{CommandId, CommandView, NewCommand, Requester};
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

async fn create_command(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateCommand>,
) -> ApiResult<Json<api::CommandView>> {
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
        state: super::service::StateOptions {
            mode: body.check.then_some(operon_proto::StateMode::Check),
            association: None,
        },
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
    Ok(Json(command_view(view)))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list_commands(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<api::CommandSummary>>> {
    let views = state.commands().list(q.limit.unwrap_or(50)).await?;
    Ok(Json(
        views
            .into_iter()
            .map(|view| command_view(view).command)
            .collect(),
    ))
}

async fn show_command(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<api::CommandView>> {
    let commands = state.commands();
    let view = commands.view(commands.get(&id).await?).await?;
    Ok(Json(command_view(view)))
}

async fn cancel_command(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<api::CancelRequested>> {
    state.commands().cancel(&id).await?;
    Ok(Json(api::CancelRequested {
        id,
        cancel_requested: true,
    }))
}

/// The service's view in the API's shape (field for field, in the order the
/// store record has always been written).
fn command_view(view: CommandView) -> api::CommandView {
    let c = view.command;
    api::CommandView {
        command: api::CommandSummary {
            id: c.id,
            document_name: c.document_name,
            document_version: c.document_version,
            parameters: c.parameters,
            request: c.request,
            run_template: serde_json::to_value(c.run_template).unwrap_or(Value::Null),
            max_concurrency: c.max_concurrency,
            max_errors: c.max_errors,
            timeout_secs: c.timeout_secs,
            delivery_timeout_secs: c.delivery_timeout_secs,
            status: status(c.status),
            created_at: c.created_at,
            finished_at: c.finished_at,
            cancel_requested: c.cancel_requested,
            requested_by: c.requested_by,
            target_count: view.target_count as u64,
            completed_count: view.completed_count as u64,
            error_count: view.error_count as u64,
        },
        invocations: view.invocations.into_iter().map(invocation).collect(),
    }
}

fn invocation(i: operon_store::Invocation) -> api::Invocation {
    api::Invocation {
        command_id: i.command_id,
        node_id: i.node_id,
        node_name: i.node_name,
        status: status(i.status),
        status_detail: i.status_detail,
        exit_code: i.exit_code,
        stdout: i.stdout,
        stderr: i.stderr,
        stdout_truncated: i.stdout_truncated,
        stderr_truncated: i.stderr_truncated,
        dispatched_at: i.dispatched_at,
        started_at: i.started_at,
        finished_at: i.finished_at,
        steps: i
            .steps
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect(),
    }
}

pub(crate) fn status(s: operon_proto::InvocationStatus) -> api::InvocationStatus {
    use operon_proto::InvocationStatus as S;
    match s {
        S::Pending => api::InvocationStatus::Pending,
        S::InProgress => api::InvocationStatus::InProgress,
        S::Success => api::InvocationStatus::Success,
        S::Failed => api::InvocationStatus::Failed,
        S::TimedOut => api::InvocationStatus::TimedOut,
        S::Cancelled => api::InvocationStatus::Cancelled,
        S::Undeliverable => api::InvocationStatus::Undeliverable,
    }
}

/// A live event in the API's shape.
fn live_event(event: LiveEvent) -> api::LiveEvent {
    match event {
        LiveEvent::Output {
            node_id,
            node_name,
            stream,
            data,
        } => api::LiveEvent::Output {
            node_id,
            node_name,
            stream: match stream {
                operon_proto::OutputStream::Stdout => api::OutputStream::Stdout,
                operon_proto::OutputStream::Stderr => api::OutputStream::Stderr,
            },
            data,
        },
        LiveEvent::Status {
            node_id,
            node_name,
            status: s,
            exit_code,
            detail,
        } => api::LiveEvent::Status {
            node_id,
            node_name,
            status: status(s),
            exit_code,
            detail,
        },
        LiveEvent::Done { status: s } => api::LiveEvent::Done { status: status(s) },
    }
}

/// Server-sent events: the backlog, then live events, until the command is done.
async fn stream_command(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let command = state.commands().get(&id).await?;
    Ok(live_feed(&state, &command))
}

/// The live feed of `command` as server-sent events, each an API
/// [`api::LiveEvent`] in JSON: the backlog, then live events, until the
/// command is done (at once, for a finished one). The API's stream and the
/// console's run page both serve this; callers authorize first.
pub(crate) fn live_feed(
    state: &AppState,
    command: &operon_store::Command,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let (backlog, receiver) = state.live.subscribe(&command.id);
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
                .json_data(live_event(event))
                .unwrap_or_else(|_| Event::default());
            Some((Ok(sse), (backlog, receiver, None, done)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The API's types write what the service's views wrote, byte for byte.
    #[test]
    fn answers_are_unchanged_by_the_api_types() {
        let command: operon_store::Command = serde_json::from_value(json!({
            "id": "c-1", "document_name": "AWS-RunShellScript", "document_version": 1,
            "parameters": {"commands": ["echo hi"]},
            "request": {"node_ids": ["web-1"], "env": {"A": "(sealed)"}},
            "run_template": {"steps": [{"name": "run", "script": "echo hi",
                "working_directory": null, "timeout_secs": 5}],
                "cwd": "/tmp", "env": {"A": "sealed:x"}, "user": null, "output_cap_bytes": 1024},
            "max_concurrency": "50", "max_errors": "0", "timeout_secs": 3600,
            "delivery_timeout_secs": 3600, "status": "InProgress", "created_at": 1,
            "finished_at": null, "cancel_requested": false, "requested_by": "admin"
        }))
        .unwrap();
        let invocation: operon_store::Invocation = serde_json::from_value(json!({
            "command_id": "c-1", "node_id": "n-1", "node_name": "web-1", "status": "Success",
            "status_detail": null, "exit_code": 0, "stdout": "hi\n", "stderr": "",
            "stdout_truncated": false, "stderr_truncated": false, "dispatched_at": 2,
            "started_at": 3, "finished_at": 4,
            "steps": [{"name": "run", "status": "Success", "exit_code": 0}]
        }))
        .unwrap();
        let pending = operon_store::Invocation {
            node_id: "n-2".into(),
            node_name: "web-2".into(),
            status: operon_proto::InvocationStatus::Pending,
            steps: vec![],
            ..invocation.clone()
        };
        let view = CommandView::new(command, vec![invocation, pending]);
        let before = serde_json::to_string(&serde_json::to_value(&view).unwrap()).unwrap();
        let mut summary_before = serde_json::to_value(&view).unwrap();
        summary_before
            .as_object_mut()
            .unwrap()
            .remove("invocations");
        let after = command_view(view);
        assert_eq!(serde_json::to_string(&after).unwrap(), before);
        assert_eq!(
            serde_json::to_string(&after.command).unwrap(),
            serde_json::to_string(&summary_before).unwrap()
        );
        let back: api::CommandView = serde_json::from_str(&before).unwrap();
        assert_eq!(back, after);
    }

    /// Live events are written as the server's own live events were.
    #[test]
    fn live_events_are_unchanged_by_the_api_types() {
        use operon_proto::{InvocationStatus, OutputStream};
        let events = [
            LiveEvent::Output {
                node_id: "n-1".into(),
                node_name: "web-1".into(),
                stream: OutputStream::Stderr,
                data: "oops\n".into(),
            },
            LiveEvent::Output {
                node_id: "n-1".into(),
                node_name: "web-1".into(),
                stream: OutputStream::Stdout,
                data: "hi\n".into(),
            },
            LiveEvent::Status {
                node_id: "n-1".into(),
                node_name: "web-1".into(),
                status: InvocationStatus::Failed,
                exit_code: Some(2),
                detail: Some("exit 2".into()),
            },
            LiveEvent::Status {
                node_id: "n-1".into(),
                node_name: "web-1".into(),
                status: InvocationStatus::InProgress,
                exit_code: None,
                detail: None,
            },
            LiveEvent::Done {
                status: InvocationStatus::TimedOut,
            },
        ];
        for event in events {
            let before = serde_json::to_string(&event).unwrap();
            let after = live_event(event);
            assert_eq!(serde_json::to_string(&after).unwrap(), before);
            let back: api::LiveEvent = serde_json::from_str(&before).unwrap();
            assert_eq!(back, after);
        }
    }
}
