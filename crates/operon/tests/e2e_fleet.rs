//! End-to-end: the real `operon` binary as a server, three real agents on
//! loopback, and the CLI, exercising targeting, live output, rate control,
//! crash recovery and refusals.

mod support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn targets_by_tag_and_by_id_with_prefixed_output_and_summary() {
    let fleet = Fleet::start();
    let server = &fleet.server;

    // Two tag filters mean AND: only web-1 is a staging web node.
    let out = server.cli(&[
        "run",
        "--targets",
        "tag:role=web",
        "--targets",
        "tag:env=staging",
        "--",
        "echo",
        "hello from",
        "$0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("web-1 | hello from"), "{text}");
    assert!(
        !text.contains("web-2 |") && !text.contains("db-1 |"),
        "{text}"
    );
    assert!(
        text.contains("NODE") && text.contains("Success"),
        "summary table: {text}"
    );

    // By id.
    let nodes = server.cli_json(&["nodes", "list"]);
    let db_id = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "db-1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = server.cli(&["run", "--node", &db_id, "--", "echo by-id"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("db-1 | by-id"), "{}", stdout(&out));

    // A failing node makes the exit code non-zero; stderr is prefixed too.
    let out = server.cli(&[
        "run",
        "--targets",
        "all",
        "--max-errors",
        "5",
        "--",
        "echo oops >&2; exit 3",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("web-2 | oops"), "{}", stderr(&out));
    assert!(stdout(&out).contains("Failed"), "{}", stdout(&out));

    // --json prints the invocation record with per-node exit codes and output.
    let record = server.cli(&[
        "run",
        "--targets",
        "tag:role=db",
        "--json",
        "--",
        "printf abc",
    ]);
    let record: serde_json::Value = serde_json::from_slice(&record.stdout).unwrap();
    assert_eq!(record["status"], "Success");
    let inv = invocation(&record, "db-1");
    assert_eq!(inv["exit_code"], 0);
    assert_eq!(inv["stdout"], "abc");
    assert_eq!(inv["stdout_truncated"], false);

    // Metrics count what just happened.
    let metrics = raw_http(server.port, "GET", "/metrics", Some(&server.token));
    assert!(metrics.contains("operon_agents_connected 3"), "{metrics}");
    assert!(
        metrics.contains("operon_nodes{status=\"online\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("operon_invocations{status=\"Failed\"} 3"),
        "{metrics}"
    );

    // User, working directory and environment reach the process.
    let record = server.cli_json(&[
        "run",
        "--node",
        "web-1",
        "--user",
        "nobody",
        "--cwd",
        "/tmp",
        "--env",
        "GREETING=hi",
        "--",
        "echo $(id -un) $(pwd) $GREETING",
    ]);
    assert_eq!(
        invocation(&record, "web-1")["stdout"],
        "nobody /tmp hi\n",
        "{record}"
    );

    // Output beyond the cap is cut and flagged.
    let record = server.cli_json(&[
        "run",
        "--node",
        "web-1",
        "--",
        "head -c 300000 /dev/zero | tr '\\0' a",
    ]);
    let inv = invocation(&record, "web-1");
    assert_eq!(inv["stdout_truncated"], true);
    assert_eq!(inv["stdout"].as_str().unwrap().len(), 256 * 1024);

    // The execution timeout kills the command.
    let out = server.cli(&[
        "run",
        "--node",
        "web-1",
        "--timeout",
        "1",
        "--json",
        "--",
        "sleep 20",
    ]);
    assert!(!out.status.success());
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        invocation(&record, "web-1")["status"],
        "TimedOut",
        "{record}"
    );
}

#[test]
fn output_streams_live_before_the_command_ends() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    // The command prints its second line only once the test has seen the
    // first (or after 60 s): "second-released" proves the first line came
    // live, without measuring time on a busy machine.
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let script = format!(
        "echo first; i=0; while [ ! -e {path} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
         if [ -e {path} ]; then echo second-released; else echo second-timed-out; fi",
        path = release.display()
    );
    let mut child = server.spawn_cli(&["run", "--node", "web-1", "--", &script]);
    let mut seen = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("web-1 | first") {
            std::fs::write(&release, b"").unwrap();
        }
        if line.contains("web-1 | first") || line.contains("web-1 | second") {
            seen.push(line);
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("first"), "{seen:?}");
    assert!(
        seen[1].contains("second-released"),
        "the first line arrived only when the command ended: {seen:?}"
    );
}

/// (start, end) in nanoseconds of each node's run, from its stdout.
fn intervals(record: &serde_json::Value) -> Vec<(u128, u128)> {
    let mut spans: Vec<(u128, u128)> = record["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|inv| {
            let out = inv["stdout"].as_str().unwrap();
            let mut nums = out.lines().map(|l| l.trim().parse::<u128>().unwrap());
            (nums.next().unwrap(), nums.next().unwrap())
        })
        .collect();
    spans.sort();
    spans
}

#[test]
fn max_concurrency_one_serialises_and_unlimited_overlaps() {
    let fleet = Fleet::start();
    let script = "date +%s%N; sleep 0.5; date +%s%N";
    let serial = fleet.server.cli_json(&[
        "run",
        "--targets",
        "all",
        "--max-concurrency",
        "1",
        "--",
        script,
    ]);
    assert_eq!(serial["status"], "Success");
    let spans = intervals(&serial);
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "max-concurrency 1 overlapped: {spans:?}"
        );
    }
    // Each node waits (up to 30 s) until all three have started: with
    // unlimited concurrency they all do at once, however loaded the
    // machine; serialised, none would overlap.
    let barrier = tempfile::tempdir().unwrap();
    let together = format!(
        "date +%s%N; touch {b}/$$; i=0; \
         while [ $(ls {b} | wc -l) -lt 3 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
         date +%s%N",
        b = barrier.path().display()
    );
    let parallel = fleet.server.cli_json(&[
        "run",
        "--targets",
        "all",
        "--max-concurrency",
        "100%",
        "--",
        &together,
    ]);
    let spans = intervals(&parallel);
    let latest_start = spans.iter().map(|s| s.0).max().unwrap();
    let earliest_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(
        latest_start < earliest_end,
        "unlimited concurrency should overlap: {spans:?}"
    );
}

