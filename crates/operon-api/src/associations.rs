//! State Manager: associations (a desired-state document kept applied to
//! the nodes a target selects) and compliance (what each node looks like
//! against them).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// What an association applies, where, when and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssociationSpec {
    /// A desired-state document (schemaVersion operon-state/1)
    pub document: String,
    /// A version number, $DEFAULT or $LATEST; $DEFAULT (followed: a new
    /// default version applies again) when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_version: Option<String>,
    /// The document's parameters
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    /// The target grammar: `tag:KEY=VALUE`, `all`, or node names
    pub targets: Vec<String>,
    /// `rate(30 minutes)` or `cron(...)`: apply again on this schedule
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// A count (10) or a percentage of the targets (25%)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<String>,
    /// A count (10) or a percentage of the targets (25%)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<String>,
    /// Apply only at the schedule's times, not when created or changed
    #[serde(default)]
    pub apply_only_at_cron_interval: bool,
    /// `CRITICAL`, `HIGH`, `MEDIUM` (the default), `LOW` or `UNSPECIFIED`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_severity: Option<String>,
    /// `apply` (the default) or `check`: report what differs, change nothing
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Put a managed file back as soon as a node reports it changed
    #[serde(default)]
    pub remediate_drift: bool,
    /// The role runs act as (roles:Pass); its author when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `POST /v1/associations`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateAssociation {
    pub name: String,
    #[serde(flatten)]
    pub spec: AssociationSpec,
}

/// `PUT /v1/associations/{name}`: the whole new version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateAssociation {
    /// The version this update replaces (409 if it is not the current one)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    #[serde(flatten)]
    pub spec: AssociationSpec,
}

/// Counts of an association's nodes by compliance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceCounts {
    pub compliant: usize,
    pub non_compliant: usize,
}

/// An association.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Association {
    pub name: String,
    pub version: i64,
    #[serde(flatten)]
    pub spec: AssociationSpec,
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the schedule next applies it (ms since the epoch)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<i64>,
    pub nodes: ComplianceCounts,
}

/// One version of an association.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssociationVersion {
    pub version: i64,
    #[serde(flatten)]
    pub spec: AssociationSpec,
    pub author: String,
    pub created_at: i64,
}

/// A command an association started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssociationRun {
    pub command_id: String,
    pub version: i64,
    /// `created`, `updated`, `schedule`, `joined`, `document`, `manual`, `drift`
    pub reason: String,
    /// `apply` or `check`
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    pub created_at: i64,
}

/// An association with its versions and recent runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssociationDetail {
    #[serde(flatten)]
    pub association: Association,
    pub versions: Vec<AssociationVersion>,
    /// The newest first
    pub runs: Vec<AssociationRun>,
}

/// `POST /v1/associations/{name}/run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunAssociation {
    /// Report what would change, change nothing (whatever the association's mode)
    #[serde(default)]
    pub check: bool,
}

/// The command a run started (none when no node is targeted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssociationRunStarted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// `apply` or `check`
    pub mode: String,
    /// The nodes it runs on, by name
    pub targets: Vec<String>,
}

/// One resource's last known state on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResourceCompliance {
    pub resource: String,
    /// The resource type (file, package, ...)
    pub kind: String,
    /// COMPLIANT or NON_COMPLIANT
    pub status: String,
    /// unchanged, changed, would_change, failed, skipped or drifted
    pub outcome: String,
    pub changes: Vec<String>,
    /// A unified diff of a file's content
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    pub at: i64,
}

/// An association's state on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeCompliance {
    pub association: String,
    pub node_id: String,
    pub node_name: String,
    /// COMPLIANT or NON_COMPLIANT
    pub status: String,
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    pub at: i64,
    pub resources: Vec<ResourceCompliance>,
}

/// Counts for one association.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssociationCompliance {
    pub association: String,
    pub severity: String,
    pub compliant: usize,
    pub non_compliant: usize,
}

/// Counts for one severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeverityCompliance {
    pub severity: String,
    pub compliant: usize,
    pub non_compliant: usize,
}

/// `GET /v1/compliance/summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceSummary {
    pub associations: Vec<AssociationCompliance>,
    pub severities: Vec<SeverityCompliance>,
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "state";
    let text = json!({"type": "string"});
    api.op(Op::post(
        "/v1/associations",
        TAG,
        "Create an association (associations:Create on association/NAME): the document is \
             applied to the targeted nodes now (unless apply_only_at_cron_interval), on its \
             schedule, when a node joins and when the document's default version changes",
    )
    .body::<CreateAssociation>()
    .example(json!({"name": "web-baseline", "document": "web-baseline",
                    "targets": ["tag:role=web"], "schedule": "rate(30 minutes)",
                    "compliance_severity": "HIGH"}))
    .may(&[409])
    .ok::<Association>());
    api.op(Op::get(
        "/v1/associations",
        TAG,
        "List associations (those associations:Get allows)",
    )
    .ok_list::<Association>());
    api.op(Op::get(
        "/v1/associations/{name}",
        TAG,
        "An association with its versions and recent runs (associations:Get)",
    )
    .ok::<AssociationDetail>());
    api.op(Op::put(
        "/v1/associations/{name}",
        TAG,
        "Write the next version of an association (associations:Update); applied to the \
             targeted nodes (unless apply_only_at_cron_interval)",
    )
    .body::<UpdateAssociation>()
    .may(&[409])
    .ok::<Association>());
    api.op(Op::delete(
        "/v1/associations/{name}",
        TAG,
        "Delete an association and its compliance (associations:Delete); nodes stop \
             watching its files, which stay as they are",
    )
    .ok::<Association>());
    api.op(Op::post(
        "/v1/associations/{name}/run",
        TAG,
        "Apply (or check) an association on its targeted nodes now (associations:Run)",
    )
    .body::<RunAssociation>()
    .ok::<AssociationRunStarted>());
    api.op(Op::get(
        "/v1/compliance",
        TAG,
        "Each association's state on each node, with its resources (compliance:Get on \
             the nodes, with their tags)",
    )
    .query("association", text.clone(), "Only this association")
    .query("node", text.clone(), "Only this node (id or name)")
    .query("status", text, "COMPLIANT or NON_COMPLIANT")
    .ok_list::<NodeCompliance>());
    api.op(Op::get(
        "/v1/compliance/summary",
        TAG,
        "Compliant and non-compliant nodes by association and severity (compliance:Get)",
    )
    .ok::<ComplianceSummary>());
}
