//! `operon agent`: run the node agent until ctrl-c or SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// Base URL of the Operon server.
    #[arg(long, env = "OPERON_SERVER", default_value = "http://127.0.0.1:7780")]
    pub server: String,
    /// One-time enrollment token (needed only on the first start).
    #[arg(long, env = "OPERON_ENROLL_TOKEN", hide_env_values = true)]
    pub enroll_token: Option<String>,
    /// Directory for the node credential and the command journal.
    #[arg(long, default_value = "./operon-agent")]
    pub state_dir: PathBuf,
    /// Node name to ask for at enrollment (default: the hostname).
    #[arg(long)]
    pub name: Option<String>,
    /// Tag to ask for at enrollment, `key=value`; repeatable.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Heartbeat interval in seconds (default: what the server says).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_secs: Option<u64>,
    /// Log as JSON lines (the same as --log-format json).
    #[arg(long)]
    pub log_json: bool,
    /// `text` (the default) or `json` (one JSON object per line).
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Pin the server's TLS certificate by fingerprint (sha256:<hex>, as
    /// `operon server` and `operon enroll-tokens create` print it). Stored at
    /// enrollment and checked on every connection.
    #[arg(long, env = "OPERON_SERVER_FINGERPRINT")]
    pub server_fingerprint: Option<String>,
    /// Trust the CA certificates in this PEM file (besides the system roots)
    /// for an https:// server without a pinned fingerprint.
    #[arg(long, env = "OPERON_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Allow plain http:// to a server that is not on a loopback address
    /// (the node credential travels in clear). Never with a pinned certificate.
    #[arg(long, env = "OPERON_INSECURE")]
    pub insecure: bool,
    /// Where the host's file system is mounted when the agent runs in a
    /// container (/host): files kept in sync (operon params sync) are
    /// written below it.
    #[arg(long, env = "OPERON_HOST_ROOT")]
    pub host_root: Option<PathBuf>,
    /// Custom inventory: every *.json file here (an object of objects, or
    /// an array of objects with a key or name) is reported as custom:<file stem>.
    #[arg(long, env = "OPERON_CUSTOM_INVENTORY_DIR", default_value = operon_agent::inventory_sets::DEFAULT_CUSTOM_DIR)]
    pub custom_inventory_dir: PathBuf,
    /// Seconds between inventory collections (besides one at each connection).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub inventory_interval_secs: u64,
    /// Seconds between metric samples (and the pace of log watchers); 0 turns
    /// metrics off.
    #[arg(long, default_value_t = 10)]
    pub metrics_interval_secs: u64,
    /// Custom metrics: files written here by `operon metrics put` or by
    /// scripts on the node are sent with the next batch.
    #[arg(long, env = "OPERON_CUSTOM_METRICS_DIR", default_value = operon_agent::metrics::DEFAULT_CUSTOM_DIR)]
    pub custom_metrics_dir: PathBuf,
    /// Let session terminals create the server's default session account
    /// on this node when it is missing (`useradd`). Named users are never
    /// created.
    #[arg(long, env = "OPERON_SESSION_CREATE_USER")]
    pub session_create_user: bool,
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

impl AgentArgs {
    pub fn into_config(self) -> operon_agent::AgentConfig {
        operon_agent::AgentConfig {
            server_url: self.server,
            state_dir: self.state_dir,
            enroll_token: self.enroll_token,
            name: self.name,
            tags: self.tags.into_iter().collect::<BTreeMap<_, _>>(),
            heartbeat_secs: self.heartbeat_secs,
            server_fingerprint: self.server_fingerprint,
            tls_ca: self.tls_ca,
            insecure: self.insecure,
            host_root: self.host_root,
            inventory_interval: std::time::Duration::from_secs(self.inventory_interval_secs),
            custom_inventory_dir: self.custom_inventory_dir,
            metrics_interval: std::time::Duration::from_secs(self.metrics_interval_secs),
            custom_metrics_dir: self.custom_metrics_dir,
            session_create_user: self.session_create_user,
        }
    }
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    super::init_logging(args.log_json || args.log_format.as_deref() == Some("json"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(operon_agent::run(
        args.into_config(),
        super::shutdown_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
