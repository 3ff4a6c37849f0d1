//! Whether a `command` resource runs, given what its guards found.
//!
//! The agent performs the checks; this is only the decision, in the order
//! the guards are cheapest to check: `creates` (a path exists: skip),
//! `unless` (exits 0: skip), `onlyif` (exits non-zero: skip). A command runs
//! when no declared guard says skip. The agent may stop checking as soon as
//! [`decide`] returns something other than [`GuardError::Missing`], so a
//! `creates` hit saves running `unless` and `onlyif`.

use crate::document::CommandSpec;

/// What the agent found, guard by guard; `None` when not (yet) checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardResults {
    /// Whether the `creates` path exists.
    pub creates_exists: Option<bool>,
    /// Exit status of the `unless` command.
    pub unless_exit: Option<i32>,
    /// Exit status of the `onlyif` command.
    pub onlyif_exit: Option<i32>,
}

/// The outcome of the guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardDecision {
    Run,
    Skip(SkipReason),
}

/// Which guard said skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The `creates` path exists.
    Created { path: String },
    /// The `unless` command exited 0.
    Unless,
    /// The `onlyif` command exited with this non-zero status.
    OnlyIf { exit: i32 },
}

/// A guard the command declares has no result yet: check it and ask again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("the {0} guard has not been checked yet")]
    Missing(Guard),
}

/// The guards, in the order they are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    Creates,
    Unless,
    OnlyIf,
}

impl std::fmt::Display for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Guard::Creates => "creates",
            Guard::Unless => "unless",
            Guard::OnlyIf => "onlyif",
        })
    }
}

/// Decide from the results so far. Results for guards the command does not
/// declare are ignored.
pub fn decide(command: &CommandSpec, results: &GuardResults) -> Result<GuardDecision, GuardError> {
    if let Some(path) = &command.creates {
        match results.creates_exists {
            None => return Err(GuardError::Missing(Guard::Creates)),
            Some(true) => {
                return Ok(GuardDecision::Skip(SkipReason::Created {
                    path: path.clone(),
                }));
            }
            Some(false) => {}
        }
    }
    if command.unless.is_some() {
        match results.unless_exit {
            None => return Err(GuardError::Missing(Guard::Unless)),
            Some(0) => return Ok(GuardDecision::Skip(SkipReason::Unless)),
            Some(_) => {}
        }
    }
    if command.onlyif.is_some() {
        match results.onlyif_exit {
            None => return Err(GuardError::Missing(Guard::OnlyIf)),
            Some(0) => {}
            Some(exit) => return Ok(GuardDecision::Skip(SkipReason::OnlyIf { exit })),
        }
    }
    Ok(GuardDecision::Run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(creates: bool, unless: bool, onlyif: bool) -> CommandSpec {
        CommandSpec {
            run: "make install".into(),
            creates: creates.then(|| "/opt/app/bin/app".to_string()),
            unless: unless.then(|| "test -f /x".to_string()),
            onlyif: onlyif.then(|| "grep -q y /etc/z".to_string()),
            cwd: None,
            user: None,
        }
    }

    fn results(creates: Option<bool>, unless: Option<i32>, onlyif: Option<i32>) -> GuardResults {
        GuardResults {
            creates_exists: creates,
            unless_exit: unless,
            onlyif_exit: onlyif,
        }
    }

    /// Which guards the command declares: creates, unless, onlyif.
    type Guards = (bool, bool, bool);
    type Expected = Result<GuardDecision, GuardError>;

    #[test]
    fn decision_table() {
        use GuardDecision::{Run, Skip};
        let created = || {
            Skip(SkipReason::Created {
                path: "/opt/app/bin/app".into(),
            })
        };
        let missing = |g| Err(GuardError::Missing(g));
        #[rustfmt::skip]
        let cases: Vec<(Guards, GuardResults, Expected)> = vec![
            // No guards: always run; stray results are ignored.
            ((false, false, false), results(None, None, None), Ok(Run)),
            ((false, false, false), results(Some(true), Some(0), Some(1)), Ok(Run)),
            // creates
            ((true, false, false), results(None, None, None), missing(Guard::Creates)),
            ((true, false, false), results(Some(true), None, None), Ok(created())),
            ((true, false, false), results(Some(false), None, None), Ok(Run)),
            // unless
            ((false, true, false), results(None, None, None), missing(Guard::Unless)),
            ((false, true, false), results(None, Some(0), None), Ok(Skip(SkipReason::Unless))),
            ((false, true, false), results(None, Some(1), None), Ok(Run)),
            ((false, true, false), results(None, Some(-1), None), Ok(Run)),
            // onlyif
            ((false, false, true), results(None, None, None), missing(Guard::OnlyIf)),
            ((false, false, true), results(None, None, Some(0)), Ok(Run)),
            ((false, false, true), results(None, None, Some(2)), Ok(Skip(SkipReason::OnlyIf { exit: 2 }))),
            // All three: decided in order, short-circuiting.
            ((true, true, true), results(Some(true), None, None), Ok(created())),
            ((true, true, true), results(Some(false), None, None), missing(Guard::Unless)),
            ((true, true, true), results(Some(false), Some(0), None), Ok(Skip(SkipReason::Unless))),
            ((true, true, true), results(Some(false), Some(1), None), missing(Guard::OnlyIf)),
            ((true, true, true), results(Some(false), Some(1), Some(1)), Ok(Skip(SkipReason::OnlyIf { exit: 1 }))),
            ((true, true, true), results(Some(false), Some(1), Some(0)), Ok(Run)),
            ((true, true, true), results(None, Some(1), Some(0)), missing(Guard::Creates)),
        ];
        for ((c, u, o), found, expected) in cases {
            assert_eq!(
                decide(&command(c, u, o), &found),
                expected,
                "guards {c} {u} {o}, results {found:?}"
            );
        }
    }

    #[test]
    fn missing_message_names_the_guard() {
        assert_eq!(
            GuardError::Missing(Guard::OnlyIf).to_string(),
            "the onlyif guard has not been checked yet"
        );
    }
}
