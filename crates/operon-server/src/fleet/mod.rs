//! The fleet: nodes, their enrollment and credentials, and agent sessions.
//!
//! - [`service`]: [`FleetService`], the only code that changes nodes and
//!   enrollment tokens (tags, revocation) and the node views with status;
//! - [`http`]: `/v1/nodes`, `/v1/enroll-tokens`, `/metrics`;
//! - [`agent_ws`]: the agent endpoints (enrollment, the WebSocket session);
//! - [`hub`]: which agents are connected now, and sending them frames;
//! - [`rotation`]: node credential rotation with no lock-out window.

pub(crate) mod agent_ws;
pub(crate) mod http;
pub(crate) mod hub;
pub(crate) mod rotation;
pub(crate) mod service;

pub(crate) use service::FleetService;

use crate::AppState;

impl AppState {
    /// The fleet service over this server's store, hub and audit trail.
    pub(crate) fn fleet(&self) -> FleetService<'_> {
        FleetService {
            store: &self.store,
            hub: &self.hub,
            coordination: &self.coordination,
            audit: &self.audit,
        }
    }
}
