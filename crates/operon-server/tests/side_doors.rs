//! The side doors an outside review used to get root commands on prod with
//! limited rights, each tried again as the attacker did (a real server,
//! real agents running real shells, real policies), each refused while the
//! legitimate use beside it still works.

use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::fleet::Fleet;

/// web-1 is staging, db-1 is prod.
async fn fleet() -> Fleet {
    Fleet::start_tagged(&[
        ("web-1", vec![("env", "staging")]),
        ("db-1", vec![("env", "prod")]),
    ])
    .await
}

/// Allowed everything, except commands on prod nodes.
fn denied_on_prod() -> Value {
    json!({"Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "commands:Run", "Resource": "node/*",
         "Condition": {"StringEquals": {"operon:NodeTag/env": "prod"}}}]})
}

/// The commands a rule or an execution created, by its `requested_by`.
async fn commands_by(fleet: &Fleet, actor_prefix: &str) -> Vec<Value> {
    let list = fleet.ok("GET", "/v1/commands?limit=100", None).await;
    list.as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["requested_by"]
                .as_str()
                .is_some_and(|r| r.starts_with(actor_prefix))
        })
        .cloned()
        .collect()
}

fn nodes_of(command: &Value) -> Vec<String> {
    let mut nodes: Vec<String> = command["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["node_name"].as_str().unwrap().to_string())
        .collect();
    nodes.sort();
    nodes
}

async fn put_event(fleet: &common::Api, token: &str, source: &str, detail: Value) -> Value {
    let (status, answer) = fleet
        .call_as(
            token,
            "POST",
            "/v1/events",
            Some(
                json!({"Entries": [{"Source": source, "DetailType": "Attack",
                "Detail": detail.to_string()}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A denial of `actor` recorded in the audit trail, with what it acted as.
async fn denial_of(fleet: &Fleet, actor: &str) -> Value {
    until(&format!("a denial of {actor}"), async || {
        fleet
            .audit_of(actor)
            .await
            .into_iter()
            .find(|r| r["outcome"] == "denied")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_by_a_user_denied_on_prod_runs_only_where_the_user_could() {
    let fleet = fleet().await;
    let alice = fleet.user_with_policy("alice", denied_on_prod()).await;
    let rule = json!({
        "pattern": {"source": ["attack"]},
        "targets": [{"Id": "root", "Kind": "run-command", "Targets": ["all"],
            "Parameters": {"commands": ["id -u"]}}]
    });
    let (status, answer) = fleet
        .call_as(&alice, "PUT", "/v1/rules/everywhere", Some(rule))
        .await;
    assert_eq!(status, 200, "{answer}");
    put_event(&fleet, &alice, "attack", json!({})).await;
    let command = until("the rule's command", async || {
        commands_by(&fleet, "rule/everywhere").await.pop()
    })
    .await;
    let done = fleet.finished(command["id"].as_str().unwrap()).await;
    assert_eq!(nodes_of(&done), ["web-1"], "never on prod: {done}");
    assert_eq!(done["status"], "Success", "staging still works: {done}");
    let denial = denial_of(&fleet, "rule/everywhere").await;
    assert_eq!(denial["resource"], "node/db-1");
    assert_eq!(denial["detail"]["acting_as"], "user/alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_by_a_user_denied_on_prod_runs_only_where_the_user_could() {
    let fleet = fleet().await;
    let alice = fleet.user_with_policy("alice", denied_on_prod()).await;
    let run_on = |targets: Value| {
        json!({"StartAt": "Run", "States": {"Run": {"Type": "Task",
            "Resource": "operon:runCommand.sync",
            "Parameters": {"Targets": targets, "Parameters": {"commands": ["id -u"]}},
            "End": true}}})
    };
    for (name, targets) in [
        (
            "alice-prod",
            json!([{"Key": "tag:env", "Values": ["prod"]}]),
        ),
        (
            "alice-staging",
            json!([{"Key": "tag:env", "Values": ["staging"]}]),
        ),
    ] {
        let body = json!({"name": name, "definition": run_on(targets)});
        let (status, answer) = fleet
            .call_as(&alice, "POST", "/v1/workflows", Some(body))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let start = async |workflow: &str| {
        let (status, started) = fleet
            .call_as(
                &alice,
                "POST",
                &format!("/v1/workflows/{workflow}/executions"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 200, "{started}");
        let id = started["executionId"].as_str().unwrap().to_string();
        fleet
            .get_until(&format!("/v1/executions/{id}"), |e| {
                e["status"] != "RUNNING"
            })
            .await
    };
    let refused = start("alice-prod").await;
    assert_eq!(refused["status"], "FAILED", "{refused}");
    assert_eq!(refused["error"], "Operon.AccessDenied", "{refused}");
    let allowed = start("alice-staging").await;
    assert_eq!(allowed["status"], "SUCCEEDED", "{allowed}");
    let denial = denial_of(
        &fleet,
        &format!("execution/{}", refused["executionId"].as_str().unwrap()),
    )
    .await;
    assert_eq!(denial["detail"]["acting_as"], "user/alice");
}

#[tokio::test]
async fn a_wrapper_runbook_cannot_start_a_runbook_its_author_may_not_start() {
    let api = common::Api::start().await;
    let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "admin-runbook", "definition": pass})),
    )
    .await;
    let carol = api
        .user_with_policy(
            "carol",
            json!({"Statement": [{"Effect": "Allow", "Action": "workflows:*",
                "Resource": ["workflow/carol-*", "execution/*"]}]}),
        )
        .await;
    let wrapper = |child: &str| {
        json!({"StartAt": "Child", "States": {"Child": {"Type": "Task",
            "Resource": "operon:startExecution.sync",
            "Parameters": {"StateMachine": child, "Input": {"cmd": "rm -rf /"}}, "End": true}}})
    };
    for (name, child) in [("carol-wrap", "admin-runbook"), ("carol-ok", "carol-child")] {
        let body = json!({"name": name, "definition": wrapper(child)});
        let (status, answer) = api
            .call_as(&carol, "POST", "/v1/workflows", Some(body))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let body = json!({"name": "carol-child", "definition": pass});
    api.call_as(&carol, "POST", "/v1/workflows", Some(body))
        .await;
    let run = async |workflow: &str| {
        let (status, started) = api
            .call_as(
                &carol,
                "POST",
                &format!("/v1/workflows/{workflow}/executions"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 200, "{started}");
        let id = started["executionId"].as_str().unwrap().to_string();
        api.get_until(&format!("/v1/executions/{id}"), |e| {
            e["status"] != "RUNNING"
        })
        .await
    };
    let refused = run("carol-wrap").await;
    assert_eq!(refused["error"], "Operon.AccessDenied", "{refused}");
    let children = api
        .ok("GET", "/v1/executions?workflow=admin-runbook", None)
        .await;
    assert_eq!(children, json!([]), "the admin runbook never started");
    let allowed = run("carol-ok").await;
    assert_eq!(allowed["status"], "SUCCEEDED", "{allowed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_can_narrow_a_rule_target_but_never_widen_it() {
    let fleet = fleet().await;
    fleet
        .ok(
            "PUT",
            "/v1/rules/restart-staging",
            Some(json!({
                "pattern": {"source": ["monitor"]},
                "targets": [{"Id": "restart", "Kind": "run-command",
                    "Targets": ["tag:env=staging"], "InputPath": "$.detail",
                    "Parameters": {"commands": ["echo restart"]}}]
            })),
        )
        .await;
    let eve = fleet
        .user_with_policy(
            "eve",
            json!({"Statement": [{"Effect": "Allow", "Action": "events:Put", "Resource": "*"}]}),
        )
        .await;
    for widen in [
        json!({"node_ids": ["db-1"]}),
        json!({"targets": ["all"]}),
        json!({"node_ids": ["web-1", "db-1"]}),
    ] {
        put_event(&fleet, &eve, "monitor", widen).await;
    }
    let dead = until("three dead letters", async || {
        let list = fleet.ok("GET", "/v1/dlq", None).await;
        let list = list.as_array().unwrap().clone();
        (list.len() == 3).then_some(list)
    })
    .await;
    for letter in &dead {
        let reason = letter.to_string();
        assert!(
            reason.contains("outside the target's own targets"),
            "{reason}"
        );
    }
    assert!(commands_by(&fleet, "rule/").await.is_empty(), "nothing ran");
    put_event(&fleet, &eve, "monitor", json!({"node_ids": ["web-1"]})).await;
    let command = until("the narrowed command", async || {
        commands_by(&fleet, "rule/restart-staging").await.pop()
    })
    .await;
    let done = fleet.finished(command["id"].as_str().unwrap()).await;
    assert_eq!(nodes_of(&done), ["web-1"]);
}

#[tokio::test]
async fn server_sources_are_reserved_and_publish_event_needs_events_put() {
    let api = common::Api::start().await;
    let (status, answer) = api
        .call(
            "POST",
            "/v1/events",
            Some(json!({"Entries": [
                {"Source": "operon.fleet", "DetailType": "Node Connected", "Detail": "{}"},
                {"Source": "Operon.Commands", "DetailType": "x", "Detail": "{}"},
                {"Source": "monitor", "DetailType": "x", "Detail": "{}"}]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["FailedEntryCount"], 2, "{answer}");
    assert_eq!(
        answer["Entries"][0]["ErrorCode"],
        "NotAuthorizedForSourceException"
    );
    assert!(answer["Entries"][2]["EventId"].is_string());

    let dave = api
        .user_with_policy(
            "dave",
            json!({"Statement": [{"Effect": "Allow", "Action": "workflows:*", "Resource": "*"}]}),
        )
        .await;
    let publish = json!({"StartAt": "Put", "States": {"Put": {"Type": "Task",
        "Resource": "operon:publishEvent",
        "Parameters": {"Source": "monitor", "DetailType": "x", "Detail": {"a": 1}}, "End": true}}});
    let body = json!({"name": "dave-publish", "definition": publish});
    let (status, answer) = api
        .call_as(&dave, "POST", "/v1/workflows", Some(body))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, started) = api
        .call_as(
            &dave,
            "POST",
            "/v1/workflows/dave-publish/executions",
            Some(json!({})),
        )
        .await;
    let id = started["executionId"].as_str().unwrap();
    let done = api
        .get_until(&format!("/v1/executions/{id}"), |e| {
            e["status"] != "RUNNING"
        })
        .await;
    assert_eq!(done["error"], "Operon.AccessDenied", "{done}");
}

#[tokio::test]
async fn naming_a_role_needs_pass_role_and_sealed_secrets_are_write_only() {
    let api = common::Api::start().await;
    // A powerful role alice may not hand out, and one she may.
    for (role, policy) in [
        (
            "ops",
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        ),
        (
            "notifier",
            json!({"Statement": [{"Effect": "Allow", "Action": "http:Invoke", "Resource": "*"}]}),
        ),
    ] {
        api.ok(
            "POST",
            "/v1/policies",
            Some(json!({"name": role, "document": policy})),
        )
        .await;
        api.ok(
            "POST",
            "/v1/roles",
            Some(json!({"name": role, "policies": [role]})),
        )
        .await;
    }
    let alice = api
        .user_with_policy(
            "alice",
            json!({"Statement": [
                {"Effect": "Allow", "Action": ["rules:*", "workflows:*"], "Resource": "*"},
                {"Effect": "Allow", "Action": "roles:Pass", "Resource": "role/notifier"}]}),
        )
        .await;
    let rule = |role: &str| {
        json!({"pattern": {"source": ["x"]}, "targets": [{"Id": "t", "Kind": "webhook",
            "Url": "http://127.0.0.1:9/hook", "Secret": "s3cret", "RoleArn": role}]})
    };
    let (status, answer) = api
        .call_as(
            &alice,
            "PUT",
            "/v1/rules/r",
            Some(rule("arn:aws:iam::1:role/ops")),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = api
        .call_as(&alice, "PUT", "/v1/rules/r", Some(rule("role/notifier")))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = api
        .call_as(&alice, "PUT", "/v1/rules/r2", Some(rule("nosuch")))
        .await;
    assert_eq!(
        status, 403,
        "no pass right on an unknown role either: {answer}"
    );
    let workflow = json!({"name": "w", "role": "ops",
        "definition": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}});
    let (status, _) = api
        .call_as(&alice, "POST", "/v1/workflows", Some(workflow))
        .await;
    assert_eq!(status, 403);

    // The sealed secret is never shown, and cannot be given back.
    let shown = api.ok("GET", "/v1/rules/r", None).await;
    let target = &shown["targets"][0];
    assert!(target.get("SecretSealed").is_none(), "{shown}");
    assert_eq!(target["HasSecret"], true);
    let copy = json!({"pattern": {"source": ["x"]}, "targets": [{"Id": "t", "Kind": "webhook",
        "Url": "http://127.0.0.1:9/mine", "SecretSealed": "v1:AAAA"}]});
    let (status, answer) = api
        .call_as(&alice, "PUT", "/v1/rules/mine", Some(copy))
        .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_triggered_by_its_own_commands_is_stopped_and_says_so() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    fleet
        .ok(
            "PUT",
            "/v1/rules/echo-on-every-command",
            Some(json!({
                "pattern": {"source": ["operon.commands"], "detail-type": ["Command Status Change"]},
                "targets": [{"Id": "again", "Kind": "run-command", "Targets": ["all"],
                    "Parameters": {"commands": ["true"]}}]
            })),
        )
        .await;
    // Anyone watching sees the guard stop it: here a runbook is started.
    let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    fleet
        .ok(
            "POST",
            "/v1/workflows",
            Some(json!({"name": "noted", "definition": pass})),
        )
        .await;
    fleet
        .ok(
            "PUT",
            "/v1/rules/loop-watch",
            Some(json!({
                "pattern": {"source": ["operon.events"], "detail-type": ["Rule Loop Stopped"]},
                "targets": [{"Id": "note", "Kind": "workflow", "Workflow": "noted"}]
            })),
        )
        .await;
    fleet
        .run(json!({"node_ids": ["web-1"], "parameters": {"commands": ["true"]}}))
        .await;
    let dead = until("the stopped delivery", async || {
        let list = fleet.ok("GET", "/v1/dlq", None).await;
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d.to_string().contains("loop stopped"))
            .cloned()
    })
    .await;
    assert!(dead.to_string().contains("echo-on-every-command"), "{dead}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let by_rule = commands_by(&fleet, "rule/echo-on-every-command").await;
    assert_eq!(by_rule.len(), 3, "three rounds, then stopped");
    let noted = until("the Rule Loop Stopped event", async || {
        let list = fleet.ok("GET", "/v1/executions?workflow=noted", None).await;
        list.as_array().unwrap().first().cloned()
    })
    .await;
    let id = noted["executionId"].as_str().unwrap();
    let execution = fleet.ok("GET", &format!("/v1/executions/{id}"), None).await;
    assert!(
        execution.to_string().contains("echo-on-every-command"),
        "{execution}"
    );
}

#[tokio::test]
async fn a_rule_restarting_a_runbook_on_its_own_end_is_stopped() {
    let api = common::Api::start().await;
    let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "looper", "definition": pass})),
    )
    .await;
    api.ok(
        "PUT",
        "/v1/rules/again",
        Some(json!({
            "pattern": {"source": ["operon.workflows"],
                "detail": {"workflow": ["looper"], "status": ["SUCCEEDED"]}},
            "targets": [{"Id": "again", "Kind": "workflow", "Workflow": "looper"}]
        })),
    )
    .await;
    api.ok("POST", "/v1/workflows/looper/executions", Some(json!({})))
        .await;
    until("the stopped delivery", async || {
        let list = api.ok("GET", "/v1/dlq", None).await;
        list.as_array()
            .unwrap()
            .iter()
            .any(|d| d.to_string().contains("loop stopped"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = api.ok("GET", "/v1/executions?workflow=looper", None).await;
    // The user's start, then three by the rule.
    assert_eq!(runs.as_array().unwrap().len(), 4, "{runs}");
}

/// A listener on 127.0.0.1 answering every connection with `answer`; the
/// count of connections it accepted.
fn listener(answer: Vec<u8>) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in socket.incoming() {
            let Ok(mut stream) = stream else { return };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0; 8192];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(&answer);
        }
    });
    (port, count)
}

/// A port on 127.0.0.1 nothing listens on.
fn closed_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn http_task(url: &str) -> Value {
    json!({"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": "operon:http",
        "Parameters": {"Url": url, "Method": "GET"}, "End": true}}})
}

/// Run a one-task `operon:http` runbook to its end.
async fn run_http(api: &common::Api, name: &str, url: &str) -> Value {
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": name, "definition": http_task(url)})),
    )
    .await;
    let started = api
        .ok(
            "POST",
            &format!("/v1/workflows/{name}/executions"),
            Some(json!({})),
        )
        .await;
    let id = started["executionId"].as_str().unwrap().to_string();
    api.get_until(&format!("/v1/executions/{id}"), |e| {
        e["status"] != "RUNNING"
    })
    .await
}

/// Webhook targets and `operon:http` were a way into the server's own
/// network: loopback services, cloud metadata, and a port scanner through
/// the dead letters' error texts. Without `--http-allow` they reach none of
/// it, and a closed port reads exactly like an open one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_http_tasks_cannot_reach_loopback_and_do_not_scan_ports() {
    let defaults =
        operon_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), "unused".into());
    assert!(
        defaults.http_allow.entries().is_empty(),
        "refused by default"
    );
    let api = common::Api::start_with(|config| config.http_allow = Default::default()).await;
    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_vec();
    let (open, reached) = listener(ok);
    let closed = closed_port();
    let urls = [
        ("open", format!("http://127.0.0.1:{open}/admin")),
        ("closed", format!("http://127.0.0.1:{closed}/admin")),
        ("named", format!("http://localhost:{open}/admin")),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".into(),
        ),
    ];
    for (name, url) in &urls {
        api.ok(
            "PUT",
            &format!("/v1/rules/{name}"),
            Some(json!({"pattern": {"source": ["probe"]},
                "targets": [{"Id": "hook", "Kind": "webhook", "Url": url}]})),
        )
        .await;
    }
    put_event(&api, &api.token, "probe", json!({})).await;
    let dead = until("four dead letters", async || {
        let list = api.ok("GET", "/v1/dlq", None).await;
        (list.as_array().unwrap().len() == urls.len()).then_some(list)
    })
    .await;
    let error_of = |rule: &str| {
        let letter = dead
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["rule"] == rule)
            .unwrap_or_else(|| panic!("no dead letter of {rule}: {dead}"));
        assert_eq!(letter["attempts"], 1, "not retried: {letter}");
        letter["last_error"].as_str().unwrap().to_string()
    };
    assert_eq!(
        error_of("open"),
        "refused by the egress policy: 127.0.0.1 is not an allowed destination"
    );
    assert_eq!(error_of("closed"), error_of("open"), "no port scanner");
    assert!(error_of("named").contains("egress policy: localhost"));
    assert!(error_of("metadata").contains("egress policy: 169.254.169.254"));

    let mut causes = Vec::new();
    for (name, url) in &urls {
        let done = run_http(&api, &format!("wf-{name}"), url).await;
        assert_eq!(done["status"], "FAILED", "{done}");
        assert_eq!(done["error"], "Operon.AccessDenied", "{done}");
        let cause = done["cause"].as_str().unwrap().to_string();
        assert!(cause.contains("egress policy"), "{cause}");
        causes.push(cause);
    }
    assert_eq!(causes[0], causes[1], "no port scanner");
    assert_eq!(
        reached.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the listener received nothing"
    );
}

/// With loopback allowed, an answer larger than the cap is not read whole:
/// the task fails with `Operon.HttpResponseTooLarge`.
#[tokio::test]
async fn an_http_task_answer_over_the_cap_fails_the_task() {
    let api = common::Api::start().await;
    let body = "x".repeat(2 << 20);
    let big = format!("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{body}").into_bytes();
    let (port, _) = listener(big);
    let done = run_http(&api, "big", &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["error"], "Operon.HttpResponseTooLarge", "{done}");
    let cause = done["cause"].as_str().unwrap();
    assert!(cause.contains("1048576 bytes"), "{cause}");
    let small = "HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}";
    let (port, reached) = listener(small.as_bytes().to_vec());
    let done = run_http(&api, "small", &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["output"]["ResponseBody"],
        json!({"ok": true}),
        "{done}"
    );
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A rule acts with what its author holds at each delivery, not what they
/// held when it was written or at its last delivery: a permission taken away
/// refuses the next start (the server reuses resolved actors only until an
/// identity change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_taken_from_the_author_refuses_the_next_delivery() {
    let api = common::Api::start().await;
    let all = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let bob = api.user_with_policy("bob", all).await;
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "w", "definition":
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}})),
    )
    .await;
    let rule = json!({"pattern": {"source": ["app"]},
        "targets": [{"Id": "w", "Kind": "workflow", "Workflow": "w"}]});
    let (status, answer) = api.call_as(&bob, "PUT", "/v1/rules/r", Some(rule)).await;
    assert_eq!(status, 200, "{answer}");
    let executions = async || {
        let list = api.ok("GET", "/v1/executions?workflow=w", None).await;
        list.as_array().unwrap().len()
    };
    put_event(&api, &bob, "app", json!({"n": 1})).await;
    until("the first execution", async || {
        (executions().await == 1).then_some(())
    })
    .await;

    let no_starts = json!({"Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "workflows:Start", "Resource": "*"}]});
    api.ok(
        "POST",
        "/v1/policies",
        Some(json!({"name": "bob", "document": no_starts})),
    )
    .await;
    put_event(&api, &bob, "app", json!({"n": 2})).await;
    let denial = until("the refusal of the second start", async || {
        api.audit_of("rule/r")
            .await
            .into_iter()
            .find(|r| r["outcome"] == "denied")
    })
    .await;
    assert_eq!(denial["resource"], "workflow/w");
    assert_eq!(denial["detail"]["acting_as"], "user/bob");
    assert_eq!(executions().await, 1, "no second execution");
}
