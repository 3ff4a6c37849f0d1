//! The audit log on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::{
    AuditAdvance, AuditEntry, AuditFilter, AuditRecord, AuditStore, Result, StoredAuditRecord,
    audit_hash, db,
};

/// Append entries, chained, inside the caller's write transaction (so a
/// record can commit together with what it records). Returns the head it
/// extended and the new head.
pub(crate) async fn append_audit_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    entries: &[AuditEntry],
    at: i64,
) -> Result<Option<AuditAdvance>> {
    if entries.is_empty() {
        return Ok(None);
    }
    // Reserve the sequence numbers and read the previous hash with one
    // update of the head row: it stays locked until this transaction ends,
    // so concurrent appenders (the audit writer, the event writer) form one
    // chain on any engine with row locks.
    let n = entries.len() as i64;
    let head: Option<(i64, String)> =
        sqlx::query_as("UPDATE audit_head SET seq = seq + ? WHERE id = 1 RETURNING seq, hash")
            .bind(n)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db("taking the audit head"))?;
    let (last, mut prev_hash) = head
        .ok_or_else(|| crate::corrupt("taking the audit head", "the audit_head row is missing"))?;
    let mut seq = last - n;
    let (prev_seq, first_prev_hash) = (seq, prev_hash.clone());
    for entry in entries {
        seq += 1;
        let detail = serde_json::to_string(&entry.detail).expect("JSON values serialise");
        let hash = audit_hash(
            at,
            &entry.actor,
            &entry.action,
            &entry.resource,
            &entry.outcome,
            &detail,
            &prev_hash,
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, resource, outcome, detail, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.resource)
        .bind(&entry.outcome)
        .bind(&detail)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut **tx)
        .await
        .map_err(db("appending to the audit log"))?;
        prev_hash = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = ? WHERE id = 1")
        .bind(&prev_hash)
        .execute(&mut **tx)
        .await
        .map_err(db("moving the audit head"))?;
    Ok(Some(AuditAdvance {
        prev_seq,
        prev_hash: first_prev_hash,
        seq,
        hash: prev_hash,
    }))
}

const AUDIT_SELECT: &str =
    "SELECT seq, at, actor, action, resource, outcome, detail, prev_hash, hash FROM audit_log";

fn stored_from_row(row: &sqlx::sqlite::SqliteRow) -> StoredAuditRecord {
    StoredAuditRecord {
        seq: row.get("seq"),
        at: row.get("at"),
        actor: row.get("actor"),
        action: row.get("action"),
        resource: row.get("resource"),
        outcome: row.get("outcome"),
        detail: row.get("detail"),
        prev_hash: row.get("prev_hash"),
        hash: row.get("hash"),
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entries: &[AuditEntry], at: i64) -> Result<Option<AuditAdvance>> {
        if entries.is_empty() {
            return Ok(None);
        }
        let mut tx = self.begin_write("appending to the audit log").await?;
        let head = append_audit_in(&mut tx, entries, at).await?;
        tx.commit().await.map_err(db("committing audit records"))?;
        Ok(head)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let mut sql = format!("{AUDIT_SELECT} WHERE 1 = 1");
        if filter.actor.is_some() {
            sql.push_str(" AND actor = ?");
        }
        let action = filter.action.as_deref().map(|a| match a.strip_suffix('*') {
            Some(prefix) => (
                " AND action LIKE ? ESCAPE '\\'",
                format!("{}%", escape_like(prefix)),
            ),
            None => (" AND action = ?", a.to_string()),
        });
        if let Some((clause, _)) = &action {
            sql.push_str(clause);
        }
        if filter.since.is_some() {
            sql.push_str(" AND at >= ?");
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(actor) = &filter.actor {
            query = query.bind(actor.clone());
        }
        if let Some((_, value)) = action {
            query = query.bind(value);
        }
        if let Some(since) = filter.since {
            query = query.bind(since);
        }
        let rows = query
            .bind(filter.limit.max(1))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing audit records"))?;
        let mut records: Vec<AuditRecord> =
            rows.iter().map(|r| stored_from_row(r).into()).collect();
        records.reverse();
        Ok(records)
    }

    async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = ?")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an audit record"))
    }

    async fn audit_last(&self) -> Result<Option<(i64, String)>> {
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading the last audit record"))
    }

    async fn audit_chain(&self) -> Result<Vec<StoredAuditRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{AUDIT_SELECT} ORDER BY seq")))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading the audit log"))?;
        Ok(rows.iter().map(stored_from_row).collect())
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
