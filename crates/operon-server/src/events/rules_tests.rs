//! The rules service on a temporary SQLite store: validation naming the
//! field, target limits, pattern-or-schedule, roles:Pass refusals (audited),
//! the author recorded, and put/enable/disable/delete reaching the matcher
//! and the store.

use std::time::Duration;

use operon_pattern::Scratch;
use serde_json::{Value, json};

use super::*;
use crate::events::EventBus;
use crate::events::signing::SealKey;
use crate::service::ErrorKind;

use crate::events::test_fixture::{Fixture, admin, user};

fn target(id: &str) -> TargetSpec {
    TargetSpec {
        id: id.into(),
        kind: "log".into(),
        ..Default::default()
    }
}

fn rule(name: &str, targets: Vec<TargetSpec>) -> PutRule {
    PutRule {
        name: name.into(),
        bus: None,
        description: None,
        pattern: Some(json!({"source": ["app"]}).to_string()),
        schedule: None,
        timezone: None,
        enabled: true,
        targets,
    }
}

fn event() -> Value {
    json!({"id": "e-1", "source": "app", "detail-type": "x", "account": "a",
        "region": "r", "time": "2026-01-01T00:00:00Z", "resources": [], "detail": {}})
}

#[tokio::test]
async fn put_installs_the_rule_with_its_author_and_delete_removes_it() {
    let f = Fixture::new().await;
    let s = f.rules();
    let put = s
        .put(&admin(), rule("r1", vec![target("t1")]))
        .await
        .unwrap();
    assert_eq!(put.rule.bus, "default");
    assert_eq!(put.rule.author.as_deref(), Some("admin"));
    assert_eq!(put.targets.len(), 1);
    assert!(f.events.rule("r1").is_some());
    assert_eq!(f.matching(event()), ["r1"]);
    let stored = f.store.rule("r1").await.unwrap().unwrap();
    assert_eq!(stored.author.as_deref(), Some("admin"));
    assert_eq!(stored.targets[0]["Id"], "t1");

    s.delete("r1").await.unwrap();
    assert!(f.events.rule("r1").is_none());
    assert!(f.matching(event()).is_empty());
    assert!(f.store.rule("r1").await.unwrap().is_none());
    let err = s.delete("r1").await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::NotFound, "NoSuchRule"));
}

#[tokio::test]
async fn disable_leaves_the_matcher_and_enable_returns_to_it() {
    let f = Fixture::new().await;
    let s = f.rules();
    s.put(&admin(), rule("r1", vec![target("t1")]))
        .await
        .unwrap();
    let disabled = s.set_enabled("r1", false).await.unwrap();
    assert!(!disabled.rule.enabled);
    assert!(f.matching(event()).is_empty());
    assert!(!f.store.rule("r1").await.unwrap().unwrap().enabled);
    let enabled = s.set_enabled("r1", true).await.unwrap();
    assert!(enabled.rule.enabled);
    assert_eq!(f.matching(event()), ["r1"]);
    assert!(f.store.rule("r1").await.unwrap().unwrap().enabled);
    let err = s.set_enabled("nope", true).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::NotFound, "NoSuchRule"));
}

