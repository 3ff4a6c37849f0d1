//! Identity, access and audit, end to end: the real server, real agents,
//! real tokens.
//!
//! The security table tries every authenticated endpoint of the OpenAPI
//! document with five kinds of caller that must all be refused, and checks
//! that nothing changed and that every refusal is in the audit trail.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// A policy that lets its holder run commands only on `env=staging` nodes,
/// and read the fleet.
fn staging_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RunOnStaging", "Effect": "Allow", "Action": "commands:Run", "Resource": "node/*",
             "Condition": {"StringEquals": {"operon:NodeTag/env": "staging"}}},
            {"Sid": "ReadFleet", "Effect": "Allow",
             "Action": ["nodes:List", "nodes:Get", "commands:Get", "commands:List"], "Resource": "*"}
        ]
    })
}

/// Everything, but only on nodes tagged `env=prod`: "permission on other tags".
fn prod_only_policy() -> Value {
    json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
        "Condition": {"StringEquals": {"operon:NodeTag/env": "prod"}}}]})
}

fn admin(fleet: &Fleet, method: &str, path: &str, body: Value) -> Value {
    let (status, answer) = http(
        fleet.server.port,
        method,
        path,
        Some(&fleet.server.token),
        Some(&body),
    );
    assert_eq!(status, 200, "{method} {path} as admin: {answer}");
    answer
}

/// A user holding one role with one policy, and a token of theirs.
fn user_with_policy(fleet: &Fleet, user: &str, policy: Option<Value>) -> (String, String) {
    let mut roles = vec![];
    if let Some(policy) = policy {
        admin(
            fleet,
            "POST",
            "/v1/policies",
            json!({"name": user, "document": policy}),
        );
        admin(
            fleet,
            "POST",
            "/v1/roles",
            json!({"name": user, "policies": [user]}),
        );
        roles.push(user.to_string());
    }
    admin(
        fleet,
        "POST",
        "/v1/users",
        json!({"name": user, "roles": roles}),
    );
    let token = admin(
        fleet,
        "POST",
        "/v1/tokens",
        json!({"name": "main", "user": user}),
    );
    (
        token["token"].as_str().unwrap().to_string(),
        token["id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_staging_only_user_runs_on_staging_nodes_and_is_refused_visibly_elsewhere() {
    let fleet = Fleet::start();
    let (token, _) = user_with_policy(&fleet, "alice", Some(staging_policy()));
    let out = operon()
        .args(["run", "--targets", "tag:role=web", "--", "echo", "hello"])
        .env("OPERON_SERVER", &fleet.server.url)
        .env("OPERON_TOKEN", &token)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a refused node makes the run fail");
    assert!(stderr.contains("refused on web-2"), "{stderr}");
    assert!(
        stdout.contains("web-1") && stdout.contains("hello"),
        "{stdout}"
    );
    // Only the permitted node ran it.
    let commands = fleet.server.cli_json(&["commands", "list"]);
    let id = commands[0]["id"].as_str().unwrap();
    let command = fleet.server.wait_command_final(id, Duration::from_secs(30));
    let nodes: Vec<&str> = command["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["node_name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["web-1"]);
    assert_eq!(command["request"]["refused"][0]["node"], "web-2");
    // All refused: 403, and no command.
    let out = operon()
        .args(["run", "--node", "web-2", "--", "true"])
        .env("OPERON_SERVER", &fleet.server.url)
        .env("OPERON_TOKEN", &token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 403"));
    assert_eq!(
        fleet
            .server
            .cli_json(&["commands", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The trail has the run (with its targets) and both refusals.
    let audit = fleet.server.cli_json(&[
        "audit",
        "list",
        "--actor",
        "alice",
        "--action",
        "commands:*",
    ]);
    let records = audit.as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["outcome"] == "partially denied"
                && r["detail"]["targets"] == json!(["web-1"])),
        "{audit}"
    );
    assert_eq!(
        records.iter().filter(|r| r["outcome"] == "denied").count(),
        2,
        "{audit}"
    );
    // The simulator names the deciding statement.
    let simulated = fleet.server.cli_json(&[
        "policies",
        "simulate",
        "--user",
        "alice",
        "--action",
        "commands:Run",
        "--node",
        "web-1",
    ]);
    assert_eq!(simulated["decision"], "allowed");
    assert_eq!(simulated["statement"]["sid"], "RunOnStaging");
    let simulated = fleet.server.cli_json(&[
        "policies",
        "simulate",
        "--user",
        "alice",
        "--action",
        "commands:Run",
        "--node",
        "web-2",
    ]);
    assert_eq!(simulated["decision"], "implicit_deny");
}

/// Requests an administrator could make to every authenticated endpoint,
/// with path parameters filled with resources that exist.
fn endpoint_table(fx: &Fixtures) -> Vec<(&'static str, String, Value)> {
    let table: Vec<(&str, &str, Value)> = vec![
        ("GET", "/metrics", json!({})),
        ("GET", "/v1/enroll-tokens", json!({})),
        ("POST", "/v1/enroll-tokens", json!({"uses": 1})),
        ("POST", "/v1/enroll-tokens/{enroll_token}/revoke", json!({})),
        ("GET", "/v1/nodes", json!({})),
        ("GET", "/v1/nodes/web-1", json!({})),
        ("POST", "/v1/nodes/web-1/tags", json!({"set": {"x": "y"}})),
        ("POST", "/v1/nodes/web-1/revoke", json!({})),
        ("POST", "/v1/nodes/web-1/rotate-credential", json!({})),
        ("GET", "/v1/nodes/web-1/inventory", json!({})),
        ("GET", "/v1/inventory?type=users", json!({})),
        ("GET", "/v1/metrics/query?metric=cpu.used", json!({})),
        ("GET", "/v1/metrics/names", json!({})),
        ("GET", "/v1/logs", json!({})),
        ("GET", "/v1/documents", json!({})),
        (
            "POST",
            "/v1/documents",
            json!({"name": "doc2", "content": {"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["true"]}}]}}),
        ),
        ("GET", "/v1/documents/hello", json!({})),
        (
            "POST",
            "/v1/documents/hello/default-version",
            json!({"version": 1}),
        ),
        ("GET", "/v1/commands", json!({})),
        (
            "POST",
            "/v1/commands",
            json!({"node_ids": ["web-1"], "parameters": {"commands": ["true"]}}),
        ),
        ("GET", "/v1/commands/{command}", json!({})),
        ("POST", "/v1/commands/{command}/cancel", json!({})),
        ("GET", "/v1/commands/{command}/stream", json!({})),
        ("GET", "/v1/whoami", json!({})),
        ("POST", "/v1/login", json!({})),
        ("GET", "/v1/users", json!({})),
        ("POST", "/v1/users", json!({"name": "eve"})),
        ("GET", "/v1/users/alice", json!({})),
        ("POST", "/v1/users/alice/disable", json!({})),
        ("POST", "/v1/users/alice/roles", json!({"grant": ["alice"]})),
        ("GET", "/v1/tokens", json!({})),
        (
            "POST",
            "/v1/tokens",
            json!({"name": "extra", "user": "alice"}),
        ),
        ("POST", "/v1/tokens/{token}/revoke", json!({})),
        ("POST", "/v1/admin-token/rotate", json!({})),
        ("GET", "/v1/policies", json!({})),
        (
            "POST",
            "/v1/policies",
            json!({"name": "p2", "document": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}),
        ),
        (
            "POST",
            "/v1/policies/simulate",
            json!({"user": "alice", "action": "nodes:List", "resource": "node/*"}),
        ),
        ("GET", "/v1/policies/alice", json!({})),
        ("DELETE", "/v1/policies/alice", json!({})),
        ("GET", "/v1/roles", json!({})),
        ("POST", "/v1/roles", json!({"name": "r2"})),
        ("GET", "/v1/roles/alice", json!({})),
        ("DELETE", "/v1/roles/alice", json!({})),
        (
            "POST",
            "/v1/roles/alice/policies",
            json!({"detach": ["alice"]}),
        ),
        ("GET", "/v1/audit", json!({})),
        ("POST", "/v1/audit/verify", json!({})),
        ("GET", "/v1/workflows", json!({})),
        (
            "POST",
            "/v1/workflows",
            json!({"name": "wf2", "definition": pass_machine()}),
        ),
        ("GET", "/v1/workflows/child", json!({})),
        (
            "PUT",
            "/v1/workflows/child",
            json!({"definition": pass_machine()}),
        ),
        ("DELETE", "/v1/workflows/child", json!({})),
        (
            "POST",
            "/v1/workflows/child/executions",
            json!({"input": {}}),
        ),
        ("GET", "/v1/executions", json!({})),
        ("GET", "/v1/executions/{execution}", json!({})),
        ("GET", "/v1/executions/{execution}/history", json!({})),
        ("POST", "/v1/executions/{execution}/stop", json!({})),
        ("POST", "/v1/executions/{execution}/redrive", json!({})),
        ("GET", "/v1/approvals", json!({})),
        ("GET", "/v1/approvals/{approval}", json!({})),
        (
            "POST",
            "/v1/approvals/{approval}/approve",
            json!({"comment": "ok"}),
        ),
        (
            "POST",
            "/v1/approvals/{approval}/reject",
            json!({"comment": "no"}),
        ),
        (
            "POST",
            "/v1/tasks/send-success",
            json!({"taskToken": fx.task_token, "output": {}}),
        ),
        (
            "POST",
            "/v1/tasks/send-failure",
            json!({"taskToken": fx.task_token, "error": "E"}),
        ),
        (
            "POST",
            "/v1/tasks/send-heartbeat",
            json!({"taskToken": fx.task_token}),
        ),
        (
            "POST",
            "/v1/events",
            json!({"Entries": [{"Source": "s", "DetailType": "t", "Detail": "{}"}]}),
        ),
        ("GET", "/v1/buses", json!({})),
        ("POST", "/v1/buses", json!({"name": "b2"})),
        ("DELETE", "/v1/buses/ops", json!({})),
        ("GET", "/v1/buses/default/tail", json!({})),
        ("GET", "/v1/rules", json!({})),
        ("GET", "/v1/rules/r1", json!({})),
        (
            "PUT",
            "/v1/rules/r1",
            json!({"pattern": {"source": ["y"]}, "targets": [{"Id": "l", "Kind": "log"}]}),
        ),
        ("DELETE", "/v1/rules/r1", json!({})),
        ("POST", "/v1/rules/r1/enable", json!({})),
        ("POST", "/v1/rules/r1/disable", json!({})),
        (
            "POST",
            "/v1/rules/r1/test",
            json!({"event": {"source": "x", "detail-type": "t", "detail": {}}}),
        ),
        ("GET", "/v1/dlq", json!({})),
        ("GET", "/v1/dlq/{dead}", json!({})),
        ("POST", "/v1/dlq/redrive", json!({"all": true})),
        ("GET", "/v1/webhooks", json!({})),
        ("POST", "/v1/webhooks", json!({"name": "wh2"})),
        ("DELETE", "/v1/webhooks/wh1", json!({})),
        ("GET", "/v1/archives", json!({})),
        (
            "POST",
            "/v1/archives",
            json!({"name": "ar2", "bus": "default"}),
        ),
        ("DELETE", "/v1/archives/ar1", json!({})),
        ("GET", "/v1/replays", json!({})),
        (
            "POST",
            "/v1/replays",
            json!({"name": "rp2", "archive": "ar1", "from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}),
        ),
        ("GET", "/v1/replays/rp1", json!({})),
        ("PUT", "/v1/parameters/%2Fsec%2Fx", json!({"value": "v"})),
        ("GET", "/v1/parameters/%2Fsec%2Fx", json!({})),
        ("DELETE", "/v1/parameters/%2Fsec%2Fx", json!({})),
        ("GET", "/v1/parameters", json!({})),
        ("GET", "/v1/parameters-by-path?path=/sec", json!({})),
        ("GET", "/v1/parameters/%2Fsec%2Fx/history", json!({})),
        (
            "POST",
            "/v1/parameters/%2Fsec%2Fx/labels",
            json!({"labels": ["l"]}),
        ),
        (
            "POST",
            "/v1/parameters/%2Fsec%2Fx/unlabel",
            json!({"version": 1, "labels": ["l"]}),
        ),
        ("GET", "/v1/parameters/%2Fsec%2Fx/tags", json!({})),
        (
            "POST",
            "/v1/parameters/%2Fsec%2Fx/tags",
            json!({"add": {"a": "b"}}),
        ),
        (
            "PUT",
            "/v1/param-syncs/s1",
            json!({"path": "/sec/", "targets": ["all"], "file": "/tmp/operon-sec-x"}),
        ),
        ("GET", "/v1/param-syncs", json!({})),
        ("GET", "/v1/param-syncs/s1", json!({})),
        ("DELETE", "/v1/param-syncs/s1", json!({})),
        ("GET", "/v1/keys", json!({})),
        ("POST", "/v1/keys/rotate", json!({})),
        ("POST", "/v1/keys/rewrap", json!({})),
        ("POST", "/v1/access-keys", json!({"user": "alice"})),
        ("GET", "/v1/access-keys", json!({})),
        ("DELETE", "/v1/access-keys/AKIANOSUCHKEY", json!({})),
        (
            "POST",
            "/v1/associations",
            json!({"name": "a1", "document": "AWS-RunShellScript", "targets": ["all"]}),
        ),
        ("GET", "/v1/associations", json!({})),
        ("GET", "/v1/associations/a1", json!({})),
        (
            "PUT",
            "/v1/associations/a1",
            json!({"document": "AWS-RunShellScript", "targets": ["all"]}),
        ),
        ("DELETE", "/v1/associations/a1", json!({})),
        ("POST", "/v1/associations/a1/run", json!({})),
        ("GET", "/v1/compliance", json!({})),
        ("GET", "/v1/compliance/summary", json!({})),
        (
            "PUT",
            "/v1/alarms/a1",
            json!({"metric": "cpu.used", "threshold": 90, "targets": ["all"]}),
        ),
        ("GET", "/v1/alarms", json!({})),
        ("GET", "/v1/alarms/a1", json!({})),
        ("GET", "/v1/alarms/a1/history", json!({})),
        ("DELETE", "/v1/alarms/a1", json!({})),
        (
            "POST",
            "/v1/alarms/a1/state",
            json!({"state": "OK", "reason": "x"}),
        ),
        (
            "PUT",
            "/v1/heals/h1",
            json!({"alarm": "a1", "workflow": "w1"}),
        ),
        ("GET", "/v1/heals", json!({})),
        ("GET", "/v1/heals/h1", json!({})),
        ("DELETE", "/v1/heals/h1", json!({})),
        ("GET", "/v1/incidents", json!({})),
        ("GET", "/v1/incidents/inc-1", json!({})),
        ("POST", "/v1/incidents/inc-1/ack", json!({})),
        ("POST", "/v1/incidents/inc-1/resolve", json!({})),
        (
            "PUT",
            "/v1/monitors/m1",
            json!({"kind": "check", "targets": ["all"],
                   "probe": {"type": "tcp", "host": "127.0.0.1", "port": 22}}),
        ),
        ("GET", "/v1/monitors", json!({})),
        ("GET", "/v1/monitors/m1", json!({})),
        ("DELETE", "/v1/monitors/m1", json!({})),
        ("GET", "/v1/sessions/connect?node=web-1", json!({})),
        ("GET", "/v1/sessions", json!({})),
        ("GET", "/v1/sessions/s-none", json!({})),
        ("POST", "/v1/sessions/s-none/terminate", json!({})),
        ("GET", "/v1/sessions/s-none/recording", json!({})),
    ];
    table
        .into_iter()
        .map(|(method, path, body)| {
            let path = path
                .replace("{command}", &fx.command_id)
                .replace("{token}", &fx.token_id)
                .replace("{enroll_token}", &fx.enroll_token_id)
                .replace("{execution}", &fx.execution_id)
                .replace("{approval}", &fx.approval_id)
                .replace("{dead}", &fx.dead_letter_id);
            (method, path, body)
        })
        .collect()
}

/// Resources the table's paths and bodies name.
struct Fixtures {
    command_id: String,
    token_id: String,
    enroll_token_id: String,
    execution_id: String,
    approval_id: String,
    task_token: String,
    dead_letter_id: String,
}

/// A bus, a rule, a webhook, an archive with a finished replay, and a dead
/// letter (a webhook target nobody listens on, with no retries).
fn event_fixtures(fleet: &Fleet) -> String {
    admin(fleet, "POST", "/v1/buses", json!({"name": "ops"}));
    admin(
        fleet,
        "POST",
        "/v1/archives",
        json!({"name": "ar1", "bus": "default"}),
    );
    admin(fleet, "POST", "/v1/webhooks", json!({"name": "wh1"}));
    admin(
        fleet,
        "PUT",
        "/v1/rules/r1",
        json!({"pattern": {"source": ["x"]}, "targets": [{"Id": "l", "Kind": "log"}]}),
    );
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    admin(
        fleet,
        "PUT",
        "/v1/rules/dead",
        json!({"pattern": {"source": ["fixture"]},
        "targets": [{"Id": "w", "Kind": "webhook", "Url": closed, "RetryPolicy": {"MaximumRetryAttempts": 0}}]}),
    );
    admin(
        fleet,
        "POST",
        "/v1/events",
        json!({"Entries": [{"Source": "fixture", "DetailType": "t", "Detail": "{}"}]}),
    );
    let dead = wait_for("a dead letter", Duration::from_secs(30), || {
        let letters = admin(fleet, "GET", "/v1/dlq", json!({}));
        letters.as_array()?.first()?["id"]
            .as_str()
            .map(str::to_string)
    });
    admin(
        fleet,
        "POST",
        "/v1/replays",
        json!({"name": "rp1", "archive": "ar1",
        "from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}),
    );
    wait_for("the replay to finish", Duration::from_secs(30), || {
        let replay = admin(fleet, "GET", "/v1/replays/rp1", json!({}));
        replay["finished_at"].as_i64()
    });
    dead
}

fn pass_machine() -> Value {
    json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}})
}

/// A workflow waiting for a task token (given to a child execution as its
/// input) and one waiting for an approval.
fn workflow_fixtures(fleet: &Fleet) -> (String, String, String) {
    admin(
        fleet,
        "POST",
        "/v1/workflows",
        json!({"name": "child", "definition": pass_machine()}),
    );
    admin(
        fleet,
        "POST",
        "/v1/workflows",
        json!({"name": "waits", "definition": {
        "StartAt": "Ask", "States": {"Ask": {"Type": "Task",
            "Resource": "operon:startExecution.waitForTaskToken",
            "Parameters": {"StateMachine": "child", "Input": {"token.$": "$$.Task.Token"}},
            "End": true}}}}),
    );
    admin(
        fleet,
        "POST",
        "/v1/workflows",
        json!({"name": "gate", "definition": {
        "StartAt": "Approve", "States": {"Approve": {"Type": "Task",
            "Resource": "operon:approval", "Parameters": {"Message": "go?"}, "End": true}}}}),
    );
    let waiting = admin(fleet, "POST", "/v1/workflows/waits/executions", json!({}));
    admin(fleet, "POST", "/v1/workflows/gate/executions", json!({}));
    let execution_id = waiting["executionId"].as_str().unwrap().to_string();
    let token = wait_for(
        "the child execution with the task token",
        Duration::from_secs(30),
        || {
            let children = admin(fleet, "GET", "/v1/executions?workflow=child", json!({}));
            let id = children.as_array()?.first()?["executionId"]
                .as_str()?
                .to_string();
            let child = admin(fleet, "GET", &format!("/v1/executions/{id}"), json!({}));
            child["input"]["token"].as_str().map(str::to_string)
        },
    );
    let approval = wait_for("the pending approval", Duration::from_secs(30), || {
        let approvals = admin(fleet, "GET", "/v1/approvals", json!({}));
        approvals.as_array()?.first()?["id"]
            .as_str()
            .map(str::to_string)
    });
    (execution_id, approval, token)
}

/// Endpoints every valid token may call about itself.
const SELF_SERVICE: &[&str] = &["/v1/whoami", "/v1/login"];

/// What an administrator can see: compared before and after the attempts.
fn snapshot(fleet: &Fleet) -> Value {
    let paths = [
        "/v1/users",
        "/v1/tokens",
        "/v1/policies",
        "/v1/roles",
        "/v1/nodes",
        "/v1/documents",
        "/v1/commands",
        "/v1/enroll-tokens",
        "/v1/workflows",
        "/v1/executions",
        "/v1/approvals",
        "/v1/buses",
        "/v1/rules",
        "/v1/dlq",
        "/v1/webhooks",
        "/v1/archives",
        "/v1/replays",
        "/v1/parameters",
        "/v1/param-syncs",
        "/v1/keys",
        "/v1/access-keys",
        "/v1/associations",
        "/v1/compliance",
        "/v1/monitors",
        "/v1/logs",
        "/v1/inventory?type=users",
        "/v1/alarms",
        "/v1/heals",
        "/v1/incidents",
        "/v1/sessions",
    ];
    let mut all = serde_json::Map::new();
    for path in paths {
        let mut value = admin(fleet, "GET", path, json!({}));
        // Liveness fields move on their own.
        for item in value.as_array_mut().into_iter().flatten() {
            if let Some(map) = item.as_object_mut() {
                map.remove("last_seen");
            }
        }
        all.insert(path.to_string(), value);
    }
    Value::Object(all)
}

#[test]
fn every_endpoint_refuses_every_kind_of_unauthorised_caller_and_audits_it() {
    let fleet = Fleet::start();
    // Fixtures the table's paths name.
    user_with_policy(&fleet, "alice", Some(staging_policy()));
    admin(
        &fleet,
        "POST",
        "/v1/documents",
        json!({"name": "hello", "content": {"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["true"]}}]}}),
    );
    let command = admin(
        &fleet,
        "POST",
        "/v1/commands",
        json!({"node_ids": ["web-1"], "parameters": {"commands": ["sleep 600"]}}),
    );
    let command_id = command["id"].as_str().unwrap().to_string();
    let (_, alice_token_id) = {
        let t = admin(
            &fleet,
            "POST",
            "/v1/tokens",
            json!({"name": "second", "user": "alice"}),
        );
        (
            t["token"].as_str().unwrap().to_string(),
            t["id"].as_str().unwrap().to_string(),
        )
    };
    let (nobody, _) = user_with_policy(&fleet, "nobody", None);
    let (prod_only, _) = user_with_policy(&fleet, "prodonly", Some(prod_only_policy()));
    let (revoked, revoked_id) = user_with_policy(
        &fleet,
        "gone",
        Some(json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})),
    );
    admin(
        &fleet,
        "POST",
        &format!("/v1/tokens/{revoked_id}/revoke"),
        json!({}),
    );
    let expired = admin(
        &fleet,
        "POST",
        "/v1/tokens",
        json!({"name": "short", "user": "gone", "expires_in_secs": 1}),
    );
    let expired = expired["token"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1500));

    let (execution_id, approval_id, task_token) = workflow_fixtures(&fleet);
    let dead_letter_id = event_fixtures(&fleet);
    let enroll_token = admin(&fleet, "POST", "/v1/enroll-tokens", json!({"uses": 1}));
    let fixtures = Fixtures {
        dead_letter_id,
        command_id,
        token_id: alice_token_id,
        enroll_token_id: enroll_token["id"].as_str().unwrap().to_string(),
        execution_id,
        approval_id,
        task_token,
    };
    let table = endpoint_table(&fixtures);
    // Every route of the action catalogue is in the table, so a new route
    // cannot be left out of this test (operon-server's tests check that the
    // catalogue, the router and the OpenAPI document agree).
    for route in operon_server::catalogue::ROUTES {
        let template = regex_free_match(route.path);
        assert!(
            table
                .iter()
                .any(|(m, p, _)| m.eq_ignore_ascii_case(route.method) && template(p)),
            "{} {} is missing from the security table",
            route.method,
            route.path
        );
    }
    assert_eq!(
        operon_server::catalogue::ROUTES.len(),
        table.len(),
        "the table has an entry per catalogued route"
    );

    let before = snapshot(&fleet);
    let (_, audit_before) = http(
        fleet.server.port,
        "GET",
        "/v1/audit?limit=1",
        Some(&fleet.server.token),
        None,
    );
    let seq_before = audit_before[0]["seq"].as_i64().unwrap();
    let callers: [(&str, Option<&str>, u16); 5] = [
        ("no token", None, 401),
        ("expired token", Some(&expired), 401),
        ("revoked token", Some(&revoked), 401),
        ("user without permission", Some(&nobody), 403),
        (
            "user with permission on other tags only",
            Some(&prod_only),
            403,
        ),
    ];
    let mut attempts = Vec::new();
    for (who, token, expected) in callers {
        for (method, path, body) in &table {
            if expected == 403 && SELF_SERVICE.contains(&path.as_str()) {
                continue;
            }
            let (status, answer) = http(fleet.server.port, method, path, token, Some(body));
            assert_eq!(
                status, expected,
                "{who}: {method} {path} answered {status}: {answer}"
            );
            attempts.push((who, *method, path.clone(), status));
        }
    }
    assert_eq!(snapshot(&fleet), before, "refused requests changed nothing");

    // Every refusal is in the trail, in order.
    let (_, trail) = http(
        fleet.server.port,
        "GET",
        "/v1/audit?limit=10000",
        Some(&fleet.server.token),
        None,
    );
    let refusals: Vec<&Value> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["seq"].as_i64().unwrap() > seq_before)
        .filter(|r| r["outcome"] == "denied" || r["outcome"] == "unauthenticated")
        .collect();
    assert_eq!(
        refusals.len(),
        attempts.len(),
        "one audit record per refusal"
    );
    for ((who, method, path, status), record) in attempts.iter().zip(&refusals) {
        match status {
            401 => {
                assert_eq!(
                    record["outcome"], "unauthenticated",
                    "{who} {method} {path}"
                );
                assert_eq!(
                    record["detail"]["path"].as_str(),
                    Some(path.as_str()).map(|p| p.split('?').next().unwrap())
                );
            }
            _ => {
                assert_eq!(record["outcome"], "denied", "{who} {method} {path}");
                let actor = if who.contains("other tags") {
                    "prodonly"
                } else {
                    "nobody"
                };
                assert_eq!(record["actor"], actor, "{who} {method} {path}");
            }
        }
    }
    println!(
        "security table: {} endpoints x 5 callers = {} refused attempts",
        table.len(),
        attempts.len()
    );
    let verify = fleet.server.cli_json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

/// A predicate matching concrete paths against an OpenAPI path template.
fn regex_free_match(template: &str) -> impl Fn(&str) -> bool + '_ {
    move |path: &str| {
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('?').next().unwrap().split('/').collect();
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
    }
}

#[test]
fn audit_verify_reports_edited_removed_and_swapped_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let port = free_port();
    let mut server = ServerProcess::start(&data, port);
    for n in 0..8 {
        let token = server.enroll_token(&[&format!("n={n}")], 1, "1h");
        assert!(token.starts_with("oet_"));
    }
    // One of them revoked from the CLI (records 9 and on are not tampered with).
    let listed = server.cli_json(&["enroll-tokens", "list"]);
    let id = listed[0]["id"].as_str().unwrap();
    let revoked = server.cli_json(&["enroll-tokens", "revoke", id]);
    assert!(revoked["revoked_at"].as_i64().is_some(), "{revoked}");
    let out = server.cli(&["enroll-tokens", "list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("REVOKED"));
    assert_eq!(server.cli_json(&["audit", "verify"])["ok"], true);
    server.kill();
    // Tamper with the database directly, as someone with disk access would.
    let db = data.join("operon.db");
    let tamper = |statements: &[&str]| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            use sqlx::ConnectOptions;
            let mut db = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .connect()
                .await
                .unwrap();
            for sql in statements {
                let sql: String = sql.to_string();
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut db)
                    .await
                    .unwrap();
            }
        });
    };
    tamper(&["UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2"]);
    tamper(&["DELETE FROM audit_log WHERE seq = 4"]);
    tamper(&[
        "UPDATE audit_log SET seq = -13 + seq WHERE seq IN (6, 7)",
        "UPDATE audit_log SET seq = -seq WHERE seq < 0",
    ]);
    let server = ServerProcess::start(&data, port);
    let out = server.cli(&["audit", "verify"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "verify fails on a tampered log");
    assert!(report.contains("record 2 was edited"), "{report}");
    assert!(report.contains("records 4..4 were removed"), "{report}");
    assert!(report.contains("record 6 is out of order"), "{report}");
    assert!(report.contains("record 7 is out of order"), "{report}");
}

#[test]
fn login_scopes_disabling_rotation_and_no_secret_in_logs_or_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = ServerProcess::start_with(
        &dir.path().join("server"),
        free_port(),
        "debug",
        std::process::Stdio::from(log),
    );
    let admin_token = server.token.clone();
    let as_admin = |method: &str, path: &str, body: Value| {
        let (status, answer) = http(server.port, method, path, Some(&admin_token), Some(&body));
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer
    };
    as_admin(
        "POST",
        "/v1/policies",
        json!({"name": "all", "document": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}),
    );
    as_admin(
        "POST",
        "/v1/roles",
        json!({"name": "ops", "policies": ["all"]}),
    );
    as_admin(
        "POST",
        "/v1/users",
        json!({"name": "bob", "roles": ["ops"]}),
    );
    let scoped = as_admin(
        "POST",
        "/v1/tokens",
        json!({"name": "ci", "user": "bob", "scopes": ["nodes:List"]}),
    );
    let scoped = scoped["token"].as_str().unwrap().to_string();
    let full = as_admin(
        "POST",
        "/v1/tokens",
        json!({"name": "laptop", "user": "bob"}),
    );
    let full = full["token"].as_str().unwrap().to_string();

    // Scopes narrow what the user's policies allow.
    assert_eq!(
        http(server.port, "GET", "/v1/nodes", Some(&scoped), None).0,
        200
    );
    let (status, answer) = http(server.port, "GET", "/v1/users", Some(&scoped), None);
    assert_eq!(status, 403);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scopes"),
        "{answer}"
    );

    // `operon login` stores the token 0600 and later commands use it.
    let config = dir.path().join("config");
    let cli = |args: &[&str], token: Option<&str>| {
        let mut cmd = operon();
        cmd.args(args)
            .env("OPERON_SERVER", &server.url)
            .env("OPERON_CONFIG_DIR", &config)
            .env("OPERON_DATA_DIR", dir.path().join("elsewhere"))
            .env_remove("OPERON_TOKEN");
        if let Some(token) = token {
            cmd.env("OPERON_TOKEN", token);
        }
        cmd.output().unwrap()
    };
    let out = cli(&["login"], Some(&full));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("as bob"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(config.join("credentials.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = cli(&["users", "list", "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logins = as_admin("GET", "/v1/audit?actor=bob&action=auth:Login", json!({}));
    assert!(
        logins
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["detail"]["event"] == "login"),
        "{logins}"
    );

    // Disabling a user stops every token of theirs at once.
    as_admin("POST", "/v1/users/bob/disable", json!({}));
    let (status, answer) = http(server.port, "GET", "/v1/nodes", Some(&full), None);
    assert_eq!(status, 401);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );

    // Rotating the admin token: the old one is refused, the file has the new one.
    let enroll = as_admin("POST", "/v1/enroll-tokens", json!({"uses": 1}));
    let enroll_token = enroll["token"].as_str().unwrap().to_string();
    let rotated = as_admin("POST", "/v1/admin-token/rotate", json!({}));
    let new_admin = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(
        http(server.port, "GET", "/v1/nodes", Some(&admin_token), None).0,
        401
    );
    assert_eq!(
        http(server.port, "GET", "/v1/nodes", Some(&new_admin), None).0,
        200
    );
    let in_file = std::fs::read_to_string(server.data_dir.join("admin-token")).unwrap();
    assert_eq!(in_file.trim(), new_admin);

    // A failed enrollment and an error that echoes input: still no secret.
    let (status, _) = http(
        server.port,
        "POST",
        "/v1/agent/enroll",
        None,
        Some(&json!({"enroll_token": "oet_wrong", "inventory": {}})),
    );
    assert!(status >= 400);
    let (_, trail) = http(
        server.port,
        "GET",
        "/v1/audit?limit=10000",
        Some(&new_admin),
        None,
    );
    server.kill();
    let log_text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log_text.contains("DEBUG") || log_text.contains("INFO"),
        "the log was captured"
    );
    let trail_text = trail.to_string();
    for (what, secret) in [
        ("first admin token", &admin_token),
        ("rotated admin token", &new_admin),
        ("scoped token", &scoped),
        ("user token", &full),
        ("enrollment token", &enroll_token),
    ] {
        let body = &secret[4..];
        assert!(!log_text.contains(body), "the {what} is in the server log");
        assert!(
            !trail_text.contains(body),
            "the {what} is in the audit trail"
        );
    }
}

#[test]
fn event_puts_are_audited_with_their_events_and_the_chain_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    // Two writers append to the trail at once: the event writer (records
    // committed with their events) and the audit writer (everything else).
    std::thread::scope(|scope| {
        for t in 0..8 {
            let server = &server;
            scope.spawn(move || {
                for i in 0..10 {
                    let (path, body) = if t % 2 == 0 {
                        ("/v1/events", json!({"Entries": [{"Source": "load", "DetailType": "t", "Detail": format!("{{\"i\":{i}}}")}]}))
                    } else {
                        ("/v1/enroll-tokens", json!({"uses": 1}))
                    };
                    let (status, answer) = http(server.port, "POST", path, Some(&server.token), Some(&body));
                    assert_eq!(status, 200, "{answer}");
                }
            });
        }
    });
    let (_, trail) = http(
        server.port,
        "GET",
        "/v1/audit?limit=10000&action=events:Put",
        Some(&server.token),
        None,
    );
    let puts = trail.as_array().unwrap();
    assert_eq!(puts.len(), 40, "one record per PutEvents call");
    assert!(
        puts.iter()
            .all(|r| r["resource"] == "bus/default" && r["detail"]["entries"] == 1)
    );
    let (_, trail) = http(
        server.port,
        "GET",
        "/v1/audit?limit=10000&action=enrollTokens:Create",
        Some(&server.token),
        None,
    );
    assert_eq!(trail.as_array().unwrap().len(), 40);
    let verify = server.cli_json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    // The verify call is itself recorded; the head file names the last record.
    let (_, last) = http(
        server.port,
        "GET",
        "/v1/audit?limit=1",
        Some(&server.token),
        None,
    );
    let head = std::fs::read_to_string(server.data_dir.join("audit-head")).unwrap();
    let head_seq: i64 = head.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        Some(head_seq),
        last[0]["seq"].as_i64(),
        "the head file follows both writers"
    );
}
