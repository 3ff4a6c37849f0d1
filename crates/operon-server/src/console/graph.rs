//! A workflow's state graph as an inline SVG, marked with an execution's progress.
//!
//! Why it is shaped this way: the execution page must show where a run is
//! without any script (the CSP allows none inline), so the server draws the
//! graph. The module is pure — a definition and history events in, a string
//! out — so every layout and marking rule is unit-tested without a server.
//! Layout is deliberately simple and deterministic: layers by longest path
//! from `StartAt` (back edges of loops ignored), boxes of fixed size, Map and
//! Parallel states drawn as group boxes holding their branches laid out the
//! same way. Colours live in `app.css`, keyed by the classes set here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use super::escape;

/// Width of one state box.
const BOX_WIDTH: u32 = 180;
/// Height of one state box.
const BOX_HEIGHT: u32 = 44;
/// Horizontal gap between boxes of a layer, and between branches.
const GAP_X: u32 = 24;
/// Vertical gap between layers.
const GAP_Y: u32 = 36;
/// Padding inside a group box around its branches, and its title's height.
const GROUP_PAD: u32 = 12;
const GROUP_TITLE: u32 = 22;

/// How far an execution got in one state, as a CSS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Visited,
    Current,
    Failed,
}

impl Progress {
    fn class(self) -> &'static str {
        match self {
            Progress::Visited => "visited",
            Progress::Current => "current",
            Progress::Failed => "failed",
        }
    }
}

/// Reads the history: states entered are visited; the last state entered and
/// not exited is current while the execution runs, failed when it failed.
fn progress(events: &[Value]) -> BTreeMap<String, Progress> {
    let mut marks = BTreeMap::new();
    let mut open: Vec<String> = Vec::new();
    let mut failed = false;
    for event in events {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        let name = event.get("name").and_then(Value::as_str);
        if kind.ends_with("StateEntered") {
            if let Some(name) = name {
                marks.insert(name.to_string(), Progress::Visited);
                open.push(name.to_string());
            }
        } else if kind.ends_with("StateExited")
            && let Some(at) = open
                .iter()
                .rposition(|entered| Some(entered.as_str()) == name)
        {
            open.remove(at);
        } else if matches!(
            kind,
            "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted"
        ) {
            failed = true;
        } else if kind == "ExecutionSucceeded" {
            open.clear();
        }
    }
    if let Some(last) = open.last() {
        let mark = if failed {
            Progress::Failed
        } else {
            Progress::Current
        };
        marks.insert(last.clone(), mark);
    }
    marks
}

/// One state box, or a group box holding branch machines.
struct Node {
    name: String,
    kind: String,
    /// (target, is a Catch edge), in definition order.
    edges: Vec<(String, bool)>,
    branches: Vec<Machine>,
    width: u32,
    height: u32,
}

/// A state machine (top level, a Parallel branch or a Map iterator), laid out.
struct Machine {
    /// State names in definition order.
    order: Vec<String>,
    nodes: BTreeMap<String, Node>,
    /// Layer of each state.
    layers: BTreeMap<String, usize>,
    width: u32,
    height: u32,
}

/// Draws `definition` (ASL JSON) with the progress recorded in `events`.
/// A malformed definition draws what it can; it never panics.
pub(crate) fn render(definition: &Value, events: &[Value]) -> String {
    let machine = Machine::parse(definition);
    let marks = progress(events);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
        w = machine.width,
        h = machine.height
    );
    svg.push_str(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>"#,
    );
    machine.draw(&mut svg, 0, 0, &marks);
    svg.push_str("</svg>");
    svg
}

impl Machine {
    fn parse(definition: &Value) -> Machine {
        let mut order = Vec::new();
        let mut nodes = BTreeMap::new();
        if let Some(states) = definition.get("States").and_then(Value::as_object) {
            for (name, state) in states {
                order.push(name.clone());
                nodes.insert(name.clone(), Node::parse(name, state));
            }
        }
        let start = definition
            .get("StartAt")
            .and_then(Value::as_str)
            .unwrap_or("");
        let layers = layer(start, &order, &nodes);
        let mut machine = Machine {
            order,
            nodes,
            layers,
            width: 0,
            height: 0,
        };
        machine.measure();
        machine
    }

