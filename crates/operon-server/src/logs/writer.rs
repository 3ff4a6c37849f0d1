//! Log batches through the group-commit [`BatchWriter`].

use operon_store::{LogBatchWrite, Store, StoreError};

use crate::batch_writer::{BatchWrite, BatchWriter};

pub type LogsWriter = BatchWriter<LogBatchWrite>;

impl BatchWrite for LogBatchWrite {
    const WHAT: &'static str = "log batches";
    const MAX_BATCHES: usize = 128;

    async fn commit(store: &Store, batches: &[Self]) -> Result<Vec<bool>, StoreError> {
        store.write_log_batches(batches).await
    }
}
