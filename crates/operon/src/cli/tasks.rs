//! `operon tasks send-success|send-failure|send-heartbeat`: answers for task tokens.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::workflows::TaskAnswer;

use super::client::{Client, ClientArgs, runtime};
use super::client_workflows::TaskVerb;
use super::input::json_arg;
use super::output::esc;
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
        let (verb, body) = match cmd {
            TasksCmd::SendSuccess { task_token, output } => (
                TaskVerb::Success,
                TaskAnswer {
                    task_token,
                    output: Some(json_arg("--output", &output)?),
                    ..TaskAnswer::default()
                },
            ),
            TasksCmd::SendFailure {
                task_token,
                error,
                cause,
            } => (
                TaskVerb::Failure,
                TaskAnswer {
                    task_token,
                    error,
                    cause,
                    ..TaskAnswer::default()
                },
            ),
            TasksCmd::SendHeartbeat { task_token } => (
                TaskVerb::Heartbeat,
                TaskAnswer {
                    task_token,
                    ..TaskAnswer::default()
                },
            ),
        };
        let out = client.answer_task(verb, &body).await?;
        print_or(args, &out.json, || {
            format!("accepted for execution {}", esc(&out.value.execution_id))
        });
        Ok(ExitCode::SUCCESS)
    })
}
