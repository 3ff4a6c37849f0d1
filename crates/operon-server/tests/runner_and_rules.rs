//! The workflow runner and event rules, in-process: a real server on a
//! loopback port with a temporary SQLite store, driven over HTTP, without
//! spawning binaries or agents.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::Api;

trait Runbooks {
    async fn execution_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value;
    async fn executions_of(&self, workflow: &str) -> Vec<Value>;
}

impl Runbooks for Api {
    /// Poll an execution until `done` holds.
    async fn execution_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.get_until(&format!("/v1/executions/{id}"), done).await
    }

    async fn executions_of(&self, workflow: &str) -> Vec<Value> {
        let list = self
            .ok("GET", &format!("/v1/executions?workflow={workflow}"), None)
            .await;
        list.as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn the_runner_branches_waits_stops_and_redrives() {
    let api = Api::start().await;
    let definition = json!({
        "StartAt": "Check",
        "States": {
            "Check": {"Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}],
                "Default": "Small"},
            "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "Next": "Wait"},
            "Small": {"Type": "Fail", "Error": "Too.Small", "Cause": "n is at most 1"},
            "Wait": {"Type": "Wait", "SecondsPath": "$.wait", "End": true}
        }
    });
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "flow", "definition": definition})),
    )
    .await;

    // Choice, Pass, and a short Wait fired by the timer wheel.
    let started = api
        .ok(
            "POST",
            "/v1/workflows/flow/executions",
            Some(json!({"input": {"n": 5, "wait": 1}})),
        )
        .await;
    let id = started["executionId"].as_str().unwrap().to_string();
    let done = api.execution_until(&id, |e| e["status"] != "RUNNING").await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"], json!({"n": 5, "wait": 1, "size": "big"}));
    let history = api
        .ok("GET", &format!("/v1/executions/{id}/history"), None)
        .await;
    let text = history.to_string();
    for event in [
        "ChoiceStateEntered",
        "PassStateExited",
        "WaitStateEntered",
        "ExecutionSucceeded",
    ] {
        assert!(text.contains(event), "{event} missing from {text}");
    }

    // The Default branch fails with the state's error.
    let failed = api
        .ok(
            "POST",
            "/v1/workflows/flow/executions",
            Some(json!({"input": {"n": 1}})),
        )
        .await;
    let failed = api
        .execution_until(failed["executionId"].as_str().unwrap(), |e| {
            e["status"] != "RUNNING"
        })
        .await;
    assert_eq!(
        (failed["status"].as_str(), failed["error"].as_str()),
        (Some("FAILED"), Some("Too.Small"))
    );

    // A long Wait is stopped, then redriven to the same place.
    let long = api
        .ok(
            "POST",
            "/v1/workflows/flow/executions",
            Some(json!({"input": {"n": 2, "wait": 3600}})),
        )
        .await;
    let long_id = long["executionId"].as_str().unwrap().to_string();
    api.ok(
        "POST",
        &format!("/v1/executions/{long_id}/stop"),
        Some(json!({})),
    )
    .await;
    let stopped = api
        .execution_until(&long_id, |e| e["status"] != "RUNNING")
        .await;
    assert_eq!(stopped["status"], "ABORTED");
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/executions/{long_id}/stop"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "stopping a stopped execution conflicts");
    api.ok(
        "POST",
        &format!("/v1/executions/{long_id}/redrive"),
        Some(json!({})),
    )
    .await;
    let redriven = api
        .execution_until(&long_id, |e| e["status"] == "RUNNING")
        .await;
    assert_eq!(redriven["redriveCount"], 1);

    // A start name is an idempotency key.
    let body = json!({"input": {"n": 0}, "name": "once"});
    let first = api
        .ok("POST", "/v1/workflows/flow/executions", Some(body.clone()))
        .await;
    let again = api
        .ok("POST", "/v1/workflows/flow/executions", Some(body))
        .await;
    assert_eq!(first["executionId"], again["executionId"]);
    let (status, _) = api
        .call(
            "POST",
            "/v1/workflows/flow/executions",
            Some(json!({"input": {"n": 9}, "name": "once"})),
        )
        .await;
    assert_eq!(status, 409, "the same name with another input conflicts");
}

