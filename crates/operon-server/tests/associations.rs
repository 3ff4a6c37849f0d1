//! The State Manager over HTTP: desired-state documents, associations,
//! compliance and drift, with in-process agents applying real resources in
//! their own directory trees.

mod common;

use common::Api;
use common::fleet::Fleet;
use serde_json::{Value, json};

/// A desired-state document managing files under the node's root.
fn baseline() -> Value {
    json!({
        "schemaVersion": "operon-state/1",
        "parameters": {
            "port": {"type": "String", "default": "8080", "allowedPattern": "^[0-9]+$"}
        },
        "resources": [
            {"name": "app-dir", "type": "directory", "path": "/srv/app", "mode": "0755"},
            {"name": "app-conf", "type": "file", "path": "/srv/app/app.conf",
             "template": "port={{ port }}\nlog=info\n", "mode": "0640", "requires": ["app-dir"],
             "notify": ["reload"]},
            {"name": "motd", "type": "line", "path": "/srv/app/motd",
             "line": "managed by operon", "requires": ["app-dir"]},
            {"name": "seed", "type": "command", "run": "echo seeded > /dev/null",
             "creates": "/", "requires": ["app-dir"]},
            {"name": "reload", "type": "command", "run": "true", "unless": "true"}
        ]
    })
}

async fn create_document(api: &Api, name: &str, content: Value) -> (u16, Value) {
    api.call(
        "POST",
        "/v1/documents",
        Some(json!({"name": name, "content": content})),
    )
    .await
}

#[tokio::test]
async fn documents_of_every_kind_are_validated_on_upload_naming_where() {
    let api = Api::start().await;
    let (status, _) = create_document(&api, "baseline", baseline()).await;
    assert_eq!(status, 200);
    let (status, _) = create_document(
        &api,
        "logo",
        json!({"schemaVersion": "operon-file/1", "content": "hello\n"}),
    )
    .await;
    assert_eq!(status, 200);

    let bad = json!({"schemaVersion": "operon-state/1", "resources": [
        {"name": "d", "type": "directory", "path": "/srv", "mode": "0999"},
        {"name": "c", "type": "command", "run": "x", "requires": ["nope"]}
    ]});
    let (status, body) = create_document(&api, "bad", bad).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("/resources/0/mode"), "{message}");
    assert!(message.contains("resource \"d\""), "{message}");
    assert!(message.contains("/resources/1/requires/0"), "{message}");

    let (status, body) = create_document(
        &api,
        "bad-file",
        json!({"schemaVersion": "operon-file/1", "content": 1}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/content"),
        "{body}"
    );

    // A file document cannot be run; a command document cannot be checked.
    let (status, body) = api
        .call(
            "POST",
            "/v1/commands",
            Some(json!({"document": "logo", "targets": ["all"]})),
        )
        .await;
    assert!(status == 400 || status == 404, "{status} {body}");
    let (status, body) = api
        .call(
            "POST",
            "/v1/commands",
            Some(
                json!({"document": "AWS-RunShellScript", "parameters": {"commands": ["true"]},
                        "targets": ["all"], "check": true}),
            ),
        )
        .await;
    assert!(status == 400 || status == 404, "{status} {body}");
}

#[tokio::test]
async fn associations_refuse_what_could_never_run_and_keep_versions() {
    let api = Api::start().await;
    create_document(&api, "baseline", baseline()).await;
    let create = |body: Value| api.call("POST", "/v1/associations", Some(body));
    for (body, wants) in [
        (
            json!({"name": "a", "document": "AWS-RunShellScript", "targets": ["all"]}),
            "not a desired-state document",
        ),
        (
            json!({"name": "a", "document": "baseline", "targets": ["all"], "schedule": "rate(0 minutes)"}),
            "schedule",
        ),
        (
            json!({"name": "a", "document": "baseline", "targets": ["all"], "compliance_severity": "URGENT"}),
            "compliance_severity",
        ),
        (
            json!({"name": "a", "document": "baseline", "targets": ["all"], "apply_only_at_cron_interval": true}),
            "needs a schedule",
        ),
        (
            json!({"name": "a", "document": "baseline", "targets": ["all"], "parameters": {"port": "http"}}),
            "allowedPattern",
        ),
        (
            json!({"name": "a", "document": "baseline", "targets": []}),
            "--targets",
        ),
        (
            json!({"name": "a", "document": "baseline", "targets": ["all"], "mode": "yolo"}),
            "mode",
        ),
        (
            json!({"name": "a", "document": "baseline", "targets": ["all"], "max_errors": "lots"}),
            "max_errors",
        ),
    ] {
        let (status, answer) = create(body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(wants), "{body}: {message}");
    }
    let (status, _) = create(json!({"name": "a", "document": "nope", "targets": ["all"]})).await;
    assert_eq!(status, 404);

    let first = api
        .ok(
            "POST",
            "/v1/associations",
            Some(
                json!({"name": "web", "document": "baseline", "targets": ["tag:role=web"],
                        "schedule": "rate(1 day)", "compliance_severity": "HIGH"}),
            ),
        )
        .await;
    assert_eq!(first["version"], 1);
    assert!(first["next_run_at"].as_i64().is_some(), "{first}");
    let (status, _) =
        create(json!({"name": "web", "document": "baseline", "targets": ["all"]})).await;
    assert_eq!(status, 409);
    let update = json!({"expected_version": 1, "document": "baseline", "targets": ["tag:role=web"],
                        "parameters": {"port": "9090"}});
    let second = api
        .ok("PUT", "/v1/associations/web", Some(update.clone()))
        .await;
    assert_eq!(second["version"], 2);
    let (status, _) = api.call("PUT", "/v1/associations/web", Some(update)).await;
    assert_eq!(status, 409, "a stale expected version is refused");
    let detail = api.ok("GET", "/v1/associations/web", None).await;
    let versions = detail["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["compliance_severity"], "HIGH");
    assert_eq!(versions[1]["parameters"]["port"], "9090");
    assert!(
        detail["runs"].as_array().unwrap().is_empty(),
        "no node is targeted: nothing ran"
    );

    api.ok("DELETE", "/v1/associations/web", None).await;
    let (status, _) = api.call("GET", "/v1/associations/web", None).await;
    assert_eq!(status, 404);
}
