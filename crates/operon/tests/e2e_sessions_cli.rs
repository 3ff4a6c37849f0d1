//! `operon sessions` from the CLI's side, with the real binaries (server,
//! agent, CLI): refusals and a failed session's record and recording; the
//! CLI in a real PTY (raw mode, exit code, the terminal restored after);
//! piped stdin; forwarding with half-closes and ctrl-c; the TLS pin on the
//! session link. `e2e_sessions.rs` covers the screen under tmux, 100 MiB
//! and memory.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{AgentProcess, ServerProcess, echo_server, free_port, rss_kib, wait_for};

const NODE: &str = "sess-1";

fn fleet(dir: &std::path::Path) -> (ServerProcess, AgentProcess) {
    let server = ServerProcess::start(&dir.join("server"), free_port());
    let token = server.enroll_token(&[], 1, "1h");
    let agent = AgentProcess::start(&server, &token, &dir.join("agent"), NODE, &[]);
    server.wait_online(&[NODE]);
    (server, agent)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sessions(server: &ServerProcess, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["sessions", "list", "--node", NODE];
    args.extend(extra);
    server.cli_json(&args)["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The account the agent runs as (sessions as another account need root).
fn this_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn refusals_say_why_and_the_failed_sessions_record_and_recording_check_out() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = fleet(dir.path());

    // Refused before the WebSocket opens: the server's message, exit 1.
    let out = server.cli(&["sessions", "start", "no-such-node"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no-such-node"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        stderr_of(&out).contains("(HTTP 404)"),
        "{}",
        stderr_of(&out)
    );
    let out = server.cli(&[
        "sessions",
        "port-forward",
        NODE,
        "--remote",
        "169.254.169.254:80",
        "--local",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("deny"), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("Forwarding"),
        "{}",
        stderr_of(&out)
    );

    // Opened, but the node cannot start the terminal: said, exit 1.
    let out = server.cli(&[
        "sessions",
        "exec",
        NODE,
        "--user",
        "nosuchuser-e2e",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).starts_with("error: the session did not start: "),
        "{}",
        stderr_of(&out)
    );
    assert!(out.stdout.is_empty());

    let listed = sessions(&server, &[]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "failed");
    assert_eq!(listed[0]["command"], "true");
    assert!(sessions(&server, &["--active"]).is_empty());
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let table = server.cli(&["sessions", "list"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains(&id),
        "{table:?}"
    );
    let described = server.cli_json(&["sessions", "describe", &id]);
    let sha = described["recording_sha256"].as_str().unwrap().to_string();
    let human = server.cli(&["sessions", "describe", &id]);
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(human.contains("status     failed"), "{human}");

    // The recording as served, and its digest the audited one.
    let file = dir.path().join("session.cast");
    let out = server.cli(&["sessions", "export", &id, "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let saved = std::fs::read(&file).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&saved)), sha);
    assert!(saved.starts_with(b"{\"version\":2"), "{saved:?}");
    let out = server.cli(&["sessions", "export", &id, "-o", "-"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(out.stdout, saved);
    let out = server.cli(&["sessions", "play", &id, "--speed", "4"]);
    assert!(out.status.success(), "{}", stderr_of(&out));

    let out = server.cli(&["sessions", "terminate", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("(HTTP 409)"),
        "{}",
        stderr_of(&out)
    );
}

/// A PTY pair for the CLI: (controller for the test, terminal for the CLI).
fn open_pty() -> (std::fs::File, OwnedFd) {
    let mut controller: libc::c_int = -1;
    let mut terminal: libc::c_int = -1;
    let size = libc::winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out pointers; no name buffer; default termios.
    #[allow(unsafe_code)]
    let result = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(result, 0, "openpty failed");
    // SAFETY: openpty succeeded: both descriptors are open and ours.
    #[allow(unsafe_code)]
    unsafe {
        (
            std::fs::File::from_raw_fd(controller),
            OwnedFd::from_raw_fd(terminal),
        )
    }
}

fn local_flags(fd: &OwnedFd) -> libc::tcflag_t {
    // SAFETY: termios is plain data; tcgetattr fills it.
    #[allow(unsafe_code)]
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0);
        t.c_lflag
    }
}

/// Read from the PTY until `needle` shows, or panic with what came.
fn read_until(reader: &std::sync::mpsc::Receiver<Vec<u8>>, seen: &mut Vec<u8>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(seen).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match reader.recv_timeout(left) {
            Ok(bytes) => seen.extend(bytes),
            Err(_) => panic!(
                "no {needle:?} on the terminal; got {:?}",
                String::from_utf8_lossy(seen)
            ),
        }
    }
}

#[test]
fn a_shell_runs_in_raw_mode_resizes_and_exits_with_the_remote_code_restoring_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = fleet(dir.path());
    let (controller, terminal) = open_pty();
    let before = local_flags(&terminal);
    assert_ne!(before & libc::ICANON, 0);
    let account = support::accounts::ShellAccount::new();
    let user = account.name.clone();
    let mut child = server
        .cli_command()
        .args(["sessions", "start", NODE, "--user", &user])
        .env("TERM", "xterm-256color")
        .stdin(Stdio::from(terminal.try_clone().unwrap()))
        .stdout(Stdio::from(terminal.try_clone().unwrap()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = controller.try_clone().unwrap();
    let (sender, output) = std::sync::mpsc::channel();
    let mut reading = controller;
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reading.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    input.write_all(b"echo $((6*7))-$TERM\r").unwrap();
    read_until(&output, &mut seen, "42-xterm-256color");
    // Raw mode here: the remote PTY does the echoing and line editing.
    wait_for("raw mode", Duration::from_secs(10), || {
        (local_flags(&terminal) & (libc::ICANON | libc::ECHO) == 0).then_some(())
    });
    input.write_all(b"stty size\r").unwrap();
    read_until(&output, &mut seen, "30 100");
    // ctrl-c is a byte for the remote shell, not a signal for the CLI.
    input.write_all(b"sleep 60\r").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    input.write_all(b"\x03").unwrap();
    input.write_all(b"echo after-$((1+1))\r").unwrap();
    read_until(&output, &mut seen, "after-2");
    input.write_all(b"exit 3\r").unwrap();
    let status = wait_for("the CLI to exit", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.is_empty(),
        "nothing more when the program exits: {stderr}"
    );
    assert_eq!(local_flags(&terminal), before, "the terminal is restored");
    let listed = sessions(&server, &[]);
    assert_eq!(listed[0]["exit_code"], 3);
}

#[test]
fn exec_streams_piped_stdin_and_returns_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = fleet(dir.path());
    let user = this_user();
    let out = server.cli_with_stdin(
        &[
            "sessions",
            "exec",
            NODE,
            "--user",
            &user,
            "--",
            "sh",
            "-c",
            "read line; echo \"got-$line\"; exit 7",
        ],
        "hello world\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout} {}", stderr_of(&out));
    assert!(stdout.contains("got-hello world"), "{stdout}");
    assert!(stderr_of(&out).is_empty(), "{}", stderr_of(&out));
    let listed = sessions(&server, &[]);
    assert_eq!(listed[0]["kind"], "exec");
    assert_eq!(listed[0]["exit_code"], 7);
}

fn forwarding(server: &ServerProcess, remote: &str) -> (Child, u16) {
    let mut child = server
        .cli_command()
        .args([
            "sessions",
            "port-forward",
            NODE,
            "--remote",
            remote,
            "--local",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let port = line
        .strip_prefix("Forwarding 127.0.0.1:")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(port, _)| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(
        line.contains(&format!("-> {remote} on {NODE} (session s-")),
        "{line}"
    );
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

#[test]
fn port_forwarding_carries_concurrent_connections_with_half_close_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = fleet(dir.path());
    let remote = format!("127.0.0.1:{}", echo_server());
    let (mut child, port) = forwarding(&server, &remote);
    // Several times the window each, at once: flow control, not buffering.
    let sizes = [3 * 1024 * 1024, 5, 700 * 1024];
    let handles: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(n, &size)| {
            std::thread::spawn(move || {
                let payload: Vec<u8> = (0..size).map(|i| (i * 7 + n) as u8).collect();
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                let mut writing = stream.try_clone().unwrap();
                let sent = payload.clone();
                let writer = std::thread::spawn(move || {
                    writing.write_all(&sent).unwrap();
                    writing.shutdown(std::net::Shutdown::Write).unwrap();
                });
                let mut back = Vec::new();
                stream.read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                assert!(
                    back == payload,
                    "connection {n}: {} of {} bytes",
                    back.len(),
                    size
                );
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    // 64 MiB through a client that reads it back slowly at first: the CLI
    // holds at most a window per direction, whatever the stream's size.
    let before = rss_kib(child.id());
    let size = 64 * 1024 * 1024;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut writing = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..64 {
            writing.write_all(&chunk).unwrap();
        }
        writing.shutdown(std::net::Shutdown::Write).unwrap();
    });
    std::thread::sleep(Duration::from_secs(1));
    let mut back = 0usize;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer).unwrap() {
            0 => break,
            n => back += n,
        }
    }
    writer.join().unwrap();
    assert_eq!(back, size);
    let growth = rss_kib(child.id()).saturating_sub(before);
    assert!(growth < 16 * 1024, "the CLI grew {growth} KiB");
    assert_eq!(sessions(&server, &["--active"]).len(), 1);
    // ctrl-c ends the session cleanly.
    // SAFETY: signalling our own child process by its id.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let status = wait_for("the CLI to exit", Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
    wait_for("the session to end", Duration::from_secs(10), || {
        sessions(&server, &["--active"]).is_empty().then_some(())
    });
    let listed = sessions(&server, &[]);
    assert_eq!(listed[0]["kind"], "port-forward");
    assert_eq!(listed[0]["remote"], remote.as_str());
}

/// The session link trusts an https:// server as every other call does:
/// the pinned fingerprint gets through (to the server's refusal), another
/// is refused before any token is sent.
#[test]
fn the_session_link_keeps_the_tls_pin() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(
        &dir.path().join("server"),
        free_port(),
        &["--tls-self-signed"],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let out = server.cli(&["sessions", "start", "no-such-node"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("(HTTP 404)"),
        "{}",
        stderr_of(&out)
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = server
        .cli_command()
        .args(["sessions", "start", "no-such-node"])
        .env("OPERON_SERVER_FINGERPRINT", &wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("refusing the Operon server"),
        "{}",
        stderr_of(&out)
    );
}

/// Ends the program did not choose are said on stderr, stdout keeps only
/// the program's output, and the exit status is not a program's.
#[test]
fn an_idle_or_terminated_session_says_so_and_exits_255() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = fleet(dir.path());
    let user = this_user();
    let began = Instant::now();
    let out = server.cli_with_stdin(
        &[
            "sessions",
            "exec",
            NODE,
            "--user",
            &user,
            "--idle-timeout",
            "1s",
            "--",
            "sleep",
            "30",
        ],
        "",
    );
    assert!(began.elapsed() < Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(255), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "session ended: idle for 1s\n");

    let mut child = server
        .cli_command()
        .args([
            "sessions", "exec", NODE, "--user", &user, "--", "sleep", "30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = wait_for("the session", Duration::from_secs(20), || {
        sessions(&server, &["--active"])
            .first()
            .and_then(|s| s["id"].as_str().map(str::to_string))
    });
    let out = server.cli(&["sessions", "terminate", &id]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let status = wait_for("the CLI to exit", Duration::from_secs(20), || {
        child.try_wait().unwrap()
    });
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(255), "{stderr}");
    assert!(
        stderr.starts_with("session ended: terminated by "),
        "{stderr}"
    );
}
