//! The "no side doors" review (issue 17), in-process: reserved identity
//! names, the token id in the trail, enrollment token revocation, node names
//! and tags, and node routes that refuse unknown names as they refuse known
//! ones.

use serde_json::{Value, json};

mod common;

use common::Api;

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
