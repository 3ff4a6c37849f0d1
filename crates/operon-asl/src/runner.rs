//! A local driver: runs an execution to the end with a virtual clock, answering
//! tasks and object reads through a [`Host`]. Used by `operon workflows
//! run-local` and by the tests. It does no I/O itself: the host does.

use crate::definition::StateMachine;
use crate::engine::{Effect, Event, Execution, ExecutionParams, Outcome, Status};
use crate::error::{Failure, names};
use crate::history::HistoryEvent;
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

/// What the local runner needs from its surroundings.
pub trait Host {
    /// Answers a task invocation (`attempt` counts invocations of `state`, from 0).
    fn invoke_task(
        &mut self,
        state: &str,
        resource: &str,
        input: &Value,
        attempt: u32,
    ) -> Result<Value, Failure>;
    /// Reads an ItemReader object.
    fn read_object(&mut self, resource: &str, parameters: &Value) -> Result<String, Failure>;
    /// Writes ResultWriter objects.
    fn write_objects(
        &mut self,
        resource: &str,
        parameters: &Value,
        objects: &[(String, Value)],
    ) -> Result<(), Failure>;
    /// Called before the virtual clock jumps forward to the next timer; a
    /// real-time host sleeps here. The default fast-forwards.
    fn advance_clock(&mut self, _from_millis: i64, _to_millis: i64) {}
}

/// The result of a local run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub outcome: Outcome,
    pub history: Vec<Box<HistoryEvent>>,
    pub transitions: u64,
    /// Virtual seconds from start to end.
    pub virtual_seconds: f64,
}

/// Runs `machine` on `input` to completion. Timers are fast-forwarded on the
/// virtual clock (`max_events` bounds the number of events fed in).
pub fn run_to_end(
    machine: Arc<StateMachine>,
    input: Value,
    params: ExecutionParams,
    host: &mut dyn Host,
    max_events: u64,
) -> RunReport {
    let start = params.start_time_millis;
    let (mut ex, effects) = Execution::start(machine, input, params);
    let mut now = start;
    let mut timers: BinaryHeap<Reverse<(i64, u64)>> = BinaryHeap::new();
    let mut pending: VecDeque<Event> = VecDeque::new();
    let mut history = Vec::new();
    let mut attempts: HashMap<String, u32> = HashMap::new();
    let mut outcome = None;
    let mut queue: VecDeque<Effect> = effects.into();
    let mut fed = 0u64;
    loop {
        while let Some(e) = queue.pop_front() {
            match e {
                Effect::InvokeTask {
                    token,
                    resource,
                    input,
                    state,
                    ..
                } => {
                    let n = attempts.entry(state.clone()).or_insert(0);
                    let attempt = *n;
                    *n += 1;
                    pending.push_back(match host.invoke_task(&state, &resource, &input, attempt) {
                        Ok(output) => Event::TaskSucceeded { token, output },
                        Err(f) => Event::TaskFailed {
                            token,
                            error: f.error,
                            cause: f.cause,
                        },
                    });
                }
                Effect::StartTimer { id, fire_at_millis } => {
                    timers.push(Reverse((fire_at_millis, id)))
                }
                Effect::ReadObject {
                    token,
                    resource,
                    parameters,
                } => pending.push_back(match host.read_object(&resource, &parameters) {
                    Ok(body) => Event::ObjectRead { token, body },
                    Err(f) => Event::TaskFailed {
                        token,
                        error: f.error,
                        cause: f.cause,
                    },
                }),
                Effect::WriteObjects {
                    token,
                    resource,
                    parameters,
                    objects,
                } => {
                    pending.push_back(match host.write_objects(&resource, &parameters, &objects) {
                        Ok(()) => Event::ObjectsWritten { token },
                        Err(f) => Event::TaskFailed {
                            token,
                            error: f.error,
                            cause: f.cause,
                        },
                    })
                }
                Effect::History(h) => history.push(h),
                Effect::Finished(o) => outcome = Some(o),
            }
        }
        if outcome.is_some() {
            break;
        }
        let event = if let Some(ev) = pending.pop_front() {
            ev
        } else if let Some(Reverse((at, id))) = timers.pop() {
            if at > now {
                host.advance_clock(now, at);
            }
            now = now.max(at);
            Event::TimerFired { id }
        } else {
            break;
        };
        fed += 1;
        if fed > max_events {
            let stop = Event::Stop {
                error: Some(names::RUNTIME.into()),
                cause: Some("the local run exceeded its event budget".into()),
            };
            queue.extend(ex.handle(stop, now));
            continue;
        }
        queue.extend(ex.handle(event, now));
    }
    let outcome = outcome.unwrap_or(Outcome {
        status: Status::Failed,
        output: None,
        error: Some(names::RUNTIME.into()),
        cause: Some("the execution is waiting for an event that will never come".into()),
    });
    RunReport {
        outcome,
        history,
        transitions: ex.transitions(),
        virtual_seconds: (now - start) as f64 / 1000.0,
    }
}

