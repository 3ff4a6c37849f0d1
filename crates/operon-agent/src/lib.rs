//! The Operon node agent.
//!
//! The agent runs on every managed node. It connects *outbound* to the
//! server (no inbound port), reports what the node is, and runs the commands
//! it is sent, with the delivery guarantees of [`operon_proto`].
//!
//! # Life of an agent
//!
//! 1. **Enrollment** (first start only): [`enroll`] exchanges a one-time token
//!    for a node credential at `POST /v1/agent/enroll`. The credential is
//!    stored in `<state-dir>/credential.json`, created with mode 0600 inside a
//!    0700 directory. A refusal (used-up, expired, unknown token) is fatal; a
//!    network failure is retried with backoff.
//! 2. **Connection loop** ([`run`]): a WebSocket to `/v1/agent/connect` with
//!    `Authorization: Bearer <credential>`. First frame `Hello` (protocol
//!    version and [`collect_inventory`]); the server answers `Welcome`, after
//!    which the agent resends every unacknowledged result, then heartbeats
//!    every interval. Silence from the server for
//!    [`operon_proto::MISSED_HEARTBEATS_BEFORE_DEAD`] intervals drops the link.
//!    Any failure reconnects with exponential backoff and full jitter
//!    ([`backoff`]: 0.5 s doubling to 30 s), reset after a healthy link. A
//!    401/403 on the upgrade (revoked or unknown credential) is fatal.
//! 3. **Commands**: every `Run` is checked against the on-disk [`journal`]
//!    before anything happens ([`journal::decide_run`]):
//!    unknown ids are journaled as started (fsync) and then run; ids running
//!    here are ignored; finished ids get their stored result again;
//!    ids started by an earlier agent process are *never* re-run: what is left
//!    of their process group is killed and they are reported `Failed`
//!    ("interrupted"). Results are journaled (fsync) before `Finished` is sent
//!    and resent after every reconnect until `ResultAck`; acknowledged results
//!    stay as tombstones for 7 days so a late duplicate is never re-run.
//!
//! The [`runner`] runs each step with `/bin/sh -c` in its own session, so a
//! timeout or cancel kills the whole process tree (SIGTERM, then SIGKILL);
//! output is captured up to the command's cap and streamed live, coalesced by
//! line or every 100 ms, through a bounded queue so that a slow link slows the
//! command down rather than filling memory.
//!
//! **TLS** (`https://` servers, see [`tls`]): the agent trusts the server by
//! a pinned certificate fingerprint (`--server-fingerprint`, stored in
//! `credential.json` at enrollment and checked on every connection), or by
//! the system roots plus an optional private CA (`--tls-ca`). A certificate
//! other than the pinned one is fatal, with an error naming both fingerprints.
//!
//! **Credential rotation**: the server may send a new credential over the
//! link; it replaces `credential.json` atomically before it is confirmed and
//! is used for every later connection (see the `link` module).
//!
//! **File sync** (see [`file_sync`]): the server may ask the agent to keep a
//! file equal to a content it sends (`SyncFile`); the agent writes it
//! atomically only when it differs, runs its `on_change` hook once per write,
//! journals digests (never the content) in `file-sync/`, and reports a kept
//! file changed behind its back (`SyncDrifted`), checking every 2 seconds.
//!
//! **Desired state** (see [`state`]): a step carrying a `StateStep` is
//! applied (or checked) natively, resource by resource, and reported per
//! resource; the files an association's apply left are watched
//! (`state/`, digests only) and changes reported (`StateDrifted`).
//! **Inventory** (see [`inventory_sets`]): packages, services, users,
//! groups, interfaces, listening ports, the OS and custom JSON files are
//! collected after each `Welcome` and every `inventory_interval`, and sent as
//! deltas against what the server acknowledged (kept in `inventory/`).
//! **Metrics** (see [`metrics`]): unless `metrics_interval` is zero (then
//! `metrics` is not announced), the node is sampled every interval and each
//! sample sent as a batch, kept until the server's `MetricsAck` and resent
//! after every `Welcome`; other parts of the agent add points through the
//! [`metrics::MetricSink`].
//! **Sessions** (see [`sessions`]): the server may open a terminal (a real
//! PTY) or a forwarded TCP connection on the node, with per-channel flow
//! control; they end with the link.
//!
//! Only one agent may use a state directory at a time (`agent.lock`, flock).
//! On shutdown, running commands are stopped and journaled as interrupted;
//! their results are sent on the next start.

