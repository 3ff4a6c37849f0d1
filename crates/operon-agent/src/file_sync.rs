//! File sync: keep files on this node equal to what the server says
//! ([`operon_proto::SyncFile`]), run their `on_change` hook once per write,
//! and report files changed behind the agent's back.
//!
//! **Applying** a `SyncFile` compares the file in place (SHA-256 of its
//! bytes, permission bits, owner and group when asked) with what was sent.
//! Equal: nothing is written (`changed: false`). Otherwise the new file is
//! prepared as a temporary file in the same directory (created `0600`, so
//! the content is never readable by anyone but the agent's user, then
//! chowned and chmodded, fsynced), renamed over the path, and the directory
//! is fsynced: readers see the old file or the new one, never half. A
//! missing directory is an error (directories are never created), and so is
//! anything at the path that is not a regular file (a directory, a symbolic
//! link, a device).
//!
//! **The journal**: `<state_dir>/file-sync/<sync_id>.json` (`0600`) holds,
//! per sync, the path, the digest last applied (never the content), mode,
//! owner, group, `on_change` and whether `on_change` is owed
//! (`on_change_pending`). The record is written, durably, *before* the
//! rename, so a crash between the rename and the hook still runs the hook
//! once at the next start ([`FileSync::run_pending_on_change`], reported as a
//! `SyncApplied` with `changed: false` after the first `Welcome`).
//!
//! **on_change** runs with `/bin/sh -c` in its own process group, from an
//! empty environment plus [`runner::base_environment`] (as command steps
//! do), killed (the whole group) at its timeout. A timeout of 0 means
//! [`DEFAULT_ON_CHANGE_TIMEOUT`]. The last 4 KiB of its output (stdout, then
//! stderr) go into the report.
//!
//! **Drift**: [`FileSync::check_drift`], called every [`DRIFT_CHECK_INTERVAL`]
//! by the task [`spawn`] starts, hashes every kept file; a file whose digest
//! is not the one last applied (or that is gone) is reported once with
//! `SyncDrifted`, and not again until a `SyncFile` for that sync is applied.
//!
//! The content may hold decrypted secrets: it is never logged, journaled or
//! put into an error message.
//!
//! ```
//! use operon_agent::file_sync::{FileSync, sha256_hex};
//! use operon_proto::{Secret, SyncFile};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let state = tempfile::tempdir().unwrap();
//! let target = tempfile::tempdir().unwrap();
//! let path = target.path().join("env");
//! let mut sync = FileSync::open(state.path()).unwrap();
//! let file = SyncFile {
//!     sync_id: "app-env".into(),
//!     path: path.to_string_lossy().into_owned(),
//!     content: Secret("DB_HOST=db1\n".into()),
//!     digest: sha256_hex(b"DB_HOST=db1\n"),
//!     mode: 0o640,
//!     owner: None,
//!     group: None,
//!     on_change: None,
//!     on_change_timeout_secs: 0,
//! };
//! let first = sync.apply(&file, 1).await;
//! assert!(first.changed && first.error.is_none());
//! assert_eq!(std::fs::read_to_string(&path).unwrap(), "DB_HOST=db1\n");
//! let again = sync.apply(&file, 2).await;
//! assert!(!again.changed);
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use operon_proto::{AgentMessage, SyncFile, SyncReport, UnixMillis};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::fsutil::{self, IoFailure, digest_of_file, read_tail};
use crate::journal::{self, JournalError};
use crate::procfs::{self, KILL_GRACE};
use crate::runner::{self, now_millis};
use crate::sys::{self, ChildSetup};

/// How often kept files are checked for drift.
pub const DRIFT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// `on_change`'s timeout when the server sends 0 (a hook must not hold the
/// file sync forever).
pub const DEFAULT_ON_CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of `on_change`'s output is kept for the report (its end).
pub const ON_CHANGE_OUTPUT_BYTES: usize = 4 * 1024;

/// After `on_change` exits, how long to keep reading output that processes
/// it left in the background may still hold open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Permission bits a file mode may carry (setuid, setgid, sticky, rwx).
const PERMISSION_BITS: u32 = 0o7777;

/// Hex SHA-256 of `bytes`, as [`SyncFile::digest`] is.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What the journal keeps of one sync: digests, never the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub sync_id: String,
    pub path: String,
    /// Hex SHA-256 of the content last applied.
    pub digest: String,
    pub mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub on_change: Option<String>,
    #[serde(default)]
    pub on_change_timeout_secs: u64,
    /// `on_change` is owed: set before the file is renamed into place,
    /// cleared once the hook has run.
    #[serde(default)]
    pub on_change_pending: bool,
}

