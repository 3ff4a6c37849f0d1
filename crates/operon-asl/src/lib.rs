//! `operon-asl`: the Amazon States Language as a pure library.
//!
//! * [`StateMachine::parse_str`] / [`StateMachine::from_value`] parse and
//!   validate a definition (JSONPath and JSONata query languages, per state or
//!   at the top); errors name the field with a JSON pointer.
//! * [`Execution`] is the interpreter, written as a *step machine*: it does no
//!   I/O, reads no clock and spawns no threads.
//!
//! # The step machine
//!
//! The host calls [`Execution::start`] with the definition, the input and
//! [`ExecutionParams`] (names, start time, random seed, limits). The engine
//! runs every state it can run without the outside world and returns
//! [`Effect`]s:
//!
//! * [`Effect::InvokeTask`]: run task `resource` with `input`; answer with
//!   [`Event::TaskSucceeded`] / [`Event::TaskFailed`] (and
//!   [`Event::Heartbeat`]) carrying the same token;
//! * [`Effect::StartTimer`]: deliver [`Event::TimerFired`] at that time (Wait
//!   states, Retry back-off, TimeoutSeconds, HeartbeatSeconds). Stale timers
//!   are ignored, so the host never has to cancel one;
//! * [`Effect::ReadObject`] / [`Effect::WriteObjects`]: ItemReader and
//!   ResultWriter I/O, answered with [`Event::ObjectRead`] /
//!   [`Event::ObjectsWritten`];
//! * [`Effect::History`]: a history event named as Step Functions names it
//!   (`PassStateEntered`, `TaskScheduled`, `MapIterationStarted`, ...);
//! * [`Effect::Finished`]: the outcome (`SUCCEEDED` with output, or
//!   `FAILED`/`TIMED_OUT`/`ABORTED` with error and cause).
//!
//! The host persists the effects, performs them and feeds the outcomes back
//! with [`Execution::handle`]`(event, now_millis)`. [`Execution`] is
//! `Serialize + Deserialize`; after loading it, re-attach the definition with
//! [`Execution::restore`].
//!
//! Parallel branches and Map iterations run inside the same execution state as
//! *frames*, scheduled in a fixed order; `MaxConcurrency` limits how many
//! frames of one Map are started at once.
//!
//! # Determinism
//!
//! The engine's only inputs are the definition, the execution input, the
//! parameters (start time and seed) and the sequence of events with their
//! `now_millis`. The same inputs give the same effects, byte for byte:
//! `States.UUID`, `States.MathRandom`, JSONata `$random`/`$uuid` and retry
//! jitter draw from a seeded generator stored in the execution state.
//! Runaway definitions are bounded by `ExecutionParams::max_transitions`
//! and JSONata step/depth limits.
//!
//! [`runner::LocalRunner`] drives an execution in-process with a virtual clock
//! and mock task answers; `operon workflows run-local` uses it.

pub mod choice;
pub mod definition;
pub mod engine;
pub mod error;
pub mod history;
pub mod intrinsics;
pub mod items;
pub mod jsonpath;
pub mod rng;
pub mod runner;
pub mod template;
pub mod time;

pub use definition::{QueryLanguage, StateMachine};
pub use engine::{Effect, Event, Execution, ExecutionParams, Outcome, Status};
pub use error::{Failure, ValidationError, ValidationErrors};
pub use history::HistoryEvent;
