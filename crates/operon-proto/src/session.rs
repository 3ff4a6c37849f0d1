//! Session channels: interactive terminals and forwarded TCP connections
//! carried over a WebSocket beside everything else, with flow control.
//!
//! A **channel** is one byte stream in each direction: a terminal (a PTY on
//! the node) or one forwarded TCP connection. A session has one terminal
//! channel, or any number of forwarded connections. Channels are numbered by
//! the side that opens them, per link: the server numbers the channels of an
//! agent link, the client numbers those of its own session link.
//!
//! The same binary framing ([`ChannelFrame`]) runs on two links:
//!
//! - **agent link** (`/v1/agent/connect`): the server opens a channel with
//!   [`crate::ServerMessage::ChannelOpen`] (text frame), the agent answers
//!   [`crate::AgentMessage::ChannelOpened`] or
//!   [`crate::AgentMessage::ChannelClosed`] with an error, and both send
//!   [`ChannelFrame`]s as binary WebSocket frames. The agent sends only to
//!   servers that announced nothing special: it announces
//!   [`CAPABILITY_SESSIONS`] and the server opens channels only on links that
//!   did.
//! - **client link** (`/v1/sessions/connect`, the CLI or browser): the same
//!   binary frames with the client's channel numbers, and JSON text frames
//!   [`ClientMessage`] (client to server) and [`SessionEvent`] (server to
//!   client). The terminal of a shell session is client channel 0.
//!
//! # Flow control
//!
//! Every channel has a window per direction, [`INITIAL_WINDOW`] bytes when
//! it opens. A sender may have at most the window's bytes sent and not yet
//! credited; the receiver credits bytes back ([`ChannelFrame::Window`]) only
//! once it has passed them on (written them to the PTY or socket, or, for
//! the server, once the next hop took them). The server relays data and
//! credits between the two links without adding its own window, so credit is
//! end to end: a client that reads slowly stops the agent reading the PTY,
//! which stops the program on the node, and no hop ever holds more than one
//! window per channel and direction. A sender that goes past its window is
//! broken; the receiver closes the channel.
//!
//! Order: a channel's [`ChannelFrame::Data`] is followed by its
//! [`ChannelFrame::Eof`] and then its close message, all on one ordered
//! queue, so no data is lost behind a close.

use serde::{Deserialize, Serialize};

/// Capability: the agent opens session channels ([`crate::ServerMessage::ChannelOpen`]).
pub const CAPABILITY_SESSIONS: &str = "sessions";

/// Bytes a sender may have in flight per channel and direction when the
/// channel opens.
pub const INITIAL_WINDOW: u32 = 256 * 1024;

/// The largest data payload of one frame; larger writes are split.
pub const MAX_DATA_FRAME: usize = 32 * 1024;

/// The client channel of a shell session's terminal.
pub const TERMINAL_CHANNEL: u32 = 0;

/// One binary frame: `[kind: u8][channel: u32 big-endian][payload]`.
///
/// | kind | frame | payload |
/// | --- | --- | --- |
/// | 0 | `Data` | the bytes (at most [`MAX_DATA_FRAME`]) |
/// | 1 | `Window` | the credit, `u32` big-endian |
/// | 2 | `Eof` | none: the sender will send no more data |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelFrame {
    Data {
        channel: u32,
        bytes: Vec<u8>,
    },
    /// The receiver passed `credit` more bytes on: the sender may send them.
    Window {
        channel: u32,
        credit: u32,
    },
    /// The sender's side of the stream ended (a TCP half-close; the PTY
    /// closed). Data never follows it.
    Eof {
        channel: u32,
    },
}

const KIND_DATA: u8 = 0;
const KIND_WINDOW: u8 = 1;
const KIND_EOF: u8 = 2;
const HEADER: usize = 5;

impl ChannelFrame {
    pub fn channel(&self) -> u32 {
        match self {
            ChannelFrame::Data { channel, .. }
            | ChannelFrame::Window { channel, .. }
            | ChannelFrame::Eof { channel } => *channel,
        }
    }

