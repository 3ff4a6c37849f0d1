//! `operon tasks send-success|send-failure|send-heartbeat`: answers for task tokens.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::client::{Client, ClientArgs, runtime};
use super::input::json_arg;
use super::output::text;
use super::runbooks::*;

/// The verbs are Step Functions' (`send-task-success`, ...), so they share a prefix.
#[allow(clippy::enum_variant_names)]
#[derive(clap::Subcommand)]
pub enum TasksCmd {
    /// Complete a .waitForTaskToken task with an output.
    SendSuccess {
        #[arg(value_name = "TOKEN")]
        task_token: String,
        /// The output: JSON text, or @FILE.
        #[arg(long, default_value = "{}")]
        output: String,
    },
    /// Fail a .waitForTaskToken task.
    SendFailure {
        #[arg(value_name = "TOKEN")]
        task_token: String,
        #[arg(long)]
        error: Option<String>,
        #[arg(long)]
        cause: Option<String>,
    },
    /// Tell a task with HeartbeatSeconds that it is still alive.
    SendHeartbeat {
        #[arg(value_name = "TOKEN")]
        task_token: String,
    },
}

pub fn tasks(args: &ClientArgs, cmd: TasksCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        let (path, body) = match cmd {
            TasksCmd::SendSuccess { task_token, output } => (
                "/v1/tasks/send-success",
                json!({"taskToken": task_token, "output": json_arg("--output", &output)?}),
            ),
            TasksCmd::SendFailure {
                task_token,
                error,
                cause,
            } => (
                "/v1/tasks/send-failure",
                json!({"taskToken": task_token, "error": error, "cause": cause}),
            ),
            TasksCmd::SendHeartbeat { task_token } => {
                ("/v1/tasks/send-heartbeat", json!({"taskToken": task_token}))
            }
        };
        let out = client.post(path, &body).await?;
        print_or(args, &out, || {
            format!("accepted for execution {}", text(&out["executionId"]))
        });
        Ok(ExitCode::SUCCESS)
    })
}
