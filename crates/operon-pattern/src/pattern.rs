//! Parsing and validating event patterns.
//!
//! A pattern compiles to a list of *branches* (its disjunctive normal form:
//! `$or` multiplies branches). A branch is a set of field conditions that must
//! all hold; a field condition is a dotted path and the list of alternative
//! value matchers given for it.

use std::fmt;

use crate::cidr::{IpRange, parse_ip};
use crate::event::Scalar;
use crate::json::{self, Json};
use crate::number::comparable;
use crate::wildcard::{self, Wildcard};

/// At most this many branches after expanding `$or`, so one rule cannot blow up the matcher.
pub const MAX_BRANCHES: usize = 1024;

/// Field names that are operators and so cannot name fields inside `$or`.
const OPERATOR_NAMES: [&str; 9] = [
    "anything-but",
    "numeric",
    "prefix",
    "suffix",
    "exists",
    "cidr",
    "equals-ignore-case",
    "wildcard",
    "exact",
];

/// Why a pattern is invalid, and where: `pointer` is a JSON pointer (RFC 6901)
/// into the pattern ("" for the whole pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "the pattern"
        } else {
            self.pointer.as_str()
        };
        write!(f, "Event pattern is not valid at {at}: {}", self.message)
    }
}

impl std::error::Error for PatternError {}

/// A validated event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub(crate) branches: Vec<Branch>,
}

/// Conditions that must all hold (one alternative of the pattern's `$or`s).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Branch {
    pub(crate) fields: Vec<FieldCondition>,
}

/// A field path (segments joined by '.') and its alternative matchers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldCondition {
    pub(crate) path: String,
    pub(crate) matchers: Vec<ValueMatcher>,
}

/// One matcher of a field's list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueMatcher {
    ExactString(String),
    /// A number: compared by value when comparable, else by its text.
    ExactNumber {
        text: String,
        value: Option<f64>,
    },
    ExactBool(bool),
    ExactNull,
    /// A `cidr` block, or an exact string that is an IP address.
    Ip(IpRange),
    Prefix(String),
    /// Stored lower-cased.
    PrefixIgnoreCase(String),
    Suffix(String),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    Numeric(NumericRange),
    Exists(bool),
    AnythingBut(AnythingBut),
}

/// A numeric interval; bounds are infinite when absent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NumericRange {
    pub(crate) low: f64,
    pub(crate) low_open: bool,
    pub(crate) high: f64,
    pub(crate) high_open: bool,
}

impl NumericRange {
    pub(crate) fn contains(&self, x: f64) -> bool {
        let above = if self.low_open {
            x > self.low
        } else {
            x >= self.low
        };
        let below = if self.high_open {
            x < self.high
        } else {
            x <= self.high
        };
        above && below
    }
}

/// The forms of `anything-but`: a value matches unless it is one of these.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    /// Stored lower-cased.
    IgnoreCase(Vec<String>),
    Wildcards(Vec<Wildcard>),
}

impl AnythingBut {
    /// Whether `value` is excluded (so the anything-but does not match it).
    pub(crate) fn excludes(&self, value: &Scalar<'_>) -> bool {
        match (self, value) {
            (AnythingBut::Strings(list), Scalar::Str(s)) => list.iter().any(|x| x == s),
            (AnythingBut::Numbers(list), Scalar::Number { value: Some(v), .. }) => list.contains(v),
            (AnythingBut::Prefixes(list), Scalar::Str(s)) => {
                list.iter().any(|x| s.starts_with(x.as_str()))
            }
            (AnythingBut::Suffixes(list), Scalar::Str(s)) => {
                list.iter().any(|x| s.ends_with(x.as_str()))
            }
            (AnythingBut::IgnoreCase(list), Scalar::Str(s)) => {
                let lower = s.to_lowercase();
                list.contains(&lower)
            }
            (AnythingBut::Wildcards(list), Scalar::Str(s)) => {
                list.iter().any(|w| w.matches(s.as_bytes()))
            }
            _ => false,
        }
    }
}

