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
//! Steps do not inherit the agent's environment (which may hold
//! `OPERON_ENROLL_TOKEN` and whatever else the service manager set): each
//! starts from an empty one with only [`base_environment`] and the command's
//! own `env`.
//!
//! The runner knows nothing of the journal or the connection: it reports each
//! spawned process group through a callback and returns the final
//! [`CommandResult`].

use std::ffi::{OsStr, OsString};
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
use crate::state::{self, Interrupt, StateContext};
use crate::sys::{self, ChildSetup, UserAccount};

/// After a step's shell exits, how long to keep reading output that
/// background processes it left behind may still hold open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// `PATH` for commands when the agent has none, or when they run as another
/// user (as `su -` and sudo's `secure_path` do).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables a command may inherit from the agent's environment as they are.
const INHERITED: [&str; 2] = ["LANG", "LC_ALL"];

/// The environment every step of a command starts from, before the
/// command's own `env` (which may override any of it):
///
/// - `PATH`: the agent's own, without relative or empty entries, if the
///   command runs as the agent's user; [`DEFAULT_PATH`] when it has none
///   left or the command switches user;
/// - `HOME`, `USER`, `LOGNAME`, `SHELL` of `account`, the account the command
///   runs as (if the agent's own account cannot be looked up, the agent's own
///   values of these four, when set);
/// - `LANG` and `LC_ALL` if the agent has them.
///
/// Nothing else: in particular no `OPERON_*` variable, no proxy or cloud
/// credentials, no `LD_PRELOAD` the agent happened to be started with.
pub fn base_environment(
    agent_env: impl IntoIterator<Item = (OsString, OsString)>,
    account: Option<&UserAccount>,
    switches_user: bool,
) -> Vec<(OsString, OsString)> {
    let agent_env: Vec<(OsString, OsString)> = agent_env.into_iter().collect();
    let agent = |name: &str| {
        agent_env
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut env = Vec::new();
    let path = if switches_user {
        None
    } else {
        agent("PATH").and_then(|path| absolute_path_entries(&path))
    };
    env.push(("PATH".into(), path.unwrap_or_else(|| DEFAULT_PATH.into())));
    match account {
        Some(account) => {
            env.push(("HOME".into(), account.home.clone().into()));
            env.push(("USER".into(), account.name.clone().into()));
            env.push(("LOGNAME".into(), account.name.clone().into()));
            env.push(("SHELL".into(), account.shell.clone().into()));
        }
        None => {
            for name in ["HOME", "USER", "LOGNAME", "SHELL"] {
                if let Some(value) = agent(name) {
                    env.push((name.into(), value));
                }
            }
        }
    }
    for name in INHERITED {
        if let Some(value) = agent(name) {
            env.push((name.into(), value));
        }
    }
    env
}

/// `path` with only its absolute entries (a relative or empty entry would
/// look commands up in the step's working directory), `None` if none is left.
fn absolute_path_entries(path: &OsStr) -> Option<OsString> {
    let kept: Vec<_> = std::env::split_paths(path)
        .filter(|entry| entry.is_absolute())
        .collect();
    if kept.is_empty() {
        return None;
    }
    std::env::join_paths(kept).ok()
}

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
    TimedOut {
        detail: String,
    },
    Stopped(StopReason),
    NotStarted {
        detail: String,
    },
    /// A desired-state step ran to its end: 0 when no resource failed.
    Finished {
        code: i32,
        detail: Option<String>,
    },
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
/// it exists (the caller journals it). Desired-state steps run with a
/// default [`StateContext`] (no host root, no drift recording).
pub async fn run_invocation(
    command: &RunCommand,
    started_at: UnixMillis,
    sink: OutputSink,
    on_spawn: impl FnMut(ProcessRecord) + Send,
    stop: StopSignal,
) -> CommandResult {
    run_invocation_in(
        command,
        started_at,
        sink,
        on_spawn,
        stop,
        &StateContext::default(),
    )
    .await
}

/// [`run_invocation`] with the agent's [`StateContext`]: a step carrying a
/// [`operon_proto::StateStep`] goes to the desired-state engine
/// ([`crate::state`]) instead of `/bin/sh`. Its summary (one line per
/// resource) is the step's stdout, its reports go to
/// [`CommandResult::resources`], and it exits 0 when no resource failed, 1
/// otherwise. A cancel or the timeout stops it between resources (and kills
/// a running `command` resource).
pub async fn run_invocation_in(
    command: &RunCommand,
    started_at: UnixMillis,
    sink: OutputSink,
    mut on_spawn: impl FnMut(ProcessRecord) + Send,
    mut stop: StopSignal,
    state_ctx: &StateContext,
) -> CommandResult {
    let mut resources = Vec::new();
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
            let switches_user = user.as_ref().is_some_and(|u| u.uid != sys::effective_uid());
            let account = match &user {
                Some(user) => Some(user.clone()),
                None => sys::lookup_uid(sys::effective_uid()).ok().flatten(),
            };
            let env = base_environment(std::env::vars_os(), account.as_ref(), switches_user);
            for step in &command.steps {
                let mut io = StepIo {
                    stdout: &mut stdout,
                    stderr: &mut stderr,
                    sink: &sink,
                };
                let end = match &step.state {
                    Some(state_step) => {
                        let run = StateRunArgs {
                            command,
                            step,
                            state_step,
                            ctx: state_ctx,
                            deadline,
                        };
                        run_state_step(run, &mut io, &mut on_spawn, &stop, &mut resources).await
                    }
                    None => {
                        run_step(
                            command,
                            step,
                            Launch {
                                user: user.as_ref(),
                                env: &env,
                            },
                            deadline,
                            &mut io,
                            &mut on_spawn,
                            &mut stop,
                        )
                        .await
                    }
                };
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
        resources,
    }
}

/// What a desired-state step needs besides its I/O.
struct StateRunArgs<'a> {
    command: &'a RunCommand,
    step: &'a Step,
    state_step: &'a operon_proto::StateStep,
    ctx: &'a StateContext,
    deadline: Option<Instant>,
}

