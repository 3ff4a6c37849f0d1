//! Durable workflows on SQLite.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;

use super::{SqliteStore, from_json};
use crate::{
    Approval, ApprovalDecision, ExecutionFilter, ExecutionRecord, HistoryRow, Result, StepWrite,
    TimerRow, VersionRunAs, Workflow, WorkflowStore, WorkflowTask, WorkflowVersionInfo, db,
};

const EXECUTION_SELECT: &str = "SELECT id, workflow, version, name, status, input, output, error,
    cause, parent_token, started_by, started_at, stopped_at, updated_at, redrive_count, causation
    FROM executions";
const EXECUTION_ENGINE_SELECT: &str = "SELECT id, workflow, version, name, status, input, output,
    error, cause, parent_token, started_by, started_at, stopped_at, updated_at, redrive_count,
    causation, engine FROM executions";

fn execution_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ExecutionRecord> {
    let output: Option<String> = row.get("output");
    Ok(ExecutionRecord {
        id: row.get("id"),
        workflow: row.get("workflow"),
        version: row.get("version"),
        name: row.get("name"),
        status: row.get("status"),
        input: from_json("reading an execution input", row.get("input"))?,
        output: output
            .map(|o| from_json("reading an execution output", &o))
            .transpose()?,
        error: row.get("error"),
        cause: row.get("cause"),
        parent_token: row.get("parent_token"),
        started_by: row.get("started_by"),
        started_at: row.get("started_at"),
        stopped_at: row.get("stopped_at"),
        updated_at: row.get("updated_at"),
        redrive_count: row.get("redrive_count"),
        causation: row
            .get::<Option<String>, _>("causation")
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
    })
}

const APPROVAL_SELECT: &str = "SELECT id, execution_id, token, state, message, approvers, status,
    decided_by, comment, created_at, decided_at FROM approvals";

fn approval_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Approval> {
    Ok(Approval {
        id: row.get("id"),
        execution_id: row.get("execution_id"),
        token: row.get("token"),
        state: row.get("state"),
        message: row.get("message"),
        approvers: from_json("reading approvers", row.get("approvers"))?,
        status: row.get("status"),
        decided_by: row.get("decided_by"),
        comment: row.get("comment"),
        created_at: row.get("created_at"),
        decided_at: row.get("decided_at"),
    })
}

fn task_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<WorkflowTask> {
    Ok(WorkflowTask {
        token: row.get("token"),
        execution_id: row.get("execution_id"),
        state: row.get("state"),
        resource: row.get("resource"),
        input: from_json("reading a task input", row.get("input"))?,
        idempotency_key: row.get("idempotency_key"),
        created_at: row.get("created_at"),
    })
}

