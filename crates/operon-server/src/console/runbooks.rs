//! The approvals inbox (`/approvals`, approve or reject through the same
//! `decide` call as the API, CSRF-checked), the executions list (`/executions`, filtered by status) and the execution page: an execution's status, input and output, its
//! workflow drawn with the progress marked (`graph.rs`), and its history.
//!
//! Authorized like `GET /v1/executions/{id}/history` through [`gate`], then
//! read through the same execution and definition services the API uses.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use super::pages::time_text;
use super::session::{SignedIn, check_csrf};
use super::{Chrome, audited, gate, graph, render, service_error_page};
use crate::AppState;
use crate::service::ServiceResult;
use crate::workflows::executions::{ExecutionQuery, History, STATUSES};

/// How many history events the page shows.
const HISTORY_LENGTH: i64 = 1000;

/// One history event as a table row.
struct EventRow {
    id: String,
    kind: String,
    name: String,
    detail: String,
}

impl EventRow {
    fn new(event: &Value) -> EventRow {
        let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or("");
        let detail = match (text("error"), text("cause")) {
            ("", "") => String::new(),
            (error, "") => error.to_string(),
            (error, cause) => format!("{error}: {cause}"),
        };
        EventRow {
            id: event.get("id").map(Value::to_string).unwrap_or_default(),
            kind: text("type").to_string(),
            name: text("name").to_string(),
            detail,
        }
    }
}

#[derive(askama::Template)]
#[template(path = "console/execution.html")]
struct ExecutionPage {
    chrome: Chrome,
    id: String,
    workflow: String,
    version: i64,
    status: String,
    started: String,
    input: String,
    output: String,
    error: String,
    /// Trusted markup: `graph::render` escapes every name it draws.
    svg: String,
    events: Vec<EventRow>,
}

/// `GET /executions/{id}`.
pub(super) async fn execution(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Execution {id}"), "/executions");
    match load(&state, &signed_in, &id).await {
        Ok((history, definition)) => render(&page(chrome, history, &definition)),
        Err(e) => service_error_page(chrome, e),
    }
}

async fn load(state: &AppState, signed_in: &SignedIn, id: &str) -> ServiceResult<(History, Value)> {
    let params = HashMap::from([("id".to_string(), id.to_string())]);
    gate(
        state,
        &signed_in.principal,
        "GET",
        "/v1/executions/{id}/history",
        &params,
    )
    .await?;
    let history = state
        .executions()
        .history(id, None, Some(HISTORY_LENGTH))
        .await?;
    let definition = state
        .workflow_definitions()
        .definition_at(&history.execution.workflow, history.execution.version)
        .await?;
    Ok((history, definition))
}

fn page(chrome: Chrome, history: History, definition: &Value) -> ExecutionPage {
    let execution = history.execution;
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
    ExecutionPage {
        chrome,
        svg: graph::render(definition, &history.events),
        events: history.events.iter().map(EventRow::new).collect(),
        input: pretty(&execution.input),
        output: execution.output.as_ref().map(pretty).unwrap_or_default(),
        error: match (&execution.error, &execution.cause) {
            (Some(error), Some(cause)) => format!("{error}: {cause}"),
            (Some(error), None) => error.clone(),
            _ => String::new(),
        },
        started: time_text(execution.started_at),
        id: execution.id,
        workflow: execution.workflow,
        version: execution.version,
        status: execution.status,
    }
}

/// How many executions the list shows.
const LIST_LENGTH: i64 = 100;

/// The list's filter, a GET form.
#[derive(serde::Deserialize, Default)]
pub(super) struct ExecutionFilter {
    #[serde(default)]
    status: String,
}

/// One execution as a row of the list.
struct ExecutionRow {
    id: String,
    workflow: String,
    status: String,
    started: String,
}

#[derive(askama::Template)]
#[template(path = "console/executions.html")]
struct ExecutionsPage {
    chrome: Chrome,
    status: String,
    statuses: &'static [&'static str],
    rows: Vec<ExecutionRow>,
}

/// `GET /executions`: recent executions, optionally of one status.
pub(super) async fn executions(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<ExecutionFilter>,
) -> Response {
    let chrome = signed_in.chrome("Executions", "/executions");
    let status = filter.status.trim().to_uppercase();
    let query = ExecutionQuery {
        status: (!status.is_empty()).then(|| status.clone()),
        workflow: None,
        limit: Some(LIST_LENGTH),
    };
    let listed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/executions",
            &HashMap::new(),
        )
        .await?;
        state.executions().list(query).await
    };
    let list = match listed.await {
        Ok(list) => list,
        Err(e) => return service_error_page(chrome, e),
    };
    let rows = list
        .into_iter()
        .map(|execution| ExecutionRow {
            started: time_text(execution.started_at),
            id: execution.id,
            workflow: execution.workflow,
            status: execution.status,
        })
        .collect();
    render(&ExecutionsPage {
        chrome,
        status,
        statuses: &STATUSES,
        rows,
    })
}

/// One pending approval as a row of the inbox.
struct ApprovalRow {
    id: String,
    execution_id: String,
    state: String,
    message: String,
    created: String,
}

#[derive(askama::Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage {
    chrome: Chrome,
    rows: Vec<ApprovalRow>,
}

/// `GET /approvals`: the pending approvals.
pub(super) async fn approvals(State(state): State<Arc<AppState>>, signed_in: SignedIn) -> Response {
    let chrome = signed_in.chrome("Approvals", "/approvals");
    let listed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/approvals",
            &HashMap::new(),
        )
        .await?;
        state
            .executions()
            .list_approvals(Some("Pending"), Some(LIST_LENGTH))
            .await
    };
    let list = match listed.await {
        Ok(list) => list,
        Err(e) => return service_error_page(chrome, e),
    };
    let rows = list
        .into_iter()
        .map(|approval| ApprovalRow {
            created: time_text(approval.created_at),
            id: approval.id,
            execution_id: approval.execution_id,
            state: approval.state,
            message: approval.message,
        })
        .collect();
    render(&ApprovalsPage { chrome, rows })
}

/// The approve/reject form.
#[derive(serde::Deserialize, Default)]
pub(super) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
    /// `approve` or `reject`.
    #[serde(default)]
    decision: String,
}

/// `POST /approvals/{id}`: approve or reject, as `POST /v1/approvals/{id}/approve|reject`.
pub(super) async fn decide(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    let path = format!("/approvals/{id}");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let chrome = signed_in.chrome("Approvals", "/approvals");
    let approve = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            let message = "the decision must be approve or reject";
            return super::error_page(chrome, StatusCode::BAD_REQUEST, "Bad request", message);
        }
    };
    let comment = (!form.comment.trim().is_empty()).then(|| form.comment.trim().to_string());
    let principal = &signed_in.principal;
    let decided = state
        .executions()
        .decide(principal, &id, approve, comment)
        .await;
    match audited(&state, principal, &path, decided).await {
        Ok(_) => Redirect::to("/approvals").into_response(),
        Err(e) => service_error_page(chrome, e),
    }
}
