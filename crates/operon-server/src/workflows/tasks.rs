//! Task resources an Operon runbook can call, and their performers.
//!
//! | resource | does |
//! |---|---|
//! | `operon:runCommand` | a Run Command in the shape of SSM SendCommand; returns the command id, or with `.sync` the per-node results |
//! | `operon:http` | an HTTP request under the egress policy; non-2xx or no answer fails with `Operon.HttpError`, a refused destination with `Operon.AccessDenied`, a body over 1 MiB with `Operon.HttpResponseTooLarge` |
//! | `operon:startExecution` | a child execution; `.sync` waits for it |
//! | `operon:approval` | a pending approval answered by `operon approvals approve/reject` |
//! | `operon:publishEvent` | puts an event on a bus (`Source`, `DetailType`, `Detail`, `EventBusName`, `Resources`) |
//! | `operon:getParameters` | reads parameters (`Names`, or `Path` with `Recursive`; `WithDecryption`) as GetParameters answers; a SecureString's value never enters the execution: with `WithDecryption` it is a reference pinned to its version (`{{ssm-secure:/db/pw:3}}`) that a later `runCommand` resolves when it sends the command |
//!
//! `.waitForTaskToken` on any of them performs the request and then waits for
//! `operon tasks send-success|send-failure TOKEN`.
//!
//! Performers run after the step that scheduled them is committed, and again
//! for every pending task after a restart. They are idempotent by the task
//! token: a command's id and a child execution's name are derived from it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use operon_asl::Event;
use operon_proto::InvocationStatus;
use operon_store::{Approval, Command, Invocation, WorkflowTask};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Msg, RUNNING};
use crate::AppState;
use crate::access::{Principal, check_action};
use crate::commands::targets::TargetError;
use crate::commands::{CommandId, NewCommand, Requester, TargetSpec};
use crate::coordination::Topic;
use crate::documents::DocumentVersion;
use crate::egress::client::{OutboundError, read_capped};
use crate::runas::RunAs;
use crate::service::{ErrorKind, ServiceError};

/// The largest `operon:http` response body read; larger fails with
/// `Operon.HttpResponseTooLarge`.
pub const HTTP_RESPONSE_CAP: usize = 1024 * 1024;

/// Bytes of stdout and of stderr per node kept in a `.sync` result.
pub const SYNC_OUTPUT_CAP: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    RunCommand,
    Http,
    StartExecution,
    Approval,
    PublishEvent,
    GetParameters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Return as soon as the request is made.
    Plain,
    /// Wait for the work to finish (`.sync`).
    Sync,
    /// Wait for a task token callback (`.waitForTaskToken`).
    WaitForToken,
}

type Failure = (&'static str, String);

pub fn classify(resource: &str) -> Result<(Base, Mode), Failure> {
    let unknown = || {
        (
            "Operon.UnknownResource",
            format!(
                "unknown task resource {resource:?}; known: operon:runCommand, operon:http, \
                 operon:startExecution, operon:approval, operon:publishEvent, \
                 operon:getParameters (with .sync or .waitForTaskToken)"
            ),
        )
    };
    let rest = resource.strip_prefix("operon:").ok_or_else(unknown)?;
    let (base, mode) = match rest.split_once('.') {
        None => (rest, Mode::Plain),
        Some((b, "sync")) => (b, Mode::Sync),
        Some((b, "waitForTaskToken")) => (b, Mode::WaitForToken),
        Some(_) => return Err(unknown()),
    };
    let base = match base {
        "runCommand" => Base::RunCommand,
        "http" => Base::Http,
        "startExecution" => Base::StartExecution,
        "approval" => Base::Approval,
        "publishEvent" => Base::PublishEvent,
        "getParameters" => Base::GetParameters,
        _ => return Err(unknown()),
    };
    if base == Base::GetParameters && mode != Mode::Plain {
        return Err((
            "Operon.UnknownResource",
            format!(
                "{resource:?}: getParameters answers at once; it has no .sync or .waitForTaskToken"
            ),
        ));
    }
    if mode == Mode::Sync && !matches!(base, Base::RunCommand | Base::StartExecution) {
        return Err((
            "Operon.UnknownResource",
            format!("{resource:?}: .sync exists for runCommand and startExecution only"),
        ));
    }
    Ok((base, mode))
}

/// Whether something must run for the task (approvals only wait).
pub fn needs_performer(resource: &str) -> bool {
    matches!(classify(resource), Ok((b, _)) if b != Base::Approval)
}

/// The idempotency key of a task: a hash of its token (tokens are unique
/// across executions), short enough for command ids and execution names.
pub fn idempotency_key(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..12])
}

