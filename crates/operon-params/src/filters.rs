//! DescribeParameters and GetParametersByPath filters: validation and matching.
//!
//! `ParameterFilters` entries are `{Key, Option, Values}`. Keys are `Name`,
//! `Type`, `KeyId`, `Path`, `Tier`, `DataType`, `Label` and `tag:<key>`.
//! DescribeParameters takes all but `Label`; GetParametersByPath only `Type`,
//! `KeyId` and `Label`. Options are `Equals` and `BeginsWith` (the default is
//! `Equals`), `Name` also `Contains`, `Path` only `OneLevel` (default) or
//! `Recursive`, and `Label` only `Equals`. Filters are ANDed, a filter's
//! values ORed. The legacy `Filters` (`{Key: Name|Type|KeyId, Values}`) mean
//! `Equals`, and can't be mixed with `ParameterFilters` in one request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ParamError;
use crate::model::{ParameterType, Tier};
use crate::names;

/// Most values per filter.
pub const MAX_FILTER_VALUES: usize = 50;
/// Longest filter value.
pub const MAX_FILTER_VALUE_LEN: usize = 1024;
/// Longest filter key (`tag:` plus a 128-character tag key).
pub const MAX_FILTER_KEY_LEN: usize = 132;

/// A `ParameterStringFilter` as it arrives on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterStringFilter {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// A legacy `ParametersFilter` as it arrives on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParametersFilter {
    pub key: String,
    pub values: Vec<String>,
}

/// A validated filter key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterKey {
    Name,
    Type,
    KeyId,
    Path,
    Tier,
    DataType,
    Label,
    /// `tag:<key>`.
    Tag(String),
}

impl FilterKey {
    fn parse(key: &str, allowed: &'static str) -> Result<Self, ParamError> {
        let invalid = || ParamError::InvalidFilterKey {
            key: key.to_owned(),
            allowed,
        };
        if key.chars().count() > MAX_FILTER_KEY_LEN {
            return Err(invalid());
        }
        Ok(match key {
            "Name" => FilterKey::Name,
            "Type" => FilterKey::Type,
            "KeyId" => FilterKey::KeyId,
            "Path" => FilterKey::Path,
            "Tier" => FilterKey::Tier,
            "DataType" => FilterKey::DataType,
            "Label" => FilterKey::Label,
            _ => match key.strip_prefix("tag:") {
                Some(tag) if !tag.is_empty() => FilterKey::Tag(tag.to_owned()),
                _ => return Err(invalid()),
            },
        })
    }
}

/// A validated filter option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOption {
    Equals,
    BeginsWith,
    Contains,
    OneLevel,
    Recursive,
}

impl FilterOption {
    fn parse(option: &str) -> Option<Self> {
        Some(match option {
            "Equals" => FilterOption::Equals,
            "BeginsWith" => FilterOption::BeginsWith,
            "Contains" => FilterOption::Contains,
            "OneLevel" => FilterOption::OneLevel,
            "Recursive" => FilterOption::Recursive,
            _ => return None,
        })
    }
}

/// A filter that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterFilter {
    pub key: FilterKey,
    pub option: FilterOption,
    /// Empty only for `tag:<key>`, meaning "has the tag".
    pub values: Vec<String>,
}

/// What a filter is matched against: the parameter's metadata. `labels` are
/// the labels of the version being listed (GetParametersByPath lists the
/// latest version, so the server passes that version's labels).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParameterMeta {
    pub name: String,
    pub parameter_type: ParameterType,
    pub key_id: Option<String>,
    pub tier: Tier,
    pub data_type: String,
    pub labels: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub description: Option<String>,
}

/// Which operation the filters come with; they accept different keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterContext {
    DescribeParameters,
    GetParametersByPath,
}

const DESCRIBE_KEYS: &str = "Name, Type, KeyId, Path, Tier, DataType, tag:<key>";
const BY_PATH_KEYS: &str = "Type, KeyId, Label";

