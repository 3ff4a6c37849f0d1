//! Metrics: datapoints agents push over their link, stored per series with
//! rollups and retention, queried CloudWatch-style and exported to
//! Prometheus.
//!
//! ```text
//! query.rs       pure: durations, statistic names, period alignment, which
//!                resolution (raw, 1m, 1h) answers, statistics per period
//! prometheus.rs  pure: latest values in Prometheus text format
//! service.rs     MetricsService: record an agent batch (validated), raw
//!                datapoints and series for the alarm evaluator, query and
//!                names for people, retention
//! writer.rs      group commit of agent batches (acknowledged after commit)
//! http.rs        GET /v1/metrics/query, GET /v1/metrics/names
//! ```
//!
//! Authorization: `metrics:Get` on `node/NAME` with the node's tags; a
//! query over the fleet needs `metrics:Get` on `node/*` and answers only the
//! nodes `metrics:Get` allows.
//!
//! Retention: one process prunes (the `metrics.retention` lease), every
//! [`RETENTION_EVERY_MS`], in short transactions.

pub mod http;
pub mod prometheus;
pub mod query;
pub mod service;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use query::Retention;
pub use service::{MetricsService, SeriesInfo};

use crate::{AppState, now_millis};

/// The lease of the one process pruning metrics.
const LEASE: &str = "metrics.retention";
/// Time between retention passes.
pub const RETENTION_EVERY_MS: i64 = 5 * 60_000;
/// Series pruned per transaction.
pub(crate) const PRUNE_SERIES_PER_STEP: u32 = 200;
/// A node silent this long has its recent batch seqs forgotten (its points
/// stay keyed by series and instant, so a late resend still adds nothing).
pub(crate) const SEQ_MEMORY_MS: i64 = 86_400_000;

const DAY_MS: i64 = 86_400_000;

impl Default for Retention {
    /// Raw points a day, minutes 15 days, hours 400 days.
    fn default() -> Self {
        Retention {
            raw_ms: DAY_MS,
            minute_ms: 15 * DAY_MS,
            hour_ms: 400 * DAY_MS,
        }
    }
}

impl AppState {
    /// The metrics service (the alarm evaluator reads through it).
    pub fn metrics(&self) -> MetricsService<'_> {
        MetricsService { state: self }
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
            match state.metrics().prune(now_millis()).await {
                Ok(report) => {
                    tracing::debug!(
                        raw = report.raw,
                        minute = report.minute,
                        hour = report.hour,
                        series = report.series,
                        "metrics pruned"
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "pruning metrics failed; trying again later")
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(RETENTION_EVERY_MS as u64)).await;
    }
}
