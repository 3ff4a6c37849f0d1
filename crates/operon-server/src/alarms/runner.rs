//! The loop that evaluates alarms: one process (the `alarms` lease), every
//! [`TICK`].
//!
//! A metric alarm is evaluated once per period, when its newest complete
//! period moves ([`super::evaluate::newest_complete_period`]), and again
//! when it is written. Each instance (the node of a one-node alarm, or each
//! node its targets select now) is evaluated acting as the alarm's role or
//! author: a node whose metrics that actor may not read (`metrics:Get` with
//! the node's tags) is INSUFFICIENT_DATA with that reason, never evaluated.
//! Instances of nodes no longer targeted are forgotten. A node whose agent
//! is not connected keeps being evaluated (its datapoints are missing, and
//! TreatMissingData decides), and the reason says it is disconnected:
//! a missing agent is a condition, not silence.
//!
//! Composite alarms are evaluated after the metric alarms of the same pass,
//! whenever a state changed or they were written, and at least every
//! [`COMPOSITE_EVERY`].
//!
//! States live in the store, so a restarted or new lease holder goes on
//! from them: evaluation is idempotent (a transition is written only when
//! the state differs) and unpublished events are put at the next pass.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use operon_alarms::State;
use operon_store::{AlarmRecord, AlarmStateRow, Node};
use serde_json::json;

use super::definition::{Definition, Kind, MetricQuery, Scope};
use super::evaluate::{self, Outcome};
use super::service::{self, actor_name, definition_of, record_transition, spec_of, transition};
use crate::access::node_request;
use crate::commands::targets::TargetSpec;
use crate::coordination::Topic;
use crate::runas::RunAs;
use crate::service::ServiceResult;
use crate::{AppState, now_millis};

const LEASE: &str = "alarms";
const TICK: Duration = Duration::from_secs(1);
/// How long after a write the alarms are read again.
const WRITE_GAP: Duration = Duration::from_millis(250);
/// Alarms are read again at least this often (besides when one is written here).
const RELOAD: Duration = Duration::from_secs(30);
/// Composite alarms are evaluated at least this often.
const COMPOSITE_EVERY: Duration = Duration::from_secs(10);

/// What the loop remembers between passes.
#[derive(Default)]
struct Memory {
    generation: Option<u64>,
    loaded_at: Option<Instant>,
    alarms: Vec<(AlarmRecord, Definition)>,
    /// alarm -> (version, newest period evaluated).
    evaluated: HashMap<String, (i64, i64)>,
    composites_at: Option<Instant>,
}

