//! The registry of connected agents.
//!
//! Each live WebSocket session registers a channel here; the dispatcher and
//! the API send [`ServerMessage`]s to a node through it. A node has at most one
//! session: a newer connection replaces (and closes) the older one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use operon_proto::ServerMessage;
use tokio::sync::mpsc;

/// What a session's writer task is asked to do.
#[derive(Debug)]
pub enum Outbound {
    Message(ServerMessage),
    /// A session channel frame ([`operon_proto::ChannelFrame`], encoded).
    Binary(Vec<u8>),
    /// Close the connection with this reason.
    Close(String),
}

struct Session {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    /// Session channels' frames and their control messages, in order, sent
    /// after everything on `tx` (so they never delay commands or
    /// heartbeats). Unbounded, but each channel's window bounds what it
    /// holds.
    channels: mpsc::UnboundedSender<Outbound>,
    last_heartbeat: Instant,
    /// Wall-clock time of the last heartbeat, in Unix milliseconds.
    last_heartbeat_millis: i64,
    /// Optional protocol frames the agent announced in its `Hello`.
    capabilities: Vec<String>,
}

pub struct Hub {
    sessions: Mutex<HashMap<String, Session>>,
    next_id: AtomicU64,
    /// A node is online while its last heartbeat is younger than this.
    online_window: Duration,
}

impl Hub {
    pub fn new(online_window: Duration) -> Hub {
        Hub {
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            online_window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every critical section is a single insert/remove/lookup).
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a session for a node; returns its id. An older session of the
    /// same node is told to close.
    pub fn register(
        &self,
        node_id: &str,
        tx: mpsc::Sender<Outbound>,
        channels: mpsc::UnboundedSender<Outbound>,
        capabilities: Vec<String>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let old = self.lock().insert(
            node_id.to_string(),
            Session {
                id,
                tx,
                channels,
                last_heartbeat: Instant::now(),
                last_heartbeat_millis: crate::now_millis(),
                capabilities,
            },
        );
        if let Some(old) = old {
            let _ = old
                .tx
                .try_send(Outbound::Close("replaced by a newer connection".into()));
        }
        id
    }

    /// Remove a session, unless a newer one already replaced it.
    pub fn unregister(&self, node_id: &str, session_id: u64) {
        let mut sessions = self.lock();
        if sessions.get(node_id).is_some_and(|s| s.id == session_id) {
            sessions.remove(node_id);
        }
    }

    pub fn heartbeat(&self, node_id: &str) {
        if let Some(session) = self.lock().get_mut(node_id) {
            session.last_heartbeat = Instant::now();
            session.last_heartbeat_millis = crate::now_millis();
        }
    }

    /// When a connected node last sent a heartbeat (Unix milliseconds). The
    /// store records `last_seen` only on connect and disconnect, to keep
    /// heartbeats off the disk.
    pub fn last_heartbeat_millis(&self, node_id: &str) -> Option<i64> {
        self.lock().get(node_id).map(|s| s.last_heartbeat_millis)
    }

    /// Whether the node's live session announced `capability`; `None` if the
    /// node has no session.
    pub fn supports(&self, node_id: &str, capability: &str) -> Option<bool> {
        self.lock()
            .get(node_id)
            .filter(|s| !s.tx.is_closed())
            .map(|s| s.capabilities.iter().any(|c| c == capability))
    }

    pub fn is_online(&self, node_id: &str) -> bool {
        self.lock()
            .get(node_id)
            .is_some_and(|s| s.last_heartbeat.elapsed() < self.online_window && !s.tx.is_closed())
    }

    /// Queue a message for a node. False if the node has no session.
    pub fn send(&self, node_id: &str, message: ServerMessage) -> bool {
        let tx = match self.lock().get(node_id) {
            Some(session) => session.tx.clone(),
            None => return false,
        };
        // The writer drains quickly; a full queue means a stuck link, which the
        // heartbeat check will drop. Messages are all resent on reconnect.
        tx.try_send(Outbound::Message(message)).is_ok()
    }

    /// Queue a session channel frame or message for a node's live session
    /// `session_id` (the one its channel was opened on). False if that
    /// session is gone.
    pub fn send_channel(&self, node_id: &str, session_id: u64, out: Outbound) -> bool {
        match self.lock().get(node_id) {
            Some(session) if session.id == session_id => session.channels.send(out).is_ok(),
            _ => false,
        }
    }

    /// The id of a node's live session, if it announced `capability`.
    pub fn session_with(&self, node_id: &str, capability: &str) -> Option<Result<u64, ()>> {
        self.lock()
            .get(node_id)
            .filter(|s| !s.tx.is_closed())
            .map(|s| {
                if s.capabilities.iter().any(|c| c == capability) {
                    Ok(s.id)
                } else {
                    Err(())
                }
            })
    }

    /// Drop a node's connection (revocation).
    pub fn disconnect(&self, node_id: &str, reason: &str) {
        if let Some(session) = self.lock().remove(node_id) {
            let _ = session.tx.try_send(Outbound::Close(reason.to_string()));
        }
    }

    /// Node ids and session ids of the live sessions that announced
    /// `capability`.
    pub fn sessions_with(&self, capability: &str) -> Vec<(String, u64)> {
        self.lock()
            .iter()
            .filter(|(_, s)| !s.tx.is_closed() && s.capabilities.iter().any(|c| c == capability))
            .map(|(node_id, s)| (node_id.clone(), s.id))
            .collect()
    }

    pub fn connected_count(&self) -> usize {
        self.lock().len()
    }
}
