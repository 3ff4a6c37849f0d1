//! Resolution of the parent operator `%` (jsonata-js's "ancestry" post-parse step).
//!
//! Each `%` gets a label. Walking up from the `%`, the label is attached to the path step
//! whose *input* is the wanted parent (`%.%` goes one step further back). That step then
//! binds the label to its input context in the path's tuple stream, and `%` evaluates to the
//! binding. Supported ancestors are name and wildcard steps (and further `%` steps); other
//! step kinds fail with `S0217`, as do `%` outside a path.

use crate::ast::{Kind, Node};
use crate::error::{Error, Result};

/// An unresolved `%`: its label and how many steps up it still has to go.
struct Slot {
    label: String,
    level: u32,
    position: usize,
}

fn underivable(position: usize) -> Error {
    Error::at(
        "S0217",
        position,
        "The object representing the 'parent' cannot be derived from this expression",
    )
}

/// Resolves every `%` in the tree; any `%` left unresolved at the top is `S0217`.
pub(crate) fn resolve(root: &mut Node) -> Result<()> {
    match resolve_node(root)?.first() {
        Some(slot) => Err(underivable(slot.position)),
        None => Ok(()),
    }
}

fn resolve_node(node: &mut Node) -> Result<Vec<Slot>> {
    let mut slots = match &mut node.kind {
        Kind::Path { steps, .. } => resolve_path(steps)?,
        _ => resolve_children(node)?,
    };
    if !matches!(node.kind, Kind::Path { .. }) {
        for predicate in &mut node.predicates {
            slots.extend(resolve_node(predicate)?);
        }
    }
    if let Some(group) = &mut node.group {
        for (key, value) in group.iter_mut() {
            slots.extend(resolve_node(key)?);
            slots.extend(resolve_node(value)?);
        }
    }
    Ok(slots)
}

/// Slots from the node's own sub-expressions (not its predicates or grouping).
fn resolve_children(node: &mut Node) -> Result<Vec<Slot>> {
    let position = node.position;
    let mut slots = Vec::new();
    let mut visit = |child: &mut Node| -> Result<()> {
        slots.extend(resolve_node(child)?);
        Ok(())
    };
    match &mut node.kind {
        Kind::Parent(label) => {
            return Ok(vec![Slot {
                label: label.clone(),
                level: 1,
                position,
            }]);
        }
        Kind::Binary { lhs, rhs, .. } | Kind::Apply { lhs, rhs } => {
            visit(lhs)?;
            visit(rhs)?;
        }
        Kind::Negate(operand) => visit(operand)?,
        Kind::Array { items, .. } | Kind::Block(items) => {
            items.iter_mut().try_for_each(&mut visit)?
        }
        Kind::Object(pairs) => {
            for (key, value) in pairs.iter_mut() {
                visit(key)?;
                visit(value)?;
            }
        }
        Kind::Condition {
            condition,
            then,
            otherwise,
        } => {
            visit(condition)?;
            visit(then)?;
            if let Some(otherwise) = otherwise {
                visit(otherwise)?;
            }
        }
        Kind::Bind { value, .. } => visit(value)?,
        Kind::Call { func, args } | Kind::Partial { func, args } => {
            visit(func)?;
            args.iter_mut().try_for_each(&mut visit)?;
        }
        Kind::Sort(terms) => terms.iter_mut().try_for_each(|t| visit(&mut t.expr))?,
        Kind::Path { .. } => slots.extend(resolve_node(node)?),
        // Lambda bodies and transforms are separate scopes: a `%` inside must resolve there.
        Kind::Lambda(_) | Kind::Transform(_) => {}
        Kind::Str(_)
        | Kind::Num(_)
        | Kind::Bool(_)
        | Kind::Null
        | Kind::Name(_)
        | Kind::Var(_)
        | Kind::Wildcard
        | Kind::Descendant
        | Kind::Regex(_)
        | Kind::Placeholder => {}
    }
    Ok(slots)
}

fn resolve_path(steps: &mut [Node]) -> Result<Vec<Slot>> {
    let mut unresolved = Vec::new();
    for index in 0..steps.len() {
        let own = resolve_children(&mut steps[index])?;
        let mut from_predicates = Vec::new();
        for predicate in &mut steps[index].predicates {
            from_predicates.extend(resolve_node(predicate)?);
        }
        if let Some(group) = &mut steps[index].group {
            for (key, value) in group.iter_mut() {
                from_predicates.extend(resolve_node(key)?);
                from_predicates.extend(resolve_node(value)?);
            }
        }
        for slot in own {
            unresolved.extend(seek_back(steps, index, slot)?);
        }
        for mut slot in from_predicates {
            // A predicate's context is the step's own output: its parent is the step's input.
            if slot.level == 1 {
                slot = seek_parent(&mut steps[index], slot)?;
                if slot.level == 0 {
                    continue;
                }
            } else {
                slot.level -= 1;
            }
            unresolved.extend(seek_back(steps, index, slot)?);
        }
    }
    Ok(unresolved)
}

/// Walks the steps before `index` until the slot is resolved; returns it if still pending.
fn seek_back(steps: &mut [Node], index: usize, mut slot: Slot) -> Result<Option<Slot>> {
    let mut previous = index;
    while slot.level > 0 {
        if previous == 0 {
            return Ok(Some(slot));
        }
        previous -= 1;
        slot = seek_parent(&mut steps[previous], slot)?;
    }
    Ok(None)
}

fn seek_parent(step: &mut Node, mut slot: Slot) -> Result<Slot> {
    match &step.kind {
        Kind::Name(_) | Kind::Wildcard => {
            slot.level -= 1;
            if slot.level == 0 {
                step.binding
                    .get_or_insert_with(Box::default)
                    .ancestors
                    .push(slot.label.clone());
            }
            Ok(slot)
        }
        Kind::Parent(_) => {
            slot.level += 1;
            Ok(slot)
        }
        _ => Err(underivable(slot.position)),
    }
}
