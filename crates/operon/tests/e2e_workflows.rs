//! End-to-end: durable runbooks on the real `operon` binary with real agents:
//! a runbook driving the fleet (runCommand .sync on tagged nodes, Choice,
//! Retry with back-off, approval from the CLI); a SIGKILL of the server in the
//! middle of 200 executions; a Wait timer that survives a restart.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

fn execution(server: &ServerProcess, id: &str) -> Value {
    server.cli_json(&["executions", "describe", id])
}

fn wait_execution_final(server: &ServerProcess, id: &str, timeout: Duration) -> Value {
    wait_for(&format!("execution {id} to end"), timeout, || {
        let e = execution(server, id);
        (e["status"] != "RUNNING").then_some(e)
    })
}

fn history(server: &ServerProcess, id: &str) -> Vec<Value> {
    server.cli_json(&["executions", "history", id])["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn runbook_runs_on_tagged_nodes_branches_retries_and_waits_for_approval() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let dir = fleet.dir.path();
    let counter = dir.join("flaky-count");
    // Fails on its first two runs, succeeds on the third.
    let flaky = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo attempt $n; test $n -ge 3",
        c = counter.display()
    );
    let definition = json!({
        "Comment": "check the web tier, run a flaky fix with retries, then ask a human",
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Task",
                "Resource": "operon:runCommand.sync",
                "Parameters": {
                    "DocumentName": "AWS-RunShellScript",
                    "Targets": [{"Key": "tag:role", "Values": ["web"]}],
                    "Parameters": {"commands": ["echo healthy"]},
                    "TimeoutSeconds": 60
                },
                "ResultSelector": {
                    "status.$": "$.Status",
                    "nodes.$": "$.Invocations[*].NodeName",
                    "stdout.$": "$.Invocations[0].Stdout"
                },
                "ResultPath": "$.check",
                "Next": "Healthy?"
            },
            "Healthy?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.check.status", "StringEquals": "Success", "Next": "Fix"}],
                "Default": "Broken"
            },
            "Broken": {"Type": "Fail", "Error": "Unhealthy"},
            "Fix": {
                "Type": "Task",
                "Resource": "operon:runCommand.sync",
                "Parameters": {
                    "InstanceIds": ["db-1"],
                    "Parameters": {"commands.$": "States.Array($.flaky)"}
                },
                "Retry": [{
                    "ErrorEquals": ["Operon.CommandFailed"],
                    "IntervalSeconds": 1,
                    "BackoffRate": 2,
                    "MaxAttempts": 3
                }],
                "ResultSelector": {"stdout.$": "$.Invocations[0].Stdout"},
                "ResultPath": "$.fix",
                "Next": "Approve"
            },
            "Approve": {
                "Type": "Task",
                "Resource": "operon:approval",
                "Parameters": {"Message": "Restart the web tier?", "Approvers": ["admin"]},
                "TimeoutSeconds": 300,
                "ResultPath": "$.approval",
                "Next": "Done"
            },
            "Done": {"Type": "Succeed"}
        }
    });
    let def_path = write_json(dir, "runbook.json", &definition);
    let created = server.cli_json(&["workflows", "create", "web-fix", "--definition", &def_path]);
    assert_eq!(created["version"], 1);

    let input = json!({"flaky": flaky}).to_string();
    let started = server.cli_json(&[
        "workflows",
        "start",
        "web-fix",
        "--input",
        &input,
        "--name",
        "fix-1",
    ]);
    let id = started["executionId"].as_str().unwrap().to_string();
    // The name is an idempotency key: the same start returns the same execution.
    let again = server.cli_json(&[
        "workflows",
        "start",
        "web-fix",
        "--input",
        &input,
        "--name",
        "fix-1",
    ]);
    assert_eq!(again["executionId"], id.as_str());
    let other_input = server.cli(&[
        "workflows",
        "start",
        "web-fix",
        "--input",
        "{}",
        "--name",
        "fix-1",
    ]);
    assert!(
        !other_input.status.success(),
        "same name, other input is refused"
    );

    // The approval appears once the fix succeeded on its third attempt.
    let approval = wait_for("the approval", Duration::from_secs(60), || {
        let list = server.cli_json(&["approvals", "list"]);
        list.as_array()?
            .iter()
            .find(|a| a["execution_id"] == id.as_str())
            .cloned()
    });
    assert_eq!(approval["message"], "Restart the web tier?");
    assert_eq!(execution(server, &id)["status"], "RUNNING");
    let approval_id = approval["id"].as_str().unwrap();
    let out = server.cli(&["approvals", "approve", approval_id, "--comment", "go ahead"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `watch` follows to the end and exits 0 on success.
    let watch = server.cli(&["executions", "watch", &id]);
    let watched = String::from_utf8_lossy(&watch.stdout).into_owned();
    assert!(watch.status.success(), "{watched}");
    assert!(watched.contains("ExecutionSucceeded"), "{watched}");

    let done = execution(server, &id);
    assert_eq!(done["status"], "SUCCEEDED");
    let output = &done["output"];
    assert_eq!(output["check"]["status"], "Success");
    assert_eq!(output["check"]["nodes"], json!(["web-1", "web-2"]));
    assert_eq!(output["check"]["stdout"], "healthy\n");
    assert_eq!(output["fix"]["stdout"], "attempt 3\n");
    assert_eq!(output["approval"]["ApprovedBy"], "admin");
    assert_eq!(output["approval"]["Comment"], "go ahead");
    let decided = server.cli_json(&["approvals", "list", "--status", "Approved"]);
    let decided = decided
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == approval_id)
        .unwrap();
    assert_eq!(decided["decided_by"], "admin");
    assert_eq!(decided["comment"], "go ahead");

    // History: the states in order, two failed attempts with growing back-off.
    let events = history(server, &id);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let entered: Vec<&str> = events
        .iter()
        .filter(|e| e["type"].as_str().unwrap().ends_with("StateEntered"))
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(entered, ["Check", "Healthy?", "Fix", "Approve", "Done"]);
    assert_eq!(kinds.first(), Some(&"ExecutionStarted"));
    assert_eq!(kinds.last(), Some(&"ExecutionSucceeded"));
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "TaskFailed")
        .collect();
    assert_eq!(failed.len(), 2, "{kinds:?}");
    assert!(failed.iter().all(|e| e["error"] == "Operon.CommandFailed"));
    let scheduled: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "TaskScheduled")
        .map(|e| e["timestamp_millis"].as_i64().unwrap())
        .collect();
    assert_eq!(scheduled.len(), 5, "Check, 3 x Fix, Approve: {kinds:?}");
    let fail_at: Vec<i64> = failed
        .iter()
        .map(|e| e["timestamp_millis"].as_i64().unwrap())
        .collect();
    assert!(scheduled[2] - fail_at[0] >= 950, "first back-off about 1 s");
    assert!(
        scheduled[3] - fail_at[1] >= 1950,
        "second back-off about 2 s"
    );

    // The commands are ordinary commands, visible to `operon commands`.
    let commands = server.cli_json(&["commands", "list"]);
    let from_runbook = commands
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["requested_by"] == format!("execution/{id}"))
        .count();
    assert_eq!(
        from_runbook, 4,
        "Check once, then one command per attempt of Fix"
    );

    // Stopping a runbook cancels the command it is waiting for.
    let sleeper = json!({
        "StartAt": "Sleep",
        "States": {"Sleep": {
            "Type": "Task", "Resource": "operon:runCommand.sync",
            "Parameters": {"InstanceIds": ["web-1"], "Parameters": {"commands": ["sleep 60"]}},
            "End": true
        }}
    });
    let path = write_json(dir, "sleeper.json", &sleeper);
    server.cli_json(&["workflows", "create", "sleeper", "--definition", &path]);
    let id = server.cli_json(&["workflows", "start", "sleeper"])["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let command_id = wait_for("the sleep command to run", Duration::from_secs(30), || {
        let commands = server.cli_json(&["commands", "list"]);
        commands
            .as_array()?
            .iter()
            .find(|c| c["requested_by"] == format!("execution/{id}") && c["status"] == "InProgress")
            .map(|c| c["id"].as_str().unwrap().to_string())
    });
    let started = Instant::now();
    let stopped = server.cli_json(&["executions", "stop", &id]);
    assert_eq!(stopped["status"], "ABORTED");
    let command = server.wait_command_final(&command_id, Duration::from_secs(30));
    assert_eq!(command["status"], "Cancelled", "{command}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancelled, not run to the end"
    );
}