    /// The frame with another channel number (the server's relay renumbers
    /// between the two links).
    pub fn on_channel(self, channel: u32) -> ChannelFrame {
        match self {
            ChannelFrame::Data { bytes, .. } => ChannelFrame::Data { channel, bytes },
            ChannelFrame::Window { credit, .. } => ChannelFrame::Window { channel, credit },
            ChannelFrame::Eof { .. } => ChannelFrame::Eof { channel },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (kind, channel, payload): (u8, u32, &[u8]) = match self {
            ChannelFrame::Data { channel, bytes } => (KIND_DATA, *channel, bytes),
            ChannelFrame::Window { channel, .. } => (KIND_WINDOW, *channel, &[]),
            ChannelFrame::Eof { channel } => (KIND_EOF, *channel, &[]),
        };
        let mut out = Vec::with_capacity(HEADER + payload.len() + 4);
        out.push(kind);
        out.extend_from_slice(&channel.to_be_bytes());
        match self {
            ChannelFrame::Window { credit, .. } => out.extend_from_slice(&credit.to_be_bytes()),
            _ => out.extend_from_slice(payload),
        }
        out
    }

    pub fn decode(frame: &[u8]) -> Result<ChannelFrame, FrameError> {
        if frame.len() < HEADER {
            return Err(FrameError::Short { len: frame.len() });
        }
        let channel = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
        let payload = &frame[HEADER..];
        match frame[0] {
            KIND_DATA if payload.len() > MAX_DATA_FRAME => Err(FrameError::TooLarge {
                channel,
                len: payload.len(),
            }),
            KIND_DATA => Ok(ChannelFrame::Data {
                channel,
                bytes: payload.to_vec(),
            }),
            KIND_WINDOW => match <[u8; 4]>::try_from(payload) {
                Ok(credit) => Ok(ChannelFrame::Window {
                    channel,
                    credit: u32::from_be_bytes(credit),
                }),
                Err(_) => Err(FrameError::BadWindow {
                    channel,
                    len: payload.len(),
                }),
            },
            KIND_EOF if payload.is_empty() => Ok(ChannelFrame::Eof { channel }),
            KIND_EOF => Err(FrameError::BadEof { channel }),
            kind => Err(FrameError::UnknownKind { kind }),
        }
    }
}

/// Why a binary frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    Short { len: usize },
    UnknownKind { kind: u8 },
    TooLarge { channel: u32, len: usize },
    BadWindow { channel: u32, len: usize },
    BadEof { channel: u32 },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Short { len } => {
                write!(
                    f,
                    "a channel frame of {len} bytes is shorter than its 5-byte header"
                )
            }
            FrameError::UnknownKind { kind } => write!(f, "unknown channel frame kind {kind}"),
            FrameError::TooLarge { channel, len } => write!(
                f,
                "channel {channel}: a data frame of {len} bytes is over the {MAX_DATA_FRAME}-byte limit"
            ),
            FrameError::BadWindow { channel, len } => write!(
                f,
                "channel {channel}: a window frame needs a 4-byte credit, not {len} bytes"
            ),
            FrameError::BadEof { channel } => {
                write!(
                    f,
                    "channel {channel}: an end-of-stream frame carries no payload"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// What a sender may still send on one channel. Pure bookkeeping: the
/// sender asks [`SendWindow::available`] before reading its source, calls
/// [`SendWindow::spend`] for what it sent and [`SendWindow::credit`] for
/// every [`ChannelFrame::Window`] it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    available: u32,
}

impl Default for SendWindow {
    fn default() -> Self {
        SendWindow {
            available: INITIAL_WINDOW,
        }
    }
}

/// A peer credited more than it was ever sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOverflow;

impl SendWindow {
    pub fn available(&self) -> u32 {
        self.available
    }

    /// How much of `want` may be sent now (never more than one frame).
    pub fn allowance(&self, want: usize) -> usize {
        want.min(self.available as usize).min(MAX_DATA_FRAME)
    }

    /// Record `sent` bytes as sent. Sending past the window is a bug of the
    /// caller; it saturates at zero rather than wrapping.
    pub fn spend(&mut self, sent: usize) {
        let sent = u32::try_from(sent).unwrap_or(u32::MAX);
        self.available = self.available.saturating_sub(sent);
    }

    /// Add a credit. A window can never exceed [`INITIAL_WINDOW`]: a peer
    /// crediting more than was sent is broken.
    pub fn credit(&mut self, credit: u32) -> Result<(), WindowOverflow> {
        match self.available.checked_add(credit) {
            Some(total) if total <= INITIAL_WINDOW => {
                self.available = total;
                Ok(())
            }
            _ => Err(WindowOverflow),
        }
    }
}

/// What a receiver has been sent and not yet credited on one channel.
/// [`ReceiveWindow::receive`] refuses data past the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiveWindow {
    outstanding: u32,
}

impl ReceiveWindow {
    /// Count `len` received bytes; `Err` when the sender went past its window.
    pub fn receive(&mut self, len: usize) -> Result<(), WindowOverflow> {
        let len = u32::try_from(len).map_err(|_| WindowOverflow)?;
        match self.outstanding.checked_add(len) {
            Some(total) if total <= INITIAL_WINDOW => {
                self.outstanding = total;
                Ok(())
            }
            _ => Err(WindowOverflow),
        }
    }

