//! The standard function library and function values.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::OnceLock;

use crate::ast::{LambdaDef, TransformDef};
use crate::error::{Error, Result};
use crate::eval::{Evaluator, Frame, append};
use crate::signature::Signature;
use crate::value::{
    self, ArrFlags, ObjMap, Val, deep_equal, describe, format_number, to_precision_15, truthy,
};
use crate::{NativeFunction, datetime, numfmt};

/// A function value.
pub(crate) enum Func {
    /// `function($x){...}`, closing over its scope and the context value at definition.
    Lambda {
        def: Arc<LambdaDef>,
        scope: Rc<Frame>,
        input: Option<Val>,
    },
    Builtin(&'static Builtin),
    Host {
        name: String,
        f: NativeFunction,
    },
    /// Partial application: `None` marks a `?` placeholder.
    Partial {
        func: Val,
        args: Vec<Option<Option<Val>>>,
    },
    /// `$f ~> $g`
    Chain {
        first: Val,
        second: Val,
    },
    Regex(Arc<regex::Regex>),
    Transform {
        def: Arc<TransformDef>,
        scope: Rc<Frame>,
    },
}

impl std::fmt::Debug for Func {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Func::Lambda { def, .. } => write!(f, "lambda({:?})", def.params),
            Func::Builtin(b) => write!(f, "${}", b.name),
            Func::Host { name, .. } => write!(f, "${name} (host)"),
            Func::Partial { .. } => f.write_str("partial"),
            Func::Chain { .. } => f.write_str("chain"),
            Func::Regex(re) => write!(f, "/{}/", re.as_str()),
            Func::Transform { .. } => f.write_str("transform"),
        }
    }
}

impl Func {
    /// How many arguments a higher-order function should pass to this function.
    pub fn arity(&self) -> usize {
        match self {
            Func::Lambda { def, .. } => def.params.len(),
            Func::Builtin(b) => b.signature().required_count(),
            Func::Partial { args, .. } => args.iter().filter(|a| a.is_none()).count(),
            Func::Host { .. } => 3,
            Func::Chain { .. } | Func::Regex(_) | Func::Transform { .. } => 1,
        }
    }
}

type Implementation = fn(&mut Evaluator, &[Option<Val>]) -> Result<Option<Val>>;

pub(crate) struct Builtin {
    pub name: &'static str,
    signature: &'static str,
    pub implementation: Implementation,
    index: usize,
}

impl Builtin {
    pub fn signature(&self) -> &'static Signature {
        &parsed_signatures()[self.index]
    }
}

fn parsed_signatures() -> &'static Vec<Signature> {
    static SIGNATURES: OnceLock<Vec<Signature>> = OnceLock::new();
    SIGNATURES.get_or_init(|| {
        BUILTINS
            .iter()
            .map(|b| Signature::parse(b.signature).unwrap_or_else(|_| Signature::any()))
            .collect()
    })
}

macro_rules! builtins {
    ($( $name:literal, $sig:literal, $imp:path; )*) => {
        const BUILTIN_DEFS: &[(&str, &str, Implementation)] = &[ $( ($name, $sig, $imp), )* ];
    };
}

builtins! {
    "sum", "<a<n>:n>", sum;
    "count", "<a:n>", count;
    "max", "<a<n>:n>", max;
    "min", "<a<n>:n>", min;
    "average", "<a<n>:n>", average;
    "string", "<x-b?:s>", string;
    "substring", "<s-nn?:s>", substring;
    "substringBefore", "<s-s:s>", substring_before;
    "substringAfter", "<s-s:s>", substring_after;
    "lowercase", "<s-:s>", lowercase;
    "uppercase", "<s-:s>", uppercase;
    "length", "<s-:n>", length;
    "trim", "<s-:s>", trim;
    "pad", "<s-ns?:s>", pad;
    "match", "<s-f<s:o>n?:a<o>>", match_;
    "contains", "<s-(sf):b>", contains;
    "replace", "<s-(sf)(sf)n?:s>", replace;
    "split", "<s-(sf)n?:a<s>>", split;
    "join", "<a<s>s?:s>", join;
    "formatNumber", "<n-so?:s>", format_number_fn;
    "formatBase", "<n-n?:s>", format_base;
    "formatInteger", "<n-s:s>", format_integer;
    "parseInteger", "<s-s:n>", parse_integer;
    "number", "<(nsb)-:n>", number;
    "floor", "<n-:n>", floor;
    "ceil", "<n-:n>", ceil;
    "round", "<n-n?:n>", round;
    "abs", "<n-:n>", abs;
    "sqrt", "<n-:n>", sqrt;
    "power", "<n-n:n>", power;
    "random", "<:n>", random;
    "boolean", "<x-:b>", boolean;
    "not", "<x-:b>", not;
    "map", "<af>", map;
    "zip", "<a+>", zip;
    "filter", "<af>", filter;
    "single", "<af?>", single;
    "reduce", "<afj?:j>", reduce;
    "sift", "<o-f?:o>", sift;
    "keys", "<x-:a<s>>", keys;
    "lookup", "<x-s:x>", lookup;
    "append", "<xx:a>", append_fn;
    "exists", "<x:b>", exists;
    "spread", "<x-:a<o>>", spread;
    "merge", "<a<o>:o>", merge;
    "reverse", "<a:a>", reverse;
    "each", "<o-f:a>", each;
    "error", "<s?:x>", error;
    "assert", "<bs?:x>", assert;
    "type", "<x:s>", type_;
    "sort", "<af?:a>", sort;
    "shuffle", "<a:a>", shuffle;
    "distinct", "<x:x>", distinct;
    "base64encode", "<s-:s>", base64encode;
    "base64decode", "<s-:s>", base64decode;
    "encodeUrlComponent", "<s-:s>", encode_url_component;
    "encodeUrl", "<s-:s>", encode_url;
    "decodeUrlComponent", "<s-:s>", decode_url;
    "decodeUrl", "<s-:s>", decode_url;
    "eval", "<sx?:x>", eval_fn;
    "toMillis", "<s-s?:n>", to_millis;
    "fromMillis", "<n-s?s?:s>", from_millis;
    "clone", "<(oa)-:o>", clone;
    "now", "<s?s?:s>", now;
    "millis", "<:n>", millis;
}

