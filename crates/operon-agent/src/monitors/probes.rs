//! The probes of health checks: each looks once and says healthy (`Ok`) or
//! not (`Err` with the reason, for the agent's log).
//!
//! Probes do not time themselves out: the check runner bounds each with its
//! `timeout_secs` and drops it when late. The only probe that leaves
//! something behind when dropped, the command, kills its process group then
//! ([`GroupGuard`]).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use regex::Regex;
use tokio::process::Command;

use crate::enroll::error_chain;
use crate::procfs;
use crate::runner::{base_environment, resolve_user};
use crate::sys::{self, ChildSetup};

/// Bytes of an HTTP body read for `body_regex`; the rest is not looked at.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a probe found wrong.
pub type ProbeResult = Result<(), String>;

/// Healthy when `systemctl is-active UNIT` prints `active`.
pub async fn systemd(unit: &str) -> ProbeResult {
    let output = Command::new("systemctl")
        .args(["is-active", "--"])
        .arg(unit)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|err| format!("cannot run systemctl (is this a systemd host?): {err}"))?;
    let state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if state == "active" {
        Ok(())
    } else {
        Err(format!("unit {unit} is {}", or_unknown(&state)))
    }
}

fn or_unknown(state: &str) -> &str {
    if state.is_empty() { "unknown" } else { state }
}

/// Whether a process with this `comm` and `cmdline` (NUL-separated
/// arguments, as in `/proc/PID/cmdline`) is called `name`: its `comm` equals
/// it, or its first argument's file name does (`comm` is cut to 15 bytes by
/// the kernel, and interpreters show as `python3`, so both are looked at).
pub fn process_matches(name: &str, comm: &[u8], cmdline: &[u8]) -> bool {
    if name.is_empty() {
        return false;
    }
    let comm = comm.strip_suffix(b"\n").unwrap_or(comm);
    if comm == name.as_bytes() {
        return true;
    }
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    Path::new(OsStr::from_bytes(argv0))
        .file_name()
        .is_some_and(|file| file.as_bytes() == name.as_bytes())
}

/// Healthy when a process called `name` runs (see [`process_matches`]).
pub async fn process(name: &str) -> ProbeResult {
    let wanted = name.to_owned();
    let found = tokio::task::spawn_blocking(move || find_process(&wanted))
        .await
        .map_err(|err| format!("process scan failed: {err}"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(format!("no process called {name} is running")),
    }
}

/// The pid of a live process called `name`, scanning `/proc`.
pub fn find_process(name: &str) -> Option<i32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            // A process that exited during the scan has no files: skipped.
            let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let alive = procfs::stat_of(*pid).is_some_and(|s| s.state != 'Z' && s.state != 'X');
            alive && process_matches(name, &comm, &cmdline)
        })
}

/// What the processes called `name` use, summed over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessUsage {
    pub count: u64,
    /// User and kernel CPU time, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_pages: u64,
}

/// Scan `/proc` for every live process called `name`.
pub fn process_usage(name: &str) -> ProcessUsage {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return ProcessUsage::default();
    };
    let mut usage = ProcessUsage::default();
    for pid in dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Some(stat) = procfs::stat_of(pid).filter(|s| s.state != 'Z' && s.state != 'X') else {
            continue;
        };
        let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if process_matches(name, &comm, &cmdline) {
            usage.count += 1;
            usage.cpu_ticks += stat.cpu_ticks;
            usage.rss_pages += stat.rss_pages;
        }
    }
    usage
}

/// CPU use between two scans in percent of one core: `None` when there is
/// no earlier scan, no time passed, or the total went down (a process
/// exited or restarted, so the difference means nothing).
pub fn cpu_percent(
    before: u64,
    after: u64,
    elapsed_secs: f64,
    ticks_per_second: u64,
) -> Option<f64> {
    if elapsed_secs <= 0.0 || after < before || ticks_per_second == 0 {
        return None;
    }
    Some((after - before) as f64 / ticks_per_second as f64 / elapsed_secs * 100.0)
}

/// Healthy when a TCP connection to `host:port` opens.
pub async fn tcp(host: &str, port: u16) -> ProbeResult {
    tokio::net::TcpStream::connect((host, port))
        .await
        .map(drop)
        .map_err(|err| format!("cannot connect to {host}:{port}: {err}"))
}

