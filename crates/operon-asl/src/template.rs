//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`, `Assign`
//! in JSONPath mode; `Arguments`, `Output`, `Assign` in JSONata mode) and the
//! scope they are evaluated in.

use crate::error::{Failure, ValidationError, names};
use crate::intrinsics::{self, Call};
use crate::jsonpath::{JsonPath, Root};
use crate::rng::Rng;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A parsed JSONata expression written as `{% ... %}`.
#[derive(Debug, Clone)]
pub struct Jsonata {
    /// The expression text between the delimiters, as shown in error causes.
    pub source: String,
    expr: Arc<operon_jsonata::Expression>,
}

impl Jsonata {
    /// Parses the inside of `{% ... %}`.
    pub fn parse(inner: &str) -> Result<Jsonata, String> {
        let source = inner.trim().to_string();
        // A panic in the JSONata engine must not take the interpreter down.
        let parsed = std::panic::catch_unwind(|| operon_jsonata::Expression::parse(&source))
            .map_err(|_| "the JSONata parser failed on this expression".to_string())?;
        let expr = parsed.map_err(|e| e.to_string())?;
        Ok(Jsonata {
            source,
            expr: Arc::new(expr),
        })
    }

    /// Returns the inner text when `s` is a `{% ... %}` expression.
    pub fn inner(s: &str) -> Option<&str> {
        s.strip_prefix("{%").and_then(|r| r.strip_suffix("%}"))
    }
}

/// A compiled template.
#[derive(Debug, Clone)]
pub enum Template {
    Const(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    /// `"key.$": "$.path"` (JSONPath mode); `field` is the key as written.
    Path {
        field: String,
        path: JsonPath,
    },
    /// `"key.$": "States.Fn(...)"`.
    Intrinsic {
        field: String,
        call: Box<Call>,
    },
    /// `"{% expr %}"`; `field` is the slash-separated field path for errors.
    Jsonata {
        field: String,
        expr: Jsonata,
    },
}

impl Template {
    /// Compiles a JSONPath-mode payload template (keys ending in `.$` are dynamic).
    pub fn jsonpath(v: &Value, pointer: &str) -> Result<Template, ValidationError> {
        let t = match v {
            Value::Object(o) => {
                let mut fields = Vec::with_capacity(o.len());
                for (k, val) in o {
                    let ptr = format!("{pointer}/{}", escape_pointer(k));
                    if let Some(name) = k.strip_suffix(".$") {
                        fields.push((name.to_string(), dynamic_field(k, val, &ptr)?));
                    } else {
                        fields.push((k.clone(), Template::jsonpath(val, &ptr)?));
                    }
                }
                Template::Object(fields)
            }
            Value::Array(a) => {
                let mut items = Vec::with_capacity(a.len());
                for (i, val) in a.iter().enumerate() {
                    items.push(Template::jsonpath(val, &format!("{pointer}/{i}"))?);
                }
                Template::Array(items)
            }
            other => Template::Const(other.clone()),
        };
        Ok(t.folded())
    }

    /// Compiles a JSONata-mode template (strings `{% ... %}` are expressions).
    pub fn jsonata(v: &Value, field: &str, pointer: &str) -> Result<Template, ValidationError> {
        let t = match v {
            Value::String(s) => match Jsonata::inner(s) {
                Some(inner) => {
                    let expr = Jsonata::parse(inner).map_err(|e| {
                        ValidationError::new(pointer, format!("invalid JSONata expression: {e}"))
                    })?;
                    Template::Jsonata {
                        field: field.to_string(),
                        expr,
                    }
                }
                None => Template::Const(v.clone()),
            },
            Value::Object(o) => {
                let mut fields = Vec::with_capacity(o.len());
                for (k, val) in o {
                    let sub = format!("{field}/{k}");
                    fields.push((
                        k.clone(),
                        Template::jsonata(val, &sub, &format!("{pointer}/{}", escape_pointer(k)))?,
                    ));
                }
                Template::Object(fields)
            }
            Value::Array(a) => {
                let mut items = Vec::with_capacity(a.len());
                for (i, val) in a.iter().enumerate() {
                    items.push(Template::jsonata(
                        val,
                        &format!("{field}/{i}"),
                        &format!("{pointer}/{i}"),
                    )?);
                }
                Template::Array(items)
            }
            other => Template::Const(other.clone()),
        };
        Ok(t.folded())
    }

    fn folded(self) -> Template {
        match self {
            Template::Object(fields)
                if fields.iter().all(|(_, t)| matches!(t, Template::Const(_))) =>
            {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    if let Template::Const(v) = t {
                        m.insert(k, v);
                    }
                }
                Template::Const(Value::Object(m))
            }
            Template::Array(items) if items.iter().all(|t| matches!(t, Template::Const(_))) => {
                Template::Const(Value::Array(
                    items
                        .into_iter()
                        .map(|t| {
                            if let Template::Const(v) = t {
                                v
                            } else {
                                Value::Null
                            }
                        })
                        .collect(),
                ))
            }
            other => other,
        }
    }

