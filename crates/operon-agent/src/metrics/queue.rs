//! Batches sent but not yet acknowledged by the server.
//!
//! Invariants: batches are kept in `seq` order; `seq` increases by one per
//! batch of this process, from a random start (so the server tells a
//! restarted agent's batches from resent ones); the queue never holds more
//! than its batch and byte limits: when a new batch would exceed them, the
//! oldest batches are dropped first (an outage longer than the queue's span
//! loses its oldest points, never the newest) and the loss is logged with a
//! count of points.

use std::collections::VecDeque;

use operon_proto::{MetricBatch, MetricPoint};

/// Default limit on batches: an hour at the default 10 s interval.
pub const DEFAULT_MAX_BATCHES: usize = 360;
/// Default limit on the estimated encoded size of all batches.
pub const DEFAULT_MAX_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug)]
pub struct MetricQueue {
    batches: VecDeque<(MetricBatch, usize)>,
    bytes: usize,
    next_seq: u64,
    max_batches: usize,
    max_bytes: usize,
    /// Points dropped because the queue was full, since start.
    dropped_points: u64,
}

impl MetricQueue {
    /// An empty queue whose first batch gets `first_seq`.
    pub fn new(first_seq: u64, max_batches: usize, max_bytes: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            bytes: 0,
            next_seq: first_seq,
            max_batches: max_batches.max(1),
            max_bytes,
            dropped_points: 0,
        }
    }

    /// A queue with the default limits and a random first `seq`, below 2^62
    /// so that it never wraps and fits a signed 64-bit column.
    pub fn with_random_start() -> Self {
        Self::new(
            rand::random::<u64>() >> 2,
            DEFAULT_MAX_BATCHES,
            DEFAULT_MAX_BYTES,
        )
    }

    /// Queue `points` as the next batch and return it (to send now). Empty
    /// `points` make no batch.
    pub fn push(&mut self, points: Vec<MetricPoint>) -> Option<MetricBatch> {
        if points.is_empty() {
            return None;
        }
        let batch = MetricBatch {
            seq: self.next_seq,
            points,
        };
        self.next_seq += 1;
        let size = estimated_size(&batch);
        let mut dropped = 0usize;
        while !self.batches.is_empty()
            && (self.batches.len() >= self.max_batches || self.bytes + size > self.max_bytes)
        {
            if let Some((old, old_size)) = self.batches.pop_front() {
                self.bytes -= old_size;
                dropped += old.points.len();
            }
        }
        if dropped > 0 {
            self.dropped_points += dropped as u64;
            tracing::warn!(
                dropped_points = dropped,
                dropped_since_start = self.dropped_points,
                "metrics queue full (server unreachable or not acknowledging); dropped the oldest unacknowledged points"
            );
        }
        self.bytes += size;
        self.batches.push_back((batch.clone(), size));
        Some(batch)
    }

    /// The server stored batch `seq`: forget it. Unknown `seq`s (already
    /// acknowledged, dropped, or of another process) are ignored.
    pub fn ack(&mut self, seq: u64) {
        if let Some(index) = self.batches.iter().position(|(b, _)| b.seq == seq)
            && let Some((_, size)) = self.batches.remove(index)
        {
            self.bytes -= size;
        }
    }

    /// Every unacknowledged batch, oldest first: to resend after `Welcome`.
    pub fn unacked(&self) -> impl Iterator<Item = &MetricBatch> {
        self.batches.iter().map(|(batch, _)| batch)
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Estimated encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn dropped_points(&self) -> u64 {
        self.dropped_points
    }
}

