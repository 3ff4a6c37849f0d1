//! The event bus in the console, on a real server: buses, rules (pattern
//! pretty-printed, targets, disable), the live tail (matching events only,
//! a bad pattern refused), dead letters redriven to a receiver that came
//! back, a replay started from the form, and refusals (no permission, no
//! CSRF token).

mod common;

use std::time::{Duration, Instant};

use common::Api;
use common::console::{Browser, assert_security_headers};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `text` as askama writes it into a page.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// A bus `ops` with a rule `alerts` (a pattern, a signed webhook target
/// with a role and an input transformer) and an archive of `default`.
async fn fixtures(api: &Api) -> Value {
    api.ok("POST", "/v1/buses", Some(json!({"name": "ops"})))
        .await;
    let pattern = json!({"source": ["app.monitor"], "detail": {"level": ["critical"]}});
    api.ok(
        "PUT",
        "/v1/rules/alerts",
        Some(json!({
            "bus": "ops",
            "description": "critical alerts to the pager",
            "pattern": pattern,
            "targets": [{
                "Id": "pager", "Kind": "webhook", "Url": "http://127.0.0.1:9/page",
                "Secret": "hunter2-signing-secret",
                "InputTransformer": {"InputPathsMap": {"lvl": "$.detail.level"},
                    "InputTemplate": "{\"level\": <lvl>}"},
                "RetryPolicy": {"MaximumRetryAttempts": 2}
            }]
        })),
    )
    .await;
    api.ok(
        "POST",
        "/v1/archives",
        Some(json!({"name": "everything", "bus": "default"})),
    )
    .await;
    pattern
}

