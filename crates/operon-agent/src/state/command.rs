//! `command`: `run` with `/bin/sh -c` in `cwd`, as `user`, when its guards
//! allow ([`operon_state::guard::decide`]: `creates` path exists, `unless`
//! exits 0, `onlyif` exits non-zero: skip). Guards run the same way and are
//! checked cheapest first, stopping at the first that decides. A command
//! notified by a resource that changed runs whatever its guards say. A
//! non-zero exit fails the resource, with the last 4 KiB of output in the
//! message. Check mode runs the guards only ("would run").

use std::path::PathBuf;

use operon_state::document::CommandSpec;
use operon_state::guard::{self, Guard, GuardDecision, GuardError, GuardResults, SkipReason};

use super::exec::{self, Ended};
use super::{Env, Failure, Found, Limits, Mode};
use crate::sys::{self, UserAccount};

fn account(name: Option<&str>) -> Result<Option<UserAccount>, String> {
    let Some(name) = name else { return Ok(None) };
    match sys::lookup_user(name) {
        Ok(Some(user)) => Ok(Some(user)),
        Ok(None) => Err(format!("user {name:?} does not exist on this node")),
        Err(err) => Err(format!("cannot look up user {name:?}: {err}")),
    }
}

/// Exit code of a guard command; an interruption ends the resource.
async fn guard_exit(
    script: &str,
    cwd: Option<&std::path::Path>,
    user: Option<&UserAccount>,
    limits: &mut Limits<'_>,
    which: &str,
) -> Result<i32, Failure> {
    match exec::shell(script, cwd, user, limits).await? {
        Ended::Exited { code, .. } => Ok(code.unwrap_or(-1)),
        Ended::Interrupted(why) => Err(Failure::Interrupted(why)),
        Ended::TimedOut { .. } => Err(Failure::Error(format!("the {which} guard timed out"))),
    }
}

/// What the guards decide (running only the guards needed).
async fn decide(
    spec: &CommandSpec,
    env: &Env<'_>,
    cwd: Option<&std::path::Path>,
    user: Option<&UserAccount>,
    limits: &mut Limits<'_>,
) -> Result<GuardDecision, Failure> {
    let mut results = GuardResults::default();
    loop {
        match guard::decide(spec, &results) {
            Ok(decision) => return Ok(decision),
            Err(GuardError::Missing(Guard::Creates)) => {
                let path = env.node_path(spec.creates.as_deref().unwrap_or_default())?;
                results.creates_exists = Some(std::fs::symlink_metadata(path).is_ok());
            }
            Err(GuardError::Missing(Guard::Unless)) => {
                let script = spec.unless.as_deref().unwrap_or_default();
                results.unless_exit = Some(guard_exit(script, cwd, user, limits, "unless").await?);
            }
            Err(GuardError::Missing(Guard::OnlyIf)) => {
                let script = spec.onlyif.as_deref().unwrap_or_default();
                results.onlyif_exit = Some(guard_exit(script, cwd, user, limits, "onlyif").await?);
            }
        }
    }
}

pub async fn ensure(
    spec: &CommandSpec,
    env: &Env<'_>,
    mode: Mode,
    notifiers: &[&str],
    limits: &mut Limits<'_>,
) -> Result<Found, Failure> {
    let user = account(spec.user.as_deref())?;
    let cwd = spec.cwd.as_deref().map(PathBuf::from);
    let notified = if notifiers.is_empty() {
        String::new()
    } else {
        format!(" (notified by {})", notifiers.join(", "))
    };
    if notifiers.is_empty() {
        let decision = decide(spec, env, cwd.as_deref(), user.as_ref(), limits).await?;
        if let GuardDecision::Skip(reason) = decision {
            let why = match reason {
                SkipReason::Created { path } => format!("not run: {path} exists"),
                SkipReason::Unless => "not run: the unless guard exited 0".to_string(),
                SkipReason::OnlyIf { exit } => {
                    format!("not run: the onlyif guard exited with code {exit}")
                }
            };
            let mut found = Found::compliant();
            found.message = Some(why);
            return Ok(found);
        }
    }
    if mode == Mode::Check {
        return Ok(Found::change(format!("would run{notified}")));
    }
    match exec::shell(&spec.run, cwd.as_deref(), user.as_ref(), limits).await? {
        Ended::Exited {
            code: Some(0),
            output,
        } => {
            let mut found = Found::change(format!("ran{notified}"));
            let output = output.trim_end();
            if !output.is_empty() {
                found.message = Some(output.to_string());
            }
            Ok(found)
        }
        Ended::Exited { code, output } => {
            let how = match code {
                Some(code) => format!("exited with code {code}"),
                None => "was killed by a signal".into(),
            };
            let output = output.trim_end();
            Err(Failure::Error(if output.is_empty() {
                format!("the command {how}")
            } else {
                format!("the command {how}:\n{output}")
            }))
        }
        Ended::TimedOut { .. } => Err(Failure::Error("the command timed out".into())),
        Ended::Interrupted(why) => Err(Failure::Interrupted(why)),
    }
}
