//! `operon executions list|describe|history|stop|redrive`: runs of workflows.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::client::{Client, ClientArgs, runtime};
use super::output::{print_json, table, text};
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
                let mut path = format!("/v1/executions?limit={limit}");
                if let Some(s) = status {
                    path.push_str(&format!("&status={s}"));
                }
                if let Some(w) = workflow {
                    path.push_str(&format!("&workflow={w}"));
                }
                let list = client.get(&path).await?;
                print_or(args, &list, || {
                    table(
                        &["ID", "WORKFLOW", "NAME", "STATUS", "STARTED", "DURATION"],
                        execution_rows(&list),
                    )
                });
            }
            ExecutionsCmd::Describe { id } => {
                let e = client.get(&format!("/v1/executions/{id}")).await?;
                if args.json {
                    print_json(&e);
                } else {
                    describe_execution(&e);
                }
            }
            ExecutionsCmd::History { id } => {
                let h = client.get(&format!("/v1/executions/{id}/history")).await?;
                if args.json {
                    print_json(&h);
                } else {
                    for event in h["events"].as_array().into_iter().flatten() {
                        println!("{}", history_line(event));
                    }
                }
            }
            ExecutionsCmd::Stop { id, error, cause } => {
                let e = client
                    .post(
                        &format!("/v1/executions/{id}/stop"),
                        &json!({"error": error, "cause": cause}),
                    )
                    .await?;
                print_or(args, &e, || format!("{id} {}", text(&e["status"])));
            }
            ExecutionsCmd::Redrive { id } => {
                let e = client
                    .post(&format!("/v1/executions/{id}/redrive"), &json!({}))
                    .await?;
                print_or(args, &e, || format!("{id} {}", text(&e["status"])));
            }
            ExecutionsCmd::Watch { id } => return watch(args, &client, &id).await,
        }
        Ok(ExitCode::SUCCESS)
    })
}