#[tokio::test]
async fn buses_rules_and_the_rule_page_show_what_exists_and_disable_flips_it() {
    let api = Api::start().await;
    let pattern = fixtures(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;

    let buses = browser.get("/events").await;
    assert_eq!(buses.status, 200, "{}", buses.body);
    assert_security_headers(&buses, "buses");
    assert!(
        buses.body.contains(r#"href="/rules?bus=ops""#),
        "{}",
        buses.body
    );
    assert!(buses.body.contains(">default<"), "{}", buses.body);
    assert!(
        buses
            .body
            .contains(r#"href="/events" aria-current="page">Events"#),
        "{}",
        buses.body
    );

    let rules = browser.get("/rules?bus=ops").await;
    assert_eq!(rules.status, 200, "{}", rules.body);
    assert!(
        rules.body.contains(r#"href="/rules/alerts""#),
        "{}",
        rules.body
    );
    assert!(rules.body.contains("ENABLED"), "{}", rules.body);
    let none = browser.get("/rules?bus=default").await;
    assert!(!none.body.contains("/rules/alerts"), "{}", none.body);
    assert!(none.body.contains("No rules."), "{}", none.body);

    let page = browser.get("/rules/alerts").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let pretty = serde_json::to_string_pretty(&pattern).unwrap();
    assert!(pretty.contains('\n'));
    assert!(
        page.body.contains(&escaped(&pretty)),
        "the pattern pretty-printed: {}",
        page.body
    );
    assert!(page.body.contains("critical alerts to the pager"));
    assert!(
        page.body.contains("http://127.0.0.1:9/page (signed)"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("2 retries within 86400 s"),
        "{}",
        page.body
    );
    assert!(page.body.contains("InputTransformer {"), "{}", page.body);
    assert!(
        !page.body.contains("hunter2"),
        "a secret shown: {}",
        page.body
    );
    assert!(!page.body.contains("SecretSealed"));
    assert!(page.body.contains(r#"id="rule-state">ENABLED<"#));

    let forged = browser.post("/rules/alerts/disable", &[], &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let rule = api.ok("GET", "/v1/rules/alerts", None).await;
    assert_eq!(rule["enabled"], true, "a refused POST changed nothing");

    let csrf = page.csrf();
    let disabled = browser
        .post("/rules/alerts/disable", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    assert_eq!(disabled.location(), "/rules/alerts");
    let rule = api.ok("GET", "/v1/rules/alerts", None).await;
    assert_eq!(rule["enabled"], false, "{rule}");
    let page = browser.get("/rules/alerts").await;
    assert!(
        page.body.contains(r#"id="rule-state">DISABLED<"#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"action="/rules/alerts/enable""#));

    let audit = api.audit_of("admin").await;
    let record = audit
        .iter()
        .find(|r| r["action"] == "rules:Disable")
        .unwrap_or_else(|| panic!("no record of the disable: {audit:?}"));
    assert_eq!(record["resource"], "rule/alerts", "{record}");
    assert_eq!(record["outcome"], "allowed", "{record}");
    assert_eq!(
        record["detail"]["path"], "/rules/alerts/disable",
        "{record}"
    );

    let enabled = browser
        .post("/rules/alerts/enable", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(enabled.status, 303, "{}", enabled.body);
    let rule = api.ok("GET", "/v1/rules/alerts", None).await;
    assert_eq!(rule["enabled"], true, "{rule}");

    let archives = browser.get("/archives").await;
    assert_eq!(archives.status, 200, "{}", archives.body);
    assert!(archives.body.contains(">everything<"), "{}", archives.body);
}

/// The body of an SSE response read until `done` holds (20 s at most).
async fn read_until(response: &mut reqwest::Response, done: impl Fn(&str) -> bool) -> String {
    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&body) {
        assert!(
            Instant::now() < deadline,
            "nothing streamed in time: {body}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("a chunk in time")
            .unwrap()
            .expect("the stream is still open");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    body
}

fn put(source: &str, marker: &str) -> Value {
    json!({"Entries": [{"Source": source, "DetailType": "t",
        "Detail": json!({"marker": marker}).to_string()}]})
}

#[tokio::test]
async fn the_tail_streams_matching_events_only_and_refuses_a_bad_pattern() {
    let api = Api::start().await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let pattern = r#"{"source": ["wanted.app"]}"#;
    let query = format!(
        "bus=default&pattern={}",
        common::console::form_body(&[("p", pattern)]).trim_start_matches("p=")
    );

    let page = browser.get(&format!("/events/tail?{query}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"src="/assets/events_tail.js""#));
    assert!(
        page.body
            .contains("data-stream=\"/events/tail/stream?bus=default&amp;pattern="),
        "{}",
        page.body
    );
    let script = browser.get("/assets/events_tail.js").await;
    assert_eq!(script.status, 200);
    assert!(script.body.contains("EventSource"));

    let mut stream = browser
        .client
        .get(format!("{}/events/tail/stream?{query}", browser.base))
        .header("cookie", browser.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // The API's tail of the same bus and pattern, read alongside: the same feed.
    let mut api_stream = browser
        .client
        .get(format!(
            "{}/v1/buses/default/tail?pattern={}",
            browser.base,
            &query["bus=default&pattern=".len()..]
        ))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(api_stream.status(), 200);
    // Subscribed once the answer came: put one that does not match, then one that does.
    api.ok("POST", "/v1/events", Some(put("other.app", "unwanted-one")))
        .await;
    api.ok("POST", "/v1/events", Some(put("wanted.app", "wanted-one")))
        .await;
    let body = read_until(&mut stream, |b| b.contains("wanted-one")).await;
    assert!(body.contains("data: {"), "{body}");
    assert!(
        !body.contains("unwanted-one"),
        "a non-matching event: {body}"
    );
    let api_body = read_until(&mut api_stream, |b| b.contains("wanted-one")).await;
    assert!(!api_body.contains("unwanted-one"), "{api_body}");

    let bad = common::console::form_body(&[("p", r#"{"source": "not-a-list"#)]);
    let bad = bad.trim_start_matches("p=");
    let refused = browser
        .get(&format!("/events/tail/stream?bus=default&pattern={bad}"))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("Invalid request"), "{}", refused.body);
    let page = browser
        .get(&format!("/events/tail?bus=default&pattern={bad}"))
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains(r#"id="tail-error""#), "{}", page.body);
    assert!(!page.body.contains("data-stream"), "{}", page.body);
    // The API's tail refuses it with the same words.
    let (status, answer) = api
        .call(
            "GET",
            &format!("/v1/buses/default/tail?pattern={bad}"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "ValidationError", "{answer}");
    let message = escaped(answer["error"]["message"].as_str().unwrap());
    assert!(
        refused.body.contains(&message),
        "{message}: {}",
        refused.body
    );

    let unknown = browser.get("/events/tail/stream?bus=nope").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

/// Answer one HTTP request on `listener` with 200, and give its body.
async fn receive_one(listener: &tokio::net::TcpListener) -> String {
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("a delivery in time")
        .unwrap();
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .expect("the request in time")
            .unwrap();
        request.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
                return body.to_string();
            }
        }
        assert!(n > 0, "the connection closed mid-request");
    }
}

#[tokio::test]
async fn a_dead_letter_is_shown_and_redriven_to_a_receiver_that_came_back() {
    let api = Api::start().await;
    // A port nobody listens on until the redrive.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    api.ok(
        "PUT",
        "/v1/rules/deliver",
        Some(json!({"pattern": {"source": ["dlq.test"]},
            "targets": [{"Id": "hook", "Kind": "webhook",
                "Url": format!("http://127.0.0.1:{port}/in"),
                "RetryPolicy": {"MaximumRetryAttempts": 0}}]})),
    )
    .await;
    api.ok("POST", "/v1/events", Some(put("dlq.test", "lost-letter")))
        .await;
    let letters = api
        .get_until("/v1/dlq", |l| !l.as_array().unwrap().is_empty())
        .await;
    let id = letters[0]["id"].as_str().unwrap().to_string();

    let mut browser = Browser::signed_in(&api, &api.token).await;
    let list = browser.get("/dlq").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains(&format!(r#"value="{id}""#)),
        "{}",
        list.body
    );
    assert!(list.body.contains(">deliver<"), "{}", list.body);
    let one = browser.get(&format!("/dlq/{id}")).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(
        one.body.contains(&escaped("\"marker\": \"lost-letter\"")),
        "the event pretty-printed: {}",
        one.body
    );
    let audit = api.audit_of("admin").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "dlq:Show" && r["detail"]["path"] == format!("/dlq/{id}")),
        "the read is audited as the API's is: {audit:?}"
    );

    let forged = browser.post("/dlq/redrive", &[("id", &id)], &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let csrf = list.csrf();
    let redriven = browser
        .post("/dlq/redrive", &[("csrf", &csrf), ("id", &id)], &[])
        .await;
    assert_eq!(redriven.status, 303, "{}", redriven.body);
    assert_eq!(redriven.location(), "/dlq?redriven=1&not_found=0");
    let delivered = receive_one(&listener).await;
    assert!(delivered.contains("lost-letter"), "{delivered}");
    api.get_until("/v1/dlq", |l| l.as_array().unwrap().is_empty())
        .await;
    let after = browser.get(redriven.location()).await;
    assert!(
        after.body.contains("Redriven 1 dead letter."),
        "{}",
        after.body
    );
    assert!(after.body.contains("No dead letters."), "{}", after.body);
    let audit = api.audit_of("admin").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "dlq:Redrive" && r["detail"]["path"] == "/dlq/redrive"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn the_replay_form_starts_a_replay_and_shows_what_is_wrong() {
    let api = Api::start().await;
    fixtures(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let page = browser.get("/replays").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(r#"<option value="everything""#),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let fields = |name: &'static str, archive: &'static str| {
        vec![
            ("name", name),
            ("archive", archive),
            ("from", "2020-01-01"),
            ("to", "2030-01-01T00:00:00Z"),
        ]
    };

    let forged = browser
        .post("/replays", &fields("rp0", "everything"), &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    let mut bad = fields("rp1", "missing");
    bad.push(("csrf", &csrf));
    let refused = browser.post("/replays", &bad, &[]).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("no archive named missing"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(r#"value="rp1""#),
        "the form kept: {}",
        refused.body
    );

    let mut good = fields("rp1", "everything");
    good.push(("csrf", &csrf));
    let started = browser.post("/replays", &good, &[]).await;
    assert_eq!(started.status, 303, "{}", started.body);
    assert_eq!(started.location(), "/replays?started=rp1");
    let replay = api
        .get_until("/v1/replays/rp1", |r| r["finished_at"].is_i64())
        .await;
    assert_eq!(replay["archive"], "everything", "{replay}");
    let list = browser.get(started.location()).await;
    assert!(list.body.contains("Replay rp1 started."), "{}", list.body);
    assert!(list.body.contains("<td>rp1</td>"), "{}", list.body);
    let audit = api.audit_of("admin").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "replays:Start" && r["detail"]["path"] == "/replays"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_user_without_the_actions_sees_the_refusals() {
    let api = Api::start().await;
    fixtures(&api).await;
    let watcher = api
        .user_token(
            "watcher",
            json!([{"Effect": "Allow", "Action": ["buses:List", "rules:Describe"], "Resource": "*"}]),
        )
        .await;
    let mut browser = Browser::signed_in(&api, &watcher).await;
    let buses = browser.get("/events").await;
    assert_eq!(buses.status, 200, "{}", buses.body);
    assert!(buses.body.contains(">ops<"), "{}", buses.body);
    let rules = browser.get("/rules").await;
    assert_eq!(rules.status, 403, "{}", rules.body);
    assert!(rules.body.contains("rules:List"), "{}", rules.body);
    assert!(!rules.body.contains("/rules/alerts\""), "{}", rules.body);
    let rule = browser.get("/rules/alerts").await;
    assert_eq!(rule.status, 200, "rules:Describe is enough: {}", rule.body);
    let csrf = rule.csrf();
    let disable = browser
        .post("/rules/alerts/disable", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(disable.status, 403, "{}", disable.body);
    assert!(disable.body.contains("rules:Disable"), "{}", disable.body);
    let tail = browser.get("/events/tail/stream?bus=default").await;
    assert_eq!(tail.status, 403, "{}", tail.body);
    assert!(tail.body.contains("events:Tail"), "{}", tail.body);
    let dlq = browser.get("/dlq").await;
    assert_eq!(dlq.status, 403, "{}", dlq.body);
    assert!(dlq.body.contains("dlq:List"), "{}", dlq.body);
    let audit = api.audit_of("watcher").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "rules:List" && r["outcome"] == "denied"),
        "{audit:?}"
    );
    let rule = api.ok("GET", "/v1/rules/alerts", None).await;
    assert_eq!(rule["enabled"], true);
}

#[tokio::test]
async fn the_archive_form_creates_an_archive_and_shows_what_is_wrong() {
    let api = Api::start().await;
    fixtures(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let page = browser.get("/archives").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(">everything<"), "{}", page.body);
    assert!(
        page.body.contains(r#"<option value="ops""#),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let pattern = "{\n  \"source\": [\"app.monitor\"]\n}";
    let fields = [
        ("name", "monitored"),
        ("bus", "ops"),
        ("pattern", pattern),
        ("retention_days", "30"),
    ];

    let forged = browser.post("/archives", &fields, &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    let mut bad = fields.to_vec();
    bad[3] = ("retention_days", "a week");
    bad.push(("csrf", &csrf));
    let refused = browser.post("/archives", &bad, &[]).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains(r#"id="archive-error""#),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("a week"), "{}", refused.body);
    assert!(
        refused.body.contains(r#"value="monitored""#),
        "{}",
        refused.body
    );

    let mut good = fields.to_vec();
    good.push(("csrf", &csrf));
    let created = browser.post("/archives", &good, &[]).await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(created.location(), "/archives?created=monitored");
    let archives = api.ok("GET", "/v1/archives", None).await;
    let archive = archives
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "monitored")
        .unwrap_or_else(|| panic!("not created: {archives}"));
    assert_eq!(archive["bus"], "ops");
    assert_eq!(archive["pattern"], json!({"source": ["app.monitor"]}));
    assert_eq!(archive["retention_days"], 30);
    let list = browser.get(created.location()).await;
    assert!(
        list.body.contains("Archive monitored created."),
        "{}",
        list.body
    );
    let audit = api.audit_of("admin").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "archives:Create" && r["detail"]["path"] == "/archives"),
        "{audit:?}"
    );
}
