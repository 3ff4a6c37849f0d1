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

fn node_path(api: &Api, node: &str, path: &str) -> std::path::PathBuf {
    api.dir
        .path()
        .join(format!("{node}-root"))
        .join(path.trim_start_matches('/'))
}

/// The compliance of one association on one node, once `done` holds.
async fn compliance_until(
    api: &Api,
    association: &str,
    node: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/v1/compliance?association={association}&node={node}");
    let list = api
        .get_until(&path, |list| {
            list.as_array().unwrap().first().is_some_and(&done)
        })
        .await;
    list[0].clone()
}

fn outcomes(node: &Value) -> Vec<(String, String)> {
    node["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["resource"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn all(outcome: &str) -> impl Fn(&Value) -> bool + '_ {
    move |node: &Value| {
        node["resources"]
            .as_array()
            .is_some_and(|rs| !rs.is_empty() && rs.iter().all(|r| r["outcome"] == outcome))
    }
}

#[tokio::test]
async fn an_association_converges_reports_drift_and_puts_it_back() {
    let fleet = Fleet::start(&[("web-1", "web"), ("db-1", "db")]).await;
    let api = &fleet.api;
    create_document(api, "baseline", baseline()).await;
    api.capture_events("onstate", json!({"source": ["operon.state"]}))
        .await;

    // Applied at creation on the web node only; every resource changes.
    let created = api
        .ok(
            "POST",
            "/v1/associations",
            Some(
                json!({"name": "web", "document": "baseline", "targets": ["tag:role=web"],
                        "parameters": {"port": "9090"}, "compliance_severity": "HIGH"}),
            ),
        )
        .await;
    assert_eq!(created["version"], 1);
    let first = compliance_until(api, "web", "web-1", |n| n["status"] == "COMPLIANT").await;
    let first = outcomes(&first);
    assert_eq!(
        first,
        vec![
            ("app-conf".into(), "changed".into()),
            ("app-dir".into(), "changed".into()),
            ("motd".into(), "changed".into()),
            ("reload".into(), "changed".into()),
            ("seed".into(), "unchanged".into()),
        ],
        "the file notified reload, which ran; seed's `creates` held"
    );
    let conf = node_path(api, "web-1", "/srv/app/app.conf");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "port=9090\nlog=info\n"
    );
    assert!(
        !node_path(api, "db-1", "/srv/app").exists(),
        "db-1 is not targeted"
    );

    // Applied again: nothing changes.
    let run = api
        .ok("POST", "/v1/associations/web/run", Some(json!({})))
        .await;
    fleet.finished(run["command_id"].as_str().unwrap()).await;
    compliance_until(api, "web", "web-1", all("unchanged")).await;

    // A hand edit is seen within seconds: drifted, non-compliant.
    std::fs::write(&conf, "port=1\nlog=debug\n").unwrap();
    let drifted = compliance_until(api, "web", "web-1", |n| n["status"] == "NON_COMPLIANT").await;
    let conf_state = drifted["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "app-conf")
        .unwrap()
        .clone();
    assert_eq!(conf_state["outcome"], "drifted", "{conf_state}");
    assert_eq!(conf_state["message"], "content changed");

    // Check mode reports the diff and changes nothing.
    let check = api
        .ok(
            "POST",
            "/v1/associations/web/run",
            Some(json!({"check": true})),
        )
        .await;
    assert_eq!(check["mode"], "check");
    let command = fleet.finished(check["command_id"].as_str().unwrap()).await;
    assert_eq!(command["status"], "Success", "{command}");
    let checked = compliance_until(api, "web", "web-1", |n| {
        n["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resource"] == "app-conf" && r["outcome"] == "would_change")
    })
    .await;
    let diff = checked["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "app-conf")
        .unwrap()["diff"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        diff.contains("-port=1\n") && diff.contains("+port=9090\n"),
        "{diff}"
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "port=1\nlog=debug\n"
    );

    // Put back by the next apply; compliant again.
    let run = api
        .ok("POST", "/v1/associations/web/run", Some(json!({})))
        .await;
    fleet.finished(run["command_id"].as_str().unwrap()).await;
    compliance_until(api, "web", "web-1", |n| n["status"] == "COMPLIANT").await;
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "port=9090\nlog=info\n"
    );

    // With remediate_drift, a hand edit is put back without anyone asking.
    api.ok(
        "PUT",
        "/v1/associations/web",
        Some(json!({"document": "baseline", "targets": ["tag:role=web"],
                    "parameters": {"port": "9090"}, "compliance_severity": "HIGH",
                    "remediate_drift": true})),
    )
    .await;
    // The update applies version 2; wait until it has.
    let detail = api
        .get_until("/v1/associations/web", |d| {
            d["runs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["version"] == 2)
        })
        .await;
    let update_run = detail["runs"][0]["command_id"]
        .as_str()
        .unwrap()
        .to_string();
    fleet.finished(&update_run).await;
    compliance_until(api, "web", "web-1", |n| {
        n["command_id"] == update_run.as_str()
    })
    .await;
    std::fs::write(&conf, "tampered\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&conf).unwrap() != "port=9090\nlog=info\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "the drift was not put back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let detail = api.ok("GET", "/v1/associations/web", None).await;
    assert!(
        detail["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"] == "drift" && r["node_id"].as_str().is_some()),
        "{detail}"
    );

    // The events (their times are whole seconds, so counted, not ordered):
    // twice non-compliant (two hand edits), twice compliant again (the apply,
    // the remediation), two drifts detected.
    let events = api.captured_events("onstate", 6).await;
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap().to_string(),
                e["detail"]["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let count = |kind: &str, status: &str| {
        kinds
            .iter()
            .filter(|(k, s)| k == kind && s == status)
            .count()
    };
    assert_eq!(count("Association Drift Detected", ""), 2, "{kinds:?}");
    assert_eq!(
        count("Association Compliance Change", "NON_COMPLIANT"),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        count("Association Compliance Change", "COMPLIANT"),
        2,
        "{kinds:?}"
    );
    let change = events
        .iter()
        .find(|e| {
            e["detail-type"] == "Association Compliance Change"
                && e["detail"]["status"] == "NON_COMPLIANT"
        })
        .unwrap();
    assert_eq!(change["detail"]["previous-status"], "COMPLIANT");
    assert_eq!(change["detail"]["association"], "web");
    assert_eq!(change["detail"]["node-name"], "web-1");
    assert_eq!(change["detail"]["severity"], "HIGH");
    assert_eq!(
        change["detail"]["non-compliant-resources"],
        json!(["app-conf"])
    );

    // Summary and a deleted association's compliance.
    let summary = api.ok("GET", "/v1/compliance/summary", None).await;
    assert_eq!(summary["associations"][0]["association"], "web");
    assert_eq!(summary["severities"][0]["severity"], "HIGH");
    api.ok("DELETE", "/v1/associations/web", None).await;
    let list = api.ok("GET", "/v1/compliance", None).await;
    assert!(list.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_resource_fails_only_itself_and_what_requires_it() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let api = &fleet.api;
    let document = json!({
        "schemaVersion": "operon-state/1",
        "resources": [
            {"name": "broken", "type": "command", "run": "echo no >&2; exit 3"},
            {"name": "after-broken", "type": "file", "path": "/srv/after", "content": "x\n",
             "requires": ["broken"]},
            {"name": "independent", "type": "file", "path": "/srv/independent", "content": "y\n"}
        ]
    });
    create_document(api, "broken", document).await;
    std::fs::create_dir_all(node_path(api, "web-1", "/srv")).unwrap();
    api.ok(
        "POST",
        "/v1/associations",
        Some(json!({"name": "broken", "document": "broken", "targets": ["all"]})),
    )
    .await;
    let node = compliance_until(api, "broken", "web-1", |_| true).await;
    assert_eq!(node["status"], "NON_COMPLIANT");
    let by_name: std::collections::BTreeMap<String, String> = outcomes(&node).into_iter().collect();
    assert_eq!(by_name["broken"], "failed");
    assert_eq!(by_name["after-broken"], "skipped");
    assert_eq!(by_name["independent"], "changed");
    let skipped = node["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "after-broken")
        .unwrap();
    assert!(
        skipped["message"].as_str().unwrap().contains("broken"),
        "{skipped}"
    );
}

#[tokio::test]
async fn an_association_acts_as_its_author_node_by_node() {
    let fleet = Fleet::start(&[("web-1", "web"), ("db-1", "db")]).await;
    let api = &fleet.api;
    create_document(api, "baseline", baseline()).await;
    let alice = api
        .user_token(
            "alice",
            json!([
                {"Effect": "Allow", "Action": ["associations:*", "compliance:Get"], "Resource": "*"},
                {"Effect": "Allow", "Action": "commands:Run", "Resource": "node/*",
                 "Condition": {"StringEquals": {"operon:NodeTag/role": "web"}}}
            ]),
        )
        .await;
    let (status, answer) = api
        .call_as(
            &alice,
            "POST",
            "/v1/associations",
            Some(json!({"name": "everywhere", "document": "baseline", "targets": ["all"]})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    compliance_until(api, "everywhere", "web-1", |n| n["status"] == "COMPLIANT").await;
    // db-1 was refused: alice may not run there, so neither may her association.
    let refusals = api.audit_of("association%2Feverywhere").await;
    assert!(
        refusals.iter().any(|r| r["outcome"] == "denied"
            && r["resource"].as_str().is_some_and(|s| s.contains("db-1"))),
        "{refusals:?}"
    );
    assert!(!node_path(api, "db-1", "/srv/app").exists());

    // A user allowed nothing of compliance is refused; one denied the db
    // nodes sees only the others.
    let nobody = api
        .user_token(
            "nobody",
            json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]),
        )
        .await;
    let (status, _) = api.call_as(&nobody, "GET", "/v1/compliance", None).await;
    assert_eq!(status, 403);
    let (status, _) = api
        .call_as(&nobody, "GET", "/v1/compliance/summary", None)
        .await;
    assert_eq!(status, 403);
    let web_only = api
        .user_token(
            "webview",
            json!([{"Effect": "Allow", "Action": "compliance:Get", "Resource": "node/*"},
                   {"Effect": "Deny", "Action": "compliance:Get", "Resource": "node/*",
                    "Condition": {"StringEquals": {"operon:NodeTag/role": "db"}}}]),
        )
        .await;
    let (status, list) = api.call_as(&web_only, "GET", "/v1/compliance", None).await;
    assert_eq!(status, 200);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|n| n["node_name"] == "web-1"),
        "{list}"
    );
}

#[tokio::test]
async fn secure_parameters_reach_the_file_but_never_a_diff_a_row_or_a_view() {
    const SECRET: &str = "pw-St4te-never-in-a-diff";
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let api = &fleet.api;
    api.ok(
        "PUT",
        "/v1/parameters/%2Fapp%2Fpw",
        Some(json!({"value": SECRET, "type": "SecureString"})),
    )
    .await;
    let document = json!({
        "schemaVersion": "operon-state/1",
        "resources": [
            {"name": "env", "type": "file", "path": "/etc/app.env", "mode": "0600",
             "template": "PASSWORD={{ssm-secure:/app/pw}}\n"}
        ]
    });
    create_document(api, "secret-env", document).await;
    std::fs::create_dir_all(node_path(api, "web-1", "/etc")).unwrap();
    api.ok(
        "POST",
        "/v1/associations",
        Some(json!({"name": "env", "document": "secret-env", "targets": ["all"]})),
    )
    .await;
    compliance_until(api, "env", "web-1", |n| n["status"] == "COMPLIANT").await;
    let file = node_path(api, "web-1", "/etc/app.env");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("PASSWORD={SECRET}\n")
    );

    // A hand edit, then a check: what differs is said, the content is not.
    std::fs::write(&file, "PASSWORD=guess\n").unwrap();
    compliance_until(api, "env", "web-1", |n| n["status"] == "NON_COMPLIANT").await;
    let check = api
        .ok(
            "POST",
            "/v1/associations/env/run",
            Some(json!({"check": true})),
        )
        .await;
    let command_id = check["command_id"].as_str().unwrap().to_string();
    let command = fleet.finished(&command_id).await;
    let checked = compliance_until(api, "env", "web-1", |n| {
        n["resources"][0]["outcome"] == "would_change"
    })
    .await;
    let resource = &checked["resources"][0];
    assert!(resource["diff"].is_null(), "{resource}");
    assert!(
        resource["changes"].to_string().contains("hidden"),
        "{resource}"
    );
    for (what, value) in [("compliance", checked.clone()), ("command", command)] {
        assert!(
            !value.to_string().contains(SECRET),
            "{what} shows the secret: {value}"
        );
        assert!(
            !value.to_string().contains("guess"),
            "{what} shows the old content: {value}"
        );
    }
    let detail = api.ok("GET", "/v1/associations/env", None).await;
    assert!(!detail.to_string().contains(SECRET));
    let server = api.dir.path().join("server");
    let size = |file: &str| std::fs::metadata(server.join(file)).map_or(0, |m| m.len());
    assert!(
        size("operon.db") + size("operon.db-wal") > 64 * 1024,
        "the database is where the test reads it"
    );
    for file in ["operon.db", "operon.db-wal"] {
        let bytes = std::fs::read(server.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{file} holds the secret"
        );
    }
}

