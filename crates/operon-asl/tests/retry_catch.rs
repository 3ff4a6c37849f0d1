//! Retry, Catch and task timeouts, from the ASL specification, with back-off
//! timings checked on the virtual clock.

use operon_asl::runner::{Host, RunReport, run_to_end};
use operon_asl::{Effect, Event, Execution, ExecutionParams, Failure, StateMachine, Status};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Answers each state's invocations from a script (the last answer repeats).
#[derive(Default)]
struct Script(HashMap<String, Vec<Result<Value, Failure>>>);

impl Script {
    fn with(mut self, state: &str, answers: Vec<Result<Value, Failure>>) -> Script {
        self.0.insert(state.to_string(), answers);
        self
    }
}

impl Host for Script {
    fn invoke_task(
        &mut self,
        state: &str,
        _resource: &str,
        input: &Value,
        attempt: u32,
    ) -> Result<Value, Failure> {
        match self.0.get(state) {
            Some(list) if !list.is_empty() => list[(attempt as usize).min(list.len() - 1)].clone(),
            _ => Ok(input.clone()),
        }
    }
    fn read_object(&mut self, _: &str, _: &Value) -> Result<String, Failure> {
        Err(Failure::new("States.ItemReaderFailed", "no objects"))
    }
    fn write_objects(&mut self, _: &str, _: &Value, _: &[(String, Value)]) -> Result<(), Failure> {
        Ok(())
    }
}

fn boom() -> Result<Value, Failure> {
    Err(Failure::new("Boom", "it broke"))
}

fn params(seed: u64) -> ExecutionParams {
    ExecutionParams {
        start_time_millis: 1_000_000,
        seed,
        ..ExecutionParams::default()
    }
}

fn run(def: Value, input: Value, host: &mut dyn Host) -> RunReport {
    let machine = StateMachine::from_value(&def).expect("valid definition");
    run_to_end(Arc::new(machine), input, params(7), host, 100_000)
}

/// Offsets (ms from the start) of each TaskScheduled event.
fn scheduled_at(r: &RunReport) -> Vec<i64> {
    r.history
        .iter()
        .filter(|h| h.kind == "TaskScheduled")
        .map(|h| h.timestamp_millis - 1_000_000)
        .collect()
}

fn task(retry: Value, catch: Value) -> Value {
    if catch == json!([]) {
        return json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:111111111111:function:f", "Retry": retry, "End": true}}});
    }
    json!({
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:111111111111:function:f", "Retry": retry, "Catch": catch, "End": true},
            "Handler": {"Type": "Pass", "End": true}
        }
    })
}

#[test]
fn exponential_backoff_on_the_virtual_clock() {
    let def = task(
        json!([{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 3}]),
        json!([]),
    );
    let mut host = Script::default().with("T", vec![boom(), boom(), boom(), Ok(json!("done"))]);
    let r = run(def, json!({}), &mut host);
    assert_eq!(r.outcome.status, Status::Succeeded);
    assert_eq!(r.outcome.output, Some(json!("done")));
    assert_eq!(scheduled_at(&r), vec![0, 1000, 3000, 7000]);
}

#[test]
fn defaults_are_one_second_rate_two_three_attempts() {
    let def = task(json!([{"ErrorEquals": ["States.ALL"]}]), json!([]));
    let mut host = Script::default().with("T", vec![boom()]);
    let r = run(def, json!({}), &mut host);
    assert_eq!(r.outcome.status, Status::Failed);
    assert_eq!(r.outcome.error.as_deref(), Some("Boom"));
    assert_eq!(r.outcome.cause.as_deref(), Some("it broke"));
    assert_eq!(scheduled_at(&r), vec![0, 1000, 3000, 7000]);
}

#[test]
fn max_delay_caps_the_backoff() {
    let def = task(
        json!([{"ErrorEquals": ["Boom"], "IntervalSeconds": 10, "BackoffRate": 3.0, "MaxAttempts": 3, "MaxDelaySeconds": 20}]),
        json!([]),
    );
    let mut host = Script::default().with("T", vec![boom()]);
    let r = run(def, json!({}), &mut host);
    assert_eq!(scheduled_at(&r), vec![0, 10_000, 30_000, 50_000]);
}

