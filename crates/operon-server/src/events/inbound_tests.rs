//! The inbound-webhook service on a temporary SQLite store: creation needing
//! `webhooks:Create` (a refusal audited) and a long enough secret, and the
//! typed decision on a signed request: accepted (events and audit record
//! committed), unknown, badly signed, replayed.

use serde_json::json;

use super::*;
use crate::service::ErrorKind;

use crate::events::test_fixture::{Fixture, admin, user};

fn hook(name: &str) -> NewWebhook {
    NewWebhook {
        name: name.into(),
        bus: None,
        secret: Some("0123456789abcdef-secret".into()),
    }
}

#[tokio::test]
async fn creating_a_webhook_needs_webhooks_create_and_a_long_secret() {
    let f = Fixture::new().await;
    let s = f.webhooks();
    let alice = user(json!([{"Effect": "Allow", "Action": "events:Put", "Resource": "*"}]));
    let err = s.create(&alice, hook("ci")).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Forbidden, "Forbidden"));
    let denials = f.records_of("alice", "denied").await;
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].action, "webhooks:Create");
    assert_eq!(denials[0].resource, "webhook/ci");
    assert!(s.list().await.unwrap().is_empty());

    let short = NewWebhook {
        secret: Some("short".into()),
        ..hook("ci")
    };
    let err = s.create(&admin(), short).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Invalid, "SecretTooShort"));

    let (made, secret) = s.create(&admin(), hook("ci")).await.unwrap();
    assert_eq!(made.bus, "default");
    assert_eq!(secret, "0123456789abcdef-secret");
    assert!(!made.secret_sealed.contains(&secret));
    let again = s.create(&admin(), hook("ci")).await.unwrap_err();
    assert_eq!(
        (again.kind, again.code),
        (ErrorKind::Conflict, "WebhookExists")
    );
    let (_, generated) = s
        .create(
            &admin(),
            NewWebhook {
                secret: None,
                ..hook("gen")
            },
        )
        .await
        .unwrap();
    assert!(generated.starts_with("owh_"));
    s.delete("gen").await.unwrap();
    let gone = s.delete("gen").await.unwrap_err();
    assert_eq!(
        (gone.kind, gone.code),
        (ErrorKind::NotFound, "NoSuchWebhook")
    );
}

#[tokio::test]
async fn a_signed_request_is_accepted_once_and_refusals_are_typed() {
    let f = Fixture::new().await;
    let s = f.webhooks();
    let (_, secret) = s.create(&admin(), hook("ci")).await.unwrap();
    let now = 1_800_000_000_000i64;
    let at = now / 1000;
    let body = br#"{"build": 7}"#;
    let signature = signing::signature(&secret, at, body);
    let timestamp = at.to_string();
    let request = SignedRequest {
        name: "ci",
        timestamp: &timestamp,
        signature: &signature,
        body,
    };

    let Receipt::Accepted { event_ids } = s.receive(request, now).await.unwrap() else {
        panic!("a well signed request was refused");
    };
    assert_eq!(event_ids.len(), 1);
    assert!(
        f.store
            .event_by_id_on_bus(&event_ids[0], "default")
            .await
            .unwrap()
            .is_some()
    );
    let records = f.records_of("webhook/ci", "allowed").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].resource, "bus/default");

    assert_eq!(
        s.receive(request, now + 1000).await.unwrap(),
        Receipt::Refused(Refusal::Replayed)
    );
    let unknown = SignedRequest {
        name: "nope",
        ..request
    };
    assert_eq!(
        s.receive(unknown, now).await.unwrap(),
        Receipt::Refused(Refusal::UnknownWebhook)
    );
    let forged = SignedRequest {
        signature: "sha256=00",
        ..request
    };
    assert!(matches!(
        s.receive(forged, now).await.unwrap(),
        Receipt::Refused(Refusal::BadSignature(_))
    ));
    let late = s
        .receive(request, now + (signing::MAX_CLOCK_SKEW_SECS + 10) * 1000)
        .await
        .unwrap();
    assert!(matches!(late, Receipt::Refused(Refusal::BadSignature(_))));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_invalid_and_may_be_sent_again() {
    let f = Fixture::new().await;
    let s = f.webhooks();
    let (_, secret) = s.create(&admin(), hook("ci")).await.unwrap();
    let now = 1_800_000_000_000i64;
    let body = b"not json";
    let signature = signing::signature(&secret, now / 1000, body);
    let timestamp = (now / 1000).to_string();
    let request = SignedRequest {
        name: "ci",
        timestamp: &timestamp,
        signature: &signature,
        body,
    };
    let err = s.receive(request, now).await.unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Invalid, "BodyNotJson"));
    // Forgotten: the same request is judged again, not called a replay.
    let again = s.receive(request, now).await.unwrap_err();
    assert_eq!(again.code, "BodyNotJson");
}
