//! End-to-end: the server and agent as processes ("no side doors"): SIGTERM
//! stops the server cleanly and promptly, one server per data directory,
//! private files, commands that do not see the agent's environment, and no
//! credentials over plain HTTP off loopback.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `operon server` on `data_dir` that is expected to refuse to start: its
/// output once it exits (killed, and the test failed, if it serves instead).
fn refused_server(data_dir: &Path) -> std::process::Output {
    let mut child = operon()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run operon server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the server started instead of refusing: {}", stdout(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A child process killed and reaped on drop (even if an assertion fails).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ENROLL_TOKEN_VAR: &str = "OPERON_ENROLL_TOKEN";

#[test]
fn the_server_stops_on_sigterm_and_holds_its_data_dir_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let mut server = ServerProcess::start(&data_dir, free_port());

    // One server per data directory; the second names the first's pid.
    let out = refused_server(&data_dir);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&data_dir.display().to_string())
            && err.contains(&format!("pid {}", server.child.id())),
        "{err}"
    );

    // The database is private to the server's user.
    for name in ["operon.db", "operon.db-wal", "operon.db-shm", "server.lock"] {
        assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
    }

    // An agent given its enrollment token in the environment (as a unit
    // file would): commands do not see it, nor anything else of the agent's.
    let token = server.enroll_token(&[], 1, "1h");
    let agent = operon()
        .args(["agent", "--server", &server.url, "--name", "web-1"])
        .arg("--state-dir")
        .arg(dir.path().join("web-1"))
        .env(ENROLL_TOKEN_VAR, &token)
        .env("OPERON_AGENT_ONLY", "agent-only-value")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed on drop, even if an assertion fails.
    let mut agent = AgentProcess {
        child: agent,
        name: "web-1".into(),
        state_dir: dir.path().join("web-1"),
    };
    server.wait_online(&["web-1"]);
    let out = server.cli(&[
        "run",
        "--node",
        "web-1",
        "--env",
        "MINE=visible",
        "--",
        "env",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("web-1 | MINE=visible"), "{text}");
    assert!(text.contains("web-1 | PATH=/"), "{text}");
    assert!(
        !text.contains(&token) && !text.contains("OPERON_"),
        "the agent's environment leaked into a command: {text}"
    );

    // SIGTERM with an agent connected and a live stream open: the server
    // ends the stream, drains, closes the database and exits 0, promptly.
    let mut follower =
        Reaped(server.spawn_cli(&["run", "--node", "web-1", "--", "echo started; sleep 30"]));
    let mut lines = BufReader::new(follower.0.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.unwrap().contains("web-1 | started")),
        "the command's output"
    );
    let sent = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", server.child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = wait_for("the server to exit", Duration::from_secs(10), || {
        server.child.try_wait().unwrap()
    });
    assert!(exited.success(), "exit status {exited:?}");
    // Well under the 5 s drain: the live stream was ended, not waited for.
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "{:?}",
        sent.elapsed()
    );
    // A clean stop checkpointed the write-ahead log into the database.
    assert!(
        !data_dir.join("operon.db-wal").exists(),
        "the write-ahead log was left behind"
    );
    drop(follower);
    agent.kill();

    // The data directory's mode: one others may write to is refused as it
    // is; one others may read is closed, with a warning, and used.
    set_mode(&data_dir, 0o770);
    let out = refused_server(&data_dir);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("writable by its group") && stderr(&out).contains("refusing"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mode(&data_dir), 0o770, "a refused directory is left alone");
    set_mode(&data_dir, 0o755);
    let server = ServerProcess::start(&data_dir, free_port());
    assert_eq!(mode(&data_dir), 0o700);
    let nodes = server.cli_json(&["nodes", "list"]);
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
}

#[test]
fn credentials_are_not_sent_over_plain_http_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    // An address that never answers: a refusal must come before connecting.
    let remote = "http://10.255.255.1:7780";
    let started = Instant::now();
    let out = operon()
        .args(["nodes", "list", "--server", remote, "--token", "t"])
        .env_remove("OPERON_INSECURE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--insecure") && err.contains("10.255.255.1"),
        "{err}"
    );

    let out = operon()
        .args(["agent", "--server", remote, "--enroll-token", "ot-x"])
        .arg("--state-dir")
        .arg(dir.path().join("agent"))
        .env_remove("OPERON_INSECURE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--insecure"), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_server_logs_json_lines_with_log_format_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::launch(
        &dir.path().join("data"),
        free_port(),
        "info",
        std::process::Stdio::piped(),
        &["--log-format", "json"],
    );
    let stderr = server.child.stderr.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .next()
        .expect("a log line")
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    assert!(record["level"].is_string(), "{record}");
    assert!(record["timestamp"].is_string(), "{record}");
    server.kill();
}
