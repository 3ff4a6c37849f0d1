//! The Operon control plane.
//!
//! `operon server` runs [`start`]: it opens the store in the data directory,
//! creates the admin API token on first start, and serves
//!
//! - the HTTP API under `/v1/` ([`api`]), bearer-token authenticated;
//! - the agent endpoints: enrollment and the WebSocket session ([`agent_ws`]);
//! - the dispatcher ([`dispatcher`]), which drives every command to completion
//!   under its rate limits ([`rate`]).
//!
//! - optionally over TLS ([`tls`]): the operator's certificate or a
//!   self-signed one generated on first start, pinned by agents;
//! - credential rotation for connected nodes ([`rotation`]), with no window
//!   in which the node holds a credential the server refuses.
//!
//! Connected agents are tracked in the [`fleet::hub::Hub`]; live output fans out
//! through [`live::Live`]. Everything that matters is in the store first:
//! the in-memory parts are rebuilt from it (and from reconnecting agents)
//! after a restart.

mod access;
mod alarms;
mod api;
mod associations;
mod audit;
mod auth;
mod batch_writer;
pub mod catalogue;
mod commands;
mod console;
mod coordination;
mod dispatcher;
pub mod documents;
pub mod egress;
mod error;
pub mod events;
mod fleet;
mod happenings;
mod heal;
mod identity;
mod inventory;
pub mod keyring;
mod live;
pub mod logs;
pub mod metrics;
mod monitors;
mod openapi;
mod params;
mod rate;
pub mod refusals;
mod runas;
mod service;
pub mod sessions;
pub mod tls;
mod workflows;
mod writer;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use operon_store::{ApiToken, Store};

pub use commands::DEFAULT_OUTPUT_CAP;

/// File in the data directory holding the admin API token (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// The database file in the data directory.
pub const DATABASE_FILE: &str = "operon.db";
/// File in the data directory that the running server holds an exclusive
/// `flock` on (it also names the holder's pid), so that a second server
/// cannot open the same database.
pub const LOCK_FILE: &str = "server.lock";

/// On shutdown, how long requests in flight get to finish before their
/// connections are closed. Live streams (`text/event-stream`) end at once.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// On shutdown, how long the database gets to finish its last writes and
/// checkpoint its write-ahead log.
const SHUTDOWN_STORE_CLOSE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Seconds between agent heartbeats, told to agents in the welcome.
    pub heartbeat_secs: u64,
    /// Maximum bytes of stdout and of stderr stored per node and command.
    pub output_cap_bytes: usize,
    /// Plain HTTP (default) or HTTPS, see [`tls`].
    pub tls: tls::TlsMode,
    /// Unauthenticated refusals audited one by one per source address.
    pub refusal_rate: refusals::RefusalRate,
    /// Largest execution input and state input/output of a runbook, in bytes
    /// (AWS's 256 KiB by default); larger fails with `States.DataLimitExceeded`.
    pub max_payload_bytes: u64,
    /// Where outbound HTTP (webhook targets, `operon:http`) may go beyond
    /// public addresses: CIDR ranges and host names (see [`egress`]).
    /// Empty by default: loopback, link-local and private are refused.
    pub http_allow: egress::AllowList,
    /// How long metric points (raw) and their 1-minute and 1-hour rollups
    /// are kept (1 day, 15 days, 400 days by default).
    pub metrics_retention: metrics::Retention,
    /// How long shipped log lines are kept (7 days by default).
    pub logs_retention_ms: i64,
    /// Session defaults and limits: the account, idle and maximum
    /// durations, input recording, the forwarding deny list.
    pub sessions: sessions::SessionConfig,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServerConfig {
            listen,
            data_dir,
            heartbeat_secs: operon_proto::DEFAULT_HEARTBEAT_SECS,
            output_cap_bytes: DEFAULT_OUTPUT_CAP,
            tls: tls::TlsMode::Off,
            refusal_rate: refusals::RefusalRate::default(),
            max_payload_bytes: operon_asl::engine::DEFAULT_MAX_PAYLOAD_BYTES,
            http_allow: egress::AllowList::default(),
            metrics_retention: metrics::Retention::default(),
            logs_retention_ms: logs::DEFAULT_RETENTION_MS,
            sessions: sessions::SessionConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the data directory {path} is writable by {who}, so they could replace the database or the keys; refusing to start (fix it with `chmod 700 {path}` after checking its contents)"
    )]
    UnsafeDataDir { path: PathBuf, who: &'static str },
    #[error(
        "another operon server{holder} is using the data directory {path} (it holds {lock}); stop it first, or give this one another --data-dir",
        holder = pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        lock = path.join(LOCK_FILE).display()
    )]
    DataDirLocked { path: PathBuf, pid: Option<u32> },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] operon_store::StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error(transparent)]
    Keyring(#[from] keyring::KeyringError),
    #[error("{0}")]
    Api(String),
}

