//! One WebSocket link to the server: connect with the node credential, say
//! `Hello`, wait for `Welcome`, then heartbeat, dispatch server frames to the
//! [`Supervisor`] and write outbound frames until the link ends.
//!
//! A `RotateCredential` frame is handled here: the new credential is written
//! to `credential.json` atomically (temporary file, fsync, rename) and only
//! then confirmed to the server and used for later connections.
//!
//! `SyncFile` and `SyncForget` go to the file-sync task
//! ([`crate::file_sync`]); its `SyncApplied` and `SyncDrifted` frames are
//! sent once the link is welcomed (they wait in their queue while offline).
//!
//! `StateForget` goes to the desired-state watcher ([`crate::state::drift`]);
//! its `StateDrifted` frames are sent once the link is welcomed, and every
//! `Welcome` asks it to report again every file that still differs.
//!
//! `Metrics` batches from the metrics task ([`crate::metrics`]) are sent
//! once the link is welcomed; every `Welcome` makes the task resend the
//! unacknowledged ones, and `MetricsAck` goes back to it. `metrics` is
//! announced in `Hello` only when the task runs (interval not zero).
//!
//! Session channels ([`crate::sessions`]) live and die with the link: each
//! link has its own [`Sessions`], which takes `ChannelOpen`,
//! `ChannelResize`, `ChannelClose` and every binary frame; its ordered
//! queue is the writer's lowest-priority source.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use operon_proto::{
    AGENT_CONNECT_PATH, AgentMessage, CommandResult, MISSED_HEARTBEATS_BEFORE_DEAD,
    PROTOCOL_VERSION, ServerMessage,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::credential::{self, Credential};
use crate::enroll::error_chain;
use crate::error::server_error_message;
use crate::file_sync::FileSyncHandle;
use crate::inventory::collect_inventory;
use crate::inventory_sets::InventoryHandle;
use crate::logs::LogsHandle;
use crate::metrics::MetricsHandle;
use crate::monitors::Monitors;
use crate::sessions::{SessionSettings, Sessions};
use crate::state::StateWatchHandle;
use crate::supervisor::{Control, Supervisor};
use crate::tls::{self, PinMismatch};

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);

/// Why connecting failed.
#[derive(Debug)]
pub enum ConnectError {
    /// 401/403: the server refuses this credential. Fatal.
    Rejected { message: String },
    /// The server's certificate is not the pinned one. Fatal.
    CertificateMismatch(PinMismatch),
    /// Anything else: retried with backoff.
    Failed(String),
}

/// `http(s)://host/...` -> `ws(s)://host/.../v1/agent/connect`.
pub fn connect_url(server_url: &str) -> Result<String, String> {
    let base = server_url.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        return Err("expected an http:// or https:// URL".to_owned());
    };
    Ok(format!("{rest}{AGENT_CONNECT_PATH}"))
}

/// Open the WebSocket with `Authorization: Bearer <credential>`; `wss://`
/// trusts the server as the `tls` configuration says.
pub async fn connect(
    server_url: &str,
    credential: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<WsStream, ConnectError> {
    let url = connect_url(server_url).map_err(ConnectError::Failed)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|err| ConnectError::Failed(format!("invalid URL {url}: {err}")))?;
    let mut bearer = HeaderValue::from_str(&format!("Bearer {credential}")).map_err(|_| {
        ConnectError::Failed("the stored credential is not a valid header value".into())
    })?;
    bearer.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, bearer);
    let connector = Connector::Rustls(tls.clone());
    let attempt =
        // Nagle off: session frames (a keystroke, its echo) go out at once.
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Err(_) => Err(ConnectError::Failed(format!(
            "no answer from {url} within {CONNECT_TIMEOUT:?}"
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body = response.body().as_deref().unwrap_or_default();
            let message = server_error_message(status, body);
            if status == 401 || status == 403 {
                Err(ConnectError::Rejected { message })
            } else {
                Err(ConnectError::Failed(format!("{url} answered {message}")))
            }
        }
        Ok(Err(err)) => match tls::find_pin_mismatch(&err) {
            Some(mismatch) => Err(ConnectError::CertificateMismatch(mismatch)),
            None => Err(ConnectError::Failed(format!(
                "{url}: {}",
                error_chain(&err)
            ))),
        },
    }
}

