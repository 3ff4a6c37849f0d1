//! End-to-end: the real `operon` binary as a server, real local HTTP
//! receivers for webhook targets, and the CLI: signed deliveries, retries
//! with back-off into the dead letters and redrive, inbound webhooks
//! (Alertmanager), run-command targets fed by the input transformer, and a
//! SIGKILL during the delivery of 10,000 events.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    headers: HashMap<String, String>,
    body: String,
    answered: u16,
}

/// A real HTTP server on loopback that records every request and answers
/// with the status currently set. While `hold` is set it keeps requests
/// waiting before answering.
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    hold: Arc<AtomicBool>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let hold = Arc::new(AtomicBool::new(false));
        let (r, s, h) = (requests.clone(), status.clone(), hold.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, s, h) = (r.clone(), s.clone(), h.clone());
                std::thread::spawn(move || serve(stream, &r, &s, &h));
            }
        });
        Receiver {
            port,
            requests,
            status,
            hold,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn serve(
    stream: TcpStream,
    requests: &Mutex<Vec<Received>>,
    status: &AtomicU16,
    hold: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    while hold.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let answered = status.load(Ordering::SeqCst);
    requests.lock().unwrap().push(Received {
        at: Instant::now(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        answered,
    });
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let message = format!("{timestamp}.{body}");
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), message.as_bytes()))
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn put_rule(server: &ServerProcess, name: &str, pattern: &str, target: &str) {
    ok(&server.cli(&[
        "rules",
        "put",
        name,
        "--pattern",
        pattern,
        "--target",
        target,
    ]));
}

#[test]
fn webhook_targets_are_signed_retried_dead_lettered_and_redriven() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let good = Receiver::start(200);
    let flaky = Receiver::start(503);
    let secret = "s3cret-shared-with-the-receiver";
    put_rule(
        &server,
        "signed",
        r#"{"source":["my.app"],"detail-type":["Deployed"]}"#,
        &format!("kind=webhook,id=hook,url={},secret={secret}", good.url()),
    );
    put_rule(
        &server,
        "flaky",
        r#"{"source":["my.app"],"detail":{"retry":[true]}}"#,
        &format!(
            "kind=webhook,id=hook,url={},max-retries=2,max-age=600",
            flaky.url()
        ),
    );
    // Secrets never come back from the API.
    let described = ok(&server.cli(&["rules", "describe", "signed"]));
    assert!(!described.contains(secret), "{described}");

    // A matching event is delivered once, signed.
    let put = server.cli_json(&[
        "events",
        "put",
        "--source",
        "my.app",
        "--detail-type",
        "Deployed",
        "--detail",
        r#"{"version":"1.2.3"}"#,
    ]);
    assert_eq!(put["FailedEntryCount"], 0, "{put}");
    let event_id = put["Entries"][0]["EventId"].as_str().unwrap().to_string();
    wait_for("the signed delivery", Duration::from_secs(20), || {
        (good.count() == 1).then_some(())
    });
    let got = &good.received()[0];
    let timestamp: i64 = got.headers["x-operon-timestamp"].parse().unwrap();
    assert!((now_secs() - timestamp).abs() < 60, "fresh timestamp");
    assert_eq!(
        got.headers["x-operon-signature"],
        sign(secret, timestamp, &got.body),
        "valid HMAC-SHA256 signature"
    );
    assert!(got.headers["x-operon-delivery-id"].starts_with("d-"));
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["detail"]["version"], "1.2.3");
    assert_eq!(body["detail-type"], "Deployed");
    // A non-matching event is not delivered anywhere.
    server.cli_json(&[
        "events",
        "put",
        "--source",
        "other.app",
        "--detail-type",
        "Deployed",
    ]);

    // A failing receiver: 1 attempt + 2 retries with growing back-off, then the DLQ.
    server.cli_json(&[
        "events",
        "put",
        "--source",
        "my.app",
        "--detail-type",
        "Job",
        "--detail",
        r#"{"retry":true}"#,
    ]);
    let dead = wait_for("the dead letter", Duration::from_secs(30), || {
        let list = server.cli_json(&["dlq", "list"]);
        (list.as_array().unwrap().len() == 1).then(|| list[0].clone())
    });
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert_eq!(dead["rule"], "flaky");
    assert!(
        dead["last_error"].as_str().unwrap().contains("503"),
        "{dead}"
    );
    let attempts = flaky.received();
    assert_eq!(attempts.len(), 3);
    let gap1 = attempts[1].at - attempts[0].at;
    let gap2 = attempts[2].at - attempts[1].at;
    assert!(
        gap1 >= Duration::from_millis(250),
        "first retry after half the base delay at least: {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(500),
        "second retry waits longer: {gap2:?}"
    );
    let delivery_id = attempts[0].headers["x-operon-delivery-id"].clone();
    assert!(
        attempts
            .iter()
            .all(|a| a.headers["x-operon-delivery-id"] == delivery_id)
    );
    let shown = server.cli_json(&["dlq", "show", dead["id"].as_str().unwrap()]);
    assert_eq!(shown["event"]["detail"]["retry"], true);

    // The receiver is back: redrive delivers it, with the same delivery id.
    flaky.status.store(200, Ordering::SeqCst);
    let redriven = server.cli_json(&["dlq", "redrive", "--all"]);
    assert_eq!(
        redriven["redriven"].as_array().unwrap().len(),
        1,
        "{redriven}"
    );
    wait_for("the redriven delivery", Duration::from_secs(20), || {
        flaky
            .received()
            .iter()
            .any(|r| r.answered == 200)
            .then_some(())
    });
    let last = flaky.received().pop().unwrap();
    assert_eq!(last.headers["x-operon-delivery-id"], delivery_id);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server.cli_json(&["dlq", "list"]).as_array().unwrap().len(),
        0
    );
    assert_eq!(
        good.count(),
        1,
        "nothing delivered twice to the good receiver"
    );
    assert!(!server.cli(&["dlq", "redrive", "d-nope"]).status.success());
}

