//! Reading events: a streaming walk over the JSON text that materialises only
//! the values at field paths some rule uses.
//!
//! The walk validates the whole document (an invalid event is an error) but
//! decodes nothing it does not need: keys are compared as raw bytes against a
//! trie of the dotted field paths the rules use, and a value under a key no
//! rule looks at is skipped without being copied.

use std::fmt;
use std::ops::Range;

use crate::json::{
    MAX_DEPTH, read_string, scan_number, scan_string, skip_whitespace, syntax_error,
};
use crate::number::comparable;

/// An event that is not valid JSON, or not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid event: {} at line {}, column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for EventError {}

/// The fields every EventBridge event envelope carries.
pub const ENVELOPE_FIELDS: [&str; 6] = ["id", "account", "source", "time", "region", "detail-type"];

/// Checks what TestEventPattern and PutEvents require of an event: a JSON
/// object with the envelope fields. (Matching itself accepts any object.)
pub fn validate_event_envelope(text: &str) -> Result<(), EventError> {
    let json = crate::json::parse(text).map_err(|e| EventError {
        message: e.message,
        line: e.line,
        column: e.column,
    })?;
    let missing: Vec<&str> = ENVELOPE_FIELDS
        .iter()
        .copied()
        .filter(|f| json.get(f).is_none())
        .collect();
    if !matches!(json, crate::json::Json::Object(_)) {
        return Err(EventError {
            message: "the event must be a JSON object".into(),
            line: 1,
            column: 1,
        });
    }
    if !missing.is_empty() {
        return Err(EventError {
            message: format!("missing envelope fields: {}", missing.join(", ")),
            line: 1,
            column: 1,
        });
    }
    Ok(())
}

/// An event value as matchers see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    /// A number: its text, and its value if it can be compared (see `number`).
    Number {
        text: &'a str,
        value: Option<f64>,
    },
    Bool(bool),
    Null,
}

/// A leaf value found at a field path some rule uses.
#[derive(Debug)]
pub(crate) struct Leaf {
    pub(crate) path: u32,
    pub(crate) value: LeafValue,
    /// Range in the array-context arena: the (array id, element entry) pairs
    /// of every array enclosing this value, outermost first.
    pub(crate) context: (u32, u32),
}

/// A leaf value: ranges into the event text, so buffers outlive one event.
#[derive(Debug)]
pub(crate) enum LeafValue {
    /// A string without escapes: its content's byte range.
    Str(u32, u32),
    /// A string with escapes, decoded.
    Decoded(Box<str>),
    /// A number's byte range.
    Number(u32, u32),
    Bool(bool),
    Null,
}

impl LeafValue {
    /// The value as matchers see it; a number's double value is computed only
    /// when `with_number_value` (it costs more than the rest of the lookup).
    pub(crate) fn scalar<'t>(&'t self, text: &'t str, with_number_value: bool) -> Scalar<'t> {
        match self {
            LeafValue::Str(start, end) => Scalar::Str(&text[*start as usize..*end as usize]),
            LeafValue::Decoded(s) => Scalar::Str(s),
            LeafValue::Number(start, end) => {
                let number = &text[*start as usize..*end as usize];
                let value = if with_number_value {
                    comparable(number)
                } else {
                    None
                };
                Scalar::Number {
                    text: number,
                    value,
                }
            }
            LeafValue::Bool(b) => Scalar::Bool(*b),
            LeafValue::Null => Scalar::Null,
        }
    }
}

/// The dotted field paths rules use, as a trie over path segments.
/// Event keys containing dots walk several segments, so `{"a.b": 1}` and
/// `{"a": {"b": 1}}` both reach the path `a.b`, as in EventBridge.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    children: Vec<(Box<[u8]>, u32)>,
    path: Option<u32>,
}

const ROOT: u32 = 0;

impl PathTrie {
    pub(crate) fn new() -> PathTrie {
        PathTrie {
            nodes: vec![TrieNode::default()],
        }
    }

    pub(crate) fn insert(&mut self, path: &str, id: u32) {
        let mut node = ROOT;
        for segment in path.split('.') {
            node = match self.child(node, segment.as_bytes()) {
                Some(next) => next,
                None => {
                    let next = self.nodes.len() as u32;
                    self.nodes.push(TrieNode::default());
                    self.nodes[node as usize]
                        .children
                        .push((segment.as_bytes().into(), next));
                    next
                }
            };
        }
        self.nodes[node as usize].path = Some(id);
    }

    #[inline]
    fn child(&self, node: u32, segment: &[u8]) -> Option<u32> {
        self.nodes[node as usize]
            .children
            .iter()
            .find(|(k, _)| **k == *segment)
            .map(|&(_, n)| n)
    }

    /// Follows a (decoded) key from `node`, splitting it at dots.
    #[inline]
    fn follow(&self, node: u32, key: &[u8]) -> Option<u32> {
        if !key.contains(&b'.') {
            return self.child(node, key);
        }
        key.split(|&b| b == b'.')
            .try_fold(node, |n, segment| self.child(n, segment))
    }
}

