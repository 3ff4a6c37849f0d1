//! What keeps associations applied, and what records their compliance.
//!
//! [`run`] is one loop in one process (the `associations` lease). Every
//! pass, for each association it starts a run when:
//!
//! - its schedule has an occurrence not yet run (after downtime, only the
//!   latest missed one: [`operon_schedule::Schedule::due`]);
//! - it follows its document's default version and that moved since the
//!   last fleet-wide apply (reason `document`);
//! - a targeted node is online with no compliance for it yet, no recent run
//!   is still pending on it (a node that was offline when a run started gets
//!   that run when it connects), the association was written more than
//!   [`JOIN_GRACE_MS`] ago (its writer's run may not be recorded yet), and no
//!   `joined` run was started for it in the last [`JOIN_RETRY_MS`]: reason
//!   `joined`, that node only.
//!
//! [`record_result`] turns a node's state-step result into compliance (the
//! last result per resource) and [`record_drift`] a drift report; a node
//! going from compliant to non-compliant or back puts an `operon.state`
//! "Association Compliance Change" event on the default bus. A drift on an
//! association with `remediate_drift` starts a run on that node at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use operon_proto::{CommandResult, ResourceStatus, StateDrift, StateMode};
use operon_store::{
    AssociationRecord, COMPLIANT, ComplianceChange, ComplianceReport, ComplianceResource,
    NON_COMPLIANT, Node,
};
use serde_json::json;

use super::service::{self, Reason, spec_of, start_run};
use crate::coordination::Topic;
use crate::events::envelope::PutEntry;
use crate::service::ServiceResult;
use crate::{AppState, now_millis};

/// The lease of the one process that keeps associations applied.
const LEASE: &str = "associations";
/// How often the loop looks without being woken.
const TICK: Duration = Duration::from_secs(5);
/// A node that got a `joined` run and still has no compliance gets another
/// after this long.
pub const JOIN_RETRY_MS: i64 = 10 * 60 * 1000;
/// How long after an association is written before nodes without its
/// compliance count as joined (its writer's run may not be recorded yet).
pub const JOIN_GRACE_MS: i64 = 10 * 1000;
/// How many of an association's newest runs are looked at for nodes they
/// have not reached yet.
const RECENT_RUNS: i64 = 20;
/// The source of the State Manager's events.
pub const EVENT_SOURCE: &str = "operon.state";

