//! Many rules compiled into one matcher.
//!
//! Each rule's pattern is split into branches (its `$or` alternatives, and the
//! two sides of any field list mixing `exists: false` with other matchers).
//! A branch is a set of *conditions*: "some value at path P satisfies one of
//! these matchers" (positive) or "no value at path P" (absent).
//!
//! Every positive condition is registered in the [`FieldIndex`] of its path,
//! which answers "which conditions does this value satisfy" with hash lookups
//! (exact values, equals-ignore-case, prefixes and suffixes by length) and
//! short scans only for the operators that need them (numeric ranges, CIDR,
//! wildcards, anything-but). Matching an event:
//!
//! 1. walk the event JSON once, keeping only values at paths some rule uses;
//! 2. look each value up in its path's index, collecting (condition, value) hits;
//! 3. sort the hits: the conditions of one branch are numbered consecutively, so
//!    a branch whose positive conditions all have hits is found in one pass;
//! 4. confirm such a branch: its absent paths must have no value, and values
//!    taken from arrays of objects must come from the same array element
//!    (event-ruler's array-consistent matching), found by a small search.
//!
//! The work is proportional to the number of values at used paths and the hits
//! they produce, not to the number of rules.

use std::collections::HashMap;
use std::hash::Hash;

use crate::cidr::{IpRange, parse_ip};
use crate::event::{EventError, Flattened, Leaf, PathTrie, Scalar, compatible, flatten};
use crate::fxhash::FxHashMap;
use crate::pattern::{AnythingBut, NumericRange, Pattern, ValueMatcher};
use crate::wildcard::Wildcard;

type CondId = u32;
type PathId = u32;
type BranchId = u32;
type Slot = u32;

/// Rules compiled for matching. `R` is the caller's rule identifier.
#[derive(Debug, Clone)]
pub struct Matcher<R = String> {
    slots_by_rule: HashMap<R, Slot>,
    slots: Vec<Option<RuleEntry<R>>>,
    free_slots: Vec<Slot>,
    branches: Vec<BranchInfo>,
    conditions: Vec<ConditionInfo>,
    path_ids: HashMap<String, PathId>,
    fields: Vec<FieldIndex>,
    trie: PathTrie,
    /// Branches with no positive condition: checked for every event.
    absence_only: Vec<BranchId>,
}

#[derive(Debug, Clone)]
struct RuleEntry<R> {
    id: R,
    branches: Vec<BranchId>,
}

#[derive(Debug, Clone)]
struct BranchInfo {
    slot: Slot,
    alive: bool,
    positive_count: u32,
    absent_paths: Vec<PathId>,
}

#[derive(Debug, Clone, Copy)]
struct ConditionInfo {
    branch: BranchId,
    path: PathId,
}

/// Reusable buffers for [`Matcher::matches_with`].
#[derive(Debug, Default)]
pub struct Scratch {
    flat: Flattened,
    hits: Vec<(CondId, u32)>,
    chosen: Vec<u32>,
    slots: Vec<Slot>,
    by_path: Vec<(PathId, u32)>,
}

/// A branch of a rule, ready to be indexed: positive conditions and absent paths.
struct BranchSpec {
    positive: Vec<(String, Vec<ValueMatcher>)>,
    absent: Vec<String>,
}

