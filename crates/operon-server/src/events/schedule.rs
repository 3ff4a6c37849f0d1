//! The scheduler: rules with a schedule expression put a `Scheduled Event`
//! to their own targets when due.
//!
//! Time comes from an injectable [`Clock`], so tests run minutes of
//! `rate(1 minute)` in milliseconds. Each rule remembers when it last fired
//! (`last_fired_at`, in the store). On every tick a rule whose next firing
//! after its last one (or after its creation) is due fires *once*, and its
//! next firing is computed from now: a schedule that came due several times
//! while the server was down fires once on start, not once per missed tick.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use operon_schedule::Schedule;
use operon_store::{NewDelivery, NewEvent};
#[cfg(test)]
use serde_json::json;
use tokio::sync::Notify;

use super::CompiledRule;
use super::envelope::{self, PutEntry};
use crate::AppState;
use crate::coordination::Topic;

/// `source` and `detail-type` of scheduled events.
pub const SOURCE: &str = "operon.events";
pub const DETAIL_TYPE: &str = "Scheduled Event";
/// Longest sleep between ticks (rules changed meanwhile also wake the loop).
const MAX_SLEEP_MS: i64 = 60_000;
/// The lease of the one process that fires schedules.
const SCHEDULER_LEASE: &str = "events.scheduler";

/// Where the scheduler gets the time.
pub trait Clock: Send + Sync {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
    /// Resolves once `now_ms() >= at` (or earlier; callers re-check).
    fn sleep_until(
        &self,
        at: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::now_millis()
    }

