//! Logs the agent ships to the server ([`operon_proto::CAPABILITY_LOGS`]).
//!
//! The server names the logs to ship in `MonitorSet.shipped`; the monitors
//! runner ([`crate::monitors::Monitors`]) starts one task per log ([`ship`]):
//! a file is followed like a log watcher's (across rotation and truncation,
//! from its end when first seen), the journal is read with `journalctl -f
//! -o json`. Each line becomes a [`LogEntry`] ([`lines`]) handed to the
//! [`LogSink`].
//!
//! The logs task ([`spawn`]) gathers the entries into batches: one every
//! [`FLUSH_EVERY`], or sooner when [`MAX_BATCH_ENTRIES`] are waiting.
//! Delivery is the metrics' ([`crate::metrics`]): each batch stays in the
//! [`LogQueue`] until `LogsAck { seq }`; after every `Welcome` every
//! unacknowledged batch is sent again with its `seq`; without a link batches
//! only queue; the queue is bounded and drops its oldest batches first.
//! The sink is bounded too ([`SINK_CAPACITY`]): a shipping task waits when
//! it is full, so a burst slows reading instead of growing memory.

pub mod lines;
pub mod queue;
pub mod ship;

use std::time::Duration;

use operon_proto::{AgentMessage, LogEntry};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

pub use queue::LogQueue;

/// A batch goes out at least this often while lines arrive.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// A batch goes out as soon as this many lines wait.
pub const MAX_BATCH_ENTRIES: usize = 500;
/// Entries waiting in the sink at most.
pub const SINK_CAPACITY: usize = 10_000;

/// Hands entries to the logs task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogSink {
    entries: mpsc::Sender<LogEntry>,
}

impl LogSink {
    /// Ship `entry` (waits while the sink is full). `false` once the logs
    /// task is gone.
    pub async fn ship(&self, entry: LogEntry) -> bool {
        self.entries.send(entry).await.is_ok()
    }
}

enum Request {
    Welcomed,
    LinkLost,
    Ack(u64),
}

/// Tells the logs task about the link.
#[derive(Clone)]
pub struct LogsHandle {
    requests: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for LogsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogsHandle")
    }
}

impl LogsHandle {
    /// A `Welcome` arrived: resend every unacknowledged batch, then send new
    /// ones as they are made.
    pub fn welcomed(&self) {
        let _ = self.requests.send(Request::Welcomed);
    }

    /// The link is gone: queue batches without sending them.
    pub fn link_lost(&self) {
        let _ = self.requests.send(Request::LinkLost);
    }

    /// `LogsAck { seq }`.
    pub fn acknowledged(&self, seq: u64) {
        let _ = self.requests.send(Request::Ack(seq));
    }
}

/// Start the logs task, batching every `flush_every` (at least 50 ms). Its
/// `Logs` frames come out of the receiver, to be written to the link.
/// The task ends when the handle, the sinks and the receiver are dropped.
pub fn spawn(
    flush_every: Duration,
) -> (LogsHandle, LogSink, mpsc::UnboundedReceiver<AgentMessage>) {
    let (requests_tx, requests) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let (entries_tx, entries) = mpsc::channel(SINK_CAPACITY);
    let task = LogsTask {
        queue: LogQueue::with_random_start(),
        pending: Vec::new(),
        events,
        online: false,
    };
    tokio::spawn(task.run(requests, entries, flush_every));
    (
        LogsHandle {
            requests: requests_tx,
        },
        LogSink {
            entries: entries_tx,
        },
        events_rx,
    )
}

struct LogsTask {
    queue: LogQueue,
    pending: Vec<LogEntry>,
    events: mpsc::UnboundedSender<AgentMessage>,
    online: bool,
}

impl LogsTask {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut entries: mpsc::Receiver<LogEntry>,
        flush_every: Duration,
    ) {
        let mut ticker = tokio::time::interval(flush_every.max(Duration::from_millis(50)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut entries_open = true;
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.on_request(request),
                    None => return,
                },
                entry = entries.recv(), if entries_open => match entry {
                    Some(entry) => {
                        self.pending.push(entry);
                        if self.pending.len() >= MAX_BATCH_ENTRIES && !self.flush() {
                            return;
                        }
                    }
                    None => entries_open = false,
                },
                _ = ticker.tick() => {
                    if !self.flush() {
                        return;
                    }
                }
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Welcomed => {
                self.online = true;
                for batch in self.queue.unacked() {
                    let _ = self.events.send(AgentMessage::Logs(batch.clone()));
                }
            }
            Request::LinkLost => self.online = false,
            Request::Ack(seq) => self.queue.ack(seq),
        }
    }

    /// Queue the waiting entries as a batch and send it if online. `false`
    /// once nobody listens any more.
    fn flush(&mut self) -> bool {
        let batch = self.queue.push(std::mem::take(&mut self.pending));
        match (batch, self.online) {
            (Some(batch), true) => self.events.send(AgentMessage::Logs(batch)).is_ok(),
            _ => !self.events.is_closed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use operon_proto::LogBatch;

    fn entry(message: &str) -> LogEntry {
        LogEntry {
            at: 1,
            source: "file:/l".into(),
            level: None,
            message: message.into(),
            fields: Default::default(),
        }
    }

    async fn next(events: &mut mpsc::UnboundedReceiver<AgentMessage>) -> LogBatch {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(AgentMessage::Logs(batch))) => batch,
            other => panic!("expected a Logs batch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn batches_wait_for_welcome_are_resent_until_acked() {
        let (handle, sink, mut events) = spawn(Duration::from_millis(50));
        assert!(sink.ship(entry("one")).await);
        assert!(sink.ship(entry("two")).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(events.try_recv().is_err(), "nothing is sent before Welcome");

        handle.welcomed();
        let first = next(&mut events).await;
        let messages: Vec<&str> = first.entries.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["one", "two"]);

        // Lost before the ack: sent again after the next Welcome, same seq.
        handle.link_lost();
        assert!(sink.ship(entry("three")).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(events.try_recv().is_err(), "nothing is sent without a link");
        handle.welcomed();
        let again = next(&mut events).await;
        assert_eq!(again, first);
        let later = next(&mut events).await;
        assert_eq!(later.seq, first.seq + 1);
        assert_eq!(later.entries[0].message, "three");

        // Acknowledged batches are not resent.
        handle.acknowledged(first.seq);
        handle.acknowledged(later.seq);
        handle.welcomed();
        assert!(sink.ship(entry("four")).await);
        let after = next(&mut events).await;
        assert_eq!(after.seq, later.seq + 1);
        assert_eq!(after.entries[0].message, "four");
    }

    #[tokio::test]
    async fn a_full_batch_goes_out_before_the_tick() {
        let (handle, sink, mut events) = spawn(Duration::from_secs(3600));
        handle.welcomed();
        // The first tick fires at once; let it pass with nothing waiting.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 0..MAX_BATCH_ENTRIES + 1 {
            assert!(sink.ship(entry(&i.to_string())).await);
        }
        let batch = next(&mut events).await;
        assert_eq!(batch.entries.len(), MAX_BATCH_ENTRIES);
    }
}
