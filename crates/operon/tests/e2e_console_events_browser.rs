//! The console's live tail of a bus in a real browser (headless Chromium
//! over WebDriver, the real `operon` server): `events_tail.js` follows the
//! stream and shows each matching event as indented JSON, newest first;
//! an event the pattern does not match never shows. A screenshot of the
//! tail lands beside the other console screenshots.

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::webdriver::Browser;
use support::{ServerProcess, free_port, http};

fn admin(server: &ServerProcess, method: &str, path: &str, body: Value) -> Value {
    let (status, answer) = http(server.port, method, path, Some(&server.token), Some(&body));
    assert_eq!(status, 200, "{method} {path} as admin: {answer}");
    answer
}

fn put(server: &ServerProcess, source: &str, marker: &str) {
    let entry = json!({"Source": source, "DetailType": "console test",
        "Detail": json!({"marker": marker}).to_string()});
    admin(server, "POST", "/v1/events", json!({"Entries": [entry]}));
}

#[test]
fn the_live_tail_shows_matching_events_as_they_are_put() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let browser = Browser::start();
    browser.goto(&format!("{}/login", server.url));
    browser.type_into(&browser.find("#token"), &server.token);
    browser.click(&browser.find("form[action='/login'] button[type=submit]"));
    browser.wait_for_path("/nodes");

    browser.goto(&format!("{}/events/tail", server.url));
    browser.type_into(
        &browser.find("#tail-pattern"),
        r#"{"source": ["wanted.app"]}"#,
    );
    browser.click(&browser.find("main form button[type=submit]"));
    // Connected: the script says so once the stream is open.
    browser.wait_for_text("waiting for events");

    put(&server, "other.app", "unwanted-marker");
    put(&server, "wanted.app", "first-marker");
    browser.wait_for_text("first-marker");
    put(&server, "wanted.app", "second-marker");
    let shown = browser.wait_for_text("second-marker");
    assert!(!shown.contains("unwanted-marker"), "{shown}");
    assert!(shown.contains("2 events received"), "{shown}");
    let events = browser.find_all("#tail-events li pre");
    assert_eq!(events.len(), 2, "{shown}");
    let newest = browser.text(&events[0]);
    assert!(newest.contains("second-marker"), "newest first: {newest}");
    assert!(
        newest.contains("\n  \"source\": \"wanted.app\""),
        "indented JSON: {newest}"
    );

    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let shots = target.parent().map_or(target.clone(), |t| t.to_path_buf());
    let shots = shots.join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("events-tail.png"), png).unwrap();
}
