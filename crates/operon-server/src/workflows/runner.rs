//! The runner: the one task that steps executions.
//!
//! It takes every message waiting (starts, task outcomes, timers, stops,
//! redrives), steps each execution's engine, and hands the resulting
//! [`StepWrite`]s as one batch to the *committer*, which commits each batch
//! in one transaction. Only after the commit does the committer answer
//! callers, schedule timers, start task performers and announce status
//! changes. The runner builds the next batch while the previous one is being
//! committed (two in flight at most), so the fsync of one batch overlaps the
//! stepping of the next.
//!
//! If a commit fails, that batch and every batch built on top of it are
//! answered with an error and their internal events are re-sent a second
//! later; the runner then drops its whole cache and reloads executions from
//! the store, which holds exactly the last committed state.
//!
//! Being the only writer of executions makes the name check of a start
//! (the idempotency key) race-free: names of starts not yet committed are
//! held in a shared set. The runner steps only while this process holds the
//! lease [`RUNNER_LEASE`] (renewed every third of its time); another process
//! stands by until it expires. With the in-process backend the runner takes
//! it at start and keeps it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use operon_api::workflows::Execution as ExecutionView;
use operon_asl::{Effect, Event, Execution, ExecutionParams, Outcome, StateMachine, Status};
use operon_store::{
    Approval, ApprovalDecision, ExecutionRecord, HistoryRow, StepWrite, WorkflowTask,
};
use rand::RngCore;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::tasks::{self, Base};
use super::{RUNNING, execution_view, on_status_change};
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::{AppState, auth, now_millis};

/// The marker of task tokens (`ott_` and 64 hex digits), like the other
/// secrets' prefixes.
pub(crate) const TASK_TOKEN_PREFIX: &str = "ott_";

/// Most messages stepped and committed together.
const MAX_BATCH: usize = 1024;

/// The lease of the one process whose runner steps executions.
pub(crate) const RUNNER_LEASE: &str = "workflows.runner";
/// How long the runner's lease lasts; it is renewed every third of it.
const RUNNER_LEASE_MS: i64 = 15_000;

/// State transitions an execution makes in one step before it yields to
/// the others (it resumes on a timer due at once), so a tight loop in one
/// runbook neither holds the runner nor grows one step without bound.
const TRANSITIONS_PER_STEP: u64 = 500;

/// Step Functions' history limit: an execution whose history would grow
/// past it fails with `States.Runtime`.
const MAX_HISTORY_EVENTS: u64 = 25_000;

/// A request to start an execution (validated by the caller).
pub struct StartRequest {
    pub workflow: String,
    pub version: i64,
    pub input: Value,
    pub name: Option<String>,
    pub started_by: String,
    /// Record the start in the audit trail under `started_by`, in the start's
    /// own transaction (a rule or a runbook; a user's call is audited by the
    /// API).
    pub audit_as_actor: bool,
    pub parent_token: Option<String>,
    /// The rules whose effects led to this start (the loop guard).
    pub causation: Vec<String>,
}

/// What the runner is asked to do. (Messages are short-lived and moved once;
/// boxing the larger variant would buy nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Msg {
    Start(
        Box<StartRequest>,
        oneshot::Sender<ServiceResult<ExecutionView>>,
    ),
    /// Feed an event to an execution. `decision` (an approval's answer) is
    /// written in the same step. Without `reply` the event is internal
    /// (a timer or a performer's outcome) and is retried if the commit fails.
    Event {
        execution_id: String,
        event: Event,
        decision: Option<ApprovalDecision>,
        reply: Option<oneshot::Sender<ServiceResult<()>>>,
    },
    Redrive {
        execution_id: String,
        reply: oneshot::Sender<ServiceResult<ExecutionView>>,
    },
}

struct Live {
    record: ExecutionRecord,
    ex: Execution,
    pending: BTreeSet<String>,
}

enum Reply {
    Value(
        oneshot::Sender<ServiceResult<ExecutionView>>,
        Box<ExecutionView>,
    ),
    Unit(oneshot::Sender<ServiceResult<()>>),
}