async fn run_state_step(
    args: StateRunArgs<'_>,
    io: &mut StepIo<'_>,
    on_spawn: &mut (impl FnMut(ProcessRecord) + Send),
    stop: &StopSignal,
    resources: &mut Vec<operon_proto::ResourceReport>,
) -> StepEnd {
    let already_stopped = *stop.borrow();
    if let Some(reason) = already_stopped {
        return StepEnd::Stopped(reason);
    }
    let (limit, timeout_detail) = step_limit(args.command, args.step, args.deadline);
    let limits = state::Limits {
        stop: stop.clone(),
        deadline: limit,
        on_spawn,
        progress: Some(io.sink),
    };
    // The engine streams each summary line as its resource is done.
    let run = state::run_state_step(args.state_step, args.ctx, limits).await;
    io.stdout.push(run.summary.as_bytes());
    let failed = run
        .reports
        .iter()
        .filter(|r| r.status == operon_proto::ResourceStatus::Failed)
        .count();
    let total = run.reports.len();
    resources.extend(run.reports);
    match run.interrupted {
        Some(Interrupt::Stopped(reason)) => StepEnd::Stopped(reason),
        Some(Interrupt::TimedOut) => StepEnd::TimedOut {
            detail: timeout_detail,
        },
        None if run.success => StepEnd::Finished {
            code: 0,
            detail: None,
        },
        None if failed == 0 => StepEnd::Finished {
            code: 1,
            detail: Some(format!(
                "step '{}': {}",
                args.step.name,
                run.summary.lines().next().unwrap_or("failed")
            )),
        },
        None => StepEnd::Finished {
            code: 1,
            detail: Some(format!(
                "step '{}': {failed} of {total} resources failed",
                args.step.name
            )),
        },
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
        StepEnd::Finished { code: 0, .. } => (InvocationStatus::Success, Some(0), None),
        StepEnd::Finished { code, detail } => (InvocationStatus::Failed, Some(code), detail),
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
pub(crate) fn resolve_user(name: Option<&str>) -> Result<Option<UserAccount>, String> {
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

/// Who a step runs as and the environment it starts from.
#[derive(Clone, Copy)]
struct Launch<'a> {
    /// The account to switch to, `None` for the agent's own.
    user: Option<&'a UserAccount>,
    env: &'a [(OsString, OsString)],
}

struct StepIo<'a> {
    stdout: &'a mut Capture,
    stderr: &'a mut Capture,
    sink: &'a OutputSink,
}

async fn run_step(
    command: &RunCommand,
    step: &Step,
    launch: Launch<'_>,
    deadline: Option<Instant>,
    io: &mut StepIo<'_>,
    on_spawn: &mut (impl FnMut(ProcessRecord) + Send),
    stop: &mut StopSignal,
) -> StepEnd {
    let already_stopped = *stop.borrow();
    if let Some(reason) = already_stopped {
        return StepEnd::Stopped(reason);
    }
    let mut child = match spawn_step(command, step, launch) {
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
    Launch { user, env }: Launch<'_>,
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
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .envs(&command.env);
    ChildSetup {
        switch_to: user.filter(|u| u.uid != sys::effective_uid()).cloned(),
        controlling_terminal: false,
    }
    .apply(&mut cmd);
    cmd.spawn()
        .map_err(|err| format!("step '{}' could not start: {err}", step.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn get<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    fn account() -> UserAccount {
        UserAccount {
            name: "deploy".into(),
            uid: 1001,
            gid: 1001,
            home: "/home/deploy".into(),
            shell: "/bin/bash".into(),
            groups: vec![1001],
        }
    }

    const AGENT: [(&str, &str); 9] = [
        ("OPERON_ENROLL_TOKEN", "ot-secret"),
        ("OPERON_TOKEN", "tok-secret"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("PATH", "/opt/tools/bin:.::relative/bin:/usr/bin"),
        ("HOME", "/root"),
        ("USER", "root"),
        ("LANG", "C.UTF-8"),
        ("TERM", "xterm"),
    ];

    #[test]
    fn only_the_safe_set_is_inherited() {
        let env = base_environment(env_of(&AGENT), Some(&account()), false);
        let names: Vec<_> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(
            names,
            ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG"],
            "{env:?}"
        );
        // The agent's PATH, without the entries that resolve in the cwd.
        assert_eq!(get(&env, "PATH"), Some("/opt/tools/bin:/usr/bin"));
        assert_eq!(get(&env, "HOME"), Some("/home/deploy"));
        assert_eq!(get(&env, "USER"), Some("deploy"));
        assert_eq!(get(&env, "LOGNAME"), Some("deploy"));
        assert_eq!(get(&env, "SHELL"), Some("/bin/bash"));
        assert_eq!(get(&env, "LANG"), Some("C.UTF-8"));
    }

    #[test]
    fn another_user_gets_the_default_path() {
        let env = base_environment(env_of(&AGENT), Some(&account()), true);
        assert_eq!(get(&env, "PATH"), Some(DEFAULT_PATH));
        assert_eq!(get(&env, "HOME"), Some("/home/deploy"));
    }

    #[test]
    fn without_a_path_or_an_account() {
        let env = base_environment(
            env_of(&[("PATH", ".:"), ("HOME", "/srv/agent"), ("OPERON_X", "1")]),
            None,
            false,
        );
        assert_eq!(
            env,
            env_of(&[("PATH", DEFAULT_PATH), ("HOME", "/srv/agent")])
        );
        let env = base_environment(Vec::new(), None, false);
        assert_eq!(env, env_of(&[("PATH", DEFAULT_PATH)]));
    }
}