#[test]
fn two_hundred_executions_survive_a_server_sigkill_and_append_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("server");
    let mut server = ServerProcess::start(&data, port);
    let token = server.enroll_token(&[], 1, "1h");
    let _agent = AgentProcess::start(
        &server,
        &token,
        &dir.path().join("a1"),
        "worker-1",
        &["role=worker"],
    );
    server.wait_online(&["worker-1"]);
    let file = dir.path().join("appended.txt");
    let definition = json!({
        "StartAt": "Append",
        "States": {
            "Append": {
                "Type": "Task",
                "Resource": "operon:runCommand.sync",
                "Parameters": {
                    "Targets": [{"Key": "tag:role", "Values": ["worker"]}],
                    "Parameters": {
                        // The sleep keeps executions running while the last
                        // ones are started, so the kill lands mid-run however
                        // fast the server and agent are.
                        "commands.$": "States.Array(States.Format('sleep 1; echo {} >> {}', $$.Execution.Name, $.file))"
                    }
                },
                "ResultSelector": {"status.$": "$.Status"},
                "ResultPath": "$.append",
                "Next": "Settle"
            },
            "Settle": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
            "Done": {"Type": "Pass", "End": true}
        }
    });
    let def_path = write_json(dir.path(), "append.json", &definition);
    server.cli_json(&["workflows", "create", "append", "--definition", &def_path]);
    let input = json!({"file": file.to_str().unwrap()}).to_string();

    // Start 200 executions from 4 CLI threads; each start is acknowledged
    // only once it is on disk.
    let names: Vec<String> = (0..200).map(|i| format!("line-{i:03}")).collect();
    std::thread::scope(|s| {
        for chunk in names.chunks(50) {
            let server = &server;
            let input = &input;
            s.spawn(move || {
                for name in chunk {
                    server.cli_json(&[
                        "workflows",
                        "start",
                        "append",
                        "--input",
                        input,
                        "--name",
                        name,
                    ]);
                }
            });
        }
    });

    // SIGKILL the server while the executions are running.
    wait_for("the first appended line", Duration::from_secs(60), || {
        (!lines(&file).is_empty()).then_some(())
    });
    server.kill();
    let at_kill = lines(&file).len();
    eprintln!("server killed with {at_kill} of 200 lines appended");
    assert!(
        at_kill < 200,
        "all 200 finished before the kill; the test proves nothing"
    );

    let server = ServerProcess::start(&data, port);
    wait_for(
        "all 200 executions to succeed",
        Duration::from_secs(180),
        || {
            let done = server.cli_json(&[
                "executions",
                "list",
                "--workflow",
                "append",
                "--status",
                "SUCCEEDED",
                "--limit",
                "1000",
            ]);
            (done.as_array()?.len() == 200).then_some(())
        },
    );
    let failed = server.cli_json(&["executions", "list", "--status", "FAILED"]);
    assert_eq!(failed.as_array().unwrap().len(), 0, "{failed}");

    let mut appended = lines(&file);
    appended.sort();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &appended {
        *counts.entry(line.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "appended more than once: {twice:?}");
    assert_eq!(
        appended, names,
        "every line exactly once (killed at {at_kill} lines)"
    );
}

