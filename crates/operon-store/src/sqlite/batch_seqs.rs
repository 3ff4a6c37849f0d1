//! The batch seqs recently stored per node, for batches agents resend until
//! acknowledged (metrics, logs): a resent seq is recognised and stored once.

use sqlx::{Sqlite, Transaction};

use super::{from_json, to_json};
use crate::{Result, db};

/// How many recent batch seqs are remembered per node. Agents send a batch
/// every few seconds and resend only what was not acknowledged, right after
/// reconnecting. A metric resend older than this is still stored once per
/// point, since a raw point is keyed by its series and instant.
pub(crate) const RECENT_SEQS: usize = 256;

/// Which table keeps a kind's seqs (`node_id`, `seqs` as JSON, `received_at`).
#[derive(Clone, Copy)]
pub(crate) enum SeqTable {
    Metrics,
    Logs,
}

impl SeqTable {
    fn select(self) -> &'static str {
        match self {
            SeqTable::Metrics => "SELECT seqs FROM metric_batches WHERE node_id = ?",
            SeqTable::Logs => "SELECT seqs FROM log_batches WHERE node_id = ?",
        }
    }

    fn upsert(self) -> &'static str {
        match self {
            SeqTable::Metrics => {
                "INSERT INTO metric_batches (node_id, seqs, received_at) VALUES (?, ?, ?)
                 ON CONFLICT (node_id) DO UPDATE SET seqs = excluded.seqs, received_at = excluded.received_at"
            }
            SeqTable::Logs => {
                "INSERT INTO log_batches (node_id, seqs, received_at) VALUES (?, ?, ?)
                 ON CONFLICT (node_id) DO UPDATE SET seqs = excluded.seqs, received_at = excluded.received_at"
            }
        }
    }
}

/// Remember `seq` for the node in `table`; `false` if it was already remembered.
pub(crate) async fn remember_seq(
    tx: &mut Transaction<'static, Sqlite>,
    table: SeqTable,
    node_id: &str,
    seq: u64,
    received_at: i64,
) -> Result<bool> {
    let held: Option<String> = sqlx::query_scalar(table.select())
        .bind(node_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("reading batch seqs"))?;
    let mut seqs: Vec<u64> = match held {
        Some(text) => from_json("reading batch seqs", &text)?,
        None => Vec::new(),
    };
    if seqs.contains(&seq) {
        return Ok(false);
    }
    seqs.push(seq);
    let excess = seqs.len().saturating_sub(RECENT_SEQS);
    seqs.drain(..excess);
    sqlx::query(table.upsert())
        .bind(node_id)
        .bind(to_json(&seqs))
        .bind(received_at)
        .execute(&mut **tx)
        .await
        .map_err(db("recording a batch seq"))?;
    Ok(true)
}
