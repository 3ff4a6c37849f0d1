//! Command documents, commands and their invocations on SQLite.

use async_trait::async_trait;
use operon_proto::{CommandResult, InvocationStatus};
use sqlx::Row;

use super::{SqliteStore, from_json, to_json};
use crate::{
    AgentWrite, Command, CommandStore, Document, DocumentStore, DocumentVersions, Invocation,
    Result, StatusTable, corrupt, db,
};

#[async_trait]
impl DocumentStore for SqliteStore {
    // ----- Documents ---------------------------------------------------------
    async fn put_document(&self, name: &str, content: &serde_json::Value, now: i64) -> Result<i64> {
        // A write transaction from the start: the version is read and the
        // row inserted under one lock (a deferred read-then-write fails with
        // SQLITE_BUSY when another writer commits in between).
        let mut tx = self.begin_write("starting a document write").await?;
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM documents WHERE name = ?")
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("reading document versions"))?;
        let version = latest.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO documents (name, version, content, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(version)
        .bind(content.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("inserting a document"))?;
        // The first version is the default; a later one changes nothing here.
        sqlx::query(
            "INSERT INTO document_defaults (name, version) VALUES (?, ?)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db("recording a document's default version"))?;
        tx.commit().await.map_err(db("committing a document"))?;
        Ok(version)
    }

    async fn document(&self, name: &str, version: Option<i64>) -> Result<Option<Document>> {
        let row = match version {
            Some(v) => sqlx::query(
                "SELECT name, version, content, created_at FROM documents WHERE name = ? AND version = ?",
            )
            .bind(name)
            .bind(v),
            None => sqlx::query(
                "SELECT d.name, d.version, d.content, d.created_at
                 FROM documents d JOIN document_defaults f ON f.name = d.name AND f.version = d.version
                 WHERE d.name = ?",
            )
            .bind(name),
        }
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a document"))?;
        row.as_ref().map(document_from_row).transpose()
    }

    async fn document_versions(&self, name: &str) -> Result<Option<DocumentVersions>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DOCUMENT_VERSIONS} AND d.name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a document's versions"))?;
        Ok(row.as_ref().map(versions_from_row))
    }

    async fn list_documents(&self) -> Result<Vec<DocumentVersions>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DOCUMENT_VERSIONS} ORDER BY d.name"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing documents"))?;
        Ok(rows.iter().map(versions_from_row).collect())
    }

    async fn set_default_document_version(&self, name: &str, version: i64) -> Result<Option<i64>> {
        let mut tx = self
            .begin_write("starting a default version change")
            .await?;
        let exists: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM documents WHERE name = ? AND version = ?")
                .bind(name)
                .bind(version)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("reading a document version"))?;
        if exists == 0 {
            return Ok(None);
        }
        let previous: Option<i64> =
            sqlx::query_scalar("SELECT version FROM document_defaults WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("reading a document's default version"))?;
        sqlx::query(
            "INSERT INTO document_defaults (name, version) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version",
        )
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db("changing a document's default version"))?;
        tx.commit()
            .await
            .map_err(db("committing a default version change"))?;
        Ok(Some(previous.unwrap_or(version)))
    }
}

/// Each document's latest version row joined with its default.
const DOCUMENT_VERSIONS: &str = "SELECT d.name, d.version AS latest_version, d.created_at,
        f.version AS default_version
     FROM documents d JOIN document_defaults f ON f.name = d.name
     WHERE d.version = (SELECT MAX(version) FROM documents WHERE name = d.name)";

fn versions_from_row(row: &sqlx::sqlite::SqliteRow) -> DocumentVersions {
    DocumentVersions {
        name: row.get("name"),
        default_version: row.get("default_version"),
        latest_version: row.get("latest_version"),
        created_at: row.get("created_at"),
    }
}

