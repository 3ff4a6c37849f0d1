//! Sessions: a terminal, a command with a terminal, or TCP port forwarding
//! on a node, relayed over the agent's outbound link; gated per node,
//! audited, recorded.
//!
//! ```text
//! client (CLI, browser)                server                          agent
//!   GET /v1/sessions/connect ──▶ http.rs: SessionService::open
//!                                  (check, authorize per node, row, audit)
//!   ◀══ WebSocket ══▶ pump.rs ◀── relay.rs (agent channel -> session) ◀══ agent link
//!                        │          hub: channel queue, after commands
//!                        └── recording.rs: asciicast v2, gzip chunks sealed
//!                            by the key ring, SHA-256 in the audit trail
//! ```
//!
//! - [`limits`]: the request checked (pure): kinds, accounts, sizes, the
//!   durations within the server's limits (a session may ask for less,
//!   never more).
//! - [`service`]: open (authorize, record, audit), end (row, then audit
//!   with the recording's digest), list, get, terminate, the recording
//!   (checked against the audit trail), stale sessions.
//! - [`relay`]: which agent channel belongs to which live session.
//! - [`pump`]: one live session: frames both ways with end-to-end windows
//!   (`operon_proto::session`), idle and maximum durations, terminate.
//! - [`recording`]: asciicast v2 in sealed gzip chunks (pure).
//!
//! A session lives in the server process holding the agent's link; it
//! refreshes its row every few seconds, and any server ends a session whose
//! process stopped refreshing it ([`run`]).

pub mod deny;
pub mod http;
pub mod limits;
pub mod pump;
pub mod recording;
pub mod relay;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

pub use limits::SessionConfig;
pub use relay::{FromAgent, Relay};
pub use service::SessionService;

use crate::{AppState, now_millis};

/// A session not refreshed for this long has lost its relay.
const STALE_AFTER: Duration = Duration::from_secs(90);
/// How often stale sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

impl AppState {
    /// The sessions service.
    pub fn sessions(&self) -> SessionService<'_> {
        SessionService { state: self }
    }
}

/// End the sessions whose relaying process stopped (spawned with the
/// server's background tasks).
pub async fn run(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let before = now_millis() - STALE_AFTER.as_millis() as i64;
        match state.sessions().end_stale(before).await {
            Ok(0) => {}
            Ok(ended) => tracing::warn!(ended, "ended sessions whose relaying server stopped"),
            Err(e) => tracing::warn!(error = %e.message, "looking for stale sessions failed"),
        }
    }
}
