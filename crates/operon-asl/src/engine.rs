//! The interpreter: a deterministic step machine over serializable state.

use crate::choice;
use crate::definition::{
    Catcher, Kind, MapMode, MapSpec, NumberField, PathField, QueryLanguage, State, StateMachine,
    StringField, WaitSpec,
};
use crate::error::{Failure, names};
use crate::history::HistoryEvent;
use crate::intrinsics;
use crate::items;
use crate::rng::Rng;
use crate::template::{Scope, Template};
use crate::time;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// How an execution is identified and seeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionParams {
    pub name: String,
    pub state_machine_name: String,
    pub region: String,
    pub account: String,
    pub role_arn: String,
    pub start_time_millis: i64,
    pub seed: u64,
    /// Emit [`Effect::History`] events (ids are tracked either way).
    pub record_history: bool,
    /// The execution fails with `States.Runtime` after this many state transitions.
    pub max_transitions: u64,
    /// Task tokens are `<prefix>-<n>`; the prefix defaults to `name`. With a
    /// [`token_key`](Self::token_key) they are `<prefix><64 hex digits>`
    /// instead, and the prefix is only a fixed marker of the kind of token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_prefix: Option<String>,
    /// A secret key (a durable host gives each execution 32 random bytes):
    /// the n-th token is then the SHA-256 of the key and n, so each token is
    /// as unguessable as the key, and knowing some tokens of an execution
    /// tells nothing about its others. Without it tokens are sequential, and
    /// knowing one yields the next. Kept in the serialised state, so a
    /// restored execution goes on with the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key: Option<String>,
    /// The payload size quota, in bytes of compact UTF-8 JSON: Step Functions'
    /// 256 KiB (262,144 bytes) by default. The execution input, a state's
    /// input after `Parameters`/`Arguments` (Task, Parallel; for a Map each
    /// iteration's input after `ItemSelector`, or as read by an `ItemReader`
    /// or built by an `ItemBatcher`), a task's result and every state's
    /// output must fit;
    /// otherwise the state fails with `States.DataLimitExceeded`, which
    /// `States.ALL` does not catch. A host may raise the quota; `u64::MAX`
    /// turns the check off. Executions persisted before this field existed
    /// get the default.
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: u64,
    /// State transitions one call of `start`/`handle` may make before the
    /// execution yields: it asks for a timer due now
    /// ([`Effect::StartTimer`]) and carries on when it fires, so a host
    /// stepping many executions on one thread is never held by a tight
    /// loop, and each step's memory stays bounded. `None`: no yielding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_transitions_per_step: Option<u64>,
    /// The execution fails with `States.Runtime` when its history would
    /// grow past this many events (checked as each state is entered); Step
    /// Functions' limit is 25,000. `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history_events: Option<u64>,
}

/// Step Functions' payload size quota: 256 KiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 262_144;

fn default_max_payload_bytes() -> u64 {
    DEFAULT_MAX_PAYLOAD_BYTES
}

/// Whether `v`, serialised as compact JSON, takes more than `limit` bytes.
/// Serialisation stops as soon as the limit is passed and nothing is
/// allocated, so the cost is bounded by the limit, not by the value.
pub fn exceeds_payload_limit(v: &Value, limit: u64) -> bool {
    struct Counter {
        written: u64,
        limit: u64,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written += buf.len() as u64;
            if self.written > self.limit {
                return Err(std::io::Error::other("payload limit exceeded"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    if limit == u64::MAX {
        return false;
    }
    let mut counter = Counter { written: 0, limit };
    serde_json::to_writer(&mut counter, v).is_err()
}

impl Default for ExecutionParams {
    fn default() -> ExecutionParams {
        ExecutionParams {
            name: "local-execution".into(),
            state_machine_name: "local-state-machine".into(),
            region: "us-east-1".into(),
            account: "111111111111".into(),
            role_arn: "arn:aws:iam::111111111111:role/operon-local".into(),
            start_time_millis: 0,
            seed: 0,
            record_history: true,
            max_transitions: 25_000_000,
            token_prefix: None,
            token_key: None,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_transitions_per_step: None,
            max_history_events: None,
        }
    }
}

impl ExecutionParams {
    pub fn execution_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:execution:{}:{}",
            self.region, self.account, self.state_machine_name, self.name
        )
    }

    pub fn state_machine_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            self.region, self.account, self.state_machine_name
        )
    }
}

/// Something the host tells the execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    TaskSucceeded {
        token: String,
        output: Value,
    },
    TaskFailed {
        token: String,
        error: Option<String>,
        cause: Option<String>,
    },
    Heartbeat {
        token: String,
    },
    TimerFired {
        id: u64,
    },
    /// The body of the object an [`Effect::ReadObject`] asked for.
    ObjectRead {
        token: String,
        body: String,
    },
    /// The outcome of an [`Effect::WriteObjects`].
    ObjectsWritten {
        token: String,
    },
    /// Stop the execution (`ABORTED`).
    Stop {
        error: Option<String>,
        cause: Option<String>,
    },
}

