//! Redrive: a failed execution restarts from the top-level state that failed,
//! with that state's input, and keeps its history ids and token prefix.

use operon_asl::{Effect, Event, Execution, ExecutionParams, StateMachine, Status};
use serde_json::json;
use std::sync::Arc;

fn machine() -> Arc<StateMachine> {
    let def = json!({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Result": {"n": 1}, "Next": "Work"},
            "Work": {"Type": "Task", "Resource": "operon:http", "End": true}
        }
    });
    Arc::new(StateMachine::from_value(&def).expect("valid"))
}

fn task(effects: &[Effect]) -> (String, serde_json::Value) {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::InvokeTask { token, input, .. } => Some((token.clone(), input.clone())),
            _ => None,
        })
        .expect("a task")
}

#[test]
fn redrive_restarts_the_failed_state_with_its_input() {
    let params = ExecutionParams {
        token_prefix: Some("x-1.secret".into()),
        ..ExecutionParams::default()
    };
    let (mut ex, effects) = Execution::start(machine(), json!({}), params);
    let (token, input) = task(&effects);
    assert!(token.starts_with("x-1.secret-"), "{token}");
    assert_eq!(input, json!({"n": 1}));
    assert!(!ex.can_redrive());
    assert!(
        ex.redrive(10).is_none(),
        "a running execution cannot be redriven"
    );

    ex.handle(
        Event::TaskFailed {
            token: token.clone(),
            error: Some("Boom".into()),
            cause: None,
        },
        5,
    );
    assert_eq!(ex.outcome().unwrap().status, Status::Failed);
    assert!(ex.can_redrive());

    // Survives serialisation, as a durable host stores it.
    let text = serde_json::to_string(&ex).unwrap();
    let mut ex: Execution = serde_json::from_str::<Execution>(&text)
        .unwrap()
        .restore(machine());
    let effects = ex.redrive(20).expect("redrivable");
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::History(h) if h.kind == "ExecutionRedriven"))
    );
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::History(h) if h.kind == "PassStateEntered")),
        "Prepare is not re-run"
    );
    let (token2, input2) = task(&effects);
    assert_ne!(token, token2);
    assert_eq!(input2, json!({"n": 1}));
    assert!(ex.outcome().is_none());
    assert_eq!(
        ex.pending_tokens().collect::<Vec<_>>(),
        vec![token2.as_str()]
    );
    let effects = ex.handle(
        Event::TaskSucceeded {
            token: token2,
            output: json!("ok"),
        },
        30,
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Finished(o) if o.status == Status::Succeeded))
    );
    assert_eq!(ex.redrive_count(), 1);
    assert!(
        ex.redrive(40).is_none(),
        "a succeeded execution cannot be redriven"
    );
}

#[test]
fn a_callback_task_sees_its_own_token_in_its_arguments() {
    let def = json!({
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "operon:http.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token"},
                "End": true
            }
        }
    });
    let machine = Arc::new(StateMachine::from_value(&def).expect("valid"));
    let (_ex, effects) = Execution::start(machine, json!({}), ExecutionParams::default());
    let (token, input) = task(&effects);
    assert_eq!(input, json!({"token": token}));
}
