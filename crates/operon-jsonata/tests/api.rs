//! The public API as the ASL engine uses it.

use std::sync::Arc;

use operon_jsonata::{Env, Error, Expression, FUNCTION_RESULT_CODE, Limits, Outcome};
use serde_json::{Value, json};

fn eval(source: &str, input: Option<&Value>, env: &Env) -> Result<Option<Value>, Error> {
    Expression::parse(source)?.evaluate(input, env)
}

#[test]
fn bindings_are_variables() {
    let mut env = Env::new();
    env.bind("states", json!({"input": {"n": 2}}));
    env.bind("$prefixed", json!("ok"));
    assert_eq!(
        eval("$states.input.n * 21", None, &env),
        Ok(Some(json!(42)))
    );
    assert_eq!(eval("$prefixed", None, &env), Ok(Some(json!("ok"))));
    assert_eq!(eval("$missing", None, &env), Ok(None));
}

#[test]
fn host_functions_receive_json_and_override_builtins() {
    let mut env = Env::new();
    env.register_function(
        "partition",
        Arc::new(|args: &[Option<Value>]| {
            let items = args[0]
                .as_ref()
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let size = args[1].as_ref().and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
            Ok(Some(Value::Array(
                items
                    .chunks(size)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            )))
        }),
    );
    env.register_function(
        "uppercase",
        Arc::new(|_args: &[Option<Value>]| Ok(Some(json!("host")))),
    );
    env.register_function(
        "fail",
        Arc::new(|_args: &[Option<Value>]| Err(Error::new("States.Custom", "host failure"))),
    );
    assert_eq!(
        eval("$partition([1,2,3], 2)", None, &env),
        Ok(Some(json!([[1, 2], [3]])))
    );
    assert_eq!(eval("$uppercase('x')", None, &env), Ok(Some(json!("host"))));
    let err = eval("$fail()", None, &env).expect_err("host error propagates");
    assert_eq!(err.code, "States.Custom");
    assert_eq!(err.position, Some(6));
    assert_eq!(
        eval("[1,2,3] ~> $partition(1) ~> $count()", None, &env),
        Ok(Some(json!(3)))
    );
}

#[test]
fn clock_comes_from_the_env() {
    let mut env = Env::new();
    assert_eq!(eval("$millis()", None, &env), Ok(Some(json!(0))));
    env.set_now_millis(1_510_067_557_121);
    assert_eq!(
        eval("$now()", None, &env),
        Ok(Some(json!("2017-11-07T15:12:37.121Z")))
    );
    assert_eq!(
        eval("$millis()", None, &env),
        Ok(Some(json!(1_510_067_557_121i64)))
    );
}

#[test]
fn random_is_deterministic_per_seed() {
    let mut env = Env::new();
    env.set_random_seed(7);
    let first = eval("[$random(), $random(), $shuffle([1..20])]", None, &env);
    let again = eval("[$random(), $random(), $shuffle([1..20])]", None, &env);
    assert_eq!(first, again);
    env.set_random_seed(8);
    assert_ne!(
        first,
        eval("[$random(), $random(), $shuffle([1..20])]", None, &env)
    );
}

#[test]
fn function_results_are_distinguishable() {
    let env = Env::new();
    let expr = Expression::parse("$fn := function($x){$x}").expect("parse");
    assert_eq!(expr.evaluate_detailed(None, &env), Ok(Outcome::Function));
    assert_eq!(
        expr.evaluate(None, &env).expect_err("function").code,
        FUNCTION_RESULT_CODE
    );
    let undefined = Expression::parse("nothing").expect("parse");
    assert_eq!(
        undefined.evaluate_detailed(Some(&json!({})), &env),
        Ok(Outcome::Undefined)
    );
    assert_eq!(undefined.evaluate(Some(&json!({})), &env), Ok(None));
    // Functions nested in data are rendered as "" like JSON.stringify does.
    assert_eq!(eval("{'f': $sum}", None, &env), Ok(Some(json!({"f": ""}))));
}

#[test]
fn numbers_come_back_as_integers_when_integral() {
    let env = Env::new();
    let value = eval("3.0 * 1", None, &env).expect("ok").expect("defined");
    assert!(value.is_i64(), "{value:?}");
    assert_eq!(value, json!(3));
    assert!(
        eval("1.5 + 1", None, &env)
            .expect("ok")
            .expect("defined")
            .is_f64()
    );
    assert_eq!(
        eval("$number('1e300') * 1e300", None, &env)
            .expect_err("overflow")
            .code,
        "D1001"
    );
}

