//! `/v1/documents`: versioned SSM command documents.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /v1/documents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateDocument {
    pub name: String,
    /// An SSM command document, schemaVersion 2.2.
    #[schema(value_type = Object)]
    pub content: Value,
}

/// `POST /v1/documents/{name}/default-version`: `{"version": N}` or
/// `"$LATEST"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateDefaultVersion {
    pub version: Value,
}

/// A document's versions, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DocumentSummary {
    pub name: String,
    /// The latest version (kept from before default versions; the same as
    /// `latest_version`).
    pub version: i64,
    /// The version that runs when none is named.
    pub default_version: i64,
    pub latest_version: i64,
    /// When the latest version was stored; absent for the built-in document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub builtin: bool,
}

/// One version of a document, with the document's default and latest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = DocumentContent)]
pub struct DocumentView {
    pub name: String,
    /// The version shown.
    pub version: i64,
    pub default_version: i64,
    pub latest_version: i64,
    #[schema(value_type = Object)]
    pub content: Value,
}

/// A stored version: its number and the document's default version (which
/// a new version does not change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = DocumentVersion)]
pub struct CreatedVersion {
    pub name: String,
    pub version: i64,
    pub default_version: i64,
}

/// A changed default version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DefaultVersionChange {
    pub name: String,
    pub default_version: i64,
    pub previous_default_version: i64,
    pub latest_version: i64,
}
