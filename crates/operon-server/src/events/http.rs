//! HTTP API of the event bus: PutEvents, buses, rules (with `test`), the
//! live tail, dead letters, inbound-webhook management, archives, replays.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use operon_api::events as api;
use operon_pattern::{Matcher, Pattern, Scratch};
use serde::Deserialize;
use serde_json::{Value, json};

use super::envelope::PutEntry;
use super::put_events::{EntryOutcome, RedriveRequest};
use super::rules::{self, PutRule};
use super::targets::TargetSpec;
use super::{inbound, replay, signing};
use crate::access::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::service::{ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// Routes needing a bearer token.
pub fn protected() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/events", post(put_events))
        .route("/v1/buses", get(list_buses).post(create_bus))
        .route("/v1/buses/{name}/tail", get(tail))
        .route("/v1/buses/{name}", axum::routing::delete(delete_bus))
        .route("/v1/rules", get(list_rules))
        .route(
            "/v1/rules/{name}",
            get(describe_rule).put(put_rule).delete(delete_rule),
        )
        .route("/v1/rules/{name}/enable", post(enable_rule))
        .route("/v1/rules/{name}/disable", post(disable_rule))
        .route("/v1/rules/{name}/test", post(test_rule))
        .route("/v1/dlq", get(list_dead_letters))
        .route("/v1/dlq/redrive", post(redrive))
        .route("/v1/dlq/{id}", get(show_dead_letter))
        .route("/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route("/v1/webhooks/{name}", axum::routing::delete(delete_webhook))
        .route("/v1/archives", get(list_archives).post(create_archive))
        .route("/v1/archives/{name}", axum::routing::delete(delete_archive))
        .route("/v1/replays", get(list_replays).post(start_replay))
        .route("/v1/replays/{name}", get(describe_replay))
}

/// Routes authenticated otherwise (inbound webhooks carry an HMAC signature).
pub fn public() -> Router<Arc<AppState>> {
    Router::new().route("/v1/hooks/{name}", post(receive))
}

// ----- PutEvents -------------------------------------------------------------

async fn put_events(
    Ctx { state, principal }: Ctx,
    Json(request): Json<api::PutEvents>,
) -> ApiResult<Json<api::PutEventsResult>> {
    let entries: Vec<PutEntry> = request.entries.into_iter().map(PutEntry::from).collect();
    let outcome = state.put_events().put(&principal, &entries).await?;
    let answers = outcome
        .entries
        .iter()
        .map(|entry| match entry {
            EntryOutcome::Accepted { event_id } => api::PutEventsResultEntry::Accepted {
                event_id: event_id.clone(),
            },
            EntryOutcome::Failed { code, message } => api::PutEventsResultEntry::Failed {
                error_code: code.to_string(),
                error_message: message.clone(),
            },
        })
        .collect();
    Ok(Json(api::PutEventsResult {
        failed_entry_count: outcome.failed() as u64,
        entries: answers,
    }))
}

// ----- Live tail -------------------------------------------------------------

#[derive(Deserialize)]
struct TailQuery {
    /// An event pattern, as JSON text.
    pattern: Option<String>,
}

/// `GET /v1/buses/{name}/tail`: the live tail ([`tail_feed`]).
async fn tail(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    Query(query): Query<TailQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // Authorized by the catalogue (events:Tail on bus/NAME).
    Ok(tail_feed(&state, &bus, query.pattern.as_deref())?)
}

/// The filter of a tail: `pattern` (JSON text) compiled by the rules'
/// own matcher, or `None` for every event. An unreadable pattern is
/// `InvalidPattern`, its message naming the fault.
pub(crate) fn tail_filter(pattern: Option<&str>) -> ServiceResult<Option<Matcher<String>>> {
    let Some(text) = pattern else {
        return Ok(None);
    };
    let pattern =
        Pattern::parse(text).map_err(|e| ServiceError::invalid("InvalidPattern", e.to_string()))?;
    let mut matcher = Matcher::new();
    matcher.add("tail".to_string(), &pattern);
    Ok(Some(matcher))
}

/// The live tail of `bus`, as server-sent events: every event accepted on
/// the bus from now on (subscribed before this returns) that matches the
/// optional `pattern` (`data:` is the envelope; `event: lagged` with the
/// number of events missed when the reader falls behind). The one feed of
/// the API's tail and the console's; both authorize `events:Tail` on
/// `bus/NAME` first.
pub(crate) fn tail_feed(
    state: &AppState,
    bus: &str,
    pattern: Option<&str>,
) -> ServiceResult<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>> {
    if !state.events.bus_exists(bus) {
        return Err(ServiceError::not_found(
            "NoSuchBus",
            format!("no bus named {bus}"),
        ));
    }
    let filter = tail_filter(pattern)?;
    let receiver = state.events.tail.subscribe();
    let bus = bus.to_string();
    let stream = futures_util::stream::unfold(
        (receiver, filter, Scratch::default()),
        move |(mut receiver, filter, mut scratch)| {
            let bus = bus.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) if event.bus != bus => continue,
                        Ok(event) => {
                            let wanted = filter.as_ref().is_none_or(|m| {
                                m.matches_with(&event.body, &mut scratch)
                                    .is_ok_and(|found| !found.is_empty())
                            });
                            if wanted {
                                let sse = Event::default().data(&*event.body);
                                return Some((Ok(sse), (receiver, filter, scratch)));
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let sse = Event::default().event("lagged").data(n.to_string());
                            return Some((Ok(sse), (receiver, filter, scratch)));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

// ----- Buses -----------------------------------------------------------------

async fn list_buses(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<api::Bus>>> {
    let buses = state.store.list_buses().await?;
    Ok(Json(
        buses
            .into_iter()
            .map(|b| api::Bus {
                name: b.name,
                created_at: b.created_at,
            })
            .collect(),
    ))
}

async fn create_bus(
    Ctx { state, principal }: Ctx,
    Json(body): Json<api::CreateBus>,
) -> ApiResult<Json<api::BusCreated>> {
    state.rules().create_bus(&principal, &body.name).await?;
    Ok(Json(api::BusCreated { name: body.name }))
}

async fn delete_bus(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<api::DeletedName>> {
    state.rules().delete_bus(&name).await?;
    Ok(Json(api::DeletedName { deleted: name }))
}

// ----- Rules -----------------------------------------------------------------

async fn list_rules(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<api::Rule>>> {
    let rules = state.rules().list();
    Ok(Json(rules.iter().map(|r| rules::view(r)).collect()))
}

async fn describe_rule(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<api::Rule>> {
    let rule = state.rules().get(&name)?;
    Ok(Json(rules::view(&rule)))
}

async fn put_rule(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<api::PutRule>,
) -> ApiResult<Json<api::Rule>> {
    let service = state.rules();
    let mut targets = Vec::with_capacity(body.targets.len());
    for (i, raw) in body.targets.into_iter().enumerate() {
        match serde_json::from_value::<TargetSpec>(raw) {
            Ok(spec) => targets.push(spec),
            Err(e) => {
                // Who may not put the rule learns nothing about its body.
                service.authorize_put(&principal, &name).await?;
                return Err(ApiError::invalid(format!("Targets[{i}]: {e}")));
            }
        }
    }
    let put = PutRule {
        name,
        bus: body.bus,
        description: body.description,
        pattern: super::pattern_text(body.pattern),
        schedule: body.schedule,
        timezone: body.timezone,
        enabled: body.enabled,
        targets,
    };
    let rule = service.put(&principal, put).await?;
    Ok(Json(rules::view(&rule)))
}

async fn delete_rule(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<api::DeletedName>> {
    state.rules().delete(&name).await?;
    Ok(Json(api::DeletedName { deleted: name }))
}

async fn enable_rule(
    state: State<Arc<AppState>>,
    name: Path<String>,
) -> ApiResult<Json<api::Rule>> {
    set_enabled(state, name, true).await
}

async fn disable_rule(
    state: State<Arc<AppState>>,
    name: Path<String>,
) -> ApiResult<Json<api::Rule>> {
    set_enabled(state, name, false).await
}

async fn set_enabled(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    enabled: bool,
) -> ApiResult<Json<api::Rule>> {
    // Authorized by the catalogue (rules:Enable / rules:Disable on rule/NAME).
    let rule = state.rules().set_enabled(&name, enabled).await?;
    Ok(Json(rules::view(&rule)))
}

/// Whether the rule matches the event, and what each target would receive.
async fn test_rule(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(body): Json<api::TestRule>,
) -> ApiResult<Json<api::RuleTestResult>> {
    let trial = state.rules().test(&name, &body.event)?;
    let targets = trial
        .targets
        .iter()
        .map(|t| api::RuleTestTarget {
            id: t.id.clone(),
            input: t.input.as_deref().map(|i| {
                serde_json::from_str::<Value>(i).unwrap_or_else(|_| Value::String(i.to_string()))
            }),
            delivered: t.delivered,
        })
        .collect();
    Ok(Json(api::RuleTestResult {
        rule: name,
        matches: trial.matches,
        targets,
    }))
}

// ----- Dead letters ------------------------------------------------------------

#[derive(Deserialize)]
struct DlqQuery {
    rule: Option<String>,
    limit: Option<i64>,
}

fn dead_letter_view(dl: operon_store::DeadLetter) -> api::DeadLetter {
    let event: Value = serde_json::from_str(&dl.event.body).unwrap_or(Value::Null);
    api::DeadLetter {
        id: dl.id,
        rule: dl.rule,
        target_id: dl.target_id,
        attempts: dl.attempts,
        last_error: dl.last_error,
        created_at: dl.created_at,
        failed_at: dl.failed_at,
        event_id: dl.event.id,
        event,
    }
}

async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    Query(query): Query<DlqQuery>,
) -> ApiResult<Json<Vec<api::DeadLetter>>> {
    let letters = state
        .dead_letters()
        .list(query.rule.as_deref(), query.limit)
        .await?;
    Ok(Json(letters.into_iter().map(dead_letter_view).collect()))
}

async fn show_dead_letter(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<api::DeadLetter>> {
    let letter = state.dead_letters().get(&id).await?;
    Ok(Json(dead_letter_view(letter)))
}

/// Move dead letters back to the outbox (same delivery ids, attempts reset).
async fn redrive(
    State(state): State<Arc<AppState>>,
    Json(body): Json<api::RedriveDeadLetters>,
) -> ApiResult<Json<api::Redriven>> {
    let done = state
        .dead_letters()
        .redrive(RedriveRequest {
            ids: body.ids,
            rule: body.rule,
            all: body.all,
        })
        .await?;
    Ok(Json(api::Redriven {
        redriven: done.redriven,
        not_found: done.not_found,
    }))
}

// ----- Archives and replays -------------------------------------------------------

fn archive_view(a: &operon_store::Archive) -> api::Archive {
    api::Archive {
        name: a.name.clone(),
        bus: a.bus.clone(),
        pattern: a
            .pattern
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok()),
        retention_days: a.retention_days,
        created_at: a.created_at,
    }
}

fn replay_view(r: operon_store::Replay) -> api::Replay {
    api::Replay {
        name: r.name,
        archive: r.archive,
        from_ms: r.from_ms,
        to_ms: r.to_ms,
        rules: r.rules,
        state: r.state,
        events_replayed: r.events_replayed,
        started_at: r.started_at,
        finished_at: r.finished_at,
        error: r.error,
    }
}

async fn create_archive(
    Ctx { state, principal }: Ctx,
    Json(body): Json<api::CreateArchive>,
) -> ApiResult<Json<api::Archive>> {
    let new = replay::NewArchive {
        name: body.name,
        bus: body.bus,
        pattern: super::pattern_text(body.pattern),
        retention_days: body.retention_days,
    };
    let archive = state.replays().create_archive(&principal, new).await?;
    Ok(Json(archive_view(&archive)))
}

async fn list_archives(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<api::Archive>>> {
    let archives = state.replays().list_archives().await?;
    Ok(Json(archives.iter().map(archive_view).collect()))
}

async fn delete_archive(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<api::DeletedName>> {
    state.replays().delete_archive(&name).await?;
    Ok(Json(api::DeletedName { deleted: name }))
}

async fn start_replay(
    Ctx { state, principal }: Ctx,
    Json(body): Json<api::StartReplay>,
) -> ApiResult<Json<api::Replay>> {
    let new = replay::NewReplay {
        name: body.name,
        archive: body.archive,
        from: body.from,
        to: body.to,
        rules: body.rules,
    };
    let started = state.replays().start(&principal, new).await?;
    let view = replay_view(started.replay.clone());
    replay::spawn_replay(state.clone(), started);
    Ok(Json(view))
}

async fn list_replays(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<api::Replay>>> {
    let replays = state.replays().list_replays().await?;
    Ok(Json(replays.into_iter().map(replay_view).collect()))
}

async fn describe_replay(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<api::Replay>> {
    Ok(Json(replay_view(state.replays().get_replay(&name).await?)))
}

// ----- Inbound webhooks -----------------------------------------------------------

async fn create_webhook(
    Ctx { state, principal }: Ctx,
    Json(body): Json<api::CreateWebhook>,
) -> ApiResult<Json<api::CreatedWebhook>> {
    let new = inbound::NewWebhook {
        name: body.name,
        bus: body.bus,
        secret: body.secret,
    };
    let (hook, secret) = state.webhooks().create(&principal, new).await?;
    Ok(Json(api::CreatedWebhook {
        path: format!("/v1/hooks/{}", hook.name),
        name: hook.name,
        bus: hook.bus,
        secret,
        signature_header: signing::SIGNATURE_HEADER.into(),
        timestamp_header: signing::TIMESTAMP_HEADER.into(),
    }))
}

async fn list_webhooks(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<api::Webhook>>> {
    let hooks = state
        .webhooks()
        .list()
        .await?
        .into_iter()
        .map(|h| api::Webhook {
            path: format!("/v1/hooks/{}", h.name),
            name: h.name,
            bus: h.bus,
            created_at: h.created_at,
        })
        .collect();
    Ok(Json(hooks))
}

async fn delete_webhook(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<api::DeletedName>> {
    state.webhooks().delete(&name).await?;
    Ok(Json(api::DeletedName { deleted: name }))
}

/// A signed request from outside.
async fn receive(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source = extensions
        .get::<ConnectInfo<crate::PeerAddr>>()
        .map(|c| c.0.0.ip());
    let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
    let request = inbound::SignedRequest {
        name: &name,
        timestamp: header(signing::TIMESTAMP_HEADER),
        signature: header(signing::SIGNATURE_HEADER),
        body: &body,
    };
    match state.webhooks().receive(request, now_millis()).await {
        Ok(inbound::Receipt::Accepted { event_ids }) => {
            Json(api::HookAccepted { event_ids }).into_response()
        }
        Ok(inbound::Receipt::Refused(refusal)) => {
            refuse(&state, &name, source, refusal.reason()).await
        }
        Ok(inbound::Receipt::Busy) => {
            too_many(&state, "too many webhook requests; try again later")
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Refuse a request: audited (within the source's rate, else counted into
/// its summary and answered 429), then one answer for every reason but a
/// replay.
async fn refuse(
    state: &AppState,
    name: &str,
    source: Option<std::net::IpAddr>,
    reason: &str,
) -> Response {
    if state.refusals.check(source, now_millis()) == crate::refusals::Verdict::Suppress {
        return too_many(
            state,
            "too many refused requests from this address; try again later",
        );
    }
    tracing::warn!(webhook = %name, reason, "refused a webhook request");
    let path = format!("/v1/hooks/{name}");
    let entry = operon_store::AuditEntry {
        actor: "anonymous".into(),
        action: "events:Put".into(),
        resource: format!("webhook/{name}"),
        outcome: "unauthenticated".into(),
        detail: json!({
            "method": "POST",
            "path": path,
            "reason": reason,
            "source": source.map(|ip| ip.to_string()),
        }),
    };
    if let Err(e) = state.audit.record(entry).await {
        tracing::error!(error = %e, "a refused webhook request could not be audited");
    }
    if reason.starts_with("replayed") {
        return ApiError::conflict(format!(
            "webhook {name}: this signed request was already received"
        ))
        .into_response();
    }
    ApiError::unauthorized(format!("webhook {name}: unknown webhook or bad signature"))
        .into_response()
}

fn too_many(state: &AppState, message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message).into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(state.refusals.retry_after_secs()),
    );
    response
}
