//! Monitors on a real server: definitions are validated, versioned and
//! audited; each node whose agent runs monitors is sent its whole set after
//! every Welcome and whenever it changes, only the monitors it is targeted
//! by and that their role (or author) may put there; a real agent runs
//! what it gets.

use std::time::Duration;

use operon_proto::{CAPABILITY_MONITORS, MonitorSet, Probe};
use serde_json::{Value, json};

mod common;

use common::Api;
use common::fleet::Fleet;
use common::raw_agent::RawAgent;

fn names(set: &MonitorSet) -> (Vec<&str>, Vec<&str>) {
    (
        set.checks.iter().map(|c| c.name.as_str()).collect(),
        set.watchers.iter().map(|w| w.name.as_str()).collect(),
    )
}

fn tcp_check(targets: &[&str]) -> Value {
    json!({"kind": "check", "targets": targets, "interval_secs": 10, "timeout_secs": 2,
           "probe": {"type": "tcp", "host": "127.0.0.1", "port": 5432}})
}

fn file_watcher(targets: &[&str]) -> Value {
    json!({"kind": "watcher", "targets": targets,
           "source": {"type": "file", "path": "/var/log/app.log"}, "pattern": "CRITICAL|OutOfMemory"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_gets_its_targeted_set_after_welcome_and_on_every_change() {
    let api = Api::start().await;
    let mut web =
        RawAgent::connect(&api, "web-1", &[("role", "web")], &[CAPABILITY_MONITORS]).await;
    let mut db = RawAgent::connect(&api, "db-1", &[("role", "db")], &[CAPABILITY_MONITORS]).await;
    let mut old = RawAgent::connect(&api, "old-1", &[("role", "web")], &[]).await;
    // Right after Welcome: the (empty) set, so a reconnecting agent drops
    // what was deleted while it was away.
    assert_eq!(web.monitors().await, MonitorSet::default());
    assert_eq!(db.monitors().await, MonitorSet::default());

    let put = api
        .ok(
            "PUT",
            "/v1/monitors/db-port",
            Some(tcp_check(&["tag:role=web"])),
        )
        .await;
    assert_eq!(put["version"], 1);
    assert_eq!(put["kind"], "check");
    assert_eq!(put["author"], "admin");
    let set = web.monitors().await;
    assert_eq!(names(&set), (vec!["db-port"], vec![]));
    assert_eq!(
        set.checks[0].probe,
        Probe::Tcp {
            host: "127.0.0.1".into(),
            port: 5432
        }
    );
    assert_eq!(
        (set.checks[0].interval_secs, set.checks[0].timeout_secs),
        (10, 2)
    );

    api.ok(
        "PUT",
        "/v1/monitors/app-errors",
        Some(file_watcher(&["all"])),
    )
    .await;
    assert_eq!(
        names(&web.monitors().await),
        (vec!["db-port"], vec!["app-errors"])
    );
    assert_eq!(names(&db.monitors().await), (vec![], vec!["app-errors"]));

    // A change of targets moves the check from web to db.
    let put = api
        .ok("PUT", "/v1/monitors/db-port", Some(tcp_check(&["db-1"])))
        .await;
    assert_eq!(put["version"], 2);
    assert_eq!(names(&web.monitors().await), (vec![], vec!["app-errors"]));
    assert_eq!(
        names(&db.monitors().await),
        (vec!["db-port"], vec!["app-errors"])
    );

    // A new session gets the whole set again after its Welcome.
    db.reconnect().await;
    assert_eq!(
        names(&db.monitors().await),
        (vec!["db-port"], vec!["app-errors"])
    );

    api.ok("DELETE", "/v1/monitors/app-errors", None).await;
    assert_eq!(names(&web.monitors().await), (vec![], vec![]));
    assert_eq!(names(&db.monitors().await), (vec!["db-port"], vec![]));

    // An agent that did not announce the capability is never sent a set.
    while let Some(frame) = old.next_within(Duration::from_millis(500)).await {
        assert!(
            !matches!(frame, operon_proto::ServerMessage::Monitors(_)),
            "{frame:?}"
        );
    }

    // Reads: the list, one with its nodes, and what is unknown.
    let list = api.ok("GET", "/v1/monitors", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let detail = api.ok("GET", "/v1/monitors/db-port", None).await;
    let nodes = detail["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{detail}");
    assert_eq!(nodes[0]["node_name"], "db-1");
    assert_eq!(nodes[0]["capable"], true);
    assert_eq!(nodes[0]["authorized"], true);
    let (status, answer) = api.call("GET", "/v1/monitors/app-errors", None).await;
    assert_eq!(status, 404, "{answer}");
    // Every change is in the audit trail.
    let trail = api.ok("GET", "/v1/audit?actor=admin&limit=500", None).await;
    let changes: Vec<(&str, &str)> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["resource"]
                .as_str()
                .is_some_and(|s| s.starts_with("monitor/"))
        })
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["resource"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("monitors:Put", "monitor/db-port"),
        ("monitors:Put", "monitor/app-errors"),
        ("monitors:Delete", "monitor/app-errors"),
    ] {
        assert!(changes.contains(&expected), "{expected:?} in {changes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_validated_with_errors_naming_the_field() {
    let api = Api::start().await;
    let table = [
        (
            json!({"kind": "check", "targets": ["all"], "interval_secs": 2,
                "probe": {"type": "tcp", "host": "h", "port": 1}}),
            "interval_secs 2",
        ),
        (
            json!({"kind": "check", "targets": ["all"], "interval_secs": 10, "timeout_secs": 10,
                "probe": {"type": "tcp", "host": "h", "port": 1}}),
            "timeout_secs 10",
        ),
        (
            json!({"kind": "check", "targets": ["all"],
                "probe": {"type": "http", "url": "ftp://h/"}}),
            "probe.url",
        ),
        (
            json!({"kind": "check", "targets": ["all"],
                "probe": {"type": "command", "command": "true", "run_as": "Bad User"}}),
            "probe.run_as",
        ),
        (
            json!({"kind": "watcher", "targets": ["all"],
                "source": {"type": "file", "path": "/x"}, "pattern": "(CRITICAL"}),
            "pattern",
        ),
        (
            json!({"kind": "watcher", "targets": [],
                "source": {"type": "journal"}, "pattern": "x"}),
            "targets",
        ),
    ];
    for (body, expected) in table {
        let (status, answer) = api
            .call("PUT", "/v1/monitors/bad", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(expected), "{body}: {answer}");
    }
    let (status, _) = api
        .call("PUT", "/v1/monitors/bad%20name", Some(tcp_check(&["all"])))
        .await;
    assert_eq!(status, 400);
    // expected_version guards a replace.
    api.ok("PUT", "/v1/monitors/m", Some(tcp_check(&["all"])))
        .await;
    let mut stale = tcp_check(&["all"]);
    stale["expected_version"] = json!(7);
    let (status, answer) = api.call("PUT", "/v1/monitors/m", Some(stale)).await;
    assert_eq!(status, 409, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_authors_command_check_reaches_only_nodes_it_may_run_commands_on() {
    let api = Api::start().await;
    let mut staging =
        RawAgent::connect(&api, "app-s", &[("env", "staging")], &[CAPABILITY_MONITORS]).await;
    let mut prod =
        RawAgent::connect(&api, "app-p", &[("env", "prod")], &[CAPABILITY_MONITORS]).await;
    assert_eq!(staging.monitors().await, MonitorSet::default());
    assert_eq!(prod.monitors().await, MonitorSet::default());
    let carol = api
        .user_token(
            "carol",
            json!([
                {"Effect": "Allow", "Action": ["monitors:*"], "Resource": "*"},
                {"Effect": "Allow", "Action": "commands:Run", "Resource": "node/*",
                 "Condition": {"StringEquals": {"operon:NodeTag/env": "staging", "operon:RunAsUser": "nobody"}}}
            ]),
        )
        .await;
    let command = |run_as: &str| {
        json!({"kind": "check", "targets": ["all"],
               "probe": {"type": "command", "command": "curl -fsS localhost", "run_as": run_as}})
    };
    let (status, answer) = api
        .call_as(
            &carol,
            "PUT",
            "/v1/monitors/app-cmd",
            Some(command("nobody")),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = api
        .call_as(
            &carol,
            "PUT",
            "/v1/monitors/app-port",
            Some(tcp_check(&["all"])),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // Staging runs both; prod only the TCP check (carol may not run
    // commands there, so neither may her monitor).
    let until = |want: Vec<&'static str>| {
        move |set: &MonitorSet| {
            let mut got: Vec<&str> = set.checks.iter().map(|c| c.name.as_str()).collect();
            got.sort();
            got == want
        }
    };
    let mut set = staging.monitors().await;
    while !until(vec!["app-cmd", "app-port"])(&set) {
        set = staging.monitors().await;
    }
    let mut set = prod.monitors().await;
    while !until(vec!["app-port"])(&set) {
        assert!(set.checks.iter().all(|c| c.name != "app-cmd"), "{set:?}");
        set = prod.monitors().await;
    }
    let refusals = api.audit_of("monitor%2Fapp-cmd").await;
    assert!(
        refusals.iter().any(|r| r["outcome"] == "denied"
            && r["action"] == "commands:Run"
            && r["resource"] == "node/app-p"),
        "{refusals:?}"
    );
    let detail = api.ok("GET", "/v1/monitors/app-cmd", None).await;
    let prod_row = detail["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_name"] == "app-p")
        .unwrap()
        .clone();
    assert_eq!(prod_row["authorized"], false, "{detail}");
    assert!(
        prod_row["reason"]
            .as_str()
            .unwrap()
            .contains("commands:Run"),
        "{detail}"
    );

    // As another user the command check is refused on staging too.
    let (status, answer) = api
        .call_as(&carol, "PUT", "/v1/monitors/app-cmd", Some(command("root")))
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut set = staging.monitors().await;
    while set.checks.iter().any(|c| c.name == "app-cmd") {
        set = staging.monitors().await;
    }
    // And a user without monitors:Put is refused outright.
    let dave = api
        .user_token(
            "dave",
            json!([{"Effect": "Allow", "Action": "monitors:Get", "Resource": "*"}]),
        )
        .await;
    let (status, _) = api
        .call_as(&dave, "PUT", "/v1/monitors/x", Some(tcp_check(&["all"])))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agent_runs_the_checks_it_is_sent() {
    let fleet =
        Fleet::start_metered(&[("web-1", vec![("role", "web")])], Duration::from_secs(1)).await;
    let api = &fleet.api;
    let mark = api.dir.path().join("check-ran");
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    api.ok(
        "PUT",
        "/v1/monitors/marker",
        Some(json!({"kind": "check", "targets": ["tag:role=web"], "interval_secs": 5, "timeout_secs": 2,
                    "probe": {"type": "command", "command": format!("echo ran >> {}", mark.display()), "run_as": me}})),
    )
    .await;
    let ran = async {
        while !mark.exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), ran)
        .await
        .expect("the agent ran the command check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retagging_a_node_moves_it_in_and_out_of_a_monitors_targets() {
    let api = Api::start().await;
    let mut node =
        RawAgent::connect(&api, "app-1", &[("role", "db")], &[CAPABILITY_MONITORS]).await;
    assert_eq!(node.monitors().await, MonitorSet::default());
    api.ok(
        "PUT",
        "/v1/monitors/web-port",
        Some(tcp_check(&["tag:role=web"])),
    )
    .await;
    api.ok(
        "POST",
        "/v1/nodes/app-1/tags",
        Some(json!({"set": {"role": "web"}})),
    )
    .await;
    assert_eq!(names(&node.monitors().await), (vec!["web-port"], vec![]));
    api.ok(
        "POST",
        "/v1/nodes/app-1/tags",
        Some(json!({"set": {"role": "db"}})),
    )
    .await;
    assert_eq!(node.monitors().await, MonitorSet::default());
}
