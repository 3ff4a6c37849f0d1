//! The PutEvents and dead-letter services on a temporary SQLite store: entries
//! answered one by one, `events:Put` per bus (a refusal audited, nothing
//! stored), the call's audit record committed with the events, and the
//! dead-letter validation codes.

use serde_json::json;

use super::*;
use crate::service::ErrorKind;

use crate::events::test_fixture::{Fixture, admin, user};

fn entry(source: &str, bus: Option<&str>) -> PutEntry {
    PutEntry {
        source: Some(source.into()),
        detail_type: Some("thing".into()),
        detail: Some(json!({"n": 1}).to_string()),
        event_bus_name: bus.map(str::to_string),
        ..PutEntry::default()
    }
}

#[tokio::test]
async fn entries_are_answered_one_by_one_and_the_audit_record_commits_with_the_events() {
    let f = Fixture::new().await;
    let entries = [
        entry("app", None),
        entry("operon.fleet", None),
        entry("app", Some("nowhere")),
        PutEntry {
            detail_type: None,
            ..entry("app", None)
        },
    ];
    let outcome = f.put_events().put(&admin(), &entries).await.unwrap();
    assert_eq!(outcome.failed(), 3);
    let EntryOutcome::Accepted { event_id } = &outcome.entries[0] else {
        panic!("first entry refused: {:?}", outcome.entries[0]);
    };
    assert!(
        f.store
            .event_by_id_on_bus(event_id, "default")
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        &outcome.entries[1],
        EntryOutcome::Failed {
            code: "NotAuthorizedForSourceException",
            ..
        }
    ));
    assert!(matches!(
        &outcome.entries[2],
        EntryOutcome::Failed { code: "ResourceNotFoundException", message }
            if message.contains("nowhere")
    ));
    assert!(matches!(
        &outcome.entries[3],
        EntryOutcome::Failed {
            code: "InvalidArgument",
            ..
        }
    ));
    // The record was written with the events, not by the audit writer later.
    let records = f.records_of("admin", "allowed").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "events:Put");
    assert_eq!(records[0].resource, "bus/default");
    assert_eq!(records[0].detail["entries"], 4);
    assert_eq!(records[0].detail["failed"], 3);
}

#[tokio::test]
async fn the_entry_count_is_validated_with_a_stable_code() {
    let f = Fixture::new().await;
    let none = f.put_events().put(&admin(), &[]).await.unwrap_err();
    assert_eq!(
        (none.kind, none.code),
        (ErrorKind::Invalid, "InvalidEntryCount")
    );
    let many = vec![entry("app", None); MAX_ENTRIES + 1];
    let err = f.put_events().put(&admin(), &many).await.unwrap_err();
    assert_eq!(err.code, "InvalidEntryCount");
    assert!(err.message.contains(&(MAX_ENTRIES + 1).to_string()));
}

#[tokio::test]
async fn events_put_is_asked_per_bus_and_a_refusal_is_audited_and_stores_nothing() {
    let f = Fixture::new().await;
    let alice = user(json!([{"Effect": "Allow", "Action": "events:Put",
        "Resource": "bus/default"}]));
    let ok = f
        .put_events()
        .put(&alice, &[entry("app", None)])
        .await
        .unwrap();
    assert_eq!(ok.failed(), 0);

    let rules = crate::events::rules::RuleService {
        store: &f.store,
        audit: &f.audit,
        events: &f.events,
        coordination: &f.coordination,
    };
    rules.create_bus(&admin(), "private").await.unwrap();
    let err = f
        .put_events()
        .put(&alice, &[entry("app", None), entry("app", Some("private"))])
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Forbidden, "Forbidden"));
    let denials = f.records_of("alice", "denied").await;
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].action, "events:Put");
    assert_eq!(denials[0].resource, "bus/private");
    // Only the first call's record was written as allowed.
    let allowed = f.records_of("alice", "allowed").await;
    assert_eq!(allowed.len(), 1);
}

#[tokio::test]
async fn dead_letters_have_stable_codes() {
    let f = Fixture::new().await;
    let dl = f.dead_letters();
    assert!(dl.list(None, Some(0)).await.unwrap().is_empty());
    let missing = dl.get("dl-none").await.unwrap_err();
    assert_eq!(
        (missing.kind, missing.code),
        (ErrorKind::NotFound, "NoSuchDeadLetter")
    );
    let nothing = dl.redrive(RedriveRequest::default()).await.unwrap_err();
    assert_eq!(
        (nothing.kind, nothing.code),
        (ErrorKind::Invalid, "NothingToRedrive")
    );
    let unknown = dl
        .redrive(RedriveRequest {
            ids: vec!["d-unknown".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(unknown.redriven.is_empty());
    assert_eq!(unknown.not_found, ["d-unknown"]);
}
