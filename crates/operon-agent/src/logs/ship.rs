//! One shipped log's task: follow its source and hand every line, as a
//! [`LogEntry`](operon_proto::LogEntry), to the [`LogSink`].
//!
//! A file that cannot be read is reported once in the agent's log (and
//! again when it becomes readable); a node without `journalctl` ships
//! nothing from the journal (see [`crate::monitors::journal`]).

use std::path::PathBuf;
use std::time::Duration;

use operon_proto::{LogShipping, LogSource};
use tokio::time::MissedTickBehavior;

use super::LogSink;
use super::lines::{LineCollector, MAX_MESSAGE_BYTES, file_entry, journal_entry};
use crate::monitors::follow::FileFollower;
use crate::monitors::journal::JournalReader;
use crate::runner::now_millis;

/// Files are looked at this often.
pub const POLL: Duration = Duration::from_millis(500);
/// A journal JSON line is kept up to this size (its message is then cut to
/// [`MAX_MESSAGE_BYTES`]); a longer one is not valid JSON once cut and is
/// skipped with a warning.
const MAX_JOURNAL_LINE: usize = 256 * 1024;

/// Run `shipping` until the task is aborted or the sink is gone.
pub async fn run_shipping(shipping: LogShipping, journalctl: PathBuf, sink: LogSink) {
    match &shipping.source {
        LogSource::File { path } => ship_file(&shipping.name, path, sink).await,
        LogSource::Journal { unit } => {
            let reader = JournalReader::new(&journalctl, unit.clone()).json();
            ship_journal(&shipping.name, reader, sink).await
        }
    }
}

async fn ship_file(name: &str, path: &str, sink: LogSink) {
    let mut follower = FileFollower::new(path);
    let mut collector = LineCollector::new(MAX_MESSAGE_BYTES + 1);
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failure: Option<String> = None;
    loop {
        poll.tick().await;
        // File reads block: off the runtime, with the state moved there and back.
        let joined = tokio::task::spawn_blocking(move || {
            let polled = follower.poll(&mut collector);
            (follower, collector, polled)
        })
        .await;
        let Ok((back_follower, back_collector, polled)) = joined else {
            tracing::error!(shipping = name, "log shipping poll panicked; stopping it");
            return;
        };
        (follower, collector) = (back_follower, back_collector);
        match polled {
            Ok(_) => {
                if failure.take().is_some() {
                    tracing::info!(shipping = name, "shipped log file readable again");
                }
            }
            Err(err) => {
                let reason = err.to_string();
                if failure.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(shipping = name, %reason, "cannot read the shipped log file; shipping nothing meanwhile");
                }
                failure = Some(reason);
            }
        }
        let at = now_millis();
        for (line, full_len) in collector.take() {
            if !sink.ship(file_entry(path, line, full_len, at)).await {
                return;
            }
        }
    }
}

async fn ship_journal(name: &str, mut reader: JournalReader, sink: LogSink) {
    let mut collector = LineCollector::new(MAX_JOURNAL_LINE);
    loop {
        reader.next(&mut collector, name).await;
        for (line, _) in collector.take() {
            match journal_entry(&line, now_millis()) {
                Some(entry) => {
                    if !sink.ship(entry).await {
                        return;
                    }
                }
                None => {
                    let start: String = line.chars().take(80).collect();
                    tracing::warn!(shipping = name, line = %start, "skipping a journalctl line that is not a JSON object");
                }
            }
        }
    }
}
