//! The event bus from the command line: `operon buses|rules|webhooks|dlq|
//! archives|replays ...`, and `operon events put|tail`.
//!
//! Targets are given in the aws-cli spirit: `--target 'kind=webhook,id=h,
//! url=http://...,secret=...,max-retries=3,max-age=3600'` for the simple
//! cases, `--targets-file T.json` (an array of EventBridge-shaped Target
//! objects with `Kind`) for everything, input transformers included.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::client::{Client, ClientArgs, runtime};
use super::input::{json_arg, read_json_file as read_json};
use super::output::{print_json, table, text, time};

fn as_array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn done(client_args: &ClientArgs, value: &Value, human: impl FnOnce(&Value)) -> ExitCode {
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
            let answer = client
                .post("/v1/events", &json!({"Entries": chunk}))
                .await?;
            failed += answer["FailedEntryCount"].as_u64().unwrap_or(0);
            answers.extend(as_array(&answer["Entries"]).iter().cloned());
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
fn encode(value: &str) -> String {
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
                let v = client.post("/v1/buses", &json!({"name": name})).await?;
                done(client_args, &v, |v| {
                    println!("created bus {}", text(&v["name"]))
                })
            }
            BusesCmd::List => {
                let v = client.get("/v1/buses").await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|b| vec![text(&b["name"]), time(&b["created_at"])])
                        .collect();
                    println!("{}", table(&["NAME", "CREATED"], rows));
                })
            }
            BusesCmd::Delete { name } => {
                let v = client.delete(&format!("/v1/buses/{name}")).await?;
                done(client_args, &v, |_| println!("deleted bus {name}"))
            }
        })
    })
}

// ----- rules -------------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum RulesCmd {
    /// Create or replace a rule.
    Put(PutRuleArgs),
    /// List rules.
    List,
    /// Show a rule with its targets.
    Describe {
        name: String,
    },
    /// Delete a rule (its pending deliveries end in the dead letters).
    Delete {
        name: String,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    /// Show whether a rule matches an event and what each target would get.
    Test {
        name: String,
        /// The event (a JSON file or inline JSON).
        #[arg(long)]
        event: String,
    },
}

#[derive(clap::Args)]
pub struct PutRuleArgs {
    name: String,
    #[arg(long, default_value = "default")]
    bus: String,
    /// Event pattern (a JSON file or inline JSON).
    #[arg(
        long,
        required_unless_present = "schedule",
        conflicts_with = "schedule"
    )]
    pattern: Option<String>,
    /// rate(...), cron(...) or at(...).
    #[arg(long)]
    schedule: Option<String>,
    /// IANA time zone for cron() and at() (default UTC).
    #[arg(long, requires = "schedule")]
    timezone: Option<String>,
    /// A target: comma-separated KEY=VALUE (see README, "Targets"). Repeatable.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// A JSON array of EventBridge-shaped targets (with Kind).
    #[arg(long)]
    targets_file: Option<PathBuf>,
    #[arg(long)]
    description: Option<String>,
    /// Create the rule disabled.
    #[arg(long)]
    disabled: bool,
}

