//! `operon sessions start|exec`: the local terminal joined to the remote
//! PTY (client channel 0) over the session link.
//!
//! Input is read by a plain thread (a blocking read of stdin cannot be
//! cancelled, and a runtime would wait for it at exit) into a queue of two
//! chunks, and sent only within the send window, so a remote program that
//! stops reading stops us reading stdin. Output is credited back only once
//! written to stdout, so a slow stdout (a pipe) slows the remote program.

use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use operon_api::sessions::ConnectQuery;
use operon_proto::session::{
    ChannelFrame, ClientMessage, MAX_DATA_FRAME, ReceiveWindow, SendWindow, SessionEvent,
    TERMINAL_CHANNEL,
};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::client::Client;
use super::output::esc;
use super::session_link::{
    Incoming, WsStream, classify, connect_path, control_message, frame_message,
};
use super::terminal::{RawMode, window_size};

/// The exit code when the session ended without the program's (lost link,
/// a signal here), as ssh does.
const NO_REMOTE_EXIT: u8 = 255;

/// Open the session `query` describes (shell or exec) and run it to its end;
/// the exit code is the remote program's.
pub async fn run(client: &Client, mut query: ConnectQuery) -> Result<ExitCode> {
    let stdin = std::io::stdin();
    let size = window_size(stdin.as_fd()).or_else(|| window_size(std::io::stdout().as_fd()));
    if let Some((cols, rows)) = size {
        query.cols = Some(cols);
        query.rows = Some(rows);
    }
    query.term = std::env::var("TERM").ok().filter(|term| !term.is_empty());
    let mut ws = client.websocket(&connect_path(&query)?).await?;
    wait_started(&mut ws).await?;
    let raw = if stdin.is_terminal() {
        Some(RawMode::enter(stdin.as_fd()).context("putting the terminal in raw mode")?)
    } else {
        None
    };
    let end = Pump::new(ws).run().await;
    // The terminal is itself again before anything more is printed.
    drop(raw);
    finish(end?)
}

/// The first event is `Started`; anything else means the session did not
/// open. The session's id.
pub async fn wait_started(ws: &mut WsStream) -> Result<String> {
    loop {
        let message = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("the server closed the session before it started"))?
            .context("reading the session link")?;
        match classify(message)? {
            Incoming::Event(SessionEvent::Started { session_id, .. }) => return Ok(session_id),
            Incoming::Nothing => continue,
            Incoming::Event(SessionEvent::Ended { reason, .. }) => {
                bail!("the session ended before it started: {}", esc(&reason))
            }
            Incoming::Event(SessionEvent::Closed { error, .. }) => bail!(
                "the session did not start: {}",
                esc(error.as_deref().unwrap_or("closed"))
            ),
            Incoming::Closed => bail!("the server closed the session before it started"),
            Incoming::Frame(_) => bail!("the server sent data before the session started"),
        }
    }
}