pub mod ack_queue;
pub mod backoff;
pub mod credential;
mod enroll;
mod error;
pub mod file_sync;
mod fsutil;
pub mod inventory;
pub mod inventory_sets;
pub mod journal;
mod link;
pub mod logs;
pub mod metrics;
pub mod monitors;
pub mod output;
pub mod procfs;
pub mod runner;
pub mod sessions;
pub mod state;
pub mod supervisor;
mod sys;
pub mod tls;
pub mod transport;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::time::Duration;

use operon_proto::{AgentMessage, CommandResult};
use tokio::sync::mpsc;

pub use credential::Credential;
pub use enroll::enroll;
pub use error::AgentError;
pub use inventory::collect_inventory;
pub use sys::UserAccount;

use backoff::Backoff;
use journal::Journal;
use link::{ConnectError, LinkContext};
use supervisor::Supervisor;

/// A link that stayed up this long after `Welcome` resets the backoff.
const HEALTHY_LINK: Duration = Duration::from_secs(10);

/// Capacity of the outbound queue for live output (frames, not bytes).
const OUTBOX_CAPACITY: usize = 256;

/// How long running commands get to stop when the agent shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How the agent is started. `Debug` hides the enrollment token.
#[derive(Clone)]
pub struct AgentConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:7780`.
    pub server_url: String,
    /// Holds `credential.json`, the journal and the lock file.
    pub state_dir: PathBuf,
    /// Needed only until the node has a credential.
    pub enroll_token: Option<String>,
    /// Desired node name (enrollment only).
    pub name: Option<String>,
    /// Tags asked for at enrollment.
    pub tags: BTreeMap<String, String>,
    /// Overrides the heartbeat interval the server suggests.
    pub heartbeat_secs: Option<u64>,
    /// Pin the server's certificate (`sha256:<hex>`). Stored at enrollment;
    /// given later, it replaces the stored pin.
    pub server_fingerprint: Option<String>,
    /// A PEM file of CA certificates trusted besides the system roots.
    pub tls_ca: Option<PathBuf>,
    /// Allow plain `http://` to a server that is not on a loopback address
    /// (see [`transport`]). Never allows plain HTTP with a pinned certificate.
    pub insecure: bool,
    /// Where the host's file system is, for an agent that runs in a
    /// container with the host mounted (`/host`): files kept in sync
    /// ([`file_sync`]) and the files of desired-state steps ([`state`]) are
    /// written below it. `None`: `/`.
    pub host_root: Option<PathBuf>,
    /// How often inventory is collected (besides right after each
    /// `Welcome`); [`inventory_sets::DEFAULT_INTERVAL`] by default.
    pub inventory_interval: Duration,
    /// Custom inventory: every `*.json` file here
    /// ([`inventory_sets::DEFAULT_CUSTOM_DIR`] by default).
    pub custom_inventory_dir: PathBuf,
    /// How often the node's metrics are sampled; zero turns metrics off
    /// ([`metrics::DEFAULT_INTERVAL`] by default).
    pub metrics_interval: Duration,
    /// Custom metrics: files dropped here by scripts on the node
    /// (`operon metrics put`; [`metrics::DEFAULT_CUSTOM_DIR`] by default).
    pub custom_metrics_dir: PathBuf,
    /// Session terminals may create the server's default session account
    /// when it is missing (`useradd`); off by default (see [`sessions`]).
    pub session_create_user: bool,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server_url", &self.server_url)
            .field("state_dir", &self.state_dir)
            .field(
                "enroll_token",
                &self.enroll_token.as_ref().map(|_| "<redacted>"),
            )
            .field("name", &self.name)
            .field("tags", &self.tags)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .field("server_fingerprint", &self.server_fingerprint)
            .field("tls_ca", &self.tls_ca)
            .field("insecure", &self.insecure)
            .field("inventory_interval", &self.inventory_interval)
            .field("custom_inventory_dir", &self.custom_inventory_dir)
            .field("metrics_interval", &self.metrics_interval)
            .field("custom_metrics_dir", &self.custom_metrics_dir)
            .field("session_create_user", &self.session_create_user)
            .finish()
    }
}

