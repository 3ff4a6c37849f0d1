//! The event bus from the command line: `operon buses ...` and `operon
//! events put|tail`, and the helpers the bus's other nouns share (`rules.rs`,
//! `dlq.rs`, `webhooks.rs`, `archives.rs`, `replays.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, runtime};
use super::input::{json_arg, read_json_file as read_json};
use super::output::{escape, print_json, table, text, time};
use operon_api::events::CreateBus;

pub(super) fn as_array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub(super) fn done(
    client_args: &ClientArgs,
    value: &Value,
    human: impl FnOnce(&Value),
) -> ExitCode {
    if client_args.json {
        print_json(value);
    } else {
        human(value);
    }
    ExitCode::SUCCESS
}

// ----- events put / tail -----------------------------------------------------

#[derive(clap::Args)]
pub struct PutArgs {
    /// Event source, e.g. my.app.
    #[arg(long, required_unless_present = "file", requires = "detail_type")]
    source: Option<String>,
    #[arg(long)]
    detail_type: Option<String>,
    /// Detail: a JSON object (default `{}`).
    #[arg(long, default_value = "{}")]
    detail: String,
    /// Resource ARN or name (repeatable).
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Bus (default: default).
    #[arg(long)]
    bus: Option<String>,
    /// Event time (RFC 3339); the ingestion time when absent.
    #[arg(long)]
    time: Option<String>,
    /// PutEvents entries: a JSON array, or {"Entries": [...]}.
    #[arg(long, conflicts_with_all = ["source", "detail_type", "resources", "time"])]
    file: Option<PathBuf>,
}

pub fn put(client_args: &ClientArgs, args: PutArgs) -> Result<ExitCode> {
    let entries = match &args.file {
        Some(path) => {
            let value = read_json("--file", path)?;
            match value.get("Entries").cloned().unwrap_or(value) {
                Value::Array(items) => items,
                _ => bail!("--file: expected a JSON array of entries or {{\"Entries\": [...]}}"),
            }
        }
        None => {
            let detail: Value = serde_json::from_str(&args.detail)
                .context("--detail: not valid JSON (give a JSON object)")?;
            let mut entry = json!({
                "Source": args.source,
                "DetailType": args.detail_type,
                "Detail": detail.to_string(),
                "Resources": args.resources,
            });
            if let Some(time) = &args.time {
                entry["Time"] = json!(time);
            }
            vec![entry]
        }
    };
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|mut e| {
            if let Some(bus) = &args.bus
                && e.get("EventBusName").is_none()
            {
                e["EventBusName"] = json!(bus);
            }
            if let Some(detail) = e.get("Detail").filter(|d| !d.is_string()).cloned() {
                e["Detail"] = json!(detail.to_string());
            }
            e
        })
        .collect();
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        let mut answers = Vec::new();
        let mut failed = 0;
        for chunk in entries.chunks(100) {
            let answer = client.put_events(chunk).await?;
            failed += answer.value.failed_entry_count;
            answers.extend(as_array(&answer.json["Entries"]).iter().cloned());
        }
        let result = json!({"FailedEntryCount": failed, "Entries": answers});
        if client_args.json {
            print_json(&result);
        } else {
            for (i, a) in answers.iter().enumerate() {
                match a.get("EventId") {
                    Some(id) => println!("{}", text(id)),
                    None => eprintln!(
                        "entry {i}: {}: {}",
                        text(&a["ErrorCode"]),
                        text(&a["ErrorMessage"])
                    ),
                }
            }
        }
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

#[derive(clap::Args)]
pub struct TailArgs {
    #[arg(long, default_value = "default")]
    bus: String,
    /// Only events matching this pattern (a JSON file or inline JSON).
    #[arg(long)]
    pattern: Option<String>,
}

/// Print every matching event as one JSON line, until interrupted.
pub fn tail(client_args: &ClientArgs, args: TailArgs) -> Result<ExitCode> {
    let mut query = format!("/v1/buses/{}/tail", encode(&args.bus));
    if let Some(p) = &args.pattern {
        let pattern = json_arg("--pattern", p)?;
        query.push_str(&format!("?pattern={}", encode(&pattern.to_string())));
    }
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        let response = client.stream(&query).await?;
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        use std::io::Write;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("reading the event stream")?;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let lagged = frame.lines().any(|l| l == "event: lagged");
                for data in frame.lines().filter_map(|l| l.strip_prefix("data:")) {
                    let data = data.strip_prefix(' ').unwrap_or(data);
                    if lagged {
                        eprintln!("warning: {data} events were skipped (the tail fell behind)");
                    } else {
                        println!("{data}");
                    }
                }
                let _ = std::io::stdout().flush();
            }
        }
        bail!("the server closed the event stream")
    })
}

/// Percent-encode a query value.
pub(super) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ----- buses -------------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum BusesCmd {
    /// Create a bus.
    Create { name: String },
    /// List buses.
    List,
    /// Delete a bus no rule, archive or webhook uses.
    Delete { name: String },
}

pub fn buses(client_args: &ClientArgs, cmd: BusesCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        Ok(match cmd {
            BusesCmd::Create { name } => {
                let created = client.create_bus(&CreateBus { name }).await?;
                done(client_args, &created.json, |_| {
                    println!("created bus {}", escape(&created.value.name))
                })
            }
            BusesCmd::List => {
                let buses = client.buses().await?;
                done(client_args, &buses.json, |_| {
                    let rows = buses
                        .value
                        .iter()
                        .map(|b| {
                            vec![
                                escape(&b.name).into_owned(),
                                time(&Value::from(b.created_at)),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "CREATED"], rows));
                })
            }
            BusesCmd::Delete { name } => {
                let deleted = client.delete_bus(&name).await?;
                done(client_args, &deleted.json, |_| {
                    println!("deleted bus {name}")
                })
            }
        })
    })
}
