//! The audit trail: one writer that chains records and commits them in groups.
//!
//! Every API request that changes something, every refused request and every
//! enrollment reaches [`AuditLog::record`], which returns once the record is
//! committed. Concurrent records share one transaction (group commit), so the
//! trail costs one fsync per batch, not per request.
//!
//! After each commit the writer replaces `audit-head` in the data directory
//! with the last sequence number and hash. The chain alone cannot show that
//! records were cut from its end; comparing it with the head can.

use operon_store::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use operon_store::{AuditEntry, AuditProblem, Store};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// File in the data directory holding the audit head: `SEQ HASH`.
pub const AUDIT_HEAD_FILE: &str = "audit-head";

const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<(), String>>;

/// Handle to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<(AuditEntry, Reply)>,
    head_path: PathBuf,
    /// The highest sequence number written to the head file: records are
    /// also committed by the event writer, and the file must never go back.
    head_written: Arc<Mutex<i64>>,
}

impl AuditLog {
    /// Start the writer for `store`, keeping the head in `data_dir`.
    pub fn spawn(store: Store, data_dir: &Path) -> AuditLog {
        let (queue, receiver) = mpsc::channel(4096);
        let log = AuditLog {
            queue,
            head_path: data_dir.join(AUDIT_HEAD_FILE),
            head_written: Arc::new(Mutex::new(0)),
        };
        tokio::spawn(write_batches(store, receiver, log.clone()));
        log
    }

    /// Record a new head (after a commit that appended records).
    pub fn advance_head(&self, seq: i64, hash: &str) {
        let Ok(mut written) = self.head_written.lock() else {
            return;
        };
        if seq <= *written {
            return;
        }
        match write_head(&self.head_path, seq, hash) {
            Ok(()) => *written = seq,
            Err(e) => tracing::error!(error = %e, "cannot write the audit head file"),
        }
    }

    /// Append one record and wait until it is committed. A failure is logged
    /// and returned: callers refusing a request still refuse it.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        if self.queue.send((entry, reply)).await.is_err() {
            return Err("the audit writer has stopped".into());
        }
        done.await
            .unwrap_or_else(|_| Err("the audit writer has stopped".into()))
    }

    /// Check the whole chain and the head file.
    pub async fn verify(&self, store: &Store) -> Result<Verification, operon_store::StoreError> {
        let chain = store.audit_chain().await?;
        let mut problems: Vec<String> = operon_store::verify_chain(&chain)
            .iter()
            .map(AuditProblem::to_string)
            .collect();
        let last = chain.last().map(|r| (r.seq, r.hash.clone()));
        match (read_head(&self.head_path), &last) {
            (Some((seq, _)), Some((last_seq, _))) if seq > *last_seq => problems.push(format!(
                "records {}..{seq} were removed from the end: the log ends at record {last_seq}",
                last_seq + 1
            )),
            (Some((seq, hash)), Some((last_seq, last_hash)))
                if seq == *last_seq && hash != *last_hash =>
            {
                problems.push(format!(
                    "record {seq}, the last one, does not match the head kept outside the database"
                ))
            }
            (Some((seq, _)), None) => {
                problems.push(format!("records 1..{seq} were removed: the log is empty"))
            }
            _ => {}
        }
        Ok(Verification {
            records: chain.len(),
            head_seq: last.as_ref().map(|(seq, _)| *seq),
            ok: problems.is_empty(),
            problems,
        })
    }
}

/// The result of `operon audit verify`.
#[derive(Debug, Serialize)]
pub struct Verification {
    pub records: usize,
    pub head_seq: Option<i64>,
    pub ok: bool,
    pub problems: Vec<String>,
}

async fn write_batches(
    store: Store,
    mut receiver: mpsc::Receiver<(AuditEntry, Reply)>,
    log: AuditLog,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (entries, replies): (Vec<AuditEntry>, Vec<Reply>) = batch.drain(..).unzip();
        let result = match store.append_audit(&entries, crate::now_millis()).await {
            Ok(Some((seq, hash))) => {
                log.advance_head(seq, &hash);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "cannot append to the audit log");
                Err(format!("cannot append to the audit log: {e}"))
            }
        };
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

fn write_head(path: &Path, seq: i64, hash: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{seq} {hash}\n"))?;
    std::fs::rename(&tmp, path)
}

fn read_head(path: &Path) -> Option<(i64, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (seq, hash) = text.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_string()))
}
