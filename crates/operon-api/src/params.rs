//! Parameter Store: `/v1/parameters`, `/v1/parameters-by-path`, `/v1/keys`
//! and `/v1/access-keys`.
//!
//! A parameter's name goes in the path percent-encoded (`/app/prod/db_url`
//! is `/v1/parameters/%2Fapp%2Fprod%2Fdb_url`); a `:version` or `:label`
//! suffix selects a version on reads. SecureString values are shown only
//! when asked with `decrypt=true` and allowed `params:GetDecrypted`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// `PUT /v1/parameters/{name}`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutParameter {
    /// The value (a SecureString's is sealed at rest and never echoed)
    pub value: String,
    /// `String` (the default for a new parameter), `StringList` or
    /// `SecureString`; an overwrite keeps the type unless it names one
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub param_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A regular expression every value must match
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    /// Write a new version of an existing parameter (409 without it)
    #[serde(default)]
    pub overwrite: bool,
    /// `Standard` (the default), `Advanced` or `Intelligent-Tiering`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Parameter policies, AWS's JSON array (Expiration,
    /// ExpirationNotification, NoChangeNotification); Advanced tier only
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub policies: Option<serde_json::Value>,
    /// Tags of a new parameter (not with overwrite)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl std::fmt::Debug for PutParameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutParameter")
            .field("value", &"<redacted>")
            .field("param_type", &self.param_type)
            .field("overwrite", &self.overwrite)
            .finish_non_exhaustive()
    }
}

/// What a put wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParameterWritten {
    pub name: String,
    pub version: i64,
    pub tier: String,
}

/// A parameter version. `value` is absent for a SecureString read without
/// decryption.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type")]
    pub param_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub version: i64,
    /// The `:version` or `:label` the read asked for
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    pub labels: Vec<String>,
    /// Milliseconds since the Unix epoch
    pub last_modified: i64,
    pub last_modified_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    pub tier: String,
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub policies: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl std::fmt::Debug for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parameter")
            .field("name", &self.name)
            .field("param_type", &self.param_type)
            .field("version", &self.version)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A page of parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParameterPage {
    pub parameters: Vec<Parameter>,
    /// Pass as `next_token` for the next page; absent on the last
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `POST /v1/parameters/{name}/labels` and `/unlabel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelChange {
    /// The version; the latest when absent (labels only; unlabel needs it)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub version: Option<i64>,
    /// 1 to 10 labels
    pub labels: Vec<String>,
}

/// What a label change did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LabelResult {
    pub version: i64,
    /// Labels that break the naming rules (not applied) or, for unlabel,
    /// that the version did not carry
    pub invalid_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_labels: Vec<String>,
}

/// `DELETE /v1/parameters/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParameterDeleted {
    pub name: String,
    /// The latest version it had
    pub version: i64,
}

/// `POST /v1/parameters/{name}/tags`.
/// (Named apart from the nodes' `TagChange`: schema names are one namespace.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParameterTagChange {
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A parameter's tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParameterTags {
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

/// A key of the server's key ring (never its bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub created_at: i64,
    pub active: bool,
    /// 16 hex digits telling two copies of a key apart
    pub fingerprint: String,
}

/// What a rewrap did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rewrapped {
    /// The key everything is wrapped under now
    pub active: String,
    /// Envelopes re-wrapped (SecureString versions and access-key secrets)
    pub rewrapped: u64,
    /// Envelopes already under the active key
    pub unchanged: u64,
}

