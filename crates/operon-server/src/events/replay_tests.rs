//! The archives-and-replays service on a temporary SQLite store: archive
//! validation with stable codes, a replay needing `replays:Start` and
//! `events:Put` on the archive's bus (a refusal audited, nothing recorded),
//! its window and rules checked.

use operon_store::prelude::*;
use std::time::Duration;

use operon_policy::NamedPolicy;
use operon_store::{AuditFilter, AuditRecord, Store};
use serde_json::{Value, json};

use super::*;
use crate::access::Principal;
use crate::audit::AuditLog;
use crate::events::EventBus;
use crate::events::signing::SealKey;
use crate::service::ErrorKind;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    audit: AuditLog,
    events: EventBus,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("operon.db")).await.unwrap();
        let audit = AuditLog::spawn(store.clone(), dir.path());
        let http = crate::egress::client::Outbound::new(Default::default(), "test", None).unwrap();
        let events = EventBus::load(&store, SealKey::from_bytes([7; 32]), audit.clone(), http)
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            store,
            audit,
            events,
        }
    }

    fn service(&self) -> ReplayService<'_> {
        ReplayService {
            store: &self.store,
            audit: &self.audit,
            events: &self.events,
        }
    }

    /// The audit records of `actor` with `outcome`, waiting for the
    /// background writer.
    async fn records_of(&self, actor: &str, outcome: &str) -> Vec<AuditRecord> {
        for _ in 0..100 {
            let records: Vec<_> = self
                .store
                .list_audit(&AuditFilter {
                    actor: Some(actor.into()),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.outcome == outcome)
                .collect();
            if !records.is_empty() {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Vec::new()
    }
}

fn admin() -> Principal {
    Principal::new("admin".into(), None, "tok-admin".into(), None, Vec::new())
}

fn user(statements: Value) -> Principal {
    let policy = json!({"Version": "2012-10-17", "Statement": statements});
    let policy = operon_policy::Policy::from_value(&policy).unwrap();
    Principal::new(
        "alice".into(),
        Some("u-1".into()),
        "tok-1".into(),
        None,
        vec![NamedPolicy::new("p", policy)],
    )
}

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
    let s = f.service();
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
    let s = f.service();
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
    let s = f.service();
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
