//! The executions service: the only code that starts, stops, redrives,
//! describes and lists executions, decides approvals and answers task
//! tokens. Typed in and out, [`ServiceError`] on failure; the HTTP edge is
//! `workflows/api.rs`. Changes to a running execution go through the runner
//! ([`Msg`]), which commits them with the execution's next step.
//!
//! Authorization: starting, stopping, redriving, describing and listing are
//! checked by the catalogue at the edge (`workflows:Start`, `executions:*`
//! on the resource in the path); deciding an approval needs
//! `approvals:Approve` on `approval/ID` and, when the approval names its
//! approvers, being one of them; answering a task token needs the action
//! (`tasks:SendSuccess`, ...) on the token's `execution/ID`. Every refusal
//! here is audited.

use operon_api::workflows::Execution as ExecutionView;
use operon_asl::Event;
use operon_store::{Approval, ApprovalDecision, ExecutionFilter, ExecutionRecord, Store};
use serde_json::{Value, json};

use super::{Msg, StartedBy, Workflows, runner, validate_name};
use crate::access::{Principal, check_action, record_denial_in};
use crate::audit::AuditLog;
use crate::now_millis;
use crate::service::{ErrorKind, ServiceError, ServiceResult};

/// Execution statuses a listing may filter on.
pub const STATUSES: [&str; 5] = ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"];

/// An execution to start, as given to [`ExecutionService::start`].
#[derive(Debug, Clone)]
pub struct StartExecution {
    pub workflow: String,
    /// `{}` when absent.
    pub input: Option<Value>,
    /// The idempotency key: the same name with the same input returns the
    /// existing execution; with another input it is refused.
    pub name: Option<String>,
}

/// Which executions to list.
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    /// A status of [`STATUSES`], in any case.
    pub status: Option<String>,
    pub workflow: Option<String>,
    /// 100 when absent, clamped to 1..=10000.
    pub limit: Option<i64>,
}

/// An execution's history page.
#[derive(Debug, Clone)]
pub struct History {
    pub execution: ExecutionRecord,
    /// The history events, as JSON (`null` for a row that does not parse).
    pub events: Vec<Value>,
}

/// How a task token is answered.
#[derive(Debug, Clone)]
pub enum TaskAnswer {
    Success {
        output: Value,
    },
    Failure {
        error: Option<String>,
        cause: Option<String>,
    },
    Heartbeat,
}

impl TaskAnswer {
    /// The action a caller needs on the token's execution.
    pub fn action(&self) -> &'static str {
        match self {
            TaskAnswer::Success { .. } => "tasks:SendSuccess",
            TaskAnswer::Failure { .. } => "tasks:SendFailure",
            TaskAnswer::Heartbeat => "tasks:SendHeartbeat",
        }
    }
}

/// Executions, approvals and task tokens.
pub struct ExecutionService<'a> {
    pub(crate) store: &'a Store,
    pub(crate) audit: &'a AuditLog,
    pub(crate) workflows: &'a Workflows,
    /// The largest execution input accepted (the server's payload quota).
    pub(crate) max_payload_bytes: u64,
}

