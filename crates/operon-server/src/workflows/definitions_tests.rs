//! The workflow definitions service on a temporary SQLite store: names and
//! definitions validated, versions with their author and role, roles:Pass
//! refusals audited, update and delete of unknown workflows.

use std::time::Duration;

use operon_policy::NamedPolicy;
use operon_store::{AuditFilter, Store};
use serde_json::{Value, json};

use super::*;
use crate::access::Principal;
use crate::audit::AuditLog;
use crate::service::ErrorKind;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    audit: AuditLog,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = operon_store::SqliteStore::open_dyn(&dir.path().join("operon.db"))
            .await
            .unwrap();
        let audit = AuditLog::spawn(store.clone(), dir.path());
        store.create_role("ops", "", 1).await.unwrap();
        Fixture {
            _dir: dir,
            store,
            audit,
        }
    }

    fn service(&self) -> WorkflowService<'_> {
        WorkflowService {
            store: &self.store,
            audit: &self.audit,
        }
    }

    async fn denials_of(&self, actor: &str) -> Vec<operon_store::AuditRecord> {
        // The audit writer commits in the background: wait for it.
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
                .filter(|r| r.outcome == "denied")
                .collect();
            if !records.is_empty() {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Vec::new()
    }
}

fn user(name: &str, actions: Value) -> Principal {
    let policy = json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]});
    let policy = operon_policy::Policy::from_value(&policy).unwrap();
    Principal::new(
        name.into(),
        Some(format!("u-{name}")),
        "tok-1".into(),
        None,
        vec![NamedPolicy::new("p", policy)],
    )
}

fn pass() -> Value {
    json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})
}

fn new(name: &str, role: Option<&str>) -> NewWorkflow {
    NewWorkflow {
        name: name.into(),
        definition: pass(),
        role: role.map(str::to_string),
    }
}

fn version(name: &str, role: Option<&str>) -> NewVersion {
    NewVersion {
        name: name.into(),
        definition: pass(),
        role: role.map(str::to_string),
    }
}

#[tokio::test]
async fn versions_record_their_author_and_keep_or_change_the_role() {
    let f = Fixture::new().await;
    let s = f.service();
    let alice = user(
        "alice",
        json!(["workflows:Create", "workflows:Update", "roles:Pass"]),
    );
    assert_eq!(
        s.create(&alice, new("deploy", Some("role/ops")))
            .await
            .unwrap(),
        Version(1)
    );
    let w = s.get("deploy").await.unwrap();
    assert_eq!(
        (w.version, w.role.as_deref(), w.created_by.as_str()),
        (1, Some("ops"), "alice")
    );

    let err = s.create(&alice, new("deploy", None)).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::Conflict, "WorkflowExists")
    );

    // Omitted keeps the role; the definition may come as JSON text.
    let text = NewVersion {
        definition: Value::String(pass().to_string()),
        ..version("deploy", None)
    };
    assert_eq!(s.update(&alice, text).await.unwrap(), Version(2));
    assert_eq!(s.get("deploy").await.unwrap().role.as_deref(), Some("ops"));
    // "" removes it.
    assert_eq!(
        s.update(&alice, version("deploy", Some(""))).await.unwrap(),
        Version(3)
    );
    assert_eq!(s.get("deploy").await.unwrap().role, None);

    let err = s.update(&alice, version("ghost", None)).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::NotFound, "NoSuchWorkflow")
    );
    assert_eq!(s.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn names_definitions_and_roles_are_validated_with_stable_codes() {
    let f = Fixture::new().await;
    let s = f.service();
    let admin = Principal::new("admin".into(), None, "tok".into(), None, Vec::new());
    let cases = [
        (
            new("bad name", None),
            "ValidationError",
            "invalid workflow name",
        ),
        (
            NewWorkflow {
                definition: json!({"StartAt": "A", "States": {}}),
                ..new("w", None)
            },
            "InvalidDefinition",
            "invalid definition: ",
        ),
        (
            NewWorkflow {
                definition: Value::String("{not json".into()),
                ..new("w", None)
            },
            "InvalidDefinition",
            "definition is not JSON: ",
        ),
        (new("w", Some("a b")), "InvalidRole", "role: invalid role"),
        (new("w", Some("ghost")), "NoSuchRole", "no role named"),
    ];
    for (workflow, code, text) in cases {
        let err = s.create(&admin, workflow).await.unwrap_err();
        assert_eq!((err.kind, err.code), (ErrorKind::Invalid, code), "{err:?}");
        assert!(
            err.message.starts_with(text) || err.message.contains(text),
            "{}",
            err.message
        );
    }
    assert!(s.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn naming_a_role_without_roles_pass_is_refused_and_audited() {
    let f = Fixture::new().await;
    let s = f.service();
    let bob = user("bob", json!(["workflows:Create", "workflows:Update"]));
    let err = s
        .create(&bob, new("deploy", Some("ops")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    let denials = f.denials_of("bob").await;
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(
        (denials[0].action.as_str(), denials[0].resource.as_str()),
        ("roles:Pass", "role/ops")
    );
    assert!(f.store.workflow("deploy").await.unwrap().is_none());

    // Without a role bob may create it; a new version naming one is refused too.
    s.create(&bob, new("deploy", None)).await.unwrap();
    let err = s
        .update(&bob, version("deploy", Some("ops")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert_eq!(
        f.store.workflow("deploy").await.unwrap().unwrap().version,
        1
    );

    let carol = user("carol", json!(["workflows:List"]));
    let err = s.create(&carol, new("other", None)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert_eq!(f.denials_of("carol").await[0].action, "workflows:Create");
}

#[tokio::test]
async fn delete_removes_the_workflow_once() {
    let f = Fixture::new().await;
    let s = f.service();
    let admin = Principal::new("admin".into(), None, "tok".into(), None, Vec::new());
    s.create(&admin, new("deploy", None)).await.unwrap();
    s.delete("deploy").await.unwrap();
    let err = s.get("deploy").await.unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::NotFound, "NoSuchWorkflow")
    );
    let err = s.delete("deploy").await.unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::NotFound, "NoSuchWorkflow")
    );
}