impl ValueMatcher {
    /// Whether this matcher accepts the event value (`Exists(false)` never does:
    /// it is about the absence of values).
    pub(crate) fn matches(&self, value: &Scalar<'_>) -> bool {
        match (self, value) {
            (ValueMatcher::ExactString(x), Scalar::Str(s)) => x == s,
            (
                ValueMatcher::ExactNumber { text, value: want },
                Scalar::Number {
                    text: got_text,
                    value: got,
                },
            ) => text == got_text || (want.is_some() && want == got),
            (ValueMatcher::ExactBool(x), Scalar::Bool(b)) => x == b,
            (ValueMatcher::ExactNull, Scalar::Null) => true,
            (ValueMatcher::Ip(range), Scalar::Str(s)) => {
                parse_ip(s).is_some_and(|ip| range.contains(ip))
            }
            (ValueMatcher::Prefix(p), Scalar::Str(s)) => s.starts_with(p.as_str()),
            (ValueMatcher::PrefixIgnoreCase(p), Scalar::Str(s)) => {
                s.to_lowercase().starts_with(p.as_str())
            }
            (ValueMatcher::Suffix(p), Scalar::Str(s)) => s.ends_with(p.as_str()),
            (ValueMatcher::SuffixIgnoreCase(p), Scalar::Str(s)) => {
                s.to_lowercase().ends_with(p.as_str())
            }
            (ValueMatcher::EqualsIgnoreCase(p), Scalar::Str(s)) => s.to_lowercase() == *p,
            (ValueMatcher::Wildcard(w), Scalar::Str(s)) => w.matches(s.as_bytes()),
            (ValueMatcher::Numeric(range), Scalar::Number { value: Some(x), .. }) => {
                range.contains(*x)
            }
            (ValueMatcher::Exists(true), _) => true,
            (ValueMatcher::AnythingBut(but), v) => !but.excludes(v),
            _ => false,
        }
    }
}

impl Pattern {
    /// Parses and validates a pattern from its JSON text.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let json = json::parse(text).map_err(|e| PatternError {
            pointer: String::new(),
            message: e.to_string(),
        })?;
        Self::from_json(&json)
    }

    /// Parses and validates a pattern given as a serde_json value.
    pub fn from_value(value: &serde_json::Value) -> Result<Pattern, PatternError> {
        Self::parse(&value.to_string())
    }

    pub(crate) fn from_json(json: &Json) -> Result<Pattern, PatternError> {
        let Json::Object(members) = json else {
            return Err(error("", "Filter is not an object"));
        };
        let mut branches = vec![Branch::default()];
        parse_object(members, "", "", &mut branches, false)?;
        for branch in &branches {
            check_wildcard_complexity(branch)?;
        }
        check_expansion_size(&branches)?;
        Ok(Pattern { branches })
    }

    /// Every field path the pattern looks at (dotted), without duplicates.
    pub fn field_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .branches
            .iter()
            .flat_map(|b| b.fields.iter().map(|f| f.path.clone()))
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

fn error(pointer: &str, message: impl Into<String>) -> PatternError {
    PatternError {
        pointer: pointer.to_string(),
        message: message.into(),
    }
}

/// Extends a JSON pointer by one reference token.
fn child_pointer(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

fn parse_object(
    members: &[(String, Json)],
    path: &str,
    pointer: &str,
    branches: &mut Vec<Branch>,
    inside_or: bool,
) -> Result<(), PatternError> {
    if members.is_empty() {
        return Err(error(pointer, "Empty objects are not allowed"));
    }
    for (key, value) in members {
        let member_pointer = child_pointer(pointer, key);
        if key == "$or" {
            parse_or(value, path, &member_pointer, branches)?;
            continue;
        }
        if inside_or && OPERATOR_NAMES.contains(&key.as_str()) {
            return Err(error(
                &member_pointer,
                format!("{key} is a reserved field name which cannot be used inside $or"),
            ));
        }
        let field_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            Json::Object(inner) => {
                parse_object(inner, &field_path, &member_pointer, branches, inside_or)?
            }
            Json::Array(items) => {
                let matchers = parse_matcher_list(items, &member_pointer)?;
                for branch in branches.iter_mut() {
                    set_field(branch, &field_path, matchers.clone());
                }
            }
            _ => {
                return Err(error(
                    &member_pointer,
                    format!("\"{key}\" must be an object or an array"),
                ));
            }
        }
    }
    Ok(())
}

/// A later condition on the same path replaces the earlier one (event-ruler's "overriding").
fn set_field(branch: &mut Branch, path: &str, matchers: Vec<ValueMatcher>) {
    branch.fields.retain(|f| f.path != path);
    branch.fields.push(FieldCondition {
        path: path.to_string(),
        matchers,
    });
}

