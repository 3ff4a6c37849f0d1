//! Data-driven tests: `tests/cases/*.txt` hold one case per line:
//!
//! ```text
//! <expression> => <expected JSON | undefined | function | !ERRORCODE>
//! ```
//!
//! Directives set the context for the following cases: `@input <json>`, `@input-file <name>`
//! (from `tests/data/`), `@no-input` (undefined input), `@bind <name> <json>`, `@reset`.
//! Blank lines and lines starting with `#` are ignored. The separator is the last ` => `.

use std::path::Path;

use operon_jsonata::{Env, Expression, Outcome};

struct Context {
    input: Option<serde_json::Value>,
    env: Env,
}

fn new_context() -> Context {
    let mut env = Env::new();
    env.set_now_millis(1_700_000_000_000);
    Context { input: None, env }
}

fn run_case(ctx: &Context, expr: &str, expected: &str) -> Result<(), String> {
    let outcome =
        Expression::parse(expr).and_then(|e| e.evaluate_detailed(ctx.input.as_ref(), &ctx.env));
    if let Some(code) = expected.strip_prefix('!') {
        return match outcome {
            Err(e) if e.code == code => Ok(()),
            Err(e) => Err(format!("expected error {code}, got error {e}")),
            Ok(v) => Err(format!("expected error {code}, got {v:?}")),
        };
    }
    let outcome = outcome.map_err(|e| format!("unexpected error {e} at {:?}", e.position))?;
    let matches = match (expected, &outcome) {
        ("undefined", Outcome::Undefined) | ("function", Outcome::Function) => true,
        (_, Outcome::Value(actual)) => {
            let expected: serde_json::Value =
                serde_json::from_str(expected).map_err(|e| format!("bad expected JSON: {e}"))?;
            &expected == actual
        }
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(format!("expected {expected}, got {outcome:?}"))
    }
}

fn apply_directive(ctx: &mut Context, line: &str, data_dir: &Path) -> Result<(), String> {
    let (directive, rest) = line.split_once(' ').unwrap_or((line, ""));
    match directive {
        "@input" => ctx.input = Some(serde_json::from_str(rest).map_err(|e| e.to_string())?),
        "@input-file" => {
            let text =
                std::fs::read_to_string(data_dir.join(rest.trim())).map_err(|e| e.to_string())?;
            ctx.input = Some(serde_json::from_str(&text).map_err(|e| e.to_string())?);
        }
        "@no-input" => ctx.input = None,
        "@bind" => {
            let (name, json) = rest
                .split_once(' ')
                .ok_or("@bind needs a name and a value")?;
            ctx.env
                .bind(name, serde_json::from_str(json).map_err(|e| e.to_string())?);
        }
        "@reset" => *ctx = new_context(),
        other => return Err(format!("unknown directive {other}")),
    }
    Ok(())
}

#[test]
fn table_driven_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<_> = std::fs::read_dir(root.join("cases"))
        .expect("cases dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let (mut passed, mut failures) = (0, Vec::new());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read cases");
        let mut ctx = new_context();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            let location = format!(
                "{}:{}",
                file.file_name().unwrap_or_default().to_string_lossy(),
                number + 1
            );
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('@') {
                if let Err(e) = apply_directive(&mut ctx, line, &root.join("data")) {
                    failures.push(format!("{location}: {e}"));
                }
                continue;
            }
            let Some((expr, expected)) = line.rsplit_once(" => ") else {
                failures.push(format!("{location}: missing ' => '"));
                continue;
            };
            match run_case(&ctx, expr.trim(), expected.trim()) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{location}: {expr}\n    {e}")),
            }
        }
    }
    println!("table cases: {passed} passed, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