#[test]
fn rules_are_validated_tested_enabled_and_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let receiver = Receiver::start(200);
    // Pattern errors come from the pattern library, with a pointer.
    let bad = server.cli(&[
        "rules",
        "put",
        "r",
        "--pattern",
        r#"{"source":"x"}"#,
        "--target",
        "kind=log",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("/source"),
        "{bad:?}"
    );
    let bad = server.cli(&[
        "rules",
        "put",
        "r",
        "--schedule",
        "rate(1 minutes)",
        "--target",
        "kind=log",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("singular"),
        "{bad:?}"
    );
    let bad = server.cli(&[
        "rules",
        "put",
        "r",
        "--pattern",
        r#"{"source":["x"]}"#,
        "--target",
        "kind=webhook",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("Url"),
        "{bad:?}"
    );
    let bad = server.cli(&[
        "rules",
        "put",
        "r",
        "--bus",
        "nope",
        "--pattern",
        r#"{"source":["x"]}"#,
        "--target",
        "kind=log",
    ]);
    assert!(!bad.status.success());

    // rules test shows the transformed input.
    let targets = dir.path().join("targets.json");
    std::fs::write(
        &targets,
        json!([{
            "Id": "hook", "Kind": "webhook", "Url": receiver.url(),
            "InputTransformer": {
                "InputPathsMap": {"host": "$.detail.host"},
                "InputTemplate": "{\"restart\": <host>, \"rule\": \"<aws.events.rule-name>\"}"
            }
        }])
        .to_string(),
    )
    .unwrap();
    ok(&server.cli(&[
        "rules",
        "put",
        "alerts",
        "--pattern",
        r#"{"detail":{"host":[{"prefix":"web-"}]}}"#,
        "--targets-file",
        targets.to_str().unwrap(),
    ]));
    let event = json!({"id": "1", "account": "1", "source": "s", "time": "2026-01-01T00:00:00Z",
        "region": "r", "detail-type": "d", "detail": {"host": "web-7"}});
    let tested = server.cli_json(&["rules", "test", "alerts", "--event", &event.to_string()]);
    assert_eq!(tested["matches"], true);
    assert_eq!(
        tested["targets"][0]["input"],
        json!({"restart": "web-7", "rule": "alerts"})
    );

    // Disabled rules do not match; enabled ones deliver the transformed input.
    ok(&server.cli(&["rules", "disable", "alerts"]));
    server.cli_json(&[
        "events",
        "put",
        "--source",
        "s",
        "--detail-type",
        "d",
        "--detail",
        r#"{"host":"web-1"}"#,
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.count(), 0);
    ok(&server.cli(&["rules", "enable", "alerts"]));
    server.cli_json(&[
        "events",
        "put",
        "--source",
        "s",
        "--detail-type",
        "d",
        "--detail",
        r#"{"host":"web-2"}"#,
    ]);
    wait_for("the transformed delivery", Duration::from_secs(20), || {
        (receiver.count() == 1).then_some(())
    });
    let body: Value = serde_json::from_str(&receiver.received()[0].body).unwrap();
    assert_eq!(body, json!({"restart": "web-2", "rule": "alerts"}));

    // PutEvents answers per entry.
    let entries = dir.path().join("entries.json");
    std::fs::write(
        &entries,
        json!([
            {"Source": "s", "DetailType": "d", "Detail": "{}"},
            {"Source": "s", "DetailType": "d", "Detail": "not json"},
            {"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": "missing"},
            {"Source": "s", "DetailType": "d", "Detail": format!("{{\"x\":\"{}\"}}", "a".repeat(300_000))}
        ])
        .to_string(),
    )
    .unwrap();
    let out = server.cli(&[
        "events",
        "put",
        "--json",
        "--file",
        entries.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success(),
        "failed entries make the exit code non-zero"
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["FailedEntryCount"], 3, "{answer}");
    assert!(answer["Entries"][0]["EventId"].is_string());
    assert_eq!(answer["Entries"][1]["ErrorCode"], "MalformedDetail");
    assert_eq!(
        answer["Entries"][2]["ErrorCode"],
        "ResourceNotFoundException"
    );
    assert_eq!(answer["Entries"][3]["ErrorCode"], "EntryTooLarge");

    // Buses: create, forward to another bus, refuse deleting one in use, delete.
    ok(&server.cli(&["buses", "create", "ops"]));
    put_rule(
        &server,
        "forward",
        r#"{"source":["fwd.me"]}"#,
        "kind=bus,bus=ops",
    );
    ok(&server.cli(&[
        "rules",
        "put",
        "on-ops-hook",
        "--bus",
        "ops",
        "--pattern",
        r#"{"source":["fwd.me"]}"#,
        "--target",
        &format!("kind=webhook,url={}", receiver.url()),
    ]));
    let put = server.cli_json(&["events", "put", "--source", "fwd.me", "--detail-type", "d"]);
    wait_for("the forwarded event", Duration::from_secs(20), || {
        (receiver.count() == 2).then_some(())
    });
    let forwarded: Value = serde_json::from_str(&receiver.received()[1].body).unwrap();
    assert_eq!(forwarded["id"], put["Entries"][0]["EventId"]);
    ok(&server.cli(&["rules", "delete", "on-ops-hook"]));
    ok(&server.cli(&[
        "rules",
        "put",
        "on-ops",
        "--bus",
        "ops",
        "--pattern",
        r#"{"source":["x"]}"#,
        "--target",
        "kind=log",
    ]));
    assert!(!server.cli(&["buses", "delete", "ops"]).status.success());
    ok(&server.cli(&["rules", "delete", "on-ops"]));
    ok(&server.cli(&["buses", "delete", "ops"]));
    assert!(!server.cli(&["buses", "delete", "default"]).status.success());
}

#[test]
fn inbound_webhooks_tail_archives_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let receiver = Receiver::start(200);
    put_rule(
        &server,
        "firing",
        r#"{"source":["operon.webhooks"],"detail-type":["Alertmanager Alert"],"detail":{"status":["firing"]}}"#,
        &format!("kind=webhook,url={}", receiver.url()),
    );
    let hook = server.cli_json(&["webhooks", "create", "prom"]);
    let secret = hook["secret"].as_str().unwrap().to_string();
    let url = hook["url"].as_str().unwrap().to_string();
    assert!(url.ends_with("/v1/hooks/prom"), "{url}");
    let mut tail = server.spawn_cli(&[
        "events",
        "tail",
        "--pattern",
        r#"{"source":["operon.webhooks"]}"#,
    ]);
    std::thread::sleep(Duration::from_millis(800));

    let payload = json!({
        "version": "4", "receiver": "operon", "groupKey": "{}:{alertname=\"DiskFull\"}", "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "web-1"}},
            {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "web-2"}},
            {"status": "resolved", "labels": {"alertname": "DiskFull", "instance": "web-3"}}
        ]
    })
    .to_string();
    let post = |signature: &str, timestamp: i64| -> String {
        let path = url
            .split_once("/v1/")
            .map(|(_, p)| format!("/v1/{p}"))
            .unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-operon-timestamp: {timestamp}\r\nx-operon-signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            payload.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let now = now_secs();
    assert!(post("sha256=00", now).starts_with("HTTP/1.1 401"));
    assert!(
        post(&sign("wrong-secret-wrong-secret", now, &payload), now).starts_with("HTTP/1.1 401")
    );
    assert!(
        post(&sign(&secret, now - 3600, &payload), now - 3600).starts_with("HTTP/1.1 401"),
        "stale"
    );
    let accepted = post(&sign(&secret, now, &payload), now);
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    let replayed = post(&sign(&secret, now, &payload), now);
    assert!(replayed.starts_with("HTTP/1.1 409"), "{replayed}");

    // Two firing alerts -> two deliveries; the resolved one matches no rule.
    wait_for("two alert deliveries", Duration::from_secs(20), || {
        (receiver.count() == 2).then_some(())
    });
    let mut instances: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["detail"]["labels"]["instance"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    instances.sort();
    assert_eq!(instances, ["web-1", "web-2"]);

    // The tail saw all three alert events.
    let stdout = tail.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        seen.push(
            event["detail"]["labels"]["instance"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    seen.sort();
    assert_eq!(seen, ["web-1", "web-2", "web-3"]);
    let _ = tail.kill();
    let _ = tail.wait();

    // Archive and replay: replayed events carry replay-name and go only to the named rule.
    ok(&server.cli(&["archives", "create", "all-events"]));
    let from = humantime_now();
    put_rule(
        &server,
        "orders",
        r#"{"source":["shop"]}"#,
        &format!("kind=webhook,id=orders,url={}", receiver.url()),
    );
    for i in 0..3 {
        server.cli_json(&[
            "events",
            "put",
            "--source",
            "shop",
            "--detail-type",
            "Order",
            "--detail",
            &format!("{{\"n\":{i}}}"),
        ]);
    }
    wait_for("three orders", Duration::from_secs(20), || {
        (receiver.count() == 5).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1100));
    let to = humantime_now();
    ok(&server.cli(&[
        "replays",
        "start",
        "--name",
        "again",
        "--archive",
        "all-events",
        "--from",
        &from,
        "--to",
        &to,
        "--rules",
        "orders",
    ]));
    let replay = wait_for("the replay to complete", Duration::from_secs(20), || {
        let r = server.cli_json(&["replays", "describe", "again"]);
        (r["state"] == "completed").then_some(r)
    });
    assert_eq!(replay["events_replayed"], 3, "{replay}");
    wait_for("three replayed orders", Duration::from_secs(20), || {
        (receiver.count() == 8).then_some(())
    });
    let replayed: Vec<Value> = receiver.received()[5..]
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert!(
        replayed
            .iter()
            .all(|e| e["replay-name"] == "again" && e["source"] == "shop")
    );
}

fn humantime_now() -> String {
    let secs = now_secs();
    // RFC 3339 in UTC, computed without a date library.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[test]
fn run_command_targets_take_the_node_from_the_event() {
    let mut fleet = Fleet::start();
    let server = &fleet.server;
    let watcher = Receiver::start(200);
    put_rule(
        server,
        "server-events",
        r#"{"source":["operon.commands","operon.fleet"],"detail-type":["Command Status Change","Node Connected","Node Disconnected"]}"#,
        &format!("kind=webhook,url={}", watcher.url()),
    );
    let targets = fleet.dir.path().join("targets.json");
    std::fs::write(
        &targets,
        json!([{
            "Id": "restart", "Kind": "run-command",
            // An event may narrow the target's own targets, never widen them.
            "Targets": ["all"],
            "InputTransformer": {
                "InputPathsMap": {"node": "$.detail.node"},
                "InputTemplate": "{\"node_ids\": [<node>], \"parameters\": {\"commands\": [\"echo restarting <node>\"]}}"
            }
        }])
        .to_string(),
    )
    .unwrap();
    ok(&server.cli(&[
        "rules",
        "put",
        "restart-on-alert",
        "--pattern",
        r#"{"detail-type":["Service Down"]}"#,
        "--targets-file",
        targets.to_str().unwrap(),
    ]));
    server.cli_json(&[
        "events",
        "put",
        "--source",
        "monitor",
        "--detail-type",
        "Service Down",
        "--detail",
        r#"{"node":"db-1"}"#,
    ]);
    let command = wait_for(
        "the command started by the rule",
        Duration::from_secs(30),
        || {
            let list = server.cli_json(&["commands", "list"]);
            list.as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"].as_str().unwrap_or("").starts_with("c-ev-"))
                .cloned()
        },
    );
    let done = server.wait_command_final(command["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(done["status"], "Success", "{done}");
    assert_eq!(done["requested_by"], "rule/restart-on-alert");
    let invocations = done["invocations"].as_array().unwrap();
    assert_eq!(invocations.len(), 1, "only the node named by the event");
    assert_eq!(invocations[0]["node_name"], "db-1");
    assert!(
        invocations[0]["stdout"]
            .as_str()
            .unwrap_or("")
            .contains("restarting db-1"),
        "{done}"
    );

    // The server's own events reach rules: the command's final status...
    let command_id = done["id"].as_str().unwrap().to_string();
    let seen = |detail_type: &str, key: &str, value: &str| {
        watcher.received().iter().any(|r| {
            let e: Value = serde_json::from_str(&r.body).unwrap();
            e["detail-type"] == detail_type && e["detail"][key] == value
        })
    };
    wait_for(
        "a Command Status Change event",
        Duration::from_secs(20),
        || seen("Command Status Change", "command-id", &command_id).then_some(()),
    );
    let status_event = watcher
        .received()
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .find(|e| e["detail"]["command-id"] == command_id.as_str())
        .unwrap();
    assert_eq!(status_event["source"], "operon.commands");
    assert_eq!(status_event["detail"]["status"], "Success");
    // ...and a node dropping and coming back.
    let mut agent = fleet.agents.remove(1);
    assert_eq!(agent.name, "web-2");
    agent.restart(&fleet.server);
    wait_for(
        "Node Disconnected and Node Connected events",
        Duration::from_secs(30),
        || {
            (seen("Node Disconnected", "node-name", "web-2")
                && seen("Node Connected", "node-name", "web-2"))
            .then_some(())
        },
    );
}

#[test]
fn ten_thousand_events_survive_a_sigkill_during_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let port = free_port();
    let mut server = ServerProcess::start(&data, port);
    let receiver = Receiver::start(200);
    put_rule(
        &server,
        "all",
        r#"{"source":["load"]}"#,
        &format!("kind=webhook,id=sink,url={}", receiver.url()),
    );
    // Hold deliveries while the events go in, so the kill lands mid-delivery.
    receiver.hold.store(true, Ordering::SeqCst);
    const EVENTS: usize = 10_000;
    let entries: Vec<Value> = (0..EVENTS)
        .map(
            |i| json!({"Source": "load", "DetailType": "Tick", "Detail": format!("{{\"n\":{i}}}")}),
        )
        .collect();
    let file = dir.path().join("entries.json");
    std::fs::write(&file, Value::Array(entries).to_string()).unwrap();
    let put = server.cli_json(&["events", "put", "--file", file.to_str().unwrap()]);
    assert_eq!(put["FailedEntryCount"], 0);
    let accepted: HashSet<String> = put["Entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["EventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(accepted.len(), EVENTS);
    receiver.hold.store(false, Ordering::SeqCst);
    wait_for(
        "some deliveries before the kill",
        Duration::from_secs(60),
        || (receiver.count() >= 1500).then_some(()),
    );
    server.kill();
    let before = receiver.count();
    assert!(
        before < EVENTS,
        "the kill landed during delivery ({before} delivered)"
    );
    let server = ServerProcess::start(&data, port);
    wait_for(
        "every event delivered after the restart",
        Duration::from_secs(180),
        || {
            let ids: HashSet<String> = receiver
                .received()
                .iter()
                .map(|r| {
                    serde_json::from_str::<Value>(&r.body).unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            (ids.len() == EVENTS).then_some(())
        },
    );
    // Every event reached the target; a duplicate always has the same delivery id.
    let mut deliveries: HashMap<String, HashSet<String>> = HashMap::new();
    for r in receiver.received() {
        let event: Value = serde_json::from_str(&r.body).unwrap();
        deliveries
            .entry(event["id"].as_str().unwrap().to_string())
            .or_default()
            .insert(r.headers["x-operon-delivery-id"].clone());
    }
    assert_eq!(deliveries.keys().cloned().collect::<HashSet<_>>(), accepted);
    assert!(
        deliveries.values().all(|ids| ids.len() == 1),
        "one delivery id per event and target"
    );
    let duplicates = receiver.count() - EVENTS;
    eprintln!(
        "delivered {} before the kill, {duplicates} duplicate(s) after restart",
        before
    );
    assert!(
        server
            .cli_json(&["dlq", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn events_start_workflows_which_publish_events_and_announce_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let write = |name: &str, value: Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.to_str().unwrap().to_string()
    };
    let notify = write(
        "notify.json",
        json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}),
    );
    let on_deploy = write(
        "on-deploy.json",
        json!({"StartAt": "Announce", "States": {"Announce": {"Type": "Task",
            "Resource": "operon:publishEvent",
            "Parameters": {"Source": "app", "DetailType": "deployed",
                "Detail": {"version.$": "$.detail.version"}},
            "End": true}}}),
    );
    ok(&server.cli(&["workflows", "create", "notify", "--definition", &notify]));
    ok(&server.cli(&[
        "workflows",
        "create",
        "on-deploy",
        "--definition",
        &on_deploy,
    ]));
    // ci push -> on-deploy; its published event -> notify; its success -> notify.
    put_rule(
        &server,
        "start",
        r#"{"source":["ci"]}"#,
        "kind=workflow,workflow=on-deploy",
    );
    put_rule(
        &server,
        "chain",
        r#"{"source":["app"],"detail-type":["deployed"]}"#,
        "kind=workflow,workflow=notify",
    );
    put_rule(
        &server,
        "status",
        r#"{"source":["operon.workflows"],"detail":{"workflow":["on-deploy"],"status":["SUCCEEDED"]}}"#,
        "kind=workflow,workflow=notify",
    );
    let put = server.cli_json(&[
        "events",
        "put",
        "--source",
        "ci",
        "--detail-type",
        "push",
        "--detail",
        r#"{"version":42}"#,
    ]);
    assert_eq!(put["FailedEntryCount"], 0);
    let started = wait_for("on-deploy to succeed", Duration::from_secs(30), || {
        let list = server.cli_json(&["executions", "list", "--workflow", "on-deploy"]);
        let first = list.as_array()?.first()?.clone();
        (first["status"] == "SUCCEEDED").then_some(first)
    });
    assert_eq!(started["input"]["source"], "ci");
    assert_eq!(started["input"]["detail"]["version"], 42);
    assert_eq!(started["startedBy"], "rule/start");
    let notified = wait_for("notify to run twice", Duration::from_secs(30), || {
        let list = server.cli_json(&["executions", "list", "--workflow", "notify"]);
        let items = list.as_array()?.clone();
        (items.len() == 2 && items.iter().all(|e| e["status"] == "SUCCEEDED")).then_some(items)
    });
    let sources: HashSet<String> = notified
        .iter()
        .map(|e| e["input"]["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sources,
        HashSet::from(["app".to_string(), "operon.workflows".to_string()])
    );
    let published = notified
        .iter()
        .find(|e| e["input"]["source"] == "app")
        .unwrap();
    assert_eq!(published["input"]["detail"]["version"], 42);
    let announced = notified
        .iter()
        .find(|e| e["input"]["source"] == "operon.workflows")
        .unwrap();
    assert_eq!(
        announced["input"]["detail-type"],
        "Workflow Execution Status Change"
    );
    assert_eq!(
        announced["input"]["detail"]["execution-id"],
        started["executionId"]
    );
    // Exactly one execution per delivery: nothing started twice.
    let all = server.cli_json(&["executions", "list", "--workflow", "on-deploy"]);
    assert_eq!(all.as_array().unwrap().len(), 1);
}
