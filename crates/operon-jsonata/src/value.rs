//! Runtime values.
//!
//! [`Val`] is the evaluator's value: JSON plus functions, with cheap reference-counted
//! cloning. "Undefined" is `Option::None` throughout. Arrays carry [`ArrFlags`] that
//! reproduce jsonata-js's array annotations: a *sequence* is a result collection produced by
//! path navigation (it flattens into enclosing sequences and collapses to its single item),
//! `keep` keeps a singleton sequence as an array (`a[]`), `cons` marks an array constructor
//! that must not be flattened, and `outer` marks the wrapper around an array input document.

use std::rc::Rc;

use indexmap::IndexMap;

use crate::error::{Error, Result};
use crate::functions::Func;

pub(crate) type ObjMap = IndexMap<String, Val>;

/// Values nested deeper than this are rejected (`U1001`), so that recursive conversion and
/// dropping of values cannot exhaust the stack.
pub(crate) const MAX_VALUE_DEPTH: u32 = 200;

/// An object with its nesting depth (1 + the deepest member), tracked at construction.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub map: ObjMap,
    pub depth: u32,
}

impl std::ops::Deref for Object {
    type Target = ObjMap;
    fn deref(&self) -> &ObjMap {
        &self.map
    }
}

fn container_depth<'a>(children: impl Iterator<Item = &'a Val>) -> u32 {
    1 + children.map(Val::depth).max().unwrap_or(0)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ArrFlags {
    pub seq: bool,
    pub keep: bool,
    pub cons: bool,
    pub outer: bool,
    /// Nesting depth of the array (1 + its deepest item); maintained by the constructors.
    pub depth: u32,
}

impl ArrFlags {
    pub const PLAIN: ArrFlags = ArrFlags {
        seq: false,
        keep: false,
        cons: false,
        outer: false,
        depth: 1,
    };
    pub const SEQ: ArrFlags = ArrFlags {
        seq: true,
        keep: false,
        cons: false,
        outer: false,
        depth: 1,
    };
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(Rc<str>),
    Arr(Rc<Vec<Val>>, ArrFlags),
    Obj(Rc<Object>),
    Func(Rc<Func>),
}

impl Val {
    pub fn array(items: Vec<Val>) -> Val {
        Val::with_array_flags(items, ArrFlags::PLAIN)
    }

    pub fn seq(items: Vec<Val>) -> Val {
        Val::with_array_flags(items, ArrFlags::SEQ)
    }

    /// An array with the given flags; its depth is computed from the items.
    pub fn with_array_flags(items: Vec<Val>, flags: ArrFlags) -> Val {
        let depth = container_depth(items.iter());
        Val::Arr(Rc::new(items), ArrFlags { depth, ..flags })
    }

    /// Nesting depth: 0 for scalars and functions.
    pub fn depth(&self) -> u32 {
        match self {
            Val::Arr(_, flags) => flags.depth,
            Val::Obj(obj) => obj.depth,
            _ => 0,
        }
    }

    pub fn str(s: &str) -> Val {
        Val::Str(Rc::from(s))
    }

    pub fn string(s: String) -> Val {
        Val::Str(Rc::from(s))
    }

    pub fn object(map: ObjMap) -> Val {
        let depth = container_depth(map.values());
        Val::Obj(Rc::new(Object { map, depth }))
    }

    pub fn is_function(&self) -> bool {
        matches!(self, Val::Func(_))
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of an array, or the value itself as a one-item slice.
    pub fn items(&self) -> Vec<Val> {
        match self {
            Val::Arr(items, _) => items.as_ref().clone(),
            other => vec![other.clone()],
        }
    }

    /// Replaces the array flags, keeping the tracked depth.
    pub fn with_flags(self, flags: ArrFlags) -> Val {
        match self {
            Val::Arr(items, old) => Val::Arr(
                items,
                ArrFlags {
                    depth: old.depth,
                    ..flags
                },
            ),
            other => other,
        }
    }

    pub fn flags(&self) -> ArrFlags {
        match self {
            Val::Arr(_, flags) => *flags,
            _ => ArrFlags::PLAIN,
        }
    }

    /// jsonata's `$type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "boolean",
            Val::Num(_) => "number",
            Val::Str(_) => "string",
            Val::Arr(..) => "array",
            Val::Obj(_) => "object",
            Val::Func(_) => "function",
        }
    }
}

