//! The command runner against real shells and real processes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use operon_agent::output::OutputSink;
use operon_agent::procfs::{self, ProcessRecord};
use operon_agent::runner::{self, StopReason};
use operon_proto::{AgentMessage, CommandResult, InvocationStatus, OutputStream, RunCommand, Step};
use tokio::sync::mpsc;

fn step(name: &str, script: &str) -> Step {
    Step {
        name: name.into(),
        script: script.into(),
        working_directory: None,
        timeout_secs: None,
        state: None,
    }
}

fn command(steps: Vec<Step>) -> RunCommand {
    RunCommand {
        invocation_id: "inv-test".into(),
        command_id: "cmd-test".into(),
        steps,
        timeout_secs: 30,
        cwd: None,
        env: BTreeMap::new(),
        user: None,
        output_cap_bytes: 64 * 1024,
    }
}

fn no_sink() -> OutputSink {
    OutputSink {
        invocation_id: "inv-test".into(),
        tx: None,
    }
}

/// Run to the end, returning the result and every process group spawned.
async fn run(cmd: &RunCommand) -> (CommandResult, Vec<ProcessRecord>) {
    let spawned = Arc::new(Mutex::new(Vec::new()));
    let record = spawned.clone();
    let (_stop_tx, stop_rx) = runner::stop_channel();
    let result = runner::run_invocation(
        cmd,
        runner::now_millis(),
        no_sink(),
        move |r| record.lock().unwrap().push(r),
        stop_rx,
    )
    .await;
    let spawned = spawned.lock().unwrap().clone();
    (result, spawned)
}

#[tokio::test]
async fn a_step_that_exits_zero_succeeds_with_its_output() {
    let (result, spawned) = run(&command(vec![step("hello", "echo hello; echo oops >&2")])).await;
    assert_eq!(result.status, InvocationStatus::Success);
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.stdout, "hello\n");
    assert_eq!(result.stderr, "oops\n");
    assert_eq!(result.detail, None);
    assert_eq!(result.steps.len(), 1);
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0].pid, spawned[0].pgid);
    assert!(spawned[0].start_time > 0);
}

#[tokio::test]
async fn a_step_that_exits_non_zero_fails_with_its_code() {
    let (result, _) = run(&command(vec![step("bad", "exit 1")])).await;
    assert_eq!(result.status, InvocationStatus::Failed);
    assert_eq!(result.exit_code, Some(1));
    assert_eq!(
        result.detail.as_deref(),
        Some("step 'bad' exited with code 1")
    );
}

#[tokio::test]
async fn steps_run_in_order_and_stop_at_the_first_failure() {
    let (result, _) = run(&command(vec![
        step("one", "echo one"),
        step("two", "echo two; exit 3"),
        step("three", "echo three"),
    ]))
    .await;
    assert_eq!(result.status, InvocationStatus::Failed);
    assert_eq!(result.exit_code, Some(3));
    assert_eq!(result.stdout, "one\ntwo\n");
    let statuses: Vec<_> = result
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status, s.exit_code))
        .collect();
    assert_eq!(
        statuses,
        [
            ("one", InvocationStatus::Success, Some(0)),
            ("two", InvocationStatus::Failed, Some(3))
        ]
    );
}

#[tokio::test]
async fn output_beyond_the_cap_is_cut_and_flagged() {
    let mut cmd = command(vec![step(
        "big",
        "head -c 5000 /dev/zero | tr '\\0' a; echo small >&2",
    )]);
    cmd.output_cap_bytes = 1000;
    let (result, _) = run(&cmd).await;
    assert_eq!(result.status, InvocationStatus::Success);
    assert_eq!(result.stdout.len(), 1000);
    assert!(result.stdout_truncated);
    assert_eq!(result.stderr, "small\n");
    assert!(!result.stderr_truncated);
}

#[tokio::test]
async fn the_cap_never_splits_a_character_and_bad_utf8_is_replaced() {
    let mut cmd = command(vec![step(
        "utf8",
        "printf 'ab\\342\\202\\254cd'; printf 'x\\377y' >&2",
    )]);
    cmd.output_cap_bytes = 4; // "ab" + 2 of the 3 bytes of the euro sign
    let (result, _) = run(&cmd).await;
    assert_eq!(result.stdout, "ab");
    assert!(result.stdout_truncated);
    assert_eq!(result.stderr, "x\u{FFFD}y");
}

