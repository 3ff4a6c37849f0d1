//! Conformance cases: lines of `{"id", "event", "pattern", "expect"}` (and
//! optionally `pattern_text`, the exact pattern text when it is not plain
//! JSON), as read by `operon events test-pattern --cases`.
//!
//! The line is parsed with the number-preserving parser, so `300.0` in an
//! event and `1E-325` in a pattern reach the matcher exactly as written.

use crate::json::{self, Json};
use crate::pattern::Pattern;

/// The answer for one event and pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Match,
    NoMatch,
    InvalidPattern,
    InvalidEvent,
}

impl Outcome {
    /// The corpus spelling: `match`, `no_match`, `invalid_pattern`, `invalid_event`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::NoMatch => "no_match",
            Outcome::InvalidPattern => "invalid_pattern",
            Outcome::InvalidEvent => "invalid_event",
        }
    }
}

/// A case's result: what was expected, what we got, and why (the error text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub id: String,
    pub expected: String,
    pub actual: Outcome,
    pub detail: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.expected == self.actual.as_str()
    }
}

/// Evaluates a pattern against an event, both given as text.
pub fn evaluate(pattern_text: &str, event_text: &str) -> (Outcome, Option<String>) {
    let pattern = match Pattern::parse(pattern_text) {
        Ok(p) => p,
        Err(e) => return (Outcome::InvalidPattern, Some(e.to_string())),
    };
    match pattern.matches(event_text) {
        Ok(true) => (Outcome::Match, None),
        Ok(false) => (Outcome::NoMatch, None),
        Err(e) => (Outcome::InvalidEvent, Some(e.to_string())),
    }
}

/// Runs one case line; Err says why the line itself is unusable.
pub fn run_case_line(line: &str) -> Result<CaseResult, String> {
    let case = json::parse(line).map_err(|e| format!("case line is not valid JSON: {e}"))?;
    let id = match case.get("id") {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_text(),
        None => String::from("?"),
    };
    let expected = match case.get("expect") {
        Some(Json::String(s)) => s.clone(),
        _ => return Err(format!("case {id}: missing \"expect\"")),
    };
    let event = case
        .get("event")
        .ok_or_else(|| format!("case {id}: missing \"event\""))?
        .to_text();
    let pattern = match (case.get("pattern_text"), case.get("pattern")) {
        (Some(Json::String(text)), _) => text.clone(),
        (_, Some(pattern)) => pattern.to_text(),
        _ => return Err(format!("case {id}: missing \"pattern\"")),
    };
    let (actual, detail) = evaluate(&pattern, &event);
    Ok(CaseResult {
        id,
        expected,
        actual,
        detail,
    })
}