/// A compiled HTTP probe.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub url: String,
    pub expect_status: Option<u16>,
    pub body_regex: Option<Regex>,
    client: reqwest::Client,
}

impl HttpProbe {
    /// Build the client (system roots for `https`, no redirects followed: a
    /// 3xx is an answer) and compile the body pattern.
    pub fn new(
        url: &str,
        expect_status: Option<u16>,
        body_regex: Option<&str>,
        timeout: Duration,
    ) -> Result<HttpProbe, String> {
        let body_regex = body_regex
            .map(Regex::new)
            .transpose()
            .map_err(|err| format!("invalid body_regex: {err}"))?;
        let tls = crate::tls::client_config(&crate::tls::TlsTrust::default())
            .map_err(|err| format!("cannot set up TLS: {err}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured((*tls).clone())
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(HttpProbe {
            url: url.to_owned(),
            expect_status,
            body_regex,
            client,
        })
    }

    pub async fn run(&self) -> ProbeResult {
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|err| format!("GET {} failed: {}", self.url, error_chain(&err)))?;
        let status = response.status().as_u16();
        if !status_ok(status, self.expect_status) {
            let wanted = self
                .expect_status
                .map_or("2xx or 3xx".to_owned(), |s| s.to_string());
            return Err(format!(
                "GET {} answered {status}, expected {wanted}",
                self.url
            ));
        }
        let Some(pattern) = &self.body_regex else {
            return Ok(());
        };
        let mut body = Vec::new();
        while body.len() < MAX_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(err) => return Err(format!("reading the body of {} failed: {err}", self.url)),
            }
        }
        body.truncate(MAX_BODY_BYTES);
        if pattern.is_match(&String::from_utf8_lossy(&body)) {
            Ok(())
        } else {
            Err(format!("the body of {} does not match {pattern}", self.url))
        }
    }
}

/// `expect_status` exactly, or any 2xx/3xx when none is expected.
pub fn status_ok(status: u16, expect: Option<u16>) -> bool {
    match expect {
        Some(expected) => status == expected,
        None => (200..400).contains(&status),
    }
}

/// Kills the command's process group if the probe is dropped (timed out or
/// stopped) before the command exited. Declared after the child, so it is
/// dropped first: the shell is not reaped yet and its group id cannot have
/// been handed to another group. SIGKILL at once, synchronously: a check has
/// nothing to save, and a drop may happen while the runtime shuts down.
struct GroupGuard {
    pgid: i32,
    exited: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.exited {
            let _ = sys::signal_group(self.pgid, sys::SIGKILL);
        }
    }
}

/// Healthy when `/bin/sh -c COMMAND`, run as `run_as` in its own session,
/// exits 0. Its output is discarded; it starts in `/` with the same clean
/// environment as a command step for that user. Dropped before it exits
/// (the timeout), its whole process group is killed; processes it leaves
/// running in the background after a normal exit are its own business (its
/// group id may already name another group by then).
pub async fn command(script: &str, run_as: &str) -> ProbeResult {
    command_measured(script, run_as).await.0
}

/// The most of a command check's output read for its value.
const VALUE_OUTPUT_LIMIT: u64 = 4096;