#[tokio::test]
async fn a_node_that_joins_the_target_gets_the_association() {
    let mut fleet = Fleet::start(&[("web-1", "web")]).await;
    create_document(&fleet.api, "baseline", baseline()).await;
    fleet
        .ok(
            "POST",
            "/v1/associations",
            Some(json!({"name": "web", "document": "baseline", "targets": ["tag:role=web"]})),
        )
        .await;
    compliance_until(&fleet.api, "web", "web-1", |n| n["status"] == "COMPLIANT").await;
    fleet.join("web-2", &[("role", "web")]).await;
    fleet.join("db-1", &[("role", "db")]).await;
    let joined = compliance_until(&fleet.api, "web", "web-2", |n| n["status"] == "COMPLIANT").await;
    let by_name: std::collections::BTreeMap<String, String> =
        outcomes(&joined).into_iter().collect();
    assert_eq!(by_name["app-conf"], "changed", "{joined}");
    // The run's row is written right after its command is created, so under
    // load the node can report compliance first: wait for the row.
    let detail = fleet
        .get_until("/v1/associations/web", |d| {
            d["runs"]
                .as_array()
                .is_some_and(|runs| runs.iter().any(|r| r["reason"] == "joined"))
        })
        .await;
    let runs = detail["runs"].as_array().unwrap();
    let joined_runs: Vec<&Value> = runs.iter().filter(|r| r["reason"] == "joined").collect();
    assert_eq!(
        joined_runs.len(),
        1,
        "one run for the node that joined: {runs:?}"
    );
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        !node_path(&fleet.api, "db-1", "/srv/app").exists(),
        "db-1 is not targeted"
    );
}

