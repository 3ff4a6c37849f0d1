//! The journal's delivery rules, driven through the supervisor with real
//! shells: an invocation id is never run twice, finished ones are resent,
//! interrupted ones are reported failed and never re-run.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use operon_agent::journal::{INTERRUPTED_DETAIL, Journal, JournalEntry};
use operon_agent::procfs::{self, ProcessRecord};
use operon_agent::supervisor::{self, Control, Supervisor};
use operon_proto::{AgentMessage, CommandResult, InvocationStatus, RunCommand, Step};
use tokio::sync::mpsc;

struct Harness {
    _dir: tempfile::TempDir,
    state: PathBuf,
    journal: Journal,
    supervisor: Supervisor,
    done: mpsc::UnboundedReceiver<CommandResult>,
    control: Control,
    sent: mpsc::UnboundedReceiver<AgentMessage>,
    _outbox: mpsc::Receiver<AgentMessage>,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_owned();
        Self::over(dir, state)
    }

    fn over(dir: tempfile::TempDir, state: PathBuf) -> Self {
        let journal = Journal::open(&state).unwrap();
        let (outbox_tx, outbox_rx) = mpsc::channel(1024);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        Harness {
            _dir: dir,
            state,
            journal: journal.clone(),
            supervisor: Supervisor::new(journal, outbox_tx, done_tx),
            done: done_rx,
            control: Some(control_tx),
            sent: control_rx,
            _outbox: outbox_rx,
        }
    }

    /// A new supervisor over the same state directory: an agent restart.
    fn restart(self) -> Self {
        Self::over(self._dir, self.state)
    }

    async fn next_done(&mut self) -> CommandResult {
        let result = tokio::time::timeout(Duration::from_secs(15), self.done.recv())
            .await
            .expect("an invocation finished")
            .unwrap();
        self.supervisor.on_done(result.clone(), &self.control);
        result
    }

    fn sent_results(&mut self) -> Vec<CommandResult> {
        let mut results = Vec::new();
        while let Ok(message) = self.sent.try_recv() {
            if let AgentMessage::Finished(result) = message {
                results.push(result);
            }
        }
        results
    }
}

fn run_command(id: &str, script: &str) -> RunCommand {
    RunCommand {
        invocation_id: id.into(),
        command_id: "cmd".into(),
        steps: vec![Step {
            name: "s".into(),
            script: script.into(),
            working_directory: None,
            timeout_secs: None,
            state: None,
        }],
        timeout_secs: 30,
        cwd: None,
        env: BTreeMap::new(),
        user: None,
        output_cap_bytes: 4096,
    }
}

fn appended_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_same_invocation_id_runs_once_across_duplicates_and_restarts() {
    let mut h = Harness::new();
    let counter = h.state.join("counter");
    let cmd = run_command(
        "inv-once",
        &format!("echo ran >> {}; sleep 0.3", counter.display()),
    );

    h.supervisor.on_run(cmd.clone(), &h.control);
    h.supervisor.on_run(cmd.clone(), &h.control); // duplicate while running: ignored
    let result = h.next_done().await;
    assert_eq!(result.status, InvocationStatus::Success);
    assert_eq!(h.sent_results(), vec![result.clone()]);

    h.supervisor.on_run(cmd.clone(), &h.control); // finished, not acked: resent
    assert_eq!(h.sent_results(), vec![result.clone()]);
    h.supervisor.on_ack("inv-once");
    h.supervisor.on_run(cmd.clone(), &h.control); // acked tombstone: resent
    assert_eq!(h.sent_results(), vec![result.clone()]);

    let mut h = h.restart();
    h.supervisor.on_run(cmd, &h.control); // after a restart: still resent
    assert_eq!(h.sent_results(), vec![result]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        appended_lines(&counter),
        1,
        "the command ran more than once"
    );
}