/// How the session ended.
#[derive(Debug, PartialEq)]
pub enum End {
    /// The server said so (`Ended`), with the program's exit code when it
    /// exited; `terminal` is how the terminal channel closed, if it did.
    Ended {
        reason: String,
        exit_code: Option<i32>,
        terminal: Option<TerminalClosed>,
    },
    /// The link dropped without `Ended`.
    Lost(String),
    /// A signal here (SIGTERM, SIGHUP, SIGINT) ended it.
    Signal(&'static str),
}

/// The terminal channel's `Closed`: the program exited (no error, maybe
/// a code) or the terminal failed (an error).
#[derive(Debug, Clone, PartialEq)]
pub struct TerminalClosed {
    pub exit_code: Option<i32>,
    pub failed: bool,
}

/// What to print on stderr and the process's exit code.
pub fn outcome(end: &End) -> (Option<String>, u8) {
    match end {
        End::Ended {
            reason,
            exit_code,
            terminal,
        } => {
            let closed_code = terminal.as_ref().and_then(|t| t.exit_code);
            let code = exit_code.or(closed_code).map(exit_byte);
            // The program exiting needs no words; every other end (idle,
            // terminated, the agent gone, the terminal failing) does.
            let program_exited = terminal.as_ref().is_some_and(|t| !t.failed);
            let note = (!program_exited).then(|| format!("session ended: {}", esc(reason)));
            (note, code.unwrap_or(NO_REMOTE_EXIT))
        }
        End::Lost(why) => (Some(format!("session lost: {why}")), NO_REMOTE_EXIT),
        End::Signal(name) => (Some(format!("session closed on {name}")), NO_REMOTE_EXIT),
    }
}

/// See [`Pump::lost`]: `send_failed` explains better than the read error
/// it causes.
fn lost_end(terminal: Option<TerminalClosed>, send_failed: Option<String>, reading: String) -> End {
    match terminal {
        Some(terminal) if !terminal.failed => End::Ended {
            reason: "the program exited".into(),
            exit_code: terminal.exit_code,
            terminal: Some(terminal),
        },
        _ => End::Lost(send_failed.unwrap_or(reading)),
    }
}

/// An exit code as a process exit status (0-255, as a shell would see it).
fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(NO_REMOTE_EXIT)
}

fn finish(end: End) -> Result<ExitCode> {
    let (note, code) = outcome(&end);
    if let Some(note) = note {
        eprintln!("{note}");
    }
    Ok(ExitCode::from(code))
}

/// The session's state while it runs.
struct Pump {
    ws: WsStream,
    send: SendWindow,
    receive: ReceiveWindow,
    /// Read from stdin, not yet sent (waiting for credit).
    pending: Vec<u8>,
    input_done: bool,
    eof_sent: bool,
    terminal: Option<TerminalClosed>,
    /// Why sending failed (the link closed under us), kept until reading
    /// tells whether the session ended properly first.
    send_failed: Option<String>,
}

impl Pump {
    fn new(ws: WsStream) -> Pump {
        Pump {
            ws,
            send: SendWindow::default(),
            receive: ReceiveWindow::default(),
            pending: Vec::new(),
            input_done: false,
            eof_sent: false,
            terminal: None,
            send_failed: None,
        }
    }

    async fn run(mut self) -> Result<End> {
        let mut input = spawn_stdin_reader();
        let mut winch = signal(SignalKind::window_change()).context("watching SIGWINCH")?;
        let mut term = signal(SignalKind::terminate()).context("watching SIGTERM")?;
        let mut hangup = signal(SignalKind::hangup()).context("watching SIGHUP")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("watching SIGINT")?;
        let mut stdout = tokio::io::stdout();
        loop {
            let wants_input = self.pending.is_empty() && !self.input_done;
            let signal_name = tokio::select! {
                message = self.ws.next() => {
                    let message = match message {
                        None => return Ok(self.lost("the server closed the connection".into())),
                        Some(Err(e)) => return Ok(self.lost(e.to_string())),
                        Some(Ok(message)) => message,
                    };
                    if let Some(end) = self.incoming(classify(message)?, &mut stdout).await? {
                        return Ok(end);
                    }
                    continue;
                }
                chunk = input.recv(), if wants_input => {
                    match chunk {
                        Some(bytes) => self.pending = bytes,
                        None => self.input_done = true,
                    }
                    self.send_pending().await?;
                    continue;
                }
                _ = winch.recv() => {
                    self.resize().await?;
                    continue;
                }
                _ = term.recv() => "SIGTERM",
                _ = hangup.recv() => "SIGHUP",
                _ = interrupt.recv() => "SIGINT",
            };
            // Closing the WebSocket ends the session on the server.
            let _ = self.ws.close(None).await;
            return Ok(End::Signal(signal_name));
        }
    }