fn parse_or(
    value: &Json,
    path: &str,
    pointer: &str,
    branches: &mut Vec<Branch>,
) -> Result<(), PatternError> {
    let Json::Array(alternatives) = value else {
        return Err(error(pointer, "It must be an Array followed with $or."));
    };
    let base = std::mem::take(branches);
    for (i, alternative) in alternatives.iter().enumerate() {
        let alt_pointer = child_pointer(pointer, &i.to_string());
        let Json::Object(members) = alternative else {
            return Err(error(
                &alt_pointer,
                "Only JSON object is allowed in array of $or relationship.",
            ));
        };
        let mut alt_branches = base.clone();
        parse_object(members, path, &alt_pointer, &mut alt_branches, true)?;
        branches.extend(alt_branches);
        if branches.len() > MAX_BRANCHES {
            return Err(error(
                pointer,
                format!("Too many $or combinations (more than {MAX_BRANCHES})"),
            ));
        }
    }
    if alternatives.len() < 2 {
        return Err(error(
            pointer,
            "There must have at least 2 Objects in $or relationship.",
        ));
    }
    Ok(())
}

fn parse_matcher_list(items: &[Json], pointer: &str) -> Result<Vec<ValueMatcher>, PatternError> {
    if items.is_empty() {
        return Err(error(pointer, "Empty arrays are not allowed"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_matcher(item, &child_pointer(pointer, &i.to_string())))
        .collect()
}

fn parse_matcher(item: &Json, pointer: &str) -> Result<ValueMatcher, PatternError> {
    match item {
        Json::String(s) => Ok(match parse_ip(s) {
            Some(ip) => ValueMatcher::Ip(IpRange::single(ip)),
            None => ValueMatcher::ExactString(s.clone()),
        }),
        Json::Number(text) => Ok(ValueMatcher::ExactNumber {
            text: text.clone(),
            value: comparable(text),
        }),
        Json::Bool(b) => Ok(ValueMatcher::ExactBool(*b)),
        Json::Null => Ok(ValueMatcher::ExactNull),
        Json::Array(_) => Err(error(
            pointer,
            "Match value must be String, number, true, false, or null",
        )),
        Json::Object(members) => parse_operator(members, pointer),
    }
}

fn parse_operator(members: &[(String, Json)], pointer: &str) -> Result<ValueMatcher, PatternError> {
    let [(name, operand)] = members else {
        let message = if members.is_empty() {
            "Match expression name not found"
        } else {
            "Only one key allowed in match expression"
        };
        return Err(error(pointer, message));
    };
    let at = child_pointer(pointer, name);
    match name.as_str() {
        "prefix" => parse_affix(operand, &at, "prefix"),
        "suffix" => parse_affix(operand, &at, "suffix"),
        "equals-ignore-case" => Ok(ValueMatcher::EqualsIgnoreCase(
            expect_string(operand, &at, "equals-ignore-case")?.to_lowercase(),
        )),
        "wildcard" => parse_wildcard(expect_string(operand, &at, "wildcard")?, &at)
            .map(ValueMatcher::Wildcard),
        "numeric" => parse_numeric(operand, &at).map(ValueMatcher::Numeric),
        "exists" => match operand {
            Json::Bool(b) => Ok(ValueMatcher::Exists(*b)),
            _ => Err(error(
                &at,
                "exists match pattern must be either true or false.",
            )),
        },
        "cidr" => {
            let text = expect_string(operand, &at, "cidr")?;
            IpRange::parse_cidr(text)
                .map(ValueMatcher::Ip)
                .map_err(|m| error(&at, m))
        }
        "anything-but" => parse_anything_but(operand, &at).map(ValueMatcher::AnythingBut),
        _ => Err(error(&at, format!("Unrecognized match type {name}"))),
    }
}

fn expect_string<'a>(
    operand: &'a Json,
    pointer: &str,
    operator: &str,
) -> Result<&'a str, PatternError> {
    match operand {
        Json::String(s) => Ok(s),
        _ => Err(error(
            pointer,
            format!("{operator} match pattern must be a string"),
        )),
    }
}

fn parse_wildcard(text: &str, pointer: &str) -> Result<Wildcard, PatternError> {
    Wildcard::parse(text).map_err(|m| error(pointer, m))
}

