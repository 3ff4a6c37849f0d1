//! The payload size quota (`ExecutionParams::max_payload_bytes`, 256 KiB by
//! default) and `States.DataLimitExceeded`, as the Step Functions developer
//! guide describes them (concepts-error-handling, service-quotas).

use operon_asl::engine::{DEFAULT_MAX_PAYLOAD_BYTES, exceeds_payload_limit};
use operon_asl::runner::{Host, RunReport, run_to_end};
use operon_asl::{ExecutionParams, Failure, StateMachine, Status};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const LAMBDA: &str = "arn:aws:lambda:us-east-1:111111111111:function:f";
const LIMIT_CAUSE: &str =
    "returned a result with a size exceeding the maximum number of bytes service limit.";

/// Answers each state's invocations from a script (the last answer repeats)
/// and counts them.
#[derive(Default)]
struct Script {
    answers: HashMap<String, Vec<Value>>,
    calls: HashMap<String, u32>,
}

impl Script {
    fn with(mut self, state: &str, answers: Vec<Value>) -> Script {
        self.answers.insert(state.to_string(), answers);
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
        *self.calls.entry(state.to_string()).or_default() += 1;
        match self.answers.get(state) {
            Some(list) if !list.is_empty() => {
                Ok(list[(attempt as usize).min(list.len() - 1)].clone())
            }
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

fn run_limited(def: Value, input: Value, host: &mut dyn Host, limit: u64) -> RunReport {
    let machine = StateMachine::from_value(&def).expect("valid definition");
    let params = ExecutionParams {
        start_time_millis: 1_000_000,
        max_payload_bytes: limit,
        ..ExecutionParams::default()
    };
    run_to_end(Arc::new(machine), input, params, host, 100_000)
}

/// A JSON string value whose serialisation takes exactly `bytes` bytes.
fn string_of(bytes: usize) -> Value {
    Value::String("x".repeat(bytes - 2))
}

fn assert_data_limit(r: &RunReport, cause: &str) {
    assert_eq!(r.outcome.status, Status::Failed, "{:?}", r.outcome);
    assert_eq!(r.outcome.error.as_deref(), Some("States.DataLimitExceeded"));
    assert_eq!(r.outcome.cause.as_deref(), Some(cause));
}

#[test]
fn the_default_is_256_kib() {
    assert_eq!(DEFAULT_MAX_PAYLOAD_BYTES, 262_144);
    assert_eq!(ExecutionParams::default().max_payload_bytes, 262_144);
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    let machine = Arc::new(StateMachine::from_value(&def).unwrap());
    let at_limit = run_to_end(
        machine.clone(),
        string_of(262_144),
        ExecutionParams::default(),
        &mut Script::default(),
        100,
    );
    assert_eq!(at_limit.outcome.status, Status::Succeeded);
    let over = run_to_end(
        machine,
        string_of(262_145),
        ExecutionParams::default(),
        &mut Script::default(),
        100,
    );
    assert_eq!(
        over.outcome.error.as_deref(),
        Some("States.DataLimitExceeded")
    );
}

#[test]
fn size_is_counted_in_utf8_bytes_of_compact_json() {
    // "é" is two bytes in UTF-8; the quotes make four.
    assert!(!exceeds_payload_limit(&json!("é"), 4));
    assert!(exceeds_payload_limit(&json!("é"), 3));
    // Escapes count as written: "\n" is 2 bytes inside the quotes.
    assert!(!exceeds_payload_limit(&json!("\n"), 4));
    assert!(exceeds_payload_limit(&json!("\n"), 3));
    // Compact: no spaces after ':' or ','.
    assert!(!exceeds_payload_limit(&json!({"a": [1, 2]}), 11));
    assert!(exceeds_payload_limit(&json!({"a": [1, 2]}), 10));
    assert!(!exceeds_payload_limit(&string_of(10_000_000), u64::MAX));
}

#[test]
fn execution_input_over_the_limit_fails_the_execution() {
    let def =
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}});
    let mut host = Script::default();
    let r = run_limited(def, string_of(101), &mut host, 100);
    assert_data_limit(
        &r,
        "The execution input has a size exceeding the maximum number of bytes service limit.",
    );
    assert!(host.calls.is_empty(), "no state runs");
    let kinds: Vec<&str> = r.history.iter().map(|h| &*h.kind).collect();
    assert_eq!(kinds, ["ExecutionStarted", "ExecutionFailed"]);
}

