//! The client link of a session: `GET /v1/sessions/connect?<query>`
//! upgraded to a WebSocket, and the reading of what comes on it.
//!
//! Kept apart from the commands so the URL and query building and the
//! frame classification can be tested without a server; the frames
//! themselves are `operon_proto::session`'s.

use anyhow::{Context, Result, anyhow, bail};
use operon_api::sessions::ConnectQuery;
use operon_proto::session::{ChannelFrame, ClientMessage, SessionEvent};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The path of the session endpoint.
pub const CONNECT_PATH: &str = "/v1/sessions/connect";

/// How long connecting (TCP, TLS and the upgrade) may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `CONNECT_PATH?query`, the query encoded as a form (what the server's
/// `Query<ConnectQuery>` reads).
pub fn connect_path(query: &ConnectQuery) -> Result<String> {
    let encoded = serde_urlencoded::to_string(query).context("encoding the session query")?;
    Ok(format!("{CONNECT_PATH}?{encoded}"))
}

/// `http(s)://host[:port][/prefix]` + `path` as `ws(s)://...`.
pub fn websocket_url(base: &str, path: &str) -> Result<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        bail!("the server URL {base:?} is not http:// or https://");
    };
    Ok(format!("{rest}{path}"))
}

pub(super) async fn connect(
    base: &str,
    path: &str,
    token: &str,
    connector: &Connector,
    trusted_by: &str,
) -> Result<WsStream> {
    let url = websocket_url(base, path)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| anyhow!("invalid session URL {url}: {e}"))?;
    let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| anyhow!("the API token is not a valid HTTP header value"))?;
    bearer.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, bearer);
    // Nagle off: a keystroke goes out at once, not after the last one's ACK.
    let attempt = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        true,
        Some(connector.clone()),
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Err(_) => {
            bail!("the Operon server at {base} did not open the session within {CONNECT_TIMEOUT:?}")
        }
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body = response.body().as_deref().unwrap_or_default();
            Err(anyhow!("{} (HTTP {status})", refusal_message(body, status)))
        }
        Ok(Err(err)) => Err(link_failure(base, trusted_by, &err)),
    }
}

/// The message of the server's error body, escaped like every other
/// server text the CLI prints.
fn refusal_message(body: &[u8], status: u16) -> String {
    match serde_json::from_slice::<operon_api::ErrorBody>(body) {
        Ok(body) => super::output::esc(&body.error.message),
        Err(_) => format!("the server refused the session (HTTP {status})"),
    }
}

fn link_failure(base: &str, trusted_by: &str, err: &tungstenite::Error) -> anyhow::Error {
    if let Some(mismatch) = operon_agent::tls::find_pin_mismatch(err) {
        return anyhow!(
            "refusing the Operon server at {base}: {mismatch} (pinned by {trusted_by})"
        );
    }
    if let Some(failure) = operon_agent::tls::find_tls_failure(err) {
        return anyhow!(
            "TLS with the Operon server at {base} failed: {failure} (the server was checked against {trusted_by}; pass --server-fingerprint or --ca-cert, or set OPERON_SERVER_FINGERPRINT / OPERON_CA_CERT)"
        );
    }
    anyhow!(
        "cannot open a session with the Operon server at {base} ({err}); is it running? (set --server or OPERON_SERVER)"
    )
}

/// What one WebSocket message from the server means.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Frame(ChannelFrame),
    Event(SessionEvent),
    /// Ping, pong: nothing for the session (tungstenite answers pings).
    Nothing,
    /// The server closed the WebSocket.
    Closed,
}

/// Read one message; a frame or event that cannot be read is an error
/// (the server and client disagree, the session cannot go on safely).
pub fn classify(message: Message) -> Result<Incoming> {
    match message {
        Message::Binary(bytes) => ChannelFrame::decode(&bytes)
            .map(Incoming::Frame)
            .map_err(|e| anyhow!("the server sent a bad channel frame: {e}")),
        Message::Text(text) => operon_proto::decode::<SessionEvent>(text.as_str())
            .map(Incoming::Event)
            .map_err(|e| anyhow!("the server sent an unknown session event: {e}")),
        Message::Close(_) => Ok(Incoming::Closed),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(Incoming::Nothing),
    }
}

