//! The agent's connection loop against a minimal in-test server speaking the
//! real protocol over real sockets: enrollment over HTTP, then the WebSocket
//! link (Hello/Welcome, heartbeats, Run/Started/Output/Finished/ResultAck,
//! reconnects, and refusals). The real server is covered by end-to-end tests.

// The handshake callback signature is tungstenite's, large error type included.
#![allow(clippy::result_large_err)]

mod common;

use common::{WAIT, Ws, accept_link, accept_link_with, recv, run_command, send, spawn_agent};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use futures_util::SinkExt;
use operon_agent::{AgentConfig, AgentError};
use operon_proto::{
    AgentMessage, CommandResult, EnrollRequest, EnrollResponse, InvocationStatus, ServerMessage,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

fn config(url: &str, state: &Path) -> AgentConfig {
    AgentConfig {
        server_url: url.into(),
        state_dir: state.into(),
        enroll_token: Some("tok-1".into()),
        name: Some("node-a".into()),
        tags: BTreeMap::from([("env".into(), "test".into())]),
        heartbeat_secs: None,
        server_fingerprint: None,
        tls_ca: None,
        insecure: false,
        host_root: None,
        inventory_interval: operon_agent::inventory_sets::DEFAULT_INTERVAL,
        custom_inventory_dir: state.join("inventory.d"),
        metrics_interval: std::time::Duration::ZERO,
        custom_metrics_dir: state.join("metrics.d"),
        session_create_user: false,
    }
}

/// Read one HTTP request (headers and Content-Length body).
async fn read_http_request<S: AsyncRead + Unpin>(stream: &mut S) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-request");
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buf).await.unwrap();
                data.extend_from_slice(&buf[..n]);
            }
            return (head, data[end + 4..end + 4 + length].to_vec());
        }
    }
}