/// Parse `kind=webhook,id=h,url=...` into an EventBridge-shaped target.
pub fn parse_target(spec: &str, index: usize) -> Result<Value> {
    let mut target = Map::new();
    let mut retry = Map::new();
    let mut parameters = Map::new();
    let list =
        |v: &str| -> Value { json!(v.split(';').filter(|s| !s.is_empty()).collect::<Vec<_>>()) };
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            bail!("--target {spec:?}: {part:?} is not KEY=VALUE");
        };
        let key = key.trim();
        match key {
            "id" => target.insert("Id".into(), json!(value)),
            "kind" => target.insert("Kind".into(), json!(value)),
            "url" => target.insert("Url".into(), json!(value)),
            "secret" => target.insert("Secret".into(), json!(value)),
            "workflow" => target.insert("Workflow".into(), json!(value)),
            "bus" => target.insert("Bus".into(), json!(value)),
            "document" => target.insert("Document".into(), json!(value)),
            "nodes" => target.insert("NodeIds".into(), list(value)),
            "targets" => target.insert("Targets".into(), list(value)),
            "input" => target.insert("Input".into(), json!(value)),
            "input-path" => target.insert("InputPath".into(), json!(value)),
            "role" => target.insert("RoleArn".into(), json!(value)),
            "max-retries" => retry.insert(
                "MaximumRetryAttempts".into(),
                json!(value.parse::<u32>().with_context(|| {
                    format!("--target: max-retries {value:?} is not a whole number")
                })?),
            ),
            "max-age" => retry.insert(
                "MaximumEventAgeInSeconds".into(),
                json!(value.parse::<u64>().with_context(|| {
                    format!("--target: max-age {value:?} is not a number of seconds")
                })?),
            ),
            other => match other.strip_prefix("param.") {
                Some(name) => parameters.insert(name.to_string(), json!(value)),
                None => bail!(
                    "--target {spec:?}: unknown key {other:?} (id, kind, url, secret, workflow, bus, document, nodes, targets, param.NAME, input, input-path, role, max-retries, max-age)"
                ),
            },
        };
    }
    let Some(kind) = target
        .get("Kind")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        bail!("--target {spec:?}: kind=... is required (webhook, workflow, run-command, bus, log)");
    };
    target
        .entry("Id")
        .or_insert_with(|| json!(format!("{kind}-{}", index + 1)));
    if !retry.is_empty() {
        target.insert("RetryPolicy".into(), Value::Object(retry));
    }
    if !parameters.is_empty() {
        target.insert("Parameters".into(), Value::Object(parameters));
    }
    Ok(Value::Object(target))
}

pub fn rules(client_args: &ClientArgs, cmd: RulesCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        Ok(match cmd {
            RulesCmd::Put(args) => {
                let mut targets = Vec::new();
                if let Some(path) = &args.targets_file {
                    match read_json("--targets-file", path)? {
                        Value::Array(items) => targets.extend(items),
                        _ => bail!("--targets-file: expected a JSON array of targets"),
                    }
                }
                for (i, spec) in args.targets.iter().enumerate() {
                    targets.push(parse_target(spec, targets.len().max(i))?);
                }
                let pattern = args
                    .pattern
                    .as_deref()
                    .map(|p| json_arg("--pattern", p))
                    .transpose()?;
                let body = json!({
                    "bus": args.bus,
                    "description": args.description,
                    "pattern": pattern,
                    "schedule": args.schedule,
                    "timezone": args.timezone,
                    "enabled": !args.disabled,
                    "targets": targets,
                });
                let v = client
                    .put(&format!("/v1/rules/{}", args.name), &body)
                    .await?;
                done(client_args, &v, |v| {
                    println!(
                        "rule {} on bus {} with {} target(s)",
                        text(&v["name"]),
                        text(&v["bus"]),
                        as_array(&v["targets"]).len()
                    )
                })
            }
            RulesCmd::List => {
                let v = client.get("/v1/rules").await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|r| {
                            let trigger = if r["schedule"].is_string() {
                                text(&r["schedule"])
                            } else {
                                "pattern".to_string()
                            };
                            vec![
                                text(&r["name"]),
                                text(&r["bus"]),
                                if r["enabled"] == true {
                                    "enabled"
                                } else {
                                    "disabled"
                                }
                                .into(),
                                trigger,
                                as_array(&r["targets"])
                                    .iter()
                                    .map(|t| format!("{}:{}", text(&t["Id"]), text(&t["Kind"])))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "BUS", "STATE", "TRIGGER", "TARGETS"], rows)
                    );
                })
            }
            RulesCmd::Describe { name } => {
                let v = client.get(&format!("/v1/rules/{name}")).await?;
                print_json(&v);
                ExitCode::SUCCESS
            }
            RulesCmd::Delete { name } => {
                let v = client.delete(&format!("/v1/rules/{name}")).await?;
                done(client_args, &v, |_| println!("deleted rule {name}"))
            }
            RulesCmd::Enable { name } => {
                let v = client
                    .post(&format!("/v1/rules/{name}/enable"), &json!({}))
                    .await?;
                done(client_args, &v, |_| println!("enabled rule {name}"))
            }
            RulesCmd::Disable { name } => {
                let v = client
                    .post(&format!("/v1/rules/{name}/disable"), &json!({}))
                    .await?;
                done(client_args, &v, |_| println!("disabled rule {name}"))
            }
            RulesCmd::Test { name, event } => {
                let event = json_arg("--event", &event)?;
                let v = client
                    .post(&format!("/v1/rules/{name}/test"), &json!({"event": event}))
                    .await?;
                done(client_args, &v, |v| {
                    let verdict = if v["matches"] == true {
                        "matches"
                    } else {
                        "does not match"
                    };
                    println!("rule {name} {verdict}");
                    for t in as_array(&v["targets"]) {
                        println!("target {}: {}", text(&t["id"]), text(&t["input"]));
                    }
                })
            }
        })
    })
}

