//! The store, one trait per feature. Every backend implements all of them;
//! [`Backend`] names the whole set and [`DynStore`] is how a server holds one.
//!
//! Methods take and return plain records (see `records.rs` and the feature
//! modules) and [`StoreError`](crate::StoreError); times are milliseconds
//! since the Unix epoch, chosen by the caller. Each method is one
//! transaction. `Ok(Err(..))` answers are refusals the caller reports (an
//! unknown token, a taken name); `Err(..)` is a storage failure or a
//! [`Conflict`](crate::StoreError::Conflict).

use std::sync::Arc;

use async_trait::async_trait;
use operon_proto::{CommandResult, InvocationStatus};
use serde_json::Value;

use crate::{
    AccessKey, AgentWrite, AlarmHistoryRow, AlarmRecord, AlarmStateRow, ApiToken, Approval,
    Archive, AssociationRecord, AssociationRun, AssociationVersion, AuditAdvance, AuditEntry,
    AuditFilter, AuditRecord, Bus, ClaimedDelivery, Command, ComplianceChange, ComplianceNode,
    ComplianceReport, ComplianceResource, ConsoleSession, CredentialMatch, DeadLetter,
    DeliveryOutcome, Document, DocumentVersions, EnrollRefusal, EnrollToken, ExecutionFilter,
    ExecutionRecord, HealRecord, HealRun, HistoryRow, InboundWebhook, Incident, IncidentEvent,
    IncidentFilter, InventoryChange, InventoryRefusal, InventoryRow, Invocation, LabelRefusal,
    LogBatchWrite, LogFilter, MetricBatchWrite, MetricRollup, MetricSeries, MonitorRecord,
    NewEvent, NewIncidentEvent, NewNode, NewParameterVersion, Node, ParamSync, ParamSyncNode,
    ParameterVersion, PolicyRecord, PruneStep, PutRefusal, Replay, Resolution, Result, Role, Rule,
    SessionEnd, SessionFilter, SessionRecord, StatusTable, StepWrite, StoredAuditRecord,
    StoredEvent, StoredLog, Tags, TimerRow, User, VersionRunAs, Workflow, WorkflowTask,
    WorkflowVersionInfo,
};

/// Every store trait: what a backend is.
pub trait Backend:
    Lifecycle
    + NodeStore
    + DocumentStore
    + CommandStore
    + IdentityStore
    + AuditStore
    + EventStore
    + WorkflowStore
    + ParameterStore
    + AssociationStore
    + InventoryStore
    + AlarmStore
    + IncidentStore
    + HealStore
    + MetricStore
    + LogStore
    + MonitorStore
    + SessionStore
    + ConsoleSessionStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Backend for T where
    T: Lifecycle
        + NodeStore
        + DocumentStore
        + CommandStore
        + IdentityStore
        + AuditStore
        + EventStore
        + WorkflowStore
        + ParameterStore
        + AssociationStore
        + InventoryStore
        + AlarmStore
        + IncidentStore
        + HealStore
        + MetricStore
        + LogStore
        + MonitorStore
        + SessionStore
        + ConsoleSessionStore
        + ConsoleSessionStore
        + Send
        + Sync
        + 'static
{
}

/// A backend chosen at run time, shared by the server's tasks.
pub type DynStore = Arc<dyn Backend>;

/// What a backend does besides keeping records.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// Wait for the connections in use to be returned, then close them all.
    /// Every later call fails.
    async fn close(&self);

    /// The schema version after migrations.
    async fn schema_version(&self) -> Result<i64>;
}

/// The fleet: enrollment tokens, nodes and their credentials.
///
/// A node's current credential hash is on the node; a rotation first adds
/// the new one as *pending* (both accepted), then
/// [`complete_credential_rotation`](NodeStore::complete_credential_rotation)
/// makes it current and *retires* the old one (refused, with the time it was
/// replaced), in one transaction.
#[async_trait]
pub trait NodeStore: Send + Sync {
    // ----- Enrollment tokens -----------------------------------------------
    async fn insert_enroll_token(&self, token: &EnrollToken) -> Result<()>;

    async fn list_enroll_tokens(&self) -> Result<Vec<EnrollToken>>;

    /// Revoke an enrollment token: it enrolls nothing from now on (an
    /// enrollment racing the revocation re-checks it in its own update).
    /// Revoking twice keeps the first time. `None` if there is no such token.
    async fn revoke_enroll_token(&self, id: &str, now: i64) -> Result<Option<EnrollToken>>;

    /// Enroll a node with a token, atomically: the token's use is counted and
    /// the node inserted in one transaction, so a token of N uses enrolls at
    /// most N nodes even under concurrent requests.
    ///
    /// A backend counts the use with one conditional row update (`uses <
    /// uses_allowed AND expires_at > now`, checking the rows it changed), not
    /// by a read before it: on an engine with row locks the update waits for
    /// a concurrent enrollment and re-checks the condition on its result. A
    /// taken name (the node's gets `-2`, `-3`, ... appended) is skipped by
    /// the insert itself (`ON CONFLICT (name) DO NOTHING`), for the same
    /// reason.
    async fn enroll_node(
        &self,
        token_hash: &str,
        now: i64,
        node: NewNode,
    ) -> Result<Result<Node, EnrollRefusal>>;

    // ----- Nodes -------------------------------------------------------------
    async fn node_by_credential(&self, hash: &str) -> Result<Option<Node>>;

