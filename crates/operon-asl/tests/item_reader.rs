//! ItemReader behaviours beyond the recorded corpus: CSV header validation
//! and `ReaderConfig.MaxItemsPath`.

use operon_asl::runner::{MemoryHost, RunReport, run_to_end};
use operon_asl::{ExecutionParams, StateMachine, Status};
use serde_json::{Value, json};
use std::sync::Arc;

fn csv_map(reader_config: Value) -> Value {
    json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": reader_config,
                       "Parameters": {"Bucket": "b", "Key": "k.csv"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "End": true}}})
}

fn run(def: Value, input: Value, body: &str) -> RunReport {
    let mut host = MemoryHost::default();
    host.objects.insert("b/k.csv".into(), body.into());
    let m = StateMachine::from_value(&def).expect("valid definition");
    run_to_end(
        Arc::new(m),
        input,
        ExecutionParams::default(),
        &mut host,
        10_000,
    )
}

fn assert_failed(r: &RunReport, error: &str, cause: &str) {
    assert_eq!(r.outcome.status, Status::Failed, "{:?}", r.outcome);
    assert_eq!(r.outcome.error.as_deref(), Some(error));
    assert_eq!(r.outcome.cause.as_deref(), Some(cause));
}

#[test]
fn duplicate_headers_in_the_first_row_fail_the_reader() {
    let def = csv_map(json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}));
    let r = run(def, json!({}), "a,b,a\n1,2,3\n");
    assert_failed(
        &r,
        "States.ItemReaderFailed",
        "CSV headers cannot contain duplicates.",
    );
}

#[test]
fn duplicate_given_headers_fail_the_reader() {
    let def = csv_map(
        json!({"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["x", "y", "x"]}),
    );
    let r = run(def, json!({}), "1,2,3\n");
    assert_failed(
        &r,
        "States.ItemReaderFailed",
        "CSV headers cannot contain duplicates.",
    );
}

#[test]
fn duplicate_headers_are_an_ordinary_error_that_catch_handles() {
    let mut def = csv_map(
        json!({"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["x", "x"]}),
    );
    def["States"]["M"]["Catch"] =
        json!([{"ErrorEquals": ["States.ItemReaderFailed"], "Next": "Handler"}]);
    def["States"]["Handler"] = json!({"Type": "Pass", "End": true});
    let r = run(def, json!({}), "1,2\n");
    assert_eq!(r.outcome.status, Status::Succeeded, "{:?}", r.outcome);
    assert_eq!(
        r.outcome.output,
        Some(
            json!({"Error": "States.ItemReaderFailed", "Cause": "CSV headers cannot contain duplicates."})
        )
    );
}

#[test]
fn headers_that_differ_only_in_case_are_distinct() {
    let def = csv_map(json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}));
    let r = run(def, json!({}), "a,A\n1,2\n");
    assert_eq!(r.outcome.output, Some(json!([{"a": "1", "A": "2"}])));
}

fn max_items_path_map() -> Value {
    csv_map(json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItemsPath": "$.max"}))
}

const ROWS: &str = "c\n1\n2\n3\n";

#[test]
fn max_items_path_that_is_not_an_integer_is_a_runtime_error() {
    for (value, text) in [
        (json!(1.5), "1.5"),
        (json!("two"), "two"),
        (json!({}), "{}"),
        (json!([2]), "[2]"),
        (json!(true), "true"),
        (json!(null), "null"),
    ] {
        let r = run(max_items_path_map(), json!({"max": value}), ROWS);
        assert_failed(
            &r,
            "States.Runtime",
            &format!(
                "An error occurred while executing the state 'M' (entered at the event id #2). \
                 The MaxItemsPath field refers to value \"{text}\" which is not a valid integer: $.max"
            ),
        );
    }
}

#[test]
fn max_items_path_that_selects_nothing_is_a_runtime_error() {
    let r = run(max_items_path_map(), json!({"other": 1}), ROWS);
    assert_failed(
        &r,
        "States.Runtime",
        "An error occurred while executing the state 'M' (entered at the event id #2). \
         The JSONPath '$.max' specified for the field 'MaxItemsPath' could not be found in the input '{\"other\":1}'",
    );
}

#[test]
fn a_runtime_error_from_max_items_path_is_not_caught() {
    let mut def = max_items_path_map();
    def["States"]["M"]["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]);
    def["States"]["Handler"] = json!({"Type": "Pass", "End": true});
    let r = run(def, json!({"max": 0.5}), ROWS);
    assert_eq!(r.outcome.status, Status::Failed);
    assert_eq!(r.outcome.error.as_deref(), Some("States.Runtime"));
}

#[test]
fn max_items_path_integers_limit_the_items() {
    // Negative: the reader's own error, as AWS records it.
    let r = run(max_items_path_map(), json!({"max": -1}), ROWS);
    assert_failed(
        &r,
        "States.ItemReaderFailed",
        "field MaxItems must be positive",
    );
    // Zero means no limit.
    let r = run(max_items_path_map(), json!({"max": 0}), ROWS);
    assert_eq!(
        r.outcome.output,
        Some(json!([{"c": "1"}, {"c": "2"}, {"c": "3"}]))
    );
    let r = run(max_items_path_map(), json!({"max": 2}), ROWS);
    assert_eq!(r.outcome.output, Some(json!([{"c": "1"}, {"c": "2"}])));
}
