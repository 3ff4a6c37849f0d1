//! Logs on SQLite: `log_entries` (one row per line, `id` in the order
//! stored) and `log_batches` (the seqs recently stored per node).

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::batch_seqs::{SeqTable, remember_seq};
use super::{SqliteStore, from_json, to_json};
use crate::{LogBatchWrite, LogFilter, LogStore, Result, StoredLog, db, log_level_rank};

/// Rows per multi-row insert (7 variables each, below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;

async fn insert_lines(tx: &mut Transaction<'static, Sqlite>, batch: &LogBatchWrite) -> Result<()> {
    for chunk in batch.lines.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO log_entries (node_id, at, source, level, level_rank, message, fields) ",
        );
        insert.push_values(chunk, |mut row, line| {
            row.push_bind(&batch.node_id)
                .push_bind(line.at)
                .push_bind(&line.source)
                .push_bind(&line.level)
                .push_bind(log_level_rank(line.level.as_deref()))
                .push_bind(&line.message)
                .push_bind(to_json(&line.fields));
        });
        insert
            .build()
            .execute(&mut **tx)
            .await
            .map_err(db("writing log lines"))?;
    }
    Ok(())
}

/// `text` with LIKE's wildcards escaped (by `\`), between `%`s.
fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn row_to_log(row: &sqlx::sqlite::SqliteRow) -> Result<StoredLog> {
    let fields: String = row.get("fields");
    Ok(StoredLog {
        id: row.get("id"),
        node_id: row.get("node_id"),
        at: row.get("at"),
        source: row.get("source"),
        level: row.get("level"),
        message: row.get("message"),
        fields: from_json("reading log fields", &fields)?,
    })
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn write_log_batches(&self, batches: &[LogBatchWrite]) -> Result<Vec<bool>> {
        let mut tx = self.begin_write("starting a logs write").await?;
        let mut stored = Vec::with_capacity(batches.len());
        for batch in batches {
            let new = remember_seq(
                &mut tx,
                SeqTable::Logs,
                &batch.node_id,
                batch.seq,
                batch.received_at,
            )
            .await?;
            if new {
                insert_lines(&mut tx, batch).await?;
            }
            stored.push(new);
        }
        tx.commit().await.map_err(db("committing logs"))?;
        Ok(stored)
    }

    async fn query_logs(&self, filter: &LogFilter) -> Result<Vec<StoredLog>> {
        if filter.node_ids.as_ref().is_some_and(Vec::is_empty) || filter.limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, node_id, at, source, level, message, fields FROM log_entries WHERE 1 = 1",
        );
        if let Some(nodes) = &filter.node_ids {
            query.push(" AND node_id IN (");
            let mut list = query.separated(", ");
            for node in nodes {
                list.push_bind(node);
            }
            list.push_unseparated(")");
        }
        match filter.source.as_deref().map(|s| (s, s.strip_suffix('*'))) {
            Some((_, Some(prefix))) => {
                // A range, not LIKE: exact bytes and the index-friendly form.
                query.push(" AND substr(source, 1, length(");
                query.push_bind(prefix);
                query.push(")) = ");
                query.push_bind(prefix);
            }
            Some((exact, None)) => {
                query.push(" AND source = ");
                query.push_bind(exact);
            }
            None => {}
        }
        if let Some(level) = &filter.level {
            query.push(" AND level_rank <= ");
            query.push_bind(log_level_rank(Some(level)));
        }
        if let Some(since) = filter.since {
            query.push(" AND at >= ");
            query.push_bind(since);
        }
        if let Some(until) = filter.until {
            query.push(" AND at < ");
            query.push_bind(until);
        }
        if let Some(after) = filter.after_id {
            query.push(" AND id > ");
            query.push_bind(after);
        }
        if let Some(text) = &filter.contains {
            query.push(" AND message LIKE ");
            query.push_bind(like_contains(text));
            query.push(" ESCAPE '\\'");
        }
        // A tail reads on from its cursor; a query wants the latest lines.
        let order = if filter.after_id.is_some() {
            "ASC"
        } else {
            "DESC"
        };
        query.push(format!(" ORDER BY id {order} LIMIT "));
        query.push_bind(i64::from(filter.limit));
        let rows = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(db("querying logs"))?;
        let mut logs = rows.iter().map(row_to_log).collect::<Result<Vec<_>>>()?;
        if filter.after_id.is_none() {
            logs.reverse();
        }
        Ok(logs)
    }

    async fn prune_logs(&self, before: i64, max_rows: u32) -> Result<u64> {
        let mut tx = self.begin_write("starting a logs prune").await?;
        let deleted = sqlx::query(
            "DELETE FROM log_entries WHERE id IN
                (SELECT id FROM log_entries WHERE at < ? ORDER BY at LIMIT ?)",
        )
        .bind(before)
        .bind(i64::from(max_rows))
        .execute(&mut *tx)
        .await
        .map_err(db("pruning logs"))?
        .rows_affected();
        sqlx::query("DELETE FROM log_batches WHERE received_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(db("pruning log batch seqs"))?;
        tx.commit().await.map_err(db("committing a logs prune"))?;
        Ok(deleted)
    }
}