#[test]
fn max_errors_stops_dispatch_and_marks_the_rest_not_run() {
    let fleet = Fleet::start();
    let out = fleet.server.cli(&[
        "run",
        "--targets",
        "all",
        "--max-concurrency",
        "1",
        "--max-errors",
        "0",
        "--json",
        "--",
        "exit 1",
    ]);
    assert!(!out.status.success(), "a failed command exits non-zero");
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["status"], "Failed");
    let statuses: Vec<&str> = record["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "Failed").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "Cancelled").count(),
        2,
        "{statuses:?}"
    );
    for inv in record["invocations"].as_array().unwrap() {
        if inv["status"] == "Cancelled" {
            assert!(
                inv["status_detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("not run"),
                "{inv}"
            );
        }
    }
}

#[test]
fn an_agent_killed_mid_command_does_not_run_it_again() {
    let mut fleet = Fleet::start();
    let marker = fleet.dir.path().join("marker");
    let pid_file = fleet.dir.path().join("pid");
    let release = fleet.dir.path().join("release");
    // The command would finish only once released: the test releases it
    // after the restarted agent has stopped it, so an orphan that survived
    // is always seen, however slow the restart on a loaded machine.
    let script = format!(
        "echo $$ > {p}; echo started >> {m}; while [ ! -e {r} ]; do sleep 0.1; done; echo finished >> {m}",
        p = pid_file.display(),
        m = marker.display(),
        r = release.display()
    );
    let run = fleet
        .server
        .spawn_cli(&["run", "--node", "web-1", "--json", "--", &script]);
    wait_for("the command to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&marker)
            .ok()
            .filter(|m| m.contains("started"))
    });
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let agent = fleet.agent("web-1");
    agent.kill();
    let server = &fleet.server;
    let agent = fleet.agents.iter_mut().find(|a| a.name == "web-1").unwrap();
    agent.restart(server);
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success());
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inv = invocation(&record, "web-1");
    assert_eq!(inv["status"], "Failed", "{inv}");
    assert!(
        inv["status_detail"]
            .as_str()
            .unwrap_or("")
            .contains("interrupted"),
        "{inv}"
    );
    // The restarted agent stops the orphan (its process is gone, or left
    // a zombie), and nothing runs the command again.
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
    wait_for("the orphan to be stopped", Duration::from_secs(30), || {
        let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit(") ")
            .next()
            .is_some_and(|s| s.starts_with('Z'));
        (state.is_empty() || zombie).then_some(())
    });
    std::fs::write(&release, b"").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let marks = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        marks, "started\n",
        "the command must run once and its orphan must not finish"
    );
}