#[test]
fn a_wait_timer_survives_a_server_restart_and_fires_about_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("server");
    let mut server = ServerProcess::start(&data, port);
    let definition = json!({
        "StartAt": "Pause",
        "States": {
            "Pause": {"Type": "Wait", "Seconds": 30, "Next": "Done"},
            "Done": {"Type": "Pass", "Result": "woke", "End": true}
        }
    });
    let def_path = write_json(dir.path(), "wait.json", &definition);
    server.cli_json(&["workflows", "create", "pause", "--definition", &def_path]);
    let started = server.cli_json(&["workflows", "start", "pause"]);
    let id = started["executionId"].as_str().unwrap().to_string();
    let t0 = Instant::now();

    std::thread::sleep(Duration::from_secs(5));
    server.kill();
    std::thread::sleep(Duration::from_secs(10));
    let server = ServerProcess::start(&data, port);
    assert_eq!(execution(&server, &id)["status"], "RUNNING");

    let done = wait_execution_final(&server, &id, Duration::from_secs(60));
    let waited = t0.elapsed();
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["output"], "woke");
    let elapsed_ms = done["stoppedAt"].as_i64().unwrap() - done["startedAt"].as_i64().unwrap();
    assert!(
        (30_000..40_000).contains(&elapsed_ms),
        "the 30 s Wait took {elapsed_ms} ms (observed {waited:?})"
    );
}

/// A loopback HTTP server: `/fail...` answers 503, anything else 200 `{}`.
/// Request bodies are collected.
fn recording_http_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                seen.lock().unwrap().push(v);
            }
            let status = if request_line.contains(" /fail") {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            );
        }
    });
    (port, bodies)
}

