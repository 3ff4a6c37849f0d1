//! Running one invocation: its steps in order with `/bin/sh -c`, each in its
//! own session (so its whole process tree is one group that can be killed),
//! optionally as another user, under the invocation's and the step's timeouts,
//! and stoppable by a cancel. Output is captured (capped) for the result and
//! streamed live through an [`OutputSink`].
//!
//! A `timeout_secs` of 0 means no invocation timeout (a step's own timeout
//! still applies). A step's shell that exits normally may leave background
//! processes behind (as `nohup` users intend); they are not killed, and their
//! output is awaited for at most a second.
//!
//! The runner knows nothing of the journal or the connection: it reports each
//! spawned process group through a callback and returns the final
//! [`CommandResult`].

use std::path::Path;
use std::pin::pin;
use std::process::{ExitStatus, Stdio};

use operon_proto::{
    CommandResult, InvocationStatus, OutputStream, RunCommand, Step, StepResult, UnixMillis,
};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{Duration, Instant};

use crate::output::{Capture, OutputSink, pump};
use crate::procfs::{self, KILL_GRACE, ProcessRecord};
use crate::sys::{self, ChildSetup, UserAccount};

/// After a step's shell exits, how long to keep reading output that
/// background processes it left behind may still hold open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Why a running invocation is being stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The server sent `Cancel`.
    Cancelled,
    /// The agent itself is shutting down.
    AgentStopping,
}

/// The receiving side of a stop request; see [`stop_channel`].
pub type StopSignal = watch::Receiver<Option<StopReason>>;

/// A channel to stop a running invocation: `sender.send(Some(reason))`.
pub fn stop_channel() -> (watch::Sender<Option<StopReason>>, StopSignal) {
    watch::channel(None)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or(0)
}

/// How one step ended.
#[derive(Debug)]
enum StepEnd {
    Exited(ExitStatus),
    TimedOut { detail: String },
    Stopped(StopReason),
    NotStarted { detail: String },
}

/// Accumulates the invocation's outcome as steps run.
struct Outcome {
    status: InvocationStatus,
    exit_code: Option<i32>,
    detail: Option<String>,
    steps: Vec<StepResult>,
}

/// Run `command` to its end and return its result. `started_at` is when the
/// agent accepted it; `on_spawn` is told each step's process group as soon as
/// it exists (the caller journals it).
pub async fn run_invocation(
    command: &RunCommand,
    started_at: UnixMillis,
    sink: OutputSink,
    mut on_spawn: impl FnMut(ProcessRecord) + Send,
    mut stop: StopSignal,
) -> CommandResult {
    let mut stdout = Capture::new(command.output_cap_bytes);
    let mut stderr = Capture::new(command.output_cap_bytes);
    let mut outcome = Outcome {
        status: InvocationStatus::Success,
        exit_code: None,
        detail: None,
        steps: Vec::new(),
    };
    let deadline = (command.timeout_secs > 0)
        .then(|| Instant::now() + Duration::from_secs(command.timeout_secs));
    match resolve_user(command.user.as_deref()) {
        Err(detail) => {
            outcome.status = InvocationStatus::Failed;
            outcome.detail = Some(detail);
        }
        Ok(user) => {
            for step in &command.steps {
                let mut io = StepIo {
                    stdout: &mut stdout,
                    stderr: &mut stderr,
                    sink: &sink,
                };
                let end = run_step(
                    command,
                    step,
                    user.as_ref(),
                    deadline,
                    &mut io,
                    &mut on_spawn,
                    &mut stop,
                )
                .await;
                if !record_step(&mut outcome, step, end) {
                    break;
                }
            }
        }
    }
    let (stdout, stdout_truncated) = stdout.finish();
    let (stderr, stderr_truncated) = stderr.finish();
    CommandResult {
        invocation_id: command.invocation_id.clone(),
        status: outcome.status,
        exit_code: outcome.exit_code,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        started_at: Some(started_at),
        finished_at: now_millis(),
        detail: outcome.detail,
        steps: outcome.steps,
    }
}

/// Fold one step's end into the outcome. Returns whether to go on.
fn record_step(outcome: &mut Outcome, step: &Step, end: StepEnd) -> bool {
    let (status, exit_code, detail) = match end {
        StepEnd::Exited(status) => match status.code() {
            Some(0) => (InvocationStatus::Success, Some(0), None),
            Some(code) => (
                InvocationStatus::Failed,
                Some(code),
                Some(format!("step '{}' exited with code {code}", step.name)),
            ),
            None => {
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal().unwrap_or(0);
                (
                    InvocationStatus::Failed,
                    None,
                    Some(format!(
                        "step '{}' was killed by signal {signal}",
                        step.name
                    )),
                )
            }
        },
        StepEnd::TimedOut { detail } => (InvocationStatus::TimedOut, None, Some(detail)),
        StepEnd::Stopped(StopReason::Cancelled) => (
            InvocationStatus::Cancelled,
            None,
            Some("cancelled by the server".to_owned()),
        ),
        StepEnd::Stopped(StopReason::AgentStopping) => (
            InvocationStatus::Failed,
            None,
            Some("interrupted: the agent was stopped while the command was running".to_owned()),
        ),
        StepEnd::NotStarted { detail } => (InvocationStatus::Failed, None, Some(detail)),
    };
    outcome.steps.push(StepResult {
        name: step.name.clone(),
        status,
        exit_code,
    });
    outcome.exit_code = exit_code;
    outcome.status = status;
    outcome.detail = detail;
    status == InvocationStatus::Success
}

