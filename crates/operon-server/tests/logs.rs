//! Logs on a real server: in-process agents ship a real file (lines stored
//! with their levels), a resent batch is stored once, a limited user reads
//! only the nodes it may, shipping needs `logs:Ship` on the node, and
//! retention prunes.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use operon_proto::{
    AgentMessage, CAPABILITY_LOGS, CAPABILITY_MONITORS, LogBatch, LogEntry, ServerMessage,
};
use serde_json::{Value, json};

mod common;

use common::Api;
use common::fleet::Fleet;
use common::raw_agent::RawAgent;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn shipping(targets: &[&str], path: &str) -> Value {
    json!({"kind": "shipping", "targets": targets, "source": {"type": "file", "path": path}})
}

fn messages_of(answer: &Value) -> Vec<(String, String, String)> {
    answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node_name"].as_str().unwrap_or_default().to_owned(),
                e["level"].as_str().unwrap_or("-").to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_ship_a_followed_file_and_users_read_only_their_nodes() {
    let fleet = Fleet::start_metered(
        &[
            ("web-1", vec![("env", "prod")]),
            ("db-1", vec![("env", "db")]),
        ],
        Duration::from_secs(1),
    )
    .await;
    let api = &fleet.api;
    let log = api.dir.path().join("app.log");
    append(&log, "ERROR before shipping\n");
    let put = api
        .ok(
            "PUT",
            "/v1/monitors/app-log",
            Some(shipping(&["all"], &log.display().to_string())),
        )
        .await;
    assert_eq!(put["kind"], "shipping");

    // The followers start at the end of the file: write until both nodes'
    // first lines arrive.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    loop {
        attempt += 1;
        append(&log, &format!("ERROR db down {attempt}\n"));
        tokio::time::sleep(Duration::from_millis(700)).await;
        let answer = api.ok("GET", "/v1/logs?level=error", None).await;
        let nodes: std::collections::BTreeSet<String> = messages_of(&answer)
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        if nodes.len() == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lines did not arrive from both nodes: {answer}"
        );
    }
    let detail = api.ok("GET", "/v1/monitors/app-log", None).await;
    let reached = detail["nodes"].as_array().unwrap();
    assert_eq!(reached.len(), 2, "{detail}");
    assert!(
        reached
            .iter()
            .all(|n| n["capable"] == true && n["authorized"] == true),
        "agents with metrics ship logs: {detail}"
    );
    let everything = api.ok("GET", "/v1/logs?limit=1000", None).await;
    assert!(
        !messages_of(&everything)
            .iter()
            .any(|(_, _, m)| m == "ERROR before shipping"),
        "lines written before shipping started are not shipped"
    );
    let cursor = everything["cursor"].as_i64().unwrap();

    append(&log, "all good\n[warn] disk 91% full\n");
    let tail = format!("/v1/logs?after={cursor}");
    // Lines of the loop above may still arrive: they are left out here.
    let later = |answer: &Value| -> Vec<(String, String, String)> {
        messages_of(answer)
            .into_iter()
            .filter(|(_, _, m)| !m.starts_with("ERROR db down"))
            .collect()
    };
    let answer = api.get_until(&tail, |a| later(a).len() >= 4).await;
    let mut got = later(&answer);
    got.sort();
    assert_eq!(
        got,
        [
            ("db-1".into(), "-".into(), "all good".into()),
            (
                "db-1".into(),
                "warning".into(),
                "[warn] disk 91% full".into()
            ),
            ("web-1".into(), "-".into(), "all good".into()),
            (
                "web-1".into(),
                "warning".into(),
                "[warn] disk 91% full".into()
            ),
        ]
    );
    let source = answer["entries"][answer["entries"].as_array().unwrap().len() - 1]["source"]
        .as_str()
        .unwrap();
    assert_eq!(source, format!("file:{}", log.display()));
    // grep (a regex) and text (plain) filter further.
    let grep = api
        .ok(
            "GET",
            &format!("{tail}&grep=disk%20%5Cd%2B%25&node=web-1"),
            None,
        )
        .await;
    assert_eq!(
        messages_of(&grep),
        [(
            "web-1".into(),
            "warning".into(),
            "[warn] disk 91% full".into()
        )]
    );
    let text = api
        .ok("GET", &format!("{tail}&text=ALL%20GOOD"), None)
        .await;
    assert_eq!(messages_of(&text).len(), 2);

    // A user denied the db nodes sees only web-1; naming db-1 is refused.
    let web_only = api
        .user_token(
            "webview",
            json!([{"Effect": "Allow", "Action": "logs:Get", "Resource": "node/*"},
                   {"Effect": "Deny", "Action": "logs:Get", "Resource": "node/*",
                    "Condition": {"StringEquals": {"operon:NodeTag/env": "db"}}}]),
        )
        .await;
    let (status, answer) = api.call_as(&web_only, "GET", &tail, None).await;
    assert_eq!(status, 200, "{answer}");
    // (Late lines of the loop above left out, as before.)
    let nodes: Vec<String> = later(&answer).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(nodes, ["web-1", "web-1"]);
    let (status, _) = api
        .call_as(&web_only, "GET", &format!("{tail}&node=db-1"), None)
        .await;
    assert_eq!(status, 403);
    let nobody = api
        .user_token(
            "nobody",
            json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]),
        )
        .await;
    let (status, _) = api.call_as(&nobody, "GET", "/v1/logs", None).await;
    assert_eq!(status, 403);
    let (status, bad) = api.call("GET", "/v1/logs?level=loud", None).await;
    assert_eq!(status, 400, "{bad}");
}

