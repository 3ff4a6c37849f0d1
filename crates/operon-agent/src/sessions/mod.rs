//! Session channels on the agent side: interactive terminals (a real PTY,
//! [`pty`]) and forwarded TCP connections ([`forward`]) that the server
//! opens over the link and relays to a client (see
//! [`operon_proto::session`] for the protocol).
//!
//! [`Sessions`] belongs to one link: `link.rs` hands it every
//! `ChannelOpen`, `ChannelResize`, `ChannelClose` and binary frame, and
//! writes what it produces (one ordered queue per link) as the writer's
//! lowest-priority source, so a flood of terminal output never delays
//! heartbeats or command results.
//!
//! Each channel runs as its own task. Everything a channel sends (its
//! `ChannelOpened`, data, credits, `Eof`, `ChannelClosed`) goes to the one
//! queue in the order the task produced it, so a close never overtakes the
//! data before it. The queue is unbounded but bounded in practice by the
//! windows: a channel reads its PTY or socket only while its
//! [`SendWindow`] allows, so it never has more than
//! [`operon_proto::session::INITIAL_WINDOW`] bytes unacknowledged. Data from
//! the server is counted against a [`ReceiveWindow`] here, before it is
//! queued to the task; a server going past it gets that channel closed with
//! an error.
//!
//! **Sessions do not survive a reconnect.** When the link ends, [`Sessions`]
//! is dropped: every terminal is hung up (SIGHUP to its process group,
//! SIGKILL after [`HANGUP_GRACE`]) and every forwarded socket closed. The
//! server ends the sessions on its side when the link drops.

pub use operon_proto::deny;
mod forward;
mod pty;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use operon_proto::session::{ReceiveWindow, SendWindow};
use operon_proto::{AgentMessage, ChannelFrame, ChannelOpen, ChannelTarget};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long a hung-up terminal gets between SIGHUP and SIGKILL.
pub const HANGUP_GRACE: Duration = Duration::from_secs(2);

/// What the agent's configuration says about sessions.
#[derive(Debug, Clone, Default)]
pub struct SessionSettings {
    /// A terminal for a missing account marked `create_user` may create it
    /// (`--session-create-user`).
    pub create_user_allowed: bool,
    /// Deny entries added to every forwarded connection's: the agent's own
    /// server ([`own_server_deny`]).
    pub own_server: Vec<String>,
}

