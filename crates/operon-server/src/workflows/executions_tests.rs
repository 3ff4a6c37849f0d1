//! The executions service on a temporary SQLite store, without a running
//! runner (what reaches the runner is covered through the in-process API in
//! `tests/`): starts, listings, approvals and task tokens validated with
//! stable codes, and refusals audited before anything is revealed.

use std::time::Duration;

use operon_policy::NamedPolicy;
use operon_store::{AuditFilter, Store};
use serde_json::{Value, json};

use super::*;
use crate::access::Principal;
use crate::audit::AuditLog;
use crate::service::ErrorKind;
use crate::workflows::definitions::{NewWorkflow, WorkflowService};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    audit: AuditLog,
    /// No runner: its receiver is dropped, so a call reaching it is refused
    /// as `RunnerStopped`.
    workflows: Workflows,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = operon_store::SqliteStore::open_dyn(&dir.path().join("operon.db"))
            .await
            .unwrap();
        let audit = AuditLog::spawn(store.clone(), dir.path());
        let http = crate::egress::client::Outbound::new(Default::default(), "test", None).unwrap();
        let (workflows, _rx) = Workflows::new(http);
        Fixture {
            _dir: dir,
            store,
            audit,
            workflows,
        }
    }

    fn service(&self) -> ExecutionService<'_> {
        ExecutionService {
            store: &self.store,
            audit: &self.audit,
            workflows: &self.workflows,
            max_payload_bytes: 1024,
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

fn admin() -> Principal {
    Principal::new("admin".into(), None, "tok-admin".into(), None, Vec::new())
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

fn start(workflow: &str, input: Option<Value>, name: Option<&str>) -> StartExecution {
    StartExecution {
        workflow: workflow.into(),
        input,
        name: name.map(str::to_string),
    }
}

#[tokio::test]
async fn starts_are_validated_before_they_reach_the_runner() {
    let f = Fixture::new().await;
    let s = f.service();
    let by = StartedBy::User("admin");
    let cases = [
        (
            start("deploy", None, Some("bad name!")),
            ErrorKind::Invalid,
            "ValidationError",
        ),
        (
            start("deploy", Some(json!({"blob": "x".repeat(2048)})), None),
            ErrorKind::Invalid,
            "ValidationError",
        ),
        (start("deploy", None, None), ErrorKind::NotFound, "NotFound"),
    ];
    for (new, kind, code) in cases {
        let err = s.start(new, by).await.unwrap_err();
        assert_eq!((err.kind, err.code), (kind, code), "{err}");
    }
    let definitions = WorkflowService {
        store: &f.store,
        audit: &f.audit,
    };
    let pass = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    definitions
        .create(
            &admin(),
            NewWorkflow {
                name: "deploy".into(),
                definition: pass,
                role: None,
            },
        )
        .await
        .unwrap();
    // Valid: only now is the runner asked (and it is not running here).
    let err = s
        .start(start("deploy", None, Some("e1")), by)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::Unavailable, "RunnerStopped")
    );
}

#[tokio::test]
async fn executions_are_listed_by_a_known_status_and_unknown_ones_are_not_found() {
    let f = Fixture::new().await;
    let s = f.service();
    let query = |status: &str| ExecutionQuery {
        status: Some(status.into()),
        ..ExecutionQuery::default()
    };
    assert!(s.list(query("running")).await.unwrap().is_empty());
    let err = s.list(query("sleeping")).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Invalid, "InvalidStatus"));
    assert!(err.message.contains("RUNNING"));
    for err in [
        s.get("x-1").await.unwrap_err(),
        s.history("x-1", None, None).await.unwrap_err(),
        s.stop("x-1", None, None).await.unwrap_err(),
        s.redrive("x-1").await.unwrap_err(),
    ] {
        assert_eq!(
            (err.kind, err.code),
            (ErrorKind::NotFound, "NoSuchExecution")
        );
    }
}

#[tokio::test]
async fn deciding_an_approval_needs_approvals_approve_and_the_refusal_is_audited() {
    let f = Fixture::new().await;
    let s = f.service();
    let bob = user("bob", json!(["approvals:List"]));
    let err = s.decide(&bob, "ap-1", true, None).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Forbidden, "Forbidden"));
    let denials = f.denials_of("bob").await;
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].action, "approvals:Approve");
    assert_eq!(denials[0].resource, "approval/ap-1");

    // Allowed, the approval's existence is the next question.
    let carol = user("carol", json!(["approvals:Approve"]));
    let err = s.decide(&carol, "ap-1", false, None).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::NotFound, "NoSuchApproval")
    );
    assert!(
        s.list_approvals(Some("Pending"), None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_unknown_task_token_is_not_found_for_every_answer() {
    let f = Fixture::new().await;
    let s = f.service();
    for answer in [
        TaskAnswer::Success { output: json!({}) },
        TaskAnswer::Failure {
            error: None,
            cause: None,
        },
        TaskAnswer::Heartbeat,
    ] {
        let err = s.answer_task(&admin(), "tok", answer).await.unwrap_err();
        assert_eq!((err.kind, err.code), (ErrorKind::NotFound, "NoSuchTask"));
    }
}
