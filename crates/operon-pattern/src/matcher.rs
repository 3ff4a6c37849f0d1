//! Many rules compiled into one state machine.
//!
//! Each rule's pattern is split into branches (its `$or` alternatives, and the
//! two sides of any field list mixing `exists: false` with other matchers).
//! A branch is a sequence of positive conditions ("some value at path P
//! satisfies one of these matchers"), sorted by path, plus absent paths ("no
//! value at path P").
//!
//! As in aws/event-ruler, branches become paths through a state machine: from
//! the start state, an *edge* per condition leads to the next state, and equal
//! conditions at the same state share one edge. Thousands of rules that all
//! begin with `"source": ["aws.ec2"]` share that first edge, and the state it
//! leads to indexes their next conditions. Each state keeps, per field path,
//! a [`FieldIndex`] answering "which edges does this value satisfy" with hash
//! lookups for most operators.
//!
//! Matching an event:
//!
//! 1. walk the event JSON once, keeping only values at paths some rule uses;
//! 2. starting from the start state, look up the values at each path the
//!    current state has edges on, and follow the satisfied edges;
//! 3. in a state where branches end, confirm each: its absent paths must have
//!    no value (in the array elements already chosen).
//!
//! A step carries the array elements its values came from: a value from a
//! different element of an array already used is not combined with it
//! (event-ruler's array-consistent matching). The work follows the event's
//! size and the edges it actually satisfies, not the number of rules.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;

use crate::event::{EventError, Flattened, LeafValue, PathTrie, Scalar, flatten};
use crate::field_index::{EdgeId, FieldIndex};
use crate::number::comparable;
use crate::pattern::{Branch, Pattern, ValueMatcher};

type PathId = u32;
type StateId = u32;
type BranchId = u32;
type Slot = u32;

const START: StateId = 0;

/// Upper bound on the steps one event may take through the machine; only
/// events with large arrays matched by several conditions of one rule can
/// approach it. Past it, remaining alternatives are not explored.
const MAX_STEPS_PER_EVENT: usize = 1_000_000;

/// Rules compiled for matching. `R` is the caller's rule identifier.
#[derive(Debug, Clone)]
pub struct Matcher<R = String> {
    slots_by_rule: HashMap<R, Slot>,
    slots: Vec<Option<RuleEntry<R>>>,
    free_slots: Vec<Slot>,
    branches: Vec<BranchInfo>,
    states: Vec<State>,
    edges: Vec<Edge>,
    edges_by_key: HashMap<(StateId, PathId, String), EdgeId>,
    path_ids: HashMap<String, PathId>,
    /// Whether some matcher on the path compares numbers by value.
    path_needs_number: Vec<bool>,
    trie: PathTrie,
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
    edges: Vec<EdgeId>,
    end: StateId,
    absent_paths: Vec<PathId>,
}

#[derive(Debug, Clone, Default)]
struct State {
    /// Outgoing edges, indexed per field path.
    transitions: Vec<(PathId, FieldIndex)>,
    /// Branches that are complete in this state.
    ending: Vec<BranchId>,
    /// Paths some branch through this state still looks at after it (its later
    /// conditions and its absent paths); never shrinks, so it may be a superset.
    future_paths: Vec<PathId>,
}

#[derive(Debug, Clone)]
struct Edge {
    from: StateId,
    path: PathId,
    to: StateId,
    key: String,
    uses: u32,
}

/// Reusable buffers for [`Matcher::matches_with`] and [`Matcher::for_each_match`].
#[derive(Debug, Default)]
pub struct Scratch {
    flat: Flattened,
    numbers: Vec<Option<f64>>,
    by_path: Vec<(PathId, u32)>,
    /// Pending steps: a state and the array elements chosen so far (a range of `chosen`).
    steps: Vec<(StateId, u32, u32)>,
    chosen: Vec<(u32, u32)>,
    visited_plain: Vec<StateId>,
    edge_hits: Vec<(EdgeId, u32)>,
    slots: Vec<Slot>,
}