/// Deny entries for the agent's own server, one per address its host
/// resolves to, on its port: a forward never makes the node a way to reach
/// the control plane from the node's side. Empty when the URL cannot be
/// read or resolved (the server's own deny list still applies).
pub async fn own_server_deny(server_url: &str) -> Vec<String> {
    let Ok(url) = reqwest::Url::parse(server_url) else {
        return Vec::new();
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Vec::new();
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(addresses) => addresses
            .map(|address| match address.ip() {
                std::net::IpAddr::V4(ip) => format!("{ip}:{port}"),
                std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The channels of one link.
pub struct Sessions {
    settings: SessionSettings,
    out: mpsc::UnboundedSender<Message>,
    channels: HashMap<u32, ChannelHandle>,
}

/// The manager's side of one running channel.
struct ChannelHandle {
    input: mpsc::UnboundedSender<Input>,
    received: SharedReceiveWindow,
}

/// What the server sent so far and the channel has not yet passed on:
/// counted by the manager as data arrives, released by the task as it
/// writes.
type SharedReceiveWindow = Arc<Mutex<ReceiveWindow>>;

/// What a channel task is told.
#[derive(Debug)]
enum Input {
    /// Bytes to write to the PTY or socket (already counted in the receive
    /// window).
    Data(Vec<u8>),
    /// The peer passed on this many more of our bytes.
    Credit(u32),
    /// The peer will send no more data.
    Eof,
    Resize {
        cols: u16,
        rows: u16,
    },
    /// End now; `error` goes into `ChannelClosed`.
    Close {
        error: Option<String>,
    },
}

impl Sessions {
    /// A manager and the queue its channels write to (text and binary
    /// WebSocket messages, in order).
    pub fn new(settings: SessionSettings) -> (Sessions, mpsc::UnboundedReceiver<Message>) {
        let (out, queue) = mpsc::unbounded_channel();
        let sessions = Sessions {
            settings,
            out,
            channels: HashMap::new(),
        };
        (sessions, queue)
    }

    /// `ChannelOpen`: start the channel's task. It answers `ChannelOpened`,
    /// or `ChannelClosed` with the error when it cannot open.
    pub fn open(&mut self, open: ChannelOpen) {
        self.channels
            .retain(|_, channel| !channel.input.is_closed());
        let (input, inputs) = mpsc::unbounded_channel();
        let received = SharedReceiveWindow::default();
        let io = ChannelIo {
            out: Outgoing {
                channel: open.channel,
                out: self.out.clone(),
            },
            inputs,
            received: received.clone(),
            sent: SendWindow::default(),
        };
        if let Some(previous) = self
            .channels
            .insert(open.channel, ChannelHandle { input, received })
        {
            // The server reused a number still running here: the old one ends.
            tracing::warn!(
                channel = open.channel,
                "channel reopened while still running; ending the old one"
            );
            drop(previous);
        }
        tracing::info!(channel = open.channel, session = %open.session_id, "opening a session channel");
        match open.target {
            ChannelTarget::Terminal {
                user,
                command,
                cols,
                rows,
                term,
                create_user,
            } => {
                let spec = pty::TerminalSpec {
                    user,
                    command,
                    cols,
                    rows,
                    term,
                    create_user: create_user && self.settings.create_user_allowed,
                    create_user_asked: create_user,
                };
                tokio::spawn(pty::run(spec, io));
            }
            ChannelTarget::Tcp {
                host,
                port,
                mut deny,
            } => {
                deny.extend(self.settings.own_server.iter().cloned());
                tokio::spawn(forward::run(host, port, deny, io));
            }
        }
    }

    /// `ChannelResize`: a terminal's new size (ignored by other channels).
    pub fn resize(&mut self, channel: u32, cols: u16, rows: u16) {
        self.tell(channel, Input::Resize { cols, rows });
    }

    /// `ChannelClose`: end the channel now; it still answers `ChannelClosed`.
    pub fn close(&mut self, channel: u32, reason: &str) {
        tracing::info!(channel, %reason, "the server closes a session channel");
        self.tell(channel, Input::Close { error: None });
    }

    /// A binary frame from the server.
    pub fn on_binary(&mut self, bytes: &[u8]) {
        let frame = match ChannelFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(err) => {
                tracing::warn!(%err, "ignoring a malformed channel frame from the server");
                return;
            }
        };
        let channel = frame.channel();
        match frame {
            ChannelFrame::Data { bytes, .. } => self.on_data(channel, bytes),
            ChannelFrame::Window { credit, .. } => self.tell(channel, Input::Credit(credit)),
            ChannelFrame::Eof { .. } => self.tell(channel, Input::Eof),
        }
    }

    fn on_data(&mut self, channel: u32, bytes: Vec<u8>) {
        let Some(handle) = self.channels.get(&channel) else {
            // Data in flight when the channel ended: nothing to do with it.
            tracing::debug!(channel, "data for a channel that is not open");
            return;
        };
        let within = handle
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .receive(bytes.len())
            .is_ok();
        let input = if within {
            Input::Data(bytes)
        } else {
            Input::Close {
                error: Some(format!(
                    "the server sent more than the channel's window on channel {channel}"
                )),
            }
        };
        let _ = handle.input.send(input);
    }

    fn tell(&self, channel: u32, input: Input) {
        match self.channels.get(&channel) {
            Some(handle) => {
                let _ = handle.input.send(input);
            }
            None => tracing::debug!(
                channel,
                ?input,
                "ignoring a frame for a channel that is not open"
            ),
        }
    }
}

/// A channel task's side: what it is told, what it sends, its windows.
struct ChannelIo {
    out: Outgoing,
    inputs: mpsc::UnboundedReceiver<Input>,
    received: SharedReceiveWindow,
    /// What this side may still send.
    sent: SendWindow,
}

impl ChannelIo {
    /// `written` bytes of the server's data were passed on: credit them back.
    fn passed_on(&self, written: usize) {
        let credit = self
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .consumed(written);
        if credit > 0 {
            self.out.frame(ChannelFrame::Window {
                channel: self.out.channel,
                credit,
            });
        }
    }

    /// A credit from the server; `Err` with the reason when it credited more
    /// than it was sent.
    fn credited(&mut self, credit: u32) -> Result<(), String> {
        self.sent.credit(credit).map_err(|_| {
            format!(
                "the server credited more than it was sent on channel {}",
                self.out.channel
            )
        })
    }
}

/// One channel's writer onto the link's ordered queue.
#[derive(Clone)]
struct Outgoing {
    channel: u32,
    out: mpsc::UnboundedSender<Message>,
}

impl Outgoing {
    fn frame(&self, frame: ChannelFrame) {
        // A closed queue means the link ended; the task is being torn down.
        let _ = self.out.send(Message::binary(frame.encode()));
    }

    fn message(&self, message: &AgentMessage) {
        let _ = self.out.send(Message::text(operon_proto::encode(message)));
    }

    fn data(&self, bytes: Vec<u8>) {
        self.frame(ChannelFrame::Data {
            channel: self.channel,
            bytes,
        });
    }

    fn eof(&self) {
        self.frame(ChannelFrame::Eof {
            channel: self.channel,
        });
    }

    fn opened(&self) {
        self.message(&AgentMessage::ChannelOpened {
            channel: self.channel,
        });
    }

    fn closed(&self, exit_code: Option<i32>, error: Option<String>) {
        if let Some(error) = &error {
            tracing::info!(channel = self.channel, %error, "session channel closed");
        }
        self.message(&AgentMessage::ChannelClosed {
            channel: self.channel,
            exit_code,
            error,
        });
    }
}

/// Bytes from the server waiting to be written, oldest first.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
}

impl Pending {
    fn push(&mut self, bytes: Vec<u8>) {
        if self.bytes.is_empty() {
            self.bytes = bytes;
        } else {
            self.bytes.extend_from_slice(&bytes);
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn front(&self) -> &[u8] {
        &self.bytes
    }

    fn written(&mut self, len: usize) {
        self.bytes.drain(..len.min(self.bytes.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use operon_proto::session::{INITIAL_WINDOW, MAX_DATA_FRAME};

    /// A manager with channel 1 registered, and what that channel is told.
    fn with_channel() -> (
        Sessions,
        mpsc::UnboundedReceiver<Input>,
        SharedReceiveWindow,
    ) {
        let (mut sessions, _queue) = Sessions::new(SessionSettings::default());
        let (input, inputs) = mpsc::unbounded_channel();
        let received = SharedReceiveWindow::default();
        sessions.channels.insert(
            1,
            ChannelHandle {
                input,
                received: received.clone(),
            },
        );
        (sessions, inputs, received)
    }

    fn data(channel: u32, len: usize) -> Vec<u8> {
        ChannelFrame::Data {
            channel,
            bytes: vec![b'x'; len],
        }
        .encode()
    }

    #[test]
    fn data_within_the_window_is_passed_on_and_past_it_closes_the_channel() {
        let (mut sessions, mut inputs, received) = with_channel();
        let frames = INITIAL_WINDOW as usize / MAX_DATA_FRAME;
        for _ in 0..frames {
            sessions.on_binary(&data(1, MAX_DATA_FRAME));
            assert!(
                matches!(inputs.try_recv(), Ok(Input::Data(bytes)) if bytes.len() == MAX_DATA_FRAME)
            );
        }
        sessions.on_binary(&data(1, 1));
        match inputs.try_recv() {
            Ok(Input::Close { error: Some(error) }) => assert!(error.contains("window"), "{error}"),
            other => panic!("expected a close, got {other:?}"),
        }
        // Once the channel passed bytes on, the server may send that much again.
        received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .consumed(10);
        sessions.on_binary(&data(1, 10));
        assert!(matches!(inputs.try_recv(), Ok(Input::Data(_))));
    }

    #[test]
    fn frames_for_unknown_channels_and_malformed_frames_are_ignored() {
        let (mut sessions, mut inputs, _) = with_channel();
        sessions.on_binary(&data(2, 5));
        sessions.on_binary(&[9, 0, 0, 0, 1]);
        sessions.on_binary(&[0, 0]);
        assert!(inputs.try_recv().is_err());
        sessions.on_binary(
            &ChannelFrame::Window {
                channel: 1,
                credit: 7,
            }
            .encode(),
        );
        sessions.on_binary(&ChannelFrame::Eof { channel: 1 }.encode());
        sessions.resize(1, 100, 40);
        sessions.close(1, "bye");
        assert!(matches!(inputs.try_recv(), Ok(Input::Credit(7))));
        assert!(matches!(inputs.try_recv(), Ok(Input::Eof)));
        assert!(matches!(
            inputs.try_recv(),
            Ok(Input::Resize {
                cols: 100,
                rows: 40
            })
        ));
        assert!(matches!(
            inputs.try_recv(),
            Ok(Input::Close { error: None })
        ));
    }

    #[test]
    fn pending_bytes_leave_in_order() {
        let mut pending = Pending::default();
        pending.push(b"abc".to_vec());
        pending.push(b"de".to_vec());
        assert_eq!(pending.front(), b"abcde");
        pending.written(2);
        assert_eq!(pending.front(), b"cde");
        pending.written(10);
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn the_agents_own_server_is_denied_to_forwards() {
        assert_eq!(
            own_server_deny("http://127.0.0.1:7780").await,
            vec!["127.0.0.1:7780"]
        );
        assert_eq!(own_server_deny("https://[::1]").await, vec!["[::1]:443"]);
        assert!(own_server_deny("not a url").await.is_empty());
        let entries = own_server_deny("http://127.0.0.1:7780").await;
        let list = deny::parse_deny_list(&entries).unwrap();
        let denied = |ip: &str, port| deny::denied_by(&list, ip.parse().unwrap(), port).is_some();
        assert!(denied("127.0.0.1", 7780));
        assert!(!denied("127.0.0.1", 5432), "only the server's port");
    }
}
