//! Metrics the agent samples on its node and sends to the server
//! ([`operon_proto::CAPABILITY_METRICS`]).
//!
//! Every `metrics_interval` the metrics task ([`spawn`]) reads the node
//! ([`read`]: `/proc` and `statvfs`, parsed by [`parse`]), turns the reading
//! into datapoints ([`sampler`]: levels from one reading, rates from the
//! difference with the previous one), adds the points given to the
//! [`MetricSink`] since the last sample and the custom metric files dropped
//! on the node ([`custom`]), and makes one [`MetricBatch`] of them.
//!
//! Delivery: each batch is kept in the [`MetricQueue`] until the server's
//! `MetricsAck { seq }`. While the link is welcomed a batch is sent as soon
//! as it is made; after every `Welcome` every unacknowledged batch is sent
//! again, oldest first, with its original `seq` (the server ignores a `seq`
//! it already stored). While there is no link batches only queue; the queue
//! is bounded and drops its oldest batches first.
//!
//! Node metrics (CloudWatch unit in brackets): `cpu.used` (Percent),
//! `mem.used_percent` (Percent), `mem.available_bytes` (Bytes),
//! `swap.used_percent` (Percent), `load.1`/`load.5`/`load.15` (None),
//! `proc.count` (Count), `disk.used_percent`, `disk.free_bytes`,
//! `disk.inodes_used_percent` per `mount`, `disk.read_bytes_per_sec` and
//! `disk.write_bytes_per_sec` per `device`, `net.rx_bytes_per_sec` and
//! `net.tx_bytes_per_sec` per `interface`. Which mounts, devices and
//! interfaces are reported is documented in [`parse`]. The agent reads its
//! own `/proc`, not below `AgentConfig::host_root` (see [`read`]).
//!
//! # Points from elsewhere in the agent
//!
//! [`MetricSink`] is the one way for other parts of the agent (health
//! checks, log watchers) to send datapoints: clone it, [`MetricSink::put`]
//! points, and they go out with the next batch. It is bounded
//! ([`SINK_CAPACITY`] points between two samples); past that, points are
//! dropped and counted, and the count is logged at the next sample. With
//! metrics off (interval zero) the sink is [`MetricSink::disconnected`]:
//! its points go nowhere.

pub mod custom;
pub mod parse;
pub mod queue;
pub mod read;
pub mod sampler;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use operon_proto::{AgentMessage, MetricBatch, MetricPoint, UnixMillis};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub use queue::MetricQueue;
pub use sampler::{Readings, Sampler};

/// How often the node is sampled unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Where scripts on the node drop custom metrics unless configured otherwise.
pub const DEFAULT_CUSTOM_DIR: &str = "/var/lib/operon/metrics.d";

/// Most points a [`MetricSink`] holds between two samples.
pub const SINK_CAPACITY: usize = 10_000;

/// Where the metrics task reads from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `/proc` (another directory in tests).
    pub proc_dir: PathBuf,
    /// Custom metric drops ([`custom`]).
    pub custom_dir: PathBuf,
}

/// Hands datapoints to the metrics task; they go out with the next batch.
/// Cheap to clone; never blocks.
#[derive(Debug, Clone)]
pub struct MetricSink {
    points: Option<mpsc::Sender<MetricPoint>>,
    dropped: Arc<AtomicU64>,
}

impl MetricSink {
    /// A sink whose points are discarded (metrics are off).
    pub fn disconnected() -> Self {
        Self {
            points: None,
            dropped: Arc::default(),
        }
    }

    /// Add `point` to the next batch. `false` if it was dropped: the sink is
    /// full (more than [`SINK_CAPACITY`] points since the last sample) or
    /// metrics are off.
    pub fn put(&self, point: MetricPoint) -> bool {
        let Some(points) = &self.points else {
            return false;
        };
        match points.try_send(point) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

enum Request {
    Welcomed,
    LinkLost,
    Ack(u64),
}

/// Tells the metrics task about the link.
#[derive(Debug, Clone)]
pub struct MetricsHandle {
    requests: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Welcomed => f.write_str("Welcomed"),
            Request::LinkLost => f.write_str("LinkLost"),
            Request::Ack(seq) => write!(f, "Ack({seq})"),
        }
    }
}

impl MetricsHandle {
    /// A `Welcome` arrived: resend every unacknowledged batch, then send new
    /// ones as they are made.
    pub fn welcomed(&self) {
        let _ = self.requests.send(Request::Welcomed);
    }

