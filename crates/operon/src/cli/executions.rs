//! `operon executions list|describe|history|stop|redrive`: runs of workflows.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::workflows::StopExecution;

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, print_json, table};
use super::runbooks::*;

#[derive(clap::Subcommand)]
pub enum ExecutionsCmd {
    /// List executions, newest first.
    List {
        /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Show one execution.
    Describe { id: String },
    /// Print an execution's history events.
    History { id: String },
    /// Stop (abort) a running execution.
    Stop {
        id: String,
        #[arg(long)]
        error: Option<String>,
        #[arg(long)]
        cause: Option<String>,
    },
    /// Restart a failed, timed-out or aborted execution from the state that failed.
    Redrive { id: String },
    /// Follow an execution state by state until it ends; exit 0 if it succeeded.
    Watch { id: String },
}

pub fn executions(args: &ClientArgs, cmd: ExecutionsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            ExecutionsCmd::List {
                status,
                workflow,
                limit,
            } => {
                let list = client
                    .executions(status.as_deref(), workflow.as_deref(), limit)
                    .await?;
                print_or(args, &list.json, || {
                    table(
                        &["ID", "WORKFLOW", "NAME", "STATUS", "STARTED", "DURATION"],
                        execution_rows(&list.value),
                    )
                });
            }
            ExecutionsCmd::Describe { id } => {
                let e = client.execution(&id).await?;
                if args.json {
                    print_json(&e.json);
                } else {
                    describe_execution(&e.value);
                }
            }
            ExecutionsCmd::History { id } => {
                let h = client.execution_history(&id, None).await?;
                if args.json {
                    print_json(&h.json);
                } else {
                    for event in &h.value.events {
                        println!("{}", history_line(event));
                    }
                }
            }
            ExecutionsCmd::Stop { id, error, cause } => {
                let e = client
                    .stop_execution(&id, &StopExecution { error, cause })
                    .await?;
                print_or(args, &e.json, || format!("{id} {}", esc(&e.value.status)));
            }
            ExecutionsCmd::Redrive { id } => {
                let e = client.redrive_execution(&id).await?;
                print_or(args, &e.json, || format!("{id} {}", esc(&e.value.status)));
            }
            ExecutionsCmd::Watch { id } => return watch(args, &client, &id).await,
        }
        Ok(ExitCode::SUCCESS)
    })
}
