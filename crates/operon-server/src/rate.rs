//! Rate control for a command across its targets, as SSM documents it.
//!
//! [`plan`] is a pure function from a command's current state (each target's
//! status, whether its node is online, the clock) to the next actions: which
//! targets to start and which to finish without a result. The dispatcher
//! persists those actions and performs them; keeping the decision pure lets the
//! rules below be tested exhaustively without sockets or a database.
//!
//! - `max-concurrency` caps how many targets are in progress at once
//!   (a percentage of the target count is rounded up, at least 1).
//! - `max-errors`: once the number of errors (Failed, TimedOut, Undeliverable)
//!   *exceeds* it, no new target starts and the remaining Pending ones end as
//!   Cancelled with the detail "not run" (a percentage is rounded down: 10% of
//!   50 targets allows 5 errors and the sixth stops dispatch). Targets already
//!   running finish.
//! - A Pending target whose node stays offline past the delivery timeout
//!   becomes Undeliverable. An online target never expires while it merely
//!   waits for a concurrency slot.
//! - An in-progress target with no result long after its execution timeout
//!   (the node vanished) becomes TimedOut.
//! - A cancel request ends Pending targets as Cancelled at once; running ones
//!   are told to stop and report Cancelled themselves.

use operon_proto::InvocationStatus;

/// Extra time after the execution timeout before the server gives up on a
/// node that never reported (it may be reconnecting with a finished result).
pub const LOST_RESULT_GRACE_MS: i64 = 60_000;

/// A count or a percentage of the target set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Count(u64),
    Percent(u64),
}

impl Limit {
    /// Parse `10` or `25%`.
    pub fn parse(text: &str) -> Result<Limit, String> {
        let text = text.trim();
        let (digits, percent) = match text.strip_suffix('%') {
            Some(d) => (d, true),
            None => (text, false),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a number or a percentage like 10 or 25%"))?;
        if percent {
            if n == 0 || n > 100 {
                return Err(format!(
                    "{text:?}: a percentage must be between 1% and 100%"
                ));
            }
            Ok(Limit::Percent(n))
        } else {
            Ok(Limit::Count(n))
        }
    }

    /// Concurrency allowed for `total` targets: percentages round up, minimum 1.
    pub fn concurrency(self, total: usize) -> usize {
        match self {
            Limit::Count(n) => (n as usize).max(1),
            Limit::Percent(p) => ((total as u64 * p).div_ceil(100) as usize).max(1),
        }
    }

    /// Errors tolerated for `total` targets: percentages round down.
    pub fn errors(self, total: usize) -> usize {
        match self {
            Limit::Count(n) => n as usize,
            Limit::Percent(p) => (total as u64 * p / 100) as usize,
        }
    }
}

/// One target as the planner sees it.
#[derive(Debug, Clone)]
pub struct Target {
    pub node_id: String,
    pub status: InvocationStatus,
    pub dispatched_at: Option<i64>,
    pub online: bool,
}

/// Everything the planner needs about a command.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub max_concurrency: Limit,
    pub max_errors: Limit,
    pub timeout_secs: i64,
    pub delivery_timeout_secs: i64,
    pub created_at: i64,
    pub cancel_requested: bool,
    pub now: i64,
    pub targets: &'a [Target],
}

/// A target ended by the server, without a result from its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub node_id: String,
    pub status: InvocationStatus,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Targets to dispatch now, in order.
    pub start: Vec<String>,
    pub end: Vec<Ending>,
    /// The command's final status once every target is final.
    pub command_status: Option<InvocationStatus>,
}

pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let mut statuses: Vec<InvocationStatus> = input.targets.iter().map(|t| t.status).collect();
    let end =
        |plan: &mut Plan, statuses: &mut [InvocationStatus], i: usize, status, detail: String| {
            statuses[i] = status;
            plan.end.push(Ending {
                node_id: input.targets[i].node_id.clone(),
                status,
                detail,
            });
        };

    for (i, target) in input.targets.iter().enumerate() {
        match target.status {
            InvocationStatus::Pending if input.cancel_requested => {
                end(
                    &mut plan,
                    &mut statuses,
                    i,
                    InvocationStatus::Cancelled,
                    "cancelled before it started".into(),
                );
            }
            InvocationStatus::Pending
                if !target.online
                    && input.now
                        >= input
                            .created_at
                            .saturating_add(input.delivery_timeout_secs.saturating_mul(1000)) =>
            {
                let detail = format!(
                    "the node stayed offline past the delivery timeout ({} s)",
                    input.delivery_timeout_secs
                );
                end(
                    &mut plan,
                    &mut statuses,
                    i,
                    InvocationStatus::Undeliverable,
                    detail,
                );
            }
            InvocationStatus::InProgress
                if target.dispatched_at.is_some_and(|at| {
                    // Saturating: a timeout stored before limits existed must not panic.
                    input.now
                        > at.saturating_add(input.timeout_secs.saturating_mul(1000))
                            .saturating_add(LOST_RESULT_GRACE_MS)
                }) =>
            {
                let detail = "no result from the node within the execution timeout".to_string();
                end(
                    &mut plan,
                    &mut statuses,
                    i,
                    InvocationStatus::TimedOut,
                    detail,
                );
            }
            _ => {}
        }
    }

    let total = input.targets.len();
    let errors = statuses
        .iter()
        .filter(|s| s.is_final() && s.is_error())
        .count();
    let allowed_errors = input.max_errors.errors(total);
    if errors > allowed_errors {
        for i in 0..total {
            if statuses[i] == InvocationStatus::Pending {
                let detail =
                    format!("not run: {errors} errors exceeded max-errors ({allowed_errors})");
                end(
                    &mut plan,
                    &mut statuses,
                    i,
                    InvocationStatus::Cancelled,
                    detail,
                );
            }
        }
    } else if !input.cancel_requested {
        let running = statuses
            .iter()
            .filter(|s| **s == InvocationStatus::InProgress)
            .count();
        let slots = input
            .max_concurrency
            .concurrency(total)
            .saturating_sub(running);
        plan.start = input
            .targets
            .iter()
            .zip(&statuses)
            .filter(|(t, s)| **s == InvocationStatus::Pending && t.online)
            .take(slots)
            .map(|(t, _)| t.node_id.clone())
            .collect();
    }

    if plan.start.is_empty() && statuses.iter().all(|s| s.is_final()) {
        plan.command_status = Some(aggregate(&statuses, input.cancel_requested));
    }
    plan
}

/// The command's status from its targets' final statuses.
fn aggregate(statuses: &[InvocationStatus], cancel_requested: bool) -> InvocationStatus {
    use InvocationStatus::*;
    if cancel_requested {
        return Cancelled;
    }
    for status in [Failed, TimedOut, Undeliverable, Cancelled] {
        if statuses.contains(&status) {
            return status;
        }
    }
    Success
}

#[cfg(test)]
mod tests {
    use InvocationStatus::*;

    use super::*;

    fn targets(spec: &[(InvocationStatus, bool)]) -> Vec<Target> {
        spec.iter()
            .enumerate()
            .map(|(i, (status, online))| Target {
                node_id: format!("n{i}"),
                status: *status,
                dispatched_at: (*status == InProgress).then_some(1_000),
                online: *online,
            })
            .collect()
    }

