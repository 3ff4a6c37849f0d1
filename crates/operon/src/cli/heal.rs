//! `operon heal create|list|describe|delete` and
//! `operon incidents list|show|ack|resolve`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use operon_api::heal::{Heal, HealSpec, Incident, IncidentDetail, ResolveIncident};
use serde_json::{Map, Value};

use super::client::{Answer, Client, ClientArgs, key_value, runtime, to_json};
use super::client_params::encode;
use super::output::{esc, millis, print_json, table};

/// The ready runbook for the common heal (restart a service, check it is
/// active and healthy), as shipped in examples/heal and tested there.
const RESTART_DOCUMENT: &str =
    include_str!("../../../../examples/heal/restart-service.document.json");
const RESTART_RUNBOOK: &str = include_str!("../../../../examples/heal/restart-service.asl.json");
const RESTART_DOCUMENT_NAME: &str = "operon-restart-service";
const RESTART_RUNBOOK_NAME: &str = "restart-service";

#[derive(clap::Subcommand)]
pub enum HealCmd {
    /// Create or replace a heal: on ALARM start the runbook, then wait for OK.
    Create {
        name: String,
        /// The alarms it acts on: a name or a pattern with * (app-errors-*).
        #[arg(long)]
        alarm: String,
        /// The runbook started for each attempt.
        #[arg(long)]
        workflow: String,
        /// Passed to the runbook as parameters (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// How long after an attempt starts the alarm must be OK (5m).
        #[arg(long, default_value = "5m")]
        confirm_within: String,
        /// Attempts allowed per node and alarm in a window: 3/1h.
        #[arg(long, default_value = "3/1h")]
        max_runs: String,
        /// Wait after an attempt ends before another on that node (10m).
        #[arg(long)]
        cooldown: Option<String>,
        /// Past the limit: `event` (a "Heal Escalated" event, always put) or
        /// `webhook:URL` (also POSTed there).
        #[arg(long, default_value = "event")]
        escalate: String,
        /// The role attempts act as (roles:Pass); yourself when absent.
        #[arg(long)]
        role: Option<String>,
    },
    /// Install the ready restart runbook: the document operon-restart-service
    /// and the workflow restart-service (examples/heal, built in).
    InstallRunbook {
        /// The role the runbook's executions act as (roles:Pass); you when absent.
        #[arg(long)]
        role: Option<String>,
    },
    /// Heals with their latest attempt.
    List,
    /// A heal and its newest attempts.
    Describe { name: String },
    /// Delete a heal; attempts running finish.
    Delete { name: String },
}

#[derive(clap::Subcommand)]
pub enum IncidentsCmd {
    /// Incidents, newest first.
    List {
        /// open, recovered or resolved.
        #[arg(long, value_parser = ["open", "recovered", "resolved"])]
        status: Option<String>,
        #[arg(long)]
        alarm: Option<String>,
        #[arg(long)]
        node: Option<String>,
        /// Opened within this long (6h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// An incident with its timeline; `--format markdown` for a report.
    Show {
        id: String,
        #[arg(long, value_parser = ["text", "json", "markdown"], default_value = "text")]
        format: String,
    },
    /// Acknowledge: you are looking at it.
    Ack { id: String },
    /// Resolve (close) an incident.
    Resolve {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
}

impl Client {
    pub async fn put_heal(&self, name: &str, spec: &HealSpec) -> Result<Answer<Heal>> {
        let path = format!("/v1/heals/{}", encode(name));
        Answer::read(self.put(&path, &to_json(spec)?).await?)
    }

    pub async fn heals(&self) -> Result<Answer<Vec<Heal>>> {
        Answer::read(self.get("/v1/heals").await?)
    }

    pub async fn heal(&self, name: &str) -> Result<Answer<Heal>> {
        Answer::read(self.get(&format!("/v1/heals/{}", encode(name))).await?)
    }

    pub async fn delete_heal(&self, name: &str) -> Result<Answer<Heal>> {
        Answer::read(self.delete(&format!("/v1/heals/{}", encode(name))).await?)
    }

    pub async fn incidents(&self, query: &[(&str, String)]) -> Result<Answer<Vec<Incident>>> {
        let parts: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let path = if parts.is_empty() {
            "/v1/incidents".to_string()
        } else {
            format!("/v1/incidents?{}", parts.join("&"))
        };
        Answer::read(self.get(&path).await?)
    }

    pub async fn incident(&self, id: &str) -> Result<Answer<IncidentDetail>> {
        Answer::read(self.get(&format!("/v1/incidents/{}", encode(id))).await?)
    }

    pub async fn acknowledge_incident(&self, id: &str) -> Result<Answer<IncidentDetail>> {
        let path = format!("/v1/incidents/{}/ack", encode(id));
        Answer::read(self.post(&path, &Value::Object(Map::new())).await?)
    }

    pub async fn resolve_incident(
        &self,
        id: &str,
        note: Option<String>,
    ) -> Result<Answer<IncidentDetail>> {
        let path = format!("/v1/incidents/{}/resolve", encode(id));
        Answer::read(
            self.post(&path, &to_json(&ResolveIncident { note })?)
                .await?,
        )
    }
}

fn seconds(flag: &str, text: &str) -> Result<u64> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs())
        .with_context(|| format!("--{flag} {text:?}: a duration such as 5m or 1h"))
}

