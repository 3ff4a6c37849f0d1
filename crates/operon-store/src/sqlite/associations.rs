//! Associations, their runs and compliance on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, from_json, to_json};
use crate::{
    AssociationRecord, AssociationRun, AssociationStore, AssociationVersion, COMPLIANT,
    ComplianceChange, ComplianceNode, ComplianceReport, ComplianceResource, NON_COMPLIANT, Result,
    db,
};

const ASSOCIATION_SELECT: &str = "SELECT name, version, spec, author, created_at, updated_at,
    last_scheduled_at, applied_document_version FROM associations";

fn association_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AssociationRecord> {
    let spec: String = row.get("spec");
    Ok(AssociationRecord {
        name: row.get("name"),
        version: row.get("version"),
        spec: from_json("an association's spec", &spec)?,
        author: row.get("author"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        last_scheduled_at: row.get("last_scheduled_at"),
        applied_document_version: row.get("applied_document_version"),
    })
}

const RUN_SELECT: &str = "SELECT command_id, association, version, reason, mode, node_id,
    created_at FROM association_runs";

fn run_from_row(row: &sqlx::sqlite::SqliteRow) -> AssociationRun {
    AssociationRun {
        command_id: row.get("command_id"),
        association: row.get("association"),
        version: row.get("version"),
        reason: row.get("reason"),
        mode: row.get("mode"),
        node_id: row.get("node_id"),
        created_at: row.get("created_at"),
    }
}

/// `WHERE` over optional association and node columns, with the binds.
fn narrowing(association: Option<&str>, node_id: Option<&str>) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    if let Some(a) = association {
        clauses.push("association = ?");
        binds.push(a.to_string());
    }
    if let Some(n) = node_id {
        clauses.push("node_id = ?");
        binds.push(n.to_string());
    }
    let text = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (text, binds)
}

