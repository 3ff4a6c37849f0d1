//! # operon-jsonata
//!
//! A JSONata 2.x engine (parser and evaluator) over [`serde_json::Value`], written for the
//! Operon ASL interpreter's JSONata query mode. Semantics follow the reference implementation
//! (jsonata-js) and docs.jsonata.org, including its error codes and messages.
//!
//! ```
//! use operon_jsonata::{Env, Expression};
//! use serde_json::json;
//!
//! let expr = Expression::parse("$sum(Account.Order.Product.(Price * Quantity))").unwrap();
//! let input = json!({"Account": {"Order": [
//!     {"Product": [{"Price": 2, "Quantity": 3}, {"Price": 1.5, "Quantity": 2}]},
//!     {"Product": {"Price": 10, "Quantity": 1}}
//! ]}});
//! assert_eq!(expr.evaluate(Some(&input), &Env::new()).unwrap(), Some(json!(19)));
//! ```
//!
//! ## Design
//!
//! * **Lexer** (`lexer.rs`): characters to tokens. A `/` starts a regex literal only where an
//!   operand is expected. Positions are character offsets (past the token, as jsonata-js).
//! * **Parser** (`parser.rs`): a Pratt (top-down operator precedence) parser with jsonata-js's
//!   binding powers. It also performs jsonata-js's post-parse rewriting: `a.b.c` becomes one
//!   path of steps, predicates attach to the step they follow, `{..}` after an expression is a
//!   grouping. Nesting is capped so hostile input cannot exhaust the stack.
//! * **Evaluator** (`eval.rs`): walks the tree over runtime values (`value.rs`): JSON values
//!   with reference-counted sharing plus functions. *Undefined* is `None`. Path navigation
//!   produces **sequences** (arrays flagged as such): they flatten into enclosing sequences
//!   and a singleton sequence collapses to its item, an empty one to undefined, exactly as in
//!   jsonata-js; arrays from the input or from `[...]` constructors are values and are kept.
//! * **Tuple streams**: a path with focus `@$v`, index `#$i` or parent `%` bindings is
//!   evaluated as a stream of (context, variables) tuples, as in jsonata-js; `%` labels are
//!   resolved to ancestor steps after parsing (`ancestry.rs`).
//! * **Functions** (`functions.rs`): the standard library, each with its jsonata signature
//!   (`<s-n?:s>`), which drives argument checking (`T0410`, `T0412`) and context-value
//!   substitution (`Account.Name.$uppercase()`). Host functions come from
//!   [`Env::register_function`] and take precedence over built-ins of the same name.
//! * **Determinism**: the library has no I/O, clock, threads or global state. `$now()` and
//!   `$millis()` read [`Env::set_now_millis`]; `$random()` and `$shuffle()` use a generator
//!   seeded by [`Env::set_random_seed`] (the same seed gives the same sequence per evaluation).
//! * **Limits**: every node evaluation and function call is a step; evaluation fails with
//!   `U1002` after [`Limits::max_steps`] steps. Non-tail recursion deeper than
//!   [`Limits::max_depth`] function calls fails with `U1001` ("Stack overflow error"). The
//!   evaluator also measures the machine stack it uses (safe code: it compares addresses of
//!   locals) and fails with `U1001` past [`DEFAULT_MAX_STACK_BYTES`] (1 MiB, adjustable with
//!   [`Env::set_max_stack_bytes`]), whatever the build profile's frame sizes;
//!   source nesting is capped at parse time (`S0201`) and value nesting at 200 levels
//!   (`U1001`). Calls in tail position are run in a loop (jsonata-js's tail-call
//!   optimisation), so `($f := function(){$f()}; $f())` runs until the step limit and ends
//!   with `U1002`, while `($f := function(){1 + $f()}; $f())` ends with `U1001`; neither can
//!   crash the host. Large allocations (ranges, padding, concatenation) are charged as steps.
//!
//! ## Functions as results
//!
//! [`Expression::evaluate`] returns `Ok(None)` for undefined and fails with code
//! [`FUNCTION_RESULT_CODE`] (`"X0001"`, not a jsonata-js code) when the result is a function.
//! Use [`Expression::evaluate_detailed`] to get [`Outcome::Function`] instead; the ASL engine
//! maps either to "returned an unsupported result type".
//!
//! ## Numbers
//!
//! Numbers are `f64`. Results that are integral and exactly representable come back as JSON
//! integers (`3`, not `3.0`). A NaN or infinite result is error `D1001` ("Number out of
//! range"), arithmetic producing one fails at the operator.
//!
//! Missing features are listed in the crate's README.md.

mod ancestry;
mod ast;
mod datetime;
mod error;
mod eval;
mod functions;
mod lexer;
mod numfmt;
mod parser;
mod signature;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use error::Error;