#[derive(Default)]
struct Batch {
    /// Position in commit order (from 1).
    seq: u64,
    /// The committer's failure count when the batch was built.
    epoch: u64,
    writes: Vec<StepWrite>,
    touched: HashSet<String>,
    timers: Vec<(i64, String, i64)>,
    tasks: Vec<WorkflowTask>,
    changed: Vec<ExecutionRecord>,
    replies: Vec<Reply>,
    retry: Vec<(String, Event)>,
    names: HashSet<(String, String)>,
}

/// What the runner and the committer share.
#[derive(Default)]
struct Shared {
    /// Commits that failed so far.
    failures: AtomicU64,
    /// The last batch handled by the committer (committed or failed).
    done: AtomicU64,
    /// (workflow, name) of starts not yet committed.
    starting: Mutex<HashSet<(String, String)>>,
}

struct Runner {
    state: Arc<AppState>,
    shared: Arc<Shared>,
    cache: HashMap<String, Live>,
    machines: HashMap<(String, i64), Arc<StateMachine>>,
    epoch: u64,
    seq: u64,
    /// Finished executions kept in the cache until their batch is done.
    finished: VecDeque<(u64, String)>,
}

pub async fn run(state: Arc<AppState>, mut rx: mpsc::Receiver<Msg>) {
    let shared = Arc::new(Shared::default());
    let (to_committer, batches) = mpsc::channel(1);
    tokio::spawn(committer(state.clone(), shared.clone(), batches));
    let mut runner = Runner {
        state,
        shared,
        cache: HashMap::new(),
        machines: HashMap::new(),
        epoch: 0,
        seq: 0,
        finished: VecDeque::new(),
    };
    let state = runner.state.clone();
    let coordination = &state.coordination;
    let mut lease = coordination.acquire(RUNNER_LEASE, RUNNER_LEASE_MS).await;
    let mut renew = tokio::time::interval(Duration::from_millis(RUNNER_LEASE_MS as u64 / 3));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            biased;
            _ = renew.tick() => {
                if !coordination.renew(&lease, RUNNER_LEASE_MS) {
                    tracing::warn!("the workflow runner lost its lease; standing by");
                    runner.stand_by().await;
                    lease = coordination.acquire(RUNNER_LEASE, RUNNER_LEASE_MS).await;
                    tracing::info!(epoch = lease.epoch, "the workflow runner holds its lease again");
                }
                continue;
            }
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => return,
            },
        };
        let mut msgs = vec![first];
        while msgs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => msgs.push(next),
                Err(_) => break,
            }
        }
        runner.catch_up();
        runner.seq += 1;
        let mut batch = Batch {
            seq: runner.seq,
            epoch: runner.epoch,
            ..Batch::default()
        };
        for msg in msgs {
            runner.handle(msg, &mut batch).await;
        }
        for id in &batch.touched {
            if runner
                .cache
                .get(id)
                .is_some_and(|l| l.record.status != RUNNING)
            {
                runner.finished.push_back((batch.seq, id.clone()));
            }
        }
        if to_committer.send(batch).await.is_err() {
            return;
        }
    }
}

impl Runner {
    async fn handle(&mut self, msg: Msg, batch: &mut Batch) {
        match msg {
            Msg::Start(request, reply) => match self.start(*request, batch).await {
                Ok(Some(view)) => batch.replies.push(Reply::Value(reply, Box::new(view))),
                Ok(None) => {}
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Msg::Event {
                execution_id,
                event,
                decision,
                reply,
            } => {
                let internal = reply.is_none() && decision.is_none();
                let retry = internal.then(|| (execution_id.clone(), event.clone()));
                match self
                    .event(&execution_id, event, decision, reply.is_some(), batch)
                    .await
                {
                    Ok(true) => {
                        if let Some(reply) = reply {
                            batch.replies.push(Reply::Unit(reply));
                        }
                        batch.retry.extend(retry);
                    }
                    Ok(false) => {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(e));
                        } else {
                            tracing::debug!(%execution_id, error = %e.message, "event dropped");
                        }
                    }
                }
            }
            Msg::Redrive {
                execution_id,
                reply,
            } => match self.redrive(&execution_id, batch).await {
                Ok(view) => batch.replies.push(Reply::Value(reply, Box::new(view))),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
        }
    }

