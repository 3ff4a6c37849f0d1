//! The engine over whole documents, against temporary directories (the
//! document's paths live below a host root) and real shells.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use operon_proto::{ResourceReport, ResourceStatus, Secret, StateMode, StateStep};
use serde_json::{Value, json};

use super::*;
use crate::runner::stop_channel;

struct Fx {
    root: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        Fx {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn ctx(&self) -> StateContext {
        StateContext {
            host_root: Some(self.root.path().to_path_buf()),
            watch: None,
        }
    }

    fn path(&self, doc_path: &str) -> PathBuf {
        self.root.path().join(doc_path.trim_start_matches('/'))
    }

    fn write(&self, doc_path: &str, text: &str) {
        std::fs::write(self.path(doc_path), text).unwrap();
    }

    fn read(&self, doc_path: &str) -> String {
        std::fs::read_to_string(self.path(doc_path)).unwrap()
    }

    fn mkdir(&self, doc_path: &str) {
        std::fs::create_dir_all(self.path(doc_path)).unwrap();
    }
}

fn doc(resources: Value) -> String {
    json!({"schemaVersion": "operon-state/1", "resources": resources}).to_string()
}

fn step(document: String, mode: StateMode) -> StateStep {
    StateStep {
        association: None,
        mode,
        document: Secret(document),
        sources: BTreeMap::new(),
        sensitive: Vec::new(),
    }
}

async fn run_with(step: &StateStep, ctx: &StateContext) -> StateRun {
    let (_stop_tx, stop) = stop_channel();
    let mut on_spawn = |_| {};
    let limits = Limits {
        stop,
        deadline: None,
        on_spawn: &mut on_spawn,
        progress: None,
    };
    run_state_step(step, ctx, limits).await
}

async fn apply(fx: &Fx, document: &str) -> StateRun {
    run_with(&step(document.to_string(), StateMode::Apply), &fx.ctx()).await
}

async fn check(fx: &Fx, document: &str) -> StateRun {
    run_with(&step(document.to_string(), StateMode::Check), &fx.ctx()).await
}

fn report<'a>(run: &'a StateRun, name: &str) -> &'a ResourceReport {
    run.reports
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no report for {name}: {run:?}"))
}