#[test]
fn server_killed_and_restarted_loses_no_finished_result() {
    let mut fleet = Fleet::start();
    let run = fleet.server.spawn_cli(&[
        "run",
        "--targets",
        "all",
        "--json",
        "--",
        "sleep 2; echo done",
    ]);
    let id = wait_for("all three nodes running", Duration::from_secs(20), || {
        let list = fleet.server.cli_json(&["commands", "list"]);
        let command = list.as_array()?.first()?.clone();
        let id = command["id"].as_str()?.to_string();
        let record = fleet.server.command(&id);
        let running = record["invocations"]
            .as_array()?
            .iter()
            .all(|i| i["status"] == "InProgress");
        running.then_some(id)
    });
    fleet.server.kill();
    // The commands finish on the nodes while the server is down; the CLI
    // following them waits for the server to come back.
    std::thread::sleep(Duration::from_secs(3));
    let data_dir = fleet.server.data_dir.clone();
    let port = fleet.server.port;
    fleet.server = ServerProcess::start(&data_dir, port);
    let record = fleet
        .server
        .wait_command_final(&id, Duration::from_secs(60));
    assert_eq!(record["status"], "Success", "{record}");
    for inv in record["invocations"].as_array().unwrap() {
        assert_eq!(inv["stdout"], "done\n", "{inv}");
    }
    fleet.server.wait_online(&["web-1", "web-2", "db-1"]);

    let followed = run.wait_with_output().unwrap();
    assert!(
        followed.status.success(),
        "the CLI followed the command through the restart"
    );
    let followed: serde_json::Value = serde_json::from_slice(&followed.stdout).unwrap();
    assert_eq!(followed["status"], "Success", "{followed}");
}

#[test]
fn expired_used_up_and_unknown_enrollment_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let token = server.enroll_token(&[], 1, "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let mut agent = AgentProcess::start(&server, &token, &dir.path().join("a1"), "late", &[]);
    let (ok, err) = agent.wait_exit(Duration::from_secs(20));
    assert!(!ok);
    assert!(err.contains("expired"), "{err}");

    let once = server.enroll_token(&[], 1, "1h");
    let _first = AgentProcess::start(&server, &once, &dir.path().join("a2"), "first", &[]);
    server.wait_online(&["first"]);
    let mut second = AgentProcess::start(&server, &once, &dir.path().join("a3"), "second", &[]);
    let (ok, err) = second.wait_exit(Duration::from_secs(20));
    assert!(!ok);
    assert!(err.contains("no uses left"), "{err}");

    let mut unknown =
        AgentProcess::start(&server, "oet_nonsense", &dir.path().join("a4"), "x", &[]);
    let (ok, err) = unknown.wait_exit(Duration::from_secs(20));
    assert!(!ok);
    assert!(err.contains("not known"), "{err}");
}

#[test]
fn unauthenticated_calls_are_refused_and_health_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let out = operon()
        .args([
            "nodes",
            "list",
            "--server",
            &server.url,
            "--token",
            "opn_bogus",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid API token") && stderr(&out).contains("401"),
        "{}",
        stderr(&out)
    );
    for (path, expected) in [
        ("/v1/nodes", "401"),
        ("/v1/commands", "401"),
        ("/metrics", "401"),
        ("/v1/health", "200"),
    ] {
        let response = raw_get(server.port, path);
        let status_line = response.lines().next().unwrap_or("");
        assert!(status_line.contains(expected), "{path}: {status_line}");
    }
    assert!(raw_get(server.port, "/v1/nodes").contains("\"code\":\"Unauthorized\""));
}

