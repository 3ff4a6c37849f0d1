//! Fleet benchmark (not a test): 200 real agent processes on loopback.
//!
//! Measures, with the release binary:
//! - time from `operon run --targets all -- true` to every node complete
//!   (median of several runs, with the default max-concurrency 50 and with 100%);
//! - idle agent memory (RSS) and idle CPU of agents and server.
//!
//! Run: `cargo bench -p operon --bench fleet` (env FLEET_AGENTS, FLEET_RUNS,
//! FLEET_IDLE_SECS override the defaults 200, 5, 30).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn operon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_operon"))
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn cli(url: &str, token: &str, args: &[&str]) -> std::process::Output {
    operon()
        .args(args)
        .env("OPERON_SERVER", url)
        .env("OPERON_TOKEN", token)
        .output()
        .expect("run operon")
}

/// (RSS KiB, utime+stime ticks) of a process.
fn proc_stats(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    (rss, ticks)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let agents = env_or("FLEET_AGENTS", 200) as usize;
    let runs = env_or("FLEET_RUNS", 5) as usize;
    let idle_secs = env_or("FLEET_IDLE_SECS", 30);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut children = Killed(Vec::new());

    let mut server = operon()
        .args(["server", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("server"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stdout = server.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("server output").expect("read");
        if let Some(url) = line.strip_prefix("operon server listening on ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let server_pid = server.id();
    children.0.push(server);
    let token = std::fs::read_to_string(dir.path().join("server/admin-token"))
        .unwrap()
        .trim()
        .to_string();

    let created = cli(
        &url,
        &token,
        &[
            "enroll-tokens",
            "create",
            "--uses",
            &agents.to_string(),
            "--json",
        ],
    );
    let enroll: serde_json::Value = serde_json::from_slice(&created.stdout).expect("token json");
    let enroll = enroll["token"].as_str().unwrap().to_string();

    let started = Instant::now();
    let mut agent_pids = Vec::new();
    for i in 0..agents {
        let child = operon()
            .args([
                "agent",
                "--server",
                &url,
                "--enroll-token",
                &enroll,
                "--name",
                &format!("bench-{i}"),
            ])
            .arg("--state-dir")
            .arg(dir.path().join(format!("agent-{i}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent");
        agent_pids.push(child.id());
        children.0.push(child);
    }
    loop {
        let out = cli(&url, &token, &["nodes", "list", "--json"]);
        let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let online = nodes
            .as_array()
            .map(|a| a.iter().filter(|n| n["status"] == "online").count())
            .unwrap_or(0);
        if online == agents {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {online}/{agents} online after 300 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    println!(
        "{agents} agents enrolled and online in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    for concurrency in ["50", "100%"] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let out = cli(
                &url,
                &token,
                &[
                    "run",
                    "--targets",
                    "all",
                    "--max-concurrency",
                    concurrency,
                    "--json",
                    "--",
                    "true",
                ],
            );
            let elapsed = t.elapsed().as_secs_f64();
            let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("run json");
            assert_eq!(
                record["status"],
                "Success",
                "run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(record["target_count"], agents as u64);
            times.push(elapsed);
        }
        println!(
            "run `true` on {agents} agents, max-concurrency {concurrency}: median {:.3} s (runs: {})",
            median(times.clone()),
            times
                .iter()
                .map(|t| format!("{t:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    std::thread::sleep(Duration::from_secs(5));
    let before: Vec<(u64, u64)> = agent_pids.iter().map(|p| proc_stats(*p)).collect();
    let server_before = proc_stats(server_pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let after: Vec<(u64, u64)> = agent_pids.iter().map(|p| proc_stats(*p)).collect();
    let server_after = proc_stats(server_pid);
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_pct =
        |b: u64, a: u64| (a.saturating_sub(b)) as f64 / ticks_per_sec / idle_secs as f64 * 100.0;
    let rss: Vec<f64> = after.iter().map(|(r, _)| *r as f64 / 1024.0).collect();
    let cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| cpu_pct(b.1, a.1))
        .collect();
    println!(
        "idle agent RSS: median {:.1} MiB, max {:.1} MiB",
        median(rss.clone()),
        rss.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "idle agent CPU over {idle_secs} s: median {:.3} %, all {agents} agents together {:.2} % of one core",
        median(cpu.clone()),
        cpu.iter().sum::<f64>()
    );
    println!(
        "idle server: RSS {:.1} MiB, CPU {:.2} % of one core",
        server_after.0 as f64 / 1024.0,
        cpu_pct(server_before.1, server_after.1)
    );
}
