//! Engine behaviours beyond the recorded corpus: scopes, readers, writers, clocks, determinism.

use operon_asl::runner::{MemoryHost, RunReport, run_to_end};
use operon_asl::{ExecutionParams, StateMachine, Status};
use serde_json::{Value, json};
use std::sync::Arc;

fn run_with(def: Value, input: Value, host: &mut MemoryHost, seed: u64) -> RunReport {
    let m = StateMachine::from_value(&def).expect("valid definition");
    let params = ExecutionParams {
        start_time_millis: 1_700_000_000_000,
        seed,
        ..ExecutionParams::default()
    };
    run_to_end(Arc::new(m), input, params, host, 1_000_000)
}

fn run(def: Value, input: Value) -> RunReport {
    run_with(def, input, &mut MemoryHost::default(), 1)
}

#[test]
fn inner_assignments_do_not_leak_out_of_a_map() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"x": "outer"}, "Next": "M"},
        "M": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.seen",
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "Assign": {"x": "inner"}, "Parameters": {"x.$": "$x"}, "End": true}}},
              "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {"x.$": "$x", "seen.$": "$.seen"}, "End": true}}});
    let r = run(def, json!({"items": [1, 2]}));
    assert_eq!(
        r.outcome.output,
        Some(json!({"x": "outer", "seen": [{"x": "outer"}, {"x": "outer"}]}))
    );
}

#[test]
fn waits_advance_the_virtual_clock() {
    let def = json!({"StartAt": "W1", "States": {
        "W1": {"Type": "Wait", "Seconds": 30, "Next": "W2"},
        "W2": {"Type": "Wait", "TimestampPath": "$.until", "End": true}}});
    let r = run(def, json!({"until": "2023-11-14T22:15:00Z"}));
    assert_eq!(r.outcome.status, Status::Succeeded);
    // 1_700_000_000 s is 2023-11-14T22:13:20Z; +30 s, then until 22:15:00.
    assert_eq!(r.virtual_seconds, 100.0);
}

#[test]
fn item_reader_csv_with_quotes_and_jsonl() {
    let mut host = MemoryHost::default();
    host.objects.insert(
        "b/k.csv".into(),
        "name,note\n\"Smith, J\",\"said \"\"hi\"\"\"\nDoe,\n".into(),
    );
    host.objects
        .insert("b/k.jsonl".into(), "{\"a\":1}\n\n{\"a\":2}\n".into());
    let def = |ty: &str, key: &str| {
        json!({"StartAt": "M", "States": {"M": {"Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": ty, "CSVHeaderLocation": "FIRST_ROW"},
                           "Parameters": {"Bucket": "b", "Key": key}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "End": true}}})
    };
    let r = run_with(def("CSV", "k.csv"), json!({}), &mut host, 1);
    assert_eq!(
        r.outcome.output,
        Some(json!([{"name": "Smith, J", "note": "said \"hi\""}, {"name": "Doe", "note": ""}]))
    );
    let r = run_with(def("JSONL", "k.jsonl"), json!({}), &mut host, 1);
    assert_eq!(r.outcome.output, Some(json!([{"a": 1}, {"a": 2}])));
}

#[test]
fn result_writer_stores_results_and_returns_details() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "out", "Prefix": "runs"}},
        "End": true}}});
    let mut host = MemoryHost::default();
    let r = run_with(def, json!([1, 2, 3]), &mut host, 1);
    let out = r.outcome.output.expect("output");
    assert_eq!(out["ResultWriterDetails"]["Bucket"], json!("out"));
    let key = out["ResultWriterDetails"]["Key"].as_str().unwrap();
    assert!(
        key.starts_with("runs/") && key.ends_with("/manifest.json"),
        "{key}"
    );
    assert_eq!(host.written.len(), 2);
    assert_eq!(host.written[0].1.as_array().unwrap().len(), 3);
}

#[test]
fn item_batcher_groups_items() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"tag": "t"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let r = run(def, json!([1, 2, 3]));
    assert_eq!(
        r.outcome.output,
        Some(
            json!([{"BatchInput": {"tag": "t"}, "Items": [1, 2]}, {"BatchInput": {"tag": "t"}, "Items": [3]}])
        )
    );
}

