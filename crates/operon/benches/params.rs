//! Parameter Store benchmark (not a test): reads per second and their
//! latency, through the native API and the AWS SSM protocol, and how fast a
//! change reaches every node of a sync.
//!
//! Starts the release binary as a server, makes a user whose one policy
//! allows `params:*` on `param/*` (with an API token and an access key), and
//! puts 1,000 String parameters `/bench/p/NNNN` and 10 SecureStrings
//! `/bench/secure/NN`. Then N concurrent clients (keep-alive connections)
//! read for T seconds each of:
//! - GetParameter, native (`GET /v1/parameters/{name}`, bearer token) and
//!   SSM (`POST /`, `AmazonSSM.GetParameter`, every request SigV4-signed
//!   at the time it is sent, so signing is part of the cost measured);
//! - GetParametersByPath of `/bench/p/`, recursive, first page of 10, both ways;
//! - GetParameter of a SecureString with `?decrypt=true` (native): the value
//!   is unsealed and an audit record written per read.
//!
//! Every answer must be 200; the rate counts only those.
//!
//! Then A agents (each with its own state directory and `--host-root`, all
//! tagged env=bench) are started, a sync of `/bench/s/` (3 parameters) to
//! `tag:env=bench` is created and timed until every node reports it applied
//! (the first fan-out); then three times, one parameter is overwritten and
//! the time until every node reports applied with the new version is taken
//! (polling `GET /v1/param-syncs/NAME` every 20 ms), and the median printed.
//!
//! Run: `cargo bench -p operon --bench params` (env PARAMS_CLIENTS,
//! PARAMS_SECONDS, SYNC_AGENTS override 16, 5, 200).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const STRING_PARAMETERS: usize = 1000;
const SECURE_PARAMETERS: usize = 10;
const SYNC_NAME: &str = "bench-sync";
const SYNC_PARAMETERS: [&str; 3] = ["/bench/s/alpha", "/bench/s/beta", "/bench/s/gamma"];
const SSM_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn operon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_operon"))
}

