//! Delivery workers: claim due outbox rows, perform them, record outcomes.
//!
//! At-least-once: a row is deleted only after its target succeeded, so a
//! crash between the two repeats the delivery with the *same* delivery id
//! (sent to webhooks as `x-operon-delivery-id`, used as the workflow
//! execution name and in the run-command id), which receivers deduplicate
//! on. Outcomes are group-committed like accepted events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use operon_pattern::{DeliveryContext, TargetInput};
use operon_store::{ClaimedDelivery, DeliveryOutcome};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::coordination::{Subscription, Topic};

use super::CompiledRule;
use super::envelope::{self, Envelope};
use super::signing;
use super::targets::{CompiledTarget, RetryPolicy, RunCommandTarget, TargetKind};
use crate::access::{Principal, check_action};
use crate::commands::{CommandId, NewCommand, Requester, TargetSpec};
use crate::egress::client::{OutboundError, drain};
use crate::runas::RunAs;
use crate::service::{ErrorKind, ServiceError};
use crate::{AppState, now_millis};

/// Deliveries performed at once (also the most claimed in one transaction:
/// small claims would cost a write transaction each).
const CONCURRENCY: usize = 256;
/// Longest sleep when nothing is due (new work also wakes the loop).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How long a claim on a delivery lasts. An attempt is bounded well within
/// it (webhooks and HTTP calls time out, starts and commands are local), so
/// a claim still held after it belongs to a process that died or hung, and
/// the delivery may be attempted again (at least once, same delivery id).
const CLAIM_LEASE_MS: i64 = 10 * 60 * 1000;

/// How often expired claims are looked for.
const CLAIM_SWEEP_MS: i64 = 30 * 1000;

/// Why an attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub retryable: bool,
    pub message: String,
}

impl TargetError {
    pub fn retryable(message: impl Into<String>) -> Self {
        TargetError {
            retryable: true,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        TargetError {
            retryable: false,
            message: message.into(),
        }
    }
}

/// The delivery loop; runs for the life of the server.
pub async fn run(state: Arc<AppState>) {
    // Alone, the claims a crashed predecessor left belong to no one; with
    // other processes, they are released when they expire (see `idle`).
    if state.coordination.alone() {
        match state.store.release_delivery_claims().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                "resuming deliveries interrupted by a restart"
            ),
            Err(e) => tracing::error!(error = %e, "releasing delivery claims failed"),
        }
    }
    let owner = state.coordination.process.0.clone();
    // Kept across passes: a wake-up sent during a pass ends the next idle.
    let mut wake = state.coordination.subscribe(Topic::Deliveries);
    // A write, so not on every idle pass: expired claims can wait a little.
    let mut next_sweep = now_millis();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let (outcomes, rx) = mpsc::unbounded_channel();
    tokio::spawn(commit_outcomes(state.clone(), owner.clone(), rx));
    loop {
        let free = permits.available_permits();
        if free == 0 {
            drop(permits.clone().acquire_owned().await);
            continue;
        }
        let claimed = match state
            .store
            .claim_due_deliveries(&owner, now_millis(), CLAIM_LEASE_MS, free as i64)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "claiming deliveries failed");
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
        };
        if claimed.is_empty() {
            if now_millis() >= next_sweep {
                release_expired_claims(&state).await;
                next_sweep = now_millis() + CLAIM_SWEEP_MS;
            }
            idle(&state, &mut wake).await;
            continue;
        }
        let actors = Arc::new(BatchActors::default());
        for delivery in claimed {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let state = state.clone();
            let outcomes = outcomes.clone();
            let actors = actors.clone();
            tokio::spawn(async move {
                let outcome = attempt(&state, delivery, &actors).await;
                let _ = outcomes.send(outcome);
                drop(permit);
            });
        }
    }
}

/// Free the expired claims of other (dead or hung) processes, so their
/// deliveries are attempted again.
async fn release_expired_claims(state: &AppState) {
    match state
        .store
        .release_expired_delivery_claims(now_millis())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            deliveries = n,
            "claims expired; the deliveries are attempted again"
        ),
        Err(e) => tracing::error!(error = %e, "releasing expired delivery claims failed"),
    }
}

/// Sleep until the next delivery is due (at most [`IDLE_POLL`]) or new work
/// arrives.
async fn idle(state: &AppState, wake: &mut Subscription) {
    let wait = match state.store.next_delivery_due().await {
        Ok(Some(at)) => Duration::from_millis((at - now_millis()).clamp(0, 1000) as u64),
        _ => IDLE_POLL,
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = wake.notified() => {}
    }
}

