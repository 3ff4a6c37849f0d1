//! Logs: lines nodes ship (files they follow, the systemd journal), stored
//! centrally and queried across the fleet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Increases in the order lines were stored: pass the last one as
    /// `after` to read on (a tail)
    pub id: i64,
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// When the node read it (Unix ms)
    pub at: i64,
    /// `file:/var/log/app.log`, `journal:nginx.service` or `journal:`
    pub source: String,
    /// `critical`, `error`, `warning`, `info` or `debug`, when known
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    pub message: String,
    /// `pid`, `identifier` (journal), `cut_from_bytes` (a line longer than
    /// 16 KiB, cut)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// `GET /v1/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogQueryAnswer {
    /// Oldest first
    pub entries: Vec<LogLine>,
    /// The id of the last entry (or the `after` given when none): the next
    /// `after`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "logs";
    let text = |example: &str| json!({"type": "string", "examples": [example]});
    api.op(Op::get(
        "/v1/logs",
        TAG,
        "Log lines nodes shipped, oldest first (logs:Get on node/* first, then only the \
         nodes logs:Get allows with their tags; with node, logs:Get on that node)",
    )
    .query("node", text("web-1"), "Only this node (name or id)")
    .query(
        "source",
        text("journal:nginx.service"),
        "Only this source; ending with * a prefix (file:/var/log/*)",
    )
    .query(
        "level",
        text("error"),
        "This level or more severe: critical, error, warning, info, debug",
    )
    .query(
        "text",
        text("timed out"),
        "Lines containing this text (ASCII case-insensitive)",
    )
    .query(
        "grep",
        text("upstream .* timed out"),
        "Lines matching this regular expression",
    )
    .query(
        "since",
        text("1h"),
        "Lines from this long ago (90s, 30m, 6h, 7d) or this Unix ms",
    )
    .query("until", text("1796209200000"), "Lines before this Unix ms")
    .query(
        "after",
        json!({"type": "integer", "examples": [1042]}),
        "Lines stored after this id (the previous answer's cursor); then the oldest \
         `limit`, else the newest",
    )
    .query(
        "limit",
        json!({"type": "integer", "examples": [100]}),
        "At most this many lines (default 100, at most 1000)",
    )
    .ok::<LogQueryAnswer>());
}
