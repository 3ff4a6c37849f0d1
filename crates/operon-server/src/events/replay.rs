//! Archives, replays and event retention.
//!
//! Every accepted event is already stored, so an archive is a *selection*
//! of the stored events of its bus: those accepted since the archive was
//! created that match its optional pattern. Retention follows the archives:
//! a bus keeps its events as long as its longest-lived archive needs them
//! (forever if one has no retention), and one day when it has none. Events
//! still referenced by a pending delivery or a dead letter are always kept.
//!
//! A replay re-sends the archived events of a time window to the bus's
//! rules (all, or the named ones) as new events carrying `replay-name`, with
//! new deliveries. Replays run in the background; a replay interrupted by a
//! restart is marked failed rather than resumed (resuming could deliver a
//! window twice).

use operon_store::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use operon_pattern::{Matcher, Pattern, Scratch};
use operon_store::{Archive, Replay};
use serde::Deserialize;
use serde_json::{Value, json};

use super::check_name;
use super::envelope::{self, Envelope};
use crate::access::{Ctx, authorize};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, now_millis};

const DAY_MS: i64 = 86_400_000;
/// The longest archive retention, a hundred years.
const MAX_RETENTION_DAYS: i64 = 36_500;
/// Retention of a bus without archives.
const DEFAULT_RETENTION_MS: i64 = DAY_MS;
const REPLAY_PAGE: i64 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateArchive {
    name: String,
    #[serde(default)]
    bus: Option<String>,
    #[serde(default)]
    pattern: Option<Value>,
    #[serde(default)]
    retention_days: Option<i64>,
}

fn archive_view(a: &Archive) -> Value {
    let mut v = json!(a);
    v["pattern"] = a
        .pattern
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null);
    v
}

pub async fn create_archive(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateArchive>,
) -> ApiResult<Json<Value>> {
    check_name("archive", &body.name)?;
    authorize(
        &state,
        &principal,
        "archives:Create",
        &format!("archive/{}", body.name),
    )
    .await?;
    let bus = state.events.require_bus(body.bus)?;
    let pattern = super::pattern_text(body.pattern);
    if let Some(p) = &pattern {
        Pattern::parse(p).map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    if let Some(days) = body.retention_days
        && !(1..=MAX_RETENTION_DAYS).contains(&days)
    {
        return Err(ApiError::invalid(format!(
            "retention_days must be between 1 and {MAX_RETENTION_DAYS}, got {days} (omit it to keep events forever)"
        )));
    }
    let archive = Archive {
        name: body.name,
        bus,
        pattern,
        retention_days: body.retention_days,
        created_at: now_millis(),
    };
    if !state.store.create_archive(&archive).await? {
        return Err(ApiError::conflict(format!(
            "archive {} already exists",
            archive.name
        )));
    }
    Ok(Json(archive_view(&archive)))
}

pub async fn list_archives(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let archives = state.store.list_archives().await?;
    Ok(Json(Value::Array(
        archives.iter().map(archive_view).collect(),
    )))
}

pub async fn delete_archive(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if !state.store.delete_archive(&name).await? {
        return Err(ApiError::not_found(format!("no archive named {name}")));
    }
    Ok(Json(json!({"deleted": name})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartReplay {
    name: String,
    archive: String,
    /// RFC 3339 start of the window (inclusive).
    from: String,
    /// RFC 3339 end of the window (inclusive).
    to: String,
    #[serde(default)]
    rules: Vec<String>,
}

pub async fn start_replay(
    Ctx { state, principal }: Ctx,
    Json(body): Json<StartReplay>,
) -> ApiResult<Json<Value>> {
    check_name("replay", &body.name)?;
    authorize(
        &state,
        &principal,
        "replays:Start",
        &format!("replay/{}", body.name),
    )
    .await?;
    let archive = state
        .store
        .archive(&body.archive)
        .await?
        .ok_or_else(|| ApiError::invalid(format!("no archive named {}", body.archive)))?;
    // A replay puts events on the archive's bus again, where its rules act
    // on them: whoever starts it must be allowed to put events there.
    authorize(
        &state,
        &principal,
        "events:Put",
        &format!("bus/{}", archive.bus),
    )
    .await?;
    let from_ms =
        envelope::parse_time_ms(&body.from).map_err(|e| ApiError::invalid(format!("from: {e}")))?;
    let to_ms =
        envelope::parse_time_ms(&body.to).map_err(|e| ApiError::invalid(format!("to: {e}")))?;
    if from_ms > to_ms {
        return Err(ApiError::invalid("from must not be after to"));
    }
    for rule in &body.rules {
        match state.events.rule(rule) {
            Some(r) if r.rule.bus == archive.bus => {}
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "rule {rule} is not on bus {}",
                    archive.bus
                )));
            }
            None => return Err(ApiError::invalid(format!("no rule named {rule}"))),
        }
    }
    let replay = Replay {
        name: body.name,
        archive: archive.name.clone(),
        from_ms,
        to_ms,
        rules: body.rules,
        state: "running".into(),
        events_replayed: 0,
        started_at: now_millis(),
        finished_at: None,
        error: None,
    };
    if !state.store.create_replay(&replay).await? {
        return Err(ApiError::conflict(format!(
            "replay {} already exists",
            replay.name
        )));
    }
    let view = json!(replay);
    tokio::spawn(run_replay(state.clone(), archive, replay));
    Ok(Json(view))
}