/// How a link ended.
#[derive(Debug)]
pub struct LinkEnd {
    pub welcomed: bool,
    pub lasted: Duration,
    pub shutdown: bool,
    pub reason: String,
}

/// What the link loop borrows from the agent for its lifetime.
pub struct LinkContext<'a> {
    pub supervisor: &'a mut Supervisor,
    pub outbox: &'a mut mpsc::Receiver<AgentMessage>,
    pub done: &'a mut mpsc::UnboundedReceiver<CommandResult>,
    /// Takes `SyncFile` and `SyncForget`.
    pub file_sync: &'a FileSyncHandle,
    /// `SyncApplied` and `SyncDrifted`, sent once the link is welcomed.
    pub sync_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    /// Takes `StateForget` and the resync after `Welcome`.
    pub state_watch: &'a StateWatchHandle,
    /// `StateDrifted`, sent once the link is welcomed.
    pub state_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    /// Takes `Welcome`, `InventoryAck` and `InventoryResync`.
    pub inventory: &'a InventoryHandle,
    /// `InventoryReport`, sent once the link is welcomed.
    pub inventory_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    /// Takes `Welcome` and `MetricsAck`; `None` with metrics off (then
    /// `metrics` is not announced).
    pub metrics: Option<&'a MetricsHandle>,
    /// `Metrics`, sent once the link is welcomed.
    pub metric_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    /// Takes `Monitors` (the running set outlives the link).
    pub monitors: &'a mut Monitors,
    /// Takes `Welcome` and `LogsAck`; `None` with metrics off (then `logs`
    /// is not announced).
    pub logs: Option<&'a LogsHandle>,
    /// `Logs`, sent once the link is welcomed.
    pub log_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    pub heartbeat_override: Option<u64>,
    pub heartbeat_seq: &'a mut u64,
    /// Replaced (in memory and on disk) when the server rotates it.
    pub credential: &'a mut Credential,
    pub state_dir: &'a Path,
    /// How this link's session channels may behave.
    pub sessions: SessionSettings,
}

/// Run one link until it drops, goes silent, or `shutdown` resolves.
pub async fn run_link(
    ws: WsStream,
    ctx: LinkContext<'_>,
    shutdown: &mut Pin<&mut (impl Future<Output = ()> + Send)>,
) -> LinkEnd {
    let began = Instant::now();
    let (mut sink, stream) = ws.split();
    let hello = AgentMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        inventory: collect_inventory(),
        capabilities: capabilities(ctx.metrics.is_some()),
    };
    if let Err(err) = sink.send(Message::text(operon_proto::encode(&hello))).await {
        return LinkEnd {
            welcomed: false,
            lasted: began.elapsed(),
            shutdown: false,
            reason: format!("sending Hello failed: {err}"),
        };
    }
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (heartbeat_tx, heartbeat_rx) = mpsc::channel(1);
    let (sessions, session_frames) = Sessions::new(ctx.sessions);
    let mut reader = Reader {
        supervisor: ctx.supervisor,
        done: ctx.done,
        file_sync: ctx.file_sync,
        sync_events: ctx.sync_events,
        state_watch: ctx.state_watch,
        state_events: ctx.state_events,
        inventory: ctx.inventory,
        inventory_events: ctx.inventory_events,
        metrics: ctx.metrics,
        metric_events: ctx.metric_events,
        monitors: ctx.monitors,
        logs: ctx.logs,
        log_events: ctx.log_events,
        control: Some(control_tx),
        heartbeats: heartbeat_tx,
        heartbeat_override: ctx.heartbeat_override,
        heartbeat_seq: ctx.heartbeat_seq,
        credential: ctx.credential,
        state_dir: ctx.state_dir,
        sessions,
        welcomed: false,
    };
    let outcome = tokio::select! {
        end = reader.read(stream, shutdown) => end,
        reason = write_frames(&mut sink, Outbound { heartbeats: heartbeat_rx, control: control_rx, outbox: ctx.outbox, sessions: session_frames }) => ReadEnd { shutdown: false, reason },
    };
    if outcome.shutdown {
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    }
    LinkEnd {
        welcomed: reader.welcomed,
        lasted: began.elapsed(),
        shutdown: outcome.shutdown,
        reason: outcome.reason,
    }
}

