//! Health checks and log watchers the server asks the node to run
//! ([`operon_proto::CAPABILITY_MONITORS`]), reported as metrics, and the
//! logs it ships (`MonitorSet.shipped`, one [`crate::logs::ship`] task each,
//! lines into the [`LogSink`] given by [`Monitors::with_log_sink`]; without
//! one they are skipped).
//!
//! [`Monitors::apply`] takes the whole [`MonitorSet`] of a
//! `ServerMessage::Monitors` frame and makes it the running set: a check or
//! watcher that is new or whose definition changed gets a fresh task, one
//! that is unchanged keeps running (its interval is not reset), and one that
//! is no longer in the set is stopped (a command probe it was running is
//! killed with its process group). The set survives reconnects; the server
//! sends it again after every `Welcome`.
//!
//! Results go into the `mpsc::Sender<MetricPoint>` given at construction:
//!
//! - [`METRIC_CHECK_HEALTHY`] (1 healthy, 0 not, unit `Count`) and
//!   [`METRIC_CHECK_LATENCY`] (the probe's time, whatever its outcome, unit
//!   `Milliseconds`) after every run of a check, dimension `check` = name;
//! - [`METRIC_LOG_MATCHES`] (lines matched since the last one, 0 included,
//!   unit `Count`) every tick for each watcher, dimension `watcher` = name.
//!   A watcher whose source cannot be read (unreadable file, no
//!   `journalctl`) sends nothing, so alarms see missing data rather than 0.
//!   (A `journalctl` that runs but has no journal to follow, as in a
//!   container without systemd, simply prints nothing: 0 matches.)
//!
//! A check or watcher whose regular expression does not compile (the server
//! validates first, so only an older or newer server could send one) or
//! whose HTTP client cannot be built is skipped with a warning. Probes:
//! [`probes`]; file following: [`follow`]; journal: [`journal`].

pub mod checks;
pub mod follow;
pub mod journal;
pub mod lines;
pub mod probes;
pub mod watchers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use operon_proto::{HealthCheck, LogShipping, LogWatcher, MetricPoint, MonitorSet};
use regex::Regex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::logs::LogSink;
use crate::runner::now_millis;
use checks::ReadyProbe;
use lines::LineCounter;

/// 1 when the check's last run was healthy, 0 when not.
pub const METRIC_CHECK_HEALTHY: &str = "check.healthy";
/// How long the check's last run took, in milliseconds.
pub const METRIC_CHECK_LATENCY: &str = "check.latency_ms";
/// Lines a watcher matched since its previous datapoint.
pub const METRIC_LOG_MATCHES: &str = "log.matches";

/// The health checks, log watchers and shipped logs running on this node.
pub struct Monitors {
    points: mpsc::Sender<MetricPoint>,
    /// How often watchers emit their count.
    tick: Duration,
    journalctl: PathBuf,
    checks: BTreeMap<String, Running<HealthCheck>>,
    watchers: BTreeMap<String, Running<LogWatcher>>,
    /// Where shipped lines go; `None` when logs are not shipped (metrics
    /// off: the agent does not announce `logs`).
    log_sink: Option<LogSink>,
    shipped: BTreeMap<String, Running<LogShipping>>,
}