    async fn node(&self, id: &str) -> Result<Option<Node>>;

    /// Find a node by id, or else by name.
    async fn node_by_id_or_name(&self, key: &str) -> Result<Option<Node>>;

    async fn list_nodes(&self) -> Result<Vec<Node>>;

    async fn update_node_seen(
        &self,
        id: &str,
        inventory: Option<&operon_proto::Inventory>,
        now: i64,
    ) -> Result<()>;

    async fn set_node_tags(
        &self,
        id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()>;

    async fn revoke_node(&self, id: &str, now: i64) -> Result<()>;

    // ----- Credential rotation ---------------------------------------------------
    /// Look up a credential hash among current, pending and retired ones.
    async fn find_node_credential(&self, hash: &str) -> Result<Option<CredentialMatch>>;

    /// Record the new credential of a rotation; the current one stays valid.
    async fn begin_credential_rotation(
        &self,
        node_id: &str,
        rotation_id: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<()>;

    /// Make the pending credential of `rotation_id` the node's current one and
    /// retire the old one (and any other unconfirmed rotation), in one
    /// transaction. Returns false if there is no such pending rotation (for
    /// example because it was already completed).
    async fn complete_credential_rotation(
        &self,
        node_id: &str,
        rotation_id: &str,
        now: i64,
    ) -> Result<bool>;

    /// When the node's credential was last replaced by a rotation, if ever.
    async fn credential_rotated_at(&self, node_id: &str) -> Result<Option<i64>>;
}

/// Command documents (SSM schemaVersion 2.2), versioned by name.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    // ----- Documents ---------------------------------------------------------
    /// Store a new version of a document; returns the version number. The
    /// first version of a name becomes its default; later ones do not.
    async fn put_document(&self, name: &str, content: &serde_json::Value, now: i64) -> Result<i64>;

    /// A document version, or the default version when `version` is `None`.
    async fn document(&self, name: &str, version: Option<i64>) -> Result<Option<Document>>;

    /// A document's default and latest versions, if it exists.
    async fn document_versions(&self, name: &str) -> Result<Option<DocumentVersions>>;

    /// Every document's default and latest versions, by name.
    async fn list_documents(&self) -> Result<Vec<DocumentVersions>>;

    /// Make `version` the default version of `name`. Returns the previous
    /// default, or `None` (and changes nothing) when the document has no
    /// such version.
    async fn set_default_document_version(&self, name: &str, version: i64) -> Result<Option<i64>>;
}

/// Commands and their per-node invocations, as the commands service, the
/// dispatcher and the agent writer use them. A final result is recorded
/// once: the first wins and later ones change nothing.
#[async_trait]
pub trait CommandStore: Send + Sync {
    // ----- Commands ----------------------------------------------------------
    /// Persist a command and one Pending invocation per target, atomically.
    async fn insert_command(&self, command: &Command, targets: &[(String, String)]) -> Result<()>;

    async fn command(&self, id: &str) -> Result<Option<Command>>;

    async fn list_commands(&self, limit: i64) -> Result<Vec<Command>>;

    /// Commands not yet in a final status: the dispatcher's work list.
    async fn active_commands(&self) -> Result<Vec<Command>>;

    async fn request_cancel(&self, id: &str) -> Result<bool>;

    async fn set_command_status(
        &self,
        id: &str,
        status: InvocationStatus,
        finished_at: Option<i64>,
    ) -> Result<()>;

    async fn invocations(&self, command_id: &str) -> Result<Vec<Invocation>>;

    /// In-progress invocations on one node: resent to it when it connects.
    async fn in_progress_on_node(&self, node_id: &str) -> Result<Vec<Invocation>>;

    /// A node's `limit` most recent invocations, newest command first.
    async fn node_invocations(&self, node_id: &str, limit: i64) -> Result<Vec<Invocation>>;

    /// Record a final status decided by the server (not run, undeliverable,
    /// cancelled before start, lost). Only a non-final invocation changes.
    async fn finish_invocation_without_result(
        &self,
        command_id: &str,
        node_id: &str,
        status: InvocationStatus,
        detail: &str,
        now: i64,
    ) -> Result<bool>;

    /// Record an agent's result. Idempotent: the first final result wins and
    /// later duplicates change nothing. Returns whether this call changed it.
    async fn record_result(
        &self,
        command_id: &str,
        node_id: &str,
        result: &CommandResult,
    ) -> Result<bool>;

    // ----- Agent writes and dispatch ------------------------------------------
    /// Apply many agent writes in one transaction (group commit: one fsync for
    /// a burst of results instead of one each). Returns, per write, whether it
    /// changed anything; duplicates and late results change nothing.
    async fn apply_agent_writes(&self, writes: &[AgentWrite]) -> Result<Vec<bool>>;

    /// Move many Pending invocations of one command to InProgress in one
    /// transaction. Returns the nodes that were actually Pending.
    async fn mark_dispatched_many(
        &self,
        command_id: &str,
        node_ids: &[String],
        now: i64,
    ) -> Result<Vec<String>>;

    // ----- Metrics -------------------------------------------------------------
    /// Row counts per status of `commands` or `invocations`, for metrics.
    async fn count_by_status(&self, table: StatusTable) -> Result<Vec<(String, i64)>>;
}

/// Users, their API tokens (hashes only), policies and roles. A taken name
/// is a [`Conflict`](crate::StoreError::Conflict).
#[async_trait]
pub trait IdentityStore: Send + Sync {
    // ----- API tokens ----------------------------------------------------------
    async fn insert_api_token(&self, token: &ApiToken) -> Result<()>;

