//! State Manager benchmark (not a test), issue 13's quality bar: an
//! association of 50 file resources applied to 200 agents, and the
//! inventory of 1,000 packages from 200 agents.
//!
//! Starts the release binary as a server and A agents (each with its own
//! state directory, `--host-root` and custom inventory directory, all
//! tagged env=bench, inventory collected only at each connection).
//!
//! 1. Association apply: a desired-state document with 50 `file` resources
//!    (`/srv/bench/f00`..`f49`, 0644, below each agent's host root) is
//!    uploaded and an association to `tag:env=bench` (max concurrency 100%)
//!    created. Timed until every node is COMPLIANT with every resource
//!    `changed` (first apply); then `run` and timed until every node reports
//!    every resource `unchanged` for that run (second apply). Server CPU
//!    (utime+stime from `/proc/<pid>/stat`) and the agents' CPU are read
//!    before and after each phase.
//! 2. Inventory: the agents are stopped, each gets a custom inventory file
//!    `packages.json` of 1,000 items (kind `custom:packages`), and the
//!    agents are started again (already enrolled): timed from the start
//!    until the server holds every node's last item (then the whole
//!    200 x 1,000 is counted once through `GET /v1/inventory`). The bytes
//!    sent are the JSON frames the agents send for that kind, built with the
//!    agent's own code (`inventory_sets::delta`, `operon_proto::encode`).
//!    Then the agents are restarted with nothing changed (what reconnecting
//!    200 agents costs by itself: every kind is sent again as an empty
//!    delta), and last 10 items change on every agent and the same is
//!    measured for the delta. "online" (every node listed online) and "all
//!    held" are timed separately; the phase's server CPU is read when all
//!    hold.
//!
//! Run: `cargo bench -p operon --bench state` (env STATE_AGENTS,
//! STATE_FILES, STATE_ITEMS, STATE_CHANGED override 200, 50, 1000, 10).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use operon_agent::inventory_sets::{self, Set};
use operon_proto::AgentMessage;
use serde_json::{Value, json};
use support::{Killed, Server, cpu_seconds, operon, start_server};

