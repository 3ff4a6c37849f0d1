//! Parameter Store and access keys on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::{
    AccessKey, LabelRefusal, MAX_LABELS_PER_VERSION, MAX_PARAMETER_VERSIONS, NewParameterVersion,
    ParamSync, ParamSyncNode, ParameterStore, ParameterVersion, PutRefusal, Result, Tags, db,
};

/// The columns of a version with its labels (one per line), over `v`.
const VERSION_COLUMNS: &str = "v.name, v.version, v.type, v.value, v.sealed, v.key_id,
    v.description, v.allowed_pattern, v.tier, v.data_type, v.policies, v.modified_at,
    v.modified_by,
    (SELECT group_concat(label, char(10)) FROM
        (SELECT label FROM parameter_labels l
         WHERE l.name = v.name AND l.version = v.version ORDER BY label)) AS labels";

fn version_from_row(row: &sqlx::sqlite::SqliteRow) -> ParameterVersion {
    let labels: Option<String> = row.get("labels");
    ParameterVersion {
        version: row.get("version"),
        fields: NewParameterVersion {
            name: row.get("name"),
            param_type: row.get("type"),
            value: row.get("value"),
            sealed: row.get("sealed"),
            key_id: row.get("key_id"),
            description: row.get("description"),
            allowed_pattern: row.get("allowed_pattern"),
            tier: row.get("tier"),
            data_type: row.get("data_type"),
            policies: row.get("policies"),
            modified_at: row.get("modified_at"),
            modified_by: row.get("modified_by"),
        },
        labels: labels
            .map(|l| l.split('\n').map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> AccessKey {
    AccessKey {
        id: row.get("id"),
        user_id: row.get("user_id"),
        sealed_secret: row.get("sealed_secret"),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
        last_used_at: row.get("last_used_at"),
    }
}

const KEY_SELECT: &str =
    "SELECT id, user_id, sealed_secret, created_at, revoked_at, last_used_at FROM access_keys";

/// Escape `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` prefix match.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

async fn latest_in(tx: &mut Tx, name: &str) -> Result<Option<i64>> {
    sqlx::query_scalar("SELECT latest_version FROM parameters WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("reading a parameter's latest version"))
}

async fn version_exists(tx: &mut Tx, name: &str, version: i64) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM parameter_versions WHERE name = ? AND version = ?")
            .bind(name)
            .bind(version)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db("reading a parameter version"))?;
    Ok(found.is_some())
}

/// Drop the oldest unlabelled version once there are more than the limit;
/// `Err(MaxVersions)` if every version has a label.
async fn trim_versions(tx: &mut Tx, name: &str) -> Result<std::result::Result<(), PutRefusal>> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM parameter_versions WHERE name = ?")
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .map_err(db("counting parameter versions"))?;
    if count < MAX_PARAMETER_VERSIONS {
        return Ok(Ok(()));
    }
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM parameter_versions v WHERE name = ?
         AND NOT EXISTS (SELECT 1 FROM parameter_labels l WHERE l.name = v.name AND l.version = v.version)
         ORDER BY version LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db("finding the oldest unlabelled parameter version"))?;
    let Some(oldest) = oldest else {
        return Ok(Err(PutRefusal::MaxVersions));
    };
    sqlx::query("DELETE FROM parameter_versions WHERE name = ? AND version = ?")
        .bind(name)
        .bind(oldest)
        .execute(&mut **tx)
        .await
        .map_err(db("dropping the oldest parameter version"))?;
    Ok(Ok(()))
}

