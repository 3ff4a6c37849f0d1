//! The AWS JSON 1.1 wire of SSM's Parameter Store operations.
//!
//! Requests arrive as `POST /` with `X-Amz-Target: AmazonSSM.<Operation>`
//! and a JSON body whose members are PascalCase; answers use the same
//! casing and omit absent optional members. Errors are
//! `{"__type": "<Code>", "message": "..."}` with status 400 (500 for
//! internal errors): botocore takes the code from `__type` (after any `#`)
//! and the message from `message` or `Message`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ParamError;
use crate::filters::{ParameterStringFilter, ParametersFilter};

/// The Parameter Store operations of the `AmazonSSM` target prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    PutParameter,
    GetParameter,
    GetParameters,
    GetParametersByPath,
    GetParameterHistory,
    DescribeParameters,
    DeleteParameter,
    DeleteParameters,
    LabelParameterVersion,
    UnlabelParameterVersion,
    AddTagsToResource,
    ListTagsForResource,
    RemoveTagsFromResource,
}

impl Operation {
    const ALL: [Operation; 13] = [
        Operation::PutParameter,
        Operation::GetParameter,
        Operation::GetParameters,
        Operation::GetParametersByPath,
        Operation::GetParameterHistory,
        Operation::DescribeParameters,
        Operation::DeleteParameter,
        Operation::DeleteParameters,
        Operation::LabelParameterVersion,
        Operation::UnlabelParameterVersion,
        Operation::AddTagsToResource,
        Operation::ListTagsForResource,
        Operation::RemoveTagsFromResource,
    ];

    /// The operation name as in `X-Amz-Target`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::PutParameter => "PutParameter",
            Operation::GetParameter => "GetParameter",
            Operation::GetParameters => "GetParameters",
            Operation::GetParametersByPath => "GetParametersByPath",
            Operation::GetParameterHistory => "GetParameterHistory",
            Operation::DescribeParameters => "DescribeParameters",
            Operation::DeleteParameter => "DeleteParameter",
            Operation::DeleteParameters => "DeleteParameters",
            Operation::LabelParameterVersion => "LabelParameterVersion",
            Operation::UnlabelParameterVersion => "UnlabelParameterVersion",
            Operation::AddTagsToResource => "AddTagsToResource",
            Operation::ListTagsForResource => "ListTagsForResource",
            Operation::RemoveTagsFromResource => "RemoveTagsFromResource",
        }
    }

    /// Reads an `X-Amz-Target` header (`AmazonSSM.GetParameter`). Another
    /// prefix or an operation Operon does not serve is
    /// `UnknownOperationException`, as AWS answers.
    pub fn from_target(target: &str) -> Result<Operation, SsmError> {
        let unknown = || {
            SsmError::new(
                SsmErrorCode::UnknownOperationException,
                format!("The operation in X-Amz-Target {target:?} is not supported."),
            )
        };
        let name = target.strip_prefix("AmazonSSM.").ok_or_else(unknown)?;
        Operation::ALL
            .into_iter()
            .find(|operation| operation.as_str() == name)
            .ok_or_else(unknown)
    }
}

/// Every SSM error code Operon answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SsmErrorCode {
    ParameterNotFound,
    ParameterAlreadyExists,
    ParameterVersionNotFound,
    ParameterVersionLabelLimitExceeded,
    ParameterMaxVersionLimitExceeded,
    ParameterLimitExceeded,
    ParameterPatternMismatchException,
    HierarchyLevelLimitExceededException,
    HierarchyTypeMismatchException,
    InvalidAllowedPatternException,
    UnsupportedParameterType,
    IncompatiblePolicyException,
    PoliciesLimitExceededException,
    ValidationException,
    InvalidKeyId,
    InvalidFilterKey,
    InvalidFilterOption,
    InvalidFilterValue,
    InvalidNextToken,
    InvalidResourceId,
    InvalidResourceType,
    TooManyTagsError,
    TooManyUpdates,
    InvalidPolicyTypeException,
    InvalidPolicyAttributeException,
    AccessDeniedException,
    ThrottlingException,
    UnrecognizedClientException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnknownOperationException,
    SerializationException,
    InternalServerError,
}

