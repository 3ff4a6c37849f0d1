//! `operon run` and `operon commands list|show|cancel`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use futures_util::StreamExt;
use operon_api::{CommandView, CreateCommand, InvocationStatus};
use serde_json::{Map, Value, json};

use super::client::{Answer, Client, ClientArgs, Unreachable, key_value, runtime};
use super::documents::version_value;
use super::output::{esc, escape, millis, millis_between, opt, print_json, table, text};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Target a node by id or name (repeatable).
    #[arg(long = "node", value_name = "ID")]
    nodes: Vec<String>,
    /// Target nodes by tag, `tag:KEY=VALUE` (repeatable; all must hold), or `all`.
    #[arg(long = "targets", value_name = "tag:KEY=VALUE|all")]
    targets: Vec<String>,
    /// Run a stored document instead of a shell command.
    #[arg(long)]
    document: Option<String>,
    /// The version of --document: a number, $DEFAULT or $LATEST (default:
    /// the document's default version).
    #[arg(long, value_name = "N|$DEFAULT|$LATEST", requires = "document")]
    document_version: Option<String>,
    /// Document parameter (repeatable; repeating a key builds a list).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Nodes running at once: a count or a percentage of the targets.
    #[arg(long, default_value = "50")]
    max_concurrency: String,
    /// Errors tolerated before dispatch stops: a count or a percentage.
    #[arg(long, default_value = "0")]
    max_errors: String,
    /// Execution timeout in seconds.
    #[arg(long)]
    timeout: Option<i64>,
    /// Seconds an offline node may take to come online and receive the command.
    #[arg(long)]
    delivery_timeout: Option<i64>,
    /// Working directory on the nodes.
    #[arg(long)]
    cwd: Option<String>,
    /// Environment variable for the command (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Run as this user on the nodes.
    #[arg(long)]
    user: Option<String>,
    /// With a desired-state --document: report what would change on each
    /// node (with diffs), change nothing.
    #[arg(long, requires = "document")]
    check: bool,
    /// The shell command, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

pub fn run(client_args: &ClientArgs, args: RunArgs) -> Result<ExitCode> {
    let body = run_request(&args)?;
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        let created = client.create_command(&body).await?.value.command;
        let id = created.id;
        if !client_args.json {
            eprintln!("command {} on {} node(s)", esc(&id), created.target_count);
        }
        let refused = created.request["refused"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in &refused {
            eprintln!("refused on {}: {}", text(&r["node"]), text(&r["reason"]));
        }
        let code = follow_to_end(&client, &id, client_args.json).await?;
        if refused.is_empty() {
            Ok(code)
        } else {
            // Refused nodes are failures the user must see in the exit code.
            Ok(ExitCode::from(1))
        }
    })
}

/// Follow a command's output live (unless `json`), wait for its end, print
/// the summary (or the JSON of the finished command) and give the exit code
/// its statuses call for.
pub(super) async fn follow_to_end(client: &Client, id: &str, json: bool) -> Result<ExitCode> {
    let streamed = follow(client, id, !json).await;
    let finished = wait_until_final(client, id).await?;
    if json {
        print_json(&finished.json);
    } else {
        print_missed_output(&finished.value, &streamed);
        println!("{}", summary_table(&finished.value));
    }
    Ok(exit_code_for(&finished.value))
}

fn run_request(args: &RunArgs) -> Result<CreateCommand> {
    let mut parameters = Map::new();
    for param in &args.params {
        let (key, value) = key_value(param)?;
        add_param(&mut parameters, key, value);
    }
    let document = match (&args.document, args.command.is_empty()) {
        (Some(_), false) => bail!("give either --document or a command after --, not both"),
        (None, true) => bail!(
            "nothing to run: give a command after -- (e.g. operon run --targets all -- uptime) or --document"
        ),
        (Some(name), true) => name.clone(),
        (None, false) => {
            parameters.insert("commands".into(), json!([shell_script(&args.command)?]));
            operon_server::documents::RUN_SHELL_SCRIPT.to_string()
        }
    };
    let env = args
        .env
        .iter()
        .map(|e| key_value(e))
        .collect::<Result<_>>()?;
    Ok(CreateCommand {
        document: Some(document),
        document_version: args.document_version.as_deref().map(version_value),
        parameters,
        node_ids: args.nodes.clone(),
        targets: args.targets.iter().cloned().map(Value::String).collect(),
        max_concurrency: Some(args.max_concurrency.clone()),
        max_errors: Some(args.max_errors.clone()),
        timeout_secs: args.timeout,
        delivery_timeout_secs: args.delivery_timeout,
        cwd: args.cwd.clone(),
        env,
        user: args.user.clone(),
        check: args.check,
    })
}

/// `k=a --param k=b` gives a list; a JSON array or object literal is parsed.
pub(super) fn add_param(parameters: &mut Map<String, Value>, key: String, value: String) {
    let parsed = match value.trim_start().chars().next() {
        Some('[') | Some('{') => serde_json::from_str(&value).unwrap_or(Value::String(value)),
        _ => Value::String(value),
    };
    match parameters.get_mut(&key) {
        Some(Value::Array(items)) => items.push(parsed),
        Some(existing) => *existing = json!([existing.clone(), parsed]),
        None => {
            parameters.insert(key, parsed);
        }
    }
}

