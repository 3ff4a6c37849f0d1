//! The `Condition` block: operators, their IAM semantics (listed in the
//! crate documentation under "Conditions, as IAM decides them"), and how
//! one condition is decided against a request's context.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::number::Decimal;

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

/// How a numeric operator relates a request value to a policy value
/// (`NumericLessThan` holds when the request value is less than the policy
/// value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    Equals,
    NotEquals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

/// A condition operator as written in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    String {
        comparison: Comparison,
        negated: bool,
        if_exists: bool,
    },
    Numeric {
        relation: Relation,
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
        let string = STRING_OPERATORS
            .iter()
            .find(|(known, _, _)| *known == base)
            .map(|&(_, comparison, negated)| Operator::String {
                comparison,
                negated,
                if_exists,
            });
        string.or_else(|| {
            Relation::ALL
                .into_iter()
                .find(|relation| relation.name() == base)
                .map(|relation| Operator::Numeric {
                    relation,
                    if_exists,
                })
        })
    }

    /// Every operator name this crate accepts, for error messages.
    pub(crate) fn all_names() -> Vec<String> {
        let string_bases = STRING_OPERATORS.iter().map(|(base, _, _)| *base);
        let numeric_bases = Relation::ALL.into_iter().map(Relation::name);
        let mut names: Vec<String> = Vec::new();
        for base in string_bases.chain(numeric_bases) {
            names.push(base.to_owned());
            names.push(format!("{base}{IF_EXISTS}"));
        }
        names.push("Null".to_owned());
        names
    }

    pub(crate) fn name(self) -> String {
        match self {
            Operator::Null => "Null".to_owned(),
            Operator::Numeric {
                relation,
                if_exists,
            } => {
                let suffix = if if_exists { IF_EXISTS } else { "" };
                format!("{}{suffix}", relation.name())
            }
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
            Operator::Numeric {
                relation,
                if_exists,
            } => {
                if absent {
                    return if_exists || relation.is_negated();
                }
                relation.holds(present, &self.values)
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

impl Relation {
    const ALL: [Relation; 6] = [
        Relation::Equals,
        Relation::NotEquals,
        Relation::LessThan,
        Relation::LessThanEquals,
        Relation::GreaterThan,
        Relation::GreaterThanEquals,
    ];

    fn name(self) -> &'static str {
        match self {
            Relation::Equals => "NumericEquals",
            Relation::NotEquals => "NumericNotEquals",
            Relation::LessThan => "NumericLessThan",
            Relation::LessThanEquals => "NumericLessThanEquals",
            Relation::GreaterThan => "NumericGreaterThan",
            Relation::GreaterThanEquals => "NumericGreaterThanEquals",
        }
    }

    /// `NumericNotEquals` is the only negated numeric operator: an absent
    /// key makes it true, as for `StringNotEquals`.
    fn is_negated(self) -> bool {
        self == Relation::NotEquals
    }

    /// Whether the request values (at least one) satisfy the relation with
    /// the policy values.
    ///
    /// A positive relation holds when some request value that is a number
    /// relates to some policy value; values that are not numbers match
    /// nothing. `NumericNotEquals` holds when every request value is a
    /// number equal to no policy value: a value that is not a number
    /// cannot be shown to differ, so it makes the condition false rather
    /// than true (for a `Deny` that means the statement does not apply).
    fn holds<'a>(self, mut request: impl Iterator<Item = &'a str>, policy: &[String]) -> bool {
        // Policy values were checked to be numbers by the parser; one that
        // somehow is not simply matches nothing.
        let policy_numbers = || policy.iter().filter_map(|value| Decimal::parse(value));
        if self.is_negated() {
            return request.all(|value| {
                Decimal::parse(value)
                    .is_some_and(|number| policy_numbers().all(|p| self.accepts(number.cmp(&p))))
            });
        }
        request.any(|value| {
            Decimal::parse(value)
                .is_some_and(|number| policy_numbers().any(|p| self.accepts(number.cmp(&p))))
        })
    }

    /// Whether `request.cmp(policy)` is what this relation asks for.
    fn accepts(self, order: Ordering) -> bool {
        match self {
            Relation::Equals => order.is_eq(),
            Relation::NotEquals => order.is_ne(),
            Relation::LessThan => order.is_lt(),
            Relation::LessThanEquals => order.is_le(),
            Relation::GreaterThan => order.is_gt(),
            Relation::GreaterThanEquals => order.is_ge(),
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
