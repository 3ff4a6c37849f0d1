//! AssociationService: the only code that creates, changes, runs or
//! deletes associations, and reads compliance.

use std::collections::BTreeMap;

use operon_api::associations::{
    Association, AssociationCompliance, AssociationDetail, AssociationRun, AssociationRunStarted,
    AssociationSpec, AssociationVersion, ComplianceCounts, ComplianceSummary, NodeCompliance,
    ResourceCompliance, SeverityCompliance,
};
use operon_proto::StateMode;
use operon_store::{AssociationRecord, COMPLIANT, NON_COMPLIANT, Node};

use crate::access::{Principal, check_action, node_request};
use crate::commands::service::{CommandId, NewCommand, Requester, StateOptions};
use crate::commands::targets::TargetSpec;
use crate::coordination::Topic;
use crate::documents::{self, DocumentVersion};
use crate::runas::RunAs;
use crate::service::{ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// The severities compliance is counted by, most severe first.
pub const SEVERITIES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNSPECIFIED"];

/// Why a run was started (kept with the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Created,
    Updated,
    Schedule,
    Joined,
    Document,
    Manual,
    Drift,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Created => "created",
            Reason::Updated => "updated",
            Reason::Schedule => "schedule",
            Reason::Joined => "joined",
            Reason::Document => "document",
            Reason::Manual => "manual",
            Reason::Drift => "drift",
        }
    }
}

pub fn resource(name: &str) -> String {
    format!("association/{name}")
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("InvalidAssociation", message)
}

fn unknown(name: &str) -> ServiceError {
    ServiceError::not_found(
        "UnknownAssociation",
        format!("no association named {name:?}"),
    )
}

/// The actor an association's runs are made by.
pub fn actor_name(name: &str) -> String {
    format!("association/{name}")
}

/// The spec as stored (JSON), typed again.
pub fn spec_of(record: &AssociationRecord) -> ServiceResult<AssociationSpec> {
    serde_json::from_value(record.spec.clone()).map_err(|e| {
        ServiceError::new(
            crate::service::ErrorKind::Internal,
            "InternalError",
            format!(
                "association {:?} is stored in a shape this server cannot read: {e}",
                record.name
            ),
        )
    })
}

pub fn mode_of(spec: &AssociationSpec) -> StateMode {
    match spec.mode.as_deref() {
        Some("check") => StateMode::Check,
        _ => StateMode::Apply,
    }
}

pub fn mode_text(mode: StateMode) -> &'static str {
    match mode {
        StateMode::Apply => "apply",
        StateMode::Check => "check",
    }
}

pub fn severity_of(spec: &AssociationSpec) -> String {
    spec.compliance_severity
        .clone()
        .unwrap_or_else(|| "MEDIUM".into())
}

pub fn target_spec(spec: &AssociationSpec) -> ServiceResult<TargetSpec> {
    TargetSpec::from_strings(&[], &spec.targets).map_err(|e| {
        invalid(format!(
            "targets: {}",
            crate::commands::service::target_error(e).message
        ))
    })
}

/// The nodes an association targets now (tags, names and inventory
/// conditions, as commands resolve them); none when nothing matches.
pub async fn targeted_nodes(state: &AppState, spec: &AssociationSpec) -> ServiceResult<Vec<Node>> {
    let targets = target_spec(spec)?;
    Ok(state.commands().resolve(&targets).await.unwrap_or_default())
}

pub fn schedule_of(spec: &AssociationSpec) -> ServiceResult<Option<operon_schedule::Schedule>> {
    spec.schedule
        .as_deref()
        .map(|text| {
            operon_schedule::Schedule::parse(text, None)
                .map_err(|e| invalid(format!("schedule {text:?}: {e}")))
        })
        .transpose()
}

fn millis(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_millis()
}

fn instant(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// When the schedule next applies the association.
pub fn next_run_at(record: &AssociationRecord, spec: &AssociationSpec) -> Option<i64> {
    let schedule = schedule_of(spec).ok()??;
    let after = record.last_scheduled_at.unwrap_or(now_millis());
    schedule
        .next_since(instant(record.created_at), instant(after.max(now_millis())))
        .map(millis)
}

pub struct AssociationService<'a> {
    pub(crate) state: &'a AppState,
}