#[async_trait]
impl WorkflowStore for SqliteStore {
    // ----- State machines --------------------------------------------------
    async fn put_workflow(
        &self,
        name: &str,
        definition: &Value,
        role: Option<&str>,
        by: &str,
        now: i64,
        create_only: bool,
    ) -> Result<Result<i64, String>> {
        let mut tx = self.begin_write("starting a workflow write").await?;
        let existing: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT latest_version, deleted_at FROM workflows WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("reading a workflow"))?;
        let live = existing.is_some_and(|(_, deleted)| deleted.is_none());
        if create_only && live {
            return Ok(Err(format!(
                "workflow {name:?} already exists; use update to add a version"
            )));
        }
        if !create_only && !live {
            return Ok(Err(format!("no workflow named {name:?}")));
        }
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM workflow_versions WHERE workflow = ?")
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("reading workflow versions"))?;
        let version = max.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO workflow_versions (workflow, version, definition, created_at, created_by, role)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(version)
        .bind(definition.to_string())
        .bind(now)
        .bind(by)
        .bind(role)
        .execute(&mut *tx)
        .await
        .map_err(db("inserting a workflow version"))?;
        sqlx::query(
            "INSERT INTO workflows (name, latest_version, created_at, updated_at, deleted_at)
             VALUES (?, ?, ?, ?, NULL)
             ON CONFLICT (name) DO UPDATE SET latest_version = excluded.latest_version,
                updated_at = excluded.updated_at, deleted_at = NULL,
                created_at = CASE WHEN workflows.deleted_at IS NULL
                    THEN workflows.created_at ELSE excluded.created_at END",
        )
        .bind(name)
        .bind(version)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("writing a workflow"))?;
        tx.commit().await.map_err(db("committing a workflow"))?;
        Ok(Ok(version))
    }

    async fn workflow(&self, name: &str) -> Result<Option<Workflow>> {
        let row = sqlx::query(
            "SELECT w.name, w.latest_version, v.definition, w.created_at, w.updated_at,
                v.created_by, v.role
             FROM workflows w JOIN workflow_versions v
               ON v.workflow = w.name AND v.version = w.latest_version
             WHERE w.name = ? AND w.deleted_at IS NULL",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a workflow"))?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn list_workflows(&self) -> Result<Vec<Workflow>> {
        let rows = sqlx::query(
            "SELECT w.name, w.latest_version, v.definition, w.created_at, w.updated_at,
                v.created_by, v.role
             FROM workflows w JOIN workflow_versions v
               ON v.workflow = w.name AND v.version = w.latest_version
             WHERE w.deleted_at IS NULL ORDER BY w.name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing workflows"))?;
        rows.iter().map(workflow_from_row).collect()
    }

    async fn workflow_definition(&self, name: &str, version: i64) -> Result<Option<Value>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT definition FROM workflow_versions WHERE workflow = ? AND version = ?",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a workflow definition"))?;
        text.map(|t| from_json("reading a workflow definition", &t))
            .transpose()
    }

    async fn workflow_run_as(&self, name: &str, version: i64) -> Result<Option<VersionRunAs>> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT created_by, role FROM workflow_versions WHERE workflow = ? AND version = ?",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a workflow version's role"))?;
        Ok(row.map(|(created_by, role)| VersionRunAs { created_by, role }))
    }

    async fn workflow_versions(&self, name: &str) -> Result<Vec<WorkflowVersionInfo>> {
        let rows: Vec<(i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT version, created_at, created_by, role FROM workflow_versions
             WHERE workflow = ? ORDER BY version DESC",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing a workflow's versions"))?;
        Ok(rows
            .into_iter()
            .map(
                |(version, created_at, created_by, role)| WorkflowVersionInfo {
                    version,
                    created_at,
                    created_by,
                    role,
                },
            )
            .collect())
    }

    async fn delete_workflow(&self, name: &str, now: i64) -> Result<Result<(), String>> {
        let mut tx = self.begin_write("starting a workflow delete").await?;
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM executions WHERE workflow = ? AND status = 'RUNNING'",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("counting running executions"))?;
        if running > 0 {
            return Ok(Err(format!(
                "workflow {name:?} has {running} running execution(s); stop them first"
            )));
        }
        let done = sqlx::query(
            "UPDATE workflows SET deleted_at = ? WHERE name = ? AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db("deleting a workflow"))?;
        if done.rows_affected() == 0 {
            return Ok(Err(format!("no workflow named {name:?}")));
        }
        tx.commit()
            .await
            .map_err(db("committing a workflow delete"))?;
        Ok(Ok(()))
    }

    // ----- Executions ------------------------------------------------------
    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an execution"))?;
        row.as_ref().map(execution_from_row).transpose()
    }

    async fn execution_by_name(
        &self,
        workflow: &str,
        name: &str,
    ) -> Result<Option<ExecutionRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE workflow = ? AND name = ?"
        )))
        .bind(workflow)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an execution by name"))?;
        row.as_ref().map(execution_from_row).transpose()
    }

    async fn execution_engine(&self, id: &str) -> Result<Option<(ExecutionRecord, String)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EXECUTION_ENGINE_SELECT} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an execution's state"))?;
        match row {
            Some(row) => Ok(Some((execution_from_row(&row)?, row.get("engine")))),
            None => Ok(None),
        }
    }

    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionRecord>> {
        let mut sql = format!("{EXECUTION_SELECT} WHERE 1 = 1");
        if filter.status.is_some() {
            sql.push_str(" AND status = ?");
        }
        if filter.workflow.is_some() {
            sql.push_str(" AND workflow = ?");
        }
        sql.push_str(" ORDER BY started_at DESC, id LIMIT ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(status) = &filter.status {
            query = query.bind(status);
        }
        if let Some(workflow) = &filter.workflow {
            query = query.bind(workflow);
        }
        let rows = query
            .bind(filter.limit.max(1))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing executions"))?;
        rows.iter().map(execution_from_row).collect()
    }

    async fn count_executions_by_status(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM executions GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(db("counting executions"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn execution_history(&self, id: &str, after: i64, limit: i64) -> Result<Vec<HistoryRow>> {
        let rows = sqlx::query(
            "SELECT seq, timestamp, event FROM execution_history
             WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading execution history"))?;
        Ok(rows
            .iter()
            .map(|r| HistoryRow {
                seq: r.get("seq"),
                timestamp: r.get("timestamp"),
                event: r.get("event"),
            })
            .collect())
    }

    async fn apply_workflow_steps(
        &self,
        steps: &[StepWrite],
    ) -> Result<Option<crate::AuditAdvance>> {
        let mut tx = self
            .begin_write("starting a batch of workflow steps")
            .await?;
        write_batch(&mut tx, steps).await?;
        let audit: Vec<crate::AuditEntry> =
            steps.iter().flat_map(|s| s.audit.iter().cloned()).collect();
        let at = steps
            .iter()
            .map(|s| s.execution.updated_at)
            .max()
            .unwrap_or(0);
        let head = super::audit::append_audit_in(&mut tx, &audit, at).await?;
        tx.commit().await.map_err(db("committing workflow steps"))?;
        Ok(head)
    }

    // ----- Timers, tasks and approvals ------------------------------------
    async fn workflow_timers(&self) -> Result<Vec<TimerRow>> {
        let rows = sqlx::query(
            "SELECT execution_id, timer_id, due_at FROM workflow_timers ORDER BY due_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing workflow timers"))?;
        Ok(rows
            .iter()
            .map(|r| TimerRow {
                execution_id: r.get("execution_id"),
                timer_id: r.get("timer_id"),
                due_at: r.get("due_at"),
            })
            .collect())
    }

    async fn workflow_tasks(&self) -> Result<Vec<WorkflowTask>> {
        let rows = sqlx::query(
            "SELECT token, execution_id, state, resource, input, idempotency_key, created_at
             FROM workflow_tasks ORDER BY created_at, token",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing workflow tasks"))?;
        rows.iter().map(task_from_row).collect()
    }

    async fn workflow_task(&self, token: &str) -> Result<Option<WorkflowTask>> {
        let row = sqlx::query(
            "SELECT token, execution_id, state, resource, input, idempotency_key, created_at
             FROM workflow_tasks WHERE token = ?",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a workflow task"))?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn approval(&self, id: &str) -> Result<Option<Approval>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{APPROVAL_SELECT} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an approval"))?;
        row.as_ref().map(approval_from_row).transpose()
    }

    async fn list_approvals(&self, status: Option<&str>, limit: i64) -> Result<Vec<Approval>> {
        let rows = match status {
            Some(status) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "{APPROVAL_SELECT} WHERE status = ? ORDER BY created_at DESC, id LIMIT ?"
            )))
            .bind(status)
            .bind(limit.max(1)),
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "{APPROVAL_SELECT} ORDER BY created_at DESC, id LIMIT ?"
            )))
            .bind(limit.max(1)),
        }
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing approvals"))?;
        rows.iter().map(approval_from_row).collect()
    }
}

