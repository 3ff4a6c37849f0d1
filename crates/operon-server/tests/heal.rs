//! Auto-healing and incidents over HTTP, driven by alarm states set by
//! hand (the metric-driven seed scenario is the end-to-end test): a heal
//! that repairs and is confirmed, one that does not and escalates to a
//! webhook, and a heal whose author may not start the runbook.

mod common;

use std::time::Duration;

use common::fleet::Fleet;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An alarm on web-1 that evaluates once an hour (so states set by hand stay).
async fn slow_alarm(fleet: &Fleet, name: &str) {
    let spec = json!({"metric": "log.matches", "dimensions": {"watcher": "app"},
        "statistic": "Sum", "threshold": 0, "period": 3600, "node": "web-1"});
    fleet
        .ok("PUT", &format!("/v1/alarms/{name}"), Some(spec))
        .await;
    fleet
        .get_until(&format!("/v1/alarms/{name}"), |a| {
            !a["instances"].as_array().unwrap().is_empty()
        })
        .await;
}

async fn set_state(fleet: &Fleet, alarm: &str, state: &str) {
    fleet
        .ok(
            "POST",
            &format!("/v1/alarms/{alarm}/state"),
            Some(json!({"state": state, "reason": format!("test says {state}"), "node": "web-1"})),
        )
        .await;
}

async fn workflow(fleet: &Fleet, name: &str, definition: Value) {
    fleet
        .ok(
            "POST",
            "/v1/workflows",
            Some(json!({"name": name, "definition": definition})),
        )
        .await;
}

/// A runbook `restart-app` that succeeds at once (the errors go on or
/// stop as the test sets the alarm).
async fn restart_runbook(fleet: &Fleet) {
    let definition = json!({"StartAt": "Restart", "States": {
        "Restart": {"Type": "Pass", "End": true}}});
    workflow(fleet, "restart-app", definition).await;
}

async fn incident_of(fleet: &Fleet, alarm: &str) -> Value {
    let list = fleet
        .get_until(&format!("/v1/incidents?alarm={alarm}"), |l| {
            !l.as_array().unwrap().is_empty()
        })
        .await;
    list[0].clone()
}

