//! The archives-and-replays service on a temporary SQLite store: archive
//! validation with stable codes, a replay needing `replays:Start` and
//! `events:Put` on the archive's bus (a refusal audited, nothing recorded),
//! its window and rules checked.

use serde_json::json;

use super::*;
use crate::service::ErrorKind;

use crate::events::test_fixture::{Fixture, admin, user};

fn archive(name: &str) -> NewArchive {
    NewArchive {
        name: name.into(),
        ..NewArchive::default()
    }
}

fn replay(name: &str, archive: &str) -> NewReplay {
    NewReplay {
        name: name.into(),
        archive: archive.into(),
        from: "2026-01-01T00:00:00Z".into(),
        to: "2026-01-02T00:00:00Z".into(),
        rules: Vec::new(),
    }
}

#[tokio::test]
async fn archives_are_validated_with_stable_codes() {
    let f = Fixture::new().await;
    let s = f.replays();
    let made = s.create_archive(&admin(), archive("a1")).await.unwrap();
    assert_eq!(made.bus, "default");
    assert_eq!(s.list_archives().await.unwrap().len(), 1);
    let again = s.create_archive(&admin(), archive("a1")).await.unwrap_err();
    assert_eq!(
        (again.kind, again.code),
        (ErrorKind::Conflict, "ArchiveExists")
    );
    let cases = [
        (
            NewArchive {
                retention_days: Some(0),
                ..archive("a2")
            },
            "InvalidRetention",
        ),
        (
            NewArchive {
                pattern: Some("{not json".into()),
                ..archive("a2")
            },
            "InvalidPattern",
        ),
        (
            NewArchive {
                bus: Some("nowhere".into()),
                ..archive("a2")
            },
            "ValidationError",
        ),
    ];
    for (new, code) in cases {
        let err = s.create_archive(&admin(), new).await.unwrap_err();
        assert_eq!((err.kind, err.code), (ErrorKind::Invalid, code), "{err}");
    }
    let gone = s.delete_archive("a2").await.unwrap_err();
    assert_eq!(
        (gone.kind, gone.code),
        (ErrorKind::NotFound, "NoSuchArchive")
    );
    s.delete_archive("a1").await.unwrap();
}

#[tokio::test]
async fn a_replay_needs_events_put_on_the_archives_bus_and_the_refusal_is_audited() {
    let f = Fixture::new().await;
    let s = f.replays();
    s.create_archive(&admin(), archive("a1")).await.unwrap();
    let alice = user(json!([{"Effect": "Allow", "Action": "replays:Start", "Resource": "*"}]));
    let err = s.start(&alice, replay("r1", "a1")).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Forbidden, "Forbidden"));
    let denials = f.records_of("alice", "denied").await;
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].action, "events:Put");
    assert_eq!(denials[0].resource, "bus/default");
    assert!(s.list_replays().await.unwrap().is_empty());

    let started = s.start(&admin(), replay("r1", "a1")).await.unwrap();
    assert_eq!(started.replay.state, "running");
    assert_eq!(started.archive.name, "a1");
    assert_eq!(s.get_replay("r1").await.unwrap().archive, "a1");
    let again = s.start(&admin(), replay("r1", "a1")).await.unwrap_err();
    assert_eq!(again.code, "ReplayExists");
}

#[tokio::test]
async fn a_replays_archive_window_and_rules_are_checked() {
    let f = Fixture::new().await;
    let s = f.replays();
    s.create_archive(&admin(), archive("a1")).await.unwrap();
    let cases = [
        (replay("r", "nope"), "NoSuchArchive"),
        (
            NewReplay {
                from: "yesterday".into(),
                ..replay("r", "a1")
            },
            "InvalidTime",
        ),
        (
            NewReplay {
                from: "2026-02-01T00:00:00Z".into(),
                ..replay("r", "a1")
            },
            "InvalidWindow",
        ),
        (
            NewReplay {
                rules: vec!["missing".into()],
                ..replay("r", "a1")
            },
            "NoSuchRule",
        ),
        (replay("bad name!", "a1"), "ValidationError"),
    ];
    for (new, code) in cases {
        let err = s.start(&admin(), new).await.unwrap_err();
        assert_eq!((err.kind, err.code), (ErrorKind::Invalid, code), "{err}");
    }
    let missing = s.get_replay("r").await.unwrap_err();
    assert_eq!(
        (missing.kind, missing.code),
        (ErrorKind::NotFound, "NoSuchReplay")
    );
}
