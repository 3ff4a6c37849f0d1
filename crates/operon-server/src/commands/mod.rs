//! Run Command: commands sent to many nodes under rate control.
//!
//! - [`targets`]: the one target grammar and node selection (pure);
//! - [`service`]: [`CommandService`], the only creator and canceller of
//!   commands, used by the API, rule targets and runbook tasks alike;
//! - [`http`]: the thin `/v1/commands` edge.
//!
//! Dispatch (which invocation starts when) is `crate::dispatcher` over the
//! pure planner `crate::rate`.

pub mod http;
pub mod service;
pub mod targets;

pub use service::{CommandId, CommandService, DEFAULT_OUTPUT_CAP, NewCommand, Requester};
pub use targets::{TargetSpec, narrow};

use crate::AppState;

impl AppState {
    /// The commands service over this server's store, hub and audit trail.
    pub(crate) fn commands(&self) -> CommandService<'_> {
        CommandService {
            store: &self.store,
            hub: &self.hub,
            coordination: &self.coordination,
            audit: &self.audit,
            seal: &self.events.key,
            output_cap_bytes: self.config.output_cap_bytes,
        }
    }
}

#[cfg(test)]
mod tests;
