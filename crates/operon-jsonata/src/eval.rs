//! The tree-walking evaluator.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use indexmap::IndexMap;

use crate::ast::{Kind, LambdaDef, Node, ObjectPairs, SortTerm, StepBinding, TransformDef};
use crate::error::{Error, Result};
use crate::functions::{self, Func};
use crate::value::{self, ArrFlags, ObjMap, Val, deep_equal, describe, truthy};
use crate::{Env, Outcome};

/// A lexical scope: variables bound by `:=`, function parameters, and block scopes.
#[derive(Default)]
pub(crate) struct Frame {
    vars: RefCell<HashMap<String, Option<Val>>>,
    parent: Option<Rc<Frame>>,
}

impl Frame {
    fn child(parent: &Rc<Frame>) -> Rc<Frame> {
        Rc::new(Frame {
            vars: RefCell::new(HashMap::new()),
            parent: Some(parent.clone()),
        })
    }

    fn lookup(&self, name: &str) -> Option<Option<Val>> {
        if let Some(v) = self.vars.borrow().get(name) {
            return Some(v.clone());
        }
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }

    fn bind(&self, name: &str, value: Option<Val>) {
        self.vars.borrow_mut().insert(name.to_string(), value);
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Frame")
    }
}

pub(crate) struct Evaluator<'e> {
    pub env: &'e Env,
    steps: u64,
    /// Nesting of node evaluations (bounded by the parser's nesting limit and the stack check).
    depth: u32,
    /// Nesting of function applications, limited by `Limits::max_depth`.
    calls: u32,
    /// Frames that received function values: cleared at the end to break `Rc` cycles
    /// (a closure stored in the scope it captures).
    closure_frames: Vec<Weak<Frame>>,
    root: Option<Val>,
    rng_state: u64,
    /// Host bindings converted to runtime values on first use.
    binding_cache: HashMap<String, Val>,
    /// Scope and context of the latest call of a built-in (read by `$eval`).
    builtin_call_site: Option<(Rc<Frame>, Option<Val>)>,
    /// Address of a local in the outermost evaluation frame: the stack in use is measured
    /// from here. Frame sizes differ between builds and expressions, so besides counting calls
    /// the evaluator measures the stack it actually uses (`Env::set_max_stack_bytes`).
    stack_base: usize,
}

fn stack_overflow(position: usize) -> Error {
    Error::at(
        "U1001",
        position,
        "Stack overflow error: Check for non-terminating recursive function.  Consider rewriting as tail-recursive.",
    )
}

/// An address on the current stack frame (safe: the pointer is only compared, never read).
#[inline(always)]
fn stack_position() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

pub(crate) fn evaluate_root(
    node: &Node,
    input: Option<&serde_json::Value>,
    env: &Env,
) -> Result<Outcome> {
    let mut input = input.map(value::from_json).transpose()?;
    if let Some(Val::Arr(items, flags)) = &input
        && !flags.seq
    {
        let wrapped = Val::Arr(items.clone(), *flags);
        let outer = ArrFlags {
            seq: true,
            outer: true,
            ..ArrFlags::PLAIN
        };
        input = Some(Val::with_array_flags(vec![wrapped], outer));
    }
    let mut evaluator = Evaluator {
        env,
        steps: 0,
        depth: 0,
        calls: 0,
        closure_frames: Vec::new(),
        root: input.clone(),
        rng_state: env.random_seed ^ 0x9E37_79B9_7F4A_7C15,
        binding_cache: HashMap::new(),
        builtin_call_site: None,
        stack_base: stack_position(),
    };
    let frame = Rc::new(Frame::default());
    let result = evaluator.eval(node, input.as_ref(), &frame);
    evaluator.break_cycles(&frame);
    match result? {
        None => Ok(Outcome::Undefined),
        Some(Val::Func(_)) => Ok(Outcome::Function),
        Some(v) => Ok(Outcome::Value(value::to_json(&v)?)),
    }
}

fn contains_function(value: &Val) -> bool {
    match value {
        Val::Func(_) => true,
        Val::Arr(items, _) => items.iter().any(contains_function),
        Val::Obj(map) => map.values().any(contains_function),
        _ => false,
    }
}

/// Collapses a sequence as jsonata does at the end of every node evaluation.
fn collapse(result: Option<Val>, keep_array: bool) -> Option<Val> {
    match result {
        Some(Val::Arr(items, mut flags)) if flags.seq => {
            if keep_array {
                flags.keep = true;
            }
            match items.len() {
                0 => None,
                1 if !flags.keep => Some(items[0].clone()),
                _ => Some(Val::Arr(items, flags)),
            }
        }
        other => other,
    }
}

/// `fn.append` of jsonata-js: concatenation where non-arrays count as singletons.
pub(crate) fn append(a: Option<Val>, b: Option<Val>) -> Option<Val> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(a), Some(b)) => {
            let mut items = a.items();
            match b {
                Val::Arr(more, _) => items.extend(more.iter().cloned()),
                other => items.push(other),
            }
            Some(Val::array(items))
        }
    }
}

/// Nodes whose value needs no further evaluation: literals, field lookups, wildcards,
/// parent references, and function definitions (closures over the current scope).
#[inline(never)]
fn leaf_value(node: &Node, input: Option<&Val>, frame: &Rc<Frame>) -> Option<Val> {
    match &node.kind {
        Kind::Str(s) => Some(Val::str(s)),
        Kind::Num(n) => Some(Val::Num(*n)),
        Kind::Bool(b) => Some(Val::Bool(*b)),
        Kind::Null => Some(Val::Null),
        Kind::Name(name) => input.and_then(|v| lookup(v, name)),
        Kind::Wildcard => Some(wildcard(input)),
        Kind::Parent(label) => frame.lookup(label).flatten(),
        Kind::Descendant => input.map(all_descendants),
        Kind::Regex(re) => Some(Val::Func(Rc::new(Func::Regex(re.clone())))),
        Kind::Lambda(def) => Some(Val::Func(Rc::new(Func::Lambda {
            def: def.clone(),
            scope: frame.clone(),
            input: input.cloned(),
        }))),
        Kind::Transform(def) => Some(Val::Func(Rc::new(Func::Transform {
            def: def.clone(),
            scope: frame.clone(),
        }))),
        _ => None,
    }
}

/// Folds `append` over `parts` in one pass.
fn append_all(parts: Vec<Option<Val>>) -> Option<Val> {
    let mut defined = parts.into_iter().flatten();
    let first = defined.next()?;
    let Some(second) = defined.next() else {
        return Some(first);
    };
    let mut items = first.items();
    for part in std::iter::once(second).chain(defined) {
        match part {
            Val::Arr(more, _) => items.extend(more.iter().cloned()),
            other => items.push(other),
        }
    }
    Some(Val::array(items))
}

