//! The event bus's services on a temporary SQLite store, for their unit
//! tests: one fixture, each service built over it, the principals the tests
//! act as, and the audit records they wait for.

use std::time::Duration;

use operon_pattern::Scratch;
use operon_policy::NamedPolicy;
use operon_store::{AuditFilter, AuditRecord, Store};
use serde_json::{Value, json};

use super::EventBus;
use super::signing::SealKey;
use crate::access::Principal;
use crate::audit::AuditLog;
use crate::coordination::Coordination;

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub audit: AuditLog,
    pub events: EventBus,
    pub coordination: Coordination,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = operon_store::SqliteStore::open_dyn(&dir.path().join("operon.db"))
            .await
            .unwrap();
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
            coordination: Coordination::default(),
        }
    }

    pub fn rules(&self) -> super::rules::RuleService<'_> {
        super::rules::RuleService {
            store: &self.store,
            audit: &self.audit,
            events: &self.events,
            coordination: &self.coordination,
        }
    }

    pub fn put_events(&self) -> super::put_events::EventService<'_> {
        super::put_events::EventService {
            audit: &self.audit,
            events: &self.events,
            coordination: &self.coordination,
        }
    }

    pub fn dead_letters(&self) -> super::put_events::DeadLetterService<'_> {
        super::put_events::DeadLetterService {
            store: &self.store,
            coordination: &self.coordination,
        }
    }

    pub fn replays(&self) -> super::replay::ReplayService<'_> {
        super::replay::ReplayService {
            store: &self.store,
            audit: &self.audit,
            events: &self.events,
        }
    }

    pub fn webhooks(&self) -> super::inbound::WebhookService<'_> {
        super::inbound::WebhookService {
            store: &self.store,
            audit: &self.audit,
            events: &self.events,
            coordination: &self.coordination,
        }
    }

    /// The audit records of `actor` with `outcome`, waiting for the
    /// background writer.
    pub async fn records_of(&self, actor: &str, outcome: &str) -> Vec<AuditRecord> {
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

    /// The rules of the default bus that match `event`.
    pub fn matching(&self, event: Value) -> Vec<String> {
        self.events
            .matching_rules("default", &event.to_string(), &mut Scratch::default())
    }
}

/// The admin token's principal.
pub(crate) fn admin() -> Principal {
    Principal::new("admin".into(), None, "tok-admin".into(), None, Vec::new())
}

/// `alice`, holding one policy of `statements`.
pub(crate) fn user(statements: Value) -> Principal {
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
