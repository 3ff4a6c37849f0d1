//! Drift watching of desired state.
//!
//! After an **apply** of an association, every `file` and `line` resource
//! (present) that ended compliant is recorded in
//! `<state_dir>/state/<association>.json` (`0600`, written atomically): the
//! resource's name, its path as the document names it, the SHA-256 of the
//! file's bytes and its mode as the run left them. Never the content. A
//! later apply of the same association replaces its record;
//! `StateForget` deletes it.
//!
//! The watcher task ([`spawn`]) checks the recorded files every
//! [`DRIFT_CHECK_INTERVAL`] (polling, like file sync: it sees edits,
//! rename-over and deletion alike) and sends [`AgentMessage::StateDrifted`]
//! once per change ("content changed", "removed", "mode 0644, expected
//! 0600"): the same finding is not sent again, a new one is. After every
//! `Welcome` ([`StateWatchHandle::resync`]) every file that still differs is
//! reported again. While an association is being applied its files are not
//! checked, so the run's own writes are never reported.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use operon_proto::{AgentMessage, ResourceReport, StateDrift, UnixMillis};
use operon_state::document::{Presence, Resource, ResourceSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::fsutil::digest_of_file;
use crate::journal::{self, JournalError};
use crate::runner::now_millis;

/// How often recorded files are checked.
pub const DRIFT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// One watched file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedFile {
    pub resource: String,
    /// The path as the document names it (on the node).
    pub path: String,
    /// Hex SHA-256 of the bytes the apply left.
    pub digest: String,
    pub mode: u32,
}

/// Runs in progress per association, shared by the engine and the watcher.
type Applying = Arc<Mutex<BTreeMap<String, usize>>>;

fn lock(applying: &Applying) -> std::sync::MutexGuard<'_, BTreeMap<String, usize>> {
    match applying.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One run of `association` is over.
fn finished(applying: &Applying, association: &str) {
    let mut applying = lock(applying);
    if let Some(count) = applying.get_mut(association) {
        *count -= 1;
        if *count == 0 {
            applying.remove(association);
        }
    }
}

/// What is kept of one association.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    pub association: String,
    pub files: Vec<WatchedFile>,
}

/// The file as it is now: digest and mode, `None` when gone.
fn observe(path: &Path) -> io::Result<Option<(String, u32)>> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if !meta.is_file() {
        return Ok(Some((String::new(), meta.mode() & 0o7777)));
    }
    Ok(digest_of_file(path)?.map(|digest| (digest, meta.mode() & 0o7777)))
}

/// What differs between the record and what is found, for people. Pure.
pub fn drift_detail(expected: &WatchedFile, found: Option<&(String, u32)>) -> Option<String> {
    match found {
        None => Some("removed".into()),
        Some((digest, _)) if *digest != expected.digest => Some("content changed".into()),
        Some((_, mode)) if *mode != expected.mode => Some(format!(
            "mode {}, expected {}",
            super::mode_text(*mode),
            super::mode_text(expected.mode)
        )),
        Some(_) => None,
    }
}

/// The files to watch after a run: compliant `file`/`line` resources
/// (present), observed now (after every resource, so two resources editing
/// one file record its final state).
pub fn files_to_watch(
    resources: &[Resource],
    reports: &[ResourceReport],
    host_root: Option<&Path>,
) -> Vec<WatchedFile> {
    let mut files = Vec::new();
    for report in reports.iter().filter(|r| r.status.is_compliant()) {
        let Some(resource) = resources.iter().find(|r| r.name == report.name) else {
            continue;
        };
        let path = match &resource.spec {
            ResourceSpec::File(f) if f.state == Presence::Present => &f.path,
            ResourceSpec::Line(l) if l.state == Presence::Present => &l.path,
            _ => continue,
        };
        let Ok(local) = super::node_path(host_root, path) else {
            continue;
        };
        if let Ok(Some((digest, mode))) = observe(&local) {
            files.push(WatchedFile {
                resource: resource.name.clone(),
                path: path.clone(),
                digest,
                mode,
            });
        }
    }
    files
}

/// The records of every association and what was reported about them.
#[derive(Debug)]
pub struct StateWatch {
    dir: PathBuf,
    host_root: Option<PathBuf>,
    records: BTreeMap<String, StateRecord>,
    /// (association, resource) -> the detail last reported.
    reported: BTreeMap<(String, String), String>,
    /// Associations being applied right now (how many runs): not checked.
    applying: Applying,
}

