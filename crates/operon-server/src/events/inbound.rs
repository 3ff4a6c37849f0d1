//! Inbound webhooks: signed HTTP requests from other systems become events.
//!
//! `POST /v1/hooks/{name}` needs no bearer token; it needs the headers
//! `x-operon-timestamp` (Unix seconds, within 5 minutes) and
//! `x-operon-signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
//! A JSON body becomes one event (`operon.webhooks`, `Webhook Received`,
//! detail `{"webhook", "payload"}`); an Alertmanager notification
//! (`{"version": "4", "alerts": [...]}`) becomes one `Alertmanager Alert`
//! event per alert, so a rule can start a runbook for each firing alert.
//!
//! Refusals give nothing away and cost a flood nothing:
//! - an unknown webhook and a bad signature (or timestamp) get the same
//!   answer, 401 `unknown webhook or bad signature`; the reason goes to the
//!   audit record and the log;
//! - a request whose signature was accepted within the skew window is a
//!   replay and is refused with 409 (the signature covers the timestamp, so
//!   a sender retrying signs again); the signatures are remembered until
//!   their timestamp leaves the window, [`MAX_SEEN`] at most;
//! - refusals are audited (by the HTTP edge, `events/http.rs`), limited per source address by the same
//!   [`RefusalLimiter`](crate::refusals::RefusalLimiter) bucket as
//!   unauthenticated API calls: past it, 429 and one summary record a minute.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use operon_store::{InboundWebhook, Store};
use serde_json::{Value, json};

use super::envelope::{self, PutEntry};
use super::{EventBus, check_name, signing};
use crate::access::{Principal, check_action};
use crate::audit::AuditLog;
use crate::now_millis;
use crate::service::{ErrorKind, ServiceError, ServiceResult};

/// `source` of events made from webhook requests.
pub const SOURCE: &str = "operon.webhooks";

/// Signatures accepted at most within one skew window: about 330 a second
/// for five minutes. Past it (after expired ones are dropped) requests are
/// refused with 429 rather than accepted without replay protection.
pub const MAX_SEEN: usize = 100_000;

/// Signatures of accepted requests, until their timestamp leaves the skew
/// window (after which the signature check itself refuses them).
#[derive(Default)]
pub struct SeenSignatures(Mutex<Seen>);

#[derive(Default)]
struct Seen {
    expiry: HashMap<String, i64>,
    by_expiry: BTreeSet<(i64, String)>,
}

/// What [`SeenSignatures::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time: remembered.
    Fresh,
    /// Seen within the window: a replay.
    Replayed,
    /// The table is full of live signatures.
    Full,
}

impl SeenSignatures {
    /// Remember `key` until `expires_at` (ms), unless it is already there.
    pub fn insert(&self, key: &str, now: i64, expires_at: i64) -> Admission {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((at, _)) = seen.by_expiry.first()
            && *at <= now
        {
            if let Some((_, old)) = seen.by_expiry.pop_first() {
                seen.expiry.remove(&old);
            }
        }
        if seen.expiry.contains_key(key) {
            return Admission::Replayed;
        }
        if seen.expiry.len() >= MAX_SEEN {
            return Admission::Full;
        }
        seen.expiry.insert(key.to_string(), expires_at);
        seen.by_expiry.insert((expires_at, key.to_string()));
        Admission::Fresh
    }

    /// Forget `key` (its request failed: the sender may send it again).
    pub fn forget(&self, key: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = seen.expiry.remove(key) {
            seen.by_expiry.remove(&(at, key.to_string()));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().expiry.len()
    }
}

/// A webhook as given to [`WebhookService::create`].
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    pub name: String,
    /// `default` when absent.
    pub bus: Option<String>,
    /// The shared secret (at least [`MIN_SECRET_LEN`] characters); generated
    /// when absent.
    pub secret: Option<String>,
}

/// The shortest shared secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// A signed request as received: the webhook named in the path, the
/// timestamp and signature headers (empty when absent), the body.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'r> {
    pub name: &'r str,
    pub timestamp: &'r str,
    pub signature: &'r str,
    pub body: &'r [u8],
}

/// What became of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// Verified, fresh, and its events committed with the call's audit record.
    Accepted { event_ids: Vec<String> },
    /// Refused: not audited yet (the edge audits it, within its rate limit).
    Refused(Refusal),
    /// The replay cache is full of live signatures: try again later.
    Busy,
}

/// Why a signed request was refused. Only [`Refusal::Replayed`] is told to
/// the sender; the others get one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownWebhook,
    /// The signature or the timestamp is wrong (the reason says which).
    BadSignature(&'static str),
    /// This signature was already accepted within the skew window.
    Replayed,
}