fn workflow_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Workflow> {
    Ok(Workflow {
        name: row.get("name"),
        version: row.get("latest_version"),
        definition: from_json("reading a workflow definition", row.get("definition"))?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        created_by: row.get("created_by"),
        role: row.get("role"),
    })
}

/// Rows per multi-row INSERT (well under SQLite's bound-parameter limit).
const ROWS_PER_INSERT: usize = 400;

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

/// Write a batch of steps with few statements: one row write per execution
/// (its last state in the batch), multi-row inserts for history, timers and
/// tasks, and set deletes for what the steps no longer need. Tokens and timer
/// ids are never reused, so removing before adding gives the batch's net
/// effect; finished executions lose their timers and tasks last.
async fn write_batch(tx: &mut Tx<'_>, steps: &[StepWrite]) -> Result<()> {
    write_executions(tx, steps).await?;
    let history: Vec<(&str, &HistoryRow)> = steps
        .iter()
        .flat_map(|s| s.history.iter().map(move |h| (s.execution.id.as_str(), h)))
        .collect();
    insert_history(tx, &history).await?;
    let removed_tokens: Vec<&str> = steps
        .iter()
        .flat_map(|s| s.tasks_remove.iter().map(String::as_str))
        .collect();
    remove_tasks(tx, &removed_tokens).await?;
    for step in steps {
        for timer in &step.timers_remove {
            sqlx::query("DELETE FROM workflow_timers WHERE execution_id = ? AND timer_id = ?")
                .bind(&step.execution.id)
                .bind(timer)
                .execute(&mut **tx)
                .await
                .map_err(db("removing a timer"))?;
        }
    }
    let removed: std::collections::HashSet<&str> = removed_tokens.iter().copied().collect();
    let fired: std::collections::HashSet<(&str, i64)> = steps
        .iter()
        .flat_map(|s| {
            s.timers_remove
                .iter()
                .map(move |t| (s.execution.id.as_str(), *t))
        })
        .collect();
    let timers: Vec<(&str, i64, i64)> = steps
        .iter()
        .flat_map(|s| {
            let id = s.execution.id.as_str();
            s.timers_add.iter().map(move |(t, due)| (id, *t, *due))
        })
        .filter(|(id, t, _)| !fired.contains(&(*id, *t)))
        .collect();
    insert_timers(tx, &timers).await?;
    let tasks: Vec<&WorkflowTask> = steps
        .iter()
        .flat_map(|s| s.tasks_add.iter())
        .filter(|t| !removed.contains(t.token.as_str()))
        .collect();
    insert_tasks(tx, &tasks).await?;
    for step in steps {
        for a in step
            .approvals_add
            .iter()
            .filter(|a| !removed.contains(a.token.as_str()))
        {
            insert_approval(tx, a).await?;
        }
        for d in &step.approval_decisions {
            decide_approval(tx, d).await?;
        }
    }
    let mut last: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for step in steps {
        last.insert(step.execution.id.as_str(), step.execution.status.as_str());
    }
    let finished = last
        .into_iter()
        .filter(|(_, status)| *status != "RUNNING")
        .map(|(id, _)| id);
    for id in finished {
        clear_finished(tx, id).await?;
    }
    Ok(())
}