#[test]
fn a_task_result_over_the_limit_fails_the_task_and_names_the_resource() {
    let def =
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}});
    let mut host = Script::default().with("T", vec![json!({"big": "x".repeat(200)})]);
    let r = run_limited(def, json!({}), &mut host, 100);
    assert_data_limit(&r, &format!("The state/task '{LAMBDA}' {LIMIT_CAUSE}"));
    let failed = r
        .history
        .iter()
        .find(|h| h.kind == "TaskFailed")
        .expect("TaskFailed recorded");
    assert_eq!(failed.error.as_deref(), Some("States.DataLimitExceeded"));
    assert!(!r.history.iter().any(|h| h.kind == "TaskSucceeded"));
}

#[test]
fn a_state_output_over_the_limit_names_the_state() {
    let def = json!({"StartAt": "Grow", "States": {
        "Grow": {"Type": "Pass", "Result": "x".repeat(200), "ResultPath": "$.big", "Next": "After"},
        "After": {"Type": "Pass", "End": true}}});
    let r = run_limited(def, json!({}), &mut Script::default(), 100);
    assert_data_limit(&r, &format!("The state/task 'Grow' {LIMIT_CAUSE}"));
    assert!(
        !r.history
            .iter()
            .any(|h| h.kind == "PassStateExited" || h.name.as_deref() == Some("After")),
        "the state does not exit"
    );
}

#[test]
fn a_pass_state_that_copies_its_input_is_measured() {
    // No Result and no Parameters, but ResultPath doubles the input.
    let def = json!({"StartAt": "Copy", "States": {
        "Copy": {"Type": "Pass", "ResultPath": "$.copy", "End": true}}});
    let input = json!({"s": "x".repeat(60)});
    let r = run_limited(def, input, &mut Script::default(), 100);
    assert_data_limit(&r, &format!("The state/task 'Copy' {LIMIT_CAUSE}"));
}

#[test]
fn items_read_by_an_item_reader_are_measured() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                       "ReaderConfig": {"InputType": "JSON"}, "Parameters": {"Bucket": "b", "Key": "k"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": true}}},
        "End": true}}});
    let mut host = operon_asl::runner::MemoryHost::default();
    host.objects.insert(
        "b/k".into(),
        serde_json::to_string(&json!(["small", "x".repeat(200)])).unwrap(),
    );
    let machine = StateMachine::from_value(&def).unwrap();
    let params = ExecutionParams {
        max_payload_bytes: 100,
        ..ExecutionParams::default()
    };
    let r = run_to_end(Arc::new(machine), json!({}), params, &mut host, 1000);
    assert_data_limit(
        &r,
        "The state/task 'M' has an input with a size exceeding the maximum number of bytes service limit.",
    );
}

#[test]
fn a_map_output_over_the_limit_fails_although_every_item_fits() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "x".repeat(40), "End": true}}},
        "End": true}}});
    let r = run_limited(def, json!([1, 2, 3]), &mut Script::default(), 100);
    assert_data_limit(&r, &format!("The state/task 'M' {LIMIT_CAUSE}"));
}

#[test]
fn parameters_that_build_an_input_over_the_limit_fail_before_the_task_runs() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA,
        "Parameters": {"a.$": "$.s", "b.$": "$.s", "c.$": "$.s"}, "End": true}}});
    let mut host = Script::default();
    let r = run_limited(def, json!({"s": "x".repeat(40)}), &mut host, 100);
    assert_data_limit(
        &r,
        "The state/task 'T' has an input with a size exceeding the maximum number of bytes service limit.",
    );
    assert!(host.calls.is_empty(), "the task is not invoked");
}