/// Run the agent: enroll if needed, then connect and reconnect until
/// `shutdown` resolves (`Ok`) or the server refuses this node (`Err`).
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let mut shutdown = pin!(shutdown);
    check_server_url(&config.server_url)?;
    let pin = parse_pin(config.server_fingerprint.as_deref())?;
    // Before the enrollment token or a credential is sent anywhere.
    transport::check(
        &config.server_url,
        config.server_fingerprint.as_deref(),
        config.insecure,
    )?;
    credential::ensure_state_dir(&config.state_dir)?;
    let _lock = lock_state_dir(&config.state_dir)?;
    let Some(mut credential) = obtain_credential(&config, pin, &mut shutdown).await? else {
        return Ok(());
    };
    let tls = connection_tls(&config, &mut credential)?;
    if credential.server_url.trim_end_matches('/') != config.server_url.trim_end_matches('/') {
        tracing::warn!(enrolled_with = %credential.server_url, using = %config.server_url, "server URL differs from the one the node enrolled with");
    }
    let journal = Journal::open(&config.state_dir)?;
    supervisor::settle_journal_at_start(&journal).await?;
    let file_sync =
        file_sync::FileSync::open(&config.state_dir)?.with_host_root(config.host_root.clone());
    let (file_sync, sync_events) = file_sync::spawn(file_sync, file_sync::DRIFT_CHECK_INTERVAL);
    let state_watch =
        state::StateWatch::open(&config.state_dir)?.with_host_root(config.host_root.clone());
    let (state_watch, state_events) =
        state::drift::spawn(state_watch, state::drift::DRIFT_CHECK_INTERVAL);
    let state_context = state::StateContext {
        host_root: config.host_root.clone(),
        watch: Some(state_watch.clone()),
    };
    let (inventory, inventory_events) = inventory_sets::spawn(
        &config.state_dir,
        inventory_sets::Sources {
            custom_dir: config.custom_inventory_dir.clone(),
        },
        config.inventory_interval,
    );
    let (metrics, metric_sink, metric_events) = start_metrics(&config);
    let (logs, log_sink, log_events) = start_logs(&config);
    let (outbox_tx, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut agent = Agent {
        supervisor: Supervisor::new(journal, outbox_tx, done_tx).with_state(state_context),
        outbox: outbox_rx,
        done: done_rx,
        file_sync,
        sync_events,
        state_watch,
        state_events,
        inventory,
        inventory_events,
        metrics,
        metric_events,
        monitors: with_log_sink(
            monitors::Monitors::new(monitor_points(metric_sink), monitor_tick(&config)),
            log_sink,
        ),
        logs,
        log_events,
        heartbeat_seq: 0,
    };
    let result = agent
        .connection_loop(&config, &mut credential, &tls, &mut shutdown)
        .await;
    agent.stop_running().await;
    result
}

/// Start the metrics task unless metrics are off (interval zero): then
/// there is no handle, no frame ever comes out, and the sink discards.
fn start_metrics(
    config: &AgentConfig,
) -> (
    Option<metrics::MetricsHandle>,
    metrics::MetricSink,
    mpsc::UnboundedReceiver<AgentMessage>,
) {
    if config.metrics_interval.is_zero() {
        let (_, never) = mpsc::unbounded_channel();
        return (None, metrics::MetricSink::disconnected(), never);
    }
    let sources = metrics::Sources {
        proc_dir: PathBuf::from("/proc"),
        custom_dir: config.custom_metrics_dir.clone(),
    };
    let (handle, sink, events) = metrics::spawn(sources, config.metrics_interval);
    (Some(handle), sink, events)
}