    async fn machine(&mut self, workflow: &str, version: i64) -> ServiceResult<Arc<StateMachine>> {
        let key = (workflow.to_string(), version);
        if let Some(m) = self.machines.get(&key) {
            return Ok(m.clone());
        }
        let definition = self
            .state
            .store
            .workflow_definition(workflow, version)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "NotFound",
                    format!("workflow {workflow:?} has no version {version}"),
                )
            })?;
        let machine = Arc::new(StateMachine::from_value(&definition).map_err(|e| {
            ServiceError::invalid(
                "ValidationError",
                format!("workflow {workflow:?} version {version}: {e}"),
            )
        })?);
        self.machines.insert(key, machine.clone());
        Ok(machine)
    }

    /// Returns `None` when the answer was already sent (an existing execution).
    async fn start(
        &mut self,
        req: StartRequest,
        batch: &mut Batch,
    ) -> ServiceResult<Option<ExecutionView>> {
        if let Some(name) = &req.name {
            let key = (req.workflow.clone(), name.clone());
            if self.starting().contains(&key) {
                return Err(ServiceError::conflict(
                    "Conflict",
                    format!(
                        "an execution named {name:?} of {:?} is being started",
                        req.workflow
                    ),
                ));
            }
            if let Some(existing) = self
                .state
                .store
                .execution_by_name(&req.workflow, name)
                .await?
            {
                if existing.input == req.input {
                    let mut view = execution_view(&existing);
                    view.already_existed = Some(true);
                    return Ok(Some(view));
                }
                return Err(ServiceError::conflict(
                    "Conflict",
                    format!(
                        "execution {name:?} of {:?} already exists ({}) with a different input",
                        req.workflow, existing.id
                    ),
                ));
            }
        }
        let machine = self.machine(&req.workflow, req.version).await?;
        if let Some(name) = &req.name {
            let key = (req.workflow.clone(), name.clone());
            self.starting().insert(key.clone());
            batch.names.insert(key);
        }
        let id = auth::new_id("x-");
        let name = req
            .name
            .clone()
            .unwrap_or_else(|| id.trim_start_matches("x-").to_string());
        let now = now_millis();
        // Each task token is the SHA-256 of this key and the task's number:
        // independent values, none derivable from another.
        let mut token_key = [0u8; 32];
        rand::rng().fill_bytes(&mut token_key);
        let params = ExecutionParams {
            name: name.clone(),
            state_machine_name: req.workflow.clone(),
            region: "local".into(),
            account: "000000000000".into(),
            role_arn: String::new(),
            start_time_millis: now,
            seed: rand::rng().next_u64(),
            token_prefix: Some(TASK_TOKEN_PREFIX.into()),
            token_key: Some(hex::encode(token_key)),
            max_payload_bytes: self.state.config.max_payload_bytes,
            max_transitions_per_step: Some(TRANSITIONS_PER_STEP),
            max_history_events: Some(MAX_HISTORY_EVENTS),
            ..ExecutionParams::default()
        };
        let (ex, effects) = Execution::start(machine, req.input.clone(), params);
        let audit_as_actor = req.audit_as_actor;
        let record = ExecutionRecord {
            id: id.clone(),
            workflow: req.workflow,
            version: req.version,
            name,
            status: RUNNING.into(),
            input: req.input,
            output: None,
            error: None,
            cause: None,
            parent_token: req.parent_token,
            started_by: req.started_by,
            started_at: now,
            stopped_at: None,
            updated_at: now,
            redrive_count: 0,
            causation: req.causation,
        };
        batch.changed.push(record.clone());
        let mut live = Live {
            record,
            ex,
            pending: BTreeSet::new(),
        };
        let mut step = self.step(&mut live, effects, true, now, batch);
        if audit_as_actor {
            step.audit.push(actor_start_record(&live.record));
        }
        batch.writes.push(step);
        let view = execution_view(&live.record);
        batch.touched.insert(id.clone());
        self.cache.insert(id, live);
        Ok(Some(view))
    }

    async fn load(&mut self, id: &str) -> ServiceResult<()> {
        if self.cache.contains_key(id) {
            return Ok(());
        }
        let (record, engine) = self
            .state
            .store
            .execution_engine(id)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found("NotFound", format!("no execution with id {id:?}"))
            })?;
        let machine = self.machine(&record.workflow, record.version).await?;
        let ex: Execution = serde_json::from_str(&engine).map_err(|e| {
            tracing::error!(execution_id = %id, error = %e, "unreadable engine state");
            ServiceError::new(
                ErrorKind::Internal,
                "InternalError",
                format!("execution {id} has an unreadable state; see the server log"),
            )
        })?;
        let ex = ex.restore(machine);
        let pending = ex.pending_tokens().map(str::to_string).collect();
        self.cache.insert(
            id.to_string(),
            Live {
                record,
                ex,
                pending,
            },
        );
        Ok(())
    }

    /// Returns whether a step was written.
    async fn event(
        &mut self,
        id: &str,
        event: Event,
        decision: Option<ApprovalDecision>,
        external: bool,
        batch: &mut Batch,
    ) -> ServiceResult<bool> {
        self.load(id).await?;
        let mut live = self.cache.remove(id).expect("loaded above");
        let result = self.event_on(&mut live, event, decision, external, batch);
        self.cache.insert(id.to_string(), live);
        result
    }

    fn event_on(
        &mut self,
        live: &mut Live,
        event: Event,
        decision: Option<ApprovalDecision>,
        external: bool,
        batch: &mut Batch,
    ) -> ServiceResult<bool> {
        if live.record.status != RUNNING {
            return Err(ServiceError::conflict(
                "Conflict",
                format!(
                    "execution {} is {}, not running",
                    live.record.id, live.record.status
                ),
            ));
        }
        let token = match &event {
            Event::TaskSucceeded { token, .. }
            | Event::TaskFailed { token, .. }
            | Event::Heartbeat { token } => Some(token.clone()),
            _ => None,
        };
        if let Some(token) = &token
            && !live.pending.contains(token)
        {
            if external {
                return Err(ServiceError::conflict(
                    "Conflict",
                    "the task is no longer waiting (answered, timed out or stopped)",
                ));
            }
            return Ok(false);
        }
        let timer = match &event {
            Event::TimerFired { id } => Some(*id as i64),
            _ => None,
        };
        let now = now_millis();
        let effects = live.ex.handle(event, now);
        let mut step = self.step(live, effects, false, now, batch);
        step.timers_remove.extend(timer);
        step.approval_decisions.extend(decision);
        batch.writes.push(step);
        batch.touched.insert(live.record.id.clone());
        Ok(true)
    }

    async fn redrive(&mut self, id: &str, batch: &mut Batch) -> ServiceResult<ExecutionView> {
        self.load(id).await?;
        let mut live = self.cache.remove(id).expect("loaded above");
        let now = now_millis();
        let result = match live.ex.redrive(now) {
            None => Err(ServiceError::conflict(
                "Conflict",
                format!(
                    "execution {id} is {}; only a failed, timed-out or aborted execution that entered a state can be redriven",
                    live.record.status
                ),
            )),
            Some(effects) => {
                live.record.status = RUNNING.into();
                live.record.output = None;
                live.record.error = None;
                live.record.cause = None;
                live.record.stopped_at = None;
                live.record.redrive_count = i64::from(live.ex.redrive_count());
                batch.changed.push(live.record.clone());
                let step = self.step(&mut live, effects, false, now, batch);
                batch.writes.push(step);
                batch.touched.insert(id.to_string());
                Ok(execution_view(&live.record))
            }
        };
        self.cache.insert(id.to_string(), live);
        result
    }

    /// Turn the engine's effects into a step write. Effects the server cannot
    /// perform at all (unknown resources, the event bus, object I/O) are
    /// answered at once with a named error, inside the same step.
    fn step(
        &mut self,
        live: &mut Live,
        effects: Vec<Effect>,
        insert: bool,
        now: i64,
        batch: &mut Batch,
    ) -> StepWrite {
        let id = live.record.id.clone();
        let mut step = StepWrite {
            execution: live.record.clone(),
            insert,
            engine: String::new(),
            history: Vec::new(),
            timers_add: Vec::new(),
            timers_remove: Vec::new(),
            tasks_add: Vec::new(),
            tasks_remove: Vec::new(),
            approvals_add: Vec::new(),
            approval_decisions: Vec::new(),
            audit: Vec::new(),
        };
        let mut new_tasks = Vec::new();
        let mut queue = effects;
        loop {
            let mut immediate = Vec::new();
            for effect in queue.drain(..) {
                match effect {
                    Effect::History(h) => step.history.push(HistoryRow {
                        seq: h.id as i64,
                        timestamp: h.timestamp_millis,
                        event: serde_json::to_string(&h).unwrap_or_default(),
                    }),
                    Effect::StartTimer { id: t, fire_at_millis } => {
                        step.timers_add.push((t as i64, fire_at_millis));
                        batch.timers.push((fire_at_millis, id.clone(), t as i64));
                    }
                    Effect::InvokeTask {
                        token,
                        resource,
                        input,
                        state,
                        ..
                    } => {
                        let task = WorkflowTask {
                            idempotency_key: tasks::idempotency_key(&token),
                            token: token.clone(),
                            execution_id: id.clone(),
                            state,
                            resource,
                            input,
                            created_at: now,
                        };
                        match plan_task(&task) {
                            Ok(approval) => {
                                step.approvals_add.extend(approval);
                                new_tasks.push(task);
                            }
                            Err((error, cause)) => immediate.push(Event::TaskFailed {
                                token,
                                error: Some(error.into()),
                                cause: Some(cause),
                            }),
                        }
                    }
                    Effect::ReadObject { token, .. } | Effect::WriteObjects { token, .. } => {
                        immediate.push(Event::TaskFailed {
                            token,
                            error: Some("Operon.NotSupported".into()),
                            cause: Some(
                                "ItemReader and ResultWriter objects are not available in the server"
                                    .into(),
                            ),
                        })
                    }
                    Effect::Finished(outcome) => finish(&mut live.record, &outcome, now),
                }
            }
            if immediate.is_empty() {
                break;
            }
            for event in immediate {
                queue.extend(live.ex.handle(event, now));
            }
        }
        let pending: BTreeSet<String> = live.ex.pending_tokens().map(str::to_string).collect();
        new_tasks.retain(|t| pending.contains(&t.token));
        step.approvals_add.retain(|a| pending.contains(&a.token));
        step.tasks_remove = live.pending.difference(&pending).cloned().collect();
        live.pending = pending;
        for task in &new_tasks {
            if tasks::needs_performer(&task.resource) {
                batch.tasks.push(task.clone());
            }
        }
        step.tasks_add = new_tasks;
        live.record.updated_at = now;
        if live.record.status != RUNNING {
            batch.changed.push(live.record.clone());
        }
        step.execution = live.record.clone();
        step.engine = serde_json::to_string(&live.ex).unwrap_or_default();
        step
    }

    fn starting(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.shared
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The lease was lost: another process may step executions from now on,
    /// so once the batches in flight are done, forget everything (the store
    /// has the truth when the lease is taken again).
    async fn stand_by(&mut self) {
        while self.shared.done.load(Ordering::Acquire) < self.seq {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.cache.clear();
        self.finished.clear();
    }

    /// Before building a batch: after a failed commit forget everything
    /// (the store has the truth); drop finished executions whose batch is done.
    fn catch_up(&mut self) {
        let failures = self.shared.failures.load(Ordering::Acquire);
        if failures != self.epoch {
            self.epoch = failures;
            self.cache.clear();
            self.finished.clear();
        }
        let done = self.shared.done.load(Ordering::Acquire);
        while self.finished.front().is_some_and(|(seq, _)| *seq <= done) {
            if let Some((_, id)) = self.finished.pop_front()
                && self
                    .cache
                    .get(&id)
                    .is_some_and(|l| l.record.status != RUNNING)
            {
                self.cache.remove(&id);
            }
        }
    }
}

/// Commits batches in order; after each commit performs what it asked for.
async fn committer(state: Arc<AppState>, shared: Arc<Shared>, mut batches: mpsc::Receiver<Batch>) {
    while let Some(batch) = batches.recv().await {
        let seq = batch.seq;
        let names: Vec<(String, String)> = batch.names.iter().cloned().collect();
        if batch.epoch != shared.failures.load(Ordering::Acquire) {
            fail_batch(
                &state,
                batch,
                "an earlier batch of workflow steps failed to commit",
            );
        } else if batch.writes.is_empty() {
            for reply in batch.replies {
                send_ok(reply);
            }
        } else {
            let started = std::time::Instant::now();
            match state.store.apply_workflow_steps(&batch.writes).await {
                Ok(head) => {
                    if let Some(head) = head {
                        state.audit.advance_head(&head);
                    }
                    tracing::debug!(
                        seq,
                        steps = batch.writes.len(),
                        commit_ms = started.elapsed().as_secs_f64() * 1e3,
                        "workflow batch committed"
                    );
                    after_commit(&state, batch)
                }
                Err(e) => {
                    tracing::error!(error = %e, steps = batch.writes.len(), "committing workflow steps failed");
                    shared.failures.fetch_add(1, Ordering::AcqRel);
                    fail_batch(&state, batch, &e.to_string());
                }
            }
        }
        {
            let mut starting = shared.starting.lock().unwrap_or_else(|e| e.into_inner());
            for name in &names {
                starting.remove(name);
            }
        }
        shared.done.store(seq, Ordering::Release);
    }
}

fn after_commit(state: &Arc<AppState>, batch: Batch) {
    for reply in batch.replies {
        send_ok(reply);
    }
    for (due, id, timer) in batch.timers {
        state.workflows.timers.schedule(due, id, timer);
    }
    for task in batch.tasks {
        tasks::perform(state.clone(), task);
    }
    for record in &batch.changed {
        if record.status != RUNNING {
            state.workflows.origins.forget(&record.id);
        }
        on_status_change(state, record);
    }
    let abandoned: Vec<String> = batch
        .writes
        .iter()
        .filter(|w| w.execution.status == "ABORTED")
        .flat_map(|w| w.tasks_remove.iter().cloned())
        .collect();
    if !abandoned.is_empty() {
        tokio::spawn(tasks::cancel_commands(state.clone(), abandoned));
    }
}

fn fail_batch(state: &Arc<AppState>, batch: Batch, why: &str) {
    for reply in batch.replies {
        send_err(reply, why);
    }
    if batch.retry.is_empty() {
        return;
    }
    let tx = state.workflows.tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (execution_id, event) in batch.retry {
            let msg = Msg::Event {
                execution_id,
                event,
                decision: None,
                reply: None,
            };
            let _ = tx.send(msg).await;
        }
    });
}

