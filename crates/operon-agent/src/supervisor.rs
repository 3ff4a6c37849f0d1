//! The supervisor: owns the journal and the set of invocations running in this
//! process, and turns the server's `Run`, `Cancel` and `ResultAck` into
//! actions. It never blocks on the network: frames for the server go to an
//! unbounded control queue (small, rare messages) and runners stream their
//! output through the bounded outbox.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use operon_proto::{AgentMessage, CommandResult, InvocationStatus, RunCommand};
use tokio::sync::{mpsc, watch};

use crate::journal::{self, Journal, JournalEntry, JournalError, RunAction};
use crate::output::OutputSink;
use crate::procfs::{self, KILL_GRACE};
use crate::runner::{self, StopReason, now_millis};
use crate::state::StateContext;

/// Frames for the current link, if there is one.
pub type Control = Option<mpsc::UnboundedSender<AgentMessage>>;

/// An invocation being handled in this process.
struct Running {
    /// `None` while a leftover from a previous agent process is being stopped.
    stop: Option<watch::Sender<Option<StopReason>>>,
}

/// How often a long-running agent prunes expired tombstones.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct Supervisor {
    journal: Journal,
    last_pruned: std::time::Instant,
    running: HashMap<String, Running>,
    outbox: mpsc::Sender<AgentMessage>,
    done: mpsc::UnboundedSender<CommandResult>,
    /// What desired-state steps run with.
    state: StateContext,
}

impl Supervisor {
    /// `outbox` carries `Started`/`Output` frames (bounded: back-pressure);
    /// `done` receives every final result after it has been journaled, to be
    /// passed back to [`Supervisor::on_done`].
    pub fn new(
        journal: Journal,
        outbox: mpsc::Sender<AgentMessage>,
        done: mpsc::UnboundedSender<CommandResult>,
    ) -> Self {
        Supervisor {
            journal,
            last_pruned: std::time::Instant::now(),
            running: HashMap::new(),
            outbox,
            done,
            state: StateContext::default(),
        }
    }

