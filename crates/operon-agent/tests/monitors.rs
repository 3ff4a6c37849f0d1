//! Health checks and log watchers against real sockets, processes, commands
//! and files.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use operon_agent::monitors::follow::FileFollower;
use operon_agent::monitors::lines::LineCounter;
use operon_agent::monitors::probes::{self, HttpProbe};
use operon_agent::monitors::{
    METRIC_CHECK_HEALTHY, METRIC_CHECK_LATENCY, METRIC_LOG_MATCHES, Monitors,
};
use operon_proto::{HealthCheck, LogSource, LogWatcher, MetricPoint, MonitorSet, Probe};
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A tiny HTTP server answering every request with `status` and `body`.
async fn http_responder(status: u16, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/health")
}

/// A local port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn tcp_probe_connects_or_says_why_not() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(probes::tcp("127.0.0.1", port).await, Ok(()));
    let closed = closed_port().await;
    let err = probes::tcp("127.0.0.1", closed).await.unwrap_err();
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
}

#[tokio::test]
async fn http_probe_checks_status_and_body() {
    let ok = http_responder(200, "status: all good").await;
    let teapot = http_responder(418, "short and stout").await;
    let moved = http_responder(302, "").await;
    let timeout = Duration::from_secs(5);
    let run = |url: &str, status: Option<u16>, regex: Option<&str>| {
        let probe = HttpProbe::new(url, status, regex, timeout).unwrap();
        async move { probe.run().await }
    };
    assert_eq!(run(&ok, None, None).await, Ok(()));
    assert_eq!(run(&ok, Some(200), Some("all good$")).await, Ok(()));
    let err = run(&ok, None, Some("^broken")).await.unwrap_err();
    assert!(err.contains("does not match"), "{err}");
    let err = run(&teapot, None, None).await.unwrap_err();
    assert!(err.contains("answered 418, expected 2xx or 3xx"), "{err}");
    assert_eq!(run(&teapot, Some(418), Some("stout")).await, Ok(()));
    // A redirect is an answer, not followed.
    assert_eq!(run(&moved, None, None).await, Ok(()));
    let err = run(&moved, Some(200), None).await.unwrap_err();
    assert!(err.contains("answered 302, expected 200"), "{err}");
    let closed = format!("http://127.0.0.1:{}/", closed_port().await);
    let err = run(&closed, None, None).await.unwrap_err();
    assert!(err.starts_with(&format!("GET {closed} failed")), "{err}");
    let err = HttpProbe::new(&ok, None, Some("(unclosed"), timeout).unwrap_err();
    assert!(err.contains("invalid body_regex"), "{err}");
}

#[tokio::test]
async fn process_probe_finds_a_running_process_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let sleeper = dir.path().join("opmon-sleeper");
    std::fs::copy("/bin/sleep", &sleeper).unwrap();
    assert!(probes::process("opmon-sleeper").await.is_err());
    let mut child = tokio::process::Command::new(&sleeper)
        .arg("30")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert_eq!(probes::process("opmon-sleeper").await, Ok(()));
    child.kill().await.unwrap();
    let err = probes::process("opmon-sleeper").await.unwrap_err();
    assert_eq!(err, "no process called opmon-sleeper is running");
}

#[tokio::test]
async fn systemd_probe_without_systemd_is_unhealthy_with_a_reason() {
    // This machine has no systemd as init: the unit cannot be active.
    let err = probes::systemd("operon-test-none.service")
        .await
        .unwrap_err();
    assert!(
        err.contains("operon-test-none.service") || err.contains("systemctl"),
        "{err}"
    );
}