/// The loop; see the module docs.
pub async fn run(state: Arc<AppState>) {
    let mut wake = state.coordination.subscribe(Topic::Alarms);
    let mut memory = Memory::default();
    loop {
        if state
            .coordination
            .try_lease(LEASE, 5 * TICK.as_millis() as i64)
            .is_some()
        {
            super::events::publish_pending(&state).await;
            if let Err(e) = pass(&state, &mut memory).await {
                tracing::error!(error = %e.message, "evaluating alarms failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            // Many alarms written at once (a script, a template) wake it
            // many times: they are read together after a short gap.
            _ = wake.notified() => tokio::time::sleep(WRITE_GAP).await,
        }
    }
}

async fn pass(state: &AppState, memory: &mut Memory) -> ServiceResult<()> {
    reload(state, memory).await?;
    let now = now_millis();
    let due: Vec<(AlarmRecord, Definition, i64)> = memory
        .alarms
        .iter()
        .filter(|(_, d)| !d.is_composite())
        .filter_map(|(record, definition)| {
            let newest = evaluate::newest_complete_period(now, definition.config.period_secs);
            let last = memory.evaluated.get(&record.name);
            (last != Some(&(record.version, newest)))
                .then(|| (record.clone(), definition.clone(), newest))
        })
        .collect();
    let mut changed = false;
    if !due.is_empty() {
        let started = Instant::now();
        let count = due.len();
        // Read once per pass, not once per alarm.
        let mut context = PassContext {
            nodes: state.store.list_nodes().await?,
            resolved: HashMap::new(),
            states: HashMap::new(),
            series: SeriesIndex::new(state.metrics().all_series().await?),
        };
        for row in state.store.alarm_states(None).await? {
            context
                .states
                .entry(row.alarm.clone())
                .or_default()
                .insert(row.node_id.clone(), row);
        }
        for (record, definition, newest) in due {
            match evaluate_metric_alarm(state, &record, &definition, newest, &mut context).await {
                Ok(any) => changed |= any,
                Err(e) => {
                    tracing::warn!(alarm = %record.name, error = %e.message, "an alarm could not be evaluated")
                }
            }
            memory
                .evaluated
                .insert(record.name.clone(), (record.version, newest));
        }
        if changed {
            super::events::publish_pending(state).await;
        }
        // Benchmarks (issue 14) read this to see how long a pass of many alarms takes.
        tracing::debug!(
            alarms = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "alarm pass"
        );
    }
    let composites_due = memory
        .composites_at
        .is_none_or(|at| at.elapsed() >= COMPOSITE_EVERY);
    if changed || composites_due {
        evaluate_composites(state, memory).await?;
        memory.composites_at = Some(Instant::now());
    }
    Ok(())
}

async fn reload(state: &AppState, memory: &mut Memory) -> ServiceResult<()> {
    let generation = state.coordination.generation(Topic::Alarms);
    let fresh = memory.generation == Some(generation)
        && memory.loaded_at.is_some_and(|at| at.elapsed() < RELOAD);
    if fresh {
        return Ok(());
    }
    let records = state.store.list_alarms().await?;
    memory.alarms = records
        .into_iter()
        .filter_map(|record| match definition_of(&record) {
            Ok(definition) => Some((record, definition)),
            Err(e) => {
                tracing::error!(alarm = %record.name, error = %e.message, "an alarm is skipped");
                None
            }
        })
        .collect();
    memory
        .evaluated
        .retain(|name, _| memory.alarms.iter().any(|(r, _)| &r.name == name));
    memory.generation = Some(generation);
    memory.loaded_at = Some(Instant::now());
    // Written alarms are evaluated at once, composites included.
    memory.composites_at = None;
    Ok(())
}

/// What a pass reads once for all its alarms.
struct PassContext {
    nodes: Vec<Node>,
    /// Target lists resolved so far in this pass.
    resolved: HashMap<Vec<String>, Vec<Node>>,
    /// alarm -> node id -> state, as the pass began.
    states: HashMap<String, HashMap<String, AlarmStateRow>>,
    series: SeriesIndex,
}

/// Series ids by node, metric name and dimensions.
struct SeriesIndex(HashMap<(String, String, BTreeMap<String, String>), i64>);

impl SeriesIndex {
    fn new(series: Vec<operon_store::MetricSeries>) -> SeriesIndex {
        SeriesIndex(
            series
                .into_iter()
                .map(|s| ((s.node_id, s.name, s.dimensions), s.id))
                .collect(),
        )
    }

    fn find(&self, node_id: &str, query: &MetricQuery) -> Option<i64> {
        let key = (
            node_id.to_string(),
            query.metric.clone(),
            query.dimensions.clone(),
        );
        self.0.get(&key).copied()
    }
}

/// Evaluate every instance of one metric alarm; answers whether a state changed.
async fn evaluate_metric_alarm(
    state: &AppState,
    record: &AlarmRecord,
    definition: &Definition,
    newest: i64,
    context: &mut PassContext,
) -> ServiceResult<bool> {
    let spec = spec_of(record)?;
    let run_as = RunAs::new(spec.role.as_deref(), Some(&record.author));
    let actor = state.actor(&actor_name(&record.name), &run_as).await?;
    let targeted = targeted(
        state,
        &definition.scope,
        &context.nodes,
        &mut context.resolved,
    )
    .await?;
    let current = context.states.remove(&record.name).unwrap_or_default();
    let mut changed = false;
    let now = now_millis();
    for node in &targeted {
        let previous = current
            .get(&node.id)
            .map_or(State::InsufficientData, |row| parse_state(&row.state));
        let outcome = if actor
            .decide(&node_request(&actor, "metrics:Get", node))
            .is_err()
        {
            Outcome {
                state: State::InsufficientData,
                reason: format!(
                    "{} may not read the metrics of node {} (metrics:Get)",
                    actor_name(&record.name),
                    node.name
                ),
                data: json!({"version": "1.0", "refused": true}),
            }
        } else {
            let series = definition
                .query
                .as_ref()
                .and_then(|q| context.series.find(&node.id, q));
            let mut outcome =
                evaluate_node(state, definition, previous, series, newest, now).await?;
            if !state.hub.is_online(&node.id) {
                outcome.reason = format!(
                    "{} (the agent of node {} is not connected)",
                    outcome.reason, node.name
                );
                outcome.data["nodeConnected"] = json!(false);
            }
            outcome
        };
        if current
            .get(&node.id)
            .is_some_and(|row| row.state == outcome.state.as_str())
        {
            continue;
        }
        let row = AlarmStateRow {
            alarm: record.name.clone(),
            node_id: node.id.clone(),
            state: outcome.state.as_str().to_string(),
            reason: outcome.reason,
            reason_data: Some(outcome.data),
            updated_at: now,
        };
        changed |= record_transition(state, &row).await?;
    }
    for node_id in current.keys() {
        if !targeted.iter().any(|n| &n.id == node_id) {
            state
                .store
                .delete_alarm_state(&record.name, node_id)
                .await?;
            changed = true;
        }
    }
    Ok(changed)
}

async fn targeted(
    state: &AppState,
    scope: &Scope,
    nodes: &[Node],
    resolved: &mut HashMap<Vec<String>, Vec<Node>>,
) -> ServiceResult<Vec<Node>> {
    Ok(match scope {
        Scope::Node(key) => nodes
            .iter()
            .filter(|n| &n.id == key || &n.name == key)
            .take(1)
            .cloned()
            .collect(),
        Scope::Targets(targets) => {
            if let Some(found) = resolved.get(targets) {
                return Ok(found.clone());
            }
            let spec = TargetSpec::from_strings(&[], targets)
                .map_err(crate::commands::service::target_error)?;
            let found = state.commands().resolve(&spec).await.unwrap_or_default();
            resolved.insert(targets.clone(), found.clone());
            found
        }
        Scope::None => Vec::new(),
    })
}

async fn evaluate_node(
    state: &AppState,
    definition: &Definition,
    previous: State,
    series: Option<i64>,
    newest: i64,
    now: i64,
) -> ServiceResult<Outcome> {
    let metrics = &state.metrics();
    // No series yet: every datapoint is missing.
    let points = |from, to| async move {
        match series {
            Some(id) => metrics.series_points(id, from, to).await,
            None => Ok(Vec::new()),
        }
    };
    Ok(match definition.kind {
        Kind::Threshold | Kind::Composite(_) => {
            let (from, to) = evaluate::window(definition, newest);
            evaluate::threshold(definition, previous, &points(from, to).await?, newest)
        }
        Kind::Anomaly { history_days, .. } => {
            let (from, to) = evaluate::window(definition, newest);
            let recent = points(from, to).await?;
            // The band learns from per-minute averages before the range.
            let history_from = from - i64::from(history_days) * 86_400_000;
            let history = match series {
                Some(id) => {
                    metrics
                        .series_minute_averages(id, history_from, from)
                        .await?
                }
                None => Vec::new(),
            };
            evaluate::anomaly(definition, previous, &recent, &history, newest)
        }
        Kind::Forecast { lookback_secs, .. } => {
            let from = now - lookback_secs as i64 * 1000;
            evaluate::forecast(definition, &points(from, now + 1).await?, now)
        }
    })
}

fn parse_state(text: &str) -> State {
    match text {
        service::OK => State::Ok,
        service::ALARM => State::Alarm,
        _ => State::InsufficientData,
    }
}

/// Evaluate every composite alarm against the current states: an alarm's
/// own state by its name, and `name/node` for one node's instance.
async fn evaluate_composites(state: &AppState, memory: &Memory) -> ServiceResult<()> {
    let composites: Vec<&(AlarmRecord, Definition)> = memory
        .alarms
        .iter()
        .filter(|(_, d)| d.is_composite())
        .collect();
    if composites.is_empty() {
        return Ok(());
    }
    let rows = state.store.alarm_states(None).await?;
    let names: HashMap<String, String> = state
        .store
        .list_nodes()
        .await?
        .into_iter()
        .map(|n| (n.id, n.name))
        .collect();
    let mut by_alarm: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut states: HashMap<String, State> = HashMap::new();
    for row in &rows {
        by_alarm.entry(&row.alarm).or_default().push(&row.state);
        if let Some(node) = names.get(&row.node_id) {
            states.insert(format!("{}/{node}", row.alarm), parse_state(&row.state));
        }
    }
    for (alarm, instance_states) in by_alarm {
        states.insert(
            alarm.to_string(),
            parse_state(service::aggregate_state(instance_states)),
        );
    }
    let now = now_millis();
    for (record, definition) in composites {
        let Kind::Composite(rule) = &definition.kind else {
            continue;
        };
        let outcome = evaluate::composite(rule, &states);
        let current = rows
            .iter()
            .find(|r| r.alarm == record.name && r.node_id.is_empty());
        if current.is_some_and(|r| r.state == outcome.state.as_str()) {
            continue;
        }
        let row = AlarmStateRow {
            alarm: record.name.clone(),
            node_id: String::new(),
            state: outcome.state.as_str().to_string(),
            reason: outcome.reason,
            reason_data: Some(outcome.data),
            updated_at: now,
        };
        if transition(state, &row).await? {
            states.insert(record.name.clone(), outcome.state);
        }
    }
    Ok(())
}
