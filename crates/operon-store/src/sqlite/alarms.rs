//! Alarms, their states and history on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, from_json, to_json};
use crate::{AlarmHistoryRow, AlarmRecord, AlarmStateRow, AlarmStore, Result, db};

const ALARM_SELECT: &str = "SELECT name, version, spec, author, created_at, updated_at FROM alarms";
const STATE_SELECT: &str =
    "SELECT alarm, node_id, state, reason, reason_data, updated_at FROM alarm_states";
const HISTORY_SELECT: &str = "SELECT id, alarm, node_id, at, previous, state, reason,
    reason_data, published FROM alarm_history";

fn alarm_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AlarmRecord> {
    let spec: String = row.get("spec");
    Ok(AlarmRecord {
        name: row.get("name"),
        version: row.get("version"),
        spec: from_json("an alarm's spec", &spec)?,
        author: row.get("author"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn optional_json(what: &'static str, text: Option<String>) -> Result<Option<serde_json::Value>> {
    text.map(|t| from_json(what, &t)).transpose()
}

fn state_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AlarmStateRow> {
    Ok(AlarmStateRow {
        alarm: row.get("alarm"),
        node_id: row.get("node_id"),
        state: row.get("state"),
        reason: row.get("reason"),
        reason_data: optional_json("an alarm's reason data", row.get("reason_data"))?,
        updated_at: row.get("updated_at"),
    })
}

fn history_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AlarmHistoryRow> {
    let previous: Option<String> = row.get("previous");
    let previous: Option<AlarmStateRow> = previous
        .map(|text| from_json("an alarm's previous state", &text))
        .transpose()?;
    Ok(AlarmHistoryRow {
        id: row.get("id"),
        alarm: row.get("alarm"),
        node_id: row.get("node_id"),
        at: row.get("at"),
        previous,
        state: row.get("state"),
        reason: row.get("reason"),
        reason_data: optional_json("an alarm's reason data", row.get("reason_data"))?,
        published: row.get::<i64, _>("published") != 0,
    })
}

#[async_trait]
impl AlarmStore for SqliteStore {
    async fn put_alarm(&self, record: &AlarmRecord, expect_version: Option<i64>) -> Result<bool> {
        let mut tx = self.begin_write("starting an alarm write").await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT version FROM alarms WHERE name = ?")
            .bind(&record.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("reading an alarm"))?;
        if current != expect_version {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO alarms (name, version, spec, author, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                spec = excluded.spec, author = excluded.author,
                updated_at = excluded.updated_at",
        )
        .bind(&record.name)
        .bind(record.version)
        .bind(to_json(&record.spec))
        .bind(&record.author)
        .bind(record.created_at)
        .bind(record.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db("writing an alarm"))?;
        tx.commit().await.map_err(db("committing an alarm write"))?;
        Ok(true)
    }

    async fn alarm(&self, name: &str) -> Result<Option<AlarmRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ALARM_SELECT} WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an alarm"))?;
        row.as_ref().map(alarm_from_row).transpose()
    }

    async fn list_alarms(&self) -> Result<Vec<AlarmRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{ALARM_SELECT} ORDER BY name")))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing alarms"))?;
        rows.iter().map(alarm_from_row).collect()
    }

    async fn delete_alarm(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_write("starting an alarm delete").await?;
        sqlx::query("DELETE FROM alarm_states WHERE alarm = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting an alarm's states"))?;
        let done = sqlx::query("DELETE FROM alarms WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting an alarm"))?;
        tx.commit()
            .await
            .map_err(db("committing an alarm delete"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn alarm_states(&self, alarm: Option<&str>) -> Result<Vec<AlarmStateRow>> {
        let rows = match alarm {
            Some(name) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{STATE_SELECT} WHERE alarm = ? ORDER BY alarm, node_id"
                )))
                .bind(name)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{STATE_SELECT} ORDER BY alarm, node_id"
                )))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db("reading alarm states"))?;
        rows.iter().map(state_from_row).collect()
    }

    async fn transition_alarm(&self, next: &AlarmStateRow) -> Result<Option<AlarmHistoryRow>> {
        let mut tx = self.begin_write("starting an alarm transition").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM alarms WHERE name = ?")
            .bind(&next.alarm)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("reading an alarm"))?;
        if exists.is_none() {
            return Ok(None);
        }
        let current = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{STATE_SELECT} WHERE alarm = ? AND node_id = ?"
        )))
        .bind(&next.alarm)
        .bind(&next.node_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("reading an alarm state"))?;
        let previous = current.as_ref().map(state_from_row).transpose()?;
        if previous.as_ref().is_some_and(|p| p.state == next.state) {
            return Ok(None);
        }
        let reason_data = next.reason_data.as_ref().map(to_json);
        sqlx::query(
            "INSERT OR REPLACE INTO alarm_states
                (alarm, node_id, state, reason, reason_data, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&next.alarm)
        .bind(&next.node_id)
        .bind(&next.state)
        .bind(&next.reason)
        .bind(&reason_data)
        .bind(next.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db("writing an alarm state"))?;
        let previous_json = previous.as_ref().map(to_json);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alarm_history (alarm, node_id, at, previous, state, reason, reason_data)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&next.alarm)
        .bind(&next.node_id)
        .bind(next.updated_at)
        .bind(&previous_json)
        .bind(&next.state)
        .bind(&next.reason)
        .bind(&reason_data)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("writing an alarm's history"))?;
        follow_incident(&mut tx, next, previous.as_ref(), id).await?;
        tx.commit()
            .await
            .map_err(db("committing an alarm transition"))?;
        Ok(Some(AlarmHistoryRow {
            id,
            alarm: next.alarm.clone(),
            node_id: next.node_id.clone(),
            at: next.updated_at,
            previous,
            state: next.state.clone(),
            reason: next.reason.clone(),
            reason_data: next.reason_data.clone(),
            published: false,
        }))
    }

    async fn delete_alarm_state(&self, alarm: &str, node_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM alarm_states WHERE alarm = ? AND node_id = ?")
            .bind(alarm)
            .bind(node_id)
            .execute(&self.pool)
            .await
            .map_err(db("deleting an alarm state"))?;
        Ok(())
    }

    async fn alarm_history(
        &self,
        alarm: &str,
        node_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlarmHistoryRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{HISTORY_SELECT} WHERE alarm = ? AND (? IS NULL OR node_id = ?)
             ORDER BY id DESC LIMIT ?"
        )))
        .bind(alarm)
        .bind(node_id)
        .bind(node_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading an alarm's history"))?;
        rows.iter().map(history_from_row).collect()
    }

    async fn unpublished_alarm_history(&self, limit: i64) -> Result<Vec<AlarmHistoryRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{HISTORY_SELECT} WHERE published = 0 ORDER BY id LIMIT ?"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading unpublished alarm history"))?;
        rows.iter().map(history_from_row).collect()
    }

    async fn mark_alarm_history_published(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write("starting to mark alarm events").await?;
        for id in ids {
            sqlx::query("UPDATE alarm_history SET published = 1 WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db("marking an alarm event put"))?;
        }
        tx.commit()
            .await
            .map_err(db("committing alarm event marks"))?;
        Ok(())
    }
}