async fn write_http_response<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// Serve one enrollment request, answering with node `n-1` / credential `cred-1`.
async fn serve_enrollment(listener: &TcpListener) -> EnrollRequest {
    let (mut stream, _) = listener.accept().await.unwrap();
    let (head, body) = read_http_request(&mut stream).await;
    assert!(head.starts_with("POST /v1/agent/enroll "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "{head}"
    );
    let request: EnrollRequest = serde_json::from_slice(&body).unwrap();
    let answer = EnrollResponse {
        node_id: "n-1".into(),
        name: "node-a".into(),
        credential: "cred-1".into(),
    };
    write_http_response(
        &mut stream,
        "200 OK",
        &serde_json::to_string(&answer).unwrap(),
    )
    .await;
    request
}

/// The next frame that is not a heartbeat.
async fn recv_skipping_heartbeats(ws: &mut Ws) -> AgentMessage {
    loop {
        match recv(ws).await {
            AgentMessage::Heartbeat { .. } => continue,
            other => return other,
        }
    }
}

async fn welcome(ws: &mut Ws) {
    let hello = recv(ws).await;
    assert!(
        matches!(&hello, AgentMessage::Hello { protocol_version: 1, inventory, capabilities }
            if !inventory.hostname.is_empty() && capabilities.iter().any(|c| c == operon_proto::CAPABILITY_CREDENTIAL_ROTATION)),
        "{hello:?}"
    );
    send(
        ws,
        &ServerMessage::Welcome {
            node_id: "n-1".into(),
            name: "node-a".into(),
            protocol_version: 1,
            heartbeat_secs: 1,
        },
    )
    .await;
}

/// Collect frames until `Finished`, returning the `Started`/`Output` seen.
async fn until_finished(ws: &mut Ws) -> (Vec<AgentMessage>, CommandResult) {
    let mut seen = Vec::new();
    loop {
        match recv_skipping_heartbeats(ws).await {
            AgentMessage::Finished(result) => return (seen, result),
            other => seen.push(other),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolls_connects_runs_and_resends_unacknowledged_results_after_a_reconnect() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, agent) = spawn_agent(config(&url, state.path()));

    let enrollment = serve_enrollment(&listener).await;
    assert_eq!(enrollment.enroll_token, "tok-1");
    assert_eq!(enrollment.name.as_deref(), Some("node-a"));
    assert_eq!(enrollment.tags.get("env").map(String::as_str), Some("test"));

    let mut ws = accept_link(&listener).await;
    let mode = std::fs::metadata(state.path().join("credential.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    welcome(&mut ws).await;
    // Malformed frames are logged and ignored, never fatal.
    ws.send(Message::text("not json")).await.unwrap();
    ws.send(Message::text(r#"{"type":"launch_missiles"}"#))
        .await
        .unwrap();

    send(&mut ws, &run_command("inv-1", "echo hello; echo world")).await;
    let (seen, result) = until_finished(&mut ws).await;
    assert!(
        matches!(seen.first(), Some(AgentMessage::Started { invocation_id, .. }) if invocation_id == "inv-1")
    );
    let live: String = seen
        .iter()
        .filter_map(|m| match m {
            AgentMessage::Output { data, .. } => Some(data.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(live, "hello\nworld\n");
    assert_eq!(result.status, InvocationStatus::Success);
    assert_eq!(result.stdout, "hello\nworld\n");

    // Heartbeats keep coming every second.
    assert!(matches!(
        recv(&mut ws).await,
        AgentMessage::Heartbeat { .. }
    ));

    // Drop the link without acknowledging: the agent reconnects and resends.
    drop(ws);
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    let resent = recv_skipping_heartbeats(&mut ws).await;
    assert_eq!(resent, AgentMessage::Finished(result.clone()));
    send(
        &mut ws,
        &ServerMessage::ResultAck {
            invocation_id: "inv-1".into(),
        },
    )
    .await;
    // A duplicate Run after the ack gets the stored result, not a second run.
    send(&mut ws, &run_command("inv-1", "echo hello; echo world")).await;
    assert_eq!(
        recv_skipping_heartbeats(&mut ws).await,
        AgentMessage::Finished(result)
    );

    // After the ack, a new link gets no resend: the next frame is a heartbeat.
    drop(ws);
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    assert!(matches!(
        recv(&mut ws).await,
        AgentMessage::Heartbeat { .. }
    ));

    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_dropped_and_reconnected() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, agent) = spawn_agent(config(&url, state.path()));
    serve_enrollment(&listener).await;
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    // Say nothing more; keep the socket open. After 3 silent intervals (1 s
    // each) the agent gives up on this link and connects again.
    let began = std::time::Instant::now();
    let _silent = ws;
    let mut again = tokio::time::timeout(WAIT, accept_link(&listener))
        .await
        .unwrap();
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    welcome(&mut again).await;
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_refused_enrollment_is_fatal_with_the_servers_message() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, agent) = spawn_agent(config(&url, state.path()));
    let (mut stream, _) = listener.accept().await.unwrap();
    read_http_request(&mut stream).await;
    let body = r#"{"error":{"code":"token_expired","message":"enrollment token expired"}}"#;
    write_http_response(&mut stream, "403 Forbidden", body).await;
    let err = tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, AgentError::EnrollmentRefused { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("enrollment token expired"),
        "{err}"
    );
    assert!(!state.path().join("credential.json").exists());
}

#[tokio::test]
async fn a_rejected_credential_is_fatal_with_the_servers_message() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, agent) = spawn_agent(config(&url, state.path()));
    serve_enrollment(&listener).await;
    let (stream, _) = listener.accept().await.unwrap();
    let _ = tokio_tungstenite::accept_hdr_async(stream, |_: &Request, _: Response| {
        let mut refusal = ErrorResponse::new(Some(
            r#"{"error":{"code":"node_revoked","message":"node credential revoked"}}"#.to_owned(),
        ));
        *refusal.status_mut() = StatusCode::UNAUTHORIZED;
        Err(refusal)
    })
    .await;
    let err = tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, AgentError::CredentialRejected { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("node credential revoked"), "{err}");
}

#[tokio::test]
async fn without_credential_or_token_the_agent_says_what_is_missing() {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config("http://127.0.0.1:9", state.path());
    cfg.enroll_token = None;
    let err = operon_agent::run(cfg, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("credential.json"), "{err}");
    assert!(err.to_string().contains("--enroll-token"), "{err}");
}

#[tokio::test]
async fn two_agents_cannot_share_a_state_directory() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, _first) = spawn_agent(config(&url, state.path()));
    let _ = listener.accept().await.unwrap(); // the first agent is enrolling
    let err = operon_agent::run(config(&url, state.path()), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::StateDirLocked { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_agent_stops_running_commands_and_journals_them() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, agent) = spawn_agent(config(&url, state.path()));
    serve_enrollment(&listener).await;
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    send(&mut ws, &run_command("inv-long", "echo $$; sleep 300")).await;
    let pid: i32 = loop {
        if let AgentMessage::Output { data, .. } = recv_skipping_heartbeats(&mut ws).await {
            break data.trim().parse().unwrap();
        }
    };
    let began = std::time::Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "{:?}",
        began.elapsed()
    );
    assert!(operon_agent::procfs::live_group_members(pid).is_empty());
    let journal = operon_agent::journal::Journal::open(state.path()).unwrap();
    let entry = journal.load("inv-long").unwrap().unwrap();
    let result = entry.result.expect("the interrupted run is journaled");
    assert_eq!(result.status, InvocationStatus::Failed);
    assert!(result.detail.unwrap().contains("agent was stopped"));
    assert!(entry.acked_at.is_none(), "it is resent on the next start");
}

/// A TLS acceptor with a fresh self-signed certificate, and its fingerprint.
fn tls_acceptor() -> (tokio_rustls::TlsAcceptor, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().clone();
    let fingerprint = operon_agent::tls::Fingerprint::of_der(der.as_ref()).to_string();
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        fingerprint,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_pinned_certificate_is_accepted_and_stored_at_enrollment() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (acceptor, fingerprint) = tls_acceptor();
    let mut cfg = config(&url, state.path());
    cfg.server_fingerprint = Some(fingerprint.clone());
    let (stop, agent) = spawn_agent(cfg);

    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = acceptor.accept(tcp).await.expect("pinned handshake");
    let (head, _) = read_http_request(&mut tls).await;
    assert!(head.starts_with("POST /v1/agent/enroll "), "{head}");
    let answer = r#"{"node_id":"n-1","name":"node-a","credential":"cred-1"}"#;
    write_http_response(&mut tls, "200 OK", answer).await;

    // The WebSocket comes over TLS too, with the same pin.
    let (tcp, _) = listener.accept().await.unwrap();
    let tls = acceptor.accept(tcp).await.expect("pinned handshake");
    let _ws = tokio_tungstenite::accept_async(tls).await.unwrap();
    let stored = std::fs::read_to_string(state.path().join("credential.json")).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["server_fingerprint"], fingerprint.as_str());
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_other_than_the_pinned_one_is_fatal_and_names_both() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (acceptor, presented) = tls_acceptor();
    let (_, pinned) = tls_acceptor();
    let mut cfg = config(&url, state.path());
    cfg.server_fingerprint = Some(pinned.clone());
    let (_stop, agent) = spawn_agent(cfg);
    let (tcp, _) = listener.accept().await.unwrap();
    assert!(acceptor.accept(tcp).await.is_err(), "the agent must abort");
    let err = tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, AgentError::ServerCertificateMismatch { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&pinned) && text.contains(&presented),
        "{text}"
    );
    assert!(!state.path().join("credential.json").exists());
}

fn stored_secret(state: &Path) -> String {
    let text = std::fs::read_to_string(state.join("credential.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["credential"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_credential_is_stored_before_it_is_confirmed_and_used_to_reconnect() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, agent) = spawn_agent(config(&url, state.path()));
    serve_enrollment(&listener).await;
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;

    let rotate = ServerMessage::RotateCredential {
        rotation_id: "rot-1".into(),
        credential: operon_proto::Secret("cred-2".into()),
    };
    send(&mut ws, &rotate).await;
    assert_eq!(
        recv_skipping_heartbeats(&mut ws).await,
        AgentMessage::CredentialStored {
            rotation_id: "rot-1".into()
        }
    );
    // Confirmed means on disk, with the file's mode kept.
    assert_eq!(stored_secret(state.path()), "cred-2");
    let mode = std::fs::metadata(state.path().join("credential.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The link goes on: commands still run on it.
    send(&mut ws, &run_command("inv-r", "echo still here")).await;
    let (_, result) = until_finished(&mut ws).await;
    assert_eq!(result.stdout, "still here\n");

    // A rotation the agent cannot store is refused, and the old one stays.
    let blocker = state.path().join(".credential.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), "").unwrap();
    send(
        &mut ws,
        &ServerMessage::RotateCredential {
            rotation_id: "rot-2".into(),
            credential: operon_proto::Secret("cred-3".into()),
        },
    )
    .await;
    match recv_skipping_heartbeats(&mut ws).await {
        AgentMessage::CredentialNotStored {
            rotation_id,
            reason,
        } => {
            assert_eq!(rotation_id, "rot-2");
            assert!(reason.contains("credential.json"), "{reason}");
            assert!(!reason.contains("cred-3"), "the secret leaked: {reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stored_secret(state.path()), "cred-2");

    // The next connection presents the rotated credential.
    drop(ws);
    let mut ws = accept_link_with(&listener, "cred-2").await;
    welcome(&mut ws).await;
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_invalid_fingerprint_is_refused_before_anything_else() {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config("https://127.0.0.1:9", state.path());
    cfg.server_fingerprint = Some("sha256:1234".into());
    let err = operon_agent::run(cfg, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::BadFingerprint(_)), "{err:?}");
    assert!(err.to_string().contains("--server-fingerprint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_apply_is_watched_for_drift_until_forgotten() {
    let state = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut cfg = config(&url, state.path());
    cfg.host_root = Some(host.path().to_path_buf());
    let (stop, agent) = spawn_agent(cfg);
    serve_enrollment(&listener).await;
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;

    let document = serde_json::json!({"schemaVersion": "operon-state/1", "resources": [
        {"name": "motd", "type": "file", "path": "/motd", "content": "hello\n", "mode": "0644"}
    ]});
    let ServerMessage::Run(mut command) = run_command("inv-state", "exit 2") else {
        unreachable!()
    };
    command.steps[0].state = Some(operon_proto::StateStep {
        association: Some("assoc-1".into()),
        mode: operon_proto::StateMode::Apply,
        document: operon_proto::Secret(document.to_string()),
        sources: BTreeMap::new(),
        sensitive: Vec::new(),
    });
    send(&mut ws, &ServerMessage::Run(command)).await;
    let (_, result) = until_finished(&mut ws).await;
    assert_eq!(result.status, InvocationStatus::Success, "{result:?}");
    assert_eq!(result.stdout, "file motd: changed (created)\n");
    assert_eq!(result.resources.len(), 1);
    let motd = host.path().join("motd");
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "hello\n");
    send(
        &mut ws,
        &ServerMessage::ResultAck {
            invocation_id: "inv-state".into(),
        },
    )
    .await;
    let record = state.path().join("state").join("assoc-1.json");
    for _ in 0..100 {
        if record.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(record.exists());

    std::fs::write(&motd, "edited\n").unwrap();
    let drift = recv_skipping_heartbeats(&mut ws).await;
    let AgentMessage::StateDrifted(drift) = drift else {
        panic!("expected a drift, got {drift:?}")
    };
    assert_eq!(
        (
            drift.association.as_str(),
            drift.resource.as_str(),
            drift.path.as_str(),
            drift.detail.as_str()
        ),
        ("assoc-1", "motd", "/motd", "content changed")
    );

    // A new connection hears about it again.
    drop(ws);
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    assert!(matches!(
        recv_skipping_heartbeats(&mut ws).await,
        AgentMessage::StateDrifted(d) if d.resource == "motd"
    ));

    send(
        &mut ws,
        &ServerMessage::StateForget {
            association: "assoc-1".into(),
        },
    )
    .await;
    for _ in 0..100 {
        if !record.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!record.exists());
    std::fs::remove_file(&motd).unwrap();
    drop(ws);
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    // Nothing but heartbeats now.
    for _ in 0..3 {
        assert!(matches!(
            recv(&mut ws).await,
            AgentMessage::Heartbeat { .. }
        ));
    }

    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_set_from_the_server_runs_its_checks_until_replaced() {
    let state = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Monitors report through metrics: announced only with metrics on.
    let mut with_metrics = config(&url, state.path());
    with_metrics.metrics_interval = Duration::from_secs(1);
    let (stop, agent) = spawn_agent(with_metrics);
    serve_enrollment(&listener).await;
    let mut ws = accept_link(&listener).await;
    let hello = recv(&mut ws).await;
    let AgentMessage::Hello { capabilities, .. } = &hello else {
        panic!("{hello:?}")
    };
    assert!(
        capabilities
            .iter()
            .any(|c| c == operon_proto::CAPABILITY_MONITORS)
    );
    send(
        &mut ws,
        &ServerMessage::Welcome {
            node_id: "n-1".into(),
            name: "node-a".into(),
            protocol_version: 1,
            heartbeat_secs: 1,
        },
    )
    .await;
    // A command check leaves a mark each run: the set is running.
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let mark = marks.path().join("ran");
    let check = operon_proto::HealthCheck {
        name: "marker".into(),
        interval_secs: 1,
        timeout_secs: 1,
        probe: operon_proto::Probe::Command {
            command: format!("echo x >> {}", mark.display()),
            run_as: me,
        },
    };
    send(
        &mut ws,
        &ServerMessage::Monitors(operon_proto::MonitorSet {
            checks: vec![check],
            watchers: vec![],
            shipped: Vec::new(),
        }),
    )
    .await;
    let ran = async {
        while !mark.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, ran)
        .await
        .expect("the check ran");
    // Its result travels in the node's metric batches.
    let healthy = async {
        loop {
            if let AgentMessage::Metrics(batch) = recv(&mut ws).await
                && batch.points.iter().any(|p| {
                    p.name == "check.healthy"
                        && p.dimensions.get("check").map(String::as_str) == Some("marker")
                        && p.value == 1.0
                })
            {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, healthy)
        .await
        .expect("check.healthy in a metric batch");
    // An empty set stops it.
    send(&mut ws, &ServerMessage::Monitors(Default::default())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = std::fs::read_to_string(&mark).unwrap().lines().count();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        std::fs::read_to_string(&mark).unwrap().lines().count(),
        runs
    );
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();
}

/// The next `Logs` batch (other frames skipped), within [`WAIT`].
async fn next_logs(ws: &mut Ws) -> operon_proto::LogBatch {
    let batch = async {
        loop {
            if let AgentMessage::Logs(batch) = recv(ws).await {
                return batch;
            }
        }
    };
    tokio::time::timeout(WAIT, batch)
        .await
        .expect("a Logs batch in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_log_lines_are_resent_after_a_reconnect_until_acknowledged() {
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut with_metrics = config(&url, state.path());
    with_metrics.metrics_interval = Duration::from_secs(1);
    let (stop, agent) = spawn_agent(with_metrics);
    serve_enrollment(&listener).await;
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    send(
        &mut ws,
        &ServerMessage::Monitors(operon_proto::MonitorSet {
            shipped: vec![operon_proto::LogShipping {
                name: "app".into(),
                source: operon_proto::LogSource::File {
                    path: log.display().to_string(),
                },
            }],
            ..Default::default()
        }),
    )
    .await;
    // The follower starts at the end: let it look, then write.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::write(&log, "ERROR shipped once\n").unwrap();
    let batch = next_logs(&mut ws).await;
    assert_eq!(batch.entries[0].message, "ERROR shipped once");
    assert_eq!(batch.entries[0].level.as_deref(), Some("error"));

    // Not acknowledged: sent again, same seq, after the next Welcome.
    drop(ws);
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    send(&mut ws, &ServerMessage::Monitors(Default::default())).await;
    let again = next_logs(&mut ws).await;
    assert_eq!(again, batch);
    send(&mut ws, &ServerMessage::LogsAck { seq: batch.seq }).await;

    // Acknowledged: the next link gets nothing of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(ws);
    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    // Unacknowledged batches are resent right after the Welcome; the wait
    // stays under the agent's dead-link timeout (this server answers no
    // heartbeats, so after about 3 s the agent would reconnect).
    let quiet = tokio::time::timeout(Duration::from_millis(1500), next_logs(&mut ws)).await;
    assert!(quiet.is_err(), "an acknowledged batch is not resent");
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();
}
