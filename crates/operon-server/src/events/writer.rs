//! Group commit for accepted events.
//!
//! PutEvents answers only after its events and their deliveries are on
//! disk, and with `synchronous=FULL` every transaction costs an fsync. This
//! task commits whatever batches are waiting in one transaction and then
//! answers each request, so concurrent producers share fsyncs: the batch
//! grows exactly when the disk is the bottleneck.

use operon_store::{NewEvent, Store};
use tokio::sync::{mpsc, oneshot};

/// Most events committed in one transaction.
const MAX_EVENTS_PER_COMMIT: usize = 4096;

type Reply = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<(Vec<NewEvent>, Reply)>,
}

impl EventWriter {
    pub fn spawn(store: Store) -> EventWriter {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(commit_loop(store, rx));
        EventWriter { tx }
    }

    /// Persist events and their deliveries; resolves once committed.
    pub async fn write(&self, events: Vec<NewEvent>) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((events, reply))
            .await
            .map_err(|_| "the event writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the event writer has stopped".to_string())?
    }
}

async fn commit_loop(store: Store, mut rx: mpsc::Receiver<(Vec<NewEvent>, Reply)>) {
    while let Some((first, reply)) = rx.recv().await {
        let mut events = first;
        let mut replies = vec![reply];
        while events.len() < MAX_EVENTS_PER_COMMIT {
            match rx.try_recv() {
                Ok((more, reply)) => {
                    events.extend(more);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let result = store
            .put_events(&events)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, events = events.len(), "committing events failed");
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}