/// Roughly the JSON size of a batch, without encoding it: the names and
/// dimensions as they are plus a fixed allowance for a point's punctuation,
/// timestamp, value and unit.
fn estimated_size(batch: &MetricBatch) -> usize {
    const PER_BATCH: usize = 48;
    const PER_POINT: usize = 96;
    batch
        .points
        .iter()
        .map(|p| {
            PER_POINT
                + p.name.len()
                + p.dimensions
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 6)
                    .sum::<usize>()
        })
        .sum::<usize>()
        + PER_BATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize) -> Vec<MetricPoint> {
        (0..n)
            .map(|i| MetricPoint {
                name: "cpu.used".into(),
                dimensions: Default::default(),
                at: i as i64,
                value: i as f64,
                unit: None,
            })
            .collect()
    }

    fn seqs(queue: &MetricQueue) -> Vec<u64> {
        queue.unacked().map(|b| b.seq).collect()
    }

    #[test]
    fn seq_increases_by_one_and_acks_remove_in_any_order() {
        let mut queue = MetricQueue::new(100, 10, usize::MAX);
        assert_eq!(queue.push(points(0)), None);
        for _ in 0..4 {
            queue.push(points(2)).unwrap();
        }
        assert_eq!(seqs(&queue), [100, 101, 102, 103]);
        queue.ack(102);
        queue.ack(100);
        queue.ack(999);
        queue.ack(100);
        assert_eq!(seqs(&queue), [101, 103]);
        assert_eq!(queue.push(points(1)).unwrap().seq, 104);
        queue.ack(101);
        queue.ack(103);
        queue.ack(104);
        assert!(queue.is_empty());
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn limits_drop_the_oldest_batches_first() {
        struct Case {
            what: &'static str,
            max_batches: usize,
            max_bytes: usize,
            pushes: Vec<usize>,
            kept: Vec<u64>,
            dropped_points: u64,
        }
        let one_point = estimated_size(&MetricBatch {
            seq: 0,
            points: points(1),
        });
        for case in [
            Case {
                what: "batch limit",
                max_batches: 3,
                max_bytes: usize::MAX,
                pushes: vec![1, 2, 3, 4, 5],
                kept: vec![2, 3, 4],
                dropped_points: 3,
            },
            Case {
                what: "byte limit: two one-point batches fit",
                max_batches: 100,
                max_bytes: 2 * one_point,
                pushes: vec![1, 1, 1],
                kept: vec![1, 2],
                dropped_points: 1,
            },
            Case {
                what: "a batch larger than the byte limit is still kept alone",
                max_batches: 100,
                max_bytes: one_point,
                pushes: vec![1, 5],
                kept: vec![1],
                dropped_points: 1,
            },
            Case {
                what: "within limits nothing is dropped",
                max_batches: 5,
                max_bytes: usize::MAX,
                pushes: vec![1, 1],
                kept: vec![0, 1],
                dropped_points: 0,
            },
        ] {
            let mut queue = MetricQueue::new(0, case.max_batches, case.max_bytes);
            for n in &case.pushes {
                queue.push(points(*n));
            }
            assert_eq!(seqs(&queue), case.kept, "{}", case.what);
            assert_eq!(queue.dropped_points(), case.dropped_points, "{}", case.what);
            let held: usize = queue.unacked().map(estimated_size).sum();
            assert_eq!(queue.bytes(), held, "{}", case.what);
        }
    }

    #[test]
    fn the_estimate_is_close_to_the_encoded_size() {
        let batch = MetricBatch {
            seq: 123456789,
            points: (0..50)
                .map(|i| MetricPoint {
                    name: "disk.read_bytes_per_sec".into(),
                    dimensions: [("device".to_owned(), format!("nvme{i}n1"))].into(),
                    at: 1_764_730_000_000,
                    value: 12345.678 * i as f64,
                    unit: Some("Bytes/Second".into()),
                })
                .collect(),
        };
        let encoded =
            operon_proto::encode(&operon_proto::AgentMessage::Metrics(batch.clone())).len();
        let estimate = estimated_size(&batch);
        assert!(
            estimate * 2 > encoded && estimate < encoded * 2,
            "{estimate} vs {encoded}"
        );
    }

    #[test]
    fn random_starts_differ_and_leave_room() {
        let a = MetricQueue::with_random_start();
        let b = MetricQueue::with_random_start();
        assert_ne!(a.next_seq, b.next_seq);
        assert!(a.next_seq < u64::MAX / 2);
    }
}