async fn send_and_ack(agent: &mut RawAgent, batch: LogBatch) {
    let seq = batch.seq;
    agent.send(&AgentMessage::Logs(batch)).await;
    loop {
        match agent.next_within(Duration::from_secs(10)).await {
            Some(ServerMessage::LogsAck { seq: acked }) => {
                assert_eq!(acked, seq);
                return;
            }
            Some(_) => continue,
            None => panic!("no LogsAck for seq {seq}"),
        }
    }
}

fn entry(at: i64, level: Option<&str>, message: &str) -> LogEntry {
    LogEntry {
        at,
        source: "journal:app.service".into(),
        level: level.map(str::to_owned),
        message: message.into(),
        fields: [("pid".to_owned(), "7".to_owned())].into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_batch_is_stored_once_and_retention_prunes() {
    let api = Api::start().await;
    let mut agent = RawAgent::connect(&api, "web-1", &[], &[CAPABILITY_LOGS]).await;
    let old = now() - 8 * 86_400_000;
    let batch = LogBatch {
        seq: 41,
        entries: vec![
            entry(old, Some("error"), "old failure"),
            entry(now(), Some("critical"), "kernel panic"),
        ],
    };
    send_and_ack(&mut agent, batch.clone()).await;
    // Resent after a reconnect, unacknowledged from the agent's side.
    agent.reconnect().await;
    send_and_ack(&mut agent, batch).await;
    let answer = api.ok("GET", "/v1/logs?since=30d", None).await;
    let got = messages_of(&answer);
    assert_eq!(got.len(), 2, "{answer}");
    assert_eq!(answer["entries"][1]["fields"]["pid"], "7");
    // Retention (7 days by default) removes the old line only.
    let deleted = api.server.state().logs().prune(now()).await.unwrap();
    assert_eq!(deleted, 1);
    let answer = api.ok("GET", "/v1/logs?since=30d", None).await;
    assert_eq!(
        messages_of(&answer),
        [("web-1".into(), "critical".into(), "kernel panic".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_needs_logs_ship_on_the_node() {
    let api = Api::start().await;
    let mut agent =
        RawAgent::connect(&api, "web-1", &[], &[CAPABILITY_MONITORS, CAPABILITY_LOGS]).await;
    assert!(agent.monitors().await.shipped.is_empty());
    let watcher_only = api
        .user_token(
            "watcher",
            json!([{"Effect": "Allow", "Action": ["monitors:Put", "monitors:Apply"], "Resource": "*"}]),
        )
        .await;
    let (status, answer) = api
        .call_as(
            &watcher_only,
            "PUT",
            "/v1/monitors/syslog",
            Some(shipping(&["all"], "/var/log/syslog")),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // Pushed as its author, who may monitors:Apply but not logs:Ship.
    let detail = api.ok("GET", "/v1/monitors/syslog", None).await;
    assert_eq!(detail["nodes"][0]["authorized"], false, "{detail}");
    let reason = detail["nodes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("logs:Ship"), "{reason}");
    // One the administrator wrote is shipped; the refused one still is not.
    api.ok(
        "PUT",
        "/v1/monitors/app-log",
        Some(shipping(&["all"], "/var/log/app.log")),
    )
    .await;
    let set = agent.monitors().await;
    let names: Vec<&str> = set.shipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["app-log"]);
}
