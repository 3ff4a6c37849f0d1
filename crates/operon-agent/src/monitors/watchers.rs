//! One log watcher's task: read its source, count matching lines, and emit
//! `log.matches` (0 included) every tick.

use std::path::PathBuf;
use std::time::Duration;

use operon_proto::{LogSource, LogWatcher, MetricPoint};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::follow::FileFollower;
use super::journal::JournalReader;
use super::lines::LineCounter;
use super::{METRIC_LOG_MATCHES, point};

/// Files are looked at this often at most (more often when the tick is shorter).
pub const MAX_POLL: Duration = Duration::from_secs(1);

/// Run `watcher` until the task is aborted, counting with `counter` (its
/// pattern already compiled).
pub async fn run_watcher(
    watcher: LogWatcher,
    counter: LineCounter,
    tick: Duration,
    journalctl: PathBuf,
    points: mpsc::Sender<MetricPoint>,
) {
    match &watcher.source {
        LogSource::File { path } => {
            follow_file(
                &watcher.name,
                FileFollower::new(path),
                counter,
                tick,
                points,
            )
            .await
        }
        LogSource::Journal { unit } => {
            let reader = JournalReader::new(&journalctl, unit.clone());
            follow_journal(&watcher.name, reader, counter, tick, points).await
        }
    }
}

async fn follow_file(
    name: &str,
    mut follower: FileFollower,
    mut counter: LineCounter,
    tick: Duration,
    points: mpsc::Sender<MetricPoint>,
) {
    let mut poll = tokio::time::interval(tick.min(MAX_POLL));
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_emit = Instant::now() + tick;
    let (mut count, mut failure): (u64, Option<String>) = (0, None);
    loop {
        poll.tick().await;
        // File reads block: off the runtime, with the state moved there and back.
        let joined = tokio::task::spawn_blocking(move || {
            let polled = follower.poll(&mut counter);
            (follower, counter, polled)
        })
        .await;
        let Ok((back_follower, back_counter, polled)) = joined else {
            tracing::error!(watcher = name, "log watcher poll panicked; stopping it");
            return;
        };
        (follower, counter) = (back_follower, back_counter);
        match polled {
            Ok(matched) => {
                count += matched;
                if failure.take().is_some() {
                    tracing::info!(watcher = name, "log file readable again");
                }
            }
            Err(err) => {
                let reason = err.to_string();
                if failure.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(watcher = name, %reason, "log watcher cannot read its file; reporting nothing meanwhile");
                }
                failure = Some(reason);
            }
        }
        if Instant::now() >= next_emit {
            next_emit = Instant::now() + tick;
            // A file it cannot read is missing data, not zero matches.
            if failure.is_none() && !emit(name, count, &points).await {
                return;
            }
            count = 0;
        }
    }
}

async fn follow_journal(
    name: &str,
    mut reader: JournalReader,
    mut counter: LineCounter,
    tick: Duration,
    points: mpsc::Sender<MetricPoint>,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + tick, tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut count = 0;
    loop {
        tokio::select! {
            matched = reader.next(&mut counter, name) => count += matched,
            _ = ticker.tick() => {
                if reader.unavailable.is_none() && !emit(name, count, &points).await {
                    return;
                }
                count = 0;
            }
        }
    }
}

/// `false` once nobody takes points any more.
async fn emit(name: &str, count: u64, points: &mpsc::Sender<MetricPoint>) -> bool {
    points
        .send(point(
            METRIC_LOG_MATCHES,
            "watcher",
            name,
            count as f64,
            "Count",
        ))
        .await
        .is_ok()
}
