//! Running programs for the engine: system tools (`apt-get`, `useradd`,
//! init scripts, ...) with their arguments and no shell, and `command`
//! resources with `/bin/sh -c`. Every process starts from the clean
//! environment of [`runner::base_environment`] in its own session (one
//! process group, killed whole at a timeout or a stop). Output is kept as a
//! tail of [`OUTPUT_TAIL_BYTES`]; a daemon left holding the pipes (an init
//! script's `start`) is not waited for beyond a second.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use super::{Interrupt, Limits};
use crate::file_sync::tail_text;
use crate::fsutil::read_tail;
use crate::procfs::{self, KILL_GRACE, ProcessRecord};
use crate::runner::{self, StopReason};
use crate::sys::{self, ChildSetup, UserAccount};

/// How much output (the end of stdout then stderr) is kept.
pub const OUTPUT_TAIL_BYTES: usize = 4 * 1024;

/// How long a system tool may take (package installs can be slow).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// After a process exits, how long to read output a daemon may hold open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Exited (`None`: killed by a signal), with its output's tail.
    Exited { code: Option<i32>, output: String },
    /// Killed at `timeout` (tools only).
    TimedOut { output: String },
    /// Stopped by a cancel or the invocation's deadline.
    Interrupted(Interrupt),
}

/// The result of a tool run to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub code: Option<i32>,
    pub output: String,
}

impl ToolOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `"apt-get install ... exited with code 100: <output tail>"`.
    pub fn failure(&self, what: &str) -> String {
        let how = match self.code {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".into(),
        };
        let output = self.output.trim();
        if output.is_empty() {
            format!("{what} {how}")
        } else {
            format!("{what} {how}: {output}")
        }
    }
}

fn base_command(program: &str, user: Option<&UserAccount>) -> Command {
    let switches = user.is_some_and(|u| u.uid != sys::effective_uid());
    let account = match user {
        Some(user) => Some(user.clone()),
        None => sys::lookup_uid(sys::effective_uid()).ok().flatten(),
    };
    let env = runner::base_environment(std::env::vars_os(), account.as_ref(), switches);
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .envs(env);
    ChildSetup {
        switch_to: user.filter(|u| u.uid != sys::effective_uid()).cloned(),
        controlling_terminal: false,
    }
    .apply(&mut command);
    command
}

/// Run a system tool to its end (or [`TOOL_TIMEOUT`]). Tools are not
/// interrupted by a cancel: stopping `apt-get` half-way would leave dpkg
/// broken; the run stops after the resource instead.
pub async fn tool(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<ToolOutput, String> {
    let mut command = base_command(program, None);
    command.args(args).current_dir("/");
    for (k, v) in env {
        command.env(k, v);
    }
    match run(command, None, Some(TOOL_TIMEOUT)).await {
        Ok(Ended::Exited { code, output }) => Ok(ToolOutput { code, output }),
        Ok(Ended::TimedOut { .. }) => Err(format!(
            "{program} did not finish within {} s and was killed",
            TOOL_TIMEOUT.as_secs()
        )),
        Ok(Ended::Interrupted(_)) => Err(format!("{program} was interrupted")),
        Err(err) => Err(format!("{program} could not start: {err}")),
    }
}

/// Run `script` with `/bin/sh -c` in `cwd`, as `user`, stoppable by `limits`.
pub async fn shell(
    script: &str,
    cwd: Option<&Path>,
    user: Option<&UserAccount>,
    limits: &mut Limits<'_>,
) -> Result<Ended, String> {
    if let Some(why) = limits.interrupted() {
        return Ok(Ended::Interrupted(why));
    }
    let mut command = base_command("/bin/sh", user);
    command.arg("-c").arg(script);
    match cwd {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(format!(
                    "working directory {} does not exist or is not a directory",
                    dir.display()
                ));
            }
            command.current_dir(dir);
        }
        None => {
            command.current_dir("/");
        }
    }
    run(command, Some(limits), None)
        .await
        .map_err(|err| format!("/bin/sh could not start: {err}"))
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn stopped(limits: &mut Option<&mut Limits<'_>>) -> StopReason {
    match limits {
        Some(limits) => {
            let reason = limits.stop.wait_for(Option::is_some).await.map(|r| *r);
            match reason {
                Ok(Some(reason)) => reason,
                _ => std::future::pending().await,
            }
        }
        None => std::future::pending().await,
    }
}

enum Wait {
    Exited(Option<i32>),
    Deadline,
    Timeout,
    Stop(StopReason),
}

async fn run(
    mut command: Command,
    mut limits: Option<&mut Limits<'_>>,
    timeout: Option<Duration>,
) -> std::io::Result<Ended> {
    let mut child = command.spawn()?;
    let pid = child.id().map(|pid| pid as i32);
    if let (Some(pid), Some(limits)) = (pid, limits.as_mut()) {
        let start_time = procfs::stat_of(pid).map(|s| s.start_time).unwrap_or(0);
        (limits.on_spawn)(ProcessRecord {
            pid,
            pgid: pid,
            start_time,
        });
    }
    let deadline = limits.as_ref().and_then(|l| l.deadline);
    let timeout_at = timeout.map(|t| Instant::now() + t);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let out_pipe = child.stdout.take();
    let err_pipe = child.stderr.take();
    let end;
    {
        let mut pumps = std::pin::pin!(async {
            tokio::join!(
                read_tail(out_pipe, &mut stdout, OUTPUT_TAIL_BYTES),
                read_tail(err_pipe, &mut stderr, OUTPUT_TAIL_BYTES)
            )
        });
        let mut pumps_done = false;
        let waited = loop {
            tokio::select! {
                status = child.wait() => break Wait::Exited(status.ok().and_then(|s| s.code())),
                _ = &mut pumps, if !pumps_done => pumps_done = true,
                () = sleep_until_opt(deadline) => break Wait::Deadline,
                () = sleep_until_opt(timeout_at) => break Wait::Timeout,
                reason = stopped(&mut limits) => break Wait::Stop(reason),
            }
        };
        if !matches!(waited, Wait::Exited(_)) {
            if let Some(pid) = pid {
                let kill = procfs::terminate_group(pid, KILL_GRACE);
                let (_, drained) = tokio::join!(kill, tokio::time::timeout(KILL_GRACE, &mut pumps));
                pumps_done = pumps_done || drained.is_ok();
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        if !pumps_done {
            let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut pumps).await;
        }
        end = waited;
    }
    let mut combined = stdout;
    combined.extend_from_slice(&stderr);
    let output = tail_text(&combined, OUTPUT_TAIL_BYTES);
    Ok(match end {
        Wait::Exited(code) => Ended::Exited { code, output },
        Wait::Timeout => Ended::TimedOut { output },
        Wait::Deadline => Ended::Interrupted(Interrupt::TimedOut),
        Wait::Stop(reason) => Ended::Interrupted(Interrupt::Stopped(reason)),
    })
}