    // ----- API tokens -------------------------------------------------------
    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>>;

    async fn count_api_tokens(&self) -> Result<i64>;

    // ----- Users -------------------------------------------------------------
    /// Create a user with these roles, all or nothing; a taken name is a
    /// [`StoreError::Conflict`](crate::StoreError::Conflict).
    async fn insert_user(&self, user: &User, roles: &[String]) -> Result<()>;

    async fn user(&self, id: &str) -> Result<Option<User>>;

    async fn user_by_name(&self, name: &str) -> Result<Option<User>>;

    async fn list_users(&self) -> Result<Vec<User>>;

    /// Disable a user: its tokens stop working at once. Idempotent.
    async fn disable_user(&self, id: &str, now: i64) -> Result<()>;

    // ----- API tokens ----------------------------------------------------------
    /// Tokens of one user, or every token with `None`, newest first.
    async fn list_api_tokens(&self, user_id: Option<&str>) -> Result<Vec<ApiToken>>;

    async fn api_token(&self, id: &str) -> Result<Option<ApiToken>>;

    /// Revoke a token. Idempotent; the first revocation time is kept.
    async fn revoke_api_token(&self, id: &str, now: i64) -> Result<()>;

    /// Replace the admin token (the one without a user): the new one is
    /// inserted and every earlier admin token revoked, in one transaction.
    async fn rotate_admin_token(&self, new: &ApiToken, now: i64) -> Result<()>;

    // ----- Policies ------------------------------------------------------------
    /// Create or replace a policy (the caller validated the document).
    async fn put_policy(&self, name: &str, document: &Value, now: i64) -> Result<()>;

    async fn policy(&self, name: &str) -> Result<Option<PolicyRecord>>;

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>>;

    /// Delete a policy that no role uses; `false` if there was none.
    async fn delete_policy(&self, name: &str) -> Result<bool>;

    /// Every policy that applies to a user through its roles, by name.
    async fn policies_for_user(&self, user_id: &str) -> Result<Vec<PolicyRecord>>;

    // ----- Roles ---------------------------------------------------------------
    async fn create_role(&self, name: &str, description: &str, now: i64) -> Result<()>;

    async fn list_roles(&self) -> Result<Vec<Role>>;

    async fn role(&self, name: &str) -> Result<Option<Role>>;

    /// Delete a role (its attachments and grants go with it).
    async fn delete_role(&self, name: &str) -> Result<bool>;

    /// Attach (`true`) or detach (`false`) a policy to a role. Idempotent.
    async fn set_role_policy(&self, role: &str, policy: &str, attached: bool) -> Result<()>;

    /// Grant (`true`) or take back (`false`) a role from a user. Idempotent.
    async fn set_user_role(&self, user_id: &str, role: &str, granted: bool) -> Result<()>;

    /// Role names granted to a user.
    async fn user_roles(&self, user_id: &str) -> Result<Vec<String>>;
}

/// The append-only, hash-chained audit log (see [`crate::verify_chain`]).
/// Appends from any number of writers form one chain: the head is taken
/// inside the appending transaction, from a row a concurrent appender waits
/// for.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Append entries, chained, in one transaction. Returns the head the
    /// records extended and the new one (the last record's sequence number
    /// and hash), or `None` for no entries.
    async fn append_audit(&self, entries: &[AuditEntry], at: i64) -> Result<Option<AuditAdvance>>;

    /// Records matching `filter`, oldest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;

    /// The hash of the record numbered `seq`, if there is one.
    async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>>;

    /// The sequence number and hash of the last record, if any.
    async fn audit_last(&self) -> Result<Option<(i64, String)>>;

    /// The whole log in sequence order, as stored (for verification).
    async fn audit_chain(&self) -> Result<Vec<StoredAuditRecord>>;
}

/// The event bus: buses, events and their delivery outbox (written in the
/// events' transaction), dead letters, rules, inbound webhooks, archives
/// and replays. Event sequence numbers are unique, gap-free, in commit
/// order, and never reused after pruning.
#[async_trait]
pub trait EventStore: Send + Sync {
    // ----- Buses -------------------------------------------------------------
    /// Create a bus; false if it exists already.
    async fn create_bus(&self, name: &str, now: i64) -> Result<bool>;

    async fn list_buses(&self) -> Result<Vec<Bus>>;

    /// Delete a bus that no rule, archive or webhook uses. Ok(false) if absent;
    /// a Conflict names what still uses it.
    async fn delete_bus(&self, name: &str) -> Result<bool>;

    // ----- Events and the outbox -------------------------------------------
    /// Persist events and their deliveries in one transaction (one fsync
    /// for the whole batch). Returns each event's sequence number.
    ///
    /// Sequence numbers are taken from one counter row in the same
    /// transaction (`UPDATE ... RETURNING`, a row lock until commit): unique,
    /// gap-free, consecutive within a batch, never reused after pruning, and
    /// in commit order.
    async fn put_events(&self, events: &[NewEvent]) -> Result<Vec<i64>> {
        self.put_events_audited(events, &[], 0)
            .await
            .map(|(seqs, _)| seqs)
    }