#[test]
fn errors_render_as_code_and_message() {
    let env = Env::new();
    let err = eval("$x := 5; $x()", None, &env).expect_err("syntax or type error");
    assert!(err.code == "T1006" || err.code.starts_with('S'), "{err}");
    let err = eval("(1)(2)", None, &env).expect_err("non-function");
    assert_eq!(err.to_string(), "T1006: Attempted to invoke a non-function");
    let err = eval("$uppercase(1)", None, &env).expect_err("signature");
    assert_eq!(
        err.to_string(),
        "T0410: Argument 1 of function \"uppercase\" does not match function signature"
    );
}

#[test]
fn limits_are_configurable() {
    let mut env = Env::new();
    env.set_limits(Limits {
        max_steps: 50,
        max_depth: 500,
    });
    assert_eq!(
        eval("$sum([1..10].($ * 2))", None, &env)
            .expect_err("steps")
            .code,
        "U1002"
    );
    env.set_limits(Limits {
        max_steps: 1_000_000,
        max_depth: 10,
    });
    let recurse = "($f := function($n){$n = 0 ? 0 : 1 + $f($n - 1)}; $f(N))";
    assert_eq!(
        eval(&recurse.replace('N', "5"), None, &env),
        Ok(Some(json!(5)))
    );
    assert_eq!(
        eval(&recurse.replace('N', "20"), None, &env)
            .expect_err("depth")
            .code,
        "U1001"
    );
    let tail = "($f := function($n, $a){$n = 0 ? $a : $f($n - 1, $a + 1)}; $f(1000, 0))";
    assert_eq!(eval(tail, None, &env), Ok(Some(json!(1000))));
    env.set_max_stack_bytes(16 * 1024);
    assert_eq!(
        eval(&recurse.replace('N', "8"), None, &env)
            .expect_err("stack")
            .code,
        "U1001"
    );
    assert_eq!(
        Limits::default(),
        Limits {
            max_steps: 10_000_000,
            max_depth: 500
        }
    );
}

#[test]
fn array_inputs_and_undefined_input() {
    let env = Env::new();
    assert_eq!(
        eval("$", Some(&json!([1, 2])), &env),
        Ok(Some(json!([1, 2])))
    );
    assert_eq!(eval("$[1]", Some(&json!([1, 2])), &env), Ok(Some(json!(2))));
    assert_eq!(eval("$", None, &env), Ok(None));
    assert_eq!(eval("a", None, &env), Ok(None));
    assert_eq!(eval("[1,2][0]", None, &env), Ok(Some(json!(1))));
}

#[test]
fn expressions_are_reusable_and_shareable() {
    let expr = Arc::new(Expression::parse("$x * 2").expect("parse"));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let expr = expr.clone();
            std::thread::spawn(move || {
                let mut env = Env::new();
                env.bind("x", json!(i));
                expr.evaluate(None, &env)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(
        results,
        vec![
            Ok(Some(json!(0))),
            Ok(Some(json!(2))),
            Ok(Some(json!(4))),
            Ok(Some(json!(6)))
        ]
    );
}

#[test]
fn messages_quote_tokens_like_jsonata_js() {
    let env = Env::new();
    let message =
        |source: &str| match Expression::parse(source).and_then(|e| e.evaluate(None, &env)) {
            Err(e) => e.to_string(),
            Ok(v) => format!("no error: {v:?}"),
        };
    assert_eq!(
        message("1 + 'a'"),
        "T2002: The right side of the \"+\" operator must evaluate to a number"
    );
    assert_eq!(
        message("1 < 'a'"),
        "T2009: The values 1 and \"a\" either side of operator \"<\" must be of the same data type"
    );
    assert_eq!(message("1 )"), "S0201: Syntax error: \")\"");
    assert_eq!(
        message("(1"),
        "S0203: Expected \")\" before end of expression"
    );
    assert_eq!(
        message("]"),
        "S0211: The symbol \"]\" cannot be used as a unary operator"
    );
    assert_eq!(
        message("-'a'"),
        "D1002: Cannot negate a non-numeric value: \"a\""
    );
    assert_eq!(
        message("$number('x')"),
        "D3030: Unable to cast value to a number: \"x\""
    );
    assert_eq!(
        message("uppercase('a')"),
        "T1005: Attempted to invoke a non-function. Did you mean $uppercase?"
    );
}
