//! Jayway-style JSONPath, the dialect Step Functions uses.
//!
//! Supported: `$`, `$$` (context object), `$name` (variables), `.field`,
//! `['field']`, `["a","b"]`, `[0]`, `[-1]`, `[0,2]`, `[*]`, `.*`, `[1:3:1]`,
//! `..field` / `..*` (deep scan), filters `[?(@.x > 1 && @.y == 'a')]`, and a
//! trailing `.length()`.
//!
//! A path is *definite* when it can only select one node; evaluating a definite
//! path yields that node or nothing, an indefinite one always yields an array.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// `$`: the state input (or whatever document the caller passes).
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Variable(String),
}

#[derive(Debug, Clone)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Fields(Vec<String>),
    Indexes(Vec<i64>),
    Descend(Box<Step>),
    Filter(Box<Filter>),
    Length,
}

#[derive(Debug, Clone)]
enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Not(Box<Filter>),
    Exists(Operand),
    Cmp(Operand, CmpOp, Operand),
}

#[derive(Debug, Clone)]
enum Operand {
    Current(Vec<Step>),
    Root(Vec<Step>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed path.
#[derive(Debug, Clone)]
pub struct JsonPath {
    source: String,
    root: Root,
    steps: Vec<Step>,
    definite: bool,
}

impl JsonPath {
    /// Parses a path; the error says what is wrong.
    pub fn parse(source: &str) -> Result<JsonPath, String> {
        let mut p = Parser {
            s: source.as_bytes(),
            i: 0,
            src: source,
        };
        let root = p.root()?;
        let steps = p.steps(false)?;
        if p.i != p.s.len() {
            return Err(format!(
                "unexpected character at position {} in path '{source}'",
                p.i
            ));
        }
        let definite = steps
            .iter()
            .all(|s| matches!(s, Step::Field(_) | Step::Index(_) | Step::Length));
        Ok(JsonPath {
            source: source.to_string(),
            root,
            steps,
            definite,
        })
    }

    /// The text the path was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The root the path starts at.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// True when the path selects at most one node.
    pub fn is_definite(&self) -> bool {
        self.definite
    }

    /// True when the path is a plain `$` (or `$$`, `$var`) with no steps.
    pub fn is_root_only(&self) -> bool {
        self.steps.is_empty()
    }

    /// True when the path can be used as a ResultPath (fields and indexes from `$`).
    pub fn is_reference_path(&self) -> bool {
        self.root == Root::Input
            && self
                .steps
                .iter()
                .all(|s| matches!(s, Step::Field(_) | Step::Index(_)))
    }

    /// Jayway's normalised form, e.g. `$['a']['b'][0]`, used in error causes.
    pub fn normalized(&self) -> String {
        let mut out = String::from("$");
        for s in &self.steps {
            match s {
                Step::Field(f) => out.push_str(&format!("['{f}']")),
                Step::Index(i) => out.push_str(&format!("[{i}]")),
                Step::Wildcard => out.push_str("[*]"),
                Step::Length => out.push_str(".length()"),
                _ => out.push_str("[?]"),
            }
        }
        out
    }

    /// Evaluates against `doc` (the document of this path's root). `None`
    /// means a definite path found nothing.
    pub fn eval<'a>(&self, doc: &'a Value) -> Option<Cow<'a, Value>> {
        if self.definite {
            return eval_definite(&self.steps, doc);
        }
        let mut found = Vec::new();
        if let Some((Step::Length, head)) = self.steps.split_last() {
            select(head, doc, doc, &mut found);
            return Some(Cow::Owned(Value::from(found.len())));
        }
        select(&self.steps, doc, doc, &mut found);
        Some(Cow::Owned(Value::Array(
            found.into_iter().cloned().collect(),
        )))
    }

    /// Writes `value` at this path inside `target` (ResultPath semantics):
    /// missing objects on the way are created.
    pub fn set(&self, target: &mut Value, value: Value) -> Result<(), String> {
        set_at(&self.steps, target, value)
    }
}

fn eval_definite<'a>(steps: &[Step], doc: &'a Value) -> Option<Cow<'a, Value>> {
    let mut cur = doc;
    for (n, step) in steps.iter().enumerate() {
        cur = match step {
            Step::Field(f) => cur.as_object()?.get(f)?,
            Step::Index(i) => {
                let arr = cur.as_array()?;
                arr.get(resolve_index(*i, arr.len())?)?
            }
            Step::Length if n + 1 == steps.len() => return length_of(cur).map(Cow::Owned),
            _ => return None,
        };
    }
    Some(Cow::Borrowed(cur))
}