impl<R: Clone + Eq + Hash> Default for Matcher<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Clone + Eq + Hash> Matcher<R> {
    pub fn new() -> Self {
        Matcher {
            slots_by_rule: HashMap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            branches: Vec::new(),
            conditions: Vec::new(),
            path_ids: HashMap::new(),
            fields: Vec::new(),
            trie: PathTrie::new(),
            absence_only: Vec::new(),
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.slots_by_rule.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots_by_rule.is_empty()
    }

    /// Adds a rule (replacing any rule with the same id).
    pub fn add(&mut self, rule_id: R, pattern: &Pattern) {
        self.remove(&rule_id);
        let slot = self.free_slots.pop().unwrap_or(self.slots.len() as Slot);
        let mut branch_ids = Vec::new();
        for spec in pattern.branches.iter().flat_map(split_absence) {
            branch_ids.push(self.add_branch(slot, spec));
        }
        let entry = RuleEntry {
            id: rule_id.clone(),
            branches: branch_ids,
        };
        if slot as usize == self.slots.len() {
            self.slots.push(Some(entry));
        } else {
            self.slots[slot as usize] = Some(entry);
        }
        self.slots_by_rule.insert(rule_id, slot);
    }

    /// Parses `pattern_json` and adds it as a rule.
    pub fn add_json(&mut self, rule_id: R, pattern_json: &str) -> Result<(), crate::PatternError> {
        let pattern = Pattern::parse(pattern_json)?;
        self.add(rule_id, &pattern);
        Ok(())
    }

    /// Removes a rule; returns whether it was present. Rebuilds only the
    /// indexes of the paths the rule used.
    pub fn remove(&mut self, rule_id: &R) -> bool {
        let Some(slot) = self.slots_by_rule.remove(rule_id) else {
            return false;
        };
        let Some(entry) = self.slots[slot as usize].take() else {
            return false;
        };
        let mut touched: Vec<PathId> = Vec::new();
        for &branch in &entry.branches {
            self.branches[branch as usize].alive = false;
        }
        for condition in &self.conditions {
            if entry.branches.contains(&condition.branch) {
                touched.push(condition.path);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for path in touched {
            let branches = &self.branches;
            let conditions = &self.conditions;
            self.fields[path as usize]
                .retain(|cond| branches[conditions[cond as usize].branch as usize].alive);
        }
        self.absence_only
            .retain(|&b| self.branches[b as usize].alive);
        self.free_slots.push(slot);
        true
    }

    fn path_id(&mut self, path: &str) -> PathId {
        if let Some(&id) = self.path_ids.get(path) {
            return id;
        }
        let id = self.fields.len() as PathId;
        self.fields.push(FieldIndex::default());
        self.path_ids.insert(path.to_string(), id);
        self.trie.insert(path, id);
        id
    }

    fn add_branch(&mut self, slot: Slot, spec: BranchSpec) -> BranchId {
        let branch = self.branches.len() as BranchId;
        let absent_paths = spec.absent.iter().map(|p| self.path_id(p)).collect();
        self.branches.push(BranchInfo {
            slot,
            alive: true,
            positive_count: spec.positive.len() as u32,
            absent_paths,
        });
        for (path, matchers) in spec.positive {
            let path = self.path_id(&path);
            let cond = self.conditions.len() as CondId;
            self.conditions.push(ConditionInfo { branch, path });
            self.fields[path as usize].insert(cond, matchers);
        }
        if self.branches[branch as usize].positive_count == 0 {
            self.absence_only.push(branch);
        }
        branch
    }

    /// The ids of the rules `event_json` matches (in no particular order).
    pub fn matches(&self, event_json: &str) -> Result<Vec<&R>, EventError> {
        self.matches_with(event_json, &mut Scratch::default())
    }

    /// Like [`Matcher::matches`], reusing `scratch` between calls.
    pub fn matches_with<'s>(
        &'s self,
        event_json: &str,
        scratch: &mut Scratch,
    ) -> Result<Vec<&'s R>, EventError> {
        self.match_slots(event_json, scratch)?;
        Ok(scratch
            .slots
            .iter()
            .filter_map(|&s| self.rule_id(s))
            .collect())
    }

    /// Calls `on_match` with the id of every rule `event_json` matches,
    /// allocating nothing once `scratch` has grown.
    pub fn for_each_match<'s>(
        &'s self,
        event_json: &str,
        scratch: &mut Scratch,
        mut on_match: impl FnMut(&'s R),
    ) -> Result<(), EventError> {
        self.match_slots(event_json, scratch)?;
        scratch
            .slots
            .iter()
            .filter_map(|&s| self.rule_id(s))
            .for_each(&mut on_match);
        Ok(())
    }

    fn rule_id(&self, slot: Slot) -> Option<&R> {
        self.slots[slot as usize].as_ref().map(|e| &e.id)
    }

    /// Matches a serde_json value (serialised, then matched as text).
    pub fn matches_value(&self, event: &serde_json::Value) -> Result<Vec<&R>, EventError> {
        self.matches(&event.to_string())
    }

    /// Leaves the matched rule slots, sorted and unique, in `scratch.slots`.
    fn match_slots(&self, event_json: &str, scratch: &mut Scratch) -> Result<(), EventError> {
        flatten(event_json, &self.trie, &mut scratch.flat)?;
        scratch.hits.clear();
        scratch.slots.clear();
        for (i, leaf) in scratch.flat.leaves.iter().enumerate() {
            let field = &self.fields[leaf.path as usize];
            field.lookup(
                &leaf.value.scalar(event_json, field.needs_number_value),
                i as u32,
                &mut scratch.hits,
            );
        }
        if scratch.hits.is_empty() && self.absence_only.is_empty() {
            return Ok(());
        }
        scratch.hits.sort_unstable();
        scratch.hits.dedup();
        scratch.by_path.clear();
        scratch.by_path.extend(
            scratch
                .flat
                .leaves
                .iter()
                .enumerate()
                .map(|(i, l)| (l.path, i as u32)),
        );
        scratch.by_path.sort_unstable();
        self.collect_branch_matches(scratch);
        for &branch in &self.absence_only {
            let info = &self.branches[branch as usize];
            if info
                .absent_paths
                .iter()
                .all(|&p| leaves_at(&scratch.by_path, p).is_empty())
            {
                scratch.slots.push(info.slot);
            }
        }
        scratch.slots.sort_unstable();
        scratch.slots.dedup();
        Ok(())
    }

    fn collect_branch_matches(&self, scratch: &mut Scratch) {
        let Scratch {
            flat,
            hits,
            chosen,
            slots,
            by_path,
        } = scratch;
        let mut start = 0;
        while start < hits.len() {
            let branch = self.conditions[hits[start].0 as usize].branch;
            let mut end = start;
            let mut distinct = 0;
            let mut last_cond = CondId::MAX;
            while end < hits.len() && self.conditions[hits[end].0 as usize].branch == branch {
                if hits[end].0 != last_cond {
                    distinct += 1;
                    last_cond = hits[end].0;
                }
                end += 1;
            }
            let info = &self.branches[branch as usize];
            if info.alive
                && distinct == info.positive_count
                && branch_holds(info, &hits[start..end], flat, by_path, chosen)
            {
                slots.push(info.slot);
            }
            start = end;
        }
    }
}

/// The leaves (indices) at `path`, from the (path, leaf) list sorted by path.
fn leaves_at(by_path: &[(PathId, u32)], path: PathId) -> &[(PathId, u32)] {
    let start = by_path.partition_point(|&(p, _)| p < path);
    let end = by_path.partition_point(|&(p, _)| p <= path);
    &by_path[start..end]
}

/// Confirms a branch whose positive conditions all have hits.
fn branch_holds(
    info: &BranchInfo,
    hits: &[(CondId, u32)],
    flat: &Flattened,
    by_path: &[(PathId, u32)],
    chosen: &mut Vec<u32>,
) -> bool {
    let leaf = |i: u32| -> &Leaf { &flat.leaves[i as usize] };
    let single_condition = info.positive_count == 1 && info.absent_paths.is_empty();
    if single_condition
        || hits
            .iter()
            .all(|&(_, l)| leaf(l).context.0 == leaf(l).context.1)
    {
        return info
            .absent_paths
            .iter()
            .all(|&p| leaves_at(by_path, p).is_empty());
    }
    let groups: Vec<&[(CondId, u32)]> = hits.chunk_by(|a, b| a.0 == b.0).collect();
    chosen.clear();
    let mut budget = 100_000u32;
    consistent_choice(&groups, chosen, flat, info, by_path, &mut budget)
}

/// Depth-first search for one value per condition, all from the same array
/// elements, with no value at an absent path in those elements.
fn consistent_choice(
    groups: &[&[(CondId, u32)]],
    chosen: &mut Vec<u32>,
    flat: &Flattened,
    info: &BranchInfo,
    by_path: &[(PathId, u32)],
    budget: &mut u32,
) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let context = |i: u32| flat.context(&flat.leaves[i as usize]);
    let Some((group, rest)) = groups.split_first() else {
        return info.absent_paths.iter().all(|&p| {
            leaves_at(by_path, p)
                .iter()
                .all(|&(_, l)| !chosen.iter().all(|&c| compatible(context(c), context(l))))
        });
    };
    for &(_, candidate) in group.iter() {
        if chosen
            .iter()
            .all(|&c| compatible(context(c), context(candidate)))
        {
            chosen.push(candidate);
            if consistent_choice(rest, chosen, flat, info, by_path, budget) {
                return true;
            }
            chosen.pop();
        }
    }
    false
}

