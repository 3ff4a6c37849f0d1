//! Sessions end to end in one process: a real server, real agents (real
//! PTYs and shells, real sockets), and a client speaking the session
//! protocol by hand.

mod common;

use std::time::{Duration, Instant};

use common::accounts::ShellAccount;
use common::fleet::Fleet;
use common::session_client::{Incoming, SessionClient, WAIT, connect};
use operon_proto::session::{ChannelFrame, ClientMessage, INITIAL_WINDOW, SessionEvent};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

async fn open(fleet: &Fleet, token: &str, query: &str) -> SessionClient {
    match connect(&fleet.server.url(), token, query).await {
        Ok(client) => client,
        Err((status, body)) => panic!("{query}: {status} {body}"),
    }
}

async fn refused(fleet: &Fleet, token: &str, query: &str) -> (u16, Value) {
    match connect(&fleet.server.url(), token, query).await {
        Ok(_) => panic!("{query}: opened, expected a refusal"),
        Err((status, body)) => (status, serde_json::from_str(&body).unwrap_or(Value::Null)),
    }
}

fn audit_entries(records: &[Value], action: &str, outcome: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["action"] == action && r["outcome"] == outcome)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shell_runs_resizes_interrupts_and_returns_the_exit_status_recorded() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let token = fleet.token.clone();
    let account = ShellAccount::new();
    let mut client = open(
        &fleet,
        &token,
        &format!(
            "node=web-1&user={}&cols=80&rows=24&term=xterm",
            account.name
        ),
    )
    .await;
    let id = client.started().await;

    client.type_line("echo $((6*7))").await;
    client.read_until(0, "42").await;
    let mark = client.output.len();
    client.type_line("stty size").await;
    client.read_until(mark, "24 80").await;

    client
        .message(&ClientMessage::Resize {
            cols: 100,
            rows: 40,
        })
        .await;
    let mark = client.output.len();
    client.type_line("stty size").await;
    client.read_until(mark, "40 100").await;

    // ctrl-c interrupts the foreground program, as in ssh.
    client.type_line("sleep 60").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let began = Instant::now();
    client.write(0, b"\x03").await;
    let mark = client.output.len();
    client.type_line("echo after-$((1+1))").await;
    client.read_until(mark, "after-2").await;
    assert!(began.elapsed() < Duration::from_secs(10));

    client.type_line("exit 3").await;
    let (reason, exit_code) = client.ended().await;
    assert_eq!(
        (reason.as_str(), exit_code),
        ("the program exited", Some(3))
    );

    let session = fleet.ok("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(session["status"], "ended");
    assert_eq!(session["exit_code"], 3);
    assert_eq!(session["user"], account.name.as_str());
    let sha = session["recording_sha256"].as_str().unwrap().to_string();

    // The recording replays the same screen, and its digest is the audit's.
    let response = reqwest::Client::new()
        .get(format!("{}/v1/sessions/{id}/recording", fleet.server.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = response.headers()["x-operon-recording-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(text.as_bytes())), sha);
    assert_eq!(header, sha);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["version"], 2);
    assert_eq!(
        (lines[0]["width"].as_u64(), lines[0]["height"].as_u64()),
        (Some(80), Some(24))
    );
    let output: String = lines[1..]
        .iter()
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap())
        .collect();
    assert_eq!(output, String::from_utf8_lossy(&client.output));
    assert!(lines.iter().any(|e| e[1] == "r" && e[2] == "100x40"));
    assert!(
        lines.iter().any(|e| e[1] == "i" && e[2] == "exit 3\n"),
        "input is recorded"
    );

    let audit = fleet.audit_of("admin").await;
    let start = audit_entries(&audit, "sessions:Start", "allowed");
    assert!(
        start.iter().any(|r| r["detail"]["session"] == id.as_str()),
        "{start:?}"
    );
    let end = audit_entries(&audit, "sessions:End", "ended");
    assert!(
        end.iter().any(|r| r["resource"] == format!("session/{id}")
            && r["detail"]["recording_sha256"] == sha.as_str()),
        "{end:?}"
    );
    let read = audit
        .iter()
        .find(|r| r["action"] == "sessions:GetRecording")
        .expect("reading a recording is audited");
    assert_eq!(read["detail"]["session"], id.as_str(), "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn starts_are_authorized_per_node_with_the_account_and_the_duration() {
    let fleet = Fleet::start_tagged(&[
        ("web-1", vec![("env", "dev")]),
        ("db-1", vec![("env", "prod")]),
    ])
    .await;
    let account = ShellAccount::new();
    let me = account.name.as_str();
    let alice = fleet
        .user_token(
            "alice",
            json!([{
                "Effect": "Allow", "Action": "sessions:Start", "Resource": "node/*",
                "Condition": {
                    "StringEquals": {"operon:NodeTag/env": "dev", "operon:RunAsUser": me},
                    "NumericLessThanEquals": {"operon:MaxDuration": "600"}
                }
            }, {"Effect": "Allow", "Action": "sessions:Get", "Resource": "node/*"}]),
        )
        .await;
    let bob = fleet
        .user_token(
            "bob",
            json!([{"Effect": "Allow", "Action": "sessions:Get", "Resource": "node/*"}]),
        )
        .await;
    for query in [
        format!("node=db-1&user={me}&max_duration=600"), // a prod node
        "node=web-1&user=daemon&max_duration=600".into(), // another account
        format!("node=web-1&user={me}"), // the server's 8 h is over the policy's 600 s
    ] {
        let (status, body) = refused(&fleet, &alice, &query).await;
        assert_eq!(status, 403, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("sessions:Start"),
            "{body}"
        );
    }
    let denied = audit_entries(&fleet.audit_of("alice").await, "sessions:Start", "denied");
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(
        denied
            .iter()
            .all(|r| r["detail"]["session"].as_str().unwrap().starts_with("s-"))
    );
    let (status, body) = refused(
        &fleet,
        &alice,
        &format!("node=web-1&user={me}&max_duration=99999"),
    )
    .await;
    assert_eq!(
        status, 400,
        "asking above the server's limit is a mistake: {body}"
    );

    let mut exec = open(
        &fleet,
        &alice,
        &format!("node=web-1&kind=exec&user={me}&command=id+-un&max_duration=600"),
    )
    .await;
    exec.started().await;
    let (_, code) = exec.ended().await;
    assert_eq!(code, Some(0));
    assert!(String::from_utf8_lossy(&exec.output).contains(me));

    // Someone else's session: only sessions:Terminate ends it.
    let mut shell = open(
        &fleet,
        &alice,
        &format!("node=web-1&user={me}&max_duration=600"),
    )
    .await;
    let id = shell.started().await;
    let listed = fleet
        .call_as(&bob, "GET", "/v1/sessions?active=true", None)
        .await;
    assert_eq!(listed.0, 200);
    assert_eq!(listed.1["sessions"][0]["id"], id.as_str(), "{}", listed.1);
    let (status, _) = fleet
        .call_as(&bob, "POST", &format!("/v1/sessions/{id}/terminate"), None)
        .await;
    assert_eq!(status, 403);
    let (status, body) = fleet
        .call_as(&bob, "GET", &format!("/v1/sessions/{id}/recording"), None)
        .await;
    assert_eq!(
        status, 403,
        "reading a recording is its own permission: {body}"
    );
    let ended = fleet
        .ok("POST", &format!("/v1/sessions/{id}/terminate"), None)
        .await;
    assert_eq!(ended["status"], "terminated", "{ended}");
    let (reason, _) = shell.ended().await;
    assert_eq!(reason, "terminated by admin");

    // The default account does not exist here and the agent may not create it.
    let mut client = open(&fleet, &fleet.token, "node=web-1").await;
    match client.next(WAIT).await {
        Some(Incoming::Event(SessionEvent::Closed {
            error: Some(error), ..
        })) => {
            assert!(error.contains("operon-user"), "{error}")
        }
        other => panic!("expected the terminal to fail, got {other:?}"),
    }
    let (reason, _) = client.ended().await;
    assert!(reason.contains("could not be opened"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_timeout_and_maximum_duration_end_sessions() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let token = fleet.token.clone();
    let mut idle = open(
        &fleet,
        &token,
        "node=web-1&kind=exec&user=root&command=sleep+100&idle_timeout=1",
    )
    .await;
    let id = idle.started().await;
    let began = Instant::now();
    let (reason, _) = idle.ended().await;
    assert_eq!(reason, "idle for 1s");
    assert!(began.elapsed() < Duration::from_secs(5));
    let session = fleet.ok("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(session["status"], "timed-out");

    let account = ShellAccount::new();
    let mut busy = open(
        &fleet,
        &token,
        &format!(
            "node=web-1&user={}&max_duration=2&idle_timeout=1",
            account.name
        ),
    )
    .await;
    busy.started().await;
    let typing = async {
        loop {
            busy.type_line("true").await;
            match busy.next(Duration::from_millis(300)).await {
                Some(Incoming::Event(SessionEvent::Ended { reason, .. })) => return reason,
                _ => continue,
            }
        }
    };
    let reason = tokio::time::timeout(WAIT, typing)
        .await
        .expect("the session ends");
    assert_eq!(reason, "reached the maximum duration of 2s");
}

async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn port_forwarding_carries_several_connections_and_refuses_denied_addresses() {
    let port = echo_server().await;
    let denied_port = echo_server().await;
    let fleet = Fleet::start_configured(&[("web-1", vec![("env", "dev")])], |config| {
        config
            .sessions
            .forward_deny
            .push(format!("127.0.0.1/32:{denied_port}"));
    })
    .await;
    let token = fleet.token.clone();
    let query = format!("node=web-1&kind=port-forward&host=127.0.0.1&port={port}");
    let mut client = open(&fleet, &token, &query).await;
    let id = client.started().await;
    for channel in 1..=3u32 {
        client.message(&ClientMessage::Open { channel }).await;
        client
            .write(channel, format!("hello {channel}").as_bytes())
            .await;
    }
    // A large transfer on its own connection, checked end to end.
    let big: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    client.message(&ClientMessage::Open { channel: 4 }).await;
    client.write(4, &big).await;
    client.send_frame(&ChannelFrame::Eof { channel: 4 }).await;
    let deadline = Instant::now() + WAIT;
    while client.data.get(&4).map_or(0, Vec::len) < big.len() || !client.eof.contains(&4) {
        assert!(Instant::now() < deadline, "the echo came back in time");
        client.next(WAIT).await.expect("more data");
    }
    assert_eq!(Sha256::digest(&client.data[&4]), Sha256::digest(&big));
    for channel in 1..=3u32 {
        assert_eq!(client.data[&channel], format!("hello {channel}").as_bytes());
    }
    client.close().await;

    // A literal denied address is refused before anything reaches the node.
    let (status, body) = refused(
        &fleet,
        &token,
        "node=web-1&kind=port-forward&host=169.254.169.254&port=80",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("169.254.0.0/16"),
        "{body}"
    );
    // A name is resolved, and refused, by the agent.
    let query = format!("node=web-1&kind=port-forward&host=localhost&port={denied_port}");
    let mut client = open(&fleet, &token, &query).await;
    client.started().await;
    client.message(&ClientMessage::Open { channel: 1 }).await;
    let error = client.closed(1).await;
    let error = error.expect("the refusal says why");
    assert!(
        error.contains(&format!("127.0.0.1/32:{denied_port}")),
        "{error}"
    );
    client.close().await;
    // Nor does a forward reach the agent's own server from the node.
    let own = fleet.server.addr.port();
    let query = format!("node=web-1&kind=port-forward&host=127.0.0.1&port={own}");
    let mut client = open(&fleet, &token, &query).await;
    client.started().await;
    client.message(&ClientMessage::Open { channel: 1 }).await;
    let error = client.closed(1).await;
    let error = error.expect("refused");
    assert!(error.contains(&format!("127.0.0.1:{own}")), "{error}");
    client.close().await;

    // The refused connection's record is written as the agent reports it.
    let deadline = Instant::now() + WAIT;
    let audit = loop {
        let audit = fleet.audit_of("admin").await;
        if !audit_entries(&audit, "sessions:PortForward", "failed").is_empty() {
            break audit;
        }
        assert!(
            Instant::now() < deadline,
            "the refused connection is audited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!audit_entries(&audit, "sessions:PortForward", "denied").is_empty());
    let session = fleet
        .get_until(&format!("/v1/sessions/{id}"), |s| s["status"] != "active")
        .await;
    assert_eq!(session["remote"], format!("127.0.0.1:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_reader_holds_the_program_back_without_delaying_the_node() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let token = fleet.token.clone();
    let mut client = open(&fleet, &token, "node=web-1&kind=exec&user=root&command=yes").await;
    let id = client.started().await;
    client.credit = false;
    // Without credit, exactly one window arrives, then nothing.
    while client.next(Duration::from_secs(2)).await.is_some() {}
    assert_eq!(client.output.len(), INITIAL_WINDOW as usize);

    // Meanwhile the node runs commands as usual and stays online.
    let began = Instant::now();
    let command = fleet
        .run(json!({"node_ids": ["web-1"], "parameters": {"commands": ["echo still-here"]}}))
        .await;
    assert_eq!(command["status"], "Success", "{command}");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    let node = fleet.ok("GET", "/v1/nodes/web-1", None).await;
    assert_eq!(node["online"], true);

    // Credit lets it flow again.
    client.credit = true;
    client
        .send_frame(&ChannelFrame::Window {
            channel: 0,
            credit: INITIAL_WINDOW,
        })
        .await;
    while client.output.len() < 4 * INITIAL_WINDOW as usize {
        client.next(WAIT).await.expect("output flows again");
    }
    fleet
        .ok("POST", &format!("/v1/sessions/{id}/terminate"), None)
        .await;
    let (reason, _) = client.ended().await;
    assert_eq!(reason, "terminated by admin");
}
