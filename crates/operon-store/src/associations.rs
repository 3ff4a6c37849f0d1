//! State Manager records: associations (a desired-state document applied to
//! the nodes a target selects, versioned), the commands each one started,
//! and compliance: per association and node, the last known state of every
//! resource and of the node as a whole.

use serde::{Deserialize, Serialize};

/// An association as stored: its settings are the service's JSON (`spec`),
/// the store keeps versions and the scheduler's marks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociationRecord {
    pub name: String,
    /// 1 at creation, +1 per update.
    pub version: i64,
    pub spec: serde_json::Value,
    /// Who wrote this version.
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The last scheduled time a run was started for (the scheduler's mark).
    pub last_scheduled_at: Option<i64>,
    /// The document version the association last ran with fleet-wide (a
    /// new default version of its document applies it again).
    pub applied_document_version: Option<i64>,
}

/// One version of an association, as it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociationVersion {
    pub name: String,
    pub version: i64,
    pub spec: serde_json::Value,
    pub author: String,
    pub created_at: i64,
}

/// A command an association started, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociationRun {
    pub command_id: String,
    pub association: String,
    pub version: i64,
    /// `created`, `updated`, `schedule`, `joined`, `document`, `manual`, `drift`.
    pub reason: String,
    /// `apply` or `check`.
    pub mode: String,
    /// The node, when the run was for one node (joined, drift).
    pub node_id: Option<String>,
    pub created_at: i64,
}

/// The last known state of one resource on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceResource {
    pub association: String,
    pub node_id: String,
    pub resource: String,
    /// The resource type (`file`, `package`, ...).
    pub kind: String,
    /// `COMPLIANT` or `NON_COMPLIANT`.
    pub status: String,
    /// What was seen: `unchanged`, `changed`, `would_change`, `failed`,
    /// `skipped`, `drifted`.
    pub outcome: String,
    pub changes: Vec<String>,
    pub diff: Option<String>,
    pub message: Option<String>,
    pub command_id: Option<String>,
    pub at: i64,
}

/// An association's state on one node: compliant when every resource is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceNode {
    pub association: String,
    pub node_id: String,
    pub node_name: String,
    /// `COMPLIANT` or `NON_COMPLIANT`.
    pub status: String,
    /// The association's severity when this was recorded.
    pub severity: String,
    pub command_id: Option<String>,
    pub at: i64,
}

/// `COMPLIANT`.
pub const COMPLIANT: &str = "COMPLIANT";
/// `NON_COMPLIANT`.
pub const NON_COMPLIANT: &str = "NON_COMPLIANT";

/// What [`crate::AssociationStore::record_compliance`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceReport {
    pub association: String,
    pub node_id: String,
    pub node_name: String,
    pub severity: String,
    pub command_id: Option<String>,
    pub at: i64,
    /// The resources seen.
    pub resources: Vec<ComplianceResource>,
    /// A whole run: resources of the node not in `resources` are dropped
    /// (they left the document). Otherwise only these are updated (drift).
    pub replace: bool,
}

/// The node's status before and after a [`ComplianceReport`]; `None` before
/// means the node had none.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceChange {
    pub before: Option<String>,
    pub after: String,
}
