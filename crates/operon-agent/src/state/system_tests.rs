//! Resources acting on the real system (services, users, groups,
//! packages): unique names, cleaned up by Drop guards, skipped loudly when
//! not root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

use operon_proto::{ResourceStatus, StateMode};
use serde_json::json;

use super::tests::{is_root, unique};
use super::*;

fn sh(script: &str) -> bool {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

async fn run(document: serde_json::Value, mode: StateMode) -> StateRun {
    let text = json!({"schemaVersion": "operon-state/1", "resources": document}).to_string();
    let step = operon_proto::StateStep {
        association: None,
        mode,
        document: operon_proto::Secret(text),
        sources: Default::default(),
        sensitive: Vec::new(),
    };
    let (_tx, stop) = crate::runner::stop_channel();
    let mut on_spawn = |_| {};
    run_state_step(
        &step,
        &StateContext::default(),
        Limits {
            stop,
            deadline: None,
            on_spawn: &mut on_spawn,
            progress: None,
        },
    )
    .await
}

fn changes(run: &StateRun, name: &str) -> Vec<String> {
    run.reports
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.changes.clone())
        .unwrap_or_else(|| panic!("no report for {name}: {run:?}"))
}

fn statuses(run: &StateRun) -> Vec<ResourceStatus> {
    run.reports.iter().map(|r| r.status).collect()
}

struct ServiceGuard {
    name: String,
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let n = &self.name;
        sh(&format!(
            "/etc/init.d/{n} stop >/dev/null 2>&1; update-rc.d -f {n} remove >/dev/null 2>&1; rm -f /etc/init.d/{n} /tmp/{n}.pid /tmp/{n}.log /tmp/{n}.conf"
        ));
    }
}

#[tokio::test]
async fn a_sysv_service_is_started_enabled_restarted_and_stopped() {
    if !is_root() {
        eprintln!("SKIPPED: a_sysv_service_is_started_enabled_restarted_and_stopped needs root");
        return;
    }
    if std::path::Path::new("/run/systemd/system").exists() {
        eprintln!("SKIPPED: this node runs systemd; the SysV test needs SysV init");
        return;
    }
    let name = unique("operon-svc-");
    let guard = ServiceGuard { name: name.clone() };
    let script = format!(
        r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: operon test service
### END INIT INFO
PIDFILE=/tmp/{name}.pid
case "$1" in
  start) echo start >> /tmp/{name}.log; sleep 1000 >/dev/null 2>&1 & echo $! > $PIDFILE ;;
  stop) [ -f $PIDFILE ] && kill $(cat $PIDFILE); rm -f $PIDFILE ;;
  restart) "$0" stop; "$0" start ;;
  status) [ -f $PIDFILE ] && kill -0 $(cat $PIDFILE) 2>/dev/null ;;
  *) exit 3 ;;
