//! The event bus: events in, rules matched, deliveries out.
//!
//! Flow: an entry is checked and wrapped in the EventBridge envelope
//! ([`envelope`]), matched against every enabled rule of its bus at once by
//! the bus's compiled [`operon_pattern::Matcher`], and persisted *together
//! with* one outbox row per matching (rule, target) by the group-commit
//! [`writer`]. Only then is it acknowledged. The [`delivery`] workers claim
//! due outbox rows, perform them ([`targets`]), and record each outcome:
//! done, retry later (exponential back-off with jitter), or dead letter.
//!
//! What lives in memory (compiled rules per bus, the tail broadcast) is
//! rebuilt from the store at start; the store is the record.

pub mod causation;
pub mod delivery;
pub mod envelope;
pub mod http;
pub mod inbound;
pub mod put_events;
pub mod replay;
pub mod rules;
pub mod schedule;
pub mod signing;
pub mod targets;
#[cfg(test)]
pub(crate) mod test_fixture;
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use operon_pattern::{Matcher, Pattern, Scratch};
use operon_store::{NewDelivery, NewEvent, Rule, Store};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::AppState;
use crate::coordination::Topic;
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use envelope::{Envelope, PutEntry};
use signing::SealKey;
use targets::{CompiledTarget, TargetSpec};

/// File in the data directory holding the key that seals webhook secrets.
pub const SEAL_KEY_FILE: &str = "events.key";

/// A rule with its targets compiled.
#[derive(Debug)]
pub struct CompiledRule {
    pub rule: Rule,
    pub targets: Vec<CompiledTarget>,
}

#[derive(Default)]
struct Rules {
    buses: HashSet<String>,
    /// Enabled pattern rules of each bus, compiled into one matcher.
    matchers: HashMap<String, Matcher<String>>,
    by_name: HashMap<String, Arc<CompiledRule>>,
}

/// An accepted event, for live tails.
#[derive(Debug, Clone)]
pub struct TailEvent {
    pub bus: String,
    pub body: Arc<str>,
}

/// The in-memory side of the bus, owned by [`AppState`].
pub struct EventBus {
    pub(crate) key: SealKey,
    rules: RwLock<Rules>,
    pub(crate) writer: writer::EventWriter,
    pub(crate) tail: broadcast::Sender<TailEvent>,
    /// The webhook targets' client, under the egress policy.
    pub(crate) http: crate::egress::client::Outbound,
    /// Signatures of inbound webhook requests accepted within the clock
    /// skew window: a replay is refused.
    pub(crate) seen_signatures: inbound::SeenSignatures,
}

impl EventBus {
    /// Load buses and rules from the store and compile them.
    pub async fn load(
        store: &Store,
        key: SealKey,
        audit: crate::audit::AuditLog,
        http: crate::egress::client::Outbound,
    ) -> Result<EventBus, String> {
        let bus = EventBus {
            key,
            rules: RwLock::new(Rules::default()),
            writer: writer::EventWriter::spawn(store.clone(), audit),
            tail: broadcast::channel(4096).0,
            http,
            seen_signatures: inbound::SeenSignatures::default(),
        };
        bus.reload(store).await?;
        Ok(bus)
    }

    /// Replace the buses and rules with the store's, compiled.
    pub(crate) async fn reload(&self, store: &Store) -> Result<(), String> {
        let buses = store.list_buses().await.map_err(|e| e.to_string())?;
        let stored = store.list_rules().await.map_err(|e| e.to_string())?;
        let mut fresh = Rules::default();
        fresh.buses.extend(buses.into_iter().map(|b| b.name));
        for rule in stored {
            let name = rule.name.clone();
            match self.compile_rule(rule) {
                Ok(compiled) => {
                    install_into(&mut fresh, compiled);
                }
                Err(e) => {
                    tracing::error!(rule = %name, error = %e, "stored rule does not compile; skipped")
                }
            }
        }
        *self.write_rules() = fresh;
        Ok(())
    }