/// Start the logs task unless metrics are off (then no log is shipped and
/// `logs` is not announced: the monitor set carrying the shipped logs comes
/// only to agents with metrics).
fn start_logs(
    config: &AgentConfig,
) -> (
    Option<logs::LogsHandle>,
    Option<logs::LogSink>,
    mpsc::UnboundedReceiver<AgentMessage>,
) {
    if config.metrics_interval.is_zero() {
        let (_, never) = mpsc::unbounded_channel();
        return (None, None, never);
    }
    let (handle, sink, events) = logs::spawn(logs::FLUSH_EVERY);
    (Some(handle), Some(sink), events)
}

fn with_log_sink(monitors: monitors::Monitors, sink: Option<logs::LogSink>) -> monitors::Monitors {
    match sink {
        Some(sink) => monitors.with_log_sink(sink),
        None => monitors,
    }
}

/// Where health check and log watcher results go: into the next metric
/// batch, through the sampler's sink (which discards them with metrics off;
/// the agent then announces neither metrics nor monitors).
fn monitor_points(sink: metrics::MetricSink) -> mpsc::Sender<operon_proto::MetricPoint> {
    let (points, mut taken) = mpsc::channel::<operon_proto::MetricPoint>(1024);
    tokio::spawn(async move {
        while let Some(point) = taken.recv().await {
            sink.put(point);
        }
    });
    points
}

/// Log watchers count per metric sample: the metrics interval, or its
/// default when metrics are off.
fn monitor_tick(config: &AgentConfig) -> Duration {
    if config.metrics_interval.is_zero() {
        metrics::DEFAULT_INTERVAL
    } else {
        config.metrics_interval
    }
}

/// The stored credential, or a new one from enrollment. `None` if shutdown
/// came first.
async fn obtain_credential(
    config: &AgentConfig,
    pin: Option<tls::Fingerprint>,
    shutdown: &mut Pin<&mut (impl Future<Output = ()> + Send)>,
) -> Result<Option<Credential>, AgentError> {
    if let Some(credential) = credential::load_credential(&config.state_dir)? {
        // A pin stored at enrollment means the server speaks TLS.
        transport::check(
            &config.server_url,
            credential.server_fingerprint.as_deref(),
            config.insecure,
        )?;
        tracing::info!(node_id = %credential.node_id, name = %credential.name, "using the stored node credential");
        return Ok(Some(credential));
    }
    let token = config
        .enroll_token
        .as_deref()
        .ok_or_else(|| AgentError::NotEnrolled {
            path: credential::credential_path(&config.state_dir),
        })?;
    let trust = tls::TlsTrust {
        fingerprint: pin,
        ca_file: config.tls_ca.clone(),
    };
    let mut backoff = Backoff::default();
    loop {
        let attempt = enroll(
            &config.server_url,
            token,
            config.name.clone(),
            config.tags.clone(),
            &trust,
        );
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = shutdown.as_mut() => return Ok(None),
        };
        match outcome {
            Ok(credential) => {
                credential::store_credential(&config.state_dir, &credential)?;
                tracing::info!(node_id = %credential.node_id, name = %credential.name, "enrolled");
                return Ok(Some(credential));
            }
            Err(err) if err.is_transient() => {
                let wait = backoff.next_delay();
                tracing::warn!(%err, retry_in = ?wait, "enrollment failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.as_mut() => return Ok(None),
                }
            }
            Err(err) => return Err(err),
        }
    }
}

/// Refuse, before anything else, a URL the agent could never reach (rather
/// than retrying it forever).
fn check_server_url(url: &str) -> Result<(), AgentError> {
    link::connect_url(url).map_err(|message| AgentError::BadServerUrl {
        url: url.to_owned(),
        message,
    })?;
    Ok(())
}

fn parse_pin(text: Option<&str>) -> Result<Option<tls::Fingerprint>, AgentError> {
    text.map(tls::Fingerprint::parse)
        .transpose()
        .map_err(AgentError::BadFingerprint)
}

