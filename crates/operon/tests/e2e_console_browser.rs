//! The web console in a real browser: headless Chromium, driven through
//! chromedriver's WebDriver protocol, against the real `operon` server with
//! real agents. What only a browser shows is tested here: forms submitted
//! by a user, cookies the page's scripts cannot read, a forged POST from
//! another origin, and how the pages look (screenshots under
//! `<target dir>/console-screenshots/`).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

use serde_json::{Value, json};
use support::webdriver::{Browser, url_path};
use support::{Fleet, ServerProcess, http};

/// An admin call over the HTTP API that must succeed.
fn admin(server: &ServerProcess, method: &str, path: &str, body: Value) -> Value {
    let (status, answer) = http(server.port, method, path, Some(&server.token), Some(&body));
    assert_eq!(status, 200, "{method} {path} as admin: {answer}");
    answer
}

/// A user whose one policy allows only `commands:List`; answers their token.
fn user_without_nodes_list(server: &ServerProcess, user: &str) -> String {
    let policy =
        json!({"Statement": [{"Effect": "Allow", "Action": "commands:List", "Resource": "*"}]});
    admin(
        server,
        "POST",
        "/v1/policies",
        json!({"name": user, "document": policy}),
    );
    admin(
        server,
        "POST",
        "/v1/roles",
        json!({"name": user, "policies": [user]}),
    );
    admin(
        server,
        "POST",
        "/v1/users",
        json!({"name": user, "roles": [user]}),
    );
    let token = admin(
        server,
        "POST",
        "/v1/tokens",
        json!({"name": "main", "user": user}),
    );
    token["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {token}"))
        .to_string()
}

/// Sign in through the form, as a person would, and wait for the landing page.
fn sign_in(browser: &Browser, server: &ServerProcess, token: &str) {
    browser.goto(&format!("{}/login", server.url));
    let field = browser.find("#token");
    browser.type_into(&field, token);
    browser.click(&browser.find("form[action='/login'] button[type=submit]"));
    browser.wait_for_path("/nodes");
}

/// The node names the fleet table shows, read in one script so a page
/// being replaced (a filter just submitted) cannot leave stale elements
/// between finding the links and reading them.
fn listed_nodes(browser: &Browser) -> Vec<String> {
    let names = browser.execute(
        "return Array.from(document.querySelectorAll('main table tbody td:first-child a'))\
         .map(a => a.textContent.trim());",
        &[],
    );
    names
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The status and `Location` of `GET path` sent with only this cookie.
fn get_with_cookie(port: u16, path: &str, cookie: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = response
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (status, location)
}

#[test]
fn sign_in_see_the_fleet_filter_open_a_node_and_sign_out() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let browser = Browser::start();

    sign_in(&browser, server, &server.token);
    browser.wait_for_text("web-1");
    let mut nodes = listed_nodes(&browser);
    nodes.sort();
    assert_eq!(nodes, ["db-1", "web-1", "web-2"]);

    // Filter by tag through the form.
    let tag = browser.find("#tag");
    browser.type_into(&tag, "role=web");
    browser.click(&browser.find("form.filters button[type=submit]"));
    support::wait_for(
        "the fleet filtered to the web nodes",
        support::webdriver::PAGE_TIMEOUT,
        || {
            let mut nodes = listed_nodes(&browser);
            nodes.sort();
            (browser.current_url().contains("tag=role%3Dweb") && nodes == ["web-1", "web-2"])
                .then_some(())
        },
    );
    let shown = browser.body_text();
    assert!(shown.contains("2 matching, 3 in the fleet"), "{shown}");

    // Open a node page from its link.
    let link = browser
        .find_all("main table tbody td:first-child a")
        .into_iter()
        .find(|link| browser.text(link) == "web-2")
        .expect("a link to web-2");
    browser.click(&link);
    browser.wait_for_path("/nodes/web-2");
    let shown = browser.wait_for_text("Node web-2");
    assert!(shown.contains("online"), "{shown}");
    assert!(shown.contains("prod"), "the node's tags: {shown}");

    // The session cookie is HttpOnly: the page's scripts cannot read it.
    let script_cookies = browser.execute("return document.cookie;", &[]);
    assert!(
        !script_cookies
            .as_str()
            .unwrap_or_default()
            .contains("operon_console"),
        "document.cookie shows the session: {script_cookies}"
    );
    let cookies = browser.cookies();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "operon_console")
        .unwrap_or_else(|| panic!("no session cookie among {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    let old_session = format!(
        "operon_console={}",
        session["value"].as_str().unwrap_or_default()
    );
    assert_eq!(
        get_with_cookie(server.port, "/nodes", &old_session).0,
        200,
        "the session opens /nodes while signed in"
    );

    // Sign out with the navigation's button.
    browser.click(&browser.find("header form[action='/logout'] button"));
    browser.wait_for_path("/login");
    browser.wait_for_text("Sign in");
    assert!(
        browser
            .cookies()
            .iter()
            .all(|c| c["name"] != "operon_console"),
        "the session cookie is cleared"
    );
    browser.goto(&format!("{}/nodes", server.url));
    browser.wait_for_path("/login");

    // The old session id itself is dead, not only forgotten by the browser.
    let (status, location) = get_with_cookie(server.port, "/nodes", &old_session);
    assert!(
        (300..400).contains(&status) && location == "/login",
        "the old session after sign-out: {status} to {location:?}"
    );
}

