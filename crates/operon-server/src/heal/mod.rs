//! Auto-healing and incidents.
//!
//! ```text
//! service.rs  HealService (put, get, list, delete) and IncidentService
//!             (list, get, acknowledge, resolve)
//! runner.rs   the healing loop (the `heals` lease): attempts started as the
//!             heal's role or author, confirmation by the alarm returning to
//!             OK, rate limit, cooldown and escalation; `operon.heal` events
//! http.rs     /v1/heals, /v1/incidents
//! ```
//!
//! Incidents are opened and recovered by the alarm store in the same
//! transaction as the alarm's state change (`AlarmStore::transition_alarm`),
//! so an episode never exists without its incident. An attempt is a row
//! written before its execution starts, and the execution is named after
//! it: after a crash the loop finds the row and the execution, and one
//! episode's attempt never runs twice.

pub mod http;
pub mod runner;
pub mod service;

use crate::AppState;

impl AppState {
    pub(crate) fn heals(&self) -> service::HealService<'_> {
        service::HealService { state: self }
    }

    pub(crate) fn incidents(&self) -> service::IncidentService<'_> {
        service::IncidentService { state: self }
    }
}
