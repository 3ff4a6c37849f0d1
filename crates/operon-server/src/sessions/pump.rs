//! One live session: the client's WebSocket on one side, the agent's
//! channels on the other, the recording in between.
//!
//! The pump never waits on a peer: frames for the client go to a writer
//! task, frames for the agent to the hub's channel queue, both unbounded
//! but bounded by the windows: the pump counts, per channel and direction,
//! what it passed on and what the far end has not credited yet
//! ([`ReceiveWindow`]), relays credits end to end, and closes a channel
//! whose sender goes past its window. So a slow client stops the agent
//! reading the PTY (and the program writing), and no hop holds more than
//! one window per channel and direction.
//!
//! A forwarded connection's data waits here until the agent has opened it
//! (at most one window, as the client may send that much at once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use operon_proto::session::{
    ChannelFrame, ClientMessage, ReceiveWindow, SessionEvent, TERMINAL_CHANNEL,
};
use operon_proto::{ChannelOpen, ChannelTarget, ServerMessage};
use operon_store::SessionEnd;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::limits::Target;
use super::recording::{Header, Recorder};
use super::relay::FromAgent;
use super::service::Opening;
use crate::fleet::hub::Outbound;
use crate::{AppState, now_millis};

/// How long the agent gets to open a terminal.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the pump flushes the recording, refreshes its row and looks
/// for a terminate asked of another server process.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
/// How long a client gets to read the session's last frames and answer
/// the close.
const CLOSE_GRACE: Duration = Duration::from_secs(30);
/// Most forwarded connections open at once in one session.
const MAX_FORWARDS: usize = 256;

struct Channel {
    agent: u32,
    /// Agent to client: passed to the client, not yet credited by it.
    to_client: ReceiveWindow,
    /// Client to agent: passed to the agent, not yet credited by it.
    to_agent: ReceiveWindow,
    /// Until the agent opened it: the client's frames, in order.
    pending: Option<Vec<ChannelFrame>>,
}

/// How the session ends.
struct Ending {
    status: &'static str,
    reason: String,
    exit_code: Option<i32>,
}

impl Ending {
    fn new(status: &'static str, reason: impl Into<String>) -> Ending {
        Ending {
            status,
            reason: reason.into(),
            exit_code: None,
        }
    }
}

struct Pump {
    state: Arc<AppState>,
    opening: Opening,
    began: Instant,
    client: mpsc::UnboundedSender<Message>,
    agent_tx: mpsc::UnboundedSender<(u32, FromAgent)>,
    agent_rx: mpsc::UnboundedReceiver<(u32, FromAgent)>,
    /// By client channel number.
    channels: HashMap<u32, Channel>,
    /// Agent channel number -> client channel number.
    by_agent: HashMap<u32, u32>,
    recorder: Recorder,
    last_activity: Instant,
    terminal: bool,
}

/// Relay one session until it ends, then record how it ended.
pub(crate) async fn run(state: Arc<AppState>, opening: Opening, socket: WebSocket) {
    let session_id = opening.record.id.clone();
    let terminate = state.sessions.register(&session_id);
    let (mut sink, mut stream) = socket.split();
    let (client, mut outgoing) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let last = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || last {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (agent_tx, agent_rx) = mpsc::unbounded_channel();
    let config = &state.config.sessions;
    let (cols, rows, term) = match &opening.request.target {
        Target::Terminal {
            cols, rows, term, ..
        } => (*cols, *rows, term.clone()),
        Target::Forward { .. } => (80, 24, "xterm".into()),
    };
    let header = Header {
        cols,
        rows,
        timestamp: opening.record.started_at / 1000,
        term,
        title: format!("{} on {}", opening.record.kind, opening.node.name),
    };
    let terminal = matches!(opening.request.target, Target::Terminal { .. });
    let mut pump = Pump {
        recorder: Recorder::new(&header, config.record_input, config.recording_limit),
        state: state.clone(),
        opening,
        began: Instant::now(),
        client,
        agent_tx,
        agent_rx,
        channels: HashMap::new(),
        by_agent: HashMap::new(),
        last_activity: Instant::now(),
        terminal,
    };
    let ending = pump.relay(&mut stream, terminate).await;
    pump.finish(ending).await;
    state.sessions.unregister(&session_id);
    // Keep reading (and dropping) what the client still sends, credits
    // mostly, until it answers the close: a socket closed with unread data
    // is reset, and a reset can lose the client's last frames (Ended).
    let drain = async { while let Some(Ok(_)) = stream.next().await {} };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = tokio::join!(writer, drain);
    })
    .await;
}