#[test]
fn run_a_command_on_a_tag_and_watch_its_output_arrive_live() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let browser = Browser::start();
    sign_in(&browser, server, &server.token);

    browser.goto(&format!("{}/run", server.url));
    browser.type_into(&browser.find("#targets"), "role=web");
    // The second line waits for a file the test creates only once the first
    // line is on the page: what shows before it can only have come live.
    let gate = fleet.dir.path().join("second-line-may-come");
    let script = format!(
        "echo first-line-$((40+2)); while [ ! -e {} ]; do sleep 0.1; done; echo second-line-$((6*7))",
        gate.display()
    );
    browser.type_into(&browser.find("#commands"), &script);
    browser.click(&browser.find("main form button[type=submit]"));
    support::wait_for("the run page", support::webdriver::PAGE_TIMEOUT, || {
        browser.current_url().contains("/commands/").then_some(())
    });
    let shown = browser.wait_for_text("first-line-42");
    assert!(!shown.contains("second-line-42"), "{shown}");
    assert_eq!(
        browser.find_all("section.node-run").len(),
        2,
        "one section per web node"
    );
    let status = browser.text(&browser.find("#run-status"));
    assert_ne!(status, "Success", "the command is still running: {shown}");

    std::fs::write(&gate, b"").unwrap();
    browser.wait_for_text("second-line-42");
    support::wait_for(
        "the command's final status on the page",
        support::webdriver::PAGE_TIMEOUT,
        || (browser.text(&browser.find("#run-status")) == "Success").then_some(()),
    );
    let shown = browser.body_text();
    assert_eq!(shown.matches("first-line-42").count(), 2, "{shown}");
    assert_eq!(shown.matches("second-line-42").count(), 2, "{shown}");
}

#[test]
fn approve_a_runbook_in_the_inbox_and_see_its_graph_turn_to_succeeded() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let definition = json!({
        "StartAt": "Approve",
        "States": {
            "Approve": {"Type": "Task", "Resource": "operon:approval",
                "Parameters": {"Message": "restart the shop?"},
                "TimeoutSeconds": 300, "ResultPath": "$.approval", "Next": "Done"},
            "Done": {"Type": "Pass", "End": true}
        }
    });
    admin(
        server,
        "POST",
        "/v1/workflows",
        json!({"name": "gate", "definition": definition}),
    );
    let browser = Browser::start();
    sign_in(&browser, server, &server.token);

    // Started from the runbook's page, as a person would: its Start form.
    browser.goto(&format!("{}/workflows/gate", server.url));
    browser.wait_for_text("Starts the latest version, v1.");
    let input = browser.find("#input");
    browser.clear(&input);
    browser.type_into(&input, r#"{"ticket": "T-7"}"#);
    browser.click(&browser.find("form[action='/workflows/gate/start'] button[type=submit]"));
    let id = support::wait_for(
        "the execution page",
        support::webdriver::PAGE_TIMEOUT,
        || {
            let url = browser.current_url();
            url_path(&url)
                .strip_prefix("/executions/")
                .map(str::to_string)
        },
    );
    browser.wait_for_text("RUNNING");
    assert!(browser.body_text().contains("T-7"), "the input is shown");
    let current = browser.find_all("svg g.state.current[data-state='Approve']");
    assert_eq!(current.len(), 1, "the waiting state is the current one");

    browser.goto(&format!("{}/approvals", server.url));
    browser.wait_for_text("restart the shop?");
    browser.type_into(&browser.find("main form input[name=comment]"), "go ahead");
    browser.click(&browser.find("main form button[value=approve]"));
    browser.wait_for_text("No pending approvals.");

    support::wait_for(
        "the execution page to show SUCCEEDED",
        support::webdriver::PAGE_TIMEOUT,
        || {
            browser.goto(&format!("{}/executions/{id}", server.url));
            browser.body_text().contains("SUCCEEDED").then_some(())
        },
    );
    for state in ["Approve", "Done"] {
        let visited = browser.find_all(&format!("svg g.state.visited[data-state='{state}']"));
        assert_eq!(visited.len(), 1, "{state} is drawn visited");
    }
    assert!(browser.find_all("svg g.state.current").is_empty());
}

