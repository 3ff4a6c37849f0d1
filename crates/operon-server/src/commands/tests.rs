//! The commands service on a temporary SQLite store: targets, the revoked-node
//! rule, per-node authorization, rate-control validation, idempotent derived
//! ids, cancel, and the audit records of users and actors.

use std::collections::BTreeMap;
use std::time::Duration;

use operon_policy::NamedPolicy;
use operon_proto::InvocationStatus;
use operon_store::{AuditFilter, EnrollToken, NewNode, Store};
use serde_json::{Value, json};

use super::*;
use crate::access::Principal;
use crate::audit::AuditLog;
use crate::documents::DocumentVersion;
use crate::fleet::hub::Hub;
use crate::service::ErrorKind;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    hub: Hub,
    coordination: crate::coordination::Coordination,
    audit: AuditLog,
    seal: crate::events::signing::SealKey,
}

impl Fixture {
    /// web-1 (staging), web-2 (prod), db-1 (prod), old-1 (prod, revoked).
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = operon_store::SqliteStore::open_dyn(&dir.path().join("operon.db"))
            .await
            .unwrap();
        let audit = AuditLog::spawn(store.clone(), dir.path());
        store
            .insert_enroll_token(&EnrollToken {
                id: "et-1".into(),
                token_hash: "h".into(),
                tags: BTreeMap::new(),
                uses_allowed: 10,
                uses: 0,
                expires_at: i64::MAX,
                created_at: 0,
                revoked_at: None,
            })
            .await
            .unwrap();
        for (id, name, env, role) in [
            ("n-1", "web-1", "staging", "web"),
            ("n-2", "web-2", "prod", "web"),
            ("n-3", "db-1", "prod", "db"),
            ("n-4", "old-1", "prod", "web"),
        ] {
            let tags = [("env", env), ("role", role)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let node = NewNode {
                id: id.into(),
                name: name.into(),
                credential_hash: format!("cred-{id}"),
                requested_tags: tags,
                inventory: Default::default(),
            };
            store.enroll_node("h", 1, node).await.unwrap().unwrap();
        }
        store.revoke_node("n-4", 2).await.unwrap();
        Fixture {
            _dir: dir,
            store,
            hub: Hub::new(Duration::from_secs(60)),
            coordination: Default::default(),
            audit,
            seal: crate::events::signing::SealKey::from_bytes([7; 32]),
        }
    }

