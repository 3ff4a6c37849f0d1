//! Operon's persistence: one trait per feature, the SQLite backend behind
//! them, and its versioned migrations.
//!
//! The server keeps all durable state here: API and enrollment tokens (hashes
//! only), nodes, command documents, commands and their per-node results,
//! users and policies, the audit trail, the event bus and its outbox, and
//! workflows. Everything the server acknowledges is committed here first.
//! Secrets never reach this crate in clear text: callers pass hashes.
//!
//! # The traits
//!
//! | trait | what it keeps |
//! | --- | --- |
//! | [`NodeStore`] | enrollment tokens, nodes, credential rotation |
//! | [`DocumentStore`] | versioned command documents and their default versions |
//! | [`CommandStore`] | commands, invocations, agent results, dispatch |
//! | [`IdentityStore`] | users, API tokens, policies, roles |
//! | [`AuditStore`] | the hash-chained audit log |
//! | [`EventStore`] | buses, events and their delivery outbox, dead letters, rules, webhooks, archives, replays |
//! | [`WorkflowStore`] | state machines, executions, history, timers, tasks, approvals |
//! | [`InventoryStore`] | per node and kind: inventory items and the digest of the set |
//! | [`MetricStore`] | metric series per node, raw points, 1-minute and 1-hour rollups |
//! | [`LogStore`] | shipped log lines per node, with level ranks, queried and pruned |
//! | [`SessionStore`] | terminal and port-forwarding sessions, and their sealed recording chunks |
//! | [`ConsoleSessionStore`] | web console sign-ins: hashed ids, sealed tokens, CSRF secrets |
//!
//! [`Backend`] is all of them together. Signatures carry only this crate's
//! records, `operon-proto` types, `serde_json::Value` and [`StoreError`]: no
//! driver type, so a PostgreSQL backend implements the same traits.
//!
//! # How the server holds a backend
//!
//! As a trait object, [`DynStore`] (`Arc<dyn Backend>`), chosen at start-up
//! from the configuration. The traits use `async-trait` because native async
//! functions in traits cannot be called through `dyn`. The alternative, a
//! type parameter on the server, would compile the whole server once per
//! backend and carry the parameter through every handler; one boxed future
//! per store call costs far less than the database round trip it waits for.
//! [`SqliteStore::open_dyn`] opens the SQLite backend that way; a PostgreSQL
//! backend will add its own `open_dyn` and the server will choose between
//! them from its configuration.
//!
//! # Invariants every backend keeps
//!
//! - A write method is one transaction: all of it or none.
//! - Correctness never depends on a global write lock. What concurrent
//!   writers must not share is decided by row-level statements a row lock
//!   reproduces under READ COMMITTED: an enrollment counts its token's use
//!   with one conditional update; event sequence numbers and the audit head
//!   are taken from one row each with `UPDATE ... RETURNING` inside the
//!   writer's transaction (so they are unique, gap-free and in commit order).
//!   When a transaction takes both, the audit head comes first.
//!
//! The test suite (`src/suite.rs`) is written against [`DynStore`] and runs
//! for every backend; backend-specific tests (migrations) live with the
//! backend.

mod alarms;
mod associations;
mod audit;
mod console;
mod events;
mod identity;
mod inventory;
mod logs;
mod metrics;
mod monitors;
mod params;
mod records;
mod sessions;
mod sqlite;
mod traits;
mod workflows;

#[cfg(test)]
mod suite;

pub use alarms::*;
pub use associations::*;
pub use audit::*;
pub use console::*;
pub use events::*;
pub use identity::*;
pub use inventory::*;
pub use logs::*;
pub use metrics::*;
pub use monitors::*;
pub use params::*;
pub use records::*;
pub use sessions::*;
pub use sqlite::SqliteStore;
pub use traits::*;
pub use workflows::*;

/// How the server holds its backend: [`DynStore`].
pub type Store = DynStore;

/// Errors from the store. The message names the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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

/// Wrap a driver error with the operation that failed.
fn db<E: std::error::Error + Send + Sync + 'static>(
    context: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |source| StoreError::Database {
        context,
        source: Box::new(source),
    }
}

fn corrupt(context: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        context,
        detail: detail.to_string(),
    }
}
