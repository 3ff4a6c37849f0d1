//! The SQLite backend: one database file in WAL mode with
//! `synchronous=FULL`, so a committed transaction survives a process crash
//! *and* a power loss.
//!
//! [`SqliteStore`] implements every store trait, one file per feature. Write
//! transactions start with `BEGIN IMMEDIATE` so that SQLite queues writers
//! instead of failing one with "database is locked"; that is how SQLite
//! avoids busy errors, not what keeps the invariants. Numbers and heads that
//! concurrent writers must not share (enrollment token uses, event sequence
//! numbers, the audit head) are taken with conditional or `RETURNING` row
//! updates that a row lock reproduces on a server engine.
//!
//! Migrations are in `migrations/sqlite/` (see [`migrations`]).

mod audit;
mod commands;
mod events;
mod identity;
pub(crate) mod migrations;
mod nodes;
mod workflows;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Result, corrupt, db};

/// The SQLite backend. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if needed) the database file and apply pending
    /// migrations. Refuses a database whose applied migrations were changed
    /// or that a newer build wrote ([`MigrationError`](crate::MigrationError)).
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let pool = connect(path).await?;
        migrations::apply(&pool, migrations::SQLITE).await?;
        Ok(SqliteStore { pool })
    }

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

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain records serialise")
}

fn from_json<T: serde::de::DeserializeOwned>(context: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(context, e))
}

/// The shared store suite, on a fresh database file per test.
#[cfg(test)]
mod suite {
    use std::sync::Arc;

    use crate::{DynStore, SqliteStore};

    async fn open() -> (tempfile::TempDir, DynStore) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .expect("a fresh SQLite store");
        (dir, Arc::new(store))
    }

    crate::suite::store_suite!(open);
}
