//! Metric batches through the group-commit [`BatchWriter`].

use operon_store::{MetricBatchWrite, Store, StoreError};

use crate::batch_writer::{BatchWrite, BatchWriter};

pub type MetricsWriter = BatchWriter<MetricBatchWrite>;

impl BatchWrite for MetricBatchWrite {
    const WHAT: &'static str = "metric batches";
    const MAX_BATCHES: usize = 256;

    async fn commit(store: &Store, batches: &[Self]) -> Result<Vec<bool>, StoreError> {
        store.write_metric_batches(batches).await
    }
}
