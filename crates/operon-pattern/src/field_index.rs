//! The per-path index of a matcher state: which outgoing edges a value
//! satisfies, answered with hash lookups (exact values, equals-ignore-case,
//! prefixes and suffixes probed once per distinct length) and short scans only
//! for operators that need them (numeric ranges, CIDR, wildcards, anything-but).

use crate::cidr::{IpRange, parse_ip};
use crate::event::Scalar;
use crate::fxhash::FxHashMap;
use crate::pattern::{AnythingBut, NumericRange, ValueMatcher};
use crate::wildcard::Wildcard;

pub(crate) type EdgeId = u32;

/// Everything the rules ask of the values at one path.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldIndex {
    /// The conditions and their matchers, kept to rebuild the index on removal.
    entries: Vec<(EdgeId, Vec<ValueMatcher>)>,
    exact_strings: FxHashMap<Box<str>, Vec<EdgeId>>,
    exact_number_values: FxHashMap<u64, Vec<EdgeId>>,
    exact_number_texts: FxHashMap<Box<str>, Vec<EdgeId>>,
    exact_true: Vec<EdgeId>,
    exact_false: Vec<EdgeId>,
    exact_null: Vec<EdgeId>,
    ignore_case: FxHashMap<Box<str>, Vec<EdgeId>>,
    prefixes: AffixIndex,
    prefixes_ignore_case: AffixIndex,
    suffixes: AffixIndex,
    suffixes_ignore_case: AffixIndex,
    ips: Vec<(IpRange, EdgeId)>,
    numeric: Vec<(NumericRange, EdgeId)>,
    wildcards: Vec<(Wildcard, EdgeId)>,
    exists: Vec<EdgeId>,
    anything_but: Vec<(AnythingBut, EdgeId)>,
    /// Whether any matcher compares numbers by value.
    pub(crate) needs_number_value: bool,
}

/// Prefixes (or suffixes) by their text, probed once per distinct length.
#[derive(Debug, Clone, Default)]
struct AffixIndex {
    by_text: FxHashMap<Box<[u8]>, Vec<EdgeId>>,
    lengths: Vec<usize>,
}

impl AffixIndex {
    fn insert(&mut self, text: &str, cond: EdgeId) {
        self.by_text
            .entry(text.as_bytes().into())
            .or_default()
            .push(cond);
        if let Err(at) = self.lengths.binary_search(&text.len()) {
            self.lengths.insert(at, text.len());
        }
    }

    fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    fn lookup(&self, value: &[u8], from_end: bool, leaf: u32, hits: &mut Vec<(EdgeId, u32)>) {
        for &len in &self.lengths {
            if len > value.len() {
                break;
            }
            let part = if from_end {
                &value[value.len() - len..]
            } else {
                &value[..len]
            };
            if let Some(conds) = self.by_text.get(part) {
                hits.extend(conds.iter().map(|&c| (c, leaf)));
            }
        }
    }
}

fn push_all(conds: &[EdgeId], leaf: u32, hits: &mut Vec<(EdgeId, u32)>) {
    hits.extend(conds.iter().map(|&c| (c, leaf)));
}