/// Per-event buffers, reused between events.
#[derive(Debug, Default)]
pub(crate) struct Flattened {
    pub(crate) leaves: Vec<Leaf>,
    pub(crate) contexts: Vec<(u32, u32)>,
    stack: Vec<(u32, u32)>,
    arrays: u32,
    /// Per array id: the leaf indices of the whole array (start, end).
    array_extents: Vec<(u32, u32)>,
    /// Per array element (in a context pair, an element is named by its entry
    /// here, unique in the event): the leaf indices of the element. Leaves
    /// come in document order, so an element's leaves are one contiguous run.
    elements: Vec<(u32, u32)>,
}

impl Flattened {
    pub(crate) fn clear(&mut self) {
        self.leaves.clear();
        self.contexts.clear();
        self.stack.clear();
        self.arrays = 0;
        self.array_extents.clear();
        self.elements.clear();
    }

    /// The leaf indices of an element (as named in a context pair) and of its whole array.
    pub(crate) fn element_leaves(&self, array: u32, element: u32) -> (Range<u32>, Range<u32>) {
        let (start, end) = self.elements[element as usize];
        let (array_start, array_end) = self.array_extents[array as usize];
        (start..end, array_start..array_end)
    }

    pub(crate) fn context(&self, leaf: &Leaf) -> &[(u32, u32)] {
        &self.contexts[leaf.context.0 as usize..leaf.context.1 as usize]
    }
}

/// Whether two leaves can come from the same element of every array they share.
pub(crate) fn compatible(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x.0 != y.0 {
            return true;
        }
        if x.1 != y.1 {
            return false;
        }
    }
    true
}

/// Walks `text`, collecting the leaves at paths of `trie` into `out`.
pub(crate) fn flatten(text: &str, trie: &PathTrie, out: &mut Flattened) -> Result<(), EventError> {
    out.clear();
    let mut walker = Walker {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        trie,
    };
    walker.pos = skip_whitespace(walker.bytes, 0);
    if walker.bytes.get(walker.pos) != Some(&b'{') {
        return Err(walker.error("the event must be a JSON object"));
    }
    walker.object(Some(ROOT), 0, out)?;
    walker.pos = skip_whitespace(walker.bytes, walker.pos);
    if walker.pos != walker.bytes.len() {
        return Err(walker.error("unexpected text after the event"));
    }
    Ok(())
}

struct Walker<'a, 't> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    trie: &'t PathTrie,
}

