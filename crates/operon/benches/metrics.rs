//! Metrics and alarms benchmark (not a test), issue 14's quality bar:
//! ingestion from 1,000 simulated nodes x 20 metrics every 10 s, a query of
//! a week of 1-minute data, and the evaluation of 10,000 alarms per period.
//!
//! Starts the release binary as a server (`RUST_LOG` with
//! `operon_server::alarms::runner=debug`, whose "alarm pass" lines give each pass's
//! duration). The simulated nodes are real enrolled nodes: an enrollment
//! token with enough uses, `operon_agent::enroll` (the agent's own HTTP
//! enrollment), then one WebSocket session per node that says `Hello` with
//! the `metrics` capability, sends heartbeats at the server's interval and an
//! `AgentMessage::Metrics` batch of 20 points every interval (the nodes'
//! batches spread evenly over the interval), and reads `MetricsAck`.
//!
//! 1. Ingestion: after one warm-up round, the measured window: points
//!    acknowledged per second, ack latency (send to `MetricsAck`) p50/p99,
//!    server CPU (utime+stime of `/proc/<pid>/stat`) per 1,000 points. Then
//!    sending pauses, the WAL is checkpointed from a second connection and
//!    the growth of the SQLite files (`operon.db*`) since before the first
//!    point is divided by the points stored (counted with
//!    `GET /v1/metrics/query?stat=count`, one query per metric name).
//! 2. Query: one more node sends a week of 1-minute points of `bench.week`
//!    (backdated `at`: the server refuses only points more than an hour in
//!    the future; raw points older than the raw retention are pruned later,
//!    the 1-minute and 1-hour rollups written with them stay). Then
//!    `since=7d&stat=avg` with `period=3600` and `period=60`, p50 of 20 runs
//!    each, while the nodes keep sending.
//! 3. Alarms: 10 alarms per node (`bench.m00`..`bench.m09`, period 60,
//!    single node) are put over HTTP (4 at a time); timed until the first
//!    "alarm pass" that started after the last put ends (every alarm has been
//!    evaluated once), then one `GET /v1/alarms` is timed and repeated every
//!    5 s until every alarm lists an instance. Then two periods
//!    without polling: server CPU over them (and that less the ingestion's
//!    CPU rate of phase 1), and the "alarm pass" durations logged.
//!
//! Run: `cargo bench -p operon --bench metrics` (env METRICS_NODES,
//! METRICS_PER_NODE, METRICS_INTERVAL_SECS, METRICS_SECONDS,
//! METRICS_ALARMS_PER_NODE, METRICS_ALARM_PERIOD override 1000, 20, 10,
//! 180, 10, 60; METRICS_ALARMS_PER_NODE=0 skips phase 3).

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt, stream};
use operon_proto::{
    AGENT_CONNECT_PATH, AgentMessage, CAPABILITY_METRICS, Inventory, MetricBatch, MetricPoint,
    PROTOCOL_VERSION, ServerMessage,
};
use serde_json::{Value, json};
use support::{Killed, cpu_seconds};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const TIMEOUT: Duration = Duration::from_secs(900);
const WEEK_METRIC: &str = "bench.week";
const WEEK_MINUTES: i64 = 7 * 24 * 60;
/// Points per backfill batch (the server takes at most 10,000).
const BACKFILL_BATCH: usize = 1440;
const QUERY_RUNS: usize = 20;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn operon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_operon"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One "alarm pass" debug line of the server: alarms evaluated, milliseconds.
fn parse_alarm_pass(line: &str) -> Option<(u64, u64)> {
    if !line.contains("alarm pass") {
        return None;
    }
    let field = |key: &str| -> Option<u64> {
        let start = line.find(key)? + key.len();
        let digits: String = line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some((field("alarms=")?, field("elapsed_ms=")?))
}

/// The server's base URL, admin token, process id, data directory, and the
/// alarm passes it logged (with when they were read).
struct Server {
    url: String,
    admin_token: String,
    pid: u32,
    data_dir: std::path::PathBuf,
    passes: Arc<Mutex<Vec<(Instant, u64, u64)>>>,
}

fn start_server(dir: &Path, children: &mut Killed) -> Server {
    let data_dir = dir.join("server");
    let mut server = operon()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "warn,operon_server::alarms::runner=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn operon server");
    let pid = server.id();
    let mut lines = BufReader::new(server.stdout.take().expect("server stdout")).lines();
    let errors = BufReader::new(server.stderr.take().expect("server stderr")).lines();
    children.0.push(server);
    let passes = Arc::new(Mutex::new(Vec::new()));
    let logged = passes.clone();
    std::thread::spawn(move || {
        for line in errors.map_while(Result::ok) {
            match parse_alarm_pass(&line) {
                Some((alarms, ms)) => {
                    logged
                        .lock()
                        .expect("passes")
                        .push((Instant::now(), alarms, ms))
                }
                None if line.contains(" WARN ") || line.contains(" ERROR ") => {
                    eprintln!("server: {line}")
                }
                None => {}
            }
        }
    });
    let url = loop {
        let line = lines.next().expect("server exited").expect("read stdout");
        if let Some(url) = line.strip_prefix("operon server listening on ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let admin_token = std::fs::read_to_string(data_dir.join("admin-token"))
        .expect("admin token")
        .trim()
        .to_string();
    Server {
        url,
        admin_token,
        pid,
        data_dir,
        passes,
    }
}

/// A JSON call that must succeed (2xx).
async fn call(
    http: &reqwest::Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let url = format!("{}{path}", server.url);
    let mut request = http
        .request(method.clone(), &url)
        .bearer_auth(&server.admin_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send request");
    let status = response.status();
    let text = response.text().await.expect("read answer");
    assert!(status.is_success(), "{method} {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn get(http: &reqwest::Client, server: &Server, path: &str) -> Value {
    call(http, server, reqwest::Method::GET, path, None).await
}

/// A node enrolled as the agent does: its name and credential.
struct Enrolled {
    name: String,
    credential: String,
}

async fn enroll_nodes(server: &Server, token: &str, names: Vec<String>) -> Vec<Enrolled> {
    let trust = operon_agent::tls::TlsTrust::default();
    let trust = &trust;
    stream::iter(names)
        .map(|name| async move {
            let credential = operon_agent::enroll(
                &server.url,
                token,
                Some(name.clone()),
                Default::default(),
                trust,
            )
            .await
            .unwrap_or_else(|e| panic!("enroll {name}: {e}"));
            Enrolled {
                name: credential.name,
                credential: credential.credential,
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

async fn send<S>(sink: &mut S, message: &AgentMessage)
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    sink.send(Message::text(operon_proto::encode(message)))
        .await
        .expect("send frame");
}

/// The next server frame (other WebSocket frames skipped); `None` once
/// closed. Cancel-safe: a frame is consumed only when returned or skipped.
async fn next_message<S>(frames: &mut S) -> Option<ServerMessage>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(frame) = frames.next().await {
        match frame.ok()? {
            Message::Text(text) => {
                return Some(operon_proto::decode(text.as_str()).expect("server frame"));
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
    None
}

/// A session as an agent with the metrics capability opens it; returns it
/// welcomed, with the heartbeat interval.
async fn connect(server: &Server, node: &Enrolled) -> (Socket, Duration) {
    let url = format!(
        "{}{AGENT_CONNECT_PATH}",
        server.url.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().expect("WebSocket request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", node.credential)
            .parse()
            .expect("header value"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", node.name));
    let hello = AgentMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        inventory: Inventory {
            hostname: node.name.clone(),
            ..Default::default()
        },
        capabilities: vec![CAPABILITY_METRICS.to_string()],
    };
    send(&mut socket, &hello).await;
    loop {
        match next_message(&mut socket).await {
            Some(ServerMessage::Welcome { heartbeat_secs, .. }) => {
                return (socket, Duration::from_secs(heartbeat_secs.max(1)));
            }
            Some(_) => {}
            None => panic!("{} closed before the welcome", node.name),
        }
    }
}

/// What the node sessions share with the benchmark.
#[derive(Default)]
struct Shared {
    sending: AtomicBool,
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Points acknowledged while measuring.
    acked_points: AtomicU64,
    /// Batches sent and not acknowledged yet.
    outstanding: AtomicU64,
    /// Ack latencies (µs) of batches sent while measuring.
    latencies_us: Mutex<Vec<u64>>,
}

/// The 20 (or N) metric names every node sends.
fn metric_name(j: usize) -> String {
    format!("bench.m{j:02}")
}

fn batch(seq: u64, metrics: usize, node: usize) -> MetricBatch {
    let at = now_ms();
    let points = (0..metrics)
        .map(|j| MetricPoint {
            name: metric_name(j),
            dimensions: Default::default(),
            at,
            // Varies over time and per node, as real values do.
            value: ((at / 1000 + (node * 7 + j) as i64) % 100) as f64 + 0.5,
            unit: Some("Percent".into()),
        })
        .collect();
    MetricBatch { seq, points }
}

/// One simulated node: a batch every interval (first after `offset`),
/// heartbeats, acks timed.
async fn node_session(
    socket: Socket,
    heartbeat: Duration,
    node: usize,
    metrics: usize,
    interval: Duration,
    offset: Duration,
    shared: Arc<Shared>,
) {
    let (mut sink, mut frames) = socket.split();
    let mut batches = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    batches.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeats = tokio::time::interval(heartbeat);
    let mut check_stop = tokio::time::interval(Duration::from_millis(500));
    let mut seq = 1_000_000 * node as u64;
    let mut heartbeat_seq = 0;
    let mut pending: HashMap<u64, (Instant, bool)> = HashMap::new();
    loop {
        tokio::select! {
            _ = batches.tick() => {
                if !shared.sending.load(Ordering::Relaxed) {
                    continue;
                }
                seq += 1;
                let measured = shared.measuring.load(Ordering::Relaxed);
                pending.insert(seq, (Instant::now(), measured));
                shared.outstanding.fetch_add(1, Ordering::Relaxed);
                send(&mut sink, &AgentMessage::Metrics(batch(seq, metrics, node))).await;
            }
            _ = heartbeats.tick() => {
                heartbeat_seq += 1;
                send(&mut sink, &AgentMessage::Heartbeat { seq: heartbeat_seq }).await;
            }
            _ = check_stop.tick() => {
                if shared.stop.load(Ordering::Relaxed) {
                    let _ = sink.close().await;
                    return;
                }
            }
            message = next_message(&mut frames) => match message {
                Some(ServerMessage::MetricsAck { seq }) => {
                    if let Some((sent, measured)) = pending.remove(&seq) {
                        shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                        if measured && shared.measuring.load(Ordering::Relaxed) {
                            let latency = sent.elapsed().as_micros() as u64;
                            shared.latencies_us.lock().expect("latencies").push(latency);
                            shared.acked_points.fetch_add(metrics as u64, Ordering::Relaxed);
                        }
                    }
                }
                Some(_) => {}
                None => panic!("node {node}: the server closed the session"),
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// Bytes of the SQLite database with its WAL and shared memory.
fn database_bytes(data_dir: &Path) -> u64 {
    std::fs::read_dir(data_dir)
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("operon.db"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Checkpoint the WAL into the database from a second connection (the
/// server keeps running), then the bytes on disk.
async fn checkpointed_bytes(data_dir: &Path) -> u64 {
    use sqlx::ConnectOptions;
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data_dir.join("operon.db"))
        .connect()
        .await
        .expect("open the database");
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut connection)
        .await
        .expect("checkpoint");
    if busy != 0 {
        eprintln!("the WAL checkpoint was busy: sizes include part of the WAL");
    }
    drop(connection);
    database_bytes(data_dir)
}

/// Points stored for the bench metrics since `from` (all nodes).
async fn stored_points(http: &reqwest::Client, server: &Server, metrics: usize, from: i64) -> u64 {
    let mut total = 0.0;
    for j in 0..metrics {
        let answer = get(
            http,
            server,
            &format!(
                "/v1/metrics/query?metric={}&stat=count&period=3600&from={from}&to={}",
                metric_name(j),
                now_ms() + 60_000
            ),
        )
        .await;
        for series in answer["series"].as_array().into_iter().flatten() {
            for point in series["points"].as_array().into_iter().flatten() {
                total += point[1].as_f64().unwrap_or(0.0);
            }
        }
    }
    total as u64
}

/// Wait until every sent batch is acknowledged.
async fn drain(shared: &Shared) {
    let since = Instant::now();
    while shared.outstanding.load(Ordering::Relaxed) > 0 {
        assert!(since.elapsed() < TIMEOUT, "batches never acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Ingestion {
    seconds: f64,
    points: u64,
    offered_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    server_cpu: f64,
    bench_cpu: f64,
    stored: u64,
    disk_bytes: i64,
    disk_bytes_uncheckpointed: i64,
}

async fn ingestion(
    http: &reqwest::Client,
    server: &Server,
    shared: &Shared,
    config: &Config,
    baseline_bytes: u64,
    started_ms: i64,
) -> Ingestion {
    // Warm-up round: every node has sent once before the window opens.
    shared.sending.store(true, Ordering::Relaxed);
    tokio::time::sleep(config.interval + Duration::from_secs(1)).await;
    let window = Duration::from_secs(config.seconds);
    let (server_before, bench_before) = (cpu_seconds(server.pid), cpu_seconds(std::process::id()));
    let started = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(window).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server.pid) - server_before;
    let bench_cpu = cpu_seconds(std::process::id()) - bench_before;
    let points = shared.acked_points.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *shared.latencies_us.lock().expect("latencies"));
    latencies.sort_unstable();
    // Disk: sending pauses so the count and the files agree.
    shared.sending.store(false, Ordering::Relaxed);
    drain(shared).await;
    let uncheckpointed = database_bytes(&server.data_dir);
    let bytes = checkpointed_bytes(&server.data_dir).await;
    let stored = stored_points(http, server, config.metrics, started_ms).await;
    shared.sending.store(true, Ordering::Relaxed);
    Ingestion {
        seconds,
        points,
        offered_per_sec: (config.nodes * config.metrics) as f64 / config.interval.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50) as f64 / 1000.0,
        p99_ms: percentile(&latencies, 0.99) as f64 / 1000.0,
        max_ms: latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        server_cpu,
        bench_cpu,
        stored,
        disk_bytes: bytes as i64 - baseline_bytes as i64,
        disk_bytes_uncheckpointed: uncheckpointed as i64 - baseline_bytes as i64,
    }
}

struct QueryResult {
    backfill_secs: f64,
    hourly: QueryTiming,
    minutely: QueryTiming,
}

struct QueryTiming {
    p50_ms: f64,
    max_ms: f64,
    resolution: String,
    periods: usize,
}

/// A week of 1-minute points of [`WEEK_METRIC`] from one node, sent as
/// fast as acknowledged.
async fn backfill_week(server: &Server, node: &Enrolled) -> f64 {
    let (mut socket, _) = connect(server, node).await;
    let now = now_ms();
    let first = now - WEEK_MINUTES * 60_000;
    let points: Vec<MetricPoint> = (0..WEEK_MINUTES)
        .map(|minute| MetricPoint {
            name: WEEK_METRIC.into(),
            dimensions: Default::default(),
            at: first + minute * 60_000,
            value: (minute % 1440) as f64 / 14.4,
            unit: Some("Percent".into()),
        })
        .collect();
    let started = Instant::now();
    for (seq, chunk) in points.chunks(BACKFILL_BATCH).enumerate() {
        let seq = seq as u64 + 1;
        let batch = MetricBatch {
            seq,
            points: chunk.to_vec(),
        };
        send(&mut socket, &AgentMessage::Metrics(batch)).await;
        loop {
            match next_message(&mut socket).await {
                Some(ServerMessage::MetricsAck { seq: acked }) if acked == seq => break,
                Some(_) => {}
                None => panic!("the backfill session closed"),
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = socket.close(None).await;
    seconds
}

/// `range` is `since=7d`, or `from=..&to=..`.
async fn time_query(
    http: &reqwest::Client,
    server: &Server,
    node: &str,
    period: u64,
    range: &str,
) -> QueryTiming {
    let path = format!(
        "/v1/metrics/query?metric={WEEK_METRIC}&node={node}&{range}&period={period}&stat=avg"
    );
    let mut times = Vec::with_capacity(QUERY_RUNS);
    let mut last = Value::Null;
    for _ in 0..QUERY_RUNS {
        let started = Instant::now();
        last = get(http, server, &path).await;
        times.push(started.elapsed().as_micros() as u64);
    }
    times.sort_unstable();
    QueryTiming {
        p50_ms: percentile(&times, 0.5) as f64 / 1000.0,
        max_ms: times.last().copied().unwrap_or(0) as f64 / 1000.0,
        resolution: last["resolution"].as_str().unwrap_or("?").to_string(),
        periods: last["series"][0]["points"].as_array().map_or(0, Vec::len),
    }
}

async fn query_phase(http: &reqwest::Client, server: &Server, week_node: &Enrolled) -> QueryResult {
    let backfill_secs = backfill_week(server, week_node).await;
    let hourly = time_query(http, server, &week_node.name, 3600, "since=7d").await;
    // `since=7d` at period 60 is refused (10,081 periods: the current
    // partial minute counts), so the same week as whole minutes.
    let to = now_ms() / 60_000 * 60_000;
    let from = to - WEEK_MINUTES * 60_000;
    let week = format!("from={from}&to={to}");
    let minutely = time_query(http, server, &week_node.name, 60, &week).await;
    QueryResult {
        backfill_secs,
        hourly,
        minutely,
    }
}

struct Alarms {
    count: usize,
    put_secs: f64,
    all_instances_secs: f64,
    evaluated_secs: f64,
    /// Passes from the first put until every alarm was evaluated: (alarms, ms).
    first_passes: Vec<(u64, u64)>,
    /// One `GET /v1/alarms` of every alarm.
    list_secs: f64,
    states: String,
    window_secs: f64,
    server_cpu: f64,
    /// Full passes (every alarm due) logged in the window: (alarms, ms).
    passes: Vec<(u64, u64)>,
}

/// Alarms with at least one instance, and the count per state.
async fn alarm_states(http: &reqwest::Client, server: &Server) -> (usize, String) {
    let list = get(http, server, "/v1/alarms?prefix=bench-").await;
    let alarms = list.as_array().cloned().unwrap_or_default();
    let with_instances = alarms
        .iter()
        .filter(|a| a["instances"].as_array().is_some_and(|i| !i.is_empty()))
        .count();
    let mut states: std::collections::BTreeMap<String, usize> = Default::default();
    for alarm in &alarms {
        *states
            .entry(alarm["state"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let states = states
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    (with_instances, states)
}

async fn alarm_phase(
    http: &reqwest::Client,
    server: &Server,
    nodes: &[Enrolled],
    config: &Config,
) -> Alarms {
    let specs: Vec<(String, Value)> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, node)| {
            (0..config.alarms_per_node).map(move |j| {
                (
                    format!("bench-{i:04}-{j:02}"),
                    json!({"metric": metric_name(j % config.metrics), "threshold": 1000,
                        "period": config.alarm_period, "node": node.name}),
                )
            })
        })
        .collect();
    let count = specs.len();
    let started = Instant::now();
    stream::iter(specs)
        .map(|(name, spec)| async move {
            call(
                http,
                server,
                reqwest::Method::PUT,
                &format!("/v1/alarms/{name}"),
                Some(spec),
            )
            .await
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    let put_secs = started.elapsed().as_secs_f64();
    eprintln!("{count} alarms put in {put_secs:.1} s");
    // The first pass that started after the last put evaluated every alarm
    // not evaluated yet (a pass takes every due alarm).
    let puts_done = Instant::now();
    let evaluated_at = loop {
        let found = server
            .passes
            .lock()
            .expect("passes")
            .iter()
            .find(|(at, _, ms)| {
                at.checked_sub(Duration::from_millis(*ms))
                    .is_some_and(|start| start >= puts_done)
            })
            .map(|(at, _, _)| *at);
        if let Some(at) = found {
            break at;
        }
        assert!(started.elapsed() < TIMEOUT, "no alarm pass after the puts");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let evaluated_secs = evaluated_at.duration_since(started).as_secs_f64();
    let first_passes: Vec<(u64, u64)> = server
        .passes
        .lock()
        .expect("passes")
        .iter()
        .filter(|(at, _, _)| *at >= started && *at <= evaluated_at)
        .map(|(_, alarms, ms)| (*alarms, *ms))
        .collect();
    eprintln!("every alarm evaluated {evaluated_secs:.1} s after the first put");
    let listing = Instant::now();
    let (mut with_instances, mut states) = alarm_states(http, server).await;
    let list_secs = listing.elapsed().as_secs_f64();
    while with_instances < count {
        assert!(
            started.elapsed() < TIMEOUT,
            "alarms without instances: {states}"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        (with_instances, states) = alarm_states(http, server).await;
    }
    let all_instances_secs = started.elapsed().as_secs_f64();
    eprintln!("every alarm has an instance after {all_instances_secs:.1} s ({states})");
    // Two whole periods, starting just after a period boundary.
    let period_ms = config.alarm_period as i64 * 1000;
    let to_boundary = period_ms - now_ms() % period_ms;
    tokio::time::sleep(Duration::from_millis(to_boundary as u64 + 100)).await;
    let window_start = Instant::now();
    let cpu_before = cpu_seconds(server.pid);
    tokio::time::sleep(Duration::from_millis(2 * period_ms as u64)).await;
    let server_cpu = cpu_seconds(server.pid) - cpu_before;
    let window_secs = window_start.elapsed().as_secs_f64();
    let passes = server
        .passes
        .lock()
        .expect("passes")
        .iter()
        .filter(|(at, alarms, _)| *at >= window_start && *alarms as usize * 2 >= count)
        .map(|(_, alarms, ms)| (*alarms, *ms))
        .collect();
    Alarms {
        count,
        put_secs,
        all_instances_secs,
        evaluated_secs,
        first_passes,
        list_secs,
        states,
        window_secs,
        server_cpu,
        passes,
    }
}

struct Config {
    nodes: usize,
    metrics: usize,
    interval: Duration,
    seconds: u64,
    alarms_per_node: usize,
    alarm_period: u64,
}

fn print_report(
    config: &Config,
    enrolled_secs: f64,
    connected_secs: f64,
    ingest: &Ingestion,
    query: &QueryResult,
    alarms: Option<&Alarms>,
) {
    let per_sec = ingest.points as f64 / ingest.seconds;
    println!(
        "\nMetrics, {} nodes x {} metrics every {} s (enrolled in {enrolled_secs:.1} s, sessions open in {connected_secs:.1} s)",
        config.nodes,
        config.metrics,
        config.interval.as_secs()
    );
    println!(
        "ingestion      {per_sec:>9.0} points/s acknowledged over {:.0} s (offered {:.0}/s; {} points)",
        ingest.seconds, ingest.offered_per_sec, ingest.points
    );
    println!(
        "ack latency    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ingest.p50_ms, ingest.p99_ms, ingest.max_ms
    );
    println!(
        "server CPU     {:.3} s per 1,000 points ({:.1}% of one core; the bench process {:.1}%)",
        ingest.server_cpu / (ingest.points.max(1) as f64 / 1000.0),
        100.0 * ingest.server_cpu / ingest.seconds,
        100.0 * ingest.bench_cpu / ingest.seconds
    );
    println!(
        "disk           {:.1} bytes per point after a checkpoint ({:.1} with the WAL before it; {} points stored, +{} bytes)",
        ingest.disk_bytes as f64 / ingest.stored.max(1) as f64,
        ingest.disk_bytes_uncheckpointed as f64 / ingest.stored.max(1) as f64,
        ingest.stored,
        ingest.disk_bytes
    );
    println!(
        "\nquery, one series, a week of 1-minute points ({WEEK_MINUTES} points written in {:.1} s)",
        query.backfill_secs
    );
    for (label, timing) in [
        ("period=3600", &query.hourly),
        ("period=60", &query.minutely),
    ] {
        println!(
            "{label:<14} p50 {:.1} ms, max {:.1} ms of {QUERY_RUNS} ({} periods from {})",
            timing.p50_ms, timing.max_ms, timing.periods, timing.resolution
        );
    }
    let Some(alarms) = alarms else {
        return;
    };
    let ingest_rate = ingest.server_cpu / ingest.seconds;
    println!(
        "\nalarms, {} (period {} s, one node each)",
        alarms.count, config.alarm_period
    );
    println!(
        "put            {:.1} s ({:.0} alarms/s, 4 at a time)",
        alarms.put_secs,
        alarms.count as f64 / alarms.put_secs
    );
    let first_ms: u64 = alarms.first_passes.iter().map(|(_, ms)| ms).sum();
    let first_alarms: u64 = alarms.first_passes.iter().map(|(n, _)| n).sum();
    let longest = alarms.first_passes.iter().max_by_key(|(_, ms)| *ms);
    println!(
        "first pass     every alarm evaluated {:.1} s after the first put: {} passes, {first_alarms} evaluations in {:.1} s{}",
        alarms.evaluated_secs,
        alarms.first_passes.len(),
        first_ms as f64 / 1000.0,
        longest.map_or(String::new(), |(n, ms)| format!(
            ", the longest {n} alarms in {ms} ms"
        ))
    );
    println!(
        "listing        GET /v1/alarms of {} alarms took {:.1} s; every alarm listed an instance {:.1} s after the first put ({})",
        alarms.count, alarms.list_secs, alarms.all_instances_secs, alarms.states
    );
    println!(
        "two periods    server CPU {:.1} s over {:.0} s ({:.1} s less ingestion at its phase-1 rate)",
        alarms.server_cpu,
        alarms.window_secs,
        alarms.server_cpu - ingest_rate * alarms.window_secs
    );
    let passes: Vec<String> = alarms
        .passes
        .iter()
        .map(|(n, ms)| format!("{n} alarms in {ms} ms"))
        .collect();
    println!(
        "passes         {}",
        if passes.is_empty() {
            "none logged".to_string()
        } else {
            passes.join("; ")
        }
    );
}

fn main() {
    // reqwest is built with rustls without a provider: install ring, as the binary does.
    operon_agent::tls::install_default_provider();
    let config = Config {
        nodes: env_or("METRICS_NODES", 1000).max(1) as usize,
        metrics: env_or("METRICS_PER_NODE", 20).clamp(1, 100) as usize,
        interval: Duration::from_secs(env_or("METRICS_INTERVAL_SECS", 10).max(1)),
        seconds: env_or("METRICS_SECONDS", 180).max(1),
        alarms_per_node: env_or("METRICS_ALARMS_PER_NODE", 10) as usize,
        alarm_period: env_or("METRICS_ALARM_PERIOD", 60).max(10),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut children = Killed(Vec::new());
    let server = start_server(dir.path(), &mut children);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let http = reqwest::Client::new();
    let shared = Arc::new(Shared::default());
    runtime.block_on(async {
        let started_ms = now_ms();
        let enroll = call(
            &http,
            &server,
            reqwest::Method::POST,
            "/v1/enroll-tokens",
            Some(json!({"uses": config.nodes + 1})),
        )
        .await;
        let token = enroll["token"].as_str().expect("enroll token");
        let started = Instant::now();
        let mut names: Vec<String> = (0..config.nodes)
            .map(|i| format!("metrics-{i:04}"))
            .collect();
        names.push("metrics-week".into());
        let mut nodes = enroll_nodes(&server, token, names).await;
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let week_node = nodes.pop().expect("the week node");
        assert_eq!(week_node.name, "metrics-week");
        let enrolled_secs = started.elapsed().as_secs_f64();
        eprintln!("{} nodes enrolled in {enrolled_secs:.1} s", nodes.len() + 1);
        let started = Instant::now();
        // Each session starts at once (heartbeats; batches once sending).
        let shared_ref = &shared;
        let server_ref = &server;
        let config_ref = &config;
        // Each yields its session's handle, awaited once the benchmark ends.
        #[allow(clippy::async_yields_async)]
        let sessions: Vec<tokio::task::JoinHandle<()>> = stream::iter(nodes.iter().enumerate())
            .map(|(i, node)| async move {
                let (socket, heartbeat) = connect(server_ref, node).await;
                let offset = config_ref
                    .interval
                    .mul_f64(i as f64 / config_ref.nodes as f64);
                tokio::spawn(node_session(
                    socket,
                    heartbeat,
                    i,
                    config_ref.metrics,
                    config_ref.interval,
                    offset,
                    shared_ref.clone(),
                ))
            })
            .buffered(16)
            .collect()
            .await;
        let connected_secs = started.elapsed().as_secs_f64();
        eprintln!("{} sessions open in {connected_secs:.1} s", sessions.len());
        let baseline = checkpointed_bytes(&server.data_dir).await;
        let ingest = ingestion(&http, &server, &shared, &config, baseline, started_ms).await;
        eprintln!("ingestion measured: {} points", ingest.points);
        let query = query_phase(&http, &server, &week_node).await;
        eprintln!("query measured");
        let alarms = if config.alarms_per_node > 0 {
            Some(alarm_phase(&http, &server, &nodes, &config).await)
        } else {
            None
        };
        shared.stop.store(true, Ordering::Relaxed);
        for session in sessions {
            session.await.expect("node session");
        }
        print_report(
            &config,
            enrolled_secs,
            connected_secs,
            &ingest,
            &query,
            alarms.as_ref(),
        );
    });
}