    /// `len` bytes were passed on: the credit to send back.
    pub fn consumed(&mut self, len: usize) -> u32 {
        let len = u32::try_from(len).unwrap_or(u32::MAX).min(self.outstanding);
        self.outstanding -= len;
        len
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }
}

/// What the server asks the agent to open ([`crate::ServerMessage::ChannelOpen`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelOpen {
    /// The server's number for this channel on this link.
    pub channel: u32,
    /// The session it belongs to (for the agent's log).
    pub session_id: String,
    pub target: ChannelTarget,
}

/// What a channel connects to on the node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelTarget {
    /// A PTY running the user's login shell, or `/bin/sh -c command` (the
    /// user's shell `-c` when it has one), as `user`, in its own session
    /// with the PTY as controlling terminal, in the user's home directory.
    Terminal {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        cols: u16,
        rows: u16,
        /// `TERM` for the program (the client's, e.g. `xterm-256color`).
        term: String,
        /// `user` is the server's default session account: the agent may
        /// create it when missing, if its own configuration allows
        /// (`--session-create-user`). Never set for a named user.
        #[serde(default)]
        create_user: bool,
    },
    /// A TCP connection to `host:port` as the node resolves it, refused
    /// when any resolved address falls in `deny` (CIDRs such as
    /// `169.254.0.0/16`, `::1/128`; a `:port` suffix limits an entry to
    /// one port: `127.0.0.1/32:7780`).
    Tcp {
        host: String,
        port: u16,
        #[serde(default)]
        deny: Vec<String>,
    },
}

/// Text frames from a session client to the server on the client link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The client's terminal changed size.
    Resize { cols: u16, rows: u16 },
    /// A new forwarded connection, numbered by the client (port-forward
    /// sessions only). Data may follow at once, within the initial window.
    Open { channel: u32 },
    /// Drop a forwarded connection at once (a reset, not an end of stream:
    /// for that send [`ChannelFrame::Eof`]).
    Close { channel: u32 },
}

