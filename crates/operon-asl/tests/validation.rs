//! Definitions Step Functions rejects, and the JSON pointers we report.

use operon_asl::StateMachine;
use serde_json::{Value, json};

fn errors(def: Value) -> Vec<(String, String)> {
    match StateMachine::from_value(&def) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| (e.pointer, e.message)).collect(),
    }
}

fn has(def: Value, pointer: &str, needle: &str) {
    let errs = errors(def);
    assert!(
        errs.iter().any(|(p, m)| p == pointer && m.contains(needle)),
        "expected an error at {pointer} containing {needle:?}, got {errs:?}"
    );
}

#[test]
fn accepts_a_valid_definition() {
    assert!(
        errors(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})).is_empty()
    );
}

#[test]
fn unknown_next_target() {
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}),
        "/States/A/Next",
        "Missing 'Next' target: B",
    );
}

#[test]
fn unknown_start_at() {
    has(
        json!({"StartAt": "X", "States": {"A": {"Type": "Pass", "End": true}}}),
        "/StartAt",
        "X",
    );
}

#[test]
fn missing_next_and_end() {
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}),
        "/States/A",
        "'Next' or 'End",
    );
}

#[test]
fn next_and_end_together() {
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B", "End": true}, "B": {"Type": "Succeed"}}}),
        "/States/A",
        "both",
    );
}

#[test]
fn unreachable_state() {
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}, "B": {"Type": "Succeed"}}}),
        "/States/B",
        "not reachable",
    );
}

#[test]
fn unknown_field_and_type() {
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Foo": 1, "End": true}}}),
        "/States/A/Foo",
        "not supported",
    );
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Nope", "End": true}}}),
        "/States/A/Type",
        "Unknown state type",
    );
}

#[test]
fn bad_paths_and_intrinsics() {
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "a.b", "End": true}}}),
        "/States/A/InputPath",
        "JSONPath",
    );
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"x.$": "States.Nope(1)"}, "End": true}}}),
        "/States/A/Parameters/x.$",
        "intrinsic",
    );
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "ResultPath": "$.a[*]", "End": true}}}),
        "/States/A/ResultPath",
        "reference path",
    );
}

#[test]
fn fields_of_the_other_query_language() {
    has(
        json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "$", "End": true}}}),
        "/States/A/InputPath",
        "JSONata",
    );
    has(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Output": {}, "End": true}}}),
        "/States/A/Output",
        "JSONPath",
    );
}

#[test]
fn nested_errors_point_into_branches_and_processors() {
    has(
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
            "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}]}}}),
        "/States/P/Branches/0/States/X/Next",
        "Missing 'Next' target: Y",
    );
    has(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemProcessor": {"StartAt": "Z", "States": {"X": {"Type": "Succeed"}}}}}}),
        "/States/M/ItemProcessor/StartAt",
        "Z",
    );
}

#[test]
fn choice_rules() {
    has(
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": "x", "Next": "D"}], "Default": "D"}, "D": {"Type": "Succeed"}}}),
        "/States/C/Choices/0/NumericEquals",
        "wrong type",
    );
    has(
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "Next": "D"}], "Default": "D"}, "D": {"Type": "Succeed"}}}),
        "/States/C/Choices/0",
        "exactly one comparison",
    );
    has(
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": []}}}),
        "/States/C/Choices",
        "non-empty",
    );
}

#[test]
fn retry_and_catch() {
    has(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}),
        "/States/T/Retry/0/ErrorEquals",
        "States.ALL",
    );
    has(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "End": true,
            "Catch": [{"ErrorEquals": ["X"], "Next": "Nowhere"}]}}}),
        "/States/T/Catch/0/Next",
        "Nowhere",
    );
}

#[test]
fn wait_needs_exactly_one_duration() {
    has(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": true}}}),
        "/States/W",
        "exactly one",
    );
    has(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "tomorrow", "End": true}}}),
        "/States/W/Timestamp",
        "ISO-8601",
    );
}

#[test]
fn invalid_jsonata_is_rejected_at_parse_time() {
    has(
        json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Output": "{% $states.input. %}", "End": true}}}),
        "/States/A/Output",
        "JSONata",
    );
}

#[test]
fn task_timeouts() {
    has(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "TimeoutSeconds": 10, "HeartbeatSeconds": 10, "End": true}}}),
        "/States/T/HeartbeatSeconds",
        "smaller",
    );
    has(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "TimeoutSeconds": 10, "TimeoutSecondsPath": "$.t", "End": true}}}),
        "/States/T",
        "both",
    );
    has(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "TimeoutSeconds": 0, "End": true}}}),
        "/States/T/TimeoutSeconds",
        "positive",
    );
}

#[test]
fn map_label_must_be_a_string() {
    has(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "Label": 7,
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "End": true}}}),
        "/States/M/Label",
        "'Label' must be a string",
    );
}
