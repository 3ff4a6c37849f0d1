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
//!
//! The head file only moves along the chain it names. At start the database
//! must still hold the record the file names, with its hash; afterwards every
//! append reports the head it extended ([`AuditAdvance`]), and an append that
//! does not continue the file's head (the end of the log was cut and written
//! again) marks the log *broken*: the error is logged, `verify` fails naming
//! it, and the head file is never written again, so it keeps pointing at what
//! was lost. Only an operator moving the file aside starts a new head.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use operon_store::{AuditAdvance, AuditEntry, AuditProblem, Store};
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
    head: Arc<Mutex<Head>>,
}

/// The head file as this process knows it.
#[derive(Debug, Default)]
struct Head {
    /// The head in the file: read at start, then the highest written.
    /// Records are also committed by the event writer and the workflow
    /// runner, and the file must never go back.
    written: Option<(i64, String)>,
    /// Why the file no longer advances: the database's chain does not
    /// continue it.
    broken: Option<String>,
}

impl Head {
    /// Where an append leaves the file: `Ok(true)` to write it, `Ok(false)`
    /// to leave it (an earlier append reported late), `Err` when the append
    /// cannot continue the head. Appends form one linear chain, so one that
    /// continues the head either ends at or before it (and then, ending at
    /// it, has its hash) or starts at or after it (and then, starting at it,
    /// links to its hash); one that starts before the head and ends after it
    /// was written over a cut log.
    fn accepts(&self, advance: &AuditAdvance) -> Result<bool, String> {
        let Some((seq, hash)) = &self.written else {
            return Ok(true);
        };
        if advance.seq <= *seq {
            if advance.seq == *seq && advance.hash != *hash {
                return Err(format!(
                    "record {seq} does not match the head kept outside the database: the end of the log was removed and written again"
                ));
            }
            return Ok(false);
        }
        if advance.prev_seq < *seq || (advance.prev_seq == *seq && advance.prev_hash != *hash) {
            return Err(format!(
                "records after {} were replaced: the head kept outside the database names record {seq}, which the records written since do not continue",
                advance.prev_seq
            ));
        }
        Ok(true)
    }
}

