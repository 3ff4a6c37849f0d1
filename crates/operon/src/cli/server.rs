//! `operon server`: the control plane in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use operon_server::ServerConfig;
use operon_server::tls::TlsMode;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "OPERON_LISTEN", default_value = "127.0.0.1:7780")]
    pub listen: SocketAddr,
    /// Where state lives (database, admin token).
    #[arg(long, env = "OPERON_DATA_DIR", default_value = "operon-data")]
    pub data_dir: PathBuf,
    /// Seconds between agent heartbeats (agents are offline after 3 missed).
    #[arg(long, default_value_t = operon_proto::DEFAULT_HEARTBEAT_SECS)]
    pub heartbeat_secs: u64,
    /// Log as JSON lines (the same as --log-format json).
    #[arg(long)]
    pub log_json: bool,
    /// `text` (the default) or `json` (one JSON object per line).
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, end-entity first).
    #[arg(
        long,
        env = "OPERON_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "OPERON_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate, generated on first start
    /// in <data-dir>/tls/ and reused afterwards; agents pin its fingerprint.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Unauthenticated refusals (no or unknown token) audited one by one per
    /// source address at once; past it they are answered 429 and counted into
    /// one audit record per address a minute.
    #[arg(long, default_value_t = operon_server::refusals::RefusalRate::default().burst)]
    pub refusal_burst: u32,
    /// ... refilled at this many per minute.
    #[arg(long, default_value_t = operon_server::refusals::RefusalRate::default().per_minute)]
    pub refusals_per_minute: u32,
    /// Largest runbook execution input and state input/output, in bytes;
    /// larger fails with States.DataLimitExceeded (AWS's quota is 256 KiB).
    #[arg(long, default_value_t = operon_asl::engine::DEFAULT_MAX_PAYLOAD_BYTES)]
    pub max_payload_bytes: u64,
    /// Let webhook targets and runbook `operon:http` tasks reach this
    /// CIDR range (10.0.0.0/8, 127.0.0.1/32) or host name (the URL's host,
    /// exactly). Loopback, link-local (cloud metadata), private, multicast
    /// and reserved addresses are refused otherwise. Repeatable or
    /// comma-separated.
    #[arg(
        long,
        env = "OPERON_HTTP_ALLOW",
        value_name = "CIDR|HOST",
        value_delimiter = ','
    )]
    pub http_allow: Vec<operon_server::egress::AllowEntry>,
    /// How long raw metric points are kept (90m, 36h, 1d, 2w). Percentiles
    /// are computed from them, so only over this range.
    #[arg(long, default_value = "1d", value_name = "DURATION", value_parser = retention)]
    pub metrics_raw_retention: i64,
    /// How long 1-minute metric rollups are kept.
    #[arg(long, default_value = "15d", value_name = "DURATION", value_parser = retention)]
    pub metrics_minute_retention: i64,
    /// How long 1-hour metric rollups are kept.
    #[arg(long, default_value = "400d", value_name = "DURATION", value_parser = retention)]
    pub metrics_hour_retention: i64,
    /// How long shipped log lines are kept.
    #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = retention)]
    pub logs_retention: i64,
    /// The account sessions run as when none is named (`sessions start
    /// NODE` without --user); agents started with --session-create-user
    /// create it on first use.
    #[arg(long, default_value = operon_server::sessions::limits::DEFAULT_USER, value_name = "USER")]
    pub session_default_user: String,
    /// A session with no input for this long ends (a session may ask for
    /// less, never more).
    #[arg(long, default_value = "20m", value_name = "DURATION", value_parser = retention)]
    pub session_idle_timeout: i64,
    /// The longest a session may last (a session may ask for less).
    #[arg(long, default_value = "8h", value_name = "DURATION", value_parser = retention)]
    pub session_max_duration: i64,
    /// Record what users type in sessions (output is always recorded).
    /// Turn off where people type secrets at prompts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub session_record_input: bool,
    /// Addresses no port forward may reach, besides the built-in ones
    /// (link-local and cloud metadata): CIDR[:PORT] (10.0.0.0/8,
    /// 127.0.0.1/32:7780). Repeatable or comma-separated.
    #[arg(
        long,
        env = "OPERON_SESSION_FORWARD_DENY",
        value_name = "CIDR[:PORT]",
        value_delimiter = ','
    )]
    pub session_forward_deny: Vec<String>,
}

/// A retention like `1d`, in ms.
fn retention(text: &str) -> Result<i64, String> {
    operon_server::metrics::query::parse_duration(text)
}

impl ServerArgs {
    fn session_config(&self) -> operon_server::sessions::SessionConfig {
        let mut sessions = operon_server::sessions::SessionConfig {
            default_user: self.session_default_user.clone(),
            idle_timeout: std::time::Duration::from_millis(
                self.session_idle_timeout.max(1000) as u64
            ),
            max_duration: std::time::Duration::from_millis(
                self.session_max_duration.max(1000) as u64
            ),
            record_input: self.session_record_input,
            ..Default::default()
        };
        sessions
            .forward_deny
            .extend(self.session_forward_deny.iter().cloned());
        sessions
    }

    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(self.listen, self.data_dir.clone());
        config.heartbeat_secs = self.heartbeat_secs.max(1);
        config.max_payload_bytes = self.max_payload_bytes;
        config.http_allow = operon_server::egress::AllowList::new(self.http_allow.clone());
        config.metrics_retention = operon_server::metrics::Retention {
            raw_ms: self.metrics_raw_retention,
            minute_ms: self.metrics_minute_retention,
            hour_ms: self.metrics_hour_retention,
        };
        config.logs_retention_ms = self.logs_retention;
        config.sessions = self.session_config();
        config.refusal_rate = operon_server::refusals::RefusalRate {
            burst: self.refusal_burst,
            per_minute: self.refusals_per_minute,
        };
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsMode::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ if self.tls_self_signed => TlsMode::SelfSigned,
            _ => TlsMode::Off,
        };
        config
    }
}

/// Tell the operator what agents and the CLI must pin. Tests read the
/// `TLS certificate fingerprint` line.
pub fn print_tls(server: &operon_server::Server) {
    if let Some(tls) = &server.tls {
        println!("TLS certificate fingerprint: {}", tls.fingerprint);
        let origin = if tls.generated {
            "generated now, self-signed"
        } else {
            "loaded"
        };
        println!("  certificate {} ({origin})", tls.cert_path.display());
        println!(
            "  agents: operon agent --server {} --server-fingerprint {} --enroll-token ...",
            server.url(),
            tls.fingerprint
        );
    }
}

pub fn run(args: ServerArgs) -> Result<ExitCode> {
    super::init_logging(args.log_json || args.log_format.as_deref() == Some("json"));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let server = operon_server::start(args.config()).await?;
        // Tests and scripts read this line to learn the bound address.
        println!("operon server listening on {}", server.url());
        print_tls(&server);
        if let Some(token) = &server.new_admin_token {
            println!(
                "admin API token (shown once, also in {}):",
                server.admin_token_path.display()
            );
            println!("{token}");
        }
        server
            .run_until(super::shutdown_signal())
            .await
            .context("serving")?;
        Ok(ExitCode::SUCCESS)
    });
    // `run_until` has stopped everything that matters; tasks still running
    // (agent sessions, a request past the drain) must not delay the exit.
    runtime.shutdown_timeout(super::RUNTIME_SHUTDOWN);
    result
}