/// The pending approval an `operon:approval` task creates.
pub fn approval_for(task: &WorkflowTask) -> Result<Approval, Failure> {
    let invalid = |m: String| ("Operon.InvalidParameters", m);
    let input = task.input.as_object().cloned().unwrap_or_default();
    let message = match input.get("Message") {
        None => format!(
            "Approve state {} of execution {}",
            task.state, task.execution_id
        ),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(format!(
                "approval Message must be a string, got {other}"
            )));
        }
    };
    let approvers = match input.get("Approvers") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("approval Approvers must be a list of strings".into()))?,
        Some(other) => {
            return Err(invalid(format!(
                "approval Approvers must be a list, got {other}"
            )));
        }
    };
    Ok(Approval {
        id: format!("ap-{}", &task.idempotency_key[..16]),
        execution_id: task.execution_id.clone(),
        token: task.token.clone(),
        state: task.state.clone(),
        message,
        approvers,
        status: "Pending".into(),
        decided_by: None,
        comment: None,
        created_at: task.created_at,
        decided_at: None,
    })
}

/// Run a task in the background and feed its outcome to the runner.
pub fn perform(state: Arc<AppState>, task: WorkflowTask) {
    tokio::spawn(async move {
        let Ok((base, mode)) = classify(&task.resource) else {
            return;
        };
        let outcome = match base {
            Base::RunCommand => run_command(&state, &task, mode).await,
            Base::Http => http(&state, &task).await,
            Base::StartExecution => start_execution(&state, &task, mode).await,
            Base::PublishEvent => publish_event(&state, &task).await,
            Base::GetParameters => get_parameters(&state, &task).await,
            Base::Approval => return,
        };
        let event = match outcome {
            Ok(_) if mode == Mode::WaitForToken => return,
            Ok(output) => Event::TaskSucceeded {
                token: task.token.clone(),
                output,
            },
            Err((error, cause)) => Event::TaskFailed {
                token: task.token.clone(),
                error: Some(error.into()),
                cause: Some(cause),
            },
        };
        let msg = Msg::Event {
            execution_id: task.execution_id.clone(),
            event,
            decision: None,
            reply: None,
        };
        let _ = state.workflows.tx.send(msg).await;
    });
}

// ----- operon:publishEvent -------------------------------------------------------

/// Put one event on a bus, EventBridge PutEvents-entry shaped. The event id
/// is derived from the task token, so a repeat after a crash carries the
/// same id and receivers can deduplicate.
async fn publish_event(state: &AppState, task: &WorkflowTask) -> Result<Value, Failure> {
    let invalid = |m: String| ("Operon.InvalidParameters", m);
    let input = task.input.as_object().cloned().unwrap_or_default();
    let text = |key: &str| -> Result<Option<String>, Failure> {
        match input.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(format!(
                "publishEvent {key} must be a string, got {other}"
            ))),
        }
    };
    let detail = match input.get("Detail") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let resources = match input.get("Resources") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("publishEvent Resources must be a list of strings".into()))?,
        Some(other) => {
            return Err(invalid(format!(
                "publishEvent Resources must be a list, got {other}"
            )));
        }
    };
    let entry = crate::events::envelope::PutEntry {
        source: text("Source")?,
        detail_type: text("DetailType")?,
        detail,
        resources,
        time: None,
        event_bus_name: text("EventBusName")?,
    };
    let mut envelope = crate::events::envelope::check_source_not_reserved(&entry)
        .and_then(|()| crate::events::envelope::envelope(&entry, crate::now_millis()))
        .map_err(|e| invalid(format!("publishEvent: {}: {}", e.code, e.message)))?;
    let actor = execution_actor(state, task).await?;
    allow(
        state,
        &actor,
        "events:Put",
        &format!("bus/{}", envelope.bus),
    )
    .await?;
    let id = crate::events::envelope::derived_event_id(&format!("event:{}", task.token));
    envelope.id = id.clone();
    if let Some(map) = envelope.value.as_object_mut() {
        map.insert("id".into(), Value::String(id.clone()));
    }
    crate::events::accept(state, vec![envelope])
        .await
        .map_err(|e| ("Operon.PublishFailed", e.message))?;
    Ok(json!({"EventId": id}))
}