fn allowed_options(
    context: FilterContext,
    key: &FilterKey,
) -> (&'static [FilterOption], &'static str) {
    use FilterOption::*;
    match (context, key) {
        (_, FilterKey::Path) => (&[OneLevel, Recursive], "OneLevel, Recursive"),
        (_, FilterKey::Label) => (&[Equals], "Equals"),
        (FilterContext::DescribeParameters, FilterKey::Name) => (
            &[Equals, BeginsWith, Contains],
            "Equals, BeginsWith, Contains",
        ),
        _ => (&[Equals, BeginsWith], "Equals, BeginsWith"),
    }
}

fn key_allowed(context: FilterContext, key: &FilterKey) -> bool {
    match context {
        FilterContext::DescribeParameters => !matches!(key, FilterKey::Label),
        FilterContext::GetParametersByPath => {
            matches!(key, FilterKey::Type | FilterKey::KeyId | FilterKey::Label)
        }
    }
}

fn invalid_value(value: &str, reason: impl Into<String>) -> ParamError {
    ParamError::InvalidFilterValue {
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn check_values(
    key: &FilterKey,
    option: FilterOption,
    values: &[String],
) -> Result<(), ParamError> {
    if values.is_empty() && !matches!(key, FilterKey::Tag(_)) {
        return Err(invalid_value("", "The filter needs at least one value."));
    }
    if values.len() > MAX_FILTER_VALUES {
        return Err(invalid_value(
            &values.join(","),
            format!("A filter can have at most {MAX_FILTER_VALUES} values."),
        ));
    }
    for value in values {
        check_value(key, option, value)?;
    }
    Ok(())
}

/// Enumerated keys (Type, Tier, DataType) check their values only with
/// `Equals`: a `BeginsWith` prefix such as `Secure` is legitimately partial.
fn check_value(key: &FilterKey, option: FilterOption, value: &str) -> Result<(), ParamError> {
    let exact = option == FilterOption::Equals;
    let len = value.chars().count();
    if len == 0 || len > MAX_FILTER_VALUE_LEN {
        return Err(invalid_value(
            value,
            format!("A filter value must have 1 to {MAX_FILTER_VALUE_LEN} characters."),
        ));
    }
    match key {
        FilterKey::Type if exact && value.parse::<ParameterType>().is_err() => Err(invalid_value(
            value,
            "Valid values for Type are String, StringList, SecureString.",
        )),
        FilterKey::Tier if exact && value.parse::<Tier>().is_err() => Err(invalid_value(
            value,
            "Valid values for Tier are Standard, Advanced, Intelligent-Tiering.",
        )),
        FilterKey::DataType if exact && value != "text" && value != "aws:ec2:image" => Err(
            invalid_value(value, "Valid values for DataType are text, aws:ec2:image."),
        ),
        FilterKey::Path if names::validate_path(value).is_err() => Err(invalid_value(
            value,
            "A path must begin with '/' and have at most 15 levels.",
        )),
        _ => Ok(()),
    }
}

fn validate_one(
    context: FilterContext,
    filter: &ParameterStringFilter,
) -> Result<ParameterFilter, ParamError> {
    let allowed_keys = match context {
        FilterContext::DescribeParameters => DESCRIBE_KEYS,
        FilterContext::GetParametersByPath => BY_PATH_KEYS,
    };
    let key = FilterKey::parse(&filter.key, allowed_keys)?;
    if !key_allowed(context, &key) {
        return Err(ParamError::InvalidFilterKey {
            key: filter.key.clone(),
            allowed: allowed_keys,
        });
    }
    let (options, options_text) = allowed_options(context, &key);
    let option = match filter.option.as_deref() {
        None if key == FilterKey::Path => FilterOption::OneLevel,
        None => FilterOption::Equals,
        Some(text) => FilterOption::parse(text)
            .filter(|option| options.contains(option))
            .ok_or_else(|| ParamError::InvalidFilterOption {
                option: text.to_owned(),
                allowed: options_text,
            })?,
    };
    let values = filter.values.clone().unwrap_or_default();
    check_values(&key, option, &values)?;
    Ok(ParameterFilter {
        key,
        option,
        values,
    })
}

/// Validates `ParameterFilters` for an operation. A key may appear once
/// (tag keys once per tag).
pub fn validate_filters(
    context: FilterContext,
    filters: &[ParameterStringFilter],
) -> Result<Vec<ParameterFilter>, ParamError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut validated = Vec::with_capacity(filters.len());
    for filter in filters {
        if seen.contains(&filter.key.as_str()) {
            return Err(ParamError::FilterValidation {
                message: format!(
                    "The following filter is duplicated in the request: {}. A request can contain only one occurrence of a specific filter.",
                    filter.key
                ),
            });
        }
        seen.push(&filter.key);
        validated.push(validate_one(context, filter)?);
    }
    Ok(validated)
}

/// Validates the filters of a GetParametersByPath request.
pub fn validate_by_path_filters(
    filters: &[ParameterStringFilter],
) -> Result<Vec<ParameterFilter>, ParamError> {
    validate_filters(FilterContext::GetParametersByPath, filters)
}

/// Validates a DescribeParameters request's filters: either the legacy
/// `Filters` or `ParameterFilters`, never both. Legacy filters become
/// `Equals` filters.
pub fn validate_describe_filters(
    legacy: Option<&[ParametersFilter]>,
    filters: Option<&[ParameterStringFilter]>,
) -> Result<Vec<ParameterFilter>, ParamError> {
    match (legacy, filters) {
        (Some(legacy), Some(filters)) if !legacy.is_empty() && !filters.is_empty() => {
            Err(ParamError::FilterValidation {
                message: "You can use either Filters or ParameterFilters in a single request."
                    .to_owned(),
            })
        }
        (Some(legacy), _) if !legacy.is_empty() => {
            let converted: Vec<ParameterStringFilter> = legacy
                .iter()
                .map(|filter| ParameterStringFilter {
                    key: filter.key.clone(),
                    option: None,
                    values: Some(filter.values.clone()),
                })
                .collect();
            for filter in &converted {
                if !matches!(filter.key.as_str(), "Name" | "Type" | "KeyId") {
                    return Err(ParamError::InvalidFilterKey {
                        key: filter.key.clone(),
                        allowed: "Name, Type, KeyId",
                    });
                }
            }
            validate_filters(FilterContext::DescribeParameters, &converted)
        }
        (_, Some(filters)) => validate_filters(FilterContext::DescribeParameters, filters),
        _ => Ok(Vec::new()),
    }
}

fn text_matches(option: FilterOption, actual: &str, wanted: &str) -> bool {
    match option {
        FilterOption::Equals => actual == wanted,
        FilterOption::BeginsWith => actual.starts_with(wanted),
        FilterOption::Contains => actual.contains(wanted),
        FilterOption::OneLevel | FilterOption::Recursive => false,
    }
}

fn any_value(filter: &ParameterFilter, actual: Option<&str>) -> bool {
    let Some(actual) = actual else {
        return false;
    };
    filter
        .values
        .iter()
        .any(|wanted| text_matches(filter.option, actual, wanted))
}

fn filter_matches(meta: &ParameterMeta, filter: &ParameterFilter) -> bool {
    match &filter.key {
        FilterKey::Name => any_value(filter, Some(&meta.name)),
        FilterKey::Type => any_value(filter, Some(meta.parameter_type.as_str())),
        FilterKey::KeyId => any_value(filter, meta.key_id.as_deref()),
        FilterKey::Tier => any_value(filter, Some(meta.tier.as_str())),
        FilterKey::DataType => any_value(filter, Some(&meta.data_type)),
        FilterKey::Label => meta
            .labels
            .iter()
            .any(|label| any_value(filter, Some(label))),
        FilterKey::Path => {
            let recursive = filter.option == FilterOption::Recursive;
            filter
                .values
                .iter()
                .any(|path| names::under_path(&meta.name, path, recursive))
        }
        FilterKey::Tag(tag) => match meta.tags.get(tag) {
            None => false,
            Some(_) if filter.values.is_empty() => true,
            Some(value) => any_value(filter, Some(value)),
        },
    }
}

/// Whether a parameter passes every filter (an empty list passes all).
pub fn matches(meta: &ParameterMeta, filters: &[ParameterFilter]) -> bool {
    filters.iter().all(|filter| filter_matches(meta, filter))
}
