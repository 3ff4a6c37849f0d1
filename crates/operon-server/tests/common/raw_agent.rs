//! An agent speaking the protocol by hand (enrolled with tags, connected,
//! welcomed), to watch exactly which frames the server sends it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use operon_proto::{AgentMessage, ServerMessage};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::Api;

pub struct RawAgent {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    credential: String,
    url: String,
    capabilities: Vec<String>,
    heartbeat: u64,
}

impl RawAgent {
    /// Enroll `name` with `tags`, connect announcing `capabilities`, and
    /// wait for the `Welcome`.
    pub async fn connect(
        api: &Api,
        name: &str,
        tags: &[(&str, &str)],
        capabilities: &[&str],
    ) -> RawAgent {
        let tags: BTreeMap<String, String> = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let token = api
            .server
            .create_enroll_token(tags, 1, Duration::from_secs(60))
            .await
            .unwrap();
        let enrolled: Value = reqwest::Client::new()
            .post(format!("{}/v1/agent/enroll", api.server.url()))
            .json(&json!({"enroll_token": token, "name": name, "inventory": operon_proto::Inventory::default()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let credential = enrolled["credential"].as_str().unwrap().to_owned();
        let url = format!(
            "{}/v1/agent/connect",
            api.server.url().replacen("http://", "ws://", 1)
        );
        let capabilities: Vec<String> = capabilities.iter().map(|c| c.to_string()).collect();
        let ws = open(&url, &credential, &capabilities).await;
        RawAgent {
            ws,
            credential,
            url,
            capabilities,
            heartbeat: 0,
        }
    }

    /// Drop the connection and connect again (a new session).
    pub async fn reconnect(&mut self) {
        let _ = self.ws.close(None).await;
        self.ws = open(&self.url, &self.credential, &self.capabilities).await;
    }

    /// Send one frame.
    #[allow(dead_code)] // not every test binary sends frames by hand
    pub async fn send(&mut self, message: &AgentMessage) {
        self.ws
            .send(operon_proto::encode(message).into())
            .await
            .unwrap();
    }

    /// The next frame that is not a heartbeat answer, within `wait`; `None`
    /// if none came. Sends a heartbeat first so the session stays alive.
    pub async fn next_within(&mut self, wait: Duration) -> Option<ServerMessage> {
        self.heartbeat += 1;
        let beat = AgentMessage::Heartbeat {
            seq: self.heartbeat,
        };
        self.ws
            .send(operon_proto::encode(&beat).into())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            if let Some(Ok(Message::Text(text))) = frame {
                match operon_proto::decode(&text).unwrap() {
                    ServerMessage::HeartbeatAck { .. } => continue,
                    message => return Some(message),
                }
            }
        }
    }

    /// Send a metric batch and wait for its `MetricsAck` (other frames
    /// skipped), within 10 s.
    #[allow(dead_code)] // not every test binary sends metrics
    pub async fn send_metrics(&mut self, seq: u64, points: Vec<operon_proto::MetricPoint>) {
        let batch = AgentMessage::Metrics(operon_proto::MetricBatch { seq, points });
        self.ws
            .send(operon_proto::encode(&batch).into())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(ServerMessage::MetricsAck { seq: acked }) if acked == seq => return,
                Some(_) => continue,
                None => panic!("metric batch {seq} not acknowledged within 10 s"),
            }
        }
    }

    /// The next `Monitors` frame (other frames skipped), within 10 s.
    pub async fn monitors(&mut self) -> operon_proto::MonitorSet {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(ServerMessage::Monitors(set)) => return set,
                Some(_) => continue,
                None => panic!("no monitor set within 10 s"),
            }
        }
    }
}

async fn open(
    url: &str,
    credential: &str,
    capabilities: &[String],
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {credential}").parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello = AgentMessage::Hello {
        protocol_version: operon_proto::PROTOCOL_VERSION,
        inventory: Default::default(),
        capabilities: capabilities.to_vec(),
    };
    ws.send(operon_proto::encode(&hello).into()).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a welcome within 10 s")
        .unwrap()
        .unwrap();
    let Message::Text(text) = frame else {
        panic!("{frame:?}")
    };
    match operon_proto::decode(&text).unwrap() {
        ServerMessage::Welcome { .. } => ws,
        other => panic!("{other:?}"),
    }
}