// ----- operon:getParameters -------------------------------------------------------

/// The most parameters a `Path` read returns (all pages).
const MAX_PATH_PARAMETERS: usize = 500;

/// Read parameters as the execution's actor. `Names` (1 to 10, with
/// `:version` / `:label`) answers `Parameters` and `InvalidParameters`;
/// `Path` (with `Recursive`) answers `Parameters`. SecureStrings: without
/// `WithDecryption` no value; with it (and `params:GetDecrypted` now) a
/// reference pinned to the version, resolved only when a command carrying
/// it is sent, so no secret is written to the execution's history.
async fn get_parameters(state: &AppState, task: &WorkflowTask) -> Result<Value, Failure> {
    let invalid = |m: String| ("Operon.InvalidParameters", m);
    let input = task.input.as_object().cloned().unwrap_or_default();
    let decrypt = match input.get("WithDecryption") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(format!(
                "getParameters WithDecryption must be a boolean, got {other}"
            )));
        }
    };
    let actor = execution_actor(state, task).await?;
    let denied = |e: crate::service::ServiceError| match e.kind {
        crate::service::ErrorKind::Forbidden => ("Operon.AccessDenied", e.message),
        crate::service::ErrorKind::Internal | crate::service::ErrorKind::Unavailable => {
            ("Operon.InternalError", e.message)
        }
        _ => ("Operon.InvalidParameters", e.message),
    };
    let params = state.params();
    let (views, invalid_names) = match (input.get("Names"), input.get("Path")) {
        (Some(Value::Array(names)), None) => {
            let names: Vec<String> = names
                .iter()
                .map(|n| n.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("getParameters Names must be a list of strings".into()))?;
            if names.is_empty() || names.len() > 10 {
                return Err(invalid(format!(
                    "getParameters takes 1 to 10 Names, got {}",
                    names.len()
                )));
            }
            let (found, missing) = params
                .get_many(&actor, &names, false)
                .await
                .map_err(denied)?;
            (found, Some(missing))
        }
        (None, Some(Value::String(path))) => {
            let recursive = matches!(input.get("Recursive"), Some(Value::Bool(true)));
            let mut all = Vec::new();
            let mut token = None;
            loop {
                let page = params
                    .get_by_path(
                        &actor,
                        &crate::params::service::PathRead {
                            path,
                            recursive,
                            filters: &[],
                            decrypt: false,
                            max_results: Some(10),
                            token: token.as_deref(),
                        },
                    )
                    .await
                    .map_err(denied)?;
                all.extend(page.items);
                if all.len() > MAX_PATH_PARAMETERS {
                    return Err(invalid(format!(
                        "getParameters: more than {MAX_PATH_PARAMETERS} parameters under {path}; read a narrower path"
                    )));
                }
                match page.next_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
            (all, None)
        }
        _ => {
            return Err(invalid(
                "getParameters takes Names (a list) or Path (a string)".into(),
            ));
        }
    };
    let mut parameters = Vec::with_capacity(views.len());
    for view in views {
        let value = if view.is_secure() {
            if !decrypt {
                None
            } else {
                allow(
                    state,
                    &actor,
                    "params:GetDecrypted",
                    &crate::params::service::resource(&view.name),
                )
                .await?;
                Some(format!("{{{{ssm-secure:{}:{}}}}}", view.name, view.version))
            }
        } else {
            view.value.clone()
        };
        let mut entry = json!({
            "Name": view.name,
            "Type": view.param_type,
            "Version": view.version,
            "LastModifiedDate": crate::events::envelope::rfc3339(view.modified_at),
            "DataType": view.data_type,
        });
        if let Some(value) = value {
            entry["Value"] = Value::String(value);
        }
        if let Some(selector) = &view.selector {
            entry["Selector"] = Value::String(selector.clone());
        }
        parameters.push(entry);
    }
    let mut output = json!({"Parameters": parameters});
    if let Some(missing) = invalid_names {
        output["InvalidParameters"] = json!(missing);
    }
    Ok(output)
}