    fn input<'a>(targets: &'a [Target], conc: &str, errs: &str) -> PlanInput<'a> {
        PlanInput {
            max_concurrency: Limit::parse(conc).unwrap(),
            max_errors: Limit::parse(errs).unwrap(),
            timeout_secs: 60,
            delivery_timeout_secs: 30,
            created_at: 0,
            cancel_requested: false,
            now: 2_000,
            targets,
        }
    }

    #[test]
    fn limits_parse_and_round_as_ssm_does() {
        assert_eq!(Limit::parse("10"), Ok(Limit::Count(10)));
        assert_eq!(Limit::parse("25%"), Ok(Limit::Percent(25)));
        assert!(Limit::parse("0%").is_err());
        assert!(Limit::parse("ten").is_err());
        assert_eq!(Limit::Percent(10).errors(50), 5);
        assert_eq!(Limit::Percent(10).errors(9), 0);
        assert_eq!(Limit::Percent(10).concurrency(9), 1);
        assert_eq!(Limit::Percent(50).concurrency(5), 3);
        assert_eq!(Limit::Count(0).concurrency(5), 1);
    }

    /// Commands stored before timeouts were bounded may hold any i64: the
    /// planner must wait, not overflow (a panic here stopped all dispatch).
    #[test]
    fn huge_stored_timeouts_wait_instead_of_overflowing() {
        let t = targets(&[(Pending, false), (InProgress, true)]);
        let mut i = input(&t, "5", "0");
        i.delivery_timeout_secs = i64::MAX;
        i.timeout_secs = i64::MAX;
        i.created_at = i64::MAX / 2;
        i.now = i64::MAX - 1;
        let p = plan(&i);
        assert!(p.end.is_empty(), "{:?}", p.end);
        assert_eq!(p.command_status, None);
    }

    #[test]
    fn concurrency_caps_running_targets() {
        let t = targets(&[
            (InProgress, true),
            (Pending, true),
            (Pending, true),
            (Pending, true),
        ]);
        let p = plan(&input(&t, "2", "0"));
        assert_eq!(p.start, vec!["n1"]);
        assert_eq!(p.command_status, None);
    }

    #[test]
    fn offline_targets_wait_without_taking_a_slot() {
        let t = targets(&[(Pending, false), (Pending, true)]);
        let p = plan(&input(&t, "1", "0"));
        assert_eq!(p.start, vec!["n1"]);
        assert!(p.end.is_empty(), "not expired before the delivery timeout");
    }

    #[test]
    fn errors_beyond_max_errors_stop_dispatch_and_mark_the_rest_not_run() {
        let t = targets(&[
            (Failed, true),
            (Failed, true),
            (InProgress, true),
            (Pending, true),
        ]);
        let p = plan(&input(&t, "10", "1"));
        assert!(p.start.is_empty());
        assert_eq!(p.end.len(), 1);
        assert_eq!(p.end[0].status, Cancelled);
        assert!(
            p.end[0].detail.starts_with("not run"),
            "{}",
            p.end[0].detail
        );
        assert_eq!(
            p.command_status, None,
            "the running target may still finish"
        );
    }

    #[test]
    fn errors_at_max_errors_keep_going() {
        let t = targets(&[(Failed, true), (Pending, true)]);
        let p = plan(&input(&t, "10", "1"));
        assert_eq!(p.start, vec!["n1"]);
    }

    #[test]
    fn offline_past_delivery_timeout_is_undeliverable_and_counts_as_error() {
        let t = targets(&[(Pending, false), (Pending, true)]);
        let mut i = input(&t, "10", "0");
        i.now = 31_000;
        let p = plan(&i);
        assert_eq!(p.end[0].status, Undeliverable);
        assert!(p.start.is_empty(), "the error exceeds max-errors 0");
        assert_eq!(p.end[1].status, Cancelled);
        assert_eq!(p.command_status, Some(Undeliverable));
    }

    #[test]
    fn lost_in_progress_target_times_out_after_grace() {
        let t = targets(&[(InProgress, false)]);
        let mut i = input(&t, "1", "0");
        i.now = 1_000 + 60_000 + LOST_RESULT_GRACE_MS;
        assert!(plan(&i).end.is_empty());
        i.now += 1;
        let p = plan(&i);
        assert_eq!(p.end[0].status, TimedOut);
        assert_eq!(p.command_status, Some(TimedOut));
    }

    #[test]
    fn cancel_ends_pending_and_waits_for_running() {
        let t = targets(&[(InProgress, true), (Pending, true)]);
        let mut i = input(&t, "10", "0");
        i.cancel_requested = true;
        let p = plan(&i);
        assert!(p.start.is_empty());
        assert_eq!(
            p.end,
            vec![Ending {
                node_id: "n1".into(),
                status: Cancelled,
                detail: "cancelled before it started".into()
            }]
        );
        assert_eq!(p.command_status, None);
    }

    #[test]
    fn aggregate_status_when_all_final() {
        let t = targets(&[(Success, true), (Success, true)]);
        assert_eq!(plan(&input(&t, "1", "0")).command_status, Some(Success));
        let t = targets(&[(Success, true), (Failed, true)]);
        assert_eq!(plan(&input(&t, "1", "5")).command_status, Some(Failed));
    }
}
