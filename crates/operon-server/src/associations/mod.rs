//! State Manager: associations keep a desired-state document applied to the
//! nodes a target selects; compliance is what each node looks like against
//! them.
//!
//! ```text
//! service.rs  AssociationService: create (applied at once unless it waits for
//!             its schedule), update (a new version, applied), get, list,
//!             delete, run now (apply or check); compliance list and summary;
//!             start_run, the one way a run starts (through the commands
//!             service, as the actor association/NAME acting as its role or
//!             author, authorized per node at that moment)
//! runner.rs   the loop that keeps them applied (schedule, new default document
//!             version, nodes that join; the `associations` lease), compliance
//!             from results and drift reports, `operon.state` events
//! http.rs     /v1/associations, /v1/compliance
//! ```
//!
//! The document format and its rules are the pure `operon-state` crate; the
//! agent applies resources natively (`operon-agent`'s state engine), so a
//! run is a command whose one step carries an `operon_proto::StateStep`.

pub mod http;
pub mod runner;
pub mod service;

use crate::AppState;

impl AppState {
    pub(crate) fn associations(&self) -> service::AssociationService<'_> {
        service::AssociationService { state: self }
    }
}