// ----- operon:runCommand ---------------------------------------------------------

/// The id of the command a `runCommand` task creates: derived from its token.
fn command_id(idempotency_key: &str) -> String {
    CommandId::Task(idempotency_key.to_string()).resolve()
}

/// A stopped execution's commands are cancelled too (as `operon commands
/// cancel` does): tasks it abandoned may have started one.
pub async fn cancel_commands(state: Arc<AppState>, tokens: Vec<String>) {
    for token in tokens {
        let id = command_id(&idempotency_key(&token));
        match state.commands().cancel(&id).await {
            Ok(()) => {
                tracing::info!(command_id = %id, "cancelled the command of a stopped execution")
            }
            // Never created, or already finished: nothing to stop.
            Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Conflict) => {}
            Err(e) => {
                tracing::error!(command_id = %id, error = %e, "cancelling a stopped execution's command")
            }
        }
    }
}

async fn run_command(state: &AppState, task: &WorkflowTask, mode: Mode) -> Result<Value, Failure> {
    let command = create_command(state, task).await?;
    let command_id = command.id.clone();
    if mode != Mode::Sync {
        return Ok(json!({
            "CommandId": command.id,
            "DocumentName": command.document_name,
            "Status": command.status.as_str(),
        }));
    }
    let command = wait_for_command(state, &command_id).await?;
    let invocations = state
        .store
        .invocations(&command.id)
        .await
        .map_err(internal)?;
    let result = sync_result(&command, &invocations);
    let error = match command.status {
        InvocationStatus::Success => return Ok(result),
        InvocationStatus::TimedOut => "Operon.CommandTimedOut",
        InvocationStatus::Cancelled => "Operon.CommandCancelled",
        InvocationStatus::Undeliverable => "Operon.CommandUndeliverable",
        _ => "Operon.CommandFailed",
    };
    Err((error, result.to_string()))
}