/// `POST /v1/access-keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessKey {
    /// The user or service account; the caller when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// An access key (its secret only in the answer that created it).
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessKey {
    pub access_key_id: String,
    pub user: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Shown once, when created
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("user", &self.user)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// `PUT /v1/param-syncs/{name}`: keep a file on the targeted nodes equal to
/// the parameters under a path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSync {
    /// The path whose parameters the file holds (`/app/prod/`)
    pub path: String,
    /// Every level below the path, not only its direct children
    #[serde(default)]
    pub recursive: bool,
    /// The target grammar: `tag:KEY=VALUE`, `all`, or node names
    pub targets: Vec<String>,
    /// The absolute path of the file on the nodes
    pub file: String,
    /// `dotenv` (the default), `json` or `yaml`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Octal permission bits (`0600` by default)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A shell command run on a node once each time its file changed
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_change: Option<String>,
    /// The role the sync acts as (roles:Pass); its author when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sync {
    pub name: String,
    pub path: String,
    pub recursive: bool,
    pub targets: Vec<String>,
    pub file: String,
    pub format: String,
    /// Octal (`0600`)
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_change: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One node's state of a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncNode {
    pub node_id: String,
    pub node_name: String,
    /// `pending`, `sent`, `applied`, `drifted`, `failed`, `refused` or
    /// `unsupported`
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The parameter versions of the content last sent (`NAME:VERSION,...`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    /// The exit code of the on-change command the last time it ran
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_change_exit: Option<i32>,
}

/// A sync with its nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    #[serde(flatten)]
    pub sync: Sync,
    pub nodes: Vec<SyncNode>,
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "params";
    let bool_query = json!({"type": "boolean"});
    api.op(Op::put(
        "/v1/parameters/{name}",
        TAG,
        "Put a parameter (params:Put on param/NAME): each put makes a new version",
    )
    .body::<PutParameter>()
    .example(json!({"value": "postgres://db.prod:5432/app", "type": "String"}))
    .may(&[409])
    .ok::<ParameterWritten>());
    api.op(Op::get(
        "/v1/parameters/{name}",
        TAG,
        "Get a parameter, NAME, NAME:VERSION or NAME:LABEL (params:Get; with decrypt, \
             params:GetDecrypted, audited)",
    )
    .query("decrypt", bool_query.clone(), "Show a SecureString's value")
    .ok::<Parameter>());
    api.op(Op::delete(
        "/v1/parameters/{name}",
        TAG,
        "Delete a parameter and every version (params:Delete)",
    )
    .ok::<ParameterDeleted>());
    api.op(Op::get(
        "/v1/parameters",
        TAG,
        "List parameters' metadata (those params:List allows), filtered",
    )
    .query(
        "path",
        json!({"type": "string"}),
        "Only parameters under this path",
    )
    .query(
        "recursive",
        bool_query.clone(),
        "With path: every level below it",
    )
    .query(
        "type",
        json!({"enum": ["String", "StringList", "SecureString"]}),
        "Only this type",
    )
    .query(
        "name_contains",
        json!({"type": "string"}),
        "Only names containing this",
    )
    .query(
        "tag",
        json!({"type": "string"}),
        "KEY or KEY=VALUE: only parameters with the tag",
    )
    .query(
        "max_results",
        json!({"type": "integer", "minimum": 1, "maximum": 50}),
        "Page size (10)",
    )
    .query(
        "next_token",
        json!({"type": "string"}),
        "The token of the page before",
    )
    .ok::<ParameterPage>());
    api.op(Op::get(
        "/v1/parameters-by-path",
        TAG,
        "Get the parameters under a path with their values (those params:Get allows)",
    )
    .query(
        "path",
        json!({"type": "string"}),
        "The path, starting with /",
    )
    .query(
        "recursive",
        bool_query.clone(),
        "Every level below the path",
    )
    .query("decrypt", bool_query.clone(), "Show SecureString values")
    .query(
        "label",
        json!({"type": "string"}),
        "Only versions carrying this label",
    )
    .query(
        "max_results",
        json!({"type": "integer", "minimum": 1, "maximum": 10}),
        "Page size (10)",
    )
    .query(
        "next_token",
        json!({"type": "string"}),
        "The token of the page before",
    )
    .ok::<ParameterPage>());
    api.op(Op::get(
        "/v1/parameters/{name}/history",
        TAG,
        "Every kept version of a parameter (params:GetHistory)",
    )
    .query("decrypt", bool_query, "Show SecureString values")
    .ok_list::<Parameter>());
    api.op(Op::post(
        "/v1/parameters/{name}/labels",
        TAG,
        "Label a version (params:Label); a label moves from the version that had it",
    )
    .body::<LabelChange>()
    .example(json!({"version": 3, "labels": ["prod"]}))
    .ok::<LabelResult>());
    api.op(Op::post(
        "/v1/parameters/{name}/unlabel",
        TAG,
        "Take labels off a version (params:Unlabel)",
    )
    .body::<LabelChange>()
    .ok::<LabelResult>());
    api.op(Op::get(
        "/v1/parameters/{name}/tags",
        TAG,
        "A parameter's tags (params:ListTags)",
    )
    .ok::<ParameterTags>());
    api.op(Op::post(
        "/v1/parameters/{name}/tags",
        TAG,
        "Add and remove a parameter's tags (params:Tag)",
    )
    .body::<ParameterTagChange>()
    .ok::<ParameterTags>());
    api.op(Op::put(
        "/v1/param-syncs/{name}",
        TAG,
        "Create or replace a sync (paramSyncs:Create on param-sync/NAME): every targeted \
             node keeps FILE equal to the parameters under PATH",
    )
    .body::<PutSync>()
    .example(
        json!({"path": "/app/prod/", "targets": ["tag:env=prod"], "file": "/etc/app/env",
                        "on_change": "systemctl restart app"}),
    )
    .ok::<Sync>());
    api.op(Op::get(
        "/v1/param-syncs",
        TAG,
        "List syncs (those paramSyncs:Get allows)",
    )
    .ok_list::<Sync>());
    api.op(Op::get(
        "/v1/param-syncs/{name}",
        TAG,
        "A sync and each node's state (paramSyncs:Get)",
    )
    .ok::<SyncStatus>());
    api.op(Op::delete(
        "/v1/param-syncs/{name}",
        TAG,
        "Delete a sync (paramSyncs:Delete); the files stay as they are",
    )
    .ok::<Sync>());
    api.op(Op::get("/v1/keys", TAG, "The key ring's keys (keys:List)").ok_list::<KeyInfo>());
    api.op(Op::post(
        "/v1/keys/rotate",
        TAG,
        "Add a key to the key ring and make it active (keys:Rotate); nothing is re-encrypted",
    )
    .unread_body()
    .ok_list::<KeyInfo>());
    api.op(Op::post(
        "/v1/keys/rewrap",
        TAG,
        "Re-wrap every stored data key under the active key (keys:Rewrap)",
    )
    .unread_body()
    .ok::<Rewrapped>());
    api.op(Op::post(
        "/v1/access-keys",
        TAG,
        "Create an AWS-style access key for SigV4-signed calls (accessKeys:Create on \
             user/NAME); the secret is shown once",
    )
    .body::<CreateAccessKey>()
    .may(&[409])
    .ok::<AccessKey>());
    api.op(Op::get(
        "/v1/access-keys",
        TAG,
        "List access keys (accessKeys:List on user/NAME)",
    )
    .query("user", json!({"type": "string"}), "Only this user's keys")
    .ok_list::<AccessKey>());
    api.op(Op::delete(
        "/v1/access-keys/{id}",
        TAG,
        "Revoke an access key (accessKeys:Delete on its user)",
    )
    .ok::<AccessKey>());
}
