//! `operon metrics put` with the real binaries: the CLI refuses what the
//! agent would refuse and writes nothing; what it writes is picked up by a
//! running agent at its next sample and deleted; a bad file dropped by hand
//! is set aside as `.invalid` and does not stop later drops. (What the server
//! stores is covered by the server's metrics tests.)

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use support::{ServerProcess, free_port, operon, wait_for};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(server: &ServerProcess, token: &str, state: &Path, custom: &Path) -> Kill {
    let child = operon()
        .args(["agent", "--server", &server.url, "--name", "m-1"])
        .args(["--enroll-token", token, "--metrics-interval-secs", "1"])
        .arg("--state-dir")
        .arg(state)
        .arg("--custom-metrics-dir")
        .arg(custom)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn operon agent");
    Kill(child)
}

fn put(dir: &Path, args: &[&str]) -> std::process::Output {
    operon()
        .args(["metrics", "put"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn drops(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn put_refuses_bad_input_and_writes_what_an_agent_picks_up_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("metrics.d");

    for (args, wanted) in [
        (&["bad name", "1"][..], "invalid metric name"),
        (&["app.x", "NaN"][..], "finite"),
        (&["app.x", "1", "--unit", "Furlongs"][..], "unknown unit"),
        (&["app.x", "1", "--dim", "queue"][..], "NAME=VALUE"),
    ] {
        let out = put(&custom, args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
    assert!(drops(&custom).is_empty());

    let out = put(
        &custom,
        &[
            "app.queue_depth",
            "-3",
            "--unit",
            "Count",
            "--dim",
            "queue=mail",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = drops(&custom);
    assert_eq!(written.len(), 1, "{written:?}");
    let text = std::fs::read_to_string(custom.join(&written[0])).unwrap();
    let points = operon_agent::metrics::custom::parse_drop(&text, 0).unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].value, -3.0);
    assert_eq!(points[0].unit.as_deref(), Some("Count"));
    assert!(points[0].at > 0);
    std::fs::write(custom.join("hand-made.json"), "{\"name\": 1}").unwrap();

    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let token = server.enroll_token(&[], 1, "1h");
    let _agent = start_agent(&server, &token, &dir.path().join("agent"), &custom);
    server.wait_online(&["m-1"]);
    wait_for(
        "the agent to take the drops",
        Duration::from_secs(30),
        || (drops(&custom) == ["hand-made.json.invalid"]).then_some(()),
    );

    // Later drops are still taken.
    let out = put(&custom, &["app.later", "1"]);
    assert!(out.status.success());
    wait_for(
        "the agent to take the later drop",
        Duration::from_secs(30),
        || (drops(&custom) == ["hand-made.json.invalid"]).then_some(()),
    );
}