/// Converts a JSON value to a runtime value; fails (`U1001`) beyond [`MAX_VALUE_DEPTH`].
pub(crate) fn from_json(value: &serde_json::Value) -> Result<Val> {
    if json_depth_exceeds(value, MAX_VALUE_DEPTH) {
        return Err(too_deep());
    }
    from_json_at(value, 0)
}

/// Whether `value` nests deeper than `limit`, checked without recursion.
fn json_depth_exceeds(value: &serde_json::Value, limit: u32) -> bool {
    let mut stack = vec![(value, 0u32)];
    while let Some((v, depth)) = stack.pop() {
        if depth > limit {
            return true;
        }
        match v {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    false
}

fn from_json_at(value: &serde_json::Value, depth: u32) -> Result<Val> {
    if depth > MAX_VALUE_DEPTH {
        return Err(too_deep());
    }
    Ok(match value {
        serde_json::Value::Null => Val::Null,
        serde_json::Value::Bool(b) => Val::Bool(*b),
        serde_json::Value::Number(n) => Val::Num(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Val::str(s),
        serde_json::Value::Array(items) => Val::array(
            items
                .iter()
                .map(|v| from_json_at(v, depth + 1))
                .collect::<Result<_>>()?,
        ),
        serde_json::Value::Object(map) => Val::object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), from_json_at(v, depth + 1)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

pub(crate) fn too_deep() -> Error {
    Error::new(
        "U1001",
        format!("Stack overflow error: value nested deeper than {MAX_VALUE_DEPTH} levels"),
    )
}

/// Converts a number to JSON: integral values within the exactly representable range become
/// JSON integers, others floats; NaN and infinities are errors (`D1001`).
pub(crate) fn number_to_json(n: f64) -> Result<serde_json::Value> {
    if !n.is_finite() {
        return Err(Error::new(
            "D1001",
            format!(
                "Number out of range: {}",
                if n.is_nan() {
                    "NaN".into()
                } else {
                    format_number(n)
                }
            ),
        ));
    }
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT {
        return Ok(serde_json::Value::from(n as i64));
    }
    Ok(serde_json::Number::from_f64(n)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null))
}

/// Converts a runtime value to JSON. Functions inside structures become `""` like
/// JSON.stringify in jsonata-js would render them; a top-level function is reported by the
/// caller before this is reached.
pub(crate) fn to_json(value: &Val) -> Result<serde_json::Value> {
    Ok(match value {
        Val::Null => serde_json::Value::Null,
        Val::Bool(b) => serde_json::Value::Bool(*b),
        Val::Num(n) => number_to_json(*n)?,
        Val::Str(s) => serde_json::Value::String(s.to_string()),
        Val::Arr(items, _) => {
            serde_json::Value::Array(items.iter().map(to_json).collect::<Result<_>>()?)
        }
        Val::Obj(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.iter() {
                out.insert(k.clone(), to_json(v)?);
            }
            serde_json::Value::Object(out)
        }
        Val::Func(_) => serde_json::Value::String(String::new()),
    })
}

/// Formats a number the way JavaScript's `Number.prototype.toString` does.
pub(crate) fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if n == 0.0 {
        return "0".into();
    }
    let sci = format!("{:e}", n.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if n < 0.0 { "-" } else { "" };
    let k = digits.len() as i32;
    let body = if (-7 < exp) && exp < 21 {
        if exp >= k - 1 {
            format!("{digits}{}", "0".repeat((exp - k + 1) as usize))
        } else if exp >= 0 {
            let split = (exp + 1) as usize;
            format!("{}.{}", &digits[..split], &digits[split..])
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let exp_sign = if exp < 0 { "-" } else { "+" };
        let mant = if k == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{mant}e{exp_sign}{}", exp.abs())
    };
    format!("{sign}{body}")
}

/// Rounds to 15 significant digits, as jsonata does before stringifying numbers.
pub(crate) fn to_precision_15(n: f64) -> f64 {
    format!("{n:.14e}").parse().unwrap_or(n)
}

/// JSON.stringify-like rendering used by `$string` and error messages.
pub(crate) fn stringify(value: &Val, pretty: bool) -> String {
    let mut out = String::new();
    write_json(value, pretty, 0, &mut out);
    out
}

fn write_json(value: &Val, pretty: bool, indent: usize, out: &mut String) {
    match value {
        Val::Null => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Num(n) => {
            if n.is_finite() {
                out.push_str(&format_number(to_precision_15(*n)))
            } else {
                out.push_str("null")
            }
        }
        Val::Str(s) => out.push_str(&serde_json::Value::String(s.to_string()).to_string()),
        Val::Func(_) => out.push_str("\"\""),
        Val::Arr(items, _) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(pretty, indent + 1, out);
                write_json(item, pretty, indent + 1, out);
            }
            newline(pretty, indent, out);
            out.push(']');
        }
        Val::Obj(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(pretty, indent + 1, out);
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_json(v, pretty, indent + 1, out);
            }
            newline(pretty, indent, out);
            out.push('}');
        }
    }
}

fn newline(pretty: bool, indent: usize, out: &mut String) {
    if pretty {
        out.push('\n');
        out.push_str(&"  ".repeat(indent));
    }
}

/// Renders an optional value for an error message (`{{value}}` in jsonata-js templates).
pub(crate) fn describe(value: Option<&Val>) -> String {
    match value {
        None => "undefined".into(),
        Some(Val::Num(n)) if !n.is_finite() => "null".into(),
        Some(v) => stringify(v, false),
    }
}

/// jsonata's deep equality (`=`, `in`, `$distinct`).
pub(crate) fn deep_equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Arr(x, _), Val::Arr(y, _)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Val::Obj(x), Val::Obj(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Val::Func(x), Val::Func(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// jsonata's `$boolean` truthiness; `None` for undefined or an empty array of undefined.
pub(crate) fn truthy(value: Option<&Val>) -> Option<bool> {
    let value = value?;
    Some(match value {
        Val::Null => false,
        Val::Bool(b) => *b,
        Val::Num(n) => *n != 0.0,
        Val::Str(s) => !s.is_empty(),
        Val::Arr(items, _) => match items.len() {
            0 => false,
            1 => truthy(Some(&items[0])).unwrap_or(false),
            _ => items.iter().any(|v| truthy(Some(v)).unwrap_or(false)),
        },
        Val::Obj(map) => !map.is_empty(),
        Val::Func(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_like_javascript() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (123456789.0, "123456789"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (0.000001, "0.000001"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
        ];
        for (n, expected) in cases {
            assert_eq!(format_number(n), expected, "{n}");
        }
    }

    #[test]
    fn precision_15_rounds_float_noise() {
        assert_eq!(format_number(to_precision_15(0.1 + 0.2)), "0.3");
        assert_eq!(
            format_number(to_precision_15(1.0 / 3.0)),
            "0.333333333333333"
        );
    }

    #[test]
    fn integral_numbers_become_json_integers() {
        assert!(number_to_json(3.0).expect("finite").is_i64());
        assert!(number_to_json(3.5).expect("finite").is_f64());
        assert!(number_to_json(1e300).expect("finite").is_f64());
        assert_eq!(number_to_json(f64::NAN).expect_err("nan").code, "D1001");
    }

    #[test]
    fn sequences_flag_and_depth() {
        let nested = Val::array(vec![Val::array(vec![Val::Num(1.0)])]);
        assert_eq!(nested.depth(), 2);
        let seq = Val::seq(vec![nested.clone()]);
        assert!(seq.flags().seq);
        assert_eq!(seq.depth(), 3);
        assert_eq!(seq.with_flags(ArrFlags::PLAIN).depth(), 3);
    }

    #[test]
    fn truthiness_follows_jsonata() {
        assert_eq!(truthy(None), None);
        assert_eq!(
            truthy(Some(&Val::array(vec![Val::Num(0.0), Val::str("")]))),
            Some(false)
        );
        assert_eq!(
            truthy(Some(&Val::array(vec![Val::Num(0.0), Val::Num(2.0)]))),
            Some(true)
        );
        assert_eq!(truthy(Some(&Val::object(ObjMap::new()))), Some(false));
    }
}