fn current_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn command_probe_uses_the_exit_code_and_the_user() {
    let me = current_user();
    assert_eq!(probes::command("true", &me).await, Ok(()));
    let err = probes::command("exit 3", &me).await.unwrap_err();
    assert!(err.contains("3"), "{err}");
    let err = probes::command("true", "operon-no-such-user")
        .await
        .unwrap_err();
    assert!(err.contains("operon-no-such-user"), "{err}");
    if me == "root" {
        assert_eq!(
            probes::command(r#"test "$(id -un)" = nobody"#, "nobody").await,
            Ok(())
        );
    }
}

#[tokio::test]
async fn a_timed_out_command_probe_loses_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let me = current_user();
    let probe = probes::command(&script, &me);
    let timed_out = tokio::time::timeout(Duration::from_millis(500), probe).await;
    assert!(timed_out.is_err());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = async {
        while operon_agent::procfs::stat_of(pid).is_some_and(|s| s.state != 'Z') {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("the background sleep of the timed-out probe was killed");
}

fn check(name: &str, probe: Probe) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        interval_secs: 1,
        timeout_secs: 1,
        probe,
    }
}

async fn next_of(
    rx: &mut mpsc::Receiver<MetricPoint>,
    metric: &str,
    dim: &str,
    name: &str,
) -> MetricPoint {
    let wanted = async {
        loop {
            let point = rx.recv().await.expect("point channel open");
            if point.name == metric && point.dimensions.get(dim).map(String::as_str) == Some(name) {
                return point;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wanted)
        .await
        .unwrap_or_else(|_| panic!("no {metric} for {dim}={name}"))
}

#[tokio::test]
async fn monitors_run_checks_and_replace_the_set() {
    let (tx, mut rx) = mpsc::channel(256);
    let mut monitors = Monitors::new(tx, Duration::from_millis(200));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap().port();
    let down = closed_port().await;
    let up_check = check(
        "up",
        Probe::Tcp {
            host: "127.0.0.1".into(),
            port: up,
        },
    );
    monitors.apply(MonitorSet {
        checks: vec![
            up_check.clone(),
            check(
                "down",
                Probe::Tcp {
                    host: "127.0.0.1".into(),
                    port: down,
                },
            ),
            check(
                "bad",
                Probe::Http {
                    url: "http://127.0.0.1:1/".into(),
                    expect_status: None,
                    body_regex: Some("(".into()),
                },
            ),
        ],
        watchers: vec![LogWatcher {
            name: "bad-pattern".into(),
            source: LogSource::File {
                path: "/nonexistent".into(),
            },
            pattern: "[".into(),
        }],
        shipped: Vec::new(),
    });
    // Invalid patterns are skipped, the rest runs.
    assert_eq!(
        monitors.running(),
        (vec!["down".into(), "up".into()], vec![])
    );
    let healthy = next_of(&mut rx, METRIC_CHECK_HEALTHY, "check", "up").await;
    assert_eq!(healthy.value, 1.0);
    assert_eq!(healthy.unit.as_deref(), Some("Count"));
    let latency = next_of(&mut rx, METRIC_CHECK_LATENCY, "check", "up").await;
    assert_eq!(latency.unit.as_deref(), Some("Milliseconds"));
    assert!(latency.value >= 0.0 && latency.value < 1000.0);
    assert_eq!(
        next_of(&mut rx, METRIC_CHECK_HEALTHY, "check", "down")
            .await
            .value,
        0.0
    );

    // Only "up" stays: "down" stops reporting.
    monitors.apply(MonitorSet {
        checks: vec![up_check],
        watchers: vec![],
        shipped: Vec::new(),
    });
    assert_eq!(monitors.running(), (vec!["up".into()], vec![]));
    while rx.try_recv().is_ok() {}
    let mut seen_up = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(Some(point)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        assert_ne!(
            point.dimensions["check"], "down",
            "a removed check still reports"
        );
        seen_up += 1;
    }
    assert!(seen_up >= 2, "the kept check goes on ({seen_up} points)");

    monitors.apply(MonitorSet::default());
    assert_eq!(monitors.running(), (vec![], vec![]));
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn follower_starts_at_the_end_and_survives_truncation_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "CRITICAL old, before the watcher\n");
    let mut follower = FileFollower::new(&log);
    let mut counter = LineCounter::new(Regex::new("CRITICAL|OutOfMemory").unwrap());
    let mut poll = |c: &mut LineCounter| follower.poll(c).unwrap();
    assert_eq!(poll(&mut counter), 0, "old lines are not counted");
    append(&log, "ok\nCRITICAL one\nOutOfMem");
    assert_eq!(poll(&mut counter), 1, "the partial line waits");
    append(&log, "ory two\n");
    assert_eq!(poll(&mut counter), 1);
    assert_eq!(poll(&mut counter), 0);

    // Truncated (copytruncate), then written again from 0.
    std::fs::write(&log, "").unwrap();
    assert_eq!(poll(&mut counter), 0);
    append(&log, "CRITICAL after truncate\n");
    assert_eq!(poll(&mut counter), 1);

    // Rotated by rename: the end of the old file is still counted, then the
    // new file from its start.
    append(&log, "CRITICAL late in the old file\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "CRITICAL first in the new file\nfine\n");
    assert_eq!(poll(&mut counter), 2);
    append(&log, "CRITICAL again\n");
    assert_eq!(poll(&mut counter), 1);

    // Removed: nothing, then a new file is read from its start.
    std::fs::remove_file(&log).unwrap();
    assert_eq!(poll(&mut counter), 0);
    assert_eq!(poll(&mut counter), 0);
    append(&log, "CRITICAL in a fresh file\n");
    assert_eq!(poll(&mut counter), 1);
}

#[test]
fn follower_of_a_directory_reports_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut follower = FileFollower::new(dir.path());
    let mut counter = LineCounter::new(Regex::new("x").unwrap());
    let err = follower.poll(&mut counter).unwrap_err();
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn file_watcher_emits_matches_per_tick_zero_included() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "CRITICAL before\n");
    let (tx, mut rx) = mpsc::channel(256);
    let mut monitors = Monitors::new(tx, Duration::from_millis(300));
    monitors.apply(MonitorSet {
        checks: vec![],
        watchers: vec![LogWatcher {
            name: "app-errors".into(),
            source: LogSource::File {
                path: log.display().to_string(),
            },
            pattern: "CRITICAL".into(),
        }],
        shipped: Vec::new(),
    });
    let first = next_of(&mut rx, METRIC_LOG_MATCHES, "watcher", "app-errors").await;
    assert_eq!(first.value, 0.0, "lines before the watcher are not counted");
    assert_eq!(first.unit.as_deref(), Some("Count"));
    append(&log, "CRITICAL a\nCRITICAL b\ninfo\nCRITICAL c\n");
    let mut total = 0.0;
    for _ in 0..5 {
        total += next_of(&mut rx, METRIC_LOG_MATCHES, "watcher", "app-errors")
            .await
            .value;
    }
    assert_eq!(total, 3.0);
}

