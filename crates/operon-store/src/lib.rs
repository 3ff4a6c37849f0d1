//! Operon's persistence: the SQLite backend and its versioned migrations.
//!
//! The server keeps all durable state here: API and enrollment tokens (hashes
//! only), nodes, command documents, command invocations and their per-node
//! results. Everything the server acknowledges is committed here first.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so a committed transaction
//! survives a process crash *and* a power loss. Queries are plain runtime SQL
//! kept portable (no SQLite-only syntax beyond `INSERT ... ON CONFLICT`, which
//! PostgreSQL shares), so that a PostgreSQL backend can implement the same
//! operations.
//!
//! Secrets never reach this crate in clear text: callers pass hashes.

mod audit;
mod credentials;
mod events;
mod identity;
mod migrations;
mod records;
mod workflows;

pub use workflows::*;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use operon_proto::{CommandResult, InvocationStatus};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

pub use audit::*;
pub use credentials::CredentialMatch;
pub use events::*;
pub use identity::*;
pub use records::*;

/// Errors from the store. The message names the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("corrupt row while {context}: {detail}")]
    Corrupt {
        context: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Migration(#[from] MigrationError),
}

/// Why the schema could not be brought up to date. Each names the migration
/// file (relative to the `operon-store` crate) or version concerned.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "migration {file} was changed after it was applied to this database \
         (recorded SHA-256 {recorded}, the file's is {current}); \
         restore the file and put the change in a new migration"
    )]
    Changed {
        file: String,
        recorded: String,
        current: String,
    },
    #[error(
        "migration {file} was applied to this database as {recorded:?} (version {version}); \
         a released migration must keep its file name"
    )]
    Renamed {
        file: String,
        version: i64,
        recorded: String,
    },
    #[error(
        "this database was written by a newer Operon: it has migration {version} ({name}), \
         which this build does not know; run a build at least as new"
    )]
    NewerDatabase { version: i64, name: String },
    #[error("migration {file} failed and was rolled back: {source}")]
    Failed {
        file: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { context, source }
}

fn corrupt(context: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        context,
        detail: detail.to_string(),
    }
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating if needed) the database file and apply pending
    /// migrations. Refuses a database whose applied migrations were changed
    /// or that a newer build wrote ([`MigrationError`]).
    pub async fn open(path: &Path) -> Result<Store> {
        let pool = connect(path).await?;
        migrations::apply(&pool, migrations::SQLITE).await?;
        Ok(Store { pool })
    }
}

/// A pool on the database file (WAL, `synchronous=FULL`), without migrations.
pub(crate) async fn connect(path: &Path) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(db("parsing connection options"))?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(db("opening the database"))
}