    fn service(&self) -> CommandService<'_> {
        CommandService {
            store: &self.store,
            hub: &self.hub,
            coordination: &self.coordination,
            audit: &self.audit,
            seal: &self.seal,
            output_cap_bytes: 1024,
        }
    }

    async fn audit_of(&self, actor: &str) -> Vec<operon_store::AuditRecord> {
        // The audit writer commits in the background: wait for it.
        for _ in 0..100 {
            let records = self
                .store
                .list_audit(&AuditFilter {
                    actor: Some(actor.into()),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap();
            if !records.is_empty() {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Vec::new()
    }
}

fn echo(targets: Value) -> NewCommand {
    let nodes: Vec<String> = Vec::new();
    NewCommand {
        parameters: json!({"commands": ["echo hi"]})
            .as_object()
            .cloned()
            .unwrap(),
        targets: TargetSpec::parse(&nodes, targets.as_array().unwrap(), "targets").unwrap(),
        ..Default::default()
    }
}

fn on_nodes(nodes: &[&str]) -> NewCommand {
    let nodes: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
    NewCommand {
        targets: TargetSpec::parse(&nodes, &[], "targets").unwrap(),
        ..echo(json!(["all"]))
    }
}

fn user(policy: Value) -> Principal {
    let policy = operon_policy::Policy::from_value(&policy).unwrap();
    Principal::new(
        "alice".into(),
        Some("u-1".into()),
        "tok-1".into(),
        None,
        vec![NamedPolicy::new("p", policy)],
    )
}

fn staging_only() -> Principal {
    user(
        json!({"Statement": [{"Effect": "Allow", "Action": "commands:Run", "Resource": "node/*",
        "Condition": {"StringEquals": {"operon:NodeTag/env": "staging"}}}]}),
    )
}

/// A rule put by the admin: it acts with the admin's authority.
fn rule() -> Requester<'static> {
    Requester::Actor(Principal::actor(
        "rule/restart",
        "admin".into(),
        true,
        vec![],
    ))
}

/// A rule acting as a role that holds `policy`.
fn rule_as_role(policy: Value) -> Requester<'static> {
    let policy = operon_policy::Policy::from_value(&policy).unwrap();
    Requester::Actor(Principal::actor(
        "rule/restart",
        "role/limited".into(),
        false,
        vec![NamedPolicy::new("p", policy)],
    ))
}

async fn targets_of(service: &CommandService<'_>, id: &str) -> Vec<String> {
    let view = service.view(service.get(id).await.unwrap()).await.unwrap();
    view.invocations.into_iter().map(|i| i.node_name).collect()
}

#[tokio::test]
async fn text_and_ssm_targets_create_one_pending_invocation_per_node() {
    let f = Fixture::new().await;
    let s = f.service();
    let created = s
        .create(CommandId::Fresh, echo(json!(["tag:role=web"])), rule())
        .await
        .unwrap();
    assert_eq!(created.targets, ["web-1", "web-2"]);
    assert!(created.command.id.starts_with("c-"));
    let view = s.view(created.command).await.unwrap();
    assert_eq!(view.target_count, 2);
    assert!(
        view.invocations
            .iter()
            .all(|i| i.status == InvocationStatus::Pending)
    );
    let ssm = json!([{"Key": "tag:env", "Values": ["prod", "staging"]}, {"Key": "tag:role", "Values": ["db"]}]);
    let created = s.create(CommandId::Fresh, echo(ssm), rule()).await.unwrap();
    assert_eq!(targets_of(&s, &created.command.id).await, ["db-1"]);
}

#[tokio::test]
async fn naming_a_revoked_node_is_refused_and_filters_skip_it() {
    let f = Fixture::new().await;
    let s = f.service();
    let err = s
        .create(CommandId::Fresh, on_nodes(&["old-1"]), rule())
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Invalid, "RevokedNode"));
    let err = s
        .create(CommandId::Fresh, on_nodes(&["ghost"]), rule())
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::NotFound, "UnknownNode"));
    let created = s
        .create(CommandId::Fresh, echo(json!(["tag:env=prod"])), rule())
        .await
        .unwrap();
    assert_eq!(created.targets, ["db-1", "web-2"]);
    let err = s
        .create(CommandId::Fresh, echo(json!(["tag:env=dev"])), rule())
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::Invalid, "NoMatchingNodes")
    );
    assert_eq!(f.store.list_commands(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_user_runs_only_where_allowed_and_refusals_are_recorded() {
    let f = Fixture::new().await;
    let s = f.service();
    let alice = staging_only();
    let created = s
        .create(
            CommandId::Fresh,
            echo(json!(["all"])),
            Requester::Principal(&alice),
        )
        .await
        .unwrap();
    assert_eq!(created.targets, ["web-1"]);
    let refused: Vec<&str> = created.refused.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(refused, ["db-1", "web-2"]);
    assert_eq!(created.command.request["refused"][0]["node"], "db-1");
    assert_eq!(created.command.requested_by, "alice");

    let err = s
        .create(
            CommandId::Fresh,
            echo(json!(["tag:env=prod"])),
            Requester::Principal(&alice),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    let denials: Vec<_> = f
        .audit_of("alice")
        .await
        .into_iter()
        .filter(|r| r.outcome == "denied")
        .collect();
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert_eq!(denials[1].resource, "node/db-1,web-2");
    assert_eq!(f.store.list_commands(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn rate_control_and_timeouts_are_validated_and_defaulted() {
    let f = Fixture::new().await;
    let s = f.service();
    for (field, mut new) in [
        ("max_concurrency", echo(json!(["all"]))),
        ("max_errors", echo(json!(["all"]))),
    ] {
        if field == "max_concurrency" {
            new.max_concurrency = Some("ten".into());
        } else {
            new.max_errors = Some("150%".into());
        }
        let err = s.create(CommandId::Fresh, new, rule()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid, "{field}");
        assert!(err.message.starts_with(field), "{}", err.message);
    }
    let mut new = echo(json!(["all"]));
    new.timeout_secs = Some(0);
    let err = s.create(CommandId::Fresh, new, rule()).await.unwrap_err();
    assert_eq!(err.message, "timeout_secs must be at least 1, got 0");
    let mut new = echo(json!(["all"]));
    new.delivery_timeout_secs = Some(i64::MAX);
    let err = s.create(CommandId::Fresh, new, rule()).await.unwrap_err();
    assert!(
        err.message
            .starts_with("delivery_timeout_secs must be at most"),
        "{}",
        err.message
    );

    let mut new = echo(json!(["all"]));
    new.max_concurrency = Some("34%".into());
    let created = s.create(CommandId::Fresh, new, rule()).await.unwrap();
    let c = &created.command;
    assert_eq!(
        (c.max_concurrency.as_str(), c.max_errors.as_str()),
        ("34%", "0")
    );
    assert_eq!((c.timeout_secs, c.delivery_timeout_secs), (3600, 3600));
    assert_eq!(c.run_template.output_cap_bytes, 1024);
}

#[tokio::test]
async fn documents_and_parameters_are_checked_before_anything_is_written() {
    let f = Fixture::new().await;
    let s = f.service();
    let mut new = echo(json!(["all"]));
    new.document = Some("Missing-Doc".into());
    let err = s.create(CommandId::Fresh, new, rule()).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::NotFound, "NoSuchDocument")
    );
    let mut new = echo(json!(["all"]));
    new.parameters = serde_json::Map::new();
    let err = s.create(CommandId::Fresh, new, rule()).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::Invalid, "InvalidParameters")
    );
    assert!(f.store.list_commands(10).await.unwrap().is_empty());
}

/// A command by document name renders the default version: a new version
/// changes nothing until it is made the default. `$LATEST` and numbers select.
#[tokio::test]
async fn a_command_by_name_runs_the_default_version_of_its_document() {
    let f = Fixture::new().await;
    let s = f.service();
    let docs = crate::documents::service::DocumentService { store: &f.store };
    let echo_doc = |word: &str| {
        json!({"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "s",
            "inputs": {"runCommand": [format!("echo {word}")]}}]})
    };
    docs.create("deploy", &echo_doc("one")).await.unwrap();
    docs.create("deploy", &echo_doc("two")).await.unwrap();
    let runs = |version: DocumentVersion| {
        let s = &s;
        async move {
            let new = NewCommand {
                document: Some("deploy".into()),
                document_version: version,
                parameters: Default::default(),
                ..on_nodes(&["web-1"])
            };
            let c = s.create(CommandId::Fresh, new, rule()).await?.command;
            let step = &c.run_template.steps[0];
            Ok::<_, crate::service::ServiceError>((c.document_version, step.script.clone()))
        }
    };
    assert_eq!(
        runs(DocumentVersion::Default).await.unwrap(),
        (1, "echo one".to_string())
    );
    assert_eq!(runs(DocumentVersion::Latest).await.unwrap().0, 2);
    assert_eq!(runs(DocumentVersion::Number(1)).await.unwrap().0, 1);
    let err = runs(DocumentVersion::Number(3)).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code),
        (ErrorKind::NotFound, "NoSuchDocumentVersion")
    );
    docs.update_default("deploy", DocumentVersion::Number(2))
        .await
        .unwrap();
    assert_eq!(
        runs(DocumentVersion::Default).await.unwrap(),
        (2, "echo two".to_string())
    );
}