fn status(run: &StateRun, name: &str) -> ResourceStatus {
    report(run, name).status
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Apply the `owned` file of the system tests again (no host root).
pub async fn run_file_only(path: &Path) -> ResourceStatus {
    let d = doc(
        json!([{"name": "owned", "type": "file", "path": path.display().to_string(),
        "content": "x\n", "owner": "nobody", "mode": "0640"}]),
    );
    let run = run_with(&step(d, StateMode::Apply), &StateContext::default()).await;
    status(&run, "owned")
}

pub fn is_root() -> bool {
    crate::sys::effective_uid() == 0
}

#[tokio::test]
async fn a_file_is_created_then_unchanged_then_fixed_with_a_diff() {
    let fx = Fx::new();
    fx.mkdir("/etc/app");
    let d = doc(
        json!([{"name": "conf", "type": "file", "path": "/etc/app/app.conf",
        "content": "port = 80\nhost = a\n", "mode": "0600"}]),
    );
    let first = apply(&fx, &d).await;
    assert!(first.success, "{first:?}");
    assert_eq!(status(&first, "conf"), ResourceStatus::Changed);
    assert_eq!(report(&first, "conf").changes, ["created"]);
    assert_eq!(fx.read("/etc/app/app.conf"), "port = 80\nhost = a\n");
    assert_eq!(mode_of(&fx.path("/etc/app/app.conf")), 0o600);
    assert_eq!(first.summary, "file conf: changed (created)\n");

    let second = apply(&fx, &d).await;
    assert_eq!(status(&second, "conf"), ResourceStatus::Unchanged);
    assert_eq!(second.summary, "file conf: unchanged\n");

    fx.write("/etc/app/app.conf", "port = 81\nhost = a\n");
    std::fs::set_permissions(
        fx.path("/etc/app/app.conf"),
        PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let checked = check(&fx, &d).await;
    let r = report(&checked, "conf");
    assert_eq!(r.status, ResourceStatus::WouldChange);
    assert_eq!(r.changes, ["content", "mode 0644 -> 0600"]);
    assert_eq!(
        r.diff.as_deref(),
        Some(
            "--- a/etc/app/app.conf\n+++ b/etc/app/app.conf\n@@ -1,2 +1,2 @@\n-port = 81\n+port = 80\n host = a\n"
        )
    );
    assert_eq!(
        fx.read("/etc/app/app.conf"),
        "port = 81\nhost = a\n",
        "check mode touched the file"
    );
    assert_eq!(mode_of(&fx.path("/etc/app/app.conf")), 0o644);

    let fixed = apply(&fx, &d).await;
    assert_eq!(status(&fixed, "conf"), ResourceStatus::Changed);
    assert_eq!(
        fixed.summary,
        "file conf: changed (content, mode 0644 -> 0600)\n"
    );
    assert_eq!(fx.read("/etc/app/app.conf"), "port = 80\nhost = a\n");
    assert_eq!(mode_of(&fx.path("/etc/app/app.conf")), 0o600);
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(fx.path("/etc/app")).unwrap().collect();
    assert_eq!(left.len(), 1);
}

#[tokio::test]
async fn only_the_mode_of_unmanaged_content_is_fixed() {
    let fx = Fx::new();
    fx.write("/motd", "hello\n");
    let d = doc(json!([{"name": "motd", "type": "file", "path": "/motd", "mode": "0640"}]));
    let run = apply(&fx, &d).await;
    assert_eq!(report(&run, "motd").changes, ["mode 0644 -> 0640"]);
    assert_eq!(fx.read("/motd"), "hello\n");
    assert_eq!(mode_of(&fx.path("/motd")), 0o640);
}

#[tokio::test]
async fn sensitive_files_get_no_diff_and_sources_come_from_the_step() {
    let fx = Fx::new();
    fx.write("/env", "TOKEN=old\n");
    let d = doc(json!([{"name": "env", "type": "file", "path": "/env", "source": "app/env"}]));
    let mut s = step(d, StateMode::Apply);
    s.sources.insert("env".into(), Secret("TOKEN=new\n".into()));
    s.sensitive.push("env".into());
    let run = run_with(&s, &fx.ctx()).await;
    let r = report(&run, "env");
    assert_eq!(r.status, ResourceStatus::Changed);
    assert_eq!(r.changes, [file::HIDDEN_CONTENT]);
    assert_eq!(r.diff, None);
    assert!(!run.summary.contains("TOKEN"));
    assert_eq!(fx.read("/env"), "TOKEN=new\n");

    s.sources.clear();
    let run = run_with(&s, &fx.ctx()).await;
    assert_eq!(status(&run, "env"), ResourceStatus::Failed);
    assert!(!run.success);
}

#[tokio::test]
async fn a_missing_directory_or_a_climbing_path_fails() {
    let fx = Fx::new();
    let d = doc(json!([{"name": "a", "type": "file", "path": "/nowhere/a.conf", "content": "x"}]));
    let run = apply(&fx, &d).await;
    let a = report(&run, "a");
    assert_eq!(a.status, ResourceStatus::Failed);
    let expected = format!("directory {} does not exist", fx.path("/nowhere").display());
    assert_eq!(a.message.as_deref(), Some(expected.as_str()));
    assert_eq!(run.summary, format!("file a: failed: {expected}\n"));
    assert!(!run.success);
    // The document refuses `..` already; the engine would too.
    let d = doc(json!([{"name": "b", "type": "file", "path": "/x/../../escape", "content": "x"}]));
    let run = apply(&fx, &d).await;
    assert!(!run.success);
    assert!(
        run.summary.contains("contains a \"..\" component"),
        "{}",
        run.summary
    );
    assert!(!fx.root.path().parent().unwrap().join("escape").exists());
}

#[tokio::test]
async fn node_paths_stay_below_the_root() {
    let root = Path::new("/host");
    assert_eq!(
        node_path(Some(root), "/etc/x").unwrap(),
        Path::new("/host/etc/x")
    );
    assert_eq!(node_path(None, "/etc/x").unwrap(), Path::new("/etc/x"));
    assert!(node_path(Some(root), "/etc/../../x").is_err());
    assert!(node_path(Some(root), "etc/x").is_err());
}

#[tokio::test]
async fn an_absent_file_is_removed() {
    let fx = Fx::new();
    fx.write("/old", "x");
    let d = doc(json!([{"name": "old", "type": "file", "path": "/old", "state": "absent"}]));
    assert_eq!(report(&check(&fx, &d).await, "old").changes, ["removed"]);
    assert!(fx.path("/old").exists());
    assert_eq!(
        status(&apply(&fx, &d).await, "old"),
        ResourceStatus::Changed
    );
    assert!(!fx.path("/old").exists());
    assert_eq!(
        status(&apply(&fx, &d).await, "old"),
        ResourceStatus::Unchanged
    );
}

#[tokio::test]
async fn directories_are_created_and_removed_only_when_empty() {
    let fx = Fx::new();
    let d = doc(json!([{"name": "d", "type": "directory", "path": "/srv", "mode": "0750"}]));
    assert_eq!(
        status(&check(&fx, &d).await, "d"),
        ResourceStatus::WouldChange
    );
    assert!(!fx.path("/srv").exists());
    assert_eq!(report(&apply(&fx, &d).await, "d").changes, ["created"]);
    assert_eq!(mode_of(&fx.path("/srv")), 0o750);
    assert_eq!(
        status(&apply(&fx, &d).await, "d"),
        ResourceStatus::Unchanged
    );

    fx.write("/srv/keep", "x");
    let gone = doc(json!([{"name": "d", "type": "directory", "path": "/srv", "state": "absent"}]));
    let run = apply(&fx, &gone).await;
    assert_eq!(status(&run, "d"), ResourceStatus::Failed);
    assert!(
        report(&run, "d")
            .message
            .as_deref()
            .unwrap()
            .contains("is not empty")
    );
    std::fs::remove_file(fx.path("/srv/keep")).unwrap();
    assert_eq!(
        status(&apply(&fx, &gone).await, "d"),
        ResourceStatus::Changed
    );
    assert!(!fx.path("/srv").exists());
}

#[tokio::test]
async fn lines_are_added_replaced_and_kept_idempotent() {
    let fx = Fx::new();
    fx.write("/sshd_config", "Port 22\nPermitRootLogin yes\n");
    std::fs::set_permissions(fx.path("/sshd_config"), PermissionsExt::from_mode(0o600)).unwrap();
    let d = doc(json!([
        {"name": "root-login", "type": "line", "path": "/sshd_config",
         "line": "PermitRootLogin no", "match": "^PermitRootLogin"},
        {"name": "new-file", "type": "line", "path": "/hosts.allow", "line": "sshd: ALL"},
    ]));
    let checked = check(&fx, &d).await;
    assert_eq!(status(&checked, "root-login"), ResourceStatus::WouldChange);
    assert_eq!(report(&checked, "new-file").changes, ["created", "content"]);
    assert_eq!(fx.read("/sshd_config"), "Port 22\nPermitRootLogin yes\n");
    assert!(!fx.path("/hosts.allow").exists());
    let run = apply(&fx, &d).await;
    assert!(run.success, "{run:?}");
    assert_eq!(report(&run, "root-login").changes, ["content"]);
    assert!(
        report(&run, "root-login")
            .diff
            .as_deref()
            .unwrap()
            .contains("+PermitRootLogin no")
    );
    assert_eq!(report(&run, "new-file").changes, ["created", "content"]);
    assert_eq!(fx.read("/sshd_config"), "Port 22\nPermitRootLogin no\n");
    assert_eq!(mode_of(&fx.path("/sshd_config")), 0o600, "the mode is kept");
    assert_eq!(fx.read("/hosts.allow"), "sshd: ALL\n");
    let again = apply(&fx, &d).await;
    assert!(
        again
            .reports
            .iter()
            .all(|r| r.status == ResourceStatus::Unchanged),
        "{again:?}"
    );
}

#[tokio::test]
async fn command_guards_decide_and_failures_carry_the_output() {
    let fx = Fx::new();
    let marker = fx.path("/ran");
    let m = marker.display().to_string();
    let d = doc(json!([
        {"name": "creates", "type": "command", "run": format!("echo x >> {m}"), "creates": "/ran"},
        {"name": "unless", "type": "command", "run": "echo nope; exit 1", "unless": "true"},
        {"name": "onlyif", "type": "command", "run": "echo nope; exit 1", "onlyif": "false"},
        {"name": "bad", "type": "command", "run": "echo some output; echo oops >&2; exit 3"},
    ]));
    let checked = check(&fx, &d).await;
    assert_eq!(report(&checked, "creates").changes, ["would run"]);
    assert_eq!(status(&checked, "unless"), ResourceStatus::Unchanged);
    assert_eq!(status(&checked, "onlyif"), ResourceStatus::Unchanged);
    assert!(!marker.exists(), "check mode ran the command");

    let run = apply(&fx, &d).await;
    assert_eq!(report(&run, "creates").changes, ["ran"]);
    assert_eq!(status(&run, "unless"), ResourceStatus::Unchanged);
    assert_eq!(
        report(&run, "unless").message.as_deref(),
        Some("not run: the unless guard exited 0")
    );
    assert_eq!(status(&run, "onlyif"), ResourceStatus::Unchanged);
    let bad = report(&run, "bad");
    assert_eq!(bad.status, ResourceStatus::Failed);
    assert_eq!(
        bad.message.as_deref(),
        Some("the command exited with code 3:\nsome output\noops")
    );
    assert!(!run.success);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "x\n");
    let again = apply(&fx, &d).await;
    assert_eq!(status(&again, "creates"), ResourceStatus::Unchanged);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "x\n");
}

