//! Parse + run: any bytes as `{"definition": ..., "input": ...}` (or a bare
//! definition). Must never panic and never hang: the engine's transition
//! budget and the runner's event budget bound every run.
//!
//! `cargo +nightly fuzz run parse_run` (from crates/operon-asl/fuzz)
#![no_main]

use libfuzzer_sys::fuzz_target;
use operon_asl::runner::{MemoryHost, run_to_end};
use operon_asl::{ExecutionParams, StateMachine};
use serde_json::Value;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let (def, input) = match v.get("definition") {
        Some(d) => (d.clone(), v.get("input").cloned().unwrap_or(Value::Null)),
        None => (v, serde_json::json!({})),
    };
    let Ok(machine) = StateMachine::from_value(&def) else { return };
    let params = ExecutionParams { max_transitions: 10_000, ..ExecutionParams::default() };
    let _ = run_to_end(Arc::new(machine), input, params, &mut MemoryHost::default(), 10_000);
});
