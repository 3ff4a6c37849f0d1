//! A deterministic stand-in for the fuzz target that runs in CI: every corpus
//! definition, mutated many ways, must parse-or-reject and run to an end
//! without panicking, within the transition and event budgets.

use operon_asl::rng::Rng;
use operon_asl::runner::{MemoryHost, run_to_end};
use operon_asl::{ExecutionParams, StateMachine};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn corpus() -> Vec<Value> {
    let dir = std::env::var("OPERON_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/conformance")
        });
    let mut out: Vec<Value> = std::fs::read_to_string(dir.join("asl/cases.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // Hand-written seeds, so the test means something without the corpus too.
    out.push(json!({"definition": {"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 5, "Next": "A"}], "Default": "B"}, "B": {"Type": "Succeed"}}}, "input": {"n": 1}}));
    out.push(json!({"definition": {"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "Next": "W"}}}, "input": {"s": 99999999}}));
    // Overflow bait: huge timeouts, back-off, slice steps and ranges.
    out.push(json!({"definition": {"TimeoutSeconds": u64::MAX, "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r",
        "TimeoutSeconds": u64::MAX, "HeartbeatSecondsPath": "$.h",
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1e300, "BackoffRate": 1e300, "MaxAttempts": 3}], "End": true}}},
        "input": {"h": 9_223_372_036_854_775_807_i64}}));
    out.push(json!({"definition": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {
        "a.$": "$.xs[5:100:9223372036854775807]", "b.$": "States.ArrayRange(9223372036854775000, 9223372036854775807, 9223372036854775807)",
        "c.$": "States.MathAdd(1e300, 1)", "d.$": "States.MathRandom(-9223372036854775808, 9223372036854775807)"}, "End": true}}},
        "input": {"xs": [1, 2, 3, 4, 5, 6, 7]}}));
    out
}

const POOL: &[&str] = &[
    "$",
    "$$",
    "$.a",
    "$[0]",
    "$..x",
    "$.a[?(@.b > 1)]",
    "States.Format('{}', $)",
    "States.ArrayRange(0, 9999, 1)",
    "{% $states.input %}",
    "{% $x := 1 %}",
    "{% [1..100000] %}",
    "Pass",
    "Map",
    "Choice",
    "-1",
    "",
    "\u{0}",
];

fn mutate(v: &mut Value, rng: &mut Rng, depth: u32) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[(rng.next_u64() % keys.len() as u64) as usize];
            match rng.next_u64() % 5 {
                0 => {
                    m.remove(k);
                }
                1 if depth < 6 => mutate(m.get_mut(k).unwrap_or(&mut Value::Null), rng, depth + 1),
                2 => {
                    m.insert(k.clone(), random_leaf(rng));
                }
                3 => {
                    m.insert(
                        format!("{k}.$"),
                        Value::String(POOL[(rng.next_u64() % POOL.len() as u64) as usize].into()),
                    );
                }
                _ => {
                    if let Some(child) = m.get_mut(k) {
                        mutate(child, rng, depth + 1);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = (rng.next_u64() % a.len() as u64) as usize;
            if rng.next_u64().is_multiple_of(3) {
                a.remove(i);
            } else {
                mutate(&mut a[i], rng, depth + 1);
            }
        }
        other => *other = random_leaf(rng),
    }
}

fn random_leaf(rng: &mut Rng) -> Value {
    match rng.next_u64() % 6 {
        0 => Value::Null,
        1 => json!(rng.next_u64().is_multiple_of(3)),
        2 => json!((rng.next_u64() % 200) as i64 - 100),
        3 => json!(1.5),
        4 => json!([]),
        _ => Value::String(POOL[(rng.next_u64() % POOL.len() as u64) as usize].into()),
    }
}

#[test]
fn mutated_definitions_never_panic_or_hang() {
    let cases = corpus();
    let mut rng = Rng::new(0xA51);
    let started = Instant::now();
    let mut runs = 0;
    for case in &cases {
        for round in 0..20 {
            let mut def = case["definition"].clone();
            let mut input = case["input"].clone();
            let mutations = if round == 0 {
                0
            } else {
                1 + rng.next_u64() % 3
            };
            for _ in 0..mutations {
                mutate(&mut def, &mut rng, 0);
            }
            if round > 0 && rng.next_u64().is_multiple_of(4) {
                mutate(&mut input, &mut rng, 0);
            }
            let Ok(machine) = StateMachine::from_value(&def) else {
                continue;
            };
            let params = ExecutionParams {
                max_transitions: 5_000,
                record_history: false,
                ..ExecutionParams::default()
            };
            let t = Instant::now();
            let _ = run_to_end(
                Arc::new(machine),
                input,
                params,
                &mut MemoryHost::default(),
                5_000,
            );
            assert!(t.elapsed().as_secs() < 10, "a run took too long: {def}");
            runs += 1;
        }
    }
    eprintln!("{runs} mutated runs in {:?}", started.elapsed());
}