    fn read_rules(&self) -> std::sync::RwLockReadGuard<'_, Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_rules(&self) -> std::sync::RwLockWriteGuard<'_, Rules> {
        self.rules.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn bus_exists(&self, name: &str) -> bool {
        self.read_rules().buses.contains(name)
    }

    /// The bus a request names (`default` when it names none), if it exists.
    pub(crate) fn require_bus(&self, bus: Option<String>) -> ServiceResult<String> {
        let bus = bus.unwrap_or_else(|| envelope::DEFAULT_BUS.to_string());
        if !self.bus_exists(&bus) {
            return Err(ServiceError::invalid(
                "ValidationError",
                format!("bus {bus} does not exist"),
            ));
        }
        Ok(bus)
    }

    pub(crate) fn add_bus(&self, name: &str) {
        self.write_rules().buses.insert(name.to_string());
    }

    pub(crate) fn remove_bus(&self, name: &str) {
        let mut rules = self.write_rules();
        rules.buses.remove(name);
        rules.matchers.remove(name);
    }

    /// Compile a stored rule (its pattern and every target).
    pub fn compile_rule(&self, rule: Rule) -> Result<CompiledRule, String> {
        if let Some(pattern) = &rule.pattern {
            Pattern::parse(pattern).map_err(|e| e.to_string())?;
        }
        let specs: Vec<TargetSpec> =
            serde_json::from_value(rule.targets.clone()).map_err(|e| format!("Targets: {e}"))?;
        let targets = specs
            .iter()
            .map(|s| targets::compile(s, &self.key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompiledRule { rule, targets })
    }

    /// Make a compiled rule live (replacing one of the same name).
    pub fn install(&self, compiled: CompiledRule) -> Arc<CompiledRule> {
        install_into(&mut self.write_rules(), compiled)
    }

    pub fn uninstall(&self, name: &str) {
        let mut rules = self.write_rules();
        if let Some(old) = rules.by_name.remove(name)
            && let Some(m) = rules.matchers.get_mut(&old.rule.bus)
        {
            m.remove(&name.to_string());
        }
    }

    pub fn rule(&self, name: &str) -> Option<Arc<CompiledRule>> {
        self.read_rules().by_name.get(name).cloned()
    }

    pub fn rules(&self) -> Vec<Arc<CompiledRule>> {
        self.read_rules().by_name.values().cloned().collect()
    }

    /// Names of the enabled rules of `bus` whose pattern `body` matches.
    pub fn matching_rules(&self, bus: &str, body: &str, scratch: &mut Scratch) -> Vec<String> {
        let rules = self.read_rules();
        let Some(matcher) = rules.matchers.get(bus) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        if matcher
            .for_each_match(body, scratch, |name| names.push(name.clone()))
            .is_err()
        {
            return Vec::new();
        }
        names
    }

    /// The outbox rows for an event matched by `rules` (restricted to
    /// `only` when given, as replays do).
    fn deliveries_for(&self, rule_names: &[String], only: Option<&[String]>) -> Vec<NewDelivery> {
        let rules = self.read_rules();
        let mut out = Vec::new();
        for name in rule_names {
            if only.is_some_and(|only| !only.contains(name)) {
                continue;
            }
            let Some(rule) = rules.by_name.get(name) else {
                continue;
            };
            for target in &rule.targets {
                out.push(NewDelivery {
                    id: crate::auth::new_id("d-"),
                    rule: name.clone(),
                    target_id: target.id.clone(),
                });
            }
        }
        out
    }
}

/// Match, persist (with deliveries) and announce checked envelopes. Returns
/// once everything is committed.
pub async fn accept(state: &AppState, envelopes: Vec<Envelope>) -> ServiceResult<()> {
    accept_for_rules(state, envelopes, None, None).await
}

/// Like [`accept`], delivering only to the named rules when `only` is given.
pub async fn accept_for_rules(
    state: &AppState,
    envelopes: Vec<Envelope>,
    only: Option<&[String]>,
    audit: Option<operon_store::AuditEntry>,
) -> ServiceResult<()> {
    state
        .events
        .accept(&state.coordination, envelopes, only, audit)
        .await
}

impl EventBus {
    /// Match, persist (with deliveries and the optional audit record, in one
    /// transaction) and announce checked envelopes; deliver only to the
    /// named rules when `only` is given.
    pub(crate) async fn accept(
        &self,
        coordination: &crate::coordination::Coordination,
        envelopes: Vec<Envelope>,
        only: Option<&[String]>,
        audit: Option<operon_store::AuditEntry>,
    ) -> ServiceResult<()> {
        let now = crate::now_millis();
        let mut scratch = Scratch::default();
        let mut batch = Vec::with_capacity(envelopes.len());
        let mut any_delivery = false;
        for env in &envelopes {
            let body = env.text();
            let names = self.matching_rules(&env.bus, &body, &mut scratch);
            let deliveries = self.deliveries_for(&names, only);
            any_delivery |= !deliveries.is_empty();
            batch.push(NewEvent {
                id: env.id.clone(),
                bus: env.bus.clone(),
                body,
                ingested_at: now,
                deliveries,
            });
        }
        let tail: Vec<TailEvent> = batch
            .iter()
            .map(|e| TailEvent {
                bus: e.bus.clone(),
                body: Arc::from(e.body.as_str()),
            })
            .collect();
        self.writer
            .write(batch, audit)
            .await
            .map_err(|e| ServiceError::new(ErrorKind::Internal, "InternalError", e))?;
        if any_delivery {
            coordination.notify(Topic::Deliveries);
        }
        for event in tail {
            let _ = self.tail.send(event);
        }
        Ok(())
    }
}

/// Start the background parts: delivery workers, the scheduler, event
/// retention, and the listener that puts server happenings on the bus.
pub fn spawn(
    state: &Arc<AppState>,
    clock: Arc<dyn schedule::Clock>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(delivery::run(state.clone())),
        tokio::spawn(forward_happenings(
            state.clone(),
            state.happenings.subscribe(),
        )),
        tokio::spawn(replay::retention_loop(state.clone())),
        tokio::spawn(schedule::run(state.clone(), clock)),
        tokio::spawn(follow_rules(state.clone())),
    ]
}

/// Reload the rule cache when another process changes rules or buses
/// (`Topic::Rules`). The process that makes a change updates its own cache
/// before it notifies, so alone (the in-process backend, where every
/// notification is this process's own) there is nothing to reload and this
/// only waits. With others, every notification reloads, its own included:
/// a reload that read the store before a change is followed by the reload
/// of that change's notification, so the cache ends up like the store.
async fn follow_rules(state: Arc<AppState>) {
    if state.coordination.alone() {
        return;
    }
    let mut changed = state.coordination.subscribe(Topic::Rules);
    loop {
        changed.notified().await;
        if let Err(e) = state.events.reload(&state.store).await {
            tracing::error!(error = %e, "reloading rules failed");
        }
    }
}

/// Put server happenings on the default bus as `operon.fleet`,
/// `operon.commands` and `operon.workflows` events
/// ([`crate::happenings::envelope_entry`]). Happenings waiting together are
/// put in one batch (one commit). Best effort: if the bus falls more than the
/// stream's capacity behind, the skipped happenings are logged.
pub async fn forward_happenings(
    state: Arc<AppState>,
    mut happenings: tokio::sync::broadcast::Receiver<crate::happenings::Happening>,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    const MAX_BATCH: usize = 512;
    let skipped =
        |n: u64| tracing::warn!(skipped = n, "server events skipped: the bus fell behind");
    loop {
        let mut batch = Vec::new();
        match happenings.recv().await {
            Ok(happening) => batch.push(happening),
            Err(RecvError::Lagged(n)) => {
                skipped(n);
                continue;
            }
            Err(RecvError::Closed) => return,
        }
        while batch.len() < MAX_BATCH {
            match happenings.try_recv() {
                Ok(happening) => batch.push(happening),
                Err(TryRecvError::Lagged(n)) => skipped(n),
                Err(_) => break,
            }
        }
        let now = crate::now_millis();
        let envelopes: Vec<envelope::Envelope> = batch
            .iter()
            .filter_map(|happening| {
                let (source, detail_type, detail) = crate::happenings::envelope_entry(happening);
                let entry = PutEntry {
                    source: Some(source.into()),
                    detail_type: Some(detail_type.into()),
                    detail: Some(detail.to_string()),
                    ..PutEntry::default()
                };
                envelope::envelope(&entry, now)
                    .map_err(|e| tracing::warn!(error = %e.message, source, "a server event was refused"))
                    .ok()
            })
            .collect();
        if let Err(e) = accept(&state, envelopes).await {
            tracing::warn!(error = %e.message, "putting server events on the bus failed");
        }
    }
}

impl AppState {
    /// The rules service over this server's store, audit trail and bus.
    pub(crate) fn rules(&self) -> rules::RuleService<'_> {
        rules::RuleService {
            store: &self.store,
            audit: &self.audit,
            events: &self.events,
            coordination: &self.coordination,
        }
    }