    /// Run desired-state steps with `state` (host root, drift recording).
    pub fn with_state(mut self, state: StateContext) -> Self {
        self.state = state;
        self
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// `ServerMessage::Run`: consult the journal before anything else.
    pub fn on_run(&mut self, command: RunCommand, control: &Control) {
        let id = command.invocation_id.clone();
        let running_here = self.running.contains_key(&id);
        let entry = match self.load_for_decision(&id) {
            Ok(entry) => entry,
            Err(err) => {
                // Without the journal we cannot prove it never ran: do nothing;
                // the server resends the Run on the next connection.
                tracing::error!(invocation_id = %id, %err, "cannot read the journal; Run ignored");
                return;
            }
        };
        match journal::decide_run(entry.as_ref(), running_here) {
            RunAction::Start => self.start(command, control),
            RunAction::Ignore => {
                tracing::debug!(invocation_id = %id, "already running; Run ignored")
            }
            RunAction::Resend(result) => {
                tracing::info!(invocation_id = %id, "already finished; resending the result");
                send(control, AgentMessage::Finished(result));
            }
            RunAction::ReportInterrupted { .. } => {
                let entry = entry.unwrap_or_else(|| JournalEntry::started(&id, now_millis()));
                self.report_interrupted(entry);
            }
        }
    }

    /// A corrupt journal file counts as "started, unknown process": the safe
    /// reading, since it may have run.
    fn load_for_decision(&self, id: &str) -> Result<Option<JournalEntry>, JournalError> {
        match self.journal.load(id) {
            Err(JournalError::Corrupt { path, source }) => {
                tracing::warn!(path = %path.display(), %source, "corrupt journal entry treated as interrupted");
                Ok(Some(JournalEntry {
                    invocation_id: id.to_owned(),
                    started_at: None,
                    process: None,
                    result: None,
                    acked_at: None,
                }))
            }
            other => other,
        }
    }

    fn start(&mut self, command: RunCommand, control: &Control) {
        let id = command.invocation_id.clone();
        let started_at = now_millis();
        let entry = JournalEntry::started(&id, started_at);
        if let Err(err) = self.journal.write(&entry) {
            tracing::error!(invocation_id = %id, %err, "cannot journal the invocation; not running it");
            let detail =
                format!("the agent could not journal the invocation, so it did not run it: {err}");
            send(
                control,
                AgentMessage::Finished(unstarted_result(&id, InvocationStatus::Failed, detail)),
            );
            return;
        }
        tracing::info!(invocation_id = %id, command_id = %command.command_id, steps = command.steps.len(), "running invocation");
        let (stop_tx, stop_rx) = runner::stop_channel();
        self.running.insert(
            id,
            Running {
                stop: Some(stop_tx),
            },
        );
        let task = InvocationTask {
            journal: self.journal.clone(),
            outbox: self.outbox.clone(),
            done: self.done.clone(),
            state: self.state.clone(),
        };
        tokio::spawn(task.run(command, entry, stop_rx));
    }

    /// Stop what may be left of an invocation started by an earlier agent
    /// process, then journal and report it as interrupted (never re-run).
    fn report_interrupted(&mut self, entry: JournalEntry) {
        let id = entry.invocation_id.clone();
        tracing::warn!(invocation_id = %id, "invocation was interrupted by an agent restart; reporting it failed");
        self.running.insert(id, Running { stop: None });
        let journal = self.journal.clone();
        let done = self.done.clone();
        tokio::spawn(async move {
            let result = finish_interrupted(&journal, entry).await;
            let _ = done.send(result);
        });
    }

    /// `ServerMessage::Cancel`.
    pub fn on_cancel(&mut self, id: &str, control: &Control) {
        if let Some(running) = self.running.get(id) {
            if let Some(stop) = &running.stop {
                tracing::info!(invocation_id = %id, "cancelling");
                stop.send_replace(Some(StopReason::Cancelled));
            }
            return;
        }
        match self.load_for_decision(id) {
            Ok(None) => {
                // Journal the cancel so that a later Run is answered with it.
                let result = unstarted_result(
                    id,
                    InvocationStatus::Cancelled,
                    "cancelled before it started".to_owned(),
                );
                if let Err(err) = self.journal.write(&JournalEntry::finished(result.clone())) {
                    tracing::error!(invocation_id = %id, %err, "cannot journal the cancel");
                }
                send(control, AgentMessage::Finished(result));
            }
            Ok(Some(JournalEntry {
                result: Some(result),
                ..
            })) => send(control, AgentMessage::Finished(result)),
            Ok(Some(entry)) => self.report_interrupted(entry),
            Err(err) => {
                tracing::error!(invocation_id = %id, %err, "cannot read the journal; Cancel ignored")
            }
        }
    }

    /// `ServerMessage::ResultAck`: keep the result only as a tombstone.
    pub fn on_ack(&mut self, id: &str) {
        match self.journal.acknowledge(id, now_millis()) {
            Ok(true) => tracing::debug!(invocation_id = %id, "result acknowledged"),
            Ok(false) => {
                tracing::debug!(invocation_id = %id, "ack for a result the journal does not hold")
            }
            Err(err) => tracing::error!(invocation_id = %id, %err, "cannot record the ack"),
        }
    }

    /// A journaled final result: forget the running invocation and send the
    /// result if there is a link (otherwise it goes after the next Welcome).
    pub fn on_done(&mut self, result: CommandResult, control: &Control) {
        self.running.remove(&result.invocation_id);
        tracing::info!(invocation_id = %result.invocation_id, status = %result.status, exit_code = ?result.exit_code, "invocation finished");
        send(control, AgentMessage::Finished(result));
    }

    /// After `Welcome`: resend every result not yet acknowledged.
    pub fn resend_unacknowledged(&self, control: &Control) {
        match self.journal.unacknowledged() {
            Ok(results) => {
                for result in results {
                    if !self.running.contains_key(&result.invocation_id) {
                        send(control, AgentMessage::Finished(result));
                    }
                }
            }
            Err(err) => tracing::error!(%err, "cannot list unacknowledged results"),
        }
    }

    /// Prune expired tombstones if the last pruning is an hour old (called
    /// on every heartbeat; agents may run for months without a restart).
    pub fn prune_if_due(&mut self) {
        if self.last_pruned.elapsed() < PRUNE_EVERY {
            return;
        }
        self.last_pruned = std::time::Instant::now();
        match self.journal.prune(now_millis()) {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned acknowledged results older than 7 days"),
            Err(err) => tracing::warn!(%err, "pruning the journal failed"),
        }
    }

    /// Ask every running invocation to stop because the agent is stopping.
    pub fn stop_all(&self) {
        for running in self.running.values() {
            if let Some(stop) = &running.stop {
                stop.send_replace(Some(StopReason::AgentStopping));
            }
        }
    }
}

fn send(control: &Control, message: AgentMessage) {
    if let Some(control) = control {
        let _ = control.send(message);
    }
}

/// A result for an invocation that never ran.
fn unstarted_result(id: &str, status: InvocationStatus, detail: String) -> CommandResult {
    CommandResult {
        invocation_id: id.to_owned(),
        status,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        started_at: None,
        finished_at: now_millis(),
        detail: Some(detail),
        steps: Vec::new(),
        resources: Vec::new(),
    }
}

/// At start, before connecting: prune old tombstones and settle invocations
/// an earlier agent process left running. They are never re-run, only
/// stopped (if their process group is provably still ours) and journaled as
/// interrupted, so their results go out after the first `Welcome`.
pub async fn settle_journal_at_start(journal: &Journal) -> Result<(), JournalError> {
    let pruned = journal.prune(now_millis())?;
    if pruned > 0 {
        tracing::info!(pruned, "pruned acknowledged results older than 7 days");
    }
    let interrupted: Vec<JournalEntry> = journal
        .entries()?
        .into_iter()
        .filter(|entry| entry.result.is_none())
        .collect();
    for entry in interrupted {
        tracing::warn!(invocation_id = %entry.invocation_id, "invocation was interrupted by an agent restart; reporting it failed, not re-running it");
        finish_interrupted(journal, entry).await;
    }
    Ok(())
}

/// Kill the recorded process group if it provably is still ours, then journal
/// the interrupted result.
pub async fn finish_interrupted(journal: &Journal, entry: JournalEntry) -> CommandResult {
    if let Some(record) = entry.process
        && procfs::recorded_group_alive(&record)
    {
        tracing::warn!(invocation_id = %entry.invocation_id, pgid = record.pgid, "stopping processes left by the interrupted invocation");
        procfs::terminate_group(record.pgid, KILL_GRACE).await;
    }
    let result = journal::interrupted_result(&entry, now_millis());
    if let Err(err) = journal.write(&JournalEntry::finished(result.clone())) {
        tracing::error!(invocation_id = %entry.invocation_id, %err, "cannot journal the interrupted result");
    }
    result
}

/// Everything a spawned invocation needs, apart from its command.
struct InvocationTask {
    journal: Journal,
    outbox: mpsc::Sender<AgentMessage>,
    done: mpsc::UnboundedSender<CommandResult>,
    state: StateContext,
}

impl InvocationTask {
    async fn run(self, command: RunCommand, mut entry: JournalEntry, stop: runner::StopSignal) {
        let id = command.invocation_id.clone();
        let started_at = entry.started_at.unwrap_or_else(now_millis);
        let _ = self
            .outbox
            .send(AgentMessage::Started {
                invocation_id: id.clone(),
                started_at,
            })
            .await;
        let sink = OutputSink {
            invocation_id: id.clone(),
            tx: Some(self.outbox.clone()),
        };
        let journal = self.journal.clone();
        let on_spawn = move |record| {
            entry.process = Some(record);
            if let Err(err) = journal.write(&entry) {
                tracing::error!(invocation_id = %entry.invocation_id, %err, "cannot journal the step's process");
            }
        };
        let run =
            runner::run_invocation_in(&command, started_at, sink, on_spawn, stop, &self.state);
        let result = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(invocation_id = %id, "the runner panicked");
                let mut result = unstarted_result(
                    &id,
                    InvocationStatus::Failed,
                    "internal error: the agent's runner failed".into(),
                );
                result.started_at = Some(started_at);
                result
            }
        };
        if let Err(err) = self.journal.write(&JournalEntry::finished(result.clone())) {
            tracing::error!(invocation_id = %id, %err, "cannot journal the result; sending it anyway");
        }
        let _ = self.done.send(result);
    }
}