#[tokio::test]
async fn working_directory_and_environment_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(vec![
        step("default", "pwd; echo \"$GREETING\""),
        Step {
            working_directory: Some("/".into()),
            ..step("own", "pwd")
        },
    ]);
    cmd.cwd = Some(dir.path().to_str().unwrap().into());
    cmd.env.insert("GREETING".into(), "hi there".into());
    let (result, _) = run(&cmd).await;
    let canonical = dir.path().canonicalize().unwrap();
    assert_eq!(
        result.stdout,
        format!("{}\nhi there\n/\n", canonical.display())
    );
}

/// The agent's environment as a command must not see it.
const SECRET: &str = "ot-secret-in-the-agents-environment";

#[tokio::test]
async fn commands_do_not_inherit_the_agents_environment() {
    // A test cannot safely set variables in its own (threaded) process, so
    // it runs itself again in a child that has them, as an agent started
    // with OPERON_ENROLL_TOKEN in its environment would.
    if std::env::var("OPERON_ENROLL_TOKEN").as_deref() != Ok(SECRET) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "commands_do_not_inherit_the_agents_environment"])
            .env("OPERON_ENROLL_TOKEN", SECRET)
            .env("OPERON_SERVER", "http://127.0.0.1:7780")
            .env("SOME_CLOUD_SECRET", SECRET)
            .env("LANG", "C")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    let mut cmd = command(vec![step(
        "env",
        // `ls` found through PATH; then the whole environment.
        "command -v ls >/dev/null && echo ls-found; env",
    )]);
    cmd.env.insert("GREETING".into(), "hello".into());
    let (result, _) = run(&cmd).await;
    assert_eq!(result.status, InvocationStatus::Success, "{result:?}");
    let out = &result.stdout;
    assert!(out.starts_with("ls-found\n"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    assert!(!out.contains("OPERON_"), "{out}");
    assert!(out.lines().any(|l| l == "GREETING=hello"), "{out}");
    assert!(out.lines().any(|l| l == "LANG=C"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("PATH=/")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("HOME=")), "{out}");
}

#[tokio::test]
async fn a_missing_working_directory_fails_clearly() {
    let mut cmd = command(vec![step("s", "true")]);
    cmd.cwd = Some("/no/such/dir".into());
    let (result, spawned) = run(&cmd).await;
    assert_eq!(result.status, InvocationStatus::Failed);
    assert_eq!(result.exit_code, None);
    let detail = result.detail.unwrap();
    assert!(
        detail.contains("/no/such/dir") && detail.contains("does not exist"),
        "{detail}"
    );
    assert!(spawned.is_empty());
}

#[tokio::test]
async fn an_unknown_user_fails_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let mut cmd = command(vec![step("s", &format!("touch {}", marker.display()))]);
    cmd.user = Some("no-such-user-operon".into());
    let (result, spawned) = run(&cmd).await;
    assert_eq!(result.status, InvocationStatus::Failed);
    assert_eq!(
        result.detail.as_deref(),
        Some("user 'no-such-user-operon' does not exist on this node")
    );
    assert!(spawned.is_empty());
    assert!(!marker.exists());
}

#[tokio::test]
async fn running_as_a_user_switches_identity_and_home() {
    // Only meaningful as root (the CI and dev machines run as root).
    if operon_agent::procfs::stat_of(1).is_none() || !is_root() {
        return;
    }
    let mut cmd = command(vec![step("who", "id -un; echo $HOME")]);
    cmd.user = Some("nobody".into());
    let (result, _) = run(&cmd).await;
    assert_eq!(result.status, InvocationStatus::Success, "{result:?}");
    let mut lines = result.stdout.lines();
    assert_eq!(lines.next(), Some("nobody"));
    assert!(lines.next().is_some_and(|home| !home.is_empty()));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        .unwrap_or(false)
}

fn process_alive(pid: i32) -> bool {
    procfs::stat_of(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

#[tokio::test]
async fn timeout_kills_the_whole_process_tree() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let script = format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display());
    let mut cmd = command(vec![step("hang", &script)]);
    cmd.timeout_secs = 1;
    let began = Instant::now();
    let (result, spawned) = run(&cmd).await;
    assert_eq!(result.status, InvocationStatus::TimedOut);
    assert_eq!(result.exit_code, None);
    assert_eq!(result.detail.as_deref(), Some("timed out after 1 s"));
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "{:?}",
        began.elapsed()
    );
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !process_alive(grandchild),
        "the background sleep survived the timeout"
    );
    assert!(procfs::live_group_members(spawned[0].pgid).is_empty());
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_is_killed() {
    let mut cmd = command(vec![step(
        "stubborn",
        "trap '' TERM; sleep 300 & wait; sleep 300",
    )]);
    cmd.timeout_secs = 1;
    let (result, spawned) = run(&cmd).await;
    assert_eq!(result.status, InvocationStatus::TimedOut);
    assert!(procfs::live_group_members(spawned[0].pgid).is_empty());
}

