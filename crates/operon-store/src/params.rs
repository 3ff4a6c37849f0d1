//! Parameter Store records: versioned parameters (String and StringList
//! values in clear, SecureString values as sealed envelopes the store never
//! opens), labels on versions, tags; and AWS-style access keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One version of a parameter, as written by a put.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewParameterVersion {
    pub name: String,
    /// `String`, `StringList` or `SecureString`.
    pub param_type: String,
    /// The value of a String or StringList; `None` for a SecureString.
    pub value: Option<String>,
    /// A SecureString's sealed envelope; `None` otherwise.
    pub sealed: Option<Vec<u8>>,
    /// The key a SecureString is said to be encrypted with (AWS's `KeyId`).
    pub key_id: Option<String>,
    pub description: Option<String>,
    pub allowed_pattern: Option<String>,
    pub tier: String,
    pub data_type: String,
    /// The parameter policies as given (a JSON array), if any.
    pub policies: Option<String>,
    pub modified_at: i64,
    pub modified_by: String,
}

/// A stored version, with the labels it carries now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterVersion {
    pub version: i64,
    #[serde(flatten)]
    pub fields: NewParameterVersion,
    pub labels: Vec<String>,
}

impl ParameterVersion {
    pub fn name(&self) -> &str {
        &self.fields.name
    }
}

/// Why a put changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutRefusal {
    /// The parameter exists and the put did not say to overwrite.
    AlreadyExists,
    /// The latest version is no longer the one the caller checked against
    /// (another put came first); the caller checks again.
    Moved,
    /// A put would make a 101st version and every kept one has a label.
    MaxVersions,
}

/// Why a label change changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRefusal {
    ParameterNotFound,
    VersionNotFound,
    /// The version would carry more than [`MAX_LABELS_PER_VERSION`].
    LabelLimitExceeded,
}

/// Versions kept per parameter: the oldest unlabelled one goes first.
pub const MAX_PARAMETER_VERSIONS: i64 = 100;
/// Labels one version may carry.
pub const MAX_LABELS_PER_VERSION: usize = 10;

/// A parameter's tags, by key.
pub type Tags = BTreeMap<String, String>;

/// An AWS-style access key of a user, its secret sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKey {
    /// `AKIA...`-shaped id.
    pub id: String,
    pub user_id: String,
    pub sealed_secret: Vec<u8>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A file kept equal to the parameters under a path on every targeted node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSync {
    pub name: String,
    pub path: String,
    pub recursive: bool,
    /// The target grammar's entries (`["tag:env=prod"]`).
    pub targets: serde_json::Value,
    pub file: String,
    /// `dotenv`, `json` or `yaml`.
    pub format: String,
    pub mode: i64,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub on_change: Option<String>,
    /// The role the sync acts as; its author when absent.
    pub role: Option<String>,
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One node's state of a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSyncNode {
    pub sync_name: String,
    pub node_id: String,
    pub node_name: String,
    /// `pending`, `sent`, `applied`, `drifted`, `failed`, `refused` or
    /// `unsupported` (an agent without file sync).
    pub status: String,
    pub detail: Option<String>,
    /// The parameter versions the content was made of (`name:version`, ...).
    pub version_set: Option<String>,
    pub sent_digest: Option<String>,
    pub sent_at: Option<i64>,
    pub applied_digest: Option<String>,
    pub applied_at: Option<i64>,
    pub on_change_exit: Option<i32>,
}
