//! HTTP API for workflows, executions, approvals and task tokens.
//!
//! `/v1/workflows`, `/v1/executions`, `/v1/approvals`, `/v1/tasks/*`. Every
//! handler authorizes the principal before it reveals or changes anything.

use operon_store::prelude::*;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use operon_asl::Event;
use operon_store::{ApprovalDecision, ExecutionFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::definitions::{NewVersion, NewWorkflow, Version};
use super::{Msg, execution_view, start_execution};
use crate::access::{Ctx, authorize};
use crate::api::Principal;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, now_millis};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/workflows", post(create_workflow).get(list_workflows))
        .route(
            "/v1/workflows/{name}",
            get(describe_workflow)
                .put(update_workflow)
                .delete(delete_workflow),
        )
        .route("/v1/workflows/{name}/executions", post(start))
        .route("/v1/executions", get(list_executions))
        .route("/v1/executions/{id}", get(describe_execution))
        .route("/v1/executions/{id}/history", get(history))
        .route("/v1/executions/{id}/stop", post(stop))
        .route("/v1/executions/{id}/redrive", post(redrive))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", get(describe_approval))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/reject", post(reject))
        .route("/v1/tasks/send-success", post(send_success))
        .route("/v1/tasks/send-failure", post(send_failure))
        .route("/v1/tasks/send-heartbeat", post(send_heartbeat))
}

// ----- State machines ------------------------------------------------------------

#[derive(Deserialize)]
struct CreateWorkflow {
    name: String,
    definition: Value,
    /// The role its executions act as; without one they act as the author
    /// of the version.
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
struct UpdateWorkflow {
    definition: Value,
    /// A new role; omitted keeps the current version's, `""` removes it.
    #[serde(default)]
    role: Option<String>,
}

async fn create_workflow(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateWorkflow>,
) -> ApiResult<Json<Value>> {
    let new = NewWorkflow {
        name: body.name,
        definition: body.definition,
        role: body.role,
    };
    let name = new.name.clone();
    let Version(version) = state.workflow_definitions().create(&principal, new).await?;
    Ok(Json(json!({"name": name, "version": version})))
}

async fn update_workflow(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<UpdateWorkflow>,
) -> ApiResult<Json<Value>> {
    let new = NewVersion {
        name: name.clone(),
        definition: body.definition,
        role: body.role,
    };
    let Version(version) = state.workflow_definitions().update(&principal, new).await?;
    Ok(Json(json!({"name": name, "version": version})))
}

async fn list_workflows(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Value>>> {
    let list = state.workflow_definitions().list().await?;
    Ok(Json(
        list.into_iter()
            .map(|w| json!({"name": w.name, "version": w.version, "createdAt": w.created_at, "updatedAt": w.updated_at, "role": w.role, "createdBy": w.created_by}))
            .collect(),
    ))
}

async fn describe_workflow(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let w = state.workflow_definitions().get(&name).await?;
    Ok(Json(json!({
        "name": w.name, "version": w.version, "definition": w.definition,
        "createdAt": w.created_at, "updatedAt": w.updated_at,
        "role": w.role, "createdBy": w.created_by,
    })))
}

async fn delete_workflow(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    state.workflow_definitions().delete(&name).await?;
    Ok(Json(json!({"name": name, "deleted": true})))
}

#[derive(Deserialize)]
struct StartBody {
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    name: Option<String>,
}

async fn start(
    Ctx { state, principal }: Ctx,
    Path(workflow): Path<String>,
    Json(body): Json<StartBody>,
) -> ApiResult<Json<Value>> {
    let input = body.input.unwrap_or_else(|| json!({}));
    let view = start_execution(
        &state,
        &workflow,
        input,
        body.name,
        super::StartedBy::User(&principal.name),
    )
    .await?;
    Ok(Json(view))
}

// ----- Executions ----------------------------------------------------------------

#[derive(Deserialize)]
struct ListExecutions {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<i64>,
}

const STATUSES: [&str; 5] = ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"];

async fn list_executions(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListExecutions>,
) -> ApiResult<Json<Vec<Value>>> {
    let status = q.status.map(|s| s.to_ascii_uppercase());
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::invalid(format!(
            "unknown status {s:?}; expected one of {}",
            STATUSES.join(", ")
        )));
    }
    let filter = ExecutionFilter {
        status,
        workflow: q.workflow,
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    };
    let list = state.store.list_executions(&filter).await?;
    Ok(Json(list.iter().map(execution_view).collect()))
}

