//! The runbook pages on a real server: the workflows list and one
//! workflow's versions, graph and definition; starting an execution from
//! the form (bad JSON re-renders it with the error, a user without
//! `workflows:Start` is refused, a POST without the CSRF secret is
//! refused); stopping a running execution and redriving it from its page.

mod common;

use common::Api;
use common::console::{Browser, assert_security_headers, section};
use serde_json::{Value, json};

/// A workflow `name` whose first version waits an hour in `Hold` (so its
/// executions stay RUNNING), then an update whose only state is `Finish`.
async fn two_versions(api: &Api, name: &str) {
    let first = json!({
        "Comment": "hold then pass",
        "StartAt": "Hold",
        "States": {
            "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Passed"},
            "Passed": {"Type": "Pass", "End": true}
        }
    });
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": name, "definition": first})),
    )
    .await;
    let second = json!({
        "Comment": "just finish",
        "StartAt": "Finish",
        "States": {"Finish": {"Type": "Pass", "End": true}}
    });
    api.ok(
        "PUT",
        &format!("/v1/workflows/{name}"),
        Some(json!({"definition": second})),
    )
    .await;
}

/// A workflow `hold` of one version that waits an hour.
async fn holding_workflow(api: &Api) {
    let definition = json!({
        "StartAt": "Hold",
        "States": {
            "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Passed"},
            "Passed": {"Type": "Pass", "End": true}
        }
    });
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "hold", "definition": definition})),
    )
    .await;
}

/// The executions of `workflow`, through the API.
async fn executions_of(api: &Api, workflow: &str) -> Vec<Value> {
    let list = api
        .ok("GET", &format!("/v1/executions?workflow={workflow}"), None)
        .await;
    list.as_array().unwrap().clone()
}

