//! Workflow benchmark (not a test): the release `operon` server on SQLite.
//!
//! Measures, over the HTTP API:
//! 1. persisted transitions per second, 100 concurrent executions of a
//!    Pass/Choice loop that calls a task on every iteration (so every
//!    iteration is its own durable step: state, history, task row committed
//!    before the task is performed, outcome committed as the next step);
//! 2. the same loop without the task: the engine runs the loop to the end in
//!    the start step and every transition's history is committed with it;
//! 3. executions started per second (each start acknowledged once on disk).
//!
//! Run: `cargo bench -p operon --bench workflows` (env WF_EXECUTIONS=100,
//! WF_ITERATIONS=100, WF_STARTS=2000 override the defaults).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let value: Value = response.json().await.expect("json answer");
        assert!(status.is_success(), "POST {path}: {status} {value}");
        value
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        response.json().await.expect("json answer")
    }

    async fn count(&self, workflow: &str, status: &str) -> usize {
        let list = self
            .get(&format!(
                "/v1/executions?workflow={workflow}&status={status}&limit=10000"
            ))
            .await;
        list.as_array().map_or(0, Vec::len)
    }

    async fn wait_all(&self, workflow: &str, n: usize) {
        // Polled every 50 ms with one light query, so the poll itself does
        // not compete much with the work measured.
        while self.count(workflow, "SUCCEEDED").await < n {
            let failed = self.count(workflow, "FAILED").await;
            assert_eq!(failed, 0, "executions of {workflow} failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// State transitions actually made, from the persisted histories.
    async fn transitions(&self, workflow: &str) -> u64 {
        let list = self
            .get(&format!("/v1/executions?workflow={workflow}&limit=10000"))
            .await;
        let mut total = 0;
        for e in list.as_array().unwrap() {
            let id = e["executionId"].as_str().unwrap();
            let h = self
                .get(&format!("/v1/executions/{id}/history?limit=10000"))
                .await;
            total += h["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"].as_str().unwrap_or("").ends_with("StateEntered"))
                .count() as u64;
        }
        total
    }
}

/// A minimal keep-alive HTTP server answering `{}` to every request.
fn tiny_http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn loop_definition(task_url: Option<&str>) -> Value {
    let after_check = if task_url.is_some() { "Step" } else { "Inc" };
    let mut states = json!({
        "Inc": {
            "Type": "Pass",
            "Parameters": {"n.$": "States.MathAdd($.n, 1)", "max.$": "$.max"},
            "Next": "Check"
        },
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.max", "Next": "Done"}],
            "Default": after_check
        },
        "Done": {"Type": "Succeed"}
    });
    if let Some(url) = task_url {
        states["Step"] = json!({
            "Type": "Task",
            "Resource": "operon:http",
            "Parameters": {"Url": url},
            "ResultPath": null,
            "Next": "Inc"
        });
    }
    json!({"StartAt": "Inc", "States": states})
}

async fn run_loop(api: &Api, workflow: &str, executions: u64, iterations: u64) -> (f64, u64) {
    let started = Instant::now();
    let mut starts = Vec::new();
    for i in 0..executions {
        let body = json!({"input": {"n": 0, "max": iterations}, "name": format!("{workflow}-{i}")});
        let path = format!("/v1/workflows/{workflow}/executions");
        let api_http = api.http.clone();
        let url = format!("{}{path}", api.url);
        let token = api.token.clone();
        starts.push(tokio::spawn(async move {
            let r = api_http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("start");
            assert!(r.status().is_success());
        }));
    }
    for s in starts {
        s.await.unwrap();
    }
    api.wait_all(workflow, executions as usize).await;
    let seconds = started.elapsed().as_secs_f64();
    (seconds, api.transitions(workflow).await)
}

fn main() {
    // reqwest builds its TLS from the process default: ring, the only provider.
    operon_agent::tls::install_default_provider();
    let executions = env_or("WF_EXECUTIONS", 100);
    let iterations = env_or("WF_ITERATIONS", 100);
    let total_starts = env_or("WF_STARTS", 2000);
    let dir = tempfile::tempdir().unwrap();
    let listen = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listen.local_addr().unwrap().port();
    drop(listen);
    let mut child = Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        // The loop's task calls a server on loopback, which the egress
        // policy refuses unless allowed.
        .args(["--http-allow", "127.0.0.1/32"])
        .arg("--data-dir")
        .arg(dir.path())
        .env(
            "RUST_LOG",
            std::env::var("WF_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("server exited").expect("stdout");
        if let Some(url) = line.strip_prefix("operon server listening on ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let _server = Killed(child);
    let token = std::fs::read_to_string(dir.path().join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let http_port = tiny_http_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let api = Arc::new(Api {
            http: reqwest::Client::new(),
            url,
            token,
        });
        let task_url = format!("http://127.0.0.1:{http_port}/");
        api.post("/v1/workflows", &json!({"name": "loop-task", "definition": loop_definition(Some(&task_url))})).await;
        api.post("/v1/workflows", &json!({"name": "loop-pure", "definition": loop_definition(None)})).await;
        api.post("/v1/workflows", &json!({"name": "one-pass", "definition": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}})).await;

        let (secs, transitions) = run_loop(&api, "loop-task", executions, iterations).await;
        // The start step, then one step per task outcome (iterations - 1 tasks).
        let steps = executions * iterations;
        println!(
            "loop with a task per iteration: {executions} executions x {iterations} iterations: {transitions} transitions, {steps} durable steps in {secs:.2} s = {:.0} transitions/s, {:.0} steps/s",
            transitions as f64 / secs,
            steps as f64 / secs
        );

        let pure_iterations = iterations * 10;
        let (secs, transitions) = run_loop(&api, "loop-pure", executions, pure_iterations).await;
        println!(
            "pure Pass/Choice loop: {executions} executions x {pure_iterations} iterations: {transitions} transitions in {secs:.2} s = {:.0} transitions/s (history of each committed)",
            transitions as f64 / secs
        );

        let started = Instant::now();
        let mut clients = Vec::new();
        let per_client = total_starts / 16;
        for c in 0..16 {
            let api = api.clone();
            clients.push(tokio::spawn(async move {
                for i in 0..per_client {
                    api.post(
                        "/v1/workflows/one-pass/executions",
                        &json!({"input": {"i": i}, "name": format!("s-{c}-{i}")}),
                    )
                    .await;
                }
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let n = per_client * 16;
        println!(
            "executions started (16 concurrent clients, each start acknowledged on disk): {n} in {secs:.2} s = {:.0} starts/s",
            n as f64 / secs
        );
    });
}