/// Executions per multi-row upsert (16 parameters each).
const EXECUTIONS_PER_UPSERT: usize = 200;

/// Every execution of the batch with its last state, in multi-row
/// statements: new ones inserted (an id or a name already taken fails the
/// batch), existing ones upserted.
async fn write_executions(tx: &mut Tx<'_>, steps: &[StepWrite]) -> Result<()> {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut last: Vec<&StepWrite> = steps
        .iter()
        .rev()
        .filter(|s| seen.insert(s.execution.id.as_str()))
        .collect();
    last.reverse();
    let inserted: std::collections::HashSet<&str> = steps
        .iter()
        .filter(|s| s.insert)
        .map(|s| s.execution.id.as_str())
        .collect();
    let (new, old): (Vec<&StepWrite>, Vec<&StepWrite>) = last
        .into_iter()
        .partition(|s| inserted.contains(s.execution.id.as_str()));
    upsert_executions(tx, &new, "").await?;
    upsert_executions(
        tx,
        &old,
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, output = excluded.output,
            error = excluded.error, cause = excluded.cause, engine = excluded.engine,
            stopped_at = excluded.stopped_at, updated_at = excluded.updated_at,
            redrive_count = excluded.redrive_count",
    )
    .await
}

async fn upsert_executions(tx: &mut Tx<'_>, steps: &[&StepWrite], on_conflict: &str) -> Result<()> {
    for chunk in steps.chunks(EXECUTIONS_PER_UPSERT) {
        let sql = format!(
            "INSERT INTO executions (id, workflow, version, name, status, input, output, error,
                cause, engine, parent_token, started_by, started_at, stopped_at, updated_at,
                redrive_count, causation)
             VALUES {} {on_conflict}",
            placeholders(chunk.len(), 17)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for step in chunk {
            let e = &step.execution;
            query = query
                .bind(&e.id)
                .bind(&e.workflow)
                .bind(e.version)
                .bind(&e.name)
                .bind(&e.status)
                .bind(e.input.to_string())
                .bind(e.output.as_ref().map(Value::to_string))
                .bind(&e.error)
                .bind(&e.cause)
                .bind(&step.engine)
                .bind(&e.parent_token)
                .bind(&e.started_by)
                .bind(e.started_at)
                .bind(e.stopped_at)
                .bind(e.updated_at)
                .bind(e.redrive_count)
                .bind(
                    (!e.causation.is_empty())
                        .then(|| serde_json::to_string(&e.causation).unwrap_or_default()),
                );
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(db("writing executions"))?;
    }
    Ok(())
}

fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

async fn insert_history(tx: &mut Tx<'_>, rows: &[(&str, &HistoryRow)]) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO execution_history (execution_id, seq, timestamp, event) VALUES {}",
            placeholders(chunk.len(), 4)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, h) in chunk {
            query = query.bind(*id).bind(h.seq).bind(h.timestamp).bind(&h.event);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(db("inserting history events"))?;
    }
    Ok(())
}

