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
        cmd: cli::documents::DocumentsCmd,
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
        cmd: cli::enroll_tokens::EnrollTokensCmd,
    },
    /// Check an API token and store it for later commands (0600).
    Login {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Forget the token stored for this server.
    Logout {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Users and service accounts.
    Users {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::users::UsersCmd,
    },
    /// API tokens.
    Tokens {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::tokens::TokensCmd,
    },
    /// IAM-shaped access policies, and the simulator that explains them.
    Policies {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::policies::PoliciesCmd,
    },
    /// Roles: policies granted together to users.
    Roles {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::roles::RolesCmd,
    },
    /// The tamper-evident audit trail.
    Audit {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::audit::AuditCmd,
    },
    /// What the agents report about their nodes: packages, services,
    /// users, ports, custom inventory; per node or across the fleet.
    Inventory {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::inventory::InventoryCmd,
    },
    /// Metrics: statistics per period, sparklines and charts of what the
    /// agents push; `put` sends a custom metric from a script on a node.
    Metrics {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::metrics::MetricsCmd,
    },
    /// Parameter Store: configuration values and secrets, versioned.
    Params {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::params::ParamsCmd,
    },
    /// The key ring that seals SecureStrings: list, rotate, rewrap.
    Keys {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::keys::KeysCmd,
    },
    /// AWS-style access keys for SigV4-signed calls (AWS SDKs and CLI).
    AccessKeys {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::access_keys::AccessKeysCmd,
    },
    /// Alarms on node metrics: threshold, anomaly, forecast and composite.
    Alarms {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::alarms::AlarmsCmd,
    },
    /// Auto-healing: a runbook started when an alarm goes to ALARM.
    Heal {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::heal::HealCmd,
    },
    /// Alarm episodes with their timelines.
    Incidents {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::heal::IncidentsCmd,
    },
    /// State Manager: desired-state documents kept applied to nodes.
    Associations {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::associations::AssociationsCmd,
    },
    /// Health checks the agents run: HTTP, TCP, systemd unit, process,
    /// command (metrics check.healthy, check.latency_ms).
    Checks {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::checks::ChecksCmd,
    },
    /// Logs the agents ship to the server: what to ship, query, tail.
    Logs {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::logs::LogsCmd,
    },
    /// Log watchers the agents run: count lines of a file or the journal
    /// matching a pattern (metric log.matches).
    LogWatchers {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::checks::LogWatchersCmd,
    },
    /// What each node looks like against its associations.
    Compliance {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::associations::ComplianceCmd,
    },
    /// Event buses.
    Buses {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::bus::BusesCmd,
    },
    /// Rules: an event pattern or a schedule, and targets.
    Rules {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::rules::RulesCmd,
    },
    /// Dead letters: deliveries that exhausted their retries.
    Dlq {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::dlq::DlqCmd,
    },
    /// Inbound webhooks (signed requests become events).
    Webhooks {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::webhooks::WebhooksCmd,
    },
    /// Event archives.
    Archives {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::archives::ArchivesCmd,
    },
    /// Replays of archived events.
    Replays {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::replays::ReplaysCmd,
    },
    /// Events: put and tail on a server; offline pattern tests and rule-set matching.
    Events {
        #[command(subcommand)]
        cmd: cli::events::EventsCmd,
    },
    /// Workflows (Amazon States Language state machines).
    Workflows {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::workflows::WorkflowsCmd,
    },
    /// Workflow executions: list, describe, history, watch, stop, redrive.
    Executions {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::executions::ExecutionsCmd,
    },
    /// Human approvals requested by workflows.
    Approvals {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::approvals::ApprovalsCmd,
    },
    /// Sessions on nodes: shells, commands with a terminal, port forwarding; recordings.
    Sessions {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::sessions::SessionsCmd,
    },
    /// Answer workflow tasks waiting for a task token.
    Tasks {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: cli::tasks::TasksCmd,
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
        Command::Documents { client, cmd } => cli::documents::documents(&client, cmd),
        Command::Nodes { client, cmd } => cli::fleet::nodes(&client, cmd),
        Command::EnrollTokens { client, cmd } => cli::enroll_tokens::enroll_tokens(&client, cmd),
        Command::Login { client } => cli::login::login(&client),
        Command::Logout { client } => cli::login::logout(&client),
        Command::Users { client, cmd } => cli::users::users(&client, cmd),
        Command::Tokens { client, cmd } => cli::tokens::tokens(&client, cmd),
        Command::Policies { client, cmd } => cli::policies::policies(&client, cmd),
        Command::Roles { client, cmd } => cli::roles::roles(&client, cmd),
        Command::Audit { client, cmd } => cli::audit::audit(&client, cmd),
        Command::Inventory { client, cmd } => cli::inventory::inventory(&client, cmd),
        Command::Metrics { client, cmd } => cli::metrics::metrics(&client, cmd),
        Command::Params { client, cmd } => cli::params::params(&client, cmd),
        Command::Keys { client, cmd } => cli::keys::keys(&client, cmd),
        Command::AccessKeys { client, cmd } => cli::access_keys::access_keys(&client, cmd),
        Command::Alarms { client, cmd } => cli::alarms::alarms(&client, cmd),
        Command::Heal { client, cmd } => cli::heal::heal(&client, cmd),
        Command::Incidents { client, cmd } => cli::heal::incidents(&client, cmd),
        Command::Associations { client, cmd } => cli::associations::associations(&client, cmd),
        Command::Compliance { client, cmd } => cli::associations::compliance(&client, cmd),
        Command::Checks { client, cmd } => cli::checks::checks(&client, cmd),
        Command::LogWatchers { client, cmd } => cli::checks::log_watchers(&client, cmd),
        Command::Logs { client, cmd } => cli::logs::logs(&client, cmd),
        Command::Buses { client, cmd } => cli::bus::buses(&client, cmd),
        Command::Rules { client, cmd } => cli::rules::rules(&client, cmd),
        Command::Dlq { client, cmd } => cli::dlq::dlq(&client, cmd),
        Command::Webhooks { client, cmd } => cli::webhooks::webhooks(&client, cmd),
        Command::Archives { client, cmd } => cli::archives::archives(&client, cmd),
        Command::Replays { client, cmd } => cli::replays::replays(&client, cmd),
        Command::Events { cmd } => cli::events::run(cmd),
        Command::Workflows { client, cmd } => cli::workflows::run(&client, cmd),
        Command::Executions { client, cmd } => cli::executions::executions(&client, cmd),
        Command::Approvals { client, cmd } => cli::approvals::approvals(&client, cmd),
        Command::Tasks { client, cmd } => cli::tasks::tasks(&client, cmd),
        Command::Sessions { client, cmd } => cli::sessions::sessions(&client, cmd),
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
