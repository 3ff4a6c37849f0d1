//! Unit tests of the workflow graph: layout, edges, groups, escaping, marks.

use serde_json::{Value, json};

use super::{Machine, render};

fn layers(definition: &Value) -> Vec<(String, usize)> {
    let machine = Machine::parse(definition);
    machine
        .order
        .iter()
        .map(|name| (name.clone(), machine.layers[name]))
        .collect()
}

fn layer_of(definition: &Value, name: &str) -> usize {
    Machine::parse(definition).layers[name]
}

/// The `<g>` element of one state, up to its closing `>`.
fn state_tag(svg: &str, name: &str) -> String {
    let marker = format!(r#"data-state="{name}""#);
    let end = svg.find(&marker).expect("state drawn");
    let start = svg[..end].rfind("<g ").expect("group start");
    svg[start..end].to_string()
}

fn entered(name: &str) -> Value {
    json!({"type": "TaskStateEntered", "name": name})
}

fn exited(name: &str) -> Value {
    json!({"type": "TaskStateExited", "name": name})
}

#[test]
fn longest_path_puts_a_join_below_both_paths() {
    let definition = json!({"StartAt": "A", "States": {
        "A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "B"}], "Default": "D"},
        "B": {"Type": "Pass", "Next": "C"},
        "C": {"Type": "Pass", "Next": "D"},
        "D": {"Type": "Succeed"}
    }});
    assert_eq!(
        layers(&definition),
        vec![
            ("A".to_string(), 0),
            ("B".to_string(), 1),
            ("C".to_string(), 2),
            ("D".to_string(), 3)
        ]
    );
}

#[test]
fn a_choice_draws_an_edge_per_branch_and_default() {
    let definition = json!({"StartAt": "Pick", "States": {
        "Pick": {"Type": "Choice", "Choices": [
            {"Variable": "$.x", "NumericEquals": 1, "Next": "One"},
            {"Variable": "$.x", "NumericEquals": 2, "Next": "Two"}
        ], "Default": "Other"},
        "One": {"Type": "Succeed"},
        "Two": {"Type": "Succeed"},
        "Other": {"Type": "Fail"}
    }});
    let svg = render(&definition, &[]);
    assert_eq!(svg.matches(r#"<line class="edge""#).count(), 3);
    for branch in ["One", "Two", "Other"] {
        assert_eq!(layer_of(&definition, branch), 1, "{branch}");
    }
    assert!(svg.contains("Pick (Choice)"));
}

#[test]
fn a_catch_is_a_distinct_edge() {
    let definition = json!({"StartAt": "Work", "States": {
        "Work": {"Type": "Task", "Resource": "x", "Next": "Done",
                 "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}]},
        "Done": {"Type": "Succeed"},
        "Recover": {"Type": "Fail"}
    }});
    let svg = render(&definition, &[]);
    assert_eq!(svg.matches(r#"<line class="edge catch""#).count(), 1);
    assert_eq!(svg.matches(r#"<line class="edge""#).count(), 1);
    assert_eq!(layer_of(&definition, "Recover"), 1);
}

#[test]
fn a_loop_back_edge_does_not_push_layers_down() {
    let definition = json!({"StartAt": "Poll", "States": {
        "Poll": {"Type": "Task", "Resource": "x", "Next": "Ready?"},
        "Ready?": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": false, "Next": "Poll"}], "Default": "End"},
        "End": {"Type": "Succeed"}
    }});
    assert_eq!(layer_of(&definition, "Poll"), 0);
    assert_eq!(layer_of(&definition, "Ready?"), 1);
    assert_eq!(layer_of(&definition, "End"), 2);
    // The back edge is still drawn, going up.
    assert_eq!(render(&definition, &[]).matches("<line ").count(), 3);
}

#[test]
fn parallel_and_map_are_groups_holding_their_states() {
    let definition = json!({"StartAt": "Fan", "States": {
        "Fan": {"Type": "Parallel", "Next": "Each", "Branches": [
            {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": true}}},
            {"StartAt": "Right1", "States": {"Right1": {"Type": "Pass", "Next": "Right2"}, "Right2": {"Type": "Pass", "End": true}}}
        ]},
        "Each": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": true}}}}
    }});
    let machine = Machine::parse(&definition);
    let fan = &machine.nodes["Fan"];
    assert_eq!(fan.branches.len(), 2);
    // Two branches side by side, the taller one two layers deep.
    assert_eq!(
        fan.width,
        2 * super::BOX_WIDTH + super::GAP_X + 2 * super::GROUP_PAD
    );
    assert!(fan.height > 2 * super::BOX_HEIGHT + super::GAP_Y);
    assert_eq!(machine.nodes["Each"].branches.len(), 1);
    let svg = render(&definition, &[]);
    assert!(state_tag(&svg, "Fan").contains("state group"));
    assert!(state_tag(&svg, "Each").contains("state group"));
    // The inner states are drawn after (inside) their group.
    let fan_at = svg.find(r#"data-state="Fan""#).unwrap();
    let left_at = svg.find(r#"data-state="Left""#).unwrap();
    let item_at = svg.find(r#"data-state="Item""#).unwrap();
    assert!(fan_at < left_at && left_at < item_at);
    assert!(svg.contains("Right2 (Pass)"));
}

#[test]
fn the_old_map_iterator_field_is_drawn_too() {
    let definition = json!({"StartAt": "Each", "States": {
        "Each": {"Type": "Map", "End": true, "Iterator": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": true}}}}
    }});
    assert!(render(&definition, &[]).contains(r#"data-state="Item""#));
}

#[test]
fn names_are_escaped() {
    let definition = json!({"StartAt": "a<b&c\"d'", "States": {
        "a<b&c\"d'": {"Type": "Pass", "Next": "</svg>"},
        "</svg>": {"Type": "Succeed"}
    }});
    let svg = render(&definition, &[]);
    assert!(svg.contains("a&lt;b&amp;c&quot;d&#39; (Pass)"));
    assert!(svg.contains(r#"data-state="a&lt;b&amp;c&quot;d&#39;""#));
    assert!(svg.contains("&lt;/svg&gt; (Succeed)"));
    assert_eq!(svg.matches("</svg>").count(), 1);
    assert!(!svg.contains("a<b"));
}

#[test]
fn visited_current_and_failed_marks() {
    let definition = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Task", "Resource": "x", "Next": "C"},
        "C": {"Type": "Succeed"}
    }});
    let running = [entered("A"), exited("A"), entered("B")];
    let svg = render(&definition, &running);
    assert!(state_tag(&svg, "A").contains(r#"class="state visited""#));
    assert!(state_tag(&svg, "B").contains(r#"class="state current""#));
    assert!(state_tag(&svg, "C").contains(r#"class="state""#));

    let mut failed = running.to_vec();
    failed.push(json!({"type": "ExecutionFailed", "error": "x"}));
    let svg = render(&definition, &failed);
    assert!(state_tag(&svg, "B").contains(r#"class="state failed""#));
    assert!(state_tag(&svg, "A").contains(r#"class="state visited""#));

    let mut done = running.to_vec();
    done.extend([
        exited("B"),
        entered("C"),
        exited("C"),
        json!({"type": "ExecutionSucceeded"}),
    ]);
    let svg = render(&definition, &done);
    for name in ["A", "B", "C"] {
        assert!(
            state_tag(&svg, name).contains(r#"class="state visited""#),
            "{name}"
        );
    }
    assert!(!svg.contains("current"));
}

#[test]
fn an_unknown_next_or_garbage_is_not_a_panic() {
    let definition = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "Nowhere"},
        "Orphan": {"Type": "Succeed"}
    }});
    let svg = render(&definition, &[Value::Null, json!({"type": 3})]);
    assert_eq!(svg.matches("<line ").count(), 0);
    assert_eq!(layer_of(&definition, "Orphan"), 1);
    let nothing = render(&json!("not a definition"), &[]);
    assert!(nothing.starts_with("<svg") && nothing.ends_with("</svg>"));
    let no_start = render(
        &json!({"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": true}}}),
        &[],
    );
    assert!(no_start.contains(r#"data-state="A""#));
    let bad_branches = render(
        &json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": "x", "End": true}}}),
        &[],
    );
    assert!(bad_branches.contains(r#"data-state="P""#));
}

#[test]
fn sizes_are_deterministic() {
    let definition = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}
    }});
    let svg = render(&definition, &[]);
    assert_eq!(svg, render(&definition, &[]));
    let height = 2 * super::BOX_HEIGHT + super::GAP_Y;
    assert!(svg.contains(&format!(
        r#"width="{}" height="{height}""#,
        super::BOX_WIDTH
    )));
}