/// A branch ready to be compiled: conditions sorted by path, and absent paths.
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
            states: vec![State::default()],
            edges: Vec::new(),
            edges_by_key: HashMap::new(),
            path_ids: HashMap::new(),
            path_needs_number: Vec::new(),
            trie: PathTrie::new(),
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

    /// Removes a rule; returns whether it was present. Edges no other rule
    /// uses are dropped, rebuilding only the indexes they were in.
    pub fn remove(&mut self, rule_id: &R) -> bool {
        let Some(slot) = self.slots_by_rule.remove(rule_id) else {
            return false;
        };
        let Some(entry) = self.slots[slot as usize].take() else {
            return false;
        };
        for &branch in &entry.branches {
            self.remove_branch(branch);
        }
        self.free_slots.push(slot);
        true
    }

    fn remove_branch(&mut self, branch: BranchId) {
        let info = &mut self.branches[branch as usize];
        info.alive = false;
        let (end, edges) = (info.end, std::mem::take(&mut info.edges));
        self.states[end as usize].ending.retain(|&b| b != branch);
        for edge_id in edges {
            let edge = &mut self.edges[edge_id as usize];
            edge.uses -= 1;
            if edge.uses > 0 {
                continue;
            }
            let (from, path, key) = (edge.from, edge.path, std::mem::take(&mut edge.key));
            self.edges_by_key.remove(&(from, path, key));
            let transitions = &mut self.states[from as usize].transitions;
            if let Some(at) = transitions.iter().position(|(p, _)| *p == path) {
                transitions[at].1.retain(|e| e != edge_id);
                if transitions[at].1.is_empty() {
                    transitions.remove(at);
                }
            }
        }
    }

    fn path_id(&mut self, path: &str) -> PathId {
        if let Some(&id) = self.path_ids.get(path) {
            return id;
        }
        let id = self.path_needs_number.len() as PathId;
        self.path_needs_number.push(false);
        self.path_ids.insert(path.to_string(), id);
        self.trie.insert(path, id);
        id
    }

    fn add_branch(&mut self, slot: Slot, spec: BranchSpec) -> BranchId {
        let branch = self.branches.len() as BranchId;
        let absent_paths: Vec<PathId> = spec.absent.iter().map(|p| self.path_id(p)).collect();
        let mut state = START;
        let mut edges = Vec::new();
        let mut chain = vec![START];
        let mut paths = Vec::new();
        for (path, matchers) in spec.positive {
            let path = self.path_id(&path);
            let edge = self.edge(state, path, matchers);
            edges.push(edge);
            paths.push(path);
            state = self.edges[edge as usize].to;
            chain.push(state);
        }
        for (i, &on_the_way) in chain.iter().enumerate() {
            let future = &mut self.states[on_the_way as usize].future_paths;
            future.extend(paths[i..].iter().chain(&absent_paths));
            future.sort_unstable();
            future.dedup();
        }
        self.states[state as usize].ending.push(branch);
        self.branches.push(BranchInfo {
            slot,
            alive: true,
            edges,
            end: state,
            absent_paths,
        });
        branch
    }

    /// The edge from `from` on `path` with these matchers: shared if it exists.
    fn edge(&mut self, from: StateId, path: PathId, matchers: Vec<ValueMatcher>) -> EdgeId {
        let key = (from, path, format!("{matchers:?}"));
        if let Some(&edge) = self.edges_by_key.get(&key) {
            self.edges[edge as usize].uses += 1;
            return edge;
        }
        let edge = self.edges.len() as EdgeId;
        let to = self.states.len() as StateId;
        self.states.push(State::default());
        self.edges.push(Edge {
            from,
            path,
            to,
            key: key.2.clone(),
            uses: 1,
        });
        self.edges_by_key.insert(key, edge);
        let transitions = &mut self.states[from as usize].transitions;
        let at = match transitions.iter().position(|(p, _)| *p == path) {
            Some(at) => at,
            None => {
                transitions.push((path, FieldIndex::default()));
                transitions.len() - 1
            }
        };
        transitions[at].1.insert(edge, matchers);
        self.path_needs_number[path as usize] |= transitions[at].1.needs_number_value;
        edge
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

    /// Matches a serde_json value (serialised, then matched as text).
    pub fn matches_value(&self, event: &serde_json::Value) -> Result<Vec<&R>, EventError> {
        self.matches(&event.to_string())
    }

    fn rule_id(&self, slot: Slot) -> Option<&R> {
        self.slots[slot as usize].as_ref().map(|e| &e.id)
    }

    /// Leaves the matched rule slots, sorted and unique, in `scratch.slots`.
    fn match_slots(&self, event_json: &str, scratch: &mut Scratch) -> Result<(), EventError> {
        flatten(event_json, &self.trie, &mut scratch.flat)?;
        self.prepare_leaves(event_json, scratch);
        scratch.slots.clear();
        scratch.steps.clear();
        scratch.chosen.clear();
        scratch.visited_plain.clear();
        scratch.steps.push((START, 0, 0));
        let mut taken = 0;
        while let Some((state, start, end)) = scratch.steps.pop() {
            taken += 1;
            if taken > MAX_STEPS_PER_EVENT {
                break;
            }
            self.step(event_json, state, (start, end), scratch);
        }
        scratch.slots.sort_unstable();
        scratch.slots.dedup();
        Ok(())
    }

    /// Indexes the leaves by path and computes number values where needed.
    fn prepare_leaves(&self, event_json: &str, scratch: &mut Scratch) {
        let leaves = &scratch.flat.leaves;
        scratch.by_path.clear();
        scratch
            .by_path
            .extend(leaves.iter().enumerate().map(|(i, l)| (l.path, i as u32)));
        scratch.by_path.sort_unstable();
        scratch.numbers.clear();
        scratch
            .numbers
            .extend(leaves.iter().map(|leaf| match leaf.value {
                LeafValue::Number(s, e) if self.path_needs_number[leaf.path as usize] => {
                    comparable(&event_json[s as usize..e as usize])
                }
                _ => None,
            }));
    }

    /// Handles one step: branches ending in `state`, then the edges it satisfies.
    fn step(&self, event_json: &str, state: StateId, chosen: (u32, u32), scratch: &mut Scratch) {
        let node = &self.states[state as usize];
        let chosen_range = chosen.0 as usize..chosen.1 as usize;
        for &branch in &node.ending {
            let info = &self.branches[branch as usize];
            if info.alive
                && self.absent_paths_hold(info, &scratch.chosen[chosen_range.clone()], scratch)
            {
                scratch.slots.push(info.slot);
            }
        }
        for (path, index) in &node.transitions {
            scratch.edge_hits.clear();
            let chosen_now = &scratch.chosen[chosen_range.clone()];
            let at_path = leaves_at(&scratch.by_path, *path);
            let [inside, before, after] = candidate_runs(at_path, chosen_now, &scratch.flat);
            for &(_, leaf_index) in inside.iter().chain(before).chain(after) {
                let leaf = &scratch.flat.leaves[leaf_index as usize];
                let context = scratch.flat.context(leaf);
                if !context.is_empty() && !compatible_with(chosen_now, context) {
                    continue;
                }
                let mut value = leaf.value.scalar(event_json, false);
                if let Scalar::Number { value: v, .. } = &mut value {
                    *v = scratch.numbers[leaf_index as usize];
                }
                index.lookup(&value, leaf_index, &mut scratch.edge_hits);
            }
            scratch.edge_hits.sort_unstable();
            scratch.edge_hits.dedup();
            for i in 0..scratch.edge_hits.len() {
                let (edge, leaf_index) = scratch.edge_hits[i];
                self.push_step(self.edges[edge as usize].to, chosen, leaf_index, scratch);
            }
        }
    }

    /// Queues the step to `to`, adding the array elements of the leaf used.
    fn push_step(&self, to: StateId, chosen: (u32, u32), leaf_index: u32, scratch: &mut Scratch) {
        let leaf = &scratch.flat.leaves[leaf_index as usize];
        let start = scratch.chosen.len();
        scratch
            .chosen
            .extend_from_within(chosen.0 as usize..chosen.1 as usize);
        for &pair in scratch.flat.context(leaf) {
            if !scratch.chosen[start..].contains(&pair) {
                scratch.chosen.push(pair);
            }
        }
        // Keep only the array elements that can still constrain a value the
        // rest of the way needs; the others cannot change the outcome.
        let future = &self.states[to as usize].future_paths;
        let mut kept = start;
        for i in start..scratch.chosen.len() {
            let (array, element) = scratch.chosen[i];
            let (_, extent) = scratch.flat.element_leaves(array, element);
            if future
                .iter()
                .any(|&p| has_leaf_within(leaves_at(&scratch.by_path, p), &extent))
            {
                scratch.chosen[kept] = (array, element);
                kept += 1;
            }
        }
        scratch.chosen.truncate(kept);
        if kept == start {
            // Without array elements, reaching a state twice changes nothing.
            if !scratch.visited_plain.contains(&to) {
                scratch.visited_plain.push(to);
                scratch.steps.push((to, 0, 0));
            }
            return;
        }
        scratch.steps.push((to, start as u32, kept as u32));
    }

    /// No value at an absent path may come from the array elements chosen.
    fn absent_paths_hold(
        &self,
        info: &BranchInfo,
        chosen: &[(u32, u32)],
        scratch: &Scratch,
    ) -> bool {
        info.absent_paths.iter().all(|&path| {
            leaves_at(&scratch.by_path, path)
                .iter()
                .all(|&(_, leaf_index)| {
                    let context = scratch
                        .flat
                        .context(&scratch.flat.leaves[leaf_index as usize]);
                    !compatible_with(chosen, context)
                })
        })
    }
}