#[test]
fn a_user_without_nodes_list_sees_the_refusal_naming_the_action() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let token = user_without_nodes_list(server, "carol");
    let browser = Browser::start();

    sign_in(&browser, server, &token);
    let shown = browser.wait_for_text("Refused");
    assert!(shown.contains("nodes:List"), "the refused action: {shown}");
    assert!(shown.contains("carol"), "who is signed in: {shown}");
    assert!(
        !shown.contains("web-1"),
        "a refused user sees no node: {shown}"
    );

    // What the policy allows still opens: the refusal is that action's.
    browser.goto(&format!("{}/commands", server.url));
    let shown = browser.wait_for_text("Commands");
    assert!(!shown.contains("Refused"), "{shown}");
}

/// An HTTP server on loopback that answers every request with `page`.
fn serve_page(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the other site");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        // A thread per connection: Chromium opens sockets it may never use.
        for mut stream in listener.incoming().flatten() {
            let page = page.clone();
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                if matches!(stream.read(&mut request), Ok(n) if n > 0) {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    );
                }
            });
        }
    });
    port
}

/// A page that, once loaded, POSTs a sign-out to `target` by itself.
fn forging_page(target: &str) -> String {
    format!(
        "<!doctype html><html><body><h1>Win a prize</h1>\
         <form id=\"forged\" method=\"post\" action=\"{target}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"guessed\"></form>\
         <script>document.getElementById('forged').submit();</script></body></html>"
    )
}

#[test]
fn a_forged_cross_site_post_is_refused_and_the_session_survives() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let browser = Browser::start();
    sign_in(&browser, server, &server.token);
    browser.wait_for_text("web-1");

    let other_site = serve_page(forging_page(&format!("{}/logout", server.url)));
    // Another origin on the same host (the cookie is sent; the Origin
    // check refuses), then another site (`localhost`: no cookie, and the
    // browser says cross-site).
    for host in ["127.0.0.1", "localhost"] {
        browser.goto(&format!("http://{host}:{other_site}/"));
        browser.wait_for_path("/logout");
        let shown = browser.wait_for_text("Request refused");
        assert!(shown.contains("cross-site"), "{host}: {shown}");
        assert!(
            browser.current_url().starts_with(&server.url),
            "{host}: the forged POST reached the console"
        );

        // Still signed in.
        browser.goto(&format!("{}/nodes", server.url));
        assert_eq!(url_path(&browser.current_url()), "/nodes", "{host}");
        browser.wait_for_text("web-1");
    }

    // Both refusals are audited; the same-site one names the signed-in user.
    let trail = admin(server, "GET", "/v1/audit?limit=10000", json!({}));
    let refused: Vec<&Value> = trail
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter(|r| r["action"] == "console:Post" && r["outcome"] == "refused")
                .filter(|r| r["resource"] == "/logout")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(refused.len(), 2, "the refused sign-outs: {refused:?}");
    assert!(refused.iter().any(|r| r["actor"] == "admin"), "{refused:?}");
}

/// Where the screenshots land: `<target dir>/console-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = target
        .parent()
        .map_or_else(|| target.clone(), |t| t.to_path_buf())
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// Save a screenshot of the current page as `name.png`, checking it is a
/// PNG of some substance.
fn save_screenshot(browser: &Browser, name: &str) -> PathBuf {
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    let png = browser.screenshot();
    assert!(png.starts_with(PNG_MAGIC), "{name}: not a PNG");
    assert!(
        png.len() > 10_000,
        "{name}: a {} byte screenshot is too small to show a page",
        png.len()
    );
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, &png).expect("write the screenshot");
    let written = std::fs::read(&path).expect("read the screenshot back");
    assert_eq!(written, png, "{name}: the file holds the screenshot");
    path
}