fn length_of(v: &Value) -> Option<Value> {
    match v {
        Value::Array(a) => Some(Value::from(a.len())),
        Value::String(s) => Some(Value::from(s.chars().count())),
        Value::Object(o) => Some(Value::from(o.len())),
        _ => None,
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    if i >= 0 {
        let u = i as usize;
        (u < len).then_some(u)
    } else {
        let back = i.unsigned_abs() as usize;
        (back <= len).then(|| len - back)
    }
}

fn select<'a>(steps: &[Step], root: &'a Value, cur: &'a Value, out: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(cur);
        return;
    };
    match step {
        Step::Field(f) => {
            if let Some(v) = cur.as_object().and_then(|o| o.get(f)) {
                select(rest, root, v, out);
            }
        }
        Step::Index(i) => {
            if let Some(arr) = cur.as_array()
                && let Some(v) = resolve_index(*i, arr.len()).and_then(|u| arr.get(u))
            {
                select(rest, root, v, out);
            }
        }
        Step::Fields(fs) => {
            if let Some(o) = cur.as_object() {
                for f in fs {
                    if let Some(v) = o.get(f) {
                        select(rest, root, v, out);
                    }
                }
            }
        }
        Step::Indexes(is) => {
            if let Some(arr) = cur.as_array() {
                for i in is {
                    if let Some(v) = resolve_index(*i, arr.len()).and_then(|u| arr.get(u)) {
                        select(rest, root, v, out);
                    }
                }
            }
        }
        Step::Wildcard => {
            for v in children(cur) {
                select(rest, root, v, out);
            }
        }
        Step::Slice(a, b, c) => {
            if let Some(arr) = cur.as_array() {
                for u in slice_indexes(arr.len(), *a, *b, *c) {
                    select(rest, root, &arr[u], out);
                }
            }
        }
        Step::Descend(inner) => descend(inner, rest, root, cur, out),
        Step::Filter(f) => match cur {
            Value::Array(arr) => {
                for v in arr {
                    if filter_matches(f, root, v) {
                        select(rest, root, v, out);
                    }
                }
            }
            Value::Object(_) if filter_matches(f, root, cur) => select(rest, root, cur, out),
            _ => {}
        },
        Step::Length => {}
    }
}

fn descend<'a>(
    inner: &Step,
    rest: &[Step],
    root: &'a Value,
    cur: &'a Value,
    out: &mut Vec<&'a Value>,
) {
    let mut with_inner = Vec::with_capacity(rest.len() + 1);
    with_inner.push(inner.clone());
    with_inner.extend_from_slice(rest);
    let mut stack = vec![cur];
    while let Some(node) = stack.pop() {
        select(&with_inner, root, node, out);
        let kids: Vec<&Value> = children(node).collect();
        stack.extend(kids.into_iter().rev());
    }
}

fn children(v: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => Box::new(std::iter::empty()),
    }
}

fn slice_indexes(len: usize, a: Option<i64>, b: Option<i64>, c: Option<i64>) -> Vec<usize> {
    let len_i = len as i64;
    let step = c.unwrap_or(1);
    if step <= 0 {
        return Vec::new();
    }
    let norm = |x: i64| {
        if x < 0 {
            (len_i + x).max(0)
        } else {
            x.min(len_i)
        }
    };
    let start = norm(a.unwrap_or(0));
    let end = norm(b.unwrap_or(len_i));
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        out.push(i as usize);
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    out
}

fn filter_matches(f: &Filter, root: &Value, cur: &Value) -> bool {
    match f {
        Filter::Or(v) => v.iter().any(|x| filter_matches(x, root, cur)),
        Filter::And(v) => v.iter().all(|x| filter_matches(x, root, cur)),
        Filter::Not(x) => !filter_matches(x, root, cur),
        Filter::Exists(op) => operand(op, root, cur).is_some(),
        Filter::Cmp(l, op, r) => match (operand(l, root, cur), operand(r, root, cur)) {
            (Some(a), Some(b)) => compare(&a, *op, &b),
            _ => false,
        },
    }
}

fn operand<'a>(op: &'a Operand, root: &'a Value, cur: &'a Value) -> Option<Cow<'a, Value>> {
    match op {
        Operand::Literal(v) => Some(Cow::Borrowed(v)),
        Operand::Current(steps) => eval_definite(steps, cur),
        Operand::Root(steps) => eval_definite(steps, root),
    }
}

