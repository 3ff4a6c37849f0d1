//! Run Command in the console: the form, the run page, its live feed and
//! cancel.
//!
//! Everything goes through `CommandService` with the signed-in principal,
//! exactly as `POST /v1/commands` does (same target grammar, same per-node
//! `commands:Run` checks, same audit record), and the run page, its event
//! stream and cancel are gated as their API twins are (`commands:Get`,
//! `commands:Cancel` on the command). The live feed is the API stream's own
//! ([`crate::commands::http::live_feed`]); `assets/console/run.js` turns it
//! into output lines, and without JavaScript the page shows what the store
//! holds, with a Refresh link.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use operon_proto::InvocationStatus;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::session::{CsrfForm, SignedIn, check_csrf};
use super::{Chrome, audited, gate, render, service_error_page, status_of};
use crate::AppState;
use crate::commands::service::{CommandView, target_error};
use crate::commands::{CommandId, NewCommand, Requester, TargetSpec};
use crate::documents::{DocumentVersion, RUN_SHELL_SCRIPT};
use crate::service::ServiceError;

/// The run form as the browser sends it: every field text, so a bad value
/// is shown beside its field rather than refused by the extractor.
#[derive(Deserialize, Default, Clone)]
pub(super) struct RunForm {
    #[serde(default)]
    csrf: String,
    /// `KEY=VALUE` tags and node names, separated by spaces, commas or lines.
    #[serde(default)]
    targets: String,
    #[serde(default)]
    document: String,
    /// Shell lines, for `AWS-RunShellScript` (its `commands` parameter).
    #[serde(default)]
    commands: String,
    /// Other parameters, as a JSON object.
    #[serde(default)]
    parameters: String,
    #[serde(default)]
    max_concurrency: String,
    #[serde(default)]
    max_errors: String,
    #[serde(default)]
    timeout_secs: String,
}

/// Why a run was not created: messages beside fields, or for the form.
#[derive(Default)]
struct FormErrors {
    fields: BTreeMap<&'static str, String>,
    form: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "console/run.html")]
struct RunPage {
    chrome: Chrome,
    form: RunForm,
    errors: FormErrors,
}

impl RunPage {
    /// The message beside field `name`, if any.
    fn error(&self, name: &str) -> &str {
        self.errors.fields.get(name).map_or("", String::as_str)
    }
}

/// `GET /run`: the empty form, with the defaults filled in.
pub(super) async fn run_form(signed_in: SignedIn) -> Response {
    let form = RunForm {
        document: RUN_SHELL_SCRIPT.into(),
        max_concurrency: "50".into(),
        max_errors: "0".into(),
        timeout_secs: "3600".into(),
        ..RunForm::default()
    };
    render(&RunPage {
        chrome: signed_in.chrome("Run command", "/run"),
        form,
        errors: FormErrors::default(),
    })
}

/// `POST /run`: create the command as `POST /v1/commands` would, then go
/// to its page (303); a bad field or a refusal re-renders the form.
pub(super) async fn run(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<RunForm>,
) -> Response {
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, "/run").await {
        return refused;
    }
    let new = match new_command(&form) {
        Ok(new) => new,
        Err(errors) => return form_again(&signed_in, form, errors, StatusCode::BAD_REQUEST),
    };
    let principal = &signed_in.principal;
    let created = state
        .commands()
        .create(CommandId::Fresh, new, Requester::Principal(principal))
        .await;
    // The notes go into the audit record, as the API's handler's do.
    let created = created.inspect(|created| {
        principal.note("command_id", created.command.id.clone());
        principal.note("targets", created.targets.clone());
        if !created.refused.is_empty() {
            principal.note("refused", json!(created.refused));
        }
    });
    match audited(&state, principal, "/run", created).await {
        Ok(created) => Redirect::to(&format!("/commands/{}", created.command.id)).into_response(),
        Err(e) => {
            let status = status_of(&e);
            form_again(&signed_in, form, errors_of(e), status)
        }
    }
}

fn form_again(
    signed_in: &SignedIn,
    form: RunForm,
    errors: FormErrors,
    status: StatusCode,
) -> Response {
    let page = RunPage {
        chrome: signed_in.chrome("Run command", "/run"),
        form,
        errors,
    };
    (status, render(&page)).into_response()
}

