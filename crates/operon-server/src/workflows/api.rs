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
use serde::Deserialize;
use serde_json::{Value, json};

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
) -> ApiResult<Json<Vec<Value>>> {
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
) -> ApiResult<Json<Value>> {
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
) -> ApiResult<Json<Value>> {
    let History { execution, events } = state.executions().history(&id, q.after, q.limit).await?;
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
    let execution = state.executions().stop(&id, body.error, body.cause).await?;
    Ok(Json(execution_view(&execution)))
}

async fn redrive(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.executions().redrive(&id).await?))
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
        .executions()
        .list_approvals(q.status.as_deref(), q.limit)
        .await?;
    Ok(Json(serde_json::to_value(list).unwrap_or(Value::Null)))
}

async fn describe_approval(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let approval = state.executions().get_approval(&id).await?;
    Ok(Json(serde_json::to_value(approval).unwrap_or(Value::Null)))
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
    let approval = state
        .executions()
        .decide(&principal, &id, true, comment)
        .await?;
    Ok(Json(serde_json::to_value(approval).unwrap_or(Value::Null)))
}

async fn reject(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
    body: Option<Json<DecisionBody>>,
) -> ApiResult<Json<Value>> {
    let comment = body.and_then(|Json(b)| b.comment);
    let approval = state
        .executions()
        .decide(&principal, &id, false, comment)
        .await?;
    Ok(Json(serde_json::to_value(approval).unwrap_or(Value::Null)))
}

// ----- Task tokens ---------------------------------------------------------------------

#[derive(Deserialize)]
struct TaskAnswerBody {
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
    Json(body): Json<TaskAnswerBody>,
) -> ApiResult<Json<Value>> {
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
    Json(body): Json<TaskAnswerBody>,
) -> ApiResult<Json<Value>> {
    let failure = TaskAnswer::Failure {
        error: body.error,
        cause: body.cause,
    };
    answer(&state, &principal, &body.task_token, failure).await
}

async fn send_heartbeat(
    Ctx { state, principal }: Ctx,
    Json(body): Json<TaskAnswerBody>,
) -> ApiResult<Json<Value>> {
    answer(&state, &principal, &body.task_token, TaskAnswer::Heartbeat).await
}

async fn answer(
    state: &AppState,
    principal: &Principal,
    token: &str,
    answer: TaskAnswer,
) -> ApiResult<Json<Value>> {
    let execution_id = state
        .executions()
        .answer_task(principal, token, answer)
        .await?;
    Ok(Json(json!({"executionId": execution_id, "accepted": true})))
}
