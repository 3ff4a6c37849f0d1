//! The commands service: the only code that creates or cancels commands.
//!
//! A user (through the API), a rule target and a runbook's `runCommand` task
//! all come here, so every command obeys the same rules: one target grammar
//! ([`super::targets`]), one revoked-node rule, one id scheme
//! ([`CommandId`]), the same limits and document rendering. The command and
//! one `Pending` invocation per node are written in one transaction before
//! anything is acknowledged; the dispatcher then drives them.

use std::collections::BTreeMap;

use operon_proto::{InvocationStatus, ServerMessage};
use operon_store::{AuditEntry, Command, Invocation, Node, RunTemplate, Store};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::targets::{TargetError, TargetSpec};
use crate::access::{Principal, node_request, record_denial_in};
use crate::audit::AuditLog;
use crate::coordination::{Coordination, Topic};
use crate::documents::service::load_document;
use crate::documents::{self, DocumentVersion, RUN_SHELL_SCRIPT};
use crate::events::signing::SealKey;
use crate::fleet::hub::Hub;
use crate::rate::Limit;
use crate::service::{ServiceError, ServiceResult};
use crate::{auth, now_millis};

/// Maximum bytes of stdout and of stderr stored per node.
pub const DEFAULT_OUTPUT_CAP: usize = 256 * 1024;

/// How a command's id is made. Derived ids make creation idempotent: the
/// same rule delivery or workflow task always names the same command, so a
/// repeat after a crash finds it instead of running it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandId {
    /// A new random id (`c-<16 hex>`), for a person's request.
    Fresh,
    /// From an event-bus delivery id (`d-...` gives `c-ev-...`).
    Delivery(String),
    /// From a workflow task's idempotency key (`c-<first 20 characters>`).
    Task(String),
}

impl CommandId {
    pub fn resolve(&self) -> String {
        match self {
            CommandId::Fresh => auth::new_id("c-"),
            CommandId::Delivery(delivery) => format!("c-ev-{}", delivery.trim_start_matches("d-")),
            CommandId::Task(key) => format!("c-{}", key.get(..20).unwrap_or(key)),
        }
    }

    fn derived(&self) -> bool {
        !matches!(self, CommandId::Fresh)
    }
}

/// Who asks for a command.
pub enum Requester<'a> {
    /// A user or token, authorized per node now (`commands:Run` with the
    /// node's tags); refused nodes are left out, all refused is Forbidden.
    Principal(&'a Principal),
    /// A non-human actor (`rule/NAME`, `execution/ID`) with the authority
    /// of what it acts as ([`crate::runas::ActorCache`]), authorized
    /// per node now exactly like a person. Its commands are audited under
    /// its name, with what it acted as.
    Actor(Principal),
}

impl Requester<'_> {
    fn principal(&self) -> &Principal {
        match self {
            Requester::Principal(p) => p,
            Requester::Actor(p) => p,
        }
    }
}

/// The condition key naming the account a command runs as on the node.
pub const RUN_AS_USER_KEY: &str = "operon:RunAsUser";

/// The account a command runs as, for policies: the `user` asked for, or
/// `root` when none is (the agent's own account, root on a normal install).
fn run_as_user(user: Option<&str>) -> &str {
    user.unwrap_or("root")
}

/// A command to create, with everything optional defaulted as documented.
#[derive(Debug, Clone, Default)]
pub struct NewCommand {
    /// Defaults to `AWS-RunShellScript`.
    pub document: Option<String>,
    /// Defaults to the document's default version.
    pub document_version: DocumentVersion,
    pub parameters: Map<String, Value>,
    pub targets: TargetSpec,
    /// `N` or `N%`; defaults to 50.
    pub max_concurrency: Option<String>,
    /// `N` or `N%`; defaults to 0.
    pub max_errors: Option<String>,
    /// Per node; defaults to 3600.
    pub timeout_secs: Option<i64>,
    /// How long an offline node may take to receive it; defaults to 3600.
    pub delivery_timeout_secs: Option<i64>,
    pub cwd: Option<String>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    /// What the requester sent, kept with the command for everyone to see.
    pub request: Value,
    /// For a desired-state document: check or apply, and the association.
    pub state: StateOptions,
}

