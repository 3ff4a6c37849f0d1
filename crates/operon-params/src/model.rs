//! Parameter types, tiers, data types, value rules and version history.

use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::error::ParamError;

/// The most versions AWS keeps of one parameter.
pub const MAX_VERSIONS: usize = 100;
/// The most labels one version can carry.
pub const MAX_LABELS_PER_VERSION: usize = 10;
/// The deepest hierarchy (also in [`crate::names`]).
pub const MAX_LEVELS: usize = crate::names::MAX_LEVELS;
/// Standard tier value limit, in bytes (4 KB).
pub const STANDARD_VALUE_MAX: usize = 4096;
/// Advanced tier value limit, in bytes (8 KB).
pub const ADVANCED_VALUE_MAX: usize = 8192;
/// The longest description.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// The longest `AllowedPattern`.
pub const MAX_ALLOWED_PATTERN_LEN: usize = 1024;

/// `Type` of a parameter, spelled as AWS spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ParameterType {
    #[default]
    String,
    StringList,
    SecureString,
}

impl ParameterType {
    /// The AWS spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "String",
            ParameterType::StringList => "StringList",
            ParameterType::SecureString => "SecureString",
        }
    }
}

impl fmt::Display for ParameterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ParameterType {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "String" => Ok(ParameterType::String),
            "StringList" => Ok(ParameterType::StringList),
            "SecureString" => Ok(ParameterType::SecureString),
            other => Err(ParamError::UnknownType {
                value: other.to_owned(),
            }),
        }
    }
}

/// `Tier` of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tier {
    #[default]
    Standard,
    Advanced,
    /// Chooses Standard or Advanced per put; see [`effective_tier`].
    IntelligentTiering,
}

impl Tier {
    /// The AWS spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "Standard",
            Tier::Advanced => "Advanced",
            Tier::IntelligentTiering => "Intelligent-Tiering",
        }
    }

    /// The largest value this tier stores, in bytes. Intelligent-Tiering can
    /// grow to Advanced, so it takes the Advanced limit.
    pub fn value_limit(self) -> usize {
        match self {
            Tier::Standard => STANDARD_VALUE_MAX,
            Tier::Advanced | Tier::IntelligentTiering => ADVANCED_VALUE_MAX,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Standard" => Ok(Tier::Standard),
            "Advanced" => Ok(Tier::Advanced),
            "Intelligent-Tiering" => Ok(Tier::IntelligentTiering),
            other => Err(ParamError::UnknownTier {
                value: other.to_owned(),
            }),
        }
    }
}

/// The tier a put stores the parameter in. Intelligent-Tiering picks
/// Advanced when the value exceeds 4 KB or policies are attached (both are
/// Advanced-only features) and Standard otherwise. A parameter once Advanced
/// stays Advanced (AWS can't downgrade), which `currently_advanced` carries.
pub fn effective_tier(
    requested: Tier,
    value_len: usize,
    has_policies: bool,
    currently_advanced: bool,
) -> Tier {
    match requested {
        Tier::Standard if currently_advanced => Tier::Advanced,
        Tier::IntelligentTiering
            if currently_advanced || has_policies || value_len > STANDARD_VALUE_MAX =>
        {
            Tier::Advanced
        }
        Tier::IntelligentTiering => Tier::Standard,
        other => other,
    }
}

/// Policies need the Advanced tier: a Standard put (after
/// [`effective_tier`]) that carries policies is refused.
pub fn check_policies_tier(effective: Tier, has_policies: bool) -> Result<(), ParamError> {
    if has_policies && effective == Tier::Standard {
        return Err(ParamError::PoliciesNeedAdvancedTier);
    }
    Ok(())
}

/// `DataType` of a parameter. Only `text` is supported by Operon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DataType {
    #[default]
    Text,
}

impl DataType {
    /// The AWS spelling.
    pub fn as_str(self) -> &'static str {
        "text"
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = ParamError;
    /// `text` is accepted; `aws:ec2:image` (AMI validation needs EC2) and
    /// anything else are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(DataType::Text),
            other => Err(ParamError::UnsupportedDataType {
                value: other.to_owned(),
            }),
        }
    }
}