/// Splits a branch into positive conditions and absent paths; a field whose
/// list mixes `exists: false` with other matchers becomes two branches.
fn split_absence(branch: &crate::pattern::Branch) -> Vec<BranchSpec> {
    let mut specs = vec![BranchSpec {
        positive: Vec::new(),
        absent: Vec::new(),
    }];
    for field in &branch.fields {
        let wants_absence = field.matchers.contains(&ValueMatcher::Exists(false));
        let positive: Vec<ValueMatcher> = field
            .matchers
            .iter()
            .filter(|m| **m != ValueMatcher::Exists(false))
            .cloned()
            .collect();
        let mut next = Vec::new();
        for spec in specs {
            if !positive.is_empty() {
                let mut with_value = BranchSpec {
                    positive: spec.positive.clone(),
                    absent: spec.absent.clone(),
                };
                with_value
                    .positive
                    .push((field.path.clone(), positive.clone()));
                next.push(with_value);
            }
            if wants_absence {
                let mut without = spec;
                without.absent.push(field.path.clone());
                next.push(without);
            }
        }
        specs = next;
    }
    specs
}

/// Everything the rules ask of the values at one path.
#[derive(Debug, Clone, Default)]
struct FieldIndex {
    /// The conditions and their matchers, kept to rebuild the index on removal.
    entries: Vec<(CondId, Vec<ValueMatcher>)>,
    exact_strings: FxHashMap<Box<str>, Vec<CondId>>,
    exact_number_values: FxHashMap<u64, Vec<CondId>>,
    exact_number_texts: FxHashMap<Box<str>, Vec<CondId>>,
    exact_true: Vec<CondId>,
    exact_false: Vec<CondId>,
    exact_null: Vec<CondId>,
    ignore_case: FxHashMap<Box<str>, Vec<CondId>>,
    prefixes: AffixIndex,
    prefixes_ignore_case: AffixIndex,
    suffixes: AffixIndex,
    suffixes_ignore_case: AffixIndex,
    ips: Vec<(IpRange, CondId)>,
    numeric: Vec<(NumericRange, CondId)>,
    wildcards: Vec<(Wildcard, CondId)>,
    exists: Vec<CondId>,
    anything_but: Vec<(AnythingBut, CondId)>,
    /// Whether any matcher compares numbers by value.
    needs_number_value: bool,
}

