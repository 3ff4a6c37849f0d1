//! Durable workflows: ASL state machines run by the server.
//!
//! The pure interpreter (`operon-asl`) decides; this module persists, times
//! and performs. One task, the *runner* ([`runner`]), owns every running
//! execution's engine state and steps it: an event (start, task outcome,
//! timer, stop, redrive) goes in, and the new engine state, its history
//! events, the timers and tasks it asks for are committed in one transaction
//! before anything is performed. Steps of many executions waiting at once are
//! committed together (group commit), so a burst costs one fsync.
//!
//! After a commit the runner hands timers to the timer wheel ([`timers`]),
//! which fires them from their persisted due times, and tasks to performers
//! ([`tasks`]), which run them and feed the outcome back as the next event.
//! A task's token is its idempotency key: a command started for a task gets
//! an id derived from the token, a child execution a name derived from it, so
//! re-performing every pending task after a crash never runs anything twice.
//!
//! Every change of an execution's status goes through [`on_status_change`].

pub mod api;
pub mod definitions;
pub mod executions;
pub mod runner;
pub mod tasks;
pub mod timers;

use std::sync::Arc;

use operon_store::ExecutionRecord;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::happenings::Happening;

use crate::AppState;
use crate::service::{ErrorKind, ServiceError, ServiceResult};

pub use runner::Msg;

/// Execution statuses as Step Functions names them.
pub const RUNNING: &str = "RUNNING";

/// The workflow machinery's handle, kept in [`AppState`].
pub struct Workflows {
    pub(crate) tx: mpsc::Sender<Msg>,
    pub(crate) timers: timers::Timers,
    /// `operon:http`'s client, under the egress policy.
    pub(crate) http: crate::egress::client::Outbound,
    /// What each running execution's tasks act as and carry on.
    pub(crate) origins: tasks::Origins,
}

impl Workflows {
    pub(crate) fn new(http: crate::egress::client::Outbound) -> (Workflows, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(8192);
        (
            Workflows {
                tx,
                timers: timers::Timers::default(),
                http,
                origins: tasks::Origins::default(),
            },
            rx,
        )
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<ServiceResult<T>>) -> Msg,
    ) -> ServiceResult<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ServiceError {
    ServiceError::new(
        ErrorKind::Unavailable,
        "RunnerStopped",
        "the workflow runner has stopped",
    )
}

/// Start the runner, the timer wheel, and re-perform every pending task (the
/// resume after a restart).
pub(crate) fn spawn(state: Arc<AppState>, rx: mpsc::Receiver<Msg>) {
    tokio::spawn(runner::run(state.clone(), rx));
    tokio::spawn(timers::run(state.clone()));
    tokio::spawn(async move {
        if let Err(e) = resume(&state).await {
            tracing::error!(error = %e, "resuming workflow timers and tasks failed");
        }
    });
}

async fn resume(state: &Arc<AppState>) -> Result<(), operon_store::StoreError> {
    let timers = state.store.workflow_timers().await?;
    let tasks = state.store.workflow_tasks().await?;
    tracing::info!(
        timers = timers.len(),
        tasks = tasks.len(),
        "resuming workflow executions"
    );
    for t in timers {
        state
            .workflows
            .timers
            .schedule(t.due_at, t.execution_id, t.timer_id);
    }
    for task in tasks {
        tasks::perform(state.clone(), task);
    }
    Ok(())
}

/// Start an execution of the latest version of `workflow`. `name` is the
/// idempotency key: starting the same name with the same input again returns
/// the existing execution; with another input it is refused.
/// Returns `{executionId, name, workflow, version, status, startedAt}`.
pub async fn start_execution(
    state: &AppState,
    workflow: &str,
    input: Value,
    name: Option<String>,
    started_by: StartedBy<'_>,
) -> ServiceResult<operon_api::workflows::Execution> {
    start_with_parent(state, workflow, input, name, started_by, None).await
}

/// Who starts an execution.
#[derive(Debug, Clone, Copy)]
pub enum StartedBy<'a> {
    /// A user through the API (its call is audited by the API).
    User(&'a str),
    /// A rule or a runbook (`rule/NAME`, `execution/ID`): the start is
    /// audited under that name in the start's own transaction. The chain
    /// names the rules whose effects led to it (the event bus's loop guard).
    Actor(&'a str, &'a [String]),
}

pub(crate) async fn start_with_parent(
    state: &AppState,
    workflow: &str,
    input: Value,
    name: Option<String>,
    started_by: StartedBy<'_>,
    parent_token: Option<String>,
) -> ServiceResult<operon_api::workflows::Execution> {
    state
        .executions()
        .start_with_parent(workflow, input, name, started_by, parent_token)
        .await
}

impl AppState {
    /// The workflow definitions service over this server's store and audit trail.
    pub(crate) fn workflow_definitions(&self) -> definitions::WorkflowService<'_> {
        definitions::WorkflowService {
            store: &self.store,
            audit: &self.audit,
        }
    }

    /// The executions service (executions, approvals, task tokens) over this
    /// server's store, audit trail and workflow runner.
    pub(crate) fn executions(&self) -> executions::ExecutionService<'_> {
        executions::ExecutionService {
            store: &self.store,
            audit: &self.audit,
            workflows: &self.workflows,
            max_payload_bytes: self.config.max_payload_bytes,
        }
    }
}

