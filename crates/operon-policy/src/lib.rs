//! Access policies in the shape of AWS IAM identity policies: who may do
//! which action to which resource, under which conditions.
//!
//! Operon authorises every API call, and every node a command targets,
//! against the policies attached to the calling principal. This crate is the
//! pure part of that: it parses and validates policy documents and decides
//! one request against a set of policies. It does no I/O and keeps no
//! state; the server stores policies, builds the [`Request`] (action,
//! resource, condition context) and acts on the [`Decision`].
//!
//! # A policy
//!
//! ```json
//! {
//!   "Version": "2012-10-17",
//!   "Statement": [
//!     {
//!       "Sid": "RunOnStaging",
//!       "Effect": "Allow",
//!       "Action": ["commands:Run", "commands:Get*", "nodes:List"],
//!       "Resource": "node/*",
//!       "Condition": {"StringEquals": {"operon:NodeTag/env": ["staging", "dev"]}}
//!     },
//!     {
//!       "Sid": "NeverTheDatabasePassword",
//!       "Effect": "Deny",
//!       "Action": "params:GetSecret",
//!       "Resource": "param/app/db/*"
//!     }
//!   ]
//! }
//! ```
//!
//! - `Effect` is `Allow` or `Deny`.
//! - `Action` lists `noun:Verb` actions (`commands:Run`, `nodes:List`,
//!   `sessions:Start`, `params:GetSecret`, `workflows:Start`,
//!   `approvals:Approve`). Matching is case-insensitive and takes `*` (any
//!   run of characters) and `?` (one character): `commands:*`, `*:List`, `*`.
//!   `NotAction` instead covers every action that matches none of its
//!   patterns.
//! - `Resource` lists resource paths (`node/web-1`, `workflow/deploy`,
//!   `param/app/db/password`) with the same wildcards, case-sensitive;
//!   `*` crosses `/`. `NotResource` is the complement.
//! - `Condition` maps an operator to `{key: value or [values]}`. Operators:
//!   `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//!   `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike` (each also
//!   with the `IfExists` suffix) and `Null`. Keys: `operon:Principal` and
//!   `operon:NodeTag/<tag>`. The IAM rules for several operators, keys and
//!   values and for missing keys are listed in the `condition` module; in
//!   short a missing key fails `StringEquals` but passes `StringNotEquals`
//!   and every `...IfExists`.
//!
//! # Deciding
//!
//! [`evaluate`] returns [`Decision::ExplicitDeny`] if any applicable
//! statement denies, else [`Decision::Allow`] if one allows, else
//! [`Decision::ImplicitDeny`]: nothing is allowed unless a policy says so,
//! and a Deny cannot be overridden. The decision names the deciding
//! statement and [`Decision::explain`] says it in a sentence.
//!
//! ```
//! use operon_policy::{evaluate, Decision, NamedPolicy, Policy, Request};
//!
//! let policy: Policy = r#"{
//!     "Version": "2012-10-17",
//!     "Statement": [{
//!         "Sid": "RunOnStaging",
//!         "Effect": "Allow",
//!         "Action": "commands:Run",
//!         "Resource": "node/*",
//!         "Condition": {"StringEquals": {"operon:NodeTag/env": "staging"}}
//!     }]
//! }"#.parse()?;
//! let policies = [NamedPolicy::new("operators", policy)];
//!
//! let staging = Request::new("commands:Run", "node/web-1").with_node_tags([("env", "staging")]);
//! let decision = evaluate(&policies, &staging);
//! assert!(decision.is_allowed());
//! assert_eq!(
//!     decision.explain(),
//!     r#"allowed by policy "operators" Statement[0] (Sid "RunOnStaging"), and no statement denies it"#
//! );
//!
//! let prod = Request::new("commands:Run", "node/db-1").with_node_tags([("env", "prod")]);
//! assert_eq!(evaluate(&policies, &prod), Decision::ImplicitDeny);
//! # Ok::<(), operon_policy::PolicyError>(())
//! ```
//!
//! # Errors
//!
//! Parsing refuses anything IAM would refuse and a few things it merely
//! ignores (unknown condition keys), with the place in the document:
//! `Statement[2].Effect: expected "Allow" or "Deny", got "allow"`. See
//! [`PolicyError`].

mod condition;
mod document;
mod error;
mod evaluate;
mod parse;
mod wildcard;

pub use condition::Condition;
pub use document::{Effect, Policy, Statement, VERSIONS};
pub use error::PolicyError;
pub use evaluate::{
    Decision, NODE_TAG_PREFIX, NamedPolicy, PRINCIPAL_KEY, Request, StatementRef,
    applicable_statements, evaluate,
};
pub use parse::CONDITION_KEYS;

impl Policy {
    /// Parse and validate a policy document from JSON text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        parse::parse(text)
    }

    /// Validate an already-decoded JSON policy document.
    pub fn from_value(value: &serde_json::Value) -> Result<Policy, PolicyError> {
        parse::from_value(value)
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text)
    }
}

/// Serialises as [`Policy::to_json`].
impl serde::Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// Deserialises any JSON policy document, validating it as [`Policy::parse`] does.
impl<'de> serde::Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Policy, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Policy::from_value(&value).map_err(serde::de::Error::custom)
    }
}