/// `prefix`/`suffix`: a string, or `{"equals-ignore-case": string}`.
fn parse_affix(
    operand: &Json,
    pointer: &str,
    operator: &str,
) -> Result<ValueMatcher, PatternError> {
    let is_prefix = operator == "prefix";
    match operand {
        Json::String(s) if is_prefix => Ok(ValueMatcher::Prefix(s.clone())),
        Json::String(s) => Ok(ValueMatcher::Suffix(s.clone())),
        Json::Object(members) => {
            let [(name, inner)] = members.as_slice() else {
                return Err(error(pointer, "Only one key allowed in match expression"));
            };
            let at = child_pointer(pointer, name);
            if name != "equals-ignore-case" {
                return Err(error(
                    &at,
                    format!("Unsupported {operator} pattern: {name}"),
                ));
            }
            let lower = expect_string(inner, &at, "equals-ignore-case")?.to_lowercase();
            Ok(if is_prefix {
                ValueMatcher::PrefixIgnoreCase(lower)
            } else {
                ValueMatcher::SuffixIgnoreCase(lower)
            })
        }
        _ => Err(error(
            pointer,
            format!("{operator} match pattern must be a string"),
        )),
    }
}

fn parse_numeric(operand: &Json, pointer: &str) -> Result<NumericRange, PatternError> {
    let Json::Array(terms) = operand else {
        return Err(error(pointer, "Value of numeric must be an array."));
    };
    let operator_at = |i: usize| -> Result<&str, PatternError> {
        match terms.get(i) {
            Some(Json::String(op)) => Ok(op),
            Some(_) => Err(error(
                &child_pointer(pointer, &i.to_string()),
                "Invalid member in numeric match: expected an operator",
            )),
            None => Err(error(pointer, "Missing operator in numeric match")),
        }
    };
    let number_at = |i: usize, op: &str| -> Result<f64, PatternError> {
        let at = child_pointer(pointer, &i.to_string());
        match terms.get(i) {
            Some(Json::Number(text)) => comparable(text)
                .ok_or_else(|| error(&at, format!("Cannot compare number : {text}"))),
            _ => Err(error(&at, format!("Value of {op} must be numeric"))),
        }
    };
    let mut range = NumericRange {
        low: f64::NEG_INFINITY,
        low_open: false,
        high: f64::INFINITY,
        high_open: false,
    };
    let first = operator_at(0)?;
    let value = number_at(1, first)?;
    let expected_len = match first {
        "=" => {
            (range.low, range.high) = (value, value);
            2
        }
        "<" | "<=" => {
            (range.high, range.high_open) = (value, first == "<");
            2
        }
        ">" | ">=" => {
            (range.low, range.low_open) = (value, first == ">");
            if terms.len() > 2 {
                let second = operator_at(2)?;
                if second != "<" && second != "<=" {
                    return Err(error(
                        &child_pointer(pointer, "2"),
                        format!("Bad numeric range operator: {second}"),
                    ));
                }
                (range.high, range.high_open) = (number_at(3, second)?, second == "<");
                if range.low >= range.high {
                    return Err(error(pointer, "Bottom must be less than top"));
                }
                4
            } else {
                2
            }
        }
        other => {
            return Err(error(
                &child_pointer(pointer, "0"),
                format!("Unrecognized numeric range operator: {other}"),
            ));
        }
    };
    if terms.len() != expected_len {
        return Err(error(pointer, "Too many elements in numeric expression"));
    }
    Ok(range)
}

fn parse_anything_but(operand: &Json, pointer: &str) -> Result<AnythingBut, PatternError> {
    match operand {
        Json::String(s) => Ok(AnythingBut::Strings(vec![s.clone()])),
        Json::Number(text) => Ok(AnythingBut::Numbers(vec![anything_but_number(
            text, pointer,
        )?])),
        Json::Array(items) => parse_anything_but_list(items, pointer),
        Json::Object(members) => {
            let [(name, inner)] = members.as_slice() else {
                let message = if members.is_empty() {
                    "Anything-But expression name not found"
                } else {
                    "Too many elements in anything-but expression"
                };
                return Err(error(pointer, message));
            };
            parse_anything_but_set(name, inner, &child_pointer(pointer, name))
        }
        _ => Err(error(
            pointer,
            "Value of anything-but must be an array or single string/number value.",
        )),
    }
}

fn anything_but_number(text: &str, pointer: &str) -> Result<f64, PatternError> {
    comparable(text).ok_or_else(|| error(pointer, format!("Cannot compare number : {text}")))
}

