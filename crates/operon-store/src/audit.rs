//! The append-only, hash-chained audit log.
//!
//! Each record stores the SHA-256 of its own content together with the hash
//! of the record before it (`prev_hash`; the first record links to
//! [`AUDIT_GENESIS`]). Changing a record breaks its own hash; removing,
//! inserting or reordering records breaks a link. [`verify_chain`] walks the
//! log and names every such break. The sequence number is the row's position
//! and is deliberately *not* part of the hash: reordering shows as a broken
//! link, which is what it is.
//!
//! Appenders take the head (last sequence number and hash) from the
//! `audit_head` row with `UPDATE ... RETURNING` in their transaction, which
//! locks it until commit: concurrent appenders queue on that row and form one
//! chain without relying on SQLite's single write lock.
//!
//! Removing records from the end leaves a valid shorter chain; the server
//! guards against that by keeping the head (last sequence number and hash)
//! outside the database and comparing it on verification.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first record.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What is written: who did what to which resource, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub resource: String,
    /// `allowed`, `denied`, `unauthenticated`, `failed`, ...
    pub outcome: String,
    /// Free-form details; never secrets.
    pub detail: Value,
}

/// A record as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Where one append left the chain: the head it extended and the new head.
/// Appends form one linear chain, so two appends never overlap: a record
/// keeper that remembers a head can tell an append that continues the chain
/// from one that rewrote it (see the server's audit head file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAdvance {
    /// The head before the append (0 and [`AUDIT_GENESIS`] for an empty log).
    pub prev_seq: i64,
    pub prev_hash: String,
    /// The last record appended.
    pub seq: i64,
    pub hash: String,
}

/// Which records [`AuditStore::list_audit`](crate::AuditStore::list_audit) returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Exact action, or a prefix ending in `*` (`commands:*`).
    pub action: Option<String>,
    /// Only records at or after this time (ms).
    pub since: Option<i64>,
    /// Most recent `limit` records (returned oldest first).
    pub limit: i64,
}

/// A break in the chain, found by [`verify_chain`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditProblem {
    /// The record's content no longer matches its hash.
    Edited { seq: i64 },
    /// Sequence numbers jump: records between were removed.
    Gap { after: i64, next: i64 },
    /// The record links to another record than the one before it.
    Reordered { seq: i64, links_to: i64 },
    /// The record links to a hash no record has: the record before it was
    /// removed or rewritten.
    BrokenLink { seq: i64 },
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditProblem::Edited { seq } => write!(
                f,
                "record {seq} was edited: its content does not match its hash"
            ),
            AuditProblem::Gap { after, next } => write!(
                f,
                "records {}..{} were removed: record {next} follows record {after}",
                after + 1,
                next - 1
            ),
            AuditProblem::Reordered { seq, links_to } => write!(
                f,
                "record {seq} is out of order: it was written after record {links_to}"
            ),
            AuditProblem::BrokenLink { seq } => write!(
                f,
                "record {seq} does not follow the record before it: that record was removed or rewritten"
            ),
        }
    }
}

