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

#[tokio::test]
async fn node_names_and_tags_are_validated_at_enrollment_and_tagging() {
    let api = Api::start().await;
    let (token, _) = enroll_token(&api, 10).await;
    let prod = api
        .ok(
            "POST",
            "/v1/agent/enroll",
            Some(enrollment(&token, Some("prod"), json!({"env": "prod"}))),
        )
        .await;
    let prod_id = prod["node_id"].as_str().unwrap().to_string();
    for (name, tags, says) in [
        (
            Some("web\u{1b}]0;pwned\u{7}"),
            json!({}),
            "invalid node name",
        ),
        (Some(prod_id.as_str()), json!({}), "invalid node name"),
        (Some("n-0123456789abcdef"), json!({}), "invalid node name"),
        (Some(&*"x".repeat(64)), json!({}), "invalid node name"),
        (Some("web"), json!({"env": "a\u{1b}[2J"}), "invalid value"),
        (
            Some("web"),
            json!({"Env": "a", "env": "b"}),
            "differ only in case",
        ),
    ] {
        let (status, answer) = api
            .call(
                "POST",
                "/v1/agent/enroll",
                Some(enrollment(&token, name, tags)),
            )
            .await;
        assert_eq!(status, 400, "{name:?}: {answer}");
        assert!(message(&answer).contains(says), "{name:?}: {answer}");
    }
    // Refused enrollments used none of the token's uses.
    let listed = api.ok("GET", "/v1/enroll-tokens", None).await;
    assert_eq!(listed[0]["uses"], 1);

    // A taken name gets a suffix: names stay unique.
    let again = api
        .ok(
            "POST",
            "/v1/agent/enroll",
            Some(enrollment(&token, Some("prod"), json!({}))),
        )
        .await;
    assert_eq!(again["name"], "prod-2");

    // Tags set later follow the same rules, and a key differing only in
    // case from one the node has is refused.
    for (set, says) in [
        (json!({"ENV": "x"}), "differs only in case"),
        (json!({"env": "x\ry"}), "invalid value"),
        (json!({"a=b": "x"}), "invalid tag key"),
    ] {
        let (status, answer) = api
            .call("POST", "/v1/nodes/prod/tags", Some(json!({"set": set})))
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(message(&answer).contains(says), "{answer}");
    }
    // Replacing the key in one change is fine.
    let node = api
        .ok(
            "POST",
            "/v1/nodes/prod/tags",
            Some(json!({"remove": ["env"], "set": {"Env": "prod"}})),
        )
        .await;
    assert_eq!(node["tags"], json!({"Env": "prod"}));
}

#[tokio::test]
async fn node_routes_refuse_unknown_names_as_they_refuse_known_ones() {
    let api = Api::start().await;
    let (token, _) = enroll_token(&api, 2).await;
    for name in ["web-1", "db-1"] {
        api.ok(
            "POST",
            "/v1/agent/enroll",
            Some(enrollment(&token, Some(name), json!({}))),
        )
        .await;
    }
    api.ok(
        "POST",
        "/v1/policies",
        Some(
            json!({"name": "web-nodes", "document": {"Statement": [{"Effect": "Allow",
            "Action": ["nodes:Get", "nodes:Tag", "nodes:Revoke", "nodes:RotateCredential"],
            "Resource": "node/web-*"}]}}),
        ),
    )
    .await;
    api.ok(
        "POST",
        "/v1/roles",
        Some(json!({"name": "web-ops", "policies": ["web-nodes"]})),
    )
    .await;
    api.ok(
        "POST",
        "/v1/users",
        Some(json!({"name": "bob", "roles": ["web-ops"]})),
    )
    .await;
    let bob = api
        .ok(
            "POST",
            "/v1/tokens",
            Some(json!({"name": "t", "user": "bob"})),
        )
        .await;
    let bob = bob["token"].as_str().unwrap();

    let tag = json!({"set": {"x": "y"}});
    for (method, path, body) in [
        ("GET", "/v1/nodes/{}", None),
        ("POST", "/v1/nodes/{}/tags", Some(tag.clone())),
        ("POST", "/v1/nodes/{}/revoke", Some(json!({}))),
        ("POST", "/v1/nodes/{}/rotate-credential", Some(json!({}))),
    ] {
        let (known, _) = api
            .call_as(bob, method, &path.replace("{}", "db-1"), body.clone())
            .await;
        let (unknown, answer) = api
            .call_as(bob, method, &path.replace("{}", "db-9"), body.clone())
            .await;
        assert_eq!((known, unknown), (403, 403), "{method} {path}: {answer}");
        // Within reach by name, a missing node is a plain 404.
        let (missing, _) = api
            .call_as(bob, method, &path.replace("{}", "web-9"), body)
            .await;
        assert_eq!(missing, 404, "{method} {path}");
    }
    let (status, _) = api.call_as(bob, "GET", "/v1/nodes/web-1", None).await;
    assert_eq!(status, 200);
    // The refusal of a name no node has is audited like any other.
    let trail = api.ok("GET", "/v1/audit?actor=bob", None).await;
    assert!(
        trail
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "denied" && r["resource"] == "node/db-9"),
        "{trail}"
    );
}

