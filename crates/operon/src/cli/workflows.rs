//! `operon workflows ...` (offline runner). Owned by the operon-asl work.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum WorkflowsCmd {}

pub fn run(cmd: WorkflowsCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
