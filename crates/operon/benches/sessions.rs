//! Session Manager benchmark (not a test), issue 15's quality bar:
//! keystroke round trip through the relay, and port-forward throughput.
//!
//! Starts the release binary as a server and one agent (real processes on
//! loopback), and drives the real CLI:
//!
//! 1. Keystrokes: `operon sessions exec bench-1 --user root -- cat` with
//!    its stdin and stdout piped; one byte written, timed until the PTY's
//!    echo of it is read back (CLI -> server -> agent -> PTY and back, the
//!    path every key a user types takes). SESSIONS_KEYS keystrokes, one at
//!    a time, p50/p99/max; the same measured first against a local `cat`
//!    under `script` (a PTY with no relay) as the floor.
//! 2. Throughput: `operon sessions port-forward` to a local sink that
//!    discards what it reads, SESSIONS_MIB MiB written through the forward
//!    (timed until the sink has read it all), against the same transfer
//!    straight to the sink over loopback in the same run; CPU seconds of the
//!    server, the agent and the CLI per GiB.
//!
//! Run: `cargo bench -p operon --bench sessions` (env SESSIONS_KEYS,
//! SESSIONS_MIB override 1000, 1024).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Killed, Server, cpu_seconds, operon, start_server};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cli(server: &Server) -> std::process::Command {
    let mut command = operon();
    command
        .env("OPERON_SERVER", &server.url)
        .env("OPERON_TOKEN", &server.admin_token);
    command
}

fn wait_online(server: &Server, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cli(server)
            .args(["nodes", "list", "--json"])
            .output()
            .expect("nodes list");
        let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let online = nodes
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["name"] == name && n["status"] == "online");
        if online {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never came online");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Write one byte at a time into `child`'s stdin and time until a byte
/// comes back on its stdout (the echo).
fn keystrokes(mut child: Child, keys: u64) -> Vec<Duration> {
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    // Let the program start: the first echo may wait for the PTY.
    let mut byte = [0u8; 1];
    stdin.write_all(b"x").unwrap();
    stdin.flush().unwrap();
    stdout.read_exact(&mut byte).unwrap();
    let mut times = Vec::with_capacity(keys as usize);
    for i in 0..keys {
        let key = b'a' + (i % 26) as u8;
        let began = Instant::now();
        stdin.write_all(&[key]).unwrap();
        stdin.flush().unwrap();
        loop {
            stdout.read_exact(&mut byte).unwrap();
            if byte[0] == key {
                break;
            }
        }
        times.push(began.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    times.sort();
    times
}

fn report_keys(what: &str, times: &[Duration]) {
    println!(
        "  {what:<34} p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms",
        percentile(times, 0.5).as_secs_f64() * 1e3,
        percentile(times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );
}

/// A loopback sink counting what it reads.
fn sink() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let total = Arc::new(AtomicU64::new(0));
    let counted = total.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = vec![0u8; 256 * 1024];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    counted.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (port, total)
}

/// Write `mib` MiB to `port` and time until the sink has read them.
fn push(port: u16, mib: u64, total: &AtomicU64) -> Duration {
    let before = total.load(Ordering::Relaxed);
    let target = before + mib * 1024 * 1024;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("connect to {port}: {e}"),
        }
    };
    let chunk = vec![0x5au8; 1024 * 1024];
    let began = Instant::now();
    for _ in 0..mib {
        stream.write_all(&chunk).unwrap();
    }
    while total.load(Ordering::Relaxed) < target {
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = began.elapsed();
    drop(stream);
    took
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks what is here
    }
    let keys = env_or("SESSIONS_KEYS", 1000);
    let mib = env_or("SESSIONS_MIB", 1024);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut children = Killed(Vec::new());
    let server = start_server(dir.path(), &mut children);
    let enroll = cli(&server)
        .args([
            "enroll-tokens",
            "create",
            "--uses",
            "1",
            "--expires",
            "1h",
            "--json",
        ])
        .output()
        .expect("enroll token");
    let enroll: serde_json::Value = serde_json::from_slice(&enroll.stdout).expect("JSON");
    let agent = operon()
        .args(["agent", "--server", &server.url])
        .args(["--enroll-token", enroll["token"].as_str().expect("token")])
        .args(["--name", "bench-1", "--metrics-interval-secs", "0"])
        .arg("--state-dir")
        .arg(dir.path().join("agent"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn agent");
    let agent_pid = agent.id();
    children.0.push(agent);
    wait_online(&server, "bench-1");
    println!("sessions benchmark: {keys} keystrokes, {mib} MiB forwarded");

    println!("keystroke round trip (one byte in, its echo out):");
    let local = operon_local_pty();
    report_keys(
        "local PTY (script -qc cat), floor",
        &keystrokes(local, keys),
    );
    let relayed = cli(&server)
        .args(["sessions", "exec", "bench-1", "--user", "root", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sessions exec");
    report_keys("operon sessions exec (relayed)", &keystrokes(relayed, keys));

    println!("port-forward throughput ({mib} MiB one way into a loopback sink):");
    let (sink_port, total) = sink();
    let direct = push(sink_port, mib, &total);
    let local_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut forward = cli(&server)
        .args(["sessions", "port-forward", "bench-1"])
        .args(["--remote", &format!("127.0.0.1:{sink_port}")])
        .args(["--local", &local_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("port-forward");
    let forward_pid = forward.id();
    // Warm up (the session opens on the first connection's data).
    push(local_port, 8, &total);
    let cpu_before = [server.pid, agent_pid, forward_pid].map(cpu_seconds);
    let forwarded = push(local_port, mib, &total);
    let cpu_after = [server.pid, agent_pid, forward_pid].map(cpu_seconds);
    let _ = forward.kill();
    let _ = forward.wait();
    let rate = |took: Duration| mib as f64 / took.as_secs_f64();
    println!(
        "  direct loopback                    {:>9.1} MiB/s ({:.2} s)",
        rate(direct),
        direct.as_secs_f64()
    );
    println!(
        "  operon sessions port-forward       {:>9.1} MiB/s ({:.2} s), {:.1}x slower than direct",
        rate(forwarded),
        forwarded.as_secs_f64(),
        forwarded.as_secs_f64() / direct.as_secs_f64()
    );
    let per_gib = |i: usize| (cpu_after[i] - cpu_before[i]) * 1024.0 / mib as f64;
    println!(
        "  CPU per GiB forwarded: server {:.2} s, agent {:.2} s, CLI {:.2} s",
        per_gib(0),
        per_gib(1),
        per_gib(2)
    );
}

/// `cat` under a local PTY (util-linux `script`): the same echo path with
/// no relay.
fn operon_local_pty() -> Child {
    std::process::Command::new("script")
        .args(["-qfc", "cat", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs cat under a PTY")
}
