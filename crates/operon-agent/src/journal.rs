//! The invocation journal: one small JSON file per invocation id under
//! `<state-dir>/invocations/`, written atomically (temporary file, fsync,
//! rename, fsync of the directory), so that after a crash every file is either
//! its old or its new version.
//!
//! The journal is what makes "never run the same invocation twice" hold across
//! reconnects and agent restarts:
//!
//! - an id is journaled as *started* (fsync) before its first step is spawned;
//! - its result is journaled (fsync) before `Finished` is sent;
//! - an acknowledged result is kept as a tombstone for [`TOMBSTONE_TTL`], so a
//!   late duplicate `Run` is answered with the stored result, never re-run.
//!
//! [`decide_run`] is the pure rule that maps what the journal says (and whether
//! the id is running in this process) to what the agent does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use operon_proto::{CommandResult, InvocationStatus, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::procfs::ProcessRecord;

/// How long acknowledged results are kept to answer late duplicates.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The detail of an invocation found started in the journal but not running in
/// this process.
pub const INTERRUPTED_DETAIL: &str =
    "interrupted: the agent restarted while the command was running; not re-run";

/// What the journal knows about one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub invocation_id: String,
    /// When the agent accepted the invocation (journaled before it ran).
    pub started_at: Option<UnixMillis>,
    /// The process group of the step currently (or last) running.
    pub process: Option<ProcessRecord>,
    /// The final result, once there is one.
    pub result: Option<CommandResult>,
    /// When the server acknowledged the result; the entry is then a tombstone.
    pub acked_at: Option<UnixMillis>,
}

impl JournalEntry {
    pub fn started(invocation_id: &str, started_at: UnixMillis) -> Self {
        JournalEntry {
            invocation_id: invocation_id.to_owned(),
            started_at: Some(started_at),
            process: None,
            result: None,
            acked_at: None,
        }
    }

    pub fn finished(result: CommandResult) -> Self {
        JournalEntry {
            invocation_id: result.invocation_id.clone(),
            started_at: result.started_at,
            process: None,
            result: Some(result),
            acked_at: None,
        }
    }

    /// Whether this entry is a result waiting for the server's `ResultAck`.
    pub fn awaits_ack(&self) -> bool {
        self.result.is_some() && self.acked_at.is_none()
    }
}

/// What to do with a `Run` for an invocation id.
#[derive(Debug, Clone, PartialEq)]
pub enum RunAction {
    /// Never seen: journal it as started, then run it.
    Start,
    /// Running in this process: it reports when done.
    Ignore,
    /// Already finished (acknowledged or not): send the stored result again.
    Resend(CommandResult),
    /// Started by an earlier agent process that is gone: never run again;
    /// stop what may be left of it and report it failed.
    ReportInterrupted { leftover: Option<ProcessRecord> },
}

/// The journal rule for a `Run` (pure: no I/O).
pub fn decide_run(entry: Option<&JournalEntry>, running_here: bool) -> RunAction {
    if running_here {
        return RunAction::Ignore;
    }
    match entry {
        None => RunAction::Start,
        Some(JournalEntry {
            result: Some(result),
            ..
        }) => RunAction::Resend(result.clone()),
        Some(entry) => RunAction::ReportInterrupted {
            leftover: entry.process,
        },
    }
}

/// The result reported for an invocation interrupted by an agent restart.
pub fn interrupted_result(entry: &JournalEntry, now: UnixMillis) -> CommandResult {
    CommandResult {
        invocation_id: entry.invocation_id.clone(),
        status: InvocationStatus::Failed,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        started_at: entry.started_at,
        finished_at: now,
        detail: Some(INTERRUPTED_DETAIL.to_owned()),
        steps: Vec::new(),
        resources: Vec::new(),
    }
}

/// Whether a tombstone acknowledged at `acked_at` may be forgotten at `now`.
pub fn tombstone_expired(acked_at: UnixMillis, now: UnixMillis) -> bool {
    now.saturating_sub(acked_at) > TOMBSTONE_TTL.as_millis() as i64
}