    /// The states of each layer, in definition order.
    fn rows(&self) -> Vec<Vec<&Node>> {
        let count = self.layers.values().max().map_or(0, |deepest| deepest + 1);
        let mut rows: Vec<Vec<&Node>> = vec![Vec::new(); count];
        for name in &self.order {
            if let (Some(layer), Some(node)) = (self.layers.get(name), self.nodes.get(name)) {
                rows[*layer].push(node);
            }
        }
        rows
    }

    fn row_width(row: &[&Node]) -> u32 {
        let boxes: u32 = row.iter().map(|node| node.width).sum();
        boxes + GAP_X * (row.len() as u32).saturating_sub(1)
    }

    fn measure(&mut self) {
        let rows = self.rows();
        let width = rows.iter().map(|row| Self::row_width(row)).max();
        let heights: Vec<u32> = rows
            .iter()
            .map(|row| row.iter().map(|node| node.height).max().unwrap_or(0))
            .collect();
        let height = heights.iter().sum::<u32>() + GAP_Y * (heights.len() as u32).saturating_sub(1);
        self.width = width.unwrap_or(0).max(BOX_WIDTH);
        self.height = height.max(BOX_HEIGHT);
    }

    /// The box of every state, (x, y, width, height), rows centred.
    fn positions(&self, left: u32, top: u32) -> BTreeMap<&str, (u32, u32, u32, u32)> {
        let mut placed = BTreeMap::new();
        let mut y = top;
        for row in self.rows() {
            let mut x = left + (self.width - Self::row_width(&row)) / 2;
            let row_height = row.iter().map(|node| node.height).max().unwrap_or(0);
            for node in row {
                placed.insert(node.name.as_str(), (x, y, node.width, node.height));
                x += node.width + GAP_X;
            }
            y += row_height + GAP_Y;
        }
        placed
    }

    fn draw(&self, svg: &mut String, left: u32, top: u32, marks: &BTreeMap<String, Progress>) {
        let placed = self.positions(left, top);
        for name in &self.order {
            let (Some(node), Some(&from)) = (self.nodes.get(name), placed.get(name.as_str()))
            else {
                continue;
            };
            for (target, catch) in &node.edges {
                // An unknown target is drawn as nothing: validation reports it.
                if let Some(&to) = placed.get(target.as_str()) {
                    draw_edge(svg, from, to, *catch);
                }
            }
        }
        for name in &self.order {
            if let (Some(node), Some(&at)) = (self.nodes.get(name), placed.get(name.as_str())) {
                node.draw(svg, at, marks);
            }
        }
    }
}