    /// The PutEvents service over this server's audit trail and bus.
    pub(crate) fn put_events(&self) -> put_events::EventService<'_> {
        put_events::EventService {
            audit: &self.audit,
            events: &self.events,
            coordination: &self.coordination,
        }
    }

    /// The archives-and-replays service over this server's store, audit trail and bus.
    pub(crate) fn replays(&self) -> replay::ReplayService<'_> {
        replay::ReplayService {
            store: &self.store,
            audit: &self.audit,
            events: &self.events,
        }
    }

    /// The inbound-webhook service over this server's store, audit trail and bus.
    pub(crate) fn webhooks(&self) -> inbound::WebhookService<'_> {
        inbound::WebhookService {
            store: &self.store,
            audit: &self.audit,
            events: &self.events,
            coordination: &self.coordination,
        }
    }

    /// The dead-letter service over this server's store and bus.
    pub(crate) fn dead_letters(&self) -> put_events::DeadLetterService<'_> {
        put_events::DeadLetterService {
            store: &self.store,
            coordination: &self.coordination,
        }
    }
}

/// Make a compiled rule live in `rules` (replacing one of the same name).
fn install_into(rules: &mut Rules, compiled: CompiledRule) -> Arc<CompiledRule> {
    let name = compiled.rule.name.clone();
    if let Some(old) = rules.by_name.remove(&name)
        && let Some(m) = rules.matchers.get_mut(&old.rule.bus)
    {
        m.remove(&name);
    }
    if compiled.rule.enabled
        && let Some(pattern) = compiled.rule.pattern.as_deref()
        && let Ok(pattern) = Pattern::parse(pattern)
    {
        rules
            .matchers
            .entry(compiled.rule.bus.clone())
            .or_default()
            .add(name.clone(), &pattern);
    }
    let compiled = Arc::new(compiled);
    rules.by_name.insert(name, compiled.clone());
    compiled
}

/// Wake the delivery loop: deliveries became due (put, redriven, retried).
pub(crate) fn wake_deliveries(state: &AppState) {
    state.coordination.notify(Topic::Deliveries);
}

/// An event pattern given as a JSON object or as JSON text, as text.
pub(crate) fn pattern_text(pattern: Option<Value>) -> Option<String> {
    match pattern {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(value) => Some(value.to_string()),
    }
}

/// Rule, bus, archive and webhook names: 1-64 of letters, digits, `.-_`.
pub fn check_name(kind: &str, name: &str) -> ServiceResult<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ServiceError::invalid(
            "ValidationError",
            format!(
                "{kind} name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
            ),
        ));
    }
    Ok(())
}