#[tokio::test]
async fn a_rule_starts_workflows_until_it_is_deleted() {
    let api = Api::start().await;
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "onevent", "definition": definition})),
    )
    .await;
    let rule = json!({
        "pattern": {"source": ["app.test"], "detail": {"level": ["critical"]}},
        "targets": [{"Id": "wf", "Kind": "workflow", "Workflow": "onevent"}]
    });
    api.ok("PUT", "/v1/rules/critical", Some(rule)).await;
    let put = |level: &str| json!({"Entries": [{"Source": "app.test", "DetailType": "t", "Detail": json!({"level": level}).to_string()}]});
    api.ok("POST", "/v1/events", Some(put("critical"))).await;
    api.ok("POST", "/v1/events", Some(put("info"))).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.executions_of("onevent").await.is_empty() {
        assert!(Instant::now() < deadline, "the rule started nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let any delivery of the non-matching event surface, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = api.executions_of("onevent").await;
    assert_eq!(
        started.len(),
        1,
        "only the matching event starts one: {started:?}"
    );
    assert_eq!(started[0]["startedBy"], "rule/critical");
    // The start is audited under the rule's name, in the start's transaction.
    let trail = api.ok("GET", "/v1/audit?actor=rule/critical", None).await;
    let records = trail.as_array().unwrap();
    assert_eq!(records.len(), 1, "{trail}");
    assert_eq!(records[0]["action"], "workflows:StartExecution");
    assert_eq!(records[0]["resource"], "workflow/onevent");
    assert_eq!(
        records[0]["detail"]["execution_id"],
        started[0]["executionId"]
    );

    api.ok("DELETE", "/v1/rules/critical", None).await;
    let (status, _) = api.call("GET", "/v1/rules/critical", None).await;
    assert_eq!(status, 404);
    api.ok("POST", "/v1/events", Some(put("critical"))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.executions_of("onevent").await.len(),
        1,
        "a deleted rule matches nothing"
    );
}

#[tokio::test]
async fn sensitive_reads_are_audited_and_plain_reads_are_not() {
    let api = Api::start().await;
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "w", "definition": definition})),
    )
    .await;
    let started = api
        .ok(
            "POST",
            "/v1/workflows/w/executions",
            Some(json!({"input": {"secret": "s3"}})),
        )
        .await;
    let id = started["executionId"].as_str().unwrap();
    api.ok("GET", &format!("/v1/executions/{id}"), None).await;
    api.ok("GET", &format!("/v1/executions/{id}/history"), None)
        .await;
    let trail = api.ok("GET", "/v1/audit?action=executions:*", None).await;
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["executions:GetHistory"], "{trail}");
    let record = &trail[0];
    assert_eq!(record["resource"], format!("execution/{id}"));
    assert_eq!(record["actor"], "admin");
    assert!(
        !record.to_string().contains("s3"),
        "the audit record holds no payload"
    );
}

/// Durations that would overflow the clock are refused with 400 (the fuzzer
/// found them panicking or wrapping; command timeouts are covered by the
/// commands service's tests and the planner's).
#[tokio::test]
async fn out_of_range_durations_are_refused() {
    let api = Api::start().await;
    api.ok("POST", "/v1/users", Some(json!({"name": "alice"})))
        .await;
    let cases = [
        (
            "/v1/enroll-tokens",
            json!({"uses": 1, "expires_in_secs": 9223372036854775806_i64}),
        ),
        (
            "/v1/tokens",
            json!({"name": "t", "user": "alice", "expires_in_secs": i64::MAX}),
        ),
        (
            "/v1/archives",
            json!({"name": "a", "retention_days": i64::MAX}),
        ),
    ];
    for (path, body) in cases {
        let (status, answer) = api.call("POST", path, Some(body)).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("must be"),
            "{path}: {answer}"
        );
    }
    // The server still answers: nothing panicked.
    api.ok("GET", "/v1/health", None).await;
}

#[tokio::test]
async fn a_runaway_loop_yields_to_other_executions_and_stops_at_the_history_limit() {
    let api = Api::start().await;
    let spin = json!({"StartAt": "Spin", "States": {"Spin": {"Type": "Pass", "Next": "Spin"}}});
    let quick = json!({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}});
    for (name, definition) in [("spin", spin), ("quick", quick)] {
        api.ok(
            "POST",
            "/v1/workflows",
            Some(json!({"name": name, "definition": definition})),
        )
        .await;
    }
    let spinning = api
        .ok("POST", "/v1/workflows/spin/executions", Some(json!({})))
        .await;
    let started = Instant::now();
    let quick = api
        .ok("POST", "/v1/workflows/quick/executions", Some(json!({})))
        .await;
    let id = quick["executionId"].as_str().unwrap();
    api.execution_until(id, |e| e["status"] == "SUCCEEDED")
        .await;
    let waited = started.elapsed();
    let id = spinning["executionId"].as_str().unwrap();
    let spun = api.execution_until(id, |e| e["status"] != "RUNNING").await;
    assert_eq!(spun["status"], "FAILED", "{spun}");
    assert_eq!(spun["error"], "States.Runtime", "{spun}");
    assert!(
        waited < Duration::from_secs(5),
        "the loop held another execution for {waited:?}"
    );
}