/// Nodes whose output was printed live.
type Streamed = HashSet<String>;

/// Print live output, each line prefixed by its node name, until the command
/// is done or the stream breaks (then the caller falls back to polling).
async fn follow(client: &Client, id: &str, print: bool) -> Streamed {
    let mut streamed = Streamed::new();
    let Ok(response) = client.stream(&format!("/v1/commands/{id}/stream")).await else {
        return streamed;
    };
    let mut partial: HashMap<(String, String), String> = HashMap::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let Some(event) = sse_data(&frame) else {
                continue;
            };
            if print {
                show_event(&event, &mut partial, &mut streamed);
            }
            if event["event"] == "done" {
                return streamed;
            }
        }
    }
    streamed
}

fn sse_data(frame: &str) -> Option<Value> {
    let data: Vec<&str> = frame
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    if data.is_empty() {
        return None;
    }
    serde_json::from_str(&data.join("\n")).ok()
}

fn show_event(
    event: &Value,
    partial: &mut HashMap<(String, String), String>,
    streamed: &mut Streamed,
) {
    let node = text(&event["node_name"]);
    match event["event"].as_str() {
        Some("output") => {
            let stream = text(&event["stream"]);
            let buf = partial.entry((node.clone(), stream.clone())).or_default();
            buf.push_str(event["data"].as_str().unwrap_or(""));
            while let Some(nl) = buf.find('\n') {
                let line: String = buf.drain(..=nl).collect();
                print_line(&node, &stream, line.trim_end_matches('\n'));
            }
            streamed.insert(node);
        }
        Some("status") => {
            let status = text(&event["status"]);
            if status == "InProgress" {
                return;
            }
            for stream in ["stdout", "stderr"] {
                if let Some(rest) = partial.remove(&(node.clone(), stream.to_string()))
                    && !rest.is_empty()
                {
                    print_line(&node, stream, &rest);
                }
            }
            streamed.insert(node);
        }
        _ => {}
    }
}

fn print_line(node: &str, stream: &str, line: &str) {
    if stream == "stderr" {
        eprintln!("{node} | {line}");
    } else {
        println!("{node} | {line}");
        let _ = std::io::stdout().flush();
    }
}

/// How long a command being followed may lose its server (a restart) before
/// the CLI gives up.
const SERVER_GONE_PATIENCE: Duration = Duration::from_secs(120);

