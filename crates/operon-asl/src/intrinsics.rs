//! Intrinsic functions (`States.Format(...)`, `States.MathAdd(...)`, ...).

use crate::error::{Failure, names};
use crate::jsonpath::JsonPath;
use crate::rng::Rng;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// A parsed intrinsic call.
#[derive(Debug, Clone)]
pub struct Call {
    pub func: Func,
    pub args: Vec<Arg>,
}

/// An argument of a call.
#[derive(Debug, Clone)]
pub enum Arg {
    /// A string literal; `raw` keeps the backslash escapes (needed by Format).
    Str {
        value: String,
        raw: String,
    },
    Literal(Value),
    Path(JsonPath),
    Call(Box<Call>),
}

macro_rules! funcs {
    ($($v:ident => $n:literal),* $(,)?) => {
        /// The intrinsic functions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Func { $($v),* }
        impl Func {
            fn from_name(n: &str) -> Option<Func> {
                match n { $($n => Some(Func::$v),)* _ => None }
            }
            /// The function's name as written in a definition.
            pub fn name(self) -> &'static str {
                match self { $(Func::$v => concat!("States.", $n)),* }
            }
        }
    };
}

funcs! {
    Format => "Format", StringToJson => "StringToJson", JsonToString => "JsonToString",
    Array => "Array", ArrayPartition => "ArrayPartition", ArrayContains => "ArrayContains",
    ArrayRange => "ArrayRange", ArrayGetItem => "ArrayGetItem", ArrayLength => "ArrayLength",
    ArrayUnique => "ArrayUnique", Base64Encode => "Base64Encode", Base64Decode => "Base64Decode",
    Hash => "Hash", JsonMerge => "JsonMerge", MathRandom => "MathRandom", MathAdd => "MathAdd",
    StringSplit => "StringSplit", Uuid => "UUID",
}

/// True when a string is (meant to be) an intrinsic call.
pub fn is_intrinsic(s: &str) -> bool {
    s.starts_with("States.")
}

/// Parses `States.Name(args...)`.
pub fn parse(src: &str) -> Result<Call, String> {
    let mut p = P { s: src, i: 0 };
    let call = p.call()?;
    p.ws();
    if p.i != src.len() {
        return Err(format!(
            "unexpected text after intrinsic function at position {}",
            p.i
        ));
    }
    Ok(call)
}

struct P<'a> {
    s: &'a str,
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.s[self.i..].starts_with([' ', '\t', '\n', '\r']) {
            self.i += 1;
        }
    }

    fn call(&mut self) -> Result<Call, String> {
        self.ws();
        let rest = &self.s[self.i..];
        let Some(name_rest) = rest.strip_prefix("States.") else {
            return Err("intrinsic functions start with 'States.'".into());
        };
        let name_len = name_rest
            .find('(')
            .ok_or("expected '(' after the function name")?;
        let name = name_rest[..name_len].trim();
        let func = Func::from_name(name)
            .ok_or_else(|| format!("unknown intrinsic function 'States.{name}'"))?;
        self.i += "States.".len() + name_len + 1;
        let mut args = Vec::new();
        self.ws();
        if self.s[self.i..].starts_with(')') {
            self.i += 1;
            return Ok(Call { func, args });
        }
        loop {
            args.push(self.arg()?);
            self.ws();
            match self.s[self.i..].chars().next() {
                Some(',') => self.i += 1,
                Some(')') => {
                    self.i += 1;
                    return Ok(Call { func, args });
                }
                _ => return Err(format!("expected ',' or ')' at position {}", self.i)),
            }
        }
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.ws();
        let rest = &self.s[self.i..];
        if rest.starts_with('\'') {
            return self.string();
        }
        if rest.starts_with("States.") {
            return Ok(Arg::Call(Box::new(self.call()?)));
        }
        if rest.starts_with('$') {
            let end = self.path_end();
            let text = self.s[self.i..end].trim_end();
            let path = JsonPath::parse(text)?;
            self.i = end;
            return Ok(Arg::Path(path));
        }
        let end = rest
            .find([',', ')'])
            .map(|e| self.i + e)
            .unwrap_or(self.s.len());
        let word = self.s[self.i..end].trim();
        let v: Value = match word {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => match serde_json::from_str::<Value>(word) {
                Ok(v @ Value::Number(_)) => v,
                _ => return Err(format!("invalid argument '{word}'")),
            },
        };
        self.i = end;
        Ok(Arg::Literal(v))
    }

    fn path_end(&self) -> usize {
        let mut depth = 0i32;
        let mut quote: Option<char> = None;
        for (off, c) in self.s[self.i..].char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(') => depth += 1,
                (None, ']') => depth -= 1,
                (None, ')') if depth == 0 => return self.i + off,
                (None, ')') => depth -= 1,
                (None, ',') if depth == 0 => return self.i + off,
                _ => {}
            }
        }
        self.s.len()
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.i += 1;
        let start = self.i;
        let mut value = String::new();
        let mut chars = self.s[self.i..].char_indices();
        while let Some((off, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, n)) => value.push(n),
                    None => break,
                },
                '\'' => {
                    let raw = self.s[start..start + off].to_string();
                    self.i = start + off + 1;
                    return Ok(Arg::Str { value, raw });
                }
                _ => value.push(c),
            }
        }
        Err("unterminated string literal".into())
    }
}

