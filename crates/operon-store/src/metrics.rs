//! Metric records: series (a node's metric with its dimensions), the
//! batches agents send, rollups and retention.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One validated datapoint to store.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    pub unit: Option<String>,
    /// Unix ms.
    pub at: i64,
    pub value: f64,
}

/// One agent batch: stored whole, once per `(node_id, seq)` (among the
/// node's recent seqs).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricBatchWrite {
    pub node_id: String,
    pub seq: u64,
    /// When the server received it (Unix ms).
    pub received_at: i64,
    pub samples: Vec<MetricSample>,
}

/// A stored series and its latest value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    pub id: i64,
    pub node_id: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    pub unit: Option<String>,
    pub last_at: i64,
    pub last_value: f64,
}

/// Which resolution of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

impl Resolution {
    /// The width of one stored bucket, in ms (raw points: 0, no bucket).
    pub fn bucket_ms(self) -> i64 {
        match self {
            Resolution::Raw => 0,
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::Minute => "1m",
            Resolution::Hour => "1h",
        }
    }
}

/// One rollup bucket: what the raw points in `[bucket, bucket + width)` were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricRollup {
    /// Start of the bucket (Unix ms).
    pub bucket: i64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// What one pruning step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneStep {
    pub deleted: u64,
    /// The first series id of the next step; `None`: every series was done.
    pub next: Option<i64>,
}