fn compare(a: &Value, op: CmpOp, b: &Value) -> bool {
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => {
            if a == b {
                Some(Ordering::Equal)
            } else {
                None
            }
        }
    };
    match op {
        CmpOp::Eq => ord == Some(Ordering::Equal),
        CmpOp::Ne => ord != Some(Ordering::Equal),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

fn set_at(steps: &[Step], target: &mut Value, value: Value) -> Result<(), String> {
    let Some((step, rest)) = steps.split_first() else {
        *target = value;
        return Ok(());
    };
    match step {
        Step::Field(f) => {
            if target.is_null() && !rest.is_empty() {
                *target = Value::Object(Map::new());
            }
            let Value::Object(obj) = target else {
                return Err(format!("cannot set field '{f}' on a non-object value"));
            };
            if rest.is_empty() {
                obj.insert(f.clone(), value);
                return Ok(());
            }
            let child = obj
                .entry(f.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            set_at(rest, child, value)
        }
        Step::Index(i) => {
            let Value::Array(arr) = target else {
                return Err(format!("cannot set index {i} on a non-array value"));
            };
            let len = arr.len();
            let u = resolve_index(*i, len).ok_or_else(|| format!("index {i} out of bounds"))?;
            set_at(rest, &mut arr[u], value)
        }
        _ => Err("path is not a reference path".to_string()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    src: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!(
            "{what} at position {} in path '{}'",
            self.i, self.src
        ))
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn root(&mut self) -> Result<Root, String> {
        if !self.eat(b'$') {
            return self.err("a path must start with '$'");
        }
        if self.eat(b'$') {
            return Ok(Root::Context);
        }
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
                self.i += 1;
            } else {
                break;
            }
        }
        if self.i > start {
            return Ok(Root::Variable(self.src[start..self.i].to_string()));
        }
        Ok(Root::Input)
    }

    /// Steps until the end (or, inside a filter, until a character that cannot continue a path).
    fn steps(&mut self, in_filter: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some(b'.') => {
                    self.i += 1;
                    if self.eat(b'.') {
                        let inner = if self.peek() == Some(b'[') {
                            self.bracket()?
                        } else {
                            self.dot_name()?
                        };
                        steps.push(Step::Descend(Box::new(inner)));
                    } else {
                        let st = self.dot_name()?;
                        steps.push(st);
                    }
                }
                Some(b'[') => steps.push(self.bracket()?),
                Some(_) if in_filter => break,
                Some(_) => return self.err("unexpected character"),
            }
        }
        if let Some(pos) = steps.iter().position(|s| matches!(s, Step::Length))
            && pos + 1 != steps.len()
        {
            return self.err("length() must be the last step");
        }
        Ok(steps)
    }

    fn dot_name(&mut self) -> Result<Step, String> {
        if self.eat(b'*') {
            return Ok(Step::Wildcard);
        }
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(
                c,
                b'.' | b'[' | b' ' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b',' | b']'
            ) {
                break;
            }
            if c == b'(' {
                if self.src[start..].starts_with("length()") {
                    self.i = start + "length()".len();
                    return Ok(Step::Length);
                }
                return self.err("unsupported function");
            }
            self.i += 1;
        }
        if self.i == start {
            return self.err("expected a field name");
        }
        Ok(Step::Field(self.src[start..self.i].to_string()))
    }

    fn bracket(&mut self) -> Result<Step, String> {
        self.i += 1; // '['
        self.skip_ws();
        let step = match self.peek() {
            Some(b'*') => {
                self.i += 1;
                Step::Wildcard
            }
            Some(b'?') => {
                self.i += 1;
                self.skip_ws();
                if !self.eat(b'(') {
                    return self.err("expected '(' after '?'");
                }
                let f = self.filter_or()?;
                self.skip_ws();
                if !self.eat(b')') {
                    return self.err("expected ')'");
                }
                Step::Filter(Box::new(f))
            }
            Some(b'\'' | b'"') => {
                let mut names = vec![self.quoted()?];
                self.skip_ws();
                while self.eat(b',') {
                    self.skip_ws();
                    names.push(self.quoted()?);
                    self.skip_ws();
                }
                if names.len() == 1 {
                    Step::Field(names.remove(0))
                } else {
                    Step::Fields(names)
                }
            }
            _ => self.index_or_slice()?,
        };
        self.skip_ws();
        if !self.eat(b']') {
            return self.err("expected ']'");
        }
        Ok(step)
    }

    fn index_or_slice(&mut self) -> Result<Step, String> {
        let first = self.opt_int()?;
        self.skip_ws();
        if self.peek() == Some(b':') {
            self.i += 1;
            let end = self.opt_int()?;
            let step = if self.eat(b':') {
                self.opt_int()?
            } else {
                None
            };
            return Ok(Step::Slice(first, end, step));
        }
        let Some(first) = first else {
            return self.err("expected an index");
        };
        let mut idx = vec![first];
        while self.eat(b',') {
            self.skip_ws();
            match self.opt_int()? {
                Some(n) => idx.push(n),
                None => return self.err("expected an index"),
            }
            self.skip_ws();
        }
        Ok(if idx.len() == 1 {
            Step::Index(idx[0])
        } else {
            Step::Indexes(idx)
        })
    }

    fn opt_int(&mut self) -> Result<Option<i64>, String> {
        self.skip_ws();
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        if self.i == start {
            return Ok(None);
        }
        match self.src[start..self.i].parse::<i64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => self.err("invalid integer"),
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        let Some(q) = self.peek() else {
            return self.err("expected a quoted name");
        };
        if q != b'\'' && q != b'"' {
            return self.err("expected a quoted name");
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.i..].chars().next() else {
                return self.err("unterminated string");
            };
            self.i += c.len_utf8();
            if c as u32 == q as u32 {
                return Ok(out);
            }
            if c == '\\' {
                let Some(n) = self.src[self.i..].chars().next() else {
                    return self.err("unterminated string");
                };
                self.i += n.len_utf8();
                out.push(n);
            } else {
                out.push(c);
            }
        }
    }

    fn filter_or(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.filter_and()?];
        loop {
            self.skip_ws();
            if self.src[self.i..].starts_with("||") {
                self.i += 2;
                parts.push(self.filter_and()?);
            } else {
                break;
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn filter_and(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.filter_unary()?];
        loop {
            self.skip_ws();
            if self.src[self.i..].starts_with("&&") {
                self.i += 2;
                parts.push(self.filter_unary()?);
            } else {
                break;
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn filter_unary(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        if self.peek() == Some(b'!') && self.s.get(self.i + 1) != Some(&b'=') {
            self.i += 1;
            return Ok(Filter::Not(Box::new(self.filter_unary()?)));
        }
        if self.eat(b'(') {
            let f = self.filter_or()?;
            self.skip_ws();
            if !self.eat(b')') {
                return self.err("expected ')'");
            }
            return Ok(f);
        }
        let left = self.operand()?;
        self.skip_ws();
        let rest = &self.src[self.i..];
        let op = [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ]
        .into_iter()
        .find(|(t, _)| rest.starts_with(t));
        let Some((tok, op)) = op else {
            return Ok(Filter::Exists(left));
        };
        self.i += tok.len();
        let right = self.operand()?;
        Ok(Filter::Cmp(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') => {
                self.i += 1;
                Ok(Operand::Current(self.steps(true)?))
            }
            Some(b'$') => {
                self.i += 1;
                Ok(Operand::Root(self.steps(true)?))
            }
            Some(b'\'' | b'"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            _ => self.literal(),
        }
    }

    fn literal(&mut self) -> Result<Operand, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.') {
                self.i += 1;
            } else {
                break;
            }
        }
        let word = &self.src[start..self.i];
        let v = match word {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => match serde_json::from_str::<Value>(word) {
                Ok(v @ Value::Number(_)) => v,
                _ => return self.err("expected a literal"),
            },
        };
        Ok(Operand::Literal(v))
    }
}

/// True when `s` looks like a path Step Functions would evaluate (`$...`).
pub fn is_path_like(s: &str) -> bool {
    s.starts_with('$')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(p: &str, v: &Value) -> Option<Value> {
        JsonPath::parse(p).unwrap().eval(v).map(|c| c.into_owned())
    }

    #[test]
    fn basic_paths() {
        let v = json!({"a": {"b": [1, 2, 3]}, "x-y": 5, "users": [{"s": 0}, {"s": 1}]});
        assert_eq!(ev("$.a.b[0]", &v), Some(json!(1)));
        assert_eq!(ev("$.a.b[-1]", &v), Some(json!(3)));
        assert_eq!(ev("$['x-y']", &v), Some(json!(5)));
        assert_eq!(ev("$.x-y", &v), Some(json!(5)));
        assert_eq!(ev("$.a.b[*]", &v), Some(json!([1, 2, 3])));
        assert_eq!(ev("$.a.b[0:2]", &v), Some(json!([1, 2])));
        assert_eq!(ev("$.users[?(@.s == 0)]", &v), Some(json!([{"s": 0}])));
        assert_eq!(ev("$..s", &v), Some(json!([0, 1])));
        assert_eq!(ev("$.a.b.length()", &v), Some(json!(3)));
        assert_eq!(ev("$.nope", &v), None);
        assert_eq!(ev("$[*]", &json!({})), Some(json!([])));
    }

    #[test]
    fn normalized_form() {
        assert_eq!(
            JsonPath::parse("$.a.b[0]").unwrap().normalized(),
            "$['a']['b'][0]"
        );
    }

    #[test]
    fn set_creates_objects() {
        let mut v = json!({"a": 1});
        JsonPath::parse("$.b.c")
            .unwrap()
            .set(&mut v, json!(2))
            .unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
    }
}