/// Why a `SyncFile` could not be applied. The messages name the path and the
/// cause, never the content.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("path {path:?} is not an absolute path to a file")]
    BadPath { path: String },
    #[error("the digest sent for {path} ({sent}) is not the SHA-256 of the content sent")]
    DigestMismatch { path: String, sent: String },
    #[error("mode {mode:#o} for {path} has bits other than permission bits (0o7777)")]
    BadMode { path: String, mode: u32 },
    #[error("directory {dir} does not exist")]
    MissingDirectory { dir: String },
    #[error("{dir} is not a directory")]
    NotADirectory { dir: String },
    #[error("{path} exists and is not a regular file ({kind}); it was left alone")]
    NotARegularFile { path: String, kind: &'static str },
    #[error("user '{name}' does not exist on this node")]
    UnknownUser { name: String },
    #[error("group '{name}' does not exist on this node")]
    UnknownGroup { name: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("cannot record the sync in the agent's journal: {0}")]
    Journal(#[from] JournalError),
}

impl From<IoFailure> for ApplyError {
    fn from(failure: IoFailure) -> ApplyError {
        ApplyError::Io {
            action: failure.action,
            path: failure.path,
            source: failure.source,
        }
    }
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// The file as it is now.
struct Current {
    digest: String,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// What `on_change` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    /// `None` if it was killed (at its timeout, or by a signal) or could not start.
    pub exit: Option<i32>,
    /// The last 4 KiB of stdout then stderr, and a note if it was killed.
    pub output: String,
}

/// The files this node keeps, and their journal.
#[derive(Debug)]
pub struct FileSync {
    dir: PathBuf,
    /// Where `/` of the paths the server names is (see
    /// [`AgentConfig::host_root`](crate::AgentConfig::host_root)).
    host_root: Option<PathBuf>,
    records: BTreeMap<String, SyncRecord>,
    /// Syncs whose drift was reported since they were last applied.
    drift_reported: BTreeSet<String>,
}

impl FileSync {
    /// Open (creating with mode 0700 if needed) `<state_dir>/file-sync` and
    /// load its records; unreadable ones are logged and skipped.
    pub fn open(state_dir: &Path) -> Result<FileSync, JournalError> {
        let dir = state_dir.join("file-sync");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| JournalError::Io {
                path: dir.clone(),
                source,
            })?;
        let mut records = BTreeMap::new();
        let listing = fs::read_dir(&dir).map_err(|source| JournalError::Io {
            path: dir.clone(),
            source,
        })?;
        for dirent in listing.flatten() {
            let path = dirent.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|err| err.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<SyncRecord>(&bytes).map_err(|err| err.to_string())
                });
            match parsed {
                Ok(record) => {
                    records.insert(record.sync_id.clone(), record);
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "skipping unreadable file-sync record")
                }
            }
        }
        Ok(FileSync {
            dir,
            host_root: None,
            records,
            drift_reported: BTreeSet::new(),
        })
    }

    /// Resolve the paths the server names below `root` (the host's file
    /// system mounted in a container); `None` keeps them as they are.
    pub fn with_host_root(mut self, root: Option<PathBuf>) -> FileSync {
        self.host_root = root;
        self
    }

    /// The file as this agent writes it: below the host root, if any. A
    /// path with `..` is refused later (it could leave the root).
    fn rooted(&self, file: &SyncFile) -> SyncFile {
        let mut file = file.clone();
        if let Some(root) = &self.host_root
            && file.path.starts_with('/')
        {
            file.path = root
                .join(file.path.trim_start_matches('/'))
                .to_string_lossy()
                .into_owned();
        }
        file
    }

    /// The record of a sync, if this node keeps it.
    pub fn record(&self, sync_id: &str) -> Option<&SyncRecord> {
        self.records.get(sync_id)
    }

    /// Where the record of `sync_id` is kept.
    pub fn record_path(&self, sync_id: &str) -> PathBuf {
        self.dir.join(journal::file_name_for(sync_id))
    }

    fn store(&mut self, record: SyncRecord) -> Result<(), JournalError> {
        let path = self.record_path(&record.sync_id);
        let bytes = serde_json::to_vec_pretty(&record).map_err(|source| JournalError::Corrupt {
            path: path.clone(),
            source,
        })?;
        journal::write_atomically(&path, &bytes, 0o600)?;
        self.records.insert(record.sync_id.clone(), record);
        Ok(())
    }

    fn remove_record(&mut self, sync_id: &str) -> Result<(), JournalError> {
        self.records.remove(sync_id);
        let path = self.record_path(sync_id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Io { path, source }),
        }
    }

    /// `SyncForget`: delete the record and stop watching; the file stays.
    pub fn forget(&mut self, sync_id: &str) {
        self.drift_reported.remove(sync_id);
        match self.remove_record(sync_id) {
            Ok(()) => tracing::info!(%sync_id, "file sync forgotten; the file is left as it is"),
            Err(err) => tracing::error!(%sync_id, %err, "cannot delete the file-sync record"),
        }
    }

    /// Apply a `SyncFile` and say what happened. Never panics; errors leave
    /// the file as it was.
    pub async fn apply(&mut self, file: &SyncFile, at: UnixMillis) -> SyncReport {
        let file = &self.rooted(file);
        let mut report = SyncReport {
            sync_id: file.sync_id.clone(),
            digest: file.digest.clone(),
            changed: false,
            drift: false,
            on_change_exit: None,
            on_change_output: None,
            error: None,
            at,
        };
        match self.write_if_different(file) {
            Ok(Written { changed, drift }) => {
                report.changed = changed;
                report.drift = drift;
                self.drift_reported.remove(&file.sync_id);
                if changed && file.on_change.is_some() {
                    let outcome = self.run_owed_hook(&file.sync_id).await;
                    report.on_change_exit = outcome.exit;
                    report.on_change_output = Some(outcome.output);
                }
                tracing::info!(sync_id = %file.sync_id, path = %file.path, changed, drift, "file sync applied");
            }
            Err(err) => {
                let message = err.to_string();
                tracing::warn!(sync_id = %file.sync_id, path = %file.path, error = %message, "file sync not applied");
                report.digest = read_current(Path::new(&file.path))
                    .ok()
                    .flatten()
                    .map(|current| current.digest)
                    .unwrap_or_default();
                report.error = Some(message);
            }
        }
        report
    }

    /// Compare, and write atomically if anything differs.
    fn write_if_different(&mut self, file: &SyncFile) -> Result<Written, ApplyError> {
        let path = checked_path(file)?;
        let bytes = file.content.expose().as_bytes();
        if !sha256_hex(bytes).eq_ignore_ascii_case(&file.digest) {
            return Err(ApplyError::DigestMismatch {
                path: file.path.clone(),
                sent: file.digest.clone(),
            });
        }
        let digest = file.digest.to_ascii_lowercase();
        let dir = path.parent().unwrap_or(Path::new("/"));
        check_directory(dir)?;
        let uid = resolve_owner(file.owner.as_deref())?;
        let gid = resolve_group(file.group.as_deref())?;
        let current = read_current(path)?;
        let previous = self.records.get(&file.sync_id).cloned();
        let drift = previous.as_ref().is_some_and(|record| {
            record.path == file.path
                && current.as_ref().map(|c| c.digest.as_str()) != Some(record.digest.as_str())
        });
        let unchanged = current.as_ref().is_some_and(|current| {
            current.digest == digest
                && current.mode == file.mode
                && uid.is_none_or(|uid| uid == current.uid)
                && gid.is_none_or(|gid| gid == current.gid)
        });
        let mut record = SyncRecord {
            sync_id: file.sync_id.clone(),
            path: file.path.clone(),
            digest,
            mode: file.mode,
            owner: file.owner.clone(),
            group: file.group.clone(),
            on_change: file.on_change.clone(),
            on_change_timeout_secs: file.on_change_timeout_secs,
            on_change_pending: false,
        };
        if unchanged {
            // A hook still owed from a crash stays owed.
            record.on_change_pending = previous.as_ref().is_some_and(|p| p.on_change_pending);
            if previous.as_ref() != Some(&record) {
                self.store(record)?;
            }
            return Ok(Written {
                changed: false,
                drift,
            });
        }
        let temp = fsutil::prepare_temp_file(path, bytes, file.mode, uid, gid, "operon-sync")?;
        // Journaled before the rename: a crash after it still owes the hook.
        record.on_change_pending = file.on_change.is_some();
        if let Err(err) = self.store(record) {
            let _ = fs::remove_file(&temp);
            return Err(err.into());
        }
        if let Err(err) = fsutil::replace(&temp, path, dir) {
            let _ = fs::remove_file(&temp);
            self.restore(&file.sync_id, previous);
            return Err(err.into());
        }
        Ok(Written {
            changed: true,
            drift,
        })
    }

    /// Put back the record as it was before a write that failed.
    fn restore(&mut self, sync_id: &str, previous: Option<SyncRecord>) {
        let restored = match previous {
            Some(record) => self.store(record),
            None => self.remove_record(sync_id),
        };
        if let Err(err) = restored {
            tracing::error!(%sync_id, %err, "cannot restore the file-sync record");
        }
    }

    /// Run the `on_change` the record of `sync_id` owes, then clear the debt.
    async fn run_owed_hook(&mut self, sync_id: &str) -> HookOutcome {
        let Some(record) = self.records.get(sync_id).cloned() else {
            return HookOutcome {
                exit: None,
                output: String::new(),
            };
        };
        let Some(script) = record.on_change.as_deref() else {
            return HookOutcome {
                exit: None,
                output: String::new(),
            };
        };
        let mut extra = vec![("OPERON_SYNC_FILE", record.path.clone())];
        if let Some(root) = &self.host_root {
            extra.push(("OPERON_HOST_ROOT", root.to_string_lossy().into_owned()));
        }
        let outcome =
            run_on_change(script, hook_timeout(record.on_change_timeout_secs), &extra).await;
        tracing::info!(%sync_id, exit = ?outcome.exit, "on_change ran");
        let cleared = SyncRecord {
            on_change_pending: false,
            ..record
        };
        if let Err(err) = self.store(cleared) {
            tracing::error!(%sync_id, %err, "cannot record that on_change ran; it may run again at the next start");
        }
        outcome
    }

    /// At start: run every `on_change` a crash left owed, once, and report
    /// each as a `SyncApplied` with `changed: false`.
    pub async fn run_pending_on_change(&mut self, at: UnixMillis) -> Vec<SyncReport> {
        let owed: Vec<String> = self
            .records
            .values()
            .filter(|record| record.on_change_pending)
            .map(|record| record.sync_id.clone())
            .collect();
        let mut reports = Vec::new();
        for sync_id in owed {
            tracing::warn!(%sync_id, "running an on_change left owed by an agent restart");
            let outcome = self.run_owed_hook(&sync_id).await;
            let digest = self
                .records
                .get(&sync_id)
                .map(|record| record.digest.clone())
                .unwrap_or_default();
            reports.push(SyncReport {
                sync_id,
                digest,
                changed: false,
                drift: false,
                on_change_exit: outcome.exit,
                on_change_output: Some(outcome.output),
                error: None,
                at,
            });
        }
        reports
    }

    /// Hash every kept file; one `SyncDrifted` per sync whose file is not
    /// what was last applied, until that sync is applied again.
    pub fn check_drift(&mut self, at: UnixMillis) -> Vec<AgentMessage> {
        let mut drifted = Vec::new();
        for record in self.records.values() {
            if self.drift_reported.contains(&record.sync_id) {
                continue;
            }
            let found = match digest_of_file(Path::new(&record.path)) {
                Ok(found) => found,
                Err(err) => {
                    tracing::debug!(sync_id = %record.sync_id, path = %record.path, %err, "cannot read a kept file; checking it again later");
                    continue;
                }
            };
            if found.as_deref() == Some(record.digest.as_str()) {
                continue;
            }
            tracing::warn!(sync_id = %record.sync_id, path = %record.path, "kept file changed behind the agent's back");
            drifted.push(AgentMessage::SyncDrifted {
                sync_id: record.sync_id.clone(),
                path: record.path.clone(),
                expected_digest: record.digest.clone(),
                found_digest: found,
                at,
            });
        }
        for message in &drifted {
            if let AgentMessage::SyncDrifted { sync_id, .. } = message {
                self.drift_reported.insert(sync_id.clone());
            }
        }
        drifted
    }
}

