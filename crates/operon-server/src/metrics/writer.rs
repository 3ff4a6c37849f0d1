//! Group commit for metric batches, like [`crate::writer`] for results:
//! whatever batches are waiting are stored in one transaction (one fsync),
//! then each sender is answered, so an agent's batch is acknowledged only
//! once it is on disk and a thousand agents reporting at once cost a few
//! transactions, not a thousand.

use operon_store::{MetricBatchWrite, Store};
use tokio::sync::{mpsc, oneshot};

/// Most batches committed in one transaction.
const MAX_BATCHES: usize = 256;

type Reply = oneshot::Sender<Result<bool, String>>;

#[derive(Clone)]
pub struct MetricsWriter {
    tx: mpsc::Sender<(MetricBatchWrite, Reply)>,
}

impl MetricsWriter {
    pub fn spawn(store: Store) -> MetricsWriter {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(commit_loop(store, rx));
        MetricsWriter { tx }
    }

    /// Store one batch; resolves once it is committed. `false`: its seq was
    /// already stored for the node (nothing written).
    pub async fn write(&self, batch: MetricBatchWrite) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((batch, reply))
            .await
            .map_err(|_| "the metrics writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the metrics writer has stopped".to_string())?
    }
}

async fn commit_loop(store: Store, mut rx: mpsc::Receiver<(MetricBatchWrite, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCHES {
            match rx.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<MetricBatchWrite>, Vec<Reply>) = waiting.into_iter().unzip();
        match store.write_metric_batches(&batches).await {
            Ok(stored) => {
                for (reply, stored) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(), "committing metric batches failed");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
