//! The web console on a real server on loopback, driven like a browser
//! (cookies kept by hand: reqwest here has no cookie store): sign-in and
//! its cookie, session fixation, pages through the services, refusals,
//! CSRF, sign-out, revoked tokens, security headers and assets.

mod common;

use std::collections::BTreeMap;

use common::Api;
use common::fleet::Fleet;
use reqwest::header::HeaderMap;
use serde_json::json;

/// A browser without JavaScript: follows nothing, keeps cookies.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// What a page answered.
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .map_or("", |v| v.to_str().unwrap())
    }

    /// The `Set-Cookie` header setting cookie `name`.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value of the hidden field `csrf` of the page's (first) form.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

impl Browser {
    fn new(api: &Api) -> Browser {
        Browser {
            base: api.server.url(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header("cookie", jar.join("; "));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for cookie in headers.get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            let (pair, attributes) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let body = response.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    /// Sign in with `token` through the form; the answer of the POST.
    async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post("/login", &[("token", token), ("csrf", &csrf)], &[])
            .await
    }

    /// Sign in and expect to land on the fleet.
    async fn signed_in(api: &Api, token: &str) -> Browser {
        let mut browser = Browser::new(api);
        let answer = browser.sign_in(token).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location(), "/nodes");
        browser
    }

    fn session(&self) -> String {
        self.cookies["operon_console"].clone()
    }

    /// The CSRF secret of the session, read from a page's sign-out form.
    async fn csrf(&mut self) -> String {
        let page = self.get("/commands").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.csrf()
    }
}

/// `application/x-www-form-urlencoded` by hand (reqwest here has no `form`).
fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn assert_security_headers(page: &Page, what: &str) {
    let header = |name: &str| {
        page.headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let csp = header("content-security-policy");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "same-origin", "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
}

#[tokio::test]
async fn signing_in_sets_a_strict_cookie_and_a_new_session_id_every_time() {
    let api = Api::start().await;
    let mut browser = Browser::new(&api);
    let home = browser.get("/").await;
    assert_eq!((home.status, home.location()), (303, "/login"));

    let wrong = browser.sign_in("opn_not-a-token").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("invalid API token"), "{}", wrong.body);
    assert!(!browser.cookies.contains_key("operon_console"));

    let answer = browser.sign_in(&api.token).await;
    assert_eq!((answer.status, answer.location()), (303, "/nodes"));
    let cookie = answer.set_cookie("operon_console").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let first = browser.session();
    let home = browser.get("/").await;
    assert_eq!((home.status, home.location()), (303, "/nodes"));

    // Signing in again (with the old cookie sent) never keeps the old id,
    // and the old id is dead.
    browser.sign_in(&api.token).await;
    let second = browser.session();
    assert_ne!(first, second);
    let mut thief = Browser::new(&api);
    thief.cookies.insert("operon_console".into(), first);
    let refused = thief.get("/nodes").await;
    assert_eq!((refused.status, refused.location()), (303, "/login"));
    // A planted id is not adopted either: sign-in issues its own.
    let mut planted = Browser::new(&api);
    planted
        .cookies
        .insert("operon_console".into(), "ocs_planted".into());
    planted.sign_in(&api.token).await;
    assert_ne!(planted.session(), "ocs_planted");

    let audit = api.audit_of("admin").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "console:SignIn" && r["outcome"] == "allowed"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn pages_show_the_fleet_and_commands_with_security_headers() {
    let fleet = Fleet::start_tagged(&[
        ("web-1", vec![("env", "prod")]),
        ("db-1", vec![("env", "dev")]),
    ])
    .await;
    let done = fleet
        .run(json!({"targets": [{"Key": "tag:env", "Values": ["prod"]}],
                    "parameters": {"commands": ["echo hi"]}}))
        .await;
    let command_id = done["id"].as_str().unwrap().to_string();
    let mut browser = Browser::signed_in(&fleet.api, &fleet.token).await;

    let nodes = browser.get("/nodes").await;
    assert_eq!(nodes.status, 200, "{}", nodes.body);
    assert!(
        nodes.body.contains("href=\"/nodes/web-1\""),
        "{}",
        nodes.body
    );
    assert!(nodes.body.contains("href=\"/nodes/db-1\""));
    assert!(nodes.body.contains("env=prod") && nodes.body.contains("online"));
    assert_eq!(nodes.headers["cache-control"], "no-store");

    let prod = browser.get("/nodes?tag=env%3Dprod&status=").await;
    assert!(prod.body.contains("/nodes/web-1") && !prod.body.contains("/nodes/db-1"));
    let offline = browser.get("/nodes?tag=&status=offline").await;
    assert!(!offline.body.contains("/nodes/web-1") && offline.body.contains("No node matches"));

    let node = browser.get("/nodes/web-1").await;
    assert_eq!(node.status, 200, "{}", node.body);
    assert!(node.body.contains(&command_id), "{}", node.body);
    assert!(node.body.contains("Success"));
    let other = browser.get("/nodes/db-1").await;
    assert!(!other.body.contains(&command_id));
    let missing = browser.get("/nodes/nope").await;
    assert_eq!(missing.status, 404);

    let commands = browser.get("/commands").await;
    assert!(commands.body.contains(&command_id), "{}", commands.body);
    let failed = browser.get("/commands?status=Failed").await;
    assert!(!failed.body.contains(&command_id));

    let mut visitor = Browser::new(&fleet.api);
    let login = visitor.get("/login").await;
    for (what, page) in [
        ("nodes", &nodes),
        ("node", &node),
        ("commands", &commands),
        ("missing node", &missing),
        ("login", &login),
    ] {
        assert_security_headers(page, what);
    }
    // Landmarks and a skip link on every page; no inline script or style.
    for page in [&nodes, &node, &commands, &login] {
        for part in ["<header>", "<main id=\"main\"", "href=\"#main\""] {
            assert!(page.body.contains(part), "{part}");
        }
        assert!(!page.body.contains("<script>") && !page.body.contains("style="));
    }
}

#[tokio::test]
async fn forged_posts_are_refused_and_audited() {
    let api = Api::start().await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let csrf = browser.csrf().await;

    let without = browser.post("/logout", &[], &[]).await;
    assert_eq!(without.status, 403);
    assert!(without.body.contains("forgery"), "{}", without.body);
    assert_security_headers(&without, "refusal");
    let wrong = browser.post("/logout", &[("csrf", "nope")], &[]).await;
    assert_eq!(wrong.status, 403);
    let foreign = browser
        .post(
            "/logout",
            &[("csrf", &csrf)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(foreign.status, 403);
    let cross = browser
        .post(
            "/logout",
            &[("csrf", &csrf)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(cross.status, 403);
    assert_eq!(browser.get("/nodes").await.status, 200, "still signed in");

    // The sign-in form is guarded too: without its cookie's value, refused.
    let mut stranger = Browser::new(&api);
    let forged = stranger
        .post("/login", &[("token", &api.token), ("csrf", "x")], &[])
        .await;
    assert_eq!(forged.status, 403);
    assert!(!stranger.cookies.contains_key("operon_console"));

    // Our own origin passes (with the secret).
    let origin = api.server.url();
    let own = browser
        .post(
            "/logout",
            &[("csrf", &csrf)],
            &[("origin", origin.trim_end_matches('/'))],
        )
        .await;
    assert_eq!((own.status, own.location()), (303, "/login"));

    let refusals: Vec<_> = api
        .audit_of("admin")
        .await
        .into_iter()
        .filter(|r| r["action"] == "console:Post" && r["outcome"] == "refused")
        .collect();
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    let anonymous = api.audit_of("anonymous").await;
    assert!(anonymous.iter().any(|r| r["action"] == "console:Post"));
}

#[tokio::test]
async fn a_user_without_nodes_list_sees_the_refusal_and_it_is_audited() {
    let api = Api::start().await;
    let token = api
        .user_token(
            "historian",
            json!([{"Effect": "Allow", "Action": ["commands:List"], "Resource": "*"}]),
        )
        .await;
    let mut browser = Browser::signed_in(&api, &token).await;
    let refused = browser.get("/nodes").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("nodes:List"), "{}", refused.body);
    assert!(
        refused
            .body
            .contains("Signed in as <strong>historian</strong>")
    );
    assert_security_headers(&refused, "refusal page");
    assert_eq!(browser.get("/commands").await.status, 200);
    let audit = api.audit_of("historian").await;
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "nodes:List" && r["outcome"] == "denied"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_and_a_revoked_token_ends_it_at_once() {
    let api = Api::start().await;
    let mut browser = Browser::signed_in(&api, &api.token).await;
    let old = browser.session();
    let csrf = browser.csrf().await;
    // As htmx sends it: the header its hx-headers carries on every page.
    let page = browser.get("/nodes").await;
    let hx_headers = format!("hx-headers='{{\"X-CSRF-Token\": \"{csrf}\"}}'");
    assert!(page.body.contains(&hx_headers), "{}", page.body);
    let out = browser
        .post("/logout", &[], &[("x-csrf-token", &csrf)])
        .await;
    assert_eq!((out.status, out.location()), (303, "/login"));
    assert!(
        out.set_cookie("operon_console")
            .unwrap()
            .contains("Max-Age=0")
    );
    let mut replay = Browser::new(&api);
    replay.cookies.insert("operon_console".into(), old);
    let page = replay.get("/nodes").await;
    assert_eq!((page.status, page.location()), (303, "/login"));
    assert!(
        api.audit_of("admin")
            .await
            .iter()
            .any(|r| r["action"] == "console:SignOut")
    );

    let token = api
        .user_token(
            "leaver",
            json!([{"Effect": "Allow", "Action": ["nodes:List"], "Resource": "*"}]),
        )
        .await;
    let mut leaver = Browser::signed_in(&api, &token).await;
    assert_eq!(leaver.get("/nodes").await.status, 200);
    let tokens = api.ok("GET", "/v1/tokens?user=leaver", None).await;
    let id = tokens[0]["id"].as_str().unwrap().to_string();
    api.ok("POST", &format!("/v1/tokens/{id}/revoke"), None)
        .await;
    let after = leaver.get("/nodes").await;
    assert_eq!((after.status, after.location()), (303, "/login"));
}

#[tokio::test]
async fn assets_are_embedded_with_etags_and_revalidate_with_304() {
    let api = Api::start().await;
    let mut browser = Browser::new(&api);
    for (name, content_type) in [
        ("app.css", "text/css; charset=utf-8"),
        ("htmx.min.js", "text/javascript; charset=utf-8"),
    ] {
        let asset = browser.get(&format!("/assets/{name}")).await;
        assert_eq!(asset.status, 200, "{name}");
        assert_eq!(asset.headers["content-type"], content_type);
        assert!(
            asset.headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        assert_security_headers(&asset, name);
        let etag = asset.headers["etag"].to_str().unwrap().to_string();
        assert_eq!(etag.len(), 66, "a quoted sha256: {etag}");
        let again = browser
            .send(
                browser
                    .client
                    .get(format!("{}/assets/{name}", browser.base))
                    .header("if-none-match", &etag),
            )
            .await;
        assert_eq!(again.status, 304, "{name}");
        assert!(again.body.is_empty());
        assert_eq!(again.headers["etag"], etag.as_str());
    }
    let missing = browser.get("/assets/nope.js").await;
    assert_eq!(missing.status, 404);
    assert_security_headers(&missing, "missing asset");
}

/// One HTTP/1.1 exchange over TLS, trusting the server's pinned
/// certificate; the whole answer as text.
async fn https_exchange(api: &Api, request: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = api.server.tls.as_ref().expect("a TLS server");
    let trust = operon_agent::tls::TlsTrust {
        fingerprint: Some(operon_agent::tls::Fingerprint::parse(&tls.fingerprint).unwrap()),
        ca_file: None,
    };
    let connector =
        tokio_rustls::TlsConnector::from(operon_agent::tls::client_config(&trust).unwrap());
    let tcp = tokio::net::TcpStream::connect(api.server.addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The value of `Set-Cookie: NAME=...` in a raw answer, with its attributes.
fn raw_set_cookie(answer: &str, name: &str) -> String {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {answer}"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn under_tls_the_session_cookie_is_secure() {
    let api = Api::start_with(|c| c.tls = operon_server::tls::TlsMode::SelfSigned).await;
    let host = api.server.addr.to_string();
    let form = https_exchange(
        &api,
        format!("GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(form.starts_with("HTTP/1.1 200"), "{form}");
    let login_cookie = raw_set_cookie(&form, "operon_console_login");
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
    let pair = login_cookie.split(';').next().unwrap().to_string();
    let csrf = Page {
        status: 200,
        headers: HeaderMap::new(),
        body: form.clone(),
    }
    .csrf();
    let body = form_body(&[("token", &api.token), ("csrf", &csrf)]);
    let answer = https_exchange(
        &api,
        format!(
            "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: https://{host}\r\nCookie: {pair}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let session = raw_set_cookie(&answer, "operon_console");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(session.contains(flag), "{session}");
    }
}

#[tokio::test]
async fn anonymous_refusals_are_limited_per_address_like_the_apis() {
    let api = Api::start_with(|c| {
        c.refusal_rate = operon_server::refusals::RefusalRate {
            burst: 2,
            per_minute: 1,
        }
    })
    .await;
    let mut stranger = Browser::new(&api);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let forged = stranger
            .post("/login", &[("token", "x"), ("csrf", "x")], &[])
            .await;
        statuses.push(forged.status);
    }
    assert_eq!(statuses, [403, 403, 429]);
    let audited = api
        .audit_of("anonymous")
        .await
        .into_iter()
        .filter(|r| r["action"] == "console:Post")
        .count();
    assert_eq!(audited, 2, "past the rate, no record each");
    // A signed-in user's refusals are always audited.
    let mut admin = Browser::signed_in(&api, &api.token).await;
    assert_eq!(admin.post("/logout", &[], &[]).await.status, 403);
}