impl AssociationService<'_> {
    /// Check everything an association says before it is written: the
    /// document is a desired-state document and the parameters fit it, the
    /// targets, schedule, limits, mode and severity parse, and a role may
    /// be passed by `principal`.
    async fn validate(&self, principal: &Principal, spec: &AssociationSpec) -> ServiceResult<()> {
        if spec.targets.is_empty() {
            return Err(invalid("give the nodes: --targets tag:KEY=VALUE (or all)"));
        }
        target_spec(spec)?;
        schedule_of(spec)?;
        if spec.apply_only_at_cron_interval && spec.schedule.is_none() {
            return Err(invalid(
                "apply_only_at_cron_interval needs a schedule: it would never apply",
            ));
        }
        for (field, value) in [
            ("max_concurrency", &spec.max_concurrency),
            ("max_errors", &spec.max_errors),
        ] {
            if let Some(text) = value {
                crate::rate::Limit::parse(text)
                    .map_err(|e| invalid(format!("{field} {text:?}: {e}")))?;
            }
        }
        if let Some(mode) = &spec.mode
            && !["apply", "check"].contains(&mode.as_str())
        {
            return Err(invalid(format!("mode {mode:?}: use apply or check")));
        }
        if let Some(severity) = &spec.compliance_severity
            && !SEVERITIES.contains(&severity.as_str())
        {
            return Err(invalid(format!(
                "compliance_severity {severity:?}: use one of {}",
                SEVERITIES.join(", ")
            )));
        }
        let version = match &spec.document_version {
            Some(text) => DocumentVersion::parse(text).map_err(invalid)?,
            None => DocumentVersion::Default,
        };
        let (_, content) =
            documents::service::load_document(&self.state.store, &spec.document, version).await?;
        match documents::parse_any(&content) {
            Ok(documents::AnyDocument::State(document)) => {
                documents::state::render(
                    &document,
                    &content,
                    &spec.parameters,
                    StateMode::Check,
                    None,
                )
                .map_err(|e| {
                    ServiceError::invalid(
                        "InvalidParameters",
                        format!("parameters for {}: {e}", spec.document),
                    )
                })?;
            }
            _ => {
                return Err(invalid(format!(
                    "document {:?} is not a desired-state document (schemaVersion {})",
                    spec.document,
                    operon_state::document::SCHEMA_VERSION
                )));
            }
        }
        if let Some(role) = &spec.role {
            crate::runas::authorize_pass_role(
                &self.state.store,
                &self.state.audit,
                principal,
                role,
            )
            .await?;
        }
        Ok(())
    }

    /// Create an association (`associations:Create`), then apply it now
    /// unless it waits for its schedule.
    pub async fn create(
        &self,
        principal: &Principal,
        name: &str,
        spec: AssociationSpec,
    ) -> ServiceResult<Association> {
        crate::identity::service::valid_name("association", name)?;
        check_action(
            &self.state.audit,
            principal,
            "associations:Create",
            &resource(name),
        )
        .await?;
        self.validate(principal, &spec).await?;
        let now = now_millis();
        let record = AssociationRecord {
            name: name.to_string(),
            version: 1,
            spec: serde_json::to_value(&spec).unwrap_or_default(),
            author: principal.name.clone(),
            created_at: now,
            updated_at: now,
            last_scheduled_at: None,
            applied_document_version: None,
        };
        if !self.state.store.put_association(&record, None).await? {
            return Err(ServiceError::conflict(
                "AssociationExists",
                format!("an association named {name:?} exists; use update"),
            ));
        }
        self.after_write(&record, &spec, Reason::Created).await;
        self.view(&record).await
    }

    /// Write the next version (`associations:Update`), then apply it.
    pub async fn update(
        &self,
        principal: &Principal,
        name: &str,
        spec: AssociationSpec,
        expected_version: Option<i64>,
    ) -> ServiceResult<Association> {
        let current = self
            .authorized(principal, "associations:Update", name)
            .await?;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(ServiceError::conflict(
                "VersionMismatch",
                format!(
                    "association {name:?} is at version {}, not {expected}",
                    current.version
                ),
            ));
        }
        self.validate(principal, &spec).await?;
        let record = AssociationRecord {
            version: current.version + 1,
            spec: serde_json::to_value(&spec).unwrap_or_default(),
            author: principal.name.clone(),
            updated_at: now_millis(),
            ..current.clone()
        };
        if !self
            .state
            .store
            .put_association(&record, Some(current.version))
            .await?
        {
            return Err(ServiceError::conflict(
                "VersionMismatch",
                format!("association {name:?} changed meanwhile; read it again"),
            ));
        }
        // Nodes no longer targeted stop watching its files.
        let old_spec = spec_of(&current)?;
        if old_spec.targets != spec.targets {
            let now_targeted = self.targeted(&spec).await.unwrap_or_default();
            for node in self.state.store.compliance_nodes(Some(name), None).await? {
                if !now_targeted.iter().any(|n| n.id == node.node_id) {
                    self.forget_on(name, &node.node_id);
                }
            }
        }
        self.after_write(&record, &spec, Reason::Updated).await;
        self.view(&record).await
    }

    /// Apply a new version now unless it waits for its schedule; a failure
    /// to start is logged (the association is written; `run` retries).
    async fn after_write(
        &self,
        record: &AssociationRecord,
        spec: &AssociationSpec,
        reason: Reason,
    ) {
        if !spec.apply_only_at_cron_interval
            && let Err(e) = start_run(self.state, record, spec, reason, None, None).await
        {
            tracing::warn!(association = %record.name, error = %e.message, "could not apply the association now");
        }
        self.state.coordination.notify(Topic::Associations);
    }

    /// The association `name`, once `principal` may `action` it.
    async fn authorized(
        &self,
        principal: &Principal,
        action: &str,
        name: &str,
    ) -> ServiceResult<AssociationRecord> {
        check_action(&self.state.audit, principal, action, &resource(name)).await?;
        self.state
            .store
            .association(name)
            .await?
            .ok_or_else(|| unknown(name))
    }

    /// Associations `associations:Get` allows, each.
    pub async fn list(&self, principal: &Principal) -> ServiceResult<Vec<Association>> {
        check_action(
            &self.state.audit,
            principal,
            "associations:Get",
            "association/*",
        )
        .await?;
        let mut out = Vec::new();
        for record in self.state.store.list_associations().await? {
            let allowed = principal
                .decide(&principal.request("associations:Get", &resource(&record.name)))
                .is_ok();
            if allowed {
                out.push(self.view(&record).await?);
            }
        }
        Ok(out)
    }

    /// One association with its versions and its 20 newest runs.
    pub async fn get(&self, principal: &Principal, name: &str) -> ServiceResult<AssociationDetail> {
        let record = self.authorized(principal, "associations:Get", name).await?;
        let versions = self
            .state
            .store
            .association_versions(name)
            .await?
            .into_iter()
            .map(|v| {
                Ok(AssociationVersion {
                    version: v.version,
                    spec: serde_json::from_value(v.spec).map_err(|e| {
                        ServiceError::new(
                            crate::service::ErrorKind::Internal,
                            "InternalError",
                            format!("an association version is unreadable: {e}"),
                        )
                    })?,
                    author: v.author,
                    created_at: v.created_at,
                })
            })
            .collect::<ServiceResult<Vec<_>>>()?;
        let runs = self
            .state
            .store
            .association_runs(name, 20)
            .await?
            .into_iter()
            .map(|r| AssociationRun {
                command_id: r.command_id,
                version: r.version,
                reason: r.reason,
                mode: r.mode,
                node_id: r.node_id,
                created_at: r.created_at,
            })
            .collect();
        Ok(AssociationDetail {
            association: self.view(&record).await?,
            versions,
            runs,
        })
    }

    /// Delete an association (`associations:Delete`) with its compliance;
    /// its nodes stop watching its files.
    pub async fn delete(&self, principal: &Principal, name: &str) -> ServiceResult<Association> {
        let record = self
            .authorized(principal, "associations:Delete", name)
            .await?;
        let view = self.view(&record).await?;
        let nodes = self.state.store.compliance_nodes(Some(name), None).await?;
        if !self.state.store.delete_association(name).await? {
            return Err(unknown(name));
        }
        for node in nodes {
            self.forget_on(name, &node.node_id);
        }
        self.state.coordination.notify(Topic::Associations);
        Ok(view)
    }

    fn forget_on(&self, association: &str, node_id: &str) {
        if self
            .state
            .hub
            .supports(node_id, operon_proto::CAPABILITY_DESIRED_STATE)
            == Some(true)
        {
            self.state.hub.send(
                node_id,
                operon_proto::ServerMessage::StateForget {
                    association: association.to_string(),
                },
            );
        }
    }

    /// Apply (or check) now on every targeted node (`associations:Run`).
    pub async fn run(
        &self,
        principal: &Principal,
        name: &str,
        check: bool,
    ) -> ServiceResult<AssociationRunStarted> {
        let record = self.authorized(principal, "associations:Run", name).await?;
        let spec = spec_of(&record)?;
        let mode = check.then_some(StateMode::Check);
        let started = start_run(self.state, &record, &spec, Reason::Manual, None, mode).await?;
        Ok(started)
    }

    async fn targeted(&self, spec: &AssociationSpec) -> ServiceResult<Vec<Node>> {
        targeted_nodes(self.state, spec).await
    }

    async fn view(&self, record: &AssociationRecord) -> ServiceResult<Association> {
        let spec = spec_of(record)?;
        let mut nodes = ComplianceCounts::default();
        for node in self
            .state
            .store
            .compliance_nodes(Some(&record.name), None)
            .await?
        {
            if node.status == COMPLIANT {
                nodes.compliant += 1;
            } else {
                nodes.non_compliant += 1;
            }
        }
        Ok(Association {
            name: record.name.clone(),
            version: record.version,
            next_run_at: next_run_at(record, &spec),
            spec,
            author: record.author.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
            nodes,
        })
    }

    // ----- Compliance --------------------------------------------------------------

    /// The nodes `principal` may read compliance of: listing is
    /// `compliance:Get` on `node/*` (checked and audited, as every fleet-wide
    /// listing is), then each node with its tags, so a Deny on some tags
    /// hides those nodes.
    async fn readable_nodes(&self, principal: &Principal) -> ServiceResult<BTreeMap<String, Node>> {
        check_action(&self.state.audit, principal, "compliance:Get", "node/*").await?;
        let nodes = self.state.store.list_nodes().await?;
        Ok(nodes
            .into_iter()
            .filter(|n| {
                principal
                    .decide(&node_request(principal, "compliance:Get", n))
                    .is_ok()
            })
            .map(|n| (n.id.clone(), n))
            .collect())
    }

    /// Node states with their resources, filtered.
    pub async fn list_compliance(
        &self,
        principal: &Principal,
        association: Option<&str>,
        node: Option<&str>,
        status: Option<&str>,
    ) -> ServiceResult<Vec<NodeCompliance>> {
        if let Some(status) = status
            && ![COMPLIANT, NON_COMPLIANT].contains(&status)
        {
            return Err(ServiceError::invalid(
                "InvalidFilter",
                format!("status {status:?}: use COMPLIANT or NON_COMPLIANT"),
            ));
        }
        let readable = self.readable_nodes(principal).await?;
        let node_id = match node {
            Some(key) => Some(
                readable
                    .values()
                    .find(|n| n.id == key || n.name == key)
                    .map(|n| n.id.clone())
                    .ok_or_else(|| {
                        ServiceError::not_found(
                            "UnknownNode",
                            format!("no node {key:?} you may read"),
                        )
                    })?,
            ),
            None => None,
        };
        let nodes = self
            .state
            .store
            .compliance_nodes(association, node_id.as_deref())
            .await?;
        let resources = self
            .state
            .store
            .compliance_resources(association, node_id.as_deref())
            .await?;
        let mut by_key: BTreeMap<(String, String), Vec<ResourceCompliance>> = BTreeMap::new();
        for r in resources {
            by_key
                .entry((r.association.clone(), r.node_id.clone()))
                .or_default()
                .push(ResourceCompliance {
                    resource: r.resource,
                    kind: r.kind,
                    status: r.status,
                    outcome: r.outcome,
                    changes: r.changes,
                    diff: r.diff,
                    message: r.message,
                    command_id: r.command_id,
                    at: r.at,
                });
        }
        Ok(nodes
            .into_iter()
            .filter(|n| readable.contains_key(&n.node_id))
            .filter(|n| status.is_none_or(|s| s == n.status))
            .map(|n| NodeCompliance {
                resources: by_key
                    .remove(&(n.association.clone(), n.node_id.clone()))
                    .unwrap_or_default(),
                association: n.association,
                node_id: n.node_id,
                node_name: n.node_name,
                status: n.status,
                severity: n.severity,
                command_id: n.command_id,
                at: n.at,
            })
            .collect())
    }

    /// Counts by association and by severity.
    pub async fn summary(&self, principal: &Principal) -> ServiceResult<ComplianceSummary> {
        let readable = self.readable_nodes(principal).await?;
        let mut associations: BTreeMap<String, AssociationCompliance> = BTreeMap::new();
        let mut severities: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for node in self.state.store.compliance_nodes(None, None).await? {
            if !readable.contains_key(&node.node_id) {
                continue;
            }
            let entry = associations
                .entry(node.association.clone())
                .or_insert_with(|| AssociationCompliance {
                    association: node.association.clone(),
                    severity: node.severity.clone(),
                    compliant: 0,
                    non_compliant: 0,
                });
            let counts = severities.entry(node.severity.clone()).or_default();
            if node.status == COMPLIANT {
                entry.compliant += 1;
                counts.0 += 1;
            } else {
                entry.non_compliant += 1;
                counts.1 += 1;
            }
        }
        let severities = SEVERITIES
            .iter()
            .filter_map(|s| {
                severities.get(*s).map(|(c, n)| SeverityCompliance {
                    severity: s.to_string(),
                    compliant: *c,
                    non_compliant: *n,
                })
            })
            .collect();
        Ok(ComplianceSummary {
            associations: associations.into_values().collect(),
            severities,
        })
    }
}