async fn commit_outcomes(
    state: Arc<AppState>,
    owner: String,
    mut rx: mpsc::UnboundedReceiver<DeliveryOutcome>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
            if batch.len() >= 1024 {
                break;
            }
        }
        let retries = batch
            .iter()
            .any(|o| matches!(o, DeliveryOutcome::Retry { .. }));
        // An outcome that cannot be recorded leaves its row claimed; the
        // next start releases it and the delivery is repeated (same id).
        if let Err(e) = state.store.apply_delivery_outcomes(&owner, &batch).await {
            tracing::error!(error = %e, outcomes = batch.len(), "recording delivery outcomes failed");
        }
        if retries {
            super::wake_deliveries(&state);
        }
    }
}

/// One attempt of one delivery.
pub async fn attempt(
    state: &AppState,
    delivery: ClaimedDelivery,
    actors: &BatchActors,
) -> DeliveryOutcome {
    let now = now_millis();
    let attempts = delivery.attempts + 1;
    let dead = |error: String| DeliveryOutcome::Dead {
        id: delivery.id.clone(),
        attempts,
        error,
        at: now,
    };
    let Some(rule) = state.events.rule(&delivery.rule) else {
        return dead(format!("rule {} no longer exists", delivery.rule));
    };
    let Some(target) = rule.targets.iter().find(|t| t.id == delivery.target_id) else {
        return dead(format!(
            "rule {} no longer has target {}",
            delivery.rule, delivery.target_id
        ));
    };
    let age = Duration::from_millis((now - delivery.created_at).max(0) as u64);
    if age > target.retry.max_age {
        return dead(format!(
            "older than MaximumEventAgeInSeconds ({}s)",
            target.retry.max_age.as_secs()
        ));
    }
    let result = perform(state, &rule, target, &delivery, actors).await;
    match result {
        Ok(()) => DeliveryOutcome::Delivered {
            id: delivery.id.clone(),
        },
        Err(e) if !e.retryable => dead(e.message),
        Err(e) if attempts > i64::from(target.retry.max_retries) => dead(format!(
            "{} (after {attempts} attempts, MaximumRetryAttempts {})",
            e.message, target.retry.max_retries
        )),
        Err(e) => {
            let delay = RetryPolicy::backoff(attempts as u32);
            tracing::debug!(delivery = %delivery.id, attempts, ?delay, error = %e.message, "delivery failed; will retry");
            DeliveryOutcome::Retry {
                id: delivery.id.clone(),
                attempts,
                next_attempt_at: now + delay.as_millis() as i64,
                error: e.message,
            }
        }
    }
}

/// The delivery context the input transformer sees.
pub fn context(rule: &CompiledRule, ingested_at: i64) -> DeliveryContext {
    DeliveryContext {
        rule_name: rule.rule.name.clone(),
        rule_arn: format!("operon:events:rule/{}/{}", rule.rule.bus, rule.rule.name),
        event_bus_name: rule.rule.bus.clone(),
        ingestion_time: envelope::rfc3339(ingested_at),
    }
}

async fn perform(
    state: &AppState,
    rule: &CompiledRule,
    target: &CompiledTarget,
    delivery: &ClaimedDelivery,
    actors: &BatchActors,
) -> Result<(), TargetError> {
    let event = || -> Result<Value, TargetError> {
        serde_json::from_str(&delivery.event.body)
            .map_err(|e| TargetError::permanent(format!("stored event is not JSON: {e}")))
    };
    let payload = match target.input {
        // The stored text is the event: no need to parse and serialise it.
        TargetInput::WholeEvent => Some(delivery.event.body.clone()),
        _ => target.payload(&event()?, &context(rule, delivery.event.ingested_at)),
    };
    let Some(payload) = payload else {
        tracing::warn!(rule = %rule.rule.name, target = %target.id, delivery = %delivery.id,
            "the input transformer produced no valid JSON; nothing delivered");
        return Ok(());
    };
    match &target.kind {
        TargetKind::Webhook { url, secret } => {
            let actor = actors.get(state, rule, target).await?;
            allow(
                state,
                &actor,
                "http:Invoke",
                &crate::runas::host_resource(url),
            )
            .await?;
            post_webhook(state, url, secret.as_deref(), &payload, delivery, rule).await
        }
        TargetKind::Workflow { workflow } => {
            let causation = guard_loop(state, rule, &event()?, delivery).await?;
            let actor = actors.get(state, rule, target).await?;
            let resource = format!("workflow/{workflow}");
            allow(state, &actor, "workflows:Start", &resource).await?;
            let input = serde_json::from_str(&payload).unwrap_or(Value::String(payload.clone()));
            let started_by = crate::workflows::StartedBy::Actor(&actor.name, &causation);
            start_workflow_target(state, workflow, input, &delivery.id, started_by).await
        }
        TargetKind::RunCommand(config) => {
            let causation = guard_loop(state, rule, &event()?, delivery).await?;
            let actor = actors.get(state, rule, target).await?;
            run_command(state, config, &payload, delivery, actor, causation).await
        }
        TargetKind::Bus { bus } => {
            let actor = actors.get(state, rule, target).await?;
            allow(state, &actor, "events:Put", &format!("bus/{bus}")).await?;
            put_on_bus(state, bus, &event()?).await
        }
        TargetKind::Log => {
            tracing::info!(target: "operon::events::log", rule = %rule.rule.name,
                target_id = %target.id, delivery = %delivery.id, input = %payload, "event");
            Ok(())
        }
    }
}