/// Shared state of a running server.
pub struct AppState {
    pub(crate) store: Store,
    /// Group-commits agent starts and results.
    pub(crate) writer: writer::AgentWriter,
    /// Group-commits agent metric batches.
    pub(crate) metrics_writer: metrics::writer::MetricsWriter,
    /// Group-commits agent log batches.
    pub(crate) logs_writer: logs::writer::LogsWriter,
    pub(crate) hub: fleet::hub::Hub,
    pub(crate) live: live::Live,
    /// The hash-chained audit trail.
    pub(crate) audit: audit::AuditLog,
    /// Wakes the dispatcher.
    /// Leases, wake-ups (the dispatcher's) and session routes.
    pub(crate) coordination: coordination::Coordination,
    pub(crate) config: ServerConfig,
    /// `sha256:<hex>` of the TLS certificate, when serving HTTPS.
    pub(crate) tls_fingerprint: Option<String>,
    /// API calls waiting for an agent to confirm a new credential.
    pub(crate) rotations: fleet::rotation::Waiters,
    /// The durable workflow runner's handle.
    pub(crate) workflows: workflows::Workflows,
    /// The event bus: compiled rules, the event writer, delivery wake-ups.
    pub(crate) events: events::EventBus,
    /// Unauthenticated refusals per source address.
    pub(crate) refusals: refusals::RefusalLimiter,
    /// What happened (node, command, execution changes), for listeners
    /// such as the event bus.
    pub(crate) happenings: happenings::Happenings,
    /// What rule targets and runbooks act as, until an identity change.
    pub(crate) actors: runas::ActorCache,
    /// The key ring sealing SecureStrings and access-key secrets.
    pub(crate) keys: keyring::Keys,
    /// Live sessions and their agent channels.
    pub(crate) sessions: sessions::Relay,
}

impl AppState {
    /// The principal an indirect effect is authorized as, with what its
    /// role or author holds now ([`runas::ActorCache`]).
    pub(crate) async fn actor(
        &self,
        actor: &str,
        run_as: &runas::RunAs,
    ) -> service::ServiceResult<access::Principal> {
        let generation = self.coordination.generation(coordination::Topic::Identity);
        self.actors
            .principal(&self.store, generation, actor, run_as)
            .await
    }
}

/// A started server.
pub struct Server {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The admin token, only on the very first start (it is also in the file).
    pub new_admin_token: Option<String>,
    pub admin_token_path: PathBuf,
    /// The TLS setup when serving HTTPS (fingerprint, certificate path).
    pub tls: Option<tls::ServerTls>,
    state: Arc<AppState>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Set to `true` to stop accepting connections and end live streams.
    stop: tokio::sync::watch::Sender<bool>,
    dispatcher: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The `flock` on [`LOCK_FILE`], held until the server has stopped.
    lock: std::fs::File,
}

impl Server {
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The shared state (for in-process callers such as benchmarks and the
    /// event bus wiring).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Create an enrollment token (used by `operon up` for its local agent).
    pub async fn create_enroll_token(
        &self,
        tags: BTreeMap<String, String>,
        uses: i64,
        ttl: Duration,
    ) -> Result<String, ServerError> {
        let (token, _) = self
            .state
            .fleet()
            .create_enroll_token(tags, uses, ttl.as_secs() as i64)
            .await
            .map_err(|e| ServerError::Api(e.message))?;
        Ok(token)
    }

    /// Serve until `shutdown` completes, then stop: no new connections,
    /// live streams ended, requests in flight given [`SHUTDOWN_DRAIN`] to
    /// finish, the dispatcher and background loops stopped, the database
    /// closed (its write-ahead log checkpointed) and the data directory
    /// unlocked. Bounded: it returns within a few seconds whatever clients do.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let Server {
            mut serve,
            stop,
            dispatcher,
            background,
            state,
            lock,
            ..
        } = self;
        let ended = tokio::select! {
            result = &mut serve => Some(result.unwrap_or_else(|e| Err(std::io::Error::other(e)))),
            _ = shutdown => None,
        };
        tracing::info!("shutting down");
        stop.send_replace(true);
        // Sessions record their end (and the last of their recording)
        // while the store is still open.
        state.sessions.shutdown(SHUTDOWN_STORE_CLOSE).await;
        let result = match ended {
            Some(result) => result,
            None => match tokio::time::timeout(SHUTDOWN_DRAIN, &mut serve).await {
                Ok(result) => result.unwrap_or_else(|e| Err(std::io::Error::other(e))),
                Err(_) => {
                    tracing::warn!(drain = ?SHUTDOWN_DRAIN, "requests still in flight; closing their connections");
                    serve.abort();
                    Ok(())
                }
            },
        };
        dispatcher.abort();
        let _ = dispatcher.await;
        for task in background {
            task.abort();
            let _ = task.await;
        }
        if tokio::time::timeout(SHUTDOWN_STORE_CLOSE, state.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the database did not close in time");
        }
        drop(lock);
        tracing::info!("stopped");
        result
    }
}

