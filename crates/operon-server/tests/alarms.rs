//! Alarms over HTTP with a real server and in-process agents: validation,
//! the evaluation loop over targeted nodes, set-state, composite alarms,
//! CloudWatch-shaped events, and evaluation acting as the alarm's author.
//! (Alarms on real metric data: `tests/metrics.rs` and the e2e tests.)

mod common;

use common::fleet::Fleet;
use serde_json::{Value, json};

fn state_of(alarm: &Value) -> &str {
    alarm["state"].as_str().unwrap()
}

#[tokio::test]
async fn missing_data_set_state_composites_and_their_events() {
    let mut fleet = Fleet::start(&[("web-1", "web"), ("db-1", "db")]).await;
    fleet
        .capture_events("alarm-events", json!({"source": ["operon.alarms"]}))
        .await;

    // Mistakes are named.
    let (status, body) = fleet
        .call(
            "PUT",
            "/v1/alarms/bad",
            Some(json!({"metric": "cpu.used", "threshold": 90})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("node or targets"),
        "{body}"
    );
    let (status, body) = fleet
        .call(
            "PUT",
            "/v1/alarms/bad",
            Some(json!({"metric": "cpu.used", "threshold": 90, "node": "nope"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // No agent sends metrics here: with missing data breaching, every web
    // node's instance goes to ALARM within a period or two.
    let spec = json!({"metric": "cpu.used", "threshold": 90, "period": 1,
        "treat_missing_data": "breaching", "targets": ["tag:role=web"],
        "description": "web CPU"});
    fleet.ok("PUT", "/v1/alarms/web-cpu", Some(spec)).await;
    let alarm = fleet
        .get_until("/v1/alarms/web-cpu", |a| a["state"] == "ALARM")
        .await;
    let instances = alarm["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "only the web node: {alarm}");
    assert_eq!(instances[0]["node_name"], "web-1");

    let quiet = json!({"metric": "cpu.used", "threshold": 90, "period": 1, "node": "db-1"});
    fleet.ok("PUT", "/v1/alarms/db-cpu", Some(quiet)).await;
    let db = fleet
        .get_until("/v1/alarms/db-cpu", |a| {
            a["state"] == "INSUFFICIENT_DATA" && !a["instances"].as_array().unwrap().is_empty()
        })
        .await;
    assert!(
        db["instances"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("Insufficient Data"),
        "{db}"
    );

    // Composite: web-cpu in ALARM and db-cpu not OK.
    let (status, body) = fleet
        .call(
            "PUT",
            "/v1/alarms/both",
            Some(json!({"kind": "composite", "rule": "ALARM(\"web-cpu\") AND ALARM(\"ghost\")"})),
        )
        .await;
    assert_eq!(status, 400, "unknown alarm in the rule: {body}");
    fleet
        .ok(
            "PUT",
            "/v1/alarms/both",
            Some(json!({"kind": "composite",
            "rule": "ALARM(\"web-cpu/web-1\") AND NOT OK(\"db-cpu\")"})),
        )
        .await;
    let both = fleet
        .get_until("/v1/alarms/both", |a| a["state"] == "ALARM")
        .await;
    assert!(
        both["instances"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("web-cpu/web-1 is ALARM"),
        "{both}"
    );
    let (status, body) = fleet
        .call(
            "PUT",
            "/v1/alarms/web-cpu",
            Some(json!({"kind": "composite", "rule": "OK(\"both\")"})),
        )
        .await;
    assert_eq!(status, 400, "a cycle: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("depend on itself"),
        "{body}"
    );

    // The state change event, shaped like CloudWatch's.
    let events = fleet.captured_events("alarm-events", 3).await;
    let web = events
        .iter()
        .find(|e| e["detail"]["alarmName"] == "web-cpu")
        .expect("an event of web-cpu");
    assert_eq!(web["detail-type"], "CloudWatch Alarm State Change");
    assert_eq!(web["source"], "operon.alarms");
    assert_eq!(web["detail"]["state"]["value"], "ALARM");
    assert_eq!(web["detail"]["node"]["name"], "web-1");
    let reason_data: Value =
        serde_json::from_str(web["detail"]["state"]["reasonData"].as_str().unwrap()).unwrap();
    assert_eq!(reason_data["threshold"], 90.0);
    assert_eq!(
        web["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"],
        "cpu.used"
    );
    assert_eq!(web["detail"]["configuration"]["description"], "web CPU");

    // set-state for testing what reacts: a templated alarm needs the node.
    let (status, _) = fleet
        .call(
            "POST",
            "/v1/alarms/web-cpu/state",
            Some(json!({"state": "OK", "reason": "test"})),
        )
        .await;
    assert_eq!(status, 400);
    fleet
        .ok(
            "POST",
            "/v1/alarms/web-cpu/state",
            Some(json!({"state": "OK", "reason": "testing the runbook", "node": "web-1"})),
        )
        .await;
    // The next evaluation puts it back.
    let history = fleet
        .get_until("/v1/alarms/web-cpu/history", |h| {
            h.as_array().unwrap().len() >= 3
        })
        .await;
    let states: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        &states[..3],
        ["ALARM", "OK", "ALARM"],
        "newest first: {history}"
    );
    assert_eq!(history[1]["reason"], "testing the runbook");
    assert_eq!(history[1]["previous_state"], "ALARM");

    // A missing agent is a condition: the reason says so.
    fleet.stop_agent(0).await;
    fleet
        .ok("PUT", "/v1/alarms/web-cpu", Some(json!({"metric": "cpu.used", "threshold": 90, "period": 1, "targets": ["tag:role=web"]})))
        .await;
    let alarm = fleet
        .get_until("/v1/alarms/web-cpu", |a| a["state"] == "INSUFFICIENT_DATA")
        .await;
    let reason = alarm["instances"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the agent of node web-1 is not connected"),
        "{reason}"
    );

    // Lists filter by state; deleting keeps the history.
    let listed = fleet
        .ok("GET", "/v1/alarms?state=INSUFFICIENT_DATA", None)
        .await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|a| state_of(a) == "INSUFFICIENT_DATA")
    );
    fleet.ok("DELETE", "/v1/alarms/both", None).await;
    let (status, _) = fleet.call("GET", "/v1/alarms/both", None).await;
    assert_eq!(status, 404);
    let kept = fleet.ok("GET", "/v1/alarms/both/history", None).await;
    assert!(
        kept.as_array()
            .unwrap()
            .iter()
            .any(|h| h["state"] == "ALARM"),
        "{kept}"
    );
    let (status, _) = fleet.call("GET", "/v1/alarms/never/history", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn evaluation_acts_as_the_author_node_by_node() {
    let fleet = Fleet::start(&[("web-1", "web"), ("db-1", "db")]).await;
    let token = fleet
        .user_token(
            "webops",
            json!([
                {"Effect": "Allow", "Action": ["alarms:*"], "Resource": "*"},
                {"Effect": "Allow", "Action": ["metrics:Get"], "Resource": "node/*",
                 "Condition": {"StringEquals": {"operon:NodeTag/role": "web"}}}
            ]),
        )
        .await;
    let spec = json!({"metric": "cpu.used", "threshold": 90, "period": 1,
        "treat_missing_data": "breaching", "targets": ["all"]});
    let (status, body) = fleet
        .call_as(&token, "PUT", "/v1/alarms/everything", Some(spec))
        .await;
    assert_eq!(status, 200, "{body}");
    let alarm = fleet
        .get_until("/v1/alarms/everything", |a| {
            a["instances"].as_array().unwrap().len() == 2
        })
        .await;
    let by_node = |name: &str| {
        alarm["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["node_name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_node("web-1")["state"], "ALARM");
    let db = by_node("db-1");
    assert_eq!(db["state"], "INSUFFICIENT_DATA");
    assert!(
        db["reason"]
            .as_str()
            .unwrap()
            .contains("may not read the metrics of node db-1"),
        "{db}"
    );

    // Without alarms:Put nothing is written.
    let reader = fleet
        .user_token(
            "reader",
            json!([{"Effect": "Allow", "Action": ["alarms:Get"], "Resource": "*"}]),
        )
        .await;
    let (status, _) = fleet
        .call_as(
            &reader,
            "PUT",
            "/v1/alarms/mine",
            Some(json!({"metric": "m", "threshold": 1, "node": "web-1"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = fleet
        .call_as(
            &reader,
            "POST",
            "/v1/alarms/everything/state",
            Some(json!({"state": "OK", "reason": "x", "node": "web-1"})),
        )
        .await;
    assert_eq!(status, 403);
    let listed = fleet.call_as(&reader, "GET", "/v1/alarms", None).await;
    assert_eq!(listed.1.as_array().unwrap().len(), 1);
}
