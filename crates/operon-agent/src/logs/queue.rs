//! Log batches sent but not yet acknowledged: an [`AckQueue`] of
//! [`LogBatch`]es (its invariants are the queue's, as for metrics).

use operon_proto::{LogBatch, LogEntry};

use crate::ack_queue::{AckQueue, Batch};

/// Default limit on batches: ten minutes of one batch a second.
pub const DEFAULT_MAX_BATCHES: usize = 600;
/// Default limit on the estimated encoded size of all batches.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

pub type LogQueue = AckQueue<LogBatch>;

impl Batch for LogBatch {
    type Item = LogEntry;
    const ITEMS: &'static str = "log lines";
    const DEFAULT_MAX_BATCHES: usize = DEFAULT_MAX_BATCHES;
    const DEFAULT_MAX_BYTES: usize = DEFAULT_MAX_BYTES;

    fn new(seq: u64, entries: Vec<LogEntry>) -> Self {
        LogBatch { seq, entries }
    }

    fn seq(&self) -> u64 {
        self.seq
    }

    fn item_count(&self) -> usize {
        self.entries.len()
    }

    fn estimated_size(&self) -> usize {
        estimated_size(self)
    }
}

/// Roughly the JSON size of a batch without encoding it.
fn estimated_size(batch: &LogBatch) -> usize {
    const PER_BATCH: usize = 48;
    const PER_ENTRY: usize = 80;
    batch
        .entries
        .iter()
        .map(|e| {
            PER_ENTRY
                + e.source.len()
                + e.message.len()
                + e.fields
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

    fn entries(n: usize) -> Vec<LogEntry> {
        (0..n)
            .map(|i| LogEntry {
                at: i as i64,
                source: "file:/var/log/app.log".into(),
                level: Some("info".into()),
                message: format!("line {i}"),
                fields: Default::default(),
            })
            .collect()
    }

    fn seqs(queue: &LogQueue) -> Vec<u64> {
        queue.unacked().map(|b| b.seq).collect()
    }

    #[test]
    fn seqs_follow_and_acks_remove_in_any_order() {
        let mut queue = LogQueue::new(7, 10, usize::MAX);
        assert_eq!(queue.push(vec![]), None);
        for _ in 0..3 {
            queue.push(entries(2)).unwrap();
        }
        queue.ack(8);
        queue.ack(8);
        queue.ack(99);
        assert_eq!(seqs(&queue), [7, 9]);
        queue.ack(7);
        queue.ack(9);
        assert!(queue.is_empty());
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn limits_drop_the_oldest_batches_first_and_count_entries() {
        let one = estimated_size(&LogBatch {
            seq: 0,
            entries: entries(1),
        });
        // (max batches, max bytes, entries per push, kept seqs, dropped entries)
        type Case = (usize, usize, &'static [usize], &'static [u64], u64);
        let table: &[Case] = &[
            (3, usize::MAX, &[1, 2, 3, 4, 5], &[2, 3, 4], 3),
            (100, 2 * one, &[1, 1, 1], &[1, 2], 1),
            (100, one, &[1, 5], &[1], 1),
            (5, usize::MAX, &[1, 1], &[0, 1], 0),
        ];
        for (max_batches, max_bytes, pushes, kept, dropped) in table {
            let mut queue = LogQueue::new(0, *max_batches, *max_bytes);
            for n in *pushes {
                queue.push(entries(*n));
            }
            assert_eq!(seqs(&queue), *kept, "{max_batches} {max_bytes} {pushes:?}");
            assert_eq!(queue.dropped(), *dropped, "{pushes:?}");
            let held: usize = queue.unacked().map(estimated_size).sum();
            assert_eq!(queue.bytes(), held);
        }
    }

    #[test]
    fn the_estimate_is_close_to_the_encoded_size() {
        let batch = LogBatch {
            seq: 123_456_789,
            entries: entries(50),
        };
        let encoded = operon_proto::encode(&operon_proto::AgentMessage::Logs(batch.clone())).len();
        let estimate = estimated_size(&batch);
        assert!(
            estimate * 2 > encoded && estimate < encoded * 2,
            "{estimate} vs {encoded}"
        );
    }
}