#[async_trait]
impl CommandStore for SqliteStore {
    // ----- Commands ----------------------------------------------------------
    async fn insert_command(&self, command: &Command, targets: &[(String, String)]) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a command insert"))?;
        sqlx::query(
            "INSERT INTO commands (id, document_name, document_version, parameters, request, steps,
                max_concurrency, max_errors, timeout_secs, delivery_timeout_secs, status,
                created_at, finished_at, cancel_requested, requested_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?)",
        )
        .bind(&command.id)
        .bind(&command.document_name)
        .bind(command.document_version)
        .bind(command.parameters.to_string())
        .bind(command.request.to_string())
        .bind(to_json(&command.run_template))
        .bind(&command.max_concurrency)
        .bind(&command.max_errors)
        .bind(command.timeout_secs)
        .bind(command.delivery_timeout_secs)
        .bind(command.status.as_str())
        .bind(command.created_at)
        .bind(&command.requested_by)
        .execute(&mut *tx)
        .await
        .map_err(db("inserting a command"))?;
        for (node_id, node_name) in targets {
            sqlx::query(
                "INSERT INTO invocations (command_id, node_id, node_name, status, stdout, stderr,
                    stdout_truncated, stderr_truncated, steps)
                 VALUES (?, ?, ?, 'Pending', '', '', 0, 0, '[]')",
            )
            .bind(&command.id)
            .bind(node_id)
            .bind(node_name)
            .execute(&mut *tx)
            .await
            .map_err(db("inserting an invocation"))?;
        }
        tx.commit().await.map_err(db("committing a command"))?;
        Ok(())
    }

    async fn command(&self, id: &str) -> Result<Option<Command>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMMAND_SELECT} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a command"))?;
        row.as_ref().map(command_from_row).transpose()
    }

    async fn list_commands(&self, limit: i64) -> Result<Vec<Command>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMMAND_SELECT} ORDER BY created_at DESC, id LIMIT ?"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing commands"))?;
        rows.iter().map(command_from_row).collect()
    }

    async fn active_commands(&self) -> Result<Vec<Command>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMMAND_SELECT} WHERE status IN ('Pending', 'InProgress') ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing active commands"))?;
        rows.iter().map(command_from_row).collect()
    }

    async fn request_cancel(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE commands SET cancel_requested = 1 WHERE id = ? AND status IN ('Pending', 'InProgress')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("requesting a cancel"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_command_status(
        &self,
        id: &str,
        status: InvocationStatus,
        finished_at: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE commands SET status = ?, finished_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(finished_at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("updating a command's status"))?;
        Ok(())
    }

    async fn invocations(&self, command_id: &str) -> Result<Vec<Invocation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVOCATION_SELECT} WHERE command_id = ? ORDER BY node_name, node_id"
        )))
        .bind(command_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing invocations"))?;
        rows.iter().map(invocation_from_row).collect()
    }

    async fn in_progress_on_node(&self, node_id: &str) -> Result<Vec<Invocation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVOCATION_SELECT} WHERE node_id = ? AND status = 'InProgress' ORDER BY command_id"
        )))
        .bind(node_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing a node's in-progress invocations"))?;
        rows.iter().map(invocation_from_row).collect()
    }

    async fn node_invocations(&self, node_id: &str, limit: i64) -> Result<Vec<Invocation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVOCATION_SELECT} WHERE node_id = ? ORDER BY
                (SELECT created_at FROM commands WHERE commands.id = invocations.command_id) DESC,
                command_id DESC
             LIMIT ?"
        )))
        .bind(node_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing a node's recent invocations"))?;
        rows.iter().map(invocation_from_row).collect()
    }

    async fn finish_invocation_without_result(
        &self,
        command_id: &str,
        node_id: &str,
        status: InvocationStatus,
        detail: &str,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE invocations SET status = ?, status_detail = ?, finished_at = ?
             WHERE command_id = ? AND node_id = ? AND status IN ('Pending', 'InProgress')",
        )
        .bind(status.as_str())
        .bind(detail)
        .bind(now)
        .bind(command_id)
        .bind(node_id)
        .execute(&self.pool)
        .await
        .map_err(db("finishing an invocation"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_result(
        &self,
        command_id: &str,
        node_id: &str,
        result: &CommandResult,
    ) -> Result<bool> {
        let done = result_update(result)
            .bind(command_id)
            .bind(node_id)
            .execute(&self.pool)
            .await
            .map_err(db("recording a command result"))?;
        Ok(done.rows_affected() > 0)
    }

    // ----- Agent writes and dispatch ------------------------------------------
    async fn apply_agent_writes(&self, writes: &[AgentWrite]) -> Result<Vec<bool>> {
        let mut tx = self.begin_write("starting a batch of agent writes").await?;
        let mut changed = Vec::with_capacity(writes.len());
        for write in writes {
            let done = match write {
                AgentWrite::Started {
                    command_id,
                    node_id,
                    at,
                } => sqlx::query(
                    "UPDATE invocations SET started_at = ?
                     WHERE command_id = ? AND node_id = ? AND started_at IS NULL",
                )
                .bind(at)
                .bind(command_id)
                .bind(node_id)
                .execute(&mut *tx)
                .await
                .map_err(db("recording an invocation start"))?,
                AgentWrite::Finished {
                    command_id,
                    node_id,
                    result,
                } => result_update(result)
                    .bind(command_id)
                    .bind(node_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("recording a command result"))?,
            };
            changed.push(done.rows_affected() > 0);
        }
        tx.commit().await.map_err(db("committing agent writes"))?;
        Ok(changed)
    }

    async fn mark_dispatched_many(
        &self,
        command_id: &str,
        node_ids: &[String],
        now: i64,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin_write("starting a dispatch").await?;
        let mut dispatched = Vec::new();
        for node_id in node_ids {
            let done = sqlx::query(
                "UPDATE invocations SET status = 'InProgress', dispatched_at = ?
                 WHERE command_id = ? AND node_id = ? AND status = 'Pending'",
            )
            .bind(now)
            .bind(command_id)
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db("marking an invocation dispatched"))?;
            if done.rows_affected() > 0 {
                dispatched.push(node_id.clone());
            }
        }
        sqlx::query(
            "UPDATE commands SET status = 'InProgress' WHERE id = ? AND status = 'Pending'",
        )
        .bind(command_id)
        .execute(&mut *tx)
        .await
        .map_err(db("marking a command in progress"))?;
        tx.commit().await.map_err(db("committing a dispatch"))?;
        Ok(dispatched)
    }

    // ----- Metrics -------------------------------------------------------------
    async fn count_by_status(&self, table: StatusTable) -> Result<Vec<(String, i64)>> {
        let sql = match table {
            StatusTable::Commands => {
                "SELECT status, COUNT(*) FROM commands GROUP BY status ORDER BY status"
            }
            StatusTable::Invocations => {
                "SELECT status, COUNT(*) FROM invocations GROUP BY status ORDER BY status"
            }
        };
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db("counting rows by status"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// The UPDATE recording a final result; bind command id and node id next.
fn result_update(
    result: &CommandResult,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(
        "UPDATE invocations SET status = ?, status_detail = ?, exit_code = ?, stdout = ?, stderr = ?,
            stdout_truncated = ?, stderr_truncated = ?, started_at = COALESCE(started_at, ?),
            finished_at = ?, steps = ?
         WHERE command_id = ? AND node_id = ? AND status IN ('Pending', 'InProgress')",
    )
    .bind(result.status.as_str())
    .bind(&result.detail)
    .bind(result.exit_code)
    .bind(&result.stdout)
    .bind(&result.stderr)
    .bind(result.stdout_truncated)
    .bind(result.stderr_truncated)
    .bind(result.started_at)
    .bind(result.finished_at)
    .bind(to_json(&result.steps))
}

fn document_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Document> {
    Ok(Document {
        name: row.get("name"),
        version: row.get("version"),
        content: from_json("reading a document", row.get("content"))?,
        created_at: row.get("created_at"),
    })
}

const COMMAND_SELECT: &str =
    "SELECT id, document_name, document_version, parameters, request, steps,
    max_concurrency, max_errors, timeout_secs, delivery_timeout_secs, status, created_at,
    finished_at, cancel_requested, requested_by FROM commands";

fn command_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Command> {
    let status: String = row.get("status");
    Ok(Command {
        id: row.get("id"),
        document_name: row.get("document_name"),
        document_version: row.get("document_version"),
        parameters: from_json("reading command parameters", row.get("parameters"))?,
        request: from_json("reading a command request", row.get("request"))?,
        run_template: from_json("reading command steps", row.get("steps"))?,
        max_concurrency: row.get("max_concurrency"),
        max_errors: row.get("max_errors"),
        timeout_secs: row.get("timeout_secs"),
        delivery_timeout_secs: row.get("delivery_timeout_secs"),
        status: InvocationStatus::parse(&status)
            .ok_or_else(|| corrupt("reading a command status", &status))?,
        created_at: row.get("created_at"),
        finished_at: row.get("finished_at"),
        cancel_requested: row.get::<i64, _>("cancel_requested") != 0,
        requested_by: row.get("requested_by"),
    })
}

const INVOCATION_SELECT: &str = "SELECT command_id, node_id, node_name, status, status_detail,
    exit_code, stdout, stderr, stdout_truncated, stderr_truncated, dispatched_at, started_at,
    finished_at, steps FROM invocations";

fn invocation_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Invocation> {
    let status: String = row.get("status");
    Ok(Invocation {
        command_id: row.get("command_id"),
        node_id: row.get("node_id"),
        node_name: row.get("node_name"),
        status: InvocationStatus::parse(&status)
            .ok_or_else(|| corrupt("reading an invocation status", &status))?,
        status_detail: row.get("status_detail"),
        exit_code: row.get("exit_code"),
        stdout: row.get("stdout"),
        stderr: row.get("stderr"),
        stdout_truncated: row.get("stdout_truncated"),
        stderr_truncated: row.get("stderr_truncated"),
        dispatched_at: row.get("dispatched_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        steps: from_json("reading step results", row.get("steps"))?,
    })
}
