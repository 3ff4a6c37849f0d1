//! Alarm records: definitions (the service's JSON spec, versioned by a
//! counter), the current state of each alarm instance, and the history of
//! state changes, which doubles as the outbox of their events.

use serde::{Deserialize, Serialize};

/// An alarm as stored: its settings are the service's JSON (`spec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    pub name: String,
    /// 1 at creation, +1 per update.
    pub version: i64,
    pub spec: serde_json::Value,
    /// Who wrote this version.
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The state of one alarm instance: the alarm itself (`node_id` empty) or
/// its instance for one node (an alarm templated over nodes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmStateRow {
    pub alarm: String,
    pub node_id: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub reason: String,
    /// Machine-readable detail of the reason (JSON).
    pub reason_data: Option<serde_json::Value>,
    /// When the state last changed.
    pub updated_at: i64,
}

/// One state change of an alarm instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmHistoryRow {
    pub id: i64,
    pub alarm: String,
    pub node_id: String,
    pub at: i64,
    /// `None` for the first state of an instance.
    pub previous: Option<AlarmStateRow>,
    pub state: String,
    pub reason: String,
    pub reason_data: Option<serde_json::Value>,
    /// Whether its event is on the bus.
    pub published: bool,
}