/// Something the execution asks the host to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// Run a task; answer with `TaskSucceeded`/`TaskFailed` (and `Heartbeat`s) for `token`.
    InvokeTask {
        token: String,
        resource: String,
        input: Value,
        state: String,
        timeout_at_millis: Option<i64>,
        heartbeat_seconds: Option<u64>,
    },
    /// Fire `TimerFired { id }` at this time (timers never need cancelling: stale ones are ignored).
    StartTimer {
        id: u64,
        fire_at_millis: i64,
    },
    /// ItemReader: fetch an object; answer with `ObjectRead` or `TaskFailed`.
    ReadObject {
        token: String,
        resource: String,
        parameters: Value,
    },
    /// ResultWriter: store these objects; answer with `ObjectsWritten` or `TaskFailed`.
    WriteObjects {
        token: String,
        resource: String,
        parameters: Value,
        objects: Vec<(String, Value)>,
    },
    History(Box<HistoryEvent>),
    Finished(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Phase {
    Enter,
    Execute,
    MapItems(Vec<Value>),
    Blocked(Block),
    Finish(Result<Value, Failure>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Block {
    Task {
        token: String,
        heartbeat_seconds: Option<u64>,
        heartbeat_timer: Option<u64>,
        timeout_timer: Option<u64>,
    },
    Wait {
        timer: u64,
        result: Value,
    },
    Retry {
        timer: u64,
    },
    Children(Box<Children>),
    ReadItems {
        token: String,
        max: Option<usize>,
    },
    WriteResults {
        token: String,
        output: Value,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Children {
    parallel: bool,
    distributed: bool,
    processors: Vec<usize>,
    inputs: Vec<Value>,
    results: Vec<Value>,
    next: usize,
    running: BTreeSet<u32>,
    finished: usize,
    failed: usize,
    max_concurrency: usize,
    tolerated_count: Option<u64>,
    tolerated_pct: Option<f64>,
    /// ResultWriter resource and evaluated parameters.
    writer: Option<(String, Value)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Frame {
    processor: usize,
    state: usize,
    input: Value,
    vars: Map<String, Value>,
    parent: Option<(u32, usize)>,
    phase: Phase,
    entered_id: u64,
    entered_ms: i64,
    retry_count: u32,
    attempts: Vec<u32>,
}

/// The serializable state of one execution. Attach the definition with
/// [`Execution::restore`] after deserializing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    #[serde(skip)]
    machine: Option<Arc<StateMachine>>,
    params: ExecutionParams,
    input: Value,
    frames: BTreeMap<u32, Frame>,
    ready: VecDeque<u32>,
    next_frame: u32,
    next_event_id: u64,
    next_timer: u64,
    next_token: u64,
    tokens: BTreeMap<String, u32>,
    timers: BTreeMap<u64, u32>,
    rng: Rng,
    now: i64,
    transitions: u64,
    outcome: Option<Outcome>,
    /// The top-level state to restart from if a failed execution is redriven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redrive_point: Option<Frame>,
    #[serde(default)]
    redrive_count: u32,
    /// The token of the `.waitForTaskToken` task whose arguments are being
    /// evaluated (`$$.Task.Token`).
    #[serde(skip)]
    task_token: Option<String>,
    #[serde(skip)]
    effects: Vec<Effect>,
    /// Transitions made in the current call (see
    /// [`ExecutionParams::max_transitions_per_step`]).
    #[serde(skip)]
    step_transitions: u64,
    /// The current call has used its budget and asked to be resumed.
    #[serde(skip)]
    yielded: bool,
}

/// The frame id of the timer that resumes a yielded execution.
const RESUME: u32 = u32::MAX - 1;

enum Flow {
    /// The state's raw result; output processing follows.
    Result(Value),
    /// Output already computed; go to `next` (`None` = end of the processor).
    Next {
        output: Value,
        next: Option<usize>,
        assigned: Option<Map<String, Value>>,
    },
    Block(Block),
    /// A Fail state: raise as is.
    Raise(Failure),
}

struct CtxInfo<'a> {
    params: &'a ExecutionParams,
    input: &'a Value,
    state: &'a str,
    entered_ms: i64,
    retry_count: Option<u32>,
    map_item: Option<(usize, &'a Value)>,
    token: Option<&'a str>,
    redrive_count: u32,
}

fn context_object(c: &CtxInfo) -> Value {
    let mut ctx = json!({
        "Execution": {
            "Id": c.params.execution_arn(),
            "Input": c.input,
            "StartTime": time::format_millis(c.params.start_time_millis),
            "Name": c.params.name,
            "RoleArn": c.params.role_arn,
            "RedriveCount": c.redrive_count,
        },
        "StateMachine": { "Id": c.params.state_machine_arn(), "Name": c.params.state_machine_name },
        "State": { "Name": c.state, "EnteredTime": time::format_millis(c.entered_ms) },
    });
    if let Some(n) = c.retry_count {
        ctx["State"]["RetryCount"] = Value::from(n);
    }
    if let Some(t) = c.token {
        ctx["Task"] = json!({ "Token": t });
    }
    if let Some((i, v)) = c.map_item {
        ctx["Map"] = json!({ "Item": { "Index": i, "Value": v } });
    }
    ctx
}

const EVAL_ERRORS: &[&str] = &[
    names::RUNTIME,
    names::QUERY_EVALUATION_ERROR,
    names::INTRINSIC_FAILURE,
    names::RESULT_PATH_MATCH_FAILURE,
    names::PARAMETER_PATH_FAILURE,
];

impl Execution {
    /// Starts an execution: records `ExecutionStarted` and runs until the first
    /// task, timer or the end.
    pub fn start(
        machine: Arc<StateMachine>,
        input: Value,
        params: ExecutionParams,
    ) -> (Execution, Vec<Effect>) {
        let mut ex = Execution {
            machine: Some(machine),
            rng: Rng::new(params.seed),
            now: params.start_time_millis,
            input: input.clone(),
            params,
            frames: BTreeMap::new(),
            ready: VecDeque::new(),
            next_frame: 0,
            next_event_id: 0,
            next_timer: 0,
            next_token: 0,
            tokens: BTreeMap::new(),
            timers: BTreeMap::new(),
            transitions: 0,
            outcome: None,
            redrive_point: None,
            redrive_count: 0,
            task_token: None,
            effects: Vec::new(),
            step_transitions: 0,
            yielded: false,
        };
        ex.history("ExecutionStarted", |e| e.input = Some(input.clone()));
        if ex.too_large(&input) {
            // Step Functions refuses such an input at StartExecution; a host
            // that wants that checks `exceeds_payload_limit` before starting.
            ex.fail_execution(Failure::new(
                names::DATA_LIMIT_EXCEEDED,
                "The execution input has a size exceeding the maximum number of bytes service limit.",
            ));
            let effects = std::mem::take(&mut ex.effects);
            return (ex, effects);
        }
        if let Some(t) = ex.machine().timeout_seconds {
            let id = ex.new_timer(after_seconds(ex.now, t));
            ex.timers.insert(id, u32::MAX);
        }
        ex.spawn(0, input, Map::new(), None);
        ex.run();
        let effects = std::mem::take(&mut ex.effects);
        (ex, effects)
    }

    /// Re-attaches the definition to a deserialized execution.
    pub fn restore(mut self, machine: Arc<StateMachine>) -> Execution {
        self.machine = Some(machine);
        self
    }

    /// The outcome, once finished.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The number of state transitions so far.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The execution's parameters.
    pub fn params(&self) -> &ExecutionParams {
        &self.params
    }

    /// Tokens of the tasks the execution is waiting for. A host compares this
    /// before and after a step to learn which tasks ended (answered, timed out
    /// or abandoned by a Catch elsewhere) and can be forgotten.
    pub fn pending_tokens(&self) -> impl Iterator<Item = &str> {
        self.tokens.keys().map(String::as_str)
    }

    /// How many times the execution was redriven.
    pub fn redrive_count(&self) -> u32 {
        self.redrive_count
    }

    /// Whether [`Execution::redrive`] can restart this execution.
    pub fn can_redrive(&self) -> bool {
        self.redrive_point.is_some()
            && self
                .outcome
                .as_ref()
                .is_some_and(|o| o.status != Status::Succeeded)
    }

    /// Restarts a failed, timed-out or aborted execution from the top-level
    /// state that was running when it ended, with that state's input and
    /// variables (as Step Functions' RedriveExecution does; a Parallel or Map
    /// state is re-run as a whole). Returns `None` when there is nothing to
    /// redrive (running or succeeded executions, or one that failed before
    /// entering a state).
    pub fn redrive(&mut self, now_millis: i64) -> Option<Vec<Effect>> {
        if !self.can_redrive() || self.machine.is_none() {
            return None;
        }
        let mut frame = self.redrive_point.take()?;
        self.now = self.now.max(now_millis);
        self.outcome = None;
        self.redrive_count += 1;
        self.transitions = 0;
        frame.phase = Phase::Enter;
        frame.retry_count = 0;
        frame.attempts.clear();
        let count = self.redrive_count;
        self.history("ExecutionRedriven", |e| e.index = Some(u64::from(count)));
        let id = self.next_frame;
        self.next_frame += 1;
        self.frames.insert(id, frame);
        self.ready.push_back(id);
        self.run();
        Some(std::mem::take(&mut self.effects))
    }

    /// Feeds an outcome back in at time `now_millis`; returns the new effects.
    /// Events for unknown tokens or timers (stale, cancelled, duplicated) are
    /// ignored, so at-least-once delivery is safe. A deserialized execution
    /// must be [`Execution::restore`]d first; until then it ignores events.
    pub fn handle(&mut self, event: Event, now_millis: i64) -> Vec<Effect> {
        self.now = self.now.max(now_millis);
        if self.outcome.is_none() && self.machine.is_some() {
            self.dispatch(event);
            self.run();
        }
        std::mem::take(&mut self.effects)
    }

    /// Whether a payload is over [`ExecutionParams::max_payload_bytes`].
    fn too_large(&self, v: &Value) -> bool {
        exceeds_payload_limit(v, self.params.max_payload_bytes)
    }

    fn machine(&self) -> Arc<StateMachine> {
        self.machine.clone().unwrap_or_else(|| {
            Arc::new(StateMachine {
                processors: Vec::new(),
                timeout_seconds: None,
                comment: None,
            })
        })
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::TaskSucceeded { token, output } => self.resolve_token(&token, Ok(output)),
            Event::TaskFailed {
                token,
                error,
                cause,
            } => self.resolve_token(&token, Err(Failure { error, cause })),
            Event::ObjectRead { token, body } => self.items_read(&token, body),
            Event::ObjectsWritten { token } => self.resolve_token(&token, Ok(Value::Null)),
            Event::Heartbeat { token } => self.heartbeat(&token),
            Event::TimerFired { id } => self.timer_fired(id),
            Event::Stop { error, cause } => {
                self.history("ExecutionAborted", |e| {
                    e.error = error.clone();
                    e.cause = cause.clone();
                });
                self.finish_execution(Outcome {
                    status: Status::Aborted,
                    output: None,
                    error,
                    cause,
                });
            }
        }
    }

    fn resolve_token(&mut self, token: &str, res: Result<Value, Failure>) {
        let Some(fid) = self.tokens.remove(token) else {
            return;
        };
        let Some(mut f) = self.frames.remove(&fid) else {
            return;
        };
        let res = match (&f.phase, res) {
            (Phase::Blocked(Block::Task { .. }), Ok(out)) if self.too_large(&out) => {
                // "Output of a connector is larger than payload size quota."
                let resource = match self.machine().processors[f.processor].states[f.state].kind {
                    Kind::Task(ref spec) => spec.resource.clone(),
                    _ => String::new(),
                };
                let fail = data_limit_exceeded(&resource);
                self.history("TaskFailed", |e| {
                    e.error = fail.error.clone();
                    e.cause = fail.cause.clone();
                });
                Err(fail)
            }
            (Phase::Blocked(Block::Task { .. }), Ok(out)) => {
                self.history("TaskSucceeded", |e| e.output = Some(out.clone()));
                Ok(out)
            }
            (Phase::Blocked(Block::Task { .. }), Err(fail)) => {
                self.history("TaskFailed", |e| {
                    e.error = fail.error.clone();
                    e.cause = fail.cause.clone();
                });
                Err(fail)
            }
            (Phase::Blocked(Block::WriteResults { output, .. }), Ok(_)) => Ok(output.clone()),
            (Phase::Blocked(Block::WriteResults { .. } | Block::ReadItems { .. }), Err(fail)) => {
                Err(fail)
            }
            (_, r) => r,
        };
        f.phase = Phase::Finish(res);
        self.frames.insert(fid, f);
        self.ready.push_back(fid);
    }

    fn items_read(&mut self, token: &str, body: String) {
        let Some(fid) = self.tokens.remove(token) else {
            return;
        };
        let machine = self.machine();
        let Some(f) = self.frames.get_mut(&fid) else {
            return;
        };
        let st = &machine.processors[f.processor].states[f.state];
        let Kind::Map(spec) = &st.kind else { return };
        let Some(reader) = &spec.item_reader else {
            return;
        };
        let max = match &f.phase {
            Phase::Blocked(Block::ReadItems { max, .. }) => *max,
            _ => None,
        };
        f.phase = match items::parse_items(&body, reader, max) {
            Ok(list) => Phase::MapItems(list),
            Err(fail) => Phase::Finish(Err(fail)),
        };
        self.ready.push_back(fid);
    }

    fn heartbeat(&mut self, token: &str) {
        let Some(fid) = self.tokens.get(token).copied() else {
            return;
        };
        let now = self.now;
        let Some(secs) = (match self.frames.get(&fid).map(|f| &f.phase) {
            Some(Phase::Blocked(Block::Task {
                heartbeat_seconds: Some(s),
                ..
            })) => Some(*s),
            _ => None,
        }) else {
            return;
        };
        let id = self.new_timer(after_seconds(now, secs));
        self.timers.insert(id, fid);
        if let Some(Frame {
            phase: Phase::Blocked(Block::Task {
                heartbeat_timer, ..
            }),
            ..
        }) = self.frames.get_mut(&fid)
        {
            *heartbeat_timer = Some(id);
        }
    }

    fn timer_fired(&mut self, id: u64) {
        let Some(fid) = self.timers.remove(&id) else {
            return;
        };
        if fid == RESUME {
            // The yielded frames are ready; `handle` runs them next.
            return;
        }
        if fid == u32::MAX {
            self.history("ExecutionTimedOut", |e| {
                e.error = Some(names::TIMEOUT.into())
            });
            let o = Outcome {
                status: Status::TimedOut,
                output: None,
                error: Some(names::TIMEOUT.into()),
                cause: None,
            };
            return self.finish_execution(o);
        }
        let Some(mut f) = self.frames.remove(&fid) else {
            return;
        };
        let next = match std::mem::replace(&mut f.phase, Phase::Enter) {
            Phase::Blocked(Block::Wait { timer, result }) if timer == id => {
                Phase::Finish(Ok(result))
            }
            Phase::Blocked(Block::Retry { timer }) if timer == id => Phase::Execute,
            Phase::Blocked(Block::Task {
                token,
                heartbeat_timer,
                timeout_timer,
                heartbeat_seconds,
            }) => {
                let which = if timeout_timer == Some(id) {
                    Some(names::TIMEOUT)
                } else if heartbeat_timer == Some(id) {
                    Some(names::HEARTBEAT_TIMEOUT)
                } else {
                    None
                };
                match which {
                    Some(err) => {
                        self.tokens.remove(&token);
                        self.history("TaskTimedOut", |e| e.error = Some(err.into()));
                        Phase::Finish(Err(Failure {
                            error: Some(err.into()),
                            cause: None,
                        }))
                    }
                    None => Phase::Blocked(Block::Task {
                        token,
                        heartbeat_timer,
                        timeout_timer,
                        heartbeat_seconds,
                    }),
                }
            }
            other => other,
        };
        let runnable = !matches!(next, Phase::Blocked(_));
        f.phase = next;
        self.frames.insert(fid, f);
        if runnable {
            self.ready.push_back(fid);
        }
    }

    fn new_timer(&mut self, at: i64) -> u64 {
        self.next_timer += 1;
        let id = self.next_timer;
        self.effects.push(Effect::StartTimer {
            id,
            fire_at_millis: at,
        });
        id
    }

    fn new_token(&mut self) -> String {
        use sha2::{Digest, Sha256};
        use std::fmt::Write;
        self.next_token += 1;
        if let Some(key) = &self.params.token_key {
            // Inputs of one length (the key is fixed per execution, n is 8
            // bytes), so the hash is a keyed function of n.
            let mut hash = Sha256::new();
            hash.update((key.len() as u64).to_be_bytes());
            hash.update(key.as_bytes());
            hash.update(self.next_token.to_be_bytes());
            let mut token = self.params.token_prefix.clone().unwrap_or_default();
            for byte in hash.finalize() {
                let _ = write!(token, "{byte:02x}");
            }
            return token;
        }
        let prefix = self
            .params
            .token_prefix
            .as_ref()
            .unwrap_or(&self.params.name);
        format!("{prefix}-{:08}", self.next_token)
    }

    fn history(&mut self, kind: &'static str, fill: impl FnOnce(&mut HistoryEvent)) -> u64 {
        self.next_event_id += 1;
        if self.params.record_history {
            let mut e = HistoryEvent::new(self.next_event_id, kind, self.now);
            fill(&mut e);
            self.effects.push(Effect::History(Box::new(e)));
        }
        self.next_event_id
    }

    fn spawn(
        &mut self,
        processor: usize,
        input: Value,
        vars: Map<String, Value>,
        parent: Option<(u32, usize)>,
    ) -> u32 {
        let machine = self.machine();
        let start = machine
            .processors
            .get(processor)
            .map(|p| p.start_at)
            .unwrap_or(0);
        let id = self.next_frame;
        self.next_frame += 1;
        let f = Frame {
            processor,
            state: start,
            input,
            vars,
            parent,
            phase: Phase::Enter,
            entered_id: 0,
            entered_ms: 0,
            retry_count: 0,
            attempts: Vec::new(),
        };
        self.frames.insert(id, f);
        self.ready.push_back(id);
        id
    }

    fn run(&mut self) {
        let machine = self.machine();
        self.step_transitions = 0;
        self.yielded = false;
        while let Some(fid) = self.ready.pop_front() {
            if self.outcome.is_some() {
                break;
            }
            if let Some(f) = self.frames.remove(&fid) {
                self.run_frame(&machine, fid, f);
            }
            if self.yielded {
                break;
            }
        }
    }

    /// Stop this call here: the frame waits, first in line, for the resume
    /// timer (due now) that the host fires like any other.
    fn yield_step(&mut self, fid: u32, f: Frame) {
        self.frames.insert(fid, f);
        self.ready.push_front(fid);
        if !self.yielded {
            self.yielded = true;
            let id = self.new_timer(self.now);
            self.timers.insert(id, RESUME);
        }
    }

    fn run_frame(&mut self, m: &StateMachine, fid: u32, mut f: Frame) {
        loop {
            if self.outcome.is_some() {
                return;
            }
            let Some(st) = m
                .processors
                .get(f.processor)
                .and_then(|p| p.states.get(f.state))
            else {
                return self.complete(
                    fid,
                    f,
                    Err(Failure::new(names::RUNTIME, "invalid state reference")),
                );
            };
            let phase = std::mem::replace(&mut f.phase, Phase::Execute);
            let flow = match phase {
                Phase::Enter => {
                    if self
                        .params
                        .max_transitions_per_step
                        .is_some_and(|budget| self.step_transitions >= budget)
                    {
                        f.phase = Phase::Enter;
                        return self.yield_step(fid, f);
                    }
                    if self
                        .params
                        .max_history_events
                        .is_some_and(|limit| self.next_event_id >= limit)
                    {
                        let fail = Failure::new(
                            names::RUNTIME,
                            "The execution reached the limit of events in its history.",
                        );
                        return self.fail_execution(fail);
                    }
                    self.step_transitions += 1;
                    self.transitions += 1;
                    if self.transitions > self.params.max_transitions {
                        let fail = Failure::new(
                            names::RUNTIME,
                            "The execution exceeded its transition budget.",
                        );
                        return self.fail_execution(fail);
                    }
                    f.entered_ms = self.now;
                    f.retry_count = 0;
                    f.attempts.clear();
                    let input = &f.input;
                    f.entered_id = self.history(st.kind.entered_event(), |e| {
                        e.name = Some(st.name.clone());
                        e.input = Some(input.clone());
                    });
                    continue;
                }
                Phase::Execute => self.execute(m, fid, &mut f, st, None),
                Phase::MapItems(items) => self.execute(m, fid, &mut f, st, Some(items)),
                Phase::Blocked(b) => {
                    f.phase = Phase::Blocked(b);
                    self.frames.insert(fid, f);
                    return;
                }
                Phase::Finish(Ok(v)) => self.finish_result(&mut f, st, v),
                Phase::Finish(Err(fail)) => Ok(Flow::Raise(fail)),
            };
            let flow = match flow {
                Ok(fl) => fl,
                Err(fail) => Flow::Raise(self.prefix(&f, st, fail)),
            };
            let flow = match flow {
                Flow::Result(v) => match self.finish_result(&mut f, st, v) {
                    Ok(fl) => fl,
                    Err(fail) => Flow::Raise(self.prefix(&f, st, fail)),
                },
                other => other,
            };
            // "Output of a state is larger than payload size quota."
            let flow = match flow {
                Flow::Next { ref output, .. }
                    if !passes_input_through(st) && self.too_large(output) =>
                {
                    Flow::Raise(data_limit_exceeded(&st.name))
                }
                other => other,
            };
            match flow {
                Flow::Result(_) => unreachable_flow(),
                Flow::Next {
                    output,
                    next,
                    assigned,
                } => {
                    if let Some(a) = &assigned {
                        for (k, v) in a {
                            f.vars.insert(k.clone(), v.clone());
                        }
                    }
                    self.exit_events(st, &output, assigned);
                    match next {
                        Some(n) => {
                            f.state = n;
                            f.input = output;
                            f.phase = Phase::Enter;
                        }
                        None => return self.complete(fid, f, Ok(output)),
                    }
                }
                Flow::Block(b) => {
                    f.phase = Phase::Blocked(b);
                    self.frames.insert(fid, f);
                    return;
                }
                Flow::Raise(fail) => match self.handle_error(fid, &mut f, st, fail) {
                    Ok(true) => {}
                    Ok(false) => {
                        if matches!(f.phase, Phase::Execute) {
                            self.frames.insert(fid, f);
                            self.ready.push_back(fid);
                        } else {
                            self.frames.insert(fid, f);
                        }
                        return;
                    }
                    Err(fail) => return self.complete(fid, f, Err(fail)),
                },
            }
        }
    }

    fn exit_events(&mut self, st: &State, output: &Value, assigned: Option<Map<String, Value>>) {
        if matches!(st.kind, Kind::Fail(_)) {
            return;
        }
        match &st.kind {
            Kind::Map(_) => {
                self.history("MapStateSucceeded", |_| {});
            }
            Kind::Parallel { .. } => {
                self.history("ParallelStateSucceeded", |_| {});
            }
            _ => {}
        }
        self.history(st.kind.exited_event(), |e| {
            e.name = Some(st.name.clone());
            e.output = Some(output.clone());
            e.assigned_variables = assigned;
        });
    }

    /// Adds the "An error occurred while executing the state ..." prefix to
    /// errors raised by the state's own evaluation (and records `EvaluationFailed`).
    fn prefix(&mut self, f: &Frame, st: &State, mut fail: Failure) -> Failure {
        if EVAL_ERRORS.contains(&fail.name()) {
            let cause = fail.cause.take().unwrap_or_default();
            fail.cause = Some(format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {cause}",
                st.name, f.entered_id
            ));
        }
        if fail.name() == names::QUERY_EVALUATION_ERROR {
            let location = fail
                .cause
                .as_deref()
                .and_then(|c| c.split_once("for the field '"))
                .and_then(|(_, rest)| rest.split_once('\''))
                .map(|(field, _)| field.to_string())
                .or_else(|| {
                    let c = fail.cause.as_deref()?;
                    // After the "(entered at the event id #N)." prefix.
                    let (_, rest) = c.split_once("). The ").or_else(|| c.split_once(") The "))?;
                    let (word, _) = rest.split_once(" field")?;
                    (!word.contains(' ')).then(|| word.to_string())
                });
            self.history("EvaluationFailed", |e| {
                e.state = Some(st.name.clone());
                e.location = location;
                e.error = fail.error.clone();
                e.cause = fail.cause.clone();
            });
        }
        fail
    }

    fn ctx<'a>(
        &'a self,
        f: &'a Frame,
        st: &'a State,
        item: Option<(usize, &'a Value)>,
        token: Option<&'a str>,
    ) -> CtxInfo<'a> {
        CtxInfo {
            params: &self.params,
            input: &self.input,
            state: &st.name,
            entered_ms: f.entered_ms,
            retry_count: retry_count_of(f, st),
            map_item: item,
            token: token.or(self.task_token.as_deref()),
            redrive_count: self.redrive_count,
        }
    }

    /// `$states` for JSONata.
    fn states_value(&self, f: &Frame, st: &State, extra: &[(&str, &Value)]) -> Value {
        let mut m = Map::new();
        m.insert("input".into(), f.input.clone());
        m.insert(
            "context".into(),
            context_object(&self.ctx(f, st, None, None)),
        );
        for (k, v) in extra {
            m.insert((*k).into(), (*v).clone());
        }
        Value::Object(m)
    }

    /// Evaluates a template with `$` = `input` (JSONPath) or `$states` (JSONata).
    fn eval_template(
        &mut self,
        t: &Template,
        f: &Frame,
        st: &State,
        input: &Value,
        states: Option<&Value>,
        item: Option<(usize, &Value)>,
    ) -> Result<Value, Failure> {
        let info = CtxInfo {
            params: &self.params,
            input: &self.input,
            state: &st.name,
            entered_ms: f.entered_ms,
            retry_count: retry_count_of(f, st),
            map_item: item,
            token: self.task_token.as_deref(),
            redrive_count: self.redrive_count,
        };
        let ctx_fn = || context_object(&info);
        let scope = Scope {
            input,
            vars: &f.vars,
            context: &ctx_fn,
            states,
            now_millis: self.now,
        };
        t.eval(&scope, &mut self.rng)
    }

    fn lookup(
        &self,
        f: &Frame,
        st: &State,
        path: &crate::jsonpath::JsonPath,
        input: &Value,
    ) -> Option<Value> {
        let info = self.ctx(f, st, None, None);
        let ctx_fn = || context_object(&info);
        let scope = Scope {
            input,
            vars: &f.vars,
            context: &ctx_fn,
            states: None,
            now_millis: self.now,
        };
        scope.lookup(path)
    }

    fn apply_path(
        &self,
        f: &Frame,
        st: &State,
        field: &PathField,
        v: Value,
    ) -> Result<Value, Failure> {
        match field {
            PathField::Default => Ok(v),
            PathField::Null => Ok(Value::Object(Map::new())),
            PathField::Path(p) if p.is_root_only() && *p.root() == crate::jsonpath::Root::Input => {
                Ok(v)
            }
            PathField::Path(p) => self.lookup(f, st, p, &v).ok_or_else(|| {
                Failure::new(
                    names::RUNTIME,
                    format!(
                        "Invalid path '{}' : No results for path: {}",
                        p.source(),
                        p.normalized()
                    ),
                )
            }),
        }
    }

    fn effective_input(&self, f: &Frame, st: &State) -> Result<Value, Failure> {
        if st.ql == QueryLanguage::Jsonata {
            return Ok(f.input.clone());
        }
        self.apply_path(f, st, &st.input_path, f.input.clone())
    }

    fn execute(
        &mut self,
        m: &StateMachine,
        fid: u32,
        f: &mut Frame,
        st: &State,
        items: Option<Vec<Value>>,
    ) -> Result<Flow, Failure> {
        match &st.kind {
            Kind::Pass { result } => self.exec_pass(f, st, result.as_ref()),
            Kind::Succeed => Ok(Flow::Result(self.effective_input(f, st)?)),
            Kind::Fail(spec) => self.exec_fail(f, st, spec),
            Kind::Choice(_) => self.exec_choice(f, st),
            Kind::Wait(spec) => self.exec_wait(fid, f, st, spec),
            Kind::Task(spec) => self.exec_task(fid, f, st, spec),
            Kind::Parallel { branches } => self.exec_parallel(fid, f, st, branches),
            Kind::Map(spec) => self.exec_map(m, fid, f, st, spec, items),
        }
    }

    fn exec_pass(
        &mut self,
        f: &Frame,
        st: &State,
        result: Option<&Value>,
    ) -> Result<Flow, Failure> {
        if st.ql == QueryLanguage::Jsonata {
            return Ok(Flow::Result(
                result.cloned().unwrap_or_else(|| f.input.clone()),
            ));
        }
        let effective = self.effective_input(f, st)?;
        if let Some(r) = result {
            return Ok(Flow::Result(r.clone()));
        }
        match &st.parameters {
            Some(t) => Ok(Flow::Result(
                self.eval_template(t, f, st, &effective, None, None)?,
            )),
            None => Ok(Flow::Result(effective)),
        }
    }

    /// The task / branch input: `Parameters` over the effective input, or `Arguments`.
    fn arguments(&mut self, f: &Frame, st: &State) -> Result<Value, Failure> {
        let effective = self.effective_input(f, st)?;
        let input = match (&st.parameters, st.ql) {
            // No larger than the state input, which was measured as the
            // previous state's output.
            (None, _) => return Ok(effective),
            (Some(t), QueryLanguage::JsonPath) => {
                self.eval_template(t, f, st, &effective, None, None)?
            }
            (Some(t), QueryLanguage::Jsonata) => {
                let states = self.states_value(f, st, &[]);
                self.eval_template(t, f, st, &effective, Some(&states), None)?
            }
        };
        self.check_input_size(st, input)
    }

    /// "After `Parameters` processing, the input of a state is larger than
    /// the payload size quota": `States.DataLimitExceeded`.
    fn check_input_size(&self, st: &State, input: Value) -> Result<Value, Failure> {
        if self.too_large(&input) {
            return Err(Failure::new(
                names::DATA_LIMIT_EXCEEDED,
                format!(
                    "The state/task '{}' has an input with a size exceeding the maximum number of bytes service limit.",
                    st.name
                ),
            ));
        }
        Ok(input)
    }

    fn exec_fail(
        &mut self,
        f: &Frame,
        st: &State,
        spec: &crate::definition::FailSpec,
    ) -> Result<Flow, Failure> {
        let error = self.string_field(f, st, spec.error.as_ref(), "Error")?;
        let cause = self.string_field(f, st, spec.cause.as_ref(), "Cause")?;
        Ok(Flow::Raise(Failure { error, cause }))
    }

    fn string_field(
        &mut self,
        f: &Frame,
        st: &State,
        field: Option<&StringField>,
        name: &str,
    ) -> Result<Option<String>, Failure> {
        let Some(field) = field else { return Ok(None) };
        let v = match field {
            StringField::Literal(s) => return Ok(Some(s.clone())),
            StringField::Path(p) => self.lookup(f, st, p, &f.input).ok_or_else(|| {
                Failure::new(
                    names::RUNTIME,
                    format!(
                        "The JSONPath '{}' specified for the field '{name}Path' could not be found in the input '{}'",
                        p.source(),
                        serde_json::to_string(&f.input).unwrap_or_default()
                    ),
                )
            })?,
            StringField::Intrinsic(call) => {
                let info = self.ctx(f, st, None, None);
                let ctx_fn = || context_object(&info);
                let scope = Scope { input: &f.input, vars: &f.vars, context: &ctx_fn, states: None, now_millis: self.now };
                let mut rng = self.rng;
                let r = intrinsics::eval(call, &scope, &mut rng);
                self.rng = rng;
                r?
            }
            StringField::Jsonata(j) => {
                let t = Template::Jsonata { field: name.to_string(), expr: j.clone() };
                let states = self.states_value(f, st, &[]);
                self.eval_template(&t, f, st, &f.input, Some(&states), None)?
            }
        };
        Ok(Some(match v {
            Value::String(s) => s,
            other => other.to_string(),
        }))
    }

    fn exec_choice(&mut self, f: &Frame, st: &State) -> Result<Flow, Failure> {
        let Kind::Choice(spec) = &st.kind else {
            return Err(Failure::new(names::RUNTIME, "not a choice"));
        };
        let effective = self.effective_input(f, st)?;
        let states = (st.ql == QueryLanguage::Jsonata).then(|| self.states_value(f, st, &[]));
        let mut chosen = None;
        for rule in &spec.choices {
            let info = self.ctx(f, st, None, None);
            let ctx_fn = || context_object(&info);
            let scope = Scope {
                input: &effective,
                vars: &f.vars,
                context: &ctx_fn,
                states: states.as_ref(),
                now_millis: self.now,
            };
            let mut rng = self.rng;
            let matched = choice::evaluate(&rule.condition, &scope, &mut rng);
            self.rng = rng;
            if matched? {
                chosen = Some((rule.next, rule.assign.as_ref(), rule.output.as_ref()));
                break;
            }
        }
        let (next, assign, output) = match chosen {
            Some(c) => c,
            None => match spec.default {
                Some(d) => (d, st.assign.as_ref(), st.output.as_ref()),
                None => {
                    return Err(Failure::new(
                        names::RUNTIME,
                        "Failed to transition out of the state. The state does not point to a next state.",
                    ));
                }
            },
        };
        let (output, assigned) = match st.ql {
            QueryLanguage::JsonPath => {
                let assigned = match assign {
                    Some(t) => Some(as_map(
                        self.eval_template(t, f, st, &effective, None, None)?,
                    )),
                    None => None,
                };
                (
                    self.apply_path(f, st, &st.output_path, effective)?,
                    assigned,
                )
            }
            QueryLanguage::Jsonata => {
                let states = states.unwrap_or(Value::Null);
                let assigned = match assign {
                    Some(t) => Some(as_map(self.eval_template(
                        t,
                        f,
                        st,
                        &effective,
                        Some(&states),
                        None,
                    )?)),
                    None => None,
                };
                let out = match output {
                    Some(t) => self.eval_template(t, f, st, &effective, Some(&states), None)?,
                    None => effective,
                };
                (out, assigned)
            }
        };
        Ok(Flow::Next {
            output,
            next: Some(next),
            assigned,
        })
    }

    fn number(
        &mut self,
        f: &Frame,
        st: &State,
        field: &NumberField,
        name: &str,
        input: &Value,
    ) -> Result<Value, Failure> {
        match field {
            NumberField::Literal(v) => Ok(v.clone()),
            NumberField::Path(p) => self.lookup(f, st, p, input).ok_or_else(|| {
                Failure::new(
                    names::RUNTIME,
                    format!(
                        "The JSONPath '{}' specified for the field '{name}Path' could not be found in the input '{}'",
                        p.source(),
                        serde_json::to_string(input).unwrap_or_default()
                    ),
                )
            }),
            NumberField::Jsonata(j) => {
                let t = Template::Jsonata { field: name.to_string(), expr: j.clone() };
                let states = self.states_value(f, st, &[]);
                self.eval_template(&t, f, st, input, Some(&states), None)
            }
        }
    }

    fn exec_wait(
        &mut self,
        fid: u32,
        f: &Frame,
        st: &State,
        spec: &WaitSpec,
    ) -> Result<Flow, Failure> {
        let effective = self.effective_input(f, st)?;
        let fire_at = match spec {
            WaitSpec::Seconds(field) => {
                let v = self.number(f, st, field, "Seconds", &effective)?;
                after_seconds(self.now, wait_seconds(field, &v, st.ql)? as u64)
            }
            WaitSpec::Timestamp(field) => self.wait_timestamp(f, st, field, &effective)?,
        };
        if fire_at <= self.now {
            return Ok(Flow::Result(effective));
        }
        let timer = self.new_timer(fire_at);
        self.timers.insert(timer, fid);
        Ok(Flow::Block(Block::Wait {
            timer,
            result: effective,
        }))
    }

    fn wait_timestamp(
        &mut self,
        f: &Frame,
        st: &State,
        field: &StringField,
        input: &Value,
    ) -> Result<i64, Failure> {
        let (text, path) = match field {
            StringField::Literal(s) => (s.clone(), None),
            StringField::Path(p) => {
                let v = self.lookup(f, st, p, input).ok_or_else(|| {
                    Failure::new(
                        names::RUNTIME,
                        format!(
                            "Invalid path '{}' : No results for path: {}",
                            p.source(),
                            p.normalized()
                        ),
                    )
                })?;
                (value_text(&v), Some(p.source().to_string()))
            }
            StringField::Jsonata(_) | StringField::Intrinsic(_) => (
                self.string_field(f, st, Some(field), "Timestamp")?
                    .unwrap_or_default(),
                None,
            ),
        };
        time::parse_rfc3339(&text).ok_or_else(|| match path {
            Some(p) => Failure::new(
                names::RUNTIME,
                format!("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {p} == {text}"),
            ),
            None => Failure::new(
                names::QUERY_EVALUATION_ERROR,
                format!("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {text}"),
            ),
        })
    }

    fn exec_task(
        &mut self,
        fid: u32,
        f: &Frame,
        st: &State,
        spec: &crate::definition::TaskSpec,
    ) -> Result<Flow, Failure> {
        // A callback task's token is visible to its arguments as $$.Task.Token.
        let early_token = spec
            .resource
            .ends_with(".waitForTaskToken")
            .then(|| self.new_token());
        self.task_token = early_token.clone();
        let input = self.arguments(f, st);
        self.task_token = None;
        let input = input?;
        let timeout = match &spec.timeout {
            Some(n) => Some(positive_int(
                &self.number(f, st, n, "TimeoutSeconds", &f.input.clone())?,
                "TimeoutSeconds",
            )?),
            None => None,
        };
        let heartbeat = match &spec.heartbeat {
            Some(n) => Some(positive_int(
                &self.number(f, st, n, "HeartbeatSeconds", &f.input.clone())?,
                "HeartbeatSeconds",
            )?),
            None => None,
        };
        let token = early_token.unwrap_or_else(|| self.new_token());
        self.tokens.insert(token.clone(), fid);
        let resource = spec.resource.clone();
        let hist_input = input.clone();
        self.history("TaskScheduled", |e| {
            e.resource = Some(resource.clone());
            e.input = Some(hist_input);
        });
        self.history("TaskStarted", |_| {});
        let timeout_at = timeout.map(|t| after_seconds(self.now, t));
        let timeout_timer = timeout_at.map(|at| {
            let id = self.new_timer(at);
            self.timers.insert(id, fid);
            id
        });
        let heartbeat_timer = heartbeat.map(|h| {
            let id = self.new_timer(after_seconds(self.now, h));
            self.timers.insert(id, fid);
            id
        });
        self.effects.push(Effect::InvokeTask {
            token: token.clone(),
            resource,
            input,
            state: st.name.clone(),
            timeout_at_millis: timeout_at,
            heartbeat_seconds: heartbeat,
        });
        Ok(Flow::Block(Block::Task {
            token,
            heartbeat_seconds: heartbeat,
            heartbeat_timer,
            timeout_timer,
        }))
    }

    fn exec_parallel(
        &mut self,
        fid: u32,
        f: &Frame,
        st: &State,
        branches: &[usize],
    ) -> Result<Flow, Failure> {
        let input = self.arguments(f, st)?;
        self.history("ParallelStateStarted", |_| {});
        let ch = Children {
            parallel: true,
            distributed: false,
            processors: branches.to_vec(),
            inputs: vec![input; branches.len()],
            results: vec![Value::Null; branches.len()],
            next: 0,
            running: BTreeSet::new(),
            finished: 0,
            failed: 0,
            max_concurrency: 0,
            tolerated_count: None,
            tolerated_pct: None,
            writer: None,
        };
        self.start_children(fid, f, ch)
    }

    fn start_children(&mut self, fid: u32, f: &Frame, mut ch: Children) -> Result<Flow, Failure> {
        if ch.inputs.is_empty() {
            return Ok(Flow::Result(Value::Array(Vec::new())));
        }
        self.launch(fid, f, &mut ch);
        Ok(Flow::Block(Block::Children(Box::new(ch))))
    }

    /// Starts children up to the concurrency limit.
    fn launch(&mut self, fid: u32, f: &Frame, ch: &mut Children) {
        let limit = if ch.max_concurrency == 0 {
            usize::MAX
        } else {
            ch.max_concurrency
        };
        while ch.next < ch.inputs.len() && ch.running.len() < limit {
            let i = ch.next;
            ch.next += 1;
            let processor = if ch.parallel {
                ch.processors[i]
            } else {
                ch.processors[0]
            };
            let input = std::mem::take(&mut ch.inputs[i]);
            if !ch.parallel && !ch.distributed {
                let machine = self.machine.clone();
                self.history("MapIterationStarted", |e| {
                    e.name =
                        machine.map(|m| m.processors[f.processor].states[f.state].name.clone());
                    e.index = Some(i as u64);
                });
            }
            let cid = self.spawn(processor, input, f.vars.clone(), Some((fid, i)));
            ch.running.insert(cid);
        }
    }

    fn exec_map(
        &mut self,
        m: &StateMachine,
        fid: u32,
        f: &Frame,
        st: &State,
        spec: &MapSpec,
        items: Option<Vec<Value>>,
    ) -> Result<Flow, Failure> {
        let _ = m;
        let effective = self.effective_input(f, st)?;
        let items = match items {
            Some(list) => list,
            None => {
                if let Some(reader) = &spec.item_reader {
                    return self.request_items(fid, f, st, reader, &effective);
                }
                self.map_items(f, st, spec, &effective)?
            }
        };
        let max_concurrency = match &spec.max_concurrency {
            Some(n) => self.map_int(f, st, n, "MaxConcurrency", &effective)?,
            None => 0,
        };
        self.history("MapStateStarted", |e| e.length = Some(items.len() as u64));
        let tolerated_count = match &spec.tolerated_failure_count {
            Some(n) => {
                let c = self.map_int_signed(f, st, n, "ToleratedFailureCount", &effective)?;
                if c < 0 {
                    return Err(Failure::new(
                        names::RUNTIME,
                        "ToleratedFailureCount cannot be negative.",
                    ));
                }
                Some(c as u64)
            }
            None => None,
        };
        let tolerated_pct = match &spec.tolerated_failure_percentage {
            Some(n) => {
                let p = self.map_float(f, st, n, "ToleratedFailurePercentage", &effective)?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(Failure::new(
                        names::RUNTIME,
                        "ToleratedFailurePercentage must be between 0 and 100.",
                    ));
                }
                Some(p)
            }
            None => None,
        };
        let items = self.batch(f, st, spec, items, &effective)?;
        let mut inputs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            inputs.push(self.select_item(f, st, spec, &effective, i, item)?);
        }
        let n = inputs.len();
        let writer = match &spec.result_writer {
            Some(w) => {
                let params = match &w.parameters {
                    Some(t) => {
                        let states = (st.ql == QueryLanguage::Jsonata)
                            .then(|| self.states_value(f, st, &[]));
                        self.eval_template(t, f, st, &effective, states.as_ref(), None)?
                    }
                    None => Value::Object(Map::new()),
                };
                Some((w.resource.clone(), params))
            }
            None => None,
        };
        let distributed = spec.mode == MapMode::Distributed;
        if distributed {
            self.history("MapRunStarted", |_| {});
        }
        let ch = Children {
            parallel: false,
            distributed,
            processors: vec![spec.processor],
            inputs,
            results: vec![Value::Null; n],
            next: 0,
            running: BTreeSet::new(),
            finished: 0,
            failed: 0,
            max_concurrency,
            tolerated_count,
            tolerated_pct,
            writer,
        };
        self.start_children(fid, f, ch)
    }

    fn map_items(
        &mut self,
        f: &Frame,
        st: &State,
        spec: &MapSpec,
        effective: &Value,
    ) -> Result<Vec<Value>, Failure> {
        if st.ql == QueryLanguage::Jsonata {
            let v = match &spec.items {
                Some(t) => {
                    let states = self.states_value(f, st, &[]);
                    let v = self.eval_template(t, f, st, effective, Some(&states), None)?;
                    if !v.is_array() {
                        let src = match t {
                            Template::Jsonata { expr, .. } => expr.source.clone(),
                            _ => String::new(),
                        };
                        return Err(Failure::new(
                            names::QUERY_EVALUATION_ERROR,
                            format!(
                                "The JSONata expression '{src}' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '{}' for value: {}",
                                type_name(&v),
                                serde_json::to_string(&v).unwrap_or_default()
                            ),
                        ));
                    }
                    v
                }
                None => effective.clone(),
            };
            return match v {
                Value::Array(a) => Ok(a),
                other => Err(Failure::new(
                    names::QUERY_EVALUATION_ERROR,
                    format!(
                        "Map state input must be an array but was: {}",
                        serde_json::to_string(&other).unwrap_or_default()
                    ),
                )),
            };
        }
        let v = self.apply_path(f, st, &spec.items_path, effective.clone())?;
        match v {
            Value::Array(a) => Ok(a),
            other => Err(Failure::new(
                names::RUNTIME,
                format!(
                    "Map state input must be an array but was: {}",
                    serde_json::to_string(&other).unwrap_or_default()
                ),
            )),
        }
    }

    fn select_item(
        &mut self,
        f: &Frame,
        st: &State,
        spec: &MapSpec,
        effective: &Value,
        i: usize,
        item: &Value,
    ) -> Result<Value, Failure> {
        let Some(t) = &spec.item_selector else {
            // Items read by an ItemReader, or batched, were not part of a
            // measured payload; items from the state input were.
            if spec.item_reader.is_some() || spec.item_batcher.is_some() {
                return self.check_input_size(st, item.clone());
            }
            return Ok(item.clone());
        };
        let selected = match st.ql {
            QueryLanguage::JsonPath => {
                self.eval_template(t, f, st, effective, None, Some((i, item)))?
            }
            QueryLanguage::Jsonata => {
                let mut states = self.states_value(f, st, &[]);
                states["context"]["Map"] = json!({ "Item": { "Index": i, "Value": item } });
                self.eval_template(t, f, st, effective, Some(&states), Some((i, item)))?
            }
        };
        self.check_input_size(st, selected)
    }

    fn batch(
        &mut self,
        f: &Frame,
        st: &State,
        spec: &MapSpec,
        items: Vec<Value>,
        effective: &Value,
    ) -> Result<Vec<Value>, Failure> {
        let Some(b) = &spec.item_batcher else {
            return Ok(items);
        };
        let per = match &b.max_items_per_batch {
            Some(n) => self
                .map_int(f, st, n, "MaxItemsPerBatch", effective)?
                .max(1),
            None => usize::MAX,
        };
        let bytes = match &b.max_input_bytes_per_batch {
            Some(n) => self
                .map_int(f, st, n, "MaxInputBytesPerBatch", effective)?
                .max(1),
            None => 256 * 1024,
        };
        let batch_input = match &b.batch_input {
            Some(t) => {
                let states =
                    (st.ql == QueryLanguage::Jsonata).then(|| self.states_value(f, st, &[]));
                Some(self.eval_template(t, f, st, effective, states.as_ref(), None)?)
            }
            None => None,
        };
        let mut out = Vec::new();
        let mut cur: Vec<Value> = Vec::new();
        let mut cur_bytes = 0usize;
        for item in items {
            let size = serde_json::to_string(&item).map(|s| s.len()).unwrap_or(0);
            if !cur.is_empty() && (cur.len() >= per || cur_bytes + size > bytes) {
                out.push(make_batch(std::mem::take(&mut cur), &batch_input));
                cur_bytes = 0;
            }
            cur_bytes += size;
            cur.push(item);
        }
        if !cur.is_empty() {
            out.push(make_batch(cur, &batch_input));
        }
        Ok(out)
    }

    fn map_int(
        &mut self,
        f: &Frame,
        st: &State,
        n: &NumberField,
        name: &str,
        input: &Value,
    ) -> Result<usize, Failure> {
        let v = self.map_int_signed(f, st, n, name, input)?;
        Ok(v.max(0) as usize)
    }

    fn map_int_signed(
        &mut self,
        f: &Frame,
        st: &State,
        n: &NumberField,
        name: &str,
        input: &Value,
    ) -> Result<i64, Failure> {
        let v = self.number(f, st, n, name, input)?;
        match (int_like(&v), n) {
            (Some(i), _) => Ok(i),
            (None, NumberField::Path(p)) => Err(Failure::new(
                names::RUNTIME,
                format!(
                    "The {name}Path field refers to value \"{}\" which is not a valid integer: {}",
                    value_text(&v),
                    p.source()
                ),
            )),
            _ => Err(Failure::new(
                names::QUERY_EVALUATION_ERROR,
                format!("The {name} field must be an integer, but was: {v}"),
            )),
        }
    }

    fn map_float(
        &mut self,
        f: &Frame,
        st: &State,
        n: &NumberField,
        name: &str,
        input: &Value,
    ) -> Result<f64, Failure> {
        let v = self.number(f, st, n, name, input)?;
        match (float_like(&v), n) {
            (Some(x), _) => Ok(x),
            (None, NumberField::Path(p)) => Err(Failure::new(
                names::RUNTIME,
                format!(
                    "The {name}Path field refers to value \"{}\" which is not a valid float: {}",
                    value_text(&v),
                    p.source()
                ),
            )),
            _ => Err(Failure::new(
                names::QUERY_EVALUATION_ERROR,
                format!("The {name} field must be a number, but was: {v}"),
            )),
        }
    }

    fn request_items(
        &mut self,
        fid: u32,
        f: &Frame,
        st: &State,
        reader: &crate::definition::ItemReader,
        effective: &Value,
    ) -> Result<Flow, Failure> {
        let parameters = match &reader.parameters {
            Some(t) => {
                let states =
                    (st.ql == QueryLanguage::Jsonata).then(|| self.states_value(f, st, &[]));
                self.eval_template(t, f, st, effective, states.as_ref(), None)?
            }
            None => Value::Object(Map::new()),
        };
        // Evaluate MaxItems now so that a bad value fails before any I/O.
        let max = match &reader.max_items {
            Some(n) => {
                let v = self.number(f, st, n, "MaxItems", effective)?;
                let count = int_like(&v);
                // A MaxItemsPath value that is not an integer is a runtime
                // error, worded as for the Map's other `*Path` integers; a
                // negative integer is the ItemReader's own error below.
                if let (None, NumberField::Path(p)) = (count, n) {
                    return Err(Failure::new(
                        names::RUNTIME,
                        format!(
                            "The MaxItemsPath field refers to value \"{}\" which is not a valid integer: {}",
                            value_text(&v),
                            p.source()
                        ),
                    ));
                }
                match count {
                    Some(0) => None,
                    Some(x) if x > 0 => Some((x as usize).min(100_000_000)),
                    _ => {
                        return Err(Failure::new(
                            names::ITEM_READER_FAILED,
                            "field MaxItems must be positive",
                        ));
                    }
                }
            }
            None => None,
        };
        let token = self.new_token();
        self.tokens.insert(token.clone(), fid);
        self.effects.push(Effect::ReadObject {
            token: token.clone(),
            resource: reader.resource.clone(),
            parameters,
        });
        Ok(Flow::Block(Block::ReadItems { token, max }))
    }

    /// ResultSelector, ResultPath, OutputPath and Assign (JSONPath), or Output and Assign (JSONata).
    fn finish_result(&mut self, f: &mut Frame, st: &State, result: Value) -> Result<Flow, Failure> {
        match st.ql {
            QueryLanguage::JsonPath => {
                let selected = match &st.result_selector {
                    Some(t) => self.eval_template(t, f, st, &result, None, None)?,
                    None => result,
                };
                let assigned = match &st.assign {
                    Some(t) => Some(as_map(self.eval_template(t, f, st, &selected, None, None)?)),
                    None => None,
                };
                let combined = self.apply_result_path(f, &st.result_path, selected)?;
                let output = self.apply_path(f, st, &st.output_path, combined)?;
                Ok(Flow::Next {
                    output,
                    next: st.next,
                    assigned,
                })
            }
            QueryLanguage::Jsonata => {
                let states = self.states_value(f, st, &[("result", &result)]);
                let (output, assigned) =
                    self.jsonata_assign_output(f, st, (&st.assign, &st.output), result, &states)?;
                Ok(Flow::Next {
                    output,
                    next: st.next,
                    assigned,
                })
            }
        }
    }

    fn apply_result_path(
        &self,
        f: &Frame,
        field: &PathField,
        result: Value,
    ) -> Result<Value, Failure> {
        match field {
            PathField::Default => Ok(result),
            PathField::Null => Ok(f.input.clone()),
            PathField::Path(p) => {
                let mut target = f.input.clone();
                p.set(&mut target, result).map_err(|_| {
                    Failure::new(
                        names::RESULT_PATH_MATCH_FAILURE,
                        format!(
                            "Unable to apply ResultPath '{}' to input '{}'",
                            p.source(),
                            serde_json::to_string(&f.input).unwrap_or_default()
                        ),
                    )
                })?;
                Ok(target)
            }
        }
    }

    /// Retry or Catch. `Ok(true)`: continue running the frame (caught);
    /// `Ok(false)`: the frame waits (retry scheduled); `Err`: the frame fails.
    fn handle_error(
        &mut self,
        fid: u32,
        f: &mut Frame,
        st: &State,
        fail: Failure,
    ) -> Result<bool, Failure> {
        if !fail.is_uncatchable() {
            if f.attempts.len() < st.retry.len() {
                f.attempts.resize(st.retry.len(), 0);
            }
            if let Some(i) = st
                .retry
                .iter()
                .position(|r| error_matches(&r.errors, fail.name()))
            {
                let r = &st.retry[i];
                if f.attempts[i] < r.max_attempts {
                    let mut delay = r.interval_seconds * r.backoff_rate.powi(f.attempts[i] as i32);
                    if let Some(max) = r.max_delay_seconds {
                        delay = delay.min(max);
                    }
                    if r.full_jitter {
                        delay *= self.rng.next_f64();
                    }
                    f.attempts[i] += 1;
                    f.retry_count += 1;
                    let ms = (delay * 1000.0).round().clamp(0.0, MAX_DELAY_MILLIS) as i64;
                    if ms <= 0 {
                        f.phase = Phase::Execute;
                    } else {
                        let timer = self.new_timer(self.now.saturating_add(ms));
                        self.timers.insert(timer, fid);
                        f.phase = Phase::Blocked(Block::Retry { timer });
                    }
                    return Ok(false);
                }
            }
            if let Some(c) = st
                .catch
                .iter()
                .find(|c| error_matches(&c.errors, fail.name()))
            {
                self.failed_events(st, &fail);
                let (output, assigned) = self.catch_output(f, st, c, &fail)?;
                if self.too_large(&output) {
                    return Err(data_limit_exceeded(&st.name));
                }
                if let Some(a) = &assigned {
                    for (k, v) in a {
                        f.vars.insert(k.clone(), v.clone());
                    }
                }
                self.history(st.kind.exited_event(), |e| {
                    e.name = Some(st.name.clone());
                    e.output = Some(output.clone());
                    e.assigned_variables = assigned;
                });
                f.state = c.next;
                f.input = output;
                f.phase = Phase::Enter;
                return Ok(true);
            }
        }
        self.failed_events(st, &fail);
        Err(fail)
    }

    fn failed_events(&mut self, st: &State, fail: &Failure) {
        if fail.is_terminal() {
            return;
        }
        let kind = match st.kind {
            Kind::Map(_) => "MapStateFailed",
            Kind::Parallel { .. } => "ParallelStateFailed",
            _ => return,
        };
        self.history(kind, |e| {
            e.error = fail.error.clone();
            e.cause = fail.cause.clone();
        });
    }

    /// JSONata `Assign` then `Output` over `value` (a result or an error
    /// output); without `Output` the value passes through.
    fn jsonata_assign_output(
        &mut self,
        f: &Frame,
        st: &State,
        (assign, output): (&Option<Template>, &Option<Template>),
        value: Value,
        states: &Value,
    ) -> Result<(Value, Option<Map<String, Value>>), Failure> {
        let assigned = match assign {
            Some(t) => Some(as_map(self.eval_template(
                t,
                f,
                st,
                &value,
                Some(states),
                None,
            )?)),
            None => None,
        };
        let output = match output {
            Some(t) => self.eval_template(t, f, st, &value, Some(states), None)?,
            None => value,
        };
        Ok((output, assigned))
    }

    fn catch_output(
        &mut self,
        f: &Frame,
        st: &State,
        c: &Catcher,
        fail: &Failure,
    ) -> Result<(Value, Option<Map<String, Value>>), Failure> {
        let err_out = fail.to_error_output();
        match st.ql {
            QueryLanguage::JsonPath => {
                let assigned = match &c.assign {
                    Some(t) => Some(as_map(self.eval_template(t, f, st, &err_out, None, None)?)),
                    None => None,
                };
                Ok((
                    self.apply_result_path(f, &c.result_path, err_out)?,
                    assigned,
                ))
            }
            QueryLanguage::Jsonata => {
                let states = self.states_value(f, st, &[("errorOutput", &err_out)]);
                self.jsonata_assign_output(f, st, (&c.assign, &c.output), err_out, &states)
            }
        }
    }

    fn complete(&mut self, fid: u32, f: Frame, res: Result<Value, Failure>) {
        let _ = fid;
        if f.parent.is_none() && res.is_err() {
            self.redrive_point = Some(f.clone());
        }
        match f.parent {
            None => match res {
                Ok(output) => {
                    let o = output.clone();
                    self.history("ExecutionSucceeded", |e| e.output = Some(o));
                    self.finish_execution(Outcome {
                        status: Status::Succeeded,
                        output: Some(output),
                        error: None,
                        cause: None,
                    });
                }
                Err(fail) => self.fail_execution(fail),
            },
            Some((pid, slot)) => self.child_done(fid, pid, slot, res),
        }
    }

    fn fail_execution(&mut self, fail: Failure) {
        self.history("ExecutionFailed", |e| {
            e.error = fail.error.clone();
            e.cause = fail.cause.clone();
        });
        self.finish_execution(Outcome {
            status: Status::Failed,
            output: None,
            error: fail.error,
            cause: fail.cause,
        });
    }

    fn finish_execution(&mut self, o: Outcome) {
        if o.status == Status::Succeeded {
            self.redrive_point = None;
        } else if let Some(top) = self.frames.values().find(|f| f.parent.is_none()) {
            self.redrive_point = Some(top.clone());
        }
        self.frames.clear();
        self.ready.clear();
        self.tokens.clear();
        self.timers.clear();
        self.effects.push(Effect::Finished(o.clone()));
        self.outcome = Some(o);
    }

    fn child_done(&mut self, cid: u32, pid: u32, slot: usize, res: Result<Value, Failure>) {
        let Some(mut parent) = self.frames.remove(&pid) else {
            return;
        };
        let Phase::Blocked(Block::Children(mut ch)) =
            std::mem::replace(&mut parent.phase, Phase::Enter)
        else {
            self.frames.insert(pid, parent);
            return;
        };
        ch.running.remove(&cid);
        let iteration_events = !ch.parallel && !ch.distributed;
        let mut failure = None;
        match res {
            Ok(v) => {
                ch.results[slot] = v;
                ch.finished += 1;
                if iteration_events {
                    self.history("MapIterationSucceeded", |e| e.index = Some(slot as u64));
                }
            }
            Err(fail) => {
                if iteration_events {
                    self.history("MapIterationFailed", |e| e.index = Some(slot as u64));
                }
                ch.failed += 1;
                ch.finished += 1;
                ch.results[slot] = fail.to_error_output();
                failure = self.child_failure(&ch, fail);
            }
        }
        if let Some(fail) = failure {
            self.cancel(&ch.running.iter().copied().collect::<Vec<_>>());
            if ch.distributed {
                self.history("MapRunFailed", |_| {});
            }
            parent.phase = Phase::Finish(Err(fail));
            self.frames.insert(pid, parent);
            self.ready.push_back(pid);
            return;
        }
        if ch.finished == ch.results.len() {
            if ch.distributed {
                self.history("MapRunSucceeded", |_| {});
            }
            let results = std::mem::take(&mut ch.results);
            if let Some((resource, params)) = ch.writer.take() {
                parent.phase = self.write_results(pid, &parent, resource, params, results);
                self.frames.insert(pid, parent);
                return;
            }
            parent.phase = Phase::Finish(Ok(Value::Array(results)));
            self.frames.insert(pid, parent);
            self.ready.push_back(pid);
            return;
        }
        self.launch(pid, &parent, &mut ch);
        parent.phase = Phase::Blocked(Block::Children(ch));
        self.frames.insert(pid, parent);
    }

    /// ResultWriter: asks the host to store the results and makes the Map's
    /// result the `ResultWriterDetails` object, as Step Functions does.
    fn write_results(
        &mut self,
        pid: u32,
        parent: &Frame,
        resource: String,
        params: Value,
        results: Vec<Value>,
    ) -> Phase {
        let run_id = self.rng.uuid_v4();
        let machine = self.machine();
        let st = &machine.processors[parent.processor].states[parent.state];
        // The Map Run ARN names the Map by its `Label`, else by its state name.
        let label = match &st.kind {
            Kind::Map(spec) => spec.label.as_deref(),
            _ => None,
        }
        .unwrap_or(&st.name)
        .to_string();
        let prefix = params
            .get("Prefix")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        let dir = if prefix.is_empty() {
            run_id.clone()
        } else {
            format!("{prefix}/{run_id}")
        };
        let bucket = params.get("Bucket").cloned().unwrap_or(Value::Null);
        let map_run_arn = format!(
            "arn:aws:states:{}:{}:mapRun:{}/{}:{}",
            self.params.region, self.params.account, self.params.state_machine_name, label, run_id
        );
        let succeeded: Vec<Value> = results
            .into_iter()
            .map(|r| json!({ "Output": serde_json::to_string(&r).unwrap_or_default(), "Status": "SUCCEEDED" }))
            .collect();
        let manifest_key = format!("{dir}/manifest.json");
        let manifest = json!({
            "DestinationBucket": bucket,
            "MapRunArn": map_run_arn,
            "ResultFiles": { "SUCCEEDED": [ { "Key": format!("{dir}/SUCCEEDED_0.json"), "Size": 0 } ], "FAILED": [], "PENDING": [] },
        });
        let objects = vec![
            (format!("{dir}/SUCCEEDED_0.json"), Value::Array(succeeded)),
            (manifest_key.clone(), manifest),
        ];
        let output = json!({ "MapRunArn": map_run_arn, "ResultWriterDetails": { "Bucket": bucket, "Key": manifest_key } });
        let token = self.new_token();
        self.tokens.insert(token.clone(), pid);
        self.effects.push(Effect::WriteObjects {
            token: token.clone(),
            resource,
            parameters: params,
            objects,
        });
        Phase::Blocked(Block::WriteResults { token, output })
    }

    /// Whether a failed child fails its Parallel/Map state, and with what.
    fn child_failure(&self, ch: &Children, fail: Failure) -> Option<Failure> {
        if ch.parallel
            || fail.is_terminal()
            || (ch.tolerated_count.is_none() && ch.tolerated_pct.is_none())
        {
            return Some(fail);
        }
        let total = ch.results.len().max(1) as f64;
        let over_count = ch.tolerated_count.is_none_or(|c| ch.failed as u64 > c);
        let over_pct = ch
            .tolerated_pct
            .is_none_or(|p| ch.failed as f64 * 100.0 / total > p);
        let exceeded = match (ch.tolerated_count, ch.tolerated_pct) {
            (Some(_), Some(_)) => over_count && over_pct,
            (Some(_), None) => over_count,
            _ => over_pct,
        };
        exceeded.then(|| {
            Failure::new(
                names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                "The specified tolerated failure threshold was exceeded",
            )
        })
    }

    fn cancel(&mut self, ids: &[u32]) {
        for id in ids {
            if let Some(f) = self.frames.remove(id)
                && let Phase::Blocked(Block::Children(ch)) = f.phase
            {
                self.cancel(&ch.running.iter().copied().collect::<Vec<_>>());
            }
        }
        self.ready.retain(|r| !ids.contains(r));
    }
}

