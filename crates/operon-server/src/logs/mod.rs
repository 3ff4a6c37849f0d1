//! Logs: lines nodes ship over their link (files they follow, the systemd
//! journal), stored centrally with their level, queried across the fleet.
//!
//! ```text
//! service.rs     LogsService: record an agent batch (checked), query
//!                (logs:Get per node, store filters then an optional regex),
//!                retention
//! writer.rs      group commit of agent batches (acknowledged after commit)
//! http.rs        GET /v1/logs
//! ```
//!
//! What a node ships is a monitor of kind `shipping` (`crate::monitors`),
//! pushed in `MonitorSet.shipped`.
//!
//! Retention: one process prunes (the `logs.retention` lease), every
//! [`RETENTION_EVERY_MS`], lines older than `ServerConfig::logs_retention_ms`
//! (7 days by default), `PRUNE_ROWS_PER_STEP` lines per transaction.

pub mod http;
pub mod service;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use service::{LogAnswer, LogQuery, LogsService};

use crate::{AppState, now_millis};

/// The lease of the one process pruning logs.
const LEASE: &str = "logs.retention";
/// Time between retention passes.
pub const RETENTION_EVERY_MS: i64 = 5 * 60_000;
/// Lines deleted per transaction.
pub(crate) const PRUNE_ROWS_PER_STEP: u32 = 5_000;
/// Lines are kept this long unless configured otherwise.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 86_400_000;

impl AppState {
    /// The logs service.
    pub fn logs(&self) -> LogsService<'_> {
        LogsService { state: self }
    }
}

/// The retention loop (spawned with the server's background tasks).
pub async fn run(state: Arc<AppState>) {
    loop {
        let held = state
            .coordination
            .try_lease(LEASE, 3 * RETENTION_EVERY_MS)
            .is_some();
        if held {
            match state.logs().prune(now_millis()).await {
                Ok(deleted) => tracing::debug!(deleted, "logs pruned"),
                Err(e) => {
                    tracing::warn!(error = %e.message, "pruning logs failed; trying again later")
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(RETENTION_EVERY_MS as u64)).await;
    }
}