/// Whether a value from these array elements fits with the elements chosen:
/// no array may be entered at two different elements.
fn compatible_with(chosen: &[(u32, u32)], context: &[(u32, u32)]) -> bool {
    if chosen.is_empty() || context.is_empty() {
        return true;
    }
    context
        .iter()
        .all(|&(array, element)| chosen.iter().all(|&(a, e)| a != array || e == element))
}

/// The leaves at a path that can fit with the chosen array elements: those in
/// the narrowest chosen element, and those outside that element's array. (The
/// caller still checks every chosen element; this only skips the many values
/// of the other elements of a big array.)
fn candidate_runs<'b>(
    at_path: &'b [(PathId, u32)],
    chosen: &[(u32, u32)],
    flat: &Flattened,
) -> [&'b [(PathId, u32)]; 3] {
    let narrowest = chosen
        .iter()
        .map(|&(array, element)| flat.element_leaves(array, element))
        .min_by_key(|(element, _)| element.end - element.start);
    let Some((element, array)) = narrowest else {
        return [at_path, &[], &[]];
    };
    let position = |leaf: u32| at_path.partition_point(|&(_, l)| l < leaf);
    let (array_start, element_start) = (position(array.start), position(element.start));
    let (element_end, array_end) = (position(element.end), position(array.end));
    [
        &at_path[element_start..element_end],
        &at_path[..array_start],
        &at_path[array_end..],
    ]
}

