//! `operon events ...` (offline pattern tools). Owned by the operon-pattern work.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum EventsCmd {}

pub fn run(cmd: EventsCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