/// Workflow and execution names: 1 to 80 of letters, digits, `-` and `_`
/// (as Step Functions allows); `kind` names which in the error.
pub(crate) fn validate_name(kind: &str, name: &str) -> ServiceResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "ValidationError",
            format!("invalid {kind} name {name:?}: 1 to 80 of letters, digits, '-' and '_'"),
        ))
    }
}

/// The one place an execution's status change is announced (after it is
/// committed): started, succeeded, failed, timed out, aborted, redriven.
/// Listeners such as the event bus see it as a [`Happening::Execution`].
pub(crate) fn on_status_change(state: &AppState, execution: &ExecutionRecord) {
    tracing::info!(
        execution_id = %execution.id,
        workflow = %execution.workflow,
        name = %execution.name,
        status = %execution.status,
        "execution status changed"
    );
    state
        .coordination
        .notify(crate::coordination::Topic::ExecutionStatus);
    state
        .happenings
        .publish(Happening::Execution(Box::new(execution.clone())));
}

/// A view of an execution for the API.
pub(crate) fn execution_view(e: &ExecutionRecord) -> operon_api::workflows::Execution {
    operon_api::workflows::Execution {
        execution_id: e.id.clone(),
        workflow: e.workflow.clone(),
        version: e.version,
        name: e.name.clone(),
        status: e.status.clone(),
        input: e.input.clone(),
        output: e.output.clone(),
        error: e.error.clone(),
        cause: e.cause.clone(),
        started_by: e.started_by.clone(),
        started_at: e.started_at,
        stopped_at: e.stopped_at,
        redrive_count: e.redrive_count,
        parent_task_token: e.parent_token.clone(),
        already_existed: None,
    }
}

#[cfg(test)]
mod payload_tests {
    use serde_json::{Value, json};

    /// The server refuses a start whose input is over its payload limit (the
    /// server's option), and a start made by a runbook is audited.
    #[tokio::test]
    async fn an_input_over_the_payload_limit_is_refused_and_actor_starts_are_audited() {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            crate::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
        config.max_payload_bytes = 1000;
        let server = crate::start(config).await.unwrap();
        let client = reqwest::Client::new();
        let token = server.new_admin_token.clone().unwrap();
        let post = |path: &str, body: Value| {
            client
                .post(format!("{}{path}", server.url()))
                .bearer_auth(&token)
                .json(&body)
                .send()
        };
        let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
        let created = post(
            "/v1/workflows",
            json!({"name": "wf", "definition": definition}),
        )
        .await
        .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
        let big = json!({"blob": "x".repeat(2000)});
        let refused = post("/v1/workflows/wf/executions", json!({"input": big}))
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let body: Value = refused.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("States.DataLimitExceeded"), "{message}");
        let small = post("/v1/workflows/wf/executions", json!({"input": {"a": 1}}))
            .await
            .unwrap();
        assert!(small.status().is_success(), "{}", small.status());

        // A runbook starting another is audited as the parent execution.
        let parent = json!({"StartAt": "Child", "States": {"Child": {"Type": "Task",
            "Resource": "operon:startExecution.sync",
            "Parameters": {"StateMachine": "wf", "Input": {"from": "parent"}}, "End": true}}});
        let created = post(
            "/v1/workflows",
            json!({"name": "parent", "definition": parent}),
        )
        .await
        .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
        let started: Value = post("/v1/workflows/parent/executions", json!({"input": {}}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let actor = format!("execution/{}", started["executionId"].as_str().unwrap());
        let state = server.state();
        let mut records = Vec::new();
        for _ in 0..200 {
            records = state
                .store
                .list_audit(&operon_store::AuditFilter {
                    actor: Some(actor.clone()),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            if !records.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].action, "workflows:StartExecution");
        assert_eq!(records[0].resource, "workflow/wf");
        assert!(records[0].detail["execution_id"].is_string());
    }
}

#[cfg(test)]
mod lease_tests {
    use std::time::Duration;

    use crate::coordination::ProcessId;
    use crate::now_millis;

    /// The runner and the timer wheel take their leases at start and keep
    /// them; a second process would stand by.
    #[tokio::test]
    async fn the_runner_and_the_timer_wheel_hold_their_leases_so_a_second_process_stands_by() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
        let server = crate::start(config).await.unwrap();
        let coordination = &server.state.coordination;
        let other = ProcessId("p-other".into());
        for name in [super::runner::RUNNER_LEASE, super::timers::TIMERS_LEASE] {
            let mut held = None;
            for _ in 0..100 {
                held = coordination.backend.holder(name, now_millis());
                if held.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let held = held.unwrap_or_else(|| panic!("{name} is taken at start"));
            assert_eq!(held.owner, coordination.process, "{name}");
            assert!(
                coordination
                    .backend
                    .try_lease(name, &other, 15_000, now_millis())
                    .is_none(),
                "{name} cannot be taken while held"
            );
        }
    }
}
