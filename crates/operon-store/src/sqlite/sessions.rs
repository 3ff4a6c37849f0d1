//! Sessions on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::{Result, SESSION_ACTIVE, SessionEnd, SessionFilter, SessionRecord, SessionStore, db};

const SESSION_SELECT: &str = "SELECT id, node_id, node_name, kind, run_as, command, remote,
    started_by, started_at, touched_at, idle_timeout_secs, max_duration_secs, status, ended_at,
    end_reason, exit_code, terminate_by, recording_sha256, recording_bytes FROM sessions";

fn session_from_row(row: &sqlx::sqlite::SqliteRow) -> SessionRecord {
    SessionRecord {
        id: row.get("id"),
        node_id: row.get("node_id"),
        node_name: row.get("node_name"),
        kind: row.get("kind"),
        run_as: row.get("run_as"),
        command: row.get("command"),
        remote: row.get("remote"),
        started_by: row.get("started_by"),
        started_at: row.get("started_at"),
        touched_at: row.get("touched_at"),
        idle_timeout_secs: row.get("idle_timeout_secs"),
        max_duration_secs: row.get("max_duration_secs"),
        status: row.get("status"),
        ended_at: row.get("ended_at"),
        end_reason: row.get("end_reason"),
        exit_code: row.get("exit_code"),
        terminate_by: row.get("terminate_by"),
        recording_sha256: row.get("recording_sha256"),
        recording_bytes: row.get("recording_bytes"),
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, r: &SessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, node_id, node_name, kind, run_as, command, remote,
                started_by, started_at, touched_at, idle_timeout_secs, max_duration_secs, status,
                ended_at, end_reason, exit_code, terminate_by, recording_sha256, recording_bytes)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.node_id)
        .bind(&r.node_name)
        .bind(&r.kind)
        .bind(&r.run_as)
        .bind(&r.command)
        .bind(&r.remote)
        .bind(&r.started_by)
        .bind(r.started_at)
        .bind(r.touched_at)
        .bind(r.idle_timeout_secs)
        .bind(r.max_duration_secs)
        .bind(&r.status)
        .bind(r.ended_at)
        .bind(&r.end_reason)
        .bind(r.exit_code)
        .bind(&r.terminate_by)
        .bind(&r.recording_sha256)
        .bind(r.recording_bytes)
        .execute(&self.pool)
        .await
        .map_err(db("inserting a session"))?;
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SESSION_SELECT} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a session"))?;
        Ok(row.as_ref().map(session_from_row))
    }

    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SESSION_SELECT} WHERE (? = 0 OR status = 'active') AND (? IS NULL OR node_id = ?)
             ORDER BY started_at DESC, id DESC LIMIT ?"
        )))
        .bind(filter.active_only)
        .bind(&filter.node_id)
        .bind(&filter.node_id)
        .bind(filter.limit.max(1))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing sessions"))?;
        Ok(rows.iter().map(session_from_row).collect())
    }

    async fn touch_session(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET touched_at = ? WHERE id = ? AND status = ?")
            .bind(at)
            .bind(id)
            .bind(SESSION_ACTIVE)
            .execute(&self.pool)
            .await
            .map_err(db("touching a session"))?;
        Ok(())
    }

    async fn request_session_end(&self, id: &str, by: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE sessions SET terminate_by = ? WHERE id = ? AND status = ?")
            .bind(by)
            .bind(id)
            .bind(SESSION_ACTIVE)
            .execute(&self.pool)
            .await
            .map_err(db("asking a session to end"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn end_session(&self, id: &str, end: &SessionEnd) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET status = ?, ended_at = ?, end_reason = ?, exit_code = ?,
                recording_sha256 = ?, recording_bytes = ?, touched_at = ?
             WHERE id = ? AND status = ?",
        )
        .bind(&end.status)
        .bind(end.ended_at)
        .bind(&end.reason)
        .bind(end.exit_code)
        .bind(&end.recording_sha256)
        .bind(end.recording_bytes)
        .bind(end.ended_at)
        .bind(id)
        .bind(SESSION_ACTIVE)
        .execute(&self.pool)
        .await
        .map_err(db("ending a session"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn stale_sessions(&self, before: i64) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SESSION_SELECT} WHERE status = ? AND touched_at < ? ORDER BY started_at"
        )))
        .bind(SESSION_ACTIVE)
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(db("finding stale sessions"))?;
        Ok(rows.iter().map(session_from_row).collect())
    }

    async fn append_recording_chunk(
        &self,
        session_id: &str,
        seq: i64,
        sealed: &[u8],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO session_recording_chunks (session_id, seq, sealed) VALUES (?, ?, ?)",
        )
        .bind(session_id)
        .bind(seq)
        .bind(sealed)
        .execute(&self.pool)
        .await
        .map_err(db("writing a recording chunk"))?;
        Ok(())
    }

    async fn recording_chunks(&self, session_id: &str) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT seq, sealed FROM session_recording_chunks WHERE session_id = ? ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading a recording"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get("seq"), r.get("sealed")))
            .collect())
    }
}