// ----- dead letters ------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum DlqCmd {
    /// Deliveries that exhausted their retry policy.
    List {
        #[arg(long)]
        rule: Option<String>,
    },
    /// One dead letter with its event and last error.
    Show { id: String },
    /// Deliver again (same delivery ids, attempts reset).
    Redrive {
        ids: Vec<String>,
        /// Every dead letter of this rule.
        #[arg(long, conflicts_with = "all")]
        rule: Option<String>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
}

pub fn dlq(client_args: &ClientArgs, cmd: DlqCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        Ok(match cmd {
            DlqCmd::List { rule } => {
                let path = match rule {
                    Some(r) => format!("/v1/dlq?rule={}", encode(&r)),
                    None => "/v1/dlq".to_string(),
                };
                let v = client.get(&path).await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|d| {
                            vec![
                                text(&d["id"]),
                                text(&d["rule"]),
                                text(&d["target_id"]),
                                text(&d["attempts"]),
                                time(&d["failed_at"]),
                                text(&d["last_error"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["ID", "RULE", "TARGET", "ATTEMPTS", "FAILED", "ERROR"],
                            rows
                        )
                    );
                })
            }
            DlqCmd::Show { id } => {
                print_json(&client.get(&format!("/v1/dlq/{id}")).await?);
                ExitCode::SUCCESS
            }
            DlqCmd::Redrive { ids, rule, all } => {
                let v = client
                    .post(
                        "/v1/dlq/redrive",
                        &json!({"ids": ids, "rule": rule, "all": all}),
                    )
                    .await?;
                let missing = as_array(&v["not_found"]).len();
                done(client_args, &v, |v| {
                    println!("redrove {} dead letter(s)", as_array(&v["redriven"]).len());
                    for id in as_array(&v["not_found"]) {
                        eprintln!("no dead letter {}", text(id));
                    }
                });
                if missing > 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
        })
    })
}

// ----- webhooks ----------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum WebhooksCmd {
    /// Create an inbound webhook; prints its URL and secret (shown once).
    Create {
        name: String,
        #[arg(long, default_value = "default")]
        bus: String,
        /// Shared secret (at least 16 characters); generated when absent.
        #[arg(long)]
        secret: Option<String>,
    },
    List,
    Delete {
        name: String,
    },
}

pub fn webhooks(client_args: &ClientArgs, cmd: WebhooksCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    let base = client_args.server.trim_end_matches('/').to_string();
    runtime()?.block_on(async {
        Ok(match cmd {
            WebhooksCmd::Create { name, bus, secret } => {
                let mut v = client
                    .post("/v1/webhooks", &json!({"name": name, "bus": bus, "secret": secret}))
                    .await?;
                v["url"] = json!(format!("{base}{}", text(&v["path"])));
                done(client_args, &v, |v| {
                    println!("url:    {}", text(&v["url"]));
                    println!("secret: {}", text(&v["secret"]));
                    eprintln!(
                        "sign each request: {}: <unix seconds>, {}: sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<body>\")>; the secret is shown only once",
                        text(&v["timestamp_header"]),
                        text(&v["signature_header"])
                    );
                })
            }
            WebhooksCmd::List => {
                let v = client.get("/v1/webhooks").await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|h| {
                            vec![
                                text(&h["name"]),
                                text(&h["bus"]),
                                format!("{base}{}", text(&h["path"])),
                                time(&h["created_at"]),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "BUS", "URL", "CREATED"], rows));
                })
            }
            WebhooksCmd::Delete { name } => {
                let v = client.delete(&format!("/v1/webhooks/{name}")).await?;
                done(client_args, &v, |_| println!("deleted webhook {name}"))
            }
        })
    })
}

