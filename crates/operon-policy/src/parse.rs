//! Parsing and validating policy documents.
//!
//! The parser walks the JSON by hand rather than through serde derive so
//! that every error names the field in the document's own terms
//! (`Statement[2].Effect: expected "Allow" or "Deny", got "allow"`) and so
//! that the checks IAM makes at write time happen here too: unknown fields,
//! `Action` together with `NotAction`, unknown condition operators, empty
//! lists, duplicate `Sid`s. A policy that parses is one `evaluate` can use.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::condition::{Condition, Operator};
use crate::document::{Effect, Pattern, Policy, Statement, Targets, VERSIONS};
use crate::error::PolicyError;
use crate::number::Decimal;
use crate::strict::StrictValue;

const POLICY_FIELDS: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_FIELDS: [&str; 7] = [
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

/// Condition keys Operon fills in, matched case-insensitively. A key ending
/// in `/` is a prefix: the rest names something (a node tag).
pub const CONDITION_KEYS: [&str; 8] = [
    "operon:Principal",
    "operon:NodeTag/",
    "operon:RunAsUser",
    "operon:SessionKind",
    "operon:IdleTimeout",
    "operon:MaxDuration",
    "operon:RemoteHost",
    "operon:RemotePort",
];

type Result<T> = std::result::Result<T, PolicyError>;

/// Parse policy text (JSON); an object with the same key twice is refused.
pub fn parse(text: &str) -> Result<Policy> {
    let StrictValue(value) =
        serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
    from_value(&value)
}

/// Validate an already-decoded JSON policy document.
pub fn from_value(value: &Value) -> Result<Policy> {
    let doc = expect_object(value, "policy")?;
    check_fields(doc, &POLICY_FIELDS, "")?;
    let version = doc.get("Version").map(parse_version).transpose()?;
    let id = optional_string(doc, "Id", "Id")?;
    let statements = match doc.get("Statement") {
        None => {
            return Err(PolicyError::at(
                "Statement",
                "missing; a policy needs at least one statement",
            ));
        }
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(PolicyError::at(
                "Statement",
                "must contain at least one statement",
            ));
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| parse_statement(item, &format!("Statement[{index}]")))
            .collect::<Result<Vec<_>>>()?,
        Some(single @ Value::Object(_)) => vec![parse_statement(single, "Statement")?],
        Some(other) => {
            return Err(PolicyError::at(
                "Statement",
                format!(
                    "expected an array of statements or one statement object, got {}",
                    describe(other)
                ),
            ));
        }
    };
    check_unique_sids(&statements)?;
    Ok(Policy {
        version,
        id,
        statements,
    })
}

fn parse_version(value: &Value) -> Result<String> {
    match value {
        Value::String(v) if VERSIONS.contains(&v.as_str()) => Ok(v.clone()),
        other => Err(PolicyError::at(
            "Version",
            format!(
                "expected \"{}\" (or \"{}\"), got {}",
                VERSIONS[0],
                VERSIONS[1],
                describe(other)
            ),
        )),
    }
}

fn parse_statement(value: &Value, path: &str) -> Result<Statement> {
    let fields = expect_object(value, path)?;
    check_fields(fields, &STATEMENT_FIELDS, path)?;
    let sid = optional_string(fields, "Sid", &format!("{path}.Sid"))?;
    let effect = parse_effect(fields.get("Effect"), &format!("{path}.Effect"))?;
    let actions = parse_targets(fields, path, ("Action", "NotAction"), Pattern::action)?;
    let resources = parse_targets(fields, path, ("Resource", "NotResource"), Pattern::resource)?;
    let conditions = match fields.get("Condition") {
        Some(block) => parse_condition_block(block, &format!("{path}.Condition"))?,
        None => Vec::new(),
    };
    Ok(Statement {
        sid,
        effect,
        actions,
        resources,
        conditions,
    })
}

fn parse_effect(value: Option<&Value>, path: &str) -> Result<Effect> {
    match value {
        Some(Value::String(e)) if e == "Allow" => Ok(Effect::Allow),
        Some(Value::String(e)) if e == "Deny" => Ok(Effect::Deny),
        Some(other) => Err(PolicyError::at(
            path,
            format!("expected \"Allow\" or \"Deny\", got {}", describe(other)),
        )),
        None => Err(PolicyError::at(
            path,
            "missing; expected \"Allow\" or \"Deny\"",
        )),
    }
}

