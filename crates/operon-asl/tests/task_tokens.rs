//! Task tokens with a key: independent values per task, the same after a
//! restore, and none derivable from a sibling.

use operon_asl::{Effect, Execution, ExecutionParams, StateMachine};
use serde_json::json;
use std::sync::Arc;

fn machine() -> Arc<StateMachine> {
    let task = json!({"Type": "Task", "Resource": "operon:http.waitForTaskToken", "End": true});
    let def = json!({
        "StartAt": "Both",
        "States": {"Both": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": task}},
            {"StartAt": "B", "States": {"B": task}}
        ]}}
    });
    Arc::new(StateMachine::from_value(&def).expect("valid"))
}

fn tokens(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::InvokeTask { token, .. } => Some(token.clone()),
            _ => None,
        })
        .collect()
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

#[test]
fn keyed_tokens_share_nothing_but_their_marker() {
    let params = ExecutionParams {
        token_prefix: Some("ott_".into()),
        token_key: Some("9f".repeat(32)),
        ..ExecutionParams::default()
    };
    let (ex, effects) = Execution::start(machine(), json!({}), params.clone());
    let found = tokens(&effects);
    assert_eq!(found.len(), 2, "{effects:?}");
    for token in &found {
        assert!(token.starts_with("ott_"), "{token}");
        assert_eq!(token.len(), 4 + 64, "{token}");
        assert!(!token.contains(&params.name), "{token}");
    }
    assert_eq!(common_prefix(&found[0], &found[1]), 4, "{found:?}");
    let mut pending: Vec<&str> = ex.pending_tokens().collect();
    pending.sort();
    let mut expected: Vec<&str> = found.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(pending, expected);

    // Same inputs, same tokens: a restored execution goes on with its key.
    let (_, again) = Execution::start(machine(), json!({}), params.clone());
    assert_eq!(tokens(&again), found);
    // Another key, other tokens.
    let other = ExecutionParams {
        token_key: Some("a0".repeat(32)),
        ..params
    };
    let (_, theirs) = Execution::start(machine(), json!({}), other);
    for token in tokens(&theirs) {
        assert!(!found.contains(&token));
    }
}

#[test]
fn without_a_key_tokens_stay_sequential() {
    let params = ExecutionParams {
        token_prefix: Some("x-1.s".into()),
        ..ExecutionParams::default()
    };
    let (_, effects) = Execution::start(machine(), json!({}), params);
    let mut found = tokens(&effects);
    found.sort();
    assert_eq!(found, ["x-1.s-00000001", "x-1.s-00000002"]);
}
