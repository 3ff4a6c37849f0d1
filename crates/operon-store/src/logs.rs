//! Log records: the lines nodes ship, the batches they come in, and the
//! filters a query applies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One line to store.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// When the node saw it (Unix ms).
    pub at: i64,
    pub source: String,
    pub level: Option<String>,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

/// One agent batch: stored whole, once per `(node_id, seq)` (among the
/// node's recent seqs).
#[derive(Debug, Clone, PartialEq)]
pub struct LogBatchWrite {
    pub node_id: String,
    pub seq: u64,
    /// When the server received it (Unix ms).
    pub received_at: i64,
    pub lines: Vec<LogLine>,
}

/// A stored line; `id` increases in the order lines were stored (a tail's
/// cursor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLog {
    pub id: i64,
    pub node_id: String,
    pub at: i64,
    pub source: String,
    pub level: Option<String>,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

/// Which lines a query answers. Every set field narrows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// Only these nodes (`None`: every node; empty: none).
    pub node_ids: Option<Vec<String>>,
    /// The source, exactly (`file:/var/log/app.log`), or every source
    /// starting with it when it ends with `*` (`journal:*`).
    pub source: Option<String>,
    /// This level or a more severe one ([`operon_proto::LOG_LEVELS`]).
    pub level: Option<String>,
    /// `at >= since` (Unix ms).
    pub since: Option<i64>,
    /// `at < until` (Unix ms).
    pub until: Option<i64>,
    /// Only lines stored after this id (a tail's cursor); then the oldest
    /// `limit` are answered, else the newest `limit`. Oldest first always.
    pub after_id: Option<i64>,
    /// The message contains this text (ASCII case-insensitive).
    pub contains: Option<String>,
    pub limit: u32,
}

/// The rank of a level: its index in [`operon_proto::LOG_LEVELS`] (0 is
/// `critical`), and one past the last for none or an unknown word.
pub fn log_level_rank(level: Option<&str>) -> i64 {
    level
        .and_then(|level| operon_proto::LOG_LEVELS.iter().position(|l| *l == level))
        .unwrap_or(operon_proto::LOG_LEVELS.len()) as i64
}