    fn sleep_until(
        &self,
        at: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let wait = (at - self.now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to (tests).
#[derive(Default)]
pub struct ManualClock {
    now: std::sync::atomic::AtomicI64,
    moved: Notify,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Arc<ManualClock> {
        let clock = ManualClock::default();
        clock.now.store(now_ms, std::sync::atomic::Ordering::SeqCst);
        Arc::new(clock)
    }

    pub fn advance(&self, by: Duration) {
        self.now
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn sleep_until(
        &self,
        at: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            while self.now_ms() < at {
                let moved = self.moved.notified();
                if self.now_ms() >= at {
                    break;
                }
                moved.await;
            }
        })
    }
}

/// Check a schedule expression and time zone (rule validation).
pub fn check(expr: &str, timezone: Option<&str>) -> Result<(), String> {
    Schedule::parse(expr, timezone)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Wake the scheduler (a rule was put, deleted, enabled or disabled).
pub fn changed(state: &AppState) {
    state.coordination.notify(Topic::Rules);
}

/// The scheduler loop; runs for the life of the server.
pub async fn run(state: Arc<AppState>, clock: Arc<dyn Clock>) {
    let coordination = &state.coordination;
    let mut rules_changed = coordination.subscribe(Topic::Rules);
    loop {
        let now = clock.now_ms();
        // One scheduler fires: the holder of the lease, renewed every pass
        // (passes are at most MAX_SLEEP_MS apart).
        let held = coordination
            .backend
            .try_lease(
                SCHEDULER_LEASE,
                &coordination.process,
                3 * MAX_SLEEP_MS,
                now,
            )
            .is_some();
        let next = if held { tick(&state, now).await } else { None };
        let until = next.unwrap_or(now + MAX_SLEEP_MS).min(now + MAX_SLEEP_MS);
        tokio::select! {
            _ = clock.sleep_until(until) => {}
            _ = rules_changed.notified() => {}
        }
    }
}

/// Fire every due schedule once; return when the next one is due.
pub async fn tick(state: &AppState, now: i64) -> Option<i64> {
    let mut earliest: Option<i64> = None;
    for rule in state.events.rules() {
        let (Some(expr), true) = (rule.rule.schedule.as_deref(), rule.rule.enabled) else {
            continue;
        };
        let schedule = match Schedule::parse(expr, rule.rule.timezone.as_deref()) {
            Ok(schedule) => schedule,
            Err(e) => {
                tracing::error!(rule = %rule.rule.name, error = %e, "bad stored schedule");
                continue;
            }
        };
        let created = utc(rule.rule.created_at);
        let last = rule.rule.last_fired_at.map(utc);
        let mut next = schedule
            .next_since(created, utc(now))
            .map(|t| t.timestamp_millis());
        if let Some(occurrence) = schedule.due(last, created, utc(now))
            && let Err(e) = fire(state, &rule, occurrence.timestamp_millis()).await
        {
            tracing::error!(rule = %rule.rule.name, error = %e, "firing a schedule failed; will retry");
            next = Some(now + 1000);
        }
        if let Some(next) = next {
            earliest = Some(earliest.map_or(next, |e: i64| e.min(next)));
        }
    }
    earliest
}

/// Put one scheduled event straight to the rule's targets and record the
/// firing (the occurrence's time, which `Schedule::due` compares against).
async fn fire(state: &AppState, rule: &CompiledRule, now: i64) -> Result<(), String> {
    let arn = super::delivery::context(rule, now).rule_arn;
    let entry = PutEntry {
        source: Some(SOURCE.into()),
        detail_type: Some(DETAIL_TYPE.into()),
        detail: Some("{}".into()),
        resources: vec![arn],
        time: Some(envelope::rfc3339(now)),
        event_bus_name: Some(rule.rule.bus.clone()),
    };
    let mut env = envelope::envelope(&entry, now).map_err(|e| e.message)?;
    // One id per rule and occurrence: if a crash came between writing the
    // event and recording the firing, the retry finds the event and only
    // records the firing, so an occurrence is never put twice.
    env.id = envelope::derived_event_id(&format!("schedule:{}:{now}", rule.rule.name));
    if let Some(map) = env.value.as_object_mut() {
        map.insert("id".into(), serde_json::Value::String(env.id.clone()));
    }
    let already = state
        .store
        .event_by_id_on_bus(&env.id, &rule.rule.bus)
        .await
        .map_err(|e| e.to_string())?;
    if already.is_some() {
        return state
            .store
            .set_rule_last_fired(&rule.rule.name, now)
            .await
            .map_err(|e| e.to_string());
    }
    let body = env.text();
    let event = NewEvent {
        id: env.id.clone(),
        bus: env.bus.clone(),
        body: body.clone(),
        // Deliveries age by the wall clock (the scheduler's may be a test's).
        ingested_at: crate::now_millis(),
        deliveries: rule
            .targets
            .iter()
            .map(|t| NewDelivery {
                id: crate::auth::new_id("d-"),
                rule: rule.rule.name.clone(),
                target_id: t.id.clone(),
            })
            .collect(),
    };
    state.events.writer.write(vec![event], None).await?;
    state
        .store
        .set_rule_last_fired(&rule.rule.name, now)
        .await
        .map_err(|e| e.to_string())?;
    let mut updated = rule.rule.clone();
    updated.last_fired_at = Some(now);
    let compiled = state.events.compile_rule(updated)?;
    state.events.install(compiled);
    super::wake_deliveries(state);
    let _ = state.events.tail.send(super::TailEvent {
        bus: env.bus,
        body: Arc::from(body.as_str()),
    });
    tracing::info!(rule = %rule.rule.name, event_id = %env.id, "schedule fired");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use operon_store::Rule;

    /// 2020-01-01T00:00:30Z: in the past, so deliveries are due at once.
    const T0: i64 = 1_577_836_830_000;

    #[test]
    fn rule_validation_reports_the_library_error() {
        assert!(check("rate(1 minute)", None).is_ok());
        assert!(check("cron(0 12 ? * 6#3 *)", Some("Europe/Berlin")).is_ok());
        let err = check("rate(1 minutes)", None).unwrap_err();
        assert!(err.contains("singular"), "{err}");
        assert!(check("cron(0 12 * * * *)", None).is_err());
        assert!(check("rate(1 hour)", Some("Mars/Olympus")).is_err());
    }

    async fn scheduled_events(state: &AppState) -> usize {
        state
            .store
            .events_between("default", 0, i64::MAX, 0, 10_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.body.contains(DETAIL_TYPE))
            .count()
    }

    async fn wait_count(state: &AppState, want: usize) {
        for _ in 0..200 {
            if scheduled_events(state).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "expected {want} scheduled events, have {}",
            scheduled_events(state).await
        );
    }

    async fn start(dir: &std::path::Path, clock: Arc<ManualClock>) -> crate::Server {
        let config = crate::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.to_path_buf());
        crate::start_with_clock(config, clock).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_occurrence_fired_again_after_a_crash_is_put_once() {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), ManualClock::new(T0)).await;
        let state = server.state.clone();
        let rule = Rule {
            name: "nightly".into(),
            bus: "default".into(),
            description: None,
            pattern: None,
            // Never due at T0 on its own: the test fires it by hand.
            schedule: Some("cron(0 3 * * ? 2100)".into()),
            timezone: None,
            enabled: true,
            targets: json!([{"Id": "log", "Kind": "log"}]),
            created_at: T0,
            updated_at: T0,
            last_fired_at: None,
            author: None,
        };
        let compiled = state.events.compile_rule(rule.clone()).unwrap();
        state.store.put_rule(&rule).await.unwrap();
        // The event is written; a crash before last_fired is recorded means
        // the same occurrence is fired again after the restart.
        fire(&state, &compiled, T0 + 60_000).await.unwrap();
        state.store.set_rule_last_fired("nightly", 0).await.unwrap();
        fire(&state, &compiled, T0 + 60_000).await.unwrap();
        assert_eq!(scheduled_events(&state).await, 1);
        let stored = state.store.rule("nightly").await.unwrap().unwrap();
        assert_eq!(stored.last_fired_at, Some(T0 + 60_000));
        // The next occurrence is a new event.
        fire(&state, &compiled, T0 + 120_000).await.unwrap();
        assert_eq!(scheduled_events(&state).await, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_schedule_fires_each_minute_and_once_after_downtime() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let server = start(dir.path(), clock.clone()).await;
        let state = server.state.clone();
        let rule = Rule {
            name: "every-minute".into(),
            bus: "default".into(),
            description: None,
            pattern: None,
            schedule: Some("rate(1 minute)".into()),
            timezone: None,
            enabled: true,
            targets: json!([{"Id": "log", "Kind": "log"}]),
            created_at: T0,
            updated_at: T0,
            last_fired_at: None,
            author: None,
        };
        state.store.put_rule(&rule).await.unwrap();
        state
            .events
            .install(state.events.compile_rule(rule).unwrap());
        changed(&state);
        // A rate fires at creation, then every period after it.
        wait_count(&state, 1).await;
        clock.advance(Duration::from_secs(59));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(scheduled_events(&state).await, 1, "not due 59 s later");
        clock.advance(Duration::from_secs(1));
        wait_count(&state, 2).await;
        // Each scheduled event went to the rule's target.
        for _ in 0..200 {
            if state.store.count_pending_deliveries().await.unwrap() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(state.store.count_pending_deliveries().await.unwrap(), 0);
        assert!(
            state
                .store
                .list_dead_letters(None, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Down for ten and a half minutes: one firing on start, not ten,
        // for the latest missed occurrence (on the grid from creation).
        server.run_until(async {}).await.unwrap();
        drop(state);
        clock.advance(Duration::from_secs(630));
        let server = start(dir.path(), clock.clone()).await;
        let state = server.state.clone();
        wait_count(&state, 3).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(scheduled_events(&state).await, 3);
        let rule = state.store.rule("every-minute").await.unwrap().unwrap();
        assert_eq!(rule.last_fired_at, Some(T0 + 11 * 60_000));
        // The missed firing carried the latest missed occurrence's time, and
        // the grid continues from creation.
        clock.advance(Duration::from_secs(60));
        wait_count(&state, 4).await;
    }
}
