//! A minimal in-test server's side of the agent link, shared by the agent's
//! integration tests: accept the WebSocket (checking the credential), read
//! and send frames, run an agent until told to stop.

// The handshake callback signature is tungstenite's, large error type included.
#![allow(clippy::result_large_err)]
// Not every test binary uses every helper.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use operon_agent::{AgentConfig, AgentError};
use operon_proto::{AgentMessage, ServerMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

pub const WAIT: Duration = Duration::from_secs(15);

pub type Ws = WebSocketStream<TcpStream>;

/// Run the agent until the sender is used (or dropped).
pub fn spawn_agent(
    config: AgentConfig,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), AgentError>>,
) {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(operon_agent::run(config, async move {
        let _ = stop_rx.await;
    }));
    (stop_tx, handle)
}

/// Accept one WebSocket upgrade, checking the bearer credential `cred-1`.
pub async fn accept_link(listener: &TcpListener) -> Ws {
    accept_link_with(listener, "cred-1").await
}

/// Accept one WebSocket upgrade from an agent presenting `credential`.
pub async fn accept_link_with(listener: &TcpListener, credential: &str) -> Ws {
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the agent connects in time")
        .unwrap();
    let expected = format!("Bearer {credential}");
    tokio_tungstenite::accept_hdr_async(stream, |request: &Request, response: Response| {
        assert_eq!(request.uri().path(), "/v1/agent/connect");
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(auth.as_deref(), Some(expected.as_str()));
        Ok(response)
    })
    .await
    .unwrap()
}

/// The next frame, inventory reports left out (sent after every Welcome;
/// `inventory_sets` tests them).
pub async fn recv(ws: &mut Ws) -> AgentMessage {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            match operon_proto::decode(text.as_str()).unwrap() {
                AgentMessage::InventoryReport(_) => continue,
                message => return message,
            }
        }
    }
}

pub async fn send(ws: &mut Ws, message: &ServerMessage) {
    ws.send(Message::text(operon_proto::encode(message)))
        .await
        .unwrap();
}

/// A frame from the agent: a text message or a binary channel frame.
#[derive(Debug)]
pub enum Frame {
    Message(AgentMessage),
    Channel(operon_proto::ChannelFrame),
}

/// The next text or binary frame (inventory reports left out), or `None`
/// when nothing comes within `wait`. Heartbeats are answered, as the server
/// does (the agent drops a link that stays silent), and returned.
pub async fn recv_frame_within(ws: &mut Ws, wait: Duration) -> Option<Frame> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()?
            .expect("the link is open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => match operon_proto::decode(text.as_str()).unwrap() {
                AgentMessage::InventoryReport(_) => continue,
                AgentMessage::Heartbeat { seq } => {
                    send(ws, &ServerMessage::HeartbeatAck { seq }).await;
                    return Some(Frame::Message(AgentMessage::Heartbeat { seq }));
                }
                message => return Some(Frame::Message(message)),
            },
            Message::Binary(bytes) => {
                return Some(Frame::Channel(
                    operon_proto::ChannelFrame::decode(&bytes).expect("a valid channel frame"),
                ));
            }
            _ => continue,
        }
    }
}

/// The next text or binary frame (inventory reports left out).
pub async fn recv_frame(ws: &mut Ws) -> Frame {
    recv_frame_within(ws, WAIT).await.expect("a frame in time")
}

pub async fn send_channel_frame(ws: &mut Ws, frame: &operon_proto::ChannelFrame) {
    ws.send(Message::binary(frame.encode())).await.unwrap();
}

/// An enrolled node (its credential on disk, for the server at `url`):
/// metrics off, no account creation. Tests change what they need with
/// struct update syntax.
pub fn enrolled_config(url: &str, state: &std::path::Path) -> AgentConfig {
    operon_agent::credential::store_credential(
        state,
        &operon_agent::credential::Credential {
            node_id: "n-1".into(),
            name: "node-a".into(),
            credential: "cred-1".into(),
            server_url: url.into(),
            server_fingerprint: None,
        },
    )
    .unwrap();
    AgentConfig {
        server_url: url.into(),
        state_dir: state.into(),
        enroll_token: None,
        name: None,
        tags: std::collections::BTreeMap::new(),
        heartbeat_secs: None,
        server_fingerprint: None,
        tls_ca: None,
        insecure: false,
        host_root: None,
        inventory_interval: operon_agent::inventory_sets::DEFAULT_INTERVAL,
        custom_inventory_dir: state.join("inventory.d"),
        metrics_interval: Duration::ZERO,
        custom_metrics_dir: state.join("metrics.d"),
        session_create_user: false,
    }
}

/// A one-step `Run` of `script` as invocation `id`.
pub fn run_command(id: &str, script: &str) -> ServerMessage {
    ServerMessage::Run(operon_proto::RunCommand {
        invocation_id: id.into(),
        command_id: "c-1".into(),
        steps: vec![operon_proto::Step {
            name: "s".into(),
            script: script.into(),
            working_directory: None,
            timeout_secs: None,
            state: None,
        }],
        timeout_secs: 30,
        cwd: None,
        env: std::collections::BTreeMap::new(),
        user: None,
        output_cap_bytes: 1024,
    })
}
