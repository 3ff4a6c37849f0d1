//! Dispatch end to end, in one process: a real server and real agents (the
//! agent library, running real shells) on loopback, without spawning
//! binaries. Covers the commands service, the dispatcher and its rate
//! control, the agent session and the result writer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::fleet::Fleet;

fn by_node(command: &Value) -> BTreeMap<String, Value> {
    command["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["node_name"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_exactly_their_targets_under_rate_control() {
    let fleet = Fleet::start(&[("web-1", "web"), ("web-2", "web"), ("db-1", "db")]).await;

    // Targets by tag: only the web nodes run it, each with its own output.
    let command = fleet
        .run(json!({"targets": ["tag:role=web"], "parameters": {"commands": ["echo \"hi from $(hostname >/dev/null; echo node)\""]}}))
        .await;
    assert_eq!(command["status"], "Success", "{command}");
    let nodes = by_node(&command);
    assert_eq!(nodes.keys().collect::<Vec<_>>(), ["web-1", "web-2"]);
    for invocation in nodes.values() {
        assert_eq!(invocation["stdout"], "hi from node\n");
        assert_eq!(invocation["exit_code"], 0);
    }

    // SSM-shaped targets reach the same nodes.
    let command = fleet
        .run(json!({"targets": [{"Key": "tag:role", "Values": ["db"]}], "parameters": {"commands": ["true"]}}))
        .await;
    assert_eq!(by_node(&command).keys().collect::<Vec<_>>(), ["db-1"]);

    // One at a time and no error tolerated: the first failure stops the rest.
    let command = fleet
        .run(
            json!({"targets": ["all"], "max_concurrency": "1", "max_errors": "0",
            "parameters": {"commands": ["exit 3"]}}),
        )
        .await;
    let statuses: Vec<&str> = command["invocations"]
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
    assert_eq!(command["status"], "Failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_command_is_cancelled_on_the_node() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let (_, created) = fleet
        .call(
            "POST",
            "/v1/commands",
            Some(json!({"node_ids": ["web-1"], "parameters": {"commands": ["echo started; sleep 30"]}})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    fleet
        .get_until(&format!("/v1/commands/{id}"), |c| {
            c["invocations"][0]["status"] == "InProgress"
        })
        .await;
    let started = Instant::now();
    let (status, _) = fleet
        .call(
            "POST",
            &format!("/v1/commands/{id}/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    let command = fleet.finished(&id).await;
    assert_eq!(command["status"], "Cancelled", "{command}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the node stopped the process"
    );
    let (status, _) = fleet
        .call(
            "POST",
            &format!("/v1/commands/{id}/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "a finished command cannot be cancelled again");
}

/// A document that echoes `word`.
fn echo_document(word: &str) -> Value {
    json!({"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "s",
        "inputs": {"runCommand": [format!("echo {word}")]}}]})
}

/// Issue 17: a new version of a document does not change what runs by name
/// (commands, rule targets, runbook tasks) until someone allowed
/// `documents:UpdateDefaultVersion` makes it the default; `documents:Create`
/// alone cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_document_version_runs_by_name_only_once_it_is_the_default() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let create = |word: &str| json!({"name": "deploy", "content": echo_document(word)});
    let first = fleet.ok("POST", "/v1/documents", Some(create("one"))).await;
    assert_eq!(
        (&first["version"], &first["default_version"]),
        (&json!(1), &json!(1))
    );
    let second = fleet.ok("POST", "/v1/documents", Some(create("two"))).await;
    assert_eq!(
        (&second["version"], &second["default_version"]),
        (&json!(2), &json!(1)),
        "a new version is not the default"
    );
    let shown = fleet.ok("GET", "/v1/documents/deploy", None).await;
    assert_eq!(
        (
            &shown["version"],
            &shown["default_version"],
            &shown["latest_version"]
        ),
        (&json!(1), &json!(1), &json!(2))
    );
    let shown = fleet
        .ok("GET", "/v1/documents/deploy?version=$LATEST", None)
        .await;
    assert_eq!(shown["version"], 2);

    // By name: the default. Selected: $LATEST, a number, $DEFAULT.
    let stdout = |command: &Value| by_node(command)["web-1"]["stdout"].clone();
    let run = |version: Option<Value>| {
        let mut body = json!({"document": "deploy", "node_ids": ["web-1"]});
        if let Some(v) = version {
            body["document_version"] = v;
        }
        body
    };
    for (version, runs) in [
        (None, "one"),
        (Some(json!("$DEFAULT")), "one"),
        (Some(json!("$LATEST")), "two"),
        (Some(json!(2)), "two"),
        (Some(json!("1")), "one"),
    ] {
        let command = fleet.run(run(version.clone())).await;
        assert_eq!(stdout(&command), format!("{runs}\n"), "{version:?}");
    }
    for bad in [json!("latest"), json!(0), json!(true)] {
        let (status, answer) = fleet
            .call("POST", "/v1/commands", Some(run(Some(bad))))
            .await;
        assert_eq!(status, 400, "{answer}");
    }
    let (status, answer) = fleet
        .call("POST", "/v1/commands", Some(run(Some(json!(7)))))
        .await;
    assert_eq!(status, 404, "{answer}");

    // A rule's run-command target and a runbook task run the default too.
    let rule = json!({"pattern": {"source": ["app.deploy"]},
        "targets": [{"Id": "d", "Kind": "run-command", "Document": "deploy", "NodeIds": ["web-1"]}]});
    fleet.ok("PUT", "/v1/rules/deploy", Some(rule)).await;
    let by_rule = || async {
        let event =
            json!({"Entries": [{"Source": "app.deploy", "DetailType": "t", "Detail": "{}"}]});
        let before = fleet.rule_commands().await;
        fleet.ok("POST", "/v1/events", Some(event)).await;
        let list = fleet
            .get_until("/v1/commands", |list| {
                list.as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["requested_by"] == "rule/deploy")
                    .count()
                    > before
            })
            .await;
        let id = list.as_array().unwrap()[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        stdout(&fleet.finished(&id).await)
    };
    assert_eq!(by_rule().await, "one\n");
    let machine = json!({"StartAt": "Run", "States": {"Run": {"Type": "Task",
        "Resource": "operon:runCommand.sync",
        "Parameters": {"DocumentName": "deploy", "InstanceIds": ["web-1"]}, "End": true}}});
    fleet
        .ok(
            "POST",
            "/v1/workflows",
            Some(json!({"name": "rb", "definition": machine})),
        )
        .await;
    let by_runbook = || async {
        let started = fleet
            .ok(
                "POST",
                "/v1/workflows/rb/executions",
                Some(json!({"input": {}})),
            )
            .await;
        let id = started["executionId"].as_str().unwrap().to_string();
        let done = fleet
            .get_until(&format!("/v1/executions/{id}"), |e| {
                e["status"] != "RUNNING"
            })
            .await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        done["output"]["Invocations"][0]["Stdout"].clone()
    };
    assert_eq!(by_runbook().await, "one\n");

    // Someone who may only create documents adds a version, and cannot make
    // it the default.
    let writer = fleet
        .user_token(
            "writer",
            json!([{"Effect": "Allow", "Action": ["documents:Create", "documents:Get"], "Resource": "document/*"}]),
        )
        .await;
    let (status, answer) = fleet
        .call_as(&writer, "POST", "/v1/documents", Some(create("three")))
        .await;
    assert_eq!((status, &answer["version"]), (200, &json!(3)), "{answer}");
    let (status, answer) = fleet
        .call_as(
            &writer,
            "POST",
            "/v1/documents/deploy/default-version",
            Some(json!({"version": 3})),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(stdout(&fleet.run(run(None)).await), "one\n");
    assert_eq!(by_rule().await, "one\n");

    // Unknown versions and non-numbers are refused; then the administrator
    // makes version 2 the default and everything runs it.
    let set = |body: Value| fleet.call("POST", "/v1/documents/deploy/default-version", Some(body));
    let (status, answer) = set(json!({"version": 9})).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer.to_string().contains("has no version 9"), "{answer}");
    for bad in [
        json!({"version": "two"}),
        json!({"version": 1.5}),
        json!({}),
    ] {
        let (status, answer) = set(bad).await;
        assert_eq!(status, 400, "{answer}");
    }
    let (status, answer) = fleet
        .call(
            "POST",
            "/v1/documents/AWS-RunShellScript/default-version",
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    let (status, change) = set(json!({"version": 2})).await;
    assert_eq!(status, 200, "{change}");
    assert_eq!(
        (
            &change["default_version"],
            &change["previous_default_version"],
            &change["latest_version"]
        ),
        (&json!(2), &json!(1), &json!(3))
    );
    assert_eq!(stdout(&fleet.run(run(None)).await), "two\n");
    assert_eq!(by_rule().await, "two\n");
    assert_eq!(by_runbook().await, "two\n");
    let listed = fleet.ok("GET", "/v1/documents", None).await;
    let deploy = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "deploy")
        .unwrap()
        .clone();
    assert_eq!(
        (
            &deploy["default_version"],
            &deploy["latest_version"],
            &deploy["version"]
        ),
        (&json!(2), &json!(3), &json!(3))
    );

    // Both attempts are in the audit trail: the refusal and the change.
    let trail = fleet
        .ok(
            "GET",
            "/v1/audit?action=documents:UpdateDefaultVersion",
            None,
        )
        .await;
    let records: Vec<(String, String, String)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
                r["resource"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        records.contains(&("writer".into(), "denied".into(), "document/deploy".into())),
        "{trail}"
    );
    let allowed: Vec<&Value> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "admin" && r["outcome"] == "allowed")
        .collect();
    assert_eq!(allowed.len(), 1, "{trail}");
    assert_eq!(
        allowed[0]["detail"]["previous_default_version"], 1,
        "{trail}"
    );
}

impl Fleet {
    /// How many commands rule `deploy` has created.
    async fn rule_commands(&self) -> usize {
        let list = self.ok("GET", "/v1/commands", None).await;
        list.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["requested_by"] == "rule/deploy")
            .count()
    }
}
