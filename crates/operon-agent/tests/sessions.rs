//! Session channels over a real link, against the minimal in-test server
//! (as in `link.rs`): real PTYs running real shells (size, ctrl-c, resize,
//! hangup, exit status), running as other users (created with `useradd`),
//! flow control with the windows (a terminal that floods waits for credit
//! while heartbeats and commands go on), and TCP forwarding to a real echo
//! server (5 MiB both ways, half-close, deny lists, resolution and
//! connection errors).
//!
//! The agent runs as root here (it must, to switch users); the tests that
//! need root say so and are skipped otherwise.

mod common;

use common::{
    Frame, WAIT, Ws, accept_link, enrolled_config, recv_frame, recv_frame_within, run_command,
    send, send_channel_frame, spawn_agent,
};

use std::path::Path;
use std::time::Duration;

use operon_agent::AgentConfig;
use operon_proto::session::{INITIAL_WINDOW, MAX_DATA_FRAME};
use operon_proto::{AgentMessage, ChannelFrame, ChannelOpen, ChannelTarget, ServerMessage};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A running agent and its welcomed link.
struct Agent {
    ws: Ws,
    listener: TcpListener,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _state: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start_agent(create_user: bool) -> Agent {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, _agent) = spawn_agent(AgentConfig {
        session_create_user: create_user,
        ..enrolled_config(&url, state.path())
    });
    let mut ws = accept_link(&listener).await;
    let capabilities = welcome(&mut ws).await;
    assert!(
        capabilities
            .iter()
            .any(|c| c == operon_proto::CAPABILITY_SESSIONS),
        "{capabilities:?}"
    );
    Agent {
        ws,
        listener,
        stop: Some(stop),
        _state: state,
    }
}

