//! MonitorService: the only code that writes or reads monitor definitions,
//! and the loop that pushes each node its set (see the module docs).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use operon_api::monitors::{Monitor, MonitorDetail, MonitorNode, MonitorSpec, PutMonitor};
use operon_proto::{CAPABILITY_LOGS, CAPABILITY_MONITORS, MonitorSet, ServerMessage};
use operon_store::{MonitorRecord, Node};

use super::validate::{self, Pushed};
use crate::access::{Principal, check_action, node_request, record_denial_in};
use crate::commands::service::RUN_AS_USER_KEY;
use crate::commands::targets::TargetSpec;
use crate::coordination::Topic;
use crate::runas::RunAs;
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// How often the push loop looks without being woken (tags and inventory
/// move nodes in and out of targets without telling it).
pub const TICK: Duration = Duration::from_secs(30);

pub fn resource(name: &str) -> String {
    format!("monitor/{name}")
}

/// The actor a monitor is pushed as.
pub fn actor_name(name: &str) -> String {
    format!("monitor/{name}")
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("InvalidMonitor", message)
}

fn unknown(name: &str) -> ServiceError {
    ServiceError::not_found("UnknownMonitor", format!("no monitor named {name:?}"))
}

/// The spec as stored, typed again.
pub fn spec_of(record: &MonitorRecord) -> ServiceResult<MonitorSpec> {
    serde_json::from_value(record.spec.clone()).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            "InternalError",
            format!(
                "monitor {:?} is stored in a shape this server cannot read: {e}",
                record.name
            ),
        )
    })
}

/// Node names (or ids) and filters (`all`, `tag:`, `inventory:`) of a
/// target list: an entry without `:` other than `all` names a node.
pub fn split_targets(targets: &[String]) -> (Vec<String>, Vec<String>) {
    targets
        .iter()
        .cloned()
        .partition(|t| !t.contains(':') && t != "all")
}

fn target_spec(targets: &[String]) -> ServiceResult<TargetSpec> {
    let (names, filters) = split_targets(targets);
    TargetSpec::from_strings(&names, &filters).map_err(|e| {
        invalid(format!(
            "targets: {}",
            crate::commands::service::target_error(e).message
        ))
    })
}

/// The nodes `targets` select now: those named (unknown names are skipped:
/// the node may enroll later) and those the filters select (none when the
/// inventory cannot be read).
async fn targeted_nodes(state: &AppState, targets: &[String]) -> ServiceResult<Vec<Node>> {
    let (names, filters) = split_targets(targets);
    let mut out = Vec::new();
    if !filters.is_empty() {
        let spec = target_spec(&filters)?;
        out = state.commands().resolve(&spec).await.unwrap_or_default();
    }
    if !names.is_empty() {
        for node in state.store.list_nodes().await? {
            let named = names.iter().any(|n| *n == node.id || *n == node.name);
            if named && node.revoked_at.is_none() && !out.iter().any(|o| o.id == node.id) {
                out.push(node);
            }
        }
    }
    Ok(out)
}

/// Whether `actor` may put the monitor on `node`; the refused action and why.
fn may_apply_on(
    actor: &Principal,
    node: &Node,
    spec: &MonitorSpec,
) -> Result<(), (&'static str, String)> {
    actor
        .decide(&node_request(actor, "monitors:Apply", node))
        .map_err(|reason| ("monitors:Apply", reason))?;
    // Shipping a file's lines to the server reads it: both are needed.
    if matches!(spec, MonitorSpec::Shipping { .. }) {
        actor
            .decide(&node_request(actor, "logs:Ship", node))
            .map_err(|reason| ("logs:Ship", reason))?;
    }
    if let Some(user) = validate::command_user(spec) {
        let request = node_request(actor, "commands:Run", node).with(RUN_AS_USER_KEY, [user]);
        actor
            .decide(&request)
            .map_err(|reason| ("commands:Run", reason))?;
    }
    Ok(())
}

/// The principal a monitor is pushed as (its role's or author's authority now).
async fn actor_of(state: &AppState, record: &MonitorRecord) -> ServiceResult<Principal> {
    let run_as = RunAs::new(record.role.as_deref(), Some(&record.author));
    state.actor(&actor_name(&record.name), &run_as).await
}

pub struct MonitorService<'a> {
    pub(crate) state: &'a AppState,
}