impl AuditLog {
    /// Start the writer for `store`, keeping the head in `data_dir`. The
    /// writer first checks that the database still holds the head the file
    /// names (see the module documentation).
    pub fn spawn(store: Store, data_dir: &Path) -> AuditLog {
        let (queue, receiver) = mpsc::channel(4096);
        let head_path = data_dir.join(AUDIT_HEAD_FILE);
        let mut head = Head::default();
        match std::fs::read_to_string(&head_path) {
            Ok(text) => match parse_head(&text) {
                Some(found) => head.written = Some(found),
                None => {
                    let reason = format!(
                        "the audit head file {} cannot be read: expected `SEQ HASH`",
                        head_path.display()
                    );
                    tracing::error!("{reason}; the head file is left as it is");
                    head.broken = Some(reason);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let reason = format!(
                    "the audit head file {} cannot be read: {e}",
                    head_path.display()
                );
                tracing::error!("{reason}; the head file is left as it is");
                head.broken = Some(reason);
            }
        }
        let log = AuditLog {
            queue,
            head_path,
            head: Arc::new(Mutex::new(head)),
        };
        tokio::spawn(write_batches(store, receiver, log.clone()));
        log
    }

    /// Check at start that the database still holds the record the head
    /// file names, with the same hash; otherwise mark the log broken.
    async fn check_stored_head(&self, store: &Store) {
        let Some((seq, hash)) = self.lock_head().written.clone() else {
            return;
        };
        let problem = match store.audit_hash_at(seq).await {
            Ok(Some(stored)) if stored == hash => return,
            Ok(Some(_)) => format!(
                "record {seq} does not match the head kept outside the database: the log was cut and written again"
            ),
            Ok(None) => {
                let last = match store.audit_last().await {
                    Ok(last) => last.map_or(0, |(seq, _)| seq),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the end of the audit log");
                        return;
                    }
                };
                format!(
                    "records after {last} are missing: the head kept outside the database names record {seq}"
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot check the audit log against its head file");
                return;
            }
        };
        self.mark_broken(problem);
    }

    fn lock_head(&self) -> std::sync::MutexGuard<'_, Head> {
        self.head.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark_broken(&self, problem: String) {
        let mut head = self.lock_head();
        if head.broken.is_none() {
            tracing::error!(
                problem = %problem,
                file = %self.head_path.display(),
                "the audit log does not continue its head file: audit verify fails from now on and the head file is no longer advanced"
            );
            head.broken = Some(problem);
        }
    }

    /// Record a new head (after a commit that appended records), if the
    /// append continues the head in the file.
    pub fn advance_head(&self, advance: &AuditAdvance) {
        let mut head = self.lock_head();
        if head.broken.is_some() {
            return;
        }
        match head.accepts(advance) {
            Ok(false) => {}
            Ok(true) => match write_head(&self.head_path, advance.seq, &advance.hash) {
                Ok(()) => head.written = Some((advance.seq, advance.hash.clone())),
                Err(e) => tracing::error!(error = %e, "cannot write the audit head file"),
            },
            Err(problem) => {
                drop(head);
                self.mark_broken(problem);
            }
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
        if let Some(problem) = &self.lock_head().broken {
            problems.push(problem.clone());
        }
        let last = chain.last().map(|r| (r.seq, r.hash.clone()));
        match (read_head(&self.head_path), &last) {
            (Some((seq, _)), Some((last_seq, _))) if seq > *last_seq => problems.push(format!(
                "records {}..{seq} were removed from the end: the log ends at record {last_seq}",
                last_seq + 1
            )),
            (Some((seq, hash)), Some(_)) => {
                // The head may trail the log (written after the commit); the
                // record it names must still be there, unchanged.
                if let Some(record) = chain.iter().find(|r| r.seq == seq)
                    && record.hash != hash
                {
                    problems.push(format!(
                        "record {seq} does not match the head kept outside the database"
                    ))
                }
            }
            (Some((seq, _)), None) => {
                problems.push(format!("records 1..{seq} were removed: the log is empty"))
            }
            _ => {}
        }
        problems.dedup();
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
    log.check_stored_head(&store).await;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (entries, replies): (Vec<AuditEntry>, Vec<Reply>) = batch.drain(..).unzip();
        let result = match store.append_audit(&entries, crate::now_millis()).await {
            Ok(Some(advance)) => {
                log.advance_head(&advance);
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
    parse_head(&std::fs::read_to_string(path).ok()?)
}

fn parse_head(text: &str) -> Option<(i64, String)> {
    let (seq, hash) = text.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> AuditEntry {
        AuditEntry {
            actor: format!("user-{n}"),
            action: "nodes:Tag".into(),
            resource: "node/web-1".into(),
            outcome: "allowed".into(),
            detail: serde_json::json!({}),
        }
    }

    async fn record(log: &AuditLog, n: usize) {
        for i in 0..n {
            log.record(entry(i)).await.unwrap();
        }
    }

    /// What someone with access to the database file does: cut the last
    /// records and move the head row back to the new end.
    async fn cut_after(db: &Path, seq: i64) {
        use sqlx::ConnectOptions;
        let mut db = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .connect()
            .await
            .unwrap();
        for sql in [
            format!("DELETE FROM audit_log WHERE seq > {seq}"),
            format!(
                "UPDATE audit_head SET seq = {seq}, hash = (SELECT hash FROM audit_log WHERE seq = {seq})"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut db)
                .await
                .unwrap();
        }
    }

    fn head_file(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(AUDIT_HEAD_FILE)).unwrap()
    }

    #[tokio::test]
    async fn a_cut_tail_written_again_after_a_restart_never_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("operon.db");
        let store = operon_store::SqliteStore::open_dyn(&db).await.unwrap();
        let log = AuditLog::spawn(store.clone(), dir.path());
        record(&log, 10).await;
        assert!(log.verify(&store).await.unwrap().ok);
        let head = head_file(dir.path());
        assert!(head.starts_with("10 "), "{head}");

        cut_after(&db, 6).await;
        // A restart, then ordinary calls that write records 7..11 again.
        let store = operon_store::SqliteStore::open_dyn(&db).await.unwrap();
        let log = AuditLog::spawn(store.clone(), dir.path());
        record(&log, 5).await;
        let report = log.verify(&store).await.unwrap();
        assert!(!report.ok, "{report:?}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with("records after 6 are missing")),
            "{report:?}"
        );
        assert_eq!(head_file(dir.path()), head, "the head file stays put");

        // And after one more restart, the log still does not verify.
        let store = operon_store::SqliteStore::open_dyn(&db).await.unwrap();
        let log = AuditLog::spawn(store.clone(), dir.path());
        record(&log, 1).await;
        let report = log.verify(&store).await.unwrap();
        assert!(!report.ok, "{report:?}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("record 10 does not match the head")),
            "{report:?}"
        );
        assert_eq!(head_file(dir.path()), head);
    }

    #[tokio::test]
    async fn a_cut_tail_written_again_while_running_never_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("operon.db");
        let store = operon_store::SqliteStore::open_dyn(&db).await.unwrap();
        let log = AuditLog::spawn(store.clone(), dir.path());
        record(&log, 10).await;
        let head = head_file(dir.path());
        cut_after(&db, 6).await;
        record(&log, 6).await;
        let report = log.verify(&store).await.unwrap();
        assert!(!report.ok, "{report:?}");
        assert_eq!(head_file(dir.path()), head, "the head file stays put");
    }

    #[tokio::test]
    async fn a_head_file_trailing_the_log_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("operon.db");
        let store = operon_store::SqliteStore::open_dyn(&db).await.unwrap();
        let log = AuditLog::spawn(store.clone(), dir.path());
        record(&log, 3).await;
        let at_three = head_file(dir.path());
        record(&log, 2).await;
        // A crash between a commit and the file's update leaves it behind.
        std::fs::write(dir.path().join(AUDIT_HEAD_FILE), &at_three).unwrap();
        let log = AuditLog::spawn(store.clone(), dir.path());
        record(&log, 1).await;
        let report = log.verify(&store).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert!(head_file(dir.path()).starts_with("6 "));
    }

    fn advance(prev_seq: i64, prev_hash: &str, seq: i64, hash: &str) -> AuditAdvance {
        AuditAdvance {
            prev_seq,
            prev_hash: prev_hash.into(),
            seq,
            hash: hash.into(),
        }
    }

    #[test]
    fn the_head_moves_only_along_its_chain() {
        let head = Head {
            written: Some((10, "h10".into())),
            broken: None,
        };
        // Continues the head, or starts after it (appends reported late).
        assert_eq!(head.accepts(&advance(10, "h10", 12, "h12")), Ok(true));
        assert_eq!(head.accepts(&advance(11, "h11", 12, "h12")), Ok(true));
        // An earlier append reported after a later one.
        assert_eq!(head.accepts(&advance(7, "h7", 9, "h9")), Ok(false));
        assert_eq!(head.accepts(&advance(8, "h8", 10, "h10")), Ok(false));
        // Written over a cut end.
        assert!(head.accepts(&advance(8, "h8", 10, "other")).is_err());
        assert!(head.accepts(&advance(9, "h9", 11, "h11")).is_err());
        assert!(head.accepts(&advance(10, "other", 11, "h11")).is_err());
        // No file yet: anything goes.
        assert_eq!(Head::default().accepts(&advance(0, "g", 1, "h1")), Ok(true));
    }
}