/// Open the data directory and the store, then start serving.
pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
    start_with_clock(config, events::schedule::system_clock()).await
}

/// [`start`] with the scheduler reading `clock` (tests move time by hand).
pub async fn start_with_clock(
    config: ServerConfig,
    clock: Arc<dyn events::schedule::Clock>,
) -> Result<Server, ServerError> {
    sessions::deny::check_entries(&config.sessions.forward_deny)
        .map_err(|e| ServerError::Api(format!("--session-forward-deny: {e}")))?;
    prepare_data_dir(&config.data_dir)?;
    let lock = lock_data_dir(&config.data_dir)?;
    let store = operon_store::SqliteStore::open_dyn(&config.data_dir.join(DATABASE_FILE)).await?;
    let admin_token_path = config.data_dir.join(ADMIN_TOKEN_FILE);
    let new_admin_token = ensure_admin_token(&store, &admin_token_path).await?;
    let tls = tls::prepare(&config.tls, &config.data_dir, config.listen)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let online_window = Duration::from_secs(
        config.heartbeat_secs * operon_proto::MISSED_HEARTBEATS_BEFORE_DEAD + 1,
    );
    if !config.http_allow.entries().is_empty() {
        tracing::info!(allow = %config.http_allow, "outbound HTTP may also reach");
    }
    let outbound = |user_agent: &str, timeout| {
        egress::client::Outbound::new(config.http_allow.clone(), user_agent, timeout)
            .map_err(ServerError::Api)
    };
    let (workflows, workflow_rx) = workflows::Workflows::new(outbound(
        concat!("operon-workflows/", env!("CARGO_PKG_VERSION")),
        None,
    )?);
    let happenings = happenings::Happenings::default();
    let key_path = config.data_dir.join(events::SEAL_KEY_FILE);
    let key = events::signing::SealKey::load_or_create(&key_path).map_err(|source| {
        ServerError::DataDir {
            path: key_path,
            source,
        }
    })?;
    let keys = keyring::Keys::open(&config.data_dir).map_err(ServerError::Keyring)?;
    let audit = audit::AuditLog::spawn(store.clone(), &config.data_dir);
    let refusal_rate = config.refusal_rate;
    let webhooks = outbound(
        concat!("operon-events/", env!("CARGO_PKG_VERSION")),
        Some(Duration::from_secs(10)),
    )?;
    let event_bus = events::EventBus::load(&store, key, audit.clone(), webhooks)
        .await
        .map_err(ServerError::Api)?;
    let state = Arc::new(AppState {
        events: event_bus,
        writer: writer::AgentWriter::spawn(store.clone()),
        metrics_writer: metrics::writer::MetricsWriter::spawn(store.clone()),
        logs_writer: logs::writer::LogsWriter::spawn(store.clone()),
        audit,
        store,
        hub: fleet::hub::Hub::new(online_window),
        live: live::Live::new(happenings.clone()),
        happenings,
        actors: runas::ActorCache::default(),
        keys,
        coordination: coordination::Coordination::default(),
        config,
        tls_fingerprint: tls.as_ref().map(|t| t.fingerprint.clone()),
        rotations: fleet::rotation::Waiters::default(),
        workflows,
        refusals: refusals::RefusalLimiter::new(refusal_rate),
        sessions: sessions::Relay::default(),
    });
    workflows::spawn(state.clone(), workflow_rx);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let app = api::router(state.clone())
        .layer(axum::middleware::map_response({
            let stopping = stopping.clone();
            move |response| end_streams_when_stopping(stopping.clone(), response)
        }))
        .into_make_service_with_connect_info::<PeerAddr>();
    let serve = match &tls {
        None => tokio::spawn(async move {
            axum::serve(NoDelayListener(listener), app)
                .with_graceful_shutdown(stopped(stopping))
                .await
        }),
        Some(tls) => {
            let listener = tls::TlsListener::new(listener, tls.config.clone())
                .map_err(|source| ServerError::Bind { addr, source })?;
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped(stopping))
                    .await
            })
        }
    };
    let dispatcher = tokio::spawn(dispatcher::run(state.clone()));
    let mut background = events::spawn(&state, clock);
    background.push(tokio::spawn(flood_summaries(state.clone())));
    background.push(tokio::spawn(params::policies::run(state.clone())));
    background.push(tokio::spawn(params::sync::run(state.clone())));
    background.push(tokio::spawn(associations::runner::run(state.clone())));
    background.push(tokio::spawn(alarms::runner::run(state.clone())));
    background.push(tokio::spawn(heal::runner::run(state.clone())));
    background.push(tokio::spawn(metrics::run(state.clone())));
    background.push(tokio::spawn(logs::run(state.clone())));
    background.push(tokio::spawn(sessions::run(state.clone())));
    background.push(tokio::spawn(monitors::service::run(state.clone())));
    match &tls {
        Some(tls) => {
            tracing::info!(%addr, fingerprint = %tls.fingerprint, "server listening (TLS)")
        }
        None => tracing::info!(%addr, "server listening"),
    }
    if let Some(warning) = plain_http_warning(addr, tls.is_some()) {
        tracing::warn!(%addr, "{warning}");
    }
    Ok(Server {
        addr,
        new_admin_token,
        admin_token_path,
        tls,
        state,
        serve,
        stop,
        dispatcher,
        background,
        lock,
    })
}