async fn find_execution(state: &AppState, id: &str) -> ApiResult<operon_store::ExecutionRecord> {
    state
        .store
        .execution(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution with id {id:?}")))
}

async fn describe_execution(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(execution_view(&find_execution(&state, &id).await?)))
}

#[derive(Deserialize)]
struct HistoryQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn history(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Value>> {
    let execution = find_execution(&state, &id).await?;
    let rows = state
        .store
        .execution_history(
            &id,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(1000).clamp(1, 10_000),
        )
        .await?;
    let events: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.event).unwrap_or(Value::Null))
        .collect();
    Ok(Json(
        json!({"executionId": id, "status": execution.status, "events": events}),
    ))
}

#[derive(Deserialize, Default)]
struct StopBody {
    error: Option<String>,
    cause: Option<String>,
}

async fn stop(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Option<Json<StopBody>>,
) -> ApiResult<Json<Value>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    find_execution(&state, &id).await?;
    state
        .workflows
        .ask(|reply| Msg::Event {
            execution_id: id.clone(),
            event: Event::Stop {
                error: body.error,
                cause: body.cause,
            },
            decision: None,
            reply: Some(reply),
        })
        .await?;
    Ok(Json(execution_view(&find_execution(&state, &id).await?)))
}

async fn redrive(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    find_execution(&state, &id).await?;
    let view = state
        .workflows
        .ask(|reply| Msg::Redrive {
            execution_id: id.clone(),
            reply,
        })
        .await?;
    Ok(Json(view))
}

// ----- Approvals ---------------------------------------------------------------------

#[derive(Deserialize)]
struct ListApprovals {
    status: Option<String>,
    limit: Option<i64>,
}

async fn list_approvals(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListApprovals>,
) -> ApiResult<Json<Value>> {
    let list = state
        .store
        .list_approvals(q.status.as_deref(), q.limit.unwrap_or(100).clamp(1, 10_000))
        .await?;
    Ok(Json(serde_json::to_value(list).unwrap_or(Value::Null)))
}

async fn describe_approval(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let approval = find_approval(&state, &id).await?;
    Ok(Json(serde_json::to_value(approval).unwrap_or(Value::Null)))
}

async fn find_approval(state: &AppState, id: &str) -> ApiResult<operon_store::Approval> {
    state
        .store
        .approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval with id {id:?}")))
}

#[derive(Deserialize, Default)]
struct DecisionBody {
    comment: Option<String>,
}

async fn approve(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
    body: Option<Json<DecisionBody>>,
) -> ApiResult<Json<Value>> {
    let comment = body.and_then(|Json(b)| b.comment);
    decide(&state, &principal, &id, true, comment).await
}

async fn reject(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
    body: Option<Json<DecisionBody>>,
) -> ApiResult<Json<Value>> {
    let comment = body.and_then(|Json(b)| b.comment);
    decide(&state, &principal, &id, false, comment).await
}

