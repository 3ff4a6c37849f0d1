//! Inventory records: the items each node reported, per kind, and what a
//! delta changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One stored inventory item of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRow {
    pub node_id: String,
    pub kind: String,
    pub key: String,
    pub attributes: BTreeMap<String, String>,
    /// When this item last changed (Unix ms).
    pub updated_at: i64,
}

/// What applying a delta changed, as item keys, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryChange {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
}

impl InventoryChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// Why a delta was not applied (nothing was written): the agent must send
/// its whole set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryRefusal {
    /// The delta's `base` is not the digest held (`held`; `None`: nothing held).
    BaseMismatch { held: Option<String> },
    /// Applied, the set's digest would not be the one the agent announced.
    DigestMismatch { announced: String, computed: String },
}