/// Keep the instance's incident in step with a state change (inside the
/// change's transaction): ALARM opens one unless one is open, OK recovers
/// the open one, and the change is on the open one's timeline.
async fn follow_incident(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    next: &AlarmStateRow,
    previous: Option<&AlarmStateRow>,
    history_id: i64,
) -> Result<()> {
    let open: Option<String> = sqlx::query_scalar(
        "SELECT id FROM incidents WHERE alarm = ? AND node_id = ? AND status = 'open'
         ORDER BY opened_at DESC LIMIT 1",
    )
    .bind(&next.alarm)
    .bind(&next.node_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db("reading an open incident"))?;
    let data = serde_json::json!({
        "previous": previous.map(|p| p.state.clone()),
        "state": next.state,
        "reasonData": next.reason_data,
    });
    match (open, next.state.as_str()) {
        (None, "ALARM") => {
            let id = format!("inc-{history_id}");
            sqlx::query(
                "INSERT INTO incidents (id, alarm, node_id, status, reason, opened_at)
                 VALUES (?, ?, ?, 'open', ?, ?)",
            )
            .bind(&id)
            .bind(&next.alarm)
            .bind(&next.node_id)
            .bind(&next.reason)
            .bind(next.updated_at)
            .execute(&mut **tx)
            .await
            .map_err(db("opening an incident"))?;
            let message = format!("alarm {} went to ALARM: {}", next.alarm, next.reason);
            super::heal::append_event(tx, &id, next.updated_at, "detected", &message, Some(&data))
                .await?;
        }
        (Some(id), state) => {
            let recovered = state == "OK";
            let (kind, message) = if recovered {
                (
                    "recovered",
                    format!("alarm {} returned to OK: {}", next.alarm, next.reason),
                )
            } else {
                (
                    "state",
                    format!("alarm {} went to {state}: {}", next.alarm, next.reason),
                )
            };
            super::heal::append_event(tx, &id, next.updated_at, kind, &message, Some(&data))
                .await?;
            if recovered {
                sqlx::query(
                    "UPDATE incidents SET status = 'recovered', recovered_at = ? WHERE id = ?",
                )
                .bind(next.updated_at)
                .bind(&id)
                .execute(&mut **tx)
                .await
                .map_err(db("recovering an incident"))?;
            }
        }
        (None, _) => {}
    }
    Ok(())
}