#[tokio::test]
async fn the_list_and_a_workflows_page_show_its_versions_and_definitions() {
    let api = Api::start().await;
    two_versions(&api, "patching").await;
    let mut browser = Browser::signed_in(&api, &api.token).await;

    let list = browser.get("/workflows").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_security_headers(&list, "workflows list");
    assert!(
        list.body.contains(r#"href="/workflows/patching""#),
        "{}",
        list.body
    );
    assert!(list.body.contains("v2"), "{}", list.body);
    assert!(list.body.contains("just finish"), "{}", list.body);
    assert!(
        list.body
            .contains(r#"href="/workflows" aria-current="page">Runbooks"#),
        "{}",
        list.body
    );

    let latest = browser.get("/workflows/patching").await;
    assert_eq!(latest.status, 200, "{}", latest.body);
    assert!(
        latest
            .body
            .contains(r#"href="/workflows/patching?version=1""#),
        "{}",
        latest.body
    );
    assert!(
        latest
            .body
            .contains(r#"<strong aria-current="true">v2</strong>"#)
    );
    assert!(
        latest.body.contains(r#"data-state="Finish""#),
        "{}",
        latest.body
    );
    assert!(!latest.body.contains(r#"data-state="Hold""#));
    assert!(latest.body.contains("&#34;StartAt&#34;: &#34;Finish&#34;"));
    assert!(latest.body.contains("No executions."));

    let first = browser.get("/workflows/patching?version=1").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body.contains(r#"data-state="Hold""#),
        "{}",
        first.body
    );
    assert!(first.body.contains(r#"data-state="Passed""#));
    assert!(!first.body.contains(r#"data-state="Finish""#));
    assert!(first.body.contains("hold then pass"));
    assert!(
        first
            .body
            .contains(r#"href="/workflows/patching?version=2""#)
    );

    // A third version by someone else: each version says who made it.
    let alice = api
        .user_token(
            "alice",
            json!([{"Effect": "Allow", "Action": "workflows:Update", "Resource": "workflow/patching"}]),
        )
        .await;
    let third = json!({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}});
    let (status, body) = api
        .call_as(
            &alice,
            "PUT",
            "/v1/workflows/patching",
            Some(json!({"definition": third})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page = browser.get("/workflows/patching").await;
    let versions = section(&page.body, "versions-h");
    let rows: Vec<&str> = versions.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 3, "{versions}");
    assert!(rows[0].contains("v3</strong> (latest)"), "{}", rows[0]);
    assert!(rows[0].contains("<td>alice</td>"), "{}", rows[0]);
    assert!(rows[1].contains("?version=2\">v2</a>"), "{}", rows[1]);
    assert!(rows[2].contains("<td>admin</td>"), "{}", rows[2]);
    assert!(
        rows.iter().all(|r| r.contains(" UTC</td>")),
        "each version's date: {versions}"
    );

    let missing = browser.get("/workflows/patching?version=4").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let unknown = browser.get("/workflows/nope").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

#[tokio::test]
async fn the_start_form_starts_an_execution_and_the_audit_names_the_console_path() {
    let api = Api::start().await;
    two_versions(&api, "patching").await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let page = browser.get("/workflows/patching").await;
    let csrf = page.csrf();
    assert!(page.body.contains(r#"action="/workflows/patching/start""#));

    let started = browser
        .post(
            "/workflows/patching/start",
            &[
                ("csrf", &csrf),
                ("input", r#"{"ticket": "T-9"}"#),
                ("name", "console-run"),
            ],
            &[],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let id = started
        .location()
        .strip_prefix("/executions/")
        .unwrap_or_else(|| panic!("to the execution: {}", started.location()))
        .to_string();
    let execution = api.ok("GET", &format!("/v1/executions/{id}"), None).await;
    assert_eq!(execution["version"], 2);
    assert_eq!(execution["name"], "console-run");
    assert_eq!(execution["startedBy"], "admin");
    assert_eq!(execution["input"]["ticket"], "T-9", "{execution}");

    let page = browser.get(started.location()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("T-9"), "{}", page.body);
    let listed = browser.get("/workflows/patching").await;
    assert!(
        listed.body.contains(&format!(r#"href="/executions/{id}""#)),
        "the workflow lists its execution: {}",
        listed.body
    );

    let audit = api.audit_of("admin").await;
    assert!(
        audit.iter().any(|r| r["action"] == "workflows:Start"
            && r["resource"] == "workflow/patching"
            && r["outcome"] == "allowed"
            && r["detail"]["path"] == "/workflows/patching/start"
            && r["detail"]["execution_id"] == id.as_str()),
        "{audit:?}"
    );
}

#[tokio::test]
async fn bad_json_input_re_renders_the_form_with_the_error_and_starts_nothing() {
    let api = Api::start().await;
    two_versions(&api, "patching").await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let csrf = browser.csrf().await;
    let refused = browser
        .post(
            "/workflows/patching/start",
            &[("csrf", &csrf), ("input", "{\n  \"ticket\": }")],
            &[],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("the input is not JSON") && refused.body.contains("line 2 column"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"aria-invalid="true""#));
    // The input is given back as typed, to be corrected.
    assert!(
        refused.body.contains("&#34;ticket&#34;: }"),
        "{}",
        refused.body
    );
    assert!(executions_of(&api, "patching").await.is_empty());
}

#[tokio::test]
async fn a_user_without_workflows_start_is_refused_and_nothing_starts() {
    let api = Api::start().await;
    two_versions(&api, "patching").await;
    let reader = json!([{
        "Effect": "Allow",
        "Action": ["workflows:List", "workflows:Describe", "executions:List"],
        "Resource": "*"
    }]);
    let dave = api.user_token("dave", reader).await;
    let mut browser = Browser::signed_in(&api, &dave).await;
    let page = browser.get("/workflows/patching").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let refused = browser
        .post(
            "/workflows/patching/start",
            &[("csrf", &csrf), ("input", "{}")],
            &[],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("workflows:Start"), "{}", refused.body);
    assert!(executions_of(&api, "patching").await.is_empty());
    let audit = api.audit_of("dave").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "workflows:Start" && r["outcome"] == "denied"),
        "{audit:?}"
    );

    // Without workflows:Describe the page itself is refused.
    let lister = json!([{"Effect": "Allow", "Action": "workflows:List", "Resource": "*"}]);
    let erin = api.user_token("erin", lister).await;
    let mut other = Browser::signed_in(&api, &erin).await;
    assert_eq!(other.get("/workflows").await.status, 200);
    let page = other.get("/workflows/patching").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("workflows:Describe"), "{}", page.body);
}

#[tokio::test]
async fn a_start_without_the_csrf_secret_is_refused() {
    let api = Api::start().await;
    two_versions(&api, "patching").await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let forged = browser
        .post("/workflows/patching/start", &[("input", "{}")], &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.body.contains("cross-site request forgery"));
    let csrf = browser.csrf().await;
    let cross_site = browser
        .post(
            "/workflows/patching/start",
            &[("input", "{}"), ("csrf", &csrf)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross_site.status, 403, "{}", cross_site.body);
    assert!(executions_of(&api, "patching").await.is_empty());
}

#[tokio::test]
async fn a_running_execution_is_stopped_then_redriven_from_its_page() {
    let api = Api::start().await;
    holding_workflow(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let csrf = browser.csrf().await;
    let started = browser
        .post(
            "/workflows/hold/start",
            &[("csrf", &csrf), ("input", "{}")],
            &[],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let page_path = started.location().to_string();
    let id = page_path.strip_prefix("/executions/").unwrap().to_string();

    let running = browser.get(&page_path).await;
    assert!(running.body.contains(">RUNNING<"), "{}", running.body);
    let stop_path = format!("/executions/{id}/stop");
    assert!(running.body.contains(&format!(r#"action="{stop_path}""#)));
    assert!(!running.body.contains("/redrive"));

    let forged = browser.post(&stop_path, &[("error", "x")], &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let stopped = browser
        .post(
            &stop_path,
            &[
                ("csrf", &csrf),
                ("error", "Ops.Stopped"),
                ("cause", "maintenance window over"),
            ],
            &[],
        )
        .await;
    assert_eq!(stopped.status, 303, "{}", stopped.body);
    assert_eq!(stopped.location(), page_path);
    let execution = api
        .get_until(&format!("/v1/executions/{id}"), |e| {
            e["status"] != "RUNNING"
        })
        .await;
    assert_eq!(execution["status"], "ABORTED");
    assert_eq!(execution["error"], "Ops.Stopped");

    let aborted = browser.get(&page_path).await;
    assert!(aborted.body.contains(">ABORTED<"), "{}", aborted.body);
    assert!(aborted.body.contains("maintenance window over"));
    let redrive_path = format!("/executions/{id}/redrive");
    assert!(
        aborted
            .body
            .contains(&format!(r#"action="{redrive_path}""#))
    );
    assert!(!aborted.body.contains(&stop_path));

    let forged = browser.post(&redrive_path, &[], &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let redriven = browser.post(&redrive_path, &[("csrf", &csrf)], &[]).await;
    assert_eq!(redriven.status, 303, "{}", redriven.body);
    assert_eq!(redriven.location(), page_path);
    let execution = api
        .get_until(&format!("/v1/executions/{id}"), |e| {
            e["status"] == "RUNNING"
        })
        .await;
    assert_eq!(execution["redriveCount"], 1);

    // Stopping twice conflicts, as through the API.
    let stopped = browser.post(&stop_path, &[("csrf", &csrf)], &[]).await;
    assert_eq!(stopped.status, 303, "{}", stopped.body);
    let again = browser.post(&stop_path, &[("csrf", &csrf)], &[]).await;
    assert_eq!(again.status, 409, "{}", again.body);

    let audit = api.audit_of("admin").await;
    for (action, path) in [
        ("executions:Stop", &stop_path),
        ("executions:Redrive", &redrive_path),
    ] {
        assert!(
            audit.iter().any(|r| r["action"] == action
                && r["resource"] == format!("execution/{id}").as_str()
                && r["detail"]["path"] == path.as_str()),
            "{action}: {audit:?}"
        );
    }
}

#[tokio::test]
async fn stop_and_redrive_need_their_actions() {
    let api = Api::start().await;
    holding_workflow(&api).await;
    let started = api
        .ok("POST", "/v1/workflows/hold/executions", Some(json!({})))
        .await;
    let id = started["executionId"].as_str().unwrap().to_string();
    let reader = json!([{"Effect": "Allow", "Action": "executions:GetHistory", "Resource": "*"}]);
    let dave = api.user_token("dave", reader).await;
    let mut browser = Browser::signed_in(&api, &dave).await;
    let page = browser.get(&format!("/executions/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let refused = browser
        .post(&format!("/executions/{id}/stop"), &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("executions:Stop"), "{}", refused.body);
    let refused = browser
        .post(
            &format!("/executions/{id}/redrive"),
            &[("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("executions:Redrive"),
        "{}",
        refused.body
    );
    let execution = api.ok("GET", &format!("/v1/executions/{id}"), None).await;
    assert_eq!(execution["status"], "RUNNING");
}
