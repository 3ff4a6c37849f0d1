//! `operon associations create|list|describe|update|delete|run` and
//! `operon compliance summary|list|show`: the State Manager.

use std::process::ExitCode;

use anyhow::{Result, bail};
use operon_api::associations::{
    Association, AssociationDetail, AssociationRunStarted, AssociationSpec, ComplianceSummary,
    CreateAssociation, NodeCompliance, RunAssociation, UpdateAssociation,
};
use serde_json::{Map, Value};

use super::client::{Answer, Client, ClientArgs, key_value, runtime, to_json};
use super::client_params::encode;
use super::output::{esc, millis, print_json, table};

/// What an association applies and how (shared by create and update).
#[derive(clap::Args, Default)]
pub struct SpecArgs {
    /// The desired-state document (schemaVersion operon-state/1).
    #[arg(long)]
    document: Option<String>,
    /// A version number, $DEFAULT or $LATEST (default: follow the default version).
    #[arg(long, value_name = "N|$DEFAULT|$LATEST")]
    document_version: Option<String>,
    /// Document parameter (repeatable; repeating a key builds a list).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Nodes: tag:KEY=VALUE, all, or node names (repeatable; all must hold).
    #[arg(long = "targets", value_delimiter = ',')]
    targets: Vec<String>,
    /// Apply again on this schedule: 'rate(30 minutes)' or 'cron(0 2 * * ? *)'.
    #[arg(long)]
    schedule: Option<String>,
    /// Nodes applying at once: a count or a percentage of the targets.
    #[arg(long)]
    max_concurrency: Option<String>,
    /// Failed nodes tolerated before the rest are not started.
    #[arg(long)]
    max_errors: Option<String>,
    /// Apply only at the schedule's times, not when created or changed.
    #[arg(long)]
    apply_only_at_cron_interval: bool,
    /// CRITICAL, HIGH, MEDIUM (the default), LOW or UNSPECIFIED.
    #[arg(long, value_parser = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNSPECIFIED"])]
    compliance_severity: Option<String>,
    /// apply (the default) or check: report what differs, change nothing.
    #[arg(long, value_parser = ["apply", "check"])]
    mode: Option<String>,
    /// Put a managed file back as soon as a node reports it changed.
    #[arg(long)]
    remediate_drift: bool,
    /// The role runs act as (roles:Pass); yourself when absent.
    #[arg(long)]
    role: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum AssociationsCmd {
    /// Keep a desired-state document applied to the targeted nodes.
    Create {
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// List associations with their nodes' compliance.
    List,
    /// An association: its settings, versions and recent runs.
    Describe { name: String },
    /// Write a new version: the options given replace those of the current one.
    Update {
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
        /// Stop applying it on a schedule.
        #[arg(long, conflicts_with = "schedule")]
        no_schedule: bool,
    },
    /// Delete an association; the nodes keep their files as they are.
    Delete { name: String },
    /// Apply it now on every targeted node, and follow the run.
    Run {
        name: String,
        /// Report what would change (with diffs), change nothing.
        #[arg(long)]
        check: bool,
        /// Start it and return without following it.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum ComplianceCmd {
    /// Compliant and non-compliant nodes by association and severity.
    Summary,
    /// Each association's state on each node.
    List {
        #[arg(long)]
        association: Option<String>,
        #[arg(long)]
        node: Option<String>,
        /// COMPLIANT or NON_COMPLIANT.
        #[arg(long, value_parser = ["COMPLIANT", "NON_COMPLIANT"])]
        status: Option<String>,
    },
    /// One node: every association's resources, with what differs and diffs.
    Show { node: String },
}

impl Client {
    pub async fn create_association(
        &self,
        body: &CreateAssociation,
    ) -> Result<Answer<Association>> {
        Answer::read(self.post("/v1/associations", &to_json(body)?).await?)
    }

    pub async fn associations(&self) -> Result<Answer<Vec<Association>>> {
        Answer::read(self.get("/v1/associations").await?)
    }

    pub async fn association(&self, name: &str) -> Result<Answer<AssociationDetail>> {
        Answer::read(
            self.get(&format!("/v1/associations/{}", encode(name)))
                .await?,
        )
    }

    pub async fn update_association(
        &self,
        name: &str,
        body: &UpdateAssociation,
    ) -> Result<Answer<Association>> {
        let path = format!("/v1/associations/{}", encode(name));
        Answer::read(self.put(&path, &to_json(body)?).await?)
    }

    pub async fn delete_association(&self, name: &str) -> Result<Answer<Association>> {
        Answer::read(
            self.delete(&format!("/v1/associations/{}", encode(name)))
                .await?,
        )
    }

    pub async fn run_association(
        &self,
        name: &str,
        check: bool,
    ) -> Result<Answer<AssociationRunStarted>> {
        let path = format!("/v1/associations/{}/run", encode(name));
        Answer::read(
            self.post(&path, &to_json(&RunAssociation { check })?)
                .await?,
        )
    }

    pub async fn compliance(&self, query: &[(&str, &str)]) -> Result<Answer<Vec<NodeCompliance>>> {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let path = if query.is_empty() {
            "/v1/compliance".to_string()
        } else {
            format!("/v1/compliance?{}", query.join("&"))
        };
        Answer::read(self.get(&path).await?)
    }

    pub async fn compliance_summary(&self) -> Result<Answer<ComplianceSummary>> {
        Answer::read(self.get("/v1/compliance/summary").await?)
    }
}

fn parameters(params: &[String]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for param in params {
        let (key, value) = key_value(param)?;
        super::commands::add_param(&mut out, key, value);
    }
    Ok(out)
}

/// The spec for create: the document and targets are required.
fn new_spec(args: SpecArgs) -> Result<AssociationSpec> {
    let Some(document) = args.document.clone() else {
        bail!("give the desired-state document: --document NAME");
    };
    if args.targets.is_empty() {
        bail!("give the nodes: --targets tag:KEY=VALUE (or all, or node names)");
    }
    let mut spec = AssociationSpec {
        document,
        ..AssociationSpec::default()
    };
    apply(&mut spec, args)?;
    Ok(spec)
}

/// Replace in `spec` what the options give.
fn apply(spec: &mut AssociationSpec, args: SpecArgs) -> Result<()> {
    if let Some(document) = args.document {
        spec.document = document;
    }
    if args.document_version.is_some() {
        spec.document_version = args.document_version;
    }
    if !args.params.is_empty() {
        spec.parameters = parameters(&args.params)?;
    }
    if !args.targets.is_empty() {
        spec.targets = args.targets;
    }
    macro_rules! replace {
        ($($field:ident),*) => { $( if args.$field.is_some() { spec.$field = args.$field; } )* };
    }
    replace!(
        schedule,
        max_concurrency,
        max_errors,
        compliance_severity,
        mode,
        role
    );
    spec.apply_only_at_cron_interval |= args.apply_only_at_cron_interval;
    spec.remediate_drift |= args.remediate_drift;
    Ok(())
}

fn describe_line(a: &Association) -> String {
    let schedule = a
        .spec
        .schedule
        .as_deref()
        .map(|s| format!(", {}", esc(s)))
        .unwrap_or_default();
    format!(
        "{} v{}: {} on {}{schedule} ({}, severity {}); {} compliant, {} non-compliant",
        esc(&a.name),
        a.version,
        esc(&a.spec.document),
        esc(&a.spec.targets.join(", ")),
        a.spec.mode.as_deref().unwrap_or("apply"),
        a.spec.compliance_severity.as_deref().unwrap_or("MEDIUM"),
        a.nodes.compliant,
        a.nodes.non_compliant,
    )
}

pub fn associations(args: &ClientArgs, cmd: AssociationsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            AssociationsCmd::Create { name, spec } => {
                let body = CreateAssociation {
                    name,
                    spec: new_spec(spec)?,
                };
                let created = client.create_association(&body).await?;
                if args.json {
                    print_json(&created.json);
                } else {
                    println!("{}", describe_line(&created.value));
                }
            }
            AssociationsCmd::List => {
                let list = client.associations().await?;
                if args.json {
                    print_json(&list.json);
                } else {
                    let rows = list
                        .value
                        .iter()
                        .map(|a| {
                            vec![
                                esc(&a.name),
                                a.version.to_string(),
                                esc(&a.spec.document),
                                esc(&a.spec.targets.join(",")),
                                esc(a.spec.schedule.as_deref().unwrap_or("-")),
                                a.spec.mode.clone().unwrap_or_else(|| "apply".into()),
                                a.nodes.compliant.to_string(),
                                a.nodes.non_compliant.to_string(),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &[
                                "NAME",
                                "VERSION",
                                "DOCUMENT",
                                "TARGETS",
                                "SCHEDULE",
                                "MODE",
                                "COMPLIANT",
                                "NON-COMPLIANT"
                            ],
                            rows
                        )
                    );
                }
            }
            AssociationsCmd::Describe { name } => {
                let detail = client.association(&name).await?;
                if args.json {
                    print_json(&detail.json);
                } else {
                    let d = &detail.value;
                    println!("{}", describe_line(&d.association));
                    if let Some(next) = d.association.next_run_at {
                        println!("next scheduled run {}", millis(Some(next)));
                    }
                    let rows = d
                        .runs
                        .iter()
                        .map(|r| {
                            vec![
                                esc(&r.command_id),
                                r.version.to_string(),
                                esc(&r.reason),
                                esc(&r.mode),
                                esc(r.node_id.as_deref().unwrap_or("all")),
                                millis(Some(r.created_at)),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["COMMAND", "VERSION", "REASON", "MODE", "NODES", "STARTED"],
                            rows
                        )
                    );
                }
            }
            AssociationsCmd::Update {
                name,
                spec,
                no_schedule,
            } => {
                let current = client.association(&name).await?.value.association;
                let mut new = current.spec.clone();
                apply(&mut new, spec)?;
                if no_schedule {
                    new.schedule = None;
                    new.apply_only_at_cron_interval = false;
                }
                let body = UpdateAssociation {
                    expected_version: Some(current.version),
                    spec: new,
                };
                let updated = client.update_association(&name, &body).await?;
                if args.json {
                    print_json(&updated.json);
                } else {
                    println!("{}", describe_line(&updated.value));
                }
            }
            AssociationsCmd::Delete { name } => {
                let deleted = client.delete_association(&name).await?;
                if args.json {
                    print_json(&deleted.json);
                } else {
                    println!(
                        "deleted association {} (the nodes keep their files as they are)",
                        esc(&deleted.value.name)
                    );
                }
            }
            AssociationsCmd::Run {
                name,
                check,
                no_wait,
            } => {
                let started = client.run_association(&name, check).await?;
                let Some(id) = started.value.command_id.clone() else {
                    if args.json {
                        print_json(&started.json);
                    } else {
                        println!("no node is targeted now: nothing to run");
                    }
                    return Ok(ExitCode::SUCCESS);
                };
                if no_wait {
                    if args.json {
                        print_json(&started.json);
                    } else {
                        println!(
                            "command {} ({}) on {} node(s)",
                            esc(&id),
                            started.value.mode,
                            started.value.targets.len()
                        );
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                if !args.json {
                    eprintln!(
                        "command {} ({}) on {} node(s)",
                        esc(&id),
                        started.value.mode,
                        started.value.targets.len()
                    );
                }
                return super::commands::follow_to_end(&client, &id, args.json).await;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_node(n: &NodeCompliance) {
    println!(
        "{} on {}: {} (severity {}, {})",
        esc(&n.association),
        esc(&n.node_name),
        n.status,
        esc(&n.severity),
        millis(Some(n.at))
    );
    for r in &n.resources {
        let changes = if r.changes.is_empty() {
            String::new()
        } else {
            format!(" ({})", esc(&r.changes.join(", ")))
        };
        println!(
            "  {} {}: {}{changes}",
            esc(&r.kind),
            esc(&r.resource),
            r.outcome
        );
        if let Some(message) = &r.message {
            println!("    {}", esc(message));
        }
        if let Some(diff) = &r.diff {
            for line in diff.lines() {
                println!("    {}", esc(line));
            }
        }
    }
}

pub fn compliance(args: &ClientArgs, cmd: ComplianceCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            ComplianceCmd::Summary => {
                let summary = client.compliance_summary().await?;
                if args.json {
                    print_json(&summary.json);
                } else {
                    let rows = summary
                        .value
                        .associations
                        .iter()
                        .map(|a| {
                            vec![
                                esc(&a.association),
                                esc(&a.severity),
                                a.compliant.to_string(),
                                a.non_compliant.to_string(),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["ASSOCIATION", "SEVERITY", "COMPLIANT", "NON-COMPLIANT"],
                            rows
                        )
                    );
                    let rows = summary
                        .value
                        .severities
                        .iter()
                        .map(|s| {
                            vec![
                                esc(&s.severity),
                                s.compliant.to_string(),
                                s.non_compliant.to_string(),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["SEVERITY", "COMPLIANT", "NON-COMPLIANT"], rows)
                    );
                }
            }
            ComplianceCmd::List {
                association,
                node,
                status,
            } => {
                let mut query = Vec::new();
                if let Some(a) = &association {
                    query.push(("association", a.as_str()));
                }
                if let Some(n) = &node {
                    query.push(("node", n.as_str()));
                }
                if let Some(s) = &status {
                    query.push(("status", s.as_str()));
                }
                let list = client.compliance(&query).await?;
                if args.json {
                    print_json(&list.json);
                } else {
                    let rows = list
                        .value
                        .iter()
                        .map(|n| {
                            let failing: Vec<&str> = n
                                .resources
                                .iter()
                                .filter(|r| r.status != "COMPLIANT")
                                .map(|r| r.resource.as_str())
                                .collect();
                            vec![
                                esc(&n.association),
                                esc(&n.node_name),
                                n.status.clone(),
                                esc(&n.severity),
                                esc(&failing.join(",")),
                                millis(Some(n.at)),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &[
                                "ASSOCIATION",
                                "NODE",
                                "STATUS",
                                "SEVERITY",
                                "NON-COMPLIANT",
                                "AT"
                            ],
                            rows
                        )
                    );
                }
            }
            ComplianceCmd::Show { node } => {
                let list = client.compliance(&[("node", node.as_str())]).await?;
                if args.json {
                    print_json(&list.json);
                } else if list.value.is_empty() {
                    println!("no association has reported on {} yet", esc(&node));
                } else {
                    for n in &list.value {
                        print_node(n);
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