#[tokio::test]
async fn rules_are_validated_with_stable_codes_naming_the_field() {
    let f = Fixture::new().await;
    let s = f.rules();
    let cases: Vec<(PutRule, &str, &str)> = vec![
        (
            rule("r1", vec![target("a"), target("a")]),
            "DuplicateTargetId",
            "Targets[1]: duplicate Id a",
        ),
        (
            rule("r1", (0..6).map(|i| target(&format!("t{i}"))).collect()),
            "TooManyTargets",
            "at most 5 targets, got 6",
        ),
        (
            PutRule {
                schedule: Some("rate(5 minutes)".into()),
                ..rule("r1", vec![])
            },
            "PatternAndSchedule",
            "not both",
        ),
        (
            PutRule {
                pattern: None,
                ..rule("r1", vec![])
            },
            "NoPatternOrSchedule",
            "needs an event pattern or a schedule",
        ),
        (
            PutRule {
                pattern: Some(r#"{"source": "app"}"#.into()),
                ..rule("r1", vec![])
            },
            "InvalidPattern",
            "",
        ),
        (
            PutRule {
                pattern: None,
                schedule: Some("rate(often)".into()),
                ..rule("r1", vec![])
            },
            "InvalidSchedule",
            "",
        ),
        (
            PutRule {
                timezone: Some("Europe/Paris".into()),
                ..rule("r1", vec![])
            },
            "TimezoneWithoutSchedule",
            "time zone",
        ),
        (
            PutRule {
                bus: Some("nope".into()),
                ..rule("r1", vec![])
            },
            "NoSuchBus",
            "bus nope does not exist",
        ),
        (
            rule(
                "r1",
                vec![
                    target("ok"),
                    TargetSpec {
                        kind: "webhook".into(),
                        ..target("hook")
                    },
                ],
            ),
            "InvalidTarget",
            "Targets[1]: ",
        ),
        (
            rule(
                "r1",
                vec![TargetSpec {
                    kind: "webhook".into(),
                    url: Some("http://hooks.example/x".into()),
                    secret_sealed: Some("sealed".into()),
                    ..target("hook")
                }],
            ),
            "InvalidTarget",
            "Targets[0]: target hook: SecretSealed cannot be given",
        ),
        (
            rule(
                "r1",
                vec![TargetSpec {
                    kind: "webhook".into(),
                    url: Some("http://hooks.example/x".into()),
                    has_secret: Some(true),
                    ..target("hook")
                }],
            ),
            "InvalidTarget",
            "Targets[0]: target hook: HasSecret is true but no Secret",
        ),
        (rule("bad name", vec![]), "ValidationError", "rule name"),
    ];
    for (put, code, text) in cases {
        let err = s.put(&admin(), put).await.unwrap_err();
        assert_eq!((err.kind, err.code), (ErrorKind::Invalid, code), "{err:?}");
        assert!(err.message.contains(text), "{code}: {}", err.message);
    }
    assert!(f.events.rules().is_empty());
    assert!(f.store.list_rules().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_webhook_secret_is_sealed_and_shown_only_as_has_secret() {
    let f = Fixture::new().await;
    let s = f.rules();
    let hook = TargetSpec {
        kind: "webhook".into(),
        url: Some("http://hooks.example/x".into()),
        secret: Some("s3cret".into()),
        ..target("hook")
    };
    let put = s.put(&admin(), rule("r1", vec![hook])).await.unwrap();
    let stored = f.store.rule("r1").await.unwrap().unwrap();
    let sealed = stored.targets[0]["SecretSealed"].as_str().unwrap();
    assert!(!sealed.contains("s3cret"));
    let shown = serde_json::to_value(view(&put)).unwrap();
    assert_eq!(shown["targets"][0]["HasSecret"], true);
    assert!(shown["targets"][0].get("SecretSealed").is_none());
    assert!(!shown.to_string().contains("s3cret"));
}

#[tokio::test]
async fn naming_a_role_needs_roles_pass_and_the_refusal_is_audited() {
    let f = Fixture::new().await;
    f.store.create_role("ops", "", 1).await.unwrap();
    let s = f.rules();
    let alice = user(json!([{"Effect": "Allow", "Action": "rules:Put", "Resource": "*"}]));
    let with_role = TargetSpec {
        role_arn: Some("role/ops".into()),
        ..target("t1")
    };
    let err = s
        .put(&alice, rule("r1", vec![target("t0"), with_role.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err:?}");
    let denials = f.records_of("alice", "denied").await;
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(denials[0].action, "roles:Pass");
    assert_eq!(denials[0].resource, "role/ops");
    assert!(f.events.rule("r1").is_none());
    assert!(f.store.rule("r1").await.unwrap().is_none());

    // With roles:Pass the rule is put; an unknown role is refused by name.
    let bob = user(json!([
        {"Effect": "Allow", "Action": ["rules:Put", "roles:Pass"], "Resource": "*"}
    ]));
    let put = s.put(&bob, rule("r1", vec![with_role])).await.unwrap();
    assert_eq!(put.targets[0].role.as_deref(), Some("ops"));
    let unknown = TargetSpec {
        role_arn: Some("arn:aws:iam::1:role/ghost".into()),
        ..target("t1")
    };
    let err = s.put(&bob, rule("r2", vec![unknown])).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Invalid, "NoSuchRole"));
    let bad = TargetSpec {
        role_arn: Some("a b".into()),
        ..target("t1")
    };
    let err = s.put(&bob, rule("r2", vec![bad])).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Invalid, "InvalidRole"));
    assert!(err.message.starts_with("target t1: RoleArn: "));
}

#[tokio::test]
async fn puts_and_targets_without_a_role_are_checked_against_the_author() {
    let f = Fixture::new().await;
    let s = f.rules();
    let nobody = user(json!([{"Effect": "Allow", "Action": "rules:List", "Resource": "*"}]));
    let err = s.put(&nobody, rule("r1", vec![])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert_eq!(f.records_of("alice", "denied").await[0].action, "rules:Put");

    let alice = user(json!([{"Effect": "Allow", "Action": "rules:Put", "Resource": "*"}]));
    let start = TargetSpec {
        kind: "workflow".into(),
        workflow: Some("deploy".into()),
        ..target("w")
    };
    let err = s.put(&alice, rule("r1", vec![start])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    let put_on = TargetSpec {
        kind: "bus".into(),
        bus: Some("default".into()),
        ..target("b")
    };
    let err = s.put(&alice, rule("r1", vec![put_on])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    let actions: Vec<String> = f
        .records_of("alice", "denied")
        .await
        .into_iter()
        .map(|r| format!("{} {}", r.action, r.resource))
        .collect();
    assert!(
        actions.contains(&"workflows:Start workflow/deploy".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"events:Put bus/default".to_string()),
        "{actions:?}"
    );
    assert!(f.events.rules().is_empty());
}

#[tokio::test]
async fn test_reports_the_match_and_each_targets_input() {
    let f = Fixture::new().await;
    let s = f.rules();
    let path = TargetSpec {
        input_path: Some("$.detail.missing".into()),
        ..target("t2")
    };
    s.put(&admin(), rule("r1", vec![target("t1"), path]))
        .await
        .unwrap();
    let trial = s.test("r1", &event()).unwrap();
    assert!(trial.matches);
    assert!(trial.targets[0].delivered);
    assert_eq!(trial.targets[0].id, "t1");
    let mut other = event();
    other["source"] = json!("elsewhere");
    assert!(!s.test("r1", &other).unwrap().matches);
    let err = s.test("r1", &json!({"source": "app"})).unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Invalid, "InvalidEvent"));
    let err = s.test("nope", &event()).unwrap_err();
    assert_eq!(err.code, "NoSuchRule");
}

#[tokio::test]
async fn buses_are_created_once_and_the_default_bus_stays() {
    let f = Fixture::new().await;
    let s = f.rules();
    s.create_bus(&admin(), "ops").await.unwrap();
    assert!(f.events.bus_exists("ops"));
    let err = s.create_bus(&admin(), "ops").await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Conflict, "BusExists"));
    let err = s.delete_bus("default").await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Invalid, "DefaultBus"));
    s.delete_bus("ops").await.unwrap();
    assert!(!f.events.bus_exists("ops"));
    let err = s.delete_bus("ops").await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::NotFound, "NoSuchBus"));
    let nobody = user(json!([{"Effect": "Allow", "Action": "rules:Put", "Resource": "*"}]));
    let err = s.create_bus(&nobody, "mine").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert!(!f.events.bus_exists("mine"));
}