impl MonitorService<'_> {
    /// Create or replace a monitor (`monitors:Put`); its nodes get their new
    /// sets at once.
    pub async fn put(
        &self,
        principal: &Principal,
        name: &str,
        body: PutMonitor,
    ) -> ServiceResult<Monitor> {
        crate::identity::service::valid_name("monitor", name)?;
        check_action(
            &self.state.audit,
            principal,
            "monitors:Put",
            &resource(name),
        )
        .await?;
        validate::validate_spec(&body.spec, &body.targets).map_err(invalid)?;
        target_spec(&body.targets)?;
        if let Some(role) = &body.role {
            crate::runas::authorize_pass_role(
                &self.state.store,
                &self.state.audit,
                principal,
                role,
            )
            .await?;
        }
        let current = self.state.store.monitor(name).await?;
        let current_version = current.as_ref().map(|c| c.version);
        if let Some(expected) = body.expected_version
            && Some(expected) != current_version
        {
            return Err(ServiceError::conflict(
                "VersionMismatch",
                format!(
                    "monitor {name:?} is at version {}, not {expected}",
                    current_version.map_or("none (it does not exist)".into(), |v| v.to_string())
                ),
            ));
        }
        let now = now_millis();
        let record = MonitorRecord {
            name: name.to_string(),
            kind: body.spec.kind().to_string(),
            spec: serde_json::to_value(&body.spec).unwrap_or_default(),
            targets: body.targets,
            author: principal.name.clone(),
            role: body.role,
            version: current_version.unwrap_or(0) + 1,
            created_at: current.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        };
        if !self
            .state
            .store
            .put_monitor(&record, current_version)
            .await?
        {
            return Err(ServiceError::conflict(
                "VersionMismatch",
                format!("monitor {name:?} changed meanwhile; read it again"),
            ));
        }
        principal.note("version", record.version);
        self.state.coordination.notify(Topic::Monitors);
        view(&record)
    }

    /// Monitors `monitors:Get` allows, each.
    pub async fn list(&self, principal: &Principal) -> ServiceResult<Vec<Monitor>> {
        check_action(&self.state.audit, principal, "monitors:List", "monitor/*").await?;
        let mut out = Vec::new();
        for record in self.state.store.list_monitors().await? {
            let allowed = principal
                .decide(&principal.request("monitors:Get", &resource(&record.name)))
                .is_ok();
            if allowed {
                out.push(view(&record)?);
            }
        }
        Ok(out)
    }

    /// One monitor with the nodes it targets and whether it reaches them.
    pub async fn get(&self, principal: &Principal, name: &str) -> ServiceResult<MonitorDetail> {
        let record = self.authorized(principal, "monitors:Get", name).await?;
        let spec = spec_of(&record)?;
        let actor = actor_of(self.state, &record).await;
        // A shipped log needs an agent that ships logs, not only monitors.
        let capability = match spec {
            MonitorSpec::Shipping { .. } => CAPABILITY_LOGS,
            _ => CAPABILITY_MONITORS,
        };
        let mut nodes = Vec::new();
        for node in targeted_nodes(self.state, &record.targets).await? {
            let verdict = match &actor {
                Ok(actor) => may_apply_on(actor, &node, &spec).map_err(|(action, reason)| {
                    format!("{} may not {action}: {reason}", actor.name)
                }),
                Err(e) => Err(e.message.clone()),
            };
            nodes.push(MonitorNode {
                online: self.state.hub.is_online(&node.id),
                capable: self.state.hub.supports(&node.id, CAPABILITY_MONITORS) == Some(true)
                    && self.state.hub.supports(&node.id, capability) == Some(true),
                authorized: verdict.is_ok(),
                reason: verdict.err(),
                node_id: node.id,
                node_name: node.name,
            });
        }
        Ok(MonitorDetail {
            monitor: view(&record)?,
            nodes,
        })
    }

    /// Delete a monitor (`monitors:Delete`); its nodes stop running it.
    pub async fn delete(&self, principal: &Principal, name: &str) -> ServiceResult<Monitor> {
        let record = self.authorized(principal, "monitors:Delete", name).await?;
        let view = view(&record)?;
        if !self
            .state
            .store
            .delete_monitor(name, Some(record.version))
            .await?
        {
            return Err(ServiceError::conflict(
                "VersionMismatch",
                format!("monitor {name:?} changed meanwhile; read it again"),
            ));
        }
        self.state.coordination.notify(Topic::Monitors);
        Ok(view)
    }

    async fn authorized(
        &self,
        principal: &Principal,
        action: &str,
        name: &str,
    ) -> ServiceResult<MonitorRecord> {
        check_action(&self.state.audit, principal, action, &resource(name)).await?;
        self.state
            .store
            .monitor(name)
            .await?
            .ok_or_else(|| unknown(name))
    }
}