#[tokio::test]
async fn commands_get_a_clean_environment_and_their_cwd() {
    let fx = Fx::new();
    fx.mkdir("/work");
    let out = fx.path("/out");
    let d = doc(json!([{"name": "env", "type": "command",
        "run": format!("pwd > {o}; env | sort | cut -d= -f1 | tr '\\n' ' ' >> {o}", o = out.display()),
        "cwd": fx.path("/work").display().to_string()}]));
    let run = apply(&fx, &d).await;
    assert!(run.success, "{run:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with(&format!("{}\n", fx.path("/work").display())),
        "{text}"
    );
    assert!(!text.contains("OPERON"), "{text}");
    assert!(text.contains("PATH"), "{text}");
}

#[tokio::test]
async fn order_follows_requires_and_failures_skip_what_requires_them() {
    let fx = Fx::new();
    let d = doc(json!([
        {"name": "app", "type": "command", "run": "true", "requires": ["setup"]},
        {"name": "after-app", "type": "command", "run": "true", "requires": ["app"]},
        {"name": "setup", "type": "command", "run": "exit 4"},
        {"name": "free", "type": "command", "run": "true"},
    ]));
    let run = apply(&fx, &d).await;
    // Reports in document order; the summary in the order they went.
    let order: Vec<&str> = run.reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["app", "after-app", "setup", "free"]);
    assert_eq!(status(&run, "setup"), ResourceStatus::Failed);
    assert_eq!(status(&run, "app"), ResourceStatus::Skipped);
    assert_eq!(
        report(&run, "app").message.as_deref(),
        Some("requires setup, which failed")
    );
    assert_eq!(
        report(&run, "after-app").message.as_deref(),
        Some("requires app, which was skipped")
    );
    assert_eq!(status(&run, "free"), ResourceStatus::Changed);
    assert!(!run.success);
    assert_eq!(
        run.summary,
        "command setup: failed: the command exited with code 4\n\
         command app: skipped: requires setup, which failed\n\
         command after-app: skipped: requires app, which was skipped\n\
         command free: changed (ran)\n"
    );
}