impl Pump {
    fn seconds(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

    fn to_client(&self, event: &SessionEvent) {
        let _ = self
            .client
            .send(Message::Text(operon_proto::encode(event).into()));
    }

    fn frame_to_client(&self, frame: ChannelFrame) {
        let _ = self.client.send(Message::Binary(frame.encode().into()));
    }

    /// Queue for the agent, on the link the session opened on.
    fn to_agent(&self, out: Outbound) -> bool {
        let node = &self.opening.node.id;
        self.state.hub.send_channel(node, self.opening.link, out)
    }

    fn open_on_agent(&mut self, client_channel: u32, target: ChannelTarget) -> bool {
        let agent = self.state.sessions.open_channel(
            &self.opening.node.id,
            self.opening.link,
            self.agent_tx.clone(),
        );
        self.channels.insert(
            client_channel,
            Channel {
                agent,
                to_client: ReceiveWindow::default(),
                to_agent: ReceiveWindow::default(),
                pending: Some(Vec::new()),
            },
        );
        self.by_agent.insert(agent, client_channel);
        let open = ServerMessage::ChannelOpen(ChannelOpen {
            channel: agent,
            session_id: self.opening.record.id.clone(),
            target,
        });
        self.to_agent(Outbound::Message(open))
    }

    async fn relay(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        mut terminate: watch::Receiver<Option<super::relay::EndRequest>>,
    ) -> Ending {
        if let Err(ending) = self.start().await {
            return ending;
        }
        self.to_client(&SessionEvent::Started {
            session_id: self.opening.record.id.clone(),
            node: self.opening.node.name.clone(),
            user: self.opening.record.run_as.clone().unwrap_or_default(),
        });
        let idle = Duration::from_secs(self.opening.request.idle_timeout_secs);
        let deadline = self.began + Duration::from_secs(self.opening.request.max_duration_secs);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.tick().await;
        loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        if let Some(ending) = self.on_client_frame(&bytes) {
                            return ending;
                        }
                    }
                    Some(Ok(Message::Text(text))) => {
                        if let Some(ending) = self.on_client_message(&text) {
                            return ending;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        return Ending::new("ended", "the client disconnected");
                    }
                    Some(Ok(_)) => {}
                },
                Some((channel, event)) = self.agent_rx.recv() => {
                    if let Some(ending) = self.on_agent(channel, event) {
                        return ending;
                    }
                }
                changed = terminate.changed() => {
                    let asked = terminate.borrow().clone();
                    if changed.is_ok() && let Some(asked) = asked {
                        return Ending::new(asked.status, asked.reason);
                    }
                }
                () = tokio::time::sleep_until(self.last_activity + idle) => {
                    return Ending::new("timed-out", format!("idle for {}", humantime::format_duration(idle)));
                }
                () = tokio::time::sleep_until(deadline) => {
                    let max = Duration::from_secs(self.opening.request.max_duration_secs);
                    return Ending::new("timed-out", format!("reached the maximum duration of {}", humantime::format_duration(max)));
                }
                _ = housekeeping.tick() => {
                    if let Some(ending) = self.housekeeping().await {
                        return ending;
                    }
                }
            }
            self.store_chunk(false).await;
        }
    }

    /// Open the terminal (and wait for the agent to say so); a port
    /// forward opens connections as the client makes them.
    async fn start(&mut self) -> Result<(), Ending> {
        let Target::Terminal {
            user,
            default_user,
            command,
            cols,
            rows,
            term,
        } = self.opening.request.target.clone()
        else {
            return Ok(());
        };
        let target = ChannelTarget::Terminal {
            user,
            command,
            cols,
            rows,
            term,
            create_user: default_user,
        };
        if !self.open_on_agent(TERMINAL_CHANNEL, target) {
            return Err(self.refused(None, "the node's agent disconnected"));
        }
        let opened = tokio::time::timeout(OPEN_TIMEOUT, self.agent_rx.recv()).await;
        match opened {
            Ok(Some((_, FromAgent::Opened))) => {
                if let Some(channel) = self.channels.get_mut(&TERMINAL_CHANNEL) {
                    channel.pending = None;
                }
                Ok(())
            }
            Ok(Some((_, FromAgent::Closed { exit_code, error }))) => {
                let why = error.unwrap_or_else(|| "the agent closed the terminal".into());
                Err(self.refused(exit_code, &why))
            }
            Ok(Some((_, FromAgent::LinkLost))) | Ok(None) => {
                Err(self.refused(None, "the node's agent disconnected"))
            }
            Ok(Some((_, FromAgent::Frame(_)))) => {
                Err(self.refused(None, "the agent sent data before opening the terminal"))
            }
            Err(_) => Err(self.refused(
                None,
                &format!("the agent did not open the terminal within {OPEN_TIMEOUT:?}"),
            )),
        }
    }

    fn refused(&mut self, exit_code: Option<i32>, why: &str) -> Ending {
        self.to_client(&SessionEvent::Closed {
            channel: TERMINAL_CHANNEL,
            exit_code,
            error: Some(why.to_string()),
        });
        self.close_channel(TERMINAL_CHANNEL, None);
        Ending::new("failed", format!("the terminal could not be opened: {why}"))
    }

    fn on_client_frame(&mut self, bytes: &[u8]) -> Option<Ending> {
        let frame = match ChannelFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                return Some(Ending::new(
                    "failed",
                    format!("the client sent a bad frame: {e}"),
                ));
            }
        };
        let client_channel = frame.channel();
        let seconds = self.seconds();
        let Some(channel) = self.channels.get_mut(&client_channel) else {
            return None; // a channel that just closed
        };
        let agent = channel.agent;
        let forwarded = match frame {
            ChannelFrame::Data { bytes, .. } => {
                if channel.to_agent.receive(bytes.len()).is_err() {
                    self.reset(client_channel, "the client sent past its window");
                    return None;
                }
                self.last_activity = Instant::now();
                if self.terminal {
                    self.recorder.input(seconds, &bytes);
                }
                ChannelFrame::Data {
                    channel: agent,
                    bytes,
                }
            }
            ChannelFrame::Window { credit, .. } => {
                // The client passed on `credit` more bytes: the agent may
                // send them (never more than it actually sent).
                let credit = channel.to_client.consumed(credit as usize);
                if credit == 0 {
                    return None;
                }
                ChannelFrame::Window {
                    channel: agent,
                    credit,
                }
            }
            ChannelFrame::Eof { .. } => ChannelFrame::Eof { channel: agent },
        };
        if let Some(pending) = channel.pending.as_mut() {
            pending.push(forwarded);
            return None;
        }
        self.to_agent(Outbound::Binary(forwarded.encode()));
        None
    }

    fn on_client_message(&mut self, text: &str) -> Option<Ending> {
        let message = match operon_proto::decode::<ClientMessage>(text) {
            Ok(message) => message,
            Err(e) => {
                return Some(Ending::new(
                    "failed",
                    format!("the client sent a bad message: {e}"),
                ));
            }
        };
        self.last_activity = Instant::now();
        match message {
            ClientMessage::Resize { cols, rows } => {
                if !self.terminal || cols == 0 || rows == 0 {
                    return None;
                }
                if let Some(channel) = self.channels.get(&TERMINAL_CHANNEL) {
                    let seconds = self.seconds();
                    self.recorder.resize(seconds, cols, rows);
                    let resize = ServerMessage::ChannelResize {
                        channel: channel.agent,
                        cols,
                        rows,
                    };
                    self.to_agent(Outbound::Message(resize));
                }
            }
            ClientMessage::Open { channel } => self.open_forward(channel),
            ClientMessage::Close { channel } => {
                if self.terminal {
                    return Some(Ending::new("ended", "the client closed the terminal"));
                }
                self.close_channel(channel, Some("closed by the client"));
            }
        }
        None
    }

    fn open_forward(&mut self, client_channel: u32) {
        let Target::Forward { host, port } = self.opening.request.target.clone() else {
            self.to_client(&SessionEvent::Closed {
                channel: client_channel,
                exit_code: None,
                error: Some("only port-forward sessions open connections".into()),
            });
            return;
        };
        let refusal = if self.channels.contains_key(&client_channel) {
            Some(format!("connection {client_channel} is already open"))
        } else if self.channels.len() >= MAX_FORWARDS {
            Some(format!("at most {MAX_FORWARDS} connections at once"))
        } else {
            None
        };
        if let Some(error) = refusal {
            self.to_client(&SessionEvent::Closed {
                channel: client_channel,
                exit_code: None,
                error: Some(error),
            });
            return;
        }
        let seconds = self.seconds();
        self.recorder.marker(
            seconds,
            &format!("connection {client_channel} to {host}:{port} opened"),
        );
        let deny = self.state.config.sessions.forward_deny.clone();
        if !self.open_on_agent(client_channel, ChannelTarget::Tcp { host, port, deny }) {
            self.close_channel(client_channel, None);
            self.to_client(&SessionEvent::Closed {
                channel: client_channel,
                exit_code: None,
                error: Some("the node's agent disconnected".into()),
            });
        }
    }

    fn on_agent(&mut self, agent: u32, event: FromAgent) -> Option<Ending> {
        if matches!(event, FromAgent::LinkLost) {
            return Some(Ending::new("failed", "the node's agent disconnected"));
        }
        let client_channel = *self.by_agent.get(&agent)?;
        let seconds = self.seconds();
        let channel = self.channels.get_mut(&client_channel)?;
        match event {
            FromAgent::Opened => {
                let pending = channel.pending.take().unwrap_or_default();
                for frame in pending {
                    self.to_agent(Outbound::Binary(frame.encode()));
                }
            }
            FromAgent::Frame(ChannelFrame::Data { bytes, .. }) => {
                if channel.to_client.receive(bytes.len()).is_err() {
                    self.reset(client_channel, "the agent sent past its window");
                    return None;
                }
                if self.terminal {
                    self.recorder.output(seconds, &bytes);
                } else {
                    self.last_activity = Instant::now();
                }
                self.frame_to_client(ChannelFrame::Data {
                    channel: client_channel,
                    bytes,
                });
            }
            FromAgent::Frame(ChannelFrame::Window { credit, .. }) => {
                let credit = channel.to_agent.consumed(credit as usize);
                if credit > 0 {
                    self.frame_to_client(ChannelFrame::Window {
                        channel: client_channel,
                        credit,
                    });
                }
            }
            FromAgent::Frame(ChannelFrame::Eof { .. }) => {
                self.frame_to_client(ChannelFrame::Eof {
                    channel: client_channel,
                });
            }
            FromAgent::Closed { exit_code, error } => {
                return self.agent_closed(client_channel, exit_code, error);
            }
            FromAgent::LinkLost => {}
        }
        None
    }

    fn agent_closed(
        &mut self,
        client_channel: u32,
        exit_code: Option<i32>,
        error: Option<String>,
    ) -> Option<Ending> {
        self.forget(client_channel);
        self.to_client(&SessionEvent::Closed {
            channel: client_channel,
            exit_code,
            error: error.clone(),
        });
        if self.terminal {
            let mut ending = match &error {
                Some(error) => Ending::new("failed", format!("the terminal failed: {error}")),
                None => Ending::new("ended", "the program exited"),
            };
            ending.exit_code = exit_code;
            return Some(ending);
        }
        let seconds = self.seconds();
        let what = match &error {
            Some(error) => format!("connection {client_channel} failed: {error}"),
            None => format!("connection {client_channel} closed"),
        };
        self.recorder.marker(seconds, &what);
        if let Some(error) = error {
            self.audit_forward_failure(client_channel, error);
        }
        None
    }

    /// A forwarded connection the agent refused or could not make (a
    /// denied address, a refused port) is audited.
    fn audit_forward_failure(&self, client_channel: u32, error: String) {
        let state = self.state.clone();
        let entry = operon_store::AuditEntry {
            actor: self.opening.record.started_by.clone(),
            action: "sessions:PortForward".into(),
            resource: format!("node/{}", self.opening.node.name),
            outcome: "failed".into(),
            detail: serde_json::json!({
                "session": self.opening.record.id,
                "connection": client_channel,
                "remote": self.opening.record.remote,
                "error": error,
            }),
        };
        tokio::spawn(async move {
            if let Err(e) = state.audit.record(entry).await {
                tracing::error!(error = %e, "a refused forward could not be audited");
            }
        });
    }

    /// Drop a channel at once (a reset): the agent closes it, the client
    /// hears why.
    fn reset(&mut self, client_channel: u32, why: &str) {
        self.close_channel(client_channel, Some(why));
        self.to_client(&SessionEvent::Closed {
            channel: client_channel,
            exit_code: None,
            error: Some(why.to_string()),
        });
    }

    fn close_channel(&mut self, client_channel: u32, reason: Option<&str>) {
        if let Some(agent) = self.forget(client_channel) {
            let close = ServerMessage::ChannelClose {
                channel: agent,
                reason: reason.unwrap_or("the session ended").to_string(),
            };
            self.to_agent(Outbound::Message(close));
        }
    }

    fn forget(&mut self, client_channel: u32) -> Option<u32> {
        let channel = self.channels.remove(&client_channel)?;
        self.by_agent.remove(&channel.agent);
        self.state.sessions.forget_channel(channel.agent);
        Some(channel.agent)
    }

    async fn housekeeping(&mut self) -> Option<Ending> {
        self.store_chunk(true).await;
        let store = &self.state.store;
        let id = &self.opening.record.id;
        if let Err(e) = store.touch_session(id, now_millis()).await {
            tracing::warn!(session = %id, error = %e, "a session could not be touched");
        }
        match store.session(id).await {
            Ok(Some(record)) => record
                .terminate_by
                .map(|by| Ending::new("terminated", format!("terminated by {by}"))),
            _ => None,
        }
    }

    /// Store a recording chunk when one is due (or whatever is pending).
    async fn store_chunk(&mut self, flush: bool) {
        let chunk = if flush {
            self.recorder.flush()
        } else {
            self.recorder.take_chunk()
        };
        if let Some((seq, chunk)) = chunk {
            let id = &self.opening.record.id;
            if let Err(e) = self.state.sessions().store_chunk(id, seq, &chunk).await {
                tracing::error!(session = %id, seq, error = %e.message, "a recording chunk could not be stored");
            }
        }
    }

    async fn finish(mut self, ending: Ending) {
        let open: Vec<u32> = self.channels.keys().copied().collect();
        for channel in open {
            self.close_channel(channel, Some(&ending.reason));
        }
        let id = self.opening.record.id.clone();
        let (last, finished) = self.recorder.finish();
        if let Some((seq, chunk)) = last
            && let Err(e) = self.state.sessions().store_chunk(&id, seq, &chunk).await
        {
            tracing::error!(session = %id, seq, error = %e.message, "the last recording chunk could not be stored");
        }
        let end = SessionEnd {
            status: ending.status.to_string(),
            ended_at: now_millis(),
            reason: ending.reason.clone(),
            exit_code: ending.exit_code,
            recording_sha256: Some(finished.sha256),
            recording_bytes: Some(finished.bytes as i64),
        };
        if let Err(e) = self.state.sessions().end(&self.opening.record, &end).await {
            tracing::error!(session = %id, error = %e.message, "a session's end could not be recorded");
        }
        self.to_client(&SessionEvent::Ended {
            reason: ending.reason,
            exit_code: ending.exit_code,
        });
        let _ = self.client.send(Message::Close(None));
    }
}