/// What this agent announces: every capability of the build, but `metrics`
/// (and `monitors` and `logs`, which ride on it) only when metrics are on.
fn capabilities(metrics_on: bool) -> Vec<String> {
    operon_proto::AGENT_CAPABILITIES
        .iter()
        // Monitors report through metrics, and shipped logs come with the
        // monitor set: all or none.
        .filter(|c| {
            metrics_on
                || ![
                    operon_proto::CAPABILITY_METRICS,
                    operon_proto::CAPABILITY_MONITORS,
                    operon_proto::CAPABILITY_LOGS,
                ]
                .contains(c)
        })
        .map(|c| c.to_string())
        .collect()
}

/// The queues the writer serves, in priority order.
struct Outbound<'a> {
    /// At most one pending heartbeat: never delayed behind bulk output.
    heartbeats: mpsc::Receiver<AgentMessage>,
    /// `Started` and `Output` from runners (bounded: back-pressure).
    outbox: &'a mut mpsc::Receiver<AgentMessage>,
    /// `Finished` and other replies: after the outbox, so that a `Finished`
    /// never overtakes its own output.
    control: mpsc::UnboundedReceiver<AgentMessage>,
    /// Session channels' frames, ready to send (binary data, text control),
    /// last: a busy terminal never delays the rest. Bounded by the windows.
    sessions: mpsc::UnboundedReceiver<Message>,
}

/// Write frames to the socket until it fails.
async fn write_frames(
    sink: &mut futures_util::stream::SplitSink<WsStream, Message>,
    mut queues: Outbound<'_>,
) -> String {
    loop {
        let frame = tokio::select! {
            biased;
            Some(message) = queues.heartbeats.recv() => Message::text(operon_proto::encode(&message)),
            Some(message) = queues.outbox.recv() => Message::text(operon_proto::encode(&message)),
            Some(message) = queues.control.recv() => Message::text(operon_proto::encode(&message)),
            Some(frame) = queues.sessions.recv() => frame,
            else => return "agent is stopping".to_owned(),
        };
        if let Err(err) = sink.send(frame).await {
            return format!("sending failed: {err}");
        }
    }
}

struct ReadEnd {
    shutdown: bool,
    reason: String,
}

struct Reader<'a> {
    supervisor: &'a mut Supervisor,
    done: &'a mut mpsc::UnboundedReceiver<CommandResult>,
    file_sync: &'a FileSyncHandle,
    sync_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    state_watch: &'a StateWatchHandle,
    state_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    inventory: &'a InventoryHandle,
    inventory_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    metrics: Option<&'a MetricsHandle>,
    metric_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    monitors: &'a mut Monitors,
    logs: Option<&'a LogsHandle>,
    log_events: &'a mut mpsc::UnboundedReceiver<AgentMessage>,
    control: Control,
    heartbeats: mpsc::Sender<AgentMessage>,
    heartbeat_override: Option<u64>,
    heartbeat_seq: &'a mut u64,
    credential: &'a mut Credential,
    state_dir: &'a Path,
    sessions: Sessions,
    welcomed: bool,
}

