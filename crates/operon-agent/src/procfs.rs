//! What `/proc` says about processes: enough to recognise a process group the
//! agent started (its leader's start time) and to know when none of its
//! members is left.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys;

/// The process (group) a step runs in, as recorded in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    /// The step's shell leads its own session, so `pgid == pid`.
    pub pgid: i32,
    /// Start time in clock ticks after boot (`/proc/<pid>/stat` field 22): with
    /// the pid it names one process, even after the pid is reused.
    pub start_time: u64,
}

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub pgid: i32,
    pub start_time: u64,
    /// CPU time in user and kernel mode, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Parse the text of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
        cpu_ticks: fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?,
        rss_pages: fields.get(21)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat` of one process, `None` if it does not exist (any more).
pub fn stat_of(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Processes of group `pgid` that are alive (zombies, already dead and only
/// waiting to be reaped, are not counted), with their stats.
pub fn live_group_members(pgid: i32) -> Vec<(i32, ProcStat)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat_of(pid)?)))
        .filter(|(_, stat)| stat.pgid == pgid && stat.state != 'Z' && stat.state != 'X')
        .collect()
}

/// Whether the group recorded in `record` still has live members that are
/// provably ours: the leader itself with the same start time, or, once the
/// leader is gone, members started no earlier than it (while any member lives
/// the kernel cannot hand the group id to a new group).
pub fn recorded_group_alive(record: &ProcessRecord) -> bool {
    if let Some(leader) = stat_of(record.pgid)
        && leader.start_time != record.start_time
    {
        return false; // the pid now names another process
    }
    live_group_members(record.pgid)
        .iter()
        .any(|(_, stat)| stat.start_time >= record.start_time)
}

/// How long a group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Stop a whole process group: SIGTERM, then SIGKILL for whatever is still
/// alive after `grace`. Returns when no live member is left (or after a last
/// short wait following SIGKILL).
pub async fn terminate_group(pgid: i32, grace: Duration) {
    if let Err(err) = sys::signal_group(pgid, sys::SIGTERM) {
        tracing::warn!(pgid, %err, "could not send SIGTERM to the process group");
    }
    if wait_until_group_gone(pgid, grace).await {
        return;
    }
    if let Err(err) = sys::signal_group(pgid, sys::SIGKILL) {
        tracing::warn!(pgid, %err, "could not send SIGKILL to the process group");
    }
    if !wait_until_group_gone(pgid, Duration::from_secs(2)).await {
        tracing::warn!(pgid, "processes of the group survived SIGKILL");
    }
}

async fn wait_until_group_gone(pgid: i32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if live_group_members(pgid).is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "4242 (sh (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 987654 2437120 200 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgid, 4242);
        assert_eq!(stat.start_time, 987654);
        assert_eq!(stat.cpu_ticks, 7 + 5);
        assert_eq!(stat.rss_pages, 200);
    }

    #[test]
    fn truncated_stat_is_none_not_a_panic() {
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_found_with_its_start_time() {
        let me = stat_of(std::process::id() as i32).unwrap();
        assert!(me.start_time > 0);
    }
}