static BUILTINS: std::sync::LazyLock<Vec<Builtin>> = std::sync::LazyLock::new(|| {
    BUILTIN_DEFS
        .iter()
        .enumerate()
        .map(|(index, (name, signature, implementation))| Builtin {
            name,
            signature,
            implementation: *implementation,
            index,
        })
        .collect()
});

/// The built-in function `$name`, if there is one.
pub(crate) fn builtin(name: &str) -> Option<Val> {
    BUILTINS
        .iter()
        .find(|b| b.name == name)
        .map(|b| Val::Func(Rc::new(Func::Builtin(b))))
}

/// Adds the function name to signature errors (`Argument 1 of function "x" ...`).
pub(crate) fn name_error(mut error: Error, name: &str) -> Error {
    if matches!(error.code.as_str(), "T0410" | "T0411" | "T0412")
        && !error.message.contains(" of function ")
        && let Some(at) = error.message.find("rgument ")
    {
        let digits_end = error.message[at + 8..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(error.message.len(), |i| at + 8 + i);
        error
            .message
            .insert_str(digits_end, &format!(" of function {name:?}"));
    }
    error
}

/// jsonata's `$string` of a value; functions become `""`.
pub(crate) fn to_string_value(value: &Val, pretty: bool) -> Result<String> {
    match value {
        Val::Str(s) => Ok(s.to_string()),
        Val::Func(_) => Ok(String::new()),
        Val::Num(n) if !n.is_finite() => Err(Error::new(
            "D3001",
            "Attempting to invoke string function on Infinity or NaN",
        )),
        Val::Num(n) => Ok(format_number(to_precision_15(*n))),
        other => Ok(value::stringify(other, pretty)),
    }
}

pub(crate) fn to_string_or_empty(value: Option<&Val>) -> Result<String> {
    value.map_or(Ok(String::new()), |v| to_string_value(v, false))
}

/// String ordering by UTF-16 code units, like JavaScript's `<`.
pub(crate) fn compare_strings(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn arg(args: &[Option<Val>], index: usize) -> Option<&Val> {
    args.get(index).and_then(Option::as_ref)
}

fn str_arg(args: &[Option<Val>], index: usize) -> Option<&str> {
    arg(args, index).and_then(Val::as_str)
}

fn num_arg(args: &[Option<Val>], index: usize) -> Option<f64> {
    arg(args, index).and_then(Val::as_f64)
}

fn num(n: f64) -> Result<Option<Val>> {
    Ok(Some(Val::Num(n)))
}

fn text(s: impl Into<String>) -> Result<Option<Val>> {
    Ok(Some(Val::string(s.into())))
}

fn numbers(args: &[Option<Val>]) -> Option<Vec<f64>> {
    arg(args, 0).map(|a| a.items().iter().filter_map(Val::as_f64).collect())
}

// ---- aggregation ----

fn sum(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(values) = numbers(args) else {
        return Ok(None);
    };
    num(values.iter().sum())
}

fn count(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    num(arg(args, 0).map_or(0, |a| a.items().len()) as f64)
}

fn max(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(values) = numbers(args).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    num(values.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

fn min(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(values) = numbers(args).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    num(values.iter().copied().fold(f64::INFINITY, f64::min))
}

fn average(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(values) = numbers(args).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    num(values.iter().sum::<f64>() / values.len() as f64)
}

// ---- strings ----

fn string(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    let pretty = matches!(arg(args, 1), Some(Val::Bool(true)));
    text(to_string_value(value, pretty)?)
}

/// JavaScript `Array.prototype.slice` index normalisation.
fn slice_index(index: f64, len: usize) -> usize {
    let len_f = len as f64;
    let index = if index.is_nan() { 0.0 } else { index.trunc() };
    if index < 0.0 {
        (len_f + index).max(0.0) as usize
    } else {
        index.min(len_f) as usize
    }
}

fn substring(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len();
    let mut start = num_arg(args, 1).unwrap_or(0.0);
    if len as f64 + start < 0.0 {
        start = 0.0;
    }
    let from = slice_index(start, len);
    let to = match num_arg(args, 2) {
        None => len,
        Some(length) if length <= 0.0 => return text(""),
        Some(length) => {
            let end = if start >= 0.0 {
                start + length
            } else {
                len as f64 + start + length
            };
            slice_index(end, len)
        }
    };
    text(if from < to {
        chars[from..to].iter().collect::<String>()
    } else {
        String::new()
    })
}

fn substring_before(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let chars = str_arg(args, 1).unwrap_or("");
    text(s.find(chars).map_or(s, |i| &s[..i]))
}

fn substring_after(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let chars = str_arg(args, 1).unwrap_or("");
    text(s.find(chars).map_or(s, |i| &s[i + chars.len()..]))
}

fn lowercase(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    str_arg(args, 0).map_or(Ok(None), |s| text(s.to_lowercase()))
}

fn uppercase(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    str_arg(args, 0).map_or(Ok(None), |s| text(s.to_uppercase()))
}

fn length(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    str_arg(args, 0).map_or(Ok(None), |s| num(s.chars().count() as f64))
}

fn trim(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_space = true;
        } else {
            if in_space && !out.is_empty() {
                out.push(' ');
            }
            in_space = false;
            out.push(c);
        }
    }
    text(out)
}

fn pad(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let width = num_arg(args, 1).unwrap_or(0.0);
    let pad_char = match str_arg(args, 2) {
        Some(c) if !c.is_empty() => c,
        _ => " ",
    };
    let current = s.chars().count() as f64;
    let pad_len = width.abs().trunc() - current;
    if pad_len <= 0.0 {
        return text(s);
    }
    ev.charge(pad_len as u64 / 16)?;
    let padding: String = pad_char.chars().cycle().take(pad_len as usize).collect();
    text(if width > 0.0 {
        format!("{s}{padding}")
    } else {
        format!("{padding}{s}")
    })
}

/// A match found by a regex: `start` in UTF-16 units, byte offsets for slicing.
struct RegexMatch {
    matched: String,
    start: usize,
    end_byte: usize,
    start_byte: usize,
    groups: Vec<String>,
}

/// A byte offset as a JavaScript string index (UTF-16 code units), as jsonata-js reports
/// match positions.
fn utf16_offset(s: &str, byte: usize) -> usize {
    s[..byte].encode_utf16().count()
}

fn find_matches(re: &regex::Regex, s: &str, limit: Option<usize>) -> Result<Vec<RegexMatch>> {
    let mut out = Vec::new();
    for caps in re.captures_iter(s) {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let Some(m) = caps.get(0) else { continue };
        if m.as_str().is_empty() {
            return Err(Error::new(
                "D1004",
                "Regular expression matches zero length string",
            ));
        }
        let groups = caps
            .iter()
            .skip(1)
            .map(|g| g.map_or(String::new(), |g| g.as_str().to_string()))
            .collect();
        out.push(RegexMatch {
            matched: m.as_str().to_string(),
            start: utf16_offset(s, m.start()),
            start_byte: m.start(),
            end_byte: m.end(),
            groups,
        });
    }
    Ok(out)
}

/// The object a regex returns when invoked as a function.
pub(crate) fn regex_match_object(re: &regex::Regex, s: &str, _from: usize) -> Option<Val> {
    let caps = re.captures(s)?;
    let m = caps.get(0)?;
    let mut obj = ObjMap::new();
    obj.insert("match".into(), Val::str(m.as_str()));
    obj.insert("start".into(), Val::Num(utf16_offset(s, m.start()) as f64));
    obj.insert("end".into(), Val::Num(utf16_offset(s, m.end()) as f64));
    let groups = caps
        .iter()
        .skip(1)
        .map(|g| Val::str(g.map_or("", |g| g.as_str())))
        .collect();
    obj.insert("groups".into(), Val::array(groups));
    Some(Val::object(obj))
}

fn regex_of(value: Option<&Val>) -> Option<Arc<regex::Regex>> {
    match value {
        Some(Val::Func(f)) => match f.as_ref() {
            Func::Regex(re) => Some(re.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn unsupported_matcher(name: &str) -> Error {
    Error::new(
        "T1010",
        format!(
            "The matcher function argument passed to function {name:?} does not return the correct object structure"
        ),
    )
}

fn limit_arg(
    args: &[Option<Val>],
    index: usize,
    code: &str,
    message: &str,
) -> Result<Option<usize>> {
    match num_arg(args, index) {
        None => Ok(None),
        Some(l) if l < 0.0 => Err(Error::new(code, message)),
        Some(l) => Ok(Some(l as usize)),
    }
}

fn match_(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let limit = limit_arg(
        args,
        2,
        "D3040",
        "Third argument of match function must evaluate to a positive number",
    )?;
    let re = regex_of(arg(args, 1)).ok_or_else(|| unsupported_matcher("match"))?;
    let found = find_matches(&re, s, limit)?;
    let results = found
        .into_iter()
        .map(|m| {
            let mut obj = ObjMap::new();
            obj.insert("match".into(), Val::string(m.matched));
            obj.insert("index".into(), Val::Num(m.start as f64));
            obj.insert(
                "groups".into(),
                Val::array(m.groups.into_iter().map(Val::string).collect()),
            );
            Val::object(obj)
        })
        .collect();
    Ok(Some(Val::seq(results)))
}

fn contains(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let found = match arg(args, 1) {
        Some(Val::Str(needle)) => s.contains(needle.as_ref()),
        other => regex_of(other)
            .ok_or_else(|| unsupported_matcher("contains"))?
            .is_match(s),
    };
    Ok(Some(Val::Bool(found)))
}

/// Expands `$0`, `$1`, `$$` in a regex replacement string as jsonata-js does.
fn expand_replacement(replacement: &str, m: &RegexMatch) -> String {
    let chars: Vec<char> = replacement.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        match chars.get(i) {
            Some('$') => {
                out.push('$');
                i += 1;
            }
            Some('0') => {
                out.push_str(&m.matched);
                i += 1;
            }
            _ => {
                let max_digits = if m.groups.is_empty() {
                    1
                } else {
                    (m.groups.len() as f64).log10().floor() as usize + 1
                };
                let digits: String = chars[i..]
                    .iter()
                    .take(max_digits)
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                let mut index: Option<usize> = digits.parse().ok();
                let mut used = digits.len();
                if max_digits > 1 && index.is_some_and(|x| x > m.groups.len()) {
                    let shorter: String = digits.chars().take(max_digits - 1).collect();
                    index = shorter.parse().ok();
                    used = shorter.len();
                }
                match index {
                    Some(index) => {
                        if index >= 1
                            && let Some(g) = m.groups.get(index - 1)
                        {
                            out.push_str(g);
                        }
                        i += used;
                    }
                    None => out.push('$'),
                }
            }
        }
    }
    out
}

fn match_object_for_replacer(m: &RegexMatch) -> Val {
    let mut obj = ObjMap::new();
    obj.insert("match".into(), Val::str(&m.matched));
    obj.insert("index".into(), Val::Num(m.start as f64));
    obj.insert(
        "groups".into(),
        Val::array(m.groups.iter().map(|g| Val::str(g)).collect()),
    );
    Val::object(obj)
}

fn replace(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let limit = limit_arg(
        args,
        3,
        "D3011",
        "Fourth argument of replace function must evaluate to a positive number",
    )?;
    let replacement = arg(args, 2).cloned().unwrap_or_else(|| Val::str(""));
    if let Some(Val::Str(pattern)) = arg(args, 1) {
        if pattern.is_empty() {
            return Err(Error::new(
                "D3010",
                "Second argument of replace function cannot be an empty string",
            ));
        }
        let Val::Str(with) = &replacement else {
            return Err(unsupported_matcher("replace"));
        };
        let out = match limit {
            None => s.replace(pattern.as_ref(), with),
            Some(l) => s.replacen(pattern.as_ref(), with, l),
        };
        ev.charge(out.len() as u64 / 16)?;
        return text(out);
    }
    let re = regex_of(arg(args, 1)).ok_or_else(|| unsupported_matcher("replace"))?;
    let mut out = String::new();
    let mut position = 0;
    for m in find_matches(&re, s, limit)? {
        out.push_str(&s[position..m.start_byte]);
        match &replacement {
            Val::Str(with) => out.push_str(&expand_replacement(with, &m)),
            func @ Val::Func(_) => {
                match ev.apply(func, vec![Some(match_object_for_replacer(&m))], None, 0)? {
                    Some(Val::Str(r)) => out.push_str(&r),
                    _ => {
                        return Err(Error::new(
                            "D3012",
                            "Attempted to replace a matched string with a non-string value",
                        ));
                    }
                }
            }
            _ => return Err(unsupported_matcher("replace")),
        }
        position = m.end_byte;
    }
    out.push_str(&s[position..]);
    ev.charge(out.len() as u64 / 16)?;
    text(out)
}

fn split(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let limit = limit_arg(
        args,
        2,
        "D3020",
        "Third argument of split function must evaluate to a positive number",
    )?;
    let mut parts: Vec<String> = match arg(args, 1) {
        Some(Val::Str(sep)) if sep.is_empty() => s.chars().map(String::from).collect(),
        Some(Val::Str(sep)) => s.split(sep.as_ref()).map(String::from).collect(),
        other => {
            let re = regex_of(other).ok_or_else(|| unsupported_matcher("split"))?;
            let mut parts = Vec::new();
            let mut position = 0;
            for m in find_matches(&re, s, None)? {
                parts.push(s[position..m.start_byte].to_string());
                position = m.end_byte;
            }
            parts.push(s[position..].to_string());
            parts
        }
    };
    if let Some(limit) = limit {
        parts.truncate(limit);
    }
    Ok(Some(Val::array(
        parts.into_iter().map(Val::string).collect(),
    )))
}

fn join(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(list) = arg(args, 0) else {
        return Ok(None);
    };
    let sep = str_arg(args, 1).unwrap_or("");
    let parts: Vec<String> = list
        .items()
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let out = parts.join(sep);
    ev.charge(out.len() as u64 / 16)?;
    text(out)
}

fn format_number_fn(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(n) = num_arg(args, 0) else {
        return Ok(None);
    };
    let picture = str_arg(args, 1).unwrap_or("");
    let options = match arg(args, 2) {
        Some(Val::Obj(map)) => Some(map.clone()),
        _ => None,
    };
    text(numfmt::format_number(
        n,
        picture,
        options.as_deref().map(|o| &o.map),
    )?)
}

fn format_base(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(n) = num_arg(args, 0) else {
        return Ok(None);
    };
    let radix = num_arg(args, 1).map_or(10.0, round_half_even);
    if !(2.0..=36.0).contains(&radix) {
        return Err(Error::new(
            "D3100",
            format!(
                "The radix of the formatBase function must be between 2 and 36.  It was given {}",
                format_number(radix)
            ),
        ));
    }
    text(numfmt::to_radix(round_half_even(n), radix as u32))
}

fn format_integer(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(n) = num_arg(args, 0) else {
        return Ok(None);
    };
    text(numfmt::format_integer(n, str_arg(args, 1).unwrap_or("0"))?)
}

fn parse_integer(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    numfmt::parse_integer(s, str_arg(args, 1).unwrap_or("0")).map(|n| Some(Val::Num(n)))
}

// ---- numbers ----

fn cast_error(value: &Val) -> Error {
    Error::new(
        "D3030",
        format!(
            "Unable to cast value to a number: {}",
            describe(Some(value))
        ),
    )
}

/// Whether `s` matches `-?[0-9]+(\.[0-9]+)?([Ee][-+]?[0-9]+)?`.
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// `$number` of a string per jsonata (JSON number syntax, or 0x/0o/0b integers).
pub(crate) fn parse_number_string(s: &str) -> Option<f64> {
    if is_decimal_literal(s) {
        return s.parse::<f64>().ok().filter(|n| n.is_finite());
    }
    let (radix, digits) = match s.get(..2) {
        Some("0x" | "0X") => (16, &s[2..]),
        Some("0o" | "0O") => (8, &s[2..]),
        Some("0b" | "0B") => (2, &s[2..]),
        _ => return None,
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().map(|n| n as f64)
}

fn number(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    match arg(args, 0) {
        None => Ok(None),
        Some(Val::Num(n)) => num(*n),
        Some(Val::Bool(b)) => num(if *b { 1.0 } else { 0.0 }),
        Some(v @ Val::Str(s)) => parse_number_string(s).map_or_else(|| Err(cast_error(v)), num),
        Some(other) => Err(cast_error(other)),
    }
}

fn floor(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    num_arg(args, 0).map_or(Ok(None), |n| num(n.floor()))
}

fn ceil(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    num_arg(args, 0).map_or(Ok(None), |n| num(n.ceil()))
}

fn abs(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    num_arg(args, 0).map_or(Ok(None), |n| num(n.abs()))
}

/// Rounds half to even (banker's rounding).
pub(crate) fn round_half_even(n: f64) -> f64 {
    let rounded = (n + 0.5).floor();
    let result = if (rounded - n).abs() == 0.5 && rounded % 2.0 != 0.0 {
        rounded - 1.0
    } else {
        rounded
    };
    if result == 0.0 { 0.0 } else { result }
}

/// Shifts the decimal point of `n` by `places` exactly (via its decimal representation).
fn shift_decimal(n: f64, places: i32) -> f64 {
    let repr = format!("{:e}", n);
    let (mantissa, exp) = repr.split_once('e').unwrap_or((&repr, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mantissa}e{}", exp + places).parse().unwrap_or(n)
}

fn round(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(n) = num_arg(args, 0) else {
        return Ok(None);
    };
    // Beyond ±400 decimal places every f64 rounds to itself or to zero.
    let precision = num_arg(args, 1).unwrap_or(0.0).trunc().clamp(-400.0, 400.0) as i32;
    if precision == 0 {
        return num(round_half_even(n));
    }
    let shifted = shift_decimal(n, precision);
    num(shift_decimal(round_half_even(shifted), -precision))
}

fn sqrt(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(n) = num_arg(args, 0) else {
        return Ok(None);
    };
    if n < 0.0 {
        return Err(Error::new(
            "D3060",
            format!(
                "The sqrt function cannot be applied to a negative number: {}",
                format_number(n)
            ),
        ));
    }
    num(n.sqrt())
}

fn power(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(base) = num_arg(args, 0) else {
        return Ok(None);
    };
    let exponent = num_arg(args, 1).unwrap_or(f64::NAN);
    let result = base.powf(exponent);
    if !result.is_finite() {
        return Err(Error::new(
            "D3061",
            format!(
                "The power function has resulted in a value that cannot be represented as a JSON number: base={}, exponent={}",
                format_number(base),
                format_number(exponent)
            ),
        ));
    }
    num(result)
}

fn random(ev: &mut Evaluator, _: &[Option<Val>]) -> Result<Option<Val>> {
    num(ev.next_random())
}

// ---- boolean ----

fn boolean(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    Ok(truthy(arg(args, 0)).map(Val::Bool))
}

fn not(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    Ok(truthy(arg(args, 0)).map(|b| Val::Bool(!b)))
}

fn exists(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    Ok(Some(Val::Bool(arg(args, 0).is_some())))
}

fn type_(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    Ok(arg(args, 0).map(|v| Val::str(v.type_name())))
}

// ---- higher order ----

/// Calls `func` with `(value, index, array)` trimmed to the function's arity.
fn call_with_item(
    ev: &mut Evaluator,
    func: &Val,
    value: &Val,
    second: Val,
    third: &Val,
) -> Result<Option<Val>> {
    let arity = match func {
        Val::Func(f) => f.arity(),
        _ => 1,
    };
    let mut call_args = vec![Some(value.clone())];
    if arity >= 2 {
        call_args.push(Some(second));
    }
    if arity >= 3 {
        call_args.push(Some(third.clone()));
    }
    ev.apply(func, call_args, None, 0)
}

fn function_arg(args: &[Option<Val>], index: usize) -> Option<&Val> {
    arg(args, index).filter(|v| v.is_function())
}

fn map(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let (Some(list), Some(func)) = (arg(args, 0), function_arg(args, 1)) else {
        return Ok(None);
    };
    let list_val = Val::array(list.items());
    let mut out = Vec::new();
    for (i, item) in list.items().iter().enumerate() {
        if let Some(v) = call_with_item(ev, func, item, Val::Num(i as f64), &list_val)? {
            out.push(v);
        }
    }
    Ok(Some(Val::seq(out)))
}

fn filter(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let (Some(list), Some(func)) = (arg(args, 0), function_arg(args, 1)) else {
        return Ok(None);
    };
    let list_val = Val::array(list.items());
    let mut out = Vec::new();
    for (i, item) in list.items().iter().enumerate() {
        let keep = call_with_item(ev, func, item, Val::Num(i as f64), &list_val)?;
        if truthy(keep.as_ref()).unwrap_or(false) {
            out.push(item.clone());
        }
    }
    Ok(Some(Val::seq(out)))
}

fn single(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(list) = arg(args, 0) else {
        return Ok(None);
    };
    let list_val = Val::array(list.items());
    let mut found: Option<Val> = None;
    for (i, item) in list.items().iter().enumerate() {
        let matched = match function_arg(args, 1) {
            Some(func) => {
                truthy(call_with_item(ev, func, item, Val::Num(i as f64), &list_val)?.as_ref())
                    .unwrap_or(false)
            }
            None => true,
        };
        if matched {
            if found.is_some() {
                return Err(Error::new(
                    "D3138",
                    "The $single() function expected exactly 1 matching result.  Instead it matched more.",
                ));
            }
            found = Some(item.clone());
        }
    }
    match found {
        Some(v) => Ok(Some(v)),
        None => Err(Error::new(
            "D3139",
            "The $single() function expected exactly 1 matching result.  Instead it matched 0.",
        )),
    }
}

fn zip(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let lists: Vec<Vec<Val>> = args
        .iter()
        .map(|a| a.as_ref().map(Val::items).unwrap_or_default())
        .collect();
    let len = lists.iter().map(Vec::len).min().unwrap_or(0);
    Ok(Some(Val::array(
        (0..len)
            .map(|i| Val::array(lists.iter().map(|l| l[i].clone()).collect()))
            .collect(),
    )))
}

fn reduce(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let (Some(list), Some(func)) = (arg(args, 0), function_arg(args, 1)) else {
        return Ok(None);
    };
    let arity = match func {
        Val::Func(f) => f.arity(),
        _ => 0,
    };
    if arity < 2 {
        return Err(Error::new(
            "D3050",
            "The second argument of reduce function must be a function with at least two arguments",
        ));
    }
    let items = list.items();
    let list_val = Val::array(items.clone());
    let (mut acc, start) = match arg(args, 2) {
        Some(init) => (Some(init.clone()), 0),
        None => (items.first().cloned(), 1),
    };
    for (i, item) in items.iter().enumerate().skip(start) {
        let mut call_args = vec![acc, Some(item.clone())];
        if arity >= 3 {
            call_args.push(Some(Val::Num(i as f64)));
        }
        if arity >= 4 {
            call_args.push(Some(list_val.clone()));
        }
        acc = ev.apply(func, call_args, None, 0)?;
    }
    Ok(acc)
}

fn sift(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let (Some(Val::Obj(obj)), Some(func)) = (arg(args, 0), function_arg(args, 1)) else {
        return Ok(None);
    };
    let whole = Val::Obj(obj.clone());
    let mut out = ObjMap::new();
    for (k, v) in obj.iter() {
        let keep = call_with_item(ev, func, v, Val::str(k), &whole)?;
        if truthy(keep.as_ref()).unwrap_or(false) {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(if out.is_empty() {
        None
    } else {
        Some(Val::object(out))
    })
}

fn each(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let (Some(Val::Obj(obj)), Some(func)) = (arg(args, 0), function_arg(args, 1)) else {
        return Ok(None);
    };
    let whole = Val::Obj(obj.clone());
    let mut out = Vec::new();
    for (k, v) in obj.iter() {
        if let Some(r) = call_with_item(ev, func, v, Val::str(k), &whole)? {
            out.push(r);
        }
    }
    Ok(Some(Val::seq(out)))
}

// ---- objects ----

fn collect_keys(value: &Val, out: &mut Vec<String>) {
    match value {
        Val::Arr(items, _) => items.iter().for_each(|v| collect_keys(v, out)),
        Val::Obj(map) => {
            for k in map.keys() {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
        _ => {}
    }
}

fn keys(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    collect_keys(value, &mut out);
    Ok(Some(Val::seq(out.into_iter().map(Val::string).collect())))
}

fn lookup_in(value: &Val, key: &str) -> Option<Val> {
    match value {
        Val::Arr(items, _) => {
            let mut out = Vec::new();
            for item in items.iter() {
                match lookup_in(item, key) {
                    Some(Val::Arr(found, _)) => out.extend(found.iter().cloned()),
                    Some(v) => out.push(v),
                    None => {}
                }
            }
            Some(Val::seq(out))
        }
        Val::Obj(map) => map.get(key).cloned(),
        _ => None,
    }
}

fn lookup(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    Ok(lookup_in(value, str_arg(args, 1).unwrap_or("")))
}

fn append_fn(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let result = append(arg(args, 0).cloned(), arg(args, 1).cloned());
    if let Some(Val::Arr(items, _)) = &result {
        ev.charge(items.len() as u64 / 16)?;
    }
    Ok(result)
}

fn spread(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let objects = match value {
        Val::Arr(items, _) => items.as_ref().clone(),
        Val::Obj(_) => vec![value.clone()],
        other => return Ok(Some(other.clone())),
    };
    for item in objects {
        match item {
            Val::Obj(map) => {
                for (k, v) in map.iter() {
                    let mut single = ObjMap::new();
                    single.insert(k.clone(), v.clone());
                    out.push(Val::object(single));
                }
            }
            other => out.push(other),
        }
    }
    Ok(Some(Val::seq(out)))
}

fn merge(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    let mut out = ObjMap::new();
    for item in value.items() {
        if let Val::Obj(map) = item {
            for (k, v) in map.iter() {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Some(Val::object(out)))
}

fn clone(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    Ok(arg(args, 0).cloned())
}

// ---- arrays ----

fn reverse(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    let mut items = value.items();
    items.reverse();
    Ok(Some(Val::array(items)))
}

fn shuffle(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    let mut items = value.items();
    for i in (1..items.len()).rev() {
        let j = (ev.next_random() * (i + 1) as f64).floor() as usize;
        items.swap(i, j.min(i));
    }
    Ok(Some(Val::array(items)))
}

fn distinct(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    let Val::Arr(items, _) = value else {
        return Ok(Some(value.clone()));
    };
    let mut out: Vec<Val> = Vec::new();
    for item in items.iter() {
        if !out.iter().any(|seen| deep_equal(seen, item)) {
            out.push(item.clone());
        }
    }
    Ok(Some(Val::seq(out).with_flags(ArrFlags {
        keep: true,
        ..ArrFlags::SEQ
    })))
}

fn sort(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(value) = arg(args, 0) else {
        return Ok(None);
    };
    let items = value.items();
    if items.len() <= 1 {
        return Ok(Some(Val::array(items)));
    }
    let sorted = match function_arg(args, 1) {
        Some(func) => merge_sort(ev, items, func)?,
        None => sort_plain(items)?,
    };
    Ok(Some(Val::array(sorted)))
}

fn sort_plain(mut items: Vec<Val>) -> Result<Vec<Val>> {
    let all_numbers = items.iter().all(|v| matches!(v, Val::Num(_)));
    let all_strings = items.iter().all(|v| matches!(v, Val::Str(_)));
    if !all_numbers && !all_strings {
        return Err(Error::new(
            "D3070",
            "The single argument form of the sort function can only be applied to an array of strings or an array of numbers.  Use the second argument to specify a comparison function",
        ));
    }
    items.sort_by(|a, b| match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal),
        (Val::Str(x), Val::Str(y)) => compare_strings(x, y),
        _ => std::cmp::Ordering::Equal,
    });
    Ok(items)
}

/// Stable merge sort where `func(a, b)` returning true means `a` goes after `b`.
fn merge_sort(ev: &mut Evaluator, items: Vec<Val>, func: &Val) -> Result<Vec<Val>> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let mut left = items;
    let right = left.split_off(left.len() / 2);
    let left = merge_sort(ev, left, func)?;
    let right = merge_sort(ev, right, func)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        let swap = ev.apply(
            func,
            vec![Some(left[i].clone()), Some(right[j].clone())],
            None,
            0,
        )?;
        if truthy(swap.as_ref()).unwrap_or(false) {
            out.push(right[j].clone());
            j += 1;
        } else {
            out.push(left[i].clone());
            i += 1;
        }
    }
    out.extend_from_slice(&left[i..]);
    out.extend_from_slice(&right[j..]);
    Ok(out)
}

// ---- control ----

fn error(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    Err(Error::new(
        "D3137",
        str_arg(args, 0).unwrap_or("$error() function evaluated"),
    ))
}

fn assert(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    if matches!(arg(args, 0), Some(Val::Bool(true))) {
        return Ok(None);
    }
    Err(Error::new(
        "D3141",
        str_arg(args, 1).unwrap_or("$assert() statement failed"),
    ))
}

fn eval_fn(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(source) = str_arg(args, 0) else {
        return Ok(None);
    };
    let node = crate::parser::parse(source).map_err(|e| {
        Error::new(
            "D3120",
            format!(
                "Syntax error in expression passed to function eval: {}",
                e.message
            ),
        )
    })?;
    let context = arg(args, 1).cloned();
    ev.eval_detached(&node, context.as_ref()).map_err(|e| {
        if e.code.starts_with('U') {
            e
        } else {
            Error::new(
                "D3121",
                format!(
                    "Dynamic error evaluating the expression passed to function eval: {}",
                    e.message
                ),
            )
        }
    })
}

// ---- encoding ----

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64encode(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    text(out)
}

fn base64decode(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = BASE64.iter().position(|&b| b == c) else {
            continue;
        };
        buffer = (buffer << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    text(String::from_utf8_lossy(&bytes).into_owned())
}

fn percent_encode(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || keep.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn encode_url_component(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    str_arg(args, 0).map_or(Ok(None), |s| text(percent_encode(s, "-_.!~*'()")))
}

fn encode_url(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    str_arg(args, 0).map_or(Ok(None), |s| {
        text(percent_encode(s, "-_.!~*'();/?:@&=+$,#"))
    })
}

fn decode_url(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(decoded) => text(decoded),
        Err(_) => Err(Error::new(
            "D3140",
            format!("Malformed URL passed to ${}(): {s:?}", "decodeUrl"),
        )),
    }
}

// ---- date/time ----

fn now(ev: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    text(datetime::format_millis(
        ev.now_millis(),
        str_arg(args, 0),
        str_arg(args, 1),
    )?)
}

fn millis(ev: &mut Evaluator, _: &[Option<Val>]) -> Result<Option<Val>> {
    num(ev.now_millis() as f64)
}

fn from_millis(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(ms) = num_arg(args, 0) else {
        return Ok(None);
    };
    text(datetime::format_millis(
        ms.floor() as i64,
        str_arg(args, 1),
        str_arg(args, 2),
    )?)
}

fn to_millis(_: &mut Evaluator, args: &[Option<Val>]) -> Result<Option<Val>> {
    let Some(s) = str_arg(args, 0) else {
        return Ok(None);
    };
    match datetime::parse_millis(s, str_arg(args, 1))? {
        Some(ms) => num(ms as f64),
        None => Ok(None),
    }
}
