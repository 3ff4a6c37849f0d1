//! The console's pages with a large store: 1,000 nodes and 10,000
//! commands (each on one to three nodes, finished), seeded straight into
//! the SQLite store, then the server started in-process (release build)
//! and every page of the navigation, the first detail page each list
//! links to, and the browser terminal of one real (in-process) agent's
//! node, fetched signed in, over loopback.
//!
//! Reports per page the time to the whole answer (server-side render
//! plus a loopback round trip, well under a millisecond), the HTML size,
//! and the page's transfer: HTML plus the stylesheets and scripts it
//! references, as a browser that accepts gzip receives them.
//!
//! `cargo bench -p operon-server --bench console` (`OPERON_BENCH_ROUNDS`
//! sets the fetches per page, 30 by default).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use operon_proto::{Inventory, InvocationStatus};
use operon_store::{Command, DynStore, EnrollToken, NewNode, RunTemplate};
use reqwest::header::{ACCEPT_ENCODING, CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, SET_COOKIE};

const NODES: usize = 1_000;
const COMMANDS: usize = 10_000;

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("OPERON_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("server");
    std::fs::create_dir_all(&data_dir).expect("data directory");

    let started = Instant::now();
    let store = operon_store::SqliteStore::open_dyn(&data_dir.join(operon_server::DATABASE_FILE))
        .await
        .expect("open the store");
    let nodes = seed_nodes(&store).await;
    seed_commands(&store, &nodes).await;
    drop(store);
    eprintln!(
        "seeded {NODES} nodes and {COMMANDS} commands in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let config = operon_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), data_dir);
    let server = operon_server::start(config)
        .await
        .expect("start the server");
    let base = server.url();
    let token = server.new_admin_token.clone().expect("a new admin token");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    start_an_execution(&client, &base, &token).await;
    let _agent = start_an_agent(&server, dir.path()).await;
    let cookie = sign_in(&client, &base, &token).await;
    wait_online(&client, &base, &cookie, AGENT).await;

    let mut pages = pages_to_measure(&client, &base, &cookie).await;
    // The terminal page carries xterm.js: the heaviest transfer.
    pages.push(format!("/nodes/{AGENT}/terminal"));
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>9} {:>11}",
        "page", "p50 ms", "p95 ms", "max ms", "HTML KB", "transfer KB"
    );
    let mut slowest = (String::new(), Duration::ZERO);
    let mut heaviest = (String::new(), 0usize);
    for path in pages {
        let (times, html) = measure(&client, &base, &cookie, &path, rounds).await;
        let transfer = html.len() + assets_transfer(&client, &base, &html).await;
        let (p50, p95, max) = (
            percentile(&times, 50),
            percentile(&times, 95),
            percentile(&times, 100),
        );
        println!(
            "{:<34} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>11.1}",
            path,
            ms(p50),
            ms(p95),
            ms(max),
            html.len() as f64 / 1024.0,
            transfer as f64 / 1024.0
        );
        if p95 > slowest.1 {
            slowest = (path.clone(), p95);
        }
        if transfer > heaviest.1 {
            heaviest = (path, transfer);
        }
    }
    println!(
        "slowest page (p95): {} at {:.2} ms; heaviest transfer: {} at {:.1} KB",
        slowest.0,
        ms(slowest.1),
        heaviest.0,
        heaviest.1 as f64 / 1024.0
    );
    server.run_until(async {}).await.expect("server stopped");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`th percentile (nearest rank) of `times`, sorted.
fn percentile(times: &[Duration], p: usize) -> Duration {
    let rank = (times.len() * p).div_ceil(100).clamp(1, times.len());
    times[rank - 1]
}

async fn seed_nodes(store: &DynStore) -> Vec<String> {
    let token = EnrollToken {
        id: "et-bench".into(),
        token_hash: "bench-token-hash".into(),
        tags: BTreeMap::new(),
        uses_allowed: NODES as i64,
        uses: 0,
        expires_at: i64::MAX,
        created_at: 0,
        revoked_at: None,
    };
    store.insert_enroll_token(&token).await.expect("token");
    let mut ids = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let tags = BTreeMap::from([
            (
                "env".to_string(),
                ["prod", "stage", "dev"][i % 3].to_string(),
            ),
            (
                "role".to_string(),
                ["web", "db", "cache", "queue"][i % 4].to_string(),
            ),
            ("rack".to_string(), format!("r{}", i % 20)),
        ]);
        let node = NewNode {
            id: format!("n-{i:04}"),
            name: format!("node-{i:04}"),
            credential_hash: format!("credential-{i}"),
            requested_tags: tags,
            inventory: Inventory {
                hostname: format!("node-{i:04}.example.internal"),
                os_name: "Debian GNU/Linux".into(),
                os_version: "12".into(),
                kernel: "6.1.0-28-amd64".into(),
                arch: "x86_64".into(),
                cpus: 4,
                memory_bytes: 16 << 30,
                ip_addresses: vec![format!("10.0.{}.{}", i / 250, i % 250 + 1)],
                agent_version: "0.1.0".into(),
            },
        };
        let enrolled = store
            .enroll_node("bench-token-hash", 1_700_000_000_000, node)
            .await
            .expect("enroll")
            .expect("enrollment accepted");
        ids.push(enrolled.id);
    }
    ids
}

async fn seed_commands(store: &DynStore, nodes: &[String]) {
    let now = 1_764_000_000_000_i64;
    for i in 0..COMMANDS {
        let id = format!("c-bench-{i:05}");
        let created_at = now - (COMMANDS - i) as i64 * 60_000;
        let command = Command {
            id: id.clone(),
            document_name: "AWS-RunShellScript".into(),
            document_version: 1,
            parameters: serde_json::json!({"commands": [format!("systemctl restart app-{}", i % 7)]}),
            request: serde_json::json!({}),
            run_template: RunTemplate {
                steps: vec![],
                cwd: None,
                env: BTreeMap::new(),
                user: None,
                output_cap_bytes: 24_000,
                parameters_as: None,
            },
            max_concurrency: "50".into(),
            max_errors: "0".into(),
            timeout_secs: 600,
            delivery_timeout_secs: 600,
            status: InvocationStatus::Pending,
            created_at,
            finished_at: None,
            cancel_requested: false,
            requested_by: "admin".into(),
        };
        let targets: Vec<(String, String)> = (0..1 + i % 3)
            .map(|k| {
                let node = &nodes[(i * 7 + k * 331) % nodes.len()];
                (node.clone(), node.clone())
            })
            .collect();
        store
            .insert_command(&command, &targets)
            .await
            .expect("insert command");
        let status = if i % 10 == 0 {
            InvocationStatus::Failed
        } else {
            InvocationStatus::Success
        };
        for (node, _) in &targets {
            store
                .finish_invocation_without_result(&id, node, status, "seeded", created_at + 2_000)
                .await
                .expect("finish invocation");
        }
        store
            .set_command_status(&id, status, Some(created_at + 2_000))
            .await
            .expect("command status");
    }
}

/// One workflow and one finished execution, so the executions pages have
/// a row and a graph to draw.
async fn start_an_execution(client: &reqwest::Client, base: &str, token: &str) {
    let definition = serde_json::json!({
        "StartAt": "Fan",
        "States": {
            "Fan": {"Type": "Parallel", "Next": "Done", "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}
            ]},
            "Done": {"Type": "Pass", "End": true}
        }
    });
    let body = serde_json::json!({"name": "bench-flow", "definition": definition});
    for (path, body) in [
        ("/v1/workflows", body),
        (
            "/v1/workflows/bench-flow/executions",
            serde_json::json!({"input": {}}),
        ),
    ] {
        let answer = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("API call");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }
}

/// The node of the one real agent.
const AGENT: &str = "bench-agent";

/// Start an agent in this process; it runs until the sender is dropped.
async fn start_an_agent(
    server: &operon_server::Server,
    dir: &std::path::Path,
) -> tokio::sync::oneshot::Sender<()> {
    let enroll = server
        .create_enroll_token(BTreeMap::new(), 1, Duration::from_secs(60))
        .await
        .expect("enrollment token");
    let config = operon_agent::AgentConfig {
        server_url: server.url(),
        state_dir: dir.join(AGENT),
        enroll_token: Some(enroll),
        name: Some(AGENT.to_string()),
        tags: BTreeMap::new(),
        heartbeat_secs: None,
        server_fingerprint: None,
        tls_ca: None,
        insecure: false,
        host_root: Some(dir.join("agent-root")),
        inventory_interval: operon_agent::inventory_sets::DEFAULT_INTERVAL,
        custom_inventory_dir: dir.join("agent-inventory.d"),
        metrics_interval: Duration::ZERO,
        custom_metrics_dir: dir.join("agent-metrics.d"),
        session_create_user: false,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(operon_agent::run(config, async move {
        let _ = stopped.await;
    }));
    stop
}

/// Wait until the node's page says it is online.
async fn wait_online(client: &reqwest::Client, base: &str, cookie: &str, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = client
            .get(format!("{base}/nodes/{node}"))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("node page");
        if page.status().is_success()
            && page
                .text()
                .await
                .unwrap_or_default()
                .contains("status-online\"")
        {
            return;
        }
        assert!(Instant::now() < deadline, "{node} did not come online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `name=value` of cookie `name` set by `headers`.
fn set_cookie(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_string()
}

/// Sign in through the form; answers the session's `Cookie` header.
async fn sign_in(client: &reqwest::Client, base: &str, token: &str) -> String {
    let form = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page");
    let login_cookie = set_cookie(form.headers(), "operon_console_login");
    let body = form.text().await.expect("login page body");
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).expect("csrf field") + marker.len();
    let csrf = &body[start..start + body[start..].find('"').expect("end of csrf")];
    let answer = client
        .post(format!("{base}/login"))
        .header(COOKIE, login_cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}&csrf={csrf}"))
        .send()
        .await
        .expect("sign in");
    assert_eq!(answer.headers()[LOCATION], "/nodes", "signed in");
    set_cookie(answer.headers(), "operon_console")
}

async fn fetch(client: &reqwest::Client, base: &str, cookie: &str, path: &str) -> String {
    let answer = client
        .get(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("page");
    let status = answer.status();
    let body = answer.text().await.expect("page body");
    assert!(status.is_success(), "{path} answered {status}");
    body
}

/// Every navigation entry, and the first link each of those pages has to
/// a page below its own (a node, a command, an execution, ...).
async fn pages_to_measure(client: &reqwest::Client, base: &str, cookie: &str) -> Vec<String> {
    let fleet = fetch(client, base, cookie, "/nodes").await;
    let nav = &fleet[fleet.find("<nav").expect("navigation")..];
    let nav = &nav[..nav.find("</nav>").expect("end of navigation")];
    let sections: Vec<String> = links(nav).collect();
    let mut pages = BTreeSet::new();
    for section in &sections {
        pages.insert(section.clone());
        let body = fetch(client, base, cookie, section).await;
        let main = &body[body.find("<main").unwrap_or(0)..];
        let below = format!("{section}/");
        if let Some(detail) = links(main).find(|l| l.starts_with(&below) && !l.contains('?')) {
            pages.insert(detail);
        }
    }
    pages.into_iter().collect()
}

/// The `href="/..."` targets of `html`, in order (entities left as they are).
fn links(html: &str) -> impl Iterator<Item = String> + '_ {
    html.split("href=\"/").skip(1).filter_map(|rest| {
        let end = rest.find('"')?;
        Some(format!("/{}", &rest[..end]))
    })
}

async fn measure(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
    rounds: usize,
) -> (Vec<Duration>, String) {
    for _ in 0..3 {
        fetch(client, base, cookie, path).await;
    }
    let mut times = Vec::with_capacity(rounds);
    let mut html = String::new();
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        html = fetch(client, base, cookie, path).await;
        times.push(started.elapsed());
    }
    times.sort();
    (times, html)
}

/// Bytes a browser accepting gzip receives for the stylesheets and
/// scripts `html` references.
async fn assets_transfer(client: &reqwest::Client, base: &str, html: &str) -> usize {
    let mut total = 0;
    for asset in links(html)
        .chain(html.split("src=\"/").skip(1).filter_map(|rest| {
            let end = rest.find('"')?;
            Some(format!("/{}", &rest[..end]))
        }))
        .filter(|l| l.starts_with("/assets/"))
        .collect::<BTreeSet<_>>()
    {
        let answer = client
            .get(format!("{base}{asset}"))
            .header(ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .expect("asset");
        assert!(answer.status().is_success(), "{asset}");
        total += answer.bytes().await.expect("asset body").len();
    }
    total
}