/// What a call needs from its surroundings.
pub trait Scope {
    /// Resolves a path argument (`$`, `$$` or a variable); `Err` carries the failure.
    fn resolve(&self, path: &JsonPath) -> Result<Value, Failure>;
}

/// Step Functions reports bad intrinsic arguments as `States.Runtime` with
/// this cause (behind the usual "An error occurred while executing the state"
/// prefix); the detail is for our own debugging only.
fn fail(func: Func, _detail: impl std::fmt::Display) -> Failure {
    Failure::new(
        names::RUNTIME,
        format!("Invalid arguments in {}", func.name()),
    )
}

/// Evaluates a call.
pub fn eval(call: &Call, scope: &dyn Scope, rng: &mut Rng) -> Result<Value, Failure> {
    if call.func == Func::Format {
        return format(call, scope, rng);
    }
    let mut args = Vec::with_capacity(call.args.len());
    for a in &call.args {
        args.push(eval_arg(a, scope, rng)?);
    }
    apply(call.func, args, rng)
}

fn eval_arg(a: &Arg, scope: &dyn Scope, rng: &mut Rng) -> Result<Value, Failure> {
    match a {
        Arg::Str { value, .. } => Ok(Value::String(value.clone())),
        Arg::Literal(v) => Ok(v.clone()),
        Arg::Path(p) => scope.resolve(p),
        Arg::Call(c) => eval(c, scope, rng),
    }
}

fn arity(func: Func, args: &[Value], min: usize, max: usize) -> Result<(), Failure> {
    if args.len() < min || args.len() > max {
        let expect = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(fail(
            func,
            format!("expected {expect} arguments, got {}", args.len()),
        ));
    }
    Ok(())
}

fn as_int(func: Func, v: &Value) -> Result<i64, Failure> {
    match v {
        Value::Number(n) => {
            // Fractions are truncated toward zero, as Java's (int) cast does.
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64()
                && f.is_finite()
                && f.abs() < 9.0e18
            {
                Ok(f.trunc() as i64)
            } else {
                Err(fail(func, format!("expected an integer, got {v}")))
            }
        }
        _ => Err(fail(func, format!("expected an integer, got {v}"))),
    }
}

fn as_str(func: Func, v: &Value) -> Result<String, Failure> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| fail(func, format!("expected a string, got {v}")))
}

fn as_arr(func: Func, v: Value) -> Result<Vec<Value>, Failure> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(fail(func, format!("expected an array, got {other}"))),
    }
}