/// How a desired-state document runs; refused with a command document.
#[derive(Debug, Clone, Default)]
pub struct StateOptions {
    /// Apply unless `Check` is asked for.
    pub mode: Option<operon_proto::StateMode>,
    /// The association the run belongs to (its agents watch its files).
    pub association: Option<String>,
}

/// A node a command was not run on, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RefusedTarget {
    pub node: String,
    pub reason: String,
}

/// A created (or, for a derived id, found) command.
#[derive(Debug)]
pub struct Created {
    pub command: Command,
    /// The nodes it runs on, by name.
    pub targets: Vec<String>,
    pub refused: Vec<RefusedTarget>,
    /// False when a derived id named a command that already existed.
    pub new: bool,
}

/// A command with its per-node invocations and counts.
#[derive(Debug, Serialize)]
pub struct CommandView {
    #[serde(flatten)]
    pub command: Command,
    pub target_count: usize,
    pub completed_count: usize,
    pub error_count: usize,
    pub invocations: Vec<Invocation>,
}

impl CommandView {
    pub fn new(mut command: Command, invocations: Vec<Invocation>) -> Self {
        for value in command.run_template.env.values_mut() {
            *value = HIDDEN_ENV_VALUE.to_string();
        }
        let finished = || invocations.iter().filter(|i| i.status.is_final());
        CommandView {
            target_count: invocations.len(),
            completed_count: finished().count(),
            error_count: finished().filter(|i| i.status.is_error()).count(),
            command,
            invocations,
        }
    }
}

/// The commands service, over the parts of the server it uses.
pub struct CommandService<'a> {
    pub(crate) store: &'a Store,
    pub(crate) hub: &'a Hub,
    /// Wakes the dispatcher.
    /// Wakes the dispatcher.
    pub(crate) coordination: &'a Coordination,
    pub(crate) audit: &'a AuditLog,
    /// Seals environment values at rest.
    pub(crate) seal: &'a SealKey,
    pub(crate) output_cap_bytes: usize,
}

/// How a sealed environment value starts; values without it were stored
/// in clear by an earlier version and are passed through.
const SEALED_ENV_PREFIX: &str = "sealed:";

/// What views show instead of an environment value.
const HIDDEN_ENV_VALUE: &str = "(sealed)";

/// Environment values as stored: sealed, so neither the database nor any
/// view holds them in clear.
fn seal_env(key: &SealKey, env: BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.into_iter()
        .map(|(name, value)| (name, format!("{SEALED_ENV_PREFIX}{}", key.seal(&value))))
        .collect()
}

/// Environment values for the node: opened at the last moment, in the
/// message that carries them to the agent. A value that cannot be opened is
/// sent empty (and logged), never as its sealed text.
pub fn open_env(key: &SealKey, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .map(|(name, value)| {
            let clear = match value.strip_prefix(SEALED_ENV_PREFIX) {
                Some(sealed) => key.open(sealed).unwrap_or_else(|| {
                    tracing::error!(env = %name, "a command's environment value cannot be opened with events.key");
                    String::new()
                }),
                None => value.clone(),
            };
            (name.clone(), clear)
        })
        .collect()
}