/// Answer an approval: the decision and the execution's next step are
/// committed together.
async fn decide(
    state: &Arc<AppState>,
    principal: &Principal,
    id: &str,
    approved: bool,
    comment: Option<String>,
) -> ApiResult<Json<Value>> {
    authorize(
        state,
        principal,
        "approvals:Approve",
        &format!("approval/{id}"),
    )
    .await?;
    let approval = find_approval(state, id).await?;
    if approval.status != "Pending" {
        return Err(ApiError::conflict(format!(
            "approval {id} is {}, not pending",
            approval.status
        )));
    }
    if !approval.approvers.is_empty() && !approval.approvers.contains(&principal.name) {
        let reason = format!(
            "{} is not among the approvers of {id} ({})",
            principal.name,
            approval.approvers.join(", ")
        );
        crate::access::record_denial(
            state,
            principal,
            "approvals:Approve",
            &format!("approval/{id}"),
            &reason,
        )
        .await;
        return Err(ApiError::forbidden(reason));
    }
    let now = now_millis();
    let event = if approved {
        Event::TaskSucceeded {
            token: approval.token.clone(),
            output: json!({
                "Approved": true, "ApprovedBy": principal.name, "Comment": comment,
                "ApprovalId": id,
            }),
        }
    } else {
        Event::TaskFailed {
            token: approval.token.clone(),
            error: Some("Operon.ApprovalRejected".into()),
            cause: Some(
                json!({"RejectedBy": principal.name, "Comment": comment, "ApprovalId": id})
                    .to_string(),
            ),
        }
    };
    let decision = ApprovalDecision {
        id: id.to_string(),
        status: if approved { "Approved" } else { "Rejected" }.into(),
        decided_by: principal.name.clone(),
        comment,
        at: now,
    };
    state
        .workflows
        .ask(|reply| Msg::Event {
            execution_id: approval.execution_id.clone(),
            event,
            decision: Some(decision),
            reply: Some(reply),
        })
        .await?;
    tracing::info!(approval_id = %id, approved, by = %principal.name, "approval decided");
    let approval = find_approval(state, id).await?;
    Ok(Json(serde_json::to_value(approval).unwrap_or(Value::Null)))
}

// ----- Task tokens ---------------------------------------------------------------------

#[derive(Deserialize)]
struct TaskAnswer {
    #[serde(rename = "taskToken")]
    task_token: String,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

async fn send_success(
    Ctx { state, principal }: Ctx,
    Json(body): Json<TaskAnswer>,
) -> ApiResult<Json<Value>> {
    let output = body.output.clone().unwrap_or_else(|| json!({}));
    let token = body.task_token.clone();
    answer(
        &state,
        &principal,
        "tasks:SendSuccess",
        &body.task_token,
        Event::TaskSucceeded { token, output },
    )
    .await
}

async fn send_failure(
    Ctx { state, principal }: Ctx,
    Json(body): Json<TaskAnswer>,
) -> ApiResult<Json<Value>> {
    let event = Event::TaskFailed {
        token: body.task_token.clone(),
        error: body.error,
        cause: body.cause,
    };
    answer(
        &state,
        &principal,
        "tasks:SendFailure",
        &body.task_token,
        event,
    )
    .await
}

async fn send_heartbeat(
    Ctx { state, principal }: Ctx,
    Json(body): Json<TaskAnswer>,
) -> ApiResult<Json<Value>> {
    let event = Event::Heartbeat {
        token: body.task_token.clone(),
    };
    answer(
        &state,
        &principal,
        "tasks:SendHeartbeat",
        &body.task_token,
        event,
    )
    .await
}

async fn answer(
    state: &Arc<AppState>,
    principal: &Principal,
    action: &str,
    token: &str,
    event: Event,
) -> ApiResult<Json<Value>> {
    let task = state.store.workflow_task(token).await?.ok_or_else(|| {
        ApiError::not_found("no task is waiting for this token (unknown, answered or timed out)")
    })?;
    authorize(
        state,
        principal,
        action,
        &format!("execution/{}", task.execution_id),
    )
    .await?;
    if task.resource.starts_with("operon:approval") {
        return Err(ApiError::invalid(
            "this token belongs to an approval; answer it with operon approvals approve|reject",
        ));
    }
    state
        .workflows
        .ask(|reply| Msg::Event {
            execution_id: task.execution_id.clone(),
            event,
            decision: None,
            reply: Some(reply),
        })
        .await?;
    Ok(Json(
        json!({"executionId": task.execution_id, "accepted": true}),
    ))
}
