//! Logs end to end: the real server and a real agent process sampling
//! every second, `operon logs ship` of a file, lines appended to it found by
//! `operon logs query --level error`, and `operon logs tail` printing a new
//! line as it arrives.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::*;

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn messages(answer: &Value) -> Vec<String> {
    answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn shipped_lines_are_queried_by_level_and_tailed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(
        &dir.path().join("server"),
        free_port(),
        &["--logs-retention", "2d"],
    );
    let token = server.enroll_token(&["role=web"], 1, "1h");
    let _agent = AgentProcess::start_with_args(
        &server,
        &token,
        &dir.path().join("web-1"),
        "web-1",
        &["role=web"],
        &["--metrics-interval-secs", "1"],
    );
    server.wait_online(&["web-1"]);
    let log = dir.path().join("app.log");
    append(&log, "boot\n");
    let path = log.display().to_string();
    let shipped = server.cli_json(&["logs", "ship", "app", "--targets", "all", "--file", &path]);
    assert_eq!(shipped["kind"], "shipping");
    let listed = server.cli_json(&["logs", "shipping", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // The agent follows from the end of the file: write until a line lands.
    let mut attempt = 0;
    let found = wait_for(
        "an error line to be shipped",
        Duration::from_secs(30),
        || {
            attempt += 1;
            append(
                &log,
                &format!("info starting {attempt}\nERROR db down {attempt}\n"),
            );
            std::thread::sleep(Duration::from_millis(500));
            let answer = server.cli_json(&["logs", "query", "--level", "error"]);
            let found = messages(&answer);
            (!found.is_empty()).then_some(answer)
        },
    );
    let entries = found["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["level"] == "error"), "{found}");
    assert!(entries.iter().all(|e| e["node_name"] == "web-1"), "{found}");
    let table = String::from_utf8_lossy(
        &server
            .cli(&["logs", "query", "--level", "error", "--node", "web-1"])
            .stdout,
    )
    .into_owned();
    assert!(
        table.contains(&format!(" web-1 file:{path} error ERROR db down")),
        "{table}"
    );

    // tail --json: one JSON object a line, as lines arrive.
    let mut tail = server.spawn_cli(&["logs", "tail", "--json", "--level", "warning"]);
    let stdout = tail.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    // Give the tail its first look (its cursor), then write.
    std::thread::sleep(Duration::from_millis(1500));
    append(&log, "info quiet\nCRITICAL tail sees this\n");
    // Lines written before the tail started may still be arriving: skip them.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).expect("tail prints the new line");
        let entry: Value = serde_json::from_str(&line).unwrap();
        assert_ne!(
            entry["message"], "info quiet",
            "--level warning leaves info out"
        );
        if entry["message"] == "CRITICAL tail sees this" {
            break entry;
        }
    };
    let _ = tail.kill();
    let _ = tail.wait();
    assert_eq!(entry["level"], "critical");
    assert!(entry["id"].as_i64().is_some());

    let deleted = server.cli_json(&["logs", "shipping", "delete", "app"]);
    assert_eq!(deleted["name"], "app");
}
