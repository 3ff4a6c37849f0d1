//! The logs service: the only code writing logs, and their reads.
//!
//! Agents' batches are checked here (oversized lines cut, bad levels
//! dropped, too many lines trimmed: logged, the batch is still stored and
//! acknowledged so the agent does not resend it forever), then
//! group-committed by the [`LogsWriter`](super::writer::LogsWriter).
//! Queries are people's: `logs:Get` on `node/*` first (refused otherwise),
//! then only the nodes `logs:Get` allows with their tags; with a node named,
//! `logs:Get` on that node.
//!
//! A `grep` (regular expression) is applied here, after the store's filters,
//! over at most [`MAX_GREP_SCAN`] stored lines per query: the answer's
//! cursor is the last line scanned, so a tail reading on with it never scans
//! a line twice.

use std::collections::BTreeMap;

use operon_proto::{LOG_LEVELS, LogBatch};
use operon_store::{LogBatchWrite, LogFilter, LogLine, Node, StoredLog};
use regex::Regex;

use crate::access::{Principal, check_action, node_request};
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// The action guarding log reads.
pub const ACTION: &str = "logs:Get";
/// Most lines one batch may carry; the rest are dropped.
const MAX_LINES: usize = 10_000;
/// Longest stored message (the agent cuts at 16 KiB; older or other agents
/// are held to it here too).
const MAX_MESSAGE: usize = 16 * 1024;
const MAX_SOURCE: usize = 1024;
const MAX_FIELDS: usize = 32;
const MAX_FIELD: usize = 1024;
/// Most lines answered.
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 100;
/// Most stored lines a grep looks at per query.
pub const MAX_GREP_SCAN: u32 = 20_000;
/// Longest `grep` pattern.
const MAX_PATTERN: usize = 512;

pub struct LogsService<'a> {
    pub(crate) state: &'a AppState,
}

/// A parsed query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// A node name or id: only that node.
    pub node: Option<String>,
    pub source: Option<String>,
    pub level: Option<String>,
    /// Plain text the message contains.
    pub text: Option<String>,
    /// A regular expression the message matches.
    pub grep: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

/// A query's answer: lines oldest first, with their node.
#[derive(Debug, Clone, PartialEq)]
pub struct LogAnswer {
    pub entries: Vec<(StoredLog, Option<String>)>,
    /// The last id scanned (or the `after` given): where to read on.
    pub cursor: Option<i64>,
}

impl LogsService<'_> {
    /// Store an agent's batch once it is committed (a seq already stored
    /// for this node is not stored again). `Ok`: the caller may acknowledge.
    pub async fn record(&self, node: &Node, batch: LogBatch) -> Result<(), ServiceError> {
        let now = now_millis();
        let (lines, dropped) = checked_lines(batch.entries);
        if dropped > 0 {
            tracing::warn!(node_id = %node.id, seq = batch.seq, dropped, "a log batch had more than {MAX_LINES} lines; dropped the rest");
        }
        let write = LogBatchWrite {
            node_id: node.id.clone(),
            seq: batch.seq,
            received_at: now,
            lines,
        };
        let stored = self
            .state
            .logs_writer
            .write(write)
            .await
            .map_err(|e| ServiceError::new(ErrorKind::Unavailable, "StoreUnavailable", e))?;
        if !stored {
            tracing::debug!(node_id = %node.id, seq = batch.seq, "a resent log batch was already stored");
        }
        Ok(())
    }

    /// Lines the caller may read matching `q`, oldest first.
    pub async fn query(&self, principal: &Principal, q: &LogQuery) -> ServiceResult<LogAnswer> {
        if let Some(level) = &q.level
            && !LOG_LEVELS.contains(&level.as_str())
        {
            return Err(ServiceError::invalid(
                "InvalidQuery",
                format!("level {level:?} is not one of {}", LOG_LEVELS.join(", ")),
            ));
        }
        let grep = q.grep.as_deref().map(compile_grep).transpose()?;
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let (nodes, all) = self.readable_nodes(principal, q.node.as_deref()).await?;
        let filter = LogFilter {
            node_ids: (!all).then(|| nodes.keys().cloned().collect()),
            source: q.source.clone(),
            level: q.level.clone(),
            since: q.since,
            until: q.until,
            after_id: q.after,
            contains: q.text.clone(),
            limit: if grep.is_some() { MAX_GREP_SCAN } else { limit },
        };
        let scanned = self.state.store.query_logs(&filter).await?;
        let cursor = scanned.last().map(|l| l.id).or(q.after);
        let mut kept: Vec<StoredLog> = match &grep {
            Some(re) => scanned
                .into_iter()
                .filter(|l| re.is_match(&l.message))
                .collect(),
            None => scanned,
        };
        // Oldest first: a tail keeps the first `limit`, a query the last.
        let cursor = if kept.len() > limit as usize {
            if q.after.is_some() {
                kept.truncate(limit as usize);
                kept.last().map(|l| l.id)
            } else {
                kept.drain(..kept.len() - limit as usize);
                cursor
            }
        } else {
            cursor
        };
        let entries = kept
            .into_iter()
            .map(|l| {
                let name = nodes.get(&l.node_id).map(|n| n.name.clone());
                (l, name)
            })
            .collect();
        Ok(LogAnswer { entries, cursor })
    }

    /// Delete lines older than the retention, in short transactions.
    pub async fn prune(&self, now: i64) -> ServiceResult<u64> {
        let before = now.saturating_sub(self.state.config.logs_retention_ms);
        let mut total = 0;
        loop {
            let deleted = self
                .state
                .store
                .prune_logs(before, super::PRUNE_ROWS_PER_STEP)
                .await?;
            total += deleted;
            if deleted < u64::from(super::PRUNE_ROWS_PER_STEP) {
                return Ok(total);
            }
            // Let waiting writers in between steps.
            tokio::task::yield_now().await;
        }
    }

    /// Nodes whose logs the caller may read, by id, and whether that is
    /// every node: the one named (`logs:Get` on it), or after `logs:Get` on
    /// `node/*` (refused otherwise) those it allows.
    async fn readable_nodes(
        &self,
        principal: &Principal,
        node: Option<&str>,
    ) -> ServiceResult<(BTreeMap<String, Node>, bool)> {
        if let Some(key) = node {
            let node = self.state.fleet().find_for(principal, ACTION, key).await?;
            return Ok((BTreeMap::from([(node.id.clone(), node)]), false));
        }
        check_action(&self.state.audit, principal, ACTION, "node/*").await?;
        let listed = self.state.store.list_nodes().await?;
        let count = listed.len();
        let readable: BTreeMap<String, Node> = listed
            .into_iter()
            .filter(|n| {
                principal
                    .decide(&node_request(principal, ACTION, n))
                    .is_ok()
            })
            .map(|n| (n.id.clone(), n))
            .collect();
        let all = readable.len() == count;
        Ok((readable, all))
    }
}