fn kinds(detail: &Value) -> Vec<String> {
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_heal_repairs_and_the_incident_is_confirmed_with_its_timeline() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    slow_alarm(&fleet, "app-errors-web").await;
    restart_runbook(&fleet).await;
    let (status, body) = fleet
        .call(
            "PUT",
            "/v1/heals/app",
            Some(json!({"alarm": "app-errors-*", "workflow": "nope"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    fleet
        .ok(
            "PUT",
            "/v1/heals/app",
            Some(json!({"alarm": "app-errors-*", "workflow": "restart-app",
            "input": {"service": "app"}, "confirm_within": 60})),
        )
        .await;
    fleet
        .capture_events(
            "heal-events",
            json!({"source": ["operon.heal", "operon.incidents"]}),
        )
        .await;

    set_state(&fleet, "app-errors-web", "ALARM").await;
    let incident = incident_of(&fleet, "app-errors-web").await;
    let id = incident["id"].as_str().unwrap().to_string();
    assert_eq!(incident["node_name"], "web-1");
    // The runbook ran and the heal waits for the alarm.
    let path = format!("/v1/incidents/{id}");
    let detail = fleet
        .get_until(&path, |d| {
            d["heal_runs"]
                .as_array()
                .is_some_and(|r| r.first().is_some_and(|r| r["status"] == "confirming"))
        })
        .await;
    let execution = detail["heal_runs"][0]["execution_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = fleet
        .ok("GET", &format!("/v1/executions/{execution}"), None)
        .await;
    let input: Value = match &run["input"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    assert_eq!(input["alarm"]["name"], "app-errors-web");
    assert_eq!(input["node"]["name"], "web-1");
    assert_eq!(input["parameters"]["service"], "app");

    set_state(&fleet, "app-errors-web", "OK").await;
    let detail = fleet
        .get_until(&path, |d| d["heal_runs"][0]["status"] == "confirmed")
        .await;
    assert_eq!(detail["status"], "recovered");
    assert_eq!(
        kinds(&detail),
        [
            "detected",
            "heal_started",
            "heal_finished",
            "recovered",
            "confirmed"
        ],
        "{detail}"
    );
    // One attempt only, however many passes ran.
    assert_eq!(detail["heal_runs"].as_array().unwrap().len(), 1);

    // People acknowledge and resolve; the events are on the bus.
    fleet.ok("POST", &format!("{path}/ack"), None).await;
    let resolved = fleet
        .ok(
            "POST",
            &format!("{path}/resolve"),
            Some(json!({"note": "restarted by the heal"})),
        )
        .await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["acknowledged_by"], "admin");
    let events = fleet.captured_events("heal-events", 6).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    for expected in [
        "Incident Opened",
        "Incident Recovered",
        "Heal Started",
        "Heal Confirmed",
        "Incident Acknowledged",
        "Incident Resolved",
    ] {
        assert!(types.contains(&expected), "{types:?}");
    }
}

/// A one-shot HTTP server: the body of each POST it receives.
async fn webhook_receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if data.len() >= end + 4 + length {
                        let body: Value = serde_json::from_slice(&data[end + 4..end + 4 + length])
                            .unwrap_or(Value::Null);
                        let _ = tx.send(body);
                        break;
                    }
                }
            }
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (port, rx)
}

#[tokio::test]
async fn a_heal_that_does_not_help_retries_to_its_limit_then_escalates_once() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    slow_alarm(&fleet, "app-errors-web").await;
    // The "restart" works but the errors go on: never confirmed.
    restart_runbook(&fleet).await;
    let (port, mut hooks) = webhook_receiver().await;
    fleet
        .ok(
            "PUT",
            "/v1/heals/app",
            Some(json!({"alarm": "app-errors-web", "workflow": "restart-app",
            "confirm_within": 2, "max_runs": 2, "max_runs_window": 3600,
            "escalate_webhook": format!("http://127.0.0.1:{port}/page")})),
        )
        .await;
    set_state(&fleet, "app-errors-web", "ALARM").await;
    let incident = incident_of(&fleet, "app-errors-web").await;
    let path = format!("/v1/incidents/{}", incident["id"].as_str().unwrap());
    let detail = fleet
        .get_until(&path, |d| {
            d["escalated_at"].is_number() && kinds(d).contains(&"note".to_string())
        })
        .await;
    let runs = detail["heal_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{detail}");
    assert!(runs.iter().all(|r| r["status"] == "failed"));
    assert!(
        runs[0]["detail"].as_str().unwrap().contains("still not OK"),
        "{detail}"
    );
    let posted = tokio::time::timeout(Duration::from_secs(10), hooks.recv())
        .await
        .expect("the webhook was called")
        .unwrap();
    assert_eq!(posted["detail-type"], "Heal Escalated");
    assert_eq!(posted["incident"]["alarm"], "app-errors-web");
    assert_eq!(posted["detail"]["attempts"], 2);
    // Escalated once: no third attempt, no second page.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = fleet.ok("GET", &path, None).await;
    assert_eq!(again["heal_runs"].as_array().unwrap().len(), 2);
    assert_eq!(
        kinds(&again).iter().filter(|k| *k == "escalated").count(),
        1
    );
    assert!(hooks.try_recv().is_err());
}

#[tokio::test]
async fn a_heal_acts_as_its_author_when_each_attempt_starts() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    slow_alarm(&fleet, "app-errors-web").await;
    restart_runbook(&fleet).await;
    // May write heals, may not start runbooks.
    let token = fleet
        .user_token(
            "healer",
            json!([{"Effect": "Allow", "Action": ["heals:*"], "Resource": "*"}]),
        )
        .await;
    let (status, body) = fleet
        .call_as(
            &token,
            "PUT",
            "/v1/heals/app",
            Some(json!({"alarm": "app-errors-web", "workflow": "restart-app", "max_runs": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    set_state(&fleet, "app-errors-web", "ALARM").await;
    let incident = incident_of(&fleet, "app-errors-web").await;
    let path = format!("/v1/incidents/{}", incident["id"].as_str().unwrap());
    let detail = fleet
        .get_until(&path, |d| d["escalated_at"].is_number())
        .await;
    let run = &detail["heal_runs"][0];
    assert_eq!(run["status"], "failed");
    assert!(run["execution_id"].is_null(), "nothing started: {detail}");
    assert!(
        run["detail"]
            .as_str()
            .unwrap()
            .contains("may not start runbook restart-app"),
        "{detail}"
    );
    let executions = fleet
        .ok("GET", "/v1/executions?workflow=restart-app", None)
        .await;
    assert!(executions.as_array().unwrap().is_empty());
}

/// The shipped runbook and document (examples/heal) restart a service on
/// the alarm's node through Run Command and fail when its health check does.
#[tokio::test]
async fn the_shipped_restart_runbook_restarts_on_the_alarm_node() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let document: Value = serde_json::from_str(include_str!(
        "../../../examples/heal/restart-service.document.json"
    ))
    .unwrap();
    let runbook: Value = serde_json::from_str(include_str!(
        "../../../examples/heal/restart-service.asl.json"
    ))
    .unwrap();
    fleet
        .ok(
            "POST",
            "/v1/documents",
            Some(json!({"name": "operon-restart-service", "content": document})),
        )
        .await;
    workflow(&fleet, "restart-service", runbook).await;
    slow_alarm(&fleet, "app-errors-web").await;
    let marker = fleet.dir.path().join("restarted");
    let restart = format!("echo restarted >> {}", marker.display());
    fleet
        .ok("PUT", "/v1/heals/app", Some(json!({"alarm": "app-errors-web", "workflow": "restart-service",
            "input": {"service": "app", "restartCommand": restart, "healthCheck": "true", "settleSeconds": "0"},
            "confirm_within": 60})))
        .await;
    set_state(&fleet, "app-errors-web", "ALARM").await;
    let incident = incident_of(&fleet, "app-errors-web").await;
    let path = format!("/v1/incidents/{}", incident["id"].as_str().unwrap());
    let detail = fleet
        .get_until(&path, |d| {
            d["heal_runs"][0]["status"] == "confirming" || d["heal_runs"][0]["status"] == "failed"
        })
        .await;
    assert_eq!(detail["heal_runs"][0]["status"], "confirming", "{detail}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "restarted\n");

    // A health check that fails after the restart fails the attempt.
    fleet
        .ok("PUT", "/v1/heals/app", Some(json!({"alarm": "app-errors-web", "workflow": "restart-service",
            "input": {"service": "app", "restartCommand": restart, "healthCheck": "exit 3", "settleSeconds": "0"},
            "confirm_within": 60, "max_runs": 5})))
        .await;
    set_state(&fleet, "app-errors-web", "OK").await;
    set_state(&fleet, "app-errors-web", "ALARM").await;
    let list = fleet
        .get_until("/v1/incidents?alarm=app-errors-web", |l| {
            l.as_array().unwrap().len() == 2
        })
        .await;
    let path = format!("/v1/incidents/{}", list[0]["id"].as_str().unwrap());
    let detail = fleet
        .get_until(&path, |d| d["heal_runs"][0]["status"] == "failed")
        .await;
    assert!(
        detail["heal_runs"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("FAILED"),
        "{detail}"
    );
}