    /// The link is gone: queue batches without sending them.
    pub fn link_lost(&self) {
        let _ = self.requests.send(Request::LinkLost);
    }

    /// `MetricsAck { seq }`.
    pub fn acknowledged(&self, seq: u64) {
        let _ = self.requests.send(Request::Ack(seq));
    }
}

pub(crate) fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or(0)
}

/// Start the metrics task, sampling every `interval` (at once, then on
/// each tick). Its `Metrics` frames come out of the receiver, to be written
/// to the link; frames that come out while there is no link may be dropped
/// (the batches stay queued and are resent after the next `Welcome`).
/// The task ends when the handle and the receiver are dropped.
pub fn spawn(
    sources: Sources,
    interval: Duration,
) -> (
    MetricsHandle,
    MetricSink,
    mpsc::UnboundedReceiver<AgentMessage>,
) {
    let (requests_tx, requests) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let (points_tx, points_rx) = mpsc::channel(SINK_CAPACITY);
    let sink = MetricSink {
        points: Some(points_tx),
        dropped: Arc::default(),
    };
    let task = MetricsTask {
        sources,
        sampler: Sampler::new(),
        queue: MetricQueue::with_random_start(),
        sink_points: points_rx,
        sink_dropped: sink.dropped.clone(),
        events,
        online: false,
    };
    tokio::spawn(task.run(requests, interval));
    (
        MetricsHandle {
            requests: requests_tx,
        },
        sink,
        events_rx,
    )
}

struct MetricsTask {
    sources: Sources,
    sampler: Sampler,
    queue: MetricQueue,
    sink_points: mpsc::Receiver<MetricPoint>,
    sink_dropped: Arc<AtomicU64>,
    events: mpsc::UnboundedSender<AgentMessage>,
    /// Welcomed link: send batches as they are made.
    online: bool,
}

impl MetricsTask {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        // A sample late (slow statvfs, busy node) is not followed by a burst.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // At most one reading at a time, off the runtime; acks and Welcomes
        // are handled while it runs, and a reading that hangs (a stuck
        // mount) costs one thread and skipped samples, not the task.
        let mut reading: Option<JoinHandle<Reading>> = None;
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.on_request(request),
                    None => return,
                },
                _ = ticker.tick() => {
                    if reading.is_some() {
                        tracing::warn!("the previous reading of the node is still running (a file system not answering?); skipping this sample");
                    } else {
                        reading = Some(self.start_reading());
                    }
                }
                read = finished(&mut reading) => {
                    reading = None;
                    let keep_going = match read {
                        Ok(read) => self.sampled(read),
                        Err(err) => {
                            tracing::warn!(%err, "reading the node's metrics failed");
                            !self.events.is_closed()
                        }
                    };
                    if !keep_going {
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
                    let _ = self.events.send(AgentMessage::Metrics(batch.clone()));
                }
            }
            Request::LinkLost => self.online = false,
            Request::Ack(seq) => self.queue.ack(seq),
        }
    }

    fn start_reading(&self) -> JoinHandle<Reading> {
        let sources = self.sources.clone();
        tokio::task::spawn_blocking(move || {
            let at = now_millis();
            Reading {
                at,
                node: read::read_node(&sources.proc_dir),
                custom: custom::collect(&sources.custom_dir),
            }
        })
    }

    /// Turn a reading into a batch, queue it and send it if online.
    /// `false` once nobody listens any more.
    fn sampled(&mut self, read: Reading) -> bool {
        let Reading {
            at,
            node: readings,
            custom: (custom_points, delivered),
        } = read;
        let mut points = self.sampler.next(readings, at);
        while let Ok(point) = self.sink_points.try_recv() {
            points.push(point);
        }
        let dropped = self.sink_dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                capacity = SINK_CAPACITY,
                "more datapoints than the metric sink holds between two samples; dropped some"
            );
        }
        points.extend(custom_points);
        let batch = self.queue.push(points);
        // Queued in memory: the drops have been delivered to the agent.
        custom::remove_delivered(&delivered);
        if let (Some(batch), true) = (batch, self.online) {
            self.send(batch)
        } else {
            !self.events.is_closed()
        }
    }

    fn send(&self, batch: MetricBatch) -> bool {
        self.events.send(AgentMessage::Metrics(batch)).is_ok()
    }
}