/// Completes once the server is told to stop (never if it is dropped
/// without being stopped: it then serves on, as before).
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    if stopping.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Live streams (server-sent events) never end by themselves, so a graceful
/// stop would wait for them forever: their bodies end when the server stops.
async fn end_streams_when_stopping(
    stopping: tokio::sync::watch::Receiver<bool>,
    response: axum::response::Response,
) -> axum::response::Response {
    use futures_util::StreamExt;
    let is_stream = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if !is_stream {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().take_until(stopped(stopping));
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(body))
}

/// What to warn about when serving plain HTTP on an address other hosts can
/// reach: every secret crosses the network in clear.
fn plain_http_warning(addr: SocketAddr, tls: bool) -> Option<&'static str> {
    (!tls && !addr.ip().is_loopback()).then_some(
        "serving plain HTTP on a non-loopback address: API tokens, enrollment tokens and node credentials cross the network in clear (use --tls-cert/--tls-key or --tls-self-signed; agents and the CLI refuse such a server without --insecure)",
    )
}

/// The address of the client of a request, plain or TLS (axum's
/// `ConnectInfo<SocketAddr>` exists only for its own listener types).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, NoDelayListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, NoDelayListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// The plain-HTTP listener, with Nagle's algorithm off on every connection
/// (the TLS listener does the same): a session's frames are small (a
/// keystroke, its echo) and must not wait for the previous one's
/// acknowledgement, which with delayed ACKs costs ~40 ms a hop.
pub struct NoDelayListener(tokio::net::TcpListener);

impl axum::serve::Listener for NoDelayListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return (stream, peer);
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off, then go on.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// Once a minute, the refusals answered 429 become summary audit records.
async fn flood_summaries(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        api::record_flood_summaries(&state).await;
    }
}