impl Store {
    /// A transaction that takes the write lock at once. A deferred transaction
    /// that reads before it writes can fail with "database is locked" when
    /// another writer commits in between; an immediate one waits its turn.
    async fn begin_write(
        &self,
        context: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db(context))
    }

    /// The schema version after migrations.
    pub async fn schema_version(&self) -> Result<i64> {
        migrations::current_version(&self.pool).await
    }

    // ----- API tokens -------------------------------------------------------

    pub async fn insert_api_token(&self, token: &ApiToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, created_at, expires_at, revoked_at, user_id, scopes)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.revoked_at)
        .bind(&token.user_id)
        .bind(token.scopes.as_ref().map(to_json))
        .execute(&self.pool)
        .await
        .map_err(db("inserting an API token"))?;
        Ok(())
    }

    pub async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE token_hash = ?",
            identity::TOKEN_SELECT
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up an API token"))?;
        row.as_ref().map(identity::token_from_row).transpose()
    }

    pub async fn count_api_tokens(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting API tokens"))
    }

    // ----- Enrollment tokens -----------------------------------------------

    pub async fn insert_enroll_token(&self, token: &EnrollToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO enroll_tokens (id, token_hash, tags, uses_allowed, uses, expires_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(&token.token_hash)
        .bind(to_json(&token.tags))
        .bind(token.uses_allowed)
        .bind(token.uses)
        .bind(token.expires_at)
        .bind(token.created_at)
        .execute(&self.pool)
        .await
        .map_err(db("inserting an enrollment token"))?;
        Ok(())
    }

    pub async fn list_enroll_tokens(&self) -> Result<Vec<EnrollToken>> {
        let rows = sqlx::query(
            "SELECT id, token_hash, tags, uses_allowed, uses, expires_at, created_at
             FROM enroll_tokens ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing enrollment tokens"))?;
        rows.iter().map(enroll_token_from_row).collect()
    }

    /// Enroll a node with a token, atomically: the token's use is counted and
    /// the node inserted in one transaction, so a token of N uses enrolls at
    /// most N nodes even under concurrent requests.
    ///
    /// The use is counted by one conditional row update (`uses < uses_allowed
    /// AND expires_at > now`, checking the rows it changed), not by the read
    /// before it: on an engine with row locks the update waits for a
    /// concurrent enrollment and re-checks the condition on its result. A
    /// taken name is skipped by the insert itself (`ON CONFLICT (name) DO
    /// NOTHING`), for the same reason.
    pub async fn enroll_node(
        &self,
        token_hash: &str,
        now: i64,
        node: NewNode,
    ) -> Result<Result<Node, EnrollRefusal>> {
        let mut tx = self.begin_write("starting enrollment").await?;
        let row = sqlx::query(
            "SELECT id, token_hash, tags, uses_allowed, uses, expires_at, created_at
             FROM enroll_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("reading the enrollment token"))?;
        let Some(row) = row else {
            return Ok(Err(EnrollRefusal::Unknown));
        };
        let token = enroll_token_from_row(&row)?;
        if token.expires_at <= now {
            return Ok(Err(EnrollRefusal::Expired));
        }
        let counted = sqlx::query(
            "UPDATE enroll_tokens SET uses = uses + 1
             WHERE id = ? AND uses < uses_allowed AND expires_at > ?",
        )
        .bind(&token.id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("counting an enrollment token use"))?;
        if counted.rows_affected() == 0 {
            return Ok(Err(EnrollRefusal::UsedUp));
        }
        let mut tags = node.requested_tags;
        tags.extend(token.tags.clone());
        let mut created = Node {
            id: node.id,
            name: node.name.clone(),
            tags,
            inventory: node.inventory,
            enrolled_at: now,
            last_seen: None,
            revoked_at: None,
        };
        // The wanted name, else `name-2`, `name-3`, ...: the first the
        // insert does not find taken.
        for n in 1_u64.. {
            if n > 1 {
                created.name = format!("{}-{n}", node.name);
            }
            let inserted = sqlx::query(
                "INSERT INTO nodes (id, name, credential_hash, tags, inventory, enrolled_at, last_seen, revoked_at)
                 VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&created.id)
            .bind(&created.name)
            .bind(&node.credential_hash)
            .bind(to_json(&created.tags))
            .bind(to_json(&created.inventory))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("inserting an enrolled node"))?;
            if inserted.rows_affected() == 1 {
                break;
            }
        }
        tx.commit().await.map_err(db("committing enrollment"))?;
        Ok(Ok(created))
    }

    // ----- Nodes -------------------------------------------------------------

    pub async fn node_by_credential(&self, hash: &str) -> Result<Option<Node>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{NODE_SELECT} WHERE credential_hash = ?"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up a node credential"))?;
        row.as_ref().map(node_from_row).transpose()
    }

    pub async fn node(&self, id: &str) -> Result<Option<Node>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{NODE_SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a node"))?;
        row.as_ref().map(node_from_row).transpose()
    }

    /// Find a node by id, or else by name.
    pub async fn node_by_id_or_name(&self, key: &str) -> Result<Option<Node>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{NODE_SELECT} WHERE id = ? OR name = ? ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(key)
        .bind(key)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a node"))?;
        row.as_ref().map(node_from_row).transpose()
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{NODE_SELECT} ORDER BY name")))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing nodes"))?;
        rows.iter().map(node_from_row).collect()
    }

    pub async fn update_node_seen(
        &self,
        id: &str,
        inventory: Option<&operon_proto::Inventory>,
        now: i64,
    ) -> Result<()> {
        let query = match inventory {
            Some(inv) => sqlx::query("UPDATE nodes SET last_seen = ?, inventory = ? WHERE id = ?")
                .bind(now)
                .bind(to_json(inv)),
            None => sqlx::query("UPDATE nodes SET last_seen = ? WHERE id = ?").bind(now),
        };
        query
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("recording that a node was seen"))?;
        Ok(())
    }

    pub async fn set_node_tags(
        &self,
        id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        sqlx::query("UPDATE nodes SET tags = ? WHERE id = ?")
            .bind(to_json(tags))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("updating node tags"))?;
        Ok(())
    }

    pub async fn revoke_node(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE nodes SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("revoking a node"))?;
        Ok(())
    }

    // ----- Documents ---------------------------------------------------------

    /// Store a new version of a document; returns the version number.
    pub async fn put_document(
        &self,
        name: &str,
        content: &serde_json::Value,
        now: i64,
    ) -> Result<i64> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a document write"))?;
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
        tx.commit().await.map_err(db("committing a document"))?;
        Ok(version)
    }

    /// A document version, or the latest when `version` is `None`.
    pub async fn document(&self, name: &str, version: Option<i64>) -> Result<Option<Document>> {
        let row = match version {
            Some(v) => sqlx::query(
                "SELECT name, version, content, created_at FROM documents WHERE name = ? AND version = ?",
            )
            .bind(name)
            .bind(v),
            None => sqlx::query(
                "SELECT name, version, content, created_at FROM documents WHERE name = ?
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(name),
        }
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a document"))?;
        row.as_ref().map(document_from_row).transpose()
    }

    /// The latest version of every document.
    pub async fn list_documents(&self) -> Result<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT d.name, d.version, d.content, d.created_at FROM documents d
             WHERE d.version = (SELECT MAX(version) FROM documents WHERE name = d.name)
             ORDER BY d.name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing documents"))?;
        rows.iter().map(document_from_row).collect()
    }

    // ----- Commands ----------------------------------------------------------

    /// Persist a command and one Pending invocation per target, atomically.
    pub async fn insert_command(
        &self,
        command: &Command,
        targets: &[(String, String)],
    ) -> Result<()> {
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

    pub async fn command(&self, id: &str) -> Result<Option<Command>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMMAND_SELECT} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a command"))?;
        row.as_ref().map(command_from_row).transpose()
    }

    pub async fn list_commands(&self, limit: i64) -> Result<Vec<Command>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMMAND_SELECT} ORDER BY created_at DESC, id LIMIT ?"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing commands"))?;
        rows.iter().map(command_from_row).collect()
    }

    /// Commands not yet in a final status: the dispatcher's work list.
    pub async fn active_commands(&self) -> Result<Vec<Command>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMMAND_SELECT} WHERE status IN ('Pending', 'InProgress') ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing active commands"))?;
        rows.iter().map(command_from_row).collect()
    }

    pub async fn request_cancel(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE commands SET cancel_requested = 1 WHERE id = ? AND status IN ('Pending', 'InProgress')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("requesting a cancel"))?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_command_status(
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

    pub async fn invocations(&self, command_id: &str) -> Result<Vec<Invocation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVOCATION_SELECT} WHERE command_id = ? ORDER BY node_name, node_id"
        )))
        .bind(command_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing invocations"))?;
        rows.iter().map(invocation_from_row).collect()
    }

    /// In-progress invocations on one node: resent to it when it connects.
    pub async fn in_progress_on_node(&self, node_id: &str) -> Result<Vec<Invocation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVOCATION_SELECT} WHERE node_id = ? AND status = 'InProgress' ORDER BY command_id"
        )))
        .bind(node_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing a node's in-progress invocations"))?;
        rows.iter().map(invocation_from_row).collect()
    }

    /// Record a final status decided by the server (not run, undeliverable,
    /// cancelled before start, lost). Only a non-final invocation changes.
    pub async fn finish_invocation_without_result(
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

    /// Record an agent's result. Idempotent: the first final result wins and
    /// later duplicates change nothing. Returns whether this call changed it.
    pub async fn record_result(
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
}

/// One write from an agent session, for [`Store::apply_agent_writes`].
#[derive(Debug, Clone)]
pub enum AgentWrite {
    Started {
        command_id: String,
        node_id: String,
        at: i64,
    },
    Finished {
        command_id: String,
        node_id: String,
        result: CommandResult,
    },
}

impl Store {
    /// Apply many agent writes in one transaction (group commit: one fsync for
    /// a burst of results instead of one each). Returns, per write, whether it
    /// changed anything; duplicates and late results change nothing.
    pub async fn apply_agent_writes(&self, writes: &[AgentWrite]) -> Result<Vec<bool>> {
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

    /// Move many Pending invocations of one command to InProgress in one
    /// transaction. Returns the nodes that were actually Pending.
    pub async fn mark_dispatched_many(
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

impl Store {
    /// Row counts per status of `commands` or `invocations`, for metrics.
    pub async fn count_by_status(&self, table: StatusTable) -> Result<Vec<(String, i64)>> {
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

/// Tables [`Store::count_by_status`] can count.
#[derive(Debug, Clone, Copy)]
pub enum StatusTable {
    Commands,
    Invocations,
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain records serialise")
}

fn from_json<T: serde::de::DeserializeOwned>(context: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(context, e))
}

const NODE_SELECT: &str =
    "SELECT id, name, tags, inventory, enrolled_at, last_seen, revoked_at FROM nodes";

fn node_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Node> {
    Ok(Node {
        id: row.get("id"),
        name: row.get("name"),
        tags: from_json("reading node tags", row.get("tags"))?,
        inventory: from_json("reading node inventory", row.get("inventory"))?,
        enrolled_at: row.get("enrolled_at"),
        last_seen: row.get("last_seen"),
        revoked_at: row.get("revoked_at"),
    })
}

fn enroll_token_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<EnrollToken> {
    Ok(EnrollToken {
        id: row.get("id"),
        token_hash: row.get("token_hash"),
        tags: from_json("reading enrollment token tags", row.get("tags"))?,
        uses_allowed: row.get("uses_allowed"),
        uses: row.get("uses"),
        expires_at: row.get("expires_at"),
        created_at: row.get("created_at"),
    })
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

#[cfg(test)]
mod tests;
