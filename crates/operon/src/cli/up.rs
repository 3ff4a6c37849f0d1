//! `operon up`: a server and a local agent enrolled to it, in one process.
//! The first thing a newcomer runs.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use super::server::ServerArgs;

/// Subdirectory of the data directory holding the local agent's state.
const LOCAL_AGENT_DIR: &str = "local-agent";

pub fn run(args: ServerArgs) -> Result<ExitCode> {
    super::init_logging(args.log_json || args.log_format.as_deref() == Some("json"));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let server = operon_server::start(args.config()).await?;
        let state_dir = args.data_dir.join(LOCAL_AGENT_DIR);
        let enrolled = state_dir.join("credential.json").exists();
        let enroll_token = if enrolled {
            None
        } else {
            let tags = BTreeMap::from([("operon:local".to_string(), "true".to_string())]);
            Some(
                server
                    .create_enroll_token(tags, 1, Duration::from_secs(600))
                    .await?,
            )
        };
        print_banner(&server, &args);
        let config = operon_agent::AgentConfig {
            server_url: server.url(),
            state_dir,
            enroll_token,
            name: None,
            tags: BTreeMap::new(),
            heartbeat_secs: None,
            // The local agent pins this server's certificate, whatever it is.
            server_fingerprint: server.tls.as_ref().map(|t| t.fingerprint.clone()),
            tls_ca: None,
            // The agent talks to this very process at one of this host's own
            // addresses (the listen address, loopback or not).
            insecure: true,
            host_root: None,
            inventory_interval: operon_agent::inventory_sets::DEFAULT_INTERVAL,
            custom_inventory_dir: operon_agent::inventory_sets::DEFAULT_CUSTOM_DIR.into(),
            metrics_interval: operon_agent::metrics::DEFAULT_INTERVAL,
            custom_metrics_dir: operon_agent::metrics::DEFAULT_CUSTOM_DIR.into(),
            session_create_user: false,
        };
        let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
        let agent = tokio::spawn(operon_agent::run(config, async move {
            let _ = agent_stopped.await;
        }));
        let served = server.run_until(super::shutdown_signal()).await;
        let _ = stop_agent.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
        served.context("serving")?;
        Ok(ExitCode::SUCCESS)
    });
    runtime.shutdown_timeout(super::RUNTIME_SHUTDOWN);
    result
}

fn print_banner(server: &operon_server::Server, args: &ServerArgs) {
    let data_dir_flag = if args.data_dir == std::path::Path::new("operon-data") {
        String::new()
    } else {
        format!(" --data-dir {}", args.data_dir.display())
    };
    println!("Operon is up.");
    println!("  server      {}", server.url());
    if let Some(tls) = &server.tls {
        println!(
            "  TLS         {} ({})",
            tls.fingerprint,
            tls.cert_path.display()
        );
    }
    println!("  data        {}", args.data_dir.display());
    println!(
        "  API token   {} (the CLI reads it from there)",
        server.admin_token_path.display()
    );
    if let Some(token) = &server.new_admin_token {
        println!("  new admin token (shown once): {token}");
    }
    println!("  local agent enrolling as this host; `operon nodes list{data_dir_flag}` shows it");
    println!();
    println!("Try:");
    println!("  operon run{data_dir_flag} --targets all -- uname -a");
    println!();
    println!("Stop with ctrl-c.");
}