#[tokio::test]
async fn a_notified_command_runs_only_when_its_notifier_changed() {
    let fx = Fx::new();
    let count = fx.path("/count");
    let d = doc(json!([
        {"name": "reload", "type": "command", "run": format!("echo r >> {}", count.display()), "unless": "true"},
        {"name": "conf", "type": "file", "path": "/conf", "content": "a\n", "notify": ["reload"]},
    ]));
    let checked = check(&fx, &d).await;
    assert_eq!(
        report(&checked, "reload").changes,
        ["would run (notified by conf)"]
    );
    assert!(!count.exists());
    let run = apply(&fx, &d).await;
    assert_eq!(
        run.summary,
        "file conf: changed (created)\ncommand reload: changed (ran (notified by conf))\n"
    );
    assert_eq!(report(&run, "reload").changes, ["ran (notified by conf)"]);
    let again = apply(&fx, &d).await;
    assert_eq!(status(&again, "reload"), ResourceStatus::Unchanged);
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "r\n");
}

#[tokio::test]
async fn an_invalid_document_fails_the_step_with_the_parser_text() {
    let fx = Fx::new();
    let run = apply(&fx, "{\"schemaVersion\": \"operon-state/1\", \"resources\": [{\"name\": \"d\", \"type\": \"directory\", \"path\": \"/srv\", \"mode\": \"0999\"}]}").await;
    assert!(!run.success);
    assert!(run.reports.is_empty());
    assert!(
        run.summary.contains("\"0999\" is not an octal mode"),
        "{}",
        run.summary
    );
    let run = apply(&fx, "not: [valid").await;
    assert!(!run.success);
}

