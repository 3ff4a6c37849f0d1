//! Evaluation of Choice rule conditions.

use crate::definition::{CompareOp, Condition, Operand};
use crate::error::{Failure, names};
use crate::rng::Rng;
use crate::template::Scope;
use crate::time::parse_rfc3339;
use serde_json::Value;

/// Evaluates a condition against the scope's input.
pub fn evaluate(c: &Condition, scope: &Scope, rng: &mut Rng) -> Result<bool, Failure> {
    match c {
        Condition::And(v) => {
            for x in v {
                if !evaluate(x, scope, rng)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Condition::Or(v) => {
            for x in v {
                if evaluate(x, scope, rng)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Condition::Not(x) => Ok(!evaluate(x, scope, rng)?),
        Condition::Jsonata(t) => match t.eval(scope, rng)? {
            Value::Bool(b) => Ok(b),
            other => {
                let src = match t {
                    crate::template::Template::Jsonata { expr, .. } => expr.source.clone(),
                    _ => serde_json::to_string(t_const(t)).unwrap_or_default(),
                };
                Err(Failure::new(
                    names::QUERY_EVALUATION_ERROR,
                    format!(
                        "The JSONata expression '{src}' specified for the field 'Condition' returned an unexpected result type. Expected 'boolean', but was '{}' for value: {}",
                        json_type(&other),
                        serde_json::to_string(&other).unwrap_or_default()
                    ),
                ))
            }
        },
        Condition::Compare {
            variable,
            op,
            operand,
        } => {
            let value = scope.lookup(variable);
            if *op == CompareOp::IsPresent {
                return Ok(
                    value.is_some() == (operand_literal(operand) == Some(&Value::Bool(true)))
                );
            }
            let Some(value) = value else {
                return Err(invalid_path(variable.source()));
            };
            let right = match operand {
                Operand::Literal(v) => v.clone(),
                Operand::Path(p) => scope.lookup(p).ok_or_else(|| invalid_path(p.source()))?,
            };
            Ok(compare(&value, *op, &right))
        }
    }
}

fn t_const(t: &crate::template::Template) -> &Value {
    match t {
        crate::template::Template::Const(v) => v,
        _ => &Value::Null,
    }
}

/// The JSONata type name of a value, as Step Functions' messages use it.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The cause Step Functions gives when a Choice rule's path selects nothing.
fn invalid_path(path: &str) -> Failure {
    Failure::new(
        names::RUNTIME,
        format!(
            "Invalid path '{path}': The choice state's condition path references an invalid value."
        ),
    )
}

fn operand_literal(o: &Operand) -> Option<&Value> {
    match o {
        Operand::Literal(v) => Some(v),
        Operand::Path(_) => None,
    }
}

fn compare(v: &Value, op: CompareOp, r: &Value) -> bool {
    use CompareOp::*;
    match op {
        StringEquals => str_cmp(v, r, |o| o.is_eq()),
        StringLessThan => str_cmp(v, r, |o| o.is_lt()),
        StringGreaterThan => str_cmp(v, r, |o| o.is_gt()),
        StringLessThanEquals => str_cmp(v, r, |o| o.is_le()),
        StringGreaterThanEquals => str_cmp(v, r, |o| o.is_ge()),
        StringMatches => match (v.as_str(), r.as_str()) {
            (Some(s), Some(p)) => glob_match(p, s),
            _ => false,
        },
        NumericEquals => num_cmp(v, r, |o| o.is_eq()),
        NumericLessThan => num_cmp(v, r, |o| o.is_lt()),
        NumericGreaterThan => num_cmp(v, r, |o| o.is_gt()),
        NumericLessThanEquals => num_cmp(v, r, |o| o.is_le()),
        NumericGreaterThanEquals => num_cmp(v, r, |o| o.is_ge()),
        BooleanEquals => matches!((v, r), (Value::Bool(a), Value::Bool(b)) if a == b),
        TimestampEquals => ts_cmp(v, r, |o| o.is_eq()),
        TimestampLessThan => ts_cmp(v, r, |o| o.is_lt()),
        TimestampGreaterThan => ts_cmp(v, r, |o| o.is_gt()),
        TimestampLessThanEquals => ts_cmp(v, r, |o| o.is_le()),
        TimestampGreaterThanEquals => ts_cmp(v, r, |o| o.is_ge()),
        IsNull => v.is_null() == (r == &Value::Bool(true)),
        IsPresent => true,
        IsNumeric => v.is_number() == (r == &Value::Bool(true)),
        IsString => v.is_string() == (r == &Value::Bool(true)),
        IsBoolean => v.is_boolean() == (r == &Value::Bool(true)),
        IsTimestamp => v.as_str().and_then(parse_rfc3339).is_some() == (r == &Value::Bool(true)),
    }
}

fn str_cmp(v: &Value, r: &Value, f: impl Fn(std::cmp::Ordering) -> bool) -> bool {
    match (v.as_str(), r.as_str()) {
        (Some(a), Some(b)) => f(a.encode_utf16().cmp(b.encode_utf16())),
        _ => false,
    }
}

fn num_cmp(v: &Value, r: &Value, f: impl Fn(std::cmp::Ordering) -> bool) -> bool {
    match (v, r) {
        (Value::Number(a), Value::Number(b)) => {
            let ord = match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => a.as_f64().partial_cmp(&b.as_f64()),
            };
            ord.is_some_and(f)
        }
        _ => false,
    }
}

fn ts_cmp(v: &Value, r: &Value, f: impl Fn(std::cmp::Ordering) -> bool) -> bool {
    match (
        v.as_str().and_then(parse_rfc3339),
        r.as_str().and_then(parse_rfc3339),
    ) {
        (Some(a), Some(b)) => f(a.cmp(&b)),
        _ => false,
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` are literal.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Star,
        Ch(char),
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => toks.push(Tok::Ch(it.next().unwrap_or('\\'))),
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Ch(c)),
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let (mut p, mut i) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    while i < chars.len() {
        match toks.get(p) {
            Some(Tok::Star) => {
                back = Some((p, i));
                p += 1;
            }
            Some(Tok::Ch(c)) if *c == chars[i] => {
                p += 1;
                i += 1;
            }
            _ => match back {
                Some((bp, bi)) => {
                    p = bp + 1;
                    i = bi + 1;
                    back = Some((bp, bi + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Star)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globbing() {
        assert!(glob_match("log-*.txt", "log-2024.txt"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "ac"));
        assert!(glob_match("a\\*b", "a*b"));
        assert!(!glob_match("a\\*b", "axb"));
    }
}
