//! `operon sessions port-forward`: a local listener whose connections are
//! carried, each as its own channel, over one session link to a TCP
//! address the node reaches.
//!
//! Per connection two tasks move bytes: local socket -> link, only within
//! the channel's send window (it waits for the server's credit), and link
//! -> local socket, crediting each chunk back once written. The main loop
//! only routes, so one slow connection never stalls the others, and no
//! connection holds more than a window of data in this process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use operon_api::sessions::ConnectQuery;
use operon_proto::session::{
    ChannelFrame, ClientMessage, MAX_DATA_FRAME, ReceiveWindow, SendWindow, SessionEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::client::Client;
use super::output::esc;
use super::session_link::{
    Incoming, WsStream, classify, connect_path, control_message, frame_message,
};
use super::session_terminal::wait_started;

/// Messages waiting for the WebSocket: data within windows, credits,
/// control. Bounded so a stalled link pushes back on every connection.
const OUTGOING_QUEUE: usize = 64;

/// The pause after a failed accept.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// What to forward, from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub node: String,
    pub remote_host: String,
    pub remote_port: u16,
    pub local_host: String,
    pub local_port: u16,
}

impl Forward {
    /// `remote` is `HOST:PORT` (`[v6]:PORT` too); `local` is `[ADDR:]PORT`,
    /// the address 127.0.0.1 when left out.
    pub fn parse(node: &str, remote: &str, local: &str) -> Result<Forward> {
        let (remote_host, remote_port) = host_port(remote)
            .with_context(|| format!("--remote {remote:?}: expected HOST:PORT"))?;
        let (local_host, local_port) = match local.parse::<u16>() {
            Ok(port) => ("127.0.0.1".to_string(), port),
            Err(_) => host_port(local)
                .with_context(|| format!("--local {local:?}: expected [ADDR:]PORT"))?,
        };
        Ok(Forward {
            node: node.to_string(),
            remote_host,
            remote_port,
            local_host,
            local_port,
        })
    }

    pub fn query(&self) -> ConnectQuery {
        ConnectQuery {
            node: self.node.clone(),
            kind: Some("port-forward".into()),
            host: Some(self.remote_host.clone()),
            port: Some(self.remote_port),
            ..ConnectQuery::default()
        }
    }
}