/// `3/1h` -> (3, 3600).
fn max_runs(text: &str) -> Result<(u32, u64)> {
    let (count, window) = text
        .split_once('/')
        .with_context(|| format!("--max-runs {text:?}: COUNT/WINDOW, such as 3/1h"))?;
    let count = count
        .trim()
        .parse()
        .with_context(|| format!("--max-runs {text:?}: the count is not a number"))?;
    Ok((count, seconds("max-runs", window.trim())?))
}

fn escalation(text: &str) -> Result<Option<String>> {
    match text {
        "event" => Ok(None),
        other => match other.strip_prefix("webhook:") {
            Some(url) if !url.is_empty() => Ok(Some(url.to_string())),
            _ => bail!("--escalate {other:?}: event or webhook:URL"),
        },
    }
}

fn print_incident(detail: &IncidentDetail) {
    let i = &detail.incident;
    println!(
        "{} {} on {}: {} (opened {})",
        esc(&i.id),
        esc(&i.alarm),
        esc(i.node_name.as_deref().unwrap_or("-")),
        i.status,
        millis(Some(i.opened_at))
    );
    let rows = detail
        .timeline
        .iter()
        .map(|e| vec![millis(Some(e.at)), esc(&e.kind), esc(&e.message)])
        .collect();
    println!("{}", table(&["AT", "EVENT", "DETAIL"], rows));
}