/// Prefixes (or suffixes) by their text, probed once per distinct length.
#[derive(Debug, Clone, Default)]
struct AffixIndex {
    by_text: FxHashMap<Box<[u8]>, Vec<CondId>>,
    lengths: Vec<usize>,
}

impl AffixIndex {
    fn insert(&mut self, text: &str, cond: CondId) {
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

    fn lookup(&self, value: &[u8], from_end: bool, leaf: u32, hits: &mut Vec<(CondId, u32)>) {
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

fn push_all(conds: &[CondId], leaf: u32, hits: &mut Vec<(CondId, u32)>) {
    hits.extend(conds.iter().map(|&c| (c, leaf)));
}

impl FieldIndex {
    fn insert(&mut self, cond: CondId, matchers: Vec<ValueMatcher>) {
        for matcher in &matchers {
            self.index_matcher(cond, matcher);
        }
        self.entries.push((cond, matchers));
    }

    fn retain(&mut self, keep: impl Fn(CondId) -> bool) {
        let entries = std::mem::take(&mut self.entries);
        *self = FieldIndex::default();
        for (cond, matchers) in entries.into_iter().filter(|(c, _)| keep(*c)) {
            self.insert(cond, matchers);
        }
    }

    fn index_matcher(&mut self, cond: CondId, matcher: &ValueMatcher) {
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
    fn lookup(&self, value: &Scalar<'_>, leaf: u32, hits: &mut Vec<(CondId, u32)>) {
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

    fn lookup_string(&self, s: &str, leaf: u32, hits: &mut Vec<(CondId, u32)>) {
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

impl Pattern {
    /// Whether this pattern matches `event_json` (for one-off tests; use a
    /// [`Matcher`] for many rules).
    pub fn matches(&self, event_json: &str) -> Result<bool, EventError> {
        let mut matcher: Matcher<()> = Matcher::new();
        matcher.add((), self);
        Ok(!matcher.matches(event_json)?.is_empty())
    }
}