/// Answers for invocations `first..=last` of a mocked response.
pub type MockAnswer = (u32, u32, Result<Value, Failure>);

/// Task answers in the format of Step Functions Local's mock configuration:
///
/// ```json
/// {"StateMachines": {"SM": {"TestCases": {"Happy": {"StateName": "ResponseName"}}}},
///  "MockedResponses": {"ResponseName": {"0": {"Return": {...}}, "1-2": {"Throw": {"Error": "E", "Cause": "C"}}}}}
/// ```
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// State name -> response name, for the chosen test case.
    pub states: BTreeMap<String, String>,
    /// Response name -> (first invocation, last invocation, answer).
    pub responses: BTreeMap<String, Vec<MockAnswer>>,
}

impl MockConfig {
    /// Reads the test case `test_case` of state machine `machine` (the first of each when `None`).
    pub fn from_value(
        v: &Value,
        machine: Option<&str>,
        test_case: Option<&str>,
    ) -> Result<MockConfig, String> {
        let sms = v
            .get("StateMachines")
            .and_then(Value::as_object)
            .ok_or("mock config: 'StateMachines' must be an object")?;
        let sm = match machine {
            Some(n) => sms
                .get(n)
                .ok_or_else(|| format!("mock config: no state machine '{n}'"))?,
            None => sms
                .values()
                .next()
                .ok_or("mock config: no state machines")?,
        };
        let cases = sm
            .get("TestCases")
            .and_then(Value::as_object)
            .ok_or("mock config: 'TestCases' must be an object")?;
        let case = match test_case {
            Some(n) => cases
                .get(n)
                .ok_or_else(|| format!("mock config: no test case '{n}'"))?,
            None => cases.values().next().ok_or("mock config: no test cases")?,
        };
        let mut cfg = MockConfig::default();
        for (state, resp) in case
            .as_object()
            .ok_or("mock config: a test case must be an object")?
        {
            cfg.states.insert(
                state.clone(),
                resp.as_str()
                    .ok_or("mock config: response names must be strings")?
                    .to_string(),
            );
        }
        let responses = v
            .get("MockedResponses")
            .and_then(Value::as_object)
            .ok_or("mock config: 'MockedResponses' must be an object")?;
        for (name, r) in responses {
            let mut list = Vec::new();
            for (range, answer) in r
                .as_object()
                .ok_or("mock config: a mocked response must be an object")?
            {
                let (a, b) = match range.split_once('-') {
                    Some((a, b)) => (
                        a.trim()
                            .parse()
                            .map_err(|_| format!("bad range '{range}'"))?,
                        b.trim()
                            .parse()
                            .map_err(|_| format!("bad range '{range}'"))?,
                    ),
                    None => {
                        let n: u32 = range
                            .trim()
                            .parse()
                            .map_err(|_| format!("bad range '{range}'"))?;
                        (n, n)
                    }
                };
                let ans = if let Some(ret) = answer.get("Return") {
                    Ok(ret.clone())
                } else if let Some(t) = answer.get("Throw") {
                    Err(Failure {
                        error: t.get("Error").and_then(Value::as_str).map(str::to_string),
                        cause: t.get("Cause").and_then(Value::as_str).map(str::to_string),
                    })
                } else {
                    return Err(format!(
                        "mock config: response '{name}' needs 'Return' or 'Throw'"
                    ));
                };
                list.push((a, b, ans));
            }
            cfg.responses.insert(name.clone(), list);
        }
        Ok(cfg)
    }

    /// The answer for invocation `attempt` of `state`.
    pub fn answer(&self, state: &str, attempt: u32) -> Result<Value, Failure> {
        let Some(name) = self.states.get(state) else {
            return Err(Failure::new(
                names::TASK_FAILED,
                format!("No mocked response for state '{state}'"),
            ));
        };
        let list = self.responses.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let hit = list
            .iter()
            .find(|(a, b, _)| *a <= attempt && attempt <= *b)
            .or_else(|| list.iter().max_by_key(|(_, b, _)| *b));
        match hit {
            Some((_, _, ans)) => ans.clone(),
            None => Err(Failure::new(
                names::TASK_FAILED,
                format!("Mocked response '{name}' has no answers"),
            )),
        }
    }
}

/// A host that answers tasks from a [`MockConfig`] and objects from memory
/// (`bucket/key` -> body). Writes are kept in memory too.
#[derive(Debug, Default)]
pub struct MemoryHost {
    pub mocks: MockConfig,
    pub objects: BTreeMap<String, String>,
    pub written: Vec<(String, Value)>,
}

impl MemoryHost {
    /// Load a corpus case's `fixtures.s3_objects` as `bucket/key` objects.
    pub fn load_fixtures(&mut self, case: &Value) {
        let objects = case
            .pointer("/fixtures/s3_objects")
            .and_then(Value::as_array);
        for o in objects.into_iter().flatten() {
            let key = format!(
                "{}/{}",
                o["bucket"].as_str().unwrap_or(""),
                o["key"].as_str().unwrap_or("")
            );
            self.objects
                .insert(key, o["body"].as_str().unwrap_or("").to_string());
        }
    }

