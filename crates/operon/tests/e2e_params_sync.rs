//! Files that follow parameters, end to end: the real server, real agents
//! (each writing below its own `--host-root`) and `operon params sync`.
//!
//! The first test is the scenario of the issue: a dotenv file on the
//! staging nodes only, rewritten (and its on-change hook run once) when a
//! parameter changes, a node that was down caught up when it comes back,
//! and the SecureString in it never in the server's log, the audit trail,
//! the database's bytes or a command record. The second checks that the
//! classic wiring (a rule on the parameter change event running a command
//! with a `{{ssm:...}}` reference) works too, the command record keeping
//! the reference rather than the value.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const SECRET: &str = "pw-Sy4nc9-Kq7-never-logged";
const DB_URL_1: &str = "postgres://db-1:5432/app";
const DB_URL_2: &str = "postgres://db-2:5432/app";
const CLASSIC_URL_1: &str = "https://classic-one.example:8443/a";
const CLASSIC_URL_2: &str = "https://classic-two.example:8443/b";
const ON_CHANGE: &str = r#"echo changed >> "$(dirname "$OPERON_SYNC_FILE")/changes""#;
const WAIT: Duration = Duration::from_secs(30);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Run a command that must succeed; its stdout.
fn ok(server: &ServerProcess, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "operon {args:?} failed: {}{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// The dotenv file the sync should write for these values.
fn dotenv(db_url: &str) -> String {
    format!("DB_URL=\"{db_url}\"\nPW=\"{SECRET}\"\n")
}

/// Lines in a node's `changes` file (0 when there is none yet).
fn change_count(root: &Path) -> usize {
    std::fs::read_to_string(root.join("etc/app/changes"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// One node's entry in `params sync status --json`, if it has one.
fn sync_node(server: &ServerProcess, node: &str) -> Option<Value> {
    let status = server.cli_json(&["params", "sync", "status", "app-env"]);
    status["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {status}"))
        .iter()
        .find(|n| n["node_name"] == node)
        .cloned()
}

/// Wait until `node` has applied content holding `db_url`'s version and
/// its file (below `root`) reads `expected`; the node's status entry.
fn wait_applied(
    server: &ServerProcess,
    node: &str,
    root: &Path,
    db_url_version: &str,
    expected: &str,
) -> Value {
    let file = root.join("etc/app/env");
    wait_for(&format!("{node} to apply {db_url_version}"), WAIT, || {
        let entry = sync_node(server, node)?;
        let applied = entry["status"] == "applied"
            && entry["versions"]
                .as_str()
                .is_some_and(|v| v.contains(db_url_version));
        let written = std::fs::read_to_string(&file).ok()? == expected;
        (applied && written).then_some(entry)
    })
}

fn wait_changes(root: &Path, node: &str, lines: usize) {
    wait_for(
        &format!("{lines} line(s) in {node}'s changes"),
        WAIT,
        || (change_count(root) == lines).then_some(()),
    );
}

/// A host root with the `etc/app/` directory the synced file goes into.
fn host_root(base: &Path, node: &str) -> PathBuf {
    let root = base.join(format!("{node}-root"));
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    root
}

#[test]
fn a_synced_file_follows_its_parameters_catches_up_and_never_leaks_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = ServerProcess::start_with(
        &dir.path().join("server"),
        free_port(),
        "debug",
        Stdio::from(log),
    );
    let token = server.enroll_token(&[], 3, "1h");
    let nodes = [
        ("web-1", "env=staging"),
        ("web-2", "env=staging"),
        ("db-1", "env=prod"),
    ];
    let roots: Vec<PathBuf> = nodes
        .iter()
        .map(|(name, _)| host_root(dir.path(), name))
        .collect();
    let mut agents: Vec<AgentProcess> = nodes
        .iter()
        .zip(&roots)
        .map(|((name, tag), root)| {
            AgentProcess::start_with_host_root(
                &server,
                &token,
                &dir.path().join(name),
                name,
                &[tag],
                root,
            )
        })
        .collect();
    server.wait_online(&["web-1", "web-2", "db-1"]);
    let (web1_root, web2_root, db1_root) = (&roots[0], &roots[1], &roots[2]);

    ok(
        &server,
        &["params", "put", "/app/staging/db_url", "--value", DB_URL_1],
    );
    let out = server.cli_with_stdin(
        &[
            "params",
            "put",
            "/app/staging/pw",
            "--type",
            "SecureString",
            "--value",
            "-",
        ],
        &format!("{SECRET}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    ok(
        &server,
        &[
            "params",
            "sync",
            "create",
            "app-env",
            "--path",
            "/app/staging/",
            "--targets",
            "tag:env=staging",
            "--file",
            "/etc/app/env",
            "--on-change",
            ON_CHANGE,
        ],
    );

    // Both staging nodes get the file, exactly, 0600, the hook run once.
    for (node, root) in [("web-1", web1_root), ("web-2", web2_root)] {
        let entry = wait_applied(
            &server,
            node,
            root,
            "/app/staging/db_url:1",
            &dotenv(DB_URL_1),
        );
        assert_eq!(
            entry["versions"], "/app/staging/db_url:1,/app/staging/pw:1",
            "{entry}"
        );
        let mode = std::fs::metadata(root.join("etc/app/env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{node}'s file mode is {mode:o}");
        wait_changes(root, node, 1);
    }
    let status = server.cli_json(&["params", "sync", "status", "app-env"]);
    let mut named: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_name"].as_str().unwrap())
        .collect();
    named.sort();
    assert_eq!(
        named,
        ["web-1", "web-2"],
        "only the staging nodes: {status}"
    );

    // web-2 goes down; db_url changes; web-1 follows, web-2 cannot.
    agents[1].kill();
    wait_for("web-2 offline", WAIT, || {
        (server.node_status("web-2").as_deref() != Some("online")).then_some(())
    });
    let out = ok(
        &server,
        &[
            "params",
            "put",
            "/app/staging/db_url",
            "--value",
            DB_URL_2,
            "--overwrite",
        ],
    );
    assert_eq!(out, "/app/staging/db_url version 2 (Standard)\n");
    let entry = wait_applied(
        &server,
        "web-1",
        web1_root,
        "/app/staging/db_url:2",
        &dotenv(DB_URL_2),
    );
    assert_eq!(
        entry["versions"], "/app/staging/db_url:2,/app/staging/pw:1",
        "{entry}"
    );
    wait_changes(web1_root, "web-1", 2);
    assert_eq!(
        std::fs::read_to_string(web2_root.join("etc/app/env")).unwrap(),
        dotenv(DB_URL_1),
        "web-2's agent is down: its file keeps the old value"
    );
    assert_eq!(change_count(web2_root), 1);
    let web2 = sync_node(&server, "web-2").expect("web-2 in the status");
    assert!(
        !(web2["status"] == "applied"
            && web2["versions"]
                .as_str()
                .is_some_and(|v| v.contains("db_url:2"))),
        "web-2 is down, yet shown as having applied the new content: {web2}"
    );

    // web-2 comes back and is caught up.
    agents[1].restart_with_host_root(&server, web2_root);
    server.wait_online(&["web-2"]);
    wait_applied(
        &server,
        "web-2",
        web2_root,
        "/app/staging/db_url:2",
        &dotenv(DB_URL_2),
    );
    wait_changes(web2_root, "web-2", 2);

    // The hooks ran once per change, no more; db-1 never got a file.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(change_count(web1_root), 2);
    assert_eq!(change_count(web2_root), 2);
    assert!(
        !db1_root.join("etc/app/env").exists(),
        "db-1 (env=prod) got the staging file"
    );
    assert!(!db1_root.join("etc/app/changes").exists());

    // The secret is in the files and nowhere else.
    let status = server.cli_json(&["params", "sync", "status", "app-env"]);
    assert!(!status.to_string().contains(SECRET), "{status}");
    let trail = server
        .cli_json(&["audit", "list", "--limit", "10000"])
        .to_string();
    assert!(
        trail.contains("app-env"),
        "the trail names the sync: {trail}"
    );
    assert!(!trail.contains(SECRET), "the secret in the audit trail");
    let commands = server.cli_json(&["commands", "list"]);
    for command in commands.as_array().unwrap() {
        let id = command["id"].as_str().unwrap();
        let record = server.command(id).to_string();
        assert!(!record.contains(SECRET), "the secret in command {id}");
    }
    assert!(!commands.to_string().contains(SECRET));
    let data = dir.path().join("server");
    let database = std::fs::read(data.join("operon.db")).unwrap();
    let wal = std::fs::read(data.join("operon.db-wal")).unwrap_or_default();
    assert!(!contains(&database, SECRET), "the secret in operon.db");
    assert!(!contains(&wal, SECRET), "the secret in operon.db-wal");
    let log = std::fs::read(&log_path).unwrap();
    assert!(
        contains(&log, "DEBUG"),
        "the debug log is being written: {}",
        text(&log)
    );
    assert!(!contains(&log, SECRET), "the secret in the server log");
    drop(agents);
}

#[test]
fn a_rule_on_the_change_event_reruns_a_command_with_the_reference_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let token = server.enroll_token(&[], 2, "1h");
    let _agents: Vec<AgentProcess> = ["web-1", "web-2"]
        .iter()
        .map(|name| {
            AgentProcess::start(
                &server,
                &token,
                &dir.path().join(name),
                name,
                &["env=staging"],
            )
        })
        .collect();
    server.wait_online(&["web-1", "web-2"]);

    // Both staging agents share this machine: the rule runs on web-1 only,
    // so one node writes the file.
    let env_file = dir.path().join("classic.env");
    let command = format!(
        "echo \"URL={{{{ssm:/app/classic/url}}}}\" > '{}'",
        env_file.display()
    );
    let targets = dir.path().join("targets.json");
    std::fs::write(
        &targets,
        json!([{
            "Id": "rewrite-env",
            "Kind": "run-command",
            "NodeIds": ["web-1"],
            "Parameters": {"commands": [command]}
        }])
        .to_string(),
    )
    .unwrap();
    ok(
        &server,
        &[
            "rules",
            "put",
            "classic-env",
            "--pattern",
            r#"{"source":["operon.params"],"detail-type":["Parameter Store Change"],"detail":{"name":[{"prefix":"/app/classic/"}]}}"#,
            "--targets-file",
            targets.to_str().unwrap(),
        ],
    );

    // A parameter outside the prefix starts nothing.
    ok(
        &server,
        &["params", "put", "/app/other/url", "--value", "elsewhere"],
    );
    ok(
        &server,
        &[
            "params",
            "put",
            "/app/classic/url",
            "--value",
            CLASSIC_URL_1,
        ],
    );
    wait_for("the rule to write the first value", WAIT, || {
        (std::fs::read_to_string(&env_file).ok()? == format!("URL={CLASSIC_URL_1}\n")).then_some(())
    });
    ok(
        &server,
        &[
            "params",
            "put",
            "/app/classic/url",
            "--value",
            CLASSIC_URL_2,
            "--overwrite",
        ],
    );
    wait_for("the rule to write the second value", WAIT, || {
        (std::fs::read_to_string(&env_file).ok()? == format!("URL={CLASSIC_URL_2}\n")).then_some(())
    });

    // One command per change of /app/classic/url, on web-1, each keeping
    // the reference and neither value.
    let rule_commands = wait_for("both rule commands to finish", WAIT, || {
        let list = server.cli_json(&["commands", "list"]);
        let ids: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"].as_str().unwrap_or("").starts_with("c-ev-"))
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        let done: Vec<Value> = ids
            .iter()
            .map(|id| server.command(id))
            .filter(|c| !matches!(c["status"].as_str(), Some("Pending") | Some("InProgress")))
            .collect();
        (done.len() == ids.len() && ids.len() >= 2).then_some(done)
    });
    assert_eq!(rule_commands.len(), 2, "{rule_commands:?}");
    for record in &rule_commands {
        assert_eq!(record["status"], "Success", "{record}");
        assert_eq!(record["requested_by"], "rule/classic-env", "{record}");
        let invocations = record["invocations"].as_array().unwrap();
        assert_eq!(invocations.len(), 1, "{record}");
        assert_eq!(invocations[0]["node_name"], "web-1");
        let stored = record.to_string();
        assert!(
            stored.contains("{{ssm:/app/classic/url}}"),
            "the record keeps the reference: {stored}"
        );
        for value in [CLASSIC_URL_1, CLASSIC_URL_2] {
            assert!(!stored.contains(value), "{value} in the record: {stored}");
        }
    }
}
