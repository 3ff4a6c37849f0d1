//! Group commit for agent writes.
//!
//! Every start and result an agent reports must be on disk before it is
//! acknowledged, and with `synchronous=FULL` each transaction costs an fsync.
//! With hundreds of agents finishing at once, one transaction each would
//! queue them behind each other's fsyncs. This task takes whatever writes are
//! waiting, commits them in one transaction, and answers each writer: the
//! batch grows exactly when the disk is the bottleneck.

use operon_store::{AgentWrite, Store};
use tokio::sync::{mpsc, oneshot};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<bool, String>>;

#[derive(Clone)]
pub struct AgentWriter {
    tx: mpsc::Sender<(AgentWrite, Reply)>,
}

impl AgentWriter {
    pub fn spawn(store: Store) -> AgentWriter {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(commit_loop(store, rx));
        AgentWriter { tx }
    }

    /// Persist one write; resolves once it is committed. Returns whether it
    /// changed anything (false for duplicates).
    pub async fn write(&self, write: AgentWrite) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((write, reply))
            .await
            .map_err(|_| "the store writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the store writer has stopped".to_string())?
    }
}

async fn commit_loop(store: Store, mut rx: mpsc::Receiver<(AgentWrite, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<AgentWrite>, Vec<Reply>) = batch.into_iter().unzip();
        match store.apply_agent_writes(&writes).await {
            Ok(changed) => {
                for (reply, changed) in replies.into_iter().zip(changed) {
                    let _ = reply.send(Ok(changed));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = writes.len(), "committing agent writes failed");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
