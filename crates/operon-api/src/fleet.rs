//! `/v1/nodes` and `/v1/enroll-tokens`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/enroll-tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateEnrollToken {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// How many nodes it may enroll (1 when absent).
    pub uses: Option<i64>,
    /// 86400 when absent.
    pub expires_in_secs: Option<i64>,
}

/// A token that enrolls up to `uses_allowed` nodes until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnrollToken {
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub uses_allowed: i64,
    pub uses: i64,
    /// Unix time in milliseconds.
    pub expires_at: i64,
    pub created_at: i64,
    /// A revoked token enrolls nothing.
    #[serde(default)]
    #[schema(required = true)]
    pub revoked_at: Option<i64>,
}

/// A new enrollment token: the secret, returned once, and its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedEnrollToken {
    pub token: String,
    /// The fingerprint agents pin (`--server-fingerprint`), when serving TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub server_fingerprint: Option<String>,
    #[serde(flatten)]
    pub record: EnrollToken,
}

/// What a node is, as its agent reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Inventory {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    pub agent_version: String,
}

/// A node's live status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Online,
    Offline,
    Revoked,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node with its live status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Node)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub inventory: Inventory,
    /// Unix time in milliseconds.
    pub enrolled_at: i64,
    #[schema(required = true)]
    pub last_seen: Option<i64>,
    #[schema(required = true)]
    pub revoked_at: Option<i64>,
    pub status: NodeStatus,
    pub online: bool,
}

/// `POST /v1/nodes/{key}/tags`: tags to set and keys to remove (removal
/// first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TagChange {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}
