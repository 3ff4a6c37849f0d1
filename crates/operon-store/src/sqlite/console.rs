//! Web console sessions on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::{ConsoleSession, ConsoleSessionStore, Result, db};

#[async_trait]
impl ConsoleSessionStore for SqliteStore {
    async fn insert_console_session(&self, s: &ConsoleSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_sessions
                (id_hash, sealed_token, csrf_secret, actor, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id_hash)
        .bind(&s.sealed_token)
        .bind(&s.csrf_secret)
        .bind(&s.actor)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db("inserting a console session"))?;
        Ok(())
    }

    async fn console_session(&self, id_hash: &str, now: i64) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT id_hash, sealed_token, csrf_secret, actor, created_at, expires_at
             FROM console_sessions WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a console session"))?;
        Ok(row.map(|row| ConsoleSession {
            id_hash: row.get("id_hash"),
            sealed_token: row.get("sealed_token"),
            csrf_secret: row.get("csrf_secret"),
            actor: row.get("actor"),
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
        }))
    }

    async fn delete_console_session(&self, id_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a console session"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_console_sessions(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("pruning console sessions"))?;
        Ok(done.rows_affected())
    }
}