#[tokio::test]
async fn a_cancel_kills_the_running_command_and_stops_the_run() {
    let fx = Fx::new();
    let d = doc(json!([
        {"name": "slow", "type": "command", "run": "sleep 30"},
        {"name": "next", "type": "command", "run": "true"},
    ]));
    let s = step(d, StateMode::Apply);
    let (stop_tx, stop) = stop_channel();
    let spawned = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = spawned.clone();
    let mut on_spawn = move |r| seen.lock().unwrap().push(r);
    let started = std::time::Instant::now();
    let ctx = fx.ctx();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stop_tx.send_replace(Some(StopReason::Cancelled));
        stop_tx
    });
    let run = run_state_step(
        &s,
        &ctx,
        Limits {
            stop,
            deadline: None,
            on_spawn: &mut on_spawn,
            progress: None,
        },
    )
    .await;
    let _tx = canceller.await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(
        run.interrupted,
        Some(Interrupt::Stopped(StopReason::Cancelled))
    );
    assert_eq!(status(&run, "slow"), ResourceStatus::Failed);
    assert_eq!(status(&run, "next"), ResourceStatus::Skipped);
    assert_eq!(
        report(&run, "next").message.as_deref(),
        Some("not reached: the run was stopped")
    );
    assert_eq!(
        run.summary,
        "command slow: failed: stopped: cancelled\nstopped: cancelled\n"
    );
    let records = spawned.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    assert!(crate::procfs::live_group_members(records[0].pgid).is_empty());
}

#[tokio::test]
async fn the_deadline_stops_the_run() {
    let fx = Fx::new();
    let d = doc(json!([{"name": "slow", "type": "command", "run": "sleep 30"}]));
    let s = step(d, StateMode::Apply);
    let (_tx, stop) = stop_channel();
    let mut on_spawn = |_| {};
    let run = run_state_step(
        &s,
        &fx.ctx(),
        Limits {
            stop,
            deadline: Some(tokio::time::Instant::now() + std::time::Duration::from_millis(300)),
            on_spawn: &mut on_spawn,
            progress: None,
        },
    )
    .await;
    assert_eq!(run.interrupted, Some(Interrupt::TimedOut));
    assert!(!run.success);
}

mod drift_watch {
    use super::*;
    use crate::state::drift::{self, StateWatch, WatchedFile, drift_detail};
    use operon_proto::AgentMessage;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[test]
    fn details_table() {
        let file = WatchedFile {
            resource: "r".into(),
            path: "/p".into(),
            digest: "abc".into(),
            mode: 0o600,
        };
        assert_eq!(drift_detail(&file, None).as_deref(), Some("removed"));
        assert_eq!(
            drift_detail(&file, Some(&("xyz".into(), 0o600))).as_deref(),
            Some("content changed")
        );
        assert_eq!(
            drift_detail(&file, Some(&("abc".into(), 0o644))).as_deref(),
            Some("mode 0644, expected 0600")
        );
        assert_eq!(drift_detail(&file, Some(&("abc".into(), 0o600))), None);
    }