    /// Act on one message; `Some` when the session is over.
    async fn incoming(
        &mut self,
        incoming: Incoming,
        stdout: &mut tokio::io::Stdout,
    ) -> Result<Option<End>> {
        match incoming {
            Incoming::Frame(ChannelFrame::Data { channel, bytes })
                if channel == TERMINAL_CHANNEL =>
            {
                self.receive
                    .receive(bytes.len())
                    .map_err(|_| anyhow!("the server sent past the terminal's window"))?;
                stdout
                    .write_all(&bytes)
                    .await
                    .context("writing to stdout")?;
                stdout.flush().await.context("writing to stdout")?;
                let credit = self.receive.consumed(bytes.len());
                self.send_frame(ChannelFrame::Window { channel, credit })
                    .await?;
            }
            Incoming::Frame(ChannelFrame::Window { channel, credit })
                if channel == TERMINAL_CHANNEL =>
            {
                self.send
                    .credit(credit)
                    .map_err(|_| anyhow!("the server credited more than was sent"))?;
                self.send_pending().await?;
            }
            // The end of the output; `Closed` and `Ended` follow.
            Incoming::Frame(_) | Incoming::Nothing => {}
            Incoming::Event(SessionEvent::Closed {
                channel,
                exit_code,
                error,
            }) if channel == TERMINAL_CHANNEL => {
                self.terminal = Some(TerminalClosed {
                    exit_code,
                    failed: error.is_some(),
                });
            }
            Incoming::Event(SessionEvent::Closed { .. } | SessionEvent::Started { .. }) => {}
            Incoming::Event(SessionEvent::Ended { reason, exit_code }) => {
                return Ok(Some(End::Ended {
                    reason,
                    exit_code,
                    terminal: self.terminal.take(),
                }));
            }
            Incoming::Closed => {
                return Ok(Some(End::Lost(
                    "the server closed the session without saying why".into(),
                )));
            }
        }
        Ok(None)
    }

    /// Send what the window allows of the pending input; after the last of
    /// it once stdin ended, the end-of-stream.
    async fn send_pending(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            let allowed = self.send.allowance(self.pending.len());
            if allowed == 0 {
                return Ok(());
            }
            let bytes: Vec<u8> = self.pending.drain(..allowed).collect();
            self.send.spend(allowed);
            self.send_frame(ChannelFrame::Data {
                channel: TERMINAL_CHANNEL,
                bytes,
            })
            .await?;
        }
        if self.input_done && !self.eof_sent {
            self.eof_sent = true;
            self.send_frame(ChannelFrame::Eof {
                channel: TERMINAL_CHANNEL,
            })
            .await?;
        }
        Ok(())
    }

    async fn resize(&mut self) -> Result<()> {
        let size = window_size(std::io::stdin().as_fd())
            .or_else(|| window_size(std::io::stdout().as_fd()));
        if let Some((cols, rows)) = size {
            self.send(control_message(&ClientMessage::Resize { cols, rows }))
                .await;
        }
        Ok(())
    }

    async fn send_frame(&mut self, frame: ChannelFrame) -> Result<()> {
        self.send(frame_message(&frame)).await;
        Ok(())
    }

    /// Send, or remember why the link cannot take more. Not an error by
    /// itself: the server closes the link right after `Ended`, which may
    /// already be waiting to be read behind the data just credited.
    async fn send(&mut self, message: Message) {
        if self.send_failed.is_some() {
            return;
        }
        if let Err(e) = self.ws.send(message).await {
            self.send_failed = Some(e.to_string());
        }
    }

    /// How the session ended when the link ended without `Ended`: as the
    /// program's exit if its terminal already closed cleanly (only the
    /// goodbye was lost), else lost.
    fn lost(&mut self, reading: String) -> End {
        lost_end(self.terminal.take(), self.send_failed.take(), reading)
    }
}

