//! Inventory with the real binaries: an agent started with
//! `--custom-inventory-dir` reports its custom file, the CLI shows and
//! queries it (table and `--json`), and after a restart of the agent with a
//! changed file the server holds the change (the agent kept what was
//! acknowledged in its state directory).

mod support;

use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{ServerProcess, free_port, operon, wait_for};

fn start_agent(
    server: &ServerProcess,
    token: Option<&str>,
    state: &std::path::Path,
    custom: &std::path::Path,
) -> Child {
    let mut cmd = operon();
    cmd.args(["agent", "--server", &server.url, "--name", "inv-1"])
        .arg("--state-dir")
        .arg(state)
        .arg("--custom-inventory-dir")
        .arg(custom)
        .args(["--inventory-interval-secs", "1", "--tag", "env=prod"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(token) = token {
        cmd.args(["--enroll-token", token]);
    }
    cmd.spawn().expect("spawn operon agent")
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn billing_version(server: &ServerProcess) -> Option<String> {
    let shown = server.cli_json(&["inventory", "show", "inv-1", "--type", "custom:apps"]);
    shown["items"]
        .as_array()?
        .iter()
        .find(|i| i["key"] == "billing")
        .and_then(|i| i["attributes"]["version"].as_str().map(str::to_string))
}

#[test]
fn the_cli_shows_and_queries_what_an_agent_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let custom = dir.path().join("inventory.d");
    std::fs::create_dir_all(&custom).unwrap();
    std::fs::write(
        custom.join("apps.json"),
        r#"[{"name": "billing", "version": "2.1"}, {"name": "ledger", "version": "1.0"}]"#,
    )
    .unwrap();
    let token = server.enroll_token(&[], 1, "1h");
    let state = dir.path().join("agent");
    let agent = Kill(start_agent(&server, Some(&token), &state, &custom));
    server.wait_online(&["inv-1"]);
    wait_for("the custom inventory", Duration::from_secs(30), || {
        (billing_version(&server).as_deref() == Some("2.1")).then_some(())
    });

    // The table.
    let out = server.cli(&["inventory", "show", "inv-1", "--type", "custom:apps"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("TYPE") && table.contains("ATTRIBUTES"),
        "{table}"
    );
    assert!(
        table.contains("billing") && table.contains("version=2.1"),
        "{table}"
    );

    // A fleet-wide query with Debian version order.
    let found = server.cli_json(&[
        "inventory",
        "query",
        "--type",
        "custom:apps",
        "--filter",
        "name=billing,version<2.10",
    ]);
    let matches: Vec<&Value> = found["matches"].as_array().unwrap().iter().collect();
    assert_eq!(matches.len(), 1, "{found}");
    assert_eq!(matches[0]["node_name"], "inv-1");
    let out = server.cli(&[
        "inventory",
        "query",
        "--type",
        "custom:apps",
        "--filter",
        "version",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no operator"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Built-in kinds too.
    let users = server.cli_json(&[
        "inventory",
        "query",
        "--type",
        "users",
        "--filter",
        "name=root",
    ]);
    assert_eq!(users["matches"][0]["attributes"]["uid"], "0", "{users}");

    // What the server acknowledged is kept by the agent.
    wait_for(
        "the acknowledged set on disk",
        Duration::from_secs(30),
        || {
            state
                .join("inventory/custom:apps.json")
                .exists()
                .then_some(())
        },
    );

    // Changed while the agent is down: reported after the restart.
    drop(agent);
    std::fs::write(
        custom.join("apps.json"),
        r#"[{"name": "billing", "version": "2.2"}, {"name": "ledger", "version": "1.0"}]"#,
    )
    .unwrap();
    let _agent = Kill(start_agent(&server, None, &state, &custom));
    wait_for(
        "the change after a restart",
        Duration::from_secs(30),
        || (billing_version(&server).as_deref() == Some("2.2")).then_some(()),
    );
}
