//! Group commit for log batches, like the metrics' writer: whatever batches
//! are waiting are stored in one transaction, then each sender is answered,
//! so a batch is acknowledged only once it is on disk.

use operon_store::{LogBatchWrite, Store};
use tokio::sync::{mpsc, oneshot};

/// Most batches committed in one transaction.
const MAX_BATCHES: usize = 128;

type Reply = oneshot::Sender<Result<bool, String>>;

#[derive(Clone)]
pub struct LogsWriter {
    tx: mpsc::Sender<(LogBatchWrite, Reply)>,
}

impl LogsWriter {
    pub fn spawn(store: Store) -> LogsWriter {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(commit_loop(store, rx));
        LogsWriter { tx }
    }

    /// Store one batch; resolves once it is committed. `false`: its seq was
    /// already stored for the node (nothing written).
    pub async fn write(&self, batch: LogBatchWrite) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((batch, reply))
            .await
            .map_err(|_| "the logs writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the logs writer has stopped".to_string())?
    }
}

async fn commit_loop(store: Store, mut rx: mpsc::Receiver<(LogBatchWrite, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCHES {
            match rx.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<LogBatchWrite>, Vec<Reply>) = waiting.into_iter().unzip();
        match store.write_log_batches(&batches).await {
            Ok(stored) => {
                for (reply, stored) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(), "committing log batches failed");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