fn wait_token(bodies: &std::sync::Mutex<Vec<Value>>, already: usize) -> String {
    wait_for(
        "a task token posted to the HTTP server",
        Duration::from_secs(30),
        || {
            let seen = bodies.lock().unwrap();
            seen.iter()
                .filter_map(|b| b["token"].as_str())
                .nth(already)
                .map(str::to_string)
        },
    )
}

#[test]
fn http_child_executions_task_tokens_stop_redrive_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let (port, bodies) = recording_http_server();
    let base = format!("http://127.0.0.1:{port}");

    // YAML definitions are accepted by the CLI.
    let yaml = dir.path().join("child.yaml");
    std::fs::write(
        &yaml,
        "StartAt: Reply\nStates:\n  Reply:\n    Type: Pass\n    Result:\n      child: done\n    End: true\n",
    )
    .unwrap();
    server.cli_json(&[
        "workflows",
        "create",
        "child",
        "--definition",
        yaml.to_str().unwrap(),
    ]);
    let bad = write_json(
        dir.path(),
        "bad.json",
        &json!({"StartAt": "Nowhere", "States": {}}),
    );
    let out = server.cli(&["workflows", "create", "broken", "--definition", &bad]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid definition"));

    let parent = json!({
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task", "Resource": "operon:http",
                "Parameters": {"Url.$": "States.Format('{}/fail', $.base)", "Method": "POST", "Body": {"x": 1}},
                "Catch": [{"ErrorEquals": ["Operon.HttpError"], "ResultPath": "$.httpError", "Next": "Child"}],
                "ResultPath": "$.http", "Next": "Child"
            },
            "Child": {
                "Type": "Task", "Resource": "operon:startExecution.sync",
                "Parameters": {"StateMachine": "child", "Input": {"from": "parent"}},
                "ResultSelector": {"out.$": "$.Output", "status.$": "$.Status"},
                "ResultPath": "$.child", "Next": "Publish"
            },
            "Publish": {
                "Type": "Task", "Resource": "operon:publishEvent",
                "Parameters": {"Source": "runbook", "DetailType": "Step Done", "Detail": {"child.$": "$.child.status"}},
                "ResultPath": "$.published", "Next": "Callback"
            },
            "Callback": {
                "Type": "Task", "Resource": "operon:http.waitForTaskToken",
                "Parameters": {"Url.$": "States.Format('{}/ok', $.base)", "Method": "POST", "Body": {"token.$": "$$.Task.Token"}},
                "HeartbeatSeconds": 60,
                "ResultPath": "$.callback", "End": true
            }
        }
    });
    let parent_path = write_json(dir.path(), "parent.json", &parent);
    server.cli_json(&[
        "workflows",
        "create",
        "parent",
        "--definition",
        &parent_path,
    ]);
    let input = json!({"base": base}).to_string();
    let id = server.cli_json(&["workflows", "start", "parent", "--input", &input])["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let token = wait_token(&bodies, 0);
    let out = server.cli(&["tasks", "send-heartbeat", &token]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&[
        "tasks",
        "send-success",
        &token,
        "--output",
        r#"{"ok": true}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&["tasks", "send-success", &token]);
    assert!(!out.status.success(), "a token is answered once");
    let done = wait_execution_final(&server, &id, Duration::from_secs(30));
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let output = &done["output"];
    assert_eq!(output["httpError"]["Error"], "Operon.HttpError");
    assert!(
        output["httpError"]["Cause"]
            .as_str()
            .unwrap()
            .contains("503")
    );
    assert_eq!(
        output["child"],
        json!({"out": {"child": "done"}, "status": "SUCCEEDED"})
    );
    // publishEvent put the event on the default bus; its id is in the output.
    assert_eq!(
        output["published"]["EventId"].as_str().map(str::len),
        Some(36)
    );
    assert_eq!(output["callback"], json!({"ok": true}));
    assert_eq!(bodies.lock().unwrap()[0], json!({"x": 1}));
    let children = server.cli_json(&["executions", "list", "--workflow", "child"]);
    assert_eq!(children.as_array().unwrap().len(), 1);
    assert_eq!(children[0]["startedBy"], format!("execution/{id}"));

    // Fail, then redrive from the failed state.
    let gate = json!({
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Result": {"base": base}, "Next": "Gate"},
            "Gate": {
                "Type": "Task", "Resource": "operon:http.waitForTaskToken",
                "Parameters": {"Url.$": "States.Format('{}/ok', $.base)", "Method": "POST", "Body": {"token.$": "$$.Task.Token"}},
                "End": true
            }
        }
    });
    let gate_path = write_json(dir.path(), "gate.json", &gate);
    server.cli_json(&["workflows", "create", "gate", "--definition", &gate_path]);
    let id = server.cli_json(&["workflows", "start", "gate"])["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let token = wait_token(&bodies, 1);
    let out = server.cli(&[
        "tasks",
        "send-failure",
        &token,
        "--error",
        "Boom",
        "--cause",
        "bad",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = wait_execution_final(&server, &id, Duration::from_secs(30));
    assert_eq!(
        (failed["status"].as_str(), failed["error"].as_str()),
        (Some("FAILED"), Some("Boom"))
    );
    let redriven = server.cli_json(&["executions", "redrive", &id]);
    assert_eq!(redriven["status"], "RUNNING");
    let token = wait_token(&bodies, 2);
    server.cli_json(&[
        "tasks",
        "send-success",
        &token,
        "--output",
        "\"second time\"",
    ]);
    let done = wait_execution_final(&server, &id, Duration::from_secs(30));
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["output"], "second time");
    assert_eq!(done["redriveCount"], 1);
    let kinds: Vec<String> = history(&server, &id)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "PassStateEntered").count(),
        1,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"ExecutionRedriven".to_string()),
        "{kinds:?}"
    );
    let out = server.cli(&["executions", "redrive", &id]);
    assert!(
        !out.status.success(),
        "a succeeded execution cannot be redriven"
    );

    // Stop a running execution.
    let id = server.cli_json(&["workflows", "start", "gate"])["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    wait_token(&bodies, 3);
    let stopped = server.cli_json(&[
        "executions",
        "stop",
        &id,
        "--error",
        "Manual",
        "--cause",
        "test",
    ]);
    assert_eq!(stopped["status"], "ABORTED");
    assert_eq!(stopped["error"], "Manual");
    let aborted = server.cli_json(&["executions", "list", "--status", "ABORTED"]);
    assert_eq!(aborted.as_array().unwrap().len(), 1);

    // A new version; describe shows it; delete works once nothing runs.
    let updated = server.cli_json(&["workflows", "update", "gate", "--definition", &gate_path]);
    assert_eq!(updated["version"], 2);
    assert_eq!(
        server.cli_json(&["workflows", "describe", "gate"])["version"],
        2
    );
    server.cli_json(&["workflows", "delete", "gate"]);
    let out = server.cli(&["workflows", "start", "gate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no workflow named"));
}

#[test]
fn approvals_can_be_rejected_and_expire_after_their_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let definition = json!({
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task", "Resource": "operon:approval",
                "Parameters": {"Message.$": "$.message", "Approvers": ["admin"]},
                "TimeoutSeconds": 2,
                "End": true
            }
        }
    });
    let path = write_json(dir.path(), "approve.json", &definition);
    server.cli_json(&["workflows", "create", "approve", "--definition", &path]);
    let start = |message: &str| {
        let input = json!({"message": message}).to_string();
        server.cli_json(&["workflows", "start", "approve", "--input", &input])["executionId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let pending = |id: &str| {
        wait_for("a pending approval", Duration::from_secs(10), || {
            let list = server.cli_json(&["approvals", "list"]);
            list.as_array()?
                .iter()
                .find(|a| a["execution_id"] == id)
                .map(|a| a["id"].as_str().unwrap().to_string())
        })
    };

    let rejected = start("reject me");
    let approval = pending(&rejected);
    let out = server.cli(&["approvals", "reject", &approval, "--comment", "not now"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = wait_execution_final(&server, &rejected, Duration::from_secs(10));
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["error"], "Operon.ApprovalRejected");
    assert!(done["cause"].as_str().unwrap().contains("not now"));
    let again = server.cli(&["approvals", "approve", &approval]);
    assert!(
        !again.status.success(),
        "a decided approval cannot be decided again"
    );

    let expired = start("let me expire");
    let approval = pending(&expired);
    let done = wait_execution_final(&server, &expired, Duration::from_secs(20));
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["error"], "States.Timeout");
    let list = server.cli_json(&["approvals", "list", "--status", "Expired"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == approval.as_str()),
        "{list}"
    );
    let late = server.cli(&["approvals", "approve", &approval]);
    assert!(
        !late.status.success(),
        "an expired approval cannot be approved"
    );
}
