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

#[derive(clap::Subcommand)]
pub enum ApprovalsCmd {
    /// List approvals (pending by default).
    List {
        /// Pending, Approved, Rejected, Expired or all.
        #[arg(long, default_value = "Pending")]
        status: String,
    },
    /// Approve: the execution continues.
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject: the task fails with Operon.ApprovalRejected.
    Reject {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

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

/// Read a definition file: JSON, or YAML (converted to JSON).
fn read_definition(path: &Path) -> Result<Value> {
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

fn print_or(args: &ClientArgs, value: &Value, human: impl FnOnce() -> String) {
    if args.json {
        print_json(value);
    } else {
        println!("{}", human());
    }
}

fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array().into_iter().flatten()
}

fn execution_rows(list: &Value) -> Vec<Vec<String>> {
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

fn describe_execution(e: &Value) {
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

fn history_line(event: &Value) -> String {
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
async fn watch(args: &ClientArgs, client: &Client, id: &str) -> Result<ExitCode> {
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

pub fn approvals(args: &ClientArgs, cmd: ApprovalsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            ApprovalsCmd::List { status } => {
                let path = if status.eq_ignore_ascii_case("all") {
                    "/v1/approvals".to_string()
                } else {
                    format!("/v1/approvals?status={status}")
                };
                let list = client.get(&path).await?;
                print_or(args, &list, || {
                    let rows = items(&list)
                        .map(|a| {
                            vec![
                                text(&a["id"]),
                                text(&a["status"]),
                                text(&a["execution_id"]),
                                text(&a["state"]),
                                text(&a["message"]),
                                text(&a["decided_by"]),
                            ]
                        })
                        .collect();
                    table(
                        &[
                            "ID",
                            "STATUS",
                            "EXECUTION",
                            "STATE",
                            "MESSAGE",
                            "DECIDED BY",
                        ],
                        rows,
                    )
                });
            }
            ApprovalsCmd::Approve { id, comment } => {
                let a = client
                    .post(
                        &format!("/v1/approvals/{id}/approve"),
                        &json!({"comment": comment}),
                    )
                    .await?;
                print_or(args, &a, || {
                    format!("{id} {} by {}", text(&a["status"]), text(&a["decided_by"]))
                });
            }
            ApprovalsCmd::Reject { id, comment } => {
                let a = client
                    .post(
                        &format!("/v1/approvals/{id}/reject"),
                        &json!({"comment": comment}),
                    )
                    .await?;
                print_or(args, &a, || {
                    format!("{id} {} by {}", text(&a["status"]), text(&a["decided_by"]))
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    })
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
