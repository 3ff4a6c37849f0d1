//! Sessions in the console, on a real server with an in-process agent
//! running real shells: the console's WebSocket (cookie, same origin only)
//! running `echo` on the node, the sessions list and page, the recording
//! route (audited, refused without `sessions:GetRecording`), Terminate
//! (CSRF-checked, audited) and the terminal page's refusal.

mod common;

use common::accounts::ShellAccount;
use common::console::{Browser, assert_security_headers};
use common::fleet::Fleet;
use common::session_client::{SessionClient, connect_with};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Open the console's WebSocket `/sessions/connect?query` with `headers`.
async fn console_connect(
    fleet: &Fleet,
    query: &str,
    headers: &[(&'static str, String)],
) -> Result<SessionClient, (u16, String)> {
    let url = format!(
        "{}/sessions/connect?{query}",
        fleet.server.url().replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    connect_with(request).await
}

/// The headers of the console's own page opening its terminal.
fn same_origin(fleet: &Fleet, browser: &Browser) -> Vec<(&'static str, String)> {
    vec![
        ("cookie", browser.cookie_header()),
        ("origin", fleet.server.url()),
    ]
}

/// A shell as `user` through the console's WebSocket: it runs `echo` and
/// exits.
async fn run_echo(fleet: &Fleet, browser: &Browser, user: &str) -> String {
    let mut client = console_connect(
        fleet,
        &format!("node=web-1&user={user}&cols=80&rows=24&term=xterm-256color"),
        &same_origin(fleet, browser),
    )
    .await
    .unwrap_or_else(|(status, body)| panic!("the console's WebSocket: {status} {body}"));
    let id = client.started().await;
    client.type_line("echo hi-$((6*7))").await;
    client.read_until(0, "hi-42").await;
    client.type_line("exit").await;
    let (reason, exit_code) = client.ended().await;
    assert_eq!(
        (reason.as_str(), exit_code),
        ("the program exited", Some(0))
    );
    id
}

fn find<'a>(records: &'a [Value], action: &str, session: &str) -> Option<&'a Value> {
    records
        .iter()
        .find(|r| r["action"] == action && r["detail"]["session"] == session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_console_terminal_runs_echo_and_its_recording_is_listed_and_served_audited() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let mut browser = Browser::signed_in(&fleet.api, &fleet.token).await;

    let node = browser.get("/nodes/web-1").await;
    assert!(
        node.body
            .contains("<a href=\"/nodes/web-1/terminal\">Open a terminal</a>"),
        "{}",
        node.body
    );
    let page = browser.get("/nodes/web-1/terminal?user=root").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_security_headers(&page, "terminal page");
    for part in [
        "id=\"terminal\"",
        "data-node=\"web-1\"",
        "data-user=\"root\"",
        "data-window=\"262144\"",
        "<script src=\"/assets/xterm.js\" defer></script>",
        "<script src=\"/assets/terminal.js\" defer></script>",
        "href=\"/assets/xterm.css\"",
    ] {
        assert!(page.body.contains(part), "{part}: {}", page.body);
    }
    for asset in ["xterm.js", "xterm.css", "terminal.js", "player.js"] {
        let served = browser.get(&format!("/assets/{asset}")).await;
        assert_eq!(served.status, 200, "{asset}");
    }

    let account = ShellAccount::new();
    let id = run_echo(&fleet, &browser, &account.name).await;
    // The same record a session opened through the API leaves.
    let audit = fleet.audit_of("admin").await;
    let start = find(&audit, "sessions:Start", &id).expect("the start is audited");
    assert_eq!(start["outcome"], "allowed");
    assert_eq!(start["resource"], "node/web-1");

    let list = browser.get("/sessions").await;
    assert_eq!(list.status, 200, "{}", list.body);
    for part in [
        format!("<a href=\"/sessions/{id}\"><code>{id}</code></a>"),
        "<a href=\"/nodes/web-1\">web-1</a>".to_string(),
        format!("<td>{}</td>", account.name),
        "<td>shell</td>".into(),
        "class=\"status-ended\">ended</td>".into(),
        "href=\"/sessions\" aria-current=\"page\">Sessions".into(),
    ] {
        assert!(list.body.contains(&part), "{part}: {}", list.body);
    }
    let active = browser.get("/sessions?active=true").await;
    assert!(!active.body.contains(&id), "{}", active.body);

    let session = browser.get(&format!("/sessions/{id}")).await;
    assert_eq!(session.status, 200, "{}", session.body);
    for part in [
        format!("data-recording=\"/sessions/{id}/recording\""),
        "<script src=\"/assets/player.js\" defer></script>".into(),
        "id=\"player-speed\"".into(),
        "the program exited".into(),
    ] {
        assert!(session.body.contains(&part), "{part}: {}", session.body);
    }
    assert!(
        !session.body.contains("/terminate\""),
        "no Terminate once ended"
    );

    let recording = browser.get(&format!("/sessions/{id}/recording")).await;
    assert_eq!(recording.status, 200, "{}", recording.body);
    assert_eq!(recording.headers["content-type"], "application/x-asciicast");
    let sha = hex::encode(Sha256::digest(recording.body.as_bytes()));
    assert_eq!(recording.headers["x-operon-recording-sha256"], sha.as_str());
    let api = fleet.ok("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(
        api["recording_sha256"],
        sha.as_str(),
        "the service's digest"
    );
    let header: Value = serde_json::from_str(recording.body.lines().next().unwrap()).unwrap();
    assert_eq!(
        (header["version"].as_u64(), header["width"].as_u64()),
        (Some(2), Some(80))
    );
    assert!(recording.body.contains("hi-42"), "{}", recording.body);

    let audit = fleet.audit_of("admin").await;
    let read = find(&audit, "sessions:GetRecording", &id).expect("the read is audited");
    assert_eq!(read["outcome"], "allowed", "{read}");
    assert_eq!(read["resource"], "node/web-1", "{read}");
    assert_eq!(
        read["detail"]["path"],
        format!("/sessions/{id}/recording"),
        "{read}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_site_and_cookieless_upgrades_are_refused_before_any_session() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let browser = Browser::signed_in(&fleet.api, &fleet.token).await;
    let query = "node=web-1&user=root";
    let cookie = ("cookie", browser.cookie_header());

    // Another site's page opening the console's WebSocket with the
    // browser's cookie (cross-site WebSocket hijacking).
    let evil = ("origin", "http://evil.example".to_string());
    let (status, body) = console_connect(&fleet, query, &[cookie.clone(), evil])
        .await
        .err()
        .expect("a cross-site upgrade is refused");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another origin"), "{body}");
    let (status, body) = console_connect(&fleet, query, std::slice::from_ref(&cookie))
        .await
        .err()
        .expect("an upgrade without an Origin is refused");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("without an Origin"), "{body}");
    let (status, _) = console_connect(&fleet, query, &[("origin", fleet.server.url())])
        .await
        .err()
        .expect("an upgrade without a session is refused");
    assert_eq!(status, 401);

    let sessions = fleet.ok("GET", "/v1/sessions", None).await;
    assert_eq!(sessions["sessions"], json!([]), "no session was opened");
    let refusals: Vec<Value> = fleet
        .audit_of("admin")
        .await
        .into_iter()
        .filter(|r| r["resource"] == "/sessions/connect" && r["outcome"] == "refused")
        .inspect(|r| assert_eq!(r["action"], "console:Connect", "{r}"))
        .collect();
    assert_eq!(
        refusals.len(),
        2,
        "both refusals of admin's cookie: {refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_and_starts_are_refused_without_their_actions() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let admin = Browser::signed_in(&fleet.api, &fleet.token).await;
    let account = ShellAccount::new();
    let id = run_echo(&fleet, &admin, &account.name).await;

    let reader = fleet
        .user_token(
            "carol",
            json!([{"Effect": "Allow", "Action": ["sessions:Get", "nodes:Get"], "Resource": "*"}]),
        )
        .await;
    let mut carol = Browser::signed_in(&fleet.api, &reader).await;
    let list = carol.get("/sessions").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&id), "{}", list.body);
    let recording = carol.get(&format!("/sessions/{id}/recording")).await;
    assert_eq!(recording.status, 403, "{}", recording.body);
    assert!(
        recording.body.contains("sessions:GetRecording"),
        "{}",
        recording.body
    );
    let denied = fleet.audit_of("carol").await;
    assert!(
        denied
            .iter()
            .any(|r| r["action"] == "sessions:GetRecording" && r["outcome"] == "denied"),
        "{denied:?}"
    );
    // The terminal page asks the service first: the refusal is the page.
    let terminal = carol.get("/nodes/web-1/terminal").await;
    assert_eq!(terminal.status, 403, "{}", terminal.body);
    assert!(
        terminal.body.contains("sessions:Start"),
        "{}",
        terminal.body
    );
    // The WebSocket itself refuses alike.
    let (status, _) = console_connect(&fleet, "node=web-1&user=root", &same_origin(&fleet, &carol))
        .await
        .err()
        .expect("carol may not start a session");
    assert_eq!(status, 403);

    let nobody = fleet
        .user_token(
            "dave",
            json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]),
        )
        .await;
    let mut dave = Browser::signed_in(&fleet.api, &nobody).await;
    let list = dave.get("/sessions").await;
    assert_eq!(list.status, 403, "{}", list.body);
    assert!(list.body.contains("sessions:Get"), "{}", list.body);
    let page = dave.get(&format!("/sessions/{id}")).await;
    assert_eq!(page.status, 403, "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminate_needs_the_csrf_secret_and_ends_the_session_audited() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let mut browser = Browser::signed_in(&fleet.api, &fleet.token).await;
    let account = ShellAccount::new();
    let mut client = console_connect(
        &fleet,
        &format!("node=web-1&user={}", account.name),
        &same_origin(&fleet, &browser),
    )
    .await
    .unwrap_or_else(|(status, body)| panic!("{status} {body}"));
    let id = client.started().await;

    let page = browser.get(&format!("/sessions/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("action=\"/sessions/{id}/terminate\"")),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("data-recording"),
        "no player while active"
    );
    let path = format!("/sessions/{id}/terminate");
    let forged = browser.post(&path, &[], &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let still = fleet.ok("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(still["status"], "active");

    let csrf = page.csrf();
    let done = browser.post(&path, &[("csrf", &csrf)], &[]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), format!("/sessions/{id}"));
    let (reason, _) = client.ended().await;
    assert!(reason.contains("terminated by admin"), "{reason}");
    let ended = browser.get(&format!("/sessions/{id}")).await;
    assert!(ended.body.contains("status-terminated"), "{}", ended.body);

    let audit = fleet.audit_of("admin").await;
    let record = audit
        .iter()
        .find(|r| r["detail"]["path"] == path.as_str() && r["action"] != "console:Post")
        .unwrap_or_else(|| panic!("the terminate is audited: {audit:?}"));
    assert_eq!(record["outcome"], "allowed", "{record}");
    assert_eq!(record["detail"]["session"], id.as_str(), "{record}");
}
