//! The healing loop: one process (the `heals` lease), every [`TICK`].
//!
//! Each pass first moves every unfinished attempt on, then starts attempts
//! for open incidents:
//!
//! ```text
//! (open incident of an alarm a heal names, no attempt unfinished, not escalated)
//!   └─ attempts in the window < max_runs and cooldown over ─▶ starting (row written)
//!      otherwise, when the limit is reached ─▶ escalate (once per incident)
//! starting   ─▶ running     the execution starts, named after the attempt (a
//!                           restart finds it started instead of starting another)
//! running    ─▶ confirming  the runbook SUCCEEDED
//!            ─▶ failed      it FAILED, TIMED_OUT or was ABORTED
//! confirming ─▶ confirmed   the incident recovered (its alarm is OK)
//!            ─▶ failed      not within confirm_within of the start
//! ```
//!
//! A failed attempt leaves the incident open, so the next pass tries again
//! or escalates. Every step is on the incident's timeline and puts an
//! `operon.heal` event ("Heal Started", "Heal Confirmed", "Heal Failed",
//! "Heal Escalated"). Each attempt is authorized when it starts, acting as
//! the heal's role or author (`workflows:Start` on the runbook); the
//! runbook's own steps act as the runbook's role.

use std::sync::Arc;
use std::time::Duration;

use operon_api::heal::{HealSpec, Incident as IncidentView};
use operon_store::{HealRecord, HealRun, Incident, IncidentFilter, NewIncidentEvent, Node};
use serde_json::{Value, json};

use super::service::{actor_name, glob_matches, limits, spec_of};
use crate::coordination::Topic;
use crate::events::envelope::PutEntry;
use crate::runas::RunAs;
use crate::service::ServiceResult;
use crate::{AppState, now_millis};

const LEASE: &str = "heals";
const TICK: Duration = Duration::from_secs(1);
pub const EVENT_SOURCE: &str = "operon.heal";
/// The source of incident events (opened, recovered, acknowledged, resolved).
pub const INCIDENT_SOURCE: &str = "operon.incidents";
/// Open incidents looked at per pass.
const OPEN_INCIDENTS: i64 = 1000;

