//! Inbound webhooks: signed HTTP requests from other systems become events.
//!
//! `POST /v1/hooks/{name}` needs no bearer token; it needs the headers
//! `x-operon-timestamp` (Unix seconds, within 5 minutes) and
//! `x-operon-signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
//! A JSON body becomes one event (`operon.webhooks`, `Webhook Received`,
//! detail `{"webhook", "payload"}`); an Alertmanager notification
//! (`{"version": "4", "alerts": [...]}`) becomes one `Alertmanager Alert`
//! event per alert, so a rule can start a runbook for each firing alert.

use operon_store::prelude::*;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use operon_store::InboundWebhook;
use serde::Deserialize;
use serde_json::{Value, json};

use super::check_name;
use super::envelope::{self, PutEntry};
use super::signing;
use crate::access::{Ctx, authorize};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, now_millis};

/// `source` of events made from webhook requests.
pub const SOURCE: &str = "operon.webhooks";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    name: String,
    #[serde(default)]
    bus: Option<String>,
    /// The shared secret; generated when absent.
    #[serde(default)]
    secret: Option<String>,
}

pub async fn create(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<Json<Value>> {
    check_name("webhook", &body.name)?;
    authorize(
        &state,
        &principal,
        "webhooks:Create",
        &format!("webhook/{}", body.name),
    )
    .await?;
    let bus = state.events.require_bus(body.bus)?;
    let secret = match body.secret {
        Some(s) if s.len() < 16 => {
            return Err(ApiError::invalid(
                "a webhook secret must be at least 16 characters",
            ));
        }
        Some(s) => s,
        None => crate::auth::new_secret("owh_"),
    };
    let hook = InboundWebhook {
        name: body.name.clone(),
        bus,
        secret_sealed: state.events.key.seal(&secret),
        created_at: now_millis(),
    };
    if !state.store.create_webhook(&hook).await? {
        return Err(ApiError::conflict(format!(
            "webhook {} already exists",
            body.name
        )));
    }
    Ok(Json(json!({
        "name": hook.name,
        "bus": hook.bus,
        "path": format!("/v1/hooks/{}", hook.name),
        "secret": secret,
        "signature_header": signing::SIGNATURE_HEADER,
        "timestamp_header": signing::TIMESTAMP_HEADER,
    })))
}

pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let hooks: Vec<Value> = state
        .store
        .list_webhooks()
        .await?
        .into_iter()
        .map(|h| {
            let path = format!("/v1/hooks/{}", h.name);
            let mut v = json!(h);
            v["path"] = json!(path);
            v
        })
        .collect();
    Ok(Json(Value::Array(hooks)))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if !state.store.delete_webhook(&name).await? {
        return Err(ApiError::not_found(format!("no webhook named {name}")));
    }
    Ok(Json(json!({"deleted": name})))
}

/// A signed request from outside.
pub async fn receive(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let refused =
        || ApiError::unauthorized(format!("webhook {name}: unknown webhook or bad signature"));
    let Some(hook) = state.store.webhook(&name).await? else {
        return Err(refused());
    };
    let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
    let secret = state.events.key.open(&hook.secret_sealed).ok_or_else(|| {
        tracing::error!(webhook = %name, "the webhook secret cannot be opened with events.key");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the webhook's secret cannot be read; see the server log",
        )
    })?;
    if let Err(reason) = signing::verify(
        &secret,
        header(signing::TIMESTAMP_HEADER),
        header(signing::SIGNATURE_HEADER),
        &body,
        now_millis() / 1000,
    ) {
        tracing::warn!(webhook = %name, reason, "refused a webhook request");
        return Err(ApiError::unauthorized(format!("webhook {name}: {reason}")));
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("webhook {name}: the body is not JSON: {e}")))?;
    let entries = entries_for(&name, &hook.bus, payload);
    let now = now_millis();
    let mut envelopes = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let env = envelope::envelope(entry, now)
            .map_err(|e| ApiError::invalid(format!("webhook {name}: event {i}: {}", e.message)))?;
        envelopes.push(env);
    }
    let ids: Vec<String> = envelopes.iter().map(|e| e.id.clone()).collect();
    let record = operon_store::AuditEntry {
        actor: format!("webhook/{name}"),
        action: "events:Put".into(),
        resource: format!("bus/{}", hook.bus),
        outcome: "allowed".into(),
        detail: json!({"method": "POST", "path": format!("/v1/hooks/{name}"), "events": ids.len()}),
    };
    super::accept_audited(&state, envelopes, record).await?;
    Ok(Json(json!({"event_ids": ids})))
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
mod tests {
    use super::*;

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
