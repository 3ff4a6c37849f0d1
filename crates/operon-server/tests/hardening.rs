//! The "no side doors" review (issue 17), in-process: reserved identity
//! names, the token id in the trail, enrollment token revocation, node names
//! and tags, and node routes that refuse unknown names as they refuse known
//! ones.

use serde_json::{Value, json};

mod common;

use common::Api;

/// `POST /v1/agent/enroll` as an agent sends it.
fn enrollment(token: &str, name: Option<&str>, tags: Value) -> Value {
    json!({
        "enroll_token": token,
        "name": name,
        "tags": tags,
        "inventory": {
            "hostname": "host", "os_name": "Linux", "os_version": "6", "kernel": "6.1",
            "arch": "x86_64", "cpus": 2, "memory_bytes": 1024, "agent_version": "test"
        }
    })
}

async fn enroll_token(api: &Api, uses: i64) -> (String, String) {
    let created = api
        .ok("POST", "/v1/enroll-tokens", Some(json!({"uses": uses})))
        .await;
    (
        created["token"].as_str().unwrap().to_string(),
        created["id"].as_str().unwrap().to_string(),
    )
}

fn message(answer: &Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or_default()
}

/// The most recent audit records with `action`.
async fn audit_of(api: &Api, action: &str) -> Vec<Value> {
    let trail = api
        .ok("GET", &format!("/v1/audit?action={action}"), None)
        .await;
    trail.as_array().unwrap().clone()
}

#[tokio::test]
async fn reserved_names_are_refused_and_allowed_calls_name_their_token() {
    let api = Api::start().await;
    let policy = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    for (path, body, word) in [
        ("/v1/users", json!({"name": "Admin"}), "admin"),
        ("/v1/users", json!({"name": "anonymous"}), "anonymous"),
        ("/v1/users", json!({"name": "rule-critical"}), "rule"),
        ("/v1/roles", json!({"name": "ROOT"}), "root"),
        ("/v1/roles", json!({"name": "execution.x-1"}), "execution"),
        (
            "/v1/policies",
            json!({"name": "system", "document": policy}),
            "system",
        ),
    ] {
        let (status, answer) = api.call("POST", path, Some(body.clone())).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert!(
            message(&answer).contains(&format!("\"{word}\" is reserved")),
            "{answer}"
        );
    }
    let users = api.ok("GET", "/v1/users", None).await;
    assert_eq!(users, json!([]), "nothing was created");

    // An allowed call's record names the token that made it.
    api.ok("POST", "/v1/users", Some(json!({"name": "alice"})))
        .await;
    let whoami = api.ok("GET", "/v1/whoami", None).await;
    let records = audit_of(&api, "users:Create").await;
    let created = records.last().unwrap();
    assert_eq!(created["outcome"], "allowed", "{created}");
    assert_eq!(created["detail"]["token"], whoami["token_id"], "{created}");
    // PutEvents writes its record itself: it names the token too.
    api.ok(
        "POST",
        "/v1/events",
        Some(json!({"Entries": [{"Source": "s", "DetailType": "t", "Detail": "{}"}]})),
    )
    .await;
    let put = audit_of(&api, "events:Put").await;
    assert_eq!(put[0]["detail"]["token"], whoami["token_id"], "{put:?}");
}

#[tokio::test]
async fn a_revoked_enrollment_token_enrolls_no_more_nodes() {
    let api = Api::start().await;
    let (token, id) = enroll_token(&api, 5).await;
    api.ok(
        "POST",
        "/v1/agent/enroll",
        Some(enrollment(&token, Some("web-1"), json!({}))),
    )
    .await;
    let revoked = api
        .ok(
            "POST",
            &format!("/v1/enroll-tokens/{id}/revoke"),
            Some(json!({})),
        )
        .await;
    assert!(revoked["revoked_at"].as_i64().is_some(), "{revoked}");
    assert_eq!(revoked["uses"], 1);
    assert!(revoked.get("token_hash").is_none(), "{revoked}");

    let (status, answer) = api
        .call(
            "POST",
            "/v1/agent/enroll",
            Some(enrollment(&token, Some("web-2"), json!({}))),
        )
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(message(&answer).contains("revoked"), "{answer}");
    let nodes = api.ok("GET", "/v1/nodes", None).await;
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    let listed = api.ok("GET", "/v1/enroll-tokens", None).await;
    assert_eq!(listed[0]["revoked_at"], revoked["revoked_at"]);

    // Audited under the catalogue's action, with the caller's token.
    let records = audit_of(&api, "enrollTokens:Revoke").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["resource"], format!("enroll-token/{id}"));
    assert_eq!(records[0]["outcome"], "allowed");
    assert!(records[0]["detail"]["token"].as_str().is_some());
    let refused = audit_of(&api, "nodes:Enroll").await;
    assert_eq!(refused.last().unwrap()["outcome"], "denied");

    let (status, _) = api
        .call("POST", "/v1/enroll-tokens/et-nope/revoke", Some(json!({})))
        .await;
    assert_eq!(status, 404);
}
