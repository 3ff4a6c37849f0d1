//! Runs the AWS-recorded ASL corpus (`testdata/conformance/asl/cases.jsonl`).
//!
//! A case passes when status, output (as JSON values, with the recorder's
//! placeholders as wildcards) and error/cause match. Every case that does not
//! pass must be listed in `tests/conformance_exceptions.txt` with a reason
//! (the crate README lists them too); the test fails otherwise.

use operon_asl::runner::{MemoryHost, check_expectation, run_to_end};
use operon_asl::{ExecutionParams, StateMachine};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

fn corpus_dir() -> PathBuf {
    if let Ok(d) = std::env::var("OPERON_CONFORMANCE_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/conformance")
}

fn exceptions() -> BTreeMap<String, String> {
    let text = include_str!("conformance_exceptions.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(" | ")
                .map(|(id, why)| (id.trim().to_string(), why.trim().to_string()))
        })
        .collect()
}

fn run_case(case: &Value) -> Result<(), String> {
    let machine = StateMachine::from_value(&case["definition"])
        .map_err(|e| format!("rejected definition: {e}"))?;
    let mut host = MemoryHost::default();
    host.load_fixtures(case);
    let params = ExecutionParams {
        name: "exec-1234".into(),
        state_machine_name: "sm-conformance".into(),
        start_time_millis: 1_735_689_600_000,
        seed: 42,
        ..ExecutionParams::default()
    };
    let report = run_to_end(
        Arc::new(machine),
        case["input"].clone(),
        params,
        &mut host,
        1_000_000,
    );
    check_expectation(&report.outcome, &case["expect"])
}

#[test]
fn asl_conformance_corpus() {
    let path = corpus_dir().join("asl/cases.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read the ASL corpus at {} ({e}); set OPERON_CONFORMANCE_DIR to a conformance directory", path.display())
    });
    let exceptions = exceptions();
    let (mut passed, mut failed_listed) = (0, 0);
    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("corpus line is JSON");
        let id = case["id"].as_str().unwrap_or("?").to_string();
        let result =
            std::panic::catch_unwind(|| run_case(&case)).unwrap_or_else(|_| Err("panicked".into()));
        match (result, exceptions.contains_key(&id)) {
            (Ok(()), false) => passed += 1,
            (Ok(()), true) => {
                passed += 1;
                stale.push(id);
            }
            (Err(_), true) => failed_listed += 1,
            (Err(why), false) => unexpected.push(format!("{id}: {why}")),
        }
    }
    eprintln!(
        "ASL corpus: {passed} passed, {failed_listed} listed exceptions, {} unexpected failures",
        unexpected.len()
    );
    for s in &stale {
        eprintln!("note: listed exception now passes: {s}");
    }
    if !unexpected.is_empty() {
        panic!(
            "{} cases failed that are not listed as exceptions:\n{}",
            unexpected.len(),
            unexpected.join("\n")
        );
    }
}

/// Recorded histories in AWS order (`history_order: strict`) must be
/// reproduced: the sequence of event types, and the recorded details of each
/// event. Cases with concurrent branches are skipped, because the recorder
/// re-sorted their events. Listed exceptions may differ.
#[test]
fn asl_conformance_histories() {
    let path = corpus_dir().join("asl/cases.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the ASL corpus at {} ({e}); set OPERON_CONFORMANCE_DIR",
            path.display()
        )
    });
    let exceptions = exceptions();
    let mut differing = Vec::new();
    let (mut same, mut total, mut detail_same, mut detail_total) = (0, 0, 0, 0);
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).expect("json");
        let Some(want) = case["history_types"].as_array() else {
            continue;
        };
        if case["history_order"] != "strict" {
            continue;
        }
        total += 1;
        let machine = match StateMachine::from_value(&case["definition"]) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let mut host = MemoryHost::default();
        host.load_fixtures(&case);
        let report = run_to_end(
            Arc::new(machine),
            case["input"].clone(),
            ExecutionParams::default(),
            &mut host,
            1_000_000,
        );
        let got: Vec<Value> = report
            .history
            .iter()
            .map(|h| Value::String(h.kind.to_string()))
            .collect();
        let id = case["id"].as_str().unwrap_or("?").to_string();
        if &got == want {
            same += 1;
        } else {
            eprintln!("{id}\n  want {want:?}\n  got  {got:?}");
            differing.push(id);
            continue;
        }
        let Some(events) = case["history"].as_array() else {
            continue;
        };
        detail_total += 1;
        let ours: Vec<Value> = report
            .history
            .iter()
            .map(|h| serde_json::to_value(h).unwrap_or(Value::Null))
            .collect();
        let mut ok = true;
        for (w, g) in events.iter().zip(&ours) {
            for (k, v) in w.as_object().into_iter().flatten() {
                let field = if k == "assignedVariables" {
                    "assignedVariables"
                } else {
                    k.as_str()
                };
                if k == "type" {
                    continue;
                }
                if !operon_asl::runner::value_matches(v, g.get(field).unwrap_or(&Value::Null)) {
                    eprintln!(
                        "{} detail {}.{k}: want {v} got {}",
                        case["id"],
                        w["type"],
                        g.get(field).unwrap_or(&Value::Null)
                    );
                    ok = false;
                }
            }
        }
        if ok {
            detail_same += 1;
        } else {
            differing.push(id);
        }
    }
    eprintln!(
        "history types identical: {same}/{total}; details identical: {detail_same}/{detail_total}"
    );
    assert!(total > 200, "only {total} strict-order histories found");
    let unexpected: Vec<&String> = differing
        .iter()
        .filter(|id| !exceptions.contains_key(*id))
        .collect();
    assert!(
        unexpected.is_empty(),
        "histories differ from AWS's (not listed as exceptions): {unexpected:?}"
    );
}