impl Refusal {
    /// The reason, for the audit record and the log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::UnknownWebhook => "unknown webhook",
            Refusal::BadSignature(reason) => reason,
            Refusal::Replayed => "replayed: this signature was already accepted",
        }
    }
}

/// Inbound webhooks: the only code that creates and deletes them and turns
/// signed requests into events. Typed in and out, [`ServiceError`] on
/// failure; the HTTP edge (headers, the refusal audit and its rate limit)
/// is [`receive`] and the management handlers above.
pub struct WebhookService<'a> {
    pub(crate) store: &'a Store,
    pub(crate) audit: &'a AuditLog,
    pub(crate) events: &'a EventBus,
    /// Wakes the delivery loop.
    pub(crate) coordination: &'a crate::coordination::Coordination,
}

impl WebhookService<'_> {
    /// Create a webhook: its name, `webhooks:Create`, its bus and its secret
    /// checked; the secret is stored sealed and returned once, here.
    pub async fn create(
        &self,
        principal: &Principal,
        new: NewWebhook,
    ) -> ServiceResult<(InboundWebhook, String)> {
        check_name("webhook", &new.name)?;
        let resource = format!("webhook/{}", new.name);
        check_action(self.audit, principal, "webhooks:Create", &resource).await?;
        let bus = self.events.require_bus(new.bus)?;
        let secret = match new.secret {
            Some(s) if s.len() < MIN_SECRET_LEN => {
                return Err(ServiceError::invalid(
                    "SecretTooShort",
                    "a webhook secret must be at least 16 characters",
                ));
            }
            Some(s) => s,
            None => crate::auth::new_secret("owh_"),
        };
        let hook = InboundWebhook {
            name: new.name,
            bus,
            secret_sealed: self.events.key.seal(&secret),
            created_at: now_millis(),
        };
        if !self.store.create_webhook(&hook).await? {
            return Err(ServiceError::conflict(
                "WebhookExists",
                format!("webhook {} already exists", hook.name),
            ));
        }
        Ok((hook, secret))
    }

    pub async fn list(&self) -> ServiceResult<Vec<InboundWebhook>> {
        Ok(self.store.list_webhooks().await?)
    }

    /// Authorized by the catalogue (`webhooks:Delete` on `webhook/NAME`).
    pub async fn delete(&self, name: &str) -> ServiceResult<()> {
        if !self.store.delete_webhook(name).await? {
            return Err(ServiceError::not_found(
                "NoSuchWebhook",
                format!("no webhook named {name}"),
            ));
        }
        Ok(())
    }

    /// Decide a signed request at `now` (ms): the hook looked up, the
    /// signature and timestamp verified (the same work for an unknown hook),
    /// the signature remembered against replays, and the body's events
    /// accepted. A request whose events fail is forgotten, so the sender may
    /// send it again.
    pub async fn receive(&self, request: SignedRequest<'_>, now: i64) -> ServiceResult<Receipt> {
        let SignedRequest {
            name,
            timestamp,
            signature,
            body,
        } = request;
        let Some(hook) = self.store.webhook(name).await? else {
            // The same work as for a known hook, then the same answer.
            let _ = signing::verify("unknown webhook", timestamp, signature, body, now / 1000);
            return Ok(Receipt::Refused(Refusal::UnknownWebhook));
        };
        let Some(secret) = self.events.key.open(&hook.secret_sealed) else {
            tracing::error!(webhook = %name, "the webhook secret cannot be opened with events.key");
            return Err(ServiceError::new(
                ErrorKind::Internal,
                "SecretUnreadable",
                "the webhook's secret cannot be read; see the server log",
            ));
        };
        if let Err(reason) = signing::verify(&secret, timestamp, signature, body, now / 1000) {
            return Ok(Receipt::Refused(Refusal::BadSignature(reason)));
        }
        // Verified, so the timestamp is a number within the window.
        let signed_at: i64 = timestamp.trim().parse().unwrap_or(0);
        let expires_at = (signed_at + signing::MAX_CLOCK_SKEW_SECS + 1) * 1000;
        let key = format!("{name}\n{}", signature.trim());
        match self.events.seen_signatures.insert(&key, now, expires_at) {
            Admission::Fresh => {}
            Admission::Replayed => return Ok(Receipt::Refused(Refusal::Replayed)),
            Admission::Full => {
                tracing::warn!(webhook = %name, "too many webhook requests within the skew window");
                return Ok(Receipt::Busy);
            }
        }
        match self.accept(name, &hook.bus, body).await {
            Ok(event_ids) => Ok(Receipt::Accepted { event_ids }),
            Err(e) => {
                self.events.seen_signatures.forget(&key);
                Err(e)
            }
        }
    }

    /// Turn a verified request's body into events and commit them with the
    /// call's audit record.
    async fn accept(&self, name: &str, bus: &str, body: &[u8]) -> ServiceResult<Vec<String>> {
        let payload: Value = serde_json::from_slice(body).map_err(|e| {
            ServiceError::invalid(
                "BodyNotJson",
                format!("webhook {name}: the body is not JSON: {e}"),
            )
        })?;
        let entries = entries_for(name, bus, payload);
        let now = now_millis();
        let mut envelopes = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let env = envelope::envelope(entry, now).map_err(|e| {
                ServiceError::invalid(
                    "InvalidEvent",
                    format!("webhook {name}: event {i}: {}", e.message),
                )
            })?;
            envelopes.push(env);
        }
        let ids: Vec<String> = envelopes.iter().map(|e| e.id.clone()).collect();
        let record = operon_store::AuditEntry {
            actor: format!("webhook/{name}"),
            action: "events:Put".into(),
            resource: format!("bus/{bus}"),
            outcome: "allowed".into(),
            detail: json!({"method": "POST", "path": format!("/v1/hooks/{name}"), "events": ids.len()}),
        };
        self.events
            .accept(self.coordination, envelopes, None, Some(record))
            .await?;
        Ok(ids)
    }
}