#[tokio::test]
async fn results_are_journaled_and_resent_until_acknowledged() {
    let mut h = Harness::new();
    h.supervisor
        .on_run(run_command("inv-a", "echo a"), &h.control);
    h.supervisor
        .on_run(run_command("inv-b", "echo b"), &h.control);
    let mut finished = vec![h.next_done().await, h.next_done().await];
    finished.sort_by(|x, y| x.invocation_id.cmp(&y.invocation_id));
    h.sent_results();

    for id in ["inv-a", "inv-b"] {
        let entry = h.journal.load(id).unwrap().unwrap();
        assert!(entry.awaits_ack());
        let mode = std::fs::metadata(h.journal.path_for(id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    h.supervisor.resend_unacknowledged(&h.control);
    let mut resent = h.sent_results();
    resent.sort_by(|x, y| x.invocation_id.cmp(&y.invocation_id));
    assert_eq!(resent, finished);

    h.supervisor.on_ack("inv-a");
    h.supervisor.resend_unacknowledged(&h.control);
    let resent: Vec<String> = h
        .sent_results()
        .into_iter()
        .map(|r| r.invocation_id)
        .collect();
    assert_eq!(resent, ["inv-b"]);
    let tombstone = h.journal.load("inv-a").unwrap().unwrap();
    assert!(tombstone.acked_at.is_some() && tombstone.result.is_some());
    let leftovers: Vec<_> = std::fs::read_dir(h.journal.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A process in its own group, as a step would be, and its journal record.
fn leftover_process() -> (std::process::Child, ProcessRecord) {
    let child = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let start_time = procfs::stat_of(pid).unwrap().start_time;
    (
        child,
        ProcessRecord {
            pid,
            pgid: pid,
            start_time,
        },
    )
}

fn alive(pid: i32) -> bool {
    procfs::stat_of(pid).is_some_and(|s| s.state != 'Z')
}

#[tokio::test]
async fn an_interrupted_invocation_is_stopped_reported_failed_and_never_rerun() {
    let mut h = Harness::new();
    let marker = h.state.join("ran");
    let (mut child, record) = leftover_process();
    let mut entry = JournalEntry::started("inv-int", 1000);
    entry.process = Some(record);
    h.journal.write(&entry).unwrap();

    // The agent restarts: settling the journal kills the leftover group.
    supervisor::settle_journal_at_start(&h.journal)
        .await
        .unwrap();
    assert!(!alive(record.pid), "the leftover process survived");
    let _ = child.wait();

    let cmd = run_command("inv-int", &format!("touch {}", marker.display()));
    h.supervisor.on_run(cmd, &h.control);
    let sent = h.sent_results();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, InvocationStatus::Failed);
    assert_eq!(sent[0].exit_code, None);
    assert_eq!(sent[0].detail.as_deref(), Some(INTERRUPTED_DETAIL));
    assert_eq!(sent[0].started_at, Some(1000));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!marker.exists(), "an interrupted invocation was run again");
}

#[tokio::test]
async fn a_run_for_a_started_entry_not_running_here_is_reported_interrupted() {
    let mut h = Harness::new();
    let marker = h.state.join("ran");
    h.journal.write(&JournalEntry::started("inv-x", 5)).unwrap();
    h.supervisor.on_run(
        run_command("inv-x", &format!("touch {}", marker.display())),
        &h.control,
    );
    let result = h.next_done().await;
    assert_eq!(result.detail.as_deref(), Some(INTERRUPTED_DETAIL));
    assert_eq!(h.sent_results(), vec![result]);
    assert!(!marker.exists());
    assert!(h.journal.load("inv-x").unwrap().unwrap().awaits_ack());
}

#[tokio::test]
async fn a_leftover_whose_pid_was_reused_is_not_killed() {
    let h = Harness::new();
    let (mut child, mut record) = leftover_process();
    record.start_time -= 1; // the journal describes another process with this pid
    let mut entry = JournalEntry::started("inv-reused", 1);
    entry.process = Some(record);
    h.journal.write(&entry).unwrap();
    supervisor::settle_journal_at_start(&h.journal)
        .await
        .unwrap();
    assert!(alive(record.pid), "a process that is not ours was killed");
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test]
async fn cancel_of_an_unknown_id_is_journaled_so_a_later_run_never_runs() {
    let mut h = Harness::new();
    let marker = h.state.join("ran");
    h.supervisor.on_cancel("inv-c", &h.control);
    let sent = h.sent_results();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, InvocationStatus::Cancelled);
    h.supervisor.on_run(
        run_command("inv-c", &format!("touch {}", marker.display())),
        &h.control,
    );
    assert_eq!(h.sent_results(), sent);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!marker.exists());
}

#[tokio::test]
async fn cancel_of_a_running_invocation_reports_cancelled() {
    let mut h = Harness::new();
    h.supervisor
        .on_run(run_command("inv-r", "sleep 300"), &h.control);
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.supervisor.on_cancel("inv-r", &h.control);
    let result = h.next_done().await;
    assert_eq!(result.status, InvocationStatus::Cancelled);
    assert_eq!(
        h.journal.load("inv-r").unwrap().unwrap().result,
        Some(result)
    );
}

#[tokio::test]
async fn old_tombstones_are_pruned_recent_ones_kept() {
    let h = Harness::new();
    let day = 24 * 3600 * 1000;
    let now = operon_agent::runner::now_millis();
    for (id, acked_days_ago) in [("old", 8), ("recent", 6)] {
        let result = CommandResult {
            invocation_id: id.into(),
            status: InvocationStatus::Success,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            started_at: None,
            finished_at: now - acked_days_ago * day,
            detail: None,
            steps: vec![],
            resources: Vec::new(),
        };
        let mut entry = JournalEntry::finished(result);
        entry.acked_at = Some(now - acked_days_ago * day);
        h.journal.write(&entry).unwrap();
    }
    assert_eq!(h.journal.prune(now).unwrap(), 1);
    assert!(h.journal.load("old").unwrap().is_none());
    assert!(h.journal.load("recent").unwrap().is_some());
}

#[tokio::test]
async fn invocation_ids_with_path_characters_stay_inside_the_journal() {
    let mut h = Harness::new();
    h.supervisor
        .on_run(run_command("../../escape", "true"), &h.control);
    let result = h.next_done().await;
    assert_eq!(result.invocation_id, "../../escape");
    assert!(
        h.journal
            .path_for("../../escape")
            .starts_with(h.journal.dir())
    );
    assert!(h.journal.load("../../escape").unwrap().is_some());
}
