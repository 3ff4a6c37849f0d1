//! Runbooks in the console: the workflows (`/workflows`), one workflow's
//! versions, definition (drawn by `graph.rs` and shown as JSON), recent
//! executions and Start form (`/workflows/{name}`), and the acting buttons
//! of an execution page: Stop and Redrive.
//!
//! Why it is shaped this way: every page and button is authorized through
//! [`gate`] with the API route it mirrors (`GET /v1/workflows`,
//! `POST /v1/workflows/{name}/executions`, `POST /v1/executions/{id}/stop`,
//! ...), then calls the same service method that route's handler calls, so
//! a browser and the CLI are allowed, refused and audited alike. Start
//! always runs the latest version, as the API does: the version list is
//! for reading old definitions, not for choosing what to run.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::pages::time_text;
use super::session::{CsrfForm, SignedIn, check_csrf};
use super::{Chrome, audited, gate, graph, render, service_error_page};
use crate::AppState;
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::workflows::StartedBy;
use crate::workflows::executions::{ExecutionQuery, StartExecution};

/// How many recent executions a workflow's page lists.
const RECENT_EXECUTIONS: i64 = 20;

/// The navigation section of every page here.
const SECTION: &str = "/workflows";

/// A definition's top-level `Comment`, the ASL's description of a state
/// machine; empty when it has none.
fn description_of(definition: &Value) -> String {
    definition
        .get("Comment")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// One workflow as a row of the list.
struct WorkflowRow {
    name: String,
    version: i64,
    description: String,
    updated: String,
}

#[derive(askama::Template)]
#[template(path = "console/workflows.html")]
struct WorkflowsPage {
    chrome: Chrome,
    rows: Vec<WorkflowRow>,
}

/// `GET /workflows`: every live workflow at its latest version.
pub(super) async fn workflows(State(state): State<Arc<AppState>>, signed_in: SignedIn) -> Response {
    let chrome = signed_in.chrome("Runbooks", SECTION);
    let listed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/workflows",
            &HashMap::new(),
        )
        .await?;
        state.workflow_definitions().list().await
    };
    match listed.await {
        Ok(list) => {
            let rows = list
                .into_iter()
                .map(|w| WorkflowRow {
                    description: description_of(&w.definition),
                    updated: time_text(w.updated_at),
                    name: w.name,
                    version: w.version,
                })
                .collect();
            render(&WorkflowsPage { chrome, rows })
        }
        Err(e) => service_error_page(chrome, e),
    }
}

/// The version asked for in the query (`?version=N`), as text so a bad
/// value is answered with a page rather than the extractor's refusal.
#[derive(Deserialize, Default)]
pub(super) struct VersionQuery {
    #[serde(default)]
    version: String,
}

/// The version a query names: the latest when it names none.
fn chosen_version(text: &str, latest: i64) -> ServiceResult<i64> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(latest);
    }
    match text.parse::<i64>() {
        Ok(version) if (1..=latest).contains(&version) => Ok(version),
        _ => Err(ServiceError::not_found(
            "NoSuchWorkflowVersion",
            format!("no version {text:?}: the versions are 1 to {latest}"),
        )),
    }
}

/// One recent execution as a row of the workflow's page.
struct ExecutionRow {
    id: String,
    version: i64,
    status: String,
    started: String,
}

/// One version in the workflow's version list.
struct VersionRow {
    version: i64,
    created: String,
    created_by: String,
    role: String,
}

/// What a workflow's page shows besides the Start form.
struct WorkflowView {
    name: String,
    latest: i64,
    /// Every version, newest first.
    versions: Vec<VersionRow>,
    chosen: i64,
    description: String,
    updated: String,
    created_by: String,
    role: String,
    /// Trusted markup: `graph::render` escapes every name it draws.
    svg: String,
    definition: String,
    /// `Err` holds why the recent executions are not shown (a refusal of
    /// `executions:List`): the workflow itself is still shown.
    executions: Result<Vec<ExecutionRow>, String>,
}

/// The Start form as the browser sends it: text, so a bad value is shown
/// beside its field.
#[derive(Deserialize, Default)]
pub(super) struct StartForm {
    #[serde(default)]
    csrf: String,
    /// The execution's input, a JSON document.
    #[serde(default)]
    input: String,
    /// The execution's name (an idempotency key), optional.
    #[serde(default)]
    name: String,
}