/// Start a run of `record` through the commands service, as the
/// association's actor: on every targeted node, or on `node` only. The
/// run is remembered with its reason. No targeted node is not an error
/// (nodes may join later): nothing is started.
pub async fn start_run(
    state: &AppState,
    record: &AssociationRecord,
    spec: &AssociationSpec,
    reason: Reason,
    node: Option<&str>,
    mode: Option<StateMode>,
) -> ServiceResult<AssociationRunStarted> {
    let mode = mode.unwrap_or_else(|| mode_of(spec));
    let targets = match node {
        Some(node_id) => TargetSpec {
            nodes: vec![node_id.to_string()],
            filters: Vec::new(),
        },
        None => target_spec(spec)?,
    };
    if state
        .commands()
        .resolve(&targets)
        .await
        .map(|n| n.is_empty())
        .unwrap_or(true)
    {
        return Ok(AssociationRunStarted {
            command_id: None,
            mode: mode_text(mode).into(),
            targets: Vec::new(),
        });
    }
    let document_version = match &spec.document_version {
        Some(text) => DocumentVersion::parse(text).map_err(invalid)?,
        None => DocumentVersion::Default,
    };
    let run_as = RunAs::new(spec.role.as_deref(), Some(&record.author));
    let actor = state.actor(&actor_name(&record.name), &run_as).await?;
    let new = NewCommand {
        document: Some(spec.document.clone()),
        document_version,
        parameters: spec.parameters.clone(),
        targets,
        max_concurrency: spec.max_concurrency.clone(),
        max_errors: spec.max_errors.clone(),
        request: serde_json::json!({
            "association": record.name,
            "association_version": record.version,
            "reason": reason.as_str(),
            "mode": mode_text(mode),
        }),
        state: StateOptions {
            mode: Some(mode),
            association: Some(record.name.clone()),
        },
        ..NewCommand::default()
    };
    let created = state
        .commands()
        .create(CommandId::Fresh, new, Requester::Actor(actor))
        .await?;
    state
        .store
        .insert_association_run(&operon_store::AssociationRun {
            command_id: created.command.id.clone(),
            association: record.name.clone(),
            version: record.version,
            reason: reason.as_str().into(),
            mode: mode_text(mode).into(),
            node_id: node.map(str::to_string),
            created_at: now_millis(),
        })
        .await?;
    if node.is_none() && mode == StateMode::Apply {
        state
            .store
            .mark_association(&record.name, None, Some(created.command.document_version))
            .await?;
    }
    tracing::info!(association = %record.name, command_id = %created.command.id, reason = reason.as_str(), targets = created.targets.len(), "association run started");
    Ok(AssociationRunStarted {
        command_id: Some(created.command.id),
        mode: mode_text(mode).into(),
        targets: created.targets,
    })
}
