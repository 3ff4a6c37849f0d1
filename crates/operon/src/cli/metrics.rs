//! `operon metrics put|query|names`: custom metrics from scripts on a node
//! (`put`, no server login needed) and what the server stores (`query`, `names`).

use std::process::ExitCode;

use anyhow::Result;

use super::metrics_put::{self, PutArgs};

#[derive(clap::Subcommand)]
pub enum MetricsCmd {
    /// Send a custom metric from this node: the local agent picks it up at
    /// its next sample (written to its custom metrics directory; needs no
    /// server login).
    // Negative values (`-3`) are values, not flags.
    #[command(allow_negative_numbers = true)]
    Put(PutArgs),
    #[command(flatten)]
    Server(super::metrics_query::MetricsQueryCmd),
}

pub fn metrics(client: &super::client::ClientArgs, cmd: MetricsCmd) -> Result<ExitCode> {
    match cmd {
        MetricsCmd::Put(args) => metrics_put::put(args),
        MetricsCmd::Server(cmd) => super::metrics_query::metrics_query(client, cmd),
    }
}
