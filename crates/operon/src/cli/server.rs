//! `operon server`: the control plane in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use operon_server::ServerConfig;

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
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

impl ServerArgs {
    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(self.listen, self.data_dir.clone());
        config.heartbeat_secs = self.heartbeat_secs.max(1);
        config
    }
}

pub fn run(args: ServerArgs) -> Result<ExitCode> {
    super::init_logging(args.log_json);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = operon_server::start(args.config()).await?;
        // Tests and scripts read this line to learn the bound address.
        println!("operon server listening on {}", server.url());
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
    })
}
