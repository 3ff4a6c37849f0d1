//! Run Command in the console, on a real server with in-process agents
//! running real shells: the form, a run on a tag and its page, the live
//! feed (read as a text/event-stream body), cancel, per-node refusals and
//! `commands:Get` on the page and its stream.

mod common;

use std::time::{Duration, Instant};

use common::console::{Browser, assert_security_headers};
use common::fleet::Fleet;
use serde_json::json;

async fn fleet() -> Fleet {
    Fleet::start_tagged(&[
        ("web-1", vec![("env", "prod")]),
        ("web-2", vec![("env", "prod")]),
        ("db-1", vec![("env", "dev")]),
    ])
    .await
}

/// The command id a `POST /run` redirected to.
fn command_id(location: &str) -> String {
    location
        .strip_prefix("/commands/")
        .unwrap_or_else(|| panic!("not a run page: {location:?}"))
        .to_string()
}

/// Submit the run form with `fields` (and the session's CSRF secret).
async fn submit(browser: &mut Browser, fields: &[(&str, &str)]) -> common::console::Page {
    let form = browser.get("/run").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.csrf();
    let mut all = fields.to_vec();
    all.push(("csrf", &csrf));
    browser.post("/run", &all, &[]).await
}

#[tokio::test]
async fn the_form_renders_with_csrf_and_refuses_a_post_without_it() {
    let fleet = fleet().await;
    let mut browser = Browser::signed_in(&fleet.api, &fleet.token).await;
    let form = browser.get("/run").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_security_headers(&form, "run form");
    assert!(!form.csrf().is_empty());
    for part in [
        "action=\"/run\"",
        "<label for=\"targets\"",
        "id=\"targets\" name=\"targets\"",
        "value=\"AWS-RunShellScript\"",
        "<label for=\"commands\"",
        "<label for=\"max_concurrency\"",
        "<label for=\"max_errors\"",
        "<label for=\"timeout_secs\"",
        "href=\"/run\" aria-current=\"page\">Run command",
    ] {
        assert!(form.body.contains(part), "{part}: {}", form.body);
    }
    let forged = browser
        .post(
            "/run",
            &[("targets", "env=prod"), ("commands", "touch /tmp/nope")],
            &[],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let commands = fleet.ok("GET", "/v1/commands", None).await;
    assert_eq!(commands.as_array().unwrap().len(), 0, "nothing was run");

    // A bad field is shown beside it, with what was typed kept.
    let bad = submit(
        &mut browser,
        &[
            ("targets", "env=prod"),
            ("timeout_secs", "0"),
            ("commands", "echo x"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("id=\"timeout_secs-error\""),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("at least 1"), "{}", bad.body);
    assert!(bad.body.contains("value=\"env=prod\""));
    let nowhere = submit(
        &mut browser,
        &[("targets", "env=nowhere"), ("commands", "echo x")],
    )
    .await;
    assert_eq!(nowhere.status, 400, "{}", nowhere.body);
    assert!(
        nowhere.body.contains("id=\"targets-error\""),
        "{}",
        nowhere.body
    );
}

#[tokio::test]
async fn a_run_on_a_tag_shows_each_nodes_output_on_its_page() {
    let fleet = fleet().await;
    let mut browser = Browser::signed_in(&fleet.api, &fleet.token).await;
    let answer = submit(
        &mut browser,
        &[
            ("targets", "env=prod"),
            ("commands", "echo starting\necho console-run"),
            ("max_concurrency", "1"),
        ],
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let id = command_id(answer.location());
    let done = fleet.finished(&id).await;
    assert_eq!(done["status"], "Success", "{done}");
    assert_eq!(done["max_concurrency"], "1");
    assert_eq!(done["requested_by"], "admin");

    let page = browser.get(&format!("/commands/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_security_headers(&page, "run page");
    for part in [
        ">web-1</a>",
        ">web-2</a>",
        "console-run",
        "AWS-RunShellScript",
        "2 Success",
        "env=prod",
        "src=\"/assets/run.js\"",
    ] {
        assert!(page.body.contains(part), "{part}: {}", page.body);
    }
    assert_eq!(page.body.matches("console-run").count(), 2, "one per node");
    assert!(!page.body.contains(">db-1</a>"));
    assert!(!page.body.contains("/cancel"), "finished: no cancel button");

    let history = browser.get("/commands").await;
    assert!(history.body.contains(&format!("href=\"/commands/{id}\"")));
    let audit = fleet.audit_of("admin").await;
    assert!(
        audit.iter().any(|r| r["action"] == "commands:Run"
            && r["detail"]["path"] == "/run"
            && r["detail"]["command_id"] == id.as_str()),
        "{audit:?}"
    );
    let missing = browser.get("/commands/c-nope").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn the_event_stream_follows_a_running_command_and_cancel_stops_it() {
    let fleet = fleet().await;
    let mut browser = Browser::signed_in(&fleet.api, &fleet.token).await;
    let answer = submit(
        &mut browser,
        &[
            ("targets", "web-1"),
            ("commands", "echo live-line\nsleep 60"),
        ],
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let id = command_id(answer.location());

    let mut stream = browser
        .client
        .get(format!("{}/commands/{id}/events", browser.base))
        .header("cookie", browser.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !body.contains("live-line") {
        assert!(Instant::now() < deadline, "no output streamed: {body}");
        let chunk = tokio::time::timeout(Duration::from_secs(20), stream.chunk())
            .await
            .expect("a chunk in time")
            .unwrap()
            .expect("the stream is still open");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(body.contains("data: {\"event\":\"output\""), "{body}");
    // The API's stream of the same command, read alongside: the same feed.
    let api_stream = browser
        .client
        .get(format!("{}/v1/commands/{id}/stream", browser.base))
        .bearer_auth(&fleet.token)
        .send()
        .await
        .unwrap();
    assert_eq!(api_stream.status(), 200);

    let page = browser.get(&format!("/commands/{id}")).await;
    assert!(page.body.contains("data-running=\"true\""), "{}", page.body);
    let action = format!("action=\"/commands/{id}/cancel\"");
    assert!(page.body.contains(&action), "{}", page.body);
    let cancel = format!("/commands/{id}/cancel");
    let forged = browser.post(&cancel, &[], &[]).await;
    assert_eq!(forged.status, 403);
    let csrf = page.csrf();
    let cancelled = browser.post(&cancel, &[("csrf", &csrf)], &[]).await;
    assert_eq!(cancelled.status, 303, "{}", cancelled.body);
    assert_eq!(cancelled.location(), format!("/commands/{id}"));
    let done = fleet.finished(&id).await;
    assert_eq!(done["status"], "Cancelled", "{done}");

    // The stream ends with the command.
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream did not end: {body}");
    assert!(
        body.contains("{\"event\":\"done\",\"status\":\"Cancelled\"}"),
        "{body}"
    );
    let api_body = tokio::time::timeout(Duration::from_secs(20), api_stream.text())
        .await
        .expect("the API stream ends too")
        .unwrap();
    assert_eq!(data_lines(&api_body), data_lines(&body));
    let page = browser.get(&format!("/commands/{id}")).await;
    assert!(page.body.contains("Cancelled") && !page.body.contains(&action));
}

/// The `data:` lines of an event-stream body (keep-alive comments left out).
fn data_lines(body: &str) -> Vec<&str> {
    body.lines().filter(|l| l.starts_with("data:")).collect()
}

#[tokio::test]
async fn refused_nodes_are_shown_with_the_reason() {
    let fleet = fleet().await;
    let token = fleet
        .user_token(
            "dba",
            json!([
                {"Effect": "Allow", "Action": ["commands:Run"], "Resource": "node/db-1"},
                {"Effect": "Allow", "Action": ["commands:Get", "commands:List"], "Resource": "*"}
            ]),
        )
        .await;
    let mut browser = Browser::signed_in(&fleet.api, &token).await;

    let all_refused = submit(
        &mut browser,
        &[("targets", "web-1"), ("commands", "echo x")],
    )
    .await;
    assert_eq!(all_refused.status, 403, "{}", all_refused.body);
    assert!(all_refused.body.contains("web-1"), "{}", all_refused.body);
    assert!(
        all_refused.body.contains("commands:Run"),
        "{}",
        all_refused.body
    );
    assert!(all_refused.body.contains("role=\"alert\""));

    let some = submit(
        &mut browser,
        &[("targets", "web-1 db-1"), ("commands", "echo partly")],
    )
    .await;
    assert_eq!(some.status, 303, "{}", some.body);
    let id = command_id(some.location());
    fleet.finished(&id).await;
    let page = browser.get(&format!("/commands/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Refused nodes"), "{}", page.body);
    assert!(
        page.body.contains("<strong>web-1</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains(">db-1</a>") && page.body.contains("partly"));
    let audit = fleet.audit_of("dba").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "commands:Run" && r["outcome"] == "denied"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn without_commands_get_neither_the_page_nor_the_stream_opens() {
    let fleet = fleet().await;
    let done = fleet
        .run(json!({"node_ids": ["web-1"], "parameters": {"commands": ["echo secret-output"]}}))
        .await;
    let id = done["id"].as_str().unwrap().to_string();
    let token = fleet
        .user_token(
            "runner",
            json!([{"Effect": "Allow", "Action": ["commands:Run", "commands:List"], "Resource": "*"}]),
        )
        .await;
    let mut browser = Browser::signed_in(&fleet.api, &token).await;
    let page = browser.get(&format!("/commands/{id}")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("commands:Get"), "{}", page.body);
    assert!(!page.body.contains("secret-output"));
    let stream = browser.get(&format!("/commands/{id}/events")).await;
    assert_eq!(stream.status, 403, "{}", stream.body);
    assert!(!stream.body.contains("secret-output"));
    let csrf = browser.csrf().await;
    let cancel = browser
        .post(&format!("/commands/{id}/cancel"), &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(cancel.status, 403, "{}", cancel.body);
    let audit = fleet.audit_of("runner").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "commands:Get" && r["outcome"] == "denied"),
        "{audit:?}"
    );
}