/// `Action`/`NotAction` (or the resource pair): exactly one must be present.
fn parse_targets(
    fields: &Map<String, Value>,
    path: &str,
    (only, all_but): (&str, &str),
    make: fn(&str) -> Pattern,
) -> Result<Targets> {
    let check = if only == "Action" {
        check_action
    } else {
        check_resource
    };
    match (fields.get(only), fields.get(all_but)) {
        (Some(_), Some(_)) => Err(PolicyError::at(
            path,
            format!("has both {only} and {all_but}; use one of them"),
        )),
        (None, None) => Err(PolicyError::at(
            path,
            format!("missing {only} (or {all_but})"),
        )),
        (Some(list), None) => {
            let patterns = pattern_list(list, &format!("{path}.{only}"), check, make)?;
            Ok(Targets::Only(patterns))
        }
        (None, Some(list)) => {
            let patterns = pattern_list(list, &format!("{path}.{all_but}"), check, make)?;
            Ok(Targets::AllBut(patterns))
        }
    }
}

fn pattern_list(
    value: &Value,
    path: &str,
    check: fn(&str) -> std::result::Result<(), String>,
    make: fn(&str) -> Pattern,
) -> Result<Vec<Pattern>> {
    let items = string_list(value, path)?;
    items
        .into_iter()
        .map(|(item, item_path)| {
            check(&item).map_err(|message| PolicyError::at(&item_path, message))?;
            Ok(make(&item))
        })
        .collect()
}

/// An action is `*` or `noun:Verb`, each side possibly with wildcards.
fn check_action(action: &str) -> std::result::Result<(), String> {
    let valid = action == "*"
        || matches!(action.split_once(':'), Some((noun, verb))
            if !noun.is_empty() && !verb.is_empty() && !verb.contains(':'))
            && !action.contains(char::is_whitespace);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "\"{action}\" is not an action; expected \"noun:Verb\" (like \"commands:Run\" or \"commands:*\") or \"*\""
        ))
    }
}

fn check_resource(resource: &str) -> std::result::Result<(), String> {
    if resource.is_empty() {
        return Err(
            "empty resource; expected a path like \"node/web-1\", \"workflow/*\" or \"*\""
                .to_owned(),
        );
    }
    check_no_variable(resource)
}

/// IAM policy variables (`${aws:username}`) are not implemented; refusing
/// them keeps `${...}` free to mean a variable later instead of silently
/// matching the literal text today.
fn check_no_variable(text: &str) -> std::result::Result<(), String> {
    if text.contains("${") {
        Err(format!(
            "{text:?} uses a policy variable (\"${{...}}\"); policy variables are not supported"
        ))
    } else {
        Ok(())
    }
}

