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

use std::sync::Arc;
use std::time::Duration;

use operon_pattern::{Matcher, Pattern, Scratch};
use operon_store::{Archive, Replay, Store};
use serde_json::Value;

use super::envelope::{self, Envelope};
use super::{EventBus, check_name};
use crate::access::{Principal, check_action};
use crate::audit::AuditLog;
use crate::service::{ServiceError, ServiceResult};
use crate::{AppState, now_millis};

const DAY_MS: i64 = 86_400_000;
/// The longest archive retention, a hundred years.
const MAX_RETENTION_DAYS: i64 = 36_500;
/// Retention of a bus without archives.
const DEFAULT_RETENTION_MS: i64 = DAY_MS;
const REPLAY_PAGE: i64 = 500;

/// An archive as given to [`ReplayService::create_archive`].
#[derive(Debug, Clone, Default)]
pub struct NewArchive {
    pub name: String,
    /// `default` when absent.
    pub bus: Option<String>,
    /// An event pattern as JSON text.
    pub pattern: Option<String>,
    /// Days to keep the archived events; forever when absent.
    pub retention_days: Option<i64>,
}

/// A replay as given to [`ReplayService::start`].
#[derive(Debug, Clone, Default)]
pub struct NewReplay {
    pub name: String,
    pub archive: String,
    /// RFC 3339 start of the window (inclusive).
    pub from: String,
    /// RFC 3339 end of the window (inclusive).
    pub to: String,
    /// Deliver only to these rules of the archive's bus; all when empty.
    pub rules: Vec<String>,
}

/// A replay recorded as running, with its archive: what
/// [`spawn_replay`] runs.
#[derive(Debug, Clone)]
pub struct StartedReplay {
    pub archive: Archive,
    pub replay: Replay,
}

/// The archives and replays of the event bus: the only code that creates
/// and deletes archives and starts replays. Typed in and out,
/// [`ServiceError`] on failure; the HTTP edge is `events/http.rs`.
pub struct ReplayService<'a> {
    pub(crate) store: &'a Store,
    pub(crate) audit: &'a AuditLog,
    pub(crate) events: &'a EventBus,
}

impl ReplayService<'_> {
    async fn authorize(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
    ) -> ServiceResult<()> {
        check_action(self.audit, principal, action, resource).await
    }

    /// Create an archive: its name, `archives:Create`, its bus, its pattern
    /// and its retention checked first.
    pub async fn create_archive(
        &self,
        principal: &Principal,
        new: NewArchive,
    ) -> ServiceResult<Archive> {
        check_name("archive", &new.name)?;
        self.authorize(
            principal,
            "archives:Create",
            &format!("archive/{}", new.name),
        )
        .await?;
        let bus = self.events.require_bus(new.bus)?;
        if let Some(p) = &new.pattern {
            Pattern::parse(p)
                .map_err(|e| ServiceError::invalid("InvalidPattern", e.to_string()))?;
        }
        if let Some(days) = new.retention_days
            && !(1..=MAX_RETENTION_DAYS).contains(&days)
        {
            return Err(ServiceError::invalid(
                "InvalidRetention",
                format!(
                    "retention_days must be between 1 and {MAX_RETENTION_DAYS}, got {days} (omit it to keep events forever)"
                ),
            ));
        }
        let archive = Archive {
            name: new.name,
            bus,
            pattern: new.pattern,
            retention_days: new.retention_days,
            created_at: now_millis(),
        };
        if !self.store.create_archive(&archive).await? {
            return Err(ServiceError::conflict(
                "ArchiveExists",
                format!("archive {} already exists", archive.name),
            ));
        }
        Ok(archive)
    }

    pub async fn list_archives(&self) -> ServiceResult<Vec<Archive>> {
        Ok(self.store.list_archives().await?)
    }

    /// Authorized by the catalogue (`archives:Delete` on `archive/NAME`).
    pub async fn delete_archive(&self, name: &str) -> ServiceResult<()> {
        if !self.store.delete_archive(name).await? {
            return Err(ServiceError::not_found(
                "NoSuchArchive",
                format!("no archive named {name}"),
            ));
        }
        Ok(())
    }

    /// Check and record a replay as running: its name, `replays:Start`, its
    /// archive, `events:Put` on the archive's bus (a replay puts events there
    /// again, where its rules act on them), its window and its rules. The
    /// caller runs it ([`spawn_replay`]).
    pub async fn start(
        &self,
        principal: &Principal,
        new: NewReplay,
    ) -> ServiceResult<StartedReplay> {
        check_name("replay", &new.name)?;
        self.authorize(principal, "replays:Start", &format!("replay/{}", new.name))
            .await?;
        let archive = self.store.archive(&new.archive).await?.ok_or_else(|| {
            ServiceError::invalid("NoSuchArchive", format!("no archive named {}", new.archive))
        })?;
        self.authorize(principal, "events:Put", &format!("bus/{}", archive.bus))
            .await?;
        let from_ms = envelope::parse_time_ms(&new.from)
            .map_err(|e| ServiceError::invalid("InvalidTime", format!("from: {e}")))?;
        let to_ms = envelope::parse_time_ms(&new.to)
            .map_err(|e| ServiceError::invalid("InvalidTime", format!("to: {e}")))?;
        if from_ms > to_ms {
            return Err(ServiceError::invalid(
                "InvalidWindow",
                "from must not be after to",
            ));
        }
        for rule in &new.rules {
            match self.events.rule(rule) {
                Some(r) if r.rule.bus == archive.bus => {}
                Some(_) => {
                    return Err(ServiceError::invalid(
                        "RuleNotOnBus",
                        format!("rule {rule} is not on bus {}", archive.bus),
                    ));
                }
                None => {
                    return Err(ServiceError::invalid(
                        "NoSuchRule",
                        format!("no rule named {rule}"),
                    ));
                }
            }
        }
        let replay = Replay {
            name: new.name,
            archive: archive.name.clone(),
            from_ms,
            to_ms,
            rules: new.rules,
            state: "running".into(),
            events_replayed: 0,
            started_at: now_millis(),
            finished_at: None,
            error: None,
        };
        if !self.store.create_replay(&replay).await? {
            return Err(ServiceError::conflict(
                "ReplayExists",
                format!("replay {} already exists", replay.name),
            ));
        }
        Ok(StartedReplay { archive, replay })
    }

    pub async fn list_replays(&self) -> ServiceResult<Vec<Replay>> {
        Ok(self.store.list_replays().await?)
    }

    pub async fn get_replay(&self, name: &str) -> ServiceResult<Replay> {
        self.store.replay(name).await?.ok_or_else(|| {
            ServiceError::not_found("NoSuchReplay", format!("no replay named {name}"))
        })
    }
}

/// Run a started replay in the background; its row records the outcome.
pub fn spawn_replay(state: Arc<AppState>, started: StartedReplay) {
    tokio::spawn(run_replay(state, started.archive, started.replay));
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

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
