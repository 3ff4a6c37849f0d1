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

mod alarms;
mod associations;
mod audit;
mod batch_seqs;
mod commands;
mod console;
mod events;
mod heal;
mod identity;
mod inventory;
mod logs;
mod metrics;
pub(crate) mod migrations;
mod monitors;
mod nodes;
mod params;
mod sessions;
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

    /// Open the database as the server holds a backend.
    pub async fn open_dyn(path: &Path) -> Result<crate::DynStore> {
        Ok(std::sync::Arc::new(SqliteStore::open(path).await?))
    }
}

#[async_trait::async_trait]
impl crate::Lifecycle for SqliteStore {
    /// Close the database: wait for the connections in use to be returned,
    /// then close them all (the last one checkpoints the write-ahead log).
    async fn close(&self) {
        self.pool.close().await;
    }

    async fn schema_version(&self) -> Result<i64> {
        migrations::current_version(&self.pool).await
    }
}

/// A pool on the database file (WAL, `synchronous=FULL`), without migrations.
/// The file is created 0600 (SQLite gives its `-wal` and `-shm` files the
/// database's mode); an existing database, `-wal` or `-shm` readable by
/// others is made 0600.
pub(crate) async fn connect(path: &Path) -> Result<SqlitePool> {
    private_files(path).map_err(db("restricting the database files to their owner"))?;
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

/// Create `path` empty with mode 0600 if it does not exist (an empty file is
/// an empty database to SQLite), and take group and world access away from
/// it and its `-wal` and `-shm` files.
fn private_files(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let mut names = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(name.into());
    }
    for name in names {
        let mode = match std::fs::metadata(&name) {
            Ok(meta) => meta.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&name, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod file_modes {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use crate::{Lifecycle as _, SqliteStore};

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn files(dir: &Path) -> [std::path::PathBuf; 3] {
        ["operon.db", "operon.db-wal", "operon.db-shm"].map(|name| dir.join(name))
    }

    #[tokio::test]
    async fn the_database_and_its_wal_and_shm_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
        store.schema_version().await.unwrap();
        for file in files(dir.path()) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        store.close().await;
    }

    #[tokio::test]
    async fn files_readable_by_others_are_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operon.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.close().await;
        // What an older build (or a careless copy) left behind: a database
        // and a log that others may read.
        for file in files(dir.path()) {
            if !file.exists() {
                std::fs::write(&file, b"").unwrap();
            }
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        store.schema_version().await.unwrap();
        for file in files(dir.path()) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
}