esac
"#
    );
    let path = PathBuf::from(format!("/etc/init.d/{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, PermissionsExt::from_mode(0o755)).unwrap();
    let running = json!([{"name": "svc", "type": "service", "service": name, "state": "running", "enabled": true}]);

    let checked = run(running.clone(), StateMode::Check).await;
    assert_eq!(changes(&checked, "svc"), ["enabled", "started"]);
    assert!(!sh(&format!("/etc/init.d/{name} status")));

    let first = run(running.clone(), StateMode::Apply).await;
    assert_eq!(statuses(&first), [ResourceStatus::Changed], "{first:?}");
    assert_eq!(changes(&first, "svc"), ["enabled", "started"]);
    assert!(sh(&format!("/etc/init.d/{name} status")));
    assert!(sh(&format!("ls /etc/rc2.d/S??{name}")));
    let again = run(running.clone(), StateMode::Apply).await;
    assert_eq!(statuses(&again), [ResourceStatus::Unchanged], "{again:?}");

    // A changed file notifying it restarts it.
    let notified = json!([
        {"name": "svc", "type": "service", "service": name, "state": "running", "enabled": true},
        {"name": "conf", "type": "file", "path": format!("/tmp/{name}.conf"), "content": "x\n", "notify": ["svc"]},
    ]);
    let checked = run(notified.clone(), StateMode::Check).await;
    assert_eq!(
        changes(&checked, "svc"),
        ["would restart (notified by conf)"]
    );
    let restarted = run(notified.clone(), StateMode::Apply).await;
    assert_eq!(changes(&restarted, "svc"), ["restarted (notified by conf)"]);
    let log = std::fs::read_to_string(format!("/tmp/{name}.log")).unwrap();
    assert_eq!(log, "start\nstart\n");
    let quiet = run(notified, StateMode::Apply).await;
    assert_eq!(
        statuses(&quiet),
        [ResourceStatus::Unchanged, ResourceStatus::Unchanged]
    );

    let stopped = json!([{"name": "svc", "type": "service", "service": name, "state": "stopped", "enabled": false}]);
    let run_stop = run(stopped.clone(), StateMode::Apply).await;
    assert_eq!(changes(&run_stop, "svc"), ["disabled", "stopped"]);
    assert!(!sh(&format!("/etc/init.d/{name} status")));
    assert!(!sh(&format!("ls /etc/rc2.d/S??{name} 2>/dev/null")));
    assert_eq!(
        statuses(&run(stopped, StateMode::Apply).await),
        [ResourceStatus::Unchanged]
    );

    let missing = run(
        json!([{"name": "nope", "type": "service", "service": unique("operon-none-"), "state": "running"}]),
        StateMode::Apply,
    )
    .await;
    assert_eq!(statuses(&missing), [ResourceStatus::Failed]);
    drop(guard);
}

struct AccountGuard {
    user: String,
    group: String,
}

impl Drop for AccountGuard {
    fn drop(&mut self) {
        sh(&format!(
            "userdel -r {} >/dev/null 2>&1; groupdel {} >/dev/null 2>&1",
            self.user, self.group
        ));
    }
}

/// A gid no group has, from 45000 up.
fn free_gid() -> u32 {
    let groups = user::groups().unwrap();
    let users = user::parse_passwd(&std::fs::read_to_string("/etc/passwd").unwrap());
    (45000 + (std::process::id() % 1000) * 7..)
        .find(|id| !groups.iter().any(|g| g.gid == *id) && !users.iter().any(|u| u.uid == *id))
        .unwrap()
}

#[tokio::test]
async fn users_and_groups_are_created_changed_and_removed() {
    if !is_root() {
        eprintln!("SKIPPED: users_and_groups_are_created_changed_and_removed needs root");
        return;
    }
    let user_name = unique("opu");
    let group_name = unique("opg");
    let _guard = AccountGuard {
        user: user_name.clone(),
        group: group_name.clone(),
    };
    let gid = free_gid();
    let home = format!("/home/{user_name}");
    let wanted = |shell: &str, key: &str| {
        json!([
            {"name": "g", "type": "group", "group": group_name, "gid": gid},
            {"name": "u", "type": "user", "user": user_name, "groups": [group_name], "shell": shell,
             "home": home, "authorized_keys": [key], "requires": ["g"]},
        ])
    };
    let checked = run(wanted("/bin/sh", "ssh-ed25519 AAAA one"), StateMode::Check).await;
    assert_eq!(changes(&checked, "g"), ["created"]);
    assert_eq!(changes(&checked, "u"), ["created", "authorized_keys"]);
    assert!(user::find_user(&user_name).unwrap().is_none());

    let first = run(wanted("/bin/sh", "ssh-ed25519 AAAA one"), StateMode::Apply).await;
    assert!(first.success, "{first:?}");
    assert_eq!(changes(&first, "u"), ["created", "authorized_keys"]);
    let entry = user::find_user(&user_name).unwrap().unwrap();
    assert_eq!(entry.shell, "/bin/sh");
    assert_eq!(entry.home, home);
    let group = user::groups()
        .unwrap()
        .into_iter()
        .find(|g| g.name == group_name)
        .unwrap();
    assert_eq!(group.gid, gid);
    assert_eq!(group.members, std::slice::from_ref(&user_name));
    let keys = format!("{home}/.ssh/authorized_keys");
    assert_eq!(
        std::fs::read_to_string(&keys).unwrap(),
        "ssh-ed25519 AAAA one\n"
    );
    let meta = std::fs::metadata(&keys).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, entry.uid));
    let dir = std::fs::metadata(format!("{home}/.ssh")).unwrap();
    assert_eq!((dir.mode() & 0o7777, dir.uid()), (0o700, entry.uid));

    let again = run(wanted("/bin/sh", "ssh-ed25519 AAAA one"), StateMode::Apply).await;
    assert_eq!(
        statuses(&again),
        [ResourceStatus::Unchanged, ResourceStatus::Unchanged],
        "{again:?}"
    );

    let changed = run(
        wanted("/bin/bash", "ssh-ed25519 AAAA two"),
        StateMode::Apply,
    )
    .await;
    assert_eq!(
        changes(&changed, "u"),
        ["shell /bin/sh -> /bin/bash", "authorized_keys"]
    );
    assert_eq!(
        std::fs::read_to_string(&keys).unwrap(),
        "ssh-ed25519 AAAA two\n"
    );

    // Locked: a usable hash gets `!` in front.
    assert!(sh(&format!("usermod -p '$6$abc$def' {user_name}")));
    let lock = json!([{"name": "u", "type": "user", "user": user_name, "locked": true}]);
    assert_eq!(
        changes(&run(lock.clone(), StateMode::Apply).await, "u"),
        ["locked"]
    );
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    assert!(
        user::shadow_hash(&shadow, &user_name)
            .unwrap()
            .starts_with('!')
    );
    assert_eq!(
        statuses(&run(lock, StateMode::Apply).await),
        [ResourceStatus::Unchanged]
    );

    let gone = json!([
        {"name": "u", "type": "user", "user": user_name, "state": "absent"},
        {"name": "g", "type": "group", "group": group_name, "state": "absent", "requires": ["u"]},
    ]);
    let removed = run(gone.clone(), StateMode::Apply).await;
    assert_eq!(
        statuses(&removed),
        [ResourceStatus::Changed, ResourceStatus::Changed],
        "{removed:?}"
    );
    assert!(user::find_user(&user_name).unwrap().is_none());
    assert_eq!(
        statuses(&run(gone, StateMode::Apply).await),
        [ResourceStatus::Unchanged, ResourceStatus::Unchanged]
    );
}