/// Poll until the command is final (after the live stream ended). A server
/// that is briefly unreachable (restarting) is waited for: the command goes on
/// without it and its results are kept by the agents.
async fn wait_until_final(client: &Client, id: &str) -> Result<Answer<CommandView>> {
    let mut delay = Duration::from_millis(50);
    let mut unreachable_since: Option<std::time::Instant> = None;
    loop {
        match client.command(id).await {
            Ok(command) => {
                unreachable_since = None;
                if command.value.command.status.is_final() {
                    return Ok(command);
                }
            }
            Err(err) if err.downcast_ref::<Unreachable>().is_some() => {
                let since = *unreachable_since.get_or_insert_with(|| {
                    eprintln!("lost the server; waiting for it to come back");
                    std::time::Instant::now()
                });
                if since.elapsed() > SERVER_GONE_PATIENCE {
                    return Err(err.context(format!(
                        "gave up following command {id}; see it later with `operon commands show {id}`"
                    )));
                }
            }
            Err(err) => return Err(err),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Nodes whose live output we missed (a dropped stream): print stored output.
/// The words after `--` as one shell script: a single word is the script
/// itself (`-- 'cd /srv && make'`); several are quoted one by one, so each
/// reaches the node as the user typed it (`-- sh -c 'echo a   b'`).
fn shell_script(words: &[String]) -> anyhow::Result<String> {
    match words {
        [script] => Ok(script.clone()),
        words => shlex::try_join(words.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("cannot quote the command for the shell: {e}")),
    }
}

fn print_missed_output(command: &CommandView, streamed: &Streamed) {
    for inv in &command.invocations {
        let node = esc(&inv.node_name);
        if streamed.contains(&node) {
            continue;
        }
        for (body, stream) in [(&inv.stdout, "stdout"), (&inv.stderr, "stderr")] {
            for line in body.lines() {
                print_line(&node, stream, line);
            }
        }
    }
}

fn summary_table(command: &CommandView) -> String {
    let rows = command
        .invocations
        .iter()
        .map(|inv| {
            vec![
                esc(&inv.node_name),
                inv.status.to_string(),
                opt(inv.exit_code),
                millis_between(inv.started_at, inv.finished_at),
                opt(inv.status_detail.as_deref()),
            ]
        })
        .collect();
    table(&["NODE", "STATUS", "EXIT", "DURATION", "DETAIL"], rows)
}

fn exit_code_for(command: &CommandView) -> ExitCode {
    if command.command.status == InvocationStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[derive(clap::Subcommand)]
pub enum CommandsCmd {
    /// List recent commands.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a command with each node's status, exit code and output.
    Show { id: String },
    /// Cancel a command: pending nodes are skipped, running ones stopped.
    Cancel { id: String },
}

pub fn commands(client_args: &ClientArgs, cmd: CommandsCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        match cmd {
            CommandsCmd::List { limit } => {
                let list = client.commands(limit).await?;
                if client_args.json {
                    print_json(&list.json);
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = list
                    .value
                    .iter()
                    .map(|c| {
                        vec![
                            esc(&c.id),
                            esc(&c.document_name),
                            c.status.to_string(),
                            format!("{}/{}", c.completed_count, c.target_count),
                            c.error_count.to_string(),
                            millis(Some(c.created_at)),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["ID", "DOCUMENT", "STATUS", "DONE", "ERRORS", "CREATED"],
                        rows
                    )
                );
            }
            CommandsCmd::Show { id } => {
                let command = client.command(&id).await?;
                if client_args.json {
                    print_json(&command.json);
                    return Ok(ExitCode::SUCCESS);
                }
                print_command(&command.value);
            }
            CommandsCmd::Cancel { id } => {
                let answer = client.cancel_command(&id).await?;
                if client_args.json {
                    print_json(&answer.json);
                } else {
                    println!("cancel requested for {id}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_command(view: &CommandView) {
    let c = &view.command;
    println!("Command        {}", esc(&c.id));
    println!(
        "Document       {} (version {})",
        esc(&c.document_name),
        c.document_version
    );
    println!("Status         {}", c.status);
    println!("Requested by   {}", esc(&c.requested_by));
    println!("Created        {}", millis(Some(c.created_at)));
    println!("Finished       {}", millis(c.finished_at));
    println!(
        "Rate control   max-concurrency {}, max-errors {}",
        esc(&c.max_concurrency),
        esc(&c.max_errors)
    );
    println!("Parameters     {}", escape(&c.parameters.to_string()));
    for inv in &view.invocations {
        println!();
        println!(
            "== {} ({}): {} exit={} {}",
            esc(&inv.node_name),
            esc(&inv.node_id),
            inv.status,
            opt(inv.exit_code),
            escape(inv.status_detail.as_deref().unwrap_or(""))
        );
        for (field, body, truncated) in [
            ("stdout", &inv.stdout, inv.stdout_truncated),
            ("stderr", &inv.stderr, inv.stderr_truncated),
        ] {
            if body.is_empty() {
                continue;
            }
            let note = if truncated { " (truncated)" } else { "" };
            println!("-- {field}{note}");
            print!("{body}");
            if !body.ends_with('\n') {
                println!();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_versions_are_sent_as_numbers_or_selectors() {
        assert_eq!(version_value("3"), json!(3));
        assert_eq!(version_value("$LATEST"), json!("$LATEST"));
        assert_eq!(version_value("$DEFAULT"), json!("$DEFAULT"));
    }

    #[test]
    fn repeated_params_build_lists_and_json_literals_parse() {
        let mut p = Map::new();
        add_param(&mut p, "commands".into(), "echo a".into());
        add_param(&mut p, "commands".into(), "echo b".into());
        add_param(&mut p, "map".into(), r#"{"a": 1}"#.into());
        assert_eq!(p["commands"], json!(["echo a", "echo b"]));
        assert_eq!(p["map"], json!({"a": 1}));
    }

    #[test]
    fn sse_frames_decode() {
        let frame = "event: x\ndata: {\"event\":\"done\",\"status\":\"Success\"}\n\n";
        assert_eq!(sse_data(frame).unwrap()["status"], "Success");
        assert!(sse_data(": keep-alive\n\n").is_none());
    }

    /// What `/bin/sh -c SCRIPT` prints, as the agent runs steps.
    fn sh(script: &str) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// Several words run through the node's shell exactly as the same argv
    /// run directly (as `ssh host -- words` users expect).
    #[test]
    fn several_words_reach_the_program_as_typed() {
        let cases: &[&[&str]] = &[
            &["sh", "-c", "echo a   b; printf '%s\\n' \"x  y\""],
            &[
                "printf", "%s|", "it's", "$HOME", "a   b", "", "*", "`id`", "a\nb",
            ],
        ];
        for words in cases {
            let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
            let direct = std::process::Command::new(&words[0])
                .args(&words[1..])
                .output()
                .unwrap();
            let script = shell_script(&words).unwrap();
            assert_eq!(
                sh(&script),
                String::from_utf8(direct.stdout).unwrap(),
                "{script}"
            );
        }
        let script = shell_script(&["printf".into(), "%s|".into(), "a   b".into()]).unwrap();
        assert_eq!(sh(&script), "a   b|");
    }

    #[test]
    fn one_word_is_a_script_of_its_own() {
        let script = shell_script(&["echo one && echo two".to_string()]).unwrap();
        assert_eq!(sh(&script), "one\ntwo\n");
        assert!(shell_script(&["a".into(), "b\0c".into()]).is_err());
    }
}