fn view(record: &MonitorRecord) -> ServiceResult<Monitor> {
    Ok(Monitor {
        name: record.name.clone(),
        spec: spec_of(record)?,
        targets: record.targets.clone(),
        role: record.role.clone(),
        author: record.author.clone(),
        version: record.version,
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}

// ----- Push ---------------------------------------------------------------------

/// What each live session was last sent: (session id, set).
type SentSets = HashMap<String, (u64, MonitorSet)>;

/// The push loop of this process; see the module docs.
pub async fn run(state: Arc<AppState>) {
    let mut wake = state.coordination.subscribe(Topic::Monitors);
    let mut identity = state.coordination.subscribe(Topic::Identity);
    let mut pushed = SentSets::new();
    loop {
        if let Err(e) = push_pass(&state, &mut pushed).await {
            tracing::error!(error = %e.message, "pushing monitor sets failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = wake.notified() => {}
            _ = identity.notified() => {}
        }
    }
}

/// A monitor ready to be placed: its spec, actor and targeted nodes.
struct Placement {
    record: MonitorRecord,
    spec: MonitorSpec,
    actor: Principal,
    nodes: BTreeSet<String>,
}

/// A refusal to audit when the set it shaped is sent.
struct Refusal {
    actor: Principal,
    action: &'static str,
    node: String,
    reason: String,
}

async fn push_pass(state: &AppState, pushed: &mut SentSets) -> ServiceResult<()> {
    let sessions = state.hub.sessions_with(CAPABILITY_MONITORS);
    pushed.retain(|node, (session, _)| sessions.iter().any(|(n, s)| n == node && s == session));
    if sessions.is_empty() {
        return Ok(());
    }
    let placements = placements(state).await?;
    let nodes: HashMap<String, Node> = state
        .store
        .list_nodes()
        .await?
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect();
    for (node_id, session) in sessions {
        let Some(node) = nodes.get(&node_id) else {
            continue;
        };
        let (set, refusals) = set_for(node, &placements);
        if pushed
            .get(&node_id)
            .is_some_and(|(s, last)| *s == session && *last == set)
        {
            continue;
        }
        for refusal in refusals {
            record_denial_in(
                &state.audit,
                &refusal.actor,
                refusal.action,
                &format!("node/{}", refusal.node),
                &refusal.reason,
            )
            .await;
        }
        let (checks, watchers, shipped) = (set.checks.len(), set.watchers.len(), set.shipped.len());
        if state
            .hub
            .send(&node_id, ServerMessage::Monitors(set.clone()))
        {
            tracing::info!(node = %node.name, checks, watchers, shipped, "monitor set pushed");
            pushed.insert(node_id, (session, set));
        }
    }
    Ok(())
}

/// Every readable monitor with its actor and targeted nodes. A monitor whose
/// spec cannot be read or whose role is gone reaches no node (logged).
async fn placements(state: &AppState) -> ServiceResult<Vec<Placement>> {
    let mut out = Vec::new();
    for record in state.store.list_monitors().await? {
        let spec = match spec_of(&record) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::warn!(monitor = %record.name, error = %e.message, "monitor left out");
                continue;
            }
        };
        let actor = match actor_of(state, &record).await {
            Ok(actor) => actor,
            Err(e) => {
                tracing::warn!(monitor = %record.name, error = %e.message, "monitor left out: its role or author cannot act");
                continue;
            }
        };
        let nodes = match targeted_nodes(state, &record.targets).await {
            Ok(nodes) => nodes.into_iter().map(|n| n.id).collect(),
            Err(e) => {
                tracing::warn!(monitor = %record.name, error = %e.message, "monitor left out: its targets do not parse");
                continue;
            }
        };
        out.push(Placement {
            record,
            spec,
            actor,
            nodes,
        });
    }
    Ok(out)
}

/// The set `node` runs: the monitors targeting it that their actor may put
/// there, and the refusals.
fn set_for(node: &Node, placements: &[Placement]) -> (MonitorSet, Vec<Refusal>) {
    let mut set = MonitorSet::default();
    let mut refusals = Vec::new();
    for placement in placements.iter().filter(|p| p.nodes.contains(&node.id)) {
        let actor = placement.actor.with_fresh_trail();
        if let Err((action, reason)) = may_apply_on(&actor, node, &placement.spec) {
            refusals.push(Refusal {
                actor,
                action,
                node: node.name.clone(),
                reason,
            });
            continue;
        }
        match validate::to_proto(&placement.record.name, &placement.spec) {
            Pushed::Check(check) => set.checks.push(check),
            Pushed::Watcher(watcher) => set.watchers.push(watcher),
            Pushed::Shipping(shipping) => set.shipped.push(shipping),
        }
    }
    (set, refusals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_node_names_and_filters() {
        let table: &[(&[&str], &[&str], &[&str])] = &[
            (&["all"], &[], &["all"]),
            (&["web-1", "db-1"], &["web-1", "db-1"], &[]),
            (&["tag:role=web", "web-9"], &["web-9"], &["tag:role=web"]),
            (
                &["inventory:packages:name=nginx"],
                &[],
                &["inventory:packages:name=nginx"],
            ),
        ];
        for (targets, names, filters) in table {
            let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
            let (n, f) = split_targets(&targets);
            let n: Vec<&str> = n.iter().map(String::as_str).collect();
            let f: Vec<&str> = f.iter().map(String::as_str).collect();
            assert_eq!(
                (n.as_slice(), f.as_slice()),
                (*names, *filters),
                "{targets:?}"
            );
        }
    }
}