#[tokio::test]
async fn derived_ids_make_creation_idempotent_and_actors_are_audited() {
    let f = Fixture::new().await;
    let s = f.service();
    let id = CommandId::Delivery("d-0123abcd".into());
    let first = s
        .create(id.clone(), echo(json!(["tag:env=prod"])), rule())
        .await
        .unwrap();
    assert!(first.new);
    assert_eq!(first.command.id, "c-ev-0123abcd");
    assert_eq!(first.command.requested_by, "rule/restart");
    // A redelivery, even with other targets, finds the same command.
    let again = s
        .create(id, echo(json!(["tag:env=staging"])), rule())
        .await
        .unwrap();
    assert!(!again.new);
    assert_eq!(again.command.id, first.command.id);
    assert_eq!(again.targets, ["db-1", "web-2"]);
    assert_eq!(f.store.list_commands(10).await.unwrap().len(), 1);

    let records = f.audit_of("rule/restart").await;
    assert_eq!(
        records.len(),
        1,
        "one record per command created: {records:?}"
    );
    assert_eq!(records[0].action, "commands:Run");
    assert_eq!(records[0].resource, "node/db-1,web-2");
    assert_eq!(records[0].detail["command_id"], "c-ev-0123abcd");

    let task = CommandId::Task("0123456789abcdefghijKLMN".into());
    assert_eq!(task.resolve(), "c-0123456789abcdefghij");
}

