//! Client commands, one module per noun, and the long-running commands.

pub mod access_keys;
pub mod agent;
pub mod alarms;
pub mod approvals;
pub mod archives;
pub mod asciicast;
pub mod associations;
pub mod audit;
pub mod bus;
pub mod checks;
pub mod client;
mod client_events;
mod client_fleet;
mod client_identity;
mod client_inventory;
pub mod client_metrics;
mod client_monitors;
pub mod client_params;
mod client_sessions;
pub mod client_workflows;
pub mod commands;
pub mod dlq;
pub mod documents;
pub mod enroll_tokens;
pub mod events;
pub mod executions;
pub mod fleet;
pub mod heal;
pub mod identity;
pub mod input;
pub mod inventory;
pub mod keys;
pub mod login;
pub mod logs;
pub mod metrics;
mod metrics_put;
pub mod metrics_query;
pub mod output;
pub mod param_syncs;
pub mod params;
pub mod policies;
mod port_forward;
pub mod replays;
pub mod roles;
pub mod rules;
pub mod runbooks;
pub mod server;
mod session_link;
mod session_terminal;
pub mod sessions;
pub mod tasks;
mod terminal;
pub mod tokens;
pub mod up;
pub mod users;
pub mod webhooks;
pub mod workflows;

/// Logs go to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// After a server has stopped, how long tasks still running get before the
/// process exits anyway.
pub const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
