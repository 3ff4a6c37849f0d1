//! `/v1/documents`: versioned SSM command documents.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// `POST /v1/documents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateDocument {
    /// 1 to 128 of letters, digits, '_', '-', '.'; AWS-RunShellScript is
    /// built in (409)
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$")]
    pub name: String,
    /// An SSM command document (schemaVersion 2.2), a desired-state document
    /// (schemaVersion operon-state/1) or a file document (schemaVersion
    /// operon-file/1, the source of a state document's file); 400 if it does
    /// not validate, naming where
    #[schema(value_type = Object)]
    pub content: Value,
}

/// What the server accepts as a document's content.
fn document_content() -> Value {
    json!({
        "type": "object",
        "required": ["schemaVersion", "mainSteps"],
        "properties": {
            "schemaVersion": {"const": "2.2"},
            "description": {"type": "string"},
            "parameters": {
                "type": "object",
                "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"},
                "additionalProperties": {
                    "type": "object", "required": ["type"],
                    "properties": {"type": {"enum": ["String", "StringList"]}},
                },
            },
            "mainSteps": {
                "type": "array", "minItems": 1,
                "items": {
                    "type": "object", "required": ["action", "name", "inputs"],
                    "properties": {
                        "action": {"enum": ["aws:runShellScript", "operon:runShellScript"]},
                        "name": {"type": "string", "minLength": 1},
                        "inputs": {
                            "type": "object", "required": ["runCommand"],
                            "properties": {"runCommand": {"anyOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                            ]}},
                        },
                    },
                },
            },
        },
    })
}

/// `POST /v1/documents/{name}/default-version`: `{"version": N}` or
/// `"$LATEST"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateDefaultVersion {
    /// The version to make the default ($LATEST: the newest; 404 if the
    /// document has no such version)
    #[schema(value_type = Object)]
    pub version: Value,
}

/// A version number, `$DEFAULT` or `$LATEST`.
pub(crate) fn version_selector() -> Value {
    json!({"oneOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": VERSION_PATTERN},
    ]})
}

/// A version number, `$DEFAULT` or `$LATEST`, as text.
pub const VERSION_PATTERN: &str = r"^([1-9][0-9]*|\$DEFAULT|\$LATEST)$";

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "commands";
    api.refine("CreateDocument/properties/content", document_content());
    api.refine(
        "UpdateDefaultVersion/properties/version",
        version_selector(),
    );
    api.refine("DocumentSummary/properties/builtin", json!({"const": true}));
    api.op(Op::get("/v1/documents", TAG, "List documents").ok_list::<DocumentSummary>());
    api.op(Op::post(
        "/v1/documents",
        TAG,
        "Store a document version (SSM schemaVersion 2.2)",
    )
    .body::<CreateDocument>()
    .example(json!({
        "name": "hello-world",
        "content": {
            "schemaVersion": "2.2",
            "description": "Say hello",
            "mainSteps": [{
                "action": "aws:runShellScript",
                "name": "hello",
                "inputs": {"runCommand": ["echo hello"]},
            }],
        },
    }))
    .may(&[409])
    .ok::<CreatedVersion>());
    api.op(Op::get("/v1/documents/{name}", TAG, "Show a document")
        .query(
            "version",
            json!({"type": "string", "pattern": VERSION_PATTERN}),
            "A version number, $DEFAULT or $LATEST; the default version when absent",
        )
        .ok::<DocumentView>());
    api.op(Op::post(
        "/v1/documents/{name}/default-version",
        TAG,
        "Set the default version of a document (documents:UpdateDefaultVersion on \
             document/NAME): the version commands, rule targets and runbook tasks run when \
             they name none. A new version never becomes the default by itself.",
    )
    .body::<UpdateDefaultVersion>()
    .example(json!({"version": 2}))
    .may(&[409])
    .ok::<DefaultVersionChange>());
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