fn compile_grep(pattern: &str) -> ServiceResult<Regex> {
    if pattern.len() > MAX_PATTERN {
        return Err(ServiceError::invalid(
            "InvalidQuery",
            format!("grep is longer than {MAX_PATTERN} bytes"),
        ));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ServiceError::invalid("InvalidQuery", format!("grep {pattern:?}: {e}")))
}

/// Cut `text` to `max` bytes on a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The lines to store and how many were dropped (beyond [`MAX_LINES`]).
/// Oversized texts are cut, unknown levels dropped, fields bounded.
fn checked_lines(entries: Vec<operon_proto::LogEntry>) -> (Vec<LogLine>, usize) {
    let dropped = entries.len().saturating_sub(MAX_LINES);
    let lines = entries
        .into_iter()
        .take(MAX_LINES)
        .map(|e| LogLine {
            at: e.at,
            source: cut(e.source, MAX_SOURCE),
            level: e.level.filter(|l| LOG_LEVELS.contains(&l.as_str())),
            message: cut(e.message, MAX_MESSAGE),
            fields: e
                .fields
                .into_iter()
                .take(MAX_FIELDS)
                .map(|(k, v)| (cut(k, MAX_FIELD), cut(v, MAX_FIELD)))
                .collect(),
        })
        .collect();
    (lines, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_levels_checked() {
        let entry = |level: Option<&str>, message: String| operon_proto::LogEntry {
            at: 1,
            source: "file:/l".into(),
            level: level.map(str::to_owned),
            message,
            fields: Default::default(),
        };
        let (lines, dropped) = checked_lines(vec![
            entry(Some("error"), "a".into()),
            entry(Some("loud"), "b".into()),
            entry(None, "é".repeat(MAX_MESSAGE)),
        ]);
        assert_eq!(dropped, 0);
        assert_eq!(lines[0].level.as_deref(), Some("error"));
        assert_eq!(lines[1].level, None, "unknown level words are dropped");
        assert_eq!(lines[2].message.len(), MAX_MESSAGE);
        let many = (0..MAX_LINES + 3)
            .map(|_| entry(None, "x".into()))
            .collect();
        let (lines, dropped) = checked_lines(many);
        assert_eq!((lines.len(), dropped), (MAX_LINES, 3));
    }

    #[test]
    fn grep_patterns_are_checked() {
        assert!(compile_grep("time[d ]out").is_ok());
        assert!(compile_grep("(unclosed").is_err());
        assert!(compile_grep(&"a".repeat(MAX_PATTERN + 1)).is_err());
    }
}