fn send_ok(reply: Reply) {
    match reply {
        Reply::Value(tx, v) => {
            let _ = tx.send(Ok(*v));
        }
        Reply::Unit(tx) => {
            let _ = tx.send(Ok(()));
        }
    }
}

fn send_err(reply: Reply, why: &str) {
    // The batch did not commit: nothing was written, the caller may retry.
    let err = || ServiceError::new(ErrorKind::Unavailable, "CommitFailed", why);
    match reply {
        Reply::Value(tx, _) => {
            let _ = tx.send(Err(err()));
        }
        Reply::Unit(tx) => {
            let _ = tx.send(Err(err()));
        }
    }
}

fn finish(record: &mut ExecutionRecord, outcome: &Outcome, now: i64) {
    record.status = match outcome.status {
        Status::Running => RUNNING,
        Status::Succeeded => "SUCCEEDED",
        Status::Failed => "FAILED",
        Status::TimedOut => "TIMED_OUT",
        Status::Aborted => "ABORTED",
    }
    .into();
    record.output = outcome.output.clone();
    record.error = outcome.error.clone();
    record.cause = outcome.cause.clone();
    record.stopped_at = Some(now);
}

/// Check a task before it is recorded: an approval becomes a pending approval
/// row; resources the server cannot run fail at once with a named error.
fn plan_task(task: &WorkflowTask) -> Result<Option<Approval>, (&'static str, String)> {
    let (base, _) = tasks::classify(&task.resource)?;
    match base {
        Base::Approval => tasks::approval_for(task).map(Some),
        _ => Ok(None),
    }
}

/// The audit record of an execution started by a rule or a runbook.
fn actor_start_record(execution: &ExecutionRecord) -> operon_store::AuditEntry {
    operon_store::AuditEntry {
        actor: execution.started_by.clone(),
        action: "workflows:StartExecution".into(),
        resource: format!("workflow/{}", execution.workflow),
        outcome: "allowed".into(),
        detail: serde_json::json!({
            "execution_id": execution.id,
            "name": execution.name,
            "version": execution.version,
        }),
    }
}
