//! `operon metrics ...`: custom metrics from scripts on a node (`put`).

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
}

pub fn metrics(cmd: MetricsCmd) -> Result<ExitCode> {
    match cmd {
        MetricsCmd::Put(args) => metrics_put::put(args),
    }
}