#[tokio::test]
async fn a_new_default_document_version_is_applied_and_inventory_targets_choose_nodes() {
    let fleet = Fleet::start_with(
        &[
            ("web-1", vec![("role", "web")]),
            ("web-2", vec![("role", "web")]),
        ],
        std::time::Duration::from_millis(300),
    )
    .await;
    let api = &fleet.api;
    // Only web-2 reports the application in its custom inventory.
    let dir = fleet.custom_inventory_dir("web-2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("apps.json"),
        json!({"billing": {"version": "2.1"}}).to_string(),
    )
    .unwrap();
    api.get_until("/v1/nodes/web-2/inventory?type=custom:apps", |a| {
        a["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    let version = |word: &str| {
        json!({"schemaVersion": "operon-state/1", "resources": [
            {"name": "marker", "type": "file", "path": "/srv/marker", "content": format!("{word}\n")}
        ]})
    };
    create_document(api, "marker", version("one")).await;
    for node in ["web-1", "web-2"] {
        std::fs::create_dir_all(node_path(api, node, "/srv")).unwrap();
    }
    api.ok(
        "POST",
        "/v1/associations",
        Some(json!({"name": "billing", "document": "marker",
                    "targets": ["inventory:custom:apps:name=billing,version>=2"]})),
    )
    .await;
    compliance_until(api, "billing", "web-2", |n| n["status"] == "COMPLIANT").await;
    let marker = node_path(api, "web-2", "/srv/marker");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "one\n");
    assert!(
        !node_path(api, "web-1", "/srv/marker").exists(),
        "web-1 has no billing"
    );

    // Version 2 of the document is stored: nothing happens until it is the default.
    create_document(api, "marker", version("two")).await;
    api.ok(
        "POST",
        "/v1/documents/marker/default-version",
        Some(json!({"version": 2})),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&marker).unwrap() != "two\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "the new default was not applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let detail = api.ok("GET", "/v1/associations/billing", None).await;
    assert_eq!(detail["runs"][0]["reason"], "document", "{detail}");

    // An association waiting for its schedule does nothing at creation.
    api.ok(
        "POST",
        "/v1/associations",
        Some(
            json!({"name": "nightly", "document": "marker", "targets": ["all"],
                    "schedule": "cron(0 3 * * ? *)", "apply_only_at_cron_interval": true}),
        ),
    )
    .await;
    let nightly = api.ok("GET", "/v1/associations/nightly", None).await;
    assert!(nightly["runs"].as_array().unwrap().is_empty(), "{nightly}");
    assert!(nightly["next_run_at"].as_i64().unwrap() > 0);
}
