//! Batches sent but not yet acknowledged by the server: one queue shape for
//! metric batches ([`crate::metrics::MetricQueue`]) and log batches
//! ([`crate::logs::LogQueue`]).
//!
//! Invariants: batches are kept in `seq` order; `seq` increases by one per
//! batch of this process, from a random start (so the server tells a
//! restarted agent's batches from resent ones); the queue never holds more
//! than its batch and byte limits: when a new batch would exceed them, the
//! oldest batches are dropped first (an outage longer than the queue's span
//! loses its oldest items, never the newest) and the loss is logged with a
//! count of items.

use std::collections::VecDeque;

/// A batch of items with a sequence number, as the queue needs it.
pub trait Batch: Clone {
    type Item;
    /// What the items are called in the log ("points", "lines").
    const ITEMS: &'static str;
    const DEFAULT_MAX_BATCHES: usize;
    const DEFAULT_MAX_BYTES: usize;

    fn new(seq: u64, items: Vec<Self::Item>) -> Self;
    fn seq(&self) -> u64;
    fn item_count(&self) -> usize;
    /// Roughly the encoded size, without encoding.
    fn estimated_size(&self) -> usize;
}

#[derive(Debug)]
pub struct AckQueue<B> {
    batches: VecDeque<(B, usize)>,
    bytes: usize,
    next_seq: u64,
    max_batches: usize,
    max_bytes: usize,
    /// Items dropped because the queue was full, since start.
    dropped: u64,
}

impl<B: Batch> AckQueue<B> {
    /// An empty queue whose first batch gets `first_seq`.
    pub fn new(first_seq: u64, max_batches: usize, max_bytes: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            bytes: 0,
            next_seq: first_seq,
            max_batches: max_batches.max(1),
            max_bytes,
            dropped: 0,
        }
    }

    /// A queue with the default limits and a random first `seq`, below 2^62
    /// so that it never wraps and fits a signed 64-bit column.
    pub fn with_random_start() -> Self {
        Self::new(
            rand::random::<u64>() >> 2,
            B::DEFAULT_MAX_BATCHES,
            B::DEFAULT_MAX_BYTES,
        )
    }

    /// Queue `items` as the next batch and return it (to send now). No
    /// items make no batch.
    pub fn push(&mut self, items: Vec<B::Item>) -> Option<B> {
        if items.is_empty() {
            return None;
        }
        let batch = B::new(self.next_seq, items);
        self.next_seq += 1;
        let size = batch.estimated_size();
        let mut dropped = 0usize;
        while !self.batches.is_empty()
            && (self.batches.len() >= self.max_batches || self.bytes + size > self.max_bytes)
        {
            if let Some((old, old_size)) = self.batches.pop_front() {
                self.bytes -= old_size;
                dropped += old.item_count();
            }
        }
        if dropped > 0 {
            self.dropped += dropped as u64;
            tracing::warn!(
                dropped,
                dropped_since_start = self.dropped,
                items = B::ITEMS,
                "queue full (server unreachable or not acknowledging); dropped the oldest unacknowledged items"
            );
        }
        self.bytes += size;
        self.batches.push_back((batch.clone(), size));
        Some(batch)
    }

    /// The server stored batch `seq`: forget it. Unknown `seq`s (already
    /// acknowledged, dropped, or of another process) are ignored.
    pub fn ack(&mut self, seq: u64) {
        if let Some(index) = self.batches.iter().position(|(b, _)| b.seq() == seq)
            && let Some((_, size)) = self.batches.remove(index)
        {
            self.bytes -= size;
        }
    }

    /// Every unacknowledged batch, oldest first: to resend after `Welcome`.
    pub fn unacked(&self) -> impl Iterator<Item = &B> {
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

    /// Items dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
