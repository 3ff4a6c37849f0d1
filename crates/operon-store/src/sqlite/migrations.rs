//! Versioned schema migrations of the SQLite backend.
//!
//! Migrations live in `migrations/sqlite/NNNN_name.sql` (one folder per
//! backend) and are compiled into the binary. Each one is applied whole, in
//! its own transaction, by SQLite's own parser (`sqlx::raw_sql`): the text is
//! never split by us, so a `;` inside a string literal or a trigger body is
//! just text. The transaction also records the migration's version, name and
//! the SHA-256 of its file in `schema_migrations`.
//!
//! At open, before anything is applied, the recorded migrations are checked
//! against the code: a recorded checksum that differs from the file's means
//! the file was edited after it was applied (refused, naming the file), and a
//! recorded version the code does not know means a newer Operon wrote the
//! database (refused). Never edit a released migration: add a new one.
//!
//! Every migration not yet recorded runs, in version order, even one numbered
//! below the highest applied: features merge in any order.
//!
//! Databases written before checksums were recorded have a
//! `schema_migrations (version, applied_at)` table. Their bookkeeping is
//! upgraded in place on open, in one transaction: each recorded version gets
//! the name and checksum of its file (the files are byte-identical to what
//! that runner applied).

use sha2::{Digest, Sha256};
use sqlx::{Row, SqlitePool};

use crate::{MigrationError, Result, StoreError, db};

/// One migration file, compiled in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub version: i64,
    /// The file name, `NNNN_name.sql`.
    pub file: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The name part of the file name: `0003_workflows.sql` -> `workflows`.
    pub fn name(&self) -> &'static str {
        let stem = self.file.strip_suffix(".sql").unwrap_or(self.file);
        stem.split_once('_').map_or(stem, |(_, name)| name)
    }

    /// Hex SHA-256 of the file's bytes.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// The path users see in errors, relative to the crate.
    pub fn path(&self) -> String {
        format!("migrations/sqlite/{}", self.file)
    }
}

macro_rules! migration {
    ($version:literal, $file:literal) => {
        Migration {
            version: $version,
            file: $file,
            sql: include_str!(concat!("../../migrations/sqlite/", $file)),
        }
    };
}

/// Every SQLite migration, in version order. A test checks this list against
/// the folder, so a file cannot be forgotten here.
pub(crate) const SQLITE: &[Migration] = &[
    migration!(1, "0001_foundation.sql"),
    migration!(2, "0002_identity.sql"),
    migration!(3, "0003_workflows.sql"),
    migration!(4, "0004_events.sql"),
    migration!(5, "0005_node_credentials.sql"),
    migration!(6, "0006_counters.sql"),
    migration!(7, "0007_document_defaults.sql"),
    migration!(8, "0008_run_as.sql"),
    migration!(9, "0009_enroll_token_revocation.sql"),
    migration!(10, "0010_delivery_claim_owners.sql"),
    migration!(11, "0011_parameters.sql"),
    migration!(12, "0012_parameter_syncs.sql"),
    migration!(13, "0013_inventory.sql"),
    migration!(14, "0014_associations.sql"),
    migration!(15, "0015_metrics.sql"),
    migration!(16, "0016_monitors.sql"),
    migration!(17, "0017_alarms.sql"),
    migration!(18, "0018_heal.sql"),
    migration!(19, "0019_logs.sql"),
    migration!(20, "0020_sessions.sql"),
    migration!(21, "0021_console_sessions.sql"),
];

/// A migration as recorded in the database.
#[derive(Debug, Clone)]
struct Applied {
    version: i64,
    name: String,
    checksum: String,
}

/// Bring the database up to date with `migrations` (in version order).
pub(crate) async fn apply(pool: &SqlitePool, migrations: &[Migration]) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )
    .execute(pool)
    .await
    .map_err(db("creating the migrations table"))?;
    upgrade_bookkeeping(pool, migrations).await?;
    let applied = read_applied(pool).await?;
    check_applied(&applied, migrations)?;
    for migration in migrations {
        if applied.iter().any(|a| a.version == migration.version) {
            continue;
        }
        apply_one(pool, migration).await?;
    }
    Ok(())
}

/// Refuse a database whose recorded migrations the code cannot vouch for.
fn check_applied(applied: &[Applied], migrations: &[Migration]) -> Result<()> {
    for recorded in applied {
        let Some(known) = migrations.iter().find(|m| m.version == recorded.version) else {
            return Err(MigrationError::NewerDatabase {
                version: recorded.version,
                name: recorded.name.clone(),
            }
            .into());
        };
        if known.name() != recorded.name {
            return Err(MigrationError::Renamed {
                file: known.path(),
                version: recorded.version,
                recorded: recorded.name.clone(),
            }
            .into());
        }
        let current = known.checksum();
        if current != recorded.checksum {
            return Err(MigrationError::Changed {
                file: known.path(),
                recorded: recorded.checksum.clone(),
                current,
            }
            .into());
        }
    }
    Ok(())
}