fn raw_get(port: u16, path: &str) -> String {
    raw_http(port, "GET", path, None)
}

/// One HTTP/1.1 request on a fresh connection, without the CLI in between;
/// returns the whole response (status line, headers, body).
fn raw_http(port: u16, method: &str, path: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn a_revoked_node_is_dropped_and_cannot_come_back() {
    let mut fleet = Fleet::start();
    let revoked = fleet.server.cli_json(&["nodes", "revoke", "web-2"]);
    assert_eq!(revoked["status"], "revoked");
    let agent = fleet.agent("web-2");
    let (ok, err) = agent.wait_exit(Duration::from_secs(30));
    assert!(!ok, "a revoked agent exits with an error");
    assert!(err.contains("revoked"), "{err}");
    let out = fleet.server.cli(&["run", "--node", "web-2", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
}

#[test]
fn documents_validate_parameters_and_run_steps_in_order() {
    let fleet = Fleet::start();
    let doc = fleet.dir.path().join("deploy.yaml");
    std::fs::write(
        &doc,
        r#"schemaVersion: "2.2"
description: Deploy a version
parameters:
  version:
    type: String
    allowedPattern: "^v[0-9]+$"
mainSteps:
  - action: aws:runShellScript
    name: fetch
    inputs:
      runCommand:
        - echo fetching {{ version }}
  - action: operon:runShellScript
    name: fail
    inputs:
      runCommand: ["exit 7"]
  - action: aws:runShellScript
    name: never
    inputs:
      runCommand: ["echo never"]
"#,
    )
    .unwrap();
    let created = fleet.server.cli_json(&[
        "documents",
        "create",
        "deploy",
        "--file",
        doc.to_str().unwrap(),
    ]);
    assert_eq!(created["version"], 1);

    let out = fleet
        .server
        .cli(&["run", "--document", "deploy", "--node", "web-1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("missing required parameter \"version\""),
        "{}",
        stderr(&out)
    );
    let out = fleet.server.cli(&[
        "run",
        "--document",
        "deploy",
        "--node",
        "web-1",
        "--param",
        "version=latest",
    ]);
    assert!(stderr(&out).contains("allowedPattern"), "{}", stderr(&out));

    let out = fleet.server.cli(&[
        "run",
        "--document",
        "deploy",
        "--node",
        "web-1",
        "--param",
        "version=v3",
        "--json",
    ]);
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inv = invocation(&record, "web-1");
    assert_eq!(inv["status"], "Failed");
    assert_eq!(inv["exit_code"], 7);
    assert_eq!(
        inv["stdout"], "fetching v3\n",
        "the third step never ran: {inv}"
    );

    // A second version runs by name only once it is the default.
    std::fs::write(
        &doc,
        r#"schemaVersion: "2.2"
parameters:
  version:
    type: String
mainSteps:
  - action: aws:runShellScript
    name: deploy
    inputs:
      runCommand: ["echo deploying {{ version }}"]
"#,
    )
    .unwrap();
    let created = fleet.server.cli_json(&[
        "documents",
        "create",
        "deploy",
        "--file",
        doc.to_str().unwrap(),
    ]);
    assert_eq!(
        (&created["version"], &created["default_version"]),
        (&json!(2), &json!(1))
    );
    let stdout_of = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--document",
            "deploy",
            "--node",
            "web-1",
            "--param",
            "version=v4",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = fleet.server.cli(&args);
        let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        invocation(&record, "web-1")["stdout"].clone()
    };
    assert_eq!(
        stdout_of(&[]),
        "fetching v4\n",
        "the default is still version 1"
    );
    assert_eq!(
        stdout_of(&["--document-version", "$LATEST"]),
        "deploying v4\n"
    );
    let changed =
        fleet
            .server
            .cli_json(&["documents", "update-default", "deploy", "--version", "2"]);
    assert_eq!(
        (
            &changed["default_version"],
            &changed["previous_default_version"]
        ),
        (&json!(2), &json!(1))
    );
    assert_eq!(stdout_of(&[]), "deploying v4\n");
    assert_eq!(stdout_of(&["--document-version", "1"]), "fetching v4\n");
    let listed = fleet.server.cli_json(&["documents", "list"]);
    let deploy = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "deploy")
        .unwrap();
    assert_eq!(
        (&deploy["default_version"], &deploy["latest_version"]),
        (&json!(2), &json!(2))
    );
    let out = fleet
        .server
        .cli(&["documents", "update-default", "deploy", "--version", "5"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no version 5"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_offline_node_gets_the_command_on_reconnect_or_becomes_undeliverable() {
    let mut fleet = Fleet::start();
    fleet.agent("db-1").kill();
    wait_for("db-1 offline", Duration::from_secs(20), || {
        (fleet.server.node_status("db-1").as_deref() == Some("offline")).then_some(())
    });

    // Delivered late, within the delivery timeout.
    let run = fleet.server.spawn_cli(&[
        "run",
        "--node",
        "db-1",
        "--delivery-timeout",
        "120",
        "--json",
        "--",
        "echo late",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let server = &fleet.server;
    let agent = fleet.agents.iter_mut().find(|a| a.name == "db-1").unwrap();
    agent.restart(server);
    let out = run.wait_with_output().unwrap();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(invocation(&record, "db-1")["stdout"], "late\n", "{record}");

    // Not delivered: the node stays away past the delivery timeout.
    fleet.agent("db-1").kill();
    wait_for("db-1 offline", Duration::from_secs(20), || {
        (fleet.server.node_status("db-1").as_deref() == Some("offline")).then_some(())
    });
    let out = fleet.server.cli(&[
        "run",
        "--node",
        "db-1",
        "--node",
        "web-1",
        "--delivery-timeout",
        "2",
        "--max-errors",
        "1",
        "--json",
        "--",
        "echo x",
    ]);
    assert!(!out.status.success());
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        invocation(&record, "db-1")["status"],
        "Undeliverable",
        "{record}"
    );
    assert_eq!(
        invocation(&record, "web-1")["status"],
        "Success",
        "{record}"
    );
}

#[test]
fn cancel_stops_running_nodes_and_skips_pending_ones() {
    let fleet = Fleet::start();
    let run = fleet.server.spawn_cli(&[
        "run",
        "--targets",
        "all",
        "--max-concurrency",
        "1",
        "--json",
        "--",
        "sleep 30",
    ]);
    let id = wait_for("one node running", Duration::from_secs(20), || {
        let list = fleet.server.cli_json(&["commands", "list"]);
        let id = list.as_array()?.first()?["id"].as_str()?.to_string();
        let record = fleet.server.command(&id);
        let started = record["invocations"]
            .as_array()?
            .iter()
            .any(|i| i["started_at"].is_number());
        started.then_some(id)
    });
    let started = Instant::now();
    let answer = fleet.server.cli_json(&["commands", "cancel", &id]);
    assert_eq!(answer["cancel_requested"], true);
    let out = run.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "cancel took {:?}",
        started.elapsed()
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["status"], "Cancelled");
    for inv in record["invocations"].as_array().unwrap() {
        assert_eq!(inv["status"], "Cancelled", "{inv}");
    }
    let again = fleet.server.cli(&["commands", "cancel", &id]);
    assert!(
        !again.status.success(),
        "a finished command cannot be cancelled"
    );
}

#[test]
fn every_path_in_the_openapi_document_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let doc = raw_get(server.port, "/v1/openapi.json");
    let body = doc.split("\r\n\r\n").nth(1).expect("a body");
    let doc: serde_json::Value = serde_json::from_str(body).expect("the OpenAPI document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{}", paths.len());
    for (path, methods) in paths {
        let concrete = path
            .replace("{key}", "x")
            .replace("{name}", "x")
            .replace("{id}", "x");
        for method in methods.as_object().unwrap().keys() {
            let response = raw_http(
                server.port,
                &method.to_uppercase(),
                &concrete,
                Some(&server.token),
            );
            let status = response.lines().next().unwrap_or("");
            assert!(
                !response.contains("no such endpoint"),
                "{method} {path} is documented but not served"
            );
            assert!(!status.contains("405"), "{method} {path}: {status}");
        }
    }
}
