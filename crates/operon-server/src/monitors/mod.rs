//! Monitors: health checks and log watchers the agents of targeted nodes run
//! (issue 14), reporting their results as metrics, and logs they ship
//! (kind `shipping`, in `MonitorSet.shipped`; lines go to [`crate::logs`]).
//!
//! ```text
//! validate.rs  the rules a definition must meet (pure), and its protocol form
//! service.rs   MonitorService: put (create or replace, versioned), list, get
//!              (with the nodes it reaches), delete; the push loop
//! http.rs      /v1/monitors
//! ```
//!
//! **Push.** A node whose agent announced `CAPABILITY_MONITORS` is sent its
//! whole `MonitorSet` after every `Welcome` and whenever it changes: a
//! definition put or deleted, a node's tags changed, users, roles or
//! policies changed, or (checked every [`service::TICK`]) its inventory moved
//! it in or out of a target. The loop runs in every server process for that process's
//! sessions, and sends a set only when it differs from what that session
//! last got.
//!
//! **Authorization at push time.** A monitor is pushed as the actor
//! `monitor/NAME` acting as its role (or its author), evaluated per node with
//! the node's tags: `monitors:Apply` on the node, and for a command probe
//! also `commands:Run` with `operon:RunAsUser` = its `run_as` (running a
//! command is what it does); for a shipped log also `logs:Ship` (sending a
//! file's lines to the server is reading it). A refused monitor is left out of that node's
//! set and the refusal is audited when the set is sent.

pub mod http;
pub mod service;
pub mod validate;

use crate::AppState;

impl AppState {
    pub(crate) fn monitors(&self) -> service::MonitorService<'_> {
        service::MonitorService { state: self }
    }
}
