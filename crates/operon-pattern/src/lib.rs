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
//! [`Matcher`] does not test rules one by one. Rules are compiled into
//! per-field-path indexes (hash tables of exact values, prefixes and suffixes
//! probed by length, short lists for ranges and wildcards), and a trie of the
//! field paths any rule uses. An event is read by a streaming JSON walker
//! that follows that trie: values under keys no rule looks at are validated
//! and skipped, never decoded or allocated. Each remaining value is looked up
//! in its path's index, producing (condition, value) hits; a sort groups the
//! hits by rule branch, so the cost follows the size of the event and the
//! number of hits, not the number of rules. See the `matcher` module.

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
