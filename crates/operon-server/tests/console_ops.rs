//! The operations pages on a real server: parameters (SecureStrings masked,
//! the reveal audited and refused without `params:Get`), compliance reported
//! by a real agent, an alarm's metric charted with its threshold, an
//! incident acknowledged and resolved from the console, and the node page's
//! compliance and metrics sections (charts, or "not permitted" alone).

mod common;

use common::Api;
use common::console::{Browser, assert_security_headers};
use common::fleet::Fleet;
use common::raw_agent::RawAgent;
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t-pa55w0rd-<b>&";
const PLAIN: &str = "jdbc:postgres://db:5432/app";

/// `/app/db/password` (SecureString) and `/app/db/url` (String).
async fn app_parameters(api: &Api) {
    api.ok(
        "PUT",
        "/v1/parameters/%2Fapp%2Fdb%2Fpassword",
        Some(json!({"value": SECRET, "type": "SecureString"})),
    )
    .await;
    api.ok(
        "PUT",
        "/v1/parameters/%2Fapp%2Fdb%2Furl",
        Some(json!({"value": PLAIN, "type": "String"})),
    )
    .await;
}

/// The secret as any page could carry it: raw or HTML-escaped.
fn shows_secret(body: &str) -> bool {
    body.contains("s3cr3t-pa55w0rd")
}

fn decrypted_reads(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["action"] == "params:GetDecrypted")
        .collect()
}