/// The loop; see the module docs.
pub async fn run(state: Arc<AppState>) {
    let mut wake = state.coordination.subscribe(Topic::Associations);
    // (association, node) -> when a `joined` run was last started for it.
    let mut joined: HashMap<(String, String), i64> = HashMap::new();
    loop {
        if state
            .coordination
            .try_lease(LEASE, 3 * TICK.as_millis() as i64)
            .is_some()
            && let Err(e) = pass(&state, &mut joined).await
        {
            tracing::error!(error = %e.message, "keeping associations applied failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = wake.notified() => {}
        }
    }
}

async fn pass(state: &AppState, joined: &mut HashMap<(String, String), i64>) -> ServiceResult<()> {
    let associations = state.store.list_associations().await?;
    joined.retain(|(name, _), _| associations.iter().any(|a| &a.name == name));
    for record in associations {
        if let Err(e) = keep(state, &record, joined).await {
            tracing::warn!(association = %record.name, error = %e.message, "an association could not be applied now");
        }
    }
    Ok(())
}

async fn keep(
    state: &AppState,
    record: &AssociationRecord,
    joined: &mut HashMap<(String, String), i64>,
) -> ServiceResult<()> {
    let spec = spec_of(record)?;
    let now = now_millis();
    if let Some(schedule) = service::schedule_of(&spec)? {
        let last = record
            .last_scheduled_at
            .and_then(chrono::DateTime::from_timestamp_millis);
        let created =
            chrono::DateTime::from_timestamp_millis(record.created_at).unwrap_or_default();
        let now_at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
        if let Some(due) = schedule.due(last, created, now_at) {
            // Marked first: a crash after the run starts never runs it twice.
            let due_ms = due.timestamp_millis();
            if due_ms > record.created_at {
                state
                    .store
                    .mark_association(&record.name, Some(due_ms), None)
                    .await?;
                start_run(state, record, &spec, Reason::Schedule, None, None).await?;
                return Ok(());
            }
            state
                .store
                .mark_association(&record.name, Some(due_ms), None)
                .await?;
        }
    }
    if spec.document_version.is_none() && service::mode_of(&spec) == StateMode::Apply {
        let default = state
            .store
            .document_versions(&spec.document)
            .await?
            .map(|v| v.default_version);
        if let (Some(default), Some(applied)) = (default, record.applied_document_version)
            && default != applied
        {
            start_run(state, record, &spec, Reason::Document, None, None).await?;
            return Ok(());
        }
    }
    // A new version is being applied to every node by its writer (the run
    // may not be recorded yet): joined nodes wait until it had its chance.
    if spec.apply_only_at_cron_interval || now - record.updated_at < JOIN_GRACE_MS {
        return Ok(());
    }
    let targeted = service::targeted_nodes(state, &spec).await?;
    if targeted.is_empty() {
        return Ok(());
    }
    let known = state
        .store
        .compliance_nodes(Some(&record.name), None)
        .await?;
    let waiting: Vec<Node> = targeted
        .into_iter()
        .filter(|node| state.hub.is_online(&node.id) && !known.iter().any(|k| k.node_id == node.id))
        .filter(|node| {
            let key = (record.name.clone(), node.id.clone());
            joined.get(&key).is_none_or(|at| now - at >= JOIN_RETRY_MS)
        })
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    let pending = nodes_with_pending_runs(state, &record.name).await?;
    for node in waiting {
        if pending.contains(&node.id) {
            continue;
        }
        joined.insert((record.name.clone(), node.id.clone()), now);
        start_run(state, record, &spec, Reason::Joined, Some(&node.id), None).await?;
    }
    Ok(())
}

/// Nodes a recent run of the association has not finished on yet (a node
/// that was offline when a run started gets it when it connects).
async fn nodes_with_pending_runs(
    state: &AppState,
    association: &str,
) -> ServiceResult<std::collections::HashSet<String>> {
    let mut pending = std::collections::HashSet::new();
    for run in state
        .store
        .association_runs(association, RECENT_RUNS)
        .await?
    {
        for invocation in state.store.invocations(&run.command_id).await? {
            if !invocation.status.is_final() {
                pending.insert(invocation.node_id);
            }
        }
    }
    Ok(pending)
}

fn outcome_text(status: ResourceStatus) -> &'static str {
    match status {
        ResourceStatus::Unchanged => "unchanged",
        ResourceStatus::Changed => "changed",
        ResourceStatus::WouldChange => "would_change",
        ResourceStatus::Failed => "failed",
        ResourceStatus::Skipped => "skipped",
    }
}

/// Record the compliance a state-step result shows, if its command was an
/// association's. Idempotent: the same result recorded twice changes
/// nothing more.
pub async fn record_result(
    state: &AppState,
    node: &Node,
    command_id: &str,
    result: &CommandResult,
) -> ServiceResult<()> {
    if result.resources.is_empty() {
        return Ok(());
    }
    let Some(command) = state.store.command(command_id).await? else {
        return Ok(());
    };
    let Some(step) = command
        .run_template
        .steps
        .iter()
        .find_map(|s| s.state.as_ref())
    else {
        return Ok(());
    };
    let Some(association) = step.association.clone() else {
        return Ok(());
    };
    let Some(record) = state.store.association(&association).await? else {
        return Ok(());
    };
    let spec = spec_of(&record)?;
    let at = result.finished_at;
    let resources = result
        .resources
        .iter()
        .map(|r| ComplianceResource {
            association: association.clone(),
            node_id: node.id.clone(),
            resource: r.name.clone(),
            kind: r.kind.clone(),
            status: if r.status.is_compliant() {
                COMPLIANT
            } else {
                NON_COMPLIANT
            }
            .into(),
            outcome: outcome_text(r.status).into(),
            changes: r.changes.clone(),
            diff: r.diff.clone(),
            message: r.message.clone(),
            command_id: Some(command_id.to_string()),
            at,
        })
        .collect();
    let report = ComplianceReport {
        association: association.clone(),
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        severity: service::severity_of(&spec),
        command_id: Some(command_id.to_string()),
        at,
        resources,
        replace: true,
    };
    if let Some(change) = state.store.record_compliance(&report).await? {
        announce(state, &report, &change, step.mode, None).await;
    }
    Ok(())
}