/// Create the data directory (0700), or check an existing one: refuse one
/// that others may write to (they could have replaced the database or the
/// keys); take group and world access away from one others may read or
/// enter, with a warning.
fn prepare_data_dir(dir: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |source| ServerError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    let mode = std::fs::metadata(dir).map_err(err)?.permissions().mode() & 0o777;
    match data_dir_mode_verdict(mode) {
        DirModeVerdict::Fine => Ok(()),
        DirModeVerdict::Writable(who) => Err(ServerError::UnsafeDataDir {
            path: dir.to_path_buf(),
            who,
        }),
        DirModeVerdict::Open => {
            tracing::warn!(path = %dir.display(), mode = format!("{mode:o}"), "the data directory was open to other users; setting its mode to 700");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum DirModeVerdict {
    /// Only the owner has access.
    Fine,
    /// The group or everyone may write (named): refuse.
    Writable(&'static str),
    /// The group or everyone may read or enter: close it.
    Open,
}

fn data_dir_mode_verdict(mode: u32) -> DirModeVerdict {
    if mode & 0o002 != 0 {
        DirModeVerdict::Writable("every user")
    } else if mode & 0o020 != 0 {
        DirModeVerdict::Writable("its group")
    } else if mode & 0o077 != 0 {
        DirModeVerdict::Open
    } else {
        DirModeVerdict::Fine
    }
}

/// Take the exclusive lock on `<dir>/server.lock` and write our pid in it;
/// if another process holds it, say which.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, ServerError> {
    use std::io::{Read, Seek};
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let err = |source| ServerError::DataDir {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(ServerError::DataDirLocked {
                path: dir.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(err(source)),
    }
    file.set_len(0).map_err(err)?;
    file.rewind().map_err(err)?;
    writeln!(file, "{}", std::process::id()).map_err(err)?;
    Ok(file)
}

/// On first start, create the admin token and write it (0600) to the data dir.
async fn ensure_admin_token(store: &Store, path: &Path) -> Result<Option<String>, ServerError> {
    if store.count_api_tokens().await? > 0 {
        return Ok(None);
    }
    let token = auth::new_secret(auth::API_TOKEN_PREFIX);
    write_secret_file(path, &token).map_err(|source| ServerError::DataDir {
        path: path.to_path_buf(),
        source,
    })?;
    store
        .insert_api_token(&ApiToken {
            id: auth::new_id("tok-"),
            name: "admin".into(),
            token_hash: auth::hash_secret(&token),
            created_at: now_millis(),
            expires_at: None,
            revoked_at: None,
            user_id: None,
            scopes: None,
        })
        .await?;
    Ok(Some(token))
}

/// Write a secret to a file created with mode 0600 (never readable by others,
/// not even briefly).
pub fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Replace a secret file atomically, so a crash leaves the old or the new
/// secret (see [`write_file_atomically`]).
pub fn write_secret_file_atomic(path: &Path, secret: &str) -> std::io::Result<()> {
    write_file_atomically(path, format!("{secret}\n").as_bytes(), 0o600)
}

/// Write a temporary file beside `path` created with its final `mode`
/// (never readable by others, not even briefly), sync it, rename it over
/// `path` and sync the directory.
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_modes() {
        use DirModeVerdict::*;
        assert_eq!(data_dir_mode_verdict(0o700), Fine);
        assert_eq!(data_dir_mode_verdict(0o500), Fine);
        assert_eq!(data_dir_mode_verdict(0o750), Open);
        assert_eq!(data_dir_mode_verdict(0o755), Open);
        assert_eq!(data_dir_mode_verdict(0o701), Open);
        assert_eq!(data_dir_mode_verdict(0o770), Writable("its group"));
        assert_eq!(data_dir_mode_verdict(0o777), Writable("every user"));
        assert_eq!(data_dir_mode_verdict(0o703), Writable("every user"));
    }

    #[test]
    fn plain_http_is_warned_about_off_loopback_only() {
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(plain_http_warning(at("127.0.0.1:7780"), false).is_none());
        assert!(plain_http_warning(at("[::1]:7780"), false).is_none());
        assert!(plain_http_warning(at("0.0.0.0:7780"), false).is_some());
        assert!(plain_http_warning(at("10.0.0.5:7780"), false).is_some());
        assert!(plain_http_warning(at("0.0.0.0:7780"), true).is_none());
    }

    #[test]
    fn the_data_dir_is_locked_while_held_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().display().to_string())
                && message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(held);
        lock_data_dir(dir.path()).unwrap();
    }

    #[test]
    fn an_open_data_dir_is_closed_and_a_writable_one_refused() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let set = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepare_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        set(&data, 0o755);
        prepare_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        for writable in [0o770, 0o707, 0o777] {
            set(&data, writable);
            let err = prepare_data_dir(&data).unwrap_err();
            assert!(matches!(err, ServerError::UnsafeDataDir { .. }), "{err}");
            assert!(err.to_string().contains("refusing"), "{err}");
            assert_eq!(mode(&data), writable, "left as it was");
        }
    }
}