#[test]
fn screenshots_of_the_main_pages() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let out = server.cli(&["run", "--targets", "tag:role=web", "--", "echo", "hello"]);
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restricted = user_without_nodes_list(server, "dave");
    let browser = Browser::start();

    browser.goto(&format!("{}/login", server.url));
    browser.wait_for_text("API token");
    save_screenshot(&browser, "login");

    sign_in(&browser, server, &server.token);
    browser.wait_for_text("db-1");
    save_screenshot(&browser, "nodes");

    browser.goto(&format!("{}/nodes/web-1", server.url));
    browser.wait_for_text("Inventory");
    browser.wait_for_text("Success");
    save_screenshot(&browser, "node");

    browser.goto(&format!("{}/commands", server.url));
    browser.wait_for_text("Success");
    save_screenshot(&browser, "commands");

    let definition = json!({
        "Comment": "restart the shop after an approval",
        "StartAt": "Approve",
        "States": {
            "Approve": {"Type": "Task", "Resource": "operon:approval",
                "Parameters": {"Message": "restart?"}, "Next": "Restart"},
            "Restart": {"Type": "Pass", "End": true}
        }
    });
    admin(
        server,
        "POST",
        "/v1/workflows",
        json!({"name": "restart-shop", "definition": definition}),
    );
    browser.goto(&format!("{}/workflows/restart-shop", server.url));
    browser.wait_for_text("Recent executions");
    save_screenshot(&browser, "workflows");

    browser.click(&browser.find("header form[action='/logout'] button"));
    browser.wait_for_path("/login");
    sign_in(&browser, server, &restricted);
    browser.wait_for_text("nodes:List");
    save_screenshot(&browser, "refused");
}

/// The text `selector`'s first element shows, once it contains `text`.
fn wait_for_text_in(browser: &Browser, selector: &str, text: &str) -> String {
    support::wait_for(
        &format!("{text:?} in {selector}"),
        support::webdriver::PAGE_TIMEOUT,
        || {
            // One script: an element replaced between finding and
            // reading it cannot go stale.
            let shown = browser.execute(
                "const e = document.querySelector(arguments[0]); \
                 return e ? e.innerText : '';",
                &[json!(selector)],
            );
            let shown = shown.as_str().unwrap_or_default().to_string();
            shown.contains(text).then_some(shown)
        },
    )
}

/// The foreground colour xterm.js's own (script-written) styles give the
/// rows under `screen`: white, unless the console's CSP kept them out.
fn rows_colour(browser: &Browser, screen: &str) -> String {
    let script =
        "return getComputedStyle(document.querySelector(arguments[0] + ' .xterm-rows')).color;";
    browser
        .execute(script, &[json!(screen)])
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_terminal_runs_echo_on_a_node_and_the_recording_plays_it_back() {
    let fleet = Fleet::start();
    let server = &fleet.server;
    let browser = Browser::start();
    sign_in(&browser, server, &server.token);

    browser.goto(&format!("{}/nodes/web-1", server.url));
    browser.click(&browser.find("main a[href='/nodes/web-1/terminal']"));
    browser.wait_for_path("/nodes/web-1/terminal");
    // As a test account: the server's default one need not exist on the node.
    let account = support::accounts::ShellAccount::new();
    browser.type_into(&browser.find("#user"), &account.name);
    browser.click(&browser.find("main form.filters button[type=submit]"));
    support::wait_for(
        "the terminal as the test account",
        support::webdriver::PAGE_TIMEOUT,
        || {
            browser
                .current_url()
                .contains(&format!("user={}", account.name))
                .then_some(())
        },
    );
    wait_for_text_in(
        &browser,
        "#terminal-status",
        &format!("Connected to web-1 as {}", account.name),
    );

    // Typed into xterm.js as a person types, Enter included.
    let keys = browser.find("#terminal .xterm-helper-textarea");
    browser.type_into(&keys, "echo hi-$((6*7))\u{E007}");
    wait_for_text_in(&browser, "#terminal .xterm-rows", "hi-42");
    assert_eq!(
        rows_colour(&browser, "#terminal"),
        "rgb(255, 255, 255)",
        "xterm.js's styles apply under the console's CSP"
    );
    save_screenshot(&browser, "terminal");
    browser.type_into(&keys, "exit 7\u{E007}");
    wait_for_text_in(
        &browser,
        "#terminal-status",
        "Session ended: the program exited (exit status 7).",
    );

    // Its page, from the status line's link: the player shows the same.
    browser.click(&browser.find("#terminal-status a"));
    support::wait_for("the session page", support::webdriver::PAGE_TIMEOUT, || {
        url_path(&browser.current_url())
            .starts_with("/sessions/s-")
            .then_some(())
    });
    browser.wait_for_text("the program exited");
    let played = wait_for_text_in(&browser, "#player-screen .xterm-rows", "hi-42");
    assert!(played.contains("echo hi-$((6*7))"), "{played}");
    wait_for_text_in(&browser, "#player-status", "Played to the end.");
    assert_eq!(
        rows_colour(&browser, "#player-screen"),
        "rgb(255, 255, 255)"
    );
    save_screenshot(&browser, "session");

    // Listed, ended, with its exit code.
    browser.goto(&format!("{}/sessions", server.url));
    let shown = browser.wait_for_text("web-1");
    assert!(shown.contains("ended"), "{shown}");
}
