//! Persistence of the event bus.
//!
//! The delivery outbox is the heart of it: accepting a batch of events writes
//! the events *and* one delivery row per (event, matching rule target) in one
//! transaction, so an acknowledged event can never lose a delivery, whatever
//! crashes afterwards. A delivery row lives until it succeeds (deleted) or is
//! exhausted (moved to the dead letters, keeping its id, so a redrive carries
//! the same id and receivers can deduplicate).
//!
//! The store does not interpret patterns, targets or event bodies: the
//! server owns those shapes and keeps them here as JSON text.

use serde::{Deserialize, Serialize};

/// An event bus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bus {
    pub name: String,
    pub created_at: i64,
}

/// An event to accept, with the deliveries its matching rules need.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub bus: String,
    /// The envelope as JSON text.
    pub body: String,
    pub ingested_at: i64,
    pub deliveries: Vec<NewDelivery>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub rule: String,
    pub target_id: String,
}

/// A stored event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub bus: String,
    pub body: String,
    pub ingested_at: i64,
}

/// A rule. `targets` is the server's JSON array of target specifications.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub name: String,
    pub bus: String,
    pub description: Option<String>,
    pub pattern: Option<String>,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub enabled: bool,
    pub targets: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_fired_at: Option<i64>,
    /// Who put the rule last; targets without a role act as this principal.
    #[serde(default)]
    pub author: Option<String>,
}

/// A delivery claimed for an attempt, with its event.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub rule: String,
    pub target_id: String,
    pub attempts: i64,
    pub created_at: i64,
    pub event: StoredEvent,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered {
        id: String,
    },
    Retry {
        id: String,
        attempts: i64,
        next_attempt_at: i64,
        error: String,
    },
    Dead {
        id: String,
        attempts: i64,
        error: String,
        at: i64,
    },
}

/// A delivery that exhausted its retry policy.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub rule: String,
    pub target_id: String,
    pub attempts: i64,
    pub last_error: String,
    pub created_at: i64,
    pub failed_at: i64,
    pub event: StoredEvent,
}

/// An inbound webhook. The secret is sealed by the server, never in clear.
#[derive(Debug, Clone, Serialize)]
pub struct InboundWebhook {
    pub name: String,
    pub bus: String,
    #[serde(skip_serializing)]
    pub secret_sealed: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Archive {
    pub name: String,
    pub bus: String,
    pub pattern: Option<String>,
    pub retention_days: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Replay {
    pub name: String,
    pub archive: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub rules: Vec<String>,
    pub state: String,
    pub events_replayed: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}