/// Whether any of these (path, leaf) entries has its leaf index in `range`.
fn has_leaf_within(at_path: &[(PathId, u32)], range: &Range<u32>) -> bool {
    let first = at_path.partition_point(|&(_, l)| l < range.start);
    at_path.get(first).is_some_and(|&(_, l)| l < range.end)
}

/// The leaves (indices) at `path`, from the (path, leaf) list sorted by path.
fn leaves_at(by_path: &[(PathId, u32)], path: PathId) -> &[(PathId, u32)] {
    let start = by_path.partition_point(|&(p, _)| p < path);
    let end = by_path.partition_point(|&(p, _)| p <= path);
    &by_path[start..end]
}

/// Splits a branch into conditions sorted by path and absent paths; a field
/// whose list mixes `exists: false` with other matchers becomes two branches.
fn split_absence(branch: &Branch) -> Vec<BranchSpec> {
    let mut specs = vec![BranchSpec {
        positive: Vec::new(),
        absent: Vec::new(),
    }];
    let mut fields: Vec<_> = branch.fields.iter().collect();
    fields.sort_by(|a, b| a.path.cmp(&b.path));
    for field in fields {
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

impl Pattern {
    /// Whether this pattern matches `event_json` (for one-off tests; use a
    /// [`Matcher`] for many rules).
    pub fn matches(&self, event_json: &str) -> Result<bool, EventError> {
        let mut matcher: Matcher<()> = Matcher::new();
        matcher.add((), self);
        Ok(!matcher.matches(event_json)?.is_empty())
    }
}