#[tokio::test]
async fn journal_watcher_counts_journalctl_output_and_is_silent_without_it() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for journalctl (this machine has no systemd journal to
    // write to): prints its arguments' unit and some lines, then follows.
    let fake = dir.path().join("journalctl");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"args $*\"\necho 'CRITICAL one'\necho fine\necho 'CRITICAL two'\nexec sleep 60\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let watcher = |pattern: &str| LogWatcher {
        name: "journal".into(),
        source: LogSource::Journal {
            unit: Some("app.service".into()),
        },
        pattern: pattern.into(),
    };
    let (tx, mut rx) = mpsc::channel(256);
    let mut monitors = Monitors::new(tx, Duration::from_millis(300)).with_journalctl(&fake);
    monitors.apply(MonitorSet {
        checks: vec![],
        watchers: vec![watcher("CRITICAL|--unit=app.service")],
        shipped: Vec::new(),
    });
    let mut total = 0.0;
    for _ in 0..3 {
        total += next_of(&mut rx, METRIC_LOG_MATCHES, "watcher", "journal")
            .await
            .value;
    }
    assert_eq!(
        total, 3.0,
        "two CRITICAL lines and the args line naming the unit"
    );

    let (tx, mut rx) = mpsc::channel(256);
    let mut monitors = Monitors::new(tx, Duration::from_millis(200))
        .with_journalctl(dir.path().join("no-such-journalctl"));
    monitors.apply(MonitorSet {
        checks: vec![],
        watchers: vec![watcher("x")],
        shipped: Vec::new(),
    });
    let silent = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
    assert!(silent.is_err(), "no journalctl: no datapoints, not zeros");
}

