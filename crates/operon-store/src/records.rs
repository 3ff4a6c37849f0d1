//! Plain records stored and returned by the store traits.

use std::collections::BTreeMap;

use operon_proto::{CommandResult, Inventory, InvocationStatus, Step, StepResult};
use serde::{Deserialize, Serialize};

/// An API bearer token. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing)]
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The owner; `None` for the admin token.
    pub user_id: Option<String>,
    /// Action patterns the token is limited to; `None` for all the owner may do.
    pub scopes: Option<Vec<String>>,
}

/// A token that enrolls up to `uses_allowed` nodes until `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollToken {
    pub id: String,
    #[serde(skip_serializing)]
    pub token_hash: String,
    pub tags: BTreeMap<String, String>,
    pub uses_allowed: i64,
    pub uses: i64,
    pub expires_at: i64,
    pub created_at: i64,
    /// When the token was revoked; it enrolls nothing from then on.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// Why an enrollment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollRefusal {
    Unknown,
    Expired,
    UsedUp,
    Revoked,
}

impl EnrollRefusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::Unknown => "enrollment token is not known to this server",
            Self::Expired => "enrollment token has expired",
            Self::UsedUp => "enrollment token has no uses left",
            Self::Revoked => "enrollment token has been revoked",
        }
    }
}

/// The longest node name: a DNS label. A taken name gets `-2`, `-3`, ...
/// and is shortened to stay within it.
pub const NODE_NAME_MAX: usize = 63;

/// A node about to be enrolled.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub id: String,
    pub name: String,
    pub credential_hash: String,
    pub requested_tags: BTreeMap<String, String>,
    pub inventory: Inventory,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub inventory: Inventory,
    pub enrolled_at: i64,
    pub last_seen: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One version of a command document (SSM schemaVersion 2.2 shape).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Document {
    pub name: String,
    pub version: i64,
    pub content: serde_json::Value,
    pub created_at: i64,
}

/// A document's versions by name: the default (what runs when no version
/// is named) and the newest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DocumentVersions {
    pub name: String,
    pub default_version: i64,
    pub latest_version: i64,
    /// When the latest version was stored.
    pub created_at: i64,
}

/// What every node of a command is sent, apart from ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunTemplate {
    pub steps: Vec<Step>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub output_cap_bytes: usize,
    /// Who the steps' `{{ssm:...}}` references are resolved as when the
    /// command is sent; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_as: Option<ParameterAuthority>,
}

/// The authority a command's parameter references are read with at send
/// time: the requesting user with the scopes of the token used, or an
/// actor (`rule/NAME`, `execution/ID`) with what it acts as (`role/ops`,
/// `user/alice`, `admin`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParameterAuthority {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<String>,
}

/// A command sent to a set of nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Command {
    pub id: String,
    pub document_name: String,
    pub document_version: i64,
    pub parameters: serde_json::Value,
    /// The request as the client sent it (targets, options), for display.
    pub request: serde_json::Value,
    pub run_template: RunTemplate,
    /// As given: a count ("10") or a percentage ("25%").
    pub max_concurrency: String,
    pub max_errors: String,
    pub timeout_secs: i64,
    pub delivery_timeout_secs: i64,
    /// Pending or InProgress while running, then the aggregate final status.
    pub status: InvocationStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub cancel_requested: bool,
    pub requested_by: String,
}

/// A command on one node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Invocation {
    pub command_id: String,
    pub node_id: String,
    pub node_name: String,
    pub status: InvocationStatus,
    pub status_detail: Option<String>,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub dispatched_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub steps: Vec<StepResult>,
}

impl Invocation {
    /// The id the agent knows this invocation by.
    pub fn invocation_id(&self) -> String {
        invocation_id(&self.command_id, &self.node_id)
    }
}

/// `<command id>.<node id>`: unique, and safe as a file name on the agent.
pub fn invocation_id(command_id: &str, node_id: &str) -> String {
    format!("{command_id}.{node_id}")
}

/// Split an invocation id back into (command id, node id).
pub fn split_invocation_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('.')
}

/// One write from an agent session, for [`crate::CommandStore::apply_agent_writes`].
#[derive(Debug, Clone)]
pub enum AgentWrite {
    Started {
        command_id: String,
        node_id: String,
        at: i64,
    },
    Finished {
        command_id: String,
        node_id: String,
        result: CommandResult,
    },
}

/// Tables [`crate::CommandStore::count_by_status`] can count.
#[derive(Debug, Clone, Copy)]
pub enum StatusTable {
    Commands,
    Invocations,
}

/// What a presented credential hash is to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum CredentialMatch {
    /// The node's current credential.
    Current(Node),
    /// The new credential of a rotation the agent has not confirmed yet.
    Pending { node: Node, rotation_id: String },
    /// A credential replaced by a rotation at `retired_at`.
    Retired { node: Node, retired_at: i64 },
}
