//! Group commit for accepted events.
//!
//! PutEvents answers only after its events and their deliveries are on
//! disk, and with `synchronous=FULL` every transaction costs an fsync. This
//! task commits whatever batches are waiting in one transaction and then
//! answers each request, so concurrent producers share fsyncs: the batch
//! grows exactly when the disk is the bottleneck.

use operon_store::{AuditEntry, NewEvent, Store};

use crate::audit::AuditLog;
use tokio::sync::{mpsc, oneshot};

/// Most events committed in one transaction.
const MAX_EVENTS_PER_COMMIT: usize = 4096;

type Reply = oneshot::Sender<Result<(), String>>;

/// Events to commit, with the audit record of the call that put them.
type Batch = (Vec<NewEvent>, Option<AuditEntry>, Reply);

#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<Batch>,
}

impl EventWriter {
    pub fn spawn(store: Store, audit: AuditLog) -> EventWriter {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(commit_loop(store, audit, rx));
        EventWriter { tx }
    }

    /// Persist events and their deliveries, and the audit record of the call
    /// that put them, in one transaction; resolves once committed.
    pub async fn write(
        &self,
        events: Vec<NewEvent>,
        audit: Option<AuditEntry>,
    ) -> Result<(), String> {
        if events.is_empty() && audit.is_none() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((events, audit, reply))
            .await
            .map_err(|_| "the event writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the event writer has stopped".to_string())?
    }
}

async fn commit_loop(store: Store, audit_log: AuditLog, mut rx: mpsc::Receiver<Batch>) {
    while let Some((first, record, reply)) = rx.recv().await {
        let mut events = first;
        let mut audit: Vec<AuditEntry> = record.into_iter().collect();
        let mut replies = vec![reply];
        while events.len() < MAX_EVENTS_PER_COMMIT {
            match rx.try_recv() {
                Ok((more, record, reply)) => {
                    events.extend(more);
                    audit.extend(record);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let result = store
            .put_events_audited(&events, &audit, crate::now_millis())
            .await
            .map(|(_, head)| {
                if let Some(head) = head {
                    audit_log.advance_head(&head);
                }
            })
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, events = events.len(), "committing events failed");
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}
