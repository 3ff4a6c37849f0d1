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
//!   `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike`,
//!   `NumericEquals`, `NumericNotEquals`, `NumericLessThan`,
//!   `NumericLessThanEquals`, `NumericGreaterThan`,
//!   `NumericGreaterThanEquals` (each also with the `IfExists` suffix) and
//!   `Null`. Keys: `operon:Principal` (the
//!   caller's name), `operon:NodeTag/<tag>` (a tag of the target node) and
//!   `operon:RunAsUser` (the account a command or a session runs as on the
//!   node, `root` when a command asks for none); for sessions also
//!   `operon:SessionKind` (`shell`, `exec`, `port-forward`),
//!   `operon:IdleTimeout` and `operon:MaxDuration` (seconds), and for port
//!   forwarding `operon:RemoteHost` and `operon:RemotePort`; see
//!   [`CONDITION_KEYS`].
//!
//! # Conditions, as IAM decides them
//!
//! - Every operator in a `Condition` block must hold, and every key under an
//!   operator must hold (AND).
//! - Several policy values for one key are alternatives: a positive operator
//!   holds if any matches (OR), a negated one (`StringNot...`,
//!   `NumericNotEquals`) holds if none matches (NOR).
//! - A key missing from the request makes a positive operator **false** and
//!   a negated operator **true** (so `Deny` + `StringNotEquals env=staging`
//!   also denies nodes without an `env` tag, and `Deny` +
//!   `NumericNotEquals tier=1` nodes without a `tier` tag). With the
//!   `IfExists` suffix any operator is true when the key is missing. `Null`
//!   tests presence itself: `"true"` holds when the key is missing,
//!   `"false"` when it is present.
//! - When the request carries several values for one key, a positive
//!   operator holds if any request value matches any policy value; a
//!   negated one holds if no request value matches any policy value.
//! - Key names compare case-insensitively (`operon:nodetag/ENV` is
//!   `operon:NodeTag/env`); values compare as the operator says
//!   (`StringEquals` and `StringLike` are case-sensitive).
//! - The `Numeric...` operators compare numbers, exactly (no floating-point
//!   rounding, `1.50` equals `1.5`): `NumericLessThan` holds when the
//!   request value is less than the policy value. Their policy values must
//!   be integers or decimals (`3600`, `1.5`, `-2`, as JSON strings or
//!   numbers; no `+`, exponent or bare `.`), or the policy is refused. A
//!   request value that is not a number matches no numeric operator, the
//!   negated one included: `NumericNotEquals` holds only when every request
//!   value is a number equal to none of the policy values. (IAM's
//!   documentation does not spell this case out; it is the reading that
//!   never lets text pass for "a different number".) A key that is present
//!   with a non-numeric value is present, so `IfExists` does not help it.
//! - For the other operators, numbers and booleans given as condition
//!   values compare as their JSON text. Policy variables (`${...}`), set
//!   operators (`ForAnyValue:`/`ForAllValues:`) and the date, IP, ARN and
//!   `Bool` operators are not supported and are refused at parse time.
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
//! ignores (unknown condition keys, duplicate `Sid`s), with the place in the
//! document:
//! `Statement[2].Effect: expected "Allow" or "Deny", got "allow"`. See
//! [`PolicyError`].
//!
//! # Cost
//!
//! About 2–2.5 µs per decision for a principal with 5 policies and 40
//! conditional statements, measured on a shared 2-core machine under heavy
//! load (`cargo bench -p operon-policy --bench evaluate`):
//! patterns are prepared at parse time and evaluation allocates only the
//! lower-cased action.

mod condition;
mod document;
mod error;
mod evaluate;
mod number;
mod parse;
mod strict;
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

    /// Validate an already-decoded JSON policy document. Duplicate keys
    /// were already collapsed by the decoder; prefer [`Policy::parse`] or
    /// deserialising a `Policy` when the text is at hand.
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

/// Deserialises a JSON policy document, validating it as [`Policy::parse`]
/// does (duplicate keys included), so a request body can hold a `Policy`
/// field directly.
impl<'de> serde::Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Policy, D::Error> {
        let strict::StrictValue(value) = strict::StrictValue::deserialize(deserializer)?;
        Policy::from_value(&value).map_err(serde::de::Error::custom)
    }
}