impl Reader<'_> {
    async fn read(
        &mut self,
        mut stream: futures_util::stream::SplitStream<WsStream>,
        shutdown: &mut Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> ReadEnd {
        let end = |reason: String| ReadEnd {
            shutdown: false,
            reason,
        };
        let mut heartbeat: Option<Interval> = None;
        let mut silence_limit = WELCOME_TIMEOUT;
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                frame = stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        None => return end("the server closed the connection".into()),
                        Some(Err(err)) => return end(format!("connection error: {err}")),
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default();
                            return end(format!("the server closed the connection {why}").trim_end().to_owned());
                        }
                        Some(Ok(Message::Text(text))) => {
                            if let Some(interval) = self.on_frame(text.as_str()) {
                                silence_limit = interval * MISSED_HEARTBEATS_BEFORE_DEAD as u32;
                                let mut ticker = tokio::time::interval(interval);
                                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                                heartbeat = Some(ticker);
                            }
                        }
                        Some(Ok(Message::Binary(bytes))) => self.sessions.on_binary(&bytes),
                        Some(Ok(_)) => {} // pings are answered by tungstenite
                    }
                }
                Some(result) = self.done.recv() => self.supervisor.on_done(result, &self.control),
                // Only after Welcome: the server takes reports from a session it accepted.
                Some(event) = self.sync_events.recv(), if self.welcomed => {
                    if let Some(control) = &self.control {
                        let _ = control.send(event);
                    }
                }
                Some(event) = self.state_events.recv(), if self.welcomed => {
                    if let Some(control) = &self.control {
                        let _ = control.send(event);
                    }
                }
                Some(event) = self.inventory_events.recv(), if self.welcomed => {
                    if let Some(control) = &self.control {
                        let _ = control.send(event);
                    }
                }
                Some(event) = self.metric_events.recv(), if self.welcomed => {
                    if let Some(control) = &self.control {
                        let _ = control.send(event);
                    }
                }
                Some(event) = self.log_events.recv(), if self.welcomed => {
                    if let Some(control) = &self.control {
                        let _ = control.send(event);
                    }
                }
                () = tick(&mut heartbeat) => {
                    *self.heartbeat_seq += 1;
                    // A heartbeat still queued means the link is slow; one is enough.
                    let _ = self.heartbeats.try_send(AgentMessage::Heartbeat { seq: *self.heartbeat_seq });
                    self.supervisor.prune_if_due();
                }
                () = tokio::time::sleep_until(last_heard + silence_limit) => {
                    let what = if self.welcomed { "nothing heard from the server" } else { "no Welcome from the server" };
                    return end(format!("{what} for {silence_limit:?}; dropping the link"));
                }
                () = shutdown.as_mut() => return ReadEnd { shutdown: true, reason: "agent is stopping".into() },
            }
        }
    }

    /// Handle one text frame. Returns the heartbeat interval on `Welcome`.
    fn on_frame(&mut self, text: &str) -> Option<Duration> {
        let message = match operon_proto::decode::<ServerMessage>(text) {
            Ok(message) => message,
            Err(err) => {
                let start: String = text.chars().take(120).collect();
                tracing::warn!(%err, frame = %start, "ignoring a malformed frame from the server");
                return None;
            }
        };
        match message {
            ServerMessage::Welcome {
                node_id,
                name,
                protocol_version,
                heartbeat_secs,
            } => {
                if protocol_version != PROTOCOL_VERSION {
                    tracing::warn!(
                        server = protocol_version,
                        agent = PROTOCOL_VERSION,
                        "protocol versions differ"
                    );
                }
                let secs = self.heartbeat_override.unwrap_or(heartbeat_secs).max(1);
                tracing::info!(%node_id, %name, heartbeat_secs = secs, "connected");
                self.welcomed = true;
                self.supervisor.resend_unacknowledged(&self.control);
                self.state_watch.resync();
                self.inventory.welcomed();
                if let Some(metrics) = self.metrics {
                    metrics.welcomed();
                }
                if let Some(logs) = self.logs {
                    logs.welcomed();
                }
                return Some(Duration::from_secs(secs));
            }
            ServerMessage::HeartbeatAck { .. } => {}
            ServerMessage::Run(command) => self.supervisor.on_run(command, &self.control),
            ServerMessage::Cancel { invocation_id } => {
                self.supervisor.on_cancel(&invocation_id, &self.control)
            }
            ServerMessage::ResultAck { invocation_id } => self.supervisor.on_ack(&invocation_id),
            ServerMessage::RotateCredential {
                rotation_id,
                credential,
            } => self.rotate_credential(rotation_id, credential.0),
            ServerMessage::SyncFile(file) => self.file_sync.apply(file),
            ServerMessage::SyncForget { sync_id } => self.file_sync.forget(sync_id),
            ServerMessage::StateForget { association } => self.state_watch.forget(association),
            ServerMessage::InventoryAck { kind, digest } => {
                self.inventory.acknowledged(kind, digest)
            }
            ServerMessage::InventoryResync { kind } => self.inventory.resync(kind),
            ServerMessage::MetricsAck { seq } => {
                if let Some(metrics) = self.metrics {
                    metrics.acknowledged(seq);
                }
            }
            ServerMessage::Monitors(set) => self.monitors.apply(set),
            ServerMessage::LogsAck { seq } => {
                if let Some(logs) = self.logs {
                    logs.acknowledged(seq);
                }
            }
            ServerMessage::ChannelOpen(open) => self.sessions.open(open),
            ServerMessage::ChannelResize {
                channel,
                cols,
                rows,
            } => self.sessions.resize(channel, cols, rows),
            ServerMessage::ChannelClose { channel, reason } => {
                self.sessions.close(channel, &reason)
            }
        }
        None
    }

    /// Store the new credential durably, then confirm it. On failure the old
    /// credential stays in use (the server keeps accepting it).
    fn rotate_credential(&mut self, rotation_id: String, new_secret: String) {
        let mut rotated = self.credential.clone();
        rotated.credential = new_secret;
        let answer = match credential::store_credential(self.state_dir, &rotated) {
            Ok(()) => {
                *self.credential = rotated;
                tracing::info!(%rotation_id, "node credential rotated and stored");
                AgentMessage::CredentialStored { rotation_id }
            }
            Err(err) => {
                tracing::error!(%rotation_id, %err, "cannot store the rotated node credential; keeping the current one");
                AgentMessage::CredentialNotStored {
                    rotation_id,
                    reason: err.to_string(),
                }
            }
        };
        if let Some(control) = &self.control {
            let _ = control.send(answer);
        }
    }
}

