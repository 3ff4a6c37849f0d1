//! HTTP API for workflows, executions, approvals and task tokens.
//!
//! `/v1/workflows`, `/v1/executions`, `/v1/approvals`, `/v1/tasks/*`: parse
//! the request, call the service (`workflows/definitions.rs`,
//! `workflows/executions.rs`), shape the answer. The catalogue or the
//! service authorizes the principal before anything is revealed or changed.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use operon_api::workflows as wire;
use serde::Deserialize;
use serde_json::json;

use super::definitions::{NewVersion, NewWorkflow, Version};
use super::executions::{ExecutionQuery, History, StartExecution, TaskAnswer};
use super::{StartedBy, execution_view};
use crate::AppState;
use crate::access::Ctx;
use crate::api::Principal;
use crate::error::ApiResult;

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

async fn create_workflow(
    Ctx { state, principal }: Ctx,
    Json(body): Json<wire::CreateWorkflow>,
) -> ApiResult<Json<wire::WorkflowVersion>> {
    let new = NewWorkflow {
        name: body.name,
        definition: body.definition,
        role: body.role,
    };
    let name = new.name.clone();
    let Version(version) = state.workflow_definitions().create(&principal, new).await?;
    Ok(Json(wire::WorkflowVersion { name, version }))
}

async fn update_workflow(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<wire::UpdateWorkflow>,
) -> ApiResult<Json<wire::WorkflowVersion>> {
    let new = NewVersion {
        name: name.clone(),
        definition: body.definition,
        role: body.role,
    };
    let Version(version) = state.workflow_definitions().update(&principal, new).await?;
    Ok(Json(wire::WorkflowVersion { name, version }))
}

async fn list_workflows(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<wire::WorkflowSummary>>> {
    let list = state.workflow_definitions().list().await?;
    Ok(Json(
        list.into_iter()
            .map(|w| wire::WorkflowSummary {
                name: w.name,
                version: w.version,
                created_at: w.created_at,
                updated_at: w.updated_at,
                role: w.role,
                created_by: w.created_by,
            })
            .collect(),
    ))
}

async fn describe_workflow(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<wire::Workflow>> {
    let w = state.workflow_definitions().get(&name).await?;
    Ok(Json(wire::Workflow {
        name: w.name,
        version: w.version,
        definition: w.definition,
        created_at: w.created_at,
        updated_at: w.updated_at,
        role: w.role,
        created_by: w.created_by,
    }))
}

async fn delete_workflow(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<wire::WorkflowDeleted>> {
    state.workflow_definitions().delete(&name).await?;
    Ok(Json(wire::WorkflowDeleted {
        name,
        deleted: true,
    }))
}

async fn start(
    Ctx { state, principal }: Ctx,
    Path(workflow): Path<String>,
    Json(body): Json<wire::StartExecution>,
) -> ApiResult<Json<wire::Execution>> {
    let start = StartExecution {
        workflow,
        input: body.input,
        name: body.name,
    };
    let view = state
        .executions()
        .start(start, StartedBy::User(&principal.name))
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

async fn list_executions(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListExecutions>,
) -> ApiResult<Json<Vec<wire::Execution>>> {
    let query = ExecutionQuery {
        status: q.status,
        workflow: q.workflow,
        limit: q.limit,
    };
    let list = state.executions().list(query).await?;
    Ok(Json(list.iter().map(execution_view).collect()))
}

async fn describe_execution(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Execution>> {
    Ok(Json(execution_view(&state.executions().get(&id).await?)))
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
) -> ApiResult<Json<wire::ExecutionHistory>> {
    let History { execution, events } = state.executions().history(&id, q.after, q.limit).await?;
    Ok(Json(wire::ExecutionHistory {
        execution_id: id,
        status: execution.status,
        events,
    }))
}

async fn stop(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Option<Json<wire::StopExecution>>,
) -> ApiResult<Json<wire::Execution>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let execution = state.executions().stop(&id, body.error, body.cause).await?;
    Ok(Json(execution_view(&execution)))
}

async fn redrive(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Execution>> {
    Ok(Json(state.executions().redrive(&id).await?))
}

// ----- Approvals ---------------------------------------------------------------------

#[derive(Deserialize)]
struct ListApprovals {
    status: Option<String>,
    limit: Option<i64>,
}

/// An approval row as the API shows it.
fn approval_view(a: operon_store::Approval) -> wire::Approval {
    wire::Approval {
        id: a.id,
        execution_id: a.execution_id,
        token: a.token,
        state: a.state,
        message: a.message,
        approvers: a.approvers,
        status: a.status,
        decided_by: a.decided_by,
        comment: a.comment,
        created_at: a.created_at,
        decided_at: a.decided_at,
    }
}

async fn list_approvals(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListApprovals>,
) -> ApiResult<Json<Vec<wire::Approval>>> {
    let list = state
        .executions()
        .list_approvals(q.status.as_deref(), q.limit)
        .await?;
    Ok(Json(list.into_iter().map(approval_view).collect()))
}

async fn describe_approval(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Approval>> {
    let approval = state.executions().get_approval(&id).await?;
    Ok(Json(approval_view(approval)))
}

async fn approve(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
    body: Option<Json<wire::Decision>>,
) -> ApiResult<Json<wire::Approval>> {
    let comment = body.and_then(|Json(b)| b.comment);
    let approval = state
        .executions()
        .decide(&principal, &id, true, comment)
        .await?;
    Ok(Json(approval_view(approval)))
}

async fn reject(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
    body: Option<Json<wire::Decision>>,
) -> ApiResult<Json<wire::Approval>> {
    let comment = body.and_then(|Json(b)| b.comment);
    let approval = state
        .executions()
        .decide(&principal, &id, false, comment)
        .await?;
    Ok(Json(approval_view(approval)))
}

// ----- Task tokens ---------------------------------------------------------------------

async fn send_success(
    Ctx { state, principal }: Ctx,
    Json(body): Json<wire::TaskAnswer>,
) -> ApiResult<Json<wire::TaskAccepted>> {
    let output = body.output.unwrap_or_else(|| json!({}));
    answer(
        &state,
        &principal,
        &body.task_token,
        TaskAnswer::Success { output },
    )
    .await
}

async fn send_failure(
    Ctx { state, principal }: Ctx,
    Json(body): Json<wire::TaskAnswer>,
) -> ApiResult<Json<wire::TaskAccepted>> {
    let failure = TaskAnswer::Failure {
        error: body.error,
        cause: body.cause,
    };
    answer(&state, &principal, &body.task_token, failure).await
}

async fn send_heartbeat(
    Ctx { state, principal }: Ctx,
    Json(body): Json<wire::TaskAnswer>,
) -> ApiResult<Json<wire::TaskAccepted>> {
    answer(&state, &principal, &body.task_token, TaskAnswer::Heartbeat).await
}

async fn answer(
    state: &AppState,
    principal: &Principal,
    token: &str,
    answer: TaskAnswer,
) -> ApiResult<Json<wire::TaskAccepted>> {
    let execution_id = state
        .executions()
        .answer_task(principal, token, answer)
        .await?;
    Ok(Json(wire::TaskAccepted {
        execution_id,
        accepted: true,
    }))
}