/// The token after `token` as sequential tokens (`<prefix>-<n>`, eight
/// digits) would have it; otherwise `token` with its last digit changed.
fn next_of(token: &str) -> String {
    if let Some((prefix, n)) = token.rsplit_once('-')
        && n.len() == 8
        && let Ok(n) = n.parse::<u64>()
    {
        return format!("{prefix}-{:08}", n + 1);
    }
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

#[tokio::test]
async fn sibling_task_tokens_are_independent() {
    let api = Api::start().await;
    let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "child", "definition": pass})),
    )
    .await;
    // Two tasks waiting at once, each handing its token to a child execution.
    let ask = |n: u32| {
        json!({"StartAt": "Ask", "States": {"Ask": {"Type": "Task",
            "Resource": "operon:startExecution.waitForTaskToken",
            "Parameters": {"StateMachine": "child", "Input": {"n": n, "token.$": "$$.Task.Token"}},
            "End": true}}})
    };
    let definition = json!({"StartAt": "Both", "States": {"Both": {"Type": "Parallel",
        "End": true, "Branches": [ask(1), ask(2)]}}});
    api.ok(
        "POST",
        "/v1/workflows",
        Some(json!({"name": "waits", "definition": definition})),
    )
    .await;
    let started = api
        .ok("POST", "/v1/workflows/waits/executions", Some(json!({})))
        .await;
    let id = started["executionId"].as_str().unwrap().to_string();
    let children = api
        .get_until("/v1/executions?workflow=child", |list| {
            list.as_array().is_some_and(|l| l.len() == 2)
        })
        .await;
    let mut tokens = Vec::new();
    for child in children.as_array().unwrap() {
        let child_id = child["executionId"].as_str().unwrap();
        let child = api
            .ok("GET", &format!("/v1/executions/{child_id}"), None)
            .await;
        tokens.push(child["input"]["token"].as_str().unwrap().to_string());
    }
    let (a, b) = (&tokens[0], &tokens[1]);
    // A fixed marker, then nothing in common (8 hex digits alike: 1 in 4e9).
    assert!(a.starts_with("ott_") && b.starts_with("ott_"), "{tokens:?}");
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    assert!(common < 4 + 8, "{tokens:?}");
    assert!(!a.contains(&id) && !b.contains(&id), "{tokens:?}");

    // A token made from a sibling's is refused; the real ones are accepted.
    for token in [a, b] {
        let derived = next_of(token);
        assert!(!tokens.contains(&derived));
        let (status, answer) = api
            .call(
                "POST",
                "/v1/tasks/send-success",
                Some(json!({"taskToken": derived, "output": {}})),
            )
            .await;
        assert_eq!(status, 404, "{derived}: {answer}");
    }
    for token in &tokens {
        api.ok(
            "POST",
            "/v1/tasks/send-success",
            Some(json!({"taskToken": token, "output": {"ok": true}})),
        )
        .await;
    }
    let done = api
        .get_until(&format!("/v1/executions/{id}"), |e| {
            e["status"] != "RUNNING"
        })
        .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
}

