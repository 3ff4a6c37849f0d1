//! Parameter policies: the `Policies` JSON of PutParameter and when they fire.
//!
//! The text is a JSON array of `{"Type", "Version": "1.0", "Attributes"}`:
//!
//! * `Expiration` with `Timestamp` (ISO 8601, e.g. `2030-12-02T21:34:33.000Z`):
//!   the parameter is deleted at that time.
//! * `ExpirationNotification` with `Before` and `Unit` (`Days` or `Hours`):
//!   an event that long before the expiration.
//! * `NoChangeNotification` with `After` and `Unit`: an event when the
//!   parameter has not been modified for that long.
//!
//! `Before`/`After` are positive integers, written as JSON strings (as in
//! AWS's examples) or numbers. Each type may appear once.

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

use crate::error::ParamError;
use crate::ssm::ParameterInlinePolicy;

/// The unit of a notification delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Days,
    Hours,
}

impl Unit {
    fn seconds(self) -> i64 {
        match self {
            Unit::Days => 86_400,
            Unit::Hours => 3_600,
        }
    }
}

/// One parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Delete the parameter at `at` (Unix seconds).
    Expiration { at: i64 },
    /// Notify `amount` `unit`s before the expiration.
    ExpirationNotification { amount: i64, unit: Unit },
    /// Notify when unchanged for `amount` `unit`s.
    NoChangeNotification { amount: i64, unit: Unit },
}

impl Policy {
    /// The AWS `PolicyType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Policy::Expiration { .. } => "Expiration",
            Policy::ExpirationNotification { .. } => "ExpirationNotification",
            Policy::NoChangeNotification { .. } => "NoChangeNotification",
        }
    }
}

/// A parsed policy with its own JSON text (AWS reports `PolicyText` per policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPolicy {
    pub policy: Policy,
    pub text: String,
}

impl ParsedPolicy {
    /// The policy as DescribeParameters and GetParameterHistory report it;
    /// `status` is AWS's `Pending`, `InProgress`, `Finished` or `Failed`.
    pub fn to_inline(&self, status: &str) -> ParameterInlinePolicy {
        ParameterInlinePolicy {
            policy_text: Some(self.text.clone()),
            policy_type: Some(self.policy.type_name().to_owned()),
            policy_status: Some(status.to_owned()),
        }
    }
}

/// What a due policy asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// Delete the parameter.
    Expire,
    /// Send the expiration notification for an expiry at `expires_at`.
    NotifyExpiration { expires_at: i64 },
    /// Send the no-change notification: unchanged since `since`.
    NotifyNoChange { since: i64 },
}

fn attribute_error(reason: impl Into<String>) -> ParamError {
    ParamError::InvalidPolicyAttribute {
        reason: reason.into(),
    }
}

/// Parses the `Policies` text of PutParameter.
pub fn parse_policies(text: &str) -> Result<Vec<ParsedPolicy>, ParamError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|err| attribute_error(format!("the policies are not valid JSON: {err}")))?;
    let Value::Array(items) = value else {
        return Err(attribute_error("the policies must be a JSON array"));
    };
    let mut parsed: Vec<ParsedPolicy> = Vec::with_capacity(items.len());
    for item in &items {
        let policy = parse_policy(item)?;
        if parsed
            .iter()
            .any(|seen| seen.policy.type_name() == policy.type_name())
        {
            return Err(ParamError::IncompatiblePolicies {
                kind: policy.type_name().to_owned(),
            });
        }
        parsed.push(ParsedPolicy {
            policy,
            text: item.to_string(),
        });
    }
    Ok(parsed)
}

fn parse_policy(item: &Value) -> Result<Policy, ParamError> {
    let Value::Object(object) = item else {
        return Err(attribute_error("each policy must be a JSON object"));
    };
    let kind = object
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| attribute_error("a policy lacks its \"Type\" string"))?;
    match object.get("Version").and_then(Value::as_str) {
        Some("1.0") => {}
        _ => {
            return Err(attribute_error(format!(
                "the {kind} policy's \"Version\" must be \"1.0\""
            )));
        }
    }
    let empty = Map::new();
    let attributes = match object.get("Attributes") {
        Some(Value::Object(attributes)) => attributes,
        None => &empty,
        Some(_) => {
            return Err(attribute_error(format!(
                "the {kind} policy's \"Attributes\" must be an object"
            )));
        }
    };
    match kind {
        "Expiration" => Ok(Policy::Expiration {
            at: timestamp(attributes)?,
        }),
        "ExpirationNotification" => {
            let (amount, unit) = delay(attributes, kind, "Before")?;
            Ok(Policy::ExpirationNotification { amount, unit })
        }
        "NoChangeNotification" => {
            let (amount, unit) = delay(attributes, kind, "After")?;
            Ok(Policy::NoChangeNotification { amount, unit })
        }
        other => Err(ParamError::InvalidPolicyType {
            kind: other.to_owned(),
        }),
    }
}

