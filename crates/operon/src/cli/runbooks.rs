//! Durable workflows on the server: `operon workflows create|update|list|
//! describe|delete|start`, `operon executions ...`, `operon approvals ...`,
//! `operon tasks ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, runtime};
use super::input::{json_arg, read_json_or_yaml_file};
use super::output::{duration, escape, print_json, table, text, time};

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
                let body = json!({"name": name, "definition": definition, "role": role});
                let out = client.post("/v1/workflows", &body).await?;
                print_or(args, &out, || {
                    format!("workflow {name} version {}", text(&out["version"]))
                });
            }
            ServerWorkflowsCmd::Update {
                name,
                definition,
                role,
            } => {
                let definition = read_definition(&definition)?;
                let out = client
                    .put(
                        &format!("/v1/workflows/{name}"),
                        &json!({"definition": definition, "role": role}),
                    )
                    .await?;
                print_or(args, &out, || {
                    format!("workflow {name} version {}", text(&out["version"]))
                });
            }
            ServerWorkflowsCmd::List => {
                let list = client.get("/v1/workflows").await?;
                print_or(args, &list, || {
                    let rows = items(&list)
                        .map(|w| vec![text(&w["name"]), text(&w["version"]), time(&w["updatedAt"])])
                        .collect();
                    table(&["NAME", "VERSION", "UPDATED"], rows)
                });
            }
            ServerWorkflowsCmd::Describe { name } => {
                let w = client.get(&format!("/v1/workflows/{name}")).await?;
                if args.json {
                    print_json(&w);
                } else {
                    println!(
                        "workflow {} version {}",
                        text(&w["name"]),
                        text(&w["version"])
                    );
                    println!("{}", serde_json::to_string_pretty(&w["definition"])?);
                }
            }
            ServerWorkflowsCmd::Delete { name } => {
                let out = client.delete(&format!("/v1/workflows/{name}")).await?;
                print_or(args, &out, || format!("workflow {name} deleted"));
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
                let body = json!({"input": input, "name": execution_name});
                let out = client
                    .post(&format!("/v1/workflows/{name}/executions"), &body)
                    .await?;
                print_or(args, &out, || text(&out["executionId"]));
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

pub(super) fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array().into_iter().flatten()
}

pub(super) fn execution_rows(list: &Value) -> Vec<Vec<String>> {
    items(list)
        .map(|e| {
            vec![
                text(&e["executionId"]),
                text(&e["workflow"]),
                text(&e["name"]),
                text(&e["status"]),
                time(&e["startedAt"]),
                duration(&e["startedAt"], &e["stoppedAt"]),
            ]
        })
        .collect()
}

pub(super) fn describe_execution(e: &Value) {
    println!("execution  {}", text(&e["executionId"]));
    println!(
        "workflow   {} (version {})",
        text(&e["workflow"]),
        text(&e["version"])
    );
    println!("name       {}", text(&e["name"]));
    println!("status     {}", text(&e["status"]));
    println!(
        "started    {} by {}",
        time(&e["startedAt"]),
        text(&e["startedBy"])
    );
    println!("stopped    {}", time(&e["stoppedAt"]));
    println!("input      {}", escape(&e["input"].to_string()));
    if !e["output"].is_null() {
        println!("output     {}", escape(&e["output"].to_string()));
    }
    if !e["error"].is_null() {
        println!("error      {}", text(&e["error"]));
        println!("cause      {}", text(&e["cause"]));
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
        let h = client
            .get(&format!("/v1/executions/{id}/history?after={after}"))
            .await?;
        for event in h["events"].as_array().into_iter().flatten() {
            after = after.max(event["id"].as_i64().unwrap_or(after));
            if args.json {
                println!("{event}");
            } else {
                println!("{}", history_line(event));
            }
        }
        let status = text(&h["status"]);
        if status != "RUNNING" {
            // Events committed with the final status may have arrived after
            // this page was read: one more page catches them.
            let tail = client
                .get(&format!("/v1/executions/{id}/history?after={after}"))
                .await?;
            for event in tail["events"].as_array().into_iter().flatten() {
                if args.json {
                    println!("{event}");
                } else {
                    println!("{}", history_line(event));
                }
            }
            eprintln!("execution {id} {status}");
            return Ok(if status == "SUCCEEDED" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