/// The causation chain of the command a delivery is about to start: the
/// chain of the command the event is about (if it is one of the server's
/// command events), plus this rule; or a permanent failure, announced as a
/// "Rule Loop Stopped" event, when the rule has triggered itself too often.
async fn guard_loop(
    state: &AppState,
    rule: &CompiledRule,
    event: &Value,
    delivery: &ClaimedDelivery,
) -> Result<Vec<String>, TargetError> {
    let retry = |e: operon_store::StoreError| TargetError::retryable(e.to_string());
    let about = |key: &str| event["detail"][key].as_str();
    let chain: Vec<String> = match event["source"].as_str() {
        Some("operon.commands") => match about("command-id") {
            Some(id) => state
                .store
                .command(id)
                .await
                .map_err(retry)?
                .and_then(|c| serde_json::from_value(c.request["causation"].clone()).ok())
                .unwrap_or_default(),
            None => Vec::new(),
        },
        Some("operon.workflows") => match about("execution-id") {
            Some(id) => state
                .store
                .execution(id)
                .await
                .map_err(retry)?
                .map(|e| e.causation)
                .unwrap_or_default(),
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    super::causation::extend(&chain, &rule.rule.name).map_err(|reason| {
        tracing::warn!(rule = %rule.rule.name, delivery = %delivery.id, %reason, "rule loop stopped");
        state.happenings.publish(crate::happenings::Happening::RuleLoopStopped {
            rule: rule.rule.name.clone(),
            causation: chain,
            event_id: delivery.event.id.clone(),
        });
        TargetError::permanent(reason)
    })
}

/// What the targets of one claimed batch act as, resolved once per target
/// for the batch rather than once per delivery: the same authority at the
/// same moment (the batch's deliveries start together), without a store
/// read per event competing for the database's few connections.
#[derive(Default)]
pub struct BatchActors(tokio::sync::Mutex<HashMap<(String, String), Principal>>);

impl BatchActors {
    async fn get(
        &self,
        state: &AppState,
        rule: &CompiledRule,
        target: &CompiledTarget,
    ) -> Result<Principal, TargetError> {
        let key = (rule.rule.name.clone(), target.id.clone());
        let mut known = self.0.lock().await;
        if let Some(principal) = known.get(&key) {
            return Ok(principal.with_fresh_trail());
        }
        let principal = actor(state, rule, target).await?;
        known.insert(key, principal.with_fresh_trail());
        Ok(principal)
    }
}

/// The principal a rule target's effect is authorized as: its role, or the
/// rule's author, with the policies they hold now.
async fn actor(
    state: &AppState,
    rule: &CompiledRule,
    target: &CompiledTarget,
) -> Result<Principal, TargetError> {
    let run_as = RunAs::new(target.role.as_deref(), rule.rule.author.as_deref());
    let name = format!("rule/{}", rule.rule.name);
    state
        .actor(&name, &run_as)
        .await
        .map_err(|e| service_failure("resolving what the target acts as", e))
}

/// Authorize one effect of a rule target now; a refusal is audited under
/// the rule with what it acted as, and dead-letters the delivery.
async fn allow(
    state: &AppState,
    actor: &Principal,
    action: &str,
    resource: &str,
) -> Result<(), TargetError> {
    check_action(&state.audit, actor, action, resource)
        .await
        .map_err(|e| service_failure("refused", e))
}

async fn post_webhook(
    state: &AppState,
    url: &str,
    secret: Option<&str>,
    payload: &str,
    delivery: &ClaimedDelivery,
    rule: &CompiledRule,
) -> Result<(), TargetError> {
    let timestamp = now_millis() / 1000;
    let mut request = state
        .events
        .http
        .post(url)
        .header("content-type", "application/json")
        .header(signing::DELIVERY_ID_HEADER, &delivery.id)
        .header(signing::TIMESTAMP_HEADER, timestamp.to_string())
        .header("x-operon-rule", &rule.rule.name)
        .header("x-operon-event-id", &delivery.event.id)
        .body(payload.to_string());
    if let Some(secret) = secret {
        request = request.header(
            signing::SIGNATURE_HEADER,
            signing::signature(secret, timestamp, payload.as_bytes()),
        );
    }
    let response = state.events.http.send(request).await.map_err(|e| match e {
        // The same text for every way of not getting an answer, so the
        // dead letters are no port scanner; it may work next time.
        OutboundError::Unreachable { .. } | OutboundError::Read { .. } => {
            TargetError::retryable(e.to_string())
        }
        OutboundError::Refused(_) | OutboundError::TooLarge { .. } | OutboundError::Invalid(_) => {
            TargetError::permanent(e.to_string())
        }
    })?;
    let status = response.status();
    // Only the status matters; a short body is read so the connection can
    // be reused, a long one is not.
    drain(response, WEBHOOK_BODY_READ).await;
    if status.is_success() {
        return Ok(());
    }
    Err(webhook_failure(url, status.as_u16()))
}

/// The most of a webhook's answer body read (and dropped).
const WEBHOOK_BODY_READ: usize = 64 * 1024;

/// Start a workflow execution for a rule target. The execution name is the
/// delivery id, so a repeated delivery finds the execution already started.
pub async fn start_workflow_target(
    state: &AppState,
    workflow: &str,
    input: Value,
    name: &str,
    started_by: crate::workflows::StartedBy<'_>,
) -> Result<(), TargetError> {
    let name = execution_name(name);
    match crate::workflows::start_execution(state, workflow, input, Some(name), started_by).await {
        Ok(_) => Ok(()),
        // The name is the delivery's: an execution with it means an earlier
        // attempt started it.
        Err(e) if e.kind == ErrorKind::Conflict => Ok(()),
        Err(e) => Err(service_failure(&format!("starting workflow {workflow}"), e)),
    }
}

/// A service's refusal as a delivery outcome: transient kinds (the runner
/// stopped, a storage fault) are retried; the rest cannot succeed by
/// retrying and go to the dead letters.
fn service_failure(context: &str, e: ServiceError) -> TargetError {
    let message = format!("{context}: {}", e.message);
    if e.kind.is_transient() {
        TargetError::retryable(message)
    } else {
        TargetError::permanent(message)
    }
}

/// A webhook's HTTP answer other than 2xx, as EventBridge API destinations
/// treat it: 408, 429 and 5xx are retried, other statuses are not.
fn webhook_failure(url: &str, status: u16) -> TargetError {
    let message = format!("POST {url}: HTTP {status}");
    if status == 429 || status == 408 || (500..600).contains(&status) {
        TargetError::retryable(message)
    } else {
        TargetError::permanent(message)
    }
}

/// An execution name (letters, digits, `-`, `_`, at most 80) from a delivery id.
fn execution_name(delivery_id: &str) -> String {
    delivery_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect()
}

/// The first `{{ssm:...}}` or `{{ssm-secure:...}}` in any string of `values`.
fn first_parameter_reference(
    values: &serde_json::Map<String, Value>,
) -> Option<crate::params::refs::Reference> {
    fn walk(value: &Value) -> Option<crate::params::refs::Reference> {
        match value {
            Value::String(text) => crate::params::refs::references(text).into_iter().next(),
            Value::Array(items) => items.iter().find_map(walk),
            Value::Object(map) => map.values().find_map(walk),
            _ => None,
        }
    }
    values.values().find_map(walk)
}

/// Run a command or document. An object payload may set `node_ids` and
/// `targets`, which may only narrow the target's own (see
/// [`crate::commands::narrow`]), and `parameters`, merged over the target's
/// own and checked against the document like any others. So one rule can act
/// on the node an event is about, and an event cannot widen its reach.
async fn run_command(
    state: &AppState,
    config: &RunCommandTarget,
    payload: &str,
    delivery: &ClaimedDelivery,
    actor: Principal,
    causation: Vec<String>,
) -> Result<(), TargetError> {
    let overrides = serde_json::from_str::<Value>(payload).unwrap_or(Value::Null);
    let strings = |key: &str| -> Option<Vec<String>> {
        overrides.get(key).map(|v| match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        })
    };
    let mut parameters = config.parameters.clone();
    if let Some(Value::Object(extra)) = overrides.get("parameters") {
        // The rule reads parameters with its own authority: only what its
        // author wrote may name them, never what an event brings.
        if let Some(reference) = first_parameter_reference(extra) {
            return Err(TargetError::permanent(format!(
                "the event's parameters name a parameter ({}): only the target's own \
                 parameters and its document may read Parameter Store",
                reference.text()
            )));
        }
        parameters.extend(extra.clone());
    }
    let own = TargetSpec::from_strings(&config.node_ids, &config.targets);
    let (asked_nodes, asked_targets) = (strings("node_ids"), strings("targets"));
    let asked = asked_nodes.is_some() || asked_targets.is_some();
    let request = json!({
        "document": config.document,
        "node_ids": asked_nodes.clone().unwrap_or_else(|| config.node_ids.clone()),
        "targets": asked_targets.clone().unwrap_or_else(|| config.targets.clone()),
        "parameters": parameters,
        "causation": causation,
    });
    let spec = if asked {
        let asked = TargetSpec::from_strings(
            &asked_nodes.unwrap_or_default(),
            &asked_targets.unwrap_or_default(),
        )
        .map_err(|e| TargetError::permanent(format!("the event's targets: {e}")))?;
        let nodes = state
            .store
            .list_nodes()
            .await
            .map_err(|e| TargetError::retryable(e.to_string()))?;
        crate::commands::narrow(&own.unwrap_or_default(), &asked, &nodes)
            .map_err(TargetError::permanent)?
    } else {
        own.map_err(|e| TargetError::permanent(e.to_string()))?
    };
    let new = NewCommand {
        document: config.document.clone(),
        parameters,
        targets: spec,
        request,
        ..Default::default()
    };
    let actor = Requester::Actor(actor);
    match state
        .commands()
        .create(CommandId::Delivery(delivery.id.clone()), new, actor)
        .await
    {
        Ok(created) if !created.new => {
            tracing::debug!(command_id = %created.command.id, "a repeated delivery found its command");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(service_failure("running the command", e)),
    }
}

/// Forward the event, unchanged, to another bus (once per event id).
async fn put_on_bus(state: &AppState, bus: &str, event: &Value) -> Result<(), TargetError> {
    if !state.events.bus_exists(bus) {
        return Err(TargetError::retryable(format!("bus {bus} does not exist")));
    }
    let id = event["id"].as_str().unwrap_or_default().to_string();
    match state.store.event_by_id_on_bus(&id, bus).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) => return Err(TargetError::retryable(e.to_string())),
    }
    let env = Envelope {
        id,
        bus: bus.to_string(),
        value: event.clone(),
    };
    super::accept(state, vec![env])
        .await
        .map_err(|e| TargetError::retryable(e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_refusals_are_retried_only_when_transient() {
        let cases = [
            (ErrorKind::NotFound, false),
            (ErrorKind::Invalid, false),
            (ErrorKind::Conflict, false),
            (ErrorKind::Forbidden, false),
            (ErrorKind::Unavailable, true),
            (ErrorKind::Internal, true),
        ];
        for (kind, retryable) in cases {
            let e = service_failure("starting workflow w", ServiceError::new(kind, "X", "why"));
            assert_eq!(e.retryable, retryable, "{kind}");
            assert_eq!(e.message, "starting workflow w: why");
        }
    }

    #[test]
    fn webhook_statuses_are_classified_as_eventbridge_does() {
        for status in [408, 429, 500, 502, 503, 599] {
            assert!(webhook_failure("u", status).retryable, "{status}");
        }
        for status in [300, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!webhook_failure("u", status).retryable, "{status}");
        }
        assert_eq!(
            webhook_failure("http://x/y", 404).message,
            "POST http://x/y: HTTP 404"
        );
    }

    #[test]
    fn execution_names_from_delivery_ids_are_valid_names() {
        assert_eq!(execution_name("d-ab12.cd"), "d-ab12-cd");
        let long = "d-".to_string() + &"x".repeat(200);
        assert_eq!(execution_name(&long).len(), 80);
        assert!(crate::workflows::validate_name("execution", &execution_name("d-é/ü:1")).is_ok());
    }
}