/// The TLS configuration for the connection loop: the pin given now wins
/// (and replaces the stored one: the operator re-pinned on purpose), else the
/// pin stored at enrollment, else the system roots and `--tls-ca`.
fn connection_tls(
    config: &AgentConfig,
    credential: &mut Credential,
) -> Result<std::sync::Arc<rustls::ClientConfig>, AgentError> {
    let given = parse_pin(config.server_fingerprint.as_deref())?;
    let stored = credential
        .server_fingerprint
        .as_deref()
        .map(tls::Fingerprint::parse)
        .transpose()
        .map_err(|message| AgentError::BadCredentialPin {
            path: credential::credential_path(&config.state_dir),
            message,
        })?;
    let pin = match (given, stored) {
        (Some(given), Some(stored)) if given != stored => {
            tracing::warn!(%stored, %given, "replacing the pinned server certificate fingerprint with --server-fingerprint");
            credential.server_fingerprint = Some(given.to_string());
            credential::store_credential(&config.state_dir, credential)?;
            Some(given)
        }
        (Some(given), None) => {
            credential.server_fingerprint = Some(given.to_string());
            credential::store_credential(&config.state_dir, credential)?;
            Some(given)
        }
        (given, stored) => given.or(stored),
    };
    let trust = tls::TlsTrust {
        fingerprint: pin,
        ca_file: config.tls_ca.clone(),
    };
    tls::client_config(&trust).map_err(|err| AgentError::Tls {
        server: config.server_url.clone(),
        message: err.to_string(),
    })
}

/// Hold an exclusive lock on `<state_dir>/agent.lock` while the agent runs.
fn lock_state_dir(state_dir: &Path) -> Result<File, AgentError> {
    let path = state_dir.join("agent.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| AgentError::Io {
            action: "cannot open lock file",
            path: path.clone(),
            source,
        })?;
    match sys::try_lock_exclusive(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(AgentError::StateDirLocked {
            path: state_dir.to_owned(),
        }),
        Err(source) => Err(AgentError::Io {
            action: "cannot lock",
            path,
            source,
        }),
    }
}

struct Agent {
    supervisor: Supervisor,
    outbox: mpsc::Receiver<AgentMessage>,
    done: mpsc::UnboundedReceiver<CommandResult>,
    /// Where `SyncFile` and `SyncForget` go.
    file_sync: file_sync::FileSyncHandle,
    /// `SyncApplied` and `SyncDrifted` frames: left queued while there is no
    /// link, sent after the next `Welcome`.
    sync_events: mpsc::UnboundedReceiver<AgentMessage>,
    /// Where `StateForget` goes.
    state_watch: state::StateWatchHandle,
    /// `StateDrifted` frames, sent after the next `Welcome`.
    state_events: mpsc::UnboundedReceiver<AgentMessage>,
    /// Where `Welcome`, `InventoryAck` and `InventoryResync` go.
    inventory: inventory_sets::InventoryHandle,
    /// `InventoryReport` frames, sent once the link is welcomed.
    inventory_events: mpsc::UnboundedReceiver<AgentMessage>,
    /// Where `Welcome`, `MetricsAck` and the end of a link go; `None` with
    /// metrics off.
    metrics: Option<metrics::MetricsHandle>,
    /// `Metrics` frames, sent while the link is welcomed.
    metric_events: mpsc::UnboundedReceiver<AgentMessage>,
    /// Where `Monitors` goes; its results go to the metric sink.
    monitors: monitors::Monitors,
    /// Where `Welcome`, `LogsAck` and the end of a link go; `None` with
    /// metrics off.
    logs: Option<logs::LogsHandle>,
    /// `Logs` frames, sent while the link is welcomed.
    log_events: mpsc::UnboundedReceiver<AgentMessage>,
    heartbeat_seq: u64,
}

