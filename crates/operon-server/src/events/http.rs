//! HTTP API of the event bus: PutEvents, buses, rules (with `test`), the
//! live tail, dead letters, inbound-webhook management, archives, replays.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use operon_api::events as api;
use operon_pattern::{Matcher, Pattern, Scratch};
use serde::Deserialize;
use serde_json::Value;

use super::envelope::PutEntry;
use super::put_events::{EntryOutcome, RedriveRequest};
use super::rules::{self, PutRule};
use super::targets::TargetSpec;
use crate::AppState;
use crate::access::Ctx;
use crate::error::{ApiError, ApiResult};

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
        .route(
            "/v1/webhooks",
            get(super::inbound::list).post(super::inbound::create),
        )
        .route(
            "/v1/webhooks/{name}",
            axum::routing::delete(super::inbound::delete),
        )
        .route(
            "/v1/archives",
            get(super::replay::list_archives).post(super::replay::create_archive),
        )
        .route(
            "/v1/archives/{name}",
            axum::routing::delete(super::replay::delete_archive),
        )
        .route(
            "/v1/replays",
            get(super::replay::list_replays).post(super::replay::start_replay),
        )
        .route("/v1/replays/{name}", get(super::replay::describe_replay))
}

/// Routes authenticated otherwise (inbound webhooks carry an HMAC signature).
pub fn public() -> Router<Arc<AppState>> {
    Router::new().route("/v1/hooks/{name}", post(super::inbound::receive))
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

/// Server-sent events: every event accepted on the bus from now on that
/// matches the optional pattern (`data:` is the envelope).
async fn tail(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    Query(query): Query<TailQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    if !state.events.bus_exists(&bus) {
        return Err(ApiError::not_found(format!("no bus named {bus}")));
    }
    let filter = match query.pattern.as_deref() {
        None => None,
        Some(text) => {
            let pattern = Pattern::parse(text).map_err(|e| ApiError::invalid(e.to_string()))?;
            let mut matcher = Matcher::new();
            matcher.add("tail".to_string(), &pattern);
            Some(matcher)
        }
    };
    let receiver = state.events.tail.subscribe();
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