#[tokio::test]
async fn a_check_removed_from_the_set_mid_run_loses_its_command() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let (tx, _rx) = mpsc::channel(256);
    let mut monitors = Monitors::new(tx, Duration::from_secs(1));
    let slow = HealthCheck {
        name: "slow".into(),
        interval_secs: 60,
        timeout_secs: 30,
        probe: Probe::Command {
            command: format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
            run_as: current_user(),
        },
    };
    monitors.apply(MonitorSet {
        checks: vec![slow],
        watchers: vec![],
        shipped: Vec::new(),
    });
    let started = async {
        loop {
            if let Ok(text) = std::fs::read_to_string(&pidfile)
                && let Ok(pid) = text.trim().parse::<i32>()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let pid = tokio::time::timeout(Duration::from_secs(5), started)
        .await
        .expect("the check's command started");
    monitors.apply(MonitorSet::default());
    let gone = async {
        while operon_agent::procfs::stat_of(pid).is_some_and(|s| s.state != 'Z') {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("the removed check's command was killed");
}

#[tokio::test]
async fn a_process_check_reports_what_its_processes_use() {
    // A busy shell under a name of its own, twice.
    let dir = tempfile::tempdir().unwrap();
    let busy = dir.path().join("opmon-busy");
    std::fs::copy("/bin/sh", &busy).unwrap();
    let spawn = || {
        tokio::process::Command::new(&busy)
            .args(["-c", "while :; do :; done"])
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let (_a, _b) = (spawn(), spawn());
    let (tx, mut rx) = mpsc::channel(256);
    let mut monitors = Monitors::new(tx, Duration::from_millis(200));
    monitors.apply(MonitorSet {
        checks: vec![check(
            "busy",
            Probe::Process {
                name: "opmon-busy".into(),
            },
        )],
        watchers: vec![],
        shipped: Vec::new(),
    });
    let count = next_of(&mut rx, "process.count", "check", "busy").await;
    assert_eq!(count.value, 2.0);
    let rss = next_of(&mut rx, "process.rss_bytes", "check", "busy").await;
    assert!(rss.value > 100_000.0, "two shells use memory: {rss:?}");
    assert_eq!(rss.unit.as_deref(), Some("Bytes"));
    // From the second run on: two busy loops, on a machine with at least
    // one core, use more than half a core between them.
    let cpu = next_of(&mut rx, "process.cpu_percent", "check", "busy").await;
    assert!(cpu.value > 50.0, "{cpu:?}");
    assert_eq!(cpu.unit.as_deref(), Some("Percent"));
}

#[tokio::test]
async fn a_command_check_that_prints_a_number_is_a_custom_metric() {
    let (tx, mut rx) = mpsc::channel(256);
    let mut monitors = Monitors::new(tx, Duration::from_millis(200));
    let me = current_user();
    monitors.apply(MonitorSet {
        checks: vec![
            check(
                "queue-depth",
                Probe::Command {
                    command: "echo 42; echo done".into(),
                    run_as: me.clone(),
                },
            ),
            check(
                "words",
                Probe::Command {
                    command: "echo fine".into(),
                    run_as: me,
                },
            ),
        ],
        watchers: vec![],
        shipped: Vec::new(),
    });
    let value = next_of(&mut rx, "check.value", "check", "queue-depth").await;
    assert_eq!(value.value, 42.0);
    // A check printing no number reports health only.
    let healthy = next_of(&mut rx, METRIC_CHECK_HEALTHY, "check", "words").await;
    assert_eq!(healthy.value, 1.0);
    let again = next_of(&mut rx, METRIC_CHECK_HEALTHY, "check", "words").await;
    assert_eq!(again.value, 1.0);
    while let Ok(point) = rx.try_recv() {
        assert!(
            !(point.name == "check.value" && point.dimensions["check"] == "words"),
            "{point:?}"
        );
    }
}
