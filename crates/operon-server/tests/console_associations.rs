//! Associations in the console on a real server with an in-process agent:
//! the list and an association's page (settings, runs linked to their
//! commands, its nodes' compliance as the agent reported it), Apply now and
//! Check now (CSRF-checked, audited as the API's `associations:Run`), and
//! the refusals of a user who may read an association but not run it or
//! read its nodes' compliance.

mod common;

use common::console::{Browser, assert_security_headers, section};
use common::fleet::Fleet;
use serde_json::{Value, json};

/// `web-baseline`: a directory on the web nodes, HIGH severity, checked
/// daily; waits until the agent reported it compliant.
async fn web_baseline(fleet: &Fleet) {
    let api = &fleet.api;
    let document = json!({
        "schemaVersion": "operon-state/1",
        "resources": [
            {"name": "app-dir", "type": "directory", "path": "/srv/app", "mode": "0755"}
        ]
    });
    api.ok(
        "POST",
        "/v1/documents",
        Some(json!({"name": "app-dir", "content": document})),
    )
    .await;
    api.ok(
        "POST",
        "/v1/associations",
        Some(json!({"name": "web-baseline", "document": "app-dir",
                    "targets": ["tag:role=web"], "schedule": "rate(1 day)",
                    "compliance_severity": "HIGH", "max_errors": "1"})),
    )
    .await;
    api.get_until("/v1/compliance?association=web-baseline", |list| {
        list.as_array()
            .unwrap()
            .first()
            .is_some_and(|n| n["status"] == "COMPLIANT")
    })
    .await;
}

async fn runs(fleet: &Fleet) -> Vec<Value> {
    let detail = fleet.ok("GET", "/v1/associations/web-baseline", None).await;
    detail["runs"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_list_and_an_associations_page_show_settings_runs_and_compliance() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    web_baseline(&fleet).await;
    let mut browser = Browser::signed_in(&fleet.api, &fleet.token).await;

    let list = browser.get("/associations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_security_headers(&list, "associations");
    for part in [
        r#"<a href="/associations/web-baseline">web-baseline</a>"#,
        "<td>app-dir</td>",
        "<td>tag:role=web</td>",
        "<code>rate(1 day)</code>",
        "<td>apply</td>",
        "<td>HIGH</td>",
        r#"<td class="status-COMPLIANT">1</td>"#,
        r#"href="/associations" aria-current="page">Associations"#,
    ] {
        assert!(list.body.contains(part), "{part}: {}", list.body);
    }

    let page = browser.get("/associations/web-baseline").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_security_headers(&page, "association");
    assert!(page.body.contains("Version 1 by admin"), "{}", page.body);
    assert!(page.body.contains("errors 1"), "{}", page.body);
    assert!(page.body.contains("its author, admin"), "{}", page.body);
    let compliance = section(&page.body, "compliance-h");
    assert!(
        compliance.contains(r#"<td class="status-COMPLIANT">COMPLIANT</td>"#),
        "{compliance}"
    );
    assert!(
        compliance.contains(r#"href="/nodes/web-1""#),
        "{compliance}"
    );
    let created = &runs(&fleet).await[0];
    assert_eq!(created["reason"], "created");
    let command = created["command_id"].as_str().unwrap();
    let recent = section(&page.body, "runs-h");
    assert!(
        recent.contains(&format!(r#"<a href="/commands/{command}">"#)),
        "{recent}"
    );
    assert!(recent.contains("<td>created</td>"), "{recent}");

    let missing = browser.get("/associations/nope").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
}

#[tokio::test]
async fn check_now_starts_a_check_run_audited_and_needs_the_csrf_secret() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    web_baseline(&fleet).await;
    let mut browser = Browser::signed_in(&fleet.api, &fleet.token).await;
    let before = runs(&fleet).await.len();

    let path = "/associations/web-baseline/run";
    let forged = browser.post(path, &[("mode", "check")], &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(runs(&fleet).await.len(), before, "nothing ran");

    let page = browser.get("/associations/web-baseline").await;
    let csrf = page.csrf();
    let unknown = browser
        .post(path, &[("csrf", &csrf), ("mode", "chek")], &[])
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(
        unknown.body.contains("not one of apply, check"),
        "{}",
        unknown.body
    );
    assert_eq!(runs(&fleet).await.len(), before, "nothing ran");
    let done = browser
        .post(path, &[("csrf", &csrf), ("mode", "check")], &[])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let newest = &runs(&fleet).await[0];
    assert_eq!(
        (newest["reason"].as_str(), newest["mode"].as_str()),
        (Some("manual"), Some("check")),
        "{newest}"
    );
    let command = newest["command_id"].as_str().unwrap();
    assert_eq!(done.location(), format!("/commands/{command}"));
    let shown = browser.get(done.location()).await;
    assert_eq!(shown.status, 200, "{}", shown.body);

    let audit = fleet.audit_of("admin").await;
    let record = audit
        .iter()
        .find(|r| r["action"] == "associations:Run" && r["detail"]["path"] == path)
        .unwrap_or_else(|| panic!("the run is audited: {audit:?}"));
    assert_eq!(record["outcome"], "allowed", "{record}");
    assert_eq!(record["detail"]["command_id"], command, "{record}");
}

#[tokio::test]
async fn a_reader_may_not_run_it_nor_see_compliance_without_its_actions() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    web_baseline(&fleet).await;
    let before = runs(&fleet).await.len();
    let reader = fleet
        .api
        .user_token(
            "carol",
            json!([{"Effect": "Allow", "Action": "associations:Get",
                    "Resource": "association/*"}]),
        )
        .await;
    let mut carol = Browser::signed_in(&fleet.api, &reader).await;
    let list = carol.get("/associations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("web-baseline"), "{}", list.body);
    let page = carol.get("/associations/web-baseline").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let compliance = section(&page.body, "compliance-h");
    assert!(
        compliance.contains("not permitted") && compliance.contains("compliance:Get"),
        "{compliance}"
    );

    let csrf = page.csrf();
    let refused = carol
        .post(
            "/associations/web-baseline/run",
            &[("csrf", &csrf), ("mode", "apply")],
            &[],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("associations:Run"),
        "{}",
        refused.body
    );
    assert_eq!(runs(&fleet).await.len(), before, "nothing ran");

    let nobody = fleet
        .api
        .user_token(
            "dave",
            json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]),
        )
        .await;
    let mut dave = Browser::signed_in(&fleet.api, &nobody).await;
    let list = dave.get("/associations").await;
    assert_eq!(list.status, 403, "{}", list.body);
    assert!(list.body.contains("associations:Get"), "{}", list.body);
}
