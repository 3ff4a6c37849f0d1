//! End to end, issue 14's seed scenario with the real binary: a small
//! application on a node starts writing CRITICAL to its log; the agent's
//! log watcher counts it, the alarm goes to ALARM, the heal starts the
//! shipped restart runbook (examples/heal) through Run Command, the errors
//! stop, the alarm returns to OK and the incident is confirmed with its
//! timeline. Then a restart that does not help: the heal tries up to its
//! limit, the server is killed (-9) in the middle of an attempt and comes
//! back, and the heal escalates once to a webhook, no attempt run twice.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// One log line every 0.2 s; CRITICAL while broken (after SIGUSR1, or from
/// the start when `always-broken` exists).
const APP: &str = r#"dir="$1"
echo $$ > "$dir/app.pid"
broken=0
[ -e "$dir/always-broken" ] && broken=1
trap 'broken=1' USR1
while :; do
  if [ "$broken" = 1 ]; then echo "$(date +%s) CRITICAL payment queue stuck" >> "$dir/app.log"
  else echo "$(date +%s) INFO served" >> "$dir/app.log"; fi
  sleep 0.2
done
"#;

/// What the restart runbook's `restartCommand` runs: stop it, start it anew
/// in its own session (outliving the command).
const RESTART: &str = r#"dir="$1"
kill "$(cat "$dir/app.pid")" 2>/dev/null
setsid sh "$dir/app.sh" "$dir" </dev/null >/dev/null 2>&1 &
sleep 0.5
"#;

struct App {
    dir: PathBuf,
}

impl App {
    fn start(dir: &Path) -> App {
        std::fs::write(dir.join("app.sh"), APP).unwrap();
        std::fs::write(dir.join("restart.sh"), RESTART).unwrap();
        let status = Command::new("sh")
            .arg(dir.join("restart.sh"))
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success());
        let app = App {
            dir: dir.to_path_buf(),
        };
        wait_for("the app to run", Duration::from_secs(10), || app.pid());
        app
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("app.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().unwrap().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

fn ok(server: &ServerProcess, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "operon {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server, one agent sampling every second, the shipped runbook, a
/// log watcher on the app's log and an alarm on its matches.
fn setup(dir: &Path, port: u16) -> (ServerProcess, AgentProcess) {
    let server = ServerProcess::start(&dir.join("server"), port);
    let token = server.enroll_token(&["role=app"], 1, "10m");
    let agent = AgentProcess::start_with_args(
        &server,
        &token,
        &dir.join("agent"),
        "app-1",
        &["role=app"],
        &["--metrics-interval-secs", "1"],
    );
    server.wait_online(&["app-1"]);
    // The shipped runbook (examples/heal, built into the binary).
    let installed = ok(&server, &["heal", "install-runbook"]);
    assert!(installed.contains("runbook restart-service"), "{installed}");
    let log = dir.join("app/app.log");
    ok(
        &server,
        &[
            "log-watchers",
            "put",
            "app-errors",
            "--targets",
            "tag:role=app",
            "--file",
            log.to_str().unwrap(),
            "--pattern",
            "CRITICAL|OutOfMemory",
        ],
    );
    ok(
        &server,
        &[
            "alarms",
            "put",
            "app-errors-app",
            "--metric",
            "log.matches",
            "--dim",
            "watcher=app-errors",
            "--statistic",
            "Sum",
            "--period",
            "2",
            "--evaluation-periods",
            "2",
            "--datapoints-to-alarm",
            "1",
            "--threshold",
            "0",
            "--treat-missing-data",
            "notBreaching",
            "--targets",
            "tag:role=app",
        ],
    );
    (server, agent)
}

fn alarm_state(server: &ServerProcess) -> String {
    let alarm = server.cli_json(&["alarms", "describe", "app-errors-app"]);
    alarm["state"].as_str().unwrap_or_default().to_string()
}

fn wait_alarm(server: &ServerProcess, state: &str, timeout: Duration) {
    wait_for(&format!("the alarm in {state}"), timeout, || {
        (alarm_state(server) == state).then_some(())
    });
}

fn the_incident(server: &ServerProcess) -> Value {
    let id = wait_for("an incident", Duration::from_secs(30), || {
        let list = server.cli_json(&["incidents", "list", "--alarm", "app-errors-app"]);
        list.as_array()?.first()?["id"].as_str().map(str::to_string)
    });
    server.cli_json(&["incidents", "show", &id])
}

#[test]
fn a_critical_error_is_healed_confirmed_and_written_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    let app = App::start(&dir.path().join("app"));
    let (server, _agent) = setup(dir.path(), free_port());
    let restart = format!(
        "restartCommand=sh {0}/restart.sh {0}",
        dir.path().join("app").display()
    );
    ok(
        &server,
        &[
            "heal",
            "create",
            "restart-app",
            "--alarm",
            "app-errors-*",
            "--workflow",
            "restart-service",
            "--param",
            "service=app",
            "--param",
            &restart,
            "--param",
            "settleSeconds=1",
            "--confirm-within",
            "60s",
            "--max-runs",
            "3/1h",
        ],
    );
    wait_alarm(&server, "OK", Duration::from_secs(30));

    let before = app.pid().unwrap();
    app.signal("-USR1");
    wait_alarm(&server, "ALARM", Duration::from_secs(30));
    let incident = the_incident(&server);
    let id = incident["id"].as_str().unwrap().to_string();
    let confirmed = wait_for("the heal confirmed", Duration::from_secs(90), || {
        let detail = server.cli_json(&["incidents", "show", &id]);
        (detail["heal_runs"][0]["status"] == "confirmed").then_some(detail)
    });
    assert_eq!(alarm_state(&server), "OK");
    assert_ne!(app.pid().unwrap(), before, "the app was restarted");
    assert_eq!(confirmed["status"], "recovered");
    assert_eq!(confirmed["heal_runs"].as_array().unwrap().len(), 1);
    let kinds: Vec<&str> = confirmed["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "detected",
            "heal_started",
            "heal_finished",
            "recovered",
            "confirmed"
        ],
        "{confirmed}"
    );

    // The write-up, and the data behind it.
    let report = ok(&server, &["incidents", "show", &id, "--format", "markdown"]);
    assert!(
        report.starts_with(&format!("# Incident {id}: app-errors-app on app-1")),
        "{report}"
    );
    assert!(report.contains("| confirmed |"), "{report}");
    let matches = server.cli_json(&[
        "metrics",
        "query",
        "--metric",
        "log.matches",
        "--dim",
        "watcher=app-errors",
        "--stat",
        "sum",
        "--since",
        "10m",
    ]);
    let text = matches.to_string();
    assert!(text.contains("app-1") || text.contains("series"), "{text}");
    // For people: tables.
    let alarms = ok(&server, &["alarms", "list"]);
    assert!(
        alarms.contains("app-errors-app") && alarms.contains("OK"),
        "{alarms}"
    );
    let heal = ok(&server, &["heal", "describe", "restart-app"]);
    assert!(heal.contains(&id) && heal.contains("confirmed"), "{heal}");
    let incidents = ok(&server, &["incidents", "list"]);
    assert!(
        incidents.contains(&id) && incidents.contains("recovered"),
        "{incidents}"
    );
    let shown = ok(&server, &["incidents", "show", &id]);
    assert!(shown.contains("heal_started"), "{shown}");
    let history = server.cli_json(&["alarms", "history", "app-errors-app"]);
    let states: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(&states[..2], ["OK", "ALARM"], "newest first: {history}");
}

/// A webhook receiver on loopback: each POST body, parsed.
fn webhook() -> (u16, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, rx)
}

