//! EventBridge event patterns: parse and validate them, compile many rules
//! into one [`Matcher`], match JSON events, and build target payloads
//! ([`TargetInput`], [`InputTransformer`]). A pure library: no I/O, no clock,
//! no async.
//!
//! # Semantics
//!
//! Patterns behave as on AWS EventBridge, whose pattern engine is the
//! open-source aws/event-ruler: exact values, `prefix`/`suffix` (also with
//! `equals-ignore-case`), `equals-ignore-case`, `wildcard`, `anything-but` (and
//! its prefix/suffix/wildcard/equals-ignore-case forms), `numeric`, `exists`,
//! `cidr` and `$or`. Numbers compare as doubles when their text is exactly
//! representable (see [`number::comparable`]). An event array matches if any
//! element does, and values taken from objects in different elements of one
//! array never satisfy one rule together (array-consistent matching).
//!
//! # How matching is fast
//!
//! [`Matcher`] does not test rules one by one. As in aws/event-ruler, every
//! rule branch (an `$or` alternative) becomes a path through one state
//! machine: one edge per field condition, conditions in path order, and equal
//! conditions at the same state share an edge, so a thousand rules starting
//! with `"source": ["aws.ec2"]` cost one lookup for that field. Each state
//! indexes its outgoing edges per field path (hash tables of exact values,
//! prefixes and suffixes probed once per distinct length, short lists for
//! ranges and wildcards).
//!
//! Events are read by a streaming JSON walker that follows a trie of the
//! field paths rules use: values under keys no rule looks at are validated
//! and skipped, never decoded or allocated, and numbers are converted only
//! where a rule compares numbers. Matching then follows the satisfied edges
//! from the start state, so the cost follows the size of the event and the
//! edges it satisfies, not the number of rules. Steps through arrays carry
//! the array elements they used (only those later conditions can see), which
//! gives event-ruler's array-consistent semantics in linear time on big
//! arrays. See the `matcher` module.
//!
//! # Modules
//!
//! - [`Pattern`]: parsing and validation (errors carry a JSON pointer).
//! - [`Matcher`]: many rules, `add` / `remove` / `matches`.
//! - [`TargetInput`], [`InputTransformer`]: what a target receives.
//! - [`cases`]: the conformance-case format of `operon events test-pattern --cases`.
//! - [`reference`](mod@reference): a slow, obviously-correct matcher the tests compare against.

pub mod cases;
mod cidr;
mod event;
mod field_index;
mod fxhash;
mod json;
mod matcher;
pub mod number;
mod pattern;
pub mod reference;
mod transform;
mod wildcard;

pub use event::{ENVELOPE_FIELDS, EventError, validate_event_envelope};
pub use json::JsonSyntaxError;
pub use matcher::{Matcher, Scratch};
pub use pattern::{MAX_BRANCHES, Pattern, PatternError};
pub use transform::{DeliveryContext, InputTransformer, JsonPath, TargetInput, TargetInputError};

/// Parses a rule set: a JSON object mapping rule names to patterns (numbers
/// kept as written). Errors point into the whole document (`/NAME/...`).
pub fn parse_rule_set(text: &str) -> Result<Vec<(String, Pattern)>, PatternError> {
    let json = json::parse(text).map_err(|e| PatternError {
        pointer: String::new(),
        message: e.to_string(),
    })?;
    let json::Json::Object(members) = json else {
        return Err(PatternError {
            pointer: String::new(),
            message: "a rule set must be an object of rule name -> pattern".into(),
        });
    };
    members
        .iter()
        .map(|(name, pattern)| {
            Pattern::from_json(pattern)
                .map(|p| (name.clone(), p))
                .map_err(|e| PatternError {
                    pointer: format!(
                        "/{}{}",
                        name.replace('~', "~0").replace('/', "~1"),
                        e.pointer
                    ),
                    message: e.message,
                })
        })
        .collect()
}
