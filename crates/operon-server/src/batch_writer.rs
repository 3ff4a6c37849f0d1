//! Group commit for batches agents push (metrics, logs), like
//! [`crate::writer`] for results: whatever batches are waiting are stored in
//! one transaction (one fsync), then each sender is answered, so an agent's
//! batch is acknowledged only once it is on disk and a thousand agents
//! reporting at once cost a few transactions, not a thousand.

use std::future::Future;
use std::marker::PhantomData;

use operon_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// A batch kind the writer stores.
pub trait BatchWrite: Send + Sync + Sized + 'static {
    /// For logs and errors: "metric batches", "log batches".
    const WHAT: &'static str;
    /// Most batches committed in one transaction.
    const MAX_BATCHES: usize;

    /// Store `batches` in one transaction; per batch, whether it was new.
    fn commit(
        store: &Store,
        batches: &[Self],
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;
}

type Reply = oneshot::Sender<Result<bool, String>>;

pub struct BatchWriter<B> {
    tx: mpsc::Sender<(B, Reply)>,
    kind: PhantomData<B>,
}

impl<B> Clone for BatchWriter<B> {
    fn clone(&self) -> Self {
        BatchWriter {
            tx: self.tx.clone(),
            kind: PhantomData,
        }
    }
}

impl<B: BatchWrite> BatchWriter<B> {
    pub fn spawn(store: Store) -> BatchWriter<B> {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(commit_loop::<B>(store, rx));
        BatchWriter {
            tx,
            kind: PhantomData,
        }
    }

    /// Store one batch; resolves once it is committed. `false`: its seq was
    /// already stored for the node (nothing written).
    pub async fn write(&self, batch: B) -> Result<bool, String> {
        let stopped = || format!("the writer of {} has stopped", B::WHAT);
        let (reply, answer) = oneshot::channel();
        self.tx.send((batch, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn commit_loop<B: BatchWrite>(store: Store, mut rx: mpsc::Receiver<(B, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < B::MAX_BATCHES {
            match rx.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<B>, Vec<Reply>) = waiting.into_iter().unzip();
        match B::commit(&store, &batches).await {
            Ok(stored) => {
                for (reply, stored) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(), what = B::WHAT, "committing batches failed");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