impl StateWatch {
    /// Open (creating `0700`) `<state_dir>/state` and load its records;
    /// unreadable ones are logged and skipped.
    pub fn open(state_dir: &Path) -> Result<StateWatch, JournalError> {
        let dir = state_dir.join("state");
        let io_err = |source| JournalError::Io {
            path: dir.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err)?;
        let mut records = BTreeMap::new();
        for dirent in fs::read_dir(&dir).map_err(io_err)?.flatten() {
            let path = dirent.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|err| err.to_string())
                .and_then(|b| serde_json::from_slice::<StateRecord>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(record) => {
                    records.insert(record.association.clone(), record);
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "skipping unreadable state record")
                }
            }
        }
        Ok(StateWatch {
            dir,
            host_root: None,
            records,
            reported: BTreeMap::new(),
            applying: Arc::default(),
        })
    }

    /// Paths are read below `root` (see [`crate::AgentConfig::host_root`]).
    pub fn with_host_root(mut self, root: Option<PathBuf>) -> StateWatch {
        self.host_root = root;
        self
    }

    pub fn record_of(&self, association: &str) -> Option<&StateRecord> {
        self.records.get(association)
    }

    pub fn record_path(&self, association: &str) -> PathBuf {
        self.dir.join(journal::file_name_for(association))
    }

    /// Replace the record of `association` and watch its files afresh.
    pub fn store(&mut self, record: StateRecord) {
        let association = record.association.clone();
        self.reported.retain(|(a, _), _| *a != association);
        let path = self.record_path(&association);
        let stored = serde_json::to_vec_pretty(&record)
            .map_err(|err| err.to_string())
            .and_then(|bytes| {
                journal::write_atomically(&path, &bytes, 0o600).map_err(|e| e.to_string())
            });
        if let Err(err) = stored {
            tracing::error!(%association, %err, "cannot store the state record");
        }
        self.records.insert(association, record);
    }

    /// `StateForget`: delete the record, stop watching; files stay.
    pub fn forget(&mut self, association: &str) {
        self.records.remove(association);
        self.reported.retain(|(a, _), _| a != association);
        let path = self.record_path(association);
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!(%association, "state association forgotten"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => tracing::error!(%association, %err, "cannot delete the state record"),
        }
    }

    /// Check every recorded file; `all` reports every file that differs,
    /// otherwise only findings not reported before.
    pub fn check(&mut self, at: UnixMillis, all: bool) -> Vec<AgentMessage> {
        let applying = lock(&self.applying);
        let mut out = Vec::new();
        for record in self.records.values() {
            if applying.contains_key(&record.association) {
                continue;
            }
            for file in &record.files {
                let key = (record.association.clone(), file.resource.clone());
                let Ok(local) = super::node_path(self.host_root.as_deref(), &file.path) else {
                    continue;
                };
                let found = match observe(&local) {
                    Ok(found) => found,
                    Err(err) => {
                        tracing::debug!(path = %file.path, %err, "cannot read a watched file; checking it later");
                        continue;
                    }
                };
                match drift_detail(file, found.as_ref()) {
                    None => {
                        self.reported.remove(&key);
                    }
                    Some(detail) => {
                        if !all && self.reported.get(&key) == Some(&detail) {
                            continue;
                        }
                        tracing::warn!(association = %record.association, resource = %file.resource, path = %file.path, %detail, "managed file drifted");
                        self.reported.insert(key, detail.clone());
                        out.push(AgentMessage::StateDrifted(StateDrift {
                            association: record.association.clone(),
                            resource: file.resource.clone(),
                            path: file.path.clone(),
                            detail,
                            at,
                        }));
                    }
                }
            }
        }
        out
    }

    /// A handle for the engine and the link.
    fn handle(&self, requests: mpsc::UnboundedSender<Request>) -> StateWatchHandle {
        StateWatchHandle {
            requests,
            applying: self.applying.clone(),
        }
    }
}

#[derive(Debug)]
enum Request {
    Record(StateRecord),
    Forget(String),
    Resync,
}

/// Talks to the watcher task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateWatchHandle {
    requests: mpsc::UnboundedSender<Request>,
    applying: Applying,
}

impl StateWatchHandle {
    /// An apply of `association` starts: its files are not checked until
    /// its record is replaced.
    pub fn begin(&self, association: &str) {
        *lock(&self.applying)
            .entry(association.to_string())
            .or_default() += 1;
    }

    /// The apply ended: these are its compliant files.
    pub fn record(&self, association: &str, files: Vec<WatchedFile>) {
        let record = StateRecord {
            association: association.to_string(),
            files,
        };
        if self.requests.send(Request::Record(record)).is_err() {
            // No task any more: at least do not leave the association muted.
            finished(&self.applying, association);
        }
    }

    /// `StateForget`.
    pub fn forget(&self, association: String) {
        let _ = self.requests.send(Request::Forget(association));
    }

    /// After `Welcome`: report every file that still differs.
    pub fn resync(&self) {
        let _ = self.requests.send(Request::Resync);
    }
}

/// Start the watcher task. Its `StateDrifted` frames come out of the
/// returned receiver, to be sent once a link is welcomed. The task ends
/// when every handle is dropped.
pub fn spawn(
    mut watch: StateWatch,
    interval: Duration,
) -> (StateWatchHandle, mpsc::UnboundedReceiver<AgentMessage>) {
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let handle = watch.handle(requests_tx);
    let applying = watch.applying.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let drifts = tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::Record(record)) => {
                        let association = record.association.clone();
                        watch.store(record);
                        finished(&applying, &association);
                        Vec::new()
                    }
                    Some(Request::Forget(association)) => {
                        watch.forget(&association);
                        Vec::new()
                    }
                    Some(Request::Resync) => watch.check(now_millis(), true),
                    None => break,
                },
                _ = ticker.tick() => watch.check(now_millis(), false),
            };
            for drift in drifts {
                let _ = events.send(drift);
            }
        }
    });
    (handle, events_rx)
}