/// `fn.lookup`: field access, mapped over arrays with flattening.
fn lookup(input: &Val, key: &str) -> Option<Val> {
    match input {
        Val::Arr(items, _) => {
            let mut out = Vec::new();
            for item in items.iter() {
                match lookup(item, key) {
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

fn flatten_into(value: &Val, out: &mut Vec<Val>) {
    match value {
        Val::Arr(items, _) => items.iter().for_each(|v| flatten_into(v, out)),
        other => out.push(other.clone()),
    }
}

fn descendants(value: &Val, out: &mut Vec<Val>) {
    match value {
        Val::Arr(items, _) => items.iter().for_each(|v| descendants(v, out)),
        Val::Obj(map) => {
            out.push(value.clone());
            map.values().for_each(|v| descendants(v, out));
        }
        other => out.push(other.clone()),
    }
}

/// The sequence a path starts from: the input's items, or the input itself for a path that
/// starts with a variable.
fn initial_sequence(input: Option<&Val>, steps: &[Node]) -> Vec<Option<Val>> {
    match (input, steps.first().map(|s| &s.kind)) {
        (_, Some(Kind::Var(_))) => vec![input.cloned()],
        (Some(Val::Arr(items, _)), _) => items.iter().cloned().map(Some).collect(),
        _ => vec![input.cloned()],
    }
}

/// Marks a path result to stay an array even with one item (`a[]`).
fn keep_singleton_array(value: Val) -> Val {
    let flags = value.flags();
    let value = if flags.cons && !flags.seq {
        Val::seq(vec![value])
    } else {
        value
    };
    let flags = ArrFlags {
        keep: true,
        ..value.flags()
    };
    value.with_flags(flags)
}

fn all_descendants(value: &Val) -> Val {
    let mut out = Vec::new();
    descendants(value, &mut out);
    Val::seq(out)
}

fn is_numeric_array(value: &Val) -> bool {
    matches!(value, Val::Arr(items, _) if !items.is_empty() && items.iter().all(|v| matches!(v, Val::Num(_))))
}

impl<'e> Evaluator<'e> {
    fn break_cycles(&mut self, root: &Rc<Frame>) {
        root.vars.borrow_mut().clear();
        for frame in self.closure_frames.drain(..) {
            if let Some(frame) = frame.upgrade() {
                let vars = std::mem::take(&mut *frame.vars.borrow_mut());
                drop(vars);
            }
        }
    }

    /// Counts a step and a level of nesting, failing when a limit is exceeded.
    fn enter(&mut self, position: usize) -> Result<()> {
        self.charge(1).map_err(|e| e.or_position(position))?;
        self.depth += 1;
        if self.stack_base.abs_diff(stack_position()) > self.env.max_stack_bytes() {
            self.depth -= 1;
            return Err(stack_overflow(position));
        }
        Ok(())
    }

    /// Charges `amount` steps (used for allocations proportional to their size).
    pub fn charge(&mut self, amount: u64) -> Result<()> {
        self.steps = self.steps.saturating_add(amount);
        if self.steps > self.env.limits.max_steps {
            return Err(Error::new(
                "U1002",
                format!(
                    "Expression evaluation exceeded the limit of {} steps: Check for infinite loop",
                    self.env.limits.max_steps
                ),
            ));
        }
        Ok(())
    }

    pub fn now_millis(&self) -> i64 {
        self.env.now_millis
    }

    /// The next pseudo-random number in [0, 1) (splitmix64; deterministic per seed).
    pub fn next_random(&mut self) -> f64 {
        self.rng_state = self.rng_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Evaluates a separately parsed expression (for `$eval`) in the scope of the latest
    /// built-in call site, with `input` or else that call site's context value.
    pub fn eval_detached(&mut self, node: &Node, input: Option<&Val>) -> Result<Option<Val>> {
        let (scope, site_input) = match self.builtin_call_site.take() {
            Some((frame, site_input)) => (Frame::child(&frame), site_input),
            None => (Rc::new(Frame::default()), None),
        };
        self.closure_frames.push(Rc::downgrade(&scope));
        let input = input.cloned().or(site_input);
        self.eval(node, input.as_ref(), &scope)
    }

    pub fn eval(
        &mut self,
        node: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        self.enter(node.position)?;
        let result = self.eval_node(node, input, frame);
        self.depth -= 1;
        match result {
            Ok(Some(v)) if v.depth() > value::MAX_VALUE_DEPTH => {
                Err(value::too_deep().or_position(node.position))
            }
            other => other,
        }
    }

    fn eval_node(
        &mut self,
        node: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        if let (Kind::Path { steps, .. }, Some(group)) = (&node.kind, &node.group)
            && steps.iter().any(|s| s.binding.is_some())
        {
            let stream = self.tuple_stream(steps, input, frame)?.unwrap_or_default();
            return Ok(Some(self.group_tuples(group, stream, frame)?));
        }
        let result = self.eval_kind(node, input, frame)?;
        if node.predicates.is_empty() && node.group.is_none() {
            return Ok(collapse(result, node.keep_array));
        }
        self.apply_predicates_and_group(node, result, frame)
    }

    fn apply_predicates_and_group(
        &mut self,
        node: &Node,
        mut result: Option<Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        for predicate in &node.predicates {
            result = self.filter(predicate, result, frame)?;
        }
        if let Some(group) = &node.group {
            result = Some(self.group(group, result, frame)?);
        }
        Ok(collapse(result, node.keep_array))
    }

    /// Dispatches on the node kind. Arms stay small (helpers hold the logic) to keep this
    /// recursive frame small: its size bounds how deep evaluation can nest on a thread stack.
    fn eval_kind(
        &mut self,
        node: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        let pos = node.position;
        match &node.kind {
            Kind::Var(name) => self.variable(name, input, frame),
            Kind::Path {
                steps,
                keep_singleton,
            } => self.path(steps, *keep_singleton, input, frame),
            Kind::Binary { op, lhs, rhs } => self.binary(op, lhs, rhs, input, frame, pos),
            Kind::Negate(operand) => self.negate(operand, input, frame, pos),
            Kind::Array { items, cons } => self.array_value(items, *cons, input, frame),
            Kind::Object(pairs) => self.object_value(pairs, input, frame),
            Kind::Condition {
                condition,
                then,
                otherwise,
            } => self.condition(condition, then, otherwise.as_deref(), input, frame),
            Kind::Block(items) => self.block(items, input, frame),
            Kind::Bind { name, value } => self.bind(name, value, input, frame),
            Kind::Call { func, args } => self.call(func, args, None, input, frame, pos),
            Kind::Partial { func, args } => self.partial_value(func, args, input, frame, pos),
            Kind::Apply { lhs, rhs } => self.apply_operator(lhs, rhs, input, frame, pos),
            Kind::Sort(terms) => self.sort_value(terms, input, frame),
            _ => Ok(leaf_value(node, input, frame)),
        }
    }

    fn array_value(
        &mut self,
        items: &[Node],
        cons: bool,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        Ok(Some(self.array_constructor(items, cons, input, frame)?))
    }

    fn object_value(
        &mut self,
        pairs: &ObjectPairs,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        Ok(Some(self.group(pairs, input.cloned(), frame)?))
    }

    fn partial_value(
        &mut self,
        func: &Node,
        args: &[Node],
        input: Option<&Val>,
        frame: &Rc<Frame>,
        pos: usize,
    ) -> Result<Option<Val>> {
        Ok(Some(self.partial(func, args, input, frame, pos)?))
    }

    fn sort_value(
        &mut self,
        terms: &[SortTerm],
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        let items = input.map(Val::items).unwrap_or_default();
        Ok(Some(self.sort(terms, items, frame)?))
    }

    fn negate(
        &mut self,
        operand: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
        pos: usize,
    ) -> Result<Option<Val>> {
        match self.eval(operand, input, frame)? {
            None => Ok(None),
            Some(Val::Num(n)) => Ok(Some(Val::Num(-n))),
            Some(other) => Err(Error::at(
                "D1002",
                pos,
                format!(
                    "Cannot negate a non-numeric value: {}",
                    describe(Some(&other))
                ),
            )),
        }
    }

    fn condition(
        &mut self,
        condition: &Node,
        then: &Node,
        otherwise: Option<&Node>,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        let test = self.eval(condition, input, frame)?;
        if truthy(test.as_ref()).unwrap_or(false) {
            self.eval(then, input, frame)
        } else if let Some(otherwise) = otherwise {
            self.eval(otherwise, input, frame)
        } else {
            Ok(None)
        }
    }

    fn block(
        &mut self,
        items: &[Node],
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        let scope = Frame::child(frame);
        let mut result = None;
        for item in items {
            result = self.eval(item, input, &scope)?;
        }
        Ok(result)
    }

    fn bind(
        &mut self,
        name: &str,
        value: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        let v = self.eval(value, input, frame)?;
        if v.as_ref().is_some_and(contains_function) {
            self.closure_frames.push(Rc::downgrade(frame));
        }
        frame.bind(name, v.clone());
        Ok(v)
    }

    fn variable(
        &mut self,
        name: &str,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        Ok(match name {
            "" => match input {
                Some(Val::Arr(items, flags)) if flags.outer => items.first().cloned(),
                other => other.cloned(),
            },
            "$" => self.root.clone(),
            _ => return self.lookup_variable(name, frame),
        })
    }

    /// Resolves `$name`: lexical scopes, then host bindings (converted once per
    /// evaluation), then host functions, then built-in functions.
    fn lookup_variable(&mut self, name: &str, frame: &Rc<Frame>) -> Result<Option<Val>> {
        if let Some(v) = frame.lookup(name) {
            return Ok(v);
        }
        if let Some(v) = self.binding_cache.get(name) {
            return Ok(Some(v.clone()));
        }
        if let Some(json) = self.env.binding(name) {
            let v = value::from_json(json)?;
            self.binding_cache.insert(name.to_string(), v.clone());
            return Ok(Some(v));
        }
        if let Some(f) = self.env.function(name) {
            return Ok(Some(Val::Func(Rc::new(Func::Host {
                name: name.to_string(),
                f: f.clone(),
            }))));
        }
        Ok(functions::builtin(name))
    }

    /// A path with `@` / `#` bindings: from the first binding step on, the path is a stream
    /// of tuples (context value plus bound variables), as in jsonata-js.
    fn tuple_path(
        &mut self,
        steps: &[Node],
        keep_singleton: bool,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        let Some(stream) = self.tuple_stream(steps, input, frame)? else {
            return Ok(None);
        };
        let result = Val::seq(stream.into_iter().map(|t| t.context).collect());
        Ok(Some(if keep_singleton {
            keep_singleton_array(result)
        } else {
            result
        }))
    }

    /// Evaluates a path's steps; from the first binding step on, as a tuple stream.
    /// `None` when a step before the stream started produced nothing.
    fn tuple_stream(
        &mut self,
        steps: &[Node],
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Vec<Tuple>>> {
        let mut sequence = initial_sequence(input, steps);
        let mut stream: Option<Vec<Tuple>> = None;
        for (index, step) in steps.iter().enumerate() {
            if stream.is_none() && step.binding.is_none() {
                let step_result = self.path_step(step, index, steps.len(), &sequence, frame)?;
                if matches!(&step_result, Val::Arr(items, _) if items.is_empty()) {
                    return Ok(None);
                }
                sequence = step_result.items().into_iter().map(Some).collect();
                continue;
            }
            let tuples = stream.take().unwrap_or_else(|| {
                sequence
                    .iter()
                    .flatten()
                    .map(|v| Tuple {
                        context: v.clone(),
                        bindings: Vec::new(),
                    })
                    .collect()
            });
            stream = Some(self.tuple_step(step, tuples, frame)?);
        }
        Ok(stream)
    }

    /// Grouping over a tuple stream: keys and values see each tuple's variables; a group's
    /// value expression sees every variable bound to the sequence of its tuples' values.
    fn group_tuples(
        &mut self,
        pairs: &ObjectPairs,
        tuples: Vec<Tuple>,
        frame: &Rc<Frame>,
    ) -> Result<Val> {
        let mut groups: IndexMap<String, (Vec<Tuple>, usize)> = IndexMap::new();
        for tuple in tuples {
            let scope = self.tuple_frame(frame, &tuple);
            for (pair_index, (key_expr, _)) in pairs.iter().enumerate() {
                let Some(key) = self.group_key(key_expr, Some(&tuple.context), &scope)? else {
                    continue;
                };
                match groups.get_mut(&key) {
                    Some((_, index)) if *index != pair_index => {
                        return Err(duplicate_key(key_expr, key));
                    }
                    Some((members, _)) => members.push(tuple.clone()),
                    None => {
                        groups.insert(key, (vec![tuple.clone()], pair_index));
                    }
                }
            }
        }
        let mut result = ObjMap::new();
        for (key, (members, pair_index)) in groups {
            let merged = merge_tuples(members);
            let scope = self.tuple_frame(frame, &merged);
            if let Some(v) = self.eval(&pairs[pair_index].1, Some(&merged.context), &scope)? {
                result.insert(key, v);
            }
        }
        Ok(Val::object(result))
    }

    /// A grouping key: a string, undefined (skipped), or `T1003`.
    fn group_key(
        &mut self,
        key_expr: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<String>> {
        match self.eval(key_expr, input, frame)? {
            None => Ok(None),
            Some(Val::Str(s)) => Ok(Some(s.to_string())),
            Some(other) => Err(Error::at(
                "T1003",
                key_expr.position,
                format!(
                    "Key in object structure must evaluate to a string; got: {}",
                    describe(Some(&other))
                ),
            )),
        }
    }

    fn tuple_frame(&mut self, frame: &Rc<Frame>, tuple: &Tuple) -> Rc<Frame> {
        let scope = Frame::child(frame);
        for (name, value) in &tuple.bindings {
            scope.bind(name, Some(value.clone()));
        }
        scope
    }

    fn tuple_step(
        &mut self,
        step: &Node,
        tuples: Vec<Tuple>,
        frame: &Rc<Frame>,
    ) -> Result<Vec<Tuple>> {
        let binding = step.binding.as_deref();
        let mut out = Vec::new();
        if let Kind::Sort(terms) = &step.kind {
            out = self.sort_tuples(terms, tuples, frame)?;
            if let Some(index) = binding.and_then(|b| b.index.as_ref()) {
                for (i, tuple) in out.iter_mut().enumerate() {
                    tuple.bind(index, Val::Num(i as f64));
                }
            }
        } else {
            for tuple in tuples {
                let scope = self.tuple_frame(frame, &tuple);
                let Some(result) =
                    self.eval_without_predicates(step, Some(&tuple.context), &scope)?
                else {
                    continue;
                };
                for (position, item) in result.items().into_iter().enumerate() {
                    let mut next = tuple.clone();
                    match binding.and_then(|b| b.focus.as_ref()) {
                        Some(focus) => next.bind(focus, item),
                        None => next.context = item,
                    }
                    if let Some(index) = binding.and_then(|b| b.index.as_ref()) {
                        next.bind(index, Val::Num(position as f64));
                    }
                    for label in binding.map(|b| b.ancestors.as_slice()).unwrap_or_default() {
                        next.bind(label, tuple.context.clone());
                    }
                    out.push(next);
                }
            }
        }
        for (number, predicate) in step.predicates.iter().enumerate() {
            index_stage(binding, number, &mut out);
            out = self.filter_tuples(predicate, out, frame)?;
        }
        index_stage(binding, step.predicates.len(), &mut out);
        Ok(out)
    }

    fn filter_tuples(
        &mut self,
        predicate: &Node,
        tuples: Vec<Tuple>,
        frame: &Rc<Frame>,
    ) -> Result<Vec<Tuple>> {
        let len = tuples.len() as f64;
        if let Kind::Num(n) = predicate.kind
            && predicate.predicates.is_empty()
        {
            return Ok(tuples
                .into_iter()
                .enumerate()
                .filter(|(i, _)| index_matches(n, *i, len))
                .map(|(_, t)| t)
                .collect());
        }
        let mut out = Vec::new();
        for (position, tuple) in tuples.into_iter().enumerate() {
            let scope = self.tuple_frame(frame, &tuple);
            let res = self.eval(predicate, Some(&tuple.context), &scope)?;
            if selects(res.as_ref(), position, len) {
                out.push(tuple);
            }
        }
        Ok(out)
    }

    fn sort_tuples(
        &mut self,
        terms: &[SortTerm],
        tuples: Vec<Tuple>,
        frame: &Rc<Frame>,
    ) -> Result<Vec<Tuple>> {
        let mut keyed = Vec::with_capacity(tuples.len());
        for tuple in tuples {
            let scope = self.tuple_frame(frame, &tuple);
            let keys = self.sort_keys(terms, &tuple.context, &scope)?;
            keyed.push((keys, tuple));
        }
        sort_keyed(terms, keyed)
    }

    /// Evaluates a node's kind and grouping, leaving its predicates to the caller.
    fn eval_without_predicates(
        &mut self,
        node: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        self.enter(node.position)?;
        let result = self
            .eval_kind(node, input, frame)
            .and_then(|r| match &node.group {
                Some(group) => self.group(group, r, frame).map(Some),
                None => Ok(r),
            });
        self.depth -= 1;
        Ok(collapse(result?, node.keep_array))
    }

    fn sort(&mut self, terms: &[SortTerm], items: Vec<Val>, frame: &Rc<Frame>) -> Result<Val> {
        let mut keyed = Vec::with_capacity(items.len());
        for item in items {
            let keys = self.sort_keys(terms, &item, frame)?;
            keyed.push((keys, item));
        }
        Ok(Val::seq(sort_keyed(terms, keyed)?))
    }

    /// The order-by keys of one item: numbers, strings or undefined (`T2008` otherwise).
    fn sort_keys(
        &mut self,
        terms: &[SortTerm],
        item: &Val,
        frame: &Rc<Frame>,
    ) -> Result<Vec<Option<Val>>> {
        let mut keys = Vec::with_capacity(terms.len());
        for term in terms {
            let key = self.eval(&term.expr, Some(item), frame)?;
            if !matches!(key, None | Some(Val::Num(_)) | Some(Val::Str(_))) {
                return Err(Error::at(
                    "T2008",
                    term.expr.position,
                    "The expressions within an order-by clause must evaluate to numeric or string values",
                ));
            }
            keys.push(key);
        }
        Ok(keys)
    }

    fn path(
        &mut self,
        steps: &[Node],
        keep_singleton: bool,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        if steps.iter().any(|s| s.binding.is_some()) {
            return self.tuple_path(steps, keep_singleton, input, frame);
        }
        let mut sequence = initial_sequence(input, steps);
        let mut result: Option<Val> = None;
        for (index, step) in steps.iter().enumerate() {
            let step_result = self.path_step(step, index, steps.len(), &sequence, frame)?;
            let empty = matches!(&step_result, Val::Arr(items, _) if items.is_empty());
            sequence = if empty {
                Vec::new()
            } else {
                step_result.items().into_iter().map(Some).collect()
            };
            result = Some(step_result);
            if empty {
                break;
            }
        }
        Ok(if keep_singleton {
            result.map(keep_singleton_array)
        } else {
            result
        })
    }

    /// Evaluates one path step over the current sequence.
    fn path_step(
        &mut self,
        step: &Node,
        index: usize,
        count: usize,
        sequence: &[Option<Val>],
        frame: &Rc<Frame>,
    ) -> Result<Val> {
        match &step.kind {
            Kind::Array { cons: true, .. } if index == 0 => {
                let whole = Val::seq(sequence.iter().flatten().cloned().collect());
                Ok(match self.eval(step, Some(&whole), frame)? {
                    Some(v @ Val::Arr(..)) => v,
                    Some(v) => Val::seq(vec![v]),
                    None => Val::seq(Vec::new()),
                })
            }
            Kind::Sort(terms) => self.sort_step(step, terms, sequence, frame),
            _ => self.step(step, sequence, index + 1 == count, frame),
        }
    }

    fn sort_step(
        &mut self,
        step: &Node,
        terms: &[SortTerm],
        sequence: &[Option<Val>],
        frame: &Rc<Frame>,
    ) -> Result<Val> {
        self.enter(step.position)?;
        let sorted = self.sort(terms, sequence.iter().flatten().cloned().collect(), frame);
        self.depth -= 1;
        let mut sorted = Some(sorted?);
        for predicate in &step.predicates {
            sorted = self.filter(predicate, sorted, frame)?;
        }
        Ok(sorted.unwrap_or_else(|| Val::seq(Vec::new())))
    }

    fn step(
        &mut self,
        step: &Node,
        inputs: &[Option<Val>],
        last: bool,
        frame: &Rc<Frame>,
    ) -> Result<Val> {
        let mut results = Vec::with_capacity(inputs.len());
        for item in inputs {
            if let Some(v) = self.eval(step, item.as_ref(), frame)? {
                results.push(v);
            }
        }
        if last && results.len() == 1 && matches!(&results[0], Val::Arr(_, f) if !f.seq) {
            return Ok(results.swap_remove(0));
        }
        let mut flat = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Val::Arr(items, flags) if !flags.cons => flat.extend(items.iter().cloned()),
                other => flat.push(other),
            }
        }
        Ok(Val::seq(flat))
    }

    fn filter(
        &mut self,
        predicate: &Node,
        input: Option<Val>,
        frame: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        let items = match input {
            None => return Ok(Some(Val::seq(Vec::new()))),
            Some(v) => v.items(),
        };
        if let Kind::Num(n) = predicate.kind
            && predicate.predicates.is_empty()
        {
            let mut index = n.floor();
            if index < 0.0 {
                index += items.len() as f64;
            }
            // jsonata-js returns an array item itself (not wrapped in a sequence).
            let picked = if index >= 0.0 {
                items.get(index as usize).cloned()
            } else {
                None
            };
            return Ok(Some(match picked {
                Some(item @ Val::Arr(..)) => item,
                Some(item) => Val::seq(vec![item]),
                None => Val::seq(Vec::new()),
            }));
        }
        let mut out = Vec::new();
        let len = items.len() as f64;
        for (position, item) in items.iter().enumerate() {
            let res = self.eval(predicate, Some(item), frame)?;
            let selected = selects(res.as_ref(), position, len);
            if selected {
                out.push(item.clone());
            }
        }
        Ok(Some(Val::seq(out)))
    }

    fn array_constructor(
        &mut self,
        items: &[Node],
        cons: bool,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Val> {
        let mut out = Vec::new();
        for item in items {
            let Some(v) = self.eval(item, input, frame)? else {
                continue;
            };
            match v {
                Val::Arr(inner, _) if !matches!(item.kind, Kind::Array { .. }) => {
                    out.extend(inner.iter().cloned())
                }
                other => out.push(other),
            }
        }
        self.charge(out.len() as u64 / 16)?;
        Ok(Val::with_array_flags(
            out,
            ArrFlags {
                cons,
                ..ArrFlags::PLAIN
            },
        ))
    }

    /// Object construction / grouping (`{k: v}` and `expr{k: v}`).
    fn group(&mut self, pairs: &ObjectPairs, input: Option<Val>, frame: &Rc<Frame>) -> Result<Val> {
        let items: Vec<Option<Val>> = match input {
            Some(Val::Arr(items, _)) if !items.is_empty() => {
                items.iter().cloned().map(Some).collect()
            }
            Some(Val::Arr(..)) | None => vec![None],
            Some(v) => vec![Some(v)],
        };
        // Each group collects its items; they are combined once at the end (jsonata's
        // `fn.append` semantics) to keep grouping linear.
        let mut groups: IndexMap<String, (Vec<Option<Val>>, usize)> = IndexMap::new();
        for item in &items {
            for (pair_index, (key_expr, _)) in pairs.iter().enumerate() {
                let Some(key) = self.group_key(key_expr, item.as_ref(), frame)? else {
                    continue;
                };
                match groups.get_mut(&key) {
                    Some((_, index)) if *index != pair_index => {
                        return Err(duplicate_key(key_expr, key));
                    }
                    Some((data, _)) => data.push(item.clone()),
                    None => {
                        groups.insert(key, (vec![item.clone()], pair_index));
                    }
                }
            }
        }
        let mut result = ObjMap::new();
        for (key, (parts, pair_index)) in groups {
            let data = append_all(parts);
            if let Some(v) = self.eval(&pairs[pair_index].1, data.as_ref(), frame)? {
                result.insert(key, v);
            }
        }
        Ok(Val::object(result))
    }

    fn binary(
        &mut self,
        op: &str,
        lhs: &Node,
        rhs: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
        pos: usize,
    ) -> Result<Option<Val>> {
        let left = self.eval(lhs, input, frame)?;
        match op {
            "and" => {
                let l = truthy(left.as_ref()).unwrap_or(false);
                return Ok(Some(Val::Bool(
                    l && truthy(self.eval(rhs, input, frame)?.as_ref()).unwrap_or(false),
                )));
            }
            "or" => {
                let l = truthy(left.as_ref()).unwrap_or(false);
                return Ok(Some(Val::Bool(
                    l || truthy(self.eval(rhs, input, frame)?.as_ref()).unwrap_or(false),
                )));
            }
            "?:" => {
                if truthy(left.as_ref()).unwrap_or(false) {
                    return Ok(left);
                }
                return self.eval(rhs, input, frame);
            }
            "??" => {
                if left.is_some() {
                    return Ok(left);
                }
                return self.eval(rhs, input, frame);
            }
            _ => {}
        }
        let right = self.eval(rhs, input, frame)?;
        self.combine(op, left, right)
            .map_err(|e| e.or_position(pos))
    }

    /// Applies a (non short-circuiting) binary operator to evaluated operands.
    fn combine(&mut self, op: &str, left: Option<Val>, right: Option<Val>) -> Result<Option<Val>> {
        match op {
            "+" | "-" | "*" | "/" | "%" => arithmetic(op, left, right),
            "=" => Ok(Some(Val::Bool(
                matches!((&left, &right), (Some(l), Some(r)) if deep_equal(l, r)),
            ))),
            "!=" => Ok(Some(Val::Bool(
                matches!((&left, &right), (Some(l), Some(r)) if !deep_equal(l, r)),
            ))),
            "<" | "<=" | ">" | ">=" => compare(op, left, right),
            "&" => {
                let mut s = functions::to_string_or_empty(left.as_ref())?;
                s.push_str(&functions::to_string_or_empty(right.as_ref())?);
                self.charge(s.len() as u64 / 16)?;
                Ok(Some(Val::string(s)))
            }
            "in" => Ok(Some(Val::Bool(match (&left, &right) {
                (Some(l), Some(r)) => r.items().iter().any(|item| deep_equal(item, l)),
                _ => false,
            }))),
            ".." => self.range(left, right),
            _ => Err(Error::new("S0204", format!("Unknown operator: {op}"))),
        }
    }

    fn range(&mut self, left: Option<Val>, right: Option<Val>) -> Result<Option<Val>> {
        let as_int = |v: &Option<Val>, code: &str, side: &str| -> Result<Option<i64>> {
            match v {
                None => Ok(None),
                Some(Val::Num(n)) if n.fract() == 0.0 && n.abs() < 1e15 => Ok(Some(*n as i64)),
                Some(_) => Err(Error::new(
                    code,
                    format!(
                        "The {side} side of the range operator (..) must evaluate to an integer"
                    ),
                )),
            }
        };
        let l = as_int(&left, "T2003", "left")?;
        let r = as_int(&right, "T2004", "right")?;
        let (Some(l), Some(r)) = (l, r) else {
            return Ok(None);
        };
        if l > r {
            return Ok(None);
        }
        let size = r - l + 1;
        if size > 10_000_000 {
            return Err(Error::new(
                "D2014",
                format!(
                    "The size of the sequence allocated by the range operator (..) must not exceed 1e7.  Attempted to allocate {size}."
                ),
            ));
        }
        self.charge(size as u64)?;
        Ok(Some(Val::seq(
            (l..=r).map(|i| Val::Num(i as f64)).collect(),
        )))
    }

    fn call(
        &mut self,
        func_node: &Node,
        arg_nodes: &[Node],
        applied_to: Option<Option<Val>>,
        input: Option<&Val>,
        frame: &Rc<Frame>,
        pos: usize,
    ) -> Result<Option<Val>> {
        let func = self.eval(func_node, input, frame)?;
        let mut args = Vec::with_capacity(arg_nodes.len() + 1);
        if let Some(first) = applied_to {
            args.push(first);
        }
        for arg in arg_nodes {
            args.push(self.eval(arg, input, frame)?);
        }
        if let Some(Val::Func(f)) = &func
            && matches!(f.as_ref(), Func::Builtin(b) if b.name == "eval")
        {
            self.builtin_call_site = Some((frame.clone(), input.cloned()));
        }
        match func {
            Some(func @ Val::Func(_)) => self
                .apply(&func, args, input, pos)
                .map_err(|e| call_error(e, func_node, pos)),
            _ => Err(non_function_error(func_node, pos)),
        }
    }

    fn partial(
        &mut self,
        func_node: &Node,
        arg_nodes: &[Node],
        input: Option<&Val>,
        frame: &Rc<Frame>,
        pos: usize,
    ) -> Result<Val> {
        let func = self.eval(func_node, input, frame)?;
        let Some(func @ Val::Func(_)) = func else {
            let name = func_node.function_name();
            if matches!(func_node.kind, Kind::Path { .. }) && functions::builtin(&name).is_some() {
                return Err(Error::at(
                    "T1007",
                    pos,
                    format!("Attempted to partially apply a non-function. Did you mean ${name}?"),
                ));
            }
            return Err(Error::at(
                "T1008",
                pos,
                "Attempted to partially apply a non-function",
            ));
        };
        let mut args = Vec::with_capacity(arg_nodes.len());
        for arg in arg_nodes {
            if matches!(arg.kind, Kind::Placeholder) {
                args.push(None);
            } else {
                args.push(Some(self.eval(arg, input, frame)?));
            }
        }
        Ok(Val::Func(Rc::new(Func::Partial { func, args })))
    }

    fn apply_operator(
        &mut self,
        lhs: &Node,
        rhs: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
        pos: usize,
    ) -> Result<Option<Val>> {
        let left = self.eval(lhs, input, frame)?;
        if let Kind::Call { func, args } = &rhs.kind {
            return self.call(func, args, Some(left), input, frame, rhs.position);
        }
        let func = self.eval(rhs, input, frame)?;
        let Some(func @ Val::Func(_)) = func else {
            return Err(Error::at(
                "T2006",
                pos,
                "The right side of the function application operator ~> must be a function",
            ));
        };
        match left {
            Some(first @ Val::Func(_)) => Ok(Some(Val::Func(Rc::new(Func::Chain {
                first,
                second: func,
            })))),
            other => self.apply(&func, vec![other], None, pos),
        }
    }

    /// Invokes a function value with evaluated arguments.
    pub fn apply(
        &mut self,
        func: &Val,
        args: Vec<Option<Val>>,
        context: Option<&Val>,
        pos: usize,
    ) -> Result<Option<Val>> {
        let Val::Func(f) = func else {
            return Err(Error::at(
                "T1006",
                pos,
                "Attempted to invoke a non-function",
            ));
        };
        self.enter(pos)?;
        self.calls += 1;
        let result = if self.calls > self.env.limits.max_depth {
            Err(stack_overflow(pos))
        } else {
            self.apply_func(f, args, context, pos)
        };
        self.calls -= 1;
        self.depth -= 1;
        result
    }

    fn apply_func(
        &mut self,
        f: &Rc<Func>,
        args: Vec<Option<Val>>,
        context: Option<&Val>,
        pos: usize,
    ) -> Result<Option<Val>> {
        match f.as_ref() {
            Func::Lambda { def, scope, input } => {
                self.apply_lambda(def, scope, input.as_ref(), args, context)
            }
            Func::Builtin(builtin) => self.apply_builtin(builtin, args, context),
            Func::Host { f, .. } => apply_host(f, &args),
            Func::Partial { func, args: bound } => {
                self.apply(func, fill_placeholders(bound, args), context, pos)
            }
            Func::Chain { first, second } => {
                let intermediate = self.apply(first, args, context, pos)?;
                self.apply(second, vec![intermediate], context, pos)
            }
            Func::Regex(re) => Ok(match args.first() {
                Some(Some(Val::Str(s))) => functions::regex_match_object(re, s, 0),
                _ => None,
            }),
            Func::Transform { def, scope } => {
                self.transform(args.into_iter().next().flatten(), def, scope)
            }
        }
    }

    fn apply_builtin(
        &mut self,
        builtin: &functions::Builtin,
        args: Vec<Option<Val>>,
        context: Option<&Val>,
    ) -> Result<Option<Val>> {
        let args = builtin.signature().validate(&args, context)?;
        (builtin.implementation)(self, &args)
    }

    /// Invokes a lambda. Calls in tail position (the body itself, a branch of a condition,
    /// the last expression of a block) of the body are not evaluated recursively: they come
    /// back as [`Tail::Call`] and run in this loop, so tail recursion does not deepen the
    /// stack or count against `max_depth` (as jsonata-js's tail-call optimisation).
    fn apply_lambda(
        &mut self,
        def: &LambdaDef,
        scope: &Rc<Frame>,
        input: Option<&Val>,
        args: Vec<Option<Val>>,
        context: Option<&Val>,
    ) -> Result<Option<Val>> {
        let call_frame = self.lambda_frame(def, scope, args, context)?;
        if has_tail_position(&def.body) {
            self.run_with_tail_calls(def, call_frame, input)
        } else {
            self.eval(&def.body, input, &call_frame)
        }
    }

    fn run_with_tail_calls(
        &mut self,
        def: &LambdaDef,
        mut call_frame: Rc<Frame>,
        input: Option<&Val>,
    ) -> Result<Option<Val>> {
        let mut current: Option<Rc<Func>> = None;
        let mut current_input = input.cloned();
        loop {
            let body = match current.as_deref() {
                Some(Func::Lambda { def, .. }) => &def.body,
                _ => &def.body,
            };
            let (func, args, pos) =
                match self.eval_tail(body, current_input.as_ref(), &call_frame)? {
                    Tail::Value(v) => return Ok(v),
                    Tail::Call(func, args, pos) => (func, args, pos),
                };
            let Val::Func(f) = &func else {
                return Err(Error::at(
                    "T1006",
                    pos,
                    "Attempted to invoke a non-function",
                ));
            };
            let Func::Lambda {
                def: next_def,
                scope: next_scope,
                input: next_input,
            } = f.as_ref()
            else {
                return self.apply(&func, args, current_input.as_ref(), pos);
            };
            self.charge(1)?;
            call_frame = self.lambda_frame(next_def, next_scope, args, current_input.as_ref())?;
            current_input = next_input.clone();
            current = Some(f.clone());
        }
    }

    /// A new scope for a lambda call with its parameters bound (after signature checks).
    fn lambda_frame(
        &mut self,
        def: &LambdaDef,
        scope: &Rc<Frame>,
        args: Vec<Option<Val>>,
        context: Option<&Val>,
    ) -> Result<Rc<Frame>> {
        let args = match &def.signature {
            Some(sig) => sig.validate(&args, context)?,
            None => args,
        };
        let call_frame = Frame::child(scope);
        let mut holds_function = false;
        for (index, param) in def.params.iter().enumerate() {
            let arg = args.get(index).cloned().flatten();
            holds_function |= arg.as_ref().is_some_and(contains_function);
            call_frame.bind(param, arg);
        }
        if holds_function {
            self.closure_frames.push(Rc::downgrade(&call_frame));
        }
        Ok(call_frame)
    }

    /// Evaluates `node` in tail position: a call of a lambda is returned, not made.
    /// Each level counts against `max_depth` like [`Evaluator::eval`].
    fn eval_tail(&mut self, node: &Node, input: Option<&Val>, frame: &Rc<Frame>) -> Result<Tail> {
        self.enter(node.position)?;
        let result = self.eval_tail_node(node, input, frame);
        self.depth -= 1;
        result
    }

    fn eval_tail_node(
        &mut self,
        node: &Node,
        input: Option<&Val>,
        frame: &Rc<Frame>,
    ) -> Result<Tail> {
        let plain = node.predicates.is_empty() && node.group.is_none() && !node.keep_array;
        if !plain {
            return Ok(Tail::Value(self.eval(node, input, frame)?));
        }
        match &node.kind {
            Kind::Call { func, args } => self.tail_call(func, args, input, frame, node.position),
            Kind::Condition {
                condition,
                then,
                otherwise,
            } => {
                let test = self.eval(condition, input, frame)?;
                if truthy(test.as_ref()).unwrap_or(false) {
                    self.eval_tail(then, input, frame)
                } else if let Some(otherwise) = otherwise {
                    self.eval_tail(otherwise, input, frame)
                } else {
                    Ok(Tail::Value(None))
                }
            }
            Kind::Block(items) if !items.is_empty() => {
                let scope = Frame::child(frame);
                for item in &items[..items.len() - 1] {
                    self.eval(item, input, &scope)?;
                }
                self.eval_tail(&items[items.len() - 1], input, &scope)
            }
            _ => Ok(Tail::Value(self.eval(node, input, frame)?)),
        }
    }

    fn tail_call(
        &mut self,
        func_node: &Node,
        arg_nodes: &[Node],
        input: Option<&Val>,
        frame: &Rc<Frame>,
        pos: usize,
    ) -> Result<Tail> {
        let func = self.eval(func_node, input, frame)?;
        let mut args = Vec::with_capacity(arg_nodes.len());
        for arg in arg_nodes {
            args.push(self.eval(arg, input, frame)?);
        }
        match func {
            Some(func @ Val::Func(_)) if matches!(&func, Val::Func(f) if matches!(f.as_ref(), Func::Lambda { .. })) => {
                Ok(Tail::Call(func, args, pos))
            }
            Some(func @ Val::Func(_)) => {
                let result = self
                    .apply(&func, args, input, pos)
                    .map_err(|e| call_error(e, func_node, pos))?;
                Ok(Tail::Value(collapse(result, false)))
            }
            _ => Err(non_function_error(func_node, pos)),
        }
    }

    /// Applies `| pattern | update, delete |` to a copy of `target`. Values are immutable
    /// and shared, so matches are identified by object identity and the copy is rebuilt
    /// with the edits applied.
    fn transform(
        &mut self,
        target: Option<Val>,
        def: &TransformDef,
        scope: &Rc<Frame>,
    ) -> Result<Option<Val>> {
        let Some(target) = target else {
            return Ok(None);
        };
        let matches = self
            .eval(&def.pattern, Some(&target), scope)?
            .map(|m| m.items())
            .unwrap_or_default();
        let mut edits: HashMap<usize, Edit> = HashMap::new();
        for matched in matches {
            let Val::Obj(map) = &matched else { continue };
            let update = match self.eval(&def.update, Some(&matched), scope)? {
                None => ObjMap::new(),
                Some(Val::Obj(update)) => update.map.clone(),
                Some(other) => {
                    return Err(Error::at(
                        "T2011",
                        def.update.position,
                        format!(
                            "The insert/update clause of the transform expression must evaluate to an object: {}",
                            describe(Some(&other))
                        ),
                    ));
                }
            };
            let deletions = match &def.delete {
                None => Vec::new(),
                Some(delete) => self.transform_deletions(delete, &matched, scope)?,
            };
            let edit = edits.entry(Rc::as_ptr(map) as usize).or_default();
            edit.update.extend(update);
            edit.delete.extend(deletions);
        }
        self.charge(1)?;
        Ok(Some(apply_edits(&target, &edits)))
    }

    fn transform_deletions(
        &mut self,
        delete: &Node,
        matched: &Val,
        scope: &Rc<Frame>,
    ) -> Result<Vec<String>> {
        let Some(value) = self.eval(delete, Some(matched), scope)? else {
            return Ok(Vec::new());
        };
        let items = value.items();
        if !items.iter().all(|v| matches!(v, Val::Str(_))) {
            return Err(Error::at(
                "T2012",
                delete.position,
                format!(
                    "The delete clause of the transform expression must evaluate to a string or array of strings: {}",
                    describe(Some(&value))
                ),
            ));
        }
        Ok(items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect())
    }
}

#[derive(Default)]
struct Edit {
    update: ObjMap,
    delete: Vec<String>,
}

/// Rebuilds `value`, applying the edits keyed by object identity.
fn apply_edits(value: &Val, edits: &HashMap<usize, Edit>) -> Val {
    match value {
        Val::Arr(items, flags) => Val::Arr(
            Rc::new(items.iter().map(|v| apply_edits(v, edits)).collect()),
            *flags,
        ),
        Val::Obj(map) => {
            let mut rebuilt: ObjMap = map
                .iter()
                .map(|(k, v)| (k.clone(), apply_edits(v, edits)))
                .collect();
            if let Some(edit) = edits.get(&(Rc::as_ptr(map) as usize)) {
                for (k, v) in &edit.update {
                    rebuilt.insert(k.clone(), v.clone());
                }
                for k in &edit.delete {
                    rebuilt.shift_remove(k);
                }
            }
            Val::object(rebuilt)
        }
        other => other.clone(),
    }
}

/// Calls a host function with JSON arguments (functions cannot cross; they become undefined).
fn apply_host(f: &crate::NativeFunction, args: &[Option<Val>]) -> Result<Option<Val>> {
    let json_args: Vec<Option<serde_json::Value>> = args
        .iter()
        .map(|a| {
            a.as_ref()
                .filter(|v| !v.is_function())
                .and_then(|v| value::to_json(v).ok())
        })
        .collect();
    f(&json_args)?.as_ref().map(value::from_json).transpose()
}

/// Merges a partial application's bound arguments with the supplied ones.
fn fill_placeholders(bound: &[Option<Option<Val>>], args: Vec<Option<Val>>) -> Vec<Option<Val>> {
    let mut supplied = args.into_iter();
    bound
        .iter()
        .map(|b| match b {
            Some(v) => v.clone(),
            None => supplied.next().flatten(),
        })
        .collect()
}

/// T1005 (a known function called without `$`) or T1006.
fn non_function_error(func_node: &Node, pos: usize) -> Error {
    let name = func_node.function_name();
    if matches!(func_node.kind, Kind::Path { .. }) && functions::builtin(&name).is_some() {
        return Error::at(
            "T1005",
            pos,
            format!("Attempted to invoke a non-function. Did you mean ${name}?"),
        );
    }
    Error::at("T1006", pos, "Attempted to invoke a non-function")
}

fn call_error(error: Error, func_node: &Node, pos: usize) -> Error {
    functions::name_error(error, &func_node.function_name()).or_position(pos)
}

/// Whether a lambda body can end in a tail call (so it is run by the tail-call loop).
fn has_tail_position(body: &Node) -> bool {
    body.predicates.is_empty()
        && body.group.is_none()
        && !body.keep_array
        && matches!(
            body.kind,
            Kind::Call { .. } | Kind::Condition { .. } | Kind::Block(_)
        )
}

/// The outcome of evaluating a lambda body in tail position.
enum Tail {
    Value(Option<Val>),
    /// A lambda call still to be made: function, arguments, call position.
    Call(Val, Vec<Option<Val>>, usize),
}

/// One element of a tuple stream: the context value and the variables bound so far.
#[derive(Clone)]
struct Tuple {
    context: Val,
    bindings: Vec<(String, Val)>,
}

impl Tuple {
    fn bind(&mut self, name: &str, value: Val) {
        match self.bindings.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.bindings.push((name.to_string(), value)),
        }
    }
}

/// Combines a group's tuples: the context and every variable become the sequence of the
/// members' values (jsonata-js's `reduceTupleStream`).
fn merge_tuples(members: Vec<Tuple>) -> Tuple {
    let mut iter = members.into_iter();
    let Some(mut merged) = iter.next() else {
        return Tuple {
            context: Val::Null,
            bindings: Vec::new(),
        };
    };
    for tuple in iter {
        merged.context = append(Some(merged.context), Some(tuple.context)).unwrap_or(Val::Null);
        for (name, value) in tuple.bindings {
            let existing = merged
                .bindings
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone());
            merged.bind(&name, append(existing, Some(value)).unwrap_or(Val::Null));
        }
    }
    merged
}

fn duplicate_key(key_expr: &Node, key: String) -> Error {
    Error::at(
        "D1009",
        key_expr.position,
        format!(
            "Multiple key definitions evaluate to same key: {}",
            describe(Some(&Val::string(key)))
        ),
    )
}

/// Binds `#$i` positions when the index binding follows `after` predicates.
fn index_stage(binding: Option<&StepBinding>, after: usize, tuples: &mut [Tuple]) {
    if let Some((stage, name)) = binding.and_then(|b| b.index_stage.as_ref())
        && *stage == after
    {
        for (i, tuple) in tuples.iter_mut().enumerate() {
            tuple.bind(name, Val::Num(i as f64));
        }
    }
}

/// Whether a predicate result selects the item at `position` (numeric results are indexes).
fn selects(result: Option<&Val>, position: usize, len: f64) -> bool {
    match result {
        Some(Val::Num(n)) => index_matches(*n, position, len),
        Some(arr) if is_numeric_array(arr) => arr
            .items()
            .iter()
            .any(|v| index_matches(v.as_f64().unwrap_or(f64::NAN), position, len)),
        other => truthy(other).unwrap_or(false),
    }
}

/// Stable sort by precomputed keys: undefined sorts last; mixed types are `T2007`.
fn sort_keyed<T>(terms: &[SortTerm], mut keyed: Vec<(Vec<Option<Val>>, T)>) -> Result<Vec<T>> {
    let mut failure: Option<Error> = None;
    keyed.sort_by(|(a, _), (b, _)| {
        for (index, term) in terms.iter().enumerate() {
            let ordering = match (&a[index], &b[index]) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (Some(_), None) => return std::cmp::Ordering::Less,
                (Some(Val::Num(x)), Some(Val::Num(y))) => {
                    x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal)
                }
                (Some(Val::Str(x)), Some(Val::Str(y))) => functions::compare_strings(x, y),
                (Some(x), Some(y)) => {
                    failure.get_or_insert_with(|| {
                        Error::at(
                            "T2007",
                            term.expr.position,
                            format!(
                                "Type mismatch when comparing values {} and {} in order-by clause",
                                describe(Some(x)),
                                describe(Some(y))
                            ),
                        )
                    });
                    std::cmp::Ordering::Equal
                }
            };
            let ordering = if term.descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != std::cmp::Ordering::Equal {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(keyed.into_iter().map(|(_, item)| item).collect()),
    }
}

fn index_matches(n: f64, position: usize, len: f64) -> bool {
    let mut index = n.floor();
    if index < 0.0 {
        index += len;
    }
    index == position as f64
}

fn wildcard(input: Option<&Val>) -> Val {
    let mut out = Vec::new();
    let mut input = input;
    if let Some(Val::Arr(items, flags)) = input
        && flags.outer
        && !items.is_empty()
    {
        input = items.first();
    }
    match input {
        Some(Val::Obj(map)) => {
            for v in map.values() {
                flatten_into(v, &mut out);
            }
        }
        Some(Val::Arr(items, _)) => {
            for v in items.iter() {
                flatten_into(v, &mut out);
            }
        }
        _ => {}
    }
    Val::seq(out)
}

fn arithmetic(op: &str, left: Option<Val>, right: Option<Val>) -> Result<Option<Val>> {
    let l = match &left {
        None => None,
        Some(Val::Num(n)) => Some(*n),
        Some(_) => {
            return Err(Error::new(
                "T2001",
                format!("The left side of the {op:?} operator must evaluate to a number"),
            ));
        }
    };
    let r = match &right {
        None => None,
        Some(Val::Num(n)) => Some(*n),
        Some(_) => {
            return Err(Error::new(
                "T2002",
                format!("The right side of the {op:?} operator must evaluate to a number"),
            ));
        }
    };
    let (Some(l), Some(r)) = (l, r) else {
        return Ok(None);
    };
    let result = match op {
        "+" => l + r,
        "-" => l - r,
        "*" => l * r,
        "/" => l / r,
        _ => l % r,
    };
    if !result.is_finite() {
        return Err(Error::new(
            "D1001",
            format!("Number out of range: {}", value::format_number(result)),
        ));
    }
    Ok(Some(Val::Num(result)))
}

fn compare(op: &str, left: Option<Val>, right: Option<Val>) -> Result<Option<Val>> {
    let comparable = |v: &Option<Val>| matches!(v, None | Some(Val::Num(_)) | Some(Val::Str(_)));
    if !comparable(&left) || !comparable(&right) {
        return Err(Error::new(
            "T2010",
            format!(
                "The expressions either side of operator {op:?} must evaluate to numeric or string values"
            ),
        ));
    }
    let ordering = match (&left, &right) {
        (None, _) | (_, None) => return Ok(None),
        (Some(Val::Num(a)), Some(Val::Num(b))) => a.partial_cmp(b),
        (Some(Val::Str(a)), Some(Val::Str(b))) => Some(functions::compare_strings(a, b)),
        (Some(a), Some(b)) => {
            return Err(Error::new(
                "T2009",
                format!(
                    "The values {} and {} either side of operator {op:?} must be of the same data type",
                    describe(Some(a)),
                    describe(Some(b))
                ),
            ));
        }
    };
    let Some(ordering) = ordering else {
        return Ok(Some(Val::Bool(false)));
    };
    use std::cmp::Ordering::*;
    let result = match op {
        "<" => ordering == Less,
        "<=" => ordering != Greater,
        ">" => ordering == Greater,
        _ => ordering != Less,
    };
    Ok(Some(Val::Bool(result)))
}