    /// [`EventStore::put_events`] with the audit records of the calls that put
    /// them, in the same transaction. Returns the sequence numbers and the
    /// new audit head, if records were written.
    async fn put_events_audited(
        &self,
        events: &[NewEvent],
        audit: &[crate::AuditEntry],
        audited_at: i64,
    ) -> Result<(Vec<i64>, Option<AuditAdvance>)>;

    /// The first event with this id on `bus`.
    async fn event_by_id_on_bus(&self, id: &str, bus: &str) -> Result<Option<StoredEvent>>;

    /// Events of `bus` ingested in [from, to], after `after_seq`, oldest first.
    async fn events_between(
        &self,
        bus: &str,
        from: i64,
        to: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>>;

    /// Release every claim. Only a process that knows it is the only one
    /// may call this (at start, the claims of a crashed predecessor belong
    /// to no one); others wait for claims to expire.
    async fn release_delivery_claims(&self) -> Result<u64>;

    /// Release claims whose expiry has passed (their owner died or hung), so
    /// the deliveries can be claimed again.
    async fn release_expired_delivery_claims(&self, now: i64) -> Result<u64>;

    /// Claim up to `limit` deliveries due at `now`, oldest first, for
    /// `owner` until `now + lease_ms`.
    async fn claim_due_deliveries(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>>;

    /// When the next unclaimed delivery is due, if any.
    async fn next_delivery_due(&self) -> Result<Option<i64>>;

    async fn count_pending_deliveries(&self) -> Result<i64>;

    /// Record the outcomes of `owner`'s attempts, all in one transaction. A
    /// retry or a dead letter applies only while the claim is still the
    /// owner's (an expired claim taken by another process is theirs); a
    /// success removes the delivery whoever holds it.
    async fn apply_delivery_outcomes(
        &self,
        owner: &str,
        outcomes: &[DeliveryOutcome],
    ) -> Result<()>;

    // ----- Dead letters ------------------------------------------------------
    async fn list_dead_letters(&self, rule: Option<&str>, limit: i64) -> Result<Vec<DeadLetter>>;

    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>>;

    /// Move dead letters back into the outbox, due now, attempts reset, with
    /// their delivery ids unchanged. Returns the ids redriven.
    async fn redrive_dead_letters(&self, ids: &[String], now: i64) -> Result<Vec<String>>;

    // ----- Rules -------------------------------------------------------------
    /// Insert or replace a rule (keeping its creation time and last firing).
    async fn put_rule(&self, rule: &Rule) -> Result<()>;

    async fn list_rules(&self) -> Result<Vec<Rule>>;

    async fn rule(&self, name: &str) -> Result<Option<Rule>>;

    /// Delete a rule. Its pending deliveries stay and end in the dead
    /// letters (nothing accepted is dropped silently).
    async fn delete_rule(&self, name: &str) -> Result<bool>;

    async fn set_rule_enabled(&self, name: &str, enabled: bool, now: i64) -> Result<bool>;

    /// Record that a scheduled rule fired for the tick at `at`.
    async fn set_rule_last_fired(&self, name: &str, at: i64) -> Result<()>;

    // ----- Inbound webhooks -------------------------------------------------
    /// Create a webhook; false if the name is taken.
    async fn create_webhook(&self, hook: &InboundWebhook) -> Result<bool>;

    async fn list_webhooks(&self) -> Result<Vec<InboundWebhook>>;

    async fn webhook(&self, name: &str) -> Result<Option<InboundWebhook>>;

    async fn delete_webhook(&self, name: &str) -> Result<bool>;

    // ----- Archives and replays ---------------------------------------------
    async fn create_archive(&self, archive: &Archive) -> Result<bool>;

    async fn list_archives(&self) -> Result<Vec<Archive>>;

    async fn archive(&self, name: &str) -> Result<Option<Archive>>;

    async fn delete_archive(&self, name: &str) -> Result<bool>;

    /// Delete events older than `before` on `bus` that no delivery or dead
    /// letter still needs. Returns how many went.
    async fn prune_events(&self, bus: &str, before: i64) -> Result<u64>;

    async fn create_replay(&self, replay: &Replay) -> Result<bool>;

    async fn update_replay(
        &self,
        name: &str,
        state: &str,
        events_replayed: i64,
        finished_at: Option<i64>,
        error: Option<&str>,
    ) -> Result<()>;

    async fn list_replays(&self) -> Result<Vec<Replay>>;

    async fn replay(&self, name: &str) -> Result<Option<Replay>>;
}

/// Durable workflows: versions of state machines, executions with their
/// engine state, history, timers, tasks and approvals.
/// [`apply_workflow_steps`](WorkflowStore::apply_workflow_steps) commits
/// many executions' steps in one transaction.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    // ----- State machines --------------------------------------------------
    /// Create a state machine, or add a version to it. `create_only` refuses an
    /// existing (not deleted) one; otherwise the workflow must exist.
    /// Returns the new version.
    async fn put_workflow(
        &self,
        name: &str,
        definition: &Value,
        role: Option<&str>,
        by: &str,
        now: i64,
        create_only: bool,
    ) -> Result<Result<i64, String>>;

    /// The latest version of a live (not deleted) workflow.
    async fn workflow(&self, name: &str) -> Result<Option<Workflow>>;

    async fn list_workflows(&self) -> Result<Vec<Workflow>>;

    /// A definition by version (versions outlive the workflow's deletion, so
    /// old executions can still be shown and resumed).
    async fn workflow_definition(&self, name: &str, version: i64) -> Result<Option<Value>>;

    /// Who made a version and the role it names, if any: what its
    /// executions act as.
    async fn workflow_run_as(&self, name: &str, version: i64) -> Result<Option<VersionRunAs>>;

    /// Every version of a workflow (deleted workflows' included), newest
    /// first; empty when there is none.
    async fn workflow_versions(&self, name: &str) -> Result<Vec<WorkflowVersionInfo>>;

    /// Mark a workflow deleted. Refused while executions of it are running.
    async fn delete_workflow(&self, name: &str, now: i64) -> Result<Result<(), String>>;

    // ----- Executions ------------------------------------------------------
    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>>;

    async fn execution_by_name(
        &self,
        workflow: &str,
        name: &str,
    ) -> Result<Option<ExecutionRecord>>;

    /// The execution row and its serialised engine state.
    async fn execution_engine(&self, id: &str) -> Result<Option<(ExecutionRecord, String)>>;

    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionRecord>>;

    /// Execution counts per status, for metrics and benchmarks.
    async fn count_executions_by_status(&self) -> Result<Vec<(String, i64)>>;

    /// History events with `seq > after`, oldest first, as JSON text.
    async fn execution_history(&self, id: &str, after: i64, limit: i64) -> Result<Vec<HistoryRow>>;

    /// Commit many executions' steps in one transaction: all of them or none.
    /// Returns the new audit head when the steps carried audit records.
    async fn apply_workflow_steps(&self, steps: &[StepWrite]) -> Result<Option<AuditAdvance>>;

    // ----- Timers, tasks and approvals ------------------------------------
    /// Every timer of a running execution (the runner's heap after a restart).
    async fn workflow_timers(&self) -> Result<Vec<TimerRow>>;

    /// Every pending task (re-performed after a restart).
    async fn workflow_tasks(&self) -> Result<Vec<WorkflowTask>>;

    async fn workflow_task(&self, token: &str) -> Result<Option<WorkflowTask>>;

    async fn approval(&self, id: &str) -> Result<Option<Approval>>;

    async fn list_approvals(&self, status: Option<&str>, limit: i64) -> Result<Vec<Approval>>;
}

/// The store traits, imported anonymously: `use operon_store::prelude::*;`
/// makes every store method callable without naming the traits.
pub mod prelude {
    pub use super::{
        AuditStore as _, Backend as _, CommandStore as _, DocumentStore as _, EventStore as _,
        IdentityStore as _, InventoryStore as _, Lifecycle as _, MonitorStore as _, NodeStore as _,
        WorkflowStore as _,
    };
}

/// Parameter Store: versioned parameters, labels, tags; and the access keys
/// of SigV4-signed calls. Each method is one transaction.
#[async_trait]
pub trait ParameterStore: Send + Sync {
    /// Write the next version of a parameter. `expect_latest` is the latest
    /// version the caller validated against (`None`: the parameter must not
    /// exist, and it is created with `tags`). Past
    /// [`MAX_PARAMETER_VERSIONS`](crate::MAX_PARAMETER_VERSIONS) the oldest
    /// version without labels is dropped. Answers the new version number.
    async fn put_parameter(
        &self,
        version: &NewParameterVersion,
        expect_latest: Option<i64>,
        tags: &Tags,
    ) -> Result<std::result::Result<i64, PutRefusal>>;