// ----- archives and replays ----------------------------------------------------

#[derive(clap::Subcommand)]
pub enum ArchivesCmd {
    /// Keep the events of a bus (matching an optional pattern) for replay.
    Create {
        name: String,
        #[arg(long, default_value = "default")]
        bus: String,
        /// Event pattern (a JSON file or inline JSON).
        #[arg(long)]
        pattern: Option<String>,
        /// Days to keep events (forever when absent).
        #[arg(long)]
        retention_days: Option<i64>,
    },
    List,
    Delete {
        name: String,
    },
}

pub fn archives(client_args: &ClientArgs, cmd: ArchivesCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        Ok(match cmd {
            ArchivesCmd::Create {
                name,
                bus,
                pattern,
                retention_days,
            } => {
                let pattern = pattern.map(|p| json_arg("--pattern", &p)).transpose()?;
                let body = json!({"name": name, "bus": bus, "pattern": pattern,
                    "retention_days": retention_days});
                let v = client.post("/v1/archives", &body).await?;
                done(client_args, &v, |_| println!("created archive {name}"))
            }
            ArchivesCmd::List => {
                let v = client.get("/v1/archives").await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|a| {
                            vec![
                                text(&a["name"]),
                                text(&a["bus"]),
                                text(&a["retention_days"]),
                                time(&a["created_at"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "BUS", "RETENTION DAYS", "CREATED"], rows)
                    );
                })
            }
            ArchivesCmd::Delete { name } => {
                let v = client.delete(&format!("/v1/archives/{name}")).await?;
                done(client_args, &v, |_| println!("deleted archive {name}"))
            }
        })
    })
}

#[derive(clap::Subcommand)]
pub enum ReplaysCmd {
    /// Re-send archived events of a time window to the bus's rules.
    Start {
        #[arg(long)]
        archive: String,
        /// Start of the window (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        from: String,
        /// End of the window (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        to: String,
        /// Only these rules (comma-separated).
        #[arg(long, value_delimiter = ',')]
        rules: Vec<String>,
        /// Replay name (default: replay-<time>).
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Describe {
        name: String,
    },
}

pub fn replays(client_args: &ClientArgs, cmd: ReplaysCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        Ok(match cmd {
            ReplaysCmd::Start {
                archive,
                from,
                to,
                rules,
                name,
            } => {
                let name = name.unwrap_or_else(|| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    format!("replay-{now}")
                });
                let body = json!({"name": name, "archive": archive, "from": from, "to": to,
                    "rules": rules});
                let v = client.post("/v1/replays", &body).await?;
                done(client_args, &v, |v| {
                    println!("started replay {}", text(&v["name"]))
                })
            }
            ReplaysCmd::List => {
                let v = client.get("/v1/replays").await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|r| {
                            vec![
                                text(&r["name"]),
                                text(&r["archive"]),
                                text(&r["state"]),
                                text(&r["events_replayed"]),
                                time(&r["started_at"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "ARCHIVE", "STATE", "EVENTS", "STARTED"], rows)
                    );
                })
            }
            ReplaysCmd::Describe { name } => {
                let v = client.get(&format!("/v1/replays/{name}")).await?;
                print_json(&v);
                ExitCode::SUCCESS
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_flags_become_eventbridge_targets() {
        let t = parse_target(
            "kind=webhook,url=http://h/x?a=1,secret=abc,max-retries=3,max-age=120",
            0,
        )
        .unwrap();
        assert_eq!(t["Id"], "webhook-1");
        assert_eq!(t["Url"], "http://h/x?a=1");
        assert_eq!(t["RetryPolicy"]["MaximumRetryAttempts"], 3);
        let t = parse_target(
            "kind=run-command,id=fix,role=ops,targets=tag:env=prod;tag:role=web,param.commands=uptime",
            1,
        )
        .unwrap();
        assert_eq!(t["Targets"], json!(["tag:env=prod", "tag:role=web"]));
        assert_eq!(t["Parameters"]["commands"], "uptime");
        assert_eq!(t["RoleArn"], "ops");
        assert!(parse_target("url=http://x", 0).is_err());
        assert!(parse_target("kind=log,colour=blue", 0).is_err());
        assert!(parse_target("kind=log,max-retries=many", 0).is_err());
    }
}