#[test]
fn full_jitter_stays_below_the_nominal_delay_and_is_deterministic() {
    let def = task(
        json!([{"ErrorEquals": ["Boom"], "IntervalSeconds": 8, "BackoffRate": 2.0, "MaxAttempts": 3, "JitterStrategy": "FULL"}]),
        json!([]),
    );
    let mut host = Script::default().with("T", vec![boom()]);
    let a = scheduled_at(&run(def.clone(), json!({}), &mut host));
    let b = scheduled_at(&run(def, json!({}), &mut host));
    assert_eq!(a, b, "same seed, same jitter");
    let gaps: Vec<i64> = a.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, nominal) in gaps.iter().zip([8000, 16000, 32000]) {
        assert!(*gap >= 0 && *gap <= nominal, "gap {gap} > {nominal}");
    }
}

#[test]
fn max_attempts_zero_never_retries_and_catch_applies_result_path() {
    let def = task(
        json!([{"ErrorEquals": ["Boom"], "MaxAttempts": 0}]),
        json!([{"ErrorEquals": ["Boom"], "ResultPath": "$.error", "Next": "Handler"}]),
    );
    let mut host = Script::default().with("T", vec![boom()]);
    let r = run(def, json!({"keep": 1}), &mut host);
    assert_eq!(scheduled_at(&r), vec![0]);
    assert_eq!(
        r.outcome.output,
        Some(json!({"keep": 1, "error": {"Error": "Boom", "Cause": "it broke"}}))
    );
}

#[test]
fn exhausted_retrier_falls_through_to_catch_not_to_the_next_retrier() {
    let def = task(
        json!([
            {"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 1},
            {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 5}
        ]),
        json!([{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]),
    );
    let mut host = Script::default().with("T", vec![boom()]);
    let r = run(def, json!({}), &mut host);
    assert_eq!(scheduled_at(&r), vec![0, 1000]);
    assert_eq!(
        r.outcome.output,
        Some(json!({"Error": "Boom", "Cause": "it broke"}))
    );
}

#[test]
fn task_failed_matches_task_errors_but_not_timeouts() {
    let def = task(
        json!([]),
        json!([{"ErrorEquals": ["States.TaskFailed"], "Next": "Handler"}]),
    );
    let mut host = Script::default().with("T", vec![boom()]);
    assert_eq!(
        run(def.clone(), json!({}), &mut host).outcome.status,
        Status::Succeeded
    );
    let mut host = Script::default().with("T", vec![Err(Failure::new("States.Timeout", "slow"))]);
    let r = run(def, json!({}), &mut host);
    assert_eq!(r.outcome.status, Status::Failed);
    assert_eq!(r.outcome.error.as_deref(), Some("States.Timeout"));
}

#[test]
fn retry_count_is_visible_in_the_context_object() {
    let def = json!({
        "StartAt": "T",
        "States": {"T": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"retry.$": "$$.State.RetryCount"},
            "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "End": true
        }}
    });
    struct Echo(u32);
    impl Host for Echo {
        fn invoke_task(
            &mut self,
            _: &str,
            _: &str,
            input: &Value,
            _: u32,
        ) -> Result<Value, Failure> {
            self.0 += 1;
            if self.0 < 3 {
                boom()
            } else {
                Ok(input.clone())
            }
        }
        fn read_object(&mut self, _: &str, _: &Value) -> Result<String, Failure> {
            Err(Failure::new("x", "y"))
        }
        fn write_objects(
            &mut self,
            _: &str,
            _: &Value,
            _: &[(String, Value)],
        ) -> Result<(), Failure> {
            Ok(())
        }
    }
    let r = run(def, json!({}), &mut Echo(0));
    assert_eq!(r.outcome.output, Some(json!({"retry": 2})));
}