    /// The latest version of a parameter.
    async fn parameter(&self, name: &str) -> Result<Option<ParameterVersion>>;

    /// One version, by number.
    async fn parameter_version(&self, name: &str, version: i64)
    -> Result<Option<ParameterVersion>>;

    /// The version carrying `label`.
    async fn parameter_by_label(&self, name: &str, label: &str)
    -> Result<Option<ParameterVersion>>;

    /// Latest versions of the parameters whose names start with `prefix`
    /// and sort after `after`, in name order, at most `limit`.
    async fn parameters_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ParameterVersion>>;

    /// Every kept version of a parameter, oldest first (empty if none).
    async fn parameter_history(&self, name: &str) -> Result<Vec<ParameterVersion>>;

    /// Put `labels` on one version, moving each from whatever version had it.
    async fn label_parameter(
        &self,
        name: &str,
        version: i64,
        labels: &[String],
    ) -> Result<std::result::Result<(), LabelRefusal>>;

    /// Take `labels` off one version; answers those it carried.
    async fn unlabel_parameter(
        &self,
        name: &str,
        version: i64,
        labels: &[String],
    ) -> Result<std::result::Result<Vec<String>, LabelRefusal>>;

    /// Delete a parameter with every version, label and tag; answers the
    /// latest version it had, if it existed.
    async fn delete_parameter(&self, name: &str) -> Result<Option<ParameterVersion>>;

    /// A parameter's tags, `None` if there is no such parameter.
    async fn parameter_tags(&self, name: &str) -> Result<Option<Tags>>;

    /// Add (replacing values) and remove tags; `false` if no such parameter.
    async fn tag_parameter(&self, name: &str, add: &Tags, remove: &[String]) -> Result<bool>;

    /// Sealed versions after `(name, version)` in key order, at most `limit`:
    /// what a key rewrap walks.
    async fn sealed_parameter_versions(
        &self,
        after: Option<(&str, i64)>,
        limit: usize,
    ) -> Result<Vec<(String, i64, Vec<u8>)>>;