/// The hash of a record's content, linked to `prev_hash`.
pub fn audit_hash(
    at: i64,
    actor: &str,
    action: &str,
    resource: &str,
    outcome: &str,
    detail: &str,
    prev_hash: &str,
) -> String {
    let canonical =
        serde_json::to_string(&(at, actor, action, resource, outcome, detail, prev_hash))
            .expect("strings and integers serialise");
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// A record in the form verification needs: its detail as stored text.
#[derive(Debug, Clone)]
pub struct StoredAuditRecord {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredAuditRecord {
    fn content_hash(&self) -> String {
        audit_hash(
            self.at,
            &self.actor,
            &self.action,
            &self.resource,
            &self.outcome,
            &self.detail,
            &self.prev_hash,
        )
    }
}

/// Every break in a log given in sequence order. Empty means intact.
pub fn verify_chain(records: &[StoredAuditRecord]) -> Vec<AuditProblem> {
    let by_hash: std::collections::HashMap<&str, i64> =
        records.iter().map(|r| (r.hash.as_str(), r.seq)).collect();
    let mut problems = Vec::new();
    let mut previous: Option<&StoredAuditRecord> = None;
    for record in records {
        if record.content_hash() != record.hash {
            problems.push(AuditProblem::Edited { seq: record.seq });
        }
        let expected_seq = previous.map_or(1, |p| p.seq + 1);
        if record.seq != expected_seq {
            problems.push(AuditProblem::Gap {
                after: expected_seq - 1,
                next: record.seq,
            });
        }
        let expected_prev = previous.map_or(AUDIT_GENESIS, |p| p.hash.as_str());
        if record.prev_hash != expected_prev && record.seq == expected_seq {
            match by_hash.get(record.prev_hash.as_str()) {
                Some(&links_to) => problems.push(AuditProblem::Reordered {
                    seq: record.seq,
                    links_to,
                }),
                None if record.prev_hash == AUDIT_GENESIS => {
                    problems.push(AuditProblem::Reordered {
                        seq: record.seq,
                        links_to: 0,
                    })
                }
                None => problems.push(AuditProblem::BrokenLink { seq: record.seq }),
            }
        }
        previous = Some(record);
    }
    problems
}

impl From<StoredAuditRecord> for AuditRecord {
    fn from(r: StoredAuditRecord) -> Self {
        AuditRecord {
            detail: serde_json::from_str(&r.detail).unwrap_or(Value::String(r.detail)),
            seq: r.seq,
            at: r.at,
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            outcome: r.outcome,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<StoredAuditRecord> {
        let mut prev = AUDIT_GENESIS.to_string();
        (1..=n as i64)
            .map(|seq| {
                let mut r = StoredAuditRecord {
                    seq,
                    at: 1000 + seq,
                    actor: "alice".into(),
                    action: "nodes:Tag".into(),
                    resource: format!("node/n{seq}"),
                    outcome: "allowed".into(),
                    detail: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = r.content_hash();
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_has_no_problems() {
        assert!(verify_chain(&chain(5)).is_empty());
        assert!(verify_chain(&[]).is_empty());
    }

    #[test]
    fn an_edit_names_the_record() {
        let mut log = chain(5);
        log[2].actor = "mallory".into();
        assert_eq!(verify_chain(&log), vec![AuditProblem::Edited { seq: 3 }]);
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
        let mut log = chain(5);
        log[2].outcome = "denied".into();
        log[2].hash = log[2].content_hash();
        assert_eq!(
            verify_chain(&log),
            vec![AuditProblem::BrokenLink { seq: 4 }]
        );
    }

    #[test]
    fn a_removal_is_a_gap() {
        let mut log = chain(5);
        log.remove(1);
        assert_eq!(
            verify_chain(&log),
            vec![AuditProblem::Gap { after: 1, next: 3 }]
        );
    }

    #[test]
    fn a_swap_is_reported_as_reordering() {
        let mut log = chain(5);
        log.swap(1, 2);
        log[1].seq = 2;
        log[2].seq = 3;
        let problems = verify_chain(&log);
        // Positions are the current ones: the record now at 2 was written
        // after the one now at 3, and so on.
        for (seq, links_to) in [(2, 3), (3, 1), (4, 2)] {
            assert!(
                problems.contains(&AuditProblem::Reordered { seq, links_to }),
                "{problems:?}"
            );
        }
        assert!(
            !problems
                .iter()
                .any(|p| matches!(p, AuditProblem::Edited { .. }))
        );
    }

    #[test]
    fn messages_say_what_happened() {
        assert_eq!(
            AuditProblem::Gap { after: 1, next: 4 }.to_string(),
            "records 2..3 were removed: record 4 follows record 1"
        );
    }
}
