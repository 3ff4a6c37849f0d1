//! Monitors: health checks and log watchers the server pushes to the nodes
//! their targets select (the agent runs them and reports metrics).

use serde::{Deserialize, Serialize};

/// `kind` of a health check.
pub const MONITOR_CHECK: &str = "check";
/// `kind` of a log watcher.
pub const MONITOR_WATCHER: &str = "watcher";
/// `kind` of a log the node ships to the server.
pub const MONITOR_SHIPPING: &str = "shipping";

/// A monitor as stored: what it looks at is the service's JSON (`spec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorRecord {
    pub name: String,
    /// [`MONITOR_CHECK`], [`MONITOR_WATCHER`] or [`MONITOR_SHIPPING`].
    pub kind: String,
    pub spec: serde_json::Value,
    /// Target strings (`tag:KEY=VALUE`, node names, `inventory:...`).
    pub targets: Vec<String>,
    /// Who wrote this version.
    pub author: String,
    /// The role it is pushed as (its author when `None`).
    pub role: Option<String>,
    /// 1 at creation, +1 per change.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}