/// The value a command check printed: its output's first line, when that
/// is a finite number (`42`, `0.75`, `-3`), else `None`.
pub fn printed_value(output: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(output).ok()?;
    let first = text.lines().next()?.trim();
    first.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// [`command`], with the value it printed ([`printed_value`]): a command
/// check is also a custom metric (`check.value`).
pub async fn command_measured(script: &str, run_as: &str) -> (ProbeResult, Option<f64>) {
    match run_command(script, run_as).await {
        Ok((result, output)) => (result, printed_value(&output)),
        Err(err) => (Err(err), None),
    }
}

async fn run_command(script: &str, run_as: &str) -> Result<(ProbeResult, Vec<u8>), String> {
    use tokio::io::AsyncReadExt;
    let user = resolve_user(Some(run_as))?.ok_or_else(|| format!("no user {run_as}"))?;
    let switches_user = user.uid != sys::effective_uid();
    let env = base_environment(std::env::vars_os(), Some(&user), switches_user);
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_clear()
        .envs(env);
    ChildSetup {
        switch_to: switches_user.then_some(user),
        controlling_terminal: false,
    }
    .apply(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|err| format!("the command could not start: {err}"))?;
    let pgid = child
        .id()
        .map(|pid| pid as i32)
        .ok_or("the command exited before it could be observed")?;
    let mut guard = GroupGuard {
        pgid,
        exited: false,
    };
    // Read (a bounded amount) while waiting, so a chatty command never
    // blocks on a full pipe.
    let stdout = child.stdout.take();
    let read = async {
        let mut output = Vec::new();
        if let Some(stdout) = stdout {
            let _ = stdout
                .take(VALUE_OUTPUT_LIMIT)
                .read_to_end(&mut output)
                .await;
        }
        output
    };
    let (output, status) = tokio::join!(read, child.wait());
    guard.exited = true;
    let result = match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("the command ended with {status}")),
        Err(err) => Err(format!("waiting for the command failed: {err}")),
    };
    Ok((result, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_value_is_the_first_line_when_it_is_a_number() {
        assert_eq!(printed_value(b"42\n"), Some(42.0));
        assert_eq!(printed_value(b" 0.75 \nmore"), Some(0.75));
        assert_eq!(printed_value(b"-3"), Some(-3.0));
        assert_eq!(printed_value(b"ok\n12"), None);
        assert_eq!(printed_value(b"NaN"), None);
        assert_eq!(printed_value(b"inf"), None);
        assert_eq!(printed_value(b""), None);
        assert_eq!(printed_value(&[0xff, 0xfe]), None);
    }

    #[test]
    fn cpu_percent_of_one_core() {
        assert_eq!(cpu_percent(100, 150, 1.0, 100), Some(50.0));
        assert_eq!(
            cpu_percent(100, 500, 2.0, 100),
            Some(200.0),
            "two cores busy"
        );
        assert_eq!(cpu_percent(150, 100, 1.0, 100), None, "a process exited");
        assert_eq!(cpu_percent(100, 150, 0.0, 100), None);
    }

    #[test]
    fn this_process_uses_memory_and_is_counted() {
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let usage = process_usage(comm.trim());
        assert!(usage.count >= 1, "{usage:?}");
        assert!(usage.rss_pages > 0, "{usage:?}");
    }

    #[test]
    fn process_names_match_comm_or_first_argument() {
        let table: &[(&str, &[u8], &[u8], bool)] = &[
            ("nginx", b"nginx\n", b"nginx: master process\0", true),
            ("nginx", b"nginx", b"", true),
            (
                "myapp",
                b"python3\n",
                b"/opt/app/myapp\0--port\08080\0",
                true,
            ),
            ("python3", b"python3\n", b"/usr/bin/python3\0app.py\0", true),
            ("app.py", b"python3\n", b"/usr/bin/python3\0app.py\0", false),
            (
                "nginx",
                b"nginx-helper\n",
                b"/usr/sbin/nginx-helper\0",
                false,
            ),
            ("ngin", b"nginx\n", b"/usr/sbin/nginx\0", false),
            ("", b"\n", b"\0", false),
            (
                "long-service-name",
                b"long-service-na\n",
                b"/usr/bin/long-service-name\0",
                true,
            ),
            ("long-service-name", b"long-service-na\n", b"", false),
            ("sh", b"bash\n", b"sh\0-c\0x\0", true),
        ];
        for (name, comm, cmdline, expected) in table {
            assert_eq!(
                process_matches(name, comm, cmdline),
                *expected,
                "{name} vs comm {:?} cmdline {:?}",
                String::from_utf8_lossy(comm),
                String::from_utf8_lossy(cmdline)
            );
        }
    }

    #[test]
    fn statuses() {
        let table = [
            (200, None, true),
            (204, None, true),
            (302, None, true),
            (399, None, true),
            (404, None, false),
            (500, None, false),
            (199, None, false),
            (503, Some(503), true),
            (200, Some(204), false),
        ];
        for (status, expect, ok) in table {
            assert_eq!(status_ok(status, expect), ok, "{status} {expect:?}");
        }
    }
}