/// The longest delay any timer may have (about 3,170 years; far beyond any
/// Step Functions limit, and safe from overflow).
const MAX_DELAY_MILLIS: f64 = 1.0e14;

/// `now` plus `secs` seconds, without overflow.
fn after_seconds(now: i64, secs: u64) -> i64 {
    let ms = (secs.min(MAX_DELAY_MILLIS as u64 / 1000) as i64) * 1000;
    now.saturating_add(ms)
}

/// An integer given as a JSON integer or as a string of digits.
fn int_like(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A number given as a JSON number or as a numeric string.
fn float_like(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether the state's output is its input, unchanged: a Pass (without
/// `Result`), Wait, Succeed or JSONPath Choice state that selects nothing
/// (`InputPath`, `OutputPath` and `ResultPath` absent or `$`, or `ResultPath`
/// null) and adds nothing (no `Parameters` or JSONata `Output`). Its input
/// was measured already, as the previous state's output, so its output needs
/// no second measurement.
fn passes_input_through(st: &State) -> bool {
    let whole = |p: &PathField| match p {
        PathField::Default => true,
        PathField::Path(p) => p.is_root_only() && *p.root() == crate::jsonpath::Root::Input,
        PathField::Null => false,
    };
    let kind = match &st.kind {
        Kind::Pass { result: None } | Kind::Wait(_) | Kind::Succeed => true,
        // JSONata Choice rules may have their own `Output`.
        Kind::Choice(_) => st.ql == QueryLanguage::JsonPath,
        _ => false,
    };
    let paths = st.ql == QueryLanguage::Jsonata
        || (whole(&st.input_path)
            && whole(&st.output_path)
            && (whole(&st.result_path) || matches!(st.result_path, PathField::Null)));
    kind && paths && st.parameters.is_none() && st.result_selector.is_none() && st.output.is_none()
}

/// `$$.State.RetryCount` exists for the states that can retry.
fn retry_count_of(f: &Frame, st: &State) -> Option<u32> {
    matches!(
        st.kind,
        Kind::Task(_) | Kind::Map(_) | Kind::Parallel { .. }
    )
    .then_some(f.retry_count)
}

fn make_batch(items: Vec<Value>, batch_input: &Option<Value>) -> Value {
    let mut m = Map::new();
    if let Some(b) = batch_input {
        m.insert("BatchInput".into(), b.clone());
    }
    m.insert("Items".into(), Value::Array(items));
    Value::Object(m)
}

fn unreachable_flow() {}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn positive_int(v: &Value, name: &str) -> Result<u64, Failure> {
    v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
        Failure::new(
            names::RUNTIME,
            format!("The {name} field must be a positive integer, but was: {v}"),
        )
    })
}

