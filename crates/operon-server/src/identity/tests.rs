//! The identity service on a temporary SQLite store: users with roles, the
//! duplicate and reserved-name rules, tokens, policy documents, role
//! attachments, and refusals through the gate (audited).

use std::time::Duration;

use operon_store::{ApiToken, AuditFilter, AuditRecord, Store};
use serde_json::{Value, json};

use super::service::*;
use crate::access::Principal;
use crate::audit::AuditLog;
use crate::service::ErrorKind;

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    audit: AuditLog,
    coordination: crate::coordination::Coordination,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = operon_store::SqliteStore::open_dyn(&dir.path().join("operon.db"))
            .await
            .unwrap();
        let audit = AuditLog::spawn(store.clone(), dir.path());
        Fixture {
            dir,
            store,
            audit,
            coordination: crate::coordination::Coordination::default(),
        }
    }

    fn service(&self) -> IdentityService<'_> {
        IdentityService {
            store: &self.store,
            audit: &self.audit,
            coordination: &self.coordination,
            data_dir: self.dir.path(),
        }
    }

    async fn audit_of(&self, actor: &str) -> Vec<AuditRecord> {
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

    /// A policy `ops-policy` and a role `ops` with it, made by the admin.
    async fn ops_role(&self) {
        let admin = admin();
        self.service()
            .put_policy(&admin, "ops-policy", &allow("nodes:*"))
            .await
            .unwrap();
        self.service()
            .create_role(
                &admin,
                NewRole {
                    name: "ops".into(),
                    description: "operators".into(),
                    policies: vec!["ops-policy".into()],
                },
            )
            .await
            .unwrap();
    }
}

fn admin() -> Principal {
    Principal::new("admin".into(), None, "tok-admin".into(), None, Vec::new())
}

/// A user's principal with no policies at all.
fn nobody() -> Principal {
    Principal::new(
        "bob".into(),
        Some("u-bob".into()),
        "tok-bob".into(),
        None,
        Vec::new(),
    )
}

fn allow(action: &str) -> Value {
    json!({"Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
}

fn user(name: &str, roles: &[&str]) -> NewUser {
    NewUser {
        name: name.into(),
        kind: None,
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn notes(principal: &Principal) -> serde_json::Map<String, Value> {
    principal.trail.lock().unwrap().notes.clone()
}

#[tokio::test]
async fn a_user_is_created_with_its_roles_and_the_roles_are_noted() {
    let f = Fixture::new().await;
    f.ops_role().await;
    let admin = admin();
    let alice = f
        .service()
        .create_user(&admin, user("alice", &["ops"]))
        .await
        .unwrap();
    assert_eq!(alice.user.name, "alice");
    assert_eq!(alice.user.kind, "user");
    assert_eq!(alice.roles, vec!["ops".to_string()]);
    assert_eq!(alice.status, "active");
    assert_eq!(notes(&admin)["roles"], json!(["ops"]));
    // The view is the API's answer: the user's fields, then roles and status.
    let view = serde_json::to_value(&alice).unwrap();
    let keys: Vec<&str> = view
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "kind",
            "created_at",
            "disabled_at",
            "roles",
            "status"
        ]
    );

    let service = NewUser {
        kind: Some("service".into()),
        ..user("deployer", &[])
    };
    assert_eq!(
        f.service()
            .create_user(&admin, service)
            .await
            .unwrap()
            .user
            .kind,
        "service"
    );
    let robot = NewUser {
        kind: Some("robot".into()),
        ..user("robot-1", &[])
    };
    let refused = f.service().create_user(&admin, robot).await.unwrap_err();
    assert_eq!(
        (refused.kind, refused.code),
        (ErrorKind::Invalid, "InvalidUserKind")
    );

    // A role that does not exist is refused, and no user is written.
    let refused = f
        .service()
        .create_user(&admin, user("carol", &["nope"]))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind, refused.code),
        (ErrorKind::Invalid, "NoSuchRole")
    );
    let missing = f.service().user("carol").await.unwrap_err();
    assert_eq!(
        (missing.kind, missing.code),
        (ErrorKind::NotFound, "NoSuchUser")
    );

    let disabled = f.service().disable_user("alice").await.unwrap();
    assert_eq!(disabled.status, "disabled");
    assert!(disabled.user.disabled_at.is_some());
}