#[tokio::test]
async fn cancel_stops_a_running_command_once() {
    let f = Fixture::new().await;
    let s = f.service();
    let created = s
        .create(CommandId::Fresh, echo(json!(["all"])), rule())
        .await
        .unwrap();
    s.cancel(&created.command.id).await.unwrap();
    assert!(s.get(&created.command.id).await.unwrap().cancel_requested);
    let err = s.cancel("c-nope").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn an_actor_is_authorized_per_node_as_its_role_whatever_the_policy_shape() {
    let f = Fixture::new().await;
    let s = f.service();
    // Denied on prod by tag: a missing tag context used to let this through.
    let deny_prod = json!({"Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "commands:Run", "Resource": "node/*",
         "Condition": {"StringEquals": {"operon:NodeTag/env": "prod"}}}]});
    let created = s
        .create(
            CommandId::Fresh,
            echo(json!(["all"])),
            rule_as_role(deny_prod),
        )
        .await
        .unwrap();
    assert_eq!(created.targets, ["web-1"]);
    let refused: Vec<&str> = created.refused.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(refused, ["db-1", "web-2"]);
    // The negated form: allowed only where env is not prod.
    let not_prod = json!({"Statement": [{"Effect": "Allow", "Action": "commands:Run",
        "Resource": "node/*", "Condition": {"StringNotEquals": {"operon:NodeTag/env": "prod"}}}]});
    let err = s
        .create(
            CommandId::Fresh,
            echo(json!(["tag:env=prod"])),
            rule_as_role(not_prod),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err:?}");
    let records = f.audit_of("rule/restart").await;
    let denials: Vec<_> = records.iter().filter(|r| r.outcome == "denied").collect();
    assert_eq!(denials.len(), 2, "{records:?}");
    assert!(
        denials
            .iter()
            .all(|r| r.detail["acting_as"] == "role/limited")
    );
    assert!(denials.iter().any(|r| r.resource == "node/db-1,web-2"));
}

#[tokio::test]
async fn the_account_a_command_runs_as_is_a_condition_key() {
    let f = Fixture::new().await;
    let s = f.service();
    let only_deploy = || {
        rule_as_role(
            json!({"Statement": [{"Effect": "Allow", "Action": "commands:Run",
            "Resource": "node/*", "Condition": {"StringEquals": {"operon:RunAsUser": "deploy"}}}]}),
        )
    };
    let as_deploy = NewCommand {
        user: Some("deploy".into()),
        ..on_nodes(&["web-1"])
    };
    assert!(
        s.create(CommandId::Fresh, as_deploy, only_deploy())
            .await
            .is_ok()
    );
    let as_root = on_nodes(&["web-1"]);
    let err = s
        .create(CommandId::Fresh, as_root, only_deploy())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
}

#[tokio::test]
async fn environment_values_are_stored_sealed_and_never_shown() {
    let f = Fixture::new().await;
    let s = f.service();
    let new = NewCommand {
        env: [("DB_PASSWORD".to_string(), "hunter2".to_string())].into(),
        request: json!({"env": {"DB_PASSWORD": "(sealed)"}}),
        ..on_nodes(&["web-1"])
    };
    let created = s.create(CommandId::Fresh, new, rule()).await.unwrap();
    let stored = f.store.command(&created.command.id).await.unwrap().unwrap();
    let sealed = &stored.run_template.env["DB_PASSWORD"];
    assert!(!sealed.contains("hunter2"), "{sealed}");
    let shown = serde_json::to_string(&s.view(stored.clone()).await.unwrap()).unwrap();
    assert!(
        !shown.contains("hunter2") && !shown.contains(sealed.as_str()),
        "{shown}"
    );
    assert!(
        shown.contains("DB_PASSWORD"),
        "the names stay visible: {shown}"
    );
    // Only the message to the node carries the value.
    let run =
        crate::dispatcher::run_message(&stored, stored.run_template.steps.clone(), "n-1", &f.seal);
    assert_eq!(run.env["DB_PASSWORD"], "hunter2");
    // A command stored before sealing (a clear value) still runs.
    let mut old = stored;
    old.run_template.env.insert("OLD".into(), "clear".into());
    let run = crate::dispatcher::run_message(&old, old.run_template.steps.clone(), "n-1", &f.seal);
    assert_eq!(run.env["OLD"], "clear");
}