struct PackageGuard {
    name: String,
    repo: tempfile::TempDir,
    list: PathBuf,
}

impl Drop for PackageGuard {
    fn drop(&mut self) {
        sh(&format!("dpkg --purge {} >/dev/null 2>&1", self.name));
        let _ = std::fs::remove_file(&self.list);
        // apt's copy of the local Packages index: named after the directory.
        let marker = self
            .repo
            .path()
            .display()
            .to_string()
            .trim_start_matches('/')
            .replace('/', "_");
        if let Ok(dir) = std::fs::read_dir("/var/lib/apt/lists") {
            for entry in dir.flatten() {
                if entry.file_name().to_string_lossy().contains(&marker) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

fn build_deb(repo: &std::path::Path, name: &str, version: &str) {
    let root = repo.join(format!("build-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Operon Tests <t@example.invalid>\nDescription: operon test package\n"
        ),
    )
    .unwrap();
    let deb = repo.join(format!("{name}_{version}_all.deb"));
    assert!(sh(&format!(
        "dpkg-deb --build {} {} >/dev/null",
        root.display(),
        deb.display()
    )));
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn packages_are_installed_pinned_upgraded_and_removed() {
    if !is_root() {
        eprintln!("SKIPPED: packages_are_installed_pinned_upgraded_and_removed needs root");
        return;
    }
    if package::manager() != Some(package::Manager::Apt) {
        eprintln!("SKIPPED: the package test needs apt");
        return;
    }
    let name = unique("operon-test-pkg-");
    // Not a hidden directory: apt skips those.
    let repo = tempfile::Builder::new()
        .prefix("operon-apt-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(repo.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let list = PathBuf::from(format!("/etc/apt/sources.list.d/{name}.list"));
    let guard = PackageGuard {
        name: name.clone(),
        repo,
        list: list.clone(),
    };
    let dir = guard.repo.path().to_path_buf();
    build_deb(&dir, &name, "1.0");
    build_deb(&dir, &name, "1.1");
    assert!(sh(&format!(
        "cd {} && dpkg-scanpackages -m . /dev/null > Packages 2>/dev/null",
        dir.display()
    )));
    std::fs::write(
        &list,
        format!("deb [trusted=yes] file:{} ./\n", dir.display()),
    )
    .unwrap();
    // Refresh only this source: fast, and no network.
    assert!(sh(&format!(
        "apt-get update -qq -o Dir::Etc::sourcelist={} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >/dev/null 2>&1",
        list.display()
    )));

    let pinned = json!([{"name": "pkg", "type": "package", "package": name, "version": "1.0"}]);
    let checked = run(pinned.clone(), StateMode::Check).await;
    assert_eq!(changes(&checked, "pkg"), ["installed 1.0"]);
    let first = run(pinned.clone(), StateMode::Apply).await;
    assert_eq!(statuses(&first), [ResourceStatus::Changed], "{first:?}");
    assert_eq!(changes(&first, "pkg"), ["installed 1.0"]);
    assert_eq!(
        statuses(&run(pinned, StateMode::Apply).await),
        [ResourceStatus::Unchanged]
    );
    let any = json!([{"name": "pkg", "type": "package", "package": name}]);
    assert_eq!(
        statuses(&run(any, StateMode::Apply).await),
        [ResourceStatus::Unchanged]
    );

    let latest = json!([{"name": "pkg", "type": "package", "package": name, "version": "latest"}]);
    let upgraded = run(latest.clone(), StateMode::Apply).await;
    assert_eq!(changes(&upgraded, "pkg"), ["1.0 -> 1.1"], "{upgraded:?}");
    assert_eq!(
        statuses(&run(latest, StateMode::Apply).await),
        [ResourceStatus::Unchanged]
    );

    let absent = json!([{"name": "pkg", "type": "package", "package": name, "state": "absent"}]);
    assert_eq!(
        changes(&run(absent.clone(), StateMode::Apply).await, "pkg"),
        ["removed 1.1"]
    );
    assert_eq!(
        statuses(&run(absent, StateMode::Apply).await),
        [ResourceStatus::Unchanged]
    );

    let unknown =
        json!([{"name": "pkg", "type": "package", "package": unique("operon-no-such-pkg-")}]);
    let failed = run(unknown, StateMode::Apply).await;
    assert_eq!(statuses(&failed), [ResourceStatus::Failed]);
    assert!(
        failed.reports[0]
            .message
            .as_deref()
            .unwrap()
            .contains("installing")
    );
    drop(guard);
}

#[tokio::test]
async fn commands_run_as_their_user_and_files_get_their_owner() {
    if !is_root() {
        eprintln!("SKIPPED: commands_run_as_their_user_and_files_get_their_owner needs root");
        return;
    }
    let Ok(Some(nobody)) = crate::sys::lookup_user("nobody") else {
        eprintln!("SKIPPED: no user nobody on this node");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owned");
    let run = run(
        json!([
            {"name": "who", "type": "command", "run": "id -un; echo $HOME", "user": "nobody"},
            {"name": "owned", "type": "file", "path": file.display().to_string(), "content": "x\n",
             "owner": "nobody", "mode": "0640"},
            {"name": "ghost", "type": "command", "run": "true", "user": unique("nosuchuser")},
        ]),
        StateMode::Apply,
    )
    .await;
    let who = run.reports.iter().find(|r| r.name == "who").unwrap();
    assert_eq!(
        who.message.as_deref(),
        Some(format!("nobody\n{}", nobody.home).as_str())
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (nobody.uid, 0o640));
    let ghost = run.reports.iter().find(|r| r.name == "ghost").unwrap();
    assert_eq!(ghost.status, ResourceStatus::Failed);
    assert!(ghost.message.as_deref().unwrap().contains("does not exist"));
    let again = super::tests::run_file_only(&file).await;
    assert_eq!(again, ResourceStatus::Unchanged);
}
