//! `operon rules put|list|describe|delete|enable|disable|test`: event bus
//! rules and their targets.
//!
//! Targets are given in the aws-cli spirit: `--target 'kind=webhook,id=h,
//! url=http://...,secret=...,max-retries=3,max-age=3600'` for the simple
//! cases, `--targets-file T.json` (an array of EventBridge-shaped Target
//! objects with `Kind`) for everything, input transformers included.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use super::bus::done;
use super::client::{Client, ClientArgs, runtime};
use super::input::{json_arg, read_json_file as read_json};
use super::output::{escape, print_json, table, text};
use operon_api::events::{PutRule, TestRule};

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
                let body = PutRule {
                    bus: Some(args.bus),
                    description: args.description,
                    pattern,
                    schedule: args.schedule,
                    timezone: args.timezone,
                    enabled: !args.disabled,
                    targets,
                };
                let rule = client.put_rule(&args.name, &body).await?;
                done(client_args, &rule.json, |_| {
                    let r = &rule.value;
                    println!(
                        "rule {} on bus {} with {} target(s)",
                        escape(&r.name),
                        escape(&r.bus),
                        r.targets.len()
                    )
                })
            }
            RulesCmd::List => {
                let rules = client.rules().await?;
                done(client_args, &rules.json, |_| {
                    let rows = rules
                        .value
                        .iter()
                        .map(|r| {
                            let trigger = match &r.schedule {
                                Some(schedule) => escape(schedule).into_owned(),
                                None => "pattern".to_string(),
                            };
                            vec![
                                escape(&r.name).into_owned(),
                                escape(&r.bus).into_owned(),
                                if r.enabled { "enabled" } else { "disabled" }.into(),
                                trigger,
                                r.targets
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
                print_json(&client.rule(&name).await?.json);
                ExitCode::SUCCESS
            }
            RulesCmd::Delete { name } => {
                let deleted = client.delete_rule(&name).await?;
                done(client_args, &deleted.json, |_| {
                    println!("deleted rule {name}")
                })
            }
            RulesCmd::Enable { name } => {
                let rule = client.set_rule_enabled(&name, true).await?;
                done(client_args, &rule.json, |_| println!("enabled rule {name}"))
            }
            RulesCmd::Disable { name } => {
                let rule = client.set_rule_enabled(&name, false).await?;
                done(client_args, &rule.json, |_| {
                    println!("disabled rule {name}")
                })
            }
            RulesCmd::Test { name, event } => {
                let event = json_arg("--event", &event)?;
                let trial = client.test_rule(&name, &TestRule { event }).await?;
                done(client_args, &trial.json, |_| {
                    let verdict = if trial.value.matches {
                        "matches"
                    } else {
                        "does not match"
                    };
                    println!("rule {name} {verdict}");
                    for t in &trial.value.targets {
                        let input = t.input.clone().unwrap_or(Value::Null);
                        println!("target {}: {}", escape(&t.id), text(&input));
                    }
                })
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
