//! The `Condition` block: operators, their IAM semantics (listed in the
//! crate documentation under "Conditions, as IAM decides them"), and how
//! one condition is decided against a request's context.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// How a string operator compares a request value with a policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// `StringEquals`: exact, case-sensitive.
    Equals,
    /// `StringEqualsIgnoreCase`: exact after Unicode lower-casing.
    EqualsIgnoreCase,
    /// `StringLike`: `*`/`?` glob, case-sensitive.
    Like,
}

/// A condition operator as written in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    String {
        comparison: Comparison,
        negated: bool,
        if_exists: bool,
    },
    Null,
}

/// The string operators, by name without the `IfExists` suffix.
const STRING_OPERATORS: [(&str, Comparison, bool); 6] = [
    ("StringEquals", Comparison::Equals, false),
    ("StringNotEquals", Comparison::Equals, true),
    (
        "StringEqualsIgnoreCase",
        Comparison::EqualsIgnoreCase,
        false,
    ),
    (
        "StringNotEqualsIgnoreCase",
        Comparison::EqualsIgnoreCase,
        true,
    ),
    ("StringLike", Comparison::Like, false),
    ("StringNotLike", Comparison::Like, true),
];

const IF_EXISTS: &str = "IfExists";

impl Operator {
    /// The operator called `name` (case-sensitive, as IAM spells them).
    pub(crate) fn from_name(name: &str) -> Option<Operator> {
        if name == "Null" {
            return Some(Operator::Null);
        }
        let (base, if_exists) = match name.strip_suffix(IF_EXISTS) {
            Some(base) => (base, true),
            None => (name, false),
        };
        STRING_OPERATORS
            .iter()
            .find(|(known, _, _)| *known == base)
            .map(|&(_, comparison, negated)| Operator::String {
                comparison,
                negated,
                if_exists,
            })
    }

    /// Every operator name this crate accepts, for error messages.
    pub(crate) fn all_names() -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (base, _, _) in STRING_OPERATORS {
            names.push(base.to_owned());
            names.push(format!("{base}{IF_EXISTS}"));
        }
        names.push("Null".to_owned());
        names
    }

    pub(crate) fn name(self) -> String {
        match self {
            Operator::Null => "Null".to_owned(),
            Operator::String {
                comparison,
                negated,
                if_exists,
            } => {
                let (base, _, _) = STRING_OPERATORS
                    .iter()
                    .find(|(_, c, n)| *c == comparison && *n == negated)
                    .expect("every comparison/negation pair has a name");
                let suffix = if if_exists { IF_EXISTS } else { "" };
                format!("{base}{suffix}")
            }
        }
    }
}

/// One operator applied to one key: `"StringEquals": {"operon:NodeTag/env": ["a", "b"]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub(crate) operator: Operator,
    pub(crate) key: String,
    pub(crate) values: Vec<String>,
}

impl Condition {
    /// The operator as written, e.g. `StringLikeIfExists`.
    pub fn operator(&self) -> String {
        self.operator.name()
    }

    /// The condition key as written, e.g. `operon:NodeTag/env`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The policy values (any one of them may match).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether the condition holds for the request `context`.
    pub(crate) fn holds(&self, context: &BTreeMap<String, Vec<String>>) -> bool {
        let mut present = context_values(context, &self.key);
        let absent = present.clone().next().is_none();
        match self.operator {
            Operator::Null => {
                // Values were validated as "true"/"false" by the parser.
                self.values.iter().any(|v| (v == "true") == absent)
            }
            Operator::String {
                comparison,
                negated,
                if_exists,
            } => {
                if absent {
                    return if_exists || negated;
                }
                let any_match = present.any(|request| {
                    self.values
                        .iter()
                        .any(|policy| comparison.matches(policy, request))
                });
                any_match != negated
            }
        }
    }

    /// The JSON `Condition` object for `conditions`, grouped by operator in
    /// first-appearance order.
    pub(crate) fn block_to_json(conditions: &[Condition]) -> Value {
        let mut block = Map::new();
        for condition in conditions {
            let keys = block
                .entry(condition.operator.name())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(keys) = keys {
                keys.insert(condition.key.clone(), json!(condition.values));
            }
        }
        Value::Object(block)
    }
}

impl Comparison {
    fn matches(self, policy: &str, request: &str) -> bool {
        match self {
            Comparison::Equals => policy == request,
            Comparison::EqualsIgnoreCase => lower_chars(policy).eq(lower_chars(request)),
            Comparison::Like => crate::wildcard::matches(policy, request),
        }
    }
}

fn lower_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

/// Condition key names compare case-insensitively, as in IAM.
fn same_key(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        lower_chars(a).eq(lower_chars(b))
    }
}

/// Every value the request holds for `key`, whose name is matched
/// case-insensitively. No values means the key is absent.
fn context_values<'a>(
    context: &'a BTreeMap<String, Vec<String>>,
    key: &'a str,
) -> impl Iterator<Item = &'a str> + Clone + 'a {
    context
        .iter()
        .filter(move |(name, _)| same_key(name, key))
        .flat_map(|(_, values)| values.iter().map(String::as_str))
}
