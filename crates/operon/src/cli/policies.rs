//! `operon policies put|list|show|delete|simulate`: IAM-shaped policies.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, key_value, runtime};
use super::identity::*;
use super::output::{print_json, table, text, time};

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
                let stored = client
                    .post("/v1/policies", &json!({"name": name, "document": document_json}))
                    .await?;
                show(args, &stored, |p| format!("policy {} stored", text(&p["name"])));
            }
            PoliciesCmd::List => {
                let all = client.get("/v1/policies").await?;
                if args.json {
                    print_json(&all);
                } else {
                    let table_rows = rows(&all)
                        .iter()
                        .map(|p| {
                            let statements = p["document"]["Statement"]
                                .as_array()
                                .map_or(1, Vec::len);
                            vec![text(&p["name"]), statements.to_string(), time(&p["updated_at"])]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "STATEMENTS", "UPDATED"], table_rows));
                }
            }
            PoliciesCmd::Show { name } => {
                let policy = client
                    .get(&format!("/v1/policies/{}", segment("policy", &name)?))
                    .await?;
                if args.json {
                    print_json(&policy);
                } else {
                    print_json(&policy["document"]);
                }
            }
            PoliciesCmd::Delete { name } => {
                let deleted = client
                    .delete(&format!("/v1/policies/{}", segment("policy", &name)?))
                    .await?;
                show(args, &deleted, |d| format!("policy {} deleted", text(&d["name"])));
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
                let body = json!({"user": user, "action": action, "resource": resource, "node": node, "context": keys});
                let answer = client.post("/v1/policies/simulate", &body).await?;
                if args.json {
                    print_json(&answer);
                } else {
                    println!(
                        "{}: {} {} on {}",
                        text(&answer["decision"]).to_uppercase(),
                        text(&answer["user"]),
                        text(&answer["action"]),
                        text(&answer["resource"])
                    );
                    println!("{}", text(&answer["explanation"]));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ----- roles -----------------------------------------------------------------------