#[derive(askama::Template)]
#[template(path = "console/workflow.html")]
struct WorkflowPage {
    chrome: Chrome,
    view: WorkflowView,
    input: String,
    execution_name: String,
    /// Why the input was refused, beside the input field.
    input_error: String,
    /// Why the start was refused otherwise, above the form.
    start_error: String,
}

/// `GET /workflows/{name}` (`?version=N` to read an older version).
pub(super) async fn workflow(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(query): Query<VersionQuery>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Runbook {name}"), SECTION);
    match load(&state, &signed_in, &name, &query.version).await {
        Ok(view) => render(&WorkflowPage {
            chrome,
            view,
            input: "{}".into(),
            execution_name: String::new(),
            input_error: String::new(),
            start_error: String::new(),
        }),
        Err(e) => service_error_page(chrome, e),
    }
}

async fn load(
    state: &AppState,
    signed_in: &SignedIn,
    name: &str,
    version: &str,
) -> ServiceResult<WorkflowView> {
    let principal = &signed_in.principal;
    let params = HashMap::from([("name".to_string(), name.to_string())]);
    gate(state, principal, "GET", "/v1/workflows/{name}", &params).await?;
    let workflow = state.workflow_definitions().get(name).await?;
    let chosen = chosen_version(version, workflow.version)?;
    let definition = if chosen == workflow.version {
        workflow.definition.clone()
    } else {
        state
            .workflow_definitions()
            .definition_at(name, chosen)
            .await?
    };
    let versions = state
        .workflow_definitions()
        .versions(name)
        .await?
        .into_iter()
        .map(|v| VersionRow {
            version: v.version,
            created: time_text(v.created_at),
            created_by: v.created_by,
            role: v.role.unwrap_or_default(),
        })
        .collect();
    let executions = recent_executions(state, signed_in, name).await;
    Ok(WorkflowView {
        svg: graph::render(&definition, &[]),
        description: description_of(&definition),
        definition: serde_json::to_string_pretty(&definition).unwrap_or_default(),
        versions,
        chosen,
        latest: workflow.version,
        updated: time_text(workflow.updated_at),
        created_by: workflow.created_by,
        role: workflow.role.unwrap_or_default(),
        name: workflow.name,
        executions,
    })
}

/// The workflow's recent executions, authorized as `GET /v1/executions`
/// (a user may read a runbook without being allowed its executions).
async fn recent_executions(
    state: &AppState,
    signed_in: &SignedIn,
    name: &str,
) -> Result<Vec<ExecutionRow>, String> {
    let listed = async {
        let none = HashMap::new();
        gate(state, &signed_in.principal, "GET", "/v1/executions", &none).await?;
        let query = ExecutionQuery {
            status: None,
            workflow: Some(name.to_string()),
            limit: Some(RECENT_EXECUTIONS),
        };
        state.executions().list(query).await
    };
    match listed.await {
        Ok(list) => Ok(list
            .into_iter()
            .map(|e| ExecutionRow {
                started: time_text(e.started_at),
                id: e.id,
                version: e.version,
                status: e.status,
            })
            .collect()),
        Err(e) => Err(e.message),
    }
}

/// The execution input the form gives: a JSON document (`{}` when blank),
/// or what is wrong with it, with serde_json's line and column.
fn parse_input(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(text).map_err(|e| format!("the input is not JSON: {e}"))
}

