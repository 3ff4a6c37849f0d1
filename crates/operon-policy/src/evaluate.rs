//! Deciding a request against a principal's policies.
//!
//! The rule is IAM's for identity policies: a request is denied unless some
//! statement allows it (implicit deny), and any statement that denies it wins
//! over every allow (explicit deny). A statement applies when its action
//! patterns cover the action, its resource patterns cover the resource and
//! every condition holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::document::{Effect, Policy, Statement};

/// Context key holding the name of the principal making the request.
pub const PRINCIPAL_KEY: &str = "operon:Principal";
/// Prefix of the context keys holding the target node's tags:
/// `operon:NodeTag/env` is the value of the node's `env` tag.
pub const NODE_TAG_PREFIX: &str = "operon:NodeTag/";

/// A policy with the name it is stored and reported under.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPolicy {
    pub name: String,
    pub policy: Policy,
}

impl NamedPolicy {
    pub fn new(name: impl Into<String>, policy: Policy) -> NamedPolicy {
        NamedPolicy {
            name: name.into(),
            policy,
        }
    }
}

/// What is asked: may the principal do `action` on `resource`?
///
/// `context` holds the condition keys (`operon:Principal`,
/// `operon:NodeTag/env`, ...) with their values; a key that is absent, or
/// present with no values, is missing for the conditions. In JSON a value
/// may be one string or a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `noun:Verb`, e.g. `commands:Run`.
    pub action: String,
    /// `kind/name`, e.g. `node/web-1`.
    pub resource: String,
    #[serde(default, deserialize_with = "one_or_many_values")]
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Request {
        Request {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    /// Add a context key with its values (appending if the key is there).
    pub fn with(
        mut self,
        key: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Request {
        let entry = self.context.entry(key.into()).or_default();
        entry.extend(values.into_iter().map(Into::into));
        self
    }

    /// Set `operon:Principal`.
    pub fn with_principal(self, principal: impl Into<String>) -> Request {
        self.with(PRINCIPAL_KEY, [principal.into()])
    }

    /// Add `operon:NodeTag/<key>` for each of the target node's tags.
    pub fn with_node_tags<K, V>(self, tags: impl IntoIterator<Item = (K, V)>) -> Request
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        tags.into_iter().fold(self, |request, (key, value)| {
            request.with(format!("{NODE_TAG_PREFIX}{}", key.as_ref()), [value.into()])
        })
    }
}

/// Which statement decided: the policy's name, the statement's index in
/// the policy's `Statement` list (from 0) and its `Sid` if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRef {
    pub policy: String,
    pub statement: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl std::fmt::Display for StatementRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "policy \"{}\" Statement[{}]",
            self.policy, self.statement
        )?;
        if let Some(sid) = &self.sid {
            write!(f, " (Sid \"{sid}\")")?;
        }
        Ok(())
    }
}

/// The outcome of [`evaluate`]. In JSON:
/// `{"decision": "Allow", "policy": "ops", "statement": 0, "sid": "RunOnStaging"}`
/// or `{"decision": "ImplicitDeny"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision")]
pub enum Decision {
    /// A statement allows the request and none denies it.
    Allow(StatementRef),
    /// A statement denies the request; this overrides any allow.
    ExplicitDeny(StatementRef),
    /// No statement applies to the request: denied by default.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The statement that decided, if one did.
    pub fn statement(&self) -> Option<&StatementRef> {
        match self {
            Decision::Allow(at) | Decision::ExplicitDeny(at) => Some(at),
            Decision::ImplicitDeny => None,
        }
    }

    /// One sentence for people: what was decided and why.
    pub fn explain(&self) -> String {
        match self {
            Decision::Allow(at) => format!("allowed by {at}, and no statement denies it"),
            Decision::ExplicitDeny(at) => {
                format!("explicitly denied by {at}; an explicit Deny overrides any Allow")
            }
            Decision::ImplicitDeny => {
                "implicitly denied: no statement allows this action on this resource (default deny)"
                    .to_owned()
            }
        }
    }
}

/// Decide `request` against `policies`: explicit deny, else allow, else
/// implicit deny. When several statements deny (or allow), the first in
/// policy order, then statement order, is reported.
pub fn evaluate(policies: &[NamedPolicy], request: &Request) -> Decision {
    let action = request.action.to_lowercase();
    let mut first_allow = None;
    for (policy, index, statement) in applicable(policies, request, &action) {
        match statement.effect() {
            Effect::Deny => return Decision::ExplicitDeny(statement_ref(policy, index, statement)),
            Effect::Allow => {
                first_allow.get_or_insert_with(|| statement_ref(policy, index, statement));
            }
        }
    }
    first_allow.map_or(Decision::ImplicitDeny, Decision::Allow)
}

/// Every statement that applies to `request`, allow and deny alike, in
/// policy order: what `operon policies simulate` lists under the decision.
pub fn applicable_statements(
    policies: &[NamedPolicy],
    request: &Request,
) -> Vec<(Effect, StatementRef)> {
    let action = request.action.to_lowercase();
    applicable(policies, request, &action)
        .map(|(policy, index, statement)| {
            (statement.effect(), statement_ref(policy, index, statement))
        })
        .collect()
}

fn applicable<'a>(
    policies: &'a [NamedPolicy],
    request: &'a Request,
    lowered_action: &'a str,
) -> impl Iterator<Item = (&'a NamedPolicy, usize, &'a Statement)> + 'a {
    policies.iter().flat_map(move |policy| {
        policy
            .policy
            .statements()
            .iter()
            .enumerate()
            .filter(move |(_, statement)| applies(statement, lowered_action, request))
            .map(move |(index, statement)| (policy, index, statement))
    })
}

fn applies(statement: &Statement, lowered_action: &str, request: &Request) -> bool {
    statement.covers(lowered_action, &request.resource)
        && statement
            .conditions
            .iter()
            .all(|condition| condition.holds(&request.context))
}

fn statement_ref(policy: &NamedPolicy, index: usize, statement: &Statement) -> StatementRef {
    StatementRef {
        policy: policy.name.clone(),
        statement: index,
        sid: statement.sid().map(str::to_owned),
    }
}

/// Context values in JSON may be a single string or a list of strings.
fn one_or_many_values<'de, D>(deserializer: D) -> Result<BTreeMap<String, Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let raw = BTreeMap::<String, OneOrMany>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(key, values)| match values {
            OneOrMany::One(value) => (key, vec![value]),
            OneOrMany::Many(values) => (key, values),
        })
        .collect())
}