impl<'a> Walker<'a, '_> {
    fn error(&self, message: &str) -> EventError {
        let e = syntax_error(self.text, self.pos, message);
        EventError {
            message: e.message,
            line: e.line,
            column: e.column,
        }
    }

    fn error_at(&mut self, at: usize, message: &str) -> EventError {
        self.pos = at;
        self.error(message)
    }

    /// A value at trie node `node` (None: no rule looks here, just validate).
    fn value(
        &mut self,
        node: Option<u32>,
        depth: usize,
        out: &mut Flattened,
    ) -> Result<(), EventError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(node, depth, out),
            Some(b'[') => self.array(node, depth, out),
            Some(b'"') => self.string(node, out),
            Some(b'-' | b'0'..=b'9') => self.number(node, out),
            Some(b't') => self.literal(b"true", node, LeafValue::Bool(true), out),
            Some(b'f') => self.literal(b"false", node, LeafValue::Bool(false), out),
            Some(b'n') => self.literal(b"null", node, LeafValue::Null, out),
            Some(_) => Err(self.error("unexpected character, expected a JSON value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn leaf_path(&self, node: Option<u32>) -> Option<u32> {
        node.and_then(|n| self.trie.nodes[n as usize].path)
    }

    fn push_leaf(&self, path: u32, value: LeafValue, out: &mut Flattened) {
        let start = out.contexts.len() as u32;
        out.contexts.extend_from_slice(&out.stack);
        let end = out.contexts.len() as u32;
        out.leaves.push(Leaf {
            path,
            value,
            context: (start, end),
        });
    }

    fn string(&mut self, node: Option<u32>, out: &mut Flattened) -> Result<(), EventError> {
        match self.leaf_path(node) {
            Some(path) => {
                let start = self.pos;
                let (end, escaped) = scan_string(self.bytes, start)
                    .map_err(|at| self.error_at(at, "invalid string"))?;
                let value = if escaped {
                    let (s, _) = read_string(self.bytes, start)
                        .map_err(|at| self.error_at(at, "invalid string"))?;
                    LeafValue::Decoded(s.into())
                } else {
                    if std::str::from_utf8(&self.bytes[start + 1..end - 1]).is_err() {
                        return Err(self.error("invalid UTF-8 in string"));
                    }
                    LeafValue::Str(start as u32 + 1, end as u32 - 1)
                };
                self.pos = end;
                self.push_leaf(path, value, out);
            }
            None => {
                let (end, _) = scan_string(self.bytes, self.pos)
                    .map_err(|at| self.error_at(at, "invalid string"))?;
                self.pos = end;
            }
        }
        Ok(())
    }

    fn number(&mut self, node: Option<u32>, out: &mut Flattened) -> Result<(), EventError> {
        let end =
            scan_number(self.bytes, self.pos).map_err(|at| self.error_at(at, "invalid number"))?;
        if let Some(path) = self.leaf_path(node) {
            self.push_leaf(path, LeafValue::Number(self.pos as u32, end as u32), out);
        }
        self.pos = end;
        Ok(())
    }

    fn literal(
        &mut self,
        word: &[u8],
        node: Option<u32>,
        value: LeafValue,
        out: &mut Flattened,
    ) -> Result<(), EventError> {
        if !self.bytes[self.pos..].starts_with(word) {
            return Err(self.error("unrecognized token"));
        }
        self.pos += word.len();
        if let Some(path) = self.leaf_path(node) {
            self.push_leaf(path, value, out);
        }
        Ok(())
    }

    fn array(
        &mut self,
        node: Option<u32>,
        depth: usize,
        out: &mut Flattened,
    ) -> Result<(), EventError> {
        self.pos = skip_whitespace(self.bytes, self.pos + 1);
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(());
        }
        let tracked = node.is_some();
        let array_id = out.arrays;
        if tracked {
            out.stack.push((array_id, 0));
            out.arrays += 1;
            out.array_extents.push((out.leaves.len() as u32, 0));
        }
        loop {
            let element = out.elements.len();
            if tracked && let Some(top) = out.stack.last_mut() {
                top.1 = element as u32;
                out.elements.push((out.leaves.len() as u32, 0));
            }
            self.value(node, depth + 1, out)?;
            if tracked {
                out.elements[element].1 = out.leaves.len() as u32;
            }
            self.pos = skip_whitespace(self.bytes, self.pos);
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos = skip_whitespace(self.bytes, self.pos + 1),
                Some(b']') => break,
                _ => return Err(self.error("expected ',' or ']' in array")),
            }
        }
        self.pos += 1;
        if tracked {
            out.stack.pop();
            out.array_extents[array_id as usize].1 = out.leaves.len() as u32;
        }
        Ok(())
    }

    fn object(
        &mut self,
        node: Option<u32>,
        depth: usize,
        out: &mut Flattened,
    ) -> Result<(), EventError> {
        self.pos = skip_whitespace(self.bytes, self.pos + 1);
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("expected a double-quoted field name"));
            }
            let child = self.key(node)?;
            self.pos = skip_whitespace(self.bytes, self.pos);
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error("expected ':' after field name"));
            }
            self.pos = skip_whitespace(self.bytes, self.pos + 1);
            self.value(child, depth + 1, out)?;
            self.pos = skip_whitespace(self.bytes, self.pos);
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos = skip_whitespace(self.bytes, self.pos + 1),
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected ',' or '}' in object")),
            }
        }
    }

    /// Reads a key and returns the trie node it leads to, if any.
    fn key(&mut self, node: Option<u32>) -> Result<Option<u32>, EventError> {
        let start = self.pos;
        let (end, escaped) =
            scan_string(self.bytes, start).map_err(|at| self.error_at(at, "invalid field name"))?;
        self.pos = end;
        let Some(node) = node else { return Ok(None) };
        if !escaped {
            return Ok(self.trie.follow(node, &self.bytes[start + 1..end - 1]));
        }
        let (key, _) =
            read_string(self.bytes, start).map_err(|at| self.error_at(at, "invalid field name"))?;
        Ok(self.trie.follow(node, key.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path id, value, array context) of each leaf.
    type Found = (u32, String, Vec<(u32, u32)>);

    fn leaves(text: &str, paths: &[&str]) -> Vec<Found> {
        let mut trie = PathTrie::new();
        for (i, p) in paths.iter().enumerate() {
            trie.insert(p, i as u32);
        }
        let mut out = Flattened::default();
        flatten(text, &trie, &mut out).unwrap();
        out.leaves
            .iter()
            .map(|l| {
                (
                    l.path,
                    format!("{:?}", l.value.scalar(text, true)),
                    out.context(l).to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn collects_only_used_paths_with_array_context() {
        let got = leaves(
            r#"{"a": {"b": [1, {"c": "x"}], "z": [true]}, "q": "skip"}"#,
            &["a.b", "a.b.c"],
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 0);
        assert_eq!(got[0].2, vec![(0, 0)]);
        assert_eq!(got[1].0, 1);
        assert_eq!(got[1].2, vec![(0, 1)]);
    }

    #[test]
    fn dotted_keys_reach_nested_paths() {
        assert_eq!(leaves(r#"{"a.b": 1}"#, &["a.b"]).len(), 1);
        assert_eq!(leaves(r#"{"a": {"b": 1}}"#, &["a.b"]).len(), 1);
    }

    #[test]
    fn rejects_invalid_events() {
        let trie = PathTrie::new();
        let mut out = Flattened::default();
        for bad in [
            "[1]",
            "\"s\"",
            "{\"a\": }",
            "{\"a\": 1",
            "{\"a\": tru}",
            "{\"a\": [1,]}",
            "{} x",
        ] {
            assert!(flatten(bad, &trie, &mut out).is_err(), "{bad}");
        }
    }
}
