//! The `operon` binary: server, agent, `up`, and every client command.
//!
//! This is the thin edge of the workspace: it parses arguments, does I/O and
//! prints. All behaviour lives in the library crates.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "operon", version, about = "Self-hosted operations automation for Linux fleets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Events: offline pattern tests and rule-set matching.
    Events {
        #[command(subcommand)]
        cmd: cli::events::EventsCmd,
    },
    /// Workflows (Amazon States Language state machines).
    Workflows {
        #[command(subcommand)]
        cmd: cli::workflows::WorkflowsCmd,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Events { cmd } => cli::events::run(cmd),
        Command::Workflows { cmd } => cli::workflows::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