    fn object_key(parameters: &Value) -> Result<String, Failure> {
        let bucket = parameters.get("Bucket").and_then(Value::as_str);
        let key = parameters.get("Key").and_then(Value::as_str);
        match (bucket, key) {
            (Some(b), Some(k)) => Ok(format!("{b}/{k}")),
            _ => Err(Failure::new(
                names::ITEM_READER_FAILED,
                "ItemReader parameters need 'Bucket' and 'Key'",
            )),
        }
    }
}

impl Host for MemoryHost {
    fn invoke_task(
        &mut self,
        state: &str,
        _resource: &str,
        _input: &Value,
        attempt: u32,
    ) -> Result<Value, Failure> {
        self.mocks.answer(state, attempt)
    }

    fn read_object(&mut self, _resource: &str, parameters: &Value) -> Result<String, Failure> {
        let key = MemoryHost::object_key(parameters)?;
        self.objects.get(&key).cloned().ok_or_else(|| {
            Failure::new(
                names::ITEM_READER_FAILED,
                format!("The specified key does not exist: {key}"),
            )
        })
    }

    fn write_objects(
        &mut self,
        _resource: &str,
        _parameters: &Value,
        objects: &[(String, Value)],
    ) -> Result<(), Failure> {
        self.written.extend(objects.iter().cloned());
        Ok(())
    }
}

/// Placeholder words the AWS recordings put in place of nondeterministic values.
const WILDCARD_WORDS: &[&str] = &[
    "date",
    "start-time",
    "entered-time",
    "snf_role_arn",
    "RandomNumberGenerated",
    "generated-uuid",
    "timestamp",
];

/// Compares an outcome with a recorded expectation
/// (`{"status", "output"}` or `{"status", "error", "cause"}`), treating the
/// recorder's placeholders (`<ArnPart_0idx>`, `date`, ...) as wildcards.
pub fn check_expectation(outcome: &Outcome, expect: &Value) -> Result<(), String> {
    let status = serde_json::to_value(outcome.status).unwrap_or(Value::Null);
    if expect.get("status") != Some(&status) {
        return Err(format!(
            "status: expected {}, got {status} ({})",
            expect.get("status").unwrap_or(&Value::Null),
            describe(outcome)
        ));
    }
    if outcome.status == Status::Succeeded {
        let want = expect.get("output").unwrap_or(&Value::Null);
        let got = outcome.output.as_ref().unwrap_or(&Value::Null);
        if !value_matches(want, got) {
            return Err(format!("output: expected {want}, got {got}"));
        }
        return Ok(());
    }
    for (key, got) in [("error", &outcome.error), ("cause", &outcome.cause)] {
        let want = expect.get(key).and_then(Value::as_str);
        let ok = match (want, got) {
            (None, None) => true,
            (Some(w), Some(g)) => text_matches(w, g),
            _ => false,
        };
        if !ok {
            return Err(format!("{key}: expected {want:?}, got {got:?}"));
        }
    }
    Ok(())
}

fn describe(o: &Outcome) -> String {
    match &o.output {
        Some(v) => format!("output {v}"),
        None => format!("error {:?}, cause {:?}", o.error, o.cause),
    }
}

/// JSON equality with numbers by value and placeholders as wildcards.
pub fn value_matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(w), _) if WILDCARD_WORDS.contains(&w.as_str()) => true,
        (Value::String(w), Value::String(g)) => text_matches(w, g),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_matches(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, v)| match b.get(k) {
                    Some(g) => k.to_ascii_lowercase().contains("timestamp") || value_matches(v, g),
                    None => false,
                })
        }
        _ => want == got,
    }
}

/// String equality where `<token>` in `want` matches any run of characters.
pub fn text_matches(want: &str, got: &str) -> bool {
    if want == got || WILDCARD_WORDS.contains(&want) {
        return true;
    }
    let mut parts = Vec::new();
    let mut rest = want;
    let mut any_token = false;
    while let Some(start) = rest.find('<') {
        match rest[start..].find('>') {
            Some(end) if is_token(&rest[start + 1..start + end]) => {
                parts.push(&rest[..start]);
                rest = &rest[start + end + 1..];
                any_token = true;
            }
            _ => break,
        }
    }
    if !any_token {
        return false;
    }
    parts.push(rest);
    wildcard_match(&parts, got)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
}

fn wildcard_match(parts: &[&str], got: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return got.is_empty();
    };
    let Some(mut s) = got.strip_prefix(first) else {
        return false;
    };
    if rest.is_empty() {
        return s.is_empty();
    }
    for (i, p) in rest.iter().enumerate() {
        if i + 1 == rest.len() {
            return s.ends_with(p);
        }
        match s.find(p) {
            Some(pos) => s = &s[pos + p.len()..],
            None => return false,
        }
    }
    true
}
