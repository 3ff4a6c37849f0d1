//! Alarms: CloudWatch-style metric alarms (threshold, anomaly band,
//! forecast) on one node or one per node a target selects, and composite
//! alarms over other alarms.
//!
//! ```text
//! definition.rs  the spec checked and typed (pure)
//! evaluate.rs    one evaluation of one instance (pure; the operon-alarms
//!                crate holds M-of-N, TreatMissingData, bands and trends)
//! service.rs     AlarmService: put, get, list, history, delete, set-state;
//!                `transition`, the one way a state changes
//! runner.rs      the evaluation loop (the `alarms` lease), acting as the
//!                alarm's role or author, node by node
//! events.rs      "CloudWatch Alarm State Change" events (source
//!                operon.alarms) from the history outbox
//! http.rs        /v1/alarms
//! ```
//!
//! Invariants: a state row changes only through `transition`, which writes
//! the history row (the event's outbox entry) in the same transaction; an
//! instance exists for a node only while the alarm targets it.

pub mod definition;
pub mod evaluate;
pub mod events;
pub mod http;
pub mod runner;
pub mod service;

use crate::AppState;

impl AppState {
    pub(crate) fn alarms(&self) -> service::AlarmService<'_> {
        service::AlarmService { state: self }
    }
}
