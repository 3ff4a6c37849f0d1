//! State transitions per second, single thread (see BENCHMARKS.md).
//!
//! `cargo bench -p operon-asl --bench transitions`

use operon_asl::runner::{MemoryHost, run_to_end};
use operon_asl::{ExecutionParams, StateMachine, Status};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

fn pass_chain() -> Value {
    let mut states = serde_json::Map::new();
    for i in 0..1000 {
        let s = if i == 999 {
            json!({"Type": "Pass", "End": true})
        } else {
            json!({"Type": "Pass", "Next": format!("S{}", i + 1)})
        };
        states.insert(format!("S{i}"), s);
    }
    json!({"StartAt": "S0", "States": states})
}

fn choice_loop() -> Value {
    json!({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Result": {"count": 0}, "Next": "Inc"},
        "Inc": {"Type": "Pass", "Parameters": {"count.$": "States.MathAdd($.count, 1)"}, "Next": "Check"},
        "Check": {"Type": "Choice", "Choices": [{"Variable": "$.count", "NumericLessThan": 100000, "Next": "Inc"}], "Default": "Done"},
        "Done": {"Type": "Succeed"}}})
}

fn map_100k() -> Value {
    json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}})
}

fn measure(name: &str, def: Value, input: Value, runs: u32, history: bool) {
    let machine = Arc::new(StateMachine::from_value(&def).expect("valid"));
    let mut transitions = 0u64;
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let params = ExecutionParams {
            record_history: history,
            // The Map's 100,000-item input and output (about 590 KB) are over
            // the default 256 KiB quota; raise it as a host would, keeping the
            // size checks in the measurement.
            max_payload_bytes: 16 << 20,
            ..ExecutionParams::default()
        };
        let t = Instant::now();
        let r = run_to_end(
            machine.clone(),
            input.clone(),
            params,
            &mut MemoryHost::default(),
            u64::MAX,
        );
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(
            r.outcome.status,
            Status::Succeeded,
            "{name}: {:?}",
            r.outcome
        );
        transitions = r.transitions;
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let best = times[0];
    println!(
        "{name:<28} history={:<5} transitions/run={transitions:>7}  median {:>8.2} ms  best {:>8.2} ms  {:>10.0}/s (median)  {:>10.0}/s (best)",
        history,
        median * 1000.0,
        best * 1000.0,
        transitions as f64 / median,
        transitions as f64 / best
    );
}

fn main() {
    let items = Value::Array((0..100_000).map(Value::from).collect());
    for history in [false, true] {
        measure(
            "pass chain (1,000 states)",
            pass_chain(),
            json!({"a": 1}),
            200,
            history,
        );
        measure(
            "choice loop (to 100,000)",
            choice_loop(),
            json!({}),
            5,
            history,
        );
        measure(
            "map (100,000 items)",
            map_100k(),
            items.clone(),
            11,
            history,
        );
    }
}
