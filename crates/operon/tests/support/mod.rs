//! Test harness: real `operon` processes (server, agents, CLI) on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Shared with the server's in-process tests: one account per test shell.
#[path = "../../../operon-server/tests/common/accounts.rs"]
pub mod accounts;
pub mod webdriver;

pub fn operon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_operon"))
}

/// A free loopback port (so a restarted server can take the same one).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `check` until it returns Some, or panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub token: String,
    /// The TLS certificate fingerprint the server printed, if it serves TLS;
    /// the CLI helpers pin it.
    pub fingerprint: Option<String>,
    /// A CA file the CLI helpers trust (`OPERON_CA_CERT`), if set.
    pub ca_cert: Option<PathBuf>,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, port: u16) -> ServerProcess {
        Self::launch(data_dir, port, "warn", Stdio::inherit(), &[])
    }

    /// Start with this log filter, the log going to `stderr`.
    pub fn start_with(data_dir: &Path, port: u16, rust_log: &str, stderr: Stdio) -> ServerProcess {
        Self::launch(data_dir, port, rust_log, stderr, &[])
    }

    /// Start with extra `operon server` arguments (such as `--tls-self-signed`).
    pub fn start_with_args(data_dir: &Path, port: u16, extra: &[&str]) -> ServerProcess {
        Self::launch(data_dir, port, "warn", Stdio::inherit(), extra)
    }

    /// Start with this log filter, stderr and extra `operon server` arguments.
    pub fn launch(
        data_dir: &Path,
        port: u16,
        rust_log: &str,
        stderr: Stdio,
        extra: &[&str],
    ) -> ServerProcess {
        let mut child = operon()
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--heartbeat-secs",
                "1",
                // The tests' webhook receivers and HTTP servers are on loopback.
                "--http-allow",
                "127.0.0.1/32",
            ])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn operon server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("read server stdout");
            if let Some(url) = line.strip_prefix("operon server listening on ") {
                break url.to_string();
            }
        };
        let fingerprint = if url.starts_with("https://") {
            let line = lines
                .next()
                .expect("server exited before printing its fingerprint")
                .expect("read server stdout");
            let fingerprint = line
                .strip_prefix("TLS certificate fingerprint: ")
                .unwrap_or_else(|| panic!("expected the fingerprint line, got {line:?}"));
            Some(fingerprint.to_string())
        } else {
            None
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(data_dir.join("admin-token"))
            .expect("admin token file")
            .trim()
            .to_string();
        ServerProcess {
            child,
            url,
            port,
            data_dir: data_dir.to_path_buf(),
            token,
            fingerprint,
            ca_cert: None,
        }
    }

    /// A CLI command with the server, token and (for TLS) the pinned
    /// fingerprint in its environment.
    pub fn cli_command(&self) -> Command {
        let mut cmd = operon();
        cmd.env("OPERON_SERVER", &self.url)
            .env("OPERON_TOKEN", &self.token);
        if let Some(fingerprint) = &self.fingerprint {
            cmd.env("OPERON_SERVER_FINGERPRINT", fingerprint);
        }
        if let Some(ca) = &self.ca_cert {
            cmd.env("OPERON_CA_CERT", ca);
        }
        cmd
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Run a CLI command against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command()
            .args(args)
            .output()
            .expect("run operon CLI")
    }

    /// Start a CLI command in the background, stdout piped, stderr discarded.
    /// Run the CLI with `input` on its stdin (secrets stay out of argv).
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cli_command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn operon CLI");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        self.cli_command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn operon CLI")
    }

    /// Run a CLI command with `--json` that must succeed; parse its output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        // Before a `--`, or it would become part of the remote command.
        let at = all.iter().position(|a| *a == "--").unwrap_or(all.len());
        all.insert(at, "--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "operon {all:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "operon {all:?} printed invalid JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn enroll_token(&self, tags: &[&str], uses: u32, expires: &str) -> String {
        let mut args = vec!["enroll-tokens", "create"];
        for tag in tags {
            args.extend(["--tag", tag]);
        }
        let uses = uses.to_string();
        args.extend(["--uses", &uses, "--expires", expires]);
        self.cli_json(&args)["token"].as_str().unwrap().to_string()
    }

    pub fn node_status(&self, name: &str) -> Option<String> {
        let nodes = self.cli_json(&["nodes", "list"]);
        nodes
            .as_array()?
            .iter()
            .find(|n| n["name"] == name)
            .map(|n| n["status"].as_str().unwrap_or("").to_string())
    }

    pub fn wait_online(&self, names: &[&str]) {
        for name in names {
            wait_for(
                &format!("node {name} online"),
                Duration::from_secs(30),
                || (self.node_status(name).as_deref() == Some("online")).then_some(()),
            );
        }
    }

    pub fn command(&self, id: &str) -> Value {
        self.cli_json(&["commands", "show", id])
    }

    pub fn wait_command_final(&self, id: &str, timeout: Duration) -> Value {
        wait_for(&format!("command {id} to finish"), timeout, || {
            let c = self.command(id);
            (!matches!(c["status"].as_str(), Some("Pending") | Some("InProgress"))).then_some(c)
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct AgentProcess {
    pub child: Child,
    pub name: String,
    pub state_dir: PathBuf,
}

impl AgentProcess {
    pub fn start(
        server: &ServerProcess,
        enroll_token: &str,
        state_dir: &Path,
        name: &str,
        tags: &[&str],
    ) -> AgentProcess {
        Self::launch(server, enroll_token, state_dir, name, tags, None, &[])
    }

    /// Start with extra `operon agent` arguments (`--metrics-interval-secs 1`).
    pub fn start_with_args(
        server: &ServerProcess,
        enroll_token: &str,
        state_dir: &Path,
        name: &str,
        tags: &[&str],
        extra: &[&str],
    ) -> AgentProcess {
        Self::launch(server, enroll_token, state_dir, name, tags, None, extra)
    }

    /// Start with `--host-root DIR`: the files it keeps in sync land below
    /// DIR, so agents on one machine each have their own `/etc/...`.
    pub fn start_with_host_root(
        server: &ServerProcess,
        enroll_token: &str,
        state_dir: &Path,
        name: &str,
        tags: &[&str],
        host_root: &Path,
    ) -> AgentProcess {
        Self::launch(
            server,
            enroll_token,
            state_dir,
            name,
            tags,
            Some(host_root),
            &[],
        )
    }

    fn launch(
        server: &ServerProcess,
        enroll_token: &str,
        state_dir: &Path,
        name: &str,
        tags: &[&str],
        host_root: Option<&Path>,
        extra: &[&str],
    ) -> AgentProcess {
        let mut cmd = operon();
        cmd.args([
            "agent",
            "--server",
            &server.url,
            "--enroll-token",
            enroll_token,
            "--name",
            name,
        ])
        .arg("--state-dir")
        .arg(state_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for tag in tags {
            cmd.args(["--tag", tag]);
        }
        if let Some(root) = host_root {
            cmd.arg("--host-root").arg(root);
        }
        cmd.args(extra);
        // Pinned at enrollment; a restart relies on the stored pin.
        if let Some(fingerprint) = &server.fingerprint {
            cmd.args(["--server-fingerprint", fingerprint]);
        }
        let child = cmd.spawn().expect("spawn operon agent");
        AgentProcess {
            child,
            name: name.to_string(),
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// Restart with the stored credential (no enrollment token).
    pub fn restart(&mut self, server: &ServerProcess) {
        self.relaunch(server, None);
    }

    /// Restart with the stored credential and `--host-root DIR`.
    pub fn restart_with_host_root(&mut self, server: &ServerProcess, host_root: &Path) {
        self.relaunch(server, Some(host_root));
    }

    fn relaunch(&mut self, server: &ServerProcess, host_root: Option<&Path>) {
        self.kill();
        let mut cmd = operon();
        cmd.args(["agent", "--server", &server.url, "--name", &self.name])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(root) = host_root {
            cmd.arg("--host-root").arg(root);
        }
        self.child = cmd.spawn().expect("respawn operon agent");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for the process to exit by itself; returns (success, stderr).
    pub fn wait_exit(&mut self, timeout: Duration) -> (bool, String) {
        let status = wait_for(&format!("agent {} to exit", self.name), timeout, || {
            self.child.try_wait().ok().flatten()
        });
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            use std::io::Read;
            let _ = err.read_to_string(&mut stderr);
        }
        (status.success(), stderr)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server with three agents: web-1 and web-2 (role=web) and db-1 (role=db),
/// web-1 and db-1 in env=staging, web-2 in env=prod.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub server: ServerProcess,
    pub agents: Vec<AgentProcess>,
}

impl Fleet {
    pub fn start() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(&dir.path().join("server"), free_port());
        let token = server.enroll_token(&[], 3, "1h");
        let specs = [
            ("web-1", ["role=web", "env=staging"]),
            ("web-2", ["role=web", "env=prod"]),
            ("db-1", ["role=db", "env=staging"]),
        ];
        let agents = specs
            .iter()
            .map(|(name, tags)| {
                AgentProcess::start(&server, &token, &dir.path().join(name), name, tags)
            })
            .collect();
        server.wait_online(&["web-1", "web-2", "db-1"]);
        Fleet {
            dir,
            server,
            agents,
        }
    }

    pub fn agent(&mut self, name: &str) -> &mut AgentProcess {
        self.agents.iter_mut().find(|a| a.name == name).unwrap()
    }
}

/// Invocation of `node` in a command record.
pub fn invocation<'a>(command: &'a Value, node: &str) -> &'a Value {
    command["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["node_name"] == node)
        .unwrap_or_else(|| panic!("no invocation for {node} in {command}"))
}

/// One HTTP/1.1 request on a fresh connection, without the CLI in between:
/// the status code and the body parsed as JSON (`Null` if it is not JSON).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.map(Value::to_string).unwrap_or_else(|| "{}".into());
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A WebSocket session as an agent from before capabilities (rotation,
/// desired state, ...) would open it: a `Hello` without `capabilities`. Returns once welcomed.
pub fn old_agent_session(port: u16, credential: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_fmt(
        &mut stream,
        format_args!(
        "GET /v1/agent/connect HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {credential}\r\n\r\n"
        ),
    )
    .unwrap();
    let hello = r#"{"type":"hello","protocol_version":1,"inventory":{"hostname":"old","os_name":"","os_version":"","kernel":"","arch":"","cpus":1,"memory_bytes":0,"agent_version":"0.0.1"}}"#;
    // One masked text frame (a zero mask leaves the payload as it is).
    let mut frame = vec![0x81u8, 0x80 | 126];
    frame.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(hello.as_bytes());
    std::io::Write::write_all(&mut stream, &frame).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("\"welcome\"") {
        let n = std::io::Read::read(&mut stream, &mut buf).expect("a welcome in time");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 101"));
    stream
}

/// Kilobytes of resident memory of a process.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap()
}

/// An echo server on loopback: every connection gets back what it sent,
/// then the end of stream once the client half-closed.
pub fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reading = stream.try_clone().unwrap();
                let mut writing = stream;
                let _ = std::io::copy(&mut reading, &mut writing);
                let _ = writing.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}