/// `POST /workflows/{name}/start`: start an execution of the latest
/// version as `POST /v1/workflows/{name}/executions` does, then go to it
/// (303); a bad input or a refused start re-renders the form.
pub(super) async fn start(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Response {
    let path = format!("/workflows/{name}/start");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let mut bad_input = false;
    let started = async {
        // Authorized before the input is read, as the API's catalogue
        // authorizes before its handler parses the body.
        let params = HashMap::from([("name".to_string(), name.clone())]);
        let route = "/v1/workflows/{name}/executions";
        gate(&state, principal, "POST", route, &params).await?;
        let input = parse_input(&form.input).map_err(|message| {
            bad_input = true;
            ServiceError::invalid("InvalidInput", message)
        })?;
        let execution_name = Some(form.name.trim().to_string()).filter(|n| !n.is_empty());
        let start = StartExecution {
            workflow: name.clone(),
            input: Some(input),
            name: execution_name,
        };
        let started = state
            .executions()
            .start(start, StartedBy::User(&principal.name))
            .await;
        started.inspect(|view| principal.note("execution_id", view.execution_id.clone()))
    }
    .await;
    let chrome = signed_in.chrome(&format!("Runbook {name}"), SECTION);
    let e = match audited(&state, principal, &path, started).await {
        Ok(view) => {
            return Redirect::to(&format!("/executions/{}", view.execution_id)).into_response();
        }
        Err(e) => e,
    };
    let status = match e.kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        // A refusal, a workflow deleted meanwhile, a failure: the error page.
        _ => return service_error_page(chrome, e),
    };
    let view = match load(&state, &signed_in, &name, "").await {
        Ok(view) => view,
        Err(e) => return service_error_page(chrome, e),
    };
    let (input_error, start_error) = if bad_input {
        (e.message, String::new())
    } else {
        (String::new(), e.message)
    };
    let page = WorkflowPage {
        chrome,
        view,
        input: form.input,
        execution_name: form.name,
        input_error,
        start_error,
    };
    (status, render(&page)).into_response()
}

/// The Stop form: an optional error and cause, as the API's body has.
#[derive(Deserialize, Default)]
pub(super) struct StopForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    cause: String,
}

/// `POST /executions/{id}/stop`: stop a running execution as
/// `POST /v1/executions/{id}/stop` does, then back to its page (303).
pub(super) async fn stop(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<StopForm>,
) -> Response {
    let path = format!("/executions/{id}/stop");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let optional = |text: &str| Some(text.trim().to_string()).filter(|t| !t.is_empty());
    let principal = &signed_in.principal;
    let stopped = async {
        let params = HashMap::from([("id".to_string(), id.clone())]);
        gate(
            &state,
            principal,
            "POST",
            "/v1/executions/{id}/stop",
            &params,
        )
        .await?;
        state
            .executions()
            .stop(&id, optional(&form.error), optional(&form.cause))
            .await
    }
    .await;
    let outcome = audited(&state, principal, &path, stopped).await;
    back_to_execution(&signed_in, &id, outcome.map(drop))
}

/// `POST /executions/{id}/redrive`: run a failed, timed-out or aborted
/// execution again from where it stopped, as
/// `POST /v1/executions/{id}/redrive` does, then back to its page (303).
pub(super) async fn redrive(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = format!("/executions/{id}/redrive");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let redriven = async {
        let params = HashMap::from([("id".to_string(), id.clone())]);
        let route = "/v1/executions/{id}/redrive";
        gate(&state, principal, "POST", route, &params).await?;
        state.executions().redrive(&id).await
    }
    .await;
    let outcome = audited(&state, principal, &path, redriven).await;
    back_to_execution(&signed_in, &id, outcome.map(drop))
}

/// After an action on execution `id`: its page (303), or the error page.
fn back_to_execution(signed_in: &SignedIn, id: &str, outcome: ServiceResult<()>) -> Response {
    match outcome {
        Ok(()) => Redirect::to(&format!("/executions/{id}")).into_response(),
        Err(e) => service_error_page(
            signed_in.chrome(&format!("Execution {id}"), "/executions"),
            e,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_version_is_the_latest_unless_one_in_range_is_named() {
        assert_eq!(chosen_version("", 3).unwrap(), 3);
        assert_eq!(chosen_version(" 2 ", 3).unwrap(), 2);
        for bad in ["0", "4", "-1", "two"] {
            let e = chosen_version(bad, 3).unwrap_err();
            assert_eq!(e.kind, ErrorKind::NotFound, "{bad}");
            assert!(e.message.contains("1 to 3"), "{}", e.message);
        }
    }

    #[test]
    fn a_blank_input_is_an_empty_object_and_bad_json_names_line_and_column() {
        assert_eq!(parse_input("  ").unwrap(), serde_json::json!({}));
        assert_eq!(
            parse_input(r#"{"a": 1}"#).unwrap(),
            serde_json::json!({"a": 1})
        );
        let message = parse_input("{\n  \"a\": }").unwrap_err();
        assert!(message.contains("line 2 column"), "{message}");
    }

    #[test]
    fn the_description_is_the_definitions_comment() {
        let definition = serde_json::json!({"Comment": "restart web", "StartAt": "A"});
        assert_eq!(description_of(&definition), "restart web");
        assert_eq!(description_of(&serde_json::json!({"StartAt": "A"})), "");
    }
}