async fn read_applied(pool: &SqlitePool) -> Result<Vec<Applied>> {
    let rows =
        sqlx::query("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(db("reading applied migrations"))?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            version: r.get("version"),
            name: r.get("name"),
            checksum: r.get("checksum"),
        })
        .collect())
}

/// Apply one migration and record it, in one transaction. The write lock is
/// taken first and the record checked again, so two processes opening the
/// same file at once apply it once.
async fn apply_one(pool: &SqlitePool, migration: &Migration) -> Result<()> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db("starting a migration"))?;
    let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations WHERE version = ?")
        .bind(migration.version)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("reading applied migrations"))?;
    if done > 0 {
        return Ok(());
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql))
        .execute(&mut *tx)
        .await
        .map_err(|source| {
            StoreError::from(MigrationError::Failed {
                file: migration.path(),
                source: Box::new(source),
            })
        })?;
    sqlx::query(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
    )
    .bind(migration.version)
    .bind(migration.name())
    .bind(migration.checksum())
    .bind(now_millis())
    .execute(&mut *tx)
    .await
    .map_err(db("recording a migration"))?;
    tx.commit().await.map_err(db("committing a migration"))?;
    Ok(())
}

/// Upgrade the bookkeeping of the first runner, `schema_migrations (version,
/// applied_at)`, to the shape with name and checksum, in one transaction.
/// Nothing changes when a recorded version is unknown to this build.
async fn upgrade_bookkeeping(pool: &SqlitePool, migrations: &[Migration]) -> Result<()> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db("starting the migration bookkeeping upgrade"))?;
    let has_checksum: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name = 'checksum'",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db("reading the migrations table's columns"))?;
    if has_checksum > 0 {
        return Ok(());
    }
    let recorded: Vec<(i64, i64)> =
        sqlx::query_as("SELECT version, applied_at FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await
            .map_err(db("reading migrations recorded by the first runner"))?;
    sqlx::query(
        "CREATE TABLE schema_migrations_v2 (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(db("creating the new migrations table"))?;
    for (version, applied_at) in recorded {
        let Some(known) = migrations.iter().find(|m| m.version == version) else {
            return Err(MigrationError::NewerDatabase {
                version,
                name: "not recorded".into(),
            }
            .into());
        };
        sqlx::query(
            "INSERT INTO schema_migrations_v2 (version, name, checksum, applied_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(version)
        .bind(known.name())
        .bind(known.checksum())
        .bind(applied_at)
        .execute(&mut *tx)
        .await
        .map_err(db("carrying over a recorded migration"))?;
    }
    sqlx::raw_sql(
        "DROP TABLE schema_migrations;
         ALTER TABLE schema_migrations_v2 RENAME TO schema_migrations;",
    )
    .execute(&mut *tx)
    .await
    .map_err(db("replacing the migrations table"))?;
    tx.commit()
        .await
        .map_err(db("committing the migration bookkeeping upgrade"))
}

pub(crate) async fn current_version(pool: &SqlitePool) -> Result<i64> {
    let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(db("reading the schema version"))?;
    Ok(version.unwrap_or(0))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) fn latest_version() -> i64 {
    SQLITE.last().map(|m| m.version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuditStore, DocumentStore, EventStore};
    use crate::{Lifecycle as _, SqliteStore};

    async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
        super::super::connect(&dir.path().join("operon.db"))
            .await
            .unwrap()
    }

    #[test]
    fn the_list_matches_the_folder() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<&str> = SQLITE.iter().map(|m| m.file).collect();
        assert_eq!(
            files, listed,
            "every file in {folder:?} is listed, in order"
        );
        for (i, m) in SQLITE.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "versions are consecutive");
            assert_eq!(
                m.file[..4].parse::<i64>().unwrap(),
                m.version,
                "{} is numbered by its version",
                m.file
            );
            assert!(!m.name().is_empty() && !m.name().contains('.'));
        }
        assert_eq!(SQLITE[2].name(), "workflows");
    }

    #[tokio::test]
    async fn a_fresh_database_records_every_migration_with_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
        assert_eq!(store.schema_version().await.unwrap(), latest_version());
        let applied = read_applied(&store.pool).await.unwrap();
        assert_eq!(applied.len(), SQLITE.len());
        for (a, m) in applied.iter().zip(SQLITE) {
            assert_eq!(
                (a.version, a.name.as_str(), a.checksum.as_str()),
                (m.version, m.name(), m.checksum().as_str())
            );
        }
        // Reopening applies nothing and refuses nothing.
        drop(store);
        let again = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
        assert_eq!(read_applied(&again.pool).await.unwrap().len(), SQLITE.len());
    }

    /// What the first runner did: split each file on `;`, record the version.
    async fn apply_like_the_first_runner(pool: &SqlitePool, migrations: &[Migration]) {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at INTEGER NOT NULL
            )",
        )
        .execute(pool)
        .await
        .unwrap();
        for m in migrations {
            let mut tx = pool.begin().await.unwrap();
            for statement in m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 1234)")
                .bind(m.version)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_database_of_the_first_runner_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        // Written by a build that had the first three migrations.
        apply_like_the_first_runner(&pool, &SQLITE[..3]).await;
        sqlx::query(
            "INSERT INTO documents (name, version, content, created_at) VALUES ('d', 1, '{}', 5)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
        assert_eq!(store.schema_version().await.unwrap(), latest_version());
        let applied = read_applied(&store.pool).await.unwrap();
        assert_eq!(applied.len(), SQLITE.len());
        for (a, m) in applied.iter().zip(SQLITE) {
            assert_eq!(
                (a.name.as_str(), a.checksum.clone()),
                (m.name(), m.checksum())
            );
        }
        let kept: Vec<i64> = sqlx::query_scalar(
            "SELECT applied_at FROM schema_migrations WHERE version <= 3 ORDER BY version",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(kept, vec![1234; 3], "the old application times are kept");
        assert_eq!(
            store.document("d", None).await.unwrap().unwrap().created_at,
            5,
            "the data is untouched"
        );
        drop(store);
        SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
    }

    /// Documents stored before default versions existed keep running what
    /// they ran: their latest version becomes the default.
    #[tokio::test]
    async fn documents_of_an_older_database_default_to_their_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let before = SQLITE
            .iter()
            .position(|m| m.file == "0007_document_defaults.sql")
            .unwrap();
        apply(&pool, &SQLITE[..before]).await.unwrap();
        for (name, version) in [("deploy", 1), ("deploy", 2), ("deploy", 3), ("once", 1)] {
            sqlx::query(
                "INSERT INTO documents (name, version, content, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(name)
            .bind(version)
            .bind(format!("{{\"v\": {version}}}"))
            .bind(version * 10)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
        let listed: Vec<(String, i64, i64)> = store
            .list_documents()
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.name, d.default_version, d.latest_version))
            .collect();
        assert_eq!(
            listed,
            [("deploy".to_string(), 3, 3), ("once".to_string(), 1, 1)]
        );
        assert_eq!(
            store
                .document("deploy", None)
                .await
                .unwrap()
                .unwrap()
                .content["v"],
            3
        );
        // From now on a new version waits to be made the default.
        assert_eq!(
            store
                .put_document("deploy", &serde_json::json!({"v": 4}), 40)
                .await
                .unwrap(),
            4
        );
        assert_eq!(
            store
                .document("deploy", None)
                .await
                .unwrap()
                .unwrap()
                .version,
            3
        );
    }

    #[tokio::test]
    async fn a_database_of_the_first_runner_with_an_unknown_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        apply_like_the_first_runner(&pool, SQLITE).await;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 1)")
            .execute(&pool)
            .await
            .unwrap();
        let err = apply(&pool, SQLITE).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Migration(MigrationError::NewerDatabase { version: 99, .. })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
        let columns: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('schema_migrations')")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(columns, 2, "the old bookkeeping is left as it was");
    }

    #[tokio::test]
    async fn a_changed_migration_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        apply(&pool, SQLITE).await.unwrap();
        let mut edited: Vec<Migration> = SQLITE.to_vec();
        edited[2].sql = "CREATE TABLE workflows (name TEXT PRIMARY KEY)";
        let err = apply(&pool, &edited).await.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, StoreError::Migration(MigrationError::Changed { .. })),
            "{message}"
        );
        assert!(
            message.contains("migrations/sqlite/0003_workflows.sql"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_database_newer_than_the_code_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        apply(&pool, SQLITE).await.unwrap();
        let err = apply(&pool, &SQLITE[..4]).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Migration(MigrationError::NewerDatabase { version: 5, ref name })
                    if name == "node_credentials"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rules_from_before_authorship_take_their_author_from_the_audit_trail() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        apply(&pool, &SQLITE[..6]).await.unwrap();
        for name in ["restart", "orphan"] {
            sqlx::query(
                "INSERT INTO event_rules (name, bus, enabled, targets, created_at, updated_at)
                 VALUES (?, 'default', 1, '[]', 1, 1)",
            )
            .bind(name)
            .execute(&pool)
            .await
            .unwrap();
        }
        // alice put it, then bob's put was refused, then carol put it again.
        for (seq, actor, outcome) in [
            (1, "alice", "allowed"),
            (2, "bob", "denied"),
            (3, "carol", "allowed"),
        ] {
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, action, resource, outcome, detail, prev_hash, hash)
                 VALUES (?, ?, ?, 'rules:Put', 'rule/restart', ?, '{}', 'p', 'h')",
            )
            .bind(seq)
            .bind(seq)
            .bind(actor)
            .bind(outcome)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        let store = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
        let author = |name: &'static str| {
            let store = store.clone();
            async move { store.rule(name).await.unwrap().unwrap().author }
        };
        assert_eq!(author("restart").await.as_deref(), Some("carol"));
        assert_eq!(author("orphan").await, None, "unknown authors stay unknown");
    }

    #[tokio::test]
    async fn the_counters_start_from_existing_events_and_audit_records() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        // A database of the build before the counters, with events (the last
        // one pruned) and an audit chain of two records.
        apply(&pool, &SQLITE[..5]).await.unwrap();
        for seq in 1..=3 {
            sqlx::query(
                "INSERT INTO events (seq, id, bus, body, ingested_at) VALUES (?, 'e', 'default', '{}', 1)",
            )
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query("DELETE FROM events WHERE seq = 3")
            .execute(&pool)
            .await
            .unwrap();
        let mut prev = crate::AUDIT_GENESIS.to_string();
        for seq in 1..=2 {
            let hash =
                crate::audit_hash(seq, "alice", "nodes:Tag", "node/n", "allowed", "{}", &prev);
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, action, resource, outcome, detail, prev_hash, hash)
                 VALUES (?, ?, 'alice', 'nodes:Tag', 'node/n', 'allowed', '{}', ?, ?)",
            )
            .bind(seq)
            .bind(seq)
            .bind(&prev)
            .bind(&hash)
            .execute(&pool)
            .await
            .unwrap();
            prev = hash;
        }
        pool.close().await;

        let store = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
        let event = crate::NewEvent {
            id: "next".into(),
            bus: "default".into(),
            body: "{}".into(),
            ingested_at: 2,
            deliveries: vec![],
        };
        assert_eq!(
            store.put_events(&[event]).await.unwrap(),
            vec![4],
            "a pruned number is not reused"
        );
        let entry = crate::AuditEntry {
            actor: "bob".into(),
            action: "nodes:Tag".into(),
            resource: "node/n".into(),
            outcome: "allowed".into(),
            detail: serde_json::json!({}),
        };
        let head = store.append_audit(&[entry], 3).await.unwrap().unwrap();
        assert_eq!((head.prev_seq, head.seq), (2, 3));
        let chain = store.audit_chain().await.unwrap();
        assert_eq!(
            chain[2].prev_hash, prev,
            "the chain goes on from its last record"
        );
        assert!(crate::verify_chain(&chain).is_empty());
    }

    #[tokio::test]
    async fn the_counters_of_an_empty_database_start_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("operon.db"))
            .await
            .unwrap();
        let head: (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_head")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(head, (0, crate::AUDIT_GENESIS.to_string()));
        let events: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'events'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(events, 0);
    }

    const TRICKY: &str = "
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE note_log (body TEXT NOT NULL);
        -- A comment; with a semicolon.
        INSERT INTO notes (body) VALUES ('one; two; three');
        CREATE TRIGGER notes_logged AFTER INSERT ON notes BEGIN
            INSERT INTO note_log (body) VALUES ('logged; ' || NEW.body);
            UPDATE notes SET body = body || ';' WHERE id = NEW.id;
        END;
        INSERT INTO notes (body) VALUES ('four');
    ";

    #[tokio::test]
    async fn semicolons_in_strings_comments_and_trigger_bodies_are_text() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let migrations = [Migration {
            version: 1,
            file: "0001_tricky.sql",
            sql: TRICKY,
        }];
        apply(&pool, &migrations).await.unwrap();
        let notes: Vec<String> = sqlx::query_scalar("SELECT body FROM notes ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(notes, vec!["one; two; three", "four;"]);
        let log: Vec<String> = sqlx::query_scalar("SELECT body FROM note_log")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(log, vec!["logged; four"]);
    }

    #[tokio::test]
    async fn a_failing_migration_leaves_nothing_and_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let migrations = [
            Migration {
                version: 1,
                file: "0001_fine.sql",
                sql: "CREATE TABLE fine (x INTEGER);",
            },
            Migration {
                version: 2,
                file: "0002_broken.sql",
                sql: "CREATE TABLE half (x INTEGER); INSERT INTO missing VALUES (1);",
            },
        ];
        let err = apply(&pool, &migrations).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("migrations/sqlite/0002_broken.sql"),
            "{err}"
        );
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('fine', 'half')",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            tables,
            vec!["fine"],
            "the failed migration is rolled back whole"
        );
        assert_eq!(current_version(&pool).await.unwrap(), 1);
    }
}
