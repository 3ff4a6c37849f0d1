//! Event bus benchmark (not a test): events accepted and matched per second
//! through the HTTP API, with 1,000 rules on the bus.
//!
//! Starts the release binary as a server, puts the rules (a third exact
//! detail-type rules, a third prefix rules, a third numeric-range rules,
//! each with a log target), then runs concurrent clients posting PutEvents
//! batches for a fixed time. About half of the events match one rule, so
//! the server persists an outbox row for them and its delivery workers run
//! meanwhile, as in production. Every request must succeed with
//! FailedEntryCount 0; the rate counts only acknowledged (committed) events.
//!
//! Then, with the same 1,000 rules in place, a rule with a workflow target is
//! added and events are put at 1,000 per second (batches of 10 every 10 ms)
//! for EVENTS_LATENCY_SECONDS (default 5): the latency of each is the time
//! from sending its PutEvents request to the `startedAt` of the workflow
//! execution it started (same machine, same clock), reported as p50/p99.
//!
//! Run: `cargo bench -p operon --bench events` (env EVENTS_RULES,
//! EVENTS_CLIENTS, EVENTS_BATCH, EVENTS_SECONDS override 1000, 32, 10, 10;
//! EVENTS_TARGETS=0 gives the rules no targets, measuring acceptance and
//! matching without the delivery workers competing).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rule_pattern(i: u64) -> Value {
    match i % 3 {
        0 => json!({"source": ["bench.app"], "detail-type": [format!("type-{i}")]}),
        1 => json!({"detail": {"host": [{"prefix": format!("web-{i}-")}]}}),
        _ => json!({"detail": {"region": [format!("r{i}")], "load": [{"numeric": [">", 50]}]}}),
    }
}

/// Event `n`: matches rule n % rules on even n, no rule on odd n.
fn entry(n: u64, rules: u64) -> Value {
    let i = n % rules;
    let matching = n.is_multiple_of(2);
    let detail = match (i % 3, matching) {
        (0, _) => json!({"host": "db-1", "load": 10}),
        (1, true) => json!({"host": format!("web-{i}-a"), "load": 10}),
        (2, true) => json!({"region": format!("r{i}"), "load": 75, "host": "x"}),
        _ => json!({"host": "nobody", "region": "none", "load": 99}),
    };
    let detail_type = if i.is_multiple_of(3) && matching {
        format!("type-{i}")
    } else {
        "other".to_string()
    };
    json!({"Source": "bench.app", "DetailType": detail_type, "Detail": detail.to_string()})
}