fn wait_seconds(field: &NumberField, v: &Value, ql: QueryLanguage) -> Result<i64, Failure> {
    let path = match field {
        NumberField::Path(p) => Some(p.source()),
        _ => None,
    };
    let err = |msg: &str| match path {
        Some(p) => Failure::new(
            names::RUNTIME,
            format!("The SecondsPath parameter {msg}: {p} == {}", value_text(v)),
        ),
        None if ql == QueryLanguage::Jsonata => Failure::new(
            names::QUERY_EVALUATION_ERROR,
            format!("The Seconds field {msg}: {}", value_text(v)),
        ),
        None => Failure::new(
            names::RUNTIME,
            format!("The Seconds field {msg}: {}", value_text(v)),
        ),
    };
    match v.as_i64() {
        Some(n) if n < 0 => Err(err("references a negative value")),
        Some(n) => Ok(n.min(99_999_999)),
        None => Err(err("cannot be parsed as a long value")),
    }
}

/// `States.DataLimitExceeded` for a state or task whose result is too large
/// (the wording Step Functions uses; `who` is the state name, or the
/// resource for a task's own result).
fn data_limit_exceeded(who: &str) -> Failure {
    Failure::new(
        names::DATA_LIMIT_EXCEEDED,
        format!(
            "The state/task '{who}' returned a result with a size exceeding the maximum number of bytes service limit."
        ),
    )
}

/// Does an `ErrorEquals` list match this error name? `States.ALL` matches
/// everything but the terminal errors (`States.Runtime`,
/// `States.DataLimitExceeded`); those match only when named.
pub fn error_matches(list: &[String], name: &str) -> bool {
    list.iter().any(|e| {
        e == name
            || (e == names::ALL && name != names::RUNTIME && name != names::DATA_LIMIT_EXCEEDED)
            || (e == names::TASK_FAILED && !name.starts_with("States.") && !name.is_empty())
            || (e == names::TIMEOUT && name == names::HEARTBEAT_TIMEOUT)
    })
}
