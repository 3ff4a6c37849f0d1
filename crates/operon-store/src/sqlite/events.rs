//! The event bus on SQLite: events and their delivery outbox, dead letters,
//! rules, inbound webhooks, archives and replays.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, from_json, to_json};
use crate::{
    Archive, Bus, ClaimedDelivery, DeadLetter, DeliveryOutcome, EventStore, InboundWebhook,
    NewDelivery, NewEvent, Replay, Result, Rule, StoredEvent, db,
};

/// Rows per multi-row statement (6 parameters each stays far below
/// SQLite's limit of 32766 parameters).
const ROWS_PER_INSERT: usize = 200;

/// `prefix` followed by `row` `n` times, comma-separated.
fn multi_row(prefix: &str, row: &str, n: usize) -> String {
    let mut sql = String::with_capacity(prefix.len() + n * (row.len() + 2));
    sql.push_str(prefix);
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

const EVENT_COLUMNS: &str = "e.seq, e.id AS event_id, e.bus, e.body, e.ingested_at";

fn event_from_row(row: &SqliteRow) -> StoredEvent {
    StoredEvent {
        seq: row.get("seq"),
        id: row.get("event_id"),
        bus: row.get("bus"),
        body: row.get("body"),
        ingested_at: row.get("ingested_at"),
    }
}

const RULE_SELECT: &str = "SELECT name, bus, description, pattern, schedule, timezone, enabled,
    targets, created_at, updated_at, last_fired_at, author FROM event_rules";

fn rule_from_row(row: &SqliteRow) -> Result<Rule> {
    let targets: String = row.get("targets");
    Ok(Rule {
        name: row.get("name"),
        bus: row.get("bus"),
        description: row.get("description"),
        pattern: row.get("pattern"),
        schedule: row.get("schedule"),
        timezone: row.get("timezone"),
        enabled: row.get::<i64, _>("enabled") != 0,
        targets: from_json("reading rule targets", &targets)?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        last_fired_at: row.get("last_fired_at"),
        author: row.get("author"),
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    // ----- Buses -------------------------------------------------------------
    async fn create_bus(&self, name: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO event_buses (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("creating a bus"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_buses(&self) -> Result<Vec<Bus>> {
        let rows = sqlx::query("SELECT name, created_at FROM event_buses ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing buses"))?;
        Ok(rows
            .iter()
            .map(|r| Bus {
                name: r.get("name"),
                created_at: r.get("created_at"),
            })
            .collect())
    }

    async fn delete_bus(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_write("deleting a bus").await?;
        for (table, what) in [
            ("event_rules", "rules"),
            ("event_archives", "archives"),
            ("inbound_webhooks", "webhooks"),
        ] {
            let used: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table} WHERE bus = ?"
            )))
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("checking a bus is unused"))?;
            if used > 0 {
                return Err(crate::StoreError::Conflict(format!(
                    "bus {name} is still used by {used} {what}; delete them first"
                )));
            }
        }
        let done = sqlx::query("DELETE FROM event_buses WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting a bus"))?;
        tx.commit().await.map_err(db("committing a bus delete"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_events_audited(
        &self,
        events: &[NewEvent],
        audit: &[crate::AuditEntry],
        audited_at: i64,
    ) -> Result<(Vec<i64>, Option<crate::AuditAdvance>)> {
        // Rows go in as multi-row INSERTs: per-statement overhead, not the
        // disk, is what limits a large batch.
        let mut tx = self.begin_write("accepting events").await?;
        let head = super::audit::append_audit_in(&mut tx, audit, audited_at).await?;
        let last = take_event_seqs(&mut tx, events.len() as i64).await?;
        let first = last - events.len() as i64;
        let seqs: Vec<i64> = (1..=events.len() as i64).map(|i| first + i).collect();
        let numbered: Vec<(i64, &NewEvent)> = seqs.iter().copied().zip(events).collect();
        for chunk in numbered.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                "INSERT INTO events (seq, id, bus, body, ingested_at) VALUES ",
                "(?, ?, ?, ?, ?)",
                chunk.len(),
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, event) in chunk {
                query = query
                    .bind(*seq)
                    .bind(&event.id)
                    .bind(&event.bus)
                    .bind(&event.body)
                    .bind(event.ingested_at);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(db("inserting events"))?;
        }
        let deliveries: Vec<(i64, i64, &NewDelivery)> = numbered
            .iter()
            .flat_map(|(seq, e)| e.deliveries.iter().map(move |d| (*seq, e.ingested_at, d)))
            .collect();
        for chunk in deliveries.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                "INSERT INTO event_deliveries (id, event_seq, rule, target_id, attempts,
                    next_attempt_at, created_at, last_error, claimed) VALUES ",
                "(?, ?, ?, ?, 0, ?, ?, NULL, 0)",
                chunk.len(),
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, at, delivery) in chunk {
                query = query
                    .bind(&delivery.id)
                    .bind(*seq)
                    .bind(&delivery.rule)
                    .bind(&delivery.target_id)
                    .bind(*at)
                    .bind(*at);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(db("inserting deliveries"))?;
        }
        tx.commit().await.map_err(db("committing events"))?;
        Ok((seqs, head))
    }

    async fn event_by_id_on_bus(&self, id: &str, bus: &str) -> Result<Option<StoredEvent>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = ? AND e.bus = ? ORDER BY e.seq LIMIT 1"
        )))
        .bind(id)
        .bind(bus)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an event"))?;
        Ok(row.as_ref().map(event_from_row))
    }

    async fn events_between(
        &self,
        bus: &str,
        from: i64,
        to: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events e
             WHERE e.bus = ? AND e.ingested_at >= ? AND e.ingested_at <= ? AND e.seq > ?
             ORDER BY e.seq LIMIT ?"
        )))
        .bind(bus)
        .bind(from)
        .bind(to)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading archived events"))?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    async fn release_delivery_claims(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE event_deliveries SET claimed = 0, claimed_by = NULL, claim_expires_at = 0
             WHERE claimed = 1",
        )
        .execute(&self.pool)
        .await
        .map_err(db("releasing delivery claims"))?;
        Ok(done.rows_affected())
    }

    async fn release_expired_delivery_claims(&self, now: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE event_deliveries SET claimed = 0, claimed_by = NULL, claim_expires_at = 0
             WHERE claimed = 1 AND claim_expires_at <= ?",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("releasing expired delivery claims"))?;
        Ok(done.rows_affected())
    }

    async fn claim_due_deliveries(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.begin_write("claiming deliveries").await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT d.id, d.rule, d.target_id, d.attempts, d.created_at AS delivery_created,
                    {EVENT_COLUMNS}
             FROM event_deliveries d JOIN events e ON e.seq = d.event_seq
             WHERE d.claimed = 0 AND d.next_attempt_at <= ?
             ORDER BY d.next_attempt_at LIMIT ?"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("reading due deliveries"))?;
        let mut claimed: Vec<ClaimedDelivery> = rows
            .iter()
            .map(|r| ClaimedDelivery {
                id: r.get("id"),
                rule: r.get("rule"),
                target_id: r.get("target_id"),
                attempts: r.get("attempts"),
                created_at: r.get("delivery_created"),
                event: event_from_row(r),
            })
            .collect();
        // The claim is the conditional update, not the read above: a row
        // another claimer took in between (on an engine with row locks, the
        // update waits for it and sees `claimed = 1`) is not returned.
        let mut taken = std::collections::HashSet::new();
        for chunk in claimed.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "UPDATE event_deliveries SET claimed = 1, claimed_by = ?, claim_expires_at = ?
                 WHERE claimed = 0 AND id IN ({})
                 RETURNING id",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(now.saturating_add(lease_ms));
            for delivery in chunk {
                query = query.bind(&delivery.id);
            }
            taken.extend(
                query
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("claiming deliveries"))?,
            );
        }
        claimed.retain(|d| taken.contains(&d.id));
        tx.commit()
            .await
            .map_err(db("committing delivery claims"))?;
        Ok(claimed)
    }

    async fn next_delivery_due(&self) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM event_deliveries WHERE claimed = 0")
            .fetch_one(&self.pool)
            .await
            .map_err(db("reading the next due delivery"))
    }

    async fn count_pending_deliveries(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM event_deliveries")
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting deliveries"))
    }

    async fn apply_delivery_outcomes(
        &self,
        owner: &str,
        outcomes: &[DeliveryOutcome],
    ) -> Result<()> {
        let mut tx = self.begin_write("recording delivery outcomes").await?;
        let delivered: Vec<&String> = outcomes
            .iter()
            .filter_map(|o| match o {
                DeliveryOutcome::Delivered { id } => Some(id),
                _ => None,
            })
            .collect();
        for chunk in delivered.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "DELETE FROM event_deliveries WHERE id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(db("completing deliveries"))?;
        }
        for outcome in outcomes {
            match outcome {
                DeliveryOutcome::Delivered { .. } => {}
                DeliveryOutcome::Retry {
                    id,
                    attempts,
                    next_attempt_at,
                    error,
                } => {
                    sqlx::query(
                        "UPDATE event_deliveries SET attempts = ?, next_attempt_at = ?,
                            last_error = ?, claimed = 0, claimed_by = NULL, claim_expires_at = 0
                         WHERE id = ? AND claimed_by = ?",
                    )
                    .bind(attempts)
                    .bind(next_attempt_at)
                    .bind(error)
                    .bind(id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("scheduling a retry"))?;
                }
                DeliveryOutcome::Dead {
                    id,
                    attempts,
                    error,
                    at,
                } => {
                    sqlx::query(
                        "INSERT INTO event_dead_letters (id, event_seq, rule, target_id, attempts,
                            last_error, created_at, failed_at)
                         SELECT id, event_seq, rule, target_id, ?, ?, created_at, ?
                         FROM event_deliveries WHERE id = ? AND claimed_by = ?
                         ON CONFLICT (id) DO UPDATE SET attempts = excluded.attempts,
                            last_error = excluded.last_error, failed_at = excluded.failed_at",
                    )
                    .bind(attempts)
                    .bind(error)
                    .bind(at)
                    .bind(id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("moving a delivery to the dead letters"))?;
                    sqlx::query("DELETE FROM event_deliveries WHERE id = ? AND claimed_by = ?")
                        .bind(id)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("removing a dead delivery"))?;
                }
            }
        }
        tx.commit()
            .await
            .map_err(db("committing delivery outcomes"))
    }

    // ----- Dead letters ------------------------------------------------------
    async fn list_dead_letters(&self, rule: Option<&str>, limit: i64) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT d.id, d.rule, d.target_id, d.attempts, d.last_error,
                    d.created_at AS delivery_created, d.failed_at, {EVENT_COLUMNS}
             FROM event_dead_letters d JOIN events e ON e.seq = d.event_seq
             WHERE (? IS NULL OR d.rule = ?) ORDER BY d.failed_at LIMIT ?"
        )))
        .bind(rule)
        .bind(rule)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing dead letters"))?;
        Ok(rows.iter().map(dead_letter_from_row).collect())
    }

    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT d.id, d.rule, d.target_id, d.attempts, d.last_error,
                    d.created_at AS delivery_created, d.failed_at, {EVENT_COLUMNS}
             FROM event_dead_letters d JOIN events e ON e.seq = d.event_seq WHERE d.id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a dead letter"))?;
        Ok(row.as_ref().map(dead_letter_from_row))
    }

    async fn redrive_dead_letters(&self, ids: &[String], now: i64) -> Result<Vec<String>> {
        let mut tx = self.begin_write("redriving dead letters").await?;
        let mut redriven = Vec::new();
        for id in ids {
            let moved = sqlx::query(
                "INSERT INTO event_deliveries (id, event_seq, rule, target_id, attempts,
                    next_attempt_at, created_at, last_error, claimed)
                 SELECT id, event_seq, rule, target_id, 0, ?, ?, last_error, 0
                 FROM event_dead_letters WHERE id = ?",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db("redriving a dead letter"))?;
            if moved.rows_affected() == 1 {
                sqlx::query("DELETE FROM event_dead_letters WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("removing a redriven dead letter"))?;
                redriven.push(id.clone());
            }
        }
        tx.commit().await.map_err(db("committing a redrive"))?;
        Ok(redriven)
    }

    // ----- Rules -------------------------------------------------------------
    async fn put_rule(&self, rule: &Rule) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_rules (name, bus, description, pattern, schedule, timezone, enabled,
                targets, created_at, updated_at, last_fired_at, author)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET bus = excluded.bus,
                description = excluded.description, pattern = excluded.pattern,
                schedule = excluded.schedule, timezone = excluded.timezone,
                enabled = excluded.enabled, targets = excluded.targets,
                updated_at = excluded.updated_at, author = excluded.author",
        )
        .bind(&rule.name)
        .bind(&rule.bus)
        .bind(&rule.description)
        .bind(&rule.pattern)
        .bind(&rule.schedule)
        .bind(&rule.timezone)
        .bind(i64::from(rule.enabled))
        .bind(rule.targets.to_string())
        .bind(rule.created_at)
        .bind(rule.updated_at)
        .bind(rule.last_fired_at)
        .bind(&rule.author)
        .execute(&self.pool)
        .await
        .map_err(db("saving a rule"))?;
        Ok(())
    }

    async fn list_rules(&self) -> Result<Vec<Rule>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{RULE_SELECT} ORDER BY name")))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing rules"))?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn rule(&self, name: &str) -> Result<Option<Rule>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{RULE_SELECT} WHERE name = ?")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a rule"))?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn delete_rule(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM event_rules WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a rule"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_rule_enabled(&self, name: &str, enabled: bool, now: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE event_rules SET enabled = ?, updated_at = ? WHERE name = ?")
            .bind(i64::from(enabled))
            .bind(now)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("enabling or disabling a rule"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_rule_last_fired(&self, name: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE event_rules SET last_fired_at = ? WHERE name = ?")
            .bind(at)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("recording a schedule firing"))?;
        Ok(())
    }

    // ----- Inbound webhooks -------------------------------------------------
    async fn create_webhook(&self, hook: &InboundWebhook) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO inbound_webhooks (name, bus, secret_sealed, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&hook.name)
        .bind(&hook.bus)
        .bind(&hook.secret_sealed)
        .bind(hook.created_at)
        .execute(&self.pool)
        .await
        .map_err(db("creating a webhook"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_webhooks(&self) -> Result<Vec<InboundWebhook>> {
        let rows = sqlx::query(
            "SELECT name, bus, secret_sealed, created_at FROM inbound_webhooks ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing webhooks"))?;
        Ok(rows.iter().map(webhook_from_row).collect())
    }

    async fn webhook(&self, name: &str) -> Result<Option<InboundWebhook>> {
        let row = sqlx::query(
            "SELECT name, bus, secret_sealed, created_at FROM inbound_webhooks WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a webhook"))?;
        Ok(row.as_ref().map(webhook_from_row))
    }

    async fn delete_webhook(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM inbound_webhooks WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a webhook"))?;
        Ok(done.rows_affected() == 1)
    }

    // ----- Archives and replays ---------------------------------------------
    async fn create_archive(&self, archive: &Archive) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO event_archives (name, bus, pattern, retention_days, created_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&archive.name)
        .bind(&archive.bus)
        .bind(&archive.pattern)
        .bind(archive.retention_days)
        .bind(archive.created_at)
        .execute(&self.pool)
        .await
        .map_err(db("creating an archive"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_archives(&self) -> Result<Vec<Archive>> {
        let rows = sqlx::query(
            "SELECT name, bus, pattern, retention_days, created_at FROM event_archives ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing archives"))?;
        Ok(rows.iter().map(archive_from_row).collect())
    }

    async fn archive(&self, name: &str) -> Result<Option<Archive>> {
        let row = sqlx::query(
            "SELECT name, bus, pattern, retention_days, created_at FROM event_archives WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an archive"))?;
        Ok(row.as_ref().map(archive_from_row))
    }

    async fn delete_archive(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM event_archives WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("deleting an archive"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_events(&self, bus: &str, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM events WHERE bus = ? AND ingested_at < ?
               AND seq NOT IN (SELECT event_seq FROM event_deliveries)
               AND seq NOT IN (SELECT event_seq FROM event_dead_letters)",
        )
        .bind(bus)
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(db("pruning events"))?;
        Ok(done.rows_affected())
    }

    async fn create_replay(&self, replay: &Replay) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO event_replays (name, archive, from_ms, to_ms, rules, state,
                events_replayed, started_at, finished_at, error)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&replay.name)
        .bind(&replay.archive)
        .bind(replay.from_ms)
        .bind(replay.to_ms)
        .bind(to_json(&replay.rules))
        .bind(&replay.state)
        .bind(replay.events_replayed)
        .bind(replay.started_at)
        .bind(replay.finished_at)
        .bind(&replay.error)
        .execute(&self.pool)
        .await
        .map_err(db("creating a replay"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_replay(
        &self,
        name: &str,
        state: &str,
        events_replayed: i64,
        finished_at: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE event_replays SET state = ?, events_replayed = ?, finished_at = ?, error = ?
             WHERE name = ?",
        )
        .bind(state)
        .bind(events_replayed)
        .bind(finished_at)
        .bind(error)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(db("updating a replay"))?;
        Ok(())
    }

    async fn list_replays(&self) -> Result<Vec<Replay>> {
        let rows = sqlx::query(
            "SELECT name, archive, from_ms, to_ms, rules, state, events_replayed, started_at,
                finished_at, error FROM event_replays ORDER BY started_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing replays"))?;
        rows.iter().map(replay_from_row).collect()
    }

    async fn replay(&self, name: &str) -> Result<Option<Replay>> {
        let row = sqlx::query(
            "SELECT name, archive, from_ms, to_ms, rules, state, events_replayed, started_at,
                finished_at, error FROM event_replays WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a replay"))?;
        row.as_ref().map(replay_from_row).transpose()
    }
}

/// Reserve `n` event sequence numbers; returns the last one. The counter
/// row's update locks it until the transaction ends, so a concurrent writer
/// waits and then continues after these numbers (and, if this transaction
/// rolls back, reuses them: no gaps). Nothing is taken for `n == 0`.
async fn take_event_seqs(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, n: i64) -> Result<i64> {
    if n == 0 {
        return Ok(0);
    }
    let last: Option<i64> = sqlx::query_scalar(
        "UPDATE counters SET value = value + ? WHERE name = 'events' RETURNING value",
    )
    .bind(n)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db("taking event sequence numbers"))?;
    last.ok_or_else(|| {
        crate::corrupt(
            "taking event sequence numbers",
            "the 'events' row of the counters table is missing",
        )
    })
}

fn dead_letter_from_row(row: &SqliteRow) -> DeadLetter {
    DeadLetter {
        id: row.get("id"),
        rule: row.get("rule"),
        target_id: row.get("target_id"),
        attempts: row.get("attempts"),
        last_error: row.get("last_error"),
        created_at: row.get("delivery_created"),
        failed_at: row.get("failed_at"),
        event: event_from_row(row),
    }
}

fn webhook_from_row(row: &SqliteRow) -> InboundWebhook {
    InboundWebhook {
        name: row.get("name"),
        bus: row.get("bus"),
        secret_sealed: row.get("secret_sealed"),
        created_at: row.get("created_at"),
    }
}

fn archive_from_row(row: &SqliteRow) -> Archive {
    Archive {
        name: row.get("name"),
        bus: row.get("bus"),
        pattern: row.get("pattern"),
        retention_days: row.get("retention_days"),
        created_at: row.get("created_at"),
    }
}

fn replay_from_row(row: &SqliteRow) -> Result<Replay> {
    let rules: String = row.get("rules");
    Ok(Replay {
        name: row.get("name"),
        archive: row.get("archive"),
        from_ms: row.get("from_ms"),
        to_ms: row.get("to_ms"),
        rules: from_json("reading replay rules", &rules)?,
        state: row.get("state"),
        events_replayed: row.get("events_replayed"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        error: row.get("error"),
    })
}
