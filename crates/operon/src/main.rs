//! The `operon` binary: server, agent, `up`, and every client command.
//!
//! This is the thin edge of the workspace: it parses arguments, does I/O and
//! prints. All behaviour lives in the library crates.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::client::ClientArgs;

#[derive(Parser)]
#[command(
    name = "operon",
    version,
    about = "Self-hosted operations automation for Linux fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a server and a local agent enrolled to it: the quickest start.
    Up(cli::server::ServerArgs),
    /// Run the control plane.
    Server(cli::server::ServerArgs),
    /// Run the node agent (connects outbound to the server).
    Agent(cli::agent::AgentArgs),
    /// Run a shell command or a document on nodes, streaming output live.
    Run {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: cli::commands::RunArgs,
    },
    /// Command invocations: list, show, cancel.
    Commands {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::commands::CommandsCmd,
    },
    /// Command documents (SSM schemaVersion 2.2).
    Documents {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::commands::DocumentsCmd,
    },
    /// Nodes of the fleet.
    Nodes {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::fleet::NodesCmd,
    },
    /// Enrollment tokens that let new nodes join.
    EnrollTokens {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::fleet::EnrollTokensCmd,
    },
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
    restore_default_sigpipe();
    operon_agent::tls::install_default_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => cli::up::run(args),
        Command::Server(args) => cli::server::run(args),
        Command::Agent(args) => cli::agent::run(args),
        Command::Run { client, args } => cli::commands::run(&client, args),
        Command::Commands { client, cmd } => cli::commands::commands(&client, cmd),
        Command::Documents { client, cmd } => cli::commands::documents(&client, cmd),
        Command::Nodes { client, cmd } => cli::fleet::nodes(&client, cmd),
        Command::EnrollTokens { client, cmd } => cli::fleet::enroll_tokens(&client, cmd),
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

/// Die quietly on a closed pipe (`operon nodes list | head`), as command-line
/// tools do, instead of panicking in `println!`. Rust ignores SIGPIPE by default.
#[allow(unsafe_code)]
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; setting a
    // signal disposition to SIG_DFL has no other precondition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
