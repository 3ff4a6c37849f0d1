//! The relay's registry: which agent channel belongs to which live session,
//! and how to reach a live session to end it.
//!
//! Channel numbers are unique in this process (one counter for every agent
//! link), so a frame is routed by its number alone, after checking it came
//! from the node the channel was opened on. A frame for a channel this
//! process does not know (a session that just ended) is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use operon_proto::ChannelFrame;
use tokio::sync::{mpsc, watch};

/// What an agent said about one channel.
#[derive(Debug)]
pub enum FromAgent {
    Frame(ChannelFrame),
    Opened,
    Closed {
        exit_code: Option<i32>,
        error: Option<String>,
    },
    /// The agent's link dropped: every channel on it is gone.
    LinkLost,
}

struct Route {
    node_id: String,
    /// The hub's id of the agent link the channel was opened on.
    link: u64,
    tx: mpsc::UnboundedSender<(u32, FromAgent)>,
}

/// Live sessions and their agent channels.
#[derive(Default)]
pub struct Relay {
    next_channel: AtomicU32,
    routes: Mutex<HashMap<u32, Route>>,
    /// Session id -> why it must end (`None` while nothing asked).
    live: Mutex<HashMap<String, watch::Sender<Option<EndRequest>>>>,
}

/// Why a live session is asked to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRequest {
    /// `terminated` or `failed`.
    pub status: &'static str,
    pub reason: String,
}

impl Relay {
    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Route>> {
        // Every critical section is one map operation: a panic cannot leave
        // the map half-changed.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<EndRequest>>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new channel number on `node_id`'s link `link`, whose frames go to `tx`.
    pub fn open_channel(
        &self,
        node_id: &str,
        link: u64,
        tx: mpsc::UnboundedSender<(u32, FromAgent)>,
    ) -> u32 {
        let channel = self.next_channel.fetch_add(1, Ordering::Relaxed);
        self.routes().insert(
            channel,
            Route {
                node_id: node_id.to_string(),
                link,
                tx,
            },
        );
        channel
    }

    pub fn forget_channel(&self, channel: u32) {
        self.routes().remove(&channel);
    }

    /// A binary frame from `node_id`'s agent.
    pub fn on_agent_frame(&self, node_id: &str, bytes: &[u8]) {
        match ChannelFrame::decode(bytes) {
            Ok(frame) => {
                let channel = frame.channel();
                self.on_agent(node_id, channel, FromAgent::Frame(frame));
            }
            Err(e) => tracing::warn!(%node_id, error = %e, "ignoring a malformed channel frame"),
        }
    }

    /// A message about `channel` from `node_id`'s agent.
    pub fn on_agent(&self, node_id: &str, channel: u32, event: FromAgent) {
        let routes = self.routes();
        match routes.get(&channel) {
            Some(route) if route.node_id == node_id => {
                let _ = route.tx.send((channel, event));
            }
            Some(_) => {
                tracing::warn!(%node_id, channel, "a channel frame from a node the channel is not on; dropped")
            }
            None => {} // the session already ended
        }
    }

    /// `node_id`'s link `link` ended: its channels are gone.
    pub fn link_ended(&self, node_id: &str, link: u64) {
        let mut routes = self.routes();
        routes.retain(|channel, route| {
            let on_link = route.node_id == node_id && route.link == link;
            if on_link {
                let _ = route.tx.send((*channel, FromAgent::LinkLost));
            }
            !on_link
        });
    }

    /// Register a live session; the receiver learns why it must end.
    pub fn register(&self, session_id: &str) -> watch::Receiver<Option<EndRequest>> {
        let (tx, rx) = watch::channel(None);
        self.live().insert(session_id.to_string(), tx);
        rx
    }

    pub fn unregister(&self, session_id: &str) {
        self.live().remove(session_id);
    }

    pub fn is_live(&self, session_id: &str) -> bool {
        self.live().contains_key(session_id)
    }

    /// Ask a session relayed here to end; false if it is not relayed here.
    pub fn terminate(&self, session_id: &str, by: &str) -> bool {
        match self.live().get(session_id) {
            Some(tx) => {
                tx.send_replace(Some(EndRequest {
                    status: "terminated",
                    reason: format!("terminated by {by}"),
                }));
                true
            }
            None => false,
        }
    }

    /// The server is stopping: end every live session, and wait (at most
    /// `wait`) until they have recorded their end.
    pub async fn shutdown(&self, wait: std::time::Duration) {
        for tx in self.live().values() {
            tx.send_replace(Some(EndRequest {
                status: "failed",
                reason: "the server stopped".into(),
            }));
        }
        let deadline = tokio::time::Instant::now() + wait;
        while self.live_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Live sessions relayed here (for the tests and the shutdown).
    pub fn live_count(&self) -> usize {
        self.live().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_reach_their_session_only_from_their_node() {
        let relay = Relay::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let channel = relay.open_channel("n1", 7, tx);
        let frame = ChannelFrame::Data {
            channel,
            bytes: b"hi".to_vec(),
        };
        relay.on_agent_frame("n2", &frame.encode());
        assert!(rx.try_recv().is_err(), "another node's frame is dropped");
        relay.on_agent_frame("n1", &frame.encode());
        assert!(
            matches!(rx.try_recv(), Ok((c, FromAgent::Frame(f))) if c == channel && f == frame)
        );
        relay.on_agent_frame("n1", &[0, 1]);
        assert!(rx.try_recv().is_err(), "a malformed frame is dropped");
        relay.forget_channel(channel);
        relay.on_agent_frame("n1", &frame.encode());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_lost_link_ends_only_its_own_channels() {
        let relay = Relay::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let old = relay.open_channel("n1", 1, tx.clone());
        let new = relay.open_channel("n1", 2, tx.clone());
        let other = relay.open_channel("n2", 1, tx);
        relay.link_ended("n1", 1);
        assert!(matches!(rx.try_recv(), Ok((c, FromAgent::LinkLost)) if c == old));
        assert!(rx.try_recv().is_err());
        relay.on_agent("n1", new, FromAgent::Opened);
        relay.on_agent("n2", other, FromAgent::Opened);
        assert!(matches!(rx.try_recv(), Ok((c, FromAgent::Opened)) if c == new));
        assert!(matches!(rx.try_recv(), Ok((c, FromAgent::Opened)) if c == other));
    }

    #[test]
    fn terminate_reaches_a_live_session() {
        let relay = Relay::default();
        assert!(!relay.terminate("s1", "bob"));
        let rx = relay.register("s1");
        assert!(relay.is_live("s1"));
        assert!(relay.terminate("s1", "bob"));
        assert_eq!(
            rx.borrow().as_ref().map(|r| r.reason.as_str()),
            Some("terminated by bob")
        );
        relay.unregister("s1");
        assert_eq!(relay.live_count(), 0);
    }
}
