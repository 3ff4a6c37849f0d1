//! Versioned schema migrations.
//!
//! Each migration runs once, in order, inside a transaction that also records
//! its version in `schema_migrations`. Never edit a released migration: add a
//! new one.

use sqlx::SqlitePool;

use crate::{Result, db};

/// (version, SQL). Versions are consecutive from 1.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_foundation.sql")),
    (2, include_str!("migrations/0002_identity.sql")),
    (3, include_str!("migrations/0003_workflows.sql")),
    (4, include_str!("migrations/0004_events.sql")),
    (5, include_str!("migrations/0005_node_credentials.sql")),
];

pub(crate) async fn apply(pool: &SqlitePool) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )
    .execute(pool)
    .await
    .map_err(db("creating the migrations table"))?;
    // Every migration not yet recorded runs, even one numbered below the
    // current version: features merge in any order.
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(pool)
        .await
        .map_err(db("reading applied migrations"))?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
        let mut tx = pool.begin().await.map_err(db("starting a migration"))?;
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(db("applying a migration"))?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(now_millis())
            .execute(&mut *tx)
            .await
            .map_err(db("recording a migration"))?;
        tx.commit().await.map_err(db("committing a migration"))?;
    }
    Ok(())
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
    MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0)
}
