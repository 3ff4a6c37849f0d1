//! A session client speaking `operon_proto::session` by hand: opens
//! `/v1/sessions/connect`, sends input within the window, reads output
//! crediting what it read (or not, to play a slow reader).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use operon_proto::session::{
    ChannelFrame, ClientMessage, SendWindow, SessionEvent, TERMINAL_CHANNEL,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(20);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the server sent, decoded.
#[derive(Debug)]
pub enum Incoming {
    Frame(ChannelFrame),
    Event(SessionEvent),
}

pub struct SessionClient {
    ws: Ws,
    /// Our window to send on, per channel.
    send: std::collections::HashMap<u32, SendWindow>,
    /// Credit reads automatically.
    pub credit: bool,
    /// Terminal output read so far (channel 0).
    pub output: Vec<u8>,
    /// Data read so far on every other channel.
    pub data: std::collections::HashMap<u32, Vec<u8>>,
    /// Channels the server ended (`Eof`).
    pub eof: std::collections::HashSet<u32>,
    pub events: Vec<SessionEvent>,
    /// How the link ended, once it has.
    pub gone: Option<String>,
}

/// Open a session; `Err((status, body))` when the server refuses it.
pub async fn connect(
    base_url: &str,
    token: &str,
    query: &str,
) -> Result<SessionClient, (u16, String)> {
    let url = format!(
        "{}/v1/sessions/connect?{query}",
        base_url.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    connect_with(request).await
}

/// Open a session with a request built by the caller (the console's
/// endpoint, with a cookie and an `Origin`).
pub async fn connect_with(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<SessionClient, (u16, String)> {
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(SessionClient {
            ws,
            send: Default::default(),
            credit: true,
            output: Vec::new(),
            data: Default::default(),
            eof: Default::default(),
            events: Vec::new(),
            gone: None,
        }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            Err((status, body))
        }
        Err(e) => panic!("connecting the session: {e}"),
    }
}

impl SessionClient {
    pub async fn next(&mut self, wait: Duration) -> Option<Incoming> {
        loop {
            let frame = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => {
                    self.gone = Some(format!("nothing within {wait:?}"));
                    return None;
                }
                Ok(None) => {
                    self.gone = Some("the stream ended".into());
                    return None;
                }
                Ok(Some(Err(e))) => {
                    self.gone = Some(format!("error: {e}"));
                    return None;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Message::Binary(bytes) => {
                    let frame = ChannelFrame::decode(&bytes).unwrap();
                    match &frame {
                        ChannelFrame::Data { channel, bytes } => {
                            if *channel == TERMINAL_CHANNEL {
                                self.output.extend_from_slice(bytes);
                            } else {
                                self.data
                                    .entry(*channel)
                                    .or_default()
                                    .extend_from_slice(bytes);
                            }
                            if self.credit && !bytes.is_empty() {
                                let credit = ChannelFrame::Window {
                                    channel: *channel,
                                    credit: bytes.len() as u32,
                                };
                                // The server may be closing: its last frames are still to read.
                                let _ = self.ws.send(Message::Binary(credit.encode().into())).await;
                            }
                        }
                        ChannelFrame::Window { channel, credit } => {
                            self.send
                                .entry(*channel)
                                .or_default()
                                .credit(*credit)
                                .unwrap();
                        }
                        ChannelFrame::Eof { channel } => {
                            self.eof.insert(*channel);
                        }
                    }
                    return Some(Incoming::Frame(frame));
                }
                Message::Text(text) => {
                    let event: SessionEvent = operon_proto::decode(text.as_str()).unwrap();
                    self.events.push(event.clone());
                    return Some(Incoming::Event(event));
                }
                Message::Close(frame) => {
                    self.gone = Some(format!("closed: {frame:?}"));
                    return None;
                }
                _ => continue,
            }
        }
    }

    /// Wait for `Started`.
    pub async fn started(&mut self) -> String {
        match self.next(WAIT).await {
            Some(Incoming::Event(SessionEvent::Started { session_id, .. })) => session_id,
            other => panic!("expected Started, got {other:?}"),
        }
    }

    /// Send bytes on `channel`, waiting for credit when the window is spent.
    pub async fn write(&mut self, channel: u32, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let allowed = self.send.entry(channel).or_default().allowance(bytes.len());
            if allowed == 0 {
                self.next(WAIT).await.expect("credit arrives");
                continue;
            }
            let frame = ChannelFrame::Data {
                channel,
                bytes: bytes[..allowed].to_vec(),
            };
            self.ws
                .send(Message::Binary(frame.encode().into()))
                .await
                .unwrap();
            self.send.get_mut(&channel).unwrap().spend(allowed);
            bytes = &bytes[allowed..];
        }
    }

    pub async fn type_line(&mut self, line: &str) {
        self.write(TERMINAL_CHANNEL, format!("{line}\n").as_bytes())
            .await;
    }

    pub async fn message(&mut self, message: &ClientMessage) {
        let text = operon_proto::encode(message);
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn send_frame(&mut self, frame: &ChannelFrame) {
        self.ws
            .send(Message::Binary(frame.encode().into()))
            .await
            .unwrap();
    }

    /// Read until the terminal output contains `text` (from `from` on).
    pub async fn read_until(&mut self, from: usize, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen =
                String::from_utf8_lossy(&self.output[from.min(self.output.len())..]).into_owned();
            if seen.contains(text) {
                return seen;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.next(left).await.is_none() {
                panic!(
                    "no {text:?} in the output; saw {seen:?}, events {:?}",
                    self.events
                );
            }
        }
    }

    /// Read until `Ended`; its reason and exit code.
    pub async fn ended(&mut self) -> (String, Option<i32>) {
        loop {
            match self.next(WAIT).await {
                Some(Incoming::Event(SessionEvent::Ended { reason, exit_code })) => {
                    return (reason, exit_code);
                }
                Some(_) => continue,
                None => panic!(
                    "the session ended without Ended ({:?}); events {:?}",
                    self.gone, self.events
                ),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Read until `channel` is closed; the error it closed with.
    pub async fn closed(&mut self, channel: u32) -> Option<String> {
        loop {
            match self.next(WAIT).await {
                Some(Incoming::Event(SessionEvent::Closed {
                    channel: c, error, ..
                })) if c == channel => {
                    return error;
                }
                Some(_) => continue,
                None => panic!("channel {channel} never closed ({:?})", self.gone),
            }
        }
    }
}