fn host_port(text: &str) -> Result<(String, u16)> {
    let (host, port) = text.rsplit_once(':').ok_or_else(|| anyhow!("no port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(['[', ']'])
        || (host.contains(':') && !text.starts_with('['))
    {
        bail!("bad host {host:?} (write an IPv6 address as [addr]:port)");
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| anyhow!("bad port {port:?}"))?;
    Ok((host.to_string(), port))
}

/// Forward until ctrl-c or SIGTERM (exit 0) or the server ends the session
/// (exit 1, with why on stderr).
pub async fn run(client: &Client, forward: Forward, query: ConnectQuery) -> Result<ExitCode> {
    let listener = TcpListener::bind((forward.local_host.as_str(), forward.local_port))
        .await
        .with_context(|| format!("listening on {}:{}", forward.local_host, forward.local_port))?;
    let local = listener.local_addr().context("reading the local address")?;
    let mut ws = client.websocket(&connect_path(&query)?).await?;
    let session_id = wait_started(&mut ws).await?;
    eprintln!(
        "Forwarding {local} -> {}:{} on {} (session {})",
        esc(&forward.remote_host),
        forward.remote_port,
        esc(&forward.node),
        esc(&session_id)
    );
    let (sink, stream) = ws.split();
    let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
    let writer = tokio::spawn(write_link(sink, queue));
    let mut router = Router::new(outgoing);
    let end = router.run(listener, stream).await;
    router.shutdown();
    // Let the close (or the last frames) reach the server, briefly.
    drop(router);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    match end? {
        None => Ok(ExitCode::SUCCESS),
        Some(reason) => {
            eprintln!("session ended: {}", esc(&reason));
            Ok(ExitCode::from(1))
        }
    }
}

/// Send queued messages until the queue closes or a Close was sent.
async fn write_link(mut sink: SplitSink<WsStream, Message>, mut queue: mpsc::Receiver<Message>) {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Credit to send on one channel, shared by the router (which adds the
/// server's credits) and the connection's reading task (which spends it).
#[derive(Default)]
struct Credit {
    window: Mutex<SendWindow>,
    more: Notify,
}

impl Credit {
    /// Wait until something may be sent; how much (at most one frame).
    async fn allowance(&self) -> usize {
        loop {
            let allowed = lock(&self.window).allowance(MAX_DATA_FRAME);
            if allowed > 0 {
                return allowed;
            }
            // `notify_one` keeps a permit when nobody waits, so a credit
            // arriving between the check and here is not missed.
            self.more.notified().await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicked task leaves plain counters that are still meaningful.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the router hands a connection's writing task.
enum Inbound {
    Data(Vec<u8>),
    Eof,
}

struct Connection {
    inbound: mpsc::UnboundedSender<Inbound>,
    received: Arc<Mutex<ReceiveWindow>>,
    credit: Arc<Credit>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Connection {
    /// Drop the connection at once (the local socket closes).
    fn reset(self) {
        self.reader.abort();
        self.writer.abort();
    }

    /// No more from the server: the writing task finishes what is queued,
    /// the reading task stops; the socket closes when both are done.
    fn finish(self) {
        self.reader.abort();
        drop(self.inbound);
    }
}

/// Routes frames between the link and the local connections.
struct Router {
    outgoing: mpsc::Sender<Message>,
    connections: HashMap<u32, Connection>,
    next_channel: u32,
    /// Channels whose local side failed (their tasks report here).
    gone: (mpsc::UnboundedSender<u32>, mpsc::UnboundedReceiver<u32>),
}

impl Router {
    fn new(outgoing: mpsc::Sender<Message>) -> Router {
        Router {
            outgoing,
            connections: HashMap::new(),
            next_channel: 1,
            gone: mpsc::unbounded_channel(),
        }
    }

    /// `None` when stopped here (a signal), `Some(reason)` when the server
    /// ended the session.
    async fn run(
        &mut self,
        listener: TcpListener,
        mut stream: futures_util::stream::SplitStream<WsStream>,
    ) -> Result<Option<String>> {
        let mut stop = std::pin::pin!(super::shutdown_signal());
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => self.open(socket, peer).await?,
                    Err(e) => {
                        eprintln!("accepting a local connection failed: {e}");
                        // Out of descriptors, say: give the others time to close.
                        tokio::time::sleep(ACCEPT_RETRY).await;
                    }
                },
                message = stream.next() => {
                    let message = match message {
                        None => return Ok(Some("the server closed the connection".into())),
                        Some(Err(e)) => return Ok(Some(format!("the connection failed: {e}"))),
                        Some(Ok(message)) => message,
                    };
                    if let Some(reason) = self.incoming(classify(message)?).await? {
                        return Ok(Some(reason));
                    }
                }
                Some(channel) = self.gone.1.recv() => {
                    if let Some(connection) = self.connections.remove(&channel) {
                        connection.reset();
                    }
                }
                () = &mut stop => {
                    let _ = self.outgoing.send(Message::Close(None)).await;
                    return Ok(None);
                }
            }
        }
    }

    async fn open(&mut self, socket: TcpStream, peer: SocketAddr) -> Result<()> {
        let channel = self.next_channel;
        self.next_channel = self
            .next_channel
            .checked_add(1)
            .ok_or_else(|| anyhow!("out of channel numbers"))?;
        let _ = socket.set_nodelay(true);
        // Announced before any of its data: both go through the one queue.
        // A link that takes no more ends the session soon (the stream
        // tells why); until then new connections are just dropped.
        if !self
            .send(control_message(&ClientMessage::Open { channel }))
            .await
        {
            return Ok(());
        }
        tracing::debug!(channel, %peer, "forwarding a local connection");
        let (read, write) = socket.into_split();
        let credit = Arc::new(Credit::default());
        let received = Arc::new(Mutex::new(ReceiveWindow::default()));
        let (inbound, inbound_queue) = mpsc::unbounded_channel();
        let reader = tokio::spawn(local_to_link(
            channel,
            read,
            credit.clone(),
            self.outgoing.clone(),
            self.gone.0.clone(),
        ));
        let writer = tokio::spawn(link_to_local(
            channel,
            write,
            inbound_queue,
            received.clone(),
            self.outgoing.clone(),
            self.gone.0.clone(),
        ));
        self.connections.insert(
            channel,
            Connection {
                inbound,
                received,
                credit,
                reader,
                writer,
            },
        );
        Ok(())
    }

    /// Route one message; `Some(reason)` when the session ended.
    async fn incoming(&mut self, incoming: Incoming) -> Result<Option<String>> {
        match incoming {
            Incoming::Frame(ChannelFrame::Data { channel, bytes }) => {
                let Some(connection) = self.connections.get(&channel) else {
                    return Ok(None);
                };
                if lock(&connection.received).receive(bytes.len()).is_err() {
                    eprintln!("connection {channel}: the server sent past the window; closing it");
                    self.reset(channel).await;
                } else {
                    let _ = connection.inbound.send(Inbound::Data(bytes));
                }
            }
            Incoming::Frame(ChannelFrame::Window { channel, credit }) => {
                let Some(connection) = self.connections.get(&channel) else {
                    return Ok(None);
                };
                if lock(&connection.credit.window).credit(credit).is_err() {
                    eprintln!(
                        "connection {channel}: the server credited more than was sent; closing it"
                    );
                    self.reset(channel).await;
                } else {
                    connection.credit.more.notify_one();
                }
            }
            Incoming::Frame(ChannelFrame::Eof { channel }) => {
                if let Some(connection) = self.connections.get(&channel) {
                    let _ = connection.inbound.send(Inbound::Eof);
                }
            }
            Incoming::Event(SessionEvent::Closed { channel, error, .. }) => {
                if let Some(error) = &error {
                    eprintln!("connection {channel}: {}", esc(error));
                }
                if let Some(connection) = self.connections.remove(&channel) {
                    match error {
                        Some(_) => connection.reset(),
                        None => connection.finish(),
                    }
                }
            }
            Incoming::Event(SessionEvent::Ended { reason, .. }) => return Ok(Some(reason)),
            Incoming::Event(SessionEvent::Started { .. }) | Incoming::Nothing => {}
            Incoming::Closed => {
                return Ok(Some(
                    "the server closed the session without saying why".into(),
                ));
            }
        }
        Ok(None)
    }

    /// Drop a connection here and tell the server.
    async fn reset(&mut self, channel: u32) {
        if let Some(connection) = self.connections.remove(&channel) {
            connection.reset();
        }
        self.send(control_message(&ClientMessage::Close { channel }))
            .await;
    }

    /// Queue for the link; `false` when the link takes no more.
    async fn send(&self, message: Message) -> bool {
        self.outgoing.send(message).await.is_ok()
    }

    fn shutdown(&mut self) {
        for (_, connection) in self.connections.drain() {
            connection.reset();
        }
    }
}

/// Local socket -> link, within the send window; local end of stream ->
/// `Eof` (a half-close: the other direction goes on).
async fn local_to_link(
    channel: u32,
    mut read: OwnedReadHalf,
    credit: Arc<Credit>,
    outgoing: mpsc::Sender<Message>,
    gone: mpsc::UnboundedSender<u32>,
) {
    let mut buffer = vec![0u8; MAX_DATA_FRAME];
    loop {
        let allowed = credit.allowance().await;
        let message = match read.read(&mut buffer[..allowed]).await {
            Ok(0) => {
                let _ = outgoing
                    .send(frame_message(&ChannelFrame::Eof { channel }))
                    .await;
                return;
            }
            Ok(n) => {
                lock(&credit.window).spend(n);
                frame_message(&ChannelFrame::Data {
                    channel,
                    bytes: buffer[..n].to_vec(),
                })
            }
            Err(_) => {
                let _ = outgoing
                    .send(control_message(&ClientMessage::Close { channel }))
                    .await;
                let _ = gone.send(channel);
                return;
            }
        };
        if outgoing.send(message).await.is_err() {
            return;
        }
    }
}

/// Link -> local socket, crediting each chunk once written; `Eof` shuts
/// the socket's sending side.
async fn link_to_local(
    channel: u32,
    mut write: OwnedWriteHalf,
    mut inbound: mpsc::UnboundedReceiver<Inbound>,
    received: Arc<Mutex<ReceiveWindow>>,
    outgoing: mpsc::Sender<Message>,
    gone: mpsc::UnboundedSender<u32>,
) {
    while let Some(item) = inbound.recv().await {
        match item {
            Inbound::Data(bytes) => {
                if write.write_all(&bytes).await.is_err() {
                    let _ = outgoing
                        .send(control_message(&ClientMessage::Close { channel }))
                        .await;
                    let _ = gone.send(channel);
                    return;
                }
                let credit = lock(&received).consumed(bytes.len());
                let window = frame_message(&ChannelFrame::Window { channel, credit });
                if outgoing.send(window).await.is_err() {
                    return;
                }
            }
            Inbound::Eof => {
                let _ = write.shutdown().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_given() {
        let f = Forward::parse("db-1", "127.0.0.1:5432", "15432").unwrap();
        assert_eq!(
            f,
            Forward {
                node: "db-1".into(),
                remote_host: "127.0.0.1".into(),
                remote_port: 5432,
                local_host: "127.0.0.1".into(),
                local_port: 15432,
            }
        );
        let q = f.query();
        assert_eq!(q.kind.as_deref(), Some("port-forward"));
        assert_eq!((q.host.as_deref(), q.port), (Some("127.0.0.1"), Some(5432)));
        let f = Forward::parse("db-1", "[::1]:80", "0.0.0.0:8080").unwrap();
        assert_eq!((f.remote_host.as_str(), f.remote_port), ("::1", 80));
        assert_eq!((f.local_host.as_str(), f.local_port), ("0.0.0.0", 8080));
        let f = Forward::parse("n", "db.internal:5432", "[::1]:0").unwrap();
        assert_eq!(f.remote_host, "db.internal");
        assert_eq!((f.local_host.as_str(), f.local_port), ("::1", 0));
        for (remote, local) in [
            ("db", "1"),
            ("db:", "1"),
            (":5432", "1"),
            ("db:99999", "1"),
            ("::1:80", "1"),
            ("db:1", "x"),
            ("db:1", "host:"),
        ] {
            assert!(
                Forward::parse("n", remote, local).is_err(),
                "{remote} {local}"
            );
        }
    }

    /// The reading task sends no more than its window, then waits for
    /// credit: real sockets, the outgoing queue standing in for the link.
    #[tokio::test]
    async fn a_connection_waits_for_credit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut local = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let (read, _write) = accepted.into_split();
        let credit = Arc::new(Credit::default());
        lock(&credit.window).spend(operon_proto::session::INITIAL_WINDOW as usize - 10);
        let (outgoing, mut queue) = mpsc::channel(8);
        let (gone, _gone_rx) = mpsc::unbounded_channel();
        tokio::spawn(local_to_link(7, read, credit.clone(), outgoing, gone));
        local.write_all(&[1u8; 25]).await.unwrap();
        let first = classify(queue.recv().await.unwrap()).unwrap();
        assert_eq!(
            first,
            Incoming::Frame(ChannelFrame::Data {
                channel: 7,
                bytes: vec![1; 10]
            })
        );
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(200), queue.recv()).await;
        assert!(waiting.is_err(), "sent past the window");
        lock(&credit.window).credit(100).unwrap();
        credit.more.notify_one();
        let rest = classify(queue.recv().await.unwrap()).unwrap();
        assert_eq!(
            rest,
            Incoming::Frame(ChannelFrame::Data {
                channel: 7,
                bytes: vec![1; 15]
            })
        );
        local.shutdown().await.unwrap();
        let eof = classify(queue.recv().await.unwrap()).unwrap();
        assert_eq!(eof, Incoming::Frame(ChannelFrame::Eof { channel: 7 }));
    }

    /// Data is credited only after it reached the local socket, and the
    /// server's end of stream half-closes it.
    #[tokio::test]
    async fn data_is_credited_after_it_is_written() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut local = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let (_read, write) = accepted.into_split();
        let received = Arc::new(Mutex::new(ReceiveWindow::default()));
        let (outgoing, mut queue) = mpsc::channel(8);
        let (gone, _gone_rx) = mpsc::unbounded_channel();
        let (inbound, inbound_queue) = mpsc::unbounded_channel();
        tokio::spawn(link_to_local(
            3,
            write,
            inbound_queue,
            received.clone(),
            outgoing,
            gone,
        ));
        lock(&received).receive(5).unwrap();
        inbound.send(Inbound::Data(b"hello".to_vec())).unwrap();
        inbound.send(Inbound::Eof).unwrap();
        let credit = classify(queue.recv().await.unwrap()).unwrap();
        assert_eq!(
            credit,
            Incoming::Frame(ChannelFrame::Window {
                channel: 3,
                credit: 5
            })
        );
        assert_eq!(lock(&received).outstanding(), 0);
        let mut got = Vec::new();
        local.read_to_end(&mut got).await.unwrap();
        assert_eq!(
            got, b"hello",
            "the end of stream closed the local socket's reading side"
        );
    }
}