/// Children killed and reaped however the benchmark ends.
struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The native API's path of a parameter: the name percent-encoded as one segment.
fn native_path(name: &str) -> String {
    let mut out = String::from("/v1/parameters/");
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn string_name(i: usize) -> String {
    format!("/bench/p/{i:04}")
}

fn secure_name(i: usize) -> String {
    format!("/bench/secure/{i:02}")
}

/// The server's base URL and its admin token.
struct Server {
    url: String,
    admin_token: String,
}

fn start_server(dir: &Path, children: &mut Killed) -> Server {
    let mut server = operon()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("server"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn operon server");
    let mut lines = BufReader::new(server.stdout.take().expect("server stdout")).lines();
    children.0.push(server);
    let url = loop {
        let line = lines.next().expect("server exited").expect("read stdout");
        if let Some(url) = line.strip_prefix("operon server listening on ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let admin_token = std::fs::read_to_string(dir.join("server/admin-token"))
        .expect("admin token")
        .trim()
        .to_string();
    Server { url, admin_token }
}

/// A JSON call that must answer 200.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method.clone(), url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send request");
    let status = response.status();
    let text = response.text().await.expect("read answer");
    assert_eq!(status, 200, "{method} {url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The benchmark user's credentials.
struct Reader {
    token: String,
    access_key_id: String,
    secret_access_key: String,
}

async fn make_reader(http: &reqwest::Client, server: &Server) -> Reader {
    let admin = async |path: &str, body: Value| {
        let url = format!("{}{path}", server.url);
        call(
            http,
            reqwest::Method::POST,
            &url,
            &server.admin_token,
            Some(body),
        )
        .await
    };
    let policy =
        json!({"Statement": [{"Effect": "Allow", "Action": "params:*", "Resource": "param/*"}]});
    admin("/v1/policies", json!({"name": "bench", "document": policy})).await;
    admin("/v1/roles", json!({"name": "bench", "policies": ["bench"]})).await;
    admin("/v1/users", json!({"name": "bench", "roles": ["bench"]})).await;
    let token = admin("/v1/tokens", json!({"name": "main", "user": "bench"})).await;
    let key = admin("/v1/access-keys", json!({"user": "bench"})).await;
    let text = |v: &Value, field: &str| {
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in {v}"))
            .to_string()
    };
    Reader {
        token: text(&token, "token"),
        access_key_id: text(&key, "access_key_id"),
        secret_access_key: text(&key, "secret_access_key"),
    }
}

/// Puts `(name, body)` pairs, 16 at a time.
async fn put_all(http: &reqwest::Client, url: &str, token: &str, puts: Vec<(String, Value)>) {
    let mut pending = puts.into_iter();
    loop {
        let batch: Vec<_> = pending.by_ref().take(16).collect();
        if batch.is_empty() {
            return;
        }
        let calls = batch.into_iter().map(|(name, body)| {
            let at = format!("{url}{}", native_path(&name));
            async move { call(http, reqwest::Method::PUT, &at, token, Some(body)).await }
        });
        futures_util::future::join_all(calls).await;
    }
}

/// What one read scenario measured.
struct Measured {
    label: &'static str,
    requests: usize,
    elapsed: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let at = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies
            .get(at)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or_default()
    }
}

/// One request of a scenario, ready to send: a request builder from the
/// client, for the `n`th request of that client.
type MakeRequest = dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync;

/// Runs `clients` loops sending `make(n)` for `seconds`; every answer must be 200.
async fn measure(
    label: &'static str,
    http: &reqwest::Client,
    clients: usize,
    seconds: u64,
    make: Arc<MakeRequest>,
) -> Measured {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let http = http.clone();
            let make = make.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = client * 7919;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = make(&http, n).send().await.expect("send");
                    let status = response.status();
                    let body = response.bytes().await.expect("read answer");
                    assert_eq!(status, 200, "{label}: {}", String::from_utf8_lossy(&body));
                    latencies.push(sent.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Measured {
        label,
        requests: latencies.len(),
        elapsed,
        latencies,
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Builds an SSM JSON 1.1 request for `operation`, signed now with the reader's key.
fn ssm_request(
    http: &reqwest::Client,
    url: &str,
    host: &str,
    reader: &Reader,
    operation: &str,
    body: String,
) -> reqwest::RequestBuilder {
    let target = format!("AmazonSSM.{operation}");
    let headers: [(&str, &[u8]); 3] = [
        ("host", host.as_bytes()),
        ("content-type", SSM_CONTENT_TYPE.as_bytes()),
        ("x-amz-target", target.as_bytes()),
    ];
    let request = operon_sigv4::Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let signed = operon_sigv4::sign(
        &request,
        &operon_sigv4::SigningParams {
            access_key_id: &reader.access_key_id,
            secret_access_key: &reader.secret_access_key,
            region: "us-east-1",
            service: "ssm",
            timestamp_unix: now_unix(),
            add_content_sha256: false,
        },
    );
    let mut builder = http
        .post(format!("{url}/"))
        .header("content-type", SSM_CONTENT_TYPE)
        .header("x-amz-target", target);
    for (name, value) in signed {
        builder = builder.header(name, value);
    }
    builder.body(body)
}

/// Checks once, before timing, that each scenario answers what it should.
async fn check_answers(http: &reqwest::Client, url: &str, host: &str, reader: &Reader) {
    let native = call(
        http,
        reqwest::Method::GET,
        &format!("{url}{}", native_path(&string_name(7))),
        &reader.token,
        None,
    )
    .await;
    assert_eq!(native["value"], "value-0007", "{native}");
    let page = call(
        http,
        reqwest::Method::GET,
        &format!("{url}/v1/parameters-by-path?path=/bench/p/&recursive=true&max_results=10"),
        &reader.token,
        None,
    )
    .await;
    assert_eq!(
        page["parameters"].as_array().map(Vec::len),
        Some(10),
        "{page}"
    );
    let secret = call(
        http,
        reqwest::Method::GET,
        &format!("{url}{}?decrypt=true", native_path(&secure_name(3))),
        &reader.token,
        None,
    )
    .await;
    assert_eq!(secret["value"], "secret-03", "{secret}");
    let ssm = |operation: &str, body: Value| {
        ssm_request(http, url, host, reader, operation, body.to_string()).send()
    };
    let answer: Value = ssm("GetParameter", json!({"Name": string_name(7)}))
        .await
        .expect("send")
        .json()
        .await
        .expect("SSM JSON");
    assert_eq!(answer["Parameter"]["Value"], "value-0007", "{answer}");
    let answer: Value = ssm(
        "GetParametersByPath",
        json!({"Path": "/bench/p/", "Recursive": true, "MaxResults": 10}),
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("SSM JSON");
    assert_eq!(
        answer["Parameters"].as_array().map(Vec::len),
        Some(10),
        "{answer}"
    );
}

async fn read_benchmarks(
    http: &reqwest::Client,
    url: &str,
    reader: Arc<Reader>,
    clients: usize,
    seconds: u64,
) -> Vec<Measured> {
    let host = url.trim_start_matches("http://").to_string();
    check_answers(http, url, &host, &reader).await;
    let base = url.to_string();
    let (r, b) = (reader.clone(), base.clone());
    let native_get: Arc<MakeRequest> = Arc::new(move |http, n| {
        let name = string_name(n % STRING_PARAMETERS);
        http.get(format!("{b}{}", native_path(&name)))
            .bearer_auth(&r.token)
    });
    let (r, b, h) = (reader.clone(), base.clone(), host.clone());
    let ssm_get: Arc<MakeRequest> = Arc::new(move |http, n| {
        let body = json!({"Name": string_name(n % STRING_PARAMETERS)}).to_string();
        ssm_request(http, &b, &h, &r, "GetParameter", body)
    });
    let (r, b) = (reader.clone(), base.clone());
    let native_path_read: Arc<MakeRequest> = Arc::new(move |http, _| {
        http.get(format!(
            "{b}/v1/parameters-by-path?path=/bench/p/&recursive=true&max_results=10"
        ))
        .bearer_auth(&r.token)
    });
    let (r, b, h) = (reader.clone(), base.clone(), host.clone());
    let ssm_path_read: Arc<MakeRequest> = Arc::new(move |http, _| {
        let body = json!({"Path": "/bench/p/", "Recursive": true, "MaxResults": 10}).to_string();
        ssm_request(http, &b, &h, &r, "GetParametersByPath", body)
    });
    let (r, b) = (reader.clone(), base.clone());
    let native_decrypt: Arc<MakeRequest> = Arc::new(move |http, n| {
        let name = secure_name(n % SECURE_PARAMETERS);
        http.get(format!("{b}{}?decrypt=true", native_path(&name)))
            .bearer_auth(&r.token)
    });
    let scenarios: [(&'static str, Arc<MakeRequest>); 5] = [
        ("GetParameter, native (bearer)", native_get),
        ("GetParameter, SSM (SigV4)", ssm_get),
        ("GetParametersByPath, native (bearer)", native_path_read),
        ("GetParametersByPath, SSM (SigV4)", ssm_path_read),
        ("GetParameter SecureString decrypt, native", native_decrypt),
    ];
    let mut results = Vec::new();
    for (label, make) in scenarios {
        let measured = measure(label, http, clients, seconds, make).await;
        eprintln!("{label}: {:.0}/s", measured.per_second());
        results.push(measured);
    }
    results
}

fn print_reads(results: &[Measured], clients: usize) {
    println!("\nreads, {clients} concurrent clients, keep-alive");
    println!(
        "| {:<42} | {:>9} | {:>8} | {:>8} | {:>8} |",
        "operation", "requests", "req/s", "p50 ms", "p99 ms"
    );
    println!(
        "| {:-<42} | {:->9} | {:->8} | {:->8} | {:->8} |",
        "", "", "", "", ""
    );
    for m in results {
        println!(
            "| {:<42} | {:>9} | {:>8.0} | {:>8.2} | {:>8.2} |",
            m.label,
            m.requests,
            m.per_second(),
            m.percentile_ms(0.5),
            m.percentile_ms(0.99)
        );
    }
    let rate = |label: &str| {
        results
            .iter()
            .find(|m| m.label == label)
            .map(Measured::per_second)
            .unwrap_or(f64::NAN)
    };
    let get_ratio = rate("GetParameter, native (bearer)") / rate("GetParameter, SSM (SigV4)");
    let path_ratio =
        rate("GetParametersByPath, native (bearer)") / rate("GetParametersByPath, SSM (SigV4)");
    let decrypt_ratio =
        rate("GetParameter, native (bearer)") / rate("GetParameter SecureString decrypt, native");
    println!(
        "bearer/SigV4 throughput: GetParameter {get_ratio:.2}x, GetParametersByPath {path_ratio:.2}x; \
         plain/decrypted GetParameter {decrypt_ratio:.2}x"
    );
}

fn cli(server: &Server, args: &[&str]) -> Value {
    let out = operon()
        .args(args)
        .env("OPERON_SERVER", &server.url)
        .env("OPERON_TOKEN", &server.admin_token)
        .output()
        .expect("run operon");
    assert!(
        out.status.success(),
        "operon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("CLI JSON")
}

/// Starts `agents` agents tagged env=bench, each below its own directory, and
/// waits until all are online. Returns the time that took.
async fn start_agents(
    http: &reqwest::Client,
    server: &Server,
    dir: &Path,
    agents: usize,
    children: &mut Killed,
) -> Duration {
    let enroll = cli(
        server,
        &[
            "enroll-tokens",
            "create",
            "--uses",
            &agents.to_string(),
            "--json",
        ],
    );
    let enroll = enroll["token"].as_str().expect("enroll token").to_string();
    let started = Instant::now();
    for i in 0..agents {
        let root = dir.join(format!("root-{i}"));
        std::fs::create_dir_all(root.join("etc/app")).expect("host root");
        let child = operon()
            .args(["agent", "--server", &server.url, "--enroll-token", &enroll])
            .args(["--name", &format!("sync-{i}"), "--tag", "env=bench"])
            .arg("--state-dir")
            .arg(dir.join(format!("agent-{i}")))
            .arg("--host-root")
            .arg(&root)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent");
        children.0.push(child);
    }
    loop {
        let nodes = call(
            http,
            reqwest::Method::GET,
            &format!("{}/v1/nodes", server.url),
            &server.admin_token,
            None,
        )
        .await;
        let online = nodes
            .as_array()
            .map(|a| a.iter().filter(|n| n["status"] == "online").count())
            .unwrap_or(0);
        if online == agents {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {online}/{agents} online after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether every one of `agents` nodes applied content with `name` at `version`.
fn all_applied(status: &Value, agents: usize, name: &str, version: u64) -> bool {
    let wanted = format!("{name}:{version}");
    let Some(nodes) = status["nodes"].as_array() else {
        return false;
    };
    nodes.len() == agents
        && nodes.iter().all(|node| {
            node["status"] == "applied"
                && node["versions"]
                    .as_str()
                    .is_some_and(|v| v.split(',').any(|entry| entry.trim() == wanted))
        })
}

/// Polls the sync every 20 ms until every node applied `name` at `version`.
async fn wait_applied(
    http: &reqwest::Client,
    server: &Server,
    agents: usize,
    name: &str,
    version: u64,
    since: Instant,
) -> Duration {
    let url = format!("{}/v1/param-syncs/{SYNC_NAME}", server.url);
    loop {
        let status = call(http, reqwest::Method::GET, &url, &server.admin_token, None).await;
        if all_applied(&status, agents, name, version) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(300),
            "{name}:{version} not applied everywhere after 300 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the sync fan-out measured.
struct FanOut {
    agents: usize,
    online: Duration,
    first: Duration,
    changes: Vec<Duration>,
}

async fn sync_benchmark(
    http: &reqwest::Client,
    server: &Server,
    reader: &Reader,
    dir: &Path,
    agents: usize,
    children: &mut Killed,
) -> FanOut {
    let online = start_agents(http, server, dir, agents, children).await;
    eprintln!("{agents} agents online in {:.1} s", online.as_secs_f64());
    let puts = SYNC_PARAMETERS
        .iter()
        .map(|name| (name.to_string(), json!({"value": format!("{name}-1")})))
        .collect();
    put_all(http, &server.url, &reader.token, puts).await;
    let started = Instant::now();
    call(
        http,
        reqwest::Method::PUT,
        &format!("{}/v1/param-syncs/{SYNC_NAME}", server.url),
        &server.admin_token,
        Some(json!({"path": "/bench/s/", "targets": ["tag:env=bench"], "file": "/etc/app/bench.env"})),
    )
    .await;
    let changed = SYNC_PARAMETERS[0];
    let first = wait_applied(http, server, agents, changed, 1, started).await;
    eprintln!("first fan-out in {:.2} s", first.as_secs_f64());
    let mut changes = Vec::new();
    for version in 2..=4 {
        let started = Instant::now();
        call(
            http,
            reqwest::Method::PUT,
            &format!("{}{}", server.url, native_path(changed)),
            &reader.token,
            Some(json!({"value": format!("{changed}-{version}"), "overwrite": true})),
        )
        .await;
        changes.push(wait_applied(http, server, agents, changed, version, started).await);
        // Let the nodes settle (drift checks, journal) before the next change.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let expected = format!("ALPHA=\"{changed}-4\"");
    let sample =
        std::fs::read_to_string(dir.join("root-0/etc/app/bench.env")).expect("synced file");
    assert!(sample.contains(&expected), "node 0's file: {sample}");
    FanOut {
        agents,
        online,
        first,
        changes,
    }
}

fn print_fan_out(fan_out: &FanOut) {
    let mut sorted = fan_out.changes.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let all = fan_out
        .changes
        .iter()
        .map(|d| format!("{:.3}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    println!("\nsync fan-out, {} agents", fan_out.agents);
    println!("| {:<44} | {:>30} |", "measure", "seconds");
    println!("| {:-<44} | {:->30} |", "", "");
    println!(
        "| {:<44} | {:>30.2} |",
        "agents enrolled and online",
        fan_out.online.as_secs_f64()
    );
    println!(
        "| {:<44} | {:>30.3} |",
        "first fan-out (create sync to all applied)",
        fan_out.first.as_secs_f64()
    );
    println!(
        "| {:<44} | {:>30} |",
        "put --overwrite to all applied, median of 3",
        format!("{:.3} ({all})", median.as_secs_f64())
    );
}

fn main() {
    // reqwest is built with rustls without a provider: install ring, as the binary does.
    operon_agent::tls::install_default_provider();
    let clients = env_or("PARAMS_CLIENTS", 16) as usize;
    let seconds = env_or("PARAMS_SECONDS", 5);
    let agents = env_or("SYNC_AGENTS", 200) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut children = Killed(Vec::new());
    let server = start_server(dir.path(), &mut children);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(1))
        .build()
        .expect("HTTP client");
    let (reads, fan_out) = runtime.block_on(async {
        let reader = Arc::new(make_reader(&http, &server).await);
        let started = Instant::now();
        let strings = (0..STRING_PARAMETERS)
            .map(|i| (string_name(i), json!({"value": format!("value-{i:04}")})));
        let secures = (0..SECURE_PARAMETERS).map(|i| {
            (
                secure_name(i),
                json!({"value": format!("secret-{i:02}"), "type": "SecureString"}),
            )
        });
        put_all(
            &http,
            &server.url,
            &reader.token,
            strings.chain(secures).collect(),
        )
        .await;
        eprintln!(
            "{} parameters put in {:.1} s",
            STRING_PARAMETERS + SECURE_PARAMETERS,
            started.elapsed().as_secs_f64()
        );
        let reads = read_benchmarks(&http, &server.url, reader.clone(), clients, seconds).await;
        let fan_out =
            sync_benchmark(&http, &server, &reader, dir.path(), agents, &mut children).await;
        (reads, fan_out)
    });
    print_reads(&reads, clients);
    print_fan_out(&fan_out);
}