pub fn heal(args: &ClientArgs, cmd: HealCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            HealCmd::Create {
                name,
                alarm,
                workflow,
                params,
                confirm_within,
                max_runs: runs,
                cooldown,
                escalate,
                role,
            } => {
                let mut input = Map::new();
                for param in &params {
                    let (key, value) = key_value(param)?;
                    input.insert(key, Value::String(value));
                }
                let (count, window) = max_runs(&runs)?;
                let spec = HealSpec {
                    alarm,
                    workflow,
                    input: (!input.is_empty()).then_some(Value::Object(input)),
                    confirm_within: Some(seconds("confirm-within", &confirm_within)?),
                    max_runs: Some(count),
                    max_runs_window: Some(window),
                    cooldown: cooldown
                        .as_deref()
                        .map(|c| seconds("cooldown", c))
                        .transpose()?,
                    escalate_webhook: escalation(&escalate)?,
                    role,
                };
                let answer = client.put_heal(&name, &spec).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    let h = &answer.value;
                    println!(
                        "heal {} v{}: {} -> runbook {}",
                        esc(&h.name),
                        h.version,
                        esc(&h.spec.alarm),
                        esc(&h.spec.workflow)
                    );
                }
            }
            HealCmd::InstallRunbook { role } => {
                let document: Value = serde_json::from_str(RESTART_DOCUMENT)?;
                let definition: Value = serde_json::from_str(RESTART_RUNBOOK)?;
                let created = client
                    .create_document(&operon_api::documents::CreateDocument {
                        name: RESTART_DOCUMENT_NAME.into(),
                        content: document,
                    })
                    .await?;
                let workflow = client
                    .create_workflow(&operon_api::workflows::CreateWorkflow {
                        name: RESTART_RUNBOOK_NAME.into(),
                        definition,
                        role,
                    })
                    .await?;
                if args.json {
                    print_json(&serde_json::json!({"document": created.json, "workflow": workflow.json}));
                } else {
                    println!(
                        "installed document {RESTART_DOCUMENT_NAME} and runbook {RESTART_RUNBOOK_NAME}: \
                         operon heal create NAME --alarm ALARM --workflow {RESTART_RUNBOOK_NAME} --param service=UNIT"
                    );
                }
            }
            HealCmd::List => {
                let list = client.heals().await?;
                if args.json {
                    print_json(&list.json);
                } else {
                    let rows = list
                        .value
                        .iter()
                        .map(|h| {
                            let last = h.runs.first().map_or("-".to_string(), |r| {
                                format!("{} {}", r.status, millis(Some(r.started_at)))
                            });
                            vec![
                                esc(&h.name),
                                esc(&h.spec.alarm),
                                esc(&h.spec.workflow),
                                last,
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "ALARM", "RUNBOOK", "LAST ATTEMPT"], rows)
                    );
                }
            }
            HealCmd::Describe { name } => {
                let answer = client.heal(&name).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    let h = &answer.value;
                    println!(
                        "heal {} v{}: {} -> runbook {}",
                        esc(&h.name),
                        h.version,
                        esc(&h.spec.alarm),
                        esc(&h.spec.workflow)
                    );
                    let rows = h
                        .runs
                        .iter()
                        .map(|r| {
                            vec![
                                esc(&r.incident_id),
                                esc(r.node_name.as_deref().unwrap_or(&r.node_id)),
                                r.attempt.to_string(),
                                esc(&r.status),
                                esc(r.execution_id.as_deref().unwrap_or("-")),
                                esc(r.detail.as_deref().unwrap_or("")),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &[
                                "INCIDENT",
                                "NODE",
                                "ATTEMPT",
                                "STATUS",
                                "EXECUTION",
                                "DETAIL"
                            ],
                            rows
                        )
                    );
                }
            }
            HealCmd::Delete { name } => {
                client.delete_heal(&name).await?;
                if !args.json {
                    println!("deleted heal {}", esc(&name));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn incidents(args: &ClientArgs, cmd: IncidentsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            IncidentsCmd::List {
                status,
                alarm,
                node,
                since,
                limit,
            } => {
                let mut query = vec![("limit", limit.to_string())];
                if let Some(s) = status {
                    query.push(("status", s));
                }
                if let Some(a) = alarm {
                    query.push(("alarm", a));
                }
                if let Some(n) = node {
                    query.push(("node", n));
                }
                if let Some(s) = since {
                    let age = seconds("since", &s)? as i64 * 1000;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or_default();
                    query.push(("since", (now - age).to_string()));
                }
                let list = client.incidents(&query).await?;
                if args.json {
                    print_json(&list.json);
                } else {
                    let rows = list
                        .value
                        .iter()
                        .map(|i| {
                            vec![
                                esc(&i.id),
                                esc(&i.alarm),
                                esc(i.node_name.as_deref().unwrap_or("-")),
                                i.status.clone(),
                                millis(Some(i.opened_at)),
                                esc(i.acknowledged_by.as_deref().unwrap_or("-")),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["ID", "ALARM", "NODE", "STATUS", "OPENED", "ACKED BY"],
                            rows
                        )
                    );
                }
            }
            IncidentsCmd::Show { id, format } => {
                let answer = client.incident(&id).await?;
                match (args.json, format.as_str()) {
                    (true, _) | (_, "json") => print_json(&answer.json),
                    (_, "markdown") => print!("{}", operon_api::heal::to_markdown(&answer.value)),
                    _ => print_incident(&answer.value),
                }
            }
            IncidentsCmd::Ack { id } => {
                let answer = client.acknowledge_incident(&id).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    print_incident(&answer.value);
                }
            }
            IncidentsCmd::Resolve { id, note } => {
                let answer = client.resolve_incident(&id, note).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    print_incident(&answer.value);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_or_say_what_is_wrong() {
        assert_eq!(max_runs("3/1h").unwrap(), (3, 3600));
        assert!(
            max_runs("3")
                .unwrap_err()
                .to_string()
                .contains("COUNT/WINDOW")
        );
        assert!(max_runs("x/1h").is_err());
        assert_eq!(escalation("event").unwrap(), None);
        assert_eq!(
            escalation("webhook:https://pager/x").unwrap().as_deref(),
            Some("https://pager/x")
        );
        assert!(escalation("email").is_err());
        assert_eq!(seconds("cooldown", "10m").unwrap(), 600);
    }
}
