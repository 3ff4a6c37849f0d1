//! The timer wheel: fires workflow timers (Wait states, Retry back-off,
//! TimeoutSeconds, HeartbeatSeconds) at their persisted due times.
//!
//! The heap is only a cache of the `workflow_timers` table: the runner adds a
//! timer after the step that asked for it is committed, and after a restart
//! the heap is rebuilt from the table, so a timer that fell due while the
//! server was down fires at once. Firing sends `TimerFired` to the runner,
//! whose step deletes the row; a timer fired twice is ignored by the engine.
//!
//! The wheel fires only while this process holds the lease [`TIMERS_LEASE`],
//! renewed on every pass (passes are at most a second apart). A process that
//! takes it over from another reloads the heap from the table first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use operon_asl::Event;
use tokio::sync::Notify;

use super::Msg;
use crate::{AppState, now_millis};

/// The lease of the one process whose wheel fires timers.
pub(crate) const TIMERS_LEASE: &str = "workflows.timers";
/// How long the wheel's lease lasts (passes are at most a second apart).
const TIMERS_LEASE_MS: i64 = 15_000;

#[derive(Default)]
pub struct Timers {
    heap: Mutex<BinaryHeap<Reverse<(i64, String, i64)>>>,
    wake: Notify,
}

impl Timers {
    /// Fire `TimerFired { timer_id }` for `execution_id` at `due_at` (ms).
    pub fn schedule(&self, due_at: i64, execution_id: String, timer_id: i64) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = heap.peek().is_none_or(|Reverse((d, _, _))| due_at < *d);
        heap.push(Reverse((due_at, execution_id, timer_id)));
        drop(heap);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Timers due at `now`, removed from the heap; and the next due time.
    fn take_due(&self, now: i64) -> (Vec<(String, i64)>, Option<i64>) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse((d, _, _))| *d <= now) {
            if let Some(Reverse((_, execution_id, timer_id))) = heap.pop() {
                due.push((execution_id, timer_id));
            }
        }
        let next = heap.peek().map(|Reverse((d, _, _))| *d);
        (due, next)
    }
}

pub async fn run(state: Arc<AppState>) {
    let timers = &state.workflows.timers;
    let coordination = &state.coordination;
    // The epoch of the lease while held; taken first at start, when
    // `resume` loads the heap.
    let mut held = Some(
        coordination
            .acquire(TIMERS_LEASE, TIMERS_LEASE_MS)
            .await
            .epoch,
    );
    loop {
        match coordination.try_lease(TIMERS_LEASE, TIMERS_LEASE_MS) {
            Some(lease) if held == Some(lease.epoch) => {}
            Some(lease) => {
                // Taken over: timers added by another process are only in
                // the table (a timer fired twice is ignored).
                tracing::info!(epoch = lease.epoch, "the timer wheel holds its lease");
                match state.store.workflow_timers().await {
                    Ok(rows) => {
                        for t in rows {
                            timers.schedule(t.due_at, t.execution_id, t.timer_id);
                        }
                        held = Some(lease.epoch);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "loading workflow timers failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            None => {
                if held.take().is_some() {
                    tracing::warn!("the timer wheel lost its lease; standing by");
                }
                tokio::time::sleep(Duration::from_millis(TIMERS_LEASE_MS as u64 / 3)).await;
                continue;
            }
        }
        let (due, next) = timers.take_due(now_millis());
        for (execution_id, timer_id) in due {
            let msg = Msg::Event {
                execution_id,
                event: Event::TimerFired {
                    id: timer_id as u64,
                },
                decision: None,
                reply: None,
            };
            if state.workflows.tx.send(msg).await.is_err() {
                return;
            }
        }
        let wait = next.map_or(Duration::from_secs(1), |at| {
            Duration::from_millis((at - now_millis()).clamp(0, 1000) as u64)
        });
        tokio::select! {
            _ = timers.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
