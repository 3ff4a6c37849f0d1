//! Log batches sent but not yet acknowledged by the server.
//!
//! Invariants (as the metrics queue, [`crate::metrics::queue`]): batches are
//! kept in `seq` order; `seq` increases by one per batch of this process,
//! from a random start; the queue never holds more than its batch and byte
//! limits: the oldest batches are dropped first and the loss is logged with
//! a count of entries.

use std::collections::VecDeque;

use operon_proto::{LogBatch, LogEntry};

/// Default limit on batches: ten minutes of one batch a second.
pub const DEFAULT_MAX_BATCHES: usize = 600;
/// Default limit on the estimated encoded size of all batches.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct LogQueue {
    batches: VecDeque<(LogBatch, usize)>,
    bytes: usize,
    next_seq: u64,
    max_batches: usize,
    max_bytes: usize,
    /// Entries dropped because the queue was full, since start.
    dropped_entries: u64,
}

impl LogQueue {
    /// An empty queue whose first batch gets `first_seq`.
    pub fn new(first_seq: u64, max_batches: usize, max_bytes: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            bytes: 0,
            next_seq: first_seq,
            max_batches: max_batches.max(1),
            max_bytes,
            dropped_entries: 0,
        }
    }

    /// Default limits, random first `seq` below 2^62 (fits a signed column).
    pub fn with_random_start() -> Self {
        Self::new(
            rand::random::<u64>() >> 2,
            DEFAULT_MAX_BATCHES,
            DEFAULT_MAX_BYTES,
        )
    }

    /// Queue `entries` as the next batch and return it (to send now).
    /// Empty `entries` make no batch.
    pub fn push(&mut self, entries: Vec<LogEntry>) -> Option<LogBatch> {
        if entries.is_empty() {
            return None;
        }
        let batch = LogBatch {
            seq: self.next_seq,
            entries,
        };
        self.next_seq += 1;
        let size = estimated_size(&batch);
        let mut dropped = 0usize;
        while !self.batches.is_empty()
            && (self.batches.len() >= self.max_batches || self.bytes + size > self.max_bytes)
        {
            if let Some((old, old_size)) = self.batches.pop_front() {
                self.bytes -= old_size;
                dropped += old.entries.len();
            }
        }
        if dropped > 0 {
            self.dropped_entries += dropped as u64;
            tracing::warn!(
                dropped_entries = dropped,
                dropped_since_start = self.dropped_entries,
                "log queue full (server unreachable or not acknowledging); dropped the oldest unacknowledged lines"
            );
        }
        self.bytes += size;
        self.batches.push_back((batch.clone(), size));
        Some(batch)
    }

    /// The server stored batch `seq`: forget it (unknown seqs are ignored).
    pub fn ack(&mut self, seq: u64) {
        if let Some(index) = self.batches.iter().position(|(b, _)| b.seq == seq)
            && let Some((_, size)) = self.batches.remove(index)
        {
            self.bytes -= size;
        }
    }

    /// Every unacknowledged batch, oldest first: to resend after `Welcome`.
    pub fn unacked(&self) -> impl Iterator<Item = &LogBatch> {
        self.batches.iter().map(|(batch, _)| batch)
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn dropped_entries(&self) -> u64 {
        self.dropped_entries
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
            assert_eq!(queue.dropped_entries(), *dropped, "{pushes:?}");
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