#[async_trait]
impl AssociationStore for SqliteStore {
    async fn put_association(
        &self,
        record: &AssociationRecord,
        expect_version: Option<i64>,
    ) -> Result<bool> {
        let mut tx = self.begin_write("starting an association write").await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM associations WHERE name = ?")
                .bind(&record.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("reading an association"))?;
        if current != expect_version {
            return Ok(false);
        }
        let spec = to_json(&record.spec);
        sqlx::query(
            "INSERT INTO associations (name, version, spec, author, created_at, updated_at,
                last_scheduled_at, applied_document_version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                spec = excluded.spec, author = excluded.author,
                updated_at = excluded.updated_at",
        )
        .bind(&record.name)
        .bind(record.version)
        .bind(&spec)
        .bind(&record.author)
        .bind(record.created_at)
        .bind(record.updated_at)
        .bind(record.last_scheduled_at)
        .bind(record.applied_document_version)
        .execute(&mut *tx)
        .await
        .map_err(db("writing an association"))?;
        sqlx::query(
            "INSERT OR REPLACE INTO association_versions (name, version, spec, author, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&record.name)
        .bind(record.version)
        .bind(&spec)
        .bind(&record.author)
        .bind(record.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db("writing an association version"))?;
        tx.commit()
            .await
            .map_err(db("committing an association write"))?;
        Ok(true)
    }

    async fn association(&self, name: &str) -> Result<Option<AssociationRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ASSOCIATION_SELECT} WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an association"))?;
        row.as_ref().map(association_from_row).transpose()
    }

    async fn list_associations(&self) -> Result<Vec<AssociationRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ASSOCIATION_SELECT} ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing associations"))?;
        rows.iter().map(association_from_row).collect()
    }

    async fn association_versions(&self, name: &str) -> Result<Vec<AssociationVersion>> {
        let rows = sqlx::query(
            "SELECT name, version, spec, author, created_at FROM association_versions
             WHERE name = ? ORDER BY version",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading association versions"))?;
        rows.iter()
            .map(|r| {
                let spec: String = r.get("spec");
                Ok(AssociationVersion {
                    name: r.get("name"),
                    version: r.get("version"),
                    spec: from_json("an association version's spec", &spec)?,
                    author: r.get("author"),
                    created_at: r.get("created_at"),
                })
            })
            .collect()
    }

    async fn delete_association(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_write("starting an association delete").await?;
        for table in [
            "association_versions",
            "association_runs",
            "compliance_nodes",
            "compliance_resources",
        ] {
            let column = if table == "association_versions" {
                "name"
            } else {
                "association"
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {column} = ?"
            )))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting an association's records"))?;
        }
        let done = sqlx::query("DELETE FROM associations WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting an association"))?;
        tx.commit()
            .await
            .map_err(db("committing an association delete"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_association(
        &self,
        name: &str,
        last_scheduled_at: Option<i64>,
        applied_document_version: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE associations SET
                last_scheduled_at = COALESCE(?, last_scheduled_at),
                applied_document_version = COALESCE(?, applied_document_version)
             WHERE name = ?",
        )
        .bind(last_scheduled_at)
        .bind(applied_document_version)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(db("marking an association"))?;
        Ok(())
    }

    async fn insert_association_run(&self, run: &AssociationRun) -> Result<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO association_runs (command_id, association, version, reason,
                mode, node_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&run.command_id)
        .bind(&run.association)
        .bind(run.version)
        .bind(&run.reason)
        .bind(&run.mode)
        .bind(&run.node_id)
        .bind(run.created_at)
        .execute(&self.pool)
        .await
        .map_err(db("recording an association run"))?;
        Ok(())
    }

    async fn association_run(&self, command_id: &str) -> Result<Option<AssociationRun>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_SELECT} WHERE command_id = ?"
        )))
        .bind(command_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading an association run"))?;
        Ok(row.as_ref().map(run_from_row))
    }

    async fn association_runs(&self, name: &str, limit: i64) -> Result<Vec<AssociationRun>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_SELECT} WHERE association = ? ORDER BY created_at DESC, command_id DESC LIMIT ?"
        )))
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing association runs"))?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    async fn record_compliance(
        &self,
        report: &ComplianceReport,
    ) -> Result<Option<ComplianceChange>> {
        let mut tx = self.begin_write("starting a compliance write").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM associations WHERE name = ?")
            .bind(&report.association)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("reading an association"))?;
        if exists.is_none() {
            return Ok(None);
        }
        let before: Option<String> = sqlx::query_scalar(
            "SELECT status FROM compliance_nodes WHERE association = ? AND node_id = ?",
        )
        .bind(&report.association)
        .bind(&report.node_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("reading a node's compliance"))?;
        if report.replace {
            sqlx::query("DELETE FROM compliance_resources WHERE association = ? AND node_id = ?")
                .bind(&report.association)
                .bind(&report.node_id)
                .execute(&mut *tx)
                .await
                .map_err(db("clearing a node's compliance"))?;
        }
        for r in &report.resources {
            sqlx::query(
                "INSERT OR REPLACE INTO compliance_resources (association, node_id, resource,
                    kind, status, outcome, changes, diff, message, command_id, at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&report.association)
            .bind(&report.node_id)
            .bind(&r.resource)
            .bind(&r.kind)
            .bind(&r.status)
            .bind(&r.outcome)
            .bind(to_json(&r.changes))
            .bind(&r.diff)
            .bind(&r.message)
            .bind(&r.command_id)
            .bind(r.at)
            .execute(&mut *tx)
            .await
            .map_err(db("writing a resource's compliance"))?;
        }
        let failing: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM compliance_resources
             WHERE association = ? AND node_id = ? AND status != ?",
        )
        .bind(&report.association)
        .bind(&report.node_id)
        .bind(COMPLIANT)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("counting a node's non-compliant resources"))?;
        let after = if failing > 0 {
            NON_COMPLIANT
        } else {
            COMPLIANT
        };
        sqlx::query(
            "INSERT INTO compliance_nodes (association, node_id, node_name, status, severity,
                command_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (association, node_id) DO UPDATE SET node_name = excluded.node_name,
                status = excluded.status, severity = excluded.severity,
                command_id = COALESCE(excluded.command_id, compliance_nodes.command_id),
                at = excluded.at",
        )
        .bind(&report.association)
        .bind(&report.node_id)
        .bind(&report.node_name)
        .bind(after)
        .bind(&report.severity)
        .bind(&report.command_id)
        .bind(report.at)
        .execute(&mut *tx)
        .await
        .map_err(db("writing a node's compliance"))?;
        tx.commit()
            .await
            .map_err(db("committing a compliance write"))?;
        Ok(Some(ComplianceChange {
            before,
            after: after.to_string(),
        }))
    }

    async fn compliance_nodes(
        &self,
        association: Option<&str>,
        node_id: Option<&str>,
    ) -> Result<Vec<ComplianceNode>> {
        let (narrow, binds) = narrowing(association, node_id);
        let sql = format!(
            "SELECT association, node_id, node_name, status, severity, command_id, at
             FROM compliance_nodes{narrow} ORDER BY association, node_name"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing compliance"))?;
        Ok(rows
            .iter()
            .map(|r| ComplianceNode {
                association: r.get("association"),
                node_id: r.get("node_id"),
                node_name: r.get("node_name"),
                status: r.get("status"),
                severity: r.get("severity"),
                command_id: r.get("command_id"),
                at: r.get("at"),
            })
            .collect())
    }

    async fn compliance_resources(
        &self,
        association: Option<&str>,
        node_id: Option<&str>,
    ) -> Result<Vec<ComplianceResource>> {
        let (narrow, binds) = narrowing(association, node_id);
        let sql = format!(
            "SELECT association, node_id, resource, kind, status, outcome, changes, diff,
                message, command_id, at
             FROM compliance_resources{narrow} ORDER BY association, node_id, resource"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing resource compliance"))?;
        rows.iter()
            .map(|r| {
                let changes: String = r.get("changes");
                Ok(ComplianceResource {
                    association: r.get("association"),
                    node_id: r.get("node_id"),
                    resource: r.get("resource"),
                    kind: r.get("kind"),
                    status: r.get("status"),
                    outcome: r.get("outcome"),
                    changes: from_json("a resource's changes", &changes)?,
                    diff: r.get("diff"),
                    message: r.get("message"),
                    command_id: r.get("command_id"),
                    at: r.get("at"),
                })
            })
            .collect()
    }
}
