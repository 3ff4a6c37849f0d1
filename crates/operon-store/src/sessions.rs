//! Session records: who opened what on which node, how it ended, and the
//! sealed chunks of its recording.

use serde::{Deserialize, Serialize};

/// `status` of a session that is still relayed.
pub const SESSION_ACTIVE: &str = "active";

/// One session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub node_id: String,
    pub node_name: String,
    /// `shell`, `exec` or `port-forward`.
    pub kind: String,
    /// The account on the node (terminals).
    pub run_as: Option<String>,
    pub command: Option<String>,
    /// `host:port` (port forwarding).
    pub remote: Option<String>,
    pub started_by: String,
    pub started_at: i64,
    /// Refreshed by the relaying process while the session lives.
    pub touched_at: i64,
    pub idle_timeout_secs: i64,
    pub max_duration_secs: i64,
    /// [`SESSION_ACTIVE`], `ended`, `terminated`, `timed-out` or `failed`.
    pub status: String,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub exit_code: Option<i32>,
    /// Who asked for it to end (a terminate on another server process).
    pub terminate_by: Option<String>,
    pub recording_sha256: Option<String>,
    pub recording_bytes: Option<i64>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEnd {
    pub status: String,
    pub ended_at: i64,
    pub reason: String,
    pub exit_code: Option<i32>,
    pub recording_sha256: Option<String>,
    pub recording_bytes: Option<i64>,
}

/// Which sessions a listing answers, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFilter {
    pub active_only: bool,
    pub node_id: Option<String>,
    pub limit: i64,
}