/// Is this an Alertmanager webhook notification?
fn is_alertmanager(payload: &Value) -> bool {
    payload["alerts"].is_array()
        && (payload.get("groupKey").is_some() || payload.get("receiver").is_some())
}

/// The events a webhook payload becomes.
pub fn entries_for(webhook: &str, bus: &str, payload: Value) -> Vec<PutEntry> {
    let entry = |detail_type: &str, detail: Value| PutEntry {
        source: Some(SOURCE.to_string()),
        detail_type: Some(detail_type.to_string()),
        detail: Some(detail.to_string()),
        resources: vec![format!("webhook/{webhook}")],
        time: None,
        event_bus_name: Some(bus.to_string()),
    };
    if !is_alertmanager(&payload) {
        return vec![entry(
            "Webhook Received",
            json!({"webhook": webhook, "payload": payload}),
        )];
    }
    let alerts = payload["alerts"].as_array().cloned().unwrap_or_default();
    alerts
        .into_iter()
        .map(|alert| {
            let mut detail = json!({
                "webhook": webhook,
                "receiver": payload["receiver"],
                "groupKey": payload["groupKey"],
                "externalURL": payload["externalURL"],
                "groupLabels": payload["groupLabels"],
                "commonLabels": payload["commonLabels"],
            });
            if let (Some(d), Value::Object(a)) = (detail.as_object_mut(), alert) {
                d.extend(a);
            }
            entry("Alertmanager Alert", detail)
        })
        .collect()
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod service_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_remembered_until_they_expire_and_the_table_is_bounded() {
        let seen = SeenSignatures::default();
        assert_eq!(seen.insert("a", 0, 1_000), Admission::Fresh);
        assert_eq!(seen.insert("b", 0, 2_000), Admission::Fresh);
        assert_eq!(seen.insert("a", 999, 1_000), Admission::Replayed);
        // Past its expiry a signature is dropped (the timestamp check
        // refuses the request by then).
        assert_eq!(seen.insert("c", 1_000, 3_000), Admission::Fresh);
        assert_eq!(seen.len(), 2);
        seen.forget("c");
        assert_eq!(seen.insert("c", 1_000, 3_000), Admission::Fresh);
        let full = SeenSignatures::default();
        for i in 0..MAX_SEEN {
            assert_eq!(full.insert(&i.to_string(), 0, 10), Admission::Fresh);
        }
        assert_eq!(full.insert("one more", 5, 10), Admission::Full);
        assert_eq!(full.insert("one more", 10, 20), Admission::Fresh);
        assert_eq!(full.len(), 1);
    }

    #[test]
    fn alertmanager_payloads_become_one_event_per_alert() {
        let payload = json!({
            "version": "4", "receiver": "operon", "groupKey": "{}:{}", "status": "firing",
            "alerts": [
                {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "web-1"}},
                {"status": "resolved", "labels": {"alertname": "DiskFull", "instance": "web-2"}}
            ]
        });
        let entries = entries_for("prom", "default", payload);
        assert_eq!(entries.len(), 2);
        let detail: Value = serde_json::from_str(entries[1].detail.as_deref().unwrap()).unwrap();
        assert_eq!(detail["labels"]["instance"], "web-2");
        assert_eq!(detail["status"], "resolved");
        assert_eq!(detail["receiver"], "operon");
        assert_eq!(
            entries[0].detail_type.as_deref(),
            Some("Alertmanager Alert")
        );
    }

    #[test]
    fn other_json_becomes_one_generic_event() {
        let entries = entries_for("ci", "ops", json!({"alerts": "not a list"}));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].detail_type.as_deref(), Some("Webhook Received"));
        assert_eq!(entries[0].event_bus_name.as_deref(), Some("ops"));
    }
}
