//! Health checks and log watchers end to end: the real server, real agent
//! processes, `operon checks` and `operon log-watchers`; a command check the
//! server pushes is run by the agents it targets, and only by them.

mod support;

use std::time::Duration;

use support::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn checks_and_log_watchers_from_the_cli_reach_the_targeted_agents() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let marks = fleet.dir.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let me = text(
        &std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_owned();
    // Every run leaves a new mark (the agents share this host).
    let script = format!("touch {}/\"$(date +%s%N)\"", marks.display());
    let put = server.cli_json(&[
        "checks",
        "put",
        "web-marker",
        "--targets",
        "tag:role=web",
        "--command",
        &script,
        "--run-as",
        &me,
        "--interval",
        "5",
        "--timeout",
        "2",
    ]);
    assert_eq!(put["kind"], "check");
    assert_eq!(put["probe"]["type"], "command");
    assert_eq!(put["version"], 1);
    wait_for(
        "the web agents to run the check",
        Duration::from_secs(30),
        || {
            let count = std::fs::read_dir(&marks).ok()?.count();
            (count >= 2).then_some(count)
        },
    );

    let watcher = server.cli_json(&[
        "log-watchers",
        "put",
        "app-errors",
        "--targets",
        "all",
        "--file",
        "/var/log/operon-e2e-app.log",
        "--pattern",
        "CRITICAL|OutOfMemory",
    ]);
    assert_eq!(watcher["kind"], "watcher");
    assert_eq!(
        watcher["source"],
        serde_json::json!({"type": "file", "path": "/var/log/operon-e2e-app.log"})
    );

    // Each command lists its own kind.
    let checks = server.cli_json(&["checks", "list"]);
    let names: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-marker"]);
    let watchers = server.cli_json(&["log-watchers", "list"]);
    assert_eq!(watchers.as_array().unwrap().len(), 1);
    let table = text(&server.cli(&["checks", "list"]).stdout);
    assert!(
        table.contains("web-marker") && table.contains("exits 0"),
        "{table}"
    );

    // describe: the web nodes are reached, capable and authorized.
    let detail = server.cli_json(&["checks", "describe", "web-marker"]);
    let mut nodes: Vec<(&str, bool, bool)> = detail["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node_name"].as_str().unwrap(),
                n["capable"] == true,
                n["authorized"] == true,
            )
        })
        .collect();
    nodes.sort();
    assert_eq!(nodes, [("web-1", true, true), ("web-2", true, true)]);
    let wrong = server.cli(&["checks", "describe", "app-errors"]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("is a log watcher"),
        "{}",
        text(&wrong.stderr)
    );

    // A bad definition is refused with the field named.
    let bad = server.cli(&[
        "checks",
        "put",
        "bad",
        "--targets",
        "all",
        "--tcp",
        "db:5432",
        "--interval",
        "2",
    ]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("interval_secs 2"),
        "{}",
        text(&bad.stderr)
    );

    // Deleted: the agents stop running it.
    server.cli_json(&["checks", "delete", "web-marker"]);
    std::thread::sleep(Duration::from_secs(2));
    let after_delete = std::fs::read_dir(&marks).unwrap().count();
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(std::fs::read_dir(&marks).unwrap().count(), after_delete);
    server.cli_json(&["log-watchers", "delete", "app-errors"]);
    assert_eq!(
        server.cli_json(&["log-watchers", "list"]),
        serde_json::json!([])
    );
}