/// What a successful apply did.
struct Written {
    changed: bool,
    drift: bool,
}

/// The path as a `Path`, if it is absolute and names a file.
fn checked_path(file: &SyncFile) -> Result<&Path, ApplyError> {
    let path = Path::new(&file.path);
    let bad = || ApplyError::BadPath {
        path: file.path.clone(),
    };
    let climbs = path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir));
    if !path.is_absolute() || file.path.ends_with('/') || file.path.contains('\0') || climbs {
        return Err(bad());
    }
    match path.file_name() {
        Some(_) if path.parent().is_some() => {}
        _ => return Err(bad()),
    }
    if file.mode & !PERMISSION_BITS != 0 {
        return Err(ApplyError::BadMode {
            path: file.path.clone(),
            mode: file.mode,
        });
    }
    Ok(path)
}

fn check_directory(dir: &Path) -> Result<(), ApplyError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(ApplyError::NotADirectory {
            dir: dir.display().to_string(),
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(ApplyError::MissingDirectory {
            dir: dir.display().to_string(),
        }),
        Err(err) => Err(io_error("cannot inspect directory", dir)(err)),
    }
}

fn resolve_owner(name: Option<&str>) -> Result<Option<u32>, ApplyError> {
    let Some(name) = name else { return Ok(None) };
    match sys::lookup_user(name) {
        Ok(Some(account)) => Ok(Some(account.uid)),
        Ok(None) => Err(ApplyError::UnknownUser { name: name.into() }),
        Err(source) => Err(ApplyError::Io {
            action: "cannot look up user",
            path: name.into(),
            source,
        }),
    }
}