/// What one blocking reading found.
struct Reading {
    at: UnixMillis,
    node: Readings,
    /// Custom points and the drop files they came from.
    custom: (Vec<MetricPoint>, Vec<PathBuf>),
}

/// The result of the reading in flight; never resolves without one.
async fn finished(
    reading: &mut Option<JoinHandle<Reading>>,
) -> Result<Reading, tokio::task::JoinError> {
    match reading {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            dimensions: Default::default(),
            at: 1,
            value: 1.0,
            unit: None,
        }
    }

    fn batch_of(message: AgentMessage) -> MetricBatch {
        match message {
            AgentMessage::Metrics(batch) => batch,
            other => panic!("expected Metrics, got {other:?}"),
        }
    }

    async fn next(events: &mut mpsc::UnboundedReceiver<AgentMessage>) -> MetricBatch {
        let message = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("a batch in time")
            .expect("the task is running");
        batch_of(message)
    }

    #[tokio::test]
    async fn batches_wait_for_welcome_then_flow_and_acked_ones_are_not_resent() {
        let custom = tempfile::tempdir().unwrap();
        let sources = Sources {
            proc_dir: "/proc".into(),
            custom_dir: custom.path().into(),
        };
        let (handle, sink, mut events) = spawn(sources, Duration::from_millis(100));
        assert!(sink.put(point("check.healthy")));
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(events.try_recv().is_err(), "nothing is sent before Welcome");

        handle.welcomed();
        // The queued batches, oldest first, then live ones, seq by seq.
        let mut seen = vec![next(&mut events).await];
        while !(seen.iter().any(|b| has(b, "cpu.used"))
            && seen.iter().any(|b| has(b, "check.healthy")))
        {
            assert!(seen.len() < 20, "no cpu.used or sink point in {seen:?}");
            seen.push(next(&mut events).await);
        }
        assert!(seen.iter().all(|b| has(b, "mem.used_percent")));
        let first = seen[0].seq;
        let seqs: Vec<u64> = seen.iter().map(|b| b.seq).collect();
        assert_eq!(seqs, (first..first + seqs.len() as u64).collect::<Vec<_>>());

        handle.link_lost();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut last = *seqs.last().unwrap();
        while let Ok(message) = events.try_recv() {
            last = batch_of(message).seq;
        }
        for seq in first..=last {
            handle.acknowledged(seq);
        }
        // Batches made while offline are queued, not sent.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(events.try_recv().is_err());
        handle.welcomed();
        let again = next(&mut events).await;
        assert_eq!(again.seq, last + 1, "acknowledged batches are not resent");
        let again = next(&mut events).await;
        assert_eq!(again.seq, last + 2);
    }

    fn has(batch: &MetricBatch, name: &str) -> bool {
        batch.points.iter().any(|p| p.name == name)
    }

    #[test]
    fn a_hung_reading_skips_samples_but_not_the_task() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Reading a FIFO with no writer blocks, like statvfs on a dead mount.
        let fifo = dir.path().join("stat");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        runtime.block_on(async {
            let sources = Sources {
                proc_dir: dir.path().into(),
                custom_dir: dir.path().join("custom"),
            };
            let (handle, sink, mut events) = spawn(sources, Duration::from_millis(50));
            assert!(sink.put(point("check.healthy")));
            // Release the first reading: its batch is queued (not sent: no Welcome yet).
            let writer = fifo.clone();
            tokio::task::spawn_blocking(move || std::fs::write(writer, "cpu 1 2 3 4\n"))
                .await
                .unwrap()
                .unwrap();
            // The next readings hang, and the ticks meanwhile are skipped.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(events.try_recv().is_err());
            // The Welcome is served all the same: the queued batch is resent.
            handle.welcomed();
            let batch = next(&mut events).await;
            assert!(has(&batch, "check.healthy"), "{batch:?}");
        });
        // The next reading hangs on the FIFO again: do not wait for it.
        runtime.shutdown_timeout(Duration::from_millis(100));
    }

    #[test]
    fn a_disconnected_sink_drops_points() {
        assert!(!MetricSink::disconnected().put(point("a")));
    }

    #[tokio::test]
    async fn a_full_sink_drops_and_counts() {
        let (tx, _rx) = mpsc::channel(1);
        let sink = MetricSink {
            points: Some(tx),
            dropped: Arc::default(),
        };
        assert!(sink.put(point("a")));
        assert!(!sink.put(point("b")));
        assert!(!sink.clone().put(point("c")));
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 2);
    }
}
