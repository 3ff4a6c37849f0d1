//! The execution page on a real server: a workflow waiting on an approval is
//! drawn with the waiting state current; once approved through the API the
//! page shows it SUCCEEDED with every state visited; a user without
//! `executions:GetHistory` sees the refusal.

mod common;

use common::Api;
use common::console::{Browser, assert_security_headers};
use serde_json::{Value, json};

/// The `<g>` element of one state in the page's graph, up to its name.
fn state_tag(body: &str, name: &str) -> String {
    let marker = format!(r#"data-state="{name}""#);
    let end = body
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} not drawn: {body}"));
    let start = body[..end].rfind("<g ").expect("group start");
    body[start..end].to_string()
}

/// Starts a workflow that waits on an approval, then passes to `Done`.
async fn waiting_execution(api: &Api) -> (String, Value) {
    let definition = json!({
        "StartAt": "Approve",
        "States": {
            "Approve": {"Type": "Task", "Resource": "operon:approval",
                "Parameters": {"Message": "go?"},
                "TimeoutSeconds": 300, "ResultPath": "$.approval", "Next": "Done"},
            "Done": {"Type": "Pass", "End": true}
        }
    });
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "gate", "definition": definition})),
    )
    .await;
    let started = api
        .ok(
            "POST",
            "/v1/workflows/gate/executions",
            Some(json!({"input": {"ticket": "T-1"}})),
        )
        .await;
    let id = started["executionId"].as_str().unwrap().to_string();
    let pending = api
        .get_until("/v1/approvals?status=Pending", |a| {
            a.as_array().is_some_and(|l| !l.is_empty())
        })
        .await;
    (id, pending[0].clone())
}

#[tokio::test]
async fn the_execution_page_draws_the_waiting_state_current_then_all_visited() {
    let api = Api::start().await;
    let (id, approval) = waiting_execution(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let page = browser.get(&format!("/executions/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_security_headers(&page, "execution page");
    assert!(page.body.contains("<svg"), "{}", page.body);
    assert!(page.body.contains(">RUNNING<"), "{}", page.body);
    assert!(
        page.body.contains("T-1"),
        "the input is shown: {}",
        page.body
    );
    assert!(state_tag(&page.body, "Approve").contains("state current"));
    assert!(!state_tag(&page.body, "Done").contains("visited"));
    assert!(page.body.contains("TaskStateEntered"), "{}", page.body);

    let approval_id = approval["id"].as_str().unwrap();
    api.ok(
        "POST",
        &format!("/v1/approvals/{approval_id}/approve"),
        Some(json!({"comment": "ok"})),
    )
    .await;
    api.get_until(&format!("/v1/executions/{id}"), |e| {
        e["status"] == "SUCCEEDED"
    })
    .await;
    let page = browser.get(&format!("/executions/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(">SUCCEEDED<"), "{}", page.body);
    assert!(state_tag(&page.body, "Approve").contains("state visited"));
    assert!(state_tag(&page.body, "Done").contains("state visited"));
    assert!(!page.body.contains("state current"));
}

#[tokio::test]
async fn a_user_without_the_history_permission_sees_the_refusal() {
    let api = Api::start().await;
    let (id, _) = waiting_execution(&api).await;
    let statements = json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]);
    let dave = api.user_token("dave", statements).await;
    let mut browser = Browser::signed_in(&api, &dave).await;
    let page = browser.get(&format!("/executions/{id}")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("executions:GetHistory"), "{}", page.body);
    assert!(!page.body.contains("<svg"));
}

#[tokio::test]
async fn the_list_links_each_execution_and_filters_by_status() {
    let api = Api::start().await;
    let (id, _) = waiting_execution(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let running = browser.get("/executions?status=running").await;
    assert_eq!(running.status, 200, "{}", running.body);
    assert!(
        running
            .body
            .contains(&format!(r#"href="/executions/{id}""#)),
        "{}",
        running.body
    );
    assert!(
        running
            .body
            .contains(r#"href="/executions" aria-current="page">Executions"#),
        "{}",
        running.body
    );
    let succeeded = browser.get("/executions?status=SUCCEEDED").await;
    assert_eq!(succeeded.status, 200, "{}", succeeded.body);
    assert!(!succeeded.body.contains(&id), "{}", succeeded.body);
    assert!(succeeded.body.contains("No executions."));
}

#[tokio::test]
async fn the_inbox_approves_with_csrf_and_refuses_without_it() {
    let api = Api::start().await;
    let (id, approval) = waiting_execution(&api).await;
    let approval_id = approval["id"].as_str().unwrap();
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let inbox = browser.get("/approvals").await;
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert!(
        inbox
            .body
            .contains(&format!(r#"action="/approvals/{approval_id}""#)),
        "{}",
        inbox.body
    );
    let path = format!("/approvals/{approval_id}");
    let forged = browser.post(&path, &[("decision", "approve")], &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let csrf = inbox.csrf();
    let decided = browser
        .post(
            &path,
            &[
                ("decision", "approve"),
                ("comment", "fine"),
                ("csrf", &csrf),
            ],
            &[],
        )
        .await;
    assert_eq!(decided.status, 303, "{}", decided.body);
    api.get_until(&format!("/v1/executions/{id}"), |e| {
        e["status"] == "SUCCEEDED"
    })
    .await;
    let page = browser.get(&format!("/executions/{id}")).await;
    assert!(page.body.contains(">SUCCEEDED<"), "{}", page.body);
    assert!(state_tag(&page.body, "Done").contains("state visited"));
    let dave = api
        .user_token(
            "dave",
            json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]),
        )
        .await;
    let mut other = Browser::signed_in(&api, &dave).await;
    let refused = other.get("/approvals").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}