    async fn next_drift(
        rx: &mut mpsc::UnboundedReceiver<AgentMessage>,
    ) -> operon_proto::StateDrift {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(AgentMessage::StateDrifted(drift))) => drift,
            other => panic!("expected a drift, got {other:?}"),
        }
    }

    async fn quiet(rx: &mut mpsc::UnboundedReceiver<AgentMessage>) {
        if let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(400), rx.recv()).await
        {
            panic!("unexpected {message:?}");
        }
    }

    async fn wait_for(what: impl Fn() -> bool) {
        for _ in 0..100 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting");
    }

    fn conf_doc(content: &str) -> String {
        doc(json!([
            {"name": "a", "type": "file", "path": "/a.conf", "content": content, "mode": "0600"},
            {"name": "b", "type": "file", "path": "/b.conf", "content": "b\n", "mode": "0600"},
            {"name": "c", "type": "line", "path": "/c.conf", "line": "c=1"},
            {"name": "gone", "type": "file", "path": "/gone", "state": "absent"},
            {"name": "broken", "type": "file", "path": "/missing/dir/x", "content": "x"},
        ]))
    }

    #[tokio::test]
    async fn applied_files_are_recorded_watched_and_forgotten() {
        let fx = Fx::new();
        let state = tempfile::tempdir().unwrap();
        let watch = StateWatch::open(state.path())
            .unwrap()
            .with_host_root(Some(fx.root.path().to_path_buf()));
        let record_path = watch.record_path("assoc-1");
        let (handle, mut events) = drift::spawn(watch, Duration::from_millis(100));
        let ctx = StateContext {
            host_root: Some(fx.root.path().to_path_buf()),
            watch: Some(handle.clone()),
        };
        let mut s = step(conf_doc("secret-ish\n"), StateMode::Apply);
        s.association = Some("assoc-1".into());
        let run = run_with(&s, &ctx).await;
        assert_eq!(status(&run, "broken"), ResourceStatus::Failed);
        wait_for(|| record_path.exists()).await;
        assert_eq!(mode_of(&record_path), 0o600);
        let text = std::fs::read_to_string(&record_path).unwrap();
        assert!(!text.contains("secret-ish"), "{text}");
        let record: drift::StateRecord = serde_json::from_str(&text).unwrap();
        let names: Vec<&str> = record.files.iter().map(|f| f.resource.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(record.files[0].path, "/a.conf");
        quiet(&mut events).await;

        // A check run records nothing; a new apply's own writes are no drift.
        let mut s2 = step(conf_doc("new\n"), StateMode::Apply);
        s2.association = Some("assoc-1".into());
        run_with(&s2, &ctx).await;
        quiet(&mut events).await;

        fx.write("/a.conf", "edited\n");
        let drift = next_drift(&mut events).await;
        assert_eq!(
            (
                drift.association.as_str(),
                drift.resource.as_str(),
                drift.path.as_str(),
                drift.detail.as_str()
            ),
            ("assoc-1", "a", "/a.conf", "content changed")
        );
        quiet(&mut events).await; // once per change
        std::fs::set_permissions(fx.path("/b.conf"), PermissionsExt::from_mode(0o644)).unwrap();
        assert_eq!(
            next_drift(&mut events).await.detail,
            "mode 0644, expected 0600"
        );
        std::fs::remove_file(fx.path("/c.conf")).unwrap();
        assert_eq!(next_drift(&mut events).await.detail, "removed");
        quiet(&mut events).await;

        // A new connection: everything still different is sent again.
        handle.resync();
        let mut again: Vec<String> = Vec::new();
        for _ in 0..3 {
            again.push(next_drift(&mut events).await.resource);
        }
        again.sort();
        assert_eq!(again, ["a", "b", "c"]);

        handle.forget("assoc-1".into());
        wait_for(|| !record_path.exists()).await;
        fx.write("/a.conf", "edited again\n");
        handle.resync();
        quiet(&mut events).await;
    }

    #[tokio::test]
    async fn records_survive_a_restart() {
        let fx = Fx::new();
        let state = tempfile::tempdir().unwrap();
        {
            let watch = StateWatch::open(state.path())
                .unwrap()
                .with_host_root(Some(fx.root.path().to_path_buf()));
            let (handle, _events) = drift::spawn(watch, Duration::from_secs(3600));
            let ctx = StateContext {
                host_root: Some(fx.root.path().to_path_buf()),
                watch: Some(handle),
            };
            let mut s = step(conf_doc("x\n"), StateMode::Apply);
            s.association = Some("kept".into());
            run_with(&s, &ctx).await;
            let path = state.path().join("state").join("kept.json");
            wait_for(|| path.exists()).await;
        }
        fx.write("/b.conf", "changed\n");
        let mut watch = StateWatch::open(state.path())
            .unwrap()
            .with_host_root(Some(fx.root.path().to_path_buf()));
        assert!(watch.record_of("kept").is_some());
        let drifts = watch.check(1, false);
        assert_eq!(drifts.len(), 1, "{drifts:?}");
        assert!(watch.check(2, false).is_empty());
        assert_eq!(watch.check(3, true).len(), 1);
    }
}