#[test]
fn a_restart_that_does_not_help_is_retried_to_the_limit_across_a_crash_then_escalated_once() {
    let dir = tempfile::tempdir().unwrap();
    let app_dir = dir.path().join("app");
    std::fs::create_dir(&app_dir).unwrap();
    std::fs::write(app_dir.join("always-broken"), "").unwrap();
    let _app = App::start(&app_dir);
    let port = free_port();
    let (mut server, _agent) = setup(dir.path(), port);
    let (hook_port, pages) = webhook();
    let restart = format!("restartCommand=sh {0}/restart.sh {0}", app_dir.display());
    ok(
        &server,
        &[
            "heal",
            "create",
            "restart-app",
            "--alarm",
            "app-errors-*",
            "--workflow",
            "restart-service",
            "--param",
            "service=app",
            "--param",
            &restart,
            "--param",
            "settleSeconds=1",
            "--confirm-within",
            "8s",
            "--max-runs",
            "2/1h",
            "--escalate",
            &format!("webhook:http://127.0.0.1:{hook_port}/page"),
        ],
    );
    wait_alarm(&server, "ALARM", Duration::from_secs(30));
    let id = the_incident(&server)["id"].as_str().unwrap().to_string();

    // Kill the server while the first attempt waits for its confirmation.
    wait_for("the first attempt started", Duration::from_secs(60), || {
        let detail = server.cli_json(&["incidents", "show", &id]);
        let status = detail["heal_runs"][0]["status"]
            .as_str()
            .map(str::to_string)?;
        ["running", "confirming"]
            .contains(&status.as_str())
            .then_some(())
    });
    server.kill();
    server = ServerProcess::start(&dir.path().join("server"), port);
    server.wait_online(&["app-1"]);

    let detail = wait_for("the escalation", Duration::from_secs(120), || {
        let detail = server.cli_json(&["incidents", "show", &id]);
        detail["escalated_at"].is_number().then_some(detail)
    });
    let runs = detail["heal_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{detail}");
    assert!(runs.iter().all(|r| r["status"] == "failed"), "{detail}");
    let page = pages
        .recv_timeout(Duration::from_secs(20))
        .expect("the webhook was called");
    assert_eq!(page["detail-type"], "Heal Escalated");
    assert_eq!(page["incident"]["id"], id.as_str());

    // No attempt ran twice: one execution per attempt, across the crash.
    let executions = server.cli_json(&["executions", "list", "--workflow", "restart-service"]);
    assert_eq!(executions.as_array().unwrap().len(), 2, "{executions}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(pages.try_recv().is_err(), "escalated once");
    let again = server.cli_json(&["incidents", "show", &id]);
    assert_eq!(again["heal_runs"].as_array().unwrap().len(), 2);
}