fn parse_condition_block(value: &Value, path: &str) -> Result<Vec<Condition>> {
    let block = expect_object(value, path)?;
    let mut conditions = Vec::new();
    for (operator_name, keys) in block {
        let operator_path = format!("{path}.{operator_name}");
        let operator = parse_operator(operator_name, &operator_path)?;
        let keys = expect_object(keys, &operator_path)?;
        if keys.is_empty() {
            return Err(PolicyError::at(
                &operator_path,
                "names no condition key; expected {\"key\": value or [values]}",
            ));
        }
        for (key, values) in keys {
            let key_path = format!("{operator_path}[\"{key}\"]");
            check_condition_key(key, &key_path)?;
            let values = condition_values(values, operator, &key_path)?;
            conditions.push(Condition {
                operator,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(conditions)
}

fn parse_operator(name: &str, path: &str) -> Result<Operator> {
    if let Some(operator) = Operator::from_name(name) {
        return Ok(operator);
    }
    let known = Operator::all_names();
    let message = if let Some(right) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        format!("unknown condition operator \"{name}\"; did you mean \"{right}\"?")
    } else if name.starts_with("ForAnyValue:") || name.starts_with("ForAllValues:") {
        format!(
            "set operator \"{name}\" is not supported; use the operator without the ForAnyValue:/ForAllValues: prefix"
        )
    } else {
        format!(
            "unknown condition operator \"{name}\"; expected one of {}",
            known.join(", ")
        )
    };
    Err(PolicyError::at(path, message))
}

fn check_condition_key(key: &str, path: &str) -> Result<()> {
    let lowered = key.to_lowercase();
    let known = CONDITION_KEYS.iter().any(|known| {
        let known = known.to_lowercase();
        match known.strip_suffix('/') {
            Some(_) => lowered.starts_with(&known) && lowered.len() > known.len(),
            None => lowered == known,
        }
    });
    if known {
        return Ok(());
    }
    Err(PolicyError::at(
        path,
        format!(
            "unknown condition key \"{key}\"; expected operon:Principal, operon:RunAsUser, operon:NodeTag/<tag> (like operon:NodeTag/env), or a session's operon:SessionKind, operon:IdleTimeout, operon:MaxDuration, operon:RemoteHost, operon:RemotePort"
        ),
    ))
}

/// A condition's values: one or a non-empty list of strings (numbers and
/// booleans are taken as their JSON text, as IAM does). `Null` takes only
/// `"true"` or `"false"`; the `Numeric*` operators only numbers, kept as
/// written so the canonical JSON gives them back unchanged.
fn condition_values(value: &Value, operator: Operator, path: &str) -> Result<Vec<String>> {
    let items: Vec<(&Value, String)> = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(PolicyError::at(path, "empty list; give at least one value"));
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (item, format!("{path}[{i}]")))
            .collect(),
        single => vec![(single, path.to_owned())],
    };
    items
        .into_iter()
        .map(|(item, item_path)| condition_value(item, operator, &item_path))
        .collect()
}

fn condition_value(value: &Value, operator: Operator, path: &str) -> Result<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(PolicyError::at(
                path,
                format!(
                    "expected a string or a list of strings, got {}",
                    describe(other)
                ),
            ));
        }
    };
    if operator == Operator::Null {
        return match text.to_lowercase().as_str() {
            "true" | "false" => Ok(text.to_lowercase()),
            _ => Err(PolicyError::at(
                path,
                format!(
                    "Null takes \"true\" (key absent) or \"false\" (key present), got {}",
                    describe(value)
                ),
            )),
        };
    }
    if matches!(operator, Operator::Numeric { .. }) && Decimal::parse(&text).is_none() {
        return Err(PolicyError::at(
            path,
            format!(
                "{} takes a number (an integer or a decimal, like \"3600\", \"1.5\" or \"-2\"), got {}",
                operator.name(),
                describe(value)
            ),
        ));
    }
    check_no_variable(&text).map_err(|message| PolicyError::at(path, message))?;
    Ok(text)
}

fn check_unique_sids(statements: &[Statement]) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, statement) in statements.iter().enumerate() {
        let Some(sid) = statement.sid() else { continue };
        if let Some(first) = seen.insert(sid, index) {
            return Err(PolicyError::at(
                &format!("Statement[{index}].Sid"),
                format!(
                    "\"{sid}\" is already the Sid of Statement[{first}]; Sids must be unique within a policy"
                ),
            ));
        }
    }
    Ok(())
}

/// A string or a non-empty list of non-empty strings, each with its path.
fn string_list(value: &Value, path: &str) -> Result<Vec<(String, String)>> {
    match value {
        Value::String(s) => Ok(vec![(s.clone(), path.to_owned())]),
        Value::Array(items) if items.is_empty() => {
            Err(PolicyError::at(path, "empty list; give at least one value"))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let item_path = format!("{path}[{i}]");
                match item {
                    Value::String(s) => Ok((s.clone(), item_path)),
                    other => Err(PolicyError::at(
                        &item_path,
                        format!("expected a string, got {}", describe(other)),
                    )),
                }
            })
            .collect(),
        other => Err(PolicyError::at(
            path,
            format!(
                "expected a string or a list of strings, got {}",
                describe(other)
            ),
        )),
    }
}

fn optional_string(fields: &Map<String, Value>, name: &str, path: &str) -> Result<Option<String>> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(PolicyError::at(
            path,
            format!("expected a string, got {}", describe(other)),
        )),
    }
}

fn expect_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(PolicyError::at(
            path,
            format!("expected an object, got {}", describe(other)),
        )),
    }
}

/// Refuse fields not in `allowed`, suggesting the right spelling when only
/// the case differs (`effect` for `Effect`).
fn check_fields(fields: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<()> {
    for name in fields.keys() {
        if allowed.contains(&name.as_str()) {
            continue;
        }
        let field_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let message = match allowed.iter().find(|a| a.eq_ignore_ascii_case(name)) {
            Some(right) => {
                format!("unknown field; did you mean \"{right}\"? (field names are case-sensitive)")
            }
            None => format!("unknown field; expected one of {}", allowed.join(", ")),
        };
        return Err(PolicyError::at(&field_path, message));
    }
    Ok(())
}

/// A short description of a JSON value for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => value.to_string(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}