pub async fn run(state: Arc<AppState>) {
    let mut wake = state.coordination.subscribe(Topic::Heals);
    loop {
        if state
            .coordination
            .try_lease(LEASE, 5 * TICK.as_millis() as i64)
            .is_some()
            && let Err(e) = pass(&state).await
        {
            tracing::error!(error = %e.message, "healing failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = wake.notified() => {}
        }
    }
}

async fn pass(state: &AppState) -> ServiceResult<()> {
    for run in state.store.unfinished_heal_runs().await? {
        if let Err(e) = progress(state, run.clone()).await {
            tracing::warn!(heal = %run.heal, attempt = %run.id, error = %e.message, "a heal attempt could not move on");
        }
    }
    let heals = state.store.list_heals().await?;
    if heals.is_empty() {
        return Ok(());
    }
    let filter = IncidentFilter {
        status: Some("open".into()),
        limit: OPEN_INCIDENTS,
        ..IncidentFilter::default()
    };
    let open = state.store.incidents(&filter).await?;
    for incident in open.iter().filter(|i| i.escalated_at.is_none()) {
        for heal in heals.iter().filter(|h| names(h, &incident.alarm)) {
            if let Err(e) = consider(state, heal, incident).await {
                tracing::warn!(heal = %heal.name, incident = %incident.id, error = %e.message, "a heal could not act");
            }
        }
    }
    Ok(())
}

fn names(heal: &HealRecord, alarm: &str) -> bool {
    spec_of(heal).is_ok_and(|spec| glob_matches(&spec.alarm, alarm))
}

/// Start the next attempt for `incident`, wait, or escalate.
async fn consider(state: &AppState, heal: &HealRecord, incident: &Incident) -> ServiceResult<()> {
    let spec = spec_of(heal)?;
    let runs = state
        .store
        .heal_runs(Some(&heal.name), Some(&incident.id))
        .await?;
    if runs.iter().any(|r| {
        matches!(
            r.status.as_str(),
            "starting" | "running" | "confirming" | "confirmed"
        )
    }) {
        return Ok(());
    }
    let now = now_millis();
    let limits = limits(&spec);
    let last_end = state
        .store
        .last_heal_run_end(&heal.name, &incident.alarm, &incident.node_id)
        .await?;
    let recent = state
        .store
        .count_heal_runs_since(
            &heal.name,
            &incident.alarm,
            &incident.node_id,
            now - limits.window_ms,
        )
        .await?;
    if recent >= limits.max_runs {
        let message = format!(
            "heal {} stopped acting: {recent} attempts in the last {} s on this node (max_runs {}); a person is needed",
            heal.name,
            limits.window_ms / 1000,
            limits.max_runs
        );
        return escalate(state, heal, &spec, incident, &message).await;
    }
    if last_end.is_some_and(|end| now - end < limits.cooldown_ms) {
        return Ok(());
    }
    let attempt = runs.len() as i64 + 1;
    let run = HealRun {
        id: format!("heal-{}-{}-{attempt}", heal.name, incident.id),
        heal: heal.name.clone(),
        incident_id: incident.id.clone(),
        alarm: incident.alarm.clone(),
        node_id: incident.node_id.clone(),
        attempt,
        status: "starting".into(),
        execution_id: None,
        started_at: now,
        finished_at: None,
        detail: None,
    };
    // Written first: a crash after the start finds the row and the named
    // execution, and never starts a second one for this attempt.
    if state.store.insert_heal_run(&run).await? {
        progress(state, run).await?;
    }
    Ok(())
}

/// Move one unfinished attempt on.
async fn progress(state: &AppState, mut run: HealRun) -> ServiceResult<()> {
    match run.status.as_str() {
        "starting" => start(state, run).await,
        "running" => {
            let Some(id) = run.execution_id.clone() else {
                return finish(state, run, "failed", "the attempt lost its execution").await;
            };
            let Some(execution) = state.store.execution(&id).await? else {
                return finish(state, run, "failed", "its execution no longer exists").await;
            };
            match execution.status.as_str() {
                "RUNNING" => Ok(()),
                "SUCCEEDED" => {
                    run.status = "confirming".into();
                    let message = format!(
                        "runbook execution {id} succeeded; waiting for alarm {} to be OK",
                        run.alarm
                    );
                    let entry =
                        timeline_entry("heal_finished", message, Some(json!({"execution": id})));
                    state.store.update_heal_run(&run, &entry).await?;
                    Ok(())
                }
                other => {
                    let detail = format!(
                        "runbook execution {id} ended {other}{}",
                        execution
                            .error
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    );
                    finish(state, run, "failed", &detail).await
                }
            }
        }
        "confirming" => {
            let incident = state.store.incident(&run.incident_id).await?;
            let recovered = incident.as_ref().is_some_and(|i| i.status != "open");
            let spec = match state.store.heal(&run.heal).await? {
                Some(record) => Some(spec_of(&record)?),
                None => None,
            };
            let confirm_ms = spec
                .as_ref()
                .map_or(300_000, |s| limits(s).confirm_within_ms);
            if recovered {
                let detail = format!(
                    "alarm {} returned to OK: the repair is confirmed",
                    run.alarm
                );
                finish(state, run, "confirmed", &detail).await
            } else if now_millis() - run.started_at > confirm_ms {
                let detail = format!(
                    "alarm {} was still not OK {} s after the attempt started",
                    run.alarm,
                    confirm_ms / 1000
                );
                finish(state, run, "failed", &detail).await
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Start the attempt's execution, acting as the heal's role or author.
async fn start(state: &AppState, mut run: HealRun) -> ServiceResult<()> {
    let Some(record) = state.store.heal(&run.heal).await? else {
        return finish(
            state,
            run,
            "failed",
            "the heal was deleted before the attempt started",
        )
        .await;
    };
    let spec = spec_of(&record)?;
    let run_as = RunAs::new(spec.role.as_deref(), Some(&record.author));
    let actor = state.actor(&actor_name(&record.name), &run_as).await?;
    let resource = format!("workflow/{}", spec.workflow);
    if let Err(e) =
        crate::access::check_action(&state.audit, &actor, "workflows:Start", &resource).await
    {
        let detail = format!(
            "{} may not start runbook {}: {}",
            actor_name(&record.name),
            spec.workflow,
            e.message
        );
        return finish(state, run, "failed", &detail).await;
    }
    let input = runbook_input(state, &run, &spec).await?;
    let started_by = crate::workflows::StartedBy::Actor(&actor.name, &[]);
    let name = execution_name(&run.id);
    let execution = match crate::workflows::start_execution(
        state,
        &spec.workflow,
        input,
        Some(name.clone()),
        started_by,
    )
    .await
    {
        Ok(execution) => execution.execution_id,
        // Started by this attempt before a restart: find it.
        Err(e) if e.kind == crate::service::ErrorKind::Conflict => {
            match state.store.execution_by_name(&spec.workflow, &name).await? {
                Some(found) => found.id,
                None => return finish(state, run, "failed", &e.message).await,
            }
        }
        Err(e) => {
            let detail = format!("runbook {} did not start: {}", spec.workflow, e.message);
            return finish(state, run, "failed", &detail).await;
        }
    };
    run.status = "running".into();
    run.execution_id = Some(execution.clone());
    let message = format!(
        "heal {} attempt {} started runbook {} (execution {execution})",
        run.heal, run.attempt, spec.workflow
    );
    let data = json!({"execution": execution, "heal": run.heal, "attempt": run.attempt});
    let entry = timeline_entry("heal_started", message, Some(data));
    state.store.update_heal_run(&run, &entry).await?;
    if let Some(incident) = incident_view(state, &run.incident_id).await? {
        put_event(
            state,
            "Heal Started",
            &incident,
            json!({"heal": run.heal, "attempt": run.attempt, "execution": execution}),
        )
        .await;
    }
    Ok(())
}

/// Execution names: letters, digits, `-` and `_`, at most 80.
fn execution_name(run_id: &str) -> String {
    let cleaned: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.chars().take(80).collect()
}

async fn runbook_input(state: &AppState, run: &HealRun, spec: &HealSpec) -> ServiceResult<Value> {
    let node: Option<Node> = if run.node_id.is_empty() {
        None
    } else {
        state.store.node(&run.node_id).await?
    };
    let alarm = state
        .store
        .alarm_states(Some(&run.alarm))
        .await?
        .into_iter()
        .find(|s| s.node_id == run.node_id);
    Ok(json!({
        "heal": run.heal,
        "attempt": run.attempt,
        "incident": run.incident_id,
        "alarm": {
            "name": run.alarm,
            "state": alarm.as_ref().map(|a| a.state.clone()),
            "reason": alarm.as_ref().map(|a| a.reason.clone()),
        },
        "node": node.map(|n| json!({"id": n.id, "name": n.name, "tags": n.tags})),
        "parameters": spec.input.clone().unwrap_or_else(|| json!({})),
    }))
}

/// The timeline entry written with a run's update.
fn timeline_entry(kind: &str, message: String, data: Option<Value>) -> NewIncidentEvent {
    NewIncidentEvent {
        at: now_millis(),
        kind: kind.to_string(),
        message,
        data,
    }
}

async fn finish(
    state: &AppState,
    mut run: HealRun,
    status: &str,
    detail: &str,
) -> ServiceResult<()> {
    let (kind, event) = if status == "confirmed" {
        ("confirmed", "Heal Confirmed")
    } else {
        ("heal_failed", "Heal Failed")
    };
    let message = format!("heal {} attempt {}: {detail}", run.heal, run.attempt);
    run.status = status.to_string();
    run.finished_at = Some(now_millis());
    run.detail = Some(detail.to_string());
    // One write: whoever reads the run as finished finds its entry.
    let entry = timeline_entry(kind, message, None);
    state.store.update_heal_run(&run, &entry).await?;
    tracing::info!(heal = %run.heal, attempt = run.attempt, incident = %run.incident_id, status, detail, "heal attempt finished");
    if let Some(incident) = incident_view(state, &run.incident_id).await? {
        put_event(state, event, &incident, json!({"heal": run.heal, "attempt": run.attempt, "execution": run.execution_id, "detail": detail})).await;
    }
    Ok(())
}

/// Escalate once per incident: the timeline, a "Heal Escalated" event and,
/// if the heal names one, a webhook (as the heal's actor: `http:Invoke`).
async fn escalate(
    state: &AppState,
    heal: &HealRecord,
    spec: &HealSpec,
    incident: &Incident,
    message: &str,
) -> ServiceResult<()> {
    if !state
        .store
        .escalate_incident(&incident.id, message, now_millis())
        .await?
    {
        return Ok(());
    }
    tracing::warn!(heal = %heal.name, incident = %incident.id, "{message}");
    let Some(view) = incident_view(state, &incident.id).await? else {
        return Ok(());
    };
    let runs = state
        .store
        .heal_runs(Some(&heal.name), Some(&incident.id))
        .await?;
    let detail = json!({"heal": heal.name, "message": message, "attempts": runs.len()});
    put_event(state, "Heal Escalated", &view, detail.clone()).await;
    if let Some(url) = &spec.escalate_webhook {
        post_escalation(state, heal, spec, url, &view, detail).await;
    }
    Ok(())
}

async fn post_escalation(
    state: &AppState,
    heal: &HealRecord,
    spec: &HealSpec,
    url: &str,
    incident: &IncidentView,
    detail: Value,
) {
    let run_as = RunAs::new(spec.role.as_deref(), Some(&heal.author));
    let note = |text: String| async move {
        let _ = state
            .store
            .add_incident_event(&incident.id, now_millis(), "note", &text, None)
            .await;
    };
    let actor = match state.actor(&actor_name(&heal.name), &run_as).await {
        Ok(actor) => actor,
        Err(e) => return note(format!("escalation webhook not sent: {}", e.message)).await,
    };
    let host = crate::runas::host_resource(url);
    if let Err(e) = crate::access::check_action(&state.audit, &actor, "http:Invoke", &host).await {
        return note(format!("escalation webhook not sent: {}", e.message)).await;
    }
    let body = json!({"source": EVENT_SOURCE, "detail-type": "Heal Escalated", "incident": incident, "detail": detail});
    let request = state
        .events
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    match state.events.http.send(request).await {
        Ok(response) if response.status().is_success() => {
            note(format!(
                "escalation webhook answered {}",
                response.status().as_u16()
            ))
            .await
        }
        Ok(response) => {
            note(format!(
                "escalation webhook answered {}",
                response.status().as_u16()
            ))
            .await
        }
        Err(e) => note(format!("escalation webhook failed: {e}")).await,
    }
}

pub(crate) async fn incident_view(
    state: &AppState,
    id: &str,
) -> ServiceResult<Option<IncidentView>> {
    let Some(incident) = state.store.incident(id).await? else {
        return Ok(None);
    };
    let name = if incident.node_id.is_empty() {
        None
    } else {
        state.store.node(&incident.node_id).await?.map(|n| n.name)
    };
    Ok(Some(IncidentView {
        node_name: name,
        id: incident.id,
        alarm: incident.alarm,
        node_id: incident.node_id,
        status: incident.status,
        reason: incident.reason,
        opened_at: incident.opened_at,
        recovered_at: incident.recovered_at,
        escalated_at: incident.escalated_at,
        acknowledged_by: incident.acknowledged_by,
        acknowledged_at: incident.acknowledged_at,
        resolved_by: incident.resolved_by,
        resolved_at: incident.resolved_at,
    }))
}

/// Put one event about an incident: `Heal ...` ones from `operon.heal`,
/// `Incident ...` ones from `operon.incidents`. Best effort, like the
/// server's other operational events.
pub async fn put_event(state: &AppState, detail_type: &str, incident: &IncidentView, extra: Value) {
    let source = if detail_type.starts_with("Incident") {
        INCIDENT_SOURCE
    } else {
        EVENT_SOURCE
    };
    let mut resources = vec![
        format!("incident/{}", incident.id),
        format!("alarm/{}", incident.alarm),
    ];
    if !incident.node_id.is_empty() {
        resources.push(format!("node/{}", incident.node_id));
    }
    let detail = json!({"incident": incident, "detail": extra});
    let entry = PutEntry {
        source: Some(source.into()),
        detail_type: Some(detail_type.into()),
        detail: Some(detail.to_string()),
        resources,
        ..PutEntry::default()
    };
    match crate::events::envelope::envelope(&entry, now_millis()) {
        Ok(envelope) => {
            if let Err(e) = crate::events::accept(state, vec![envelope]).await {
                tracing::warn!(error = %e.message, "putting a heal event failed");
            }
        }
        Err(e) => tracing::warn!(error = %e.message, "a heal event was refused"),
    }
}