async fn wait_for_command(state: &AppState, id: &str) -> Result<Command, Failure> {
    // Subscribed before each read: a status set after the read wakes it.
    let mut done = state.coordination.subscribe(Topic::CommandStatus);
    loop {
        let command = state
            .store
            .command(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| ("Operon.CommandFailed", format!("command {id} disappeared")))?;
        if command.status.is_final() {
            return Ok(command);
        }
        tokio::select! {
            _ = done.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

fn sync_result(command: &Command, invocations: &[Invocation]) -> Value {
    let nodes: Vec<Value> = invocations
        .iter()
        .map(|i| {
            let (stdout, stdout_cut) = cap(&i.stdout);
            let (stderr, stderr_cut) = cap(&i.stderr);
            json!({
                "NodeId": i.node_id,
                "NodeName": i.node_name,
                "Status": i.status.as_str(),
                "StatusDetail": i.status_detail,
                "ExitCode": i.exit_code,
                "Stdout": stdout,
                "Stderr": stderr,
                "StdoutTruncated": stdout_cut || i.stdout_truncated,
                "StderrTruncated": stderr_cut || i.stderr_truncated,
            })
        })
        .collect();
    json!({
        "CommandId": command.id,
        "DocumentName": command.document_name,
        "Status": command.status.as_str(),
        "Invocations": nodes,
    })
}

fn cap(text: &str) -> (&str, bool) {
    if text.len() <= SYNC_OUTPUT_CAP {
        return (text, false);
    }
    let mut end = SYNC_OUTPUT_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// Build and persist the command an `operon:runCommand` task asks for, with
/// the id derived from the task token (a re-performed task finds it).
async fn create_command(state: &AppState, task: &WorkflowTask) -> Result<Command, Failure> {
    let invalid = |m: String| ("Operon.InvalidParameters", m);
    let input = task.input.as_object().ok_or_else(|| {
        invalid(format!(
            "runCommand input must be an object, got {}",
            task.input
        ))
    })?;
    let document = match input.get("DocumentName") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(invalid(format!(
                "DocumentName must be a string, got {other}"
            )));
        }
    };
    let document_version = match input.get("DocumentVersion") {
        None => DocumentVersion::Default,
        Some(v) => {
            DocumentVersion::from_json(v).map_err(|e| invalid(format!("DocumentVersion: {e}")))?
        }
    };
    let parameters = match input.get("Parameters") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(invalid(format!(
                "Parameters must be an object, got {other}"
            )));
        }
    };
    let limit = |field: &str| -> Result<Option<String>, Failure> {
        match input.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(invalid(format!("{field} must be a string, got {other}"))),
        }
    };
    let timeout_secs = match input.get("TimeoutSeconds") {
        None => 3600,
        Some(v) => v.as_i64().filter(|n| *n >= 1).ok_or_else(|| {
            invalid(format!(
                "TimeoutSeconds must be a positive integer, got {v}"
            ))
        })?,
    };
    let (actor, causation) = execution_actor_and_causation(state, task).await?;
    let new = NewCommand {
        document,
        document_version,
        parameters,
        targets: target_spec(input)?,
        max_concurrency: limit("MaxConcurrency")?,
        max_errors: limit("MaxErrors")?,
        timeout_secs: Some(timeout_secs),
        delivery_timeout_secs: Some(timeout_secs),
        request: json!({"workflowTask": task.token, "executionId": task.execution_id,
            "input": task.input, "causation": causation}),
        ..Default::default()
    };
    let actor = Requester::Actor(actor);
    let created = state
        .commands()
        .create(CommandId::Task(task.idempotency_key.clone()), new, actor)
        .await
        .map_err(command_failure)?;
    Ok(created.command)
}

/// A refusal of the commands service in the runbook's error names.
fn command_failure(e: ServiceError) -> Failure {
    let name = match (e.kind, e.code) {
        (_, "UnknownNode" | "NoMatchingNodes") => "Operon.NoTargets",
        (ErrorKind::Forbidden, _) => "Operon.AccessDenied",
        (ErrorKind::Internal | ErrorKind::Unavailable, _) => "Operon.InternalError",
        _ => "Operon.InvalidParameters",
    };
    (name, e.message)
}

/// `InstanceIds` (ids or names) plus nodes matching every `Targets` entry
/// (`{"Key": "tag:role", "Values": ["web", "api"]}`: values are alternatives,
/// entries must all hold, as in SSM), in the commands service's one grammar.
fn target_spec(input: &Map<String, Value>) -> Result<TargetSpec, Failure> {
    let invalid = |m: String| ("Operon.InvalidParameters", m);
    let ids: Vec<String> = match input.get("InstanceIds") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect())
            .ok_or_else(|| invalid(format!("InstanceIds must be a list of strings, got {v}")))?,
    };
    let targets: &[Value] = match input.get("Targets") {
        None => &[],
        Some(Value::Array(list)) => list,
        Some(other) => return Err(invalid(format!("Targets must be a list, got {other}"))),
    };
    TargetSpec::parse(&ids, targets, "Targets").map_err(|e| match e {
        TargetError::Empty => invalid("runCommand needs InstanceIds or Targets".into()),
        other => invalid(other.to_string()),
    })
}

// ----- operon:http -----------------------------------------------------------------

