//! The one error type of the crate's rules, and the SSM error code each maps to.

use crate::ssm::SsmErrorCode;

/// A rule of Parameter Store was broken. Each variant knows which SSM
/// error code AWS answers with ([`ParamError::code`]); its `Display` text is
/// the message that goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A name, path, value or other required string was empty.
    #[error(
        "1 validation error detected: Value '' at '{field}' failed to satisfy constraint: Member must have length greater than or equal to 1"
    )]
    Empty { field: &'static str },
    /// A name or path is longer than AWS allows.
    #[error(
        "Parameter name: the name {len} characters long exceeds the maximum of {max} characters."
    )]
    NameTooLong { len: usize, max: usize },
    /// A name or path holds a character outside `a-zA-Z0-9_.-/`.
    #[error(
        "Parameter name: can't contain '{ch}' (at character {position} of \"{name}\"); only a-zA-Z0-9_.- and '/' for hierarchies are allowed."
    )]
    NameInvalidChar {
        name: String,
        ch: char,
        position: usize,
    },
    /// A name with a `/` that does not start with `/`.
    #[error(
        "Parameter name must be a fully qualified name: \"{name}\" contains '/' so it must begin with '/'."
    )]
    NotFullyQualified { name: String },
    /// A name with an empty level (`//`) or a trailing `/`.
    #[error("Parameter name: \"{name}\" has an empty hierarchy level ('//' or a trailing '/').")]
    EmptyLevel { name: String },
    /// A name beginning with `aws` or `ssm`.
    #[error("Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).")]
    ReservedPrefix { name: String },
    /// More than 15 levels.
    #[error("A hierarchy can have a maximum of 15 levels; \"{name}\" has {levels}.")]
    HierarchyTooDeep { name: String, levels: usize },
    /// A path for GetParametersByPath that does not begin with `/`.
    #[error(
        "The parameter path \"{path}\" is not valid: a path must begin with '/' and contain only a-zA-Z0-9_.-/ with no empty level."
    )]
    InvalidPath { path: String },
    /// A selector (`name:version` or `name:label`) that can't be understood.
    #[error("The parameter selector in \"{input}\" is not valid: {reason}")]
    InvalidSelector { input: String, reason: &'static str },
    /// An unknown `Type`.
    #[error(
        "1 validation error detected: Value '{value}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]"
    )]
    UnknownType { value: String },
    /// An unknown `Tier`.
    #[error(
        "1 validation error detected: Value '{value}' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Standard, Advanced, Intelligent-Tiering]"
    )]
    UnknownTier { value: String },
    /// A `DataType` other than `text`.
    #[error("The data type \"{value}\" is not supported: Operon accepts only \"text\".")]
    UnsupportedDataType { value: String },
    /// A value larger than its tier allows.
    #[error("Parameter value of {len} bytes exceeds the {tier} tier limit of {max} bytes.")]
    ValueTooLarge {
        len: usize,
        max: usize,
        tier: &'static str,
    },
    /// A description over 1024 characters.
    #[error(
        "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1024 (it has {len})"
    )]
    DescriptionTooLong { len: usize },
    /// An `AllowedPattern` too long or not a regular expression.
    #[error("The allowed pattern \"{pattern}\" is not valid: {reason}")]
    InvalidAllowedPattern { pattern: String, reason: String },
    /// A value that the parameter's `AllowedPattern` refuses.
    #[error("Parameter value, cannot be validated against allowedPattern: {pattern}")]
    PatternMismatch { pattern: String },
    /// Every one of the 100 kept versions carries a label, so none can go.
    #[error(
        "You attempted to create a new version of {name} by calling the PutParameter API with the overwrite flag. Version {oldest}, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again."
    )]
    MaxVersionsAllLabeled { name: String, oldest: u64 },
    /// A version would carry more than 10 labels.
    #[error(
        "A parameter version can have maximum 10 labels: version {version} of {name} would have {would_have}."
    )]
    TooManyLabels {
        name: String,
        version: u64,
        would_have: usize,
    },
    /// A filter key that is not allowed here.
    #[error(
        "The following filter key is not valid: {key}. Valid filter keys include: [{allowed}]."
    )]
    InvalidFilterKey { key: String, allowed: &'static str },
    /// A filter option that the key does not support.
    #[error(
        "The following filter option is not valid: {option}. Valid options include: [{allowed}]."
    )]
    InvalidFilterOption {
        option: String,
        allowed: &'static str,
    },
    /// A filter value that is not valid for the key.
    #[error("The following filter value is not valid: {value}. {reason}")]
    InvalidFilterValue { value: String, reason: String },
    /// A filter request malformed in a way AWS reports as a validation error.
    #[error("{message}")]
    FilterValidation { message: String },
    /// A policy of an unknown `Type`.
    #[error(
        "The policy type \"{kind}\" isn't supported. Parameter Store supports the following policy types: Expiration, ExpirationNotification, and NoChangeNotification."
    )]
    InvalidPolicyType { kind: String },
    /// Two policies of the same type.
    #[error(
        "There is a conflict in the policies specified for this parameter: the {kind} policy appears more than once."
    )]
    IncompatiblePolicies { kind: String },
    /// Policies on a Standard-tier parameter.
    #[error(
        "Parameter policies are available only for Advanced-tier parameters; use Tier Advanced or Intelligent-Tiering."
    )]
    PoliciesNeedAdvancedTier,
    /// A policy whose JSON or attributes are wrong.
    #[error("A policy attribute or its value is invalid: {reason}")]
    InvalidPolicyAttribute { reason: String },
}

impl ParamError {
    /// The SSM error code AWS answers this with.
    pub fn code(&self) -> SsmErrorCode {
        use ParamError::*;
        match self {
            Empty { .. }
            | NameTooLong { .. }
            | NameInvalidChar { .. }
            | NotFullyQualified { .. }
            | EmptyLevel { .. }
            | ReservedPrefix { .. }
            | InvalidPath { .. }
            | InvalidSelector { .. }
            | UnknownType { .. }
            | UnknownTier { .. }
            | UnsupportedDataType { .. }
            | ValueTooLarge { .. }
            | DescriptionTooLong { .. }
            | PoliciesNeedAdvancedTier
            | FilterValidation { .. } => SsmErrorCode::ValidationException,
            HierarchyTooDeep { .. } => SsmErrorCode::HierarchyLevelLimitExceededException,
            InvalidAllowedPattern { .. } => SsmErrorCode::InvalidAllowedPatternException,
            PatternMismatch { .. } => SsmErrorCode::ParameterPatternMismatchException,
            MaxVersionsAllLabeled { .. } => SsmErrorCode::ParameterMaxVersionLimitExceeded,
            TooManyLabels { .. } => SsmErrorCode::ParameterVersionLabelLimitExceeded,
            InvalidFilterKey { .. } => SsmErrorCode::InvalidFilterKey,
            InvalidFilterOption { .. } => SsmErrorCode::InvalidFilterOption,
            InvalidFilterValue { .. } => SsmErrorCode::InvalidFilterValue,
            IncompatiblePolicies { .. } => SsmErrorCode::IncompatiblePolicyException,
            InvalidPolicyType { .. } => SsmErrorCode::InvalidPolicyTypeException,
            InvalidPolicyAttribute { .. } => SsmErrorCode::InvalidPolicyAttributeException,
        }
    }
}
