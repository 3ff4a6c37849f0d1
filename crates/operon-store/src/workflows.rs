//! Durable workflows: state machines and their versions, executions with the
//! interpreter's serialised state, history, timers, pending tasks and
//! approvals.
//!
//! The runner's unit of durability is a *step*: the engine state after an
//! event, the history events it produced, the timers and tasks it asked for
//! and the ones it no longer needs. [`WorkflowStore::apply_workflow_steps`](crate::WorkflowStore::apply_workflow_steps) commits
//! many executions' steps in one transaction (group commit), so one fsync
//! carries a whole burst of transitions. Nothing is performed before the step
//! that asked for it is committed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A state machine's latest version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workflow {
    pub name: String,
    pub version: i64,
    pub definition: Value,
    pub created_at: i64,
    pub updated_at: i64,
    /// Who made the latest version.
    pub created_by: String,
    /// The role the latest version's executions act as, if it names one.
    pub role: Option<String>,
}

/// One version of a workflow: when, by whom, and the role it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowVersionInfo {
    pub version: i64,
    pub created_at: i64,
    pub created_by: String,
    pub role: Option<String>,
}

/// What a workflow version's executions act as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRunAs {
    pub created_by: String,
    pub role: Option<String>,
}

/// One execution, without its engine state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecutionRecord {
    pub id: String,
    pub workflow: String,
    pub version: i64,
    pub name: String,
    pub status: String,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The task token of the parent execution's `operon:startExecution` task.
    pub parent_token: Option<String>,
    pub started_by: String,
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    pub updated_at: i64,
    pub redrive_count: i64,
    /// The rules whose effects led to this execution, oldest first (the
    /// event bus's loop guard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causation: Vec<String>,
}

/// A task an execution waits for. The token is its idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkflowTask {
    pub token: String,
    pub execution_id: String,
    pub state: String,
    pub resource: String,
    pub input: Value,
    pub idempotency_key: String,
    pub created_at: i64,
}

/// A human approval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Approval {
    pub id: String,
    pub execution_id: String,
    pub token: String,
    pub state: String,
    pub message: String,
    pub approvers: Vec<String>,
    /// Pending, Approved, Rejected or Expired.
    pub status: String,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

/// The answer to a pending approval, written with the step it resumes.
#[derive(Debug, Clone)]
pub struct ApprovalDecision {
    pub id: String,
    pub status: String,
    pub decided_by: String,
    pub comment: Option<String>,
    pub at: i64,
}

/// One history event of an execution.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub seq: i64,
    pub timestamp: i64,
    /// The event as JSON text.
    pub event: String,
}

/// Everything one step of one execution changes, committed atomically.
#[derive(Debug, Clone)]
pub struct StepWrite {
    /// The execution row after the step (inserted when `insert`).
    pub execution: ExecutionRecord,
    pub insert: bool,
    /// The serialised engine state.
    pub engine: String,
    pub history: Vec<HistoryRow>,
    pub timers_add: Vec<(i64, i64)>,
    pub timers_remove: Vec<i64>,
    pub tasks_add: Vec<WorkflowTask>,
    pub tasks_remove: Vec<String>,
    pub approvals_add: Vec<Approval>,
    pub approval_decisions: Vec<ApprovalDecision>,
    /// Audit records committed with the step (a start made by a rule or a
    /// runbook is recorded under the actor's name, in the same transaction).
    pub audit: Vec<crate::AuditEntry>,
}

/// A due timer.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRow {
    pub execution_id: String,
    pub timer_id: i64,
    pub due_at: i64,
}

/// Filters for [`WorkflowStore::list_executions`](crate::WorkflowStore::list_executions).
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub status: Option<String>,
    pub workflow: Option<String>,
    pub limit: i64,
}