impl FieldIndex {
    pub(crate) fn insert(&mut self, cond: EdgeId, matchers: Vec<ValueMatcher>) {
        for matcher in &matchers {
            self.index_matcher(cond, matcher);
        }
        self.entries.push((cond, matchers));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn retain(&mut self, keep: impl Fn(EdgeId) -> bool) {
        let entries = std::mem::take(&mut self.entries);
        *self = FieldIndex::default();
        for (cond, matchers) in entries.into_iter().filter(|(c, _)| keep(*c)) {
            self.insert(cond, matchers);
        }
    }

    fn index_matcher(&mut self, cond: EdgeId, matcher: &ValueMatcher) {
        self.needs_number_value |= matches!(
            matcher,
            ValueMatcher::ExactNumber { value: Some(_), .. }
                | ValueMatcher::Numeric(_)
                | ValueMatcher::AnythingBut(AnythingBut::Numbers(_))
        );
        match matcher {
            ValueMatcher::ExactString(s) => self
                .exact_strings
                .entry(s.as_str().into())
                .or_default()
                .push(cond),
            ValueMatcher::ExactNumber { text, value } => {
                if let Some(v) = value {
                    self.exact_number_values
                        .entry(v.to_bits())
                        .or_default()
                        .push(cond);
                }
                self.exact_number_texts
                    .entry(text.as_str().into())
                    .or_default()
                    .push(cond);
            }
            ValueMatcher::ExactBool(true) => self.exact_true.push(cond),
            ValueMatcher::ExactBool(false) => self.exact_false.push(cond),
            ValueMatcher::ExactNull => self.exact_null.push(cond),
            ValueMatcher::Ip(range) => self.ips.push((*range, cond)),
            ValueMatcher::Prefix(p) => self.prefixes.insert(p, cond),
            ValueMatcher::PrefixIgnoreCase(p) => self.prefixes_ignore_case.insert(p, cond),
            ValueMatcher::Suffix(s) => self.suffixes.insert(s, cond),
            ValueMatcher::SuffixIgnoreCase(s) => self.suffixes_ignore_case.insert(s, cond),
            ValueMatcher::EqualsIgnoreCase(s) => self
                .ignore_case
                .entry(s.as_str().into())
                .or_default()
                .push(cond),
            ValueMatcher::Wildcard(w) => self.wildcards.push((w.clone(), cond)),
            ValueMatcher::Numeric(range) => self.numeric.push((*range, cond)),
            ValueMatcher::Exists(true) => self.exists.push(cond),
            ValueMatcher::Exists(false) => {}
            ValueMatcher::AnythingBut(but) => self.anything_but.push((but.clone(), cond)),
        }
    }

    /// Pushes (condition, leaf) for every condition this value satisfies.
    pub(crate) fn lookup(&self, value: &Scalar<'_>, leaf: u32, hits: &mut Vec<(EdgeId, u32)>) {
        push_all(&self.exists, leaf, hits);
        for (but, cond) in &self.anything_but {
            if !but.excludes(value) {
                hits.push((*cond, leaf));
            }
        }
        match value {
            Scalar::Str(s) => self.lookup_string(s, leaf, hits),
            Scalar::Number { text, value } => {
                if let Some(v) = value {
                    if let Some(conds) = self.exact_number_values.get(&v.to_bits()) {
                        push_all(conds, leaf, hits);
                    }
                    for (range, cond) in &self.numeric {
                        if range.contains(*v) {
                            hits.push((*cond, leaf));
                        }
                    }
                }
                if let Some(conds) = self.exact_number_texts.get(*text) {
                    push_all(conds, leaf, hits);
                }
            }
            Scalar::Bool(true) => push_all(&self.exact_true, leaf, hits),
            Scalar::Bool(false) => push_all(&self.exact_false, leaf, hits),
            Scalar::Null => push_all(&self.exact_null, leaf, hits),
        }
    }

    fn lookup_string(&self, s: &str, leaf: u32, hits: &mut Vec<(EdgeId, u32)>) {
        if let Some(conds) = self.exact_strings.get(s) {
            push_all(conds, leaf, hits);
        }
        self.prefixes.lookup(s.as_bytes(), false, leaf, hits);
        self.suffixes.lookup(s.as_bytes(), true, leaf, hits);
        if !self.ignore_case.is_empty()
            || !self.prefixes_ignore_case.is_empty()
            || !self.suffixes_ignore_case.is_empty()
        {
            let lower = s.to_lowercase();
            if let Some(conds) = self.ignore_case.get(lower.as_str()) {
                push_all(conds, leaf, hits);
            }
            self.prefixes_ignore_case
                .lookup(lower.as_bytes(), false, leaf, hits);
            self.suffixes_ignore_case
                .lookup(lower.as_bytes(), true, leaf, hits);
        }
        for (wildcard, cond) in &self.wildcards {
            if wildcard.matches(s.as_bytes()) {
                hits.push((*cond, leaf));
            }
        }
        if !self.ips.is_empty()
            && let Some(ip) = parse_ip(s)
        {
            hits.extend(
                self.ips
                    .iter()
                    .filter(|(r, _)| r.contains(ip))
                    .map(|&(_, c)| (c, leaf)),
            );
        }
    }
}
