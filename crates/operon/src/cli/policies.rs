//! `operon policies put|list|show|delete|simulate`: IAM-shaped policies.

use std::process::ExitCode;

use anyhow::{Context, Result};
use operon_api::identity::{PutPolicy, SimulateRequest};
use serde_json::Value;

use super::client::{Client, ClientArgs, key_value, runtime};
use super::identity::*;
use super::output::{esc, millis, print_json, table};

#[derive(clap::Subcommand)]
pub enum PoliciesCmd {
    /// Create or replace a policy from an IAM-shaped JSON document.
    Put {
        name: String,
        #[arg(long)]
        document: std::path::PathBuf,
    },
    /// List policies.
    List,
    /// Show a policy document.
    Show { name: String },
    /// Delete a policy no role uses.
    Delete { name: String },
    /// Explain how a user's policies decide an action on a resource.
    Simulate {
        #[arg(long)]
        user: String,
        #[arg(long)]
        action: String,
        /// e.g. node/web-1, workflow/deploy (default with --node: node/NAME).
        #[arg(long, default_value = "")]
        resource: String,
        /// Take operon:NodeTag/* condition keys from this node's tags.
        #[arg(long)]
        node: Option<String>,
        /// Extra condition key, e.g. operon:NodeTag/env=staging (repeatable).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
    },
}

pub fn policies(args: &ClientArgs, cmd: PoliciesCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            PoliciesCmd::Put { name, document } => {
                let text_in = std::fs::read_to_string(&document)
                    .with_context(|| format!("reading {}", document.display()))?;
                let document_json: Value = serde_json::from_str(&text_in)
                    .with_context(|| format!("{} is not JSON", document.display()))?;
                let body = PutPolicy {
                    name,
                    document: document_json,
                };
                let stored = client.put_policy(&body).await?;
                show(args, &stored, |p| format!("policy {} stored", esc(&p.name)));
            }
            PoliciesCmd::List => {
                let all = client.policies().await?;
                if args.json {
                    print_json(&all.json);
                } else {
                    let table_rows = all
                        .value
                        .iter()
                        .map(|p| {
                            let statements = p.document["Statement"].as_array().map_or(1, Vec::len);
                            vec![
                                esc(&p.name),
                                statements.to_string(),
                                millis(Some(p.updated_at)),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "STATEMENTS", "UPDATED"], table_rows));
                }
            }
            PoliciesCmd::Show { name } => {
                let policy = client.policy(&segment("policy", &name)?).await?;
                if args.json {
                    print_json(&policy.json);
                } else {
                    // As received: the author's key order.
                    print_json(&policy.json["document"]);
                }
            }
            PoliciesCmd::Delete { name } => {
                let deleted = client.delete_policy(&segment("policy", &name)?).await?;
                show(args, &deleted, |d| {
                    format!("policy {} deleted", esc(&d.name))
                });
            }
            PoliciesCmd::Simulate {
                user,
                action,
                resource,
                node,
                context,
            } => {
                let mut keys = serde_json::Map::new();
                for pair in &context {
                    let (key, value) = key_value(pair)?;
                    keys.insert(key, Value::String(value));
                }
                let body = SimulateRequest {
                    user,
                    action,
                    resource,
                    context: keys,
                    node,
                };
                let answer = client.simulate(&body).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    let answer = &answer.value;
                    println!(
                        "{}: {} {} on {}",
                        esc(&answer.decision).to_uppercase(),
                        esc(&answer.user),
                        esc(&answer.action),
                        esc(&answer.resource)
                    );
                    println!("{}", esc(&answer.explanation));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ----- roles -----------------------------------------------------------------------
