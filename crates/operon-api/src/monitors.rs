//! Monitors: health checks and log watchers that the agents of the targeted
//! nodes run, reporting `check.healthy`, `check.latency_ms` (dimension
//! `check`) and `log.matches` (dimension `watcher`) as metrics.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// What a health check looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeSpec {
    /// Healthy when `systemctl is-active UNIT` says `active`
    Systemd { unit: String },
    /// Healthy when a process of this name (comm or argv[0]'s file name) runs
    Process { name: String },
    /// Healthy when a TCP connection opens
    Tcp { host: String, port: u16 },
    /// Healthy when GET answers expect_status (any 2xx/3xx when absent) and
    /// the body matches body_regex (when given)
    Http {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_regex: Option<String>,
    },
    /// Healthy when `/bin/sh -c COMMAND` run as run_as exits 0 (pushed only
    /// to nodes where the monitor's role may commands:Run as that user)
    Command { command: String, run_as: String },
}

/// Where a log watcher reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogSourceSpec {
    /// A file, followed across rotation and truncation from its end
    File { path: String },
    /// The systemd journal (of one unit when given)
    Journal {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
}

/// Seconds between two runs of a check unless given.
pub const DEFAULT_INTERVAL_SECS: u32 = 30;
/// Seconds a check may take unless given.
pub const DEFAULT_TIMEOUT_SECS: u32 = 5;

fn default_interval() -> u32 {
    DEFAULT_INTERVAL_SECS
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECS
}

/// A health check, a log watcher or a shipped log, without its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MonitorSpec {
    /// A health check: `check.healthy` (1/0) and `check.latency_ms`
    Check {
        /// 5 to 3600 seconds (30 by default)
        #[serde(default = "default_interval")]
        interval_secs: u32,
        /// At least 1 and below the interval (5 by default)
        #[serde(default = "default_timeout")]
        timeout_secs: u32,
        probe: ProbeSpec,
    },
    /// A log watcher: `log.matches`, lines matching per sample
    Watcher {
        source: LogSourceSpec,
        /// A regular expression (Rust `regex` syntax)
        pattern: String,
    },
    /// A log the node ships line by line to the server (`GET /v1/logs`);
    /// pushed only where its actor may `monitors:Apply` and `logs:Ship`
    Shipping { source: LogSourceSpec },
}

impl MonitorSpec {
    /// `check`, `watcher` or `shipping`.
    pub fn kind(&self) -> &'static str {
        match self {
            MonitorSpec::Check { .. } => "check",
            MonitorSpec::Watcher { .. } => "watcher",
            MonitorSpec::Shipping { .. } => "shipping",
        }
    }
}

/// `PUT /v1/monitors/{name}`: create or replace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PutMonitor {
    #[serde(flatten)]
    pub spec: MonitorSpec,
    /// The target grammar: `tag:KEY=VALUE`, `all`, node names, `inventory:...`
    pub targets: Vec<String>,
    /// The role it is pushed as (roles:Pass); its author when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The version this replaces (409 if it is not the current one)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// A monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Monitor {
    pub name: String,
    #[serde(flatten)]
    pub spec: MonitorSpec,
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub author: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A targeted node and whether the monitor reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorNode {
    pub node_id: String,
    pub node_name: String,
    /// Connected now
    pub online: bool,
    /// The agent runs monitors (announced the monitors capability when it
    /// last connected; false for an offline node)
    pub capable: bool,
    /// The monitor's role (or author) may put it on this node
    pub authorized: bool,
    /// Why not, when not authorized
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /v1/monitors/{name}`: a monitor with the nodes it targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorDetail {
    #[serde(flatten)]
    pub monitor: Monitor,
    pub nodes: Vec<MonitorNode>,
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "monitors";
    api.op(Op::put(
        "/v1/monitors/{name}",
        TAG,
        "Create or replace a health check or log watcher (monitors:Put on monitor/NAME); \
             every targeted node whose agent runs monitors gets its new set at once, each \
             node only the monitors its role (or author) may monitors:Apply there (and, for \
             a command probe, commands:Run as run_as)",
    )
    .body::<PutMonitor>()
    .example(
        json!({"kind": "check", "targets": ["tag:role=web"], "interval_secs": 30,
                    "timeout_secs": 5,
                    "probe": {"type": "http", "url": "http://127.0.0.1:8080/health",
                              "expect_status": 200}}),
    )
    .may(&[409])
    .ok::<Monitor>());
    api.op(Op::get(
        "/v1/monitors",
        TAG,
        "List monitors (those monitors:Get allows)",
    )
    .ok_list::<Monitor>());
    api.op(Op::get(
        "/v1/monitors/{name}",
        TAG,
        "A monitor with the nodes it targets and whether it reaches them (monitors:Get)",
    )
    .ok::<MonitorDetail>());
    api.op(Op::delete(
        "/v1/monitors/{name}",
        TAG,
        "Delete a monitor (monitors:Delete); its nodes stop running it",
    )
    .ok::<Monitor>());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_reads_flat_with_defaults() {
        let put: PutMonitor = serde_json::from_value(json!({
            "kind": "check", "targets": ["all"],
            "probe": {"type": "tcp", "host": "db", "port": 5432}
        }))
        .unwrap();
        assert_eq!(
            put.spec,
            MonitorSpec::Check {
                interval_secs: 30,
                timeout_secs: 5,
                probe: ProbeSpec::Tcp {
                    host: "db".into(),
                    port: 5432
                }
            }
        );
        let watcher: PutMonitor = serde_json::from_value(json!({
            "kind": "watcher", "targets": ["web-1"], "role": "ops",
            "source": {"type": "journal"}, "pattern": "CRITICAL"
        }))
        .unwrap();
        assert_eq!(watcher.spec.kind(), "watcher");
        let back = serde_json::to_value(&watcher).unwrap();
        assert_eq!(back["source"], json!({"type": "journal"}));
        assert_eq!(back["kind"], "watcher");
    }
}