    /// Replace a sealed envelope if it is still `old`; `false` otherwise.
    async fn reseal_parameter_version(
        &self,
        name: &str,
        version: i64,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool>;

    /// Latest versions that carry policies, with when they were last
    /// evaluated.
    async fn parameters_with_policies(&self) -> Result<Vec<(ParameterVersion, Option<i64>)>>;

    /// Record that a parameter's policies were evaluated up to `at`.
    async fn set_policy_checked(&self, name: &str, at: i64) -> Result<()>;

    // ----- Access keys ---------------------------------------------------------
    async fn insert_access_key(&self, key: &AccessKey) -> Result<()>;

    async fn access_key(&self, id: &str) -> Result<Option<AccessKey>>;

    /// Keys of one user, or every key with `None`, newest first.
    async fn list_access_keys(&self, user_id: Option<&str>) -> Result<Vec<AccessKey>>;

    /// Revoke a key. Idempotent; the first revocation time is kept.
    async fn revoke_access_key(&self, id: &str, now: i64) -> Result<bool>;

    /// Every access key's sealed secret, for a key rewrap.
    async fn reseal_access_key(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool>;

    // ----- Syncs (files that follow parameters) ---------------------------------------
    /// Create or replace a sync (its node states are kept); true if created.
    async fn put_param_sync(&self, sync: &ParamSync) -> Result<bool>;

    async fn param_sync(&self, name: &str) -> Result<Option<ParamSync>>;

    async fn list_param_syncs(&self) -> Result<Vec<ParamSync>>;

    /// Delete a sync with its node states; false if there was none.
    async fn delete_param_sync(&self, name: &str) -> Result<bool>;

    /// A sync's node states, by node name.
    async fn param_sync_nodes(&self, name: &str) -> Result<Vec<ParamSyncNode>>;

    /// Write nodes' states of syncs (insert or replace), in one transaction;
    /// states of a sync that no longer exists are not written.
    async fn put_param_sync_nodes(&self, nodes: &[ParamSyncNode]) -> Result<()>;

    async fn delete_param_sync_node(&self, name: &str, node_id: &str) -> Result<()>;
}

/// State Manager: associations, their runs and compliance. Each method is
/// one transaction.
#[async_trait]
pub trait AssociationStore: Send + Sync {
    /// Write an association's next version (and keep it in its versions).
    /// `expect_version`: `None` creates (false if the name exists), `Some(v)`
    /// updates only if the current version is `v` (false otherwise). The
    /// scheduler's marks are kept across updates.
    async fn put_association(
        &self,
        record: &AssociationRecord,
        expect_version: Option<i64>,
    ) -> Result<bool>;

    async fn association(&self, name: &str) -> Result<Option<AssociationRecord>>;

    /// Every association, by name.
    async fn list_associations(&self) -> Result<Vec<AssociationRecord>>;

    /// Versions of an association, oldest first.
    async fn association_versions(&self, name: &str) -> Result<Vec<AssociationVersion>>;

    /// Delete an association with its versions, runs and compliance; false if
    /// there was none.
    async fn delete_association(&self, name: &str) -> Result<bool>;

    /// Set the scheduler's marks (each `Some` replaces, `None` keeps).
    async fn mark_association(
        &self,
        name: &str,
        last_scheduled_at: Option<i64>,
        applied_document_version: Option<i64>,
    ) -> Result<()>;

    /// Remember a command an association started.
    async fn insert_association_run(&self, run: &AssociationRun) -> Result<()>;

    async fn association_run(&self, command_id: &str) -> Result<Option<AssociationRun>>;

    /// The newest runs of an association first, at most `limit`.
    async fn association_runs(&self, name: &str, limit: i64) -> Result<Vec<AssociationRun>>;

    /// Record what was seen of an association on a node, and the node's
    /// status that follows (non-compliant if any of its resources is).
    /// Nothing is written for an association that no longer exists
    /// (answered `None`).
    async fn record_compliance(
        &self,
        report: &ComplianceReport,
    ) -> Result<Option<ComplianceChange>>;

    /// Node states, optionally of one association and/or one node.
    async fn compliance_nodes(
        &self,
        association: Option<&str>,
        node_id: Option<&str>,
    ) -> Result<Vec<ComplianceNode>>;

    /// Resource states, optionally of one association and/or one node.
    async fn compliance_resources(
        &self,
        association: Option<&str>,
        node_id: Option<&str>,
    ) -> Result<Vec<ComplianceResource>>;
}

/// Inventory: per node and kind, the items an agent reported and the digest
/// of that set ([`operon_proto::inventory_digest`]).
#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Apply one delta in one transaction: `base` must be the digest held
    /// (`None`: the delta is the whole set, replacing what is held), then
    /// upserts and removals are written and the set's digest is checked
    /// against `delta.digest` and stored. A refusal writes nothing.
    async fn apply_inventory(
        &self,
        node_id: &str,
        delta: &operon_proto::InventoryDelta,
        now: i64,
    ) -> Result<std::result::Result<InventoryChange, InventoryRefusal>>;

    /// One node's items, of one kind or all, ordered by kind and key.
    async fn node_inventory(&self, node_id: &str, kind: Option<&str>) -> Result<Vec<InventoryRow>>;

    /// Items of `kind` across nodes, only those keyed `key` when given,
    /// ordered by node and key.
    async fn inventory_items(&self, kind: &str, key: Option<&str>) -> Result<Vec<InventoryRow>>;
}

/// Alarms: definitions, the state of each instance, and the history of
/// state changes (the outbox of their events). Each method is one transaction.
#[async_trait]
pub trait AlarmStore: Send + Sync {
    /// Write an alarm's next version. `expect_version`: `None` creates (false
    /// if the name exists), `Some(v)` updates only if the current version is
    /// `v` (false otherwise). States are kept across updates.
    async fn put_alarm(&self, record: &AlarmRecord, expect_version: Option<i64>) -> Result<bool>;