    /// Evaluates the template in `scope`.
    pub fn eval(&self, scope: &Scope, rng: &mut Rng) -> Result<Value, Failure> {
        match self {
            Template::Const(v) => Ok(v.clone()),
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    m.insert(k.clone(), t.eval(scope, rng)?);
                }
                Ok(Value::Object(m))
            }
            Template::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for t in items {
                    out.push(t.eval(scope, rng)?);
                }
                Ok(Value::Array(out))
            }
            Template::Path { field, path } => scope.resolve_for_field(path, field),
            Template::Intrinsic { call, field } => {
                intrinsics::eval(call, scope, rng).map_err(|f| with_field(f, field))
            }
            Template::Jsonata { field, expr } => scope.jsonata_defined(expr, field, rng),
        }
    }
}

/// Names the field in "could not be found" causes raised inside an intrinsic's arguments.
fn with_field(mut f: Failure, field: &str) -> Failure {
    if let Some(c) = &f.cause
        && c.starts_with("The JSONPath '")
        && !c.contains("specified for the field")
    {
        f.cause = Some(c.replacen(
            "' could not be found",
            &format!("' specified for the field '{field}' could not be found"),
            1,
        ));
    }
    f
}

fn dynamic_field(key: &str, val: &Value, ptr: &str) -> Result<Template, ValidationError> {
    let Value::String(s) = val else {
        return Err(ValidationError::new(
            ptr,
            format!("The value of the field '{key}' must be a JSONPath or an intrinsic function"),
        ));
    };
    if intrinsics::is_intrinsic(s) {
        let call = intrinsics::parse(s)
            .map_err(|e| ValidationError::new(ptr, format!("invalid intrinsic function: {e}")))?;
        return Ok(Template::Intrinsic {
            field: key.to_string(),
            call: Box::new(call),
        });
    }
    let path = JsonPath::parse(s).map_err(|e| ValidationError::new(ptr, format!("The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call: {e}")))?;
    Ok(Template::Path {
        field: key.to_string(),
        path,
    })
}

/// Escapes a key for a JSON pointer.
pub fn escape_pointer(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Everything a template, a path or an expression can read.
pub struct Scope<'a> {
    /// `$` in JSONPath mode.
    pub input: &'a Value,
    /// Workflow variables visible to the state.
    pub vars: &'a Map<String, Value>,
    /// Builds the context object (`$$`, `$states.context`) on demand.
    pub context: &'a dyn Fn() -> Value,
    /// JSONata `$states` (input, context, result, errorOutput).
    pub states: Option<&'a Value>,
    /// The clock reading JSONata's `$now()` reports.
    pub now_millis: i64,
}

impl Scope<'_> {
    /// Resolves a path; `None` when nothing is found.
    pub fn lookup(&self, path: &JsonPath) -> Option<Value> {
        match path.root() {
            Root::Input => path.eval(self.input).map(|c| c.into_owned()),
            Root::Context => {
                let ctx = (self.context)();
                path.eval(&ctx).map(|c| c.into_owned())
            }
            Root::Variable(name) => self
                .vars
                .get(name)
                .and_then(|v| path.eval(v).map(|c| c.into_owned())),
        }
    }

    fn resolve_for_field(&self, path: &JsonPath, field: &str) -> Result<Value, Failure> {
        self.lookup(path).ok_or_else(|| {
            Failure::new(
                names::RUNTIME,
                format!(
                    "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                    path.source(),
                    serde_json::to_string(self.input).unwrap_or_default()
                ),
            )
        })
    }

    /// Evaluates a JSONata expression; `Ok(None)` is undefined.
    pub fn jsonata(
        &self,
        expr: &Jsonata,
        field: &str,
        rng: &mut Rng,
    ) -> Result<Option<Value>, Failure> {
        let mut env = operon_jsonata::Env::new();
        for (k, v) in self.vars {
            env.bind(k, v.clone());
        }
        if let Some(states) = self.states {
            env.bind("states", states.clone());
        }
        env.set_now_millis(self.now_millis);
        env.set_random_seed(rng.next_u64());
        register_aws_functions(&mut env, rng.next_u64());
        env.set_limits(operon_jsonata::Limits {
            max_steps: 5_000_000,
            max_depth: 400,
        });
        let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            expr.expr.evaluate_detailed(None, &env)
        }))
        .unwrap_or_else(|_| {
            Err(operon_jsonata::Error::new(
                "D0000",
                "the JSONata evaluator failed",
            ))
        });
        match evaluated {
            Ok(operon_jsonata::Outcome::Value(v)) => Ok(Some(v)),
            Ok(operon_jsonata::Outcome::Undefined) => Ok(None),
            Ok(operon_jsonata::Outcome::Function) => Err(Failure::new(
                names::QUERY_EVALUATION_ERROR,
                format!(
                    "The JSONata expression '{}' specified for the field '{field}' returned an unsupported result type.",
                    expr.source
                ),
            )),
            Err(e) => Err(Failure::new(
                names::QUERY_EVALUATION_ERROR,
                format!(
                    "The JSONata expression '{}' specified for the field '{field}' threw an error during evaluation. {e}",
                    expr.source
                ),
            )),
        }
    }

    /// Like [`Scope::jsonata`], but undefined is an error.
    pub fn jsonata_defined(
        &self,
        expr: &Jsonata,
        field: &str,
        rng: &mut Rng,
    ) -> Result<Value, Failure> {
        self.jsonata(expr, field, rng)?.ok_or_else(|| {
            Failure::new(
                names::QUERY_EVALUATION_ERROR,
                format!("The JSONata expression '{}' specified for the field '{field}' returned nothing (undefined).", expr.source),
            )
        })
    }
}

