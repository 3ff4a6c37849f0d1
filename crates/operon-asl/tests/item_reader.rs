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