pub async fn list_replays(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.store.list_replays().await?)))
}

pub async fn describe_replay(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let replay = state
        .store
        .replay(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no replay named {name}")))?;
    Ok(Json(json!(replay)))
}

async fn run_replay(state: Arc<AppState>, archive: Archive, replay: Replay) {
    let result = replay_window(&state, &archive, &replay).await;
    let (status, count, error) = match result {
        Ok(count) => ("completed", count, None),
        Err((count, e)) => ("failed", count, Some(e)),
    };
    if let Err(e) = state
        .store
        .update_replay(
            &replay.name,
            status,
            count,
            Some(now_millis()),
            error.as_deref(),
        )
        .await
    {
        tracing::error!(replay = %replay.name, error = %e, "recording the end of a replay failed");
    }
}

async fn replay_window(
    state: &AppState,
    archive: &Archive,
    replay: &Replay,
) -> Result<i64, (i64, String)> {
    let filter = match archive.pattern.as_deref() {
        None => None,
        Some(p) => {
            let mut m = Matcher::new();
            m.add_json("archive".to_string(), p)
                .map_err(|e| (0, e.to_string()))?;
            Some(m)
        }
    };
    let only = (!replay.rules.is_empty()).then_some(replay.rules.as_slice());
    let from = replay.from_ms.max(archive.created_at);
    let mut scratch = Scratch::default();
    let mut after = 0;
    let mut count = 0i64;
    loop {
        let page = state
            .store
            .events_between(&archive.bus, from, replay.to_ms, after, REPLAY_PAGE)
            .await
            .map_err(|e| (count, e.to_string()))?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = last.seq;
        let mut envelopes = Vec::new();
        for event in page {
            let Ok(value) = serde_json::from_str::<Value>(&event.body) else {
                continue;
            };
            if value.get("replay-name").is_some() {
                continue;
            }
            let selected = filter.as_ref().is_none_or(|m| {
                m.matches_with(&event.body, &mut scratch)
                    .is_ok_and(|found| !found.is_empty())
            });
            if !selected {
                continue;
            }
            let Some(body) = envelope::with_replay_name(&event.body, &replay.name) else {
                continue;
            };
            let Ok(value) = serde_json::from_str(&body) else {
                continue;
            };
            envelopes.push(Envelope {
                id: event.id,
                bus: event.bus,
                value,
            });
        }
        let n = envelopes.len() as i64;
        super::accept_for_rules(state, envelopes, only, None)
            .await
            .map_err(|e| (count, e.message))?;
        count += n;
        let _ = state
            .store
            .update_replay(&replay.name, "running", count, None, None)
            .await;
    }
}

/// Fail replays a restart interrupted, then prune expired events hourly.
pub async fn retention_loop(state: Arc<AppState>) {
    match state.store.list_replays().await {
        Ok(replays) => {
            for r in replays.into_iter().filter(|r| r.state == "running") {
                let _ = state
                    .store
                    .update_replay(
                        &r.name,
                        "failed",
                        r.events_replayed,
                        Some(now_millis()),
                        Some("interrupted by a server restart; start a new replay"),
                    )
                    .await;
            }
        }
        Err(e) => tracing::error!(error = %e, "reading replays failed"),
    }
    loop {
        if let Err(e) = prune(&state).await {
            tracing::error!(error = %e, "pruning events failed");
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn prune(state: &AppState) -> Result<(), operon_store::StoreError> {
    let archives = state.store.list_archives().await?;
    let now = now_millis();
    for bus in state.store.list_buses().await? {
        let of_bus: Vec<&Archive> = archives.iter().filter(|a| a.bus == bus.name).collect();
        let keep_ms = if of_bus.is_empty() {
            Some(DEFAULT_RETENTION_MS)
        } else if of_bus.iter().any(|a| a.retention_days.is_none()) {
            None
        } else {
            of_bus
                .iter()
                .filter_map(|a| a.retention_days)
                .max()
                // Saturating: an archive stored before the limit must not wrap
                // into a negative window that prunes everything.
                .map(|d| d.saturating_mul(DAY_MS))
        };
        if let Some(keep) = keep_ms {
            let pruned = state
                .store
                .prune_events(&bus.name, now.saturating_sub(keep))
                .await?;
            if pruned > 0 {
                tracing::info!(bus = %bus.name, pruned, "pruned expired events");
            }
        }
    }
    Ok(())
}