/// The command the form asks for, or what is wrong with its fields.
fn new_command(form: &RunForm) -> Result<NewCommand, FormErrors> {
    let mut errors = FormErrors::default();
    let targets = parse_targets(&form.targets).unwrap_or_else(|e| {
        errors.fields.insert("targets", e);
        TargetSpec::default()
    });
    let parameters = parse_parameters(form).unwrap_or_else(|e| {
        errors.fields.insert("parameters", e);
        Map::new()
    });
    let timeout_secs = match form.timeout_secs.trim() {
        "" => None,
        text => text.parse::<i64>().map(Some).unwrap_or_else(|_| {
            let message = format!("a whole number of seconds, not {text:?}");
            errors.fields.insert("timeout_secs", message);
            None
        }),
    };
    if !errors.fields.is_empty() {
        return Err(errors);
    }
    let optional = |text: &str| Some(text.trim().to_string()).filter(|t| !t.is_empty());
    let document = optional(&form.document);
    // What the requester sent, kept with the command as the API keeps its body.
    let request = json!({
        "console": true,
        "targets": form.targets.trim(),
        "document": document,
        "parameters": parameters,
    });
    Ok(NewCommand {
        document,
        document_version: DocumentVersion::Default,
        parameters,
        targets,
        max_concurrency: optional(&form.max_concurrency),
        max_errors: optional(&form.max_errors),
        timeout_secs,
        request,
        ..NewCommand::default()
    })
}

/// Targets as people type them: `KEY=VALUE` is a tag (all given must
/// hold), anything else a node name or id.
fn parse_targets(text: &str) -> Result<TargetSpec, String> {
    let mut nodes = Vec::new();
    let mut filters = Vec::new();
    for word in text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
    {
        if word.contains('=') {
            filters.push(Value::String(format!("tag:{word}")));
        } else {
            nodes.push(word.to_string());
        }
    }
    TargetSpec::parse(&nodes, &filters, "targets").map_err(|e| target_error(e).message)
}

/// The document's parameters: the JSON object given, with the shell lines
/// as `commands` when there are any.
fn parse_parameters(form: &RunForm) -> Result<Map<String, Value>, String> {
    let mut parameters = match form.parameters.trim() {
        "" => Map::new(),
        text => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("a JSON object, like {\"name\": \"value\"}".into()),
            Err(e) => return Err(format!("not JSON: {e}")),
        },
    };
    let lines: Vec<Value> = form
        .commands
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(|l| Value::String(l.to_string()))
        .collect();
    if !lines.is_empty() {
        parameters.insert("commands".into(), Value::Array(lines));
    }
    Ok(parameters)
}

/// A service's refusal of a run, beside the field it is about.
fn errors_of(e: ServiceError) -> FormErrors {
    let field = match e.code {
        "UnknownNode" | "RevokedNode" | "NoMatchingNodes" | "InvalidTargets" => Some("targets"),
        "NoSuchDocument" | "NoSuchDocumentVersion" | "InvalidDocument" | "NotRunnable" => {
            Some("document")
        }
        "InvalidParameters" => Some("parameters"),
        "InvalidLimit" if e.message.starts_with("max_concurrency") => Some("max_concurrency"),
        "InvalidLimit" if e.message.starts_with("max_errors") => Some("max_errors"),
        "InvalidLimit" if e.message.starts_with("timeout_secs") => Some("timeout_secs"),
        _ => None,
    };
    let mut errors = FormErrors::default();
    match field {
        Some(field) => {
            errors.fields.insert(field, e.message);
        }
        None => errors.form = Some(e.message),
    }
    errors
}

/// One node of a run, as stored.
struct NodeSection {
    node_id: String,
    node_name: String,
    status: &'static str,
    final_status: bool,
    detail: String,
    exit_code: String,
    stdout: String,
    stderr: String,
    truncated: bool,
}

/// A node the run was not sent to, and why.
struct RefusedNode {
    node: String,
    reason: String,
}

#[derive(askama::Template)]
#[template(path = "console/command.html")]
struct CommandPage {
    chrome: Chrome,
    id: String,
    status: &'static str,
    running: bool,
    cancel_requested: bool,
    document: String,
    targets: String,
    requested_by: String,
    created: String,
    finished: String,
    /// How many nodes are in each status, in the statuses' order.
    counts: Vec<(&'static str, usize)>,
    nodes: Vec<NodeSection>,
    refused: Vec<RefusedNode>,
}

/// The path parameters of a command route, for [`gate`].
fn command_params(id: &str) -> HashMap<String, String> {
    HashMap::from([("id".to_string(), id.to_string())])
}

/// `GET /commands/{id}`: the run page. Allowed as `GET /v1/commands/{id}`
/// is (`commands:Get` on the command).
pub(super) async fn command(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Command {id}"), "/commands");
    let shown = async {
        let params = command_params(&id);
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/commands/{id}",
            &params,
        )
        .await?;
        let commands = state.commands();
        commands.view(commands.get(&id).await?).await
    };
    match shown.await {
        Ok(view) => render(&command_page(chrome, view)),
        Err(e) => service_error_page(chrome, e),
    }
}