/// Default machine-stack budget of one evaluation (see [`Env::set_max_stack_bytes`]).
pub const DEFAULT_MAX_STACK_BYTES: usize = 1024 * 1024;

/// The code of the error [`Expression::evaluate`] returns when the result is a function.
pub const FUNCTION_RESULT_CODE: &str = "X0001";

/// A function implemented by the host. Arguments are the evaluated arguments (`None` for
/// undefined, and for function-valued arguments, which cannot cross into JSON); returning
/// `Ok(None)` means undefined.
pub type NativeFunction = Arc<
    dyn Fn(&[Option<serde_json::Value>]) -> Result<Option<serde_json::Value>, Error> + Send + Sync,
>;

/// Resource limits for one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of evaluation steps (node evaluations plus charged allocations).
    pub max_steps: u64,
    /// Maximum nesting of function calls (recursion depth). Tail calls do not nest.
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_steps: 10_000_000,
            max_depth: 500,
        }
    }
}

/// Host-provided environment: variable bindings, extra functions, and every source of
/// non-determinism (clock and random seed).
#[derive(Clone, Default)]
pub struct Env {
    bindings: HashMap<String, serde_json::Value>,
    functions: HashMap<String, NativeFunction>,
    now_millis: i64,
    random_seed: u64,
    limits: Limits,
    max_stack_bytes: Option<usize>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("bindings", &self.bindings)
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .field("now_millis", &self.now_millis)
            .field("random_seed", &self.random_seed)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Env {
    /// No bindings, `now` = 0, seed = 0, default limits.
    pub fn new() -> Env {
        Env::default()
    }

    /// Binds `$name` (give the name without `$`).
    pub fn bind(&mut self, name: &str, value: serde_json::Value) {
        self.bindings
            .insert(name.trim_start_matches('$').to_string(), value);
    }

    /// Registers `$name(...)`, implemented by the host. Overrides a built-in of that name.
    pub fn register_function(&mut self, name: &str, f: NativeFunction) {
        self.functions
            .insert(name.trim_start_matches('$').to_string(), f);
    }

    /// The time `$now()` and `$millis()` report, in milliseconds since the Unix epoch.
    pub fn set_now_millis(&mut self, millis: i64) {
        self.now_millis = millis;
    }

    /// Seeds `$random()` and `$shuffle()`.
    pub fn set_random_seed(&mut self, seed: u64) {
        self.random_seed = seed;
    }

    /// Sets the step and depth limits.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Sets how much machine stack one evaluation may use before failing with `U1001`
    /// (default [`DEFAULT_MAX_STACK_BYTES`], safe on 2 MiB threads). Raise it only when the
    /// evaluating thread is known to have a larger stack.
    pub fn set_max_stack_bytes(&mut self, bytes: usize) {
        self.max_stack_bytes = Some(bytes);
    }

    pub(crate) fn max_stack_bytes(&self) -> usize {
        self.max_stack_bytes.unwrap_or(DEFAULT_MAX_STACK_BYTES)
    }

    pub(crate) fn binding(&self, name: &str) -> Option<&serde_json::Value> {
        self.bindings.get(name)
    }

    pub(crate) fn function(&self, name: &str) -> Option<&NativeFunction> {
        self.functions.get(name)
    }
}

/// The result of [`Expression::evaluate_detailed`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A JSON value.
    Value(serde_json::Value),
    /// The expression evaluated to a function (lambda, built-in, partial application, regex).
    Function,
    /// The expression evaluated to undefined (e.g. a path that matched nothing).
    Undefined,
}

/// A parsed JSONata expression. Parse once, evaluate many times; evaluation does not mutate it.
#[derive(Debug)]
pub struct Expression {
    root: ast::Node,
}

impl Expression {
    /// Parses JSONata source. Errors carry the JSONata error code and the character position.
    pub fn parse(source: &str) -> Result<Expression, Error> {
        Ok(Expression {
            root: parser::parse(source)?,
        })
    }

    /// Evaluates against `input` (`None` = undefined input). `Ok(None)` means the result is
    /// undefined. A function result is the error [`FUNCTION_RESULT_CODE`].
    pub fn evaluate(
        &self,
        input: Option<&serde_json::Value>,
        env: &Env,
    ) -> Result<Option<serde_json::Value>, Error> {
        match self.evaluate_detailed(input, env)? {
            Outcome::Value(v) => Ok(Some(v)),
            Outcome::Undefined => Ok(None),
            Outcome::Function => Err(Error::new(
                FUNCTION_RESULT_CODE,
                "The expression evaluated to a function",
            )),
        }
    }

    /// Like [`Expression::evaluate`], but reports a function result as [`Outcome::Function`].
    pub fn evaluate_detailed(
        &self,
        input: Option<&serde_json::Value>,
        env: &Env,
    ) -> Result<Outcome, Error> {
        eval::evaluate_root(&self.root, input, env)
    }
}