fn apply(func: Func, mut args: Vec<Value>, rng: &mut Rng) -> Result<Value, Failure> {
    use Func::*;
    match func {
        Format => unreachable_format(),
        StringToJson => {
            arity(func, &args, 1, 1)?;
            let s = as_str(func, &args[0])?;
            if s.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(&s).map_err(|e| fail(func, format!("invalid JSON string: {e}")))
        }
        JsonToString => {
            arity(func, &args, 1, 1)?;
            Ok(Value::String(
                serde_json::to_string(&args[0]).unwrap_or_default(),
            ))
        }
        Array => Ok(Value::Array(args)),
        ArrayPartition => {
            arity(func, &args, 2, 2)?;
            let size = as_int(func, &args[1])?;
            if size <= 0 {
                return Err(fail(func, "chunk size must be greater than 0"));
            }
            let arr = as_arr(func, args.swap_remove(0))?;
            Ok(Value::Array(
                arr.chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        ArrayContains => {
            arity(func, &args, 2, 2)?;
            let needle = args.pop().unwrap_or(Value::Null);
            let arr = as_arr(func, args.swap_remove(0))?;
            Ok(Value::Bool(arr.iter().any(|v| json_eq(v, &needle))))
        }
        ArrayRange => array_range(func, &args),
        ArrayGetItem => {
            arity(func, &args, 2, 2)?;
            let idx = as_int(func, &args[1])?;
            let arr = as_arr(func, args.swap_remove(0))?;
            // Observed AWS behaviour: any index into an empty array gives null.
            if arr.is_empty() && idx >= 0 {
                return Ok(Value::Null);
            }
            if idx < 0 || idx as usize >= arr.len() {
                return Err(fail(func, format!("index {idx} out of bounds")));
            }
            Ok(arr[idx as usize].clone())
        }
        ArrayLength => {
            arity(func, &args, 1, 1)?;
            Ok(Value::from(as_arr(func, args.swap_remove(0))?.len()))
        }
        ArrayUnique => {
            arity(func, &args, 1, 1)?;
            let arr = as_arr(func, args.swap_remove(0))?;
            let mut out: Vec<Value> = Vec::new();
            for v in arr {
                if !out.iter().any(|o| json_eq(o, &v)) {
                    out.push(v);
                }
            }
            Ok(Value::Array(out))
        }
        Base64Encode => {
            arity(func, &args, 1, 1)?;
            let s = as_str(func, &args[0])?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            ))
        }
        Base64Decode => {
            arity(func, &args, 1, 1)?;
            let s = as_str(func, &args[0])?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| fail(func, format!("invalid base64: {e}")))?;
            Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Hash => hash(func, &args),
        JsonMerge => {
            arity(func, &args, 3, 3)?;
            // Only shallow merges exist; AWS treats any value but `true` as shallow.
            if args[2] == Value::Bool(true) {
                return Err(fail(
                    func,
                    "deep merge is not supported; the third argument must be false",
                ));
            }
            let (Value::Object(mut a), Value::Object(b)) = (args[0].clone(), args[1].clone())
            else {
                return Err(fail(func, "both arguments must be JSON objects"));
            };
            for (k, v) in b {
                a.insert(k, v);
            }
            Ok(Value::Object(a))
        }
        MathRandom => math_random(func, &args, rng),
        MathAdd => {
            arity(func, &args, 2, 2)?;
            // Operands and sum are Java ints (32 bits).
            let a = i32::try_from(java_round(func, &args[0])?)
                .map_err(|_| fail(func, "out of int range"))?;
            let b = i32::try_from(java_round(func, &args[1])?)
                .map_err(|_| fail(func, "out of int range"))?;
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| fail(func, "integer overflow"))
        }
        StringSplit => {
            arity(func, &args, 2, 2)?;
            let s = as_str(func, &args[0])?;
            let delims = as_str(func, &args[1])?;
            let parts = s
                .split(|c: char| delims.contains(c))
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect();
            Ok(Value::Array(parts))
        }
        Uuid => {
            arity(func, &args, 0, 0)?;
            Ok(Value::String(rng.uuid_v4()))
        }
    }
}