const DOCUMENT: &str = "bench-files";
const ASSOCIATION: &str = "bench-files";
const KIND: &str = "custom:packages";
const TIMEOUT: Duration = Duration::from_secs(600);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A JSON call that must answer 200.
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
    assert_eq!(status, 200, "{method} {url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn get(http: &reqwest::Client, server: &Server, path: &str) -> Value {
    call(http, server, reqwest::Method::GET, path, None).await
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

/// The agents: their directories and, while running, their processes.
struct Agents {
    dir: PathBuf,
    count: usize,
    enroll_token: String,
    running: Killed,
}

impl Agents {
    fn custom_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{i}-custom"))
    }

    fn start(&mut self, server: &Server) {
        for i in 0..self.count {
            let root = self.dir.join(format!("{i}-root"));
            std::fs::create_dir_all(root.join("srv/bench")).expect("host root");
            let child = operon()
                .args(["agent", "--server", &server.url])
                .args(["--enroll-token", &self.enroll_token])
                .args(["--name", &format!("state-{i:03}"), "--tag", "env=bench"])
                .arg("--state-dir")
                .arg(self.dir.join(format!("{i}-state")))
                .arg("--host-root")
                .arg(&root)
                .arg("--custom-inventory-dir")
                .arg(self.custom_dir(i))
                // Collected at each connection only, so no periodic
                // collection (dpkg-query on every agent) runs during a phase.
                .args(["--inventory-interval-secs", "86400"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn agent");
            self.running.0.push(child);
        }
    }

    /// SIGTERM to every agent, then wait for all to exit.
    fn stop(&mut self) {
        if !self.running.0.is_empty() {
            let status = Command::new("kill")
                .arg("-TERM")
                .args(self.running.0.iter().map(|c| c.id().to_string()))
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -TERM the agents");
        }
        for mut child in self.running.0.drain(..) {
            let _ = child.wait();
        }
    }

    fn cpu_seconds(&self) -> f64 {
        self.running.0.iter().map(|c| cpu_seconds(c.id())).sum()
    }
}

/// Nodes the server lists as online.
async fn online_count(http: &reqwest::Client, server: &Server) -> usize {
    get(http, server, "/v1/nodes")
        .await
        .as_array()
        .map(|a| a.iter().filter(|n| n["status"] == "online").count())
        .unwrap_or(0)
}

async fn wait_online(http: &reqwest::Client, server: &Server, wanted: usize, since: Instant) {
    loop {
        let online = online_count(http, server).await;
        if online == wanted {
            return;
        }
        assert!(
            since.elapsed() < TIMEOUT,
            "{online} online, waiting for {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one timed phase measured.
#[derive(Debug, Clone, Copy)]
struct Phase {
    wall: Duration,
    server_cpu: f64,
    agents_cpu: f64,
}

fn document(files: usize) -> Value {
    let resources: Vec<Value> = (0..files)
        .map(|n| {
            json!({"name": format!("f{n:02}"), "type": "file", "path": format!("/srv/bench/f{n:02}"),
                   "content": format!("bench file {n}\nmanaged by operon\n"), "mode": "0644"})
        })
        .collect();
    json!({"schemaVersion": "operon-state/1", "resources": resources})
}

/// How many nodes report every one of `files` resources with `outcome`
/// (and, when given, for the run of `command_id`).
fn nodes_with(list: &Value, files: usize, outcome: &str, command_id: Option<&str>) -> usize {
    list.as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|node| {
                    node["status"] == "COMPLIANT"
                        && command_id.is_none_or(|id| node["command_id"] == id)
                        && node["resources"].as_array().is_some_and(|r| {
                            r.len() == files && r.iter().all(|r| r["outcome"] == outcome)
                        })
                })
                .count()
        })
        .unwrap_or(0)
}

async fn wait_compliance(
    http: &reqwest::Client,
    server: &Server,
    agents: usize,
    files: usize,
    outcome: &str,
    command_id: Option<&str>,
    since: Instant,
) -> Duration {
    let path = format!("/v1/compliance?association={ASSOCIATION}");
    loop {
        // The full answer (A x 50 resources) is large: ask for it only once
        // a cheap answer says every node reported (the association's count
        // of compliant nodes; for a run, the newest command finished).
        let ready = match command_id {
            None => {
                let detail = get(http, server, &format!("/v1/associations/{ASSOCIATION}")).await;
                detail["nodes"]["compliant"].as_u64() == Some(agents as u64)
            }
            Some(id) => {
                let newest = get(http, server, "/v1/commands?limit=1").await;
                let newest = &newest[0];
                newest["id"] == id && !newest["finished_at"].is_null()
            }
        };
        if ready {
            let at = since.elapsed();
            let list = get(http, server, &path).await;
            let done = nodes_with(&list, files, outcome, command_id);
            if done == agents {
                return at;
            }
            assert!(
                since.elapsed() < TIMEOUT,
                "{done}/{agents} nodes with every resource {outcome}"
            );
        }
        assert!(since.elapsed() < TIMEOUT, "association not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn apply_benchmark(
    http: &reqwest::Client,
    server: &Server,
    agents: &Agents,
    files: usize,
) -> (Phase, Phase) {
    call(
        http,
        server,
        reqwest::Method::POST,
        "/v1/documents",
        Some(json!({"name": DOCUMENT, "content": document(files)})),
    )
    .await;
    let (server_cpu, agents_cpu) = (cpu_seconds(server.pid), agents.cpu_seconds());
    let started = Instant::now();
    call(
        http,
        server,
        reqwest::Method::POST,
        "/v1/associations",
        Some(json!({"name": ASSOCIATION, "document": DOCUMENT,
                    "targets": ["tag:env=bench"], "max_concurrency": "100%"})),
    )
    .await;
    let wall = wait_compliance(http, server, agents.count, files, "changed", None, started).await;
    let first = Phase {
        wall,
        server_cpu: cpu_seconds(server.pid) - server_cpu,
        agents_cpu: agents.cpu_seconds() - agents_cpu,
    };
    eprintln!("first apply in {:.2} s", wall.as_secs_f64());
    let sample = agents.dir.join("0-root/srv/bench/f07");
    let text = std::fs::read_to_string(&sample).expect("applied file");
    assert_eq!(text, "bench file 7\nmanaged by operon\n");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (server_cpu, agents_cpu) = (cpu_seconds(server.pid), agents.cpu_seconds());
    let started = Instant::now();
    let run = call(
        http,
        server,
        reqwest::Method::POST,
        &format!("/v1/associations/{ASSOCIATION}/run"),
        Some(json!({})),
    )
    .await;
    let command_id = run["command_id"].as_str().expect("run command id");
    let wall = wait_compliance(
        http,
        server,
        agents.count,
        files,
        "unchanged",
        Some(command_id),
        started,
    )
    .await;
    let second = Phase {
        wall,
        server_cpu: cpu_seconds(server.pid) - server_cpu,
        agents_cpu: agents.cpu_seconds() - agents_cpu,
    };
    eprintln!("second apply in {:.2} s", wall.as_secs_f64());
    (first, second)
}

fn package_set(agent: usize, items: usize, changed: usize) -> Set {
    (1..=items)
        .map(|n| {
            let version = if n > items - changed {
                format!("2.0.{agent}")
            } else {
                format!("1.0.{agent}")
            };
            let attributes = BTreeMap::from([
                ("version".to_string(), version),
                ("arch".to_string(), "amd64".to_string()),
            ]);
            (format!("pkg-{n:04}"), attributes)
        })
        .collect()
}

/// `{"pkg-0001": {"version": ..., "arch": ...}, ...}` as a custom file,
/// checked to read back (as the agent reads it) as `set`, so the bytes
/// counted are those of the set the agent sends.
fn write_packages(dir: &Path, set: &Set) {
    std::fs::create_dir_all(dir).expect("custom inventory dir");
    let text = serde_json::to_string(set).expect("custom inventory JSON");
    assert_eq!(inventory_sets::parse_custom(&text).as_ref(), Ok(set));
    std::fs::write(dir.join("packages.json"), text).expect("write custom inventory");
}

/// The bytes of the frame an agent sends for `new` over `base`.
fn frame_bytes(base: Option<&Set>, new: &Set) -> usize {
    let delta = inventory_sets::delta(KIND, base, new, 1_700_000_000_000);
    operon_proto::encode(&AgentMessage::InventoryReport(delta)).len()
}

/// What an inventory phase measured.
struct Inventory {
    phase: Phase,
    online: Duration,
    bytes: usize,
    items_sent: usize,
}

/// Restarts the agents and times until every node holds its last item with
/// `filter` (`name=pkg-NNNN,...`).
async fn inventory_phase(
    http: &reqwest::Client,
    server: &Server,
    agents: &mut Agents,
    filter: &str,
) -> (Phase, Duration) {
    let server_cpu = cpu_seconds(server.pid);
    let started = Instant::now();
    agents.start(server);
    let encoded: String = filter
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let path = format!("/v1/inventory?type={KIND}&filter={encoded}");
    let (mut online, mut all_held) = (None, None);
    loop {
        if online.is_none() && online_count(http, server).await == agents.count {
            online = Some(started.elapsed());
        }
        let at = started.elapsed();
        let held = get(http, server, &path).await["matches"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        if all_held.is_none() && held == agents.count {
            all_held = Some(at);
        }
        if let (Some(online), Some(wall)) = (online, all_held) {
            // Read once both hold: a reconnection with nothing new is done
            // when every node is online, whatever was held before.
            let phase = Phase {
                wall,
                server_cpu: cpu_seconds(server.pid) - server_cpu,
                agents_cpu: agents.cpu_seconds(),
            };
            return (phase, online);
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{held}/{} nodes hold {filter}",
            agents.count
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn inventory_benchmark(
    http: &reqwest::Client,
    server: &Server,
    agents: &mut Agents,
    items: usize,
    changed: usize,
) -> (Inventory, Inventory, Inventory) {
    let last = format!("pkg-{items:04}");
    // Full set: every agent's file is new to the server.
    agents.stop();
    wait_online(http, server, 0, Instant::now()).await;
    let mut bytes = 0;
    let mut sets = Vec::new();
    for i in 0..agents.count {
        let set = package_set(i, items, 0);
        write_packages(&agents.custom_dir(i), &set);
        bytes += frame_bytes(None, &set);
        sets.push(set);
    }
    let (phase, online) =
        inventory_phase(http, server, agents, &format!("name={last},version<2")).await;
    let full = Inventory {
        phase,
        online,
        bytes,
        items_sent: items * agents.count,
    };
    eprintln!("full inventory held in {:.2} s", phase.wall.as_secs_f64());
    let counted = Instant::now();
    let all = get(http, server, &format!("/v1/inventory?type={KIND}")).await;
    let held = all["matches"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(held, items * agents.count, "items held");
    eprintln!(
        "counted {held} items through GET /v1/inventory in {:.2} s",
        counted.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Nothing changed: what reconnecting alone costs (every kind is sent
    // again after a Welcome, as empty deltas).
    agents.stop();
    wait_online(http, server, 0, Instant::now()).await;
    let bytes = sets.iter().map(|set| frame_bytes(Some(set), set)).sum();
    let (phase, online) =
        inventory_phase(http, server, agents, &format!("name={last},version<2")).await;
    eprintln!(
        "restart, nothing changed, online in {:.2} s",
        online.as_secs_f64()
    );
    let unchanged = Inventory {
        phase,
        online,
        bytes,
        items_sent: 0,
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Delta: the last `changed` items get a new version on every agent.
    agents.stop();
    wait_online(http, server, 0, Instant::now()).await;
    let mut bytes = 0;
    for (i, old) in sets.iter().enumerate() {
        let set = package_set(i, items, changed);
        write_packages(&agents.custom_dir(i), &set);
        bytes += frame_bytes(Some(old), &set);
    }
    let (phase, online) =
        inventory_phase(http, server, agents, &format!("name={last},version>=2")).await;
    eprintln!("delta held in {:.2} s", phase.wall.as_secs_f64());
    let delta = Inventory {
        phase,
        online,
        bytes,
        items_sent: changed * agents.count,
    };
    (full, unchanged, delta)
}

fn print_report(
    agents: usize,
    files: usize,
    online: Duration,
    apply: (Phase, Phase),
    inventory: (Inventory, Inventory, Inventory),
) {
    println!(
        "\nState Manager, {agents} agents (enrolled and online in {:.2} s)",
        online.as_secs_f64()
    );
    println!("\nassociation of {files} file resources, max concurrency 100%");
    println!(
        "| {:<34} | {:>8} | {:>12} | {:>12} | {:>12} |",
        "phase", "wall s", "resources/s", "server CPU s", "agents CPU s"
    );
    println!(
        "| {:-<34} | {:->8} | {:->12} | {:->12} | {:->12} |",
        "", "", "", "", ""
    );
    let resources = (agents * files) as f64;
    for (label, phase) in [
        ("first apply (all changed)", apply.0),
        ("second apply (all unchanged)", apply.1),
    ] {
        println!(
            "| {:<34} | {:>8.2} | {:>12.0} | {:>12.2} | {:>12.2} |",
            label,
            phase.wall.as_secs_f64(),
            resources / phase.wall.as_secs_f64(),
            phase.server_cpu,
            phase.agents_cpu
        );
    }
    let (full, unchanged, delta) = inventory;
    println!("\ninventory kind {KIND}, agents restarted (already enrolled)");
    println!(
        "| {:<34} | {:>8} | {:>9} | {:>12} | {:>12} | {:>12} |",
        "phase", "items", "online s", "all held s", "bytes sent", "server CPU s"
    );
    println!(
        "| {:-<34} | {:->8} | {:->9} | {:->12} | {:->12} | {:->12} |",
        "", "", "", "", "", ""
    );
    for (label, inv) in [
        ("full set (every item new)", &full),
        ("nothing changed (reconnect only)", &unchanged),
        ("delta (items changed)", &delta),
    ] {
        println!(
            "| {:<34} | {:>8} | {:>9.2} | {:>12.2} | {:>12} | {:>12.2} |",
            label,
            inv.items_sent,
            inv.online.as_secs_f64(),
            inv.phase.wall.as_secs_f64(),
            inv.bytes,
            inv.phase.server_cpu
        );
    }
    println!(
        "full/delta bytes: {:.0}x ({:.0} bytes per agent full, {:.0} delta)",
        full.bytes as f64 / delta.bytes.max(1) as f64,
        full.bytes as f64 / agents as f64,
        delta.bytes as f64 / agents as f64
    );
}

fn main() {
    // reqwest is built with rustls without a provider: install ring, as the binary does.
    operon_agent::tls::install_default_provider();
    let agent_count = env_or("STATE_AGENTS", 200) as usize;
    let files = env_or("STATE_FILES", 50) as usize;
    let items = env_or("STATE_ITEMS", 1000).max(1) as usize;
    let changed = (env_or("STATE_CHANGED", 10) as usize).min(items);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut children = Killed(Vec::new());
    let server = start_server(dir.path(), &mut children);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let http = reqwest::Client::new();
    let enroll = cli(
        &server,
        &[
            "enroll-tokens",
            "create",
            "--uses",
            &agent_count.to_string(),
            "--json",
        ],
    );
    let mut agents = Agents {
        dir: dir.path().join("agents"),
        count: agent_count,
        enroll_token: enroll["token"].as_str().expect("enroll token").to_string(),
        running: Killed(Vec::new()),
    };
    let (online, apply, inventory) = runtime.block_on(async {
        let started = Instant::now();
        agents.start(&server);
        wait_online(&http, &server, agent_count, started).await;
        let online = started.elapsed();
        eprintln!(
            "{agent_count} agents online in {:.1} s",
            online.as_secs_f64()
        );
        // Let the first inventory reports (every kind, whole sets) settle.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let apply = apply_benchmark(&http, &server, &agents, files).await;
        let inventory = inventory_benchmark(&http, &server, &mut agents, items, changed).await;
        (online, apply, inventory)
    });
    agents.stop();
    print_report(agent_count, files, online, apply, inventory);
}
