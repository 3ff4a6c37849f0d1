//! Monitors on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, from_json, to_json};
use crate::{MonitorRecord, MonitorStore, Result, db};

const MONITOR_SELECT: &str = "SELECT name, kind, spec, targets, author, role, version,
    created_at, updated_at FROM monitors";

fn monitor_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<MonitorRecord> {
    let spec: String = row.get("spec");
    let targets: String = row.get("targets");
    Ok(MonitorRecord {
        name: row.get("name"),
        kind: row.get("kind"),
        spec: from_json("a monitor's spec", &spec)?,
        targets: from_json("a monitor's targets", &targets)?,
        author: row.get("author"),
        role: row.get("role"),
        version: row.get("version"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

#[async_trait]
impl MonitorStore for SqliteStore {
    async fn put_monitor(
        &self,
        record: &MonitorRecord,
        expect_version: Option<i64>,
    ) -> Result<bool> {
        let mut tx = self.begin_write("starting a monitor write").await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM monitors WHERE name = ?")
                .bind(&record.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("reading a monitor"))?;
        if current != expect_version {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO monitors (name, kind, spec, targets, author, role, version, created_at,
                updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, spec = excluded.spec,
                targets = excluded.targets, author = excluded.author, role = excluded.role,
                version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind(&record.name)
        .bind(&record.kind)
        .bind(to_json(&record.spec))
        .bind(to_json(&record.targets))
        .bind(&record.author)
        .bind(&record.role)
        .bind(record.version)
        .bind(record.created_at)
        .bind(record.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db("writing a monitor"))?;
        tx.commit()
            .await
            .map_err(db("committing a monitor write"))?;
        Ok(true)
    }

    async fn monitor(&self, name: &str) -> Result<Option<MonitorRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{MONITOR_SELECT} WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a monitor"))?;
        row.as_ref().map(monitor_from_row).transpose()
    }

    async fn list_monitors(&self) -> Result<Vec<MonitorRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{MONITOR_SELECT} ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing monitors"))?;
        rows.iter().map(monitor_from_row).collect()
    }

    async fn delete_monitor(&self, name: &str, expect_version: Option<i64>) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM monitors WHERE name = ? AND (? IS NULL OR version = ?)")
                .bind(name)
                .bind(expect_version)
                .bind(expect_version)
                .execute(&self.pool)
                .await
                .map_err(db("deleting a monitor"))?;
        Ok(done.rows_affected() > 0)
    }
}