/// Java's `Math.round`: half up.
fn java_round(func: Func, v: &Value) -> Result<i64, Failure> {
    match v {
        Value::Number(n) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or(0)),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if !f.is_finite() || f.abs() > 9.0e18 {
                return Err(fail(func, format!("number out of range: {v}")));
            }
            Ok((f + 0.5).floor() as i64)
        }
        _ => Err(fail(func, format!("expected a number, got {v}"))),
    }
}

fn unreachable_format() -> Result<Value, Failure> {
    Err(Failure::new(
        names::RUNTIME,
        "States.Format evaluated out of order",
    ))
}

fn array_range(func: Func, args: &[Value]) -> Result<Value, Failure> {
    arity(func, args, 3, 3)?;
    let start = as_int(func, &args[0])?;
    let end = as_int(func, &args[1])?;
    let step = as_int(func, &args[2])?;
    if step == 0 {
        return Err(fail(func, "step must not be 0"));
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i <= end) || (step < 0 && i >= end) {
        out.push(Value::from(i));
        if out.len() > 1000 {
            return Err(fail(func, "the result has more than 1000 items"));
        }
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    Ok(Value::Array(out))
}

fn hash(func: Func, args: &[Value]) -> Result<Value, Failure> {
    use sha2::Digest;
    arity(func, args, 2, 2)?;
    let data = match &args[0] {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    if data.chars().count() > 10_000 {
        return Err(fail(func, "the data is longer than 10,000 characters"));
    }
    let alg = as_str(func, &args[1])?;
    let bytes = data.as_bytes();
    let digest: Vec<u8> = match alg.as_str() {
        "MD5" => md5::Md5::digest(bytes).to_vec(),
        "SHA-1" => sha1::Sha1::digest(bytes).to_vec(),
        "SHA-256" => sha2::Sha256::digest(bytes).to_vec(),
        "SHA-384" => sha2::Sha384::digest(bytes).to_vec(),
        "SHA-512" => sha2::Sha512::digest(bytes).to_vec(),
        other => {
            return Err(fail(
                func,
                format!(
                    "unsupported hash algorithm '{other}'; use one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
                ),
            ));
        }
    };
    Ok(Value::String(
        digest.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

fn math_random(func: Func, args: &[Value], rng: &mut Rng) -> Result<Value, Failure> {
    arity(func, args, 2, 3)?;
    let start = as_int(func, &args[0])?;
    let end = as_int(func, &args[1])?;
    if end <= start {
        return Err(fail(func, "the end must be greater than the start"));
    }
    let span = (end - start) as u64;
    let r = if args.len() == 3 {
        let seed = as_int(func, &args[2])?;
        Rng::new(seed as u64).next_u64() % span
    } else {
        rng.next_u64() % span
    };
    Ok(Value::from(start + r as i64))
}

/// JSON equality with numbers compared by value.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn num_eq(x: &Number, y: &Number) -> bool {
    match (x.as_i64(), y.as_i64()) {
        (Some(a), Some(b)) => a == b,
        _ => x.as_f64() == y.as_f64(),
    }
}

fn format(call: &Call, scope: &dyn Scope, rng: &mut Rng) -> Result<Value, Failure> {
    let func = Func::Format;
    // The template is a literal (whose backslash escapes matter) or a value from a path.
    let (template, escapes) = match call.args.first() {
        Some(Arg::Str { raw, .. }) => (raw.clone(), true),
        Some(other) => match eval_arg(other, scope, rng)? {
            Value::String(s) => (s, false),
            v => {
                return Err(fail(
                    func,
                    format!("the template must be a string, got {v}"),
                ));
            }
        },
        None => return Err(fail(func, "missing template")),
    };
    let mut values = Vec::new();
    for a in &call.args[1..] {
        values.push(eval_arg(a, scope, rng)?);
    }
    let out = fill_template(&template, escapes, &values)
        .ok_or_else(|| fail(func, "template and arguments do not match"))?;
    Ok(Value::String(out))
}

/// Replaces each `{}` with the next value; `None` when the counts differ or a
/// brace stands alone.
fn fill_template(template: &str, escapes: bool, values: &[Value]) -> Option<String> {
    let mut out = String::new();
    let mut next = values.iter();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if escapes => out.push(chars.next()?),
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push_str(&to_format_string(next.next()?));
            }
            '{' | '}' => return None,
            _ => out.push(c),
        }
    }
    next.next().is_none().then_some(out)
}

/// How Step Functions (Java) renders a value inside States.Format.
pub fn to_format_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => java_number(n),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(to_format_string).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(o) => format_object(o),
    }
}

