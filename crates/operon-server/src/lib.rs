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
mod api;
mod audit;
mod auth;
pub mod catalogue;
mod commands;
mod coordination;
mod dispatcher;
pub mod documents;
pub mod egress;
mod error;
pub mod events;
mod fleet;
mod happenings;
mod identity;
mod live;
mod rate;
pub mod refusals;
mod runas;
mod service;
pub mod tls;
mod workflows;
mod writer;

use operon_store::prelude::*;
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
    #[error("{0}")]
    Api(String),
}

/// Shared state of a running server.
pub struct AppState {
    pub(crate) store: Store,
    /// Group-commits agent starts and results.
    pub(crate) writer: writer::AgentWriter,
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
    dispatcher: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
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

    /// Serve until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let Server {
            serve,
            dispatcher,
            background,
            ..
        } = self;
        let result = tokio::select! {
            result = serve => result.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            _ = shutdown => Ok(()),
        };
        dispatcher.abort();
        for task in background {
            task.abort();
        }
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
    prepare_data_dir(&config.data_dir)?;
    let store = Store::open(&config.data_dir.join(DATABASE_FILE)).await?;
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
        audit,
        store,
        hub: fleet::hub::Hub::new(online_window),
        live: live::Live::new(happenings.clone()),
        happenings,
        coordination: coordination::Coordination::default(),
        config,
        tls_fingerprint: tls.as_ref().map(|t| t.fingerprint.clone()),
        rotations: fleet::rotation::Waiters::default(),
        workflows,
        refusals: refusals::RefusalLimiter::new(refusal_rate),
    });
    workflows::spawn(state.clone(), workflow_rx);
    let app = api::router(state.clone()).into_make_service_with_connect_info::<PeerAddr>();
    let serve = match &tls {
        None => tokio::spawn(async move { axum::serve(listener, app).await }),
        Some(tls) => {
            let listener = tls::TlsListener::new(listener, tls.config.clone())
                .map_err(|source| ServerError::Bind { addr, source })?;
            tokio::spawn(async move { axum::serve(listener, app).await })
        }
    };
    let dispatcher = tokio::spawn(dispatcher::run(state.clone()));
    let mut background = events::spawn(&state, clock);
    background.push(tokio::spawn(flood_summaries(state.clone())));
    match &tls {
        Some(tls) => {
            tracing::info!(%addr, fingerprint = %tls.fingerprint, "server listening (TLS)")
        }
        None => tracing::info!(%addr, "server listening"),
    }
    Ok(Server {
        addr,
        new_admin_token,
        admin_token_path,
        tls,
        state,
        serve,
        dispatcher,
        background,
    })
}

/// The address of the client of a request, plain or TLS (axum's
/// `ConnectInfo<SocketAddr>` exists only for its own listener types).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
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

fn prepare_data_dir(dir: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    let err = |source| ServerError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)
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