#[async_trait]
impl ParameterStore for SqliteStore {
    async fn put_parameter(
        &self,
        v: &NewParameterVersion,
        expect_latest: Option<i64>,
        tags: &Tags,
    ) -> Result<std::result::Result<i64, PutRefusal>> {
        let mut tx = self.begin_write("starting a parameter put").await?;
        let latest = latest_in(&mut tx, &v.name).await?;
        let version = match (latest, expect_latest) {
            (None, None) => {
                sqlx::query(
                    "INSERT INTO parameters (name, latest_version, created_at) VALUES (?, 1, ?)",
                )
                .bind(&v.name)
                .bind(v.modified_at)
                .execute(&mut *tx)
                .await
                .map_err(db("inserting a parameter"))?;
                for (key, value) in tags {
                    sqlx::query("INSERT INTO parameter_tags (name, key, value) VALUES (?, ?, ?)")
                        .bind(&v.name)
                        .bind(key)
                        .bind(value)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("tagging a new parameter"))?;
                }
                1
            }
            (Some(_), None) => return Ok(Err(PutRefusal::AlreadyExists)),
            (Some(latest), Some(expected)) if latest == expected => {
                if let Err(refusal) = trim_versions(&mut tx, &v.name).await? {
                    return Ok(Err(refusal));
                }
                sqlx::query(
                    "UPDATE parameters SET latest_version = ?, policy_checked_at = NULL WHERE name = ?",
                )
                .bind(latest + 1)
                .bind(&v.name)
                .execute(&mut *tx)
                .await
                .map_err(db("moving a parameter's latest version"))?;
                latest + 1
            }
            _ => return Ok(Err(PutRefusal::Moved)),
        };
        sqlx::query(
            "INSERT INTO parameter_versions (name, version, type, value, sealed, key_id,
                description, allowed_pattern, tier, data_type, policies, modified_at, modified_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&v.name)
        .bind(version)
        .bind(&v.param_type)
        .bind(&v.value)
        .bind(&v.sealed)
        .bind(&v.key_id)
        .bind(&v.description)
        .bind(&v.allowed_pattern)
        .bind(&v.tier)
        .bind(&v.data_type)
        .bind(&v.policies)
        .bind(v.modified_at)
        .bind(&v.modified_by)
        .execute(&mut *tx)
        .await
        .map_err(db("inserting a parameter version"))?;
        tx.commit()
            .await
            .map_err(db("committing a parameter put"))?;
        Ok(Ok(version))
    }

    async fn parameter(&self, name: &str) -> Result<Option<ParameterVersion>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM parameter_versions v JOIN parameters p ON p.name = v.name AND p.latest_version = v.version
             WHERE v.name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a parameter"))?;
        Ok(row.as_ref().map(version_from_row))
    }

    async fn parameter_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<Option<ParameterVersion>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM parameter_versions v WHERE v.name = ? AND v.version = ?"
        )))
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a parameter version"))?;
        Ok(row.as_ref().map(version_from_row))
    }

    async fn parameter_by_label(
        &self,
        name: &str,
        label: &str,
    ) -> Result<Option<ParameterVersion>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM parameter_versions v JOIN parameter_labels b ON b.name = v.name AND b.version = v.version
             WHERE v.name = ? AND b.label = ?"
        )))
        .bind(name)
        .bind(label)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a labelled parameter version"))?;
        Ok(row.as_ref().map(version_from_row))
    }

    async fn parameters_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ParameterVersion>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM parameter_versions v JOIN parameters p ON p.name = v.name AND p.latest_version = v.version
             WHERE v.name LIKE ? ESCAPE '\\' AND v.name > ? ORDER BY v.name LIMIT ?"
        )))
        .bind(like_prefix(prefix))
        .bind(after.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing parameters"))?;
        Ok(rows.iter().map(version_from_row).collect())
    }

    async fn parameter_history(&self, name: &str) -> Result<Vec<ParameterVersion>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM parameter_versions v WHERE v.name = ? ORDER BY v.version"
        )))
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading a parameter's history"))?;
        Ok(rows.iter().map(version_from_row).collect())
    }

    async fn label_parameter(
        &self,
        name: &str,
        version: i64,
        labels: &[String],
    ) -> Result<std::result::Result<(), LabelRefusal>> {
        let mut tx = self.begin_write("starting a parameter label").await?;
        if latest_in(&mut tx, name).await?.is_none() {
            return Ok(Err(LabelRefusal::ParameterNotFound));
        }
        if !version_exists(&mut tx, name, version).await? {
            return Ok(Err(LabelRefusal::VersionNotFound));
        }
        for label in labels {
            sqlx::query(
                "INSERT INTO parameter_labels (name, label, version) VALUES (?, ?, ?)
                 ON CONFLICT (name, label) DO UPDATE SET version = excluded.version",
            )
            .bind(name)
            .bind(label)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db("labelling a parameter version"))?;
        }
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM parameter_labels WHERE name = ? AND version = ?",
        )
        .bind(name)
        .bind(version)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("counting a version's labels"))?;
        if usize::try_from(count).unwrap_or(usize::MAX) > MAX_LABELS_PER_VERSION {
            // Dropping the transaction rolls the labels back.
            return Ok(Err(LabelRefusal::LabelLimitExceeded));
        }
        tx.commit()
            .await
            .map_err(db("committing a parameter label"))?;
        Ok(Ok(()))
    }

    async fn unlabel_parameter(
        &self,
        name: &str,
        version: i64,
        labels: &[String],
    ) -> Result<std::result::Result<Vec<String>, LabelRefusal>> {
        let mut tx = self.begin_write("starting a parameter unlabel").await?;
        if latest_in(&mut tx, name).await?.is_none() {
            return Ok(Err(LabelRefusal::ParameterNotFound));
        }
        if !version_exists(&mut tx, name, version).await? {
            return Ok(Err(LabelRefusal::VersionNotFound));
        }
        let mut removed = Vec::new();
        for label in labels {
            let done = sqlx::query(
                "DELETE FROM parameter_labels WHERE name = ? AND version = ? AND label = ?",
            )
            .bind(name)
            .bind(version)
            .bind(label)
            .execute(&mut *tx)
            .await
            .map_err(db("removing a parameter label"))?;
            if done.rows_affected() > 0 {
                removed.push(label.clone());
            }
        }
        tx.commit()
            .await
            .map_err(db("committing a parameter unlabel"))?;
        Ok(Ok(removed))
    }

    async fn delete_parameter(&self, name: &str) -> Result<Option<ParameterVersion>> {
        let mut tx = self.begin_write("starting a parameter delete").await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM parameter_versions v JOIN parameters p ON p.name = v.name AND p.latest_version = v.version
             WHERE v.name = ?"
        )))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("reading a parameter to delete"))?;
        let Some(latest) = row.as_ref().map(version_from_row) else {
            return Ok(None);
        };
        // Children first: the cascade would do it, but explicit deletes keep
        // the statement count independent of the engine's FK settings.
        for table in [
            "parameter_labels",
            "parameter_tags",
            "parameter_versions",
            "parameters",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE name = ?"
            )))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting a parameter"))?;
        }
        tx.commit()
            .await
            .map_err(db("committing a parameter delete"))?;
        Ok(Some(latest))
    }

    async fn parameter_tags(&self, name: &str) -> Result<Option<Tags>> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM parameters WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a parameter"))?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query("SELECT key, value FROM parameter_tags WHERE name = ? ORDER BY key")
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading a parameter's tags"))?;
        Ok(Some(
            rows.iter()
                .map(|r| (r.get("key"), r.get("value")))
                .collect(),
        ))
    }

    async fn tag_parameter(&self, name: &str, add: &Tags, remove: &[String]) -> Result<bool> {
        let mut tx = self.begin_write("starting a parameter tagging").await?;
        if latest_in(&mut tx, name).await?.is_none() {
            return Ok(false);
        }
        for key in remove {
            sqlx::query("DELETE FROM parameter_tags WHERE name = ? AND key = ?")
                .bind(name)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db("removing a parameter tag"))?;
        }
        for (key, value) in add {
            sqlx::query(
                "INSERT INTO parameter_tags (name, key, value) VALUES (?, ?, ?)
                 ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db("tagging a parameter"))?;
        }
        tx.commit()
            .await
            .map_err(db("committing a parameter tagging"))?;
        Ok(true)
    }

    async fn sealed_parameter_versions(
        &self,
        after: Option<(&str, i64)>,
        limit: usize,
    ) -> Result<Vec<(String, i64, Vec<u8>)>> {
        let (name, version) = after.unwrap_or(("", 0));
        let rows = sqlx::query(
            "SELECT name, version, sealed FROM parameter_versions
             WHERE sealed IS NOT NULL AND (name > ? OR (name = ? AND version > ?))
             ORDER BY name, version LIMIT ?",
        )
        .bind(name)
        .bind(name)
        .bind(version)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing sealed parameter versions"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get("name"), r.get("version"), r.get("sealed")))
            .collect())
    }

    async fn reseal_parameter_version(
        &self,
        name: &str,
        version: i64,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE parameter_versions SET sealed = ? WHERE name = ? AND version = ? AND sealed = ?",
        )
        .bind(new)
        .bind(name)
        .bind(version)
        .bind(old)
        .execute(&self.pool)
        .await
        .map_err(db("resealing a parameter version"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn parameters_with_policies(&self) -> Result<Vec<(ParameterVersion, Option<i64>)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS}, p.policy_checked_at AS policy_checked_at
             FROM parameter_versions v
             JOIN parameters p ON p.name = v.name AND p.latest_version = v.version
             WHERE v.policies IS NOT NULL ORDER BY v.name"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing parameters with policies"))?;
        Ok(rows
            .iter()
            .map(|r| (version_from_row(r), r.get("policy_checked_at")))
            .collect())
    }

    async fn set_policy_checked(&self, name: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE parameters SET policy_checked_at = ? WHERE name = ?")
            .bind(at)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("recording a policy evaluation"))?;
        Ok(())
    }

    async fn insert_access_key(&self, key: &AccessKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_keys (id, user_id, sealed_secret, created_at, revoked_at, last_used_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.user_id)
        .bind(&key.sealed_secret)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(key.last_used_at)
        .execute(&self.pool)
        .await
        .map_err(db("inserting an access key"))?;
        Ok(())
    }

    async fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{KEY_SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an access key"))?;
        Ok(row.as_ref().map(key_from_row))
    }

    async fn list_access_keys(&self, user_id: Option<&str>) -> Result<Vec<AccessKey>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{KEY_SELECT} WHERE ? IS NULL OR user_id = ? ORDER BY created_at DESC, id"
        )))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing access keys"))?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn revoke_access_key(&self, id: &str, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE access_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db("revoking an access key"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn reseal_access_key(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE access_keys SET sealed_secret = ? WHERE id = ? AND sealed_secret = ?",
        )
        .bind(new)
        .bind(id)
        .bind(old)
        .execute(&self.pool)
        .await
        .map_err(db("resealing an access key"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_param_sync(&self, sync: &ParamSync) -> Result<bool> {
        let existed: Option<i64> = sqlx::query_scalar("SELECT 1 FROM param_syncs WHERE name = ?")
            .bind(&sync.name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a sync"))?;
        sqlx::query(
            "INSERT INTO param_syncs (name, path, recursive, targets, file, format, mode, owner,
                grp, on_change, role, author, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET path = excluded.path,
                recursive = excluded.recursive, targets = excluded.targets,
                file = excluded.file, format = excluded.format, mode = excluded.mode,
                owner = excluded.owner, grp = excluded.grp, on_change = excluded.on_change,
                role = excluded.role, author = excluded.author,
                updated_at = excluded.updated_at",
        )
        .bind(&sync.name)
        .bind(&sync.path)
        .bind(sync.recursive)
        .bind(super::to_json(&sync.targets))
        .bind(&sync.file)
        .bind(&sync.format)
        .bind(sync.mode)
        .bind(&sync.owner)
        .bind(&sync.group)
        .bind(&sync.on_change)
        .bind(&sync.role)
        .bind(&sync.author)
        .bind(sync.created_at)
        .bind(sync.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db("writing a sync"))?;
        Ok(existed.is_none())
    }

    async fn param_sync(&self, name: &str) -> Result<Option<ParamSync>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SYNC_SELECT} WHERE name = ?")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a sync"))?;
        row.as_ref().map(sync_from_row).transpose()
    }

    async fn list_param_syncs(&self) -> Result<Vec<ParamSync>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SYNC_SELECT} ORDER BY name")))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing syncs"))?;
        rows.iter().map(sync_from_row).collect()
    }

    async fn delete_param_sync(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_write("starting a sync delete").await?;
        sqlx::query("DELETE FROM param_sync_nodes WHERE sync_name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting a sync's nodes"))?;
        let done = sqlx::query("DELETE FROM param_syncs WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting a sync"))?;
        tx.commit().await.map_err(db("committing a sync delete"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn param_sync_nodes(&self, name: &str) -> Result<Vec<ParamSyncNode>> {
        let rows = sqlx::query(
            "SELECT sync_name, node_id, node_name, status, detail, version_set, sent_digest,
                sent_at, applied_digest, applied_at, on_change_exit
             FROM param_sync_nodes WHERE sync_name = ? ORDER BY node_name",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading a sync's nodes"))?;
        Ok(rows
            .iter()
            .map(|r| ParamSyncNode {
                sync_name: r.get("sync_name"),
                node_id: r.get("node_id"),
                node_name: r.get("node_name"),
                status: r.get("status"),
                detail: r.get("detail"),
                version_set: r.get("version_set"),
                sent_digest: r.get("sent_digest"),
                sent_at: r.get("sent_at"),
                applied_digest: r.get("applied_digest"),
                applied_at: r.get("applied_at"),
                on_change_exit: r.get("on_change_exit"),
            })
            .collect())
    }

    async fn put_param_sync_nodes(&self, nodes: &[ParamSyncNode]) -> Result<()> {
        let mut tx = self.begin_write("starting a sync node write").await?;
        for n in nodes {
            sqlx::query(
                "INSERT OR REPLACE INTO param_sync_nodes (sync_name, node_id, node_name, status,
                    detail, version_set, sent_digest, sent_at, applied_digest, applied_at,
                    on_change_exit)
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS
                    (SELECT 1 FROM param_syncs WHERE name = ?)",
            )
            .bind(&n.sync_name)
            .bind(&n.node_id)
            .bind(&n.node_name)
            .bind(&n.status)
            .bind(&n.detail)
            .bind(&n.version_set)
            .bind(&n.sent_digest)
            .bind(n.sent_at)
            .bind(&n.applied_digest)
            .bind(n.applied_at)
            .bind(n.on_change_exit)
            .bind(&n.sync_name)
            .execute(&mut *tx)
            .await
            .map_err(db("writing a sync's node state"))?;
        }
        tx.commit()
            .await
            .map_err(db("committing sync node states"))?;
        Ok(())
    }

    async fn delete_param_sync_node(&self, name: &str, node_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM param_sync_nodes WHERE sync_name = ? AND node_id = ?")
            .bind(name)
            .bind(node_id)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a sync's node state"))?;
        Ok(())
    }
}

const SYNC_SELECT: &str = "SELECT name, path, recursive, targets, file, format, mode, owner, grp,
    on_change, role, author, created_at, updated_at FROM param_syncs";

fn sync_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<ParamSync> {
    let targets: String = r.get("targets");
    Ok(ParamSync {
        name: r.get("name"),
        path: r.get("path"),
        recursive: r.get("recursive"),
        targets: super::from_json("reading a sync's targets", &targets)?,
        file: r.get("file"),
        format: r.get("format"),
        mode: r.get("mode"),
        owner: r.get("owner"),
        group: r.get("grp"),
        on_change: r.get("on_change"),
        role: r.get("role"),
        author: r.get("author"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}