/// A channel frame as a WebSocket message.
pub fn frame_message(frame: &ChannelFrame) -> Message {
    Message::binary(frame.encode())
}

/// A control message as a WebSocket text message.
pub fn control_message(message: &ClientMessage) -> Message {
    Message::text(operon_proto::encode(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_form_encoded_without_absent_fields() {
        let query = ConnectQuery {
            node: "web 1".into(),
            kind: Some("exec".into()),
            user: Some("deploy".into()),
            command: Some("ls -l 'a b' && echo ok".into()),
            cols: Some(120),
            rows: Some(40),
            term: Some("xterm-256color".into()),
            idle_timeout: Some(600),
            ..ConnectQuery::default()
        };
        let path = connect_path(&query).unwrap();
        assert_eq!(
            path,
            "/v1/sessions/connect?node=web+1&kind=exec&user=deploy&command=ls+-l+%27a+b%27+%26%26+echo+ok&cols=120&rows=40&term=xterm-256color&idle_timeout=600"
        );
        let back: ConnectQuery =
            serde_urlencoded::from_str(path.split_once('?').unwrap().1).unwrap();
        assert_eq!(back, query);
        let forward = ConnectQuery {
            node: "db".into(),
            kind: Some("port-forward".into()),
            host: Some("127.0.0.1".into()),
            port: Some(5432),
            ..ConnectQuery::default()
        };
        assert_eq!(
            connect_path(&forward).unwrap(),
            "/v1/sessions/connect?node=db&kind=port-forward&host=127.0.0.1&port=5432"
        );
    }

    #[test]
    fn the_url_follows_the_servers_scheme() {
        assert_eq!(
            websocket_url("http://127.0.0.1:7780/", "/v1/x?a=1").unwrap(),
            "ws://127.0.0.1:7780/v1/x?a=1"
        );
        assert_eq!(
            websocket_url("https://ops.example.com/operon", "/v1/x").unwrap(),
            "wss://ops.example.com/operon/v1/x"
        );
        assert!(websocket_url("ftp://x", "/v1/x").is_err());
    }

    #[test]
    fn refusals_show_the_servers_message_escaped() {
        let body =
            br#"{"error":{"code":"Forbidden","message":"no \u001b[2Jsessions:Start on web-1"}}"#;
        assert_eq!(
            refusal_message(body, 403),
            "no \\x1b[2Jsessions:Start on web-1"
        );
        assert_eq!(
            refusal_message(b"<html>", 502),
            "the server refused the session (HTTP 502)"
        );
    }

    #[test]
    fn messages_are_frames_events_or_the_end() {
        let data = ChannelFrame::Data {
            channel: 0,
            bytes: b"hi".to_vec(),
        };
        assert_eq!(
            classify(frame_message(&data)).unwrap(),
            Incoming::Frame(data)
        );
        let ended = SessionEvent::Ended {
            reason: "idle for 10m".into(),
            exit_code: None,
        };
        let text = Message::text(operon_proto::encode(&ended));
        assert_eq!(classify(text).unwrap(), Incoming::Event(ended));
        assert_eq!(classify(Message::Close(None)).unwrap(), Incoming::Closed);
        assert!(classify(Message::binary(vec![7, 0, 0, 0, 0])).is_err());
        assert!(classify(Message::text("{\"type\":\"nonsense\"}")).is_err());
        let resize = control_message(&ClientMessage::Resize { cols: 1, rows: 2 });
        assert_eq!(
            resize.into_text().unwrap().as_str(),
            r#"{"type":"resize","cols":1,"rows":2}"#
        );
    }
}