#[test]
fn runtime_errors_are_not_caught_by_states_all() {
    let def = json!({
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "r", "InputPath": "$.missing",
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}], "End": true},
            "H": {"Type": "Pass", "End": true}
        }
    });
    let r = run(def, json!({}), &mut Script::default());
    assert_eq!(r.outcome.error.as_deref(), Some("States.Runtime"));
    assert_eq!(
        r.outcome.cause.as_deref(),
        Some(
            "An error occurred while executing the state 'T' (entered at the event id #2). Invalid path '$.missing' : No results for path: $['missing']"
        )
    );
}

#[test]
fn jsonata_catch_output_and_assign_see_the_error() {
    let def = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "r",
                  "Catch": [{"ErrorEquals": ["Boom"], "Next": "H",
                             "Assign": {"why": "{% $states.errorOutput.Cause %}"},
                             "Output": {"e": "{% $states.errorOutput.Error %}", "in": "{% $states.input.v %}"}}],
                  "End": true},
            "H": {"Type": "Pass", "Output": {"got": "{% $states.input %}", "why": "{% $why %}"}, "End": true}
        }
    });
    let mut host = Script::default().with("T", vec![boom()]);
    let r = run(def, json!({"v": 5}), &mut host);
    assert_eq!(
        r.outcome.output,
        Some(json!({"got": {"e": "Boom", "in": 5}, "why": "it broke"}))
    );
}

fn first_task(effects: &[Effect]) -> Option<(String, Option<i64>)> {
    effects.iter().find_map(|e| match e {
        Effect::InvokeTask {
            token,
            timeout_at_millis,
            ..
        } => Some((token.clone(), *timeout_at_millis)),
        _ => None,
    })
}

fn timers(effects: &[Effect]) -> Vec<(u64, i64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartTimer { id, fire_at_millis } => Some((*id, *fire_at_millis)),
            _ => None,
        })
        .collect()
}

fn finished(effects: &[Effect]) -> Option<operon_asl::Outcome> {
    effects.iter().find_map(|e| match e {
        Effect::Finished(o) => Some(o.clone()),
        _ => None,
    })
}

#[test]
fn timeout_seconds_fails_with_states_timeout_and_late_answers_are_ignored() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "TimeoutSeconds": 30, "End": true}}});
    let m = Arc::new(StateMachine::from_value(&def).unwrap());
    let (mut ex, eff) = Execution::start(m, json!({}), params(1));
    let (token, deadline) = first_task(&eff).expect("task invoked");
    assert_eq!(deadline, Some(1_030_000));
    let (timer, at) = timers(&eff)[0];
    assert_eq!(at, 1_030_000);
    let eff = ex.handle(Event::TimerFired { id: timer }, at);
    let o = finished(&eff).expect("finished");
    assert_eq!(
        (o.status, o.error.as_deref()),
        (Status::Failed, Some("States.Timeout"))
    );
    let late = ex.handle(
        Event::TaskSucceeded {
            token,
            output: json!(1),
        },
        at + 1,
    );
    assert!(late.is_empty());
}

#[test]
fn heartbeats_extend_the_deadline_until_they_stop() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "r", "HeartbeatSeconds": 10, "TimeoutSeconds": 100,
              "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "H"}], "End": true},
        "H": {"Type": "Pass", "End": true}}});
    let m = Arc::new(StateMachine::from_value(&def).unwrap());
    let (mut ex, eff) = Execution::start(m, json!({}), params(1));
    let (token, _) = first_task(&eff).unwrap();
    let ts = timers(&eff);
    let hb1 = ts.iter().find(|(_, at)| *at == 1_010_000).unwrap().0;
    let eff = ex.handle(
        Event::Heartbeat {
            token: token.clone(),
        },
        1_008_000,
    );
    let hb2 = timers(&eff)[0];
    assert_eq!(hb2.1, 1_018_000);
    // The first heartbeat timer is now stale.
    assert!(finished(&ex.handle(Event::TimerFired { id: hb1 }, 1_010_000)).is_none());
    let o = finished(&ex.handle(Event::TimerFired { id: hb2.0 }, hb2.1)).expect("finished");
    assert_eq!(o.status, Status::Succeeded);
    assert_eq!(o.output, Some(json!({"Error": "States.HeartbeatTimeout"})));
}