#[tokio::test]
async fn parameters_are_listed_with_secure_strings_masked_and_revealed_once_audited() {
    let api = Api::start().await;
    app_parameters(&api).await;
    let statements = json!([{"Effect": "Allow", "Action": "params:*", "Resource": "*"}]);
    let alice = api.user_token("alice", statements).await;
    let mut browser = Browser::signed_in(&api, &alice).await;

    let page = browser.get("/parameters?path=/app/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_security_headers(&page, "parameters");
    assert!(page.body.contains("/app/db/password"), "{}", page.body);
    assert!(page.body.contains("SecureString"));
    assert!(page.body.contains("••••• (secure)"), "{}", page.body);
    assert!(!shows_secret(&page.body), "the list never shows the secret");
    assert!(page.body.contains(PLAIN), "a String's value is shown");
    assert!(
        page.body.contains(r#"href="/parameters""#),
        "in the navigation"
    );
    // Another path lists nothing of /app.
    let other = browser.get("/parameters?path=/other/").await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert!(!other.body.contains("/app/db/url"), "{}", other.body);

    // The detail and its history mask the secret too.
    let detail = browser.get("/parameters/%2Fapp%2Fdb%2Fpassword").await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert!(detail.body.contains("••••• (secure)"));
    assert!(detail.body.contains("History"));
    assert!(!shows_secret(&detail.body), "{}", detail.body);
    assert!(
        decrypted_reads(&api.audit_of("alice").await).is_empty(),
        "nothing was decrypted yet"
    );

    // Reveal: the plaintext once, escaped, on a page no cache keeps, audited.
    let csrf = page.csrf();
    let revealed = browser
        .post(
            "/parameters/reveal",
            &[("csrf", &csrf), ("name", "/app/db/password")],
            &[],
        )
        .await;
    assert_eq!(revealed.status, 200, "{}", revealed.body);
    assert!(
        revealed
            .body
            .contains("s3cr3t-pa55w0rd-&#60;b&#62;&#38;</pre>"),
        "{}",
        revealed.body
    );
    let cache = revealed.headers["cache-control"].to_str().unwrap();
    assert!(cache.contains("no-store"), "{cache}");
    let records = api.audit_of("alice").await;
    let reads = decrypted_reads(&records);
    assert_eq!(reads.len(), 1, "{records:?}");
    assert_eq!(reads[0]["resource"], "param/app/db/password");
    assert_eq!(reads[0]["outcome"], "allowed");
    assert_eq!(
        reads[0]["detail"]["parameters"][0]["name"],
        "/app/db/password"
    );
    assert!(
        records
            .iter()
            .any(|r| r["detail"]["path"] == "/parameters/reveal" && r["outcome"] == "allowed"),
        "the console POST is recorded as its API twin: {records:?}"
    );
}

#[tokio::test]
async fn reveal_is_refused_without_params_get_and_without_the_csrf_secret() {
    let api = Api::start().await;
    app_parameters(&api).await;
    let statements = json!([{"Effect": "Allow", "Action": "params:List", "Resource": "*"}]);
    let bob = api.user_token("bob", statements).await;
    let mut browser = Browser::signed_in(&api, &bob).await;
    let page = browser.get("/parameters").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("/app/db/password"), "{}", page.body);
    assert!(
        !page.body.contains(PLAIN),
        "no params:Get: no value either: {}",
        page.body
    );

    let csrf = page.csrf();
    let refused = browser
        .post(
            "/parameters/reveal",
            &[("csrf", &csrf), ("name", "/app/db/password")],
            &[],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("params:Get"), "{}", refused.body);
    assert!(!shows_secret(&refused.body));
    let records = api.audit_of("bob").await;
    assert!(decrypted_reads(&records).is_empty(), "{records:?}");
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "params:Get" && r["outcome"] == "denied"),
        "{records:?}"
    );

    // Without the CSRF secret even the admin's reveal is refused.
    let mut admin = Browser::signed_in(&api, &api.token).await;
    let forged = admin
        .post("/parameters/reveal", &[("name", "/app/db/password")], &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(!shows_secret(&forged.body));
    let forged = admin
        .post(
            "/parameters/reveal",
            &[("csrf", "not-the-secret"), ("name", "/app/db/password")],
            &[],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(!shows_secret(&forged.body));
    assert!(decrypted_reads(&api.audit_of("admin").await).is_empty());
}

/// A desired-state document with one directory under the node's root.
fn motd_document() -> Value {
    json!({
        "schemaVersion": "operon-state/1",
        "resources": [
            {"name": "app-dir", "type": "directory", "path": "/srv/app", "mode": "0755"}
        ]
    })
}

#[tokio::test]
async fn compliance_reported_by_an_agent_is_on_the_compliance_and_node_pages() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let api = &fleet.api;
    api.ok(
        "POST",
        "/v1/documents",
        Some(json!({"name": "app-dir", "content": motd_document()})),
    )
    .await;
    api.ok(
        "POST",
        "/v1/associations",
        Some(json!({"name": "web-baseline", "document": "app-dir",
                    "targets": ["tag:role=web"], "compliance_severity": "HIGH"})),
    )
    .await;
    api.get_until("/v1/compliance?association=web-baseline", |list| {
        list.as_array()
            .unwrap()
            .first()
            .is_some_and(|n| n["status"] == "COMPLIANT")
    })
    .await;

    let mut browser = Browser::signed_in(api, &api.token).await;
    let page = browser.get("/compliance").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_security_headers(&page, "compliance");
    assert!(page.body.contains("web-baseline"), "{}", page.body);
    assert!(
        page.body
            .contains(r#"<td class="status-COMPLIANT">COMPLIANT</td>"#),
        "{}",
        page.body
    );
    assert!(page.body.contains("HIGH"));
    assert!(page.body.contains(r#"href="/nodes/web-1""#));
    let none = browser.get("/compliance?status=NON_COMPLIANT").await;
    assert!(
        none.body.contains("No compliance reported."),
        "{}",
        none.body
    );

    let node = browser.get("/nodes/web-1").await;
    assert_eq!(node.status, 200, "{}", node.body);
    let section = &node.body[node.body.find(r#"id="compliance-h""#).unwrap()..];
    assert!(section.contains("web-baseline"), "{}", node.body);
    assert!(section.contains("COMPLIANT"));

    // A user without compliance:Get is refused the page.
    let statements = json!([{"Effect": "Allow", "Action": "nodes:*", "Resource": "*"}]);
    let carol = api.user_token("carol", statements).await;
    let mut carol = Browser::signed_in(api, &carol).await;
    let refused = carol.get("/compliance").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("compliance:Get"), "{}", refused.body);
}

fn cpu_point(at: i64, value: f64) -> operon_proto::MetricPoint {
    operon_proto::MetricPoint {
        name: "cpu.used".into(),
        dimensions: Default::default(),
        at,
        value,
        unit: Some("Percent".into()),
    }
}

/// A node `db-1` that reported its CPU at 95 % over the last minutes.
async fn busy_node(api: &Api) -> RawAgent {
    let mut agent = RawAgent::connect(
        api,
        "db-1",
        &[("role", "db")],
        &[operon_proto::CAPABILITY_METRICS],
    )
    .await;
    let now = operon_server::now_millis();
    let points = (0..30).map(|i| cpu_point(now - i * 10_000, 95.0)).collect();
    agent.send_metrics(1, points).await;
    agent
}

#[tokio::test]
async fn the_node_page_charts_metrics_or_says_not_permitted_and_renders_the_rest() {
    let api = Api::start().await;
    let _agent = busy_node(&api).await;
    let mut admin = Browser::signed_in(&api, &api.token).await;
    let page = admin.get("/nodes/db-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let metrics = &page.body[page.body.find(r#"id="metrics-h""#).unwrap()..];
    assert!(metrics.contains("CPU used"), "{}", page.body);
    assert!(
        metrics.contains(r#"<svg class="chart" viewBox"#),
        "{}",
        page.body
    );
    assert!(metrics.contains("<polyline class=\"series\""), "{metrics}");
    assert!(metrics.contains("max 95 %"), "{metrics}");
    assert!(
        metrics.contains("Memory used on db-1, last hour: no data"),
        "a metric not reported is an empty chart: {metrics}"
    );

    // Without metrics:Get (or compliance:Get) those sections alone say so.
    let statements = json!([
        {"Effect": "Allow", "Action": ["nodes:Get", "nodes:List", "commands:List"], "Resource": "*"}
    ]);
    let dave = api.user_token("dave", statements).await;
    let mut dave = Browser::signed_in(&api, &dave).await;
    let page = dave.get("/nodes/db-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Inventory"), "{}", page.body);
    assert!(page.body.contains("Recent commands"));
    let metrics = &page.body[page.body.find(r#"id="metrics-h""#).unwrap()..];
    assert!(
        metrics.contains("Not shown: not permitted") && metrics.contains("metrics:Get"),
        "{metrics}"
    );
    assert!(!metrics.contains("<svg"), "{metrics}");
    let compliance = &page.body[page.body.find(r#"id="compliance-h""#).unwrap()..];
    assert!(
        compliance.contains("not permitted") && compliance.contains("compliance:Get"),
        "{compliance}"
    );

    // A node without metrics says it has none.
    let _quiet = RawAgent::connect(&api, "quiet-1", &[], &[]).await;
    let page = admin.get("/nodes/quiet-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("No metrics reported in the last hour."),
        "{}",
        page.body
    );
}

/// The alarm `cpu-high` on db-1 (CPU above 90 %), evaluated at least once.
async fn cpu_alarm(api: &Api) {
    api.ok(
        "PUT",
        "/v1/alarms/cpu-high",
        Some(
            json!({"metric": "cpu.used", "threshold": 90, "period": 60, "node": "db-1",
                    "description": "CPU <hot>"}),
        ),
    )
    .await;
    api.get_until("/v1/alarms/cpu-high", |a| {
        !a["instances"].as_array().unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
async fn an_alarm_is_charted_with_its_threshold_and_its_incident_acknowledged_and_resolved() {
    let api = Api::start().await;
    let _agent = busy_node(&api).await;
    cpu_alarm(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;

    let list = browser.get("/alarms").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_security_headers(&list, "alarms");
    assert!(
        list.body.contains(r#"href="/alarms/cpu-high""#),
        "{}",
        list.body
    );
    assert!(list.body.contains("cpu.used"));
    assert!(
        list.body.contains("Average &#62; 90 for 1 of 1"),
        "{}",
        list.body
    );

    let page = browser.get("/alarms/cpu-high").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(r#"<svg class="chart" viewBox"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"<line class="threshold""#),
        "{}",
        page.body
    );
    assert!(page.body.contains(">threshold 90</text>"), "{}", page.body);
    assert!(
        page.body.contains("cpu.used (avg) on db-1"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("CPU &#60;hot&#62;"),
        "escaped: {}",
        page.body
    );
    assert!(page.body.contains("State history"));

    // The alarm goes off: an incident opens.
    api.ok(
        "POST",
        "/v1/alarms/cpu-high/state",
        Some(json!({"state": "ALARM", "reason": "test says ALARM", "node": "db-1"})),
    )
    .await;
    let incidents = api
        .get_until("/v1/incidents?alarm=cpu-high", |l| {
            !l.as_array().unwrap().is_empty()
        })
        .await;
    let id = incidents[0]["id"].as_str().unwrap().to_string();
    let history = browser.get("/alarms/cpu-high").await;
    let changes = &history.body[history.body.find(r#"id="history-h""#).unwrap()..];
    assert!(changes.contains("<td>ALARM</td>"), "{changes}");

    let list = browser.get("/incidents?status=open").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains(&format!(r#"href="/incidents/{id}""#)),
        "{}",
        list.body
    );
    let page = browser.get(&format!("/incidents/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Timeline"), "{}", page.body);
    assert!(page.body.contains("detected"), "{}", page.body);
    assert!(page.body.contains(">Acknowledge</button>"));

    // A reader of incidents may not acknowledge one: the refusal names the action.
    let statements = json!([{"Effect": "Allow", "Action": "incidents:Get", "Resource": "*"}]);
    let reader = api.user_token("reader", statements).await;
    let mut reader = Browser::signed_in(&api, &reader).await;
    let seen = reader.get(&format!("/incidents/{id}")).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let refused = reader
        .post(
            &format!("/incidents/{id}/ack"),
            &[("csrf", &seen.csrf())],
            &[],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("incidents:Acknowledge"),
        "{}",
        refused.body
    );

    // Without the CSRF secret nothing changes.
    let forged = browser
        .post(&format!("/incidents/{id}/ack"), &[], &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let detail = api.ok("GET", &format!("/v1/incidents/{id}"), None).await;
    assert!(detail["acknowledged_by"].is_null(), "{detail}");

    let csrf = page.csrf();
    let acked = browser
        .post(&format!("/incidents/{id}/ack"), &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(acked.status, 303, "{}", acked.body);
    assert_eq!(acked.location(), format!("/incidents/{id}"));
    let detail = api.ok("GET", &format!("/v1/incidents/{id}"), None).await;
    assert_eq!(detail["acknowledged_by"], "admin", "{detail}");
    let page = browser.get(&format!("/incidents/{id}")).await;
    assert!(
        page.body
            .contains(r#"<dd id="incident-acknowledged">admin, "#),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(">Acknowledge</button>"),
        "{}",
        page.body
    );
    let records = api.audit_of("admin").await;
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "incidents:Acknowledge"
                && r["detail"]["path"] == format!("/incidents/{id}/ack")),
        "{records:?}"
    );

    let resolved = browser
        .post(
            &format!("/incidents/{id}/resolve"),
            &[("csrf", &csrf), ("note", "rebooted <db>")],
            &[],
        )
        .await;
    assert_eq!(resolved.status, 303, "{}", resolved.body);
    let detail = api.ok("GET", &format!("/v1/incidents/{id}"), None).await;
    assert_eq!(detail["status"], "resolved", "{detail}");
    let page = browser.get(&format!("/incidents/{id}")).await;
    assert!(page.body.contains(">resolved<"), "{}", page.body);
    assert!(!page.body.contains(">Resolve</button>"));
}

#[tokio::test]
async fn pages_are_refused_without_their_actions_and_a_chart_alone_without_metrics_get() {
    let api = Api::start().await;
    let statements = json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]);
    let erin = api.user_token("erin", statements).await;
    let mut browser = Browser::signed_in(&api, &erin).await;
    for (path, action) in [
        ("/alarms", "alarms:Get"),
        ("/incidents", "incidents:Get"),
        ("/parameters", "params:List"),
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
        assert!(page.body.contains(action), "{path}: {}", page.body);
    }

    // A reader of alarms without metrics:Get sees the alarm, not its chart.
    let _agent = busy_node(&api).await;
    cpu_alarm(&api).await;
    let statements = json!([{"Effect": "Allow", "Action": "alarms:Get", "Resource": "*"}]);
    let frank = api.user_token("frank", statements).await;
    let mut frank = Browser::signed_in(&api, &frank).await;
    let page = frank.get("/alarms/cpu-high").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("State per node"), "{}", page.body);
    let chart = &page.body[page.body.find(r#"id="chart-h""#).unwrap()..];
    assert!(
        chart.contains("Not shown: not permitted") && chart.contains("metrics:Get"),
        "{chart}"
    );
    assert!(!chart.contains("<svg"), "{chart}");
}