#[tokio::test]
async fn a_second_user_of_the_same_name_is_a_conflict() {
    let f = Fixture::new().await;
    let admin = admin();
    f.service()
        .create_user(&admin, user("alice", &[]))
        .await
        .unwrap();
    let again = f
        .service()
        .create_user(&admin, user("alice", &[]))
        .await
        .unwrap_err();
    assert_eq!(
        (again.kind, again.code),
        (ErrorKind::Conflict, "UserExists")
    );
    assert!(
        again.message.contains("already exists"),
        "{}",
        again.message
    );
    assert_eq!(f.service().list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn reserved_and_malformed_names_are_invalid_for_users_roles_and_policies() {
    let f = Fixture::new().await;
    let admin = admin();
    for name in ["admin", "Root", "rule-critical", "Execution.x"] {
        let refused = f
            .service()
            .create_user(&admin, user(name, &[]))
            .await
            .unwrap_err();
        assert_eq!(
            (refused.kind, refused.code),
            (ErrorKind::Invalid, "ReservedName"),
            "{name}"
        );
        let refused = f
            .service()
            .create_role(
                &admin,
                NewRole {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code, "ReservedName", "{name}");
        let refused = f
            .service()
            .put_policy(&admin, name, &allow("nodes:List"))
            .await
            .unwrap_err();
        assert_eq!(refused.code, "ReservedName", "{name}");
    }
    for name in ["", "a/b", "x:y", &"a".repeat(65)] {
        let refused = f
            .service()
            .create_user(&admin, user(name, &[]))
            .await
            .unwrap_err();
        assert_eq!(
            (refused.kind, refused.code),
            (ErrorKind::Invalid, "InvalidName"),
            "{name}"
        );
    }
    assert!(f.service().list_users().await.unwrap().is_empty());
    assert!(f.service().list_roles().await.unwrap().is_empty());
    assert!(f.service().list_policies().await.unwrap().is_empty());
}

#[test]
fn server_actor_names_are_reserved_whatever_the_case() {
    for (name, word) in [
        ("admin", "admin"),
        ("Admin", "admin"),
        ("ANONYMOUS", "anonymous"),
        ("enrollment", "enrollment"),
        ("system", "system"),
        ("Root", "root"),
        ("rule", "rule"),
        ("rule-critical", "rule"),
        ("Execution.x-1", "execution"),
        ("schedule_nightly", "schedule"),
        ("association@a", "association"),
        ("window-1", "window"),
        ("alarm", "alarm"),
        ("role-ops", "role"),
        ("webhook.prom", "webhook"),
    ] {
        assert_eq!(reserved_word(name), Some(word), "{name}");
        let refused = valid_identity_name("user", name).unwrap_err();
        assert!(
            refused.message.contains(&format!("{word:?} is reserved")),
            "{name}: {}",
            refused.message
        );
    }
    for name in [
        "alice",
        "admins",
        "administrator",
        "admin@example.com",
        "rules",
        "roleplay",
        "ops-role",
        "my-rule",
        "windows",
    ] {
        assert_eq!(reserved_word(name), None, "{name}");
        assert!(valid_identity_name("user", name).is_ok(), "{name}");
    }
}

#[test]
fn names_are_one_to_64_of_the_allowed_characters() {
    assert!(valid_name("token", "ci.deploy-1_x@example").is_ok());
    assert!(valid_name("token", &"a".repeat(64)).is_ok());
    for bad in ["", "a b", "a/b", "ü", &"a".repeat(65)] {
        let refused = valid_name("token", bad).unwrap_err();
        assert_eq!(refused.code, "InvalidName", "{bad:?}");
    }
    // Tokens are not actors: a reserved word is a fine token name.
    assert!(valid_name("token", "admin").is_ok());
}

#[tokio::test]
async fn a_token_is_shown_once_stored_as_a_hash_and_revoked() {
    let f = Fixture::new().await;
    let admin = admin();
    f.service()
        .create_user(&admin, user("alice", &[]))
        .await
        .unwrap();
    let created = f
        .service()
        .create_token(
            &admin,
            NewToken {
                user: Some("alice".into()),
                name: "ci".into(),
                scopes: Some(vec!["nodes:*".into()]),
                expires_in_secs: Some(3600),
            },
        )
        .await
        .unwrap();
    assert!(created.token.starts_with(crate::auth::API_TOKEN_PREFIX));
    assert_eq!(created.view.user, "alice");
    assert_eq!(created.view.status, "active");
    assert!(created.view.expires_at.is_some());
    assert_eq!(notes(&admin)["token_id"], json!(created.view.id));
    let stored = f.store.api_token(&created.view.id).await.unwrap().unwrap();
    assert_eq!(stored.token_hash, crate::auth::hash_secret(&created.token));
    assert_ne!(stored.token_hash, created.token);
    // The answer: the token's view, then its secret.
    let view = serde_json::to_value(&created).unwrap();
    let keys: Vec<&str> = view
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "user",
            "scopes",
            "created_at",
            "expires_at",
            "revoked_at",
            "status",
            "token"
        ]
    );

    let listed = f
        .service()
        .list_tokens(&admin, Some("alice".into()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    let revoked = f
        .service()
        .revoke_token(&admin, &created.view.id)
        .await
        .unwrap();
    assert_eq!(revoked.status, "revoked");
    assert!(revoked.revoked_at.is_some());

    // Bad input is refused by rule.
    for (new, code) in [
        (
            NewToken {
                user: Some("alice".into()),
                name: "bad name".into(),
                ..Default::default()
            },
            "InvalidName",
        ),
        (
            NewToken {
                user: Some("alice".into()),
                name: "x".into(),
                scopes: Some(Vec::new()),
                ..Default::default()
            },
            "InvalidScopes",
        ),
        (
            NewToken {
                user: Some("alice".into()),
                name: "x".into(),
                expires_in_secs: Some(0),
                ..Default::default()
            },
            "InvalidExpiry",
        ),
        (
            NewToken {
                name: "x".into(),
                ..Default::default()
            },
            "AdminTokenHasNoUser",
        ),
    ] {
        let refused = f.service().create_token(&admin, new).await.unwrap_err();
        assert_eq!((refused.kind, refused.code), (ErrorKind::Invalid, code));
    }
    let missing = f
        .service()
        .revoke_token(&admin, "tok-nope")
        .await
        .unwrap_err();
    assert_eq!(
        (missing.kind, missing.code),
        (ErrorKind::NotFound, "NoSuchToken")
    );

    // The admin token is rotated, never revoked.
    f.store
        .insert_api_token(&ApiToken {
            id: "tok-admin".into(),
            name: "admin".into(),
            token_hash: "h".into(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            user_id: None,
            scopes: None,
        })
        .await
        .unwrap();
    let refused = f
        .service()
        .revoke_token(&admin, "tok-admin")
        .await
        .unwrap_err();
    assert_eq!(refused.code, "AdminTokenNotRevocable");
    let all = f.service().list_tokens(&admin, None).await.unwrap();
    assert!(all.iter().any(|t| t.user == "(admin)"));

    // A disabled user gets no new token.
    f.service().disable_user("alice").await.unwrap();
    let refused = f
        .service()
        .create_token(
            &admin,
            NewToken {
                user: Some("alice".into()),
                name: "late".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind, refused.code),
        (ErrorKind::Conflict, "UserDisabled")
    );
}

#[tokio::test]
async fn only_the_admin_token_rotates_itself_and_the_file_is_written() {
    let f = Fixture::new().await;
    let refused = f.service().rotate_admin_token(&nobody()).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Forbidden);
    let denied = f.audit_of("bob").await;
    assert_eq!(denied[0].action, "tokens:RotateAdmin");
    assert_eq!(denied[0].outcome, "denied");

    let rotated = f.service().rotate_admin_token(&admin()).await.unwrap();
    let file = std::fs::read_to_string(f.dir.path().join(crate::ADMIN_TOKEN_FILE)).unwrap();
    assert_eq!(file.trim(), rotated.token);
    assert_eq!(
        rotated.file,
        f.dir
            .path()
            .join(crate::ADMIN_TOKEN_FILE)
            .display()
            .to_string()
    );
}

#[tokio::test]
async fn a_bad_policy_document_is_invalid_and_names_the_path() {
    let f = Fixture::new().await;
    let document = json!({"Statement": [
        {"Effect": "Allow", "Action": "nodes:List", "Resource": "*"},
        {"Effect": "allow", "Action": "nodes:Get", "Resource": "*"}
    ]});
    let refused = f
        .service()
        .put_policy(&admin(), "readers", &document)
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind, refused.code),
        (ErrorKind::Invalid, "InvalidPolicy")
    );
    assert!(
        refused
            .message
            .starts_with("policy readers: Statement[1].Effect"),
        "{}",
        refused.message
    );
    let missing = f.service().policy("readers").await.unwrap_err();
    assert_eq!(
        (missing.kind, missing.code),
        (ErrorKind::NotFound, "NoSuchPolicy")
    );

    let stored = f
        .service()
        .put_policy(&admin(), "readers", &allow("nodes:List"))
        .await
        .unwrap();
    assert_eq!(stored.name, "readers");
    assert_eq!(stored.document, allow("nodes:List"));
}

#[tokio::test]
async fn policies_are_attached_to_and_detached_from_roles() {
    let f = Fixture::new().await;
    f.ops_role().await;
    let admin = admin();
    f.service()
        .put_policy(&admin, "readers", &allow("nodes:List"))
        .await
        .unwrap();
    let role = f
        .service()
        .change_role_policies(
            &admin,
            "ops",
            PolicyChange {
                attach: vec!["readers".into()],
                detach: vec!["ops-policy".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(role.policies, vec!["readers".to_string()]);
    assert_eq!(notes(&admin)["attached"], json!(["readers"]));
    assert_eq!(notes(&admin)["detached"], json!(["ops-policy"]));

    // An attached policy cannot be deleted; a detached one can.
    let in_use = f.service().delete_policy("readers").await.unwrap_err();
    assert_eq!(
        (in_use.kind, in_use.code),
        (ErrorKind::Conflict, "PolicyInUse")
    );
    let deleted = f.service().delete_policy("ops-policy").await.unwrap();
    assert_eq!(
        serde_json::to_value(&deleted).unwrap(),
        json!({"name": "ops-policy", "deleted": true})
    );

    // Attaching a policy that does not exist is invalid; an unknown role is not found.
    let refused = f
        .service()
        .change_role_policies(
            &admin,
            "ops",
            PolicyChange {
                attach: vec!["nope".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind, refused.code),
        (ErrorKind::Invalid, "NoSuchPolicy")
    );
    let refused = f
        .service()
        .change_role_policies(&admin, "ghosts", PolicyChange::default())
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind, refused.code),
        (ErrorKind::NotFound, "NoSuchRole")
    );

    // Roles on users, and the simulator reading through them.
    f.service()
        .create_user(&admin, user("alice", &[]))
        .await
        .unwrap();
    let alice = f
        .service()
        .change_user_roles(
            &admin,
            "alice",
            RoleChange {
                grant: vec!["ops".into()],
                revoke: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(alice.roles, vec!["ops".to_string()]);
    let simulation = f
        .service()
        .simulate(
            &admin,
            Simulate {
                user: "alice".into(),
                action: "nodes:List".into(),
                resource: "node/*".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(simulation.decision, "allowed");
    assert_eq!(simulation.policies, vec!["readers".to_string()]);
    let denied = f
        .service()
        .simulate(
            &admin,
            Simulate {
                user: "alice".into(),
                action: "commands:Run".into(),
                resource: "node/web-1".into(),
                context: json!({"operon:NodeTag/env": 1})
                    .as_object()
                    .cloned()
                    .unwrap(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        (denied.kind, denied.code),
        (ErrorKind::Invalid, "InvalidContext")
    );

    let created = f.service().role("ops").await.unwrap();
    assert_eq!(created.users, vec!["alice".to_string()]);
    let role_deleted = f.service().delete_role("ops").await.unwrap();
    assert!(role_deleted.deleted);
    let gone = f.service().delete_role("ops").await.unwrap_err();
    assert_eq!((gone.kind, gone.code), (ErrorKind::NotFound, "NoSuchRole"));
}

#[tokio::test]
async fn a_principal_without_rights_is_forbidden_and_the_refusal_is_audited() {
    let f = Fixture::new().await;
    let bob = nobody();
    let refused = f
        .service()
        .create_user(&bob, user("mallory", &[]))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind, refused.code),
        (ErrorKind::Forbidden, "Forbidden")
    );
    assert!(
        refused
            .message
            .starts_with("bob may not users:Create on user/mallory"),
        "{}",
        refused.message
    );
    // Refused before any rule is looked at: nothing is written.
    assert!(f.service().list_users().await.unwrap().is_empty());

    for refused in [
        f.service()
            .put_policy(&bob, "mine", &allow("*"))
            .await
            .unwrap_err(),
        f.service()
            .create_role(
                &bob,
                NewRole {
                    name: "mine".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err(),
        f.service()
            .create_token(
                &bob,
                NewToken {
                    user: Some("alice".into()),
                    name: "stolen".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err(),
    ] {
        assert_eq!(refused.kind, ErrorKind::Forbidden, "{}", refused.message);
    }

    let mut records = Vec::new();
    for _ in 0..100 {
        records = f.audit_of("bob").await;
        if records.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r.action.as_str(), r.resource.as_str(), r.outcome.as_str()))
        .collect();
    for expected in [
        ("users:Create", "user/mallory", "denied"),
        ("policies:Put", "policy/mine", "denied"),
        ("roles:Create", "role/mine", "denied"),
        ("tokens:Create", "user/alice", "denied"),
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    let create = records.iter().find(|r| r.action == "users:Create").unwrap();
    assert_eq!(create.detail["token"], "tok-bob");
    assert!(bob.trail.lock().unwrap().denied);
}
