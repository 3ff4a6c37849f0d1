//! Durable workflows on the server: `operon workflows create|update|list|
//! describe|delete|start`, `operon executions ...`, `operon approvals ...`,
//! `operon tasks ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use operon_api::workflows::{CreateWorkflow, Execution, StartExecution, UpdateWorkflow};

use super::client::{Client, ClientArgs, runtime};
use super::input::{json_arg, read_json_or_yaml_file};
use super::output::{esc, escape, millis, millis_between, opt, print_json, table, text, time};

#[derive(clap::Subcommand)]
pub enum ServerWorkflowsCmd {
    /// Create a state machine from an ASL definition (JSON or YAML).
    Create {
        name: String,
        #[arg(long)]
        definition: PathBuf,
        /// The role its executions act as (needs roles:Pass on it); without
        /// one they act as you.
        #[arg(long)]
        role: Option<String>,
    },
    /// Add a new version (running executions keep theirs).
    Update {
        name: String,
        #[arg(long)]
        definition: PathBuf,
        /// A new role; without it the current one is kept, "" removes it.
        #[arg(long)]
        role: Option<String>,
    },
    /// List state machines.
    List,
    /// Show a state machine and its latest definition.
    Describe { name: String },
    /// Delete a state machine (refused while executions of it run).
    Delete { name: String },
    /// Start an execution; prints its id.
    Start {
        name: String,
        /// The input: JSON text, or @FILE.
        #[arg(long)]
        input: Option<String>,
        /// The execution name (an idempotency key).
        #[arg(long = "name")]
        execution_name: Option<String>,
    },
}

/// Read a definition file: JSON, or YAML (converted to JSON).
pub(super) fn read_definition(path: &Path) -> Result<Value> {
    read_json_or_yaml_file("the definition", path)
}

pub fn workflows(args: &ClientArgs, cmd: ServerWorkflowsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            ServerWorkflowsCmd::Create {
                name,
                definition,
                role,
            } => {
                let definition = read_definition(&definition)?;
                let body = CreateWorkflow {
                    name: name.clone(),
                    definition,
                    role,
                };
                let out = client.create_workflow(&body).await?;
                print_or(args, &out.json, || {
                    format!("workflow {name} version {}", out.value.version)
                });
            }
            ServerWorkflowsCmd::Update {
                name,
                definition,
                role,
            } => {
                let definition = read_definition(&definition)?;
                let body = UpdateWorkflow { definition, role };
                let out = client.update_workflow(&name, &body).await?;
                print_or(args, &out.json, || {
                    format!("workflow {name} version {}", out.value.version)
                });
            }
            ServerWorkflowsCmd::List => {
                let list = client.workflows().await?;
                print_or(args, &list.json, || {
                    let rows = list
                        .value
                        .iter()
                        .map(|w| {
                            vec![
                                esc(&w.name),
                                w.version.to_string(),
                                millis(Some(w.updated_at)),
                            ]
                        })
                        .collect();
                    table(&["NAME", "VERSION", "UPDATED"], rows)
                });
            }
            ServerWorkflowsCmd::Describe { name } => {
                let w = client.workflow(&name).await?;
                if args.json {
                    print_json(&w.json);
                } else {
                    println!(
                        "workflow {} version {}",
                        esc(&w.value.name),
                        w.value.version
                    );
                    println!("{}", serde_json::to_string_pretty(&w.value.definition)?);
                }
            }
            ServerWorkflowsCmd::Delete { name } => {
                let out = client.delete_workflow(&name).await?;
                print_or(args, &out.json, || format!("workflow {name} deleted"));
            }
            ServerWorkflowsCmd::Start {
                name,
                input,
                execution_name,
            } => {
                let input = match input {
                    Some(i) => json_arg("--input", &i)?,
                    None => json!({}),
                };
                let body = StartExecution {
                    input: Some(input),
                    name: execution_name,
                };
                let out = client.start_execution(&name, &body).await?;
                print_or(args, &out.json, || esc(&out.value.execution_id));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn print_or(args: &ClientArgs, value: &Value, human: impl FnOnce() -> String) {
    if args.json {
        print_json(value);
    } else {
        println!("{}", human());
    }
}

pub(super) fn execution_rows(list: &[Execution]) -> Vec<Vec<String>> {
    list.iter()
        .map(|e| {
            vec![
                esc(&e.execution_id),
                esc(&e.workflow),
                esc(&e.name),
                esc(&e.status),
                millis(Some(e.started_at)),
                millis_between(Some(e.started_at), e.stopped_at),
            ]
        })
        .collect()
}

pub(super) fn describe_execution(e: &Execution) {
    println!("execution  {}", esc(&e.execution_id));
    println!("workflow   {} (version {})", esc(&e.workflow), e.version);
    println!("name       {}", esc(&e.name));
    println!("status     {}", esc(&e.status));
    println!(
        "started    {} by {}",
        millis(Some(e.started_at)),
        esc(&e.started_by)
    );
    println!("stopped    {}", millis(e.stopped_at));
    println!("input      {}", escape(&e.input.to_string()));
    if let Some(output) = &e.output {
        println!("output     {}", escape(&output.to_string()));
    }
    if let Some(error) = &e.error {
        println!("error      {}", esc(error));
        println!("cause      {}", opt(e.cause.as_deref()));
    }
}

pub(super) fn history_line(event: &Value) -> String {
    let mut line = format!(
        "{:>4} {} {}",
        text(&event["id"]),
        time(&event["timestamp_millis"]),
        text(&event["type"])
    );
    for key in ["name", "resource", "error", "cause"] {
        if let Some(v) = event.get(key).filter(|v| !v.is_null()) {
            line.push_str(&format!(" {key}={}", text(v)));
        }
    }
    line
}

/// Poll the history and print new events until the execution ends.
pub(super) async fn watch(args: &ClientArgs, client: &Client, id: &str) -> Result<ExitCode> {
    let mut after = 0i64;
    loop {
        let h = client.execution_history(id, Some(after)).await?.value;
        for event in &h.events {
            after = after.max(event["id"].as_i64().unwrap_or(after));
            if args.json {
                println!("{event}");
            } else {
                println!("{}", history_line(event));
            }
        }
        let status = h.status;
        if status != "RUNNING" {
            // Events committed with the final status may have arrived after
            // this page was read: one more page catches them.
            let tail = client.execution_history(id, Some(after)).await?.value;
            for event in &tail.events {
                if args.json {
                    println!("{event}");
                } else {
                    println!("{}", history_line(event));
                }
            }
            eprintln!("execution {id} {}", esc(&status));
            return Ok(if status == "SUCCEEDED" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