fn resolve_group(name: Option<&str>) -> Result<Option<u32>, ApplyError> {
    let Some(name) = name else { return Ok(None) };
    match sys::lookup_group(name) {
        Ok(Some(gid)) => Ok(Some(gid)),
        Ok(None) => Err(ApplyError::UnknownGroup { name: name.into() }),
        Err(source) => Err(ApplyError::Io {
            action: "cannot look up group",
            path: name.into(),
            source,
        }),
    }
}

/// The file at `path` now; `None` if there is none. Anything other than a
/// regular file is an error (never followed, never replaced).
fn read_current(path: &Path) -> Result<Option<Current>, ApplyError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_error("cannot inspect", path)(err)),
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_dir() {
            "a directory"
        } else if kind.is_symlink() {
            "a symbolic link"
        } else {
            "a special file"
        };
        return Err(ApplyError::NotARegularFile {
            path: path.display().to_string(),
            kind,
        });
    }
    let digest = digest_of_file(path)
        .map_err(io_error("cannot read", path))?
        .unwrap_or_default();
    Ok(Some(Current {
        digest,
        mode: meta.mode() & PERMISSION_BITS,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

fn hook_timeout(secs: u64) -> Duration {
    if secs == 0 {
        DEFAULT_ON_CHANGE_TIMEOUT
    } else {
        Duration::from_secs(secs)
    }
}

/// Run `script` with `/bin/sh -c` in its own process group, from the same
/// environment command steps get; kill the group at `timeout`.
/// `extra` adds variables to the base environment: the hook is told which
/// file changed (`OPERON_SYNC_FILE`) and, in a container, where the host is
/// (`OPERON_HOST_ROOT`).
pub async fn run_on_change(
    script: &str,
    timeout: Duration,
    extra: &[(&str, String)],
) -> HookOutcome {
    let account = sys::lookup_uid(sys::effective_uid()).ok().flatten();
    let mut env = runner::base_environment(std::env::vars_os(), account.as_ref(), false);
    env.extend(extra.iter().map(|(k, v)| ((*k).into(), v.into())));
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/")
        .env_clear()
        .envs(env);
    ChildSetup {
        switch_to: None,
        controlling_terminal: false,
    }
    .apply(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            return HookOutcome {
                exit: None,
                output: format!("on_change could not start: {err}"),
            };
        }
    };
    let pid = child.id().map(|pid| pid as i32);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let out_pipe = child.stdout.take();
    let err_pipe = child.stderr.take();
    let (exit, timed_out);
    {
        let mut pumps = std::pin::pin!(async {
            tokio::join!(
                read_tail(out_pipe, &mut stdout, ON_CHANGE_OUTPUT_BYTES),
                read_tail(err_pipe, &mut stderr, ON_CHANGE_OUTPUT_BYTES)
            )
        });
        let mut pumps_done = false;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        exit = loop {
            tokio::select! {
                status = child.wait() => break Some(status.ok().and_then(|status| status.code())),
                _ = &mut pumps, if !pumps_done => pumps_done = true,
                () = &mut deadline => break None,
            }
        };
        timed_out = exit.is_none();
        if timed_out && let Some(pid) = pid {
            let kill = procfs::terminate_group(pid, KILL_GRACE);
            let (_, drained) = tokio::join!(kill, tokio::time::timeout(KILL_GRACE, &mut pumps));
            pumps_done = pumps_done || drained.is_ok();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        if !pumps_done {
            let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut pumps).await;
        }
    }
    let mut combined = stdout;
    combined.extend_from_slice(&stderr);
    let mut output = tail_text(&combined, ON_CHANGE_OUTPUT_BYTES);
    if timed_out {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&format!(
            "on_change killed after its timeout of {} s",
            timeout.as_secs()
        ));
    }
    HookOutcome {
        exit: exit.flatten(),
        output,
    }
}

/// The last `limit` bytes of `bytes` as text: a character cut at the start
/// is dropped whole, invalid UTF-8 is replaced.
pub fn tail_text(bytes: &[u8], limit: usize) -> String {
    let mut start = bytes.len().saturating_sub(limit);
    // Skip continuation bytes of a character whose start was cut off.
    while start < bytes.len() && start > 0 && bytes[start] & 0xC0 == 0x80 {
        start += 1;
    }
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Requests for the file-sync task.
enum Request {
    Apply(Box<SyncFile>),
    Forget(String),
}

/// Hands `SyncFile` and `SyncForget` to the file-sync task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FileSyncHandle {
    requests: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Apply(file) => write!(f, "Apply({})", file.sync_id),
            Request::Forget(sync_id) => write!(f, "Forget({sync_id})"),
        }
    }
}