/// Record a managed file changed on a node behind the association's back;
/// put it back at once if the association says so.
pub async fn record_drift(state: &AppState, node: &Node, drift: &StateDrift) -> ServiceResult<()> {
    let Some(record) = state.store.association(&drift.association).await? else {
        // Deleted meanwhile: the node should stop watching.
        state.hub.send(
            &node.id,
            operon_proto::ServerMessage::StateForget {
                association: drift.association.clone(),
            },
        );
        return Ok(());
    };
    let spec = spec_of(&record)?;
    let known = state
        .store
        .compliance_resources(Some(&drift.association), Some(&node.id))
        .await?;
    let kind = known
        .iter()
        .find(|r| r.resource == drift.resource)
        .map(|r| r.kind.clone())
        .unwrap_or_else(|| "file".into());
    let already = known.iter().any(|r| {
        r.resource == drift.resource
            && r.outcome == "drifted"
            && r.message.as_deref() == Some(drift.detail.as_str())
    });
    let report = ComplianceReport {
        association: drift.association.clone(),
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        severity: service::severity_of(&spec),
        command_id: None,
        at: drift.at,
        resources: vec![ComplianceResource {
            association: drift.association.clone(),
            node_id: node.id.clone(),
            resource: drift.resource.clone(),
            kind,
            status: NON_COMPLIANT.into(),
            outcome: "drifted".into(),
            changes: vec![format!("{}: {}", drift.path, drift.detail)],
            diff: None,
            message: Some(drift.detail.clone()),
            command_id: None,
            at: drift.at,
        }],
        replace: false,
    };
    if let Some(change) = state.store.record_compliance(&report).await? {
        announce(state, &report, &change, StateMode::Apply, Some(drift)).await;
    }
    tracing::info!(association = %drift.association, node = %node.name, resource = %drift.resource, "managed file drifted");
    if spec.remediate_drift && !already {
        start_run(
            state,
            &record,
            &spec,
            Reason::Drift,
            Some(&node.id),
            Some(StateMode::Apply),
        )
        .await?;
    }
    Ok(())
}

/// Put "Association Compliance Change" when the node's status changed (a
/// first status counts as a change only when it is non-compliant), and
/// "Association Drift Detected" for every new drift.
async fn announce(
    state: &AppState,
    report: &ComplianceReport,
    change: &ComplianceChange,
    mode: StateMode,
    drift: Option<&StateDrift>,
) {
    let non_compliant: Vec<&str> = report
        .resources
        .iter()
        .filter(|r| r.status != COMPLIANT)
        .map(|r| r.resource.as_str())
        .collect();
    if let Some(drift) = drift {
        put_event(
            state,
            "Association Drift Detected",
            &report.node_id,
            json!({
                "association": report.association,
                "node-id": report.node_id,
                "node-name": report.node_name,
                "resource": drift.resource,
                "path": drift.path,
                "detail": drift.detail,
            }),
        )
        .await;
    }
    let changed = match &change.before {
        Some(before) => before != &change.after,
        None => change.after != COMPLIANT,
    };
    if !changed {
        return;
    }
    put_event(
        state,
        "Association Compliance Change",
        &report.node_id,
        json!({
            "association": report.association,
            "node-id": report.node_id,
            "node-name": report.node_name,
            "previous-status": change.before,
            "status": change.after,
            "severity": report.severity,
            "mode": service::mode_text(mode),
            "command-id": report.command_id,
            "non-compliant-resources": non_compliant,
        }),
    )
    .await;
}

/// Put one `operon.state` event naming the node. Best effort, like the
/// server's other events.
async fn put_event(state: &AppState, detail_type: &str, node_id: &str, detail: serde_json::Value) {
    let entry = PutEntry {
        source: Some(EVENT_SOURCE.into()),
        detail_type: Some(detail_type.into()),
        detail: Some(detail.to_string()),
        resources: vec![format!("node/{node_id}")],
        ..PutEntry::default()
    };
    let envelope = match crate::events::envelope::envelope(&entry, now_millis()) {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::warn!(error = %e.message, "a state event was refused");
            return;
        }
    };
    if let Err(e) = crate::events::accept(state, vec![envelope]).await {
        tracing::warn!(error = %e.message, "putting a state event failed");
    }
}