/// A replay puts events on its archive's bus again, so starting one needs
/// `events:Put` on that bus besides `replays:Start` (issue 17).
#[tokio::test]
async fn starting_a_replay_needs_the_right_to_put_events_on_its_bus() {
    let api = Api::start().await;
    api.ok(
        "POST",
        "/v1/archives",
        Some(json!({"name": "ar", "bus": "default"})),
    )
    .await;
    let start = |token: String, name: &'static str| {
        let api = &api;
        async move {
            let body = json!({"name": name, "archive": "ar",
                "from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"});
            api.call_as(&token, "POST", "/v1/replays", Some(body)).await
        }
    };
    let start_only = api
        .user_token(
            "starter",
            json!([{"Effect": "Allow", "Action": "replays:Start", "Resource": "replay/*"}]),
        )
        .await;
    let (status, answer) = start(start_only, "rp1").await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.to_string().contains("events:Put"), "{answer}");
    let other_bus = api
        .user_token(
            "elsewhere",
            json!([{"Effect": "Allow", "Action": "replays:Start", "Resource": "replay/*"},
                   {"Effect": "Allow", "Action": "events:Put", "Resource": "bus/other"}]),
        )
        .await;
    let (status, answer) = start(other_bus, "rp2").await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = api.call("GET", "/v1/replays/rp1", None).await;
    assert_eq!(status, 404, "nothing was started: {answer}");
    let trail = api
        .ok("GET", "/v1/audit?actor=starter&action=events:Put", None)
        .await;
    assert_eq!(trail[0]["outcome"], "denied", "{trail}");
    assert_eq!(trail[0]["resource"], "bus/default", "{trail}");

    let both = api
        .user_token(
            "replayer",
            json!([{"Effect": "Allow", "Action": "replays:Start", "Resource": "replay/*"},
                   {"Effect": "Allow", "Action": "events:Put", "Resource": "bus/default"}]),
        )
        .await;
    let (status, answer) = start(both, "rp3").await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_malformed_rule_body_is_refused_only_after_rules_put_and_errors_keep_their_shape() {
    let api = Api::start().await;
    let body = json!({"pattern": {"source": ["app"]},
        "targets": [{"Id": "t0", "Kind": "log"}, {"Id": "t1", "Kind": "log", "Bogus": 1}]});
    let reader = api
        .user_token(
            "reader",
            json!([{"Effect": "Allow", "Action": "rules:List", "Resource": "*"}]),
        )
        .await;
    let (status, answer) = api
        .call_as(&reader, "PUT", "/v1/rules/r1", Some(body.clone()))
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "Forbidden", "{answer}");
    let trail = api
        .ok("GET", "/v1/audit?actor=reader&action=rules:Put", None)
        .await;
    assert_eq!(trail[0]["outcome"], "denied", "{trail}");

    let (status, answer) = api.call("PUT", "/v1/rules/r1", Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "ValidationError", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Targets[1]: "), "{message}");

    let duplicate = json!({"pattern": {"source": ["app"]},
        "targets": [{"Id": "t", "Kind": "log"}, {"Id": "t", "Kind": "log"}]});
    let (status, answer) = api.call("PUT", "/v1/rules/r1", Some(duplicate)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["message"], "Targets[1]: duplicate Id t");
    let (status, answer) = api.call("DELETE", "/v1/rules/r1", None).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "NotFound", "{answer}");
    assert_eq!(answer["error"]["message"], "no rule named r1");
    let (status, answer) = api
        .call("POST", "/v1/buses", Some(json!({"name": "default"})))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["message"], "bus default already exists");
}

#[tokio::test]
async fn an_approval_is_decided_only_by_its_approvers_and_its_token_is_not_a_task_token() {
    let api = Api::start().await;
    let definition = json!({
        "StartAt": "Approve",
        "States": {
            "Approve": {"Type": "Task", "Resource": "operon:approval",
                "Parameters": {"Message": "go?", "Approvers": ["carol"]},
                "TimeoutSeconds": 300, "ResultPath": "$.approval", "End": true}
        }
    });
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "gate", "definition": definition})),
    )
    .await;
    let started = api
        .ok("POST", "/v1/workflows/gate/executions", Some(json!({})))
        .await;
    let id = started["executionId"].as_str().unwrap().to_string();
    let pending = api
        .get_until("/v1/approvals?status=Pending", |a| {
            a.as_array().is_some_and(|l| !l.is_empty())
        })
        .await;
    let approval = pending[0].clone();
    assert_eq!(approval["execution_id"], id.as_str());
    let approval_id = approval["id"].as_str().unwrap();

    // Its token is answered as an approval, not as a task token.
    let (status, answer) = api
        .call(
            "POST",
            "/v1/tasks/send-success",
            Some(json!({"taskToken": approval["token"], "output": {}})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to an approval")
    );

    // Allowed to approve, but not among its approvers: refused and audited.
    let statements = json!([{"Effect": "Allow", "Action": "approvals:Approve", "Resource": "*"}]);
    let bob = api.user_token("bob", statements.clone()).await;
    let path = format!("/v1/approvals/{approval_id}/approve");
    let (status, answer) = api.call_as(&bob, "POST", &path, None).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not among the approvers")
    );
    let denied = api.audit_of("bob").await;
    assert!(denied.iter().any(|r| r["outcome"] == "denied"
        && r["action"] == "approvals:Approve"
        && r["resource"] == format!("approval/{approval_id}")));

    let carol = api.user_token("carol", statements).await;
    let (status, decided) = api
        .call_as(&carol, "POST", &path, Some(json!({"comment": "fine"})))
        .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["status"], "Approved");
    assert_eq!(decided["decided_by"], "carol");
    let done = api.execution_until(&id, |e| e["status"] != "RUNNING").await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    // Decided once: a second answer conflicts.
    let (status, _) = api.call_as(&carol, "POST", &path, None).await;
    assert_eq!(status, 409);
}