/// POST a webhook request signed with `secret` at `at` (Unix seconds).
async fn post_hook(api: &Api, name: &str, secret: &str, at: i64, body: &str) -> (u16, Value) {
    use operon_server::events::signing;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/hooks/{name}", api.server.url()))
        .header("content-type", "application/json")
        .header(signing::TIMESTAMP_HEADER, at.to_string())
        .header(
            signing::SIGNATURE_HEADER,
            signing::signature(secret, at, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").cloned();
    let mut answer: Value = response.json().await.unwrap_or(Value::Null);
    if let Some(value) = retry_after {
        answer["retry-after"] = json!(value.to_str().unwrap());
    }
    (status, answer)
}

#[tokio::test]
async fn inbound_webhooks_refuse_replays_alike_and_boundedly() {
    let api = Api::start_with(|config| {
        config.refusal_rate = operon_server::refusals::RefusalRate {
            burst: 3,
            per_minute: 1,
        };
    })
    .await;
    let secret = "a-webhook-secret-of-some-length";
    api.ok(
        "POST",
        "/v1/webhooks",
        Some(json!({"name": "ci", "secret": secret})),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = r#"{"build": 7}"#;
    let (status, answer) = post_hook(&api, "ci", secret, now, body).await;
    assert_eq!(status, 200, "{answer}");

    // The same signed request again is a replay.
    let (status, answer) = post_hook(&api, "ci", secret, now, body).await;
    assert_eq!(status, 409, "{answer}");
    let events = api.ok("GET", "/v1/audit?actor=webhook/ci", None).await;
    assert_eq!(
        events.as_array().unwrap().len(),
        1,
        "accepted once: {events}"
    );

    // A bad signature and an unknown webhook get the same answer.
    let bad = post_hook(&api, "ci", "not-the-secret-at-all", now, body).await;
    api.ok("DELETE", "/v1/webhooks/ci", None).await;
    let unknown = post_hook(&api, "ci", secret, now + 1, body).await;
    assert_eq!(bad.0, 401, "{bad:?}");
    assert_eq!(bad, unknown);

    // Each refusal is audited with its reason, up to the source's rate.
    let trail = api.ok("GET", "/v1/audit?actor=anonymous", None).await;
    let reasons: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resource"] == "webhook/ci" && r["outcome"] == "unauthenticated")
        .map(|r| r["detail"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{trail}");
    assert!(reasons[0].starts_with("replayed"), "{reasons:?}");
    assert!(reasons[1].contains("signature"), "{reasons:?}");
    assert_eq!(reasons[2], "unknown webhook");
    // Past it: 429 and no record (the minute's summary counts them).
    let (status, answer) = post_hook(&api, "ci", secret, now, body).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["retry-after"], "60");
    let trail = api.ok("GET", "/v1/audit?actor=anonymous", None).await;
    assert_eq!(trail.as_array().unwrap().len(), 3, "{trail}");
}

/// An agent connection with a bad credential, as a WebSocket client sends it.
async fn connect_as(api: &Api, credential: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/agent/connect", api.server.url()))
        .bearer_auth(credential)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn refused_agent_connections_are_audited_boundedly() {
    let api = Api::start_with(|config| {
        config.refusal_rate = operon_server::refusals::RefusalRate {
            burst: 2,
            per_minute: 1,
        };
    })
    .await;
    assert_eq!(connect_as(&api, "opn_node_guessed").await, 401);
    assert_eq!(connect_as(&api, "opn_node_guessed-again").await, 401);
    let refused = audit_of(&api, "agent:Connect").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r["outcome"] == "unauthenticated" && r["detail"]["source"] == "127.0.0.1"),
        "{refused:?}"
    );
    assert!(
        !format!("{refused:?}").contains("guessed"),
        "no credential in the trail"
    );
    // Past the source's budget: 429, and no record of its own.
    assert_eq!(connect_as(&api, "opn_node_flood").await, 429);
    assert_eq!(audit_of(&api, "agent:Connect").await.len(), 2);
}