#[test]
fn same_seed_same_run_different_seed_different_uuid() {
    let def = json!({"StartAt": "U", "States": {"U": {"Type": "Pass", "Parameters": {"id.$": "States.UUID()", "n.$": "States.MathRandom(0, 1000000)"}, "End": true}}});
    let a = run_with(def.clone(), json!({}), &mut MemoryHost::default(), 5);
    let b = run_with(def.clone(), json!({}), &mut MemoryHost::default(), 5);
    let c = run_with(def, json!({}), &mut MemoryHost::default(), 6);
    assert_eq!(a.outcome, b.outcome);
    assert_ne!(a.outcome.output, c.outcome.output);
    let id = a.outcome.output.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4");
}

#[test]
fn transition_budget_stops_infinite_loops() {
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}});
    let m = StateMachine::from_value(&def).unwrap();
    let params = ExecutionParams {
        max_transitions: 1000,
        record_history: false,
        ..ExecutionParams::default()
    };
    let r = run_to_end(
        Arc::new(m),
        json!({}),
        params,
        &mut MemoryHost::default(),
        1000,
    );
    assert_eq!(r.outcome.status, Status::Failed);
    assert_eq!(r.outcome.error.as_deref(), Some("States.Runtime"));
}

#[test]
fn max_concurrency_keeps_results_in_item_order() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 2,
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.v", "End": true}}}, "End": true}}});
    let r = run(def, json!([3, 1, 2]));
    assert_eq!(
        r.outcome.output,
        Some(json!([{"i": 0, "v": 3}, {"i": 1, "v": 1}, {"i": 2, "v": 2}]))
    );
    // Two at a time: items 0 and 1 start at 0 s; item 2 starts when item 1 ends (1 s) and ends at 3 s.
    assert_eq!(r.virtual_seconds, 3.0);
}

#[test]
fn choice_runtime_errors_name_the_path_and_the_state() {
    let def = |default: bool| {
        let mut c = json!({"Type": "Choice", "Choices": [{"Variable": "$.v", "NumericEquals": 1, "Next": "D"}]});
        if default {
            c["Default"] = json!("D");
        }
        json!({"StartAt": "C", "States": {"C": c, "D": {"Type": "Succeed"}}})
    };
    let r = run(def(true), json!({}));
    assert_eq!(r.outcome.error.as_deref(), Some("States.Runtime"));
    assert_eq!(
        r.outcome.cause.as_deref(),
        Some(
            "An error occurred while executing the state 'C' (entered at the event id #2). Invalid path '$.v': The choice state's condition path references an invalid value."
        )
    );
    let r = run(def(false), json!({"v": 2}));
    assert_eq!(
        r.outcome.cause.as_deref(),
        Some(
            "An error occurred while executing the state 'C' (entered at the event id #2). Failed to transition out of the state. The state does not point to a next state."
        )
    );
}

#[test]
fn the_map_run_arn_names_the_label_or_else_the_state() {
    let def = |label: Option<&str>| {
        let mut def = json!({"StartAt": "M", "States": {"M": {"Type": "Map",
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "out"}},
            "End": true}}});
        if let Some(l) = label {
            def["States"]["M"]["Label"] = json!(l);
        }
        def
    };
    // arn:aws:states:<region>:<account>:mapRun:<stateMachineName>/<label>:<uuid>
    let prefix = "arn:aws:states:us-east-1:111111111111:mapRun:local-state-machine/";
    for (label, name) in [(Some("demoLabel"), "demoLabel"), (None, "M")] {
        let mut host = MemoryHost::default();
        let r = run_with(def(label), json!([1, 2]), &mut host, 1);
        let arn = r.outcome.output.expect("output")["MapRunArn"]
            .as_str()
            .expect("MapRunArn")
            .to_string();
        let run_id = arn
            .strip_prefix(&format!("{prefix}{name}:"))
            .unwrap_or_else(|| panic!("{arn} should name {name}"));
        assert_eq!(run_id.len(), 36, "a UUID: {arn}");
        let manifest = &host.written.last().expect("manifest").1;
        assert_eq!(manifest["MapRunArn"], json!(arn));
    }
}
