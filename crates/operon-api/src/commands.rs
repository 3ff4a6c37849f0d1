//! `/v1/commands`: the request that creates a command and the views of one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `POST /v1/commands`. The server keeps it, serialised in this order, as
/// the command's `request` (environment values sealed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateCommand {
    #[serde(default)]
    pub document: Option<String>,
    /// A version number, `$DEFAULT` or `$LATEST`; the default when absent.
    #[serde(default)]
    pub document_version: Option<Value>,
    /// The document's parameters (AWS-RunShellScript: `commands: [string]`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    /// Node ids or names.
    #[serde(default)]
    pub node_ids: Vec<String>,
    /// `tag:KEY=VALUE` or `all` strings, or SSM `{"Key", "Values"}` objects;
    /// all must hold.
    #[serde(default)]
    pub targets: Vec<Value>,
    pub max_concurrency: Option<String>,
    pub max_errors: Option<String>,
    pub timeout_secs: Option<i64>,
    pub delivery_timeout_secs: Option<i64>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
}

/// Status of a command, or of a command on one node, named as SSM names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum InvocationStatus {
    Pending,
    InProgress,
    Success,
    Failed,
    TimedOut,
    Cancelled,
    Undeliverable,
}

impl InvocationStatus {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Success => "Success",
            Self::Failed => "Failed",
            Self::TimedOut => "TimedOut",
            Self::Cancelled => "Cancelled",
            Self::Undeliverable => "Undeliverable",
        }
    }

    /// Nothing more will happen.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::InProgress)
    }
}

impl std::fmt::Display for InvocationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command without its invocations (`GET /v1/commands`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommandSummary {
    pub id: String,
    pub document_name: String,
    pub document_version: i64,
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The request as sent (targets, options).
    #[schema(value_type = Object)]
    pub request: Value,
    #[schema(value_type = Object)]
    pub run_template: Value,
    /// A count (`10`) or a percentage of the targets (`25%`).
    pub max_concurrency: String,
    pub max_errors: String,
    pub timeout_secs: i64,
    pub delivery_timeout_secs: i64,
    /// Pending or InProgress while running, then the aggregate final status.
    pub status: InvocationStatus,
    /// Unix time in milliseconds.
    pub created_at: i64,
    #[schema(required = true)]
    pub finished_at: Option<i64>,
    pub cancel_requested: bool,
    pub requested_by: String,
    pub target_count: u64,
    pub completed_count: u64,
    pub error_count: u64,
}

/// A command with its per-node invocations (`POST /v1/commands`,
/// `GET /v1/commands/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Command)]
pub struct CommandView {
    #[serde(flatten)]
    pub command: CommandSummary,
    pub invocations: Vec<Invocation>,
}

/// A command on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Invocation {
    pub command_id: String,
    pub node_id: String,
    pub node_name: String,
    pub status: InvocationStatus,
    #[schema(required = true)]
    pub status_detail: Option<String>,
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    #[schema(required = true)]
    pub dispatched_at: Option<i64>,
    #[schema(required = true)]
    pub started_at: Option<i64>,
    #[schema(required = true)]
    pub finished_at: Option<i64>,
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<Value>,
}

/// `POST /v1/commands/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancelRequested {
    pub id: String,
    pub cancel_requested: bool,
}