/// The file name for an invocation id. Ids are server input: anything but
/// ASCII letters, digits, `-`, `_` and a non-leading `.` is escaped as `%XX`,
/// so no id can name a path outside the journal directory (nor `.`, `..`, or
/// a hidden temporary file).
pub fn file_name_for(invocation_id: &str) -> String {
    let mut name = String::with_capacity(invocation_id.len() + 5);
    for (index, byte) in invocation_id.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric()
            || byte == b'-'
            || byte == b'_'
            || (byte == b'.' && index > 0);
        if plain {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name.push_str(".json");
    name
}

/// Errors of journal I/O, with the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("journal file {path} is not valid: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The on-disk journal. Cheap to clone; every method is a few small
/// synchronous file operations.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Open (creating with mode 0700 if needed) `<state_dir>/invocations`.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        let dir = state_dir.join("invocations");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        Ok(Journal { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_for(&self, invocation_id: &str) -> PathBuf {
        self.dir.join(file_name_for(invocation_id))
    }

    /// The entry for an id, `None` if the journal never saw it.
    pub fn load(&self, invocation_id: &str) -> Result<Option<JournalEntry>, JournalError> {
        let path = self.path_for(invocation_id);
        match fs::read(&path) {
            Ok(bytes) => Self::parse(&path, &bytes).map(Some),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_err(&path)(err)),
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<JournalEntry, JournalError> {
        serde_json::from_slice(bytes).map_err(|source| JournalError::Corrupt {
            path: path.to_owned(),
            source,
        })
    }

    /// Write an entry atomically and durably.
    pub fn write(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let path = self.path_for(&entry.invocation_id);
        let bytes = serde_json::to_vec_pretty(entry).expect("journal entries always serialise");
        write_atomically(&path, &bytes, 0o600)
    }

    /// Mark a result acknowledged, keeping it as a tombstone. `Ok(false)` if
    /// the journal has no result for this id.
    pub fn acknowledge(&self, invocation_id: &str, now: UnixMillis) -> Result<bool, JournalError> {
        let Some(mut entry) = self.load(invocation_id)? else {
            return Ok(false);
        };
        if entry.result.is_none() {
            return Ok(false);
        }
        if entry.acked_at.is_none() {
            entry.acked_at = Some(now);
            self.write(&entry)?;
        }
        Ok(true)
    }

    /// Every readable entry; unreadable files are logged and skipped.
    pub fn entries(&self) -> Result<Vec<JournalEntry>, JournalError> {
        let mut entries = Vec::new();
        for dirent in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = dirent.map_err(io_err(&self.dir))?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(io_err(&path))
                .and_then(|bytes| Self::parse(&path, &bytes));
            match parsed {
                Ok(entry) => entries.push(entry),
                Err(err) => tracing::warn!(%err, "skipping unreadable journal entry"),
            }
        }
        Ok(entries)
    }

    /// Results still waiting for the server's acknowledgement.
    pub fn unacknowledged(&self) -> Result<Vec<CommandResult>, JournalError> {
        let mut results: Vec<CommandResult> = self
            .entries()?
            .into_iter()
            .filter(JournalEntry::awaits_ack)
            .filter_map(|entry| entry.result)
            .collect();
        results.sort_by_key(|result| result.finished_at);
        Ok(results)
    }

    /// Delete tombstones older than [`TOMBSTONE_TTL`] and leftover temporary
    /// files. Returns how many tombstones were removed.
    pub fn prune(&self, now: UnixMillis) -> Result<usize, JournalError> {
        let mut removed = 0;
        for dirent in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = dirent.map_err(io_err(&self.dir))?.path();
            if is_temp_file(&path) {
                let _ = fs::remove_file(&path);
            }
        }
        for entry in self.entries()? {
            if entry
                .acked_at
                .is_some_and(|acked| tombstone_expired(acked, now))
            {
                let path = self.path_for(&entry.invocation_id);
                fs::remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn is_temp_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.') && name.ends_with(".tmp"))
}

/// Write `bytes` to `path` so that a crash leaves either the old or the new
/// content: a temporary file created with `mode` (so secrets are never
/// readable by others, not even briefly), fsync, rename over `path`, fsync of
/// the directory so the rename itself is durable.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), JournalError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp"));
    let _ = fs::remove_file(&temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(io_err(&temp))?;
    file.write_all(bytes).map_err(io_err(&temp))?;
    file.sync_all().map_err(io_err(&temp))?;
    drop(file);
    fs::rename(&temp, path).map_err(io_err(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str) -> CommandResult {
        CommandResult {
            invocation_id: id.into(),
            status: InvocationStatus::Success,
            exit_code: Some(0),
            stdout: "hi\n".into(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            started_at: Some(1),
            finished_at: 2,
            detail: None,
            steps: vec![],
            resources: Vec::new(),
        }
    }

    #[test]
    fn unknown_id_starts() {
        assert_eq!(decide_run(None, false), RunAction::Start);
    }

    #[test]
    fn running_id_is_ignored_whatever_the_journal_says() {
        let started = JournalEntry::started("a", 1);
        assert_eq!(decide_run(Some(&started), true), RunAction::Ignore);
        assert_eq!(decide_run(None, true), RunAction::Ignore);
    }

    #[test]
    fn finished_id_resends_acked_or_not() {
        let mut entry = JournalEntry::finished(result("a"));
        assert_eq!(
            decide_run(Some(&entry), false),
            RunAction::Resend(result("a"))
        );
        entry.acked_at = Some(3);
        assert_eq!(
            decide_run(Some(&entry), false),
            RunAction::Resend(result("a"))
        );
    }

    #[test]
    fn started_but_not_running_is_interrupted_never_rerun() {
        let mut entry = JournalEntry::started("a", 1);
        let record = ProcessRecord {
            pid: 10,
            pgid: 10,
            start_time: 99,
        };
        entry.process = Some(record);
        assert_eq!(
            decide_run(Some(&entry), false),
            RunAction::ReportInterrupted {
                leftover: Some(record)
            }
        );
        let report = interrupted_result(&entry, 5);
        assert_eq!(report.status, InvocationStatus::Failed);
        assert_eq!(report.exit_code, None);
        assert_eq!(report.detail.as_deref(), Some(INTERRUPTED_DETAIL));
    }

    #[test]
    fn tombstones_expire_after_seven_days() {
        let day = 24 * 3600 * 1000;
        assert!(!tombstone_expired(0, 7 * day));
        assert!(tombstone_expired(0, 7 * day + 1));
    }

    #[test]
    fn ids_cannot_escape_the_journal_directory() {
        assert_eq!(file_name_for("inv-1_a"), "inv-1_a.json");
        assert_eq!(file_name_for("c-1.n-2"), "c-1.n-2.json");
        assert_eq!(file_name_for("../x"), "%2E.%2Fx.json");
        assert_eq!(file_name_for(".."), "%2E..json");
        assert_eq!(file_name_for(""), ".json");
        assert!(!file_name_for("a/b").contains('/'));
    }
}
