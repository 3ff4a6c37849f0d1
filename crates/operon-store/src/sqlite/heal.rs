//! Incidents, heals and heal runs on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, from_json, to_json};
use crate::{
    HealRecord, HealRun, HealStore, Incident, IncidentEvent, IncidentFilter, IncidentStore,
    NewIncidentEvent, Result, db,
};

const INCIDENT_SELECT: &str = "SELECT id, alarm, node_id, status, reason, opened_at,
    recovered_at, escalated_at, acknowledged_by, acknowledged_at, resolved_by, resolved_at
    FROM incidents";
const RUN_SELECT: &str = "SELECT id, heal, incident_id, alarm, node_id, attempt, status,
    execution_id, started_at, finished_at, detail FROM heal_runs";

fn incident_from_row(row: &sqlx::sqlite::SqliteRow) -> Incident {
    Incident {
        id: row.get("id"),
        alarm: row.get("alarm"),
        node_id: row.get("node_id"),
        status: row.get("status"),
        reason: row.get("reason"),
        opened_at: row.get("opened_at"),
        recovered_at: row.get("recovered_at"),
        escalated_at: row.get("escalated_at"),
        acknowledged_by: row.get("acknowledged_by"),
        acknowledged_at: row.get("acknowledged_at"),
        resolved_by: row.get("resolved_by"),
        resolved_at: row.get("resolved_at"),
    }
}

fn run_from_row(row: &sqlx::sqlite::SqliteRow) -> HealRun {
    HealRun {
        id: row.get("id"),
        heal: row.get("heal"),
        incident_id: row.get("incident_id"),
        alarm: row.get("alarm"),
        node_id: row.get("node_id"),
        attempt: row.get("attempt"),
        status: row.get("status"),
        execution_id: row.get("execution_id"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        detail: row.get("detail"),
    }
}

fn heal_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<HealRecord> {
    let spec: String = row.get("spec");
    Ok(HealRecord {
        name: row.get("name"),
        version: row.get("version"),
        spec: from_json("a heal's spec", &spec)?,
        author: row.get("author"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// Append to an incident's timeline inside `tx`.
pub(super) async fn append_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    id: &str,
    at: i64,
    kind: &str,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO incident_events (incident_id, seq, at, kind, message, data)
         VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM incident_events WHERE incident_id = ?),
                 ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(id)
    .bind(at)
    .bind(kind)
    .bind(message)
    .bind(data.map(to_json))
    .execute(&mut **tx)
    .await
    .map_err(db("writing an incident's timeline"))?;
    Ok(())
}

impl SqliteStore {
    async fn incident_in(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        id: &str,
    ) -> Result<Option<Incident>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INCIDENT_SELECT} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("reading an incident"))?;
        Ok(row.as_ref().map(incident_from_row))
    }
}

