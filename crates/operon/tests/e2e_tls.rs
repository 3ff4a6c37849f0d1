//! End-to-end: TLS on the agent connection and node credential rotation,
//! with the real `operon` binary as server, agents and CLI.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use operon_agent::tls::Fingerprint;
use serde_json::Value;
use support::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sha256:<hex>` of the certificate in a PEM file, computed independently
/// of the server.
fn fingerprint_of_pem(path: &Path) -> String {
    let pem = std::fs::read_to_string(path).unwrap();
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64_decode(&body);
    Fingerprint::of_der(&der).to_string()
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// An agent started by hand, with exactly the given extra arguments.
fn spawn_agent(server_url: &str, state_dir: &Path, name: &str, extra: &[&str]) -> AgentProcess {
    let child = operon()
        .args(["agent", "--server", server_url, "--name", name])
        .arg("--state-dir")
        .arg(state_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn operon agent");
    AgentProcess {
        child,
        name: name.to_string(),
        state_dir: state_dir.to_path_buf(),
    }
}

#[test]
fn agents_and_the_cli_pin_the_self_signed_certificate_and_work_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let port = free_port();
    let server = ServerProcess::start_with_args(&data_dir, port, &["--tls-self-signed"]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let fingerprint = server.fingerprint.clone().unwrap();
    let cert = data_dir.join("tls/self-signed-cert.pem");
    let key = data_dir.join("tls/self-signed-key.pem");
    assert_eq!(fingerprint, fingerprint_of_pem(&cert));
    let key_mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // Plain HTTP is not served on the TLS port.
    let out = operon()
        .args(["nodes", "list"])
        .env("OPERON_SERVER", format!("http://127.0.0.1:{port}"))
        .env("OPERON_TOKEN", &server.token)
        .output()
        .unwrap();
    assert!(!out.status.success());

    // The enroll-token answer carries the fingerprint, and the human output
    // prints the agent command line with it.
    let created = server.cli_json(&["enroll-tokens", "create", "--uses", "3"]);
    assert_eq!(created["server_fingerprint"], fingerprint.as_str());
    let out = server.cli(&["enroll-tokens", "create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "operon agent --server {} --enroll-token {} --server-fingerprint {fingerprint}",
            server.url,
            stdout(&out).trim()
        )),
        "{}",
        stderr(&out)
    );

    // An agent pinning the certificate enrolls and runs commands over TLS.
    let token = created["token"].as_str().unwrap();
    let mut agent = AgentProcess::start(&server, token, &dir.path().join("web-1"), "web-1", &[]);
    server.wait_online(&["web-1"]);
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("web-1/credential.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["server_fingerprint"], fingerprint.as_str());
    let out = server.cli(&["run", "--targets", "all", "--", "echo over-tls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("web-1 | over-tls"),
        "{}",
        stdout(&out)
    );

    // With a pin stored, plain HTTP is refused, even on loopback.
    agent.kill();
    let mut plain = spawn_agent(
        &format!("http://127.0.0.1:{port}"),
        &dir.path().join("web-1"),
        "web-1",
        &[],
    );
    let (ok, err) = plain.wait_exit(Duration::from_secs(10));
    assert!(
        !ok,
        "an agent with a pinned certificate must refuse http://"
    );
    assert!(
        err.contains("pinned") && err.contains(&fingerprint) && err.contains("https://"),
        "{err}"
    );

    // A restart without --server-fingerprint uses the pin stored at enrollment.
    agent.restart(&server);
    std::thread::sleep(Duration::from_secs(1));
    server.wait_online(&["web-1"]);
    let out = server.cli(&["run", "--node", "web-1", "--", "echo again"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("web-1 | again"), "{}", stdout(&out));

    // An agent pinning another certificate is refused with both fingerprints.
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let mut impostor = spawn_agent(
        &server.url,
        &dir.path().join("web-2"),
        "web-2",
        &["--enroll-token", token, "--server-fingerprint", &wrong],
    );
    let (ok, err) = impostor.wait_exit(Duration::from_secs(30));
    assert!(!ok, "an agent with the wrong pin must fail");
    assert!(
        err.contains(&wrong) && err.contains(&fingerprint) && err.contains("pinned"),
        "{err}"
    );
    assert!(!dir.path().join("web-2/credential.json").exists());

    // The CLI: a wrong pin is refused clearly; no pin and no local data dir
    // falls back to the system roots, which do not know a self-signed
    // certificate; the local data dir's certificate is pinned automatically.
    let out = operon()
        .args(["nodes", "list"])
        .env("OPERON_SERVER", &server.url)
        .env("OPERON_TOKEN", &server.token)
        .env("OPERON_SERVER_FINGERPRINT", &wrong)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refusing") && stderr(&out).contains(&fingerprint),
        "{}",
        stderr(&out)
    );
    let out = operon()
        .args(["nodes", "list"])
        .env("OPERON_SERVER", &server.url)
        .env("OPERON_TOKEN", &server.token)
        .env("OPERON_DATA_DIR", dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an unknown self-signed cert is refused"
    );
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
    let out = operon()
        .args(["nodes", "list", "--json"])
        .env("OPERON_SERVER", &server.url)
        .env("OPERON_DATA_DIR", &data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("web-1"), "{}", stdout(&out));

    // Restarting the server reuses its certificate.
    drop(server);
    let server = ServerProcess::start_with_args(&data_dir, port, &["--tls-self-signed"]);
    assert_eq!(server.fingerprint.as_deref(), Some(fingerprint.as_str()));
    server.wait_online(&["web-1"]);

    // A changed certificate is refused by the connected agent.
    drop(server);
    std::fs::remove_dir_all(data_dir.join("tls")).unwrap();
    let server = ServerProcess::start_with_args(&data_dir, port, &["--tls-self-signed"]);
    let new_fingerprint = server.fingerprint.clone().unwrap();
    assert_ne!(new_fingerprint, fingerprint);
    let (ok, err) = agent.wait_exit(Duration::from_secs(60));
    assert!(!ok, "the agent must refuse the new certificate");
    assert!(
        err.contains(&new_fingerprint)
            && err.contains(&fingerprint)
            && err.contains("--server-fingerprint"),
        "{err}"
    );
}

/// A WebSocket upgrade request to the agent endpoint with `credential`,
/// without an agent in between; returns the response (status line first).
fn connect_with_credential(port: u16, credential: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /v1/agent/connect HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {credential}\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // A refusal is a complete response; an accepted upgrade stays open, so
    // stop at the end of the headers of a 101.
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&response);
        if text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n") {
            break;
        }
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if response.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

fn secret_in(state_dir: &Path) -> String {
    let text = std::fs::read_to_string(state_dir.join("credential.json")).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    value["credential"].as_str().unwrap().to_string()
}

#[test]
fn rotation_keeps_the_node_running_and_the_old_credential_is_refused_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("server"), free_port());
    let token = server.enroll_token(&[], 2, "1h");
    let web_dir = dir.path().join("web-1");
    let mut web = AgentProcess::start(&server, &token, &web_dir, "web-1", &[]);
    let mut db = AgentProcess::start(&server, &token, &dir.path().join("db-1"), "db-1", &[]);
    server.wait_online(&["web-1", "db-1"]);
    let old = secret_in(&web_dir);

    // A command is running on the node while its credential rotates.
    let running = server.spawn_cli(&["run", "--node", "web-1", "--", "sleep 2; echo survived"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = server.cli(&["nodes", "rotate-credential", "web-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("new credential"), "{}", stdout(&out));
    let output = running.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("web-1 | survived"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    // The agent stored the new one (0600) and never shows it in its output.
    let new = secret_in(&web_dir);
    assert_ne!(new, old);
    let mode = std::fs::metadata(web_dir.join("credential.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!stdout(&out).contains(&new) && !stderr(&out).contains(&new));

    // The node stayed connected and keeps running commands.
    assert_eq!(server.node_status("web-1").as_deref(), Some("online"));
    let out = server.cli(&["run", "--node", "web-1", "--", "echo after"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("web-1 | after"), "{}", stdout(&out));

    // The old credential is refused, saying why.
    let refused = connect_with_credential(server.port, &old);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        refused.contains("replaced by a credential rotation"),
        "{refused}"
    );

    // A rotation as JSON, a second time: the agent follows again.
    let rotated = server.cli_json(&["nodes", "rotate-credential", "web-1"]);
    assert_eq!(rotated["name"], "web-1");
    assert!(rotated["rotated_at"].as_i64().unwrap() > 0);
    let newer = secret_in(&web_dir);
    assert_ne!(newer, new);
    assert!(connect_with_credential(server.port, &new).starts_with("HTTP/1.1 401"));

    // A restarted agent connects with the stored (rotated) credential.
    web.restart(&server);
    std::thread::sleep(Duration::from_secs(1));
    server.wait_online(&["web-1"]);
    let out = server.cli(&["run", "--node", "web-1", "--", "echo restarted"]);
    assert!(
        stdout(&out).contains("web-1 | restarted"),
        "{}",
        stdout(&out)
    );

    // An offline node cannot be rotated: 409 with the reason.
    db.kill();
    wait_for("db-1 offline", Duration::from_secs(30), || {
        (server.node_status("db-1").as_deref() == Some("offline")).then_some(())
    });
    let out = server.cli(&["nodes", "rotate-credential", "db-1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not connected") && stderr(&out).contains("409"),
        "{}",
        stderr(&out)
    );

    // An agent that does not announce the rotation capability (as agents
    // before it did) is never sent a credential: 409, "too old".
    let mut old_agent = old_agent_session(server.port, &secret_in(&dir.path().join("db-1")));
    let out = server.cli(&["nodes", "rotate-credential", "db-1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("too old"), "{}", stderr(&out));
    let mut rest = Vec::new();
    let _ = old_agent.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = old_agent.read_to_end(&mut rest);
    assert!(
        !String::from_utf8_lossy(&rest).contains("rotate_credential"),
        "the old agent was sent a credential"
    );
    drop(old_agent);

    // Revoked stays refused, with the current and with the rotated-away
    // credential, and cannot be rotated.
    server.cli_json(&["nodes", "revoke", "web-1"]);
    let (ok, _) = web.wait_exit(Duration::from_secs(30));
    assert!(!ok);
    for credential in [&newer, &old] {
        let refused = connect_with_credential(server.port, credential);
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        assert!(refused.contains("revoked"), "{refused}");
    }
    let out = server.cli(&["nodes", "rotate-credential", "web-1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
}

#[test]
fn an_operator_certificate_is_trusted_through_a_ca_file_by_agents_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    // Make a certificate and key as an operator would bring them.
    let pki = dir.path().join("pki");
    let mode = operon_server::tls::TlsMode::SelfSigned;
    let listen = "127.0.0.1:0".parse().unwrap();
    operon_server::tls::prepare(&mode, &pki, listen).unwrap();
    let (cert, key) = operon_server::tls::self_signed_paths(&pki);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    // A missing key file is named, and nothing is served.
    let out = operon()
        .args([
            "server",
            "--tls-cert",
            cert,
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/key.pem"),
        "{}",
        stderr(&out)
    );

    let port = free_port();
    let mut server = ServerProcess::start_with_args(
        &dir.path().join("server"),
        port,
        &["--tls-cert", cert, "--tls-key", key],
    );
    assert_eq!(
        server.fingerprint.as_deref(),
        Some(fingerprint_of_pem(Path::new(cert)).as_str())
    );
    // CLI and agent trust it through the CA file, with name checks (the
    // certificate names 127.0.0.1), not through a pin.
    server.fingerprint = None;
    server.ca_cert = Some(cert.into());
    let list = |ca: &str| {
        server
            .cli_command()
            .args(["nodes", "list", "--ca-cert", ca])
            .output()
            .unwrap()
    };
    let out = list(cert);
    assert!(out.status.success(), "{}", stderr(&out));
    let other = dir.path().join("other");
    operon_server::tls::prepare(&mode, &other, listen).unwrap();
    let out = list(
        operon_server::tls::self_signed_paths(&other)
            .0
            .to_str()
            .unwrap(),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));

    let token = server.enroll_token(&[], 1, "1h");
    let _agent = spawn_agent(
        &server.url,
        &dir.path().join("web-1"),
        "web-1",
        &["--enroll-token", &token, "--tls-ca", cert],
    );
    server.wait_online(&["web-1"]);
    let out = server.cli(&["run", "--node", "web-1", "--", "echo via-ca"]);
    assert!(stdout(&out).contains("web-1 | via-ca"), "{}", stderr(&out));
}
