//! A deliberately simple matcher, the yardstick the compiled [`crate::Matcher`]
//! is tested against: it lists every leaf of the event with its full dotted
//! path and array positions, and tries every combination of leaves for every
//! branch of the pattern. Slow, but easy to check by reading.

use crate::event::{Scalar, compatible};
use crate::json::{self, Json};
use crate::number::comparable;
use crate::pattern::{Branch, Pattern, ValueMatcher};

struct RefLeaf {
    path: String,
    value: Json,
    positions: Vec<(u32, u32)>,
}

/// Whether `pattern` matches `event_json`, or None if the event is not a JSON object.
/// A key repeated in one object contributes every one of its values, as in
/// the streaming matcher (and event-ruler's streaming JSON reader).
pub fn matches(pattern: &Pattern, event_json: &str) -> Option<bool> {
    let event = json::parse_keeping_duplicates(event_json).ok()?;
    if !matches!(event, Json::Object(_)) {
        return None;
    }
    let mut leaves = Vec::new();
    let mut arrays = 0;
    collect(&event, "", &mut Vec::new(), &mut arrays, &mut leaves);
    Some(pattern.branches.iter().any(|b| branch_matches(b, &leaves)))
}

fn collect(
    value: &Json,
    path: &str,
    positions: &mut Vec<(u32, u32)>,
    arrays: &mut u32,
    out: &mut Vec<RefLeaf>,
) {
    match value {
        Json::Object(members) => {
            for (key, child) in members {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                collect(child, &child_path, positions, arrays, out);
            }
        }
        Json::Array(items) => {
            let id = *arrays;
            *arrays += 1;
            for (i, item) in items.iter().enumerate() {
                positions.push((id, i as u32));
                collect(item, path, positions, arrays, out);
                positions.pop();
            }
        }
        leaf => out.push(RefLeaf {
            path: path.to_string(),
            value: leaf.clone(),
            positions: positions.clone(),
        }),
    }
}

fn scalar(value: &Json) -> Scalar<'_> {
    match value {
        Json::String(s) => Scalar::Str(s),
        Json::Number(text) => Scalar::Number {
            text,
            value: comparable(text),
        },
        Json::Bool(b) => Scalar::Bool(*b),
        _ => Scalar::Null,
    }
}

/// Every field needs one leaf (or, for `exists: false`, possibly none) such
/// that all chosen leaves are mutually compatible.
fn branch_matches(branch: &Branch, leaves: &[RefLeaf]) -> bool {
    let mut chosen: Vec<&RefLeaf> = Vec::new();
    choose(branch, 0, leaves, &mut chosen, &mut Vec::new())
}

fn choose<'l>(
    branch: &'l Branch,
    field: usize,
    leaves: &'l [RefLeaf],
    chosen: &mut Vec<&'l RefLeaf>,
    absent: &mut Vec<&'l str>,
) -> bool {
    let Some(condition) = branch.fields.get(field) else {
        return absent.iter().all(|path| {
            !leaves.iter().any(|l| {
                l.path == *path
                    && chosen
                        .iter()
                        .all(|c| compatible(&c.positions, &l.positions))
            })
        });
    };
    for leaf in leaves.iter().filter(|l| l.path == condition.path) {
        let fits = chosen
            .iter()
            .all(|c| compatible(&c.positions, &leaf.positions));
        if fits
            && condition
                .matchers
                .iter()
                .any(|m| m.matches(&scalar(&leaf.value)))
        {
            chosen.push(leaf);
            if choose(branch, field + 1, leaves, chosen, absent) {
                return true;
            }
            chosen.pop();
        }
    }
    if condition.matchers.contains(&ValueMatcher::Exists(false)) {
        absent.push(&condition.path);
        if choose(branch, field + 1, leaves, chosen, absent) {
            return true;
        }
        absent.pop();
    }
    false
}