async fn http(state: &AppState, task: &WorkflowTask) -> Result<Value, Failure> {
    let invalid = |m: String| ("Operon.InvalidParameters", m);
    let input = task
        .input
        .as_object()
        .ok_or_else(|| invalid(format!("http input must be an object, got {}", task.input)))?;
    let url = input
        .get("Url")
        .or_else(|| input.get("ApiEndpoint"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("http needs a Url (string)".into()))?;
    let actor = execution_actor(state, task).await?;
    allow(
        state,
        &actor,
        "http:Invoke",
        &crate::runas::host_resource(url),
    )
    .await?;
    let method = input.get("Method").and_then(Value::as_str).unwrap_or("GET");
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| invalid(format!("invalid HTTP Method {method:?}")))?;
    let timeout = input
        .get("TimeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(30)
        .clamp(1, 3600);
    let mut request = state
        .workflows
        .http
        .request(method, url)
        .timeout(Duration::from_secs(timeout))
        .header("Idempotency-Key", &task.idempotency_key);
    if let Some(headers) = input.get("Headers") {
        let headers = headers
            .as_object()
            .ok_or_else(|| invalid("Headers must be an object of strings".into()))?;
        for (name, value) in headers {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            request = request.header(name.as_str(), value);
        }
    }
    match input.get("Body").or_else(|| input.get("RequestBody")) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => request = request.body(s.clone()),
        Some(other) => {
            request = request
                .header("content-type", "application/json")
                .body(other.to_string())
        }
    }
    let response = state
        .workflows
        .http
        .send(request)
        .await
        .map_err(http_failure)?;
    let status = response.status();
    let headers: Map<String, Value> = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), Value::String(v.to_str().ok()?.to_string()))))
        .collect();
    let host = response.url().host_str().unwrap_or_default().to_string();
    let bytes = read_capped(response, &host, HTTP_RESPONSE_CAP)
        .await
        .map_err(http_failure)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    let result = json!({"StatusCode": status.as_u16(), "Headers": headers, "ResponseBody": body});
    if status.is_success() {
        Ok(result)
    } else {
        Err(("Operon.HttpError", result.to_string()))
    }
}

/// A failed `operon:http` request in the runbook's error names. The texts
/// are the same whatever went wrong on the way (see [`crate::egress`]).
fn http_failure(e: OutboundError) -> Failure {
    let name = match e {
        OutboundError::Refused(_) => "Operon.AccessDenied",
        OutboundError::TooLarge { .. } => "Operon.HttpResponseTooLarge",
        OutboundError::Invalid(_) => "Operon.InvalidParameters",
        OutboundError::Unreachable { .. } | OutboundError::Read { .. } => "Operon.HttpError",
    };
    (name, e.to_string())
}

// ----- operon:startExecution ----------------------------------------------------