impl FileSyncHandle {
    /// Queue a `SyncFile`; its `SyncApplied` comes out of the events channel.
    pub fn apply(&self, file: SyncFile) {
        let _ = self.requests.send(Request::Apply(Box::new(file)));
    }

    /// Queue a `SyncForget`.
    pub fn forget(&self, sync_id: String) {
        let _ = self.requests.send(Request::Forget(sync_id));
    }
}

/// Start the file-sync task: it first runs `on_change` hooks a crash left
/// owed, then applies requests one at a time and checks for drift every
/// `interval`. Its `SyncApplied` and `SyncDrifted` frames come out of the
/// returned receiver (unbounded, but small: one frame per `SyncFile`, and at
/// most one drift per kept file until it is applied again), to be sent when
/// a link is up. The task ends when every handle is dropped.
pub fn spawn(
    mut sync: FileSync,
    interval: Duration,
) -> (FileSyncHandle, mpsc::UnboundedReceiver<AgentMessage>) {
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for report in sync.run_pending_on_change(now_millis()).await {
            let _ = events.send(AgentMessage::SyncApplied(report));
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::Apply(file)) => {
                        let report = sync.apply(&file, now_millis()).await;
                        let _ = events.send(AgentMessage::SyncApplied(report));
                    }
                    Some(Request::Forget(sync_id)) => sync.forget(&sync_id),
                    None => break,
                },
                _ = ticker.tick() => {
                    for drift in sync.check_drift(now_millis()) {
                        let _ = events.send(drift);
                    }
                }
            }
        }
    });
    (
        FileSyncHandle {
            requests: requests_tx,
        },
        events_rx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use operon_proto::Secret;
    use proptest::prelude::*;
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    struct Fixture {
        state: tempfile::TempDir,
        target: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                state: tempfile::tempdir().unwrap(),
                target: tempfile::tempdir().unwrap(),
            }
        }

        fn open(&self) -> FileSync {
            FileSync::open(self.state.path()).unwrap()
        }

        fn path(&self, name: &str) -> PathBuf {
            self.target.path().join(name)
        }

        fn file(&self, name: &str, content: &str) -> SyncFile {
            SyncFile {
                sync_id: format!("sync-{name}"),
                path: self.path(name).to_string_lossy().into_owned(),
                content: Secret(content.to_owned()),
                digest: sha256_hex(content.as_bytes()),
                mode: 0o640,
                owner: None,
                group: None,
                on_change: None,
                on_change_timeout_secs: 5,
            }
        }

        /// An on_change that appends a line to `name` in the target dir.
        fn counting_hook(&self, name: &str) -> String {
            format!("echo ran >> '{}'", self.path(name).display())
        }
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn lines_in(path: &Path) -> usize {
        fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_new_file_is_written_with_its_mode_and_journaled_without_content() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let file = fx.file("env", "PASSWORD=hunter2\n");
        let report = sync.apply(&file, 42).await;
        assert_eq!(report.error, None);
        assert!(report.changed);
        assert!(!report.drift);
        assert_eq!(report.at, 42);
        assert_eq!(report.digest, file.digest);
        assert_eq!(
            fs::read_to_string(fx.path("env")).unwrap(),
            "PASSWORD=hunter2\n"
        );
        assert_eq!(mode_of(&fx.path("env")), 0o640);
        let record_path = sync.record_path("sync-env");
        assert_eq!(mode_of(&record_path), 0o600);
        let journal = fs::read_to_string(&record_path).unwrap();
        assert!(
            !journal.contains("hunter2"),
            "the journal holds the content"
        );
        assert!(journal.contains(&file.digest));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(fx.target.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("env")]);
    }

    #[tokio::test]
    async fn a_second_identical_apply_changes_nothing() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let file = fx.file("env", "A=1\n");
        assert!(sync.apply(&file, 1).await.changed);
        let inode = fs::metadata(fx.path("env")).unwrap().ino();
        let again = sync.apply(&file, 2).await;
        assert!(!again.changed);
        assert!(!again.drift);
        assert_eq!(again.error, None);
        assert_eq!(fs::metadata(fx.path("env")).unwrap().ino(), inode);
    }

    #[tokio::test]
    async fn a_hand_edit_is_reported_once_and_put_back_with_drift() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let file = fx.file("env", "A=1\n");
        sync.apply(&file, 1).await;
        assert!(sync.check_drift(2).is_empty());
        fs::write(fx.path("env"), "A=2\n").unwrap();
        let drifted = sync.check_drift(3);
        assert_eq!(
            drifted,
            vec![AgentMessage::SyncDrifted {
                sync_id: "sync-env".into(),
                path: file.path.clone(),
                expected_digest: file.digest.clone(),
                found_digest: Some(sha256_hex(b"A=2\n")),
                at: 3,
            }]
        );
        assert!(sync.check_drift(4).is_empty(), "drift is reported once");
        let report = sync.apply(&file, 5).await;
        assert!(report.changed);
        assert!(report.drift);
        assert_eq!(fs::read_to_string(fx.path("env")).unwrap(), "A=1\n");
        assert!(sync.check_drift(6).is_empty());
        // Watching resumed after the apply: a removal is reported.
        fs::remove_file(fx.path("env")).unwrap();
        let gone = sync.check_drift(7);
        assert!(matches!(
            gone.as_slice(),
            [AgentMessage::SyncDrifted {
                found_digest: None,
                ..
            }]
        ));
    }

    #[tokio::test]
    async fn new_content_is_not_drift() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        sync.apply(&fx.file("env", "A=1\n"), 1).await;
        let report = sync.apply(&fx.file("env", "A=2\n"), 2).await;
        assert!(report.changed);
        assert!(!report.drift);
    }

    #[tokio::test]
    async fn on_change_runs_once_per_change() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let count = fx.path("count");
        let mut file = fx.file("env", "A=1\n");
        file.on_change = Some(format!("{}; echo done", fx.counting_hook("count")));
        let first = sync.apply(&file, 1).await;
        assert_eq!(first.on_change_exit, Some(0));
        assert_eq!(first.on_change_output.as_deref(), Some("done\n"));
        assert_eq!(lines_in(&count), 1);
        let same = sync.apply(&file, 2).await;
        assert_eq!(same.on_change_exit, None);
        assert_eq!(same.on_change_output, None);
        assert_eq!(lines_in(&count), 1);
        let mut changed = fx.file("env", "A=2\n");
        changed.on_change = file.on_change.clone();
        sync.apply(&changed, 3).await;
        assert_eq!(lines_in(&count), 2);
        assert!(!sync.record("sync-env").unwrap().on_change_pending);
    }

    #[tokio::test]
    async fn on_change_exit_code_and_output_tail_are_reported() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let mut file = fx.file("env", "A=1\n");
        file.on_change = Some("head -c 6000 /dev/zero | tr '\\0' x; echo oops >&2; exit 3".into());
        let report = sync.apply(&file, 1).await;
        assert_eq!(report.on_change_exit, Some(3));
        let output = report.on_change_output.unwrap();
        assert_eq!(output.len(), ON_CHANGE_OUTPUT_BYTES);
        assert!(output.ends_with("xxx\noops\n") || output.ends_with("xxxoops\n"));
    }

    #[tokio::test]
    async fn a_host_root_holds_the_files_and_paths_cannot_climb_out() {
        let fx = Fixture::new();
        std::fs::create_dir_all(fx.path("etc/app")).unwrap();
        let mut sync = fx
            .open()
            .with_host_root(Some(fx.target.path().to_path_buf()));
        let mut file = fx.file("env", "A=1\n");
        file.path = "/etc/app/env".into();
        file.on_change = Some("printf '%s|%s' \"$OPERON_SYNC_FILE\" \"$OPERON_HOST_ROOT\"".into());
        let report = sync.apply(&file, 1).await;
        assert!(report.changed, "{report:?}");
        assert_eq!(
            std::fs::read_to_string(fx.path("etc/app/env")).unwrap(),
            "A=1\n"
        );
        let root = fx.target.path().to_string_lossy().into_owned();
        assert_eq!(
            report.on_change_output.unwrap(),
            format!("{}|{root}", fx.path("etc/app/env").display())
        );
        file.path = "/etc/../../escape".into();
        let refused = sync.apply(&file, 2).await;
        assert!(refused.error.is_some(), "{refused:?}");
        assert!(!fx.target.path().parent().unwrap().join("escape").exists());
    }

    #[tokio::test]
    async fn on_change_gets_only_the_base_environment() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let mut file = fx.file("env", "A=1\n");
        file.on_change = Some("env | cut -d= -f1 | sort | tr '\\n' ' '".into());
        let report = sync.apply(&file, 1).await;
        let names = report.on_change_output.unwrap();
        for name in names.split_whitespace() {
            assert!(
                [
                    "PATH",
                    "HOME",
                    "USER",
                    "LOGNAME",
                    "SHELL",
                    "LANG",
                    "LC_ALL",
                    "PWD",
                    "SHLVL",
                    "_",
                    "OPERON_SYNC_FILE"
                ]
                .contains(&name),
                "unexpected variable {name} in {names}"
            );
        }
        assert!(names.contains("PATH"));
    }

    #[tokio::test]
    async fn an_owed_on_change_runs_once_at_the_next_start() {
        let fx = Fixture::new();
        let count = fx.path("count");
        let mut file = fx.file("env", "A=1\n");
        file.on_change = Some(fx.counting_hook("count"));
        {
            // Simulate a crash after the rename, before the hook: the record
            // says the hook is owed.
            let mut sync = fx.open();
            sync.apply(&fx.file("env", "A=1\n"), 1).await;
            let mut record = sync.record("sync-env").unwrap().clone();
            record.on_change = file.on_change.clone();
            record.on_change_pending = true;
            sync.store(record).unwrap();
        }
        assert_eq!(lines_in(&count), 0);
        let mut sync = fx.open();
        let reports = sync.run_pending_on_change(9).await;
        assert_eq!(lines_in(&count), 1);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].sync_id, "sync-env");
        assert!(!reports[0].changed);
        assert_eq!(reports[0].on_change_exit, Some(0));
        assert_eq!(reports[0].digest, file.digest);
        assert_eq!(reports[0].at, 9);
        drop(sync);
        let mut restarted = fx.open();
        assert!(restarted.run_pending_on_change(10).await.is_empty());
        assert_eq!(lines_in(&count), 1);
    }

    #[tokio::test]
    async fn watching_resumes_after_a_restart() {
        let fx = Fixture::new();
        let file = fx.file("env", "A=1\n");
        fx.open().apply(&file, 1).await;
        let mut restarted = fx.open();
        assert!(restarted.check_drift(2).is_empty());
        fs::write(fx.path("env"), "changed").unwrap();
        assert_eq!(restarted.check_drift(3).len(), 1);
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error_and_nothing_is_written() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let mut file = fx.file("env", "SECRET=s3cr3t\n");
        let dir = fx.path("missing");
        file.path = dir.join("env").to_string_lossy().into_owned();
        let report = sync.apply(&file, 1).await;
        assert_eq!(
            report.error.as_deref(),
            Some(format!("directory {} does not exist", dir.display()).as_str())
        );
        assert!(!report.changed);
        assert_eq!(report.digest, "");
        assert!(!dir.exists());
        assert!(sync.record("sync-env").is_none());
        assert!(!sync.record_path("sync-env").exists());
    }

    #[tokio::test]
    async fn errors_leave_the_file_alone_and_never_hold_the_content() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        fs::write(fx.path("env"), "old").unwrap();
        /// Spoils one field of a good `SyncFile`.
        type Spoil = fn(&mut SyncFile);
        let cases: Vec<(&str, Spoil, &str)> = vec![
            (
                "relative path",
                |f| f.path = "etc/env".into(),
                "is not an absolute path",
            ),
            (
                "trailing slash",
                |f| f.path.push('/'),
                "is not an absolute path",
            ),
            ("root", |f| f.path = "/".into(), "is not an absolute path"),
            (
                "digest",
                |f| f.digest = sha256_hex(b"other"),
                "is not the SHA-256",
            ),
            ("mode", |f| f.mode = 0o100644, "other than permission bits"),
            (
                "user",
                |f| f.owner = Some("no-such-user-xyz".into()),
                "user 'no-such-user-xyz' does not exist",
            ),
            (
                "group",
                |f| f.group = Some("no-such-group-xyz".into()),
                "group 'no-such-group-xyz' does not exist",
            ),
        ];
        for (name, change, expected) in cases {
            let mut file = fx.file("env", "TOKEN=topsecret\n");
            change(&mut file);
            let report = sync.apply(&file, 1).await;
            let error = report.error.unwrap_or_else(|| panic!("{name}: no error"));
            assert!(error.contains(expected), "{name}: {error}");
            assert!(!error.contains("topsecret"), "{name}: {error}");
            assert!(!report.changed, "{name}");
            assert_eq!(fs::read_to_string(fx.path("env")).unwrap(), "old", "{name}");
        }
    }

    #[tokio::test]
    async fn a_directory_or_symlink_at_the_path_is_not_replaced() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        fs::create_dir(fx.path("env")).unwrap();
        let report = sync.apply(&fx.file("env", "A=1\n"), 1).await;
        assert!(report.error.unwrap().contains("a directory"));
        fs::write(fx.path("real"), "real").unwrap();
        std::os::unix::fs::symlink(fx.path("real"), fx.path("link")).unwrap();
        let report = sync.apply(&fx.file("link", "A=1\n"), 1).await;
        assert!(report.error.unwrap().contains("a symbolic link"));
        assert_eq!(fs::read_to_string(fx.path("real")).unwrap(), "real");
    }

    #[tokio::test]
    async fn a_mode_change_alone_rewrites_the_file() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let count = fx.path("count");
        let mut file = fx.file("env", "A=1\n");
        file.on_change = Some(fx.counting_hook("count"));
        sync.apply(&file, 1).await;
        fs::set_permissions(fx.path("env"), Permissions::from_mode(0o644)).unwrap();
        let report = sync.apply(&file, 2).await;
        assert!(report.changed);
        assert!(!report.drift, "the digest did not change");
        assert_eq!(mode_of(&fx.path("env")), 0o640);
        assert_eq!(lines_in(&count), 2);
        file.mode = 0o600;
        assert!(sync.apply(&file, 3).await.changed);
        assert_eq!(mode_of(&fx.path("env")), 0o600);
    }

    #[tokio::test]
    async fn the_timeout_kills_a_sleeping_on_change_and_its_group() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let pid_file = fx.path("pid");
        let mut file = fx.file("env", "A=1\n");
        file.on_change = Some(format!(
            "echo starting; sleep 60 & echo $! > '{}'; wait",
            pid_file.display()
        ));
        file.on_change_timeout_secs = 1;
        let began = Instant::now();
        let report = sync.apply(&file, 1).await;
        assert!(
            began.elapsed() < Duration::from_secs(8),
            "{:?}",
            began.elapsed()
        );
        assert!(report.changed);
        assert_eq!(report.on_change_exit, None);
        let output = report.on_change_output.unwrap();
        assert!(output.starts_with("starting\n"), "{output}");
        assert!(
            output.contains("killed after its timeout of 1 s"),
            "{output}"
        );
        let sleeper: i32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = procfs::stat_of(sleeper).is_some_and(|s| s.state != 'Z');
        assert!(!alive, "the background sleep survived");
        assert!(!sync.record("sync-env").unwrap().on_change_pending);
    }

    #[tokio::test]
    async fn owner_and_group_by_name() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        let me = sys::lookup_uid(sys::effective_uid()).unwrap().unwrap();
        let group = sys::group_name(me.gid).unwrap().unwrap();
        let mut file = fx.file("env", "A=1\n");
        file.owner = Some(me.name.clone());
        file.group = Some(group);
        let report = sync.apply(&file, 1).await;
        assert_eq!(report.error, None);
        assert!(report.changed);
        let written = fs::metadata(fx.path("env")).unwrap();
        assert_eq!(written.uid(), me.uid);
        assert_eq!(written.gid(), me.gid);
        assert!(!sync.apply(&file, 2).await.changed);
    }

    #[tokio::test]
    async fn forget_stops_watching_and_leaves_the_file() {
        let fx = Fixture::new();
        let mut sync = fx.open();
        sync.apply(&fx.file("env", "A=1\n"), 1).await;
        sync.forget("sync-env");
        assert!(sync.record("sync-env").is_none());
        assert!(!sync.record_path("sync-env").exists());
        assert_eq!(fs::read_to_string(fx.path("env")).unwrap(), "A=1\n");
        fs::write(fx.path("env"), "edited").unwrap();
        assert!(sync.check_drift(2).is_empty());
        assert!(fx.open().record("sync-env").is_none());
        sync.forget("never-known"); // not an error
    }

    #[tokio::test]
    async fn the_task_answers_applies_and_reports_drift() {
        let fx = Fixture::new();
        let (handle, mut events) = spawn(fx.open(), Duration::from_millis(50));
        let file = fx.file("env", "A=1\n");
        handle.apply(file.clone());
        let applied = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&applied, AgentMessage::SyncApplied(r) if r.changed && r.sync_id == "sync-env")
        );
        fs::write(fx.path("env"), "edited").unwrap();
        let drifted = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(drifted, AgentMessage::SyncDrifted { .. }));
        handle.forget("sync-env".into());
        drop(handle);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap()
                .is_none(),
            "the task ends when its handle is dropped"
        );
    }

    #[test]
    fn tail_text_keeps_the_end_and_whole_characters() {
        assert_eq!(tail_text(b"hello", 10), "hello");
        assert_eq!(tail_text(b"hello", 3), "llo");
        assert_eq!(tail_text("aé".as_bytes(), 1), "");
        assert_eq!(tail_text("aéb".as_bytes(), 2), "b");
        assert_eq!(tail_text("aéb".as_bytes(), 3), "éb");
        assert_eq!(tail_text(b"", 4), "");
    }

    proptest! {
        #[test]
        fn tail_text_is_a_suffix_within_the_limit(text in ".{0,64}", limit in 0usize..80) {
            let tail = tail_text(text.as_bytes(), limit);
            prop_assert!(tail.len() <= limit);
            prop_assert!(text.ends_with(&tail));
            prop_assert!(tail.len() + 3 >= limit.min(text.len()));
        }

        #[test]
        fn records_round_trip(path in "/[a-z/]{1,20}", mode in 0u32..0o7777, pending: bool) {
            let record = SyncRecord {
                sync_id: "s".into(),
                path,
                digest: sha256_hex(b"x"),
                mode,
                owner: None,
                group: Some("g".into()),
                on_change: Some("true".into()),
                on_change_timeout_secs: 3,
                on_change_pending: pending,
            };
            let json = serde_json::to_string(&record).unwrap();
            prop_assert_eq!(serde_json::from_str::<SyncRecord>(&json).unwrap(), record);
        }
    }
}
