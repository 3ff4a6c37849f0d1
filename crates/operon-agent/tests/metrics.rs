//! The agent's metrics over a real link, against a minimal in-test server
//! speaking the protocol (as in `link.rs`): the capability, batches of real
//! `/proc` readings, resend of unacknowledged batches with their `seq` after
//! a reconnect, and custom metric drops delivered once and deleted.

mod common;

use common::{WAIT, Ws, accept_link, enrolled_config, recv, send, spawn_agent};

use std::collections::BTreeMap;
use std::time::Duration;

use operon_agent::AgentConfig;
use operon_proto::{AgentMessage, MetricBatch, MetricPoint, ServerMessage};
use tokio::net::TcpListener;

/// Answer the `Hello` with a `Welcome`; returns the announced capabilities.
async fn welcome(ws: &mut Ws) -> Vec<String> {
    let AgentMessage::Hello { capabilities, .. } = recv(ws).await else {
        panic!("expected Hello first");
    };
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
    capabilities
}

/// The next metric batch (other frames skipped).
async fn next_batch(ws: &mut Ws) -> MetricBatch {
    loop {
        if let AgentMessage::Metrics(batch) = recv(ws).await {
            return batch;
        }
    }
}

fn point<'a>(batch: &'a MetricBatch, name: &str) -> Option<&'a MetricPoint> {
    batch.points.iter().find(|p| p.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_real_readings_are_resent_until_acknowledged_and_drops_delivered_once() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = AgentConfig {
        metrics_interval: Duration::from_millis(200),
        ..enrolled_config(&url, state.path())
    };
    let drop_dir = config.custom_metrics_dir.clone();
    let dropped = operon_agent::metrics::custom::write_drop(
        &drop_dir,
        &[MetricPoint {
            name: "app.queue_depth".into(),
            dimensions: BTreeMap::from([("queue".into(), "mail".into())]),
            at: 1_764_730_000_000,
            value: 12.0,
            unit: Some("Count".into()),
        }],
    )
    .unwrap();
    let (stop, agent) = spawn_agent(config);

    let mut ws = accept_link(&listener).await;
    let capabilities = welcome(&mut ws).await;
    assert!(
        capabilities
            .iter()
            .any(|c| c == operon_proto::CAPABILITY_METRICS),
        "{capabilities:?}"
    );

    // Batches keep coming, seq by seq, with real readings; rates from the
    // second sample on.
    let mut batches = vec![next_batch(&mut ws).await];
    while !batches.iter().any(|b| point(b, "cpu.used").is_some()) {
        assert!(batches.len() < 30, "no cpu.used in {batches:?}");
        batches.push(next_batch(&mut ws).await);
    }
    for pair in batches.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    let first = &batches[0];
    let mem = point(first, "mem.used_percent").expect("memory in every batch");
    assert!(mem.value > 0.0 && mem.value <= 100.0, "{mem:?}");
    assert_eq!(mem.unit.as_deref(), Some("Percent"));
    assert!(point(first, "load.1").is_some());
    assert!(first.points.iter().any(|p| p.name == "disk.used_percent"
        && p.dimensions.get("mount").map(String::as_str) == Some("/")));
    let cpu = batches.iter().find_map(|b| point(b, "cpu.used")).unwrap();
    assert!((0.0..=100.0).contains(&cpu.value), "{cpu:?}");

    // The drop went out exactly once, as written, and is gone.
    let custom: Vec<&MetricPoint> = batches
        .iter()
        .flat_map(|b| &b.points)
        .filter(|p| p.name == "app.queue_depth")
        .collect();
    assert_eq!(custom.len(), 1, "{custom:?}");
    assert_eq!(custom[0].value, 12.0);
    assert_eq!(custom[0].at, 1_764_730_000_000);
    assert_eq!(
        custom[0].dimensions.get("queue").map(String::as_str),
        Some("mail")
    );
    assert!(!dropped.exists());

    // Acknowledge the first batch only, then lose the link.
    let acked = batches[0].seq;
    let unacked = batches[1].clone();
    send(&mut ws, &ServerMessage::MetricsAck { seq: acked }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(ws);

    let mut ws = accept_link(&listener).await;
    welcome(&mut ws).await;
    let resent = next_batch(&mut ws).await;
    assert_eq!(
        resent, unacked,
        "the oldest unacknowledged batch, unchanged"
    );
    let mut seqs = vec![resent.seq];
    for _ in 0..5 {
        seqs.push(next_batch(&mut ws).await.seq);
    }
    assert!(!seqs.contains(&acked), "{seqs:?}");
    assert_eq!(seqs, (unacked.seq..unacked.seq + 6).collect::<Vec<_>>());

    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_off_nothing_is_announced_or_sent_and_drops_stay() {
    let state = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = enrolled_config(&url, state.path());
    std::fs::create_dir_all(&config.custom_metrics_dir).unwrap();
    let drop = config.custom_metrics_dir.join("a.json");
    std::fs::write(&drop, r#"{"name":"a","value":1}"#).unwrap();
    let (stop, agent) = spawn_agent(config);

    let mut ws = accept_link(&listener).await;
    let capabilities = welcome(&mut ws).await;
    assert!(
        !capabilities
            .iter()
            .any(|c| c == operon_proto::CAPABILITY_METRICS),
        "{capabilities:?}"
    );
    // Two heartbeats (a second apart) and no batch in between.
    let mut heartbeats = 0;
    while heartbeats < 2 {
        match recv(&mut ws).await {
            AgentMessage::Heartbeat { .. } => heartbeats += 1,
            AgentMessage::Metrics(batch) => panic!("metrics are off: {batch:?}"),
            _ => {}
        }
    }
    assert!(drop.exists());

    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