impl intrinsics::Scope for Scope<'_> {
    fn resolve(&self, path: &JsonPath) -> Result<Value, Failure> {
        self.lookup(path).ok_or_else(|| {
            Failure::new(
                names::RUNTIME,
                format!(
                    "The JSONPath '{}' could not be found in the input '{}'",
                    path.source(),
                    serde_json::to_string(self.input).unwrap_or_default()
                ),
            )
        })
    }
}

type NativeResult = Result<Option<Value>, operon_jsonata::Error>;

fn jerr(code: &str, msg: &str) -> operon_jsonata::Error {
    operon_jsonata::Error::new(code, msg)
}

/// The functions Step Functions adds to JSONata: `$partition`, `$range`,
/// `$hash`, `$random`, `$uuid`, `$parse`.
fn register_aws_functions(env: &mut operon_jsonata::Env, seed: u64) {
    env.register_function(
        "partition",
        Arc::new(|a: &[Option<Value>]| -> NativeResult { call_intrinsic("ArrayPartition", a) }),
    );
    env.register_function(
        "range",
        Arc::new(|a: &[Option<Value>]| -> NativeResult {
            // A JSONata sequence of one item is that item.
            Ok(match call_intrinsic("ArrayRange", a)? {
                Some(Value::Array(mut v)) if v.len() == 1 => v.pop(),
                other => other,
            })
        }),
    );
    env.register_function(
        "hash",
        Arc::new(|a: &[Option<Value>]| -> NativeResult { call_intrinsic("Hash", a) }),
    );
    env.register_function(
        "parse",
        Arc::new(|a: &[Option<Value>]| -> NativeResult {
            match a.first() {
                Some(Some(Value::String(s))) => serde_json::from_str(s)
                    .map(Some)
                    .map_err(|e| jerr("D3140", &format!("Malformed JSON: {e}"))),
                _ => Err(jerr(
                    "T0410",
                    "Argument 1 of function \"parse\" does not match function signature",
                )),
            }
        }),
    );
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(seed));
    let c2 = counter.clone();
    env.register_function(
        "uuid",
        Arc::new(move |_a: &[Option<Value>]| -> NativeResult {
            let s = c2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Some(Value::String(Rng::new(s).uuid_v4())))
        }),
    );
    env.register_function(
        "random",
        Arc::new(move |a: &[Option<Value>]| -> NativeResult {
            let s = match a.first() {
                Some(Some(v)) => v.as_f64().map(|f| f as u64).ok_or_else(|| {
                    jerr(
                        "T0410",
                        "Argument 1 of function \"random\" does not match function signature",
                    )
                })?,
                _ => counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            };
            let f = Rng::new(s).next_f64();
            Ok(serde_json::Number::from_f64(f).map(Value::Number))
        }),
    );
}

fn call_intrinsic(name: &str, args: &[Option<Value>]) -> NativeResult {
    let vals: Vec<Value> = args
        .iter()
        .map(|a| a.clone().unwrap_or(Value::Null))
        .collect();
    let src = format!(
        "States.{name}({})",
        (0..vals.len())
            .map(|i| format!("$[{i}]"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let call = intrinsics::parse(&src).map_err(|e| jerr("D3137", &e))?;
    struct ArgScope(Value);
    impl intrinsics::Scope for ArgScope {
        fn resolve(&self, p: &JsonPath) -> Result<Value, Failure> {
            Ok(p.eval(&self.0)
                .map(|c| c.into_owned())
                .unwrap_or(Value::Null))
        }
    }
    let mut rng = Rng::new(0);
    intrinsics::eval(&call, &ArgScope(Value::Array(vals)), &mut rng)
        .map(Some)
        .map_err(|f| jerr("D3137", f.cause.as_deref().unwrap_or("invalid arguments")))
}