fn format_object(o: &Map<String, Value>) -> String {
    let parts: Vec<String> = o
        .iter()
        .map(|(k, v)| format!("{k}={}", to_format_string(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Renders a number as Java's `Double.toString`/`Long.toString` would.
pub fn java_number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e7 {
        return format!("{f:.1}");
    }
    if f.abs() >= 1e7 || (f != 0.0 && f.abs() < 1e-3) {
        let s = format!("{f:E}");
        return match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        };
    }
    f.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct S(Value);
    impl Scope for S {
        fn resolve(&self, p: &JsonPath) -> Result<Value, Failure> {
            p.eval(&self.0)
                .map(|c| c.into_owned())
                .ok_or_else(|| Failure::new(names::RUNTIME, "missing"))
        }
    }

    fn run(src: &str, input: Value) -> Result<Value, Failure> {
        let c = parse(src).unwrap();
        eval(&c, &S(input), &mut Rng::new(1))
    }

    #[test]
    fn format_and_nesting() {
        assert_eq!(
            run("States.Format('a {} b {}', $.x, 'y')", json!({"x": 1})).unwrap(),
            json!("a 1 b y")
        );
        assert_eq!(
            run("States.Format('\\{\\}{}', $.x)", json!({"x": "q"})).unwrap(),
            json!("{}q")
        );
        assert_eq!(
            run(
                "States.ArrayGetItem(States.StringSplit('a-b', '-'), States.MathAdd(1, -1))",
                json!({})
            )
            .unwrap(),
            json!("a")
        );
    }

    #[test]
    fn format_templates_from_paths_and_bad_braces() {
        assert_eq!(
            run(
                "States.Format($.t, $.n)",
                json!({"t": "Hello {}", "n": "Ada"})
            )
            .unwrap(),
            json!("Hello Ada")
        );
        assert_eq!(
            run(
                "States.Format('{}|{}', $.a, $.b)",
                json!({"a": null, "b": 3.5})
            )
            .unwrap(),
            json!("null|3.5")
        );
        for bad in [
            "States.Format('Hello {', 'x')",
            "States.Format('}')",
            "States.Format('{} {}', 'x')",
            "States.Format('{}', 'x', 'y')",
        ] {
            let err = run(bad, json!({})).unwrap_err();
            assert_eq!(
                err.cause.as_deref(),
                Some("Invalid arguments in States.Format"),
                "{bad}"
            );
        }
    }

    #[test]
    fn hashes() {
        assert_eq!(
            run("States.Hash('input data', 'MD5')", json!({})).unwrap(),
            json!("812f45842bc6d66ee14572ce20db8e86")
        );
    }

    #[test]
    fn ranges_and_partitions() {
        assert_eq!(
            run("States.ArrayRange(0, 9, 3)", json!({})).unwrap(),
            json!([0, 3, 6, 9])
        );
        assert_eq!(
            run("States.ArrayPartition($.a, 2)", json!({"a": [1, 2, 3]})).unwrap(),
            json!([[1, 2], [3]])
        );
    }
}