async fn start_execution(
    state: &Arc<AppState>,
    task: &WorkflowTask,
    mode: Mode,
) -> Result<Value, Failure> {
    let invalid = |m: String| ("Operon.InvalidParameters", m);
    let input = task.input.as_object().cloned().unwrap_or_default();
    let workflow = input
        .get("StateMachine")
        .or_else(|| input.get("Workflow"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("startExecution needs StateMachine (a workflow name)".into()))?;
    let child_input = input.get("Input").cloned().unwrap_or_else(|| json!({}));
    let name = match input.get("Name") {
        Some(Value::String(s)) => s.clone(),
        _ => format!("child-{}", &task.idempotency_key[..20]),
    };
    let (actor, causation) = execution_actor_and_causation(state, task).await?;
    allow(
        state,
        &actor,
        "workflows:Start",
        &format!("workflow/{workflow}"),
    )
    .await?;
    let started = super::start_with_parent(
        state,
        workflow,
        child_input,
        Some(name),
        super::StartedBy::Actor(&actor.name, &causation),
        Some(task.token.clone()),
    )
    .await
    .map_err(|e| ("Operon.StartExecutionFailed", e.message))?;
    let child_id = started.execution_id.clone();
    if mode != Mode::Sync {
        return Ok(
            json!({"ExecutionId": child_id, "Name": started.name, "StartDate": started.started_at}),
        );
    }
    let mut changed = state.coordination.subscribe(Topic::ExecutionStatus);
    loop {
        let child = state
            .store
            .execution(&child_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                (
                    "Operon.StartExecutionFailed",
                    format!("execution {child_id} disappeared"),
                )
            })?;
        if child.status != RUNNING {
            let result = json!({
                "ExecutionId": child.id, "Name": child.name, "Status": child.status,
                "Output": child.output, "Error": child.error, "Cause": child.cause,
            });
            return if child.status == "SUCCEEDED" {
                Ok(result)
            } else {
                Err(("Operon.ExecutionFailed", result.to_string()))
            };
        }
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The principal an execution's task effects are authorized as: its
/// version's role, or the version's author, with what they hold now.
async fn execution_actor(state: &AppState, task: &WorkflowTask) -> Result<Principal, Failure> {
    Ok(execution_actor_and_causation(state, task).await?.0)
}

/// [`execution_actor`] and the execution's causation chain, which its
/// commands and child executions carry on (the event bus's loop guard).
async fn execution_actor_and_causation(
    state: &AppState,
    task: &WorkflowTask,
) -> Result<(Principal, Vec<String>), Failure> {
    let origin = match state.workflows.origins.get(&task.execution_id) {
        Some(origin) => origin,
        None => read_origin(state, &task.execution_id).await?,
    };
    let name = format!("execution/{}", task.execution_id);
    let actor = state
        .actor(&name, &origin.run_as)
        .await
        .map_err(|e| ("Operon.InternalError", e.message))?;
    Ok((actor, origin.causation.clone()))
}

/// What an execution acts as and its causation chain, from the store; kept
/// for its next tasks while it runs.
async fn read_origin(state: &AppState, execution_id: &str) -> Result<Arc<Origin>, Failure> {
    let execution = state
        .store
        .execution(execution_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            (
                "Operon.InternalError",
                format!("execution {execution_id} disappeared"),
            )
        })?;
    let version = state
        .store
        .workflow_run_as(&execution.workflow, execution.version)
        .await
        .map_err(internal)?;
    let run_as = match &version {
        Some(v) => RunAs::new(v.role.as_deref(), Some(&v.created_by)),
        None => RunAs::Author(None),
    };
    let origin = Arc::new(Origin {
        run_as,
        causation: execution.causation,
    });
    if execution.status == super::RUNNING {
        state.workflows.origins.keep(execution_id, origin.clone());
    }
    Ok(origin)
}

/// What an execution's tasks act as (its version's role, or the version's
/// author) and the causation chain they carry on. Both are fixed for the
/// life of the execution (a version never changes, a redrive keeps it), so
/// they are read once per running execution instead of twice per task;
/// the policies behind the role or author are not kept here but in
/// [`crate::runas::ActorCache`], which follows identity changes.
pub(crate) struct Origin {
    run_as: RunAs,
    causation: Vec<String>,
}

/// The [`Origin`]s of running executions; an execution's is dropped when it
/// reaches a final status.
#[derive(Default)]
pub(crate) struct Origins(std::sync::Mutex<HashMap<String, Arc<Origin>>>);

/// A bound for the unlikely leftovers of executions that finished while a
/// task was reading their origin.
const MAX_ORIGINS: usize = 100_000;

impl Origins {
    fn get(&self, execution_id: &str) -> Option<Arc<Origin>> {
        self.lock().get(execution_id).cloned()
    }

    fn keep(&self, execution_id: &str, origin: Arc<Origin>) {
        let mut origins = self.lock();
        if origins.len() >= MAX_ORIGINS {
            origins.clear();
        }
        origins.insert(execution_id.to_string(), origin);
    }

    /// The execution reached a final status.
    pub(crate) fn forget(&self, execution_id: &str) {
        self.lock().remove(execution_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Origin>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Authorize one effect of a task now. A refusal is audited under the
/// execution, with what it acted as, and fails the task with
/// `Operon.AccessDenied` (which a Catch can handle).
async fn allow(
    state: &AppState,
    actor: &Principal,
    action: &str,
    resource: &str,
) -> Result<(), Failure> {
    check_action(&state.audit, actor, action, resource)
        .await
        .map_err(|e| ("Operon.AccessDenied", e.message))
}

fn internal(e: impl std::fmt::Display) -> Failure {
    tracing::error!(error = %e, "workflow task failed on a store error");
    (
        "Operon.InternalError",
        "internal storage error; see the server log".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(resource: &str, input: Value) -> WorkflowTask {
        WorkflowTask {
            token: "x-1.abc-00000001".into(),
            execution_id: "x-1".into(),
            state: "Ask".into(),
            resource: resource.into(),
            input,
            idempotency_key: idempotency_key("x-1.abc-00000001"),
            created_at: 7,
        }
    }

    #[test]
    fn resources_and_modes() {
        assert_eq!(
            classify("operon:runCommand"),
            Ok((Base::RunCommand, Mode::Plain))
        );
        assert_eq!(
            classify("operon:runCommand.sync"),
            Ok((Base::RunCommand, Mode::Sync))
        );
        assert_eq!(
            classify("operon:http.waitForTaskToken"),
            Ok((Base::Http, Mode::WaitForToken))
        );
        assert_eq!(
            classify("operon:startExecution.sync"),
            Ok((Base::StartExecution, Mode::Sync))
        );
        for bad in [
            "operon:nope",
            "arn:aws:states:::lambda:invoke",
            "operon:http.sync",
            "operon:runCommand.later",
        ] {
            let (error, cause) = classify(bad).unwrap_err();
            assert_eq!(error, "Operon.UnknownResource");
            assert!(cause.contains(bad), "{cause}");
        }
        assert!(needs_performer("operon:runCommand.waitForTaskToken"));
        assert!(!needs_performer("operon:approval"));
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let a = idempotency_key("x-1.abc-00000001");
        assert_eq!(a, idempotency_key("x-1.abc-00000001"));
        assert_ne!(a, idempotency_key("x-1.abc-00000002"));
        assert_eq!(a.len(), 24);
        assert!(
            a.chars().all(|c| c.is_ascii_hexdigit()),
            "safe in command ids"
        );
    }

    #[test]
    fn approvals_take_message_and_approvers_and_reject_bad_shapes() {
        let a = approval_for(&task(
            "operon:approval",
            json!({"Message": "ok?", "Approvers": ["alice", "bob"]}),
        ))
        .unwrap();
        assert_eq!((a.message.as_str(), a.approvers.len()), ("ok?", 2));
        assert_eq!(a.status, "Pending");
        assert!(a.id.starts_with("ap-"));
        let default = approval_for(&task("operon:approval", json!({}))).unwrap();
        assert!(default.message.contains("Ask"), "{}", default.message);
        let (error, cause) =
            approval_for(&task("operon:approval", json!({"Approvers": "alice"}))).unwrap_err();
        assert_eq!(error, "Operon.InvalidParameters");
        assert!(cause.contains("Approvers"), "{cause}");
    }

    #[test]
    fn sync_output_is_capped_on_a_char_boundary() {
        let text = "é".repeat(SYNC_OUTPUT_CAP);
        let (kept, cut) = cap(&text);
        assert!(cut && kept.len() <= SYNC_OUTPUT_CAP && text.starts_with(kept));
        assert_eq!(cap("short"), ("short", false));
    }
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    fn origin(role: &str) -> Arc<Origin> {
        Arc::new(Origin {
            run_as: RunAs::Role(role.into()),
            causation: vec!["rule/r".into()],
        })
    }

    #[test]
    fn origins_are_kept_while_an_execution_runs_and_dropped_when_it_ends() {
        let origins = Origins::default();
        assert!(origins.get("x-1").is_none());
        origins.keep("x-1", origin("ops"));
        let kept = origins.get("x-1").unwrap();
        assert_eq!(kept.run_as, RunAs::Role("ops".into()));
        assert_eq!(kept.causation, ["rule/r"]);
        origins.forget("x-1");
        assert!(origins.get("x-1").is_none());
    }

    #[test]
    fn origins_never_grow_past_their_bound() {
        let origins = Origins::default();
        for i in 0..MAX_ORIGINS + 10 {
            origins.keep(&format!("x-{i}"), origin("ops"));
        }
        assert!(origins.lock().len() <= MAX_ORIGINS);
    }
}