async fn tick(heartbeat: &mut Option<Interval>) {
    match heartbeat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_url_switches_scheme_and_appends_the_path() {
        assert_eq!(
            connect_url("http://127.0.0.1:7780").unwrap(),
            "ws://127.0.0.1:7780/v1/agent/connect"
        );
        assert_eq!(
            connect_url("https://ops.example/").unwrap(),
            "wss://ops.example/v1/agent/connect"
        );
        assert!(connect_url("ftp://x").is_err());
    }

    #[test]
    fn metrics_is_announced_only_when_on() {
        let on = capabilities(true);
        let off = capabilities(false);
        assert!(on.iter().any(|c| c == operon_proto::CAPABILITY_METRICS));
        assert!(!off.iter().any(|c| c == operon_proto::CAPABILITY_METRICS));
        assert!(!off.iter().any(|c| c == operon_proto::CAPABILITY_MONITORS));
        assert!(!off.iter().any(|c| c == operon_proto::CAPABILITY_LOGS));
        assert!(on.iter().any(|c| c == operon_proto::CAPABILITY_LOGS));
        assert_eq!(on.len(), operon_proto::AGENT_CAPABILITIES.len());
        assert_eq!(off.len() + 3, on.len());
        for announced in [&on, &off] {
            assert!(
                announced
                    .iter()
                    .any(|c| c == operon_proto::CAPABILITY_SESSIONS)
            );
        }
    }
}