fn main() {
    // reqwest is built with rustls without a provider: install ring, as the binary does.
    operon_agent::tls::install_default_provider();
    let rules = env_or("EVENTS_RULES", 1000);
    let clients = env_or("EVENTS_CLIENTS", 32);
    let batch = env_or("EVENTS_BATCH", 10);
    let seconds = env_or("EVENTS_SECONDS", 10);
    let with_targets = env_or("EVENTS_TARGETS", 1) != 0;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("server"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn operon server");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("server exited").expect("read stdout");
        if let Some(url) = line.strip_prefix("operon server listening on ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let token = std::fs::read_to_string(dir.path().join("server/admin-token"))
        .expect("admin token")
        .trim()
        .to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(run(
        &url,
        &token,
        rules,
        clients,
        batch,
        seconds,
        with_targets,
    ));
    let latency_seconds = env_or("EVENTS_LATENCY_SECONDS", 5);
    let start_latencies =
        runtime.block_on(latency_to_execution_start(&url, &token, latency_seconds));
    let _ = server.kill();
    let _ = server.wait();
    let (events, elapsed, latencies) = result;
    let rate = events as f64 / elapsed.as_secs_f64();
    let pct = |p: f64| {
        let at = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(at).copied().unwrap_or_default()
    };
    println!(
        "{{\"rules\": {rules}, \"targets\": {with_targets}, \"clients\": {clients}, \"batch\": {batch}, \"seconds\": {:.1}, \"events\": {events}, \"events_per_second\": {rate:.0}, \"request_p50_ms\": {:.1}, \"request_p99_ms\": {:.1}}}",
        elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
    );
    let at = |p: f64| {
        let i = ((start_latencies.len() as f64 - 1.0) * p).round() as usize;
        start_latencies.get(i).copied().unwrap_or_default()
    };
    println!(
        "{{\"events_per_second\": 1000, \"executions_started\": {}, \"put_to_start_p50_ms\": {}, \"put_to_start_p99_ms\": {}}}",
        start_latencies.len(),
        at(0.50),
        at(0.99),
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds from putting each event to the start of the execution its
/// rule started, sorted.
async fn latency_to_execution_start(url: &str, token: &str, seconds: u64) -> Vec<i64> {
    let http = reqwest::Client::new();
    let definition = json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}});
    let created = http
        .post(format!("{url}/v1/workflows"))
        .bearer_auth(token)
        .json(&json!({"name": "bench-latency", "definition": definition}))
        .send()
        .await
        .expect("create workflow");
    assert!(created.status().is_success());
    let rule = json!({"pattern": {"source": ["bench.latency"]},
        "targets": [{"Id": "wf", "Kind": "workflow", "Workflow": "bench-latency"}]});
    let put = http
        .put(format!("{url}/v1/rules/bench-latency"))
        .bearer_auth(token)
        .json(&rule)
        .send()
        .await
        .expect("put rule");
    assert!(
        put.status().is_success(),
        "{}",
        put.text().await.unwrap_or_default()
    );
    let sent_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut senders = Vec::new();
    let total = seconds * 100;
    for tick in 0..total {
        ticker.tick().await;
        let (http, url, token, sent_at) = (
            http.clone(),
            url.to_string(),
            token.to_string(),
            sent_at.clone(),
        );
        senders.push(tokio::spawn(async move {
            let entries: Vec<Value> = (0..10)
                .map(|k| {
                    json!({"Source": "bench.latency", "DetailType": "Tick",
                    "Detail": json!({"n": tick * 10 + k}).to_string()})
                })
                .collect();
            let at = now_ms();
            let response = http
                .post(format!("{url}/v1/events"))
                .bearer_auth(&token)
                .json(&json!({"Entries": entries}))
                .send()
                .await
                .expect("put events");
            assert!(response.status().is_success());
            let mut sent = sent_at.lock().unwrap();
            for k in 0..10 {
                sent.insert(tick * 10 + k, at);
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let expected = (total * 10) as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list: Value = http
            .get(format!(
                "{url}/v1/executions?workflow=bench-latency&limit=10000"
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("list executions")
            .json()
            .await
            .expect("executions");
        let executions = list.as_array().cloned().unwrap_or_default();
        if executions.len() >= expected || Instant::now() > deadline {
            let sent = sent_at.lock().unwrap();
            let mut latencies: Vec<i64> = executions
                .iter()
                .filter_map(|e| {
                    let n = e["input"]["detail"]["n"].as_u64()?;
                    Some(e["startedAt"].as_i64()? - sent.get(&n)?)
                })
                .collect();
            latencies.sort();
            return latencies;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run(
    url: &str,
    token: &str,
    rules: u64,
    clients: u64,
    batch: u64,
    seconds: u64,
    with_targets: bool,
) -> (u64, Duration, Vec<Duration>) {
    let rules = rules.max(1);
    let http = reqwest::Client::new();
    for i in 0..rules {
        let targets = if with_targets {
            json!([{"Id": "log", "Kind": "log"}])
        } else {
            json!([])
        };
        let body = json!({"pattern": rule_pattern(i), "targets": targets});
        let response = http
            .put(format!("{url}/v1/rules/bench-{i}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("put rule");
        assert!(
            response.status().is_success(),
            "rule {i}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, url, token, accepted) = (
            http.clone(),
            url.to_string(),
            token.to_string(),
            accepted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = client * 1_000_000_007;
            while Instant::now() < deadline {
                let entries: Vec<Value> = (0..batch).map(|k| entry(n + k, rules)).collect();
                n += batch;
                let sent = Instant::now();
                let response = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .json(&json!({"Entries": entries}))
                    .send()
                    .await
                    .expect("put events");
                assert!(response.status().is_success());
                let answer: Value = response.json().await.expect("answer");
                assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
                latencies.push(sent.elapsed());
                accepted.fetch_add(batch, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = start.elapsed();
    latencies.sort();
    (accepted.load(Ordering::Relaxed), elapsed, latencies)
}
