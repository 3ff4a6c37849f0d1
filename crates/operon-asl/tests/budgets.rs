//! Execution budgets: a step yields after its transition budget and resumes
//! on the timer it asked for, with the same result as an unbounded run; the
//! history limit fails a runaway execution.

use std::sync::Arc;

use operon_asl::{Effect, Event, Execution, ExecutionParams, StateMachine, Status};
use serde_json::{Value, json};

/// Counts `$.n` up to `$.to` with a Pass and a Choice: two transitions a lap.
fn counter() -> Arc<StateMachine> {
    let def = json!({
        "StartAt": "Check",
        "States": {
            "Check": {"Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericLessThanPath": "$.to", "Next": "Add"}],
                "Default": "Done"},
            "Add": {"Type": "Pass",
                "Parameters": {"n.$": "States.MathAdd($.n, 1)", "to.$": "$.to"},
                "Next": "Check"},
            "Done": {"Type": "Succeed"}
        }
    });
    Arc::new(StateMachine::from_value(&def).unwrap())
}

fn resume_timer(effects: &[Effect]) -> Option<u64> {
    effects.iter().find_map(|e| match e {
        Effect::StartTimer { id, fire_at_millis } => {
            assert_eq!(*fire_at_millis, 5, "due at once");
            Some(*id)
        }
        _ => None,
    })
}

fn params(per_step: Option<u64>, history: Option<u64>) -> ExecutionParams {
    ExecutionParams {
        start_time_millis: 5,
        max_transitions_per_step: per_step,
        max_history_events: history,
        ..ExecutionParams::default()
    }
}

#[test]
fn a_step_yields_after_its_budget_and_resumes_on_its_timer() {
    let input = json!({"n": 0, "to": 100});
    let (whole, _) = Execution::start(counter(), input.clone(), params(None, None));
    let expected = whole.outcome().unwrap().clone();

    let (mut ex, mut effects) = Execution::start(counter(), input, params(Some(10), None));
    let mut steps = 1;
    while ex.outcome().is_none() {
        let transitions = ex.transitions();
        assert!(
            transitions <= 10 * steps,
            "{transitions} after {steps} steps"
        );
        let timer = resume_timer(&effects).expect("a yielded step asks to be resumed");
        // A yielded execution survives being stored between steps.
        let stored = serde_json::to_string(&ex).unwrap();
        ex = serde_json::from_str::<Execution>(&stored)
            .unwrap()
            .restore(counter());
        effects = ex.handle(Event::TimerFired { id: timer }, 5);
        steps += 1;
    }
    assert_eq!(ex.outcome().unwrap(), &expected);
    assert_eq!(ex.transitions(), whole.transitions());
    assert!(steps >= 20, "yielded {steps} times");
}

#[test]
fn a_runaway_loop_fails_at_the_history_limit() {
    let forever = json!({"StartAt": "Spin", "States": {"Spin": {"Type": "Pass", "Next": "Spin"}}});
    let machine = Arc::new(StateMachine::from_value(&forever).unwrap());
    let (mut ex, mut effects) =
        Execution::start(machine, json!({}), params(Some(500), Some(25_000)));
    let mut history = 0usize;
    while ex.outcome().is_none() {
        history += effects
            .iter()
            .filter(|e| matches!(e, Effect::History(_)))
            .count();
        let timer = resume_timer(&effects).unwrap();
        effects = ex.handle(Event::TimerFired { id: timer }, 5);
    }
    history += effects.len();
    let outcome = ex.outcome().unwrap();
    assert_eq!(outcome.status, Status::Failed);
    assert_eq!(outcome.error.as_deref(), Some("States.Runtime"));
    assert!(history <= 25_001 + 5, "{history} history events");
    let cause: Value = json!(outcome.cause);
    assert!(cause.to_string().contains("history"), "{cause}");
}