#[async_trait]
impl IncidentStore for SqliteStore {
    async fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INCIDENT_SELECT} WHERE (? IS NULL OR status = ?) AND (? IS NULL OR alarm = ?)
               AND (? IS NULL OR node_id = ?) AND (? IS NULL OR opened_at >= ?)
             ORDER BY opened_at DESC, id DESC LIMIT ?"
        )))
        .bind(&filter.status)
        .bind(&filter.status)
        .bind(&filter.alarm)
        .bind(&filter.alarm)
        .bind(&filter.node_id)
        .bind(&filter.node_id)
        .bind(filter.since)
        .bind(filter.since)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing incidents"))?;
        Ok(rows.iter().map(incident_from_row).collect())
    }

    async fn incident(&self, id: &str) -> Result<Option<Incident>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INCIDENT_SELECT} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an incident"))?;
        Ok(row.as_ref().map(incident_from_row))
    }

    async fn incident_events(&self, id: &str) -> Result<Vec<IncidentEvent>> {
        let rows = sqlx::query(
            "SELECT incident_id, seq, at, kind, message, data FROM incident_events
             WHERE incident_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading an incident's timeline"))?;
        rows.iter()
            .map(|row| {
                let data: Option<String> = row.get("data");
                Ok(IncidentEvent {
                    incident_id: row.get("incident_id"),
                    seq: row.get("seq"),
                    at: row.get("at"),
                    kind: row.get("kind"),
                    message: row.get("message"),
                    data: data
                        .map(|d| from_json("an incident event's data", &d))
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn add_incident_event(
        &self,
        id: &str,
        at: i64,
        kind: &str,
        message: &str,
        data: Option<&serde_json::Value>,
    ) -> Result<bool> {
        let mut tx = self.begin_write("starting an incident write").await?;
        if Self::incident_in(&mut tx, id).await?.is_none() {
            return Ok(false);
        }
        append_event(&mut tx, id, at, kind, message, data).await?;
        tx.commit()
            .await
            .map_err(db("committing an incident write"))?;
        Ok(true)
    }

    async fn acknowledge_incident(&self, id: &str, by: &str, at: i64) -> Result<Option<Incident>> {
        let mut tx = self.begin_write("starting an incident write").await?;
        let Some(incident) = Self::incident_in(&mut tx, id).await? else {
            return Ok(None);
        };
        if incident.acknowledged_by.is_none() {
            sqlx::query(
                "UPDATE incidents SET acknowledged_by = ?, acknowledged_at = ? WHERE id = ?",
            )
            .bind(by)
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db("acknowledging an incident"))?;
            append_event(
                &mut tx,
                id,
                at,
                "acknowledged",
                &format!("acknowledged by {by}"),
                None,
            )
            .await?;
        }
        let incident = Self::incident_in(&mut tx, id).await?;
        tx.commit()
            .await
            .map_err(db("committing an incident write"))?;
        Ok(incident)
    }

    async fn resolve_incident(
        &self,
        id: &str,
        by: &str,
        note: Option<&str>,
        at: i64,
    ) -> Result<Option<Incident>> {
        let mut tx = self.begin_write("starting an incident write").await?;
        let Some(incident) = Self::incident_in(&mut tx, id).await? else {
            return Ok(None);
        };
        if incident.status != "resolved" {
            sqlx::query("UPDATE incidents SET status = 'resolved', resolved_by = ?, resolved_at = ? WHERE id = ?")
                .bind(by)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db("resolving an incident"))?;
            let message = match note {
                Some(note) => format!("resolved by {by}: {note}"),
                None => format!("resolved by {by}"),
            };
            append_event(&mut tx, id, at, "resolved", &message, None).await?;
        }
        let incident = Self::incident_in(&mut tx, id).await?;
        tx.commit()
            .await
            .map_err(db("committing an incident write"))?;
        Ok(incident)
    }

    async fn escalate_incident(&self, id: &str, message: &str, at: i64) -> Result<bool> {
        let mut tx = self.begin_write("starting an incident write").await?;
        let done = sqlx::query(
            "UPDATE incidents SET escalated_at = ? WHERE id = ? AND escalated_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db("escalating an incident"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append_event(&mut tx, id, at, "escalated", message, None).await?;
        tx.commit()
            .await
            .map_err(db("committing an incident write"))?;
        Ok(true)
    }
}

#[async_trait]
impl HealStore for SqliteStore {
    async fn put_heal(&self, record: &HealRecord, expect_version: Option<i64>) -> Result<bool> {
        let mut tx = self.begin_write("starting a heal write").await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT version FROM heals WHERE name = ?")
            .bind(&record.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("reading a heal"))?;
        if current != expect_version {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO heals (name, version, spec, author, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                spec = excluded.spec, author = excluded.author, updated_at = excluded.updated_at",
        )
        .bind(&record.name)
        .bind(record.version)
        .bind(to_json(&record.spec))
        .bind(&record.author)
        .bind(record.created_at)
        .bind(record.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db("writing a heal"))?;
        tx.commit().await.map_err(db("committing a heal write"))?;
        Ok(true)
    }

    async fn heal(&self, name: &str) -> Result<Option<HealRecord>> {
        let row = sqlx::query(
            "SELECT name, version, spec, author, created_at, updated_at FROM heals WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a heal"))?;
        row.as_ref().map(heal_from_row).transpose()
    }

    async fn list_heals(&self) -> Result<Vec<HealRecord>> {
        let rows = sqlx::query(
            "SELECT name, version, spec, author, created_at, updated_at FROM heals ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing heals"))?;
        rows.iter().map(heal_from_row).collect()
    }

    async fn delete_heal(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM heals WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a heal"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn heal_runs(
        &self,
        heal: Option<&str>,
        incident_id: Option<&str>,
    ) -> Result<Vec<HealRun>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_SELECT} WHERE (? IS NULL OR heal = ?) AND (? IS NULL OR incident_id = ?)
             ORDER BY started_at, attempt"
        )))
        .bind(heal)
        .bind(heal)
        .bind(incident_id)
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing heal runs"))?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    async fn unfinished_heal_runs(&self) -> Result<Vec<HealRun>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_SELECT} WHERE status IN ('starting', 'running', 'confirming') ORDER BY started_at"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing unfinished heal runs"))?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    async fn insert_heal_run(&self, run: &HealRun) -> Result<bool> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO heal_runs (id, heal, incident_id, alarm, node_id, attempt,
                status, execution_id, started_at, finished_at, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&run.id)
        .bind(&run.heal)
        .bind(&run.incident_id)
        .bind(&run.alarm)
        .bind(&run.node_id)
        .bind(run.attempt)
        .bind(&run.status)
        .bind(&run.execution_id)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(&run.detail)
        .execute(&self.pool)
        .await
        .map_err(db("recording a heal run"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_heal_run(&self, run: &HealRun, entry: &NewIncidentEvent) -> Result<()> {
        let mut tx = self.begin_write("starting a heal run update").await?;
        sqlx::query(
            "UPDATE heal_runs SET status = ?, execution_id = ?, finished_at = ?, detail = ?
             WHERE id = ?",
        )
        .bind(&run.status)
        .bind(&run.execution_id)
        .bind(run.finished_at)
        .bind(&run.detail)
        .bind(&run.id)
        .execute(&mut *tx)
        .await
        .map_err(db("updating a heal run"))?;
        if Self::incident_in(&mut tx, &run.incident_id)
            .await?
            .is_some()
        {
            append_event(
                &mut tx,
                &run.incident_id,
                entry.at,
                &entry.kind,
                &entry.message,
                entry.data.as_ref(),
            )
            .await?;
        }
        tx.commit()
            .await
            .map_err(db("committing a heal run update"))?;
        Ok(())
    }

    async fn last_heal_run_end(
        &self,
        heal: &str,
        alarm: &str,
        node_id: &str,
    ) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MAX(finished_at) FROM heal_runs WHERE heal = ? AND alarm = ? AND node_id = ?",
        )
        .bind(heal)
        .bind(alarm)
        .bind(node_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db("reading the last heal run"))
    }

    async fn count_heal_runs_since(
        &self,
        heal: &str,
        alarm: &str,
        node_id: &str,
        since: i64,
    ) -> Result<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM heal_runs WHERE heal = ? AND alarm = ? AND node_id = ?
               AND started_at >= ?",
        )
        .bind(heal)
        .bind(alarm)
        .bind(node_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(db("counting heal runs"))
    }
}