/// Longest-path layers from `start`, ignoring the back edges of loops;
/// states not reachable from `start` go in one layer below the rest.
fn layer(start: &str, order: &[String], nodes: &BTreeMap<String, Node>) -> BTreeMap<String, usize> {
    let mut forward: BTreeSet<(String, String)> = BTreeSet::new();
    let mut on_path = BTreeSet::new();
    let mut seen = BTreeSet::new();
    if nodes.contains_key(start) {
        collect_forward(start, nodes, &mut on_path, &mut seen, &mut forward);
    }
    let mut layers: BTreeMap<String, usize> = BTreeMap::new();
    if nodes.contains_key(start) {
        layers.insert(start.to_string(), 0);
    }
    // Relax forward edges; on a DAG of n states n rounds reach the fixpoint.
    for _ in 0..order.len() {
        let mut changed = false;
        for (from, to) in &forward {
            if let Some(&depth) = layers.get(from) {
                let current = layers.get(to).copied();
                if current.is_none_or(|layer| layer < depth + 1) {
                    layers.insert(to.clone(), depth + 1);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let below = layers.values().max().map_or(0, |deepest| deepest + 1);
    for name in order {
        layers.entry(name.clone()).or_insert(below);
    }
    layers
}

/// Depth-first walk recording the edges that are not back edges.
fn collect_forward(
    name: &str,
    nodes: &BTreeMap<String, Node>,
    on_path: &mut BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    forward: &mut BTreeSet<(String, String)>,
) {
    seen.insert(name.to_string());
    on_path.insert(name.to_string());
    if let Some(node) = nodes.get(name) {
        for (target, _) in &node.edges {
            if !nodes.contains_key(target) || on_path.contains(target) {
                continue;
            }
            forward.insert((name.to_string(), target.clone()));
            if !seen.contains(target) {
                collect_forward(target, nodes, on_path, seen, forward);
            }
        }
    }
    on_path.remove(name);
}

impl Node {
    fn parse(name: &str, state: &Value) -> Node {
        let kind = state
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let mut edges = Vec::new();
        let mut push = |target: Option<&Value>, catch: bool| {
            if let Some(target) = target.and_then(Value::as_str) {
                edges.push((target.to_string(), catch));
            }
        };
        push(state.get("Next"), false);
        for choice in array(state.get("Choices")) {
            push(choice.get("Next"), false);
        }
        push(state.get("Default"), false);
        for catcher in array(state.get("Catch")) {
            push(catcher.get("Next"), true);
        }
        let branches: Vec<Machine> = match kind.as_str() {
            "Parallel" => array(state.get("Branches")).map(Machine::parse).collect(),
            "Map" => state
                .get("ItemProcessor")
                .or_else(|| state.get("Iterator"))
                .map(Machine::parse)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        let (width, height) = if branches.is_empty() {
            (BOX_WIDTH, BOX_HEIGHT)
        } else {
            let inner: u32 = branches.iter().map(|branch| branch.width).sum::<u32>()
                + GAP_X * (branches.len() as u32 - 1);
            let tallest = branches
                .iter()
                .map(|branch| branch.height)
                .max()
                .unwrap_or(0);
            (
                (inner + 2 * GROUP_PAD).max(BOX_WIDTH),
                tallest + 2 * GROUP_PAD + GROUP_TITLE,
            )
        };
        Node {
            name: name.to_string(),
            kind,
            edges,
            branches,
            width,
            height,
        }
    }

    fn draw(
        &self,
        svg: &mut String,
        (x, y, w, h): (u32, u32, u32, u32),
        marks: &BTreeMap<String, Progress>,
    ) {
        let mut class = if self.branches.is_empty() {
            String::from("state")
        } else {
            String::from("state group")
        };
        if let Some(mark) = marks.get(&self.name) {
            class.push(' ');
            class.push_str(mark.class());
        }
        let _ = write!(
            svg,
            r#"<g class="{class}" data-state="{name}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6"/>"#,
            name = escape(&self.name)
        );
        let label = format!("{} ({})", self.name, self.kind);
        if self.branches.is_empty() {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text></g>"#,
                x + w / 2,
                y + h / 2 + 5,
                escape(&label)
            );
            return;
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}">{}</text></g>"#,
            x + GROUP_PAD,
            y + GROUP_TITLE - 4,
            escape(&label)
        );
        let inner: u32 = self.branches.iter().map(|branch| branch.width).sum::<u32>()
            + GAP_X * (self.branches.len() as u32 - 1);
        let mut left = x + (w - inner) / 2;
        for branch in &self.branches {
            branch.draw(svg, left, y + GROUP_TITLE + GROUP_PAD, marks);
            left += branch.width + GAP_X;
        }
    }
}

fn array(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

/// A line from the bottom of one box to the top of another (or, going up a
/// loop, from its top to the other's bottom).
fn draw_edge(svg: &mut String, from: (u32, u32, u32, u32), to: (u32, u32, u32, u32), catch: bool) {
    let class = if catch { "edge catch" } else { "edge" };
    let (x1, x2) = (from.0 + from.2 / 2, to.0 + to.2 / 2);
    let (y1, y2) = if to.1 > from.1 {
        (from.1 + from.3, to.1)
    } else {
        (from.1, to.1 + to.3)
    };
    let _ = write!(
        svg,
        r#"<line class="{class}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" marker-end="url(#arrow)"/>"#
    );
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
