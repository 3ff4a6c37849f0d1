//! Parameter Store end to end: the real server and the `operon params`,
//! `operon keys` and `operon access-keys` commands.
//!
//! Besides the reads and writes, the SecureString checks: a secret never
//! shows in the server's debug log, the audit trail, the database's bytes or
//! a read without `--decrypt`; a decrypted read is audited; key rotation
//! and re-wrapping keep every version readable; a user allowed `params:Get`
//! but not `params:GetDecrypted` is refused, visibly and in the trail.

mod support;

use std::process::{Output, Stdio};

use serde_json::{Value, json};
use support::*;

const SECRET: &str = "pw-Zq9xK41-first-secret";
const SECRET_2: &str = "pw-Hy7Lm02-second-secret";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run a command that must succeed; its stdout.
fn ok(server: &ServerProcess, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "operon {args:?} failed: {}{}",
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

fn names(parameters: &Value) -> Vec<String> {
    let mut names: Vec<String> = parameters["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("no parameters in {parameters}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn parameters_are_versioned_labelled_listed_and_secrets_never_leak() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = ServerProcess::start_with(
        &dir.path().join("server"),
        free_port(),
        "debug",
        Stdio::from(log),
    );

    // Puts of the three types; the secret only through stdin.
    let out = ok(
        &server,
        &[
            "params",
            "put",
            "/app/staging/db/url",
            "--value",
            "postgres://db-1:5432/app",
            "--description",
            "the database",
            "--tag",
            "env=staging",
        ],
    );
    assert_eq!(out, "/app/staging/db/url version 1 (Standard)\n");
    let written = server.cli_json(&[
        "params",
        "put",
        "/app/staging/hosts",
        "--value",
        "web-1,web-2",
        "--type",
        "StringList",
    ]);
    assert_eq!(
        written,
        json!({"name": "/app/staging/hosts", "version": 1, "tier": "Standard"})
    );
    let out = server.cli_with_stdin(
        &[
            "params",
            "put",
            "/app/staging/db/password",
            "--type",
            "SecureString",
            "--value",
            "-",
        ],
        &format!("{SECRET}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "/app/staging/db/password version 1 (Standard)\n"
    );
    ok(
        &server,
        &["params", "put", "/app/prod/db/url", "--value", "prod"],
    );

    // Gets: the value alone; a SecureString's only with --decrypt.
    assert_eq!(
        ok(&server, &["params", "get", "/app/staging/db/url"]),
        "postgres://db-1:5432/app\n"
    );
    assert_eq!(
        ok(&server, &["params", "get", "/app/staging/hosts"]),
        "web-1,web-2\n"
    );
    let hidden = server.cli(&["params", "get", "/app/staging/db/password"]);
    assert!(hidden.status.success(), "{}", stderr(&hidden));
    assert_eq!(stdout(&hidden), "");
    assert!(stderr(&hidden).contains("--decrypt"), "{}", stderr(&hidden));
    assert!(!contains(&hidden.stderr, SECRET));
    let hidden = server.cli_json(&["params", "get", "/app/staging/db/password"]);
    assert_eq!(hidden["type"], "SecureString");
    assert!(hidden.get("value").is_none(), "{hidden}");
    assert_eq!(
        ok(
            &server,
            &["params", "get", "/app/staging/db/password", "--decrypt"]
        ),
        format!("{SECRET}\n")
    );

    // Versions: a second put needs --overwrite; :1 still reads the first.
    let refused = server.cli(&["params", "put", "/app/staging/db/url", "--value", "x"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("HTTP 409"),
        "{}",
        stderr(&refused)
    );
    let out = ok(
        &server,
        &[
            "params",
            "put",
            "/app/staging/db/url",
            "--value",
            "postgres://db-2:5432/app",
            "--overwrite",
        ],
    );
    assert_eq!(out, "/app/staging/db/url version 2 (Standard)\n");
    assert_eq!(
        ok(&server, &["params", "get", "/app/staging/db/url:1"]),
        "postgres://db-1:5432/app\n"
    );
    assert_eq!(
        ok(&server, &["params", "get", "/app/staging/db/url"]),
        "postgres://db-2:5432/app\n"
    );
    let v1 = server.cli_json(&["params", "get", "/app/staging/db/url:1"]);
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["selector"], ":1");

    // Labels: on version 1, then moved to the latest, then taken off.
    ok(
        &server,
        &[
            "params",
            "label",
            "/app/staging/db/url",
            "--version",
            "1",
            "stable",
        ],
    );
    assert_eq!(
        ok(&server, &["params", "get", "/app/staging/db/url:stable"]),
        "postgres://db-1:5432/app\n"
    );
    let out = ok(
        &server,
        &["params", "label", "/app/staging/db/url", "stable"],
    );
    assert_eq!(out, "/app/staging/db/url version 2 labelled\n");
    assert_eq!(
        ok(&server, &["params", "get", "/app/staging/db/url:stable"]),
        "postgres://db-2:5432/app\n"
    );
    let history = server.cli_json(&["params", "history", "/app/staging/db/url"]);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["labels"], json!([]));
    assert_eq!(history[1]["labels"], json!(["stable"]));
    assert_eq!(history[0]["value"], "postgres://db-1:5432/app");
    let invalid = server.cli(&["params", "label", "/app/staging/db/url", "1bad"]);
    assert!(!invalid.status.success(), "an invalid label is reported");
    assert!(stderr(&invalid).contains("1bad"), "{}", stderr(&invalid));
    let unlabelled = server.cli_json(&[
        "params",
        "unlabel",
        "/app/staging/db/url",
        "--version",
        "2",
        "stable",
    ]);
    assert_eq!(unlabelled["removed_labels"], json!(["stable"]));
    let gone = server.cli(&["params", "get", "/app/staging/db/url:stable"]);
    assert!(!gone.status.success());

    // By path: recursive and one level; secure values hidden in the table.
    let table = ok(
        &server,
        &["params", "get-path", "/app/staging", "--recursive"],
    );
    for name in [
        "/app/staging/db/url",
        "/app/staging/db/password",
        "/app/staging/hosts",
    ] {
        assert!(table.contains(name), "{table}");
    }
    assert!(table.contains("(secure)"), "{table}");
    assert!(table.contains("postgres://db-2:5432/app"), "{table}");
    assert!(!table.contains(SECRET), "{table}");
    assert!(!table.contains("/app/prod"), "{table}");
    let recursive = server.cli_json(&["params", "get-path", "/app/staging", "--recursive"]);
    assert_eq!(
        names(&recursive),
        [
            "/app/staging/db/password",
            "/app/staging/db/url",
            "/app/staging/hosts"
        ]
    );
    let one_level = server.cli_json(&["params", "get-path", "/app/staging"]);
    assert_eq!(names(&one_level), ["/app/staging/hosts"]);
    let decrypted = server.cli_json(&["params", "get-path", "/app/staging/db", "--decrypt"]);
    let password = decrypted["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "/app/staging/db/password")
        .unwrap();
    assert_eq!(password["value"], SECRET);

    // Listing with filters.
    let all = server.cli_json(&["params", "list"]);
    assert_eq!(names(&all).len(), 4, "{all}");
    let secure = server.cli_json(&[
        "params",
        "list",
        "--path",
        "/app",
        "--recursive",
        "--type",
        "SecureString",
    ]);
    assert_eq!(names(&secure), ["/app/staging/db/password"]);
    assert!(secure["parameters"][0].get("value").is_none(), "{secure}");
    let contains_hosts = server.cli_json(&["params", "list", "--name-contains", "hosts"]);
    assert_eq!(names(&contains_hosts), ["/app/staging/hosts"]);
    let tagged = server.cli_json(&["params", "list", "--tag", "env=staging"]);
    assert_eq!(names(&tagged), ["/app/staging/db/url"]);
    let listed = ok(&server, &["params", "list", "--path", "/app/staging/db"]);
    assert!(listed.contains("the database"), "{listed}");
    assert!(!listed.contains(SECRET), "{listed}");

    // Tags.
    let tags = server.cli_json(&[
        "params",
        "tag",
        "/app/staging/hosts",
        "--add",
        "team=ops",
        "--add",
        "tier=web",
    ]);
    assert_eq!(tags["tags"], json!({"team": "ops", "tier": "web"}));
    ok(
        &server,
        &["params", "tag", "/app/staging/hosts", "--remove", "tier"],
    );
    let tags = server.cli_json(&["params", "tags", "/app/staging/hosts"]);
    assert_eq!(tags["tags"], json!({"team": "ops"}));

    // Key rotation: v1 under the first key, v2 under the second; after the
    // rewrap both read back.
    let keys = server.cli_json(&["keys", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    ok(&server, &["keys", "rotate"]);
    let out = server.cli_with_stdin(
        &[
            "params",
            "put",
            "/app/staging/db/password",
            "--value",
            "-",
            "--overwrite",
        ],
        SECRET_2,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rewrap = ok(&server, &["keys", "rewrap"]);
    assert!(rewrap.starts_with("rewrapped 1 under "), "{rewrap}");
    let keys = server.cli_json(&["keys", "list"]);
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0]["active"], false, "{keys:?}");
    assert_eq!(keys[1]["active"], true, "{keys:?}");
    assert!(rewrap.contains(keys[1]["id"].as_str().unwrap()), "{rewrap}");
    assert_eq!(
        ok(
            &server,
            &["params", "get", "/app/staging/db/password:1", "--decrypt"]
        ),
        format!("{SECRET}\n")
    );
    assert_eq!(
        ok(
            &server,
            &["params", "get", "/app/staging/db/password:2", "--decrypt"]
        ),
        format!("{SECRET_2}\n")
    );
    let human_keys = ok(&server, &["keys", "list"]);
    assert_eq!(human_keys.lines().count(), 2, "{human_keys}");
    assert!(
        human_keys.lines().nth(1).unwrap().ends_with("(active)"),
        "{human_keys}"
    );

    // Access keys: the secret once, never in a listing.
    ok(&server, &["users", "create", "deployer", "--service"]);
    let created = server.cli(&["access-keys", "create", "--user", "deployer"]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("secret access key: "));
    assert!(stderr(&created).contains("shown only this once"));
    let created = server.cli_json(&["access-keys", "create", "--user", "deployer"]);
    let id = created["access_key_id"].as_str().unwrap();
    let secret_key = created["secret_access_key"].as_str().unwrap();
    assert!(!secret_key.is_empty());
    let listed = server.cli_json(&["access-keys", "list", "--user", "deployer"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(!listed.to_string().contains(secret_key), "{listed}");
    let revoked = server.cli_json(&["access-keys", "delete", id]);
    assert!(revoked["revoked_at"].as_i64().is_some(), "{revoked}");

    // Deleting several: each reported, and a failure makes the exit 1.
    let out = server.cli(&[
        "params",
        "delete",
        "/app/staging/hosts",
        "/app/nothing/here",
        "/app/prod/db/url",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "deleted /app/staging/hosts (latest version 1)\ndeleted /app/prod/db/url (latest version 1)\n"
    );
    assert!(
        stderr(&out).contains("/app/nothing/here"),
        "{}",
        stderr(&out)
    );
    let all = server.cli_json(&["params", "list"]);
    assert_eq!(
        names(&all),
        ["/app/staging/db/password", "/app/staging/db/url"]
    );
    let deleted = server.cli_json(&["params", "delete", "/app/staging/db/url"]);
    assert_eq!(
        deleted,
        json!([{"name": "/app/staging/db/url", "version": 2}])
    );

    // The decrypted reads are audited, naming the parameter and version.
    let audit = server.cli_json(&["audit", "list", "--action", "params:*", "--limit", "1000"]);
    let records = audit.as_array().unwrap();
    let decrypted_v1 = records.iter().any(|r| {
        r["action"] == "params:GetDecrypted"
            && r["outcome"] == "allowed"
            && r["resource"] == "param/app/staging/db/password"
            && r["detail"]["parameters"]
                == json!([{"name": "/app/staging/db/password", "version": 1}])
    });
    assert!(decrypted_v1, "{audit}");
    let decrypted_v2 = records.iter().any(|r| {
        r["action"] == "params:GetDecrypted" && r["detail"]["parameters"][0]["version"] == 2
    });
    assert!(decrypted_v2, "{audit}");

    // The secrets are nowhere at rest or in the logs.
    let whole_trail = server.cli_json(&["audit", "list", "--limit", "10000"]);
    let trail = whole_trail.to_string();
    let data = dir.path().join("server");
    let database = std::fs::read(data.join("operon.db")).unwrap();
    let wal = std::fs::read(data.join("operon.db-wal")).unwrap_or_default();
    let log = std::fs::read(&log_path).unwrap();
    assert!(
        contains(&log, "params"),
        "the debug log is being written: {}",
        String::from_utf8_lossy(&log)
    );
    for secret in [SECRET, SECRET_2, secret_key] {
        assert!(!trail.contains(secret), "{secret} in the audit trail");
        assert!(!contains(&database, secret), "{secret} in operon.db");
        assert!(!contains(&wal, secret), "{secret} in operon.db-wal");
        assert!(!contains(&log, secret), "{secret} in the server log");
    }
}

/// A user, holding one role with `policy`, and a token of theirs.
fn user_with_policy(server: &ServerProcess, user: &str, policy: Value) -> String {
    let admin = |path: &str, body: Value| {
        let (status, answer) = http(server.port, "POST", path, Some(&server.token), Some(&body));
        assert_eq!(status, 200, "POST {path}: {answer}");
        answer
    };
    admin("/v1/policies", json!({"name": user, "document": policy}));
    admin("/v1/roles", json!({"name": user, "policies": [user]}));
    admin("/v1/users", json!({"name": user, "roles": [user]}));
    let token = admin("/v1/tokens", json!({"name": "main", "user": user}));
    token["token"].as_str().unwrap().to_string()
}

#[test]
fn a_reader_without_get_decrypted_is_refused_the_secret_and_other_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let token = user_with_policy(
        &server,
        "carol",
        json!({"Statement": [{"Effect": "Allow", "Action": "params:Get", "Resource": "param/app/*"}]}),
    );
    ok(
        &server,
        &[
            "params",
            "put",
            "/app/staging/token",
            "--type",
            "SecureString",
            "--value",
            SECRET,
        ],
    );
    ok(
        &server,
        &["params", "put", "/app/staging/plain", "--value", "hello"],
    );
    ok(&server, &["params", "put", "/other/x", "--value", "other"]);
    let as_carol = |args: &[&str]| {
        server
            .cli_command()
            .env("OPERON_TOKEN", &token)
            .args(args)
            .output()
            .unwrap()
    };

    let refused = as_carol(&["params", "get", "/app/staging/token", "--decrypt"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("HTTP 403"),
        "{}",
        stderr(&refused)
    );
    assert!(!contains(&refused.stdout, SECRET));
    assert!(!contains(&refused.stderr, SECRET));
    let plain = as_carol(&["params", "get", "/app/staging/token", "--json"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let plain: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(plain["type"], "SecureString");
    assert!(plain.get("value").is_none(), "{plain}");
    let string = as_carol(&["params", "get", "/app/staging/plain"]);
    assert!(string.status.success(), "{}", stderr(&string));
    assert_eq!(stdout(&string), "hello\n");
    let elsewhere = as_carol(&["params", "get", "/other/x"]);
    assert!(!elsewhere.status.success());
    assert!(
        stderr(&elsewhere).contains("HTTP 403"),
        "{}",
        stderr(&elsewhere)
    );
    assert_eq!(stdout(&elsewhere), "");

    // The key ring is not hers to list or change.
    for (action, args) in [
        ("keys:List", ["keys", "list"]),
        ("keys:Rotate", ["keys", "rotate"]),
        ("keys:Rewrap", ["keys", "rewrap"]),
    ] {
        let refused = as_carol(&args);
        assert!(!refused.status.success(), "{action} is refused");
        assert!(
            stderr(&refused).contains("HTTP 403"),
            "{}",
            stderr(&refused)
        );
    }
    let keys = server.cli_json(&["keys", "list"]);
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "no key was added: {keys}"
    );

    // More than a page (10) under a path: every page is followed.
    let many: Vec<String> = (0..12).map(|i| format!("/app/many/p{i:02}")).collect();
    for name in &many {
        ok(&server, &["params", "put", name, "--value", "v"]);
    }
    let read = server.cli_json(&["params", "get-path", "/app/many"]);
    assert_eq!(names(&read), many);
    let read = as_carol(&["params", "get-path", "/app/many"]);
    assert!(read.status.success(), "{}", stderr(&read));
    assert_eq!(stdout(&read).matches("/app/many/p").count(), 12);

    let audit = server.cli_json(&["audit", "list", "--actor", "carol", "--limit", "1000"]);
    let denied =
        |action: &str, resource: &str| {
            audit.as_array().unwrap().iter().any(|r| {
                r["action"] == action && r["resource"] == resource && r["outcome"] == "denied"
            })
        };
    assert!(
        denied("params:GetDecrypted", "param/app/staging/token"),
        "{audit}"
    );
    assert!(denied("params:Get", "param/other/x"), "{audit}");
    assert!(denied("keys:Rotate", "key/*"), "{audit}");
    assert!(!audit.to_string().contains(SECRET));
}