#[test]
fn timeout_seconds_path_reads_the_input() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "TimeoutSecondsPath": "$.t", "End": true}}});
    let m = Arc::new(StateMachine::from_value(&def).unwrap());
    let (_, eff) = Execution::start(m, json!({"t": 5}), params(1));
    assert_eq!(first_task(&eff).unwrap().1, Some(1_005_000));
}

#[test]
fn executions_survive_serialization_between_steps() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "r", "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 3}], "Next": "U"},
        "U": {"Type": "Pass", "Parameters": {"id.$": "States.UUID()", "r.$": "$"}, "End": true}}});
    let m = Arc::new(StateMachine::from_value(&def).unwrap());
    let drive = |persist: bool| {
        let (mut ex, eff) = Execution::start(m.clone(), json!({"a": 1}), params(9));
        let (token, _) = first_task(&eff).unwrap();
        let mut eff = ex.handle(
            Event::TaskFailed {
                token,
                error: Some("Boom".into()),
                cause: None,
            },
            1_000_500,
        );
        if persist {
            let text = serde_json::to_string(&ex).unwrap();
            ex = serde_json::from_str::<Execution>(&text)
                .unwrap()
                .restore(m.clone());
        }
        let (timer, at) = timers(&eff)[0];
        eff = ex.handle(Event::TimerFired { id: timer }, at);
        let (token, _) = first_task(&eff).unwrap();
        let eff = ex.handle(
            Event::TaskSucceeded {
                token,
                output: json!({"ok": true}),
            },
            at + 10,
        );
        finished(&eff).unwrap()
    };
    let a = drive(false);
    let b = drive(true);
    assert_eq!(a, b);
    assert_eq!(a.output.as_ref().unwrap()["r"], json!({"ok": true}));
}

#[test]
fn map_and_parallel_catch_branch_failures() {
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "r", "End": true}}}],
              "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 1}],
              "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": "H"}], "End": true},
        "H": {"Type": "Pass", "End": true}}});
    let mut host = Script::default().with("B", vec![boom()]);
    let r = run(def, json!({"x": 1}), &mut host);
    assert_eq!(scheduled_at(&r), vec![0, 2000]);
    assert_eq!(
        r.outcome.output,
        Some(json!({"x": 1, "err": {"Error": "Boom", "Cause": "it broke"}}))
    );
}

#[test]
fn tolerated_failures_in_map() {
    let def = |tolerance: Value| {
        let mut m = json!({"Type": "Map", "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "End": true}}}, "End": true});
        for (k, v) in tolerance.as_object().unwrap() {
            m[k] = v.clone();
        }
        json!({"StartAt": "M", "States": {"M": m}})
    };
    struct OddFails;
    impl Host for OddFails {
        fn invoke_task(
            &mut self,
            _: &str,
            _: &str,
            input: &Value,
            _: u32,
        ) -> Result<Value, Failure> {
            if input.as_i64().unwrap_or(0) % 2 == 1 {
                boom()
            } else {
                Ok(input.clone())
            }
        }
        fn read_object(&mut self, _: &str, _: &Value) -> Result<String, Failure> {
            Err(Failure::new("x", "y"))
        }
        fn write_objects(
            &mut self,
            _: &str,
            _: &Value,
            _: &[(String, Value)],
        ) -> Result<(), Failure> {
            Ok(())
        }
    }
    let items = json!([0, 1, 2, 3]);
    let r = run(
        def(json!({"ToleratedFailureCount": 2})),
        items.clone(),
        &mut OddFails,
    );
    assert_eq!(r.outcome.status, Status::Succeeded);
    let r = run(
        def(json!({"ToleratedFailurePercentage": 25})),
        items.clone(),
        &mut OddFails,
    );
    assert_eq!(
        r.outcome.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    let r = run(def(json!({})), items, &mut OddFails);
    assert_eq!(r.outcome.error.as_deref(), Some("Boom"));
}
