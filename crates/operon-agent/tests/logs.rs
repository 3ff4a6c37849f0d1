//! Shipped logs: a real followed file and a stand-in `journalctl -o json`,
//! through the monitors runner and the logs task, batched, resent until
//! acknowledged.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use operon_agent::logs;
use operon_agent::monitors::Monitors;
use operon_proto::{AgentMessage, LogBatch, LogEntry, LogShipping, LogSource, MonitorSet};
use tokio::sync::mpsc;

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn shipped(name: &str, source: LogSource) -> MonitorSet {
    MonitorSet {
        shipped: vec![LogShipping {
            name: name.into(),
            source,
        }],
        ..MonitorSet::default()
    }
}

async fn next_batch(events: &mut mpsc::UnboundedReceiver<AgentMessage>) -> LogBatch {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(AgentMessage::Logs(batch))) => batch,
        other => panic!("expected a Logs batch, got {other:?}"),
    }
}

/// Entries until `count` have arrived.
async fn entries(
    events: &mut mpsc::UnboundedReceiver<AgentMessage>,
    count: usize,
) -> Vec<LogEntry> {
    let mut got = Vec::new();
    while got.len() < count {
        got.extend(next_batch(events).await.entries);
    }
    got
}

#[tokio::test]
async fn a_followed_file_ships_new_lines_with_levels_and_resends_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "ERROR before shipping\n");
    let (handle, sink, mut events) = logs::spawn(Duration::from_millis(100));
    let (points, _points_rx) = mpsc::channel(16);
    let mut monitors = Monitors::new(points, Duration::from_secs(1)).with_log_sink(sink);
    let path = log.display().to_string();
    monitors.apply(shipped("app", LogSource::File { path: path.clone() }));
    assert_eq!(monitors.shipping(), ["app"]);
    handle.welcomed();
    // The follower starts at the end: let it look once before writing.
    tokio::time::sleep(Duration::from_millis(700)).await;
    append(&log, "ERROR db down\nall good\n[warn] slow");
    append(&log, " disk\n");
    let got = entries(&mut events, 3).await;
    let seen: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|e| (e.message.as_str(), e.level.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("ERROR db down", Some("error")),
            ("all good", None),
            ("[warn] slow disk", Some("warning")),
        ]
    );
    assert!(got.iter().all(|e| e.source == format!("file:{path}")));

    // Not acknowledged: the next Welcome sends the same batches again.
    handle.link_lost();
    handle.welcomed();
    let again = entries(&mut events, 3).await;
    assert_eq!(again, got);

    // Rotation by rename: the new file is read from its start.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "CRITICAL after rotation\n");
    let rotated = entries(&mut events, 1).await;
    assert_eq!(rotated[0].message, "CRITICAL after rotation");
    assert_eq!(rotated[0].level.as_deref(), Some("critical"));

    // Removed from the set: no more lines.
    monitors.apply(MonitorSet::default());
    assert!(monitors.shipping().is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    while events.try_recv().is_ok() {}
    append(&log, "ERROR not shipped\n");
    let quiet = tokio::time::timeout(Duration::from_millis(1500), events.recv()).await;
    assert!(quiet.is_err(), "a log removed from the set is not shipped");
}

#[tokio::test]
async fn the_journal_is_read_as_json_with_priorities_and_units() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("journalctl");
    std::fs::write(
        &fake,
        concat!(
            "#!/bin/sh\n",
            "echo \"{\\\"MESSAGE\\\":\\\"args $*\\\",\\\"PRIORITY\\\":\\\"7\\\"}\"\n",
            "echo '{\"__REALTIME_TIMESTAMP\":\"1764730000123456\",\"PRIORITY\":\"2\",\"_SYSTEMD_UNIT\":\"app.service\",\"MESSAGE\":\"out of memory\"}'\n",
            "echo 'not json'\n",
            "exec sleep 60\n",
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (handle, sink, mut events) = logs::spawn(Duration::from_millis(100));
    let (points, _points_rx) = mpsc::channel(16);
    let mut monitors = Monitors::new(points, Duration::from_secs(1))
        .with_journalctl(&fake)
        .with_log_sink(sink);
    monitors.apply(shipped(
        "app",
        LogSource::Journal {
            unit: Some("app.service".into()),
        },
    ));
    handle.welcomed();
    let got = entries(&mut events, 2).await;
    assert_eq!(
        got[0].message,
        "args -f -o json -n 0 --no-pager --unit=app.service"
    );
    assert_eq!(got[0].level.as_deref(), Some("debug"));
    assert_eq!(got[1].message, "out of memory");
    assert_eq!(got[1].level.as_deref(), Some("critical"));
    assert_eq!(got[1].source, "journal:app.service");
    assert_eq!(got[1].at, 1_764_730_000_123);
}

#[tokio::test]
async fn without_a_log_sink_nothing_is_shipped() {
    let (points, _points_rx) = mpsc::channel(16);
    let mut monitors = Monitors::new(points, Duration::from_secs(1));
    monitors.apply(shipped(
        "app",
        LogSource::File {
            path: "/var/log/nothing".into(),
        },
    ));
    assert!(monitors.shipping().is_empty());
}