    async fn alarm(&self, name: &str) -> Result<Option<AlarmRecord>>;

    /// Every alarm, by name.
    async fn list_alarms(&self) -> Result<Vec<AlarmRecord>>;

    /// Delete an alarm and its states (its history stays); false if there was none.
    async fn delete_alarm(&self, name: &str) -> Result<bool>;

    /// Current states, of one alarm or of all, by alarm then node.
    async fn alarm_states(&self, alarm: Option<&str>) -> Result<Vec<AlarmStateRow>>;

    /// Move an instance to `next.state` (with its reason), recording the
    /// change in the history (unpublished) and in the instance's incident:
    /// going to ALARM opens one (unless one is open), going to OK recovers
    /// the open one, and every change is on its timeline. Nothing is written, and `None`
    /// answered, when the instance is already in that state or the alarm no
    /// longer exists.
    async fn transition_alarm(&self, next: &AlarmStateRow) -> Result<Option<AlarmHistoryRow>>;

    /// Forget the state of an instance (its node is no longer targeted).
    async fn delete_alarm_state(&self, alarm: &str, node_id: &str) -> Result<()>;

    /// History of an alarm (of one of its nodes if given), newest first.
    async fn alarm_history(
        &self,
        alarm: &str,
        node_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlarmHistoryRow>>;

    /// History rows whose events are not on the bus yet, oldest first.
    async fn unpublished_alarm_history(&self, limit: i64) -> Result<Vec<AlarmHistoryRow>>;

    /// Mark history rows' events as put on the bus.
    async fn mark_alarm_history_published(&self, ids: &[i64]) -> Result<()>;
}

/// Incidents: alarm episodes and their timelines (opened and recovered by
/// [`AlarmStore::transition_alarm`]). Each method is one transaction.
#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// Incidents matching `filter`, newest first.
    async fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>>;

    async fn incident(&self, id: &str) -> Result<Option<Incident>>;

    /// The timeline, oldest first.
    async fn incident_events(&self, id: &str) -> Result<Vec<IncidentEvent>>;

    /// Add to the timeline; false if there is no such incident.
    async fn add_incident_event(
        &self,
        id: &str,
        at: i64,
        kind: &str,
        message: &str,
        data: Option<&serde_json::Value>,
    ) -> Result<bool>;

    /// Record who acknowledged it (the first one wins), with a timeline entry.
    async fn acknowledge_incident(&self, id: &str, by: &str, at: i64) -> Result<Option<Incident>>;

    /// Close it (`resolved`), with a timeline entry and `note`.
    async fn resolve_incident(
        &self,
        id: &str,
        by: &str,
        note: Option<&str>,
        at: i64,
    ) -> Result<Option<Incident>>;

    /// Mark it escalated with a timeline entry; false if it already was (so
    /// an escalation happens once).
    async fn escalate_incident(&self, id: &str, message: &str, at: i64) -> Result<bool>;
}

/// Heals and their runs. Each method is one transaction.
#[async_trait]
pub trait HealStore: Send + Sync {
    /// Write a heal's next version; `expect_version` as for alarms.
    async fn put_heal(&self, record: &HealRecord, expect_version: Option<i64>) -> Result<bool>;

    async fn heal(&self, name: &str) -> Result<Option<HealRecord>>;

    async fn list_heals(&self) -> Result<Vec<HealRecord>>;

    /// Delete a heal (its runs stay, as history); false if there was none.
    async fn delete_heal(&self, name: &str) -> Result<bool>;

    /// Runs of a heal and/or of an incident, oldest first.
    async fn heal_runs(
        &self,
        heal: Option<&str>,
        incident_id: Option<&str>,
    ) -> Result<Vec<HealRun>>;

    /// Runs not finished yet (starting, running, confirming), oldest first.
    async fn unfinished_heal_runs(&self) -> Result<Vec<HealRun>>;

    /// Record an attempt before it starts; false if that attempt exists.
    async fn insert_heal_run(&self, run: &HealRun) -> Result<bool>;

    /// Write a run's status, execution, end and detail, and add `entry` to
    /// its incident's timeline (if the incident exists) in the same
    /// transaction: whoever reads the run's new status finds the entry.
    async fn update_heal_run(&self, run: &HealRun, entry: &NewIncidentEvent) -> Result<()>;

    /// When the newest finished run of `heal` on the instance (alarm, node)
    /// ended, if one did.
    async fn last_heal_run_end(
        &self,
        heal: &str,
        alarm: &str,
        node_id: &str,
    ) -> Result<Option<i64>>;

