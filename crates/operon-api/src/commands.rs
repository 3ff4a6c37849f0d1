//! `/v1/commands`: the request that creates a command and the views of one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::documents::version_selector;
use crate::openapi::{Api, Op, reference};

/// `POST /v1/commands`. The server keeps it, serialised in this order, as
/// the command's `request` (environment values sealed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateCommand {
    #[serde(default)]
    #[schema(default = "AWS-RunShellScript")]
    pub document: Option<String>,
    /// A version number, $DEFAULT or $LATEST; the document's default version
    /// when absent
    #[serde(default)]
    #[schema(value_type = Object)]
    pub document_version: Option<Value>,
    /// The document's parameters (AWS-RunShellScript: commands: [string])
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    /// Node ids or names
    #[serde(default)]
    pub node_ids: Vec<String>,
    /// Filters, all of which must hold: tag:KEY=VALUE or all, or SSM {Key,
    /// Values} objects. Give node_ids or targets (400 if neither selects a
    /// node)
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub targets: Vec<Value>,
    /// A count (10) or a percentage of the targets (25%)
    #[schema(pattern = r"^[0-9]+%?$", default = "50")]
    pub max_concurrency: Option<String>,
    /// A count (10) or a percentage of the targets (25%)
    #[schema(pattern = r"^[0-9]+%?$", default = "0")]
    pub max_errors: Option<String>,
    #[schema(minimum = 1, maximum = 2592000, default = 3600)]
    pub timeout_secs: Option<i64>,
    #[schema(minimum = 1, maximum = 2592000, default = 3600)]
    pub delivery_timeout_secs: Option<i64>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Run as this user on the node
    pub user: Option<String>,
    /// For a desired-state document: report what would change on each node,
    /// change nothing
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
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

/// A command without its invocations
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommandSummary {
    pub id: String,
    pub document_name: String,
    pub document_version: i64,
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The request as sent (targets, options)
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
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    #[schema(required = true)]
    pub finished_at: Option<i64>,
    pub cancel_requested: bool,
    pub requested_by: String,
    pub target_count: u64,
    pub completed_count: u64,
    pub error_count: u64,
}

/// A command with its per-node invocations
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
    /// Unix time in milliseconds
    #[schema(required = true)]
    pub dispatched_at: Option<i64>,
    /// Unix time in milliseconds
    #[schema(required = true)]
    pub started_at: Option<i64>,
    /// Unix time in milliseconds
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

/// Which output stream a chunk is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One live event of a command, tagged by event: output chunks, per-node
/// status changes, then done (the stream ends)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    Output {
        node_id: String,
        node_name: String,
        stream: OutputStream,
        data: String,
    },
    Status {
        node_id: String,
        node_name: String,
        status: InvocationStatus,
        #[schema(required = true)]
        exit_code: Option<i32>,
        #[schema(required = true)]
        detail: Option<String>,
    },
    Done {
        status: InvocationStatus,
    },
}

/// One server-sent event of `GET /v1/commands/{id}/stream` (the backlog
/// first, then live events until done)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommandStreamEvent {
    /// The SSE event name: not set (message)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub event: Option<String>,
    /// A LiveEvent as JSON
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retry: Option<u64>,
}

/// The targets a command accepts, one filter each.
fn target_filter() -> Value {
    json!({"oneOf": [
        {"type": "string", "description": "tag:KEY=VALUE or all"},
        {
            "type": "object",
            "description": "SSM form: Key is tag:NAME, tag-key or InstanceIds; the Values are alternatives",
            "required": ["Key", "Values"],
            "additionalProperties": false,
            "properties": {
                "Key": {"type": "string"},
                "Values": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            },
        },
    ]})
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "commands";
    let mut version = version_selector();
    version["oneOf"]
        .as_array_mut()
        .expect("a oneOf")
        .push(json!({"type": "null"}));
    api.refine("CreateCommand/properties/document_version", version);
    api.refine("CreateCommand/properties/targets/items", target_filter());
    api.refine(
        "CancelRequested/properties/cancel_requested",
        json!({"const": true}),
    );
    api.refine(
        "CommandStreamEvent/properties/data",
        json!({
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": reference::<LiveEvent>(),
        }),
    );
    api.op(Op::get("/v1/commands", TAG, "List recent commands")
        .query(
            "limit",
            json!({
                "type": "integer", "format": "int64",
                "minimum": i64::MIN, "maximum": i64::MAX,
            }),
            "Newest first; clamped to 1..1000, default 50",
        )
        .ok_list::<CommandSummary>());
    api.op(Op::post("/v1/commands", TAG, "Run a document on targets")
        .body::<CreateCommand>()
        .example(json!({
            "targets": ["tag:env=staging"],
            "parameters": {"commands": ["uptime"]},
            "max_concurrency": "10%",
            "max_errors": "0",
            "timeout_secs": 600,
        }))
        .ok::<CommandView>());
    api.op(Op::get(
        "/v1/commands/{id}",
        TAG,
        "Show a command with per-node results",
    )
    .ok::<CommandView>());
    api.op(
        Op::post("/v1/commands/{id}/cancel", TAG, "Cancel a command")
            .may(&[409])
            .ok::<CancelRequested>(),
    );
    api.op(Op::get(
        "/v1/commands/{id}/stream",
        TAG,
        "Live output and status as server-sent events (event: output|status|done)",
    )
    .collect::<LiveEvent>()
    .collect::<CommandStreamEvent>()
    .answers(
        200,
        "OK",
        "text/event-stream",
        reference::<CommandStreamEvent>(),
    ));
}
