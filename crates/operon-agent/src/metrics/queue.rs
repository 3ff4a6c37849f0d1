//! Metric batches sent but not yet acknowledged: an [`AckQueue`] of
//! [`MetricBatch`]es (its invariants are the queue's).

use operon_proto::{MetricBatch, MetricPoint};

use crate::ack_queue::{AckQueue, Batch};

/// Default limit on batches: an hour at the default 10 s interval.
pub const DEFAULT_MAX_BATCHES: usize = 360;
/// Default limit on the estimated encoded size of all batches.
pub const DEFAULT_MAX_BYTES: usize = 5 * 1024 * 1024;

pub type MetricQueue = AckQueue<MetricBatch>;

impl Batch for MetricBatch {
    type Item = MetricPoint;
    const ITEMS: &'static str = "metric points";
    const DEFAULT_MAX_BATCHES: usize = DEFAULT_MAX_BATCHES;
    const DEFAULT_MAX_BYTES: usize = DEFAULT_MAX_BYTES;

    fn new(seq: u64, points: Vec<MetricPoint>) -> Self {
        MetricBatch { seq, points }
    }

    fn seq(&self) -> u64 {
        self.seq
    }

    fn item_count(&self) -> usize {
        self.points.len()
    }

    fn estimated_size(&self) -> usize {
        estimated_size(self)
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
            assert_eq!(queue.dropped(), case.dropped_points, "{}", case.what);
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
        let mut a = MetricQueue::with_random_start();
        let mut b = MetricQueue::with_random_start();
        let point = || MetricPoint {
            name: "cpu.used".into(),
            dimensions: Default::default(),
            at: 0,
            value: 1.0,
            unit: None,
        };
        let first_a = a.push(vec![point()]).unwrap().seq;
        let first_b = b.push(vec![point()]).unwrap().seq;
        assert_ne!(first_a, first_b);
        assert!(first_a < u64::MAX / 2);
    }
}