fn command_page(chrome: Chrome, view: CommandView) -> CommandPage {
    let c = view.command;
    let counts = InvocationStatus::ALL
        .into_iter()
        .map(|s| {
            (
                s.as_str(),
                view.invocations.iter().filter(|i| i.status == s).count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let refused = c
        .request
        .get("refused")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(refused_node).collect())
        .unwrap_or_default();
    let nodes = view
        .invocations
        .into_iter()
        .map(|i| NodeSection {
            final_status: i.status.is_final(),
            status: i.status.as_str(),
            detail: i.status_detail.unwrap_or_default(),
            exit_code: i.exit_code.map_or_else(String::new, |c| c.to_string()),
            truncated: i.stdout_truncated || i.stderr_truncated,
            stdout: i.stdout,
            stderr: i.stderr,
            node_id: i.node_id,
            node_name: i.node_name,
        })
        .collect();
    CommandPage {
        chrome,
        status: c.status.as_str(),
        running: !c.status.is_final(),
        cancel_requested: c.cancel_requested,
        document: format!("{} v{}", c.document_name, c.document_version),
        targets: targets_text(&c.request),
        requested_by: c.requested_by,
        created: super::pages::time_text(c.created_at),
        finished: c
            .finished_at
            .map_or_else(String::new, super::pages::time_text),
        counts,
        nodes,
        refused,
        id: c.id,
    }
}

fn refused_node(entry: &Value) -> RefusedNode {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
    RefusedNode {
        node: text("node").to_string(),
        reason: text("reason").to_string(),
    }
}

/// The targets as requested: the console's text, or the API's fields.
fn targets_text(request: &Value) -> String {
    if request.get("console").is_some() {
        return request["targets"].as_str().unwrap_or_default().to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    for key in ["node_ids", "targets"] {
        if let Some(list) = request.get(key).and_then(Value::as_array) {
            parts.extend(list.iter().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }));
        }
    }
    parts.join(" ")
}

/// `GET /commands/{id}/events`: the live feed of the API's
/// `GET /v1/commands/{id}/stream`, allowed as it is (`commands:Get`).
pub(super) async fn events(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let found = async {
        let params = command_params(&id);
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/commands/{id}/stream",
            &params,
        )
        .await?;
        state.commands().get(&id).await
    };
    match found.await {
        Ok(command) => crate::commands::http::live_feed(&state, &command).into_response(),
        Err(e) => service_error_page(signed_in.chrome("Command", "/commands"), e),
    }
}

/// `POST /commands/{id}/cancel`: as `POST /v1/commands/{id}/cancel`
/// (`commands:Cancel` on the command), then back to the run page.
pub(super) async fn cancel(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = format!("/commands/{id}/cancel");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let cancelled = async {
        let params = command_params(&id);
        gate(
            &state,
            principal,
            "POST",
            "/v1/commands/{id}/cancel",
            &params,
        )
        .await?;
        state.commands().cancel(&id).await
    };
    match audited(&state, principal, &path, cancelled.await).await {
        Ok(()) => Redirect::to(&format!("/commands/{id}")).into_response(),
        Err(e) => service_error_page(signed_in.chrome("Command", "/commands"), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_tags_with_an_equals_sign_and_node_names_otherwise() {
        let spec = parse_targets("env=prod, web-1\n db-2").unwrap();
        assert_eq!(spec.describe(), "web-1 db-2 tag:env=prod");
        assert!(parse_targets("  ").is_err(), "no target at all");
    }

    #[test]
    fn shell_lines_become_the_commands_parameter_beside_json_ones() {
        let form = RunForm {
            commands: "echo a\n\n  echo b  \n".into(),
            parameters: r#"{"workingDirectory": "/tmp"}"#.into(),
            ..RunForm::default()
        };
        let parameters = parse_parameters(&form).unwrap();
        assert_eq!(parameters["commands"], json!(["echo a", "  echo b"]));
        assert_eq!(parameters["workingDirectory"], "/tmp");
        let bad = RunForm {
            parameters: "[1]".into(),
            ..RunForm::default()
        };
        assert!(parse_parameters(&bad).is_err());
    }

    #[test]
    fn a_bad_timeout_is_reported_beside_its_field() {
        let form = RunForm {
            targets: "web-1".into(),
            timeout_secs: "soon".into(),
            ..RunForm::default()
        };
        let errors = new_command(&form).err().unwrap();
        assert!(errors.fields["timeout_secs"].contains("soon"));
    }
}
