//! Parameter Store on a real server (loopback, temporary data directory):
//! versions, selectors, labels, history, the error codes, SecureStrings
//! sealed at rest and decrypted only with `params:GetDecrypted` (audited),
//! listings that show only what a caller may see, change events on the bus,
//! and key rotation with rewrap.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::Api;

/// A parameter's path segment: the name percent-encoded.
fn at(name: &str) -> String {
    let mut out = String::from("/v1/parameters/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The input an execution started with (the event a rule delivered).
async fn execution_input(api: &Api, id: &str) -> Value {
    let full = api.ok("GET", &format!("/v1/executions/{id}"), None).await;
    match &full["input"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    }
}

async fn put(api: &Api, name: &str, body: Value) -> Value {
    api.ok("PUT", &at(name), Some(body)).await
}

#[tokio::test]
async fn versions_selectors_labels_history_and_delete() {
    let api = Api::start().await;
    let first = put(&api, "/app/prod/db_url", json!({"value": "postgres://a"})).await;
    assert_eq!(
        first,
        json!({"name": "/app/prod/db_url", "version": 1, "tier": "Standard"})
    );

    // A second put without overwrite is a conflict and changes nothing.
    let (status, err) = api
        .call("PUT", &at("/app/prod/db_url"), Some(json!({"value": "x"})))
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "ParameterAlreadyExists");

    let second = put(
        &api,
        "/app/prod/db_url",
        json!({"value": "postgres://b", "overwrite": true, "description": "the db"}),
    )
    .await;
    assert_eq!(second["version"], 2);
    let latest = api.ok("GET", &at("/app/prod/db_url"), None).await;
    assert_eq!(
        (latest["value"].as_str(), latest["version"].as_i64()),
        (Some("postgres://b"), Some(2))
    );
    assert_eq!(latest["last_modified_by"], "admin");
    let v1 = api.ok("GET", &at("/app/prod/db_url:1"), None).await;
    assert_eq!(
        (v1["value"].as_str(), v1["selector"].as_str()),
        (Some("postgres://a"), Some(":1"))
    );

    // Labels: put on v1, moved to v2, read by label.
    let labelled = api
        .ok(
            "POST",
            &format!("{}/labels", at("/app/prod/db_url")),
            Some(json!({"version": 1, "labels": ["live", "9bad"]})),
        )
        .await;
    assert_eq!(labelled, json!({"version": 1, "invalid_labels": ["9bad"]}));
    api.ok(
        "POST",
        &format!("{}/labels", at("/app/prod/db_url")),
        Some(json!({"labels": ["live"]})),
    )
    .await;
    let live = api.ok("GET", &at("/app/prod/db_url:live"), None).await;
    assert_eq!(live["version"], 2);
    let (status, err) = api.call("GET", &at("/app/prod/db_url:gone"), None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("ParameterVersionNotFound"))
    );
    let (status, err) = api.call("GET", &at("/app/prod/db_url:7"), None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("ParameterVersionNotFound"))
    );

    let history = api
        .ok("GET", &format!("{}/history", at("/app/prod/db_url")), None)
        .await;
    let versions: Vec<(i64, Value)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["labels"].clone()))
        .collect();
    assert_eq!(versions, [(1, json!([])), (2, json!(["live"]))]);
    let unlabelled = api
        .ok(
            "POST",
            &format!("{}/unlabel", at("/app/prod/db_url")),
            Some(json!({"version": 2, "labels": ["live", "never"]})),
        )
        .await;
    assert_eq!(
        unlabelled,
        json!({"version": 2, "invalid_labels": ["never"], "removed_labels": ["live"]})
    );

    // Rules of values and names, with SSM's codes.
    let (status, err) = api
        .call(
            "PUT",
            &at("/app/port"),
            Some(json!({"value": "80x", "allowed_pattern": "^\\d+$"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("ParameterPatternMismatchException")),
        "{err}"
    );
    let (status, err) = api
        .call("PUT", &at("/aws/x"), Some(json!({"value": "v"})))
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = api
        .call("PUT", &at("app/x"), Some(json!({"value": "v"})))
        .await;
    assert_eq!(status, 400, "not fully qualified: {err}");
    let deep = format!(
        "/{}",
        (0..16)
            .map(|i| format!("l{i}"))
            .collect::<Vec<_>>()
            .join("/")
    );
    let (status, err) = api
        .call("PUT", &at(&deep), Some(json!({"value": "v"})))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("HierarchyLevelLimitExceededException")),
        "{err}"
    );
    let (status, err) = api
        .call(
            "PUT",
            &at("/app/t"),
            Some(json!({"value": "v", "type": "Secret"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("ValidationException")),
        "{err}"
    );

    // Delete, then it is gone (and a second delete says so).
    let deleted = api.ok("DELETE", &at("/app/prod/db_url"), None).await;
    assert_eq!(deleted, json!({"name": "/app/prod/db_url", "version": 2}));
    let (status, err) = api.call("DELETE", &at("/app/prod/db_url"), None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("ParameterNotFound"))
    );
    let (status, _) = api.call("GET", &at("/app/prod/db_url"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn paths_and_listings_page_and_filter() {
    let api = Api::start().await;
    for i in 0..13 {
        put(
            &api,
            &format!("/svc/a/p{i:02}"),
            json!({"value": format!("v{i}")}),
        )
        .await;
    }
    put(
        &api,
        "/svc/a/deep/x",
        json!({"value": "d", "tags": {"team": "core"}}),
    )
    .await;
    put(&api, "/svc/b", json!({"value": "b", "type": "StringList"})).await;

    // One level: 13 parameters, two pages of 10 and 3.
    let page = api
        .ok("GET", "/v1/parameters-by-path?path=/svc/a", None)
        .await;
    assert_eq!(page["parameters"].as_array().unwrap().len(), 10);
    let token = page["next_token"].as_str().unwrap();
    let rest = api
        .ok(
            "GET",
            &format!("/v1/parameters-by-path?path=/svc/a&next_token={token}"),
            None,
        )
        .await;
    let names: Vec<&str> = rest["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/svc/a/p10", "/svc/a/p11", "/svc/a/p12"]);
    assert!(rest.get("next_token").is_none());
    // Recursive reaches the deeper one.
    let all = api
        .ok(
            "GET",
            "/v1/parameters-by-path?path=/svc/a/&recursive=true&max_results=10",
            None,
        )
        .await;
    let token = all["next_token"].as_str().unwrap();
    let rest = api
        .ok(
            "GET",
            &format!("/v1/parameters-by-path?path=/svc/a/&recursive=true&next_token={token}"),
            None,
        )
        .await;
    let recursive: Vec<&Value> = all["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["parameters"].as_array().unwrap())
        .collect();
    assert_eq!(recursive.len(), 14);
    assert!(recursive.iter().any(|p| p["name"] == "/svc/a/deep/x"));
    let (status, err) = api
        .call(
            "GET",
            "/v1/parameters-by-path?path=/svc&next_token=zz",
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("InvalidNextToken"))
    );

    // Metadata listings by type and tag, without values.
    let lists = api.ok("GET", "/v1/parameters?type=StringList", None).await;
    let listed = lists["parameters"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "/svc/b");
    assert!(listed[0].get("value").is_none(), "listings carry no values");
    let tagged = api.ok("GET", "/v1/parameters?tag=team=core", None).await;
    assert_eq!(tagged["parameters"][0]["name"], "/svc/a/deep/x");
    let tags = api
        .ok("GET", &format!("{}/tags", at("/svc/a/deep/x")), None)
        .await;
    assert_eq!(tags["tags"], json!({"team": "core"}));
}

/// Whether `needle` occurs in the database files (the WAL included).
fn database_contains(api: &Api, needle: &[u8]) -> bool {
    let dir = api.dir.path().join("server");
    ["operon.db", "operon.db-wal"].iter().any(|file| {
        std::fs::read(dir.join(file))
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn secure_strings_are_sealed_decrypted_only_when_allowed_and_every_read_audited() {
    let api = Api::start().await;
    const SECRET: &str = "s3cr3t-value-4b1f9e";
    put(
        &api,
        "/app/prod/password",
        json!({"value": SECRET, "type": "SecureString"}),
    )
    .await;
    put(&api, "/app/prod/user", json!({"value": "app"})).await;
    assert!(
        !database_contains(&api, SECRET.as_bytes()),
        "the value is sealed at rest"
    );

    let plain = api.ok("GET", &at("/app/prod/password"), None).await;
    assert!(plain.get("value").is_none(), "{plain}");
    assert_eq!(plain["key_id"], "alias/aws/ssm");
    let clear = api
        .ok(
            "GET",
            &format!("{}?decrypt=true", at("/app/prod/password")),
            None,
        )
        .await;
    assert_eq!(clear["value"], SECRET);

    // A reader of /app without GetDecrypted: metadata yes, value no, refusal audited.
    let reader = api
        .user_token(
            "reader",
            json!([{"Effect": "Allow", "Action": ["params:Get", "params:List"], "Resource": "param/app/*"}]),
        )
        .await;
    let (status, seen) = api
        .call_as(&reader, "GET", &at("/app/prod/password"), None)
        .await;
    assert_eq!(status, 200, "{seen}");
    assert!(seen.get("value").is_none());
    let (status, err) = api
        .call_as(
            &reader,
            "GET",
            &format!("{}?decrypt=true", at("/app/prod/password")),
            None,
        )
        .await;
    assert_eq!(status, 403, "{err}");
    assert!(!err.to_string().contains(SECRET));
    let (status, _) = api
        .call_as(
            &reader,
            "GET",
            "/v1/parameters-by-path?path=/app/prod&decrypt=true",
            None,
        )
        .await;
    assert_eq!(
        status, 403,
        "decrypting a listing needs GetDecrypted on each SecureString"
    );
    let denied = api.audit_of("reader").await;
    assert!(
        denied
            .iter()
            .any(|r| r["action"] == "params:GetDecrypted" && r["outcome"] == "denied"),
        "{denied:?}"
    );
    // Out of its path, nothing; a listing shows only what it may see.
    put(&api, "/other/x", json!({"value": "o"})).await;
    let (status, _) = api.call_as(&reader, "GET", &at("/other/x"), None).await;
    assert_eq!(status, 403);
    let (status, _) = api.call_as(&reader, "GET", "/v1/parameters", None).await;
    assert_eq!(
        status, 403,
        "listing everything needs params:List on param/*"
    );
    let (_, listed) = api
        .call_as(
            &reader,
            "GET",
            "/v1/parameters?path=/app&recursive=true",
            None,
        )
        .await;
    let names: Vec<&str> = listed["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/app/prod/password", "/app/prod/user"]);

    // The admin's decrypted read was audited with name and version, never the value.
    let trail = api.audit_of("admin").await;
    let reads: Vec<&Value> = trail
        .iter()
        .filter(|r| r["action"] == "params:GetDecrypted")
        .collect();
    assert_eq!(reads.len(), 1, "{trail:?}");
    assert_eq!(
        reads[0]["detail"]["parameters"],
        json!([{"name": "/app/prod/password", "version": 1}])
    );
    let everything = api.ok("GET", "/v1/audit?limit=1000", None).await;
    assert!(!everything.to_string().contains(SECRET));
}

#[tokio::test]
async fn keys_rotate_and_rewrap_keeping_every_version_readable() {
    let api = Api::start().await;
    put(
        &api,
        "/k/s",
        json!({"value": "one", "type": "SecureString"}),
    )
    .await;
    let keys = api.ok("POST", "/v1/keys/rotate", None).await;
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0]["active"].as_bool(), keys[1]["active"].as_bool()),
        (Some(false), Some(true))
    );
    put(&api, "/k/s", json!({"value": "two", "overwrite": true})).await;
    let rewrap = api.ok("POST", "/v1/keys/rewrap", None).await;
    assert_eq!(
        (rewrap["rewrapped"].as_u64(), rewrap["unchanged"].as_u64()),
        (Some(1), Some(1)),
        "{rewrap}"
    );
    let again = api.ok("POST", "/v1/keys/rewrap", None).await;
    assert_eq!(again["rewrapped"], 0);
    for (selector, value) in [("/k/s:1", "one"), ("/k/s:2", "two")] {
        let read = api
            .ok("GET", &format!("{}?decrypt=true", at(selector)), None)
            .await;
        assert_eq!(read["value"], value);
        assert_eq!(read["type"], "SecureString", "an overwrite keeps the type");
    }
    // The ring survives a restart of the key ring file's reader.
    let ring = std::fs::read_to_string(api.dir.path().join("server/keyring")).unwrap();
    assert!(
        ring.contains("\"active\": \"k2\"") || ring.contains("\"active\":\"k2\""),
        "{ring}"
    );
}

#[tokio::test]
async fn every_change_puts_a_parameter_store_change_event_without_the_value() {
    let api = Api::start().await;
    api.capture_events(
        "onchange",
        json!({"source": ["operon.params"], "detail-type": ["Parameter Store Change"]}),
    )
    .await;
    put(
        &api,
        "/e/s",
        json!({"value": "hidden-9f2", "type": "SecureString"}),
    )
    .await;
    put(
        &api,
        "/e/s",
        json!({"value": "hidden-a71", "overwrite": true}),
    )
    .await;
    api.ok(
        "POST",
        &format!("{}/labels", at("/e/s")),
        Some(json!({"labels": ["prod"]})),
    )
    .await;
    api.ok("DELETE", &at("/e/s"), None).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let executions = loop {
        let list = api
            .ok("GET", "/v1/executions?workflow=onchange", None)
            .await;
        if list.as_array().unwrap().len() == 4 {
            break list;
        }
        assert!(Instant::now() < deadline, "events: {list}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let mut seen = Vec::new();
    for e in executions.as_array().unwrap() {
        let id = e["executionId"].as_str().unwrap();
        let input = execution_input(&api, id).await;
        assert!(!input.to_string().contains("hidden-"), "{input}");
        assert_eq!(input["source"], "operon.params");
        let detail = &input["detail"];
        assert_eq!(
            (detail["name"].as_str(), detail["type"].as_str()),
            (Some("/e/s"), Some("SecureString"))
        );
        seen.push((
            detail["operation"].as_str().unwrap().to_string(),
            detail["version"].as_i64().unwrap(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("Create".to_string(), 1),
            ("Delete".to_string(), 2),
            ("LabelParameterVersion".to_string(), 2),
            ("Update".to_string(), 2)
        ]
    );
}

#[tokio::test]
async fn commands_read_parameter_references_when_sent_as_whoever_asked() {
    use common::fleet::Fleet;
    let fleet = Fleet::start_tagged(&[
        ("web-1", vec![("env", "staging")]),
        ("web-2", vec![("env", "staging")]),
    ])
    .await;
    put(&fleet, "/app/staging/greeting", json!({"value": "hello"})).await;
    put(
        &fleet,
        "/app/staging/pw",
        json!({"value": "pw-9c1e", "type": "SecureString"}),
    )
    .await;
    let script = "echo {{ssm:/app/staging/greeting}} {{ ssm-secure:/app/staging/pw }}";
    let done = fleet
        .run(json!({"node_ids": ["web-1"], "parameters": {"commands": [script]}}))
        .await;
    assert_eq!(done["status"], "Success", "{done}");
    assert_eq!(done["invocations"][0]["stdout"], "hello pw-9c1e\n");
    // The stored command keeps the references, not the values.
    let stored = fleet
        .ok(
            "GET",
            &format!("/v1/commands/{}", done["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(
        stored["parameters"]
            .to_string()
            .contains("{{ssm:/app/staging/greeting}}")
    );
    let stored_text = stored.to_string().replace("pw-9c1e\\n", "");
    assert!(
        !stored_text.contains("pw-9c1e"),
        "only the node's output may hold it: {stored}"
    );
    // Sending read the SecureString as the requester, audited.
    let trail = fleet.audit_of("admin").await;
    assert!(trail.iter().any(|r| r["action"] == "params:GetDecrypted"
        && r["detail"]["parameters"][0]["name"] == "/app/staging/pw"));

    // A reference that cannot be read is refused when the command is made,
    // naming it; the wrong kind of reference too.
    let operator = fleet
        .user_token(
            "operator",
            json!([
                {"Effect": "Allow", "Action": "commands:*", "Resource": "*"},
                {"Effect": "Allow", "Action": "params:Get", "Resource": "param/app/*"}
            ]),
        )
        .await;
    let (status, err) = fleet
        .call_as(
            &operator,
            "POST",
            "/v1/commands",
            Some(json!({"node_ids": ["web-1"], "parameters": {"commands": [script]}})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("{{ssm-secure:/app/staging/pw}}"),
        "{err}"
    );
    let (status, err) = fleet
        .call_as(&operator, "POST", "/v1/commands", Some(json!({"node_ids": ["web-1"], "parameters": {"commands": ["echo {{ssm:/app/staging/pw}}"]}})))
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SecureString"),
        "{err}"
    );
    let allowed = fleet
        .call_as(&operator, "POST", "/v1/commands", Some(json!({"node_ids": ["web-1"], "parameters": {"commands": ["echo {{ssm:/app/staging/greeting}}"]}})))
        .await;
    assert_eq!(allowed.0, 200, "{allowed:?}");

    // Deleted between creation and sending: one node at a time, the
    // first runs (slowly), the parameter goes, the second is never sent the
    // reference unresolved: it fails saying why.
    put(&fleet, "/app/staging/gone", json!({"value": "x"})).await;
    let created = fleet
        .ok(
            "POST",
            "/v1/commands",
            Some(
                json!({"node_ids": ["web-1", "web-2"], "max_concurrency": "1", "max_errors": "1",
                "parameters": {"commands": ["echo {{ssm:/app/staging/gone}}; sleep 1"]}}),
            ),
        )
        .await;
    // The first node has been sent its value before the parameter goes.
    let id = created["id"].as_str().unwrap();
    fleet
        .get_until(&format!("/v1/commands/{id}"), |c| {
            c["invocations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["dispatched_at"].is_i64())
        })
        .await;
    fleet.ok("DELETE", &at("/app/staging/gone"), None).await;
    let done = fleet.finished(created["id"].as_str().unwrap()).await;
    let mut outcomes: Vec<(String, String)> = done["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["status"].as_str().unwrap().to_string(),
                i["status_detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes[0].0, "Failed", "{done}");
    assert!(
        outcomes[0].1.contains("{{ssm:/app/staging/gone}}"),
        "{done}"
    );
    assert_eq!(outcomes[1].0, "Success", "{done}");
}

#[tokio::test]
async fn runbooks_read_parameters_and_pass_secrets_on_only_as_references() {
    use common::fleet::Fleet;
    let fleet = Fleet::start_tagged(&[("web-1", vec![("env", "staging")])]).await;
    put(&fleet, "/wf/greeting", json!({"value": "hello"})).await;
    put(
        &fleet,
        "/wf/pw",
        json!({"value": "pw-wf-77", "type": "SecureString"}),
    )
    .await;
    let definition = json!({
        "StartAt": "Read",
        "States": {
            "Read": {"Type": "Task", "Resource": "operon:getParameters",
                     "Parameters": {"Names": ["/wf/greeting", "/wf/pw", "/wf/none"], "WithDecryption": true},
                     "ResultPath": "$.p", "Next": "Path"},
            "Path": {"Type": "Task", "Resource": "operon:getParameters",
                     "Parameters": {"Path": "/wf"}, "ResultPath": "$.path", "Next": "Run"},
            "Run": {"Type": "Task", "Resource": "operon:runCommand.sync",
                    "Parameters": {"InstanceIds": ["web-1"], "Parameters": {
                        "commands.$": "States.Array(States.Format('test {} = $(echo cHctd2YtNzc= | base64 -d) && echo {} secure-ok', $.p.Parameters[1].Value, $.p.Parameters[0].Value))"}},
                    "End": true}
        }
    });
    fleet
        .ok(
            "POST",
            "/v1/workflows",
            Some(json!({"name": "reader", "definition": definition})),
        )
        .await;
    let started = fleet
        .ok(
            "POST",
            "/v1/workflows/reader/executions",
            Some(json!({"input": {}})),
        )
        .await;
    let id = started["executionId"].as_str().unwrap();
    let done = fleet
        .get_until(&format!("/v1/executions/{id}"), |e| {
            e["status"] != "RUNNING"
        })
        .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let output = done["output"].to_string();
    assert!(output.contains("hello secure-ok"), "{output}");
    let history = fleet
        .ok("GET", &format!("/v1/executions/{id}/history"), None)
        .await
        .to_string();
    assert!(history.contains("{{ssm-secure:/wf/pw:1}}"), "{history}");
    assert!(
        history.contains("/wf/none"),
        "InvalidParameters lists it: {history}"
    );
    assert!(
        !history.contains("pw-wf-77"),
        "the secret never enters the history"
    );
    assert!(!output.contains("pw-wf-77"));
}

#[tokio::test]
async fn an_expiration_policy_deletes_the_parameter_when_due_and_says_so() {
    let api = Api::start().await;
    api.capture_events(
        "onpolicy",
        json!({"source": ["operon.params"], "detail-type": ["Parameter Store Policy Action"]}),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let due = chrono::DateTime::from_timestamp(now + 2, 0).unwrap();
    let policies = json!([{"Type": "Expiration", "Version": "1.0",
        "Attributes": {"Timestamp": due.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()}}]);
    // Policies need the Advanced tier.
    let (status, err) = api
        .call(
            "PUT",
            &at("/tmp/token"),
            Some(json!({"value": "t", "policies": policies})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let written = put(
        &api,
        "/tmp/token",
        json!({"value": "t", "policies": policies, "tier": "Advanced"}),
    )
    .await;
    assert_eq!(written["tier"], "Advanced");
    let shown = api.ok("GET", &at("/tmp/token"), None).await;
    assert_eq!(shown["policies"][0]["Type"], "Expiration");

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = api.call("GET", &at("/tmp/token"), None).await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let executions = api
        .get_until("/v1/executions?workflow=onpolicy", |l| {
            l.as_array().unwrap().len() == 1
        })
        .await;
    let id = executions[0]["executionId"].as_str().unwrap();
    let input = execution_input(&api, id).await;
    assert_eq!(input["detail"]["policy-type"], "Expiration", "{input}");
    assert_eq!(input["detail"]["parameter-name"], "/tmp/token");
    let system = api.audit_of("system").await;
    assert!(
        system
            .iter()
            .any(|r| r["action"] == "params:Delete" && r["resource"] == "param/tmp/token"),
        "{system:?}"
    );
}

/// Each in-process agent keeps synced files below its own host root.
fn node_file(api: &Api, node: &str, path: &str) -> std::path::PathBuf {
    api.dir
        .path()
        .join(format!("{node}-root"))
        .join(path.trim_start_matches('/'))
}

#[tokio::test]
async fn a_sync_keeps_files_equal_to_the_parameters_on_exactly_the_targeted_nodes() {
    use common::fleet::Fleet;
    let fleet = Fleet::start_tagged(&[
        ("web-1", vec![("env", "staging")]),
        ("web-2", vec![("env", "staging")]),
        ("db-1", vec![("env", "prod")]),
    ])
    .await;
    for node in ["web-1", "web-2", "db-1"] {
        std::fs::create_dir_all(node_file(&fleet, node, "/etc/app")).unwrap();
    }
    fleet.capture_events("onsync",
        json!({"source": ["operon.params"], "detail-type": [{"prefix": "Parameter Sync Drift"}]}),
    )
    .await;
    put(
        &fleet,
        "/app/staging/db_url",
        json!({"value": "postgres://s"}),
    )
    .await;
    put(
        &fleet,
        "/app/staging/pw",
        json!({"value": "pw-sync-1", "type": "SecureString"}),
    )
    .await;
    let sync = fleet
        .ok(
            "PUT",
            "/v1/param-syncs/app-env",
            Some(json!({"path": "/app/staging/", "targets": ["tag:env=staging"], "file": "/etc/app/env",
                "on_change": "echo changed >> \"$(dirname \"$OPERON_SYNC_FILE\")/changes\""})),
        )
        .await;
    assert_eq!(
        (sync["mode"].as_str(), sync["format"].as_str()),
        (Some("0600"), Some("dotenv"))
    );

    let applied = |versions: &'static str| {
        move |s: &Value| {
            let nodes = s["nodes"].as_array().unwrap();
            nodes.len() == 2
                && nodes.iter().all(|n| {
                    n["status"] == "applied"
                        && n["versions"].as_str().is_some_and(|v| v.contains(versions))
                })
        }
    };
    let status = fleet
        .get_until("/v1/param-syncs/app-env", applied("/app/staging/db_url:1"))
        .await;
    assert_eq!(status["nodes"][0]["on_change_exit"], 0, "{status}");
    let expected = "DB_URL=\"postgres://s\"\nPW=\"pw-sync-1\"\n";
    for node in ["web-1", "web-2"] {
        let file = node_file(&fleet, node, "/etc/app/env");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let changes = std::fs::read_to_string(node_file(&fleet, node, "/etc/app/changes")).unwrap();
        assert_eq!(changes.lines().count(), 1, "{node}");
    }
    assert!(
        !node_file(&fleet, "db-1", "/etc/app/env").exists(),
        "another environment is never touched"
    );

    // A change reaches both files once; the on-change command runs once more per node.
    put(
        &fleet,
        "/app/staging/db_url",
        json!({"value": "postgres://s2", "overwrite": true}),
    )
    .await;
    fleet
        .get_until("/v1/param-syncs/app-env", applied("/app/staging/db_url:2"))
        .await;
    for node in ["web-1", "web-2"] {
        let text = std::fs::read_to_string(node_file(&fleet, node, "/etc/app/env")).unwrap();
        assert!(text.starts_with("DB_URL=\"postgres://s2\"\n"), "{text}");
        let changes = std::fs::read_to_string(node_file(&fleet, node, "/etc/app/changes")).unwrap();
        assert_eq!(changes.lines().count(), 2, "{node}");
    }

    // A hand edit is seen, put back, and said.
    let edited = node_file(&fleet, "web-1", "/etc/app/env");
    std::fs::write(&edited, "DB_URL=\"hand-edited\"\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&edited).unwrap();
        if text.starts_with("DB_URL=\"postgres://s2\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edit was never put back: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = fleet
        .get_until("/v1/executions?workflow=onsync", |l| {
            l.as_array().unwrap().len() == 2
        })
        .await;
    let mut kinds = Vec::new();
    for e in events.as_array().unwrap() {
        let input = execution_input(&fleet, e["executionId"].as_str().unwrap()).await;
        assert_eq!(input["detail"]["node-name"], "web-1", "{input}");
        kinds.push(input["detail-type"].as_str().unwrap().to_string());
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Parameter Sync Drift Corrected",
            "Parameter Sync Drift Detected"
        ]
    );

    // The secret is in the nodes' files only: not in the database, not in the trail.
    assert!(!database_contains(&fleet, b"pw-sync-1"));
    let trail = fleet
        .ok("GET", "/v1/audit?limit=1000", None)
        .await
        .to_string();
    assert!(!trail.contains("pw-sync-1"));
    assert!(trail.contains("paramSyncs:Write"), "each write is audited");

    // Deleting the sync leaves the files.
    fleet.ok("DELETE", "/v1/param-syncs/app-env", None).await;
    assert!(node_file(&fleet, "web-2", "/etc/app/env").exists());
}

#[tokio::test]
async fn a_sync_reads_only_what_its_author_may_and_says_why_not() {
    use common::fleet::Fleet;
    let fleet = Fleet::start_tagged(&[("web-1", vec![("env", "staging")])]).await;
    std::fs::create_dir_all(node_file(&fleet, "web-1", "/etc/app")).unwrap();
    put(&fleet, "/app/s/url", json!({"value": "u"})).await;
    put(
        &fleet,
        "/app/s/pw",
        json!({"value": "p-7", "type": "SecureString"}),
    )
    .await;
    let limited = fleet
        .user_token(
            "limited",
            json!([
                {"Effect": "Allow", "Action": ["paramSyncs:*", "commands:Run"], "Resource": "*"},
                {"Effect": "Allow", "Action": "params:Get", "Resource": "param/app/*"}
            ]),
        )
        .await;
    let (status, answer) = fleet
        .call_as(
            &limited,
            "PUT",
            "/v1/param-syncs/limited-env",
            Some(json!({"path": "/app/s/", "targets": ["all"], "file": "/etc/app/env"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let status = fleet
        .get_until("/v1/param-syncs/limited-env", |s| {
            s["nodes"][0]["status"] == "failed"
        })
        .await;
    let detail = status["nodes"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("params:GetDecrypted"), "{detail}");
    assert!(!node_file(&fleet, "web-1", "/etc/app/env").exists());
    let trail = fleet.audit_of("sync/limited-env").await;
    assert!(
        trail
            .iter()
            .any(|r| r["action"] == "paramSyncs:Render" && r["outcome"] == "denied"),
        "{trail:?}"
    );
}

#[tokio::test]
async fn an_event_cannot_make_a_rule_read_a_parameter_its_author_did_not_name() {
    use common::fleet::Fleet;
    let fleet = Fleet::start_tagged(&[("web-1", vec![("env", "staging")])]).await;
    put(
        &fleet,
        "/db/pw",
        json!({"value": "pw-evt-3", "type": "SecureString"}),
    )
    .await;
    let rule = json!({
        "pattern": {"source": ["app.deploy"]},
        "targets": [{"Id": "run", "Kind": "run-command", "Targets": ["tag:env=staging"],
                     "InputPath": "$.detail",
                     "Parameters": {"commands": ["echo deploy"]}}]
    });
    fleet.ok("PUT", "/v1/rules/deploy", Some(rule)).await;
    let detail = json!({"parameters": {"commands": ["echo {{ssm-secure:/db/pw}}"]}});
    fleet
        .ok(
            "POST",
            "/v1/events",
            Some(
                json!({"Entries": [{"Source": "app.deploy", "DetailType": "d",
                                     "Detail": detail.to_string()}]}),
            ),
        )
        .await;
    let dead = fleet
        .get_until("/v1/dlq", |l| !l.as_array().unwrap().is_empty())
        .await;
    let text = dead.to_string();
    assert!(text.contains("only the target's own"), "{text}");
    let commands = fleet.ok("GET", "/v1/commands", None).await;
    assert!(commands.as_array().unwrap().is_empty(), "{commands}");
    // The target's own parameters still run.
    let plain = json!({"parameters": {"commands": ["echo plain"]}});
    fleet
        .ok(
            "POST",
            "/v1/events",
            Some(
                json!({"Entries": [{"Source": "app.deploy", "DetailType": "d",
                                     "Detail": plain.to_string()}]}),
            ),
        )
        .await;
    fleet
        .get_until("/v1/commands", |l| l.as_array().unwrap().len() == 1)
        .await;
}