#[test]
fn item_selector_output_over_the_limit_fails_the_map() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
        "ItemSelector": {"a.$": "$.s", "b.$": "$.s", "c.$": "$.s"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let r = run_limited(
        def,
        json!({"items": [1], "s": "x".repeat(40)}),
        &mut Script::default(),
        100,
    );
    assert_data_limit(
        &r,
        "The state/task 'M' has an input with a size exceeding the maximum number of bytes service limit.",
    );
}

#[test]
fn states_all_does_not_catch_it_but_naming_it_does() {
    let def = |errors: Value| {
        json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": LAMBDA, "Catch": [{"ErrorEquals": errors, "Next": "Handler"}], "End": true},
            "Handler": {"Type": "Pass", "End": true}}})
    };
    // The limit leaves room for the error output the catcher passes on.
    let big = vec![json!("x".repeat(400))];

    let mut host = Script::default().with("T", big.clone());
    let r = run_limited(def(json!(["States.ALL"])), json!({}), &mut host, 300);
    assert_data_limit(&r, &format!("The state/task '{LAMBDA}' {LIMIT_CAUSE}"));

    let mut host = Script::default().with("T", big.clone());
    let r = run_limited(def(json!(["States.TaskFailed"])), json!({}), &mut host, 300);
    assert_eq!(r.outcome.status, Status::Failed);

    let mut host = Script::default().with("T", big);
    let r = run_limited(
        def(json!(["States.DataLimitExceeded"])),
        json!({}),
        &mut host,
        300,
    );
    assert_eq!(r.outcome.status, Status::Succeeded, "{:?}", r.outcome);
    assert_eq!(
        r.outcome.output,
        Some(json!({
            "Error": "States.DataLimitExceeded",
            "Cause": format!("The state/task '{LAMBDA}' {LIMIT_CAUSE}")
        }))
    );
}

#[test]
fn a_retrier_that_names_it_retries() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA,
        "Retry": [{"ErrorEquals": ["States.DataLimitExceeded"], "IntervalSeconds": 1, "MaxAttempts": 1}],
        "End": true}}});
    let mut host = Script::default().with("T", vec![json!("x".repeat(200)), json!("small")]);
    let r = run_limited(def, json!({}), &mut host, 100);
    assert_eq!(r.outcome.status, Status::Succeeded, "{:?}", r.outcome);
    assert_eq!(r.outcome.output, Some(json!("small")));
    assert_eq!(host.calls["T"], 2);

    // States.ALL in a retrier does not retry it.
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3}],
        "End": true}}});
    let mut host = Script::default().with("T", vec![json!("x".repeat(200)), json!("small")]);
    let r = run_limited(def, json!({}), &mut host, 100);
    assert_eq!(r.outcome.error.as_deref(), Some("States.DataLimitExceeded"));
    assert_eq!(host.calls["T"], 1);
}

#[test]
fn a_raised_limit_lets_large_payloads_through() {
    let def =
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}});
    let big = json!({"big": "x".repeat(300_000)});
    let mut host = Script::default().with("T", vec![big.clone()]);
    let r = run_limited(def.clone(), json!({}), &mut host, 1 << 20);
    assert_eq!(r.outcome.status, Status::Succeeded);
    let mut host = Script::default().with("T", vec![big]);
    let r = run_limited(def, json!({}), &mut host, DEFAULT_MAX_PAYLOAD_BYTES);
    assert_eq!(r.outcome.error.as_deref(), Some("States.DataLimitExceeded"));
}

#[test]
fn parameters_persisted_before_the_limit_existed_get_the_default() {
    let mut v = serde_json::to_value(ExecutionParams::default()).unwrap();
    v.as_object_mut().unwrap().remove("max_payload_bytes");
    let p: ExecutionParams = serde_json::from_value(v).unwrap();
    assert_eq!(p.max_payload_bytes, 262_144);
}