impl SsmErrorCode {
    /// The code as it goes in `__type`.
    pub fn as_str(self) -> &'static str {
        use SsmErrorCode::*;
        match self {
            ParameterNotFound => "ParameterNotFound",
            ParameterAlreadyExists => "ParameterAlreadyExists",
            ParameterVersionNotFound => "ParameterVersionNotFound",
            ParameterVersionLabelLimitExceeded => "ParameterVersionLabelLimitExceeded",
            ParameterMaxVersionLimitExceeded => "ParameterMaxVersionLimitExceeded",
            ParameterLimitExceeded => "ParameterLimitExceeded",
            ParameterPatternMismatchException => "ParameterPatternMismatchException",
            HierarchyLevelLimitExceededException => "HierarchyLevelLimitExceededException",
            HierarchyTypeMismatchException => "HierarchyTypeMismatchException",
            InvalidAllowedPatternException => "InvalidAllowedPatternException",
            UnsupportedParameterType => "UnsupportedParameterType",
            IncompatiblePolicyException => "IncompatiblePolicyException",
            PoliciesLimitExceededException => "PoliciesLimitExceededException",
            ValidationException => "ValidationException",
            InvalidKeyId => "InvalidKeyId",
            InvalidFilterKey => "InvalidFilterKey",
            InvalidFilterOption => "InvalidFilterOption",
            InvalidFilterValue => "InvalidFilterValue",
            InvalidNextToken => "InvalidNextToken",
            InvalidResourceId => "InvalidResourceId",
            InvalidResourceType => "InvalidResourceType",
            TooManyTagsError => "TooManyTagsError",
            TooManyUpdates => "TooManyUpdates",
            InvalidPolicyTypeException => "InvalidPolicyTypeException",
            InvalidPolicyAttributeException => "InvalidPolicyAttributeException",
            AccessDeniedException => "AccessDeniedException",
            ThrottlingException => "ThrottlingException",
            UnrecognizedClientException => "UnrecognizedClientException",
            InvalidSignatureException => "InvalidSignatureException",
            MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            UnknownOperationException => "UnknownOperationException",
            SerializationException => "SerializationException",
            InternalServerError => "InternalServerError",
        }
    }

    /// The HTTP status: 500 for internal errors, 400 for every client error
    /// (AWS JSON services answer auth failures with 400 too, except
    /// MissingAuthenticationToken with 403).
    pub fn http_status(self) -> u16 {
        match self {
            SsmErrorCode::InternalServerError => 500,
            SsmErrorCode::MissingAuthenticationTokenException => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for SsmErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SsmError {
    pub code: SsmErrorCode,
    pub message: String,
}

impl SsmError {
    pub fn new(code: SsmErrorCode, message: impl Into<String>) -> Self {
        SsmError {
            code,
            message: message.into(),
        }
    }

    /// HTTP status of the answer.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The JSON 1.1 error body.
    pub fn to_body(&self) -> String {
        serde_json::json!({ "__type": self.code.as_str(), "message": self.message }).to_string()
    }

    /// `ParameterNotFound` as AWS words it for GetParameter (empty message)
    /// is unhelpful; Operon names the parameter.
    pub fn parameter_not_found(name: &str) -> Self {
        SsmError::new(
            SsmErrorCode::ParameterNotFound,
            format!("Parameter {name} not found."),
        )
    }

    /// `ParameterAlreadyExists` for a put without `Overwrite`.
    pub fn already_exists(name: &str) -> Self {
        SsmError::new(
            SsmErrorCode::ParameterAlreadyExists,
            format!(
                "The parameter {name} already exists. To overwrite this value, set the overwrite option in the request to true."
            ),
        )
    }

    /// `ParameterVersionNotFound` for a selector or version naming no kept version.
    pub fn version_not_found(name: &str, selector: &str) -> Self {
        SsmError::new(
            SsmErrorCode::ParameterVersionNotFound,
            format!(
                "Systems Manager could not find version {selector} of {name}. Verify the version and try again."
            ),
        )
    }
}

impl From<ParamError> for SsmError {
    fn from(err: ParamError) -> Self {
        SsmError::new(err.code(), err.to_string())
    }
}

/// Collects constraint violations into AWS's ValidationException text:
/// "N validation error(s) detected: Value 'x' at 'field' failed to satisfy
/// constraint: ...; Value ...".
#[derive(Debug, Default, Clone)]
pub struct Violations(Vec<String>);

impl Violations {
    pub fn new() -> Self {
        Violations(Vec::new())
    }

    /// Records a violation of `field` (camelCase, as AWS names it).
    pub fn add(&mut self, value: &str, field: &str, constraint: &str) {
        self.0.push(format!(
            "Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// A number in `min..=max`.
    pub fn range(&mut self, value: Option<i64>, field: &str, min: i64, max: i64) {
        match value {
            Some(v) if v < min => self.add(
                &v.to_string(),
                field,
                &format!("Member must have value greater than or equal to {min}"),
            ),
            Some(v) if v > max => self.add(
                &v.to_string(),
                field,
                &format!("Member must have value less than or equal to {max}"),
            ),
            _ => {}
        }
    }

    /// A list of `min..=max` members, shown as AWS shows lists (`[a, b]`).
    pub fn list_len<S: AsRef<str>>(&mut self, list: &[S], field: &str, min: usize, max: usize) {
        let shown = format!(
            "[{}]",
            list.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if list.len() < min {
            self.add(
                &shown,
                field,
                &format!("Member must have length greater than or equal to {min}"),
            );
        } else if list.len() > max {
            self.add(
                &shown,
                field,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// A string of `min..=max` characters.
    pub fn str_len(&mut self, value: &str, field: &str, min: usize, max: usize) {
        let len = value.chars().count();
        if len < min {
            self.add(
                value,
                field,
                &format!("Member must have length greater than or equal to {min}"),
            );
        } else if len > max {
            self.add(
                value,
                field,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// The ValidationException, if anything was recorded.
    pub fn into_result(self) -> Result<(), SsmError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let noun = if self.0.len() == 1 { "error" } else { "errors" };
        Err(SsmError::new(
            SsmErrorCode::ValidationException,
            format!(
                "{} validation {noun} detected: {}",
                self.0.len(),
                self.0.join("; ")
            ),
        ))
    }
}

/// `Tag` of AddTagsToResource and PutParameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// The most tags per resource.
pub const MAX_TAGS: usize = 50;

fn check_tags(tags: &[Tag], violations: &mut Violations) {
    for (index, tag) in tags.iter().enumerate() {
        let at = index + 1;
        violations.str_len(&tag.key, &format!("tags.{at}.member.key"), 1, 128);
        violations.str_len(&tag.value, &format!("tags.{at}.member.value"), 0, 256);
    }
}

// ---------------------------------------------------------------- PutParameter

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutParameterRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub value: String,
    #[serde(default, rename = "Type", skip_serializing_if = "Option::is_none")]
    pub parameter_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
}

impl PutParameterRequest {
    /// Wire-level constraints (lengths); the model rules (names, values,
    /// patterns, policies) are checked by the server with the crate's rules.
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.str_len(&self.name, "name", 1, 2048);
        if let Some(description) = &self.description {
            v.str_len(description, "description", 0, 1024);
        }
        if let Some(key_id) = &self.key_id {
            v.str_len(key_id, "keyId", 1, 256);
        }
        if let Some(pattern) = &self.allowed_pattern {
            v.str_len(pattern, "allowedPattern", 0, 1024);
        }
        if let Some(policies) = &self.policies {
            v.str_len(policies, "policies", 1, 4096);
        }
        if let Some(data_type) = &self.data_type {
            v.str_len(data_type, "dataType", 0, 128);
        }
        if let Some(tags) = &self.tags {
            check_tags(tags, &mut v);
        }
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutParameterResponse {
    pub version: u64,
    pub tier: String,
}

// ----------------------------------------------------------------- Parameter

/// `Parameter` of GetParameter(s)/GetParametersByPath answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "Type")]
    pub parameter_type: String,
    pub value: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_result: Option<String>,
    /// Epoch seconds with a fractional part.
    pub last_modified_date: f64,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub data_type: String,
}

/// Epoch milliseconds as the epoch seconds (with fraction) of the wire.
pub fn epoch_seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

/// `ParameterInlinePolicy` of metadata and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterInlinePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_status: Option<String>,
}

/// `ParameterHistory` of GetParameterHistory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterHistory {
    pub name: String,
    #[serde(rename = "Type")]
    pub parameter_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub last_modified_date: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    pub version: u64,
    #[serde(default)]
    pub labels: Vec<String>,
    pub tier: String,
    #[serde(default)]
    pub policies: Vec<ParameterInlinePolicy>,
    pub data_type: String,
}

/// `ParameterMetadata` of DescribeParameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterMetadata {
    pub name: String,
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(rename = "Type")]
    pub parameter_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub last_modified_date: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    pub version: u64,
    pub tier: String,
    #[serde(default)]
    pub policies: Vec<ParameterInlinePolicy>,
    pub data_type: String,
}

// ------------------------------------------------------------- GetParameter(s)

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_decryption: Option<bool>,
}

impl GetParameterRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.str_len(&self.name, "name", 1, 2048);
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterResponse {
    pub parameter: Parameter,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersRequest {
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_decryption: Option<bool>,
}

impl GetParametersRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.list_len(&self.names, "names", 1, 10);
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersResponse {
    pub parameters: Vec<Parameter>,
    pub invalid_parameters: Vec<String>,
}

// --------------------------------------------------------- GetParametersByPath

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersByPathRequest {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_filters: Option<Vec<ParameterStringFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_decryption: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl GetParametersByPathRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.str_len(&self.path, "path", 1, 2048);
        v.range(self.max_results, "maxResults", 1, 10);
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersByPathResponse {
    pub parameters: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ---------------------------------------------------------- GetParameterHistory

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterHistoryRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_decryption: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl GetParameterHistoryRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.str_len(&self.name, "name", 1, 2048);
        v.range(self.max_results, "maxResults", 1, 50);
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParameterHistoryResponse {
    pub parameters: Vec<ParameterHistory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ----------------------------------------------------------- DescribeParameters

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeParametersRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<ParametersFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_filters: Option<Vec<ParameterStringFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

impl DescribeParametersRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.range(self.max_results, "maxResults", 1, 50);
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeParametersResponse {
    pub parameters: Vec<ParameterMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ------------------------------------------------------------ DeleteParameter(s)

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteParameterRequest {
    pub name: String,
}

impl DeleteParameterRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.str_len(&self.name, "name", 1, 2048);
        v.into_result()
    }
}

/// DeleteParameter answers `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmptyResponse {}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteParametersRequest {
    pub names: Vec<String>,
}

impl DeleteParametersRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.list_len(&self.names, "names", 1, 10);
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteParametersResponse {
    pub deleted_parameters: Vec<String>,
    pub invalid_parameters: Vec<String>,
}

// --------------------------------------------------- (Un)LabelParameterVersion

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LabelParameterVersionRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_version: Option<i64>,
    pub labels: Vec<String>,
}

impl LabelParameterVersionRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.str_len(&self.name, "name", 1, 2048);
        v.list_len(&self.labels, "labels", 1, 10);
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LabelParameterVersionResponse {
    pub invalid_labels: Vec<String>,
    pub parameter_version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnlabelParameterVersionRequest {
    pub name: String,
    pub parameter_version: i64,
    pub labels: Vec<String>,
}

impl UnlabelParameterVersionRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        v.str_len(&self.name, "name", 1, 2048);
        v.range(
            Some(self.parameter_version),
            "parameterVersion",
            1,
            i64::MAX,
        );
        v.list_len(&self.labels, "labels", 1, 10);
        v.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnlabelParameterVersionResponse {
    pub removed_labels: Vec<String>,
    pub invalid_labels: Vec<String>,
}

// ------------------------------------------------------------------------ Tags

/// The only `ResourceType` Operon's Parameter Store tags.
pub const RESOURCE_TYPE_PARAMETER: &str = "Parameter";

fn check_resource(resource_type: &str, resource_id: &str) -> Result<(), SsmError> {
    let mut v = Violations::new();
    v.str_len(resource_id, "resourceId", 1, 2048);
    v.into_result()?;
    if resource_type != RESOURCE_TYPE_PARAMETER {
        return Err(SsmError::new(
            SsmErrorCode::InvalidResourceType,
            format!(
                "The resource type {resource_type} is not valid here; Operon tags resources of type Parameter."
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsToResourceRequest {
    pub resource_type: String,
    pub resource_id: String,
    pub tags: Vec<Tag>,
}

impl AddTagsToResourceRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        let mut v = Violations::new();
        check_tags(&self.tags, &mut v);
        v.into_result()?;
        check_resource(&self.resource_type, &self.resource_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceRequest {
    pub resource_type: String,
    pub resource_id: String,
}

impl ListTagsForResourceRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        check_resource(&self.resource_type, &self.resource_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceResponse {
    pub tag_list: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTagsFromResourceRequest {
    pub resource_type: String,
    pub resource_id: String,
    pub tag_keys: Vec<String>,
}

impl RemoveTagsFromResourceRequest {
    pub fn validate(&self) -> Result<(), SsmError> {
        check_resource(&self.resource_type, &self.resource_id)
    }
}

/// Whether a resource would exceed [`MAX_TAGS`] after adding `adding` keys
/// to `existing` (keys already present are replaced, not added).
pub fn too_many_tags(existing: &[String], adding: &[Tag]) -> Option<SsmError> {
    let new_keys = adding
        .iter()
        .filter(|tag| !existing.contains(&tag.key))
        .map(|tag| tag.key.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    (existing.len() + new_keys > MAX_TAGS).then(|| {
        SsmError::new(
            SsmErrorCode::TooManyTagsError,
            format!("A resource can have at most {MAX_TAGS} tags."),
        )
    })
}