/// Text frames from the server to a session client on the client link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent {
    /// The session is open on the node (the first frame of every session).
    Started {
        session_id: String,
        node: String,
        /// The account on the node (empty for port forwarding).
        user: String,
    },
    /// A channel ended: the program exited (`exit_code`, or 128 + signal
    /// like a shell reports it) or the connection closed; `error` says why
    /// when it failed or was refused.
    Closed {
        channel: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The whole session ended (the last frame): `reason` for people
    /// ("exited", "idle for 20m", "terminated by alice", ...).
    Ended {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = [
            ChannelFrame::Data {
                channel: 7,
                bytes: b"hello\x00\xff".to_vec(),
            },
            ChannelFrame::Data {
                channel: u32::MAX,
                bytes: vec![],
            },
            ChannelFrame::Data {
                channel: 1,
                bytes: vec![9; MAX_DATA_FRAME],
            },
            ChannelFrame::Window {
                channel: 3,
                credit: 65_536,
            },
            ChannelFrame::Eof { channel: 0 },
        ];
        for frame in frames {
            let bytes = frame.encode();
            assert_eq!(ChannelFrame::decode(&bytes), Ok(frame.clone()));
            assert_eq!(frame.clone().on_channel(42).channel(), 42);
        }
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert_eq!(
            ChannelFrame::decode(&[0, 0, 0]),
            Err(FrameError::Short { len: 3 })
        );
        assert_eq!(
            ChannelFrame::decode(&[9, 0, 0, 0, 1]),
            Err(FrameError::UnknownKind { kind: 9 })
        );
        assert_eq!(
            ChannelFrame::decode(&[1, 0, 0, 0, 1, 0, 0]),
            Err(FrameError::BadWindow { channel: 1, len: 2 })
        );
        assert_eq!(
            ChannelFrame::decode(&[2, 0, 0, 0, 1, 0]),
            Err(FrameError::BadEof { channel: 1 })
        );
        let mut big = vec![0, 0, 0, 0, 2];
        big.extend(vec![0; MAX_DATA_FRAME + 1]);
        let err = ChannelFrame::decode(&big).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { channel: 2, .. }));
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn a_sender_never_passes_its_window() {
        let mut window = SendWindow::default();
        let mut sent = 0usize;
        while window.allowance(usize::MAX) > 0 {
            let n = window.allowance(10_000);
            window.spend(n);
            sent += n;
        }
        assert_eq!(sent, INITIAL_WINDOW as usize);
        assert_eq!(window.allowance(1), 0);
        window.credit(100).unwrap();
        assert_eq!(window.allowance(1_000), 100);
        assert_eq!(window.credit(INITIAL_WINDOW), Err(WindowOverflow));
        assert_eq!(window.available(), 100, "a refused credit changes nothing");
    }

    #[test]
    fn a_receiver_refuses_data_past_the_window() {
        let mut window = ReceiveWindow::default();
        window.receive(INITIAL_WINDOW as usize - 1).unwrap();
        assert_eq!(window.receive(2), Err(WindowOverflow));
        window.receive(1).unwrap();
        assert_eq!(window.consumed(1_000), 1_000);
        window.receive(1_000).unwrap();
        assert_eq!(window.consumed(usize::MAX), INITIAL_WINDOW);
        assert_eq!(window.outstanding(), 0);
    }

    #[test]
    fn control_messages_are_tagged_json() {
        let open = crate::ServerMessage::ChannelOpen(ChannelOpen {
            channel: 4,
            session_id: "s-1".into(),
            target: ChannelTarget::Terminal {
                user: "deploy".into(),
                command: None,
                cols: 80,
                rows: 24,
                term: "xterm".into(),
                create_user: false,
            },
        });
        let text = crate::encode(&open);
        assert!(text.contains(r#""type":"channel_open""#), "{text}");
        assert!(text.contains(r#""kind":"terminal""#), "{text}");
        assert_eq!(crate::decode::<crate::ServerMessage>(&text).unwrap(), open);
        let resize: ClientMessage =
            crate::decode(r#"{"type":"resize","cols":120,"rows":40}"#).unwrap();
        assert_eq!(
            resize,
            ClientMessage::Resize {
                cols: 120,
                rows: 40
            }
        );
        let ended = SessionEvent::Ended {
            reason: "exited".into(),
            exit_code: Some(3),
        };
        assert_eq!(
            crate::decode::<SessionEvent>(&crate::encode(&ended)).unwrap(),
            ended
        );
    }
}