/// The account to switch to, `None` to run as the agent's own user.
fn resolve_user(name: Option<&str>) -> Result<Option<UserAccount>, String> {
    let Some(name) = name else { return Ok(None) };
    let user = match sys::lookup_user(name) {
        Ok(Some(user)) => user,
        Ok(None) => return Err(format!("user '{name}' does not exist on this node")),
        Err(err) => return Err(format!("could not look up user '{name}': {err}")),
    };
    let me = sys::effective_uid();
    if me != 0 && me != user.uid {
        return Err(format!(
            "cannot run as user '{name}': the agent runs as uid {me}, and only root can switch users"
        ));
    }
    Ok(Some(user))
}

struct StepIo<'a> {
    stdout: &'a mut Capture,
    stderr: &'a mut Capture,
    sink: &'a OutputSink,
}

async fn run_step(
    command: &RunCommand,
    step: &Step,
    user: Option<&UserAccount>,
    deadline: Option<Instant>,
    io: &mut StepIo<'_>,
    on_spawn: &mut (impl FnMut(ProcessRecord) + Send),
    stop: &mut StopSignal,
) -> StepEnd {
    let already_stopped = *stop.borrow();
    if let Some(reason) = already_stopped {
        return StepEnd::Stopped(reason);
    }
    let mut child = match spawn_step(command, step, user) {
        Ok(child) => child,
        Err(detail) => return StepEnd::NotStarted { detail },
    };
    let Some(pid) = child.id().map(|pid| pid as i32) else {
        return StepEnd::NotStarted {
            detail: format!("step '{}' exited before it could be observed", step.name),
        };
    };
    let start_time = procfs::stat_of(pid).map(|s| s.start_time).unwrap_or(0);
    on_spawn(ProcessRecord {
        pid,
        pgid: pid,
        start_time,
    });
    let (limit, timeout_detail) = step_limit(command, step, deadline);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut pumps = pin!(async {
        let out = async {
            if let Some(r) = stdout {
                pump(r, OutputStream::Stdout, io.stdout, io.sink).await
            }
        };
        let err = async {
            if let Some(r) = stderr {
                pump(r, OutputStream::Stderr, io.stderr, io.sink).await
            }
        };
        tokio::join!(out, err);
    });
    let mut pumps_done = false;
    let end = loop {
        tokio::select! {
            status = child.wait() => match status {
                Ok(status) => break StepEnd::Exited(status),
                Err(err) => break StepEnd::NotStarted { detail: format!("waiting for step '{}' failed: {err}", step.name) },
            },
            () = &mut pumps, if !pumps_done => pumps_done = true,
            () = sleep_until_opt(limit) => break StepEnd::TimedOut { detail: timeout_detail },
            reason = stopped(stop) => break StepEnd::Stopped(reason),
        }
    };
    if !matches!(end, StepEnd::Exited(_)) {
        // Kill the whole tree, reading output meanwhile so that nothing blocks
        // on a full pipe while it handles SIGTERM.
        let kill = procfs::terminate_group(pid, KILL_GRACE);
        if pumps_done {
            kill.await;
        } else {
            let (_, drained) = tokio::join!(kill, tokio::time::timeout(KILL_GRACE, &mut pumps));
            pumps_done = drained.is_ok();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
    if !pumps_done {
        // Background processes may keep the pipes open; don't wait for them.
        let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut pumps).await;
    }
    end
}

/// The step's effective deadline and the message reported if it is reached.
fn step_limit(
    command: &RunCommand,
    step: &Step,
    deadline: Option<Instant>,
) -> (Option<Instant>, String) {
    let whole = format!("timed out after {} s", command.timeout_secs);
    let Some(secs) = step.timeout_secs.filter(|&s| s > 0) else {
        return (deadline, whole);
    };
    let step_deadline = Instant::now() + Duration::from_secs(secs);
    match deadline {
        Some(d) if d <= step_deadline => (Some(d), whole),
        _ => (
            Some(step_deadline),
            format!("step '{}' timed out after {secs} s", step.name),
        ),
    }
}

async fn sleep_until_opt(limit: Option<Instant>) {
    match limit {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when a stop is requested; never if the requester went away.
async fn stopped(stop: &mut StopSignal) -> StopReason {
    let reason = stop.wait_for(Option::is_some).await.map(|reason| *reason);
    match reason {
        Ok(Some(reason)) => reason,
        _ => std::future::pending().await,
    }
}

fn spawn_step(
    command: &RunCommand,
    step: &Step,
    user: Option<&UserAccount>,
) -> Result<Child, String> {
    let cwd = step.working_directory.as_deref().or(command.cwd.as_deref());
    if let Some(dir) = cwd
        && !Path::new(dir).is_dir()
    {
        return Err(format!(
            "step '{}' could not start: working directory '{dir}' does not exist or is not a directory",
            step.name
        ));
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&step.script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if let Some(user) = user {
        cmd.env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    cmd.envs(&command.env);
    ChildSetup {
        switch_to: user.filter(|u| u.uid != sys::effective_uid()).cloned(),
    }
    .apply(&mut cmd);
    cmd.spawn()
        .map_err(|err| format!("step '{}' could not start: {err}", step.name))
}