/// Stdin in chunks of at most one frame, on a thread of its own; the
/// channel closes at end of input (or a read error).
fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel(2);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; MAX_DATA_FRAME];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(reason: &str, code: Option<i32>, terminal: Option<(Option<i32>, bool)>) -> End {
        End::Ended {
            reason: reason.into(),
            exit_code: code,
            terminal: terminal.map(|(exit_code, failed)| TerminalClosed { exit_code, failed }),
        }
    }

    #[test]
    fn the_exit_code_is_the_remote_programs() {
        let exited = |code, closed| ended("the program exited", code, Some((closed, false)));
        assert_eq!(outcome(&exited(Some(0), Some(0))), (None, 0));
        assert_eq!(outcome(&exited(Some(3), Some(9))), (None, 3));
        assert_eq!(outcome(&exited(None, Some(130))), (None, 130));
        assert_eq!(outcome(&exited(None, None)), (None, 255));
        assert_eq!(outcome(&exited(Some(-1), None)), (None, 255));
        assert_eq!(outcome(&exited(Some(256), None)), (None, 255));
    }

    #[test]
    fn other_ends_are_noted_on_stderr() {
        let idle = ended("idle for 10m", None, None);
        assert_eq!(
            outcome(&idle),
            (Some("session ended: idle for 10m".into()), 255)
        );
        // A program killed by a signal exited too: its code, no note.
        let killed = ended("the program exited", Some(129), Some((Some(129), false)));
        assert_eq!(outcome(&killed), (None, 129));
        let failed = ended("the terminal failed: gone", None, Some((None, true)));
        assert_eq!(
            outcome(&failed),
            (Some("session ended: the terminal failed: gone".into()), 255)
        );
        let escaped = ended("terminated by \u{1b}[2Jalice", None, None);
        assert_eq!(
            outcome(&escaped).0.unwrap(),
            "session ended: terminated by \\x1b[2Jalice"
        );
        let (note, code) = outcome(&End::Lost("reset".into()));
        assert_eq!((note.unwrap().contains("reset"), code), (true, 255));
        assert_eq!(outcome(&End::Signal("SIGTERM")).1, 255);
    }

    #[test]
    fn a_link_lost_after_the_program_exited_keeps_its_exit_code() {
        let exited = TerminalClosed {
            exit_code: Some(4),
            failed: false,
        };
        let end = lost_end(Some(exited), Some("broken pipe".into()), "reset".into());
        assert_eq!(outcome(&end), (None, 4));
        let failed = TerminalClosed {
            exit_code: None,
            failed: true,
        };
        let end = lost_end(Some(failed), None, "reset".into());
        assert_eq!(end, End::Lost("reset".into()));
        let end = lost_end(None, Some("broken pipe".into()), "reset".into());
        assert_eq!(
            outcome(&end),
            (Some("session lost: broken pipe".into()), 255)
        );
    }

    /// The server sends its last output, `Closed`, `Ended` and closes the
    /// connection at once: crediting that output fails (the peer is gone),
    /// and the session still ends as the server said, with the exit code.
    #[tokio::test]
    async fn the_end_is_read_even_when_the_last_credits_cannot_be_sent() {
        use tokio_tungstenite::tungstenite::Message;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
            let mut messages: Vec<Message> = (0..50)
                .map(|_| {
                    frame_message(&ChannelFrame::Data {
                        channel: TERMINAL_CHANNEL,
                        // Empty: credited all the same, and no noise on
                        // the test's stdout.
                        bytes: Vec::new(),
                    })
                })
                .collect();
            messages.push(Message::text(operon_proto::encode(&SessionEvent::Closed {
                channel: TERMINAL_CHANNEL,
                exit_code: Some(7),
                error: None,
            })));
            messages.push(Message::text(operon_proto::encode(&SessionEvent::Ended {
                reason: "the program exited".into(),
                exit_code: Some(7),
            })));
            for message in messages {
                ws.feed(message).await.unwrap();
            }
            ws.flush().await.unwrap();
            // Gone without reading: the client's credits hit a closed socket.
            drop(ws);
        });
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{address}/"))
            .await
            .unwrap();
        server.await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let end = Pump::new(ws).run().await.unwrap();
        assert_eq!(outcome(&end), (None, 7), "{end:?}");
    }
}
