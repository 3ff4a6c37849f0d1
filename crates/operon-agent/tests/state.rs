//! A `RunCommand` carrying a desired-state step, through the same runner
//! path the link uses (the supervisor calls `run_invocation_in`).

use std::collections::BTreeMap;
use std::time::Duration;

use operon_agent::output::OutputSink;
use operon_agent::runner::{self, StopReason};
use operon_agent::state::StateContext;
use operon_proto::{
    AgentMessage, InvocationStatus, OutputStream, ResourceStatus, RunCommand, Secret, StateMode,
    StateStep, Step,
};
use tokio::sync::mpsc;

fn state_command(document: serde_json::Value, timeout_secs: u64) -> RunCommand {
    RunCommand {
        invocation_id: "inv-state".into(),
        command_id: "cmd-state".into(),
        steps: vec![Step {
            name: "apply".into(),
            script: operon_proto::STATE_STEP_FALLBACK_SCRIPT.into(),
            working_directory: None,
            timeout_secs: None,
            state: Some(StateStep {
                association: None,
                mode: StateMode::Apply,
                document: Secret(document.to_string()),
                sources: BTreeMap::new(),
                sensitive: Vec::new(),
            }),
        }],
        timeout_secs,
        cwd: None,
        env: BTreeMap::new(),
        user: None,
        output_cap_bytes: 64 * 1024,
    }
}

fn doc(resources: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"schemaVersion": "operon-state/1", "resources": resources})
}

#[tokio::test]
async fn a_state_step_reports_resources_and_streams_its_summary() {
    let root = tempfile::tempdir().unwrap();
    let ctx = StateContext {
        host_root: Some(root.path().to_path_buf()),
        watch: None,
    };
    let command = state_command(
        doc(serde_json::json!([
            {"name": "motd", "type": "file", "path": "/motd", "content": "hi\n"},
            {"name": "bad", "type": "command", "run": "exit 2"},
            {"name": "after", "type": "command", "run": "true", "requires": ["bad"]},
        ])),
        30,
    );
    let (tx, mut rx) = mpsc::channel(64);
    let sink = OutputSink {
        invocation_id: "inv-state".into(),
        tx: Some(tx),
    };
    let (_stop_tx, stop) = runner::stop_channel();
    let result =
        runner::run_invocation_in(&command, runner::now_millis(), sink, |_| {}, stop, &ctx).await;
    assert_eq!(result.status, InvocationStatus::Failed);
    assert_eq!(result.exit_code, Some(1));
    assert_eq!(
        result.detail.as_deref(),
        Some("step 'apply': 1 of 3 resources failed")
    );
    let expected = "file motd: changed (created)\n\
                    command bad: failed: the command exited with code 2\n\
                    command after: skipped: requires bad, which failed\n";
    assert_eq!(result.stdout, expected);
    let statuses: Vec<ResourceStatus> = result.resources.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            ResourceStatus::Changed,
            ResourceStatus::Failed,
            ResourceStatus::Skipped
        ]
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("motd")).unwrap(),
        "hi\n"
    );
    let mut live = String::new();
    while let Ok(AgentMessage::Output { stream, data, .. }) = rx.try_recv() {
        assert_eq!(stream, OutputStream::Stdout);
        live.push_str(&data);
    }
    assert_eq!(live, expected);

    // All compliant: success, exit code 0.
    let (_stop_tx, stop) = runner::stop_channel();
    let ok = state_command(
        doc(
            serde_json::json!([{"name": "motd", "type": "file", "path": "/motd", "content": "hi\n"}]),
        ),
        30,
    );
    let no_sink = OutputSink {
        invocation_id: "inv-state".into(),
        tx: None,
    };
    let result =
        runner::run_invocation_in(&ok, runner::now_millis(), no_sink, |_| {}, stop, &ctx).await;
    assert_eq!(result.status, InvocationStatus::Success);
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.stdout, "file motd: unchanged\n");
    assert_eq!(result.steps[0].status, InvocationStatus::Success);
}

#[tokio::test]
async fn cancel_and_timeout_stop_a_state_step() {
    let slow = doc(serde_json::json!([
        {"name": "slow", "type": "command", "run": "sleep 30"},
        {"name": "never", "type": "command", "run": "true"},
    ]));
    let no_sink = || OutputSink {
        invocation_id: "inv-state".into(),
        tx: None,
    };
    let (stop_tx, stop) = runner::stop_channel();
    let command = state_command(slow.clone(), 0);
    let started = std::time::Instant::now();
    let (result, _) = tokio::join!(
        runner::run_invocation(&command, runner::now_millis(), no_sink(), |_| {}, stop),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop_tx.send_replace(Some(StopReason::Cancelled));
        }
    );
    assert_eq!(result.status, InvocationStatus::Cancelled);
    let statuses: Vec<ResourceStatus> = result.resources.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [ResourceStatus::Failed, ResourceStatus::Skipped]);
    assert!(started.elapsed() < Duration::from_secs(10));

    let (_stop_tx, stop) = runner::stop_channel();
    let command = state_command(slow, 1);
    let result =
        runner::run_invocation(&command, runner::now_millis(), no_sink(), |_| {}, stop).await;
    assert_eq!(result.status, InvocationStatus::TimedOut);
    assert_eq!(result.detail.as_deref(), Some("timed out after 1 s"));
}

#[tokio::test]
async fn an_invalid_document_fails_the_step() {
    let (_stop_tx, stop) = runner::stop_channel();
    let command = state_command(serde_json::json!({"schemaVersion": "nope"}), 30);
    let sink = OutputSink {
        invocation_id: "inv-state".into(),
        tx: None,
    };
    let result = runner::run_invocation(&command, runner::now_millis(), sink, |_| {}, stop).await;
    assert_eq!(result.status, InvocationStatus::Failed);
    assert_eq!(result.exit_code, Some(1));
    assert!(result.resources.is_empty());
    assert!(
        result
            .stdout
            .starts_with("the desired-state document is refused"),
        "{}",
        result.stdout
    );
    assert!(
        result
            .detail
            .unwrap()
            .starts_with("step 'apply': the desired-state document is refused")
    );
}