fn parse_anything_but_list(items: &[Json], pointer: &str) -> Result<AnythingBut, PatternError> {
    let mut strings = Vec::new();
    let mut numbers = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = child_pointer(pointer, &i.to_string());
        match item {
            Json::String(s) => strings.push(s.clone()),
            Json::Number(text) => numbers.push(anything_but_number(text, &at)?),
            _ => {
                return Err(error(
                    &at,
                    "Inside anything but list, start|null|boolean is not supported.",
                ));
            }
        }
    }
    match (strings.is_empty(), numbers.is_empty()) {
        (false, true) => Ok(AnythingBut::Strings(strings)),
        (true, false) => Ok(AnythingBut::Numbers(numbers)),
        _ => Err(error(
            pointer,
            "Inside anything but list, either all values are number or string, mixed type is not supported",
        )),
    }
}

/// `{"anything-but": {"prefix"|"suffix"|"equals-ignore-case"|"wildcard": string or [strings]}}`.
fn parse_anything_but_set(
    name: &str,
    inner: &Json,
    pointer: &str,
) -> Result<AnythingBut, PatternError> {
    let type_error = match name {
        "equals-ignore-case" => {
            "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported."
        }
        "wildcard" => "wildcard match pattern must be a string",
        "prefix" | "suffix" => "prefix/suffix match pattern must be a string",
        _ => {
            return Err(error(
                pointer,
                format!("Unsupported anything-but pattern: {name}"),
            ));
        }
    };
    let values: Vec<(String, String)> = match inner {
        Json::String(s) => vec![(s.clone(), pointer.to_string())],
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = child_pointer(pointer, &i.to_string());
                match item {
                    Json::String(s) => Ok((s.clone(), at)),
                    _ => Err(error(&at, type_error)),
                }
            })
            .collect::<Result<_, _>>()?,
        Json::Number(_) if name == "equals-ignore-case" => return Err(error(pointer, type_error)),
        Json::Number(_) | Json::Bool(_) | Json::Null => return Err(error(pointer, type_error)),
        Json::Object(_) => {
            return Err(error(
                pointer,
                "Value of anything-but must be an array or single string/number value.",
            ));
        }
    };
    if matches!(name, "prefix" | "suffix") && values.iter().any(|(s, _)| s.is_empty()) {
        return Err(error(pointer, "Null prefix/suffix not allowed"));
    }
    Ok(match name {
        "prefix" => AnythingBut::Prefixes(values.into_iter().map(|(s, _)| s).collect()),
        "suffix" => AnythingBut::Suffixes(values.into_iter().map(|(s, _)| s).collect()),
        "equals-ignore-case" => {
            AnythingBut::IgnoreCase(values.into_iter().map(|(s, _)| s.to_lowercase()).collect())
        }
        _ => AnythingBut::Wildcards(
            values
                .iter()
                .map(|(s, at)| parse_wildcard(s, at))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A field list mixing `exists: false` with other matchers doubles its branch
/// when compiled; keep the total within `MAX_BRANCHES`.
fn check_expansion_size(branches: &[Branch]) -> Result<(), PatternError> {
    let mut total: usize = 0;
    for branch in branches {
        let mixed = branch
            .fields
            .iter()
            .filter(|f| f.matchers.contains(&ValueMatcher::Exists(false)) && f.matchers.len() > 1)
            .count();
        total = total.saturating_add(1usize.checked_shl(mixed as u32).unwrap_or(usize::MAX));
    }
    if total > MAX_BRANCHES {
        return Err(error(
            "",
            format!(
                "Pattern is too complex: more than {MAX_BRANCHES} combinations of $or and exists:false alternatives"
            ),
        ));
    }
    Ok(())
}

fn check_wildcard_complexity(branch: &Branch) -> Result<(), PatternError> {
    for field in &branch.fields {
        let patterns: Vec<&Wildcard> = field
            .matchers
            .iter()
            .flat_map(|m| match m {
                ValueMatcher::Wildcard(w) => std::slice::from_ref(w),
                ValueMatcher::AnythingBut(AnythingBut::Wildcards(list)) => list.as_slice(),
                _ => &[],
            })
            .collect();
        if !patterns.is_empty() && wildcard::complexity(&patterns) > wildcard::MAX_COMPLEXITY {
            return Err(error(
                &format!(
                    "/{}",
                    field
                        .path
                        .replace('~', "~0")
                        .replace('/', "~1")
                        .replace('.', "/")
                ),
                "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character",
            ));
        }
    }
    Ok(())
}
