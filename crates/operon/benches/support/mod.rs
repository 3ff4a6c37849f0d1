//! What the benchmarks that start the real binary share: children killed
//! however a run ends, a process's CPU time, a release server.

// Each benchmark uses its own part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn operon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_operon"))
}

/// A server's base URL, admin token and process id.
pub struct Server {
    pub url: String,
    pub admin_token: String,
    pub pid: u32,
}

/// Start `operon server` on a free loopback port with its data in
/// `dir/server`; killed with `children`.
pub fn start_server(dir: &Path, children: &mut Killed) -> Server {
    let mut server = operon()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("server"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn operon server");
    let pid = server.id();
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
    Server {
        url,
        admin_token,
        pid,
    }
}

/// Children killed and reaped however the benchmark ends.
pub struct Killed(pub Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user + system) a process used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
}
