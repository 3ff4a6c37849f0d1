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

/// One alarm episode of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub alarm: String,
    pub node_id: String,
    /// `open` (in ALARM), `recovered` (back to OK) or `resolved` (closed by a person).
    pub status: String,
    /// The alarm's reason when it opened.
    pub reason: String,
    pub opened_at: i64,
    pub recovered_at: Option<i64>,
    pub escalated_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub incident_id: String,
    pub seq: i64,
    pub at: i64,
    /// `detected`, `state`, `recovered`, `heal_started`, `heal_finished`,
    /// `confirmed`, `heal_failed`, `escalated`, `acknowledged`, `resolved`, `note`.
    pub kind: String,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

/// A timeline entry written together with another change (a heal run's
/// update), so no reader sees the change without it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncidentEvent {
    pub at: i64,
    pub kind: String,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

/// Which incidents to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    pub status: Option<String>,
    pub alarm: Option<String>,
    pub node_id: Option<String>,
    pub since: Option<i64>,
    pub limit: i64,
}

/// A heal as stored: its settings are the service's JSON (`spec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealRecord {
    pub name: String,
    pub version: i64,
    pub spec: serde_json::Value,
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One attempt of a heal on one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealRun {
    pub id: String,
    pub heal: String,
    pub incident_id: String,
    pub alarm: String,
    pub node_id: String,
    pub attempt: i64,
    /// `starting`, `running`, `confirming`, `confirmed`, `failed`.
    pub status: String,
    pub execution_id: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub detail: Option<String>,
}