/// Answer the `Hello` with a `Welcome` (heartbeat every second).
async fn welcome(ws: &mut Ws) -> Vec<String> {
    let Frame::Message(AgentMessage::Hello { capabilities, .. }) = recv_frame(ws).await else {
        panic!("expected Hello first");
    };
    send(
        ws,
        &ServerMessage::Welcome {
            node_id: "n-1".into(),
            name: "node-a".into(),
            protocol_version: 1,
            heartbeat_secs: 1,
        },
    )
    .await;
    capabilities
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

fn terminal(user: &str, command: Option<&str>, cols: u16, rows: u16) -> ChannelTarget {
    ChannelTarget::Terminal {
        user: user.into(),
        command: command.map(str::to_owned),
        cols,
        rows,
        term: "xterm-256color".into(),
        create_user: false,
    }
}

async fn open(ws: &mut Ws, channel: u32, target: ChannelTarget) {
    send(
        ws,
        &ServerMessage::ChannelOpen(ChannelOpen {
            channel,
            session_id: format!("s-{channel}"),
            target,
        }),
    )
    .await;
}

async fn send_data(ws: &mut Ws, channel: u32, bytes: &[u8]) {
    send_channel_frame(
        ws,
        &ChannelFrame::Data {
            channel,
            bytes: bytes.to_vec(),
        },
    )
    .await;
}

/// What one channel said so far.
#[derive(Debug, Default)]
struct Seen {
    output: Vec<u8>,
    eof: bool,
    closed: Option<(Option<i32>, Option<String>)>,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// Read frames, crediting every data byte of `channel` back at once, until
/// `done` says so (or the channel closes). Frames of other channels and
/// other messages are skipped.
async fn read_channel(ws: &mut Ws, channel: u32, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(seen) {
        assert!(
            seen.closed.is_none(),
            "channel {channel} closed early: {seen:?} / {}",
            seen.text()
        );
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = recv_frame_within(ws, left).await else {
            panic!(
                "channel {channel}: timed out; output so far: {}",
                seen.text()
            );
        };
        match frame {
            Frame::Channel(ChannelFrame::Data { channel: c, bytes }) if c == channel => {
                assert!(!seen.eof, "data after Eof");
                let credit = bytes.len() as u32;
                seen.output.extend_from_slice(&bytes);
                send_channel_frame(ws, &ChannelFrame::Window { channel, credit }).await;
            }
            Frame::Channel(ChannelFrame::Eof { channel: c }) if c == channel => seen.eof = true,
            Frame::Message(AgentMessage::ChannelClosed {
                channel: c,
                exit_code,
                error,
            }) if c == channel => seen.closed = Some((exit_code, error)),
            _ => {}
        }
        if seen.closed.is_some() && !done(seen) {
            panic!(
                "channel {channel} closed: {:?}; output: {}",
                seen.closed,
                seen.text()
            );
        }
    }
}

/// Wait for `ChannelOpened` of `channel` (a `ChannelClosed` is a failure).
async fn expect_opened(ws: &mut Ws, channel: u32) {
    loop {
        match recv_frame(ws).await {
            Frame::Message(AgentMessage::ChannelOpened { channel: c }) if c == channel => return,
            Frame::Message(AgentMessage::ChannelClosed {
                channel: c, error, ..
            }) if c == channel => panic!("channel {channel} did not open: {error:?}"),
            _ => {}
        }
    }
}

/// The error of a channel that must fail to open.
async fn expect_refused(ws: &mut Ws, channel: u32) -> String {
    loop {
        match recv_frame(ws).await {
            Frame::Message(AgentMessage::ChannelOpened { channel: c }) if c == channel => {
                panic!("channel {channel} opened but should not")
            }
            Frame::Message(AgentMessage::ChannelClosed {
                channel: c, error, ..
            }) if c == channel => return error.expect("an error saying why"),
            _ => {}
        }
    }
}

async fn until_closed(ws: &mut Ws, channel: u32) -> Seen {
    let mut seen = Seen::default();
    read_channel(ws, channel, &mut seen, |s| s.closed.is_some()).await;
    seen
}

async fn until_output(ws: &mut Ws, channel: u32, seen: &mut Seen, needle: &str) {
    read_channel(ws, channel, seen, |s| s.text().contains(needle)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_sees_its_terminal_size_and_its_exit_status_is_exact() {
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(
        ws,
        1,
        terminal("root", Some("stty size; echo hi; exit 3"), 101, 33),
    )
    .await;
    expect_opened(ws, 1).await;
    let seen = until_closed(ws, 1).await;
    let text = seen.text();
    assert!(text.contains("33 101"), "{text:?}");
    assert!(text.contains("hi"), "{text:?}");
    assert!(seen.eof, "Eof comes before ChannelClosed");
    assert_eq!(seen.closed, Some((Some(3), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_job_does_not_hold_the_terminal_open() {
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(
        ws,
        11,
        terminal("root", Some("sleep 1019 & echo started; exit 4"), 80, 24),
    )
    .await;
    expect_opened(ws, 11).await;
    let seen = until_closed(ws, 11).await;
    assert!(seen.text().contains("started"), "{}", seen.text());
    assert_eq!(seen.closed, Some((Some(4), None)));
    wait_until("the background job is hung up", || {
        processes_running(&["sleep", "1019"]).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_shell_starts_at_home_with_the_environment() {
    // Root's startup files are the host's business (and may be slow): as
    // root, log in as a fresh account instead.
    let temp = is_root().then(|| TempUser::create("login"));
    let (name, home) = match &temp {
        Some(user) => (user.0.clone(), format!("/home/{}", user.0)),
        None => (
            std::env::var("USER").unwrap(),
            std::env::var("HOME").unwrap(),
        ),
    };
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(ws, 2, terminal(&name, None, 80, 24)).await;
    expect_opened(ws, 2).await;
    send_data(
        ws,
        2,
        b"echo \"zero=$0 term=$TERM user=$USER\"; pwd; exit 5\n",
    )
    .await;
    let seen = until_closed(ws, 2).await;
    let text = seen.text();
    assert!(
        text.contains("zero=-"),
        "a login shell's argv[0] starts with '-': {text:?}"
    );
    assert!(text.contains("term=xterm-256color"), "{text:?}");
    assert!(text.contains(&format!("user={name}")), "{text:?}");
    assert!(text.contains(&format!("\n{home}\r")), "{text:?}");
    assert_eq!(seen.closed, Some((Some(5), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_shell_takes_input_resizes_and_ctrl_c() {
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(ws, 3, terminal("root", Some("/bin/sh"), 80, 24)).await;
    expect_opened(ws, 3).await;
    let mut seen = Seen::default();
    send_data(ws, 3, b"echo $((6*7))\n").await;
    until_output(ws, 3, &mut seen, "42").await;

    send(
        ws,
        &ServerMessage::ChannelResize {
            channel: 3,
            cols: 120,
            rows: 50,
        },
    )
    .await;
    send_data(ws, 3, b"stty size\n").await;
    until_output(ws, 3, &mut seen, "50 120").await;

    send_data(ws, 3, b"sleep 1031\n").await;
    // Only once it runs: a ctrl-c before would just flush the typed line.
    wait_until("sleep runs", || {
        !processes_running(&["sleep", "1031"]).is_empty()
    })
    .await;
    send_data(ws, 3, b"\x03").await;
    send_data(ws, 3, b"echo after-$((1+1))\n").await;
    until_output(ws, 3, &mut seen, "after-2").await;
    assert!(
        processes_running(&["sleep", "1031"]).is_empty(),
        "ctrl-c interrupted the sleep"
    );

    send_data(ws, 3, b"exit 0\n").await;
    read_channel(ws, 3, &mut seen, |s| s.closed.is_some()).await;
    assert_eq!(seen.closed, Some((Some(0), None)));
}

/// Pids of live processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| cmdline == wanted)
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| stat.contains(") Z "))
        })
        .collect()
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_server_hangs_the_program_up() {
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(ws, 4, terminal("root", Some("sleep 1017"), 80, 24)).await;
    expect_opened(ws, 4).await;
    wait_until("sleep runs", || {
        !processes_running(&["sleep", "1017"]).is_empty()
    })
    .await;
    send(
        ws,
        &ServerMessage::ChannelClose {
            channel: 4,
            reason: "terminated by alice".into(),
        },
    )
    .await;
    let seen = until_closed(ws, 4).await;
    let (exit_code, error) = seen.closed.unwrap();
    assert_eq!(error, None);
    assert_eq!(exit_code, Some(128 + 1), "ended by the hangup (SIGHUP)");
    assert!(
        processes_running(&["sleep", "1017"]).is_empty(),
        "the program is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_the_link_ends_its_terminals() {
    let mut agent = start_agent(false).await;
    open(
        &mut agent.ws,
        5,
        terminal("root", Some("sleep 1018"), 80, 24),
    )
    .await;
    expect_opened(&mut agent.ws, 5).await;
    wait_until("sleep runs", || {
        !processes_running(&["sleep", "1018"]).is_empty()
    })
    .await;
    // Drop the link; the agent reconnects without the session.
    let _ = agent.ws.close(None).await;
    let mut again = accept_link(&agent.listener).await;
    welcome(&mut again).await;
    wait_until("the sleep is hung up", || {
        processes_running(&["sleep", "1018"]).is_empty()
    })
    .await;
}

/// A local account for a test, removed (with its home) when dropped.
struct TempUser(String);

impl TempUser {
    fn name(tag: &str) -> String {
        format!("opsess{tag}{}", std::process::id() % 100_000)
    }

    fn create(tag: &str) -> TempUser {
        let name = Self::name(tag);
        let status = std::process::Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name}");
        TempUser(name)
    }

    /// Remove an account the agent created.
    fn adopt(name: String) -> TempUser {
        TempUser(name)
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .args(["-r", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .any(|line| line.split(':').next() == Some(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminals_run_as_the_named_user() {
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(ws, 6, terminal("no-such-user-here", Some("true"), 80, 24)).await;
    let error = expect_refused(ws, 6).await;
    assert!(
        error.contains("user 'no-such-user-here' does not exist on this node"),
        "{error}"
    );
    if !is_root() {
        eprintln!("skipping the switch to another user: not root");
        return;
    }
    let user = TempUser::create("a");
    open(
        ws,
        7,
        terminal(&user.0, Some("id -un; pwd; echo $HOME"), 80, 24),
    )
    .await;
    expect_opened(ws, 7).await;
    let seen = until_closed(ws, 7).await;
    let text = seen.text();
    assert!(text.contains(&format!("{}\r\n", user.0)), "{text:?}");
    assert!(text.contains(&format!("/home/{}\r\n", user.0)), "{text:?}");
    assert_eq!(seen.closed, Some((Some(0), None)));
}

fn creating(user: &str) -> ChannelTarget {
    ChannelTarget::Terminal {
        user: user.into(),
        command: Some("id -un".into()),
        cols: 80,
        rows: 24,
        term: "xterm".into(),
        create_user: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_user_is_created_only_when_the_agent_allows() {
    if !is_root() {
        eprintln!("skipping: creating users needs root");
        return;
    }
    let name = TempUser::name("c");
    let _cleanup = TempUser::adopt(name.clone());
    {
        let mut refusing = start_agent(false).await;
        open(&mut refusing.ws, 8, creating(&name)).await;
        let error = expect_refused(&mut refusing.ws, 8).await;
        assert!(error.contains("does not exist"), "{error}");
        assert!(error.contains("--session-create-user"), "{error}");
        assert!(!user_exists(&name));
    }
    let mut allowing = start_agent(true).await;
    open(&mut allowing.ws, 9, creating(&name)).await;
    expect_opened(&mut allowing.ws, 9).await;
    let seen = until_closed(&mut allowing.ws, 9).await;
    assert!(seen.text().contains(&name), "{}", seen.text());
    assert!(user_exists(&name));
    assert!(Path::new(&format!("/home/{name}")).is_dir(), "with a home");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_terminal_waits_for_credit_while_the_link_goes_on() {
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(ws, 10, terminal("root", Some("yes"), 80, 24)).await;
    expect_opened(ws, 10).await;

    // Take data without crediting until the agent stops sending.
    let mut received = 0usize;
    let mut heartbeats_while_stalled = 0;
    let mut finished = false;
    let mut stalled_since: Option<tokio::time::Instant> = None;
    let mut run_sent = false;
    loop {
        match recv_frame_within(ws, Duration::from_millis(200)).await {
            Some(Frame::Channel(ChannelFrame::Data { channel: 10, bytes })) => {
                assert!(bytes.len() <= MAX_DATA_FRAME);
                received += bytes.len();
                stalled_since = None;
            }
            Some(Frame::Message(AgentMessage::Heartbeat { .. })) if stalled_since.is_some() => {
                heartbeats_while_stalled += 1
            }
            Some(Frame::Message(AgentMessage::Finished(result))) => {
                assert_eq!(result.invocation_id, "inv-flow");
                finished = true;
            }
            Some(Frame::Channel(other)) => panic!("unexpected {other:?}"),
            _ => {}
        }
        if received >= INITIAL_WINDOW as usize && stalled_since.is_none() {
            stalled_since = Some(tokio::time::Instant::now());
        }
        if received >= INITIAL_WINDOW as usize && !run_sent {
            send(ws, &run_command("inv-flow", "echo from-a-command")).await;
            run_sent = true;
        }
        if stalled_since.is_some_and(|since| since.elapsed() >= Duration::from_millis(2500)) {
            break;
        }
        assert!(
            received <= INITIAL_WINDOW as usize,
            "past the window: {received}"
        );
    }
    assert_eq!(received, INITIAL_WINDOW as usize);
    assert!(heartbeats_while_stalled >= 1, "heartbeats go on");
    assert!(finished, "a command runs and finishes meanwhile");

    // Credit lets exactly that much more through.
    send_channel_frame(
        ws,
        &ChannelFrame::Window {
            channel: 10,
            credit: 1000,
        },
    )
    .await;
    let mut more = 0usize;
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Some(frame) = recv_frame_within(
        ws,
        until.saturating_duration_since(tokio::time::Instant::now()),
    )
    .await
    {
        if let Frame::Channel(ChannelFrame::Data { channel: 10, bytes }) = frame {
            more += bytes.len();
        }
    }
    assert_eq!(more, 1000);
    send(
        ws,
        &ServerMessage::ChannelClose {
            channel: 10,
            reason: "done".into(),
        },
    )
    .await;
    loop {
        if let Frame::Message(AgentMessage::ChannelClosed { channel: 10, .. }) =
            recv_frame(ws).await
        {
            break;
        }
    }
}

/// An echo server: every connection gets its bytes back, then, after the
/// client's end of stream, `EOF-SEEN` and the server's own end.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = stream.write_all(b"EOF-SEEN").await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

/// A server that accepts connections and never reads them.
async fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    port
}

fn tcp(host: &str, port: u16, deny: &[&str]) -> ChannelTarget {
    ChannelTarget::Tcp {
        host: host.into(),
        port,
        deny: deny.iter().map(|d| d.to_string()).collect(),
    }
}

/// One forwarded connection's transfer, as the test drives it.
struct Transfer {
    channel: u32,
    payload: Vec<u8>,
    sent: usize,
    /// Sent and not yet credited by the agent.
    in_flight: usize,
    eof_sent: bool,
    seen: Seen,
}

impl Transfer {
    fn new(channel: u32, len: usize) -> Transfer {
        // Bytes that differ per position and channel, so a reordering shows.
        let payload = (0..len)
            .map(|i| ((i * 31 + i / 7919 + channel as usize) % 251) as u8)
            .collect();
        Transfer {
            channel,
            payload,
            sent: 0,
            in_flight: 0,
            eof_sent: false,
            seen: Seen::default(),
        }
    }

    fn done(&self) -> bool {
        self.seen.closed.is_some()
    }
}

/// Push every transfer's payload through within the windows, credit what
/// comes back, send Eof after the payload, until every channel closed.
async fn drive(ws: &mut Ws, transfers: &mut [Transfer]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !transfers.iter().all(Transfer::done) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "transfers timed out"
        );
        for t in transfers.iter_mut() {
            while t.sent < t.payload.len() && t.in_flight < INITIAL_WINDOW as usize {
                let room = INITIAL_WINDOW as usize - t.in_flight;
                let len = (t.payload.len() - t.sent).min(MAX_DATA_FRAME).min(room);
                send_data(ws, t.channel, &t.payload[t.sent..t.sent + len]).await;
                t.sent += len;
                t.in_flight += len;
            }
            if t.sent == t.payload.len() && !t.eof_sent {
                send_channel_frame(ws, &ChannelFrame::Eof { channel: t.channel }).await;
                t.eof_sent = true;
            }
        }
        let Some(frame) = recv_frame_within(ws, WAIT).await else {
            panic!("no frame in time");
        };
        let Some(t) = transfers.iter_mut().find(|t| match &frame {
            Frame::Channel(f) => f.channel() == t.channel,
            Frame::Message(AgentMessage::ChannelClosed { channel, .. }) => *channel == t.channel,
            _ => false,
        }) else {
            continue;
        };
        match frame {
            Frame::Channel(ChannelFrame::Window { credit, .. }) => {
                t.in_flight = t
                    .in_flight
                    .checked_sub(credit as usize)
                    .expect("credit within what was sent");
            }
            Frame::Channel(ChannelFrame::Data { bytes, .. }) => {
                assert!(!t.seen.eof);
                t.seen.output.extend_from_slice(&bytes);
                let credit = bytes.len() as u32;
                send_channel_frame(
                    ws,
                    &ChannelFrame::Window {
                        channel: t.channel,
                        credit,
                    },
                )
                .await;
            }
            Frame::Channel(ChannelFrame::Eof { .. }) => t.seen.eof = true,
            Frame::Message(AgentMessage::ChannelClosed {
                exit_code, error, ..
            }) => t.seen.closed = Some((exit_code, error)),
            Frame::Message(_) => {}
        }
    }
}

fn digest(bytes: &[u8]) -> String {
    hex_of(&Sha256::digest(bytes))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_connections_carry_megabytes_both_ways_and_half_close() {
    let port = echo_server().await;
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(
        ws,
        20,
        tcp("127.0.0.1", port, &["169.254.0.0/16", "::1/128:22"]),
    )
    .await;
    open(ws, 21, tcp("localhost", port, &["169.254.0.0/16"])).await;
    expect_opened(ws, 20).await;
    expect_opened(ws, 21).await;
    let mut transfers = [
        Transfer::new(20, 5 * 1024 * 1024),
        Transfer::new(21, 1024 * 1024),
    ];
    drive(ws, &mut transfers).await;
    for t in &transfers {
        let (echoed, marker) = t
            .seen
            .output
            .split_at(t.seen.output.len().saturating_sub(8));
        assert_eq!(
            marker, b"EOF-SEEN",
            "the server saw the half-close and still answered"
        );
        assert_eq!(echoed.len(), t.payload.len());
        assert_eq!(digest(echoed), digest(&t.payload), "channel {}", t.channel);
        assert!(t.seen.eof, "the server's end is passed on");
        assert_eq!(t.seen.closed, Some((None, None)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_refuses_denied_unresolvable_and_refused_targets() {
    let port = echo_server().await;
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;

    open(
        ws,
        30,
        tcp("127.0.0.1", port, &["10.0.0.0/8", "127.0.0.1/32"]),
    )
    .await;
    let error = expect_refused(ws, 30).await;
    assert!(error.contains("'127.0.0.1/32'"), "names the entry: {error}");
    assert!(
        error.contains("address 127.0.0.1"),
        "names the address: {error}"
    );
    assert!(
        error.contains(&format!("127.0.0.1:{port}")),
        "names the target: {error}"
    );

    // The same entry limited to another port lets it through.
    open(ws, 31, tcp("127.0.0.1", port, &["127.0.0.1/32:1"])).await;
    expect_opened(ws, 31).await;
    send(
        ws,
        &ServerMessage::ChannelClose {
            channel: 31,
            reason: "x".into(),
        },
    )
    .await;

    open(ws, 32, tcp("no-such-host.invalid", port, &[])).await;
    let error = expect_refused(ws, 32).await;
    assert!(
        error.contains("cannot resolve 'no-such-host.invalid'"),
        "{error}"
    );

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    open(ws, 33, tcp("127.0.0.1", closed_port, &[])).await;
    let error = expect_refused(ws, 33).await;
    assert!(error.contains("cannot connect to 127.0.0.1"), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");

    open(ws, 34, tcp("127.0.0.1", port, &["not-a-cidr"])).await;
    let error = expect_refused(ws, 34).await;
    assert!(error.contains("deny entry 'not-a-cidr'"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_server_resets_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 16];
        let first = stream.read(&mut buf).await.map(|n| buf[..n].to_vec());
        let _ = first_tx.send(first);
        let _ = second_tx.send(stream.read(&mut buf).await);
    });
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    open(ws, 35, tcp("127.0.0.1", port, &[])).await;
    expect_opened(ws, 35).await;
    send_data(ws, 35, b"ping").await;
    let first = tokio::time::timeout(WAIT, first_rx).await.unwrap().unwrap();
    assert_eq!(first.unwrap(), b"ping");
    send(
        ws,
        &ServerMessage::ChannelClose {
            channel: 35,
            reason: "client went away".into(),
        },
    )
    .await;
    let seen = until_closed(ws, 35).await;
    assert_eq!(seen.closed, Some((None, None)));
    let second = tokio::time::timeout(WAIT, second_rx)
        .await
        .unwrap()
        .unwrap();
    let err = second.expect_err("a reset, not an end of stream");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_past_the_window_closes_the_channel() {
    let port = silent_server().await;
    let mut agent = start_agent(false).await;
    let ws = &mut agent.ws;
    // A target that never reads: the agent's socket writes stall once the
    // socket buffers fill, so its credit stops; a server that goes on past
    // the window is broken.
    open(ws, 40, tcp("127.0.0.1", port, &[])).await;
    expect_opened(ws, 40).await;
    let chunk = vec![7u8; MAX_DATA_FRAME];
    let frames = INITIAL_WINDOW as usize / MAX_DATA_FRAME;
    let mut credited = 0usize;
    // Send 64 windows' worth without waiting: far past anything credited.
    let mut closed = None;
    for _ in 0..frames * 64 {
        send_data(ws, 40, &chunk).await;
        while let Some(frame) = recv_frame_within(ws, Duration::from_millis(1)).await {
            match frame {
                Frame::Channel(ChannelFrame::Window { credit, .. }) => credited += credit as usize,
                Frame::Message(AgentMessage::ChannelClosed {
                    channel: 40, error, ..
                }) => closed = Some(error),
                _ => {}
            }
        }
        if closed.is_some() {
            break;
        }
    }
    if closed.is_none() {
        loop {
            if let Frame::Message(AgentMessage::ChannelClosed {
                channel: 40, error, ..
            }) = recv_frame(ws).await
            {
                closed = Some(error);
                break;
            }
        }
    }
    let error = closed.unwrap().expect("an error");
    assert!(error.contains("window"), "{error} (credited {credited})");
}