#[tokio::test]
async fn a_step_timeout_is_reported_as_the_steps() {
    let cmd = command(vec![
        step("quick", "echo quick"),
        Step {
            timeout_secs: Some(1),
            state: None,
            ..step("slow", "sleep 300")
        },
    ]);
    let (result, _) = run(&cmd).await;
    assert_eq!(result.status, InvocationStatus::TimedOut);
    assert_eq!(
        result.detail.as_deref(),
        Some("step 'slow' timed out after 1 s")
    );
    assert_eq!(result.stdout, "quick\n");
    assert_eq!(result.steps.len(), 2);
    assert_eq!(result.steps[1].status, InvocationStatus::TimedOut);
}

#[tokio::test]
async fn cancel_kills_the_group_and_reports_cancelled() {
    let (stop_tx, stop_rx) = runner::stop_channel();
    let spawned = Arc::new(Mutex::new(Vec::new()));
    let record = spawned.clone();
    let cmd = command(vec![
        step("long", "echo started; sleep 300"),
        step("never", "echo never"),
    ]);
    let task = tokio::spawn(async move {
        runner::run_invocation(
            &cmd,
            1,
            no_sink(),
            move |r| record.lock().unwrap().push(r),
            stop_rx,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    stop_tx.send_replace(Some(StopReason::Cancelled));
    let result = task.await.unwrap();
    assert!(began.elapsed() < Duration::from_secs(5));
    assert_eq!(result.status, InvocationStatus::Cancelled);
    assert_eq!(result.stdout, "started\n");
    assert_eq!(result.steps.len(), 1);
    let pgid = spawned.lock().unwrap()[0].pgid;
    assert!(procfs::live_group_members(pgid).is_empty());
}

#[tokio::test]
async fn live_output_streams_before_the_command_ends() {
    let (tx, mut rx) = mpsc::channel(8);
    let sink = OutputSink {
        invocation_id: "inv-live".into(),
        tx: Some(tx),
    };
    let cmd = command(vec![step(
        "s",
        "echo first; sleep 1; printf partial; sleep 1; echo ' end'",
    )]);
    let (_stop_tx, stop_rx) = runner::stop_channel();
    let task =
        tokio::spawn(async move { runner::run_invocation(&cmd, 1, sink, |_| {}, stop_rx).await });
    let first = tokio::time::timeout(Duration::from_millis(900), rx.recv())
        .await
        .unwrap();
    assert_eq!(
        first,
        Some(AgentMessage::Output {
            invocation_id: "inv-live".into(),
            stream: OutputStream::Stdout,
            data: "first\n".into()
        })
    );
    assert!(!task.is_finished());
    // A partial line is flushed after ~100 ms, not held until the newline.
    let second = tokio::time::timeout(Duration::from_millis(1600), rx.recv())
        .await
        .unwrap();
    assert!(matches!(second, Some(AgentMessage::Output { data, .. }) if data == "partial"));
    let result = task.await.unwrap();
    assert_eq!(result.stdout, "first\npartial end\n");
}

#[tokio::test]
async fn a_slow_consumer_of_live_output_slows_the_command_instead_of_buffering() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("done");
    let (tx, mut rx) = mpsc::channel(1);
    let sink = OutputSink {
        invocation_id: "inv-slow".into(),
        tx: Some(tx),
    };
    // 2 MB without newlines: far more than a pipe and the queue can hold.
    let script = format!(
        "head -c 2000000 /dev/zero | tr '\\0' a; touch {}",
        marker.display()
    );
    let mut cmd = command(vec![step("flood", &script)]);
    cmd.output_cap_bytes = 100;
    let (_stop_tx, stop_rx) = runner::stop_channel();
    let task =
        tokio::spawn(async move { runner::run_invocation(&cmd, 1, sink, |_| {}, stop_rx).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !marker.exists(),
        "the command ran ahead of an unread output queue"
    );
    let mut streamed = 0;
    while let Some(AgentMessage::Output { data, .. }) = rx.recv().await {
        streamed += data.len();
    }
    let result = task.await.unwrap();
    assert!(marker.exists());
    assert_eq!(streamed, 2_000_000);
    assert_eq!(result.stdout.len(), 100);
    assert!(result.stdout_truncated);
}
