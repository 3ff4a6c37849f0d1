//! Sessions end to end: the real binary as server, agent and CLI.
//!
//! - A real terminal: `operon sessions start` runs inside tmux (send-keys,
//!   capture-pane): commands, a window resize seen by `stty size` on the
//!   node, ctrl-c interrupting a `sleep`, the exit status returned; then the
//!   recording plays back the same screen and exports as asciicast whose
//!   digest is the audit trail's.
//! - Port forwarding: several concurrent clients and a 100 MiB transfer
//!   through `operon sessions port-forward`, checksummed, with the server's
//!   and the agent's memory measured before and after.
//! - A slow reader of `yes`: memory stays bounded, the node's heartbeats
//!   and a concurrent command are unaffected.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::*;

/// One tmux server of our own (its socket in the test's directory).
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (install it: apt-get install tmux)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn start(dir: &Path, command: &str, cols: u16, rows: u16) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            command,
        ]);
        tmux
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn line(&self, text: &str) {
        self.keys(&["-l", text]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t", "-S", "-200"])
    }

    fn wait_for(&self, text: &str) -> String {
        wait_for(
            &format!("{text:?} on the screen"),
            Duration::from_secs(20),
            || {
                let screen = self.screen();
                screen.contains(text).then_some(screen)
            },
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn one_node(dir: &Path, extra_agent: &[&str]) -> (ServerProcess, AgentProcess) {
    let server = ServerProcess::start(&dir.join("server"), free_port());
    let token = server.enroll_token(&[], 1, "1h");
    let agent = AgentProcess::start_with_args(
        &server,
        &token,
        &dir.join("web-1"),
        "web-1",
        &["role=web"],
        extra_agent,
    );
    server.wait_online(&["web-1"]);
    (server, agent)
}

#[test]
fn a_terminal_under_tmux_runs_resizes_interrupts_exits_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = one_node(dir.path(), &[]);
    let account = support::accounts::ShellAccount::new();
    let command = format!(
        "OPERON_SERVER={} OPERON_TOKEN={} {} sessions start web-1 --user {}; echo EXIT=$?; sleep 60",
        server.url,
        server.token,
        env!("CARGO_BIN_EXE_operon"),
        account.name
    );
    let tmux = Tmux::start(dir.path(), &command, 100, 30);
    tmux.line("echo READY-$((2+3))");
    tmux.wait_for("READY-5");
    tmux.line("stty size");
    tmux.wait_for("30 100");

    tmux.run(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.line("stty size");
    tmux.wait_for("40 120");

    tmux.line("sleep 60");
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = Instant::now();
    tmux.keys(&["C-c"]);
    tmux.line("echo AFTER-$((1+1))");
    tmux.wait_for("AFTER-2");
    assert!(interrupted.elapsed() < Duration::from_secs(10));

    tmux.line("exit 7");
    let screen = tmux.wait_for("EXIT=");
    assert!(
        screen.contains("EXIT=7"),
        "the remote exit status is ours: {screen}"
    );

    let sessions = server.cli_json(&["sessions", "list"]);
    let session = &sessions["sessions"][0];
    let id = session["id"].as_str().unwrap();
    assert_eq!(session["status"], "ended", "{session}");
    assert_eq!(session["exit_code"], 7);

    // The recording replays what the screen showed.
    let play = server.cli(&["sessions", "play", id, "--speed", "1000"]);
    assert!(
        play.status.success(),
        "{}",
        String::from_utf8_lossy(&play.stderr)
    );
    let replayed = String::from_utf8_lossy(&play.stdout);
    for seen in ["READY-5", "30 100", "40 120", "AFTER-2"] {
        assert!(replayed.contains(seen), "{seen} in the replay: {replayed}");
    }
    let cast = dir.path().join("s.cast");
    let export = server.cli(&["sessions", "export", id, "-o", cast.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let text = std::fs::read(&cast).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(text.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let digest = hex::encode(Sha256::digest(&text));
    let described = server.cli_json(&["sessions", "describe", id]);
    assert_eq!(described["recording_sha256"], digest.as_str());
    let audit = server.cli_json(&[
        "audit",
        "list",
        "--action",
        "sessions:End",
        "--limit",
        "100",
    ]);
    assert!(
        audit.to_string().contains(&digest),
        "the digest is in the audit trail: {audit}"
    );
}

/// Send `bytes` through `stream` (in a thread) and read the echo back.
fn echo_through(mut stream: TcpStream, bytes: Vec<u8>) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&bytes).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    back
}

#[test]
fn port_forwarding_carries_concurrent_clients_and_100_mib_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (server, agent) = one_node(dir.path(), &[]);
    let remote = echo_server();
    let local = free_port();
    let mut forward = server
        .cli_command()
        .args([
            "sessions",
            "port-forward",
            "web-1",
            "--remote",
            &format!("127.0.0.1:{remote}"),
            "--local",
            &local.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let connect = || {
        wait_for("the local port", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", local)).ok()
        })
    };
    // Several clients at once over the one session.
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let stream = connect();
            std::thread::spawn(move || {
                let bytes = format!("client {i} ").repeat(10_000).into_bytes();
                assert_eq!(echo_through(stream, bytes.clone()), bytes);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let server_before = rss_kib(server.child.id());
    let agent_before = rss_kib(agent.child.id());

    let big: Vec<u8> = (0..100 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let began = Instant::now();
    let back = echo_through(connect(), big.clone());
    let took = began.elapsed();
    assert_eq!(back.len(), big.len());
    assert_eq!(
        Sha256::digest(&back),
        Sha256::digest(&big),
        "100 MiB intact"
    );
    let server_growth = rss_kib(server.child.id()).saturating_sub(server_before);
    let agent_growth = rss_kib(agent.child.id()).saturating_sub(agent_before);
    println!(
        "100 MiB each way in {took:?}; server RSS +{server_growth} KiB, agent RSS +{agent_growth} KiB"
    );
    // A window is 256 KiB per direction: growth of a fraction of the 100 MiB
    // (allocator slack included) shows nothing buffered the stream.
    assert!(server_growth < 40 * 1024, "server grew {server_growth} KiB");
    assert!(agent_growth < 40 * 1024, "agent grew {agent_growth} KiB");

    let _ = forward.kill();
    let _ = forward.wait();
    let listed = server.cli_json(&["sessions", "list"]);
    let session = &listed["sessions"][0];
    assert_eq!(session["kind"], "port-forward");
    assert_eq!(session["remote"], format!("127.0.0.1:{remote}"));
}

#[test]
fn a_slow_reader_of_yes_keeps_memory_bounded_and_the_node_responsive() {
    let dir = tempfile::tempdir().unwrap();
    let (server, agent) = one_node(dir.path(), &[]);
    let mut yes = server
        .cli_command()
        .args(["sessions", "exec", "web-1", "--user", "root", "--", "yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = yes.stdout.take().unwrap();
    let mut buffer = vec![0u8; 4096];
    // Read a little to be sure it runs, then read slowly.
    out.read_exact(&mut buffer).unwrap();
    let server_before = rss_kib(server.child.id());
    let agent_before = rss_kib(agent.child.id());
    let began = Instant::now();
    let body =
        serde_json::json!({"node_ids": ["web-1"], "parameters": {"commands": ["echo still-here"]}});
    let (status, command) = http(
        server.port,
        "POST",
        "/v1/commands",
        Some(&server.token),
        Some(&body),
    );
    assert_eq!(status, 200, "{command}");
    let id = command["id"].as_str().unwrap().to_string();
    let done = server.wait_command_final(&id, Duration::from_secs(20));
    assert_eq!(done["status"], "Success", "{done}");
    let command_took = began.elapsed();
    for _ in 0..20 {
        out.read_exact(&mut buffer).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.node_status("web-1").as_deref(), Some("online"));
    let server_growth = rss_kib(server.child.id()).saturating_sub(server_before);
    let agent_growth = rss_kib(agent.child.id()).saturating_sub(agent_before);
    println!(
        "slow reader: command took {command_took:?}; server RSS +{server_growth} KiB, agent RSS +{agent_growth} KiB"
    );
    assert!(command_took < Duration::from_secs(10), "{command_took:?}");
    assert!(server_growth < 20 * 1024, "server grew {server_growth} KiB");
    assert!(agent_growth < 20 * 1024, "agent grew {agent_growth} KiB");
    let _ = yes.kill();
    let _ = yes.wait();
}