impl CommandService<'_> {
    /// Validate, render, target and persist a command.
    pub async fn create(
        &self,
        id: CommandId,
        new: NewCommand,
        by: Requester<'_>,
    ) -> ServiceResult<Created> {
        let command_id = id.resolve();
        if id.derived()
            && let Some(existing) = self.store.command(&command_id).await?
        {
            return self.found(existing).await;
        }
        // Who may run where is decided before anything else is looked at.
        let candidates = self.resolve(&new.targets).await?;
        let (nodes, refused) = self
            .permitted(by.principal(), new.user.as_deref(), candidates)
            .await?;
        let max_concurrency = limit("max_concurrency", new.max_concurrency.clone(), "50")?;
        let max_errors = limit("max_errors", new.max_errors.clone(), "0")?;
        let timeout_secs = seconds("timeout_secs", new.timeout_secs, 3600)?;
        let delivery_timeout_secs =
            seconds("delivery_timeout_secs", new.delivery_timeout_secs, 3600)?;
        let document_name = new
            .document
            .clone()
            .unwrap_or_else(|| RUN_SHELL_SCRIPT.into());
        let (version, content) =
            load_document(self.store, &document_name, new.document_version).await?;
        let (parameters, steps) = self
            .render(&document_name, &content, &new.parameters, &new.state)
            .await?;
        let references = crate::params::refs::step_references(&steps);
        let parameters_as = if references.is_empty() {
            None
        } else {
            crate::params::refs::check_all(self.store, self.audit, by.principal(), &references)
                .await?;
            Some(crate::params::refs::authority_of(by.principal()))
        };
        let mut request = new.request;
        if !refused.is_empty() {
            if !request.is_object() {
                request = json!({});
            }
            if let Some(map) = request.as_object_mut() {
                map.insert("refused".into(), json!(refused));
            }
        }
        let command = Command {
            id: command_id,
            document_name,
            document_version: version,
            parameters: Value::Object(parameters),
            request,
            run_template: RunTemplate {
                steps,
                cwd: new.cwd,
                env: seal_env(self.seal, new.env),
                user: new.user,
                output_cap_bytes: self.output_cap_bytes,
                parameters_as,
            },
            max_concurrency,
            max_errors,
            timeout_secs,
            delivery_timeout_secs,
            status: InvocationStatus::Pending,
            created_at: now_millis(),
            finished_at: None,
            cancel_requested: false,
            requested_by: by.principal().name.clone(),
        };
        let pairs: Vec<(String, String)> = nodes
            .iter()
            .map(|n| (n.id.clone(), n.name.clone()))
            .collect();
        if let Err(e) = self.store.insert_command(&command, &pairs).await {
            // A derived id may race with a re-perform after a restart: the
            // first insert wins and the second finds it.
            if id.derived()
                && let Ok(Some(existing)) = self.store.command(&command.id).await
            {
                return self.found(existing).await;
            }
            return Err(e.into());
        }
        self.coordination.notify(Topic::Dispatch);
        let targets: Vec<String> = nodes.into_iter().map(|n| n.name).collect();
        tracing::info!(command_id = %command.id, targets = targets.len(), by = %command.requested_by, "command created");
        if let Requester::Actor(actor) = &by {
            self.audit_actor_run(actor, &command, &targets).await;
        }
        Ok(Created {
            command,
            targets,
            refused,
            new: true,
        })
    }

    /// Render a document of any kind to the steps a node runs.
    async fn render(
        &self,
        name: &str,
        content: &Value,
        given: &Map<String, Value>,
        state: &StateOptions,
    ) -> ServiceResult<(Map<String, Value>, Vec<operon_proto::Step>)> {
        let document = documents::parse_any(content).map_err(|e| {
            ServiceError::invalid("InvalidDocument", format!("document {name}: {e}"))
        })?;
        let bad_parameters = |e: documents::DocumentError| {
            ServiceError::invalid("InvalidParameters", format!("parameters for {name}: {e}"))
        };
        match document {
            documents::AnyDocument::Command(document) => {
                if state.mode.is_some() || state.association.is_some() {
                    return Err(ServiceError::invalid(
                        "NotStateDocument",
                        format!(
                            "document {name} is a command document: check mode and associations apply to desired-state documents (schemaVersion operon-state/1)"
                        ),
                    ));
                }
                let (values, steps) = document.render(given).map_err(bad_parameters)?;
                Ok((values, steps))
            }
            documents::AnyDocument::State(document) => {
                let mode = state.mode.unwrap_or(operon_proto::StateMode::Apply);
                let (values, mut step) = documents::state::render(
                    &document,
                    content,
                    given,
                    mode,
                    state.association.as_deref(),
                )
                .map_err(bad_parameters)?;
                if let Some(state_step) = step.state.as_mut() {
                    for (resource, source) in documents::state::sources(&document) {
                        let text = self.source_content(name, &resource, &source).await?;
                        state_step
                            .sources
                            .insert(resource, operon_proto::Secret(text));
                    }
                }
                Ok((values, vec![step]))
            }
            documents::AnyDocument::File(_) => Err(ServiceError::invalid(
                "NotRunnable",
                format!(
                    "document {name} is a file document ({}): name it as the source of a file in a desired-state document",
                    documents::state::FILE_SCHEMA
                ),
            )),
        }
    }

    /// The content of the file document a state document's resource names.
    async fn source_content(
        &self,
        name: &str,
        resource: &str,
        source: &str,
    ) -> ServiceResult<String> {
        let unusable = |why: String| {
            ServiceError::invalid(
                "InvalidDocument",
                format!("document {name}, resource {resource:?}: source {source:?} {why}"),
            )
        };
        let (_, content) = load_document(self.store, source, DocumentVersion::Default)
            .await
            .map_err(|e| unusable(format!("cannot be read: {}", e.message)))?;
        match documents::parse_any(&content) {
            Ok(documents::AnyDocument::File(text)) => Ok(text),
            _ => Err(unusable(format!(
                "is not a file document (schemaVersion {})",
                documents::state::FILE_SCHEMA
            ))),
        }
    }

    /// Ask a running command to stop: pending nodes are not started, running
    /// ones are told to cancel. A finished command is a conflict.
    pub async fn cancel(&self, id: &str) -> ServiceResult<()> {
        let command = self.get(id).await?;
        if !self.store.request_cancel(id).await? {
            return Err(ServiceError::conflict(
                "AlreadyFinished",
                format!(
                    "command {id} already finished with status {}",
                    command.status
                ),
            ));
        }
        let coordination = self.coordination;
        for invocation in self.store.invocations(id).await? {
            if invocation.status != InvocationStatus::InProgress {
                continue;
            }
            // Only the process holding the node's session can reach it.
            match coordination.backend.session_route(&invocation.node_id) {
                Some(holder) if holder == coordination.process => {
                    let message = ServerMessage::Cancel {
                        invocation_id: invocation.invocation_id(),
                    };
                    self.hub.send(&invocation.node_id, message);
                }
                Some(holder) => {
                    tracing::warn!(node_id = %invocation.node_id, holder = %holder.0,
                        "the node's session is held by another process; it is not told to cancel")
                }
                // Offline: the dispatcher ends it when it reconnects or times out.
                None => {}
            }
        }
        self.coordination.notify(Topic::Dispatch);
        tracing::info!(command_id = %id, "command cancel requested");
        Ok(())
    }

    pub async fn get(&self, id: &str) -> ServiceResult<Command> {
        self.store.command(id).await?.ok_or_else(|| {
            ServiceError::not_found("NoSuchCommand", format!("no command with id {id:?}"))
        })
    }

    pub async fn view(&self, command: Command) -> ServiceResult<CommandView> {
        let invocations = self.store.invocations(&command.id).await?;
        Ok(CommandView::new(command, invocations))
    }

    /// The newest commands first, `limit` of them (1..=1000).
    pub async fn list(&self, limit: i64) -> ServiceResult<Vec<CommandView>> {
        let mut out = Vec::new();
        for command in self.store.list_commands(limit.clamp(1, 1000)).await? {
            out.push(self.view(command).await?);
        }
        Ok(out)
    }

    /// The newest commands first, only those in `status` when given,
    /// `limit` of them (1..=1000). A filtered history looks further back
    /// (up to 1000 commands) to fill its page.
    pub async fn history(
        &self,
        status: Option<InvocationStatus>,
        limit: i64,
    ) -> ServiceResult<Vec<CommandView>> {
        let limit = limit.clamp(1, 1000);
        let scan = if status.is_some() { 1000 } else { limit };
        let mut out = Vec::new();
        for command in self.store.list_commands(scan).await? {
            if status.is_some_and(|s| s != command.status) {
                continue;
            }
            out.push(self.view(command).await?);
            if out.len() as i64 >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A node's `limit` most recent invocations, newest command first.
    pub async fn recent_on_node(
        &self,
        node_id: &str,
        limit: i64,
    ) -> ServiceResult<Vec<Invocation>> {
        Ok(self
            .store
            .node_invocations(node_id, limit.clamp(1, 1000))
            .await?)
    }

    /// The nodes a target spec selects now.
    pub async fn resolve(&self, targets: &TargetSpec) -> ServiceResult<Vec<Node>> {
        let nodes = self.store.list_nodes().await?;
        let mut inventory = super::targets::InventoryMatches::new();
        for (kind, filter) in targets.inventory_filters() {
            let ids = crate::inventory::service::matching_nodes(self.store, &kind, &filter).await?;
            inventory.insert((kind, filter), ids);
        }
        targets
            .select_with(&nodes, &inventory)
            .map_err(target_error)
    }

    async fn found(&self, command: Command) -> ServiceResult<Created> {
        let invocations = self.store.invocations(&command.id).await?;
        Ok(Created {
            targets: invocations.into_iter().map(|i| i.node_name).collect(),
            command,
            refused: Vec::new(),
            new: false,
        })
    }

    /// Split the candidates into the nodes the principal may run commands on
    /// and the refused ones. All refused is Forbidden (and audited); some
    /// refused is noted in the command and its audit record.
    async fn permitted(
        &self,
        principal: &Principal,
        user: Option<&str>,
        candidates: Vec<Node>,
    ) -> ServiceResult<(Vec<Node>, Vec<RefusedTarget>)> {
        let mut allowed = Vec::new();
        let mut refused = Vec::new();
        for node in candidates {
            let request = node_request(principal, "commands:Run", &node)
                .with(RUN_AS_USER_KEY, [run_as_user(user)]);
            match principal.decide(&request) {
                Ok(()) => allowed.push(node),
                Err(reason) => refused.push(RefusedTarget {
                    node: node.name,
                    reason,
                }),
            }
        }
        if !refused.is_empty() {
            let names: Vec<&str> = refused.iter().map(|r| r.node.as_str()).collect();
            let resource = format!("node/{}", names.join(","));
            let reason = refused[0].reason.clone();
            record_denial_in(self.audit, principal, "commands:Run", &resource, &reason).await;
            if allowed.is_empty() {
                return Err(ServiceError::forbidden(format!(
                    "{} may not commands:Run on {}: {reason}",
                    principal.name,
                    names.join(", ")
                )));
            }
        }
        for node in &allowed {
            principal.allowed_action("commands:Run", &format!("node/{}", node.name));
        }
        Ok((allowed, refused))
    }

    /// A rule's or an execution's command is audited like a user's call.
    async fn audit_actor_run(&self, actor: &Principal, command: &Command, targets: &[String]) {
        let entry = AuditEntry {
            actor: actor.name.clone(),
            action: "commands:Run".into(),
            resource: format!("node/{}", targets.join(",")),
            outcome: "allowed".into(),
            detail: json!({
                "command_id": command.id,
                "document": command.document_name,
                "document_version": command.document_version,
                "targets": targets,
                "acting_as": actor.acting_as,
            }),
        };
        if let Err(e) = self.audit.record(entry).await {
            tracing::error!(error = %e, command_id = %command.id, "an actor's command could not be audited");
        }
    }
}

/// The service error for refused targets. `code` names the rule, so callers
/// with their own vocabulary (a runbook's `Operon.NoTargets`) can map it.
pub fn target_error(e: TargetError) -> ServiceError {
    let message = e.to_string();
    match e {
        TargetError::UnknownNode(_) => ServiceError::not_found("UnknownNode", message),
        TargetError::RevokedNode(_) => ServiceError::invalid("RevokedNode", message),
        TargetError::NoMatch(_) => ServiceError::invalid("NoMatchingNodes", message),
        TargetError::Empty | TargetError::AllCombined | TargetError::BadFilter { .. } => {
            ServiceError::invalid("InvalidTargets", message)
        }
    }
}

fn limit(field: &str, value: Option<String>, default: &str) -> ServiceResult<String> {
    let text = value.unwrap_or_else(|| default.to_string());
    Limit::parse(&text)
        .map_err(|e| ServiceError::invalid("InvalidLimit", format!("{field}: {e}")))?;
    Ok(text)
}

/// The longest execution and delivery timeout: 30 days (SSM allows 48 hours
/// and 30 days). Larger values could only be mistakes, and would overflow the
/// dispatcher's deadlines.
pub const MAX_TIMEOUT_SECS: i64 = 30 * 24 * 3600;

fn seconds(field: &str, value: Option<i64>, default: i64) -> ServiceResult<i64> {
    match value {
        None => Ok(default),
        Some(v) if (1..=MAX_TIMEOUT_SECS).contains(&v) => Ok(v),
        Some(v) if v < 1 => Err(ServiceError::invalid(
            "InvalidLimit",
            format!("{field} must be at least 1, got {v}"),
        )),
        Some(v) => Err(ServiceError::invalid(
            "InvalidLimit",
            format!("{field} must be at most {MAX_TIMEOUT_SECS} (30 days), got {v}"),
        )),
    }
}