fn timestamp(attributes: &Map<String, Value>) -> Result<i64, ParamError> {
    let text = attributes
        .get("Timestamp")
        .and_then(Value::as_str)
        .ok_or_else(|| attribute_error("the Expiration policy needs a \"Timestamp\" string"))?;
    parse_timestamp(text).ok_or_else(|| {
        attribute_error(format!(
            "the Expiration \"Timestamp\" {text:?} is not an ISO 8601 date and time"
        ))
    })
}

/// Parses an ISO 8601 timestamp into Unix seconds; without an offset it is UTC.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.timestamp());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc().timestamp())
}

fn delay(
    attributes: &Map<String, Value>,
    kind: &str,
    field: &str,
) -> Result<(i64, Unit), ParamError> {
    let amount = match attributes.get(field) {
        Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
        Some(Value::Number(number)) => number.as_i64(),
        _ => None,
    }
    .filter(|amount| *amount > 0)
    .ok_or_else(|| {
        attribute_error(format!(
            "the {kind} policy needs a positive integer \"{field}\""
        ))
    })?;
    let unit = match attributes.get("Unit").and_then(Value::as_str) {
        Some("Days") => Unit::Days,
        Some("Hours") => Unit::Hours,
        _ => {
            return Err(attribute_error(format!(
                "the {kind} policy's \"Unit\" must be Days or Hours"
            )));
        }
    };
    // Guard the later multiplication against absurd amounts.
    amount
        .checked_mul(unit.seconds())
        .ok_or_else(|| attribute_error(format!("the {kind} policy's \"{field}\" is too large")))?;
    Ok((amount, unit))
}

/// Refuses an expiration that is not in the future at put time.
pub fn check_not_expired(policies: &[ParsedPolicy], now_unix: i64) -> Result<(), ParamError> {
    match expiration(policies) {
        Some(at) if at <= now_unix => Err(attribute_error(
            "the Expiration \"Timestamp\" must be in the future",
        )),
        _ => Ok(()),
    }
}

fn expiration(policies: &[ParsedPolicy]) -> Option<i64> {
    policies.iter().find_map(|parsed| match parsed.policy {
        Policy::Expiration { at } => Some(at),
        _ => None,
    })
}

/// Every event the policies schedule, with its time. The expiration
/// notification exists only with an expiration to count back from.
fn events(policies: &[ParsedPolicy], last_modified_unix: i64) -> Vec<(i64, PolicyAction)> {
    let expires_at = expiration(policies);
    policies
        .iter()
        .filter_map(|parsed| match parsed.policy {
            Policy::Expiration { at } => Some((at, PolicyAction::Expire)),
            Policy::ExpirationNotification { amount, unit } => expires_at.map(|at| {
                (
                    at.saturating_sub(amount.saturating_mul(unit.seconds())),
                    PolicyAction::NotifyExpiration { expires_at: at },
                )
            }),
            Policy::NoChangeNotification { amount, unit } => Some((
                last_modified_unix.saturating_add(amount.saturating_mul(unit.seconds())),
                PolicyAction::NotifyNoChange {
                    since: last_modified_unix,
                },
            )),
        })
        .collect()
}

/// The next event strictly after `now_unix`, earliest first (ties: in
/// policy order), for the server to wake at.
pub fn next_due(
    policies: &[ParsedPolicy],
    last_modified_unix: i64,
    now_unix: i64,
) -> Option<(i64, PolicyAction)> {
    events(policies, last_modified_unix)
        .into_iter()
        .filter(|(at, _)| *at > now_unix)
        .min_by_key(|(at, _)| *at)
}

/// The events that fell due in `(since_unix, now_unix]`, in time order: what
/// a server that last looked at `since_unix` must do now.
pub fn due(
    policies: &[ParsedPolicy],
    last_modified_unix: i64,
    since_unix: i64,
    now_unix: i64,
) -> Vec<PolicyAction> {
    let mut fired: Vec<(i64, PolicyAction)> = events(policies, last_modified_unix)
        .into_iter()
        .filter(|(at, _)| *at > since_unix && *at <= now_unix)
        .collect();
    fired.sort_by_key(|(at, _)| *at);
    fired.into_iter().map(|(_, action)| action).collect()
}