/// Checks a value's size for its tier: non-empty and within 4 KB (Standard)
/// or 8 KB (Advanced, Intelligent-Tiering), counted in UTF-8 bytes.
pub fn check_value(ty: ParameterType, tier: Tier, value: &str) -> Result<(), ParamError> {
    if value.is_empty() {
        return Err(ParamError::Empty { field: "value" });
    }
    let max = tier.value_limit();
    if value.len() > max {
        return Err(ParamError::ValueTooLarge {
            len: value.len(),
            max,
            tier: tier.as_str(),
        });
    }
    // A StringList is stored as its comma-separated text; AWS sets no extra
    // rule on its items, so the type only matters through `string_list_items`.
    let _ = ty;
    Ok(())
}

/// The items of a `StringList` value, split on commas as AWS returns them.
pub fn string_list_items(value: &str) -> Vec<&str> {
    value.split(',').collect()
}

/// Checks a description: at most 1024 characters.
pub fn check_description(description: &str) -> Result<(), ParamError> {
    let len = description.chars().count();
    if len > MAX_DESCRIPTION_LEN {
        return Err(ParamError::DescriptionTooLong { len });
    }
    Ok(())
}

/// Compiles an `AllowedPattern` (at most 1024 characters). The pattern must
/// match the whole value, as Java's `String.matches` does in AWS.
pub fn compile_allowed_pattern(pattern: &str) -> Result<Regex, ParamError> {
    let invalid = |reason: String| ParamError::InvalidAllowedPattern {
        pattern: pattern.to_owned(),
        reason,
    };
    if pattern.chars().count() > MAX_ALLOWED_PATTERN_LEN {
        return Err(invalid(format!(
            "it is longer than {MAX_ALLOWED_PATTERN_LEN} characters"
        )));
    }
    Regex::new(&format!("^(?:{pattern})$")).map_err(|err| invalid(err.to_string()))
}

/// Checks a value against a compiled allowed pattern.
pub fn check_allowed_pattern(regex: &Regex, pattern: &str, value: &str) -> Result<(), ParamError> {
    if regex.is_match(value) {
        Ok(())
    } else {
        Err(ParamError::PatternMismatch {
            pattern: pattern.to_owned(),
        })
    }
}

/// One kept version, as the history trimmer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u64,
    pub labels_count: usize,
}

/// Which version a put must drop to keep 100: `Ok(None)` while fewer than
/// 100 are kept, else the oldest version without labels. When all of them
/// carry labels the put fails with `ParameterMaxVersionLimitExceeded`.
pub fn trim_history(name: &str, versions: &[VersionInfo]) -> Result<Option<u64>, ParamError> {
    if versions.len() < MAX_VERSIONS {
        return Ok(None);
    }
    let unlabeled = versions
        .iter()
        .filter(|info| info.labels_count == 0)
        .map(|info| info.version)
        .min();
    match unlabeled {
        Some(version) => Ok(Some(version)),
        None => Err(ParamError::MaxVersionsAllLabeled {
            name: name.to_owned(),
            oldest: versions.iter().map(|info| info.version).min().unwrap_or(1),
        }),
    }
}

/// Checks that attaching `adding` labels to a version that has `current`
/// keeps it within 10. Labels already on the version are not counted twice
/// (re-attaching is a no-op in AWS).
pub fn check_label_limit(
    name: &str,
    version: u64,
    current: &[String],
    adding: &[String],
) -> Result<(), ParamError> {
    let mut all: Vec<&str> = current.iter().map(String::as_str).collect();
    for label in adding {
        if !all.contains(&label.as_str()) {
            all.push(label);
        }
    }
    if all.len() > MAX_LABELS_PER_VERSION {
        return Err(ParamError::TooManyLabels {
            name: name.to_owned(),
            version,
            would_have: all.len(),
        });
    }
    Ok(())
}
