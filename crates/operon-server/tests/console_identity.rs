//! Identity and audit pages in the console, on a real server: users,
//! tokens (the secret shown once, usable on the API, revocable), roles,
//! policies and the simulator, the audit trail's filters and chain check,
//! refusals and CSRF.

mod common;

use common::Api;
use common::console::{Browser, assert_security_headers};
use serde_json::json;

/// A user `dev` who may only list commands and run them on `node/web-*`.
async fn with_dev(api: &Api) -> String {
    api.user_token(
        "dev",
        json!([
            {"Sid": "web", "Effect": "Allow", "Action": ["commands:Run"], "Resource": "node/web-*"},
            {"Effect": "Allow", "Action": ["commands:List"], "Resource": "*"}
        ]),
    )
    .await
}

#[tokio::test]
async fn the_pages_render_for_the_admin() {
    let api = Api::start().await;
    with_dev(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let expected: &[(&str, &[&str])] = &[
        (
            "/users",
            &["<td>dev</td>", "href=\"/users\" aria-current=\"page\""],
        ),
        (
            "/tokens",
            &["<td>main</td>", "action=\"/tokens\"", "Create token"],
        ),
        ("/roles", &["<td>dev</td>"]),
        (
            "/policies",
            &[
                "&#34;Sid&#34;: &#34;web&#34;",
                "action=\"/policies/simulate\"",
            ],
        ),
        ("/audit", &["tokens:Create", "action=\"/audit/verify\""]),
    ];
    for (path, parts) in expected {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_security_headers(&page, path);
        for part in *parts {
            assert!(
                page.body.contains(part),
                "{path} lacks {part}: {}",
                page.body
            );
        }
    }
}

#[tokio::test]
async fn a_created_token_is_shown_once_works_on_the_api_and_can_be_revoked() {
    let api = Api::start().await;
    with_dev(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let csrf = browser.get("/tokens").await.csrf();
    let created = browser
        .post(
            "/tokens",
            &[
                ("csrf", &csrf),
                ("name", "ci"),
                ("user", "dev"),
                ("scopes", "commands:List"),
            ],
            &[],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.headers["cache-control"], "no-store");
    let marker = "id=\"secret\" readonly size=\"60\" value=\"";
    let start = created.body.find(marker).expect("the secret") + marker.len();
    let end = created.body[start..].find('"').unwrap();
    let secret = created.body[start..start + end].to_string();
    assert!(secret.len() > 20, "{secret}");
    assert!(created.body.contains("shown this once"));

    for path in ["/tokens", "/users", "/audit"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            !page.body.contains(&secret),
            "{path} shows the secret again"
        );
    }
    let (status, me) = api.call_as(&secret, "GET", "/v1/whoami", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "dev");
    let (status, _) = api.call_as(&secret, "GET", "/v1/commands", None).await;
    assert_eq!(status, 200, "the token's scope allows listing commands");

    let tokens = api.ok("GET", "/v1/tokens", None).await;
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = browser
        .post(&format!("/tokens/{id}/revoke"), &[], &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let (status, _) = api.call_as(&secret, "GET", "/v1/whoami", None).await;
    assert_eq!(status, 200, "a forged revoke changed nothing");

    let revoked = browser
        .post(&format!("/tokens/{id}/revoke"), &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(revoked.location(), "/tokens");
    let (status, _) = api.call_as(&secret, "GET", "/v1/whoami", None).await;
    assert_eq!(status, 401, "the revoked token is refused");
    let list = browser.get("/tokens").await;
    assert!(list.body.contains("revoked"), "{}", list.body);
}

#[tokio::test]
async fn a_token_post_without_csrf_creates_nothing() {
    let api = Api::start().await;
    with_dev(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let forged = browser
        .post("/tokens", &[("name", "sneaky"), ("user", "dev")], &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let tokens = api.ok("GET", "/v1/tokens", None).await;
    assert!(!tokens.to_string().contains("sneaky"));
}

#[tokio::test]
async fn the_simulator_answers_allow_and_deny_with_the_deciding_statement() {
    let api = Api::start().await;
    with_dev(&api).await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let csrf = browser.get("/policies").await.csrf();
    let ask = |resource: &'static str| {
        [
            ("user", "dev"),
            ("action", "commands:Run"),
            ("resource", resource),
            ("context", "env=prod"),
        ]
    };
    let mut fields = ask("node/web-1").to_vec();
    fields.push(("csrf", &csrf));
    let allowed = browser.post("/policies/simulate", &fields, &[]).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert!(
        allowed
            .body
            .contains("<strong class=\"decision-Allow\">Allow</strong>"),
        "{}",
        allowed.body
    );
    assert!(
        allowed.body.contains("Sid &#34;web&#34;"),
        "the deciding statement: {}",
        allowed.body
    );

    let mut fields = ask("node/db-1").to_vec();
    fields.push(("csrf", &csrf));
    let denied = browser.post("/policies/simulate", &fields, &[]).await;
    assert_eq!(denied.status, 200, "{}", denied.body);
    assert!(
        denied
            .body
            .contains("<strong class=\"decision-Deny\">Deny</strong>"),
        "{}",
        denied.body
    );

    let forged = browser
        .post("/policies/simulate", &ask("node/web-1"), &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
}

#[tokio::test]
async fn the_audit_trail_filters_and_its_chain_verifies() {
    let api = Api::start().await;
    let dev = with_dev(&api).await;
    let (status, _) = api.call_as(&dev, "GET", "/v1/users", None).await;
    assert_eq!(status, 403, "a refusal, audited under dev");
    let mut browser = Browser::signed_in(&api, &api.token).await;

    let by_dev = browser.get("/audit?actor=dev").await;
    assert_eq!(by_dev.status, 200, "{}", by_dev.body);
    assert!(by_dev.body.contains("<td>dev</td>"), "{}", by_dev.body);
    assert!(!by_dev.body.contains("<td>admin</td>"), "{}", by_dev.body);

    let users = browser.get("/audit?action=users:*").await;
    assert!(users.body.contains("users:Create"), "{}", users.body);
    assert!(!users.body.contains("tokens:Create"), "{}", users.body);

    let future = browser.get("/audit?since=2999-01-01").await;
    assert!(future.body.contains("No records."), "{}", future.body);
    let bad = browser.get("/audit?since=yesterday").await;
    assert!(bad.body.contains("since: a date"), "{}", bad.body);

    // Newest first.
    let all = browser.get("/audit").await;
    let first = all.body.find("users:Create").unwrap();
    let last = all.body.find("tokens:Create").unwrap();
    assert!(last < first, "newest first: {}", all.body);

    let csrf = all.csrf();
    let forged = browser.post("/audit/verify", &[], &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let verified = browser.post("/audit/verify", &[("csrf", &csrf)], &[]).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert!(
        verified.body.contains("<strong>Chain ok</strong>"),
        "{}",
        verified.body
    );
}

#[tokio::test]
async fn a_user_without_identity_permissions_is_refused() {
    let api = Api::start().await;
    let dev = with_dev(&api).await;
    let mut browser = Browser::signed_in(&api, &dev).await;
    for path in ["/users", "/roles", "/policies", "/audit"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
        assert!(page.body.contains("Refused"), "{path}: {}", page.body);
    }
    let csrf = browser.get("/users").await.csrf();
    let verify = browser.post("/audit/verify", &[("csrf", &csrf)], &[]).await;
    assert_eq!(verify.status, 403, "{}", verify.body);
    let fields = [
        ("csrf", csrf.as_str()),
        ("user", "dev"),
        ("action", "x:Y"),
        ("resource", "*"),
    ];
    let simulate = browser.post("/policies/simulate", &fields, &[]).await;
    assert_eq!(simulate.status, 403, "{}", simulate.body);
}

#[tokio::test]
async fn the_audit_trail_pages_by_a_hundred_with_an_older_link() {
    let api = Api::start().await;
    let dev = with_dev(&api).await;
    for _ in 0..105 {
        let (status, _) = api.call_as(&dev, "GET", "/v1/users", None).await;
        assert_eq!(status, 403);
    }
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let rows = |body: &str| body.matches("<td>dev</td>").count();
    let newest = browser.get("/audit?actor=dev").await;
    assert_eq!(rows(&newest.body), 100, "{}", newest.body);
    let link = "href=\"/audit?actor=dev&amp;action=&amp;since=&amp;page=1\">Older";
    assert!(newest.body.contains(link), "{}", newest.body);
    let older = browser.get("/audit?actor=dev&page=1").await;
    assert_eq!(older.status, 200, "{}", older.body);
    assert_eq!(rows(&older.body), 5, "{}", older.body);
    assert!(!older.body.contains(">Older<"), "no page beyond the oldest");
}
