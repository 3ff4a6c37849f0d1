//! Every `{% ... %}` JSONata expression in the ASL conformance corpus (`testdata/conformance`) must parse, and
//! must evaluate (against a `$states` binding built from the case input) without panicking.
//! Expected values for each distinct expression are in `tests/cases/20-asl.txt`.

use std::path::PathBuf;

use operon_jsonata::{Env, Expression};
use serde_json::{Value, json};

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/conformance/asl/cases.jsonl")
}

fn collect_expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let trimmed = s.trim();
            if let Some(inner) = trimmed
                .strip_prefix("{%")
                .and_then(|r| r.strip_suffix("%}"))
            {
                out.push(inner.trim().to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_expressions(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_expressions(v, out)),
        _ => {}
    }
}

/// Host functions operon-asl registers; stubs here so calls resolve.
fn asl_like_env(input: &Value) -> Env {
    let mut env = Env::new();
    env.bind(
        "states",
        json!({"input": input, "context": {"Execution": {"Input": input}}}),
    );
    for name in [
        "partition",
        "range",
        "hash",
        "randomSeeded",
        "uuid",
        "parse",
    ] {
        env.register_function(
            name,
            std::sync::Arc::new(|_args: &[Option<Value>]| Ok(Some(json!(null)))),
        );
    }
    env
}

#[test]
fn every_corpus_expression_parses_and_evaluates() {
    // The corpus is part of the repository: a missing file is a failure, not a skip.
    let text = std::fs::read_to_string(corpus_path())
        .unwrap_or_else(|e| panic!("ASL corpus not found at {}: {e}", corpus_path().display()));
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("corpus line is JSON");
        let is_jsonata = case["features"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "JSONata"));
        if !is_jsonata {
            continue;
        }
        let mut expressions = Vec::new();
        collect_expressions(&case["definition"], &mut expressions);
        let env = asl_like_env(&case["input"]);
        for source in expressions {
            let expr = Expression::parse(&source)
                .unwrap_or_else(|e| panic!("{source:?} failed to parse: {e}"));
            // Evaluation may legitimately fail (e.g. a variable the state machine assigns
            // earlier); it must not panic and must not fail with a syntax or internal error.
            if let Err(e) = expr.evaluate_detailed(None, &env) {
                assert!(!e.code.starts_with('S'), "{source:?}: {e}");
            }
            checked += 1;
        }
    }
    assert!(
        checked > 50,
        "expected the corpus to contain JSONata expressions, found {checked}"
    );
}