impl ExecutionService<'_> {
    /// Start an execution of the latest version of the workflow by `started_by`.
    /// Returns the execution's view (`{executionId, name, workflow, version,
    /// status, startedAt, ...}`).
    pub async fn start(
        &self,
        start: StartExecution,
        started_by: StartedBy<'_>,
    ) -> ServiceResult<ExecutionView> {
        let input = start.input.unwrap_or_else(|| json!({}));
        self.start_with_parent(&start.workflow, input, start.name, started_by, None)
            .await
    }

    /// [`ExecutionService::start`] as the child of the task waiting on
    /// `parent_token` (`.sync` starts from a runbook).
    pub(crate) async fn start_with_parent(
        &self,
        workflow: &str,
        input: Value,
        name: Option<String>,
        started_by: StartedBy<'_>,
        parent_token: Option<String>,
    ) -> ServiceResult<ExecutionView> {
        if let Some(name) = &name {
            validate_name("execution", name)?;
        }
        // As StartExecution on AWS: an input over the payload quota is refused
        // before anything starts (the engine would fail it at once).
        let limit = self.max_payload_bytes;
        if operon_asl::engine::exceeds_payload_limit(&input, limit) {
            return Err(ServiceError::invalid(
                "ValidationError",
                format!(
                    "States.DataLimitExceeded: the execution input is larger than {limit} bytes"
                ),
            ));
        }
        let record = self.store.workflow(workflow).await?.ok_or_else(|| {
            ServiceError::not_found("NotFound", format!("no workflow named {workflow:?}"))
        })?;
        let request = runner::StartRequest {
            workflow: record.name,
            version: record.version,
            input,
            name,
            started_by: match started_by {
                StartedBy::User(name) | StartedBy::Actor(name, _) => name.to_string(),
            },
            audit_as_actor: matches!(started_by, StartedBy::Actor(..)),
            parent_token,
            causation: match started_by {
                StartedBy::User(_) => Vec::new(),
                StartedBy::Actor(_, chain) => chain.to_vec(),
            },
        };
        self.workflows
            .ask(|reply| Msg::Start(Box::new(request), reply))
            .await
    }

    pub async fn list(&self, query: ExecutionQuery) -> ServiceResult<Vec<ExecutionRecord>> {
        let status = query.status.map(|s| s.to_ascii_uppercase());
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(ServiceError::invalid(
                "InvalidStatus",
                format!(
                    "unknown status {s:?}; expected one of {}",
                    STATUSES.join(", ")
                ),
            ));
        }
        let filter = ExecutionFilter {
            status,
            workflow: query.workflow,
            limit: query.limit.unwrap_or(100).clamp(1, 10_000),
        };
        Ok(self.store.list_executions(&filter).await?)
    }

    pub async fn get(&self, id: &str) -> ServiceResult<ExecutionRecord> {
        self.store.execution(id).await?.ok_or_else(|| {
            ServiceError::not_found("NoSuchExecution", format!("no execution with id {id:?}"))
        })
    }

    /// History events after sequence number `after` (0 when absent), at most
    /// `limit` (1000 when absent, clamped to 1..=10000).
    pub async fn history(
        &self,
        id: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> ServiceResult<History> {
        let execution = self.get(id).await?;
        let rows = self
            .store
            .execution_history(
                id,
                after.unwrap_or(0),
                limit.unwrap_or(1000).clamp(1, 10_000),
            )
            .await?;
        let events = rows
            .iter()
            .map(|r| serde_json::from_str(&r.event).unwrap_or(Value::Null))
            .collect();
        Ok(History { execution, events })
    }

    /// Stop a running execution with an optional error and cause; returns
    /// the execution as it is afterwards.
    pub async fn stop(
        &self,
        id: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> ServiceResult<ExecutionRecord> {
        self.get(id).await?;
        self.workflows
            .ask(|reply| Msg::Event {
                execution_id: id.to_string(),
                event: Event::Stop { error, cause },
                decision: None,
                reply: Some(reply),
            })
            .await?;
        self.get(id).await
    }

    /// Run a failed, timed-out or aborted execution again from where it
    /// stopped; returns its view.
    pub async fn redrive(&self, id: &str) -> ServiceResult<ExecutionView> {
        self.get(id).await?;
        self.workflows
            .ask(|reply| Msg::Redrive {
                execution_id: id.to_string(),
                reply,
            })
            .await
    }

    // ----- Approvals -----------------------------------------------------------

    /// Approvals, of `status` when given, at most `limit` (100 when absent,
    /// clamped to 1..=10000).
    pub async fn list_approvals(
        &self,
        status: Option<&str>,
        limit: Option<i64>,
    ) -> ServiceResult<Vec<Approval>> {
        Ok(self
            .store
            .list_approvals(status, limit.unwrap_or(100).clamp(1, 10_000))
            .await?)
    }

    pub async fn get_approval(&self, id: &str) -> ServiceResult<Approval> {
        self.store.approval(id).await?.ok_or_else(|| {
            ServiceError::not_found("NoSuchApproval", format!("no approval with id {id:?}"))
        })
    }

    /// Approve or reject a pending approval as `principal`: the decision and
    /// the execution's next step are committed together. Returns the
    /// approval as decided.
    pub async fn decide(
        &self,
        principal: &Principal,
        id: &str,
        approved: bool,
        comment: Option<String>,
    ) -> ServiceResult<Approval> {
        let resource = format!("approval/{id}");
        check_action(self.audit, principal, "approvals:Approve", &resource).await?;
        let approval = self.get_approval(id).await?;
        if approval.status != "Pending" {
            return Err(ServiceError::conflict(
                "ApprovalNotPending",
                format!("approval {id} is {}, not pending", approval.status),
            ));
        }
        if !approval.approvers.is_empty() && !approval.approvers.contains(&principal.name) {
            let reason = format!(
                "{} is not among the approvers of {id} ({})",
                principal.name,
                approval.approvers.join(", ")
            );
            record_denial_in(
                self.audit,
                principal,
                "approvals:Approve",
                &resource,
                &reason,
            )
            .await;
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                "NotAnApprover",
                reason,
            ));
        }
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
            at: now_millis(),
        };
        self.workflows
            .ask(|reply| Msg::Event {
                execution_id: approval.execution_id.clone(),
                event,
                decision: Some(decision),
                reply: Some(reply),
            })
            .await?;
        tracing::info!(approval_id = %id, approved, by = %principal.name, "approval decided");
        self.get_approval(id).await
    }

    // ----- Task tokens ---------------------------------------------------------

    /// Answer the task waiting on `token` as `principal`; returns the id of
    /// the execution it belongs to.
    pub async fn answer_task(
        &self,
        principal: &Principal,
        token: &str,
        answer: TaskAnswer,
    ) -> ServiceResult<String> {
        let task = self.store.workflow_task(token).await?.ok_or_else(|| {
            ServiceError::not_found(
                "NoSuchTask",
                "no task is waiting for this token (unknown, answered or timed out)",
            )
        })?;
        let execution = format!("execution/{}", task.execution_id);
        check_action(self.audit, principal, answer.action(), &execution).await?;
        if task.resource.starts_with("operon:approval") {
            return Err(ServiceError::invalid(
                "TokenOfApproval",
                "this token belongs to an approval; answer it with operon approvals approve|reject",
            ));
        }
        let token = token.to_string();
        let event = match answer {
            TaskAnswer::Success { output } => Event::TaskSucceeded { token, output },
            TaskAnswer::Failure { error, cause } => Event::TaskFailed {
                token,
                error,
                cause,
            },
            TaskAnswer::Heartbeat => Event::Heartbeat { token },
        };
        self.workflows
            .ask(|reply| Msg::Event {
                execution_id: task.execution_id.clone(),
                event,
                decision: None,
                reply: Some(reply),
            })
            .await?;
        Ok(task.execution_id)
    }
}

#[cfg(test)]
#[path = "executions_tests.rs"]
mod tests;