    /// Runs of `heal` on the instance (alarm, node) started at or after `since`.
    async fn count_heal_runs_since(
        &self,
        heal: &str,
        alarm: &str,
        node_id: &str,
        since: i64,
    ) -> Result<i64>;
}

/// Metrics: series per node, name and dimensions; raw points with 1-minute
/// and 1-hour rollups kept in step; the batch seqs recently stored.
#[async_trait]
pub trait MetricStore: Send + Sync {
    /// Store many batches in one transaction (group commit). A batch whose
    /// seq is among the node's recent ones writes nothing (`false`); a point
    /// already stored for its series and instant is skipped. Rollups are
    /// updated with exactly the points inserted, so they always agree with
    /// the raw points they were made from.
    async fn write_metric_batches(&self, batches: &[MetricBatchWrite]) -> Result<Vec<bool>>;

    /// Series named `name` (all names when `None`), of one node or all,
    /// ordered by node, name and dimensions.
    async fn metric_series(
        &self,
        name: Option<&str>,
        node_id: Option<&str>,
    ) -> Result<Vec<MetricSeries>>;

    /// Raw points of a series with `from <= at < to`, oldest first.
    async fn metric_points(&self, series_id: i64, from: i64, to: i64) -> Result<Vec<(i64, f64)>>;

    /// Rollup buckets (`Minute` or `Hour`) of a series starting in
    /// `[from, to)`, oldest first. `Raw` answers nothing.
    async fn metric_rollups(
        &self,
        series_id: i64,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<MetricRollup>>;

    /// Delete the rows of `resolution` older than `before` of up to
    /// `series_count` series with ids from `first_series` on, in one short
    /// transaction. Callers go on from [`PruneStep::next`] until it is `None`,
    /// so no transaction holds the write lock long.
    async fn prune_metrics(
        &self,
        resolution: Resolution,
        before: i64,
        first_series: i64,
        series_count: u32,
    ) -> Result<PruneStep>;

    /// Forget the batch seqs of nodes that sent none since `seqs_before`
    /// (each node's are a bounded set of its latest), and series whose
    /// latest point is older than `series_before` (with their remaining
    /// points and rollups). Answers the series removed.
    async fn prune_metric_bookkeeping(&self, seqs_before: i64, series_before: i64) -> Result<u64>;
}

/// Logs nodes ship: lines stored in the order received, the batch seqs
/// recently stored per node, queries, retention.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Store many batches in one transaction (group commit). A batch whose
    /// seq is among the node's recent ones writes nothing (`false`).
    async fn write_log_batches(&self, batches: &[LogBatchWrite]) -> Result<Vec<bool>>;

    /// Lines matching `filter`, oldest first (see [`LogFilter::after_id`]).
    async fn query_logs(&self, filter: &LogFilter) -> Result<Vec<StoredLog>>;

    /// Delete up to `max_rows` lines with `at < before` in one short
    /// transaction; answers how many. Callers repeat until it answers less
    /// than `max_rows`. Also forgets the seqs of nodes that sent no batch
    /// since `before`.
    async fn prune_logs(&self, before: i64, max_rows: u32) -> Result<u64>;
}

/// Monitors: health checks and log watchers pushed to nodes. Each method is
/// one transaction.
#[async_trait]
pub trait MonitorStore: Send + Sync {
    /// Write a monitor's next version. `expect_version`: `None` creates
    /// (false if the name exists), `Some(v)` replaces only version `v`
    /// (false otherwise).
    async fn put_monitor(
        &self,
        record: &MonitorRecord,
        expect_version: Option<i64>,
    ) -> Result<bool>;

    async fn monitor(&self, name: &str) -> Result<Option<MonitorRecord>>;

    /// Every monitor, by name.
    async fn list_monitors(&self) -> Result<Vec<MonitorRecord>>;

    /// Delete a monitor (only at `expect_version` when given); false if
    /// nothing was deleted.
    async fn delete_monitor(&self, name: &str, expect_version: Option<i64>) -> Result<bool>;
}

/// Sessions and their recordings. Each method is one transaction.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, record: &SessionRecord) -> Result<()>;

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>>;

    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRecord>>;

    /// Refresh `touched_at` of an active session.
    async fn touch_session(&self, id: &str, at: i64) -> Result<()>;

    /// Ask the relaying process to end an active session; false if it is
    /// not active.
    async fn request_session_end(&self, id: &str, by: &str) -> Result<bool>;

    /// End an active session; false (nothing written) if it already ended.
    async fn end_session(&self, id: &str, end: &SessionEnd) -> Result<bool>;

    /// Active sessions not touched since `before`: their relay is gone.
    async fn stale_sessions(&self, before: i64) -> Result<Vec<SessionRecord>>;

    /// Add chunk `seq` of a recording (a repeated seq is an error).
    async fn append_recording_chunk(&self, session_id: &str, seq: i64, sealed: &[u8])
    -> Result<()>;

    /// The sealed chunks of a recording, in order.
    async fn recording_chunks(&self, session_id: &str) -> Result<Vec<(i64, Vec<u8>)>>;
}

/// Web console sign-ins, keyed by the hash of the browser's session id.
/// Each method is one transaction.
#[async_trait]
pub trait ConsoleSessionStore: Send + Sync {
    async fn insert_console_session(&self, session: &ConsoleSession) -> Result<()>;

    /// The session if it exists and has not expired at `now`.
    async fn console_session(&self, id_hash: &str, now: i64) -> Result<Option<ConsoleSession>>;

    /// Sign out; false if there was no such session.
    async fn delete_console_session(&self, id_hash: &str) -> Result<bool>;

    /// Delete the sessions expired at `now`; answers how many.
    async fn prune_console_sessions(&self, now: i64) -> Result<u64>;
}