async fn remove_tasks(tx: &mut Tx<'_>, tokens: &[&str]) -> Result<()> {
    for chunk in tokens.chunks(ROWS_PER_INSERT) {
        let list = vec!["?"; chunk.len()].join(", ");
        let mut delete = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM workflow_tasks WHERE token IN ({list})"
        )));
        let mut expire = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE approvals SET status = 'Expired' WHERE status = 'Pending' AND token IN ({list})"
        )));
        for token in chunk {
            delete = delete.bind(*token);
            expire = expire.bind(*token);
        }
        delete
            .execute(&mut **tx)
            .await
            .map_err(db("removing tasks"))?;
        expire
            .execute(&mut **tx)
            .await
            .map_err(db("expiring approvals"))?;
    }
    Ok(())
}

async fn insert_timers(tx: &mut Tx<'_>, timers: &[(&str, i64, i64)]) -> Result<()> {
    for chunk in timers.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO workflow_timers (execution_id, timer_id, due_at) VALUES {}
             ON CONFLICT (execution_id, timer_id) DO UPDATE SET due_at = excluded.due_at",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, timer, due) in chunk {
            query = query.bind(*id).bind(*timer).bind(*due);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(db("adding timers"))?;
    }
    Ok(())
}

async fn insert_tasks(tx: &mut Tx<'_>, tasks: &[&WorkflowTask]) -> Result<()> {
    for chunk in tasks.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO workflow_tasks (token, execution_id, state, resource, input,
                idempotency_key, created_at) VALUES {}",
            placeholders(chunk.len(), 7)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in chunk {
            query = query
                .bind(&t.token)
                .bind(&t.execution_id)
                .bind(&t.state)
                .bind(&t.resource)
                .bind(t.input.to_string())
                .bind(&t.idempotency_key)
                .bind(t.created_at);
        }
        query.execute(&mut **tx).await.map_err(db("adding tasks"))?;
    }
    Ok(())
}

async fn insert_approval(tx: &mut Tx<'_>, a: &Approval) -> Result<()> {
    sqlx::query(
        "INSERT INTO approvals (id, execution_id, token, state, message, approvers, status,
            decided_by, comment, created_at, decided_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&a.id)
    .bind(&a.execution_id)
    .bind(&a.token)
    .bind(&a.state)
    .bind(&a.message)
    .bind(serde_json::to_string(&a.approvers).unwrap_or_else(|_| "[]".into()))
    .bind(&a.status)
    .bind(&a.decided_by)
    .bind(&a.comment)
    .bind(a.created_at)
    .bind(a.decided_at)
    .execute(&mut **tx)
    .await
    .map_err(db("adding an approval"))?;
    Ok(())
}

async fn decide_approval(tx: &mut Tx<'_>, d: &ApprovalDecision) -> Result<()> {
    sqlx::query(
        "UPDATE approvals SET status = ?, decided_by = ?, comment = ?, decided_at = ?
         WHERE id = ?",
    )
    .bind(&d.status)
    .bind(&d.decided_by)
    .bind(&d.comment)
    .bind(d.at)
    .bind(&d.id)
    .execute(&mut **tx)
    .await
    .map_err(db("deciding an approval"))?;
    Ok(())
}

/// A finished execution needs no timers or tasks; its pending approvals expire.
async fn clear_finished(tx: &mut Tx<'_>, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM workflow_timers WHERE execution_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db("removing an execution's timers"))?;
    sqlx::query("DELETE FROM workflow_tasks WHERE execution_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db("removing an execution's tasks"))?;
    sqlx::query(
        "UPDATE approvals SET status = 'Expired' WHERE execution_id = ? AND status = 'Pending'",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(db("expiring an execution's approvals"))?;
    Ok(())
}