struct Running<T> {
    definition: T,
    task: JoinHandle<()>,
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Monitors {
    /// Nothing runs until [`apply`](Self::apply). Watchers emit every `tick`
    /// (at least 100 ms).
    pub fn new(points: mpsc::Sender<MetricPoint>, tick: Duration) -> Monitors {
        Monitors {
            points,
            tick: tick.max(Duration::from_millis(100)),
            journalctl: PathBuf::from(journal::JOURNALCTL),
            checks: BTreeMap::new(),
            watchers: BTreeMap::new(),
            log_sink: None,
            shipped: BTreeMap::new(),
        }
    }

    /// Ship the set's `shipped` logs into `sink` ([`crate::logs`]); without
    /// one they are ignored.
    pub fn with_log_sink(mut self, sink: LogSink) -> Monitors {
        self.log_sink = Some(sink);
        self
    }

    /// Read the journal with this program instead of `journalctl` (tests).
    pub fn with_journalctl(mut self, program: impl Into<PathBuf>) -> Monitors {
        self.journalctl = program.into();
        self
    }

    /// Make `set` the running set (see the module docs). Must be called
    /// within a Tokio runtime.
    pub fn apply(&mut self, set: MonitorSet) {
        let mut checks = BTreeMap::new();
        for check in set.checks {
            if checks.contains_key(&check.name) {
                tracing::warn!(check = %check.name, "health check named twice in the set; keeping the first");
                continue;
            }
            let kept = self
                .checks
                .remove(&check.name)
                .filter(|r| r.definition == check);
            if let Some(running) = kept.or_else(|| self.start_check(check.clone())) {
                checks.insert(check.name, running);
            }
        }
        let mut watchers = BTreeMap::new();
        for watcher in set.watchers {
            if watchers.contains_key(&watcher.name) {
                tracing::warn!(watcher = %watcher.name, "log watcher named twice in the set; keeping the first");
                continue;
            }
            let kept = self
                .watchers
                .remove(&watcher.name)
                .filter(|r| r.definition == watcher);
            if let Some(running) = kept.or_else(|| self.start_watcher(watcher.clone())) {
                watchers.insert(watcher.name, running);
            }
        }
        let mut shipped = BTreeMap::new();
        for shipping in set.shipped {
            if shipped.contains_key(&shipping.name) {
                tracing::warn!(shipping = %shipping.name, "shipped log named twice in the set; keeping the first");
                continue;
            }
            let kept = self
                .shipped
                .remove(&shipping.name)
                .filter(|r| r.definition == shipping);
            if let Some(running) = kept.or_else(|| self.start_shipping(shipping.clone())) {
                shipped.insert(shipping.name, running);
            }
        }
        // What is left in the old maps is dropped here, which aborts it.
        self.checks = checks;
        self.watchers = watchers;
        self.shipped = shipped;
        tracing::info!(
            checks = self.checks.len(),
            watchers = self.watchers.len(),
            shipped = self.shipped.len(),
            "monitor set applied"
        );
    }

    /// Names of the running checks and watchers.
    pub fn running(&self) -> (Vec<String>, Vec<String>) {
        (
            self.checks.keys().cloned().collect(),
            self.watchers.keys().cloned().collect(),
        )
    }

    /// Names of the logs being shipped.
    pub fn shipping(&self) -> Vec<String> {
        self.shipped.keys().cloned().collect()
    }

    fn start_shipping(&self, shipping: LogShipping) -> Option<Running<LogShipping>> {
        let Some(sink) = &self.log_sink else {
            tracing::warn!(shipping = %shipping.name, "log shipping skipped: this agent ships no logs (metrics are off)");
            return None;
        };
        let task = tokio::spawn(crate::logs::ship::run_shipping(
            shipping.clone(),
            self.journalctl.clone(),
            sink.clone(),
        ));
        Some(Running {
            definition: shipping,
            task,
        })
    }

    fn start_check(&self, check: HealthCheck) -> Option<Running<HealthCheck>> {
        let timeout = checks::secs_at_least_one(check.timeout_secs);
        let probe = match ReadyProbe::prepare(&check.probe, timeout) {
            Ok(probe) => probe,
            Err(reason) => {
                tracing::warn!(check = %check.name, %reason, "health check skipped");
                return None;
            }
        };
        let task = tokio::spawn(checks::run_check(check.clone(), probe, self.points.clone()));
        Some(Running {
            definition: check,
            task,
        })
    }

    fn start_watcher(&self, watcher: LogWatcher) -> Option<Running<LogWatcher>> {
        let pattern = match Regex::new(&watcher.pattern) {
            Ok(pattern) => pattern,
            Err(err) => {
                tracing::warn!(watcher = %watcher.name, %err, "log watcher skipped: its pattern is not a valid regular expression");
                return None;
            }
        };
        let task = tokio::spawn(watchers::run_watcher(
            watcher.clone(),
            LineCounter::new(pattern),
            self.tick,
            self.journalctl.clone(),
            self.points.clone(),
        ));
        Some(Running {
            definition: watcher,
            task,
        })
    }
}

/// A datapoint of `name` for one check or watcher, now.
fn point(name: &str, dimension: &str, value_of: &str, value: f64, unit: &str) -> MetricPoint {
    MetricPoint {
        name: name.to_owned(),
        dimensions: [(dimension.to_owned(), value_of.to_owned())].into(),
        at: now_millis(),
        value,
        unit: Some(unit.to_owned()),
    }
}
