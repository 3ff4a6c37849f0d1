//! The policy document model: what a parsed, validated policy holds.
//!
//! Values are only built by the parser (see `parse`), so every [`Policy`]
//! in memory is valid: each statement has an effect, exactly one of
//! `Action`/`NotAction`, exactly one of `Resource`/`NotResource`, and known
//! condition operators. [`Policy::to_json`] writes the canonical form back.

use serde_json::{Map, Value, json};

use crate::condition::Condition;
use crate::wildcard::Glob;

/// The only `Version` values accepted, newest first (as in IAM).
pub const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// A validated policy document: a list of statements.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) version: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) statements: Vec<Statement>,
}

impl Policy {
    /// The `Version` the document named, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The `Id` the document named, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order (their index is the one
    /// [`crate::StatementRef::statement`] reports).
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The canonical JSON form: fields in IAM's usual order, single-element
    /// lists kept as lists. Parsing it again gives an equal policy.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        if let Some(version) = &self.version {
            doc.insert("Version".into(), json!(version));
        }
        if let Some(id) = &self.id {
            doc.insert("Id".into(), json!(id));
        }
        let statements = self.statements.iter().map(Statement::to_json).collect();
        doc.insert("Statement".into(), Value::Array(statements));
        Value::Object(doc)
    }
}

/// Whether a statement grants or refuses what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// One statement: effect, actions, resources and conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) actions: Targets,
    pub(crate) resources: Targets,
    pub(crate) conditions: Vec<Condition>,
}

impl Statement {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The conditions, one per operator and key, in document order.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Whether the statement covers `action` (already lower-cased) and
    /// `resource`; conditions are checked separately.
    pub(crate) fn covers(&self, lowered_action: &str, resource: &str) -> bool {
        self.actions.covers(lowered_action) && self.resources.covers(resource)
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        if let Some(sid) = &self.sid {
            out.insert("Sid".into(), json!(sid));
        }
        out.insert("Effect".into(), json!(self.effect.as_str()));
        let (name, list) = self.actions.json_field("Action", "NotAction");
        out.insert(name.into(), list);
        let (name, list) = self.resources.json_field("Resource", "NotResource");
        out.insert(name.into(), list);
        if !self.conditions.is_empty() {
            out.insert(
                "Condition".into(),
                Condition::block_to_json(&self.conditions),
            );
        }
        Value::Object(out)
    }
}

/// The patterns of `Action`/`NotAction` or `Resource`/`NotResource`.
///
/// `Only` covers what matches one of the patterns; `AllBut` (the `Not*`
/// form) covers everything that matches none of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Targets {
    Only(Vec<Pattern>),
    AllBut(Vec<Pattern>),
}

impl Targets {
    fn covers(&self, text: &str) -> bool {
        match self {
            Targets::Only(patterns) => patterns.iter().any(|p| p.matches(text)),
            Targets::AllBut(patterns) => !patterns.iter().any(|p| p.matches(text)),
        }
    }

    fn json_field(&self, only: &'static str, all_but: &'static str) -> (&'static str, Value) {
        let (name, patterns) = match self {
            Targets::Only(patterns) => (only, patterns),
            Targets::AllBut(patterns) => (all_but, patterns),
        };
        let list = patterns.iter().map(|p| json!(p.written)).collect();
        (name, Value::Array(list))
    }
}

/// A glob as the author wrote it and the form it is matched in (lower-cased
/// for actions, which match case-insensitively; as written for resources).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    pub(crate) written: String,
    matched: Glob,
}

impl Pattern {
    pub(crate) fn action(written: &str) -> Pattern {
        Pattern {
            written: written.to_owned(),
            matched: Glob::new(written.to_lowercase()),
        }
    }

    pub(crate) fn resource(written: &str) -> Pattern {
        Pattern {
            written: written.to_owned(),
            matched: Glob::new(written.to_owned()),
        }
    }

    fn matches(&self, text: &str) -> bool {
        self.matched.matches(text)
    }
}
