//! The shared EventBridge corpus: every pattern case and every input
//! transformer case must pass.

mod common;

use operon_pattern::cases::run_case_line;
use operon_pattern::{DeliveryContext, TargetInput};
use serde_json::Value;

#[test]
fn every_pattern_case_passes() {
    let path = common::eventbridge_file("patterns.jsonl");
    let text = std::fs::read_to_string(&path).expect("read patterns.jsonl");
    let mut failures = Vec::new();
    let mut total = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        total += 1;
        let result = run_case_line(line).expect("case line is usable");
        if !result.passed() {
            failures.push(format!(
                "{}: expected {}, got {} {:?}",
                result.id,
                result.expected,
                result.actual.as_str(),
                result.detail
            ));
        }
    }
    assert!(
        total >= 278,
        "expected the whole corpus, read {total} cases"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_events_are_rejected() {
    let text = std::fs::read_to_string(common::eventbridge_file("invalid_events.jsonl")).unwrap();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let event_text = case["event_text"].as_str().unwrap();
        let envelope_ok = operon_pattern::validate_event_envelope(event_text).is_ok();
        assert!(!envelope_ok, "{} should be rejected", case["id"]);
    }
}

/// `<ingestion-time>` in an expected output stands for any value.
fn same_json(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == "<ingestion-time>" => true,
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_json(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_json(x, y))
        }
        _ => expected == actual,
    }
}

fn context(case: &Value) -> DeliveryContext {
    let field = |k: &str| case["context"][k].as_str().unwrap_or_default().to_string();
    DeliveryContext {
        rule_name: field("rule_name"),
        rule_arn: field("rule_arn"),
        event_bus_name: field("event_bus_name"),
        ingestion_time: field("ingestion_time"),
    }
}

fn target_input(case: &Value) -> Result<TargetInput, operon_pattern::TargetInputError> {
    let transformer = &case["input_transformer"];
    let paths: Vec<(String, String)> = transformer["InputPathsMap"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let template = transformer["InputTemplate"].as_str();
    let transformer = template.map(|t| (paths.as_slice(), t));
    TargetInput::new(
        "<target-id>",
        case["input"].as_str(),
        case["input_path"].as_str(),
        transformer,
    )
}

#[test]
fn every_input_transformer_case_passes() {
    let text =
        std::fs::read_to_string(common::eventbridge_file("input_transformers.jsonl")).unwrap();
    let mut failures = Vec::new();
    let mut total = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        total += 1;
        let case: Value = serde_json::from_str(line).unwrap();
        let id = case["id"].as_str().unwrap_or("?");
        let expect = &case["expect"];
        let built = target_input(&case);
        if let Some(error) = expect.get("put_targets_error") {
            match built {
                Err(e) if e.message == error["message"].as_str().unwrap() => {}
                other => failures.push(format!(
                    "{id}: expected PutTargets error {error}, got {other:?}"
                )),
            }
            continue;
        }
        let output = match built {
            Ok(input) => input.apply(&case["event"], &context(&case)),
            Err(e) => {
                failures.push(format!("{id}: unexpected error {e}"));
                continue;
            }
        };
        let ok = match (expect["delivered"].as_bool(), &output) {
            (Some(false), None) => true,
            (Some(true), Some(out)) => match (expect.get("output_text"), expect.get("output_json"))
            {
                (Some(Value::String(want)), _) => out == want,
                (_, Some(want)) => {
                    serde_json::from_str::<Value>(out).is_ok_and(|got| same_json(want, &got))
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            failures.push(format!("{id}: expected {expect}, got {output:?}"));
        }
    }
    assert_eq!(total, 35, "expected the whole corpus");
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