impl Agent {
    async fn connection_loop(
        &mut self,
        config: &AgentConfig,
        credential: &mut Credential,
        tls: &std::sync::Arc<rustls::ClientConfig>,
        shutdown: &mut Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> Result<(), AgentError> {
        let mut backoff = Backoff::default();
        loop {
            let connect = link::connect(&config.server_url, &credential.credential, tls);
            let connected = tokio::select! {
                connected = self.offline(connect) => connected,
                () = shutdown.as_mut() => return Ok(()),
            };
            match connected {
                Ok(ws) => {
                    let ctx = LinkContext {
                        supervisor: &mut self.supervisor,
                        outbox: &mut self.outbox,
                        done: &mut self.done,
                        file_sync: &self.file_sync,
                        sync_events: &mut self.sync_events,
                        state_watch: &self.state_watch,
                        state_events: &mut self.state_events,
                        inventory: &self.inventory,
                        inventory_events: &mut self.inventory_events,
                        metrics: self.metrics.as_ref(),
                        metric_events: &mut self.metric_events,
                        monitors: &mut self.monitors,
                        logs: self.logs.as_ref(),
                        log_events: &mut self.log_events,
                        heartbeat_override: config.heartbeat_secs,
                        heartbeat_seq: &mut self.heartbeat_seq,
                        credential: &mut *credential,
                        state_dir: &config.state_dir,
                        sessions: sessions::SessionSettings {
                            create_user_allowed: config.session_create_user,
                            own_server: sessions::own_server_deny(&config.server_url).await,
                        },
                    };
                    let end = link::run_link(ws, ctx, shutdown).await;
                    if let Some(metrics) = &self.metrics {
                        metrics.link_lost();
                    }
                    if let Some(logs) = &self.logs {
                        logs.link_lost();
                    }
                    if end.shutdown {
                        return Ok(());
                    }
                    tracing::warn!(reason = %end.reason, "link to the server lost; reconnecting");
                    if end.welcomed && end.lasted >= HEALTHY_LINK {
                        backoff.reset();
                    }
                }
                Err(ConnectError::Rejected { message }) => {
                    return Err(AgentError::CredentialRejected {
                        server: config.server_url.clone(),
                        message,
                        path: credential::credential_path(&config.state_dir),
                    });
                }
                Err(ConnectError::CertificateMismatch(mismatch)) => {
                    return Err(AgentError::ServerCertificateMismatch {
                        server: config.server_url.clone(),
                        mismatch,
                    });
                }
                Err(ConnectError::Failed(reason)) => {
                    tracing::warn!(%reason, "cannot connect to the server");
                }
            }
            let wait = backoff.next_delay();
            tracing::debug!(?wait, "waiting before reconnecting");
            tokio::select! {
                () = self.offline(tokio::time::sleep(wait)) => {}
                () = shutdown.as_mut() => return Ok(()),
            }
        }
    }

    /// Drive `future` while there is no link: live output is dropped (it is
    /// best effort; the result carries the captured output) so commands never
    /// stall, inventory reports are dropped (recomputed after the next
    /// `Welcome`), and finished invocations are settled (their results,
    /// already journaled, are sent after the next `Welcome`).
    async fn offline<F: Future>(&mut self, future: F) -> F::Output {
        let mut future = pin!(future);
        loop {
            tokio::select! {
                output = &mut future => return output,
                Some(_) = self.outbox.recv() => {}
                // Stale once the link is gone: after the next Welcome every
                // kind is sent again against what the server acknowledged.
                Some(_) = self.inventory_events.recv() => {}
                // Still queued in the metrics task: resent after the next Welcome.
                Some(_) = self.metric_events.recv() => {}
                // Still queued in the logs task: resent after the next Welcome.
                Some(_) = self.log_events.recv() => {}
                Some(result) = self.done.recv() => self.supervisor.on_done(result, &None),
            }
        }
    }

    /// Stop running commands (they are journaled as interrupted) and wait a
    /// bounded time for them to settle.
    async fn stop_running(&mut self) {
        if self.supervisor.running_count() == 0 {
            return;
        }
        tracing::info!(
            running = self.supervisor.running_count(),
            "stopping running commands"
        );
        self.supervisor.stop_all();
        let settle = async {
            while self.supervisor.running_count() > 0 {
                tokio::select! {
                    Some(_) = self.outbox.recv() => {}
                    Some(result) = self.done.recv() => self.supervisor.on_done(result, &None),
                    else => break,
                }
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, settle).await.is_err() {
            tracing::warn!("some commands did not stop in time");
        }
    }
}