async fn announced(changed: &mut crate::coordination::Subscription) {
    tokio::time::timeout(Duration::from_secs(1), changed.notified())
        .await
        .expect("announced on Topic::Rules")
}

/// Every rule or bus change is announced on `Topic::Rules`, and another
/// process's cache (a second bus over the same store) follows it by
/// reloading.
#[tokio::test]
async fn changes_are_announced_and_another_process_follows_them_by_reloading() {
    let f = Fixture::new().await;
    let s = f.rules();
    let http = crate::egress::client::Outbound::new(Default::default(), "test", None).unwrap();
    let other = EventBus::load(
        &f.store,
        SealKey::from_bytes([7; 32]),
        f.audit.clone(),
        http,
    )
    .await
    .unwrap();
    let mut changed = f.coordination.subscribe(Topic::Rules);
    let other_matches = |other: &EventBus| {
        other.matching_rules("default", &event().to_string(), &mut Scratch::default())
    };

    s.put(&admin(), rule("r1", vec![target("t1")]))
        .await
        .unwrap();
    announced(&mut changed).await;
    assert!(other_matches(&other).is_empty(), "not reloaded yet");
    other.reload(&f.store).await.unwrap();
    assert_eq!(other_matches(&other), ["r1"]);

    s.set_enabled("r1", false).await.unwrap();
    announced(&mut changed).await;
    other.reload(&f.store).await.unwrap();
    assert!(other_matches(&other).is_empty());
    assert!(other.rule("r1").is_some());

    s.delete("r1").await.unwrap();
    announced(&mut changed).await;
    other.reload(&f.store).await.unwrap();
    assert!(other.rule("r1").is_none());

    s.create_bus(&admin(), "ops").await.unwrap();
    announced(&mut changed).await;
    other.reload(&f.store).await.unwrap();
    assert!(other.bus_exists("ops"));
    s.delete_bus("ops").await.unwrap();
    announced(&mut changed).await;
    other.reload(&f.store).await.unwrap();
    assert!(!other.bus_exists("ops"));
}
