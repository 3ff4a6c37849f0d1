//! `operon roles create|list|show|delete|policies`: named sets of policies.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, runtime};
use super::identity::*;
use super::output::{print_json, table, text};

#[derive(clap::Subcommand)]
pub enum RolesCmd {
    /// Create a role, optionally with policies attached.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    /// List roles with their policies and users.
    List,
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Attach policies to a role.
    Attach {
        role: String,
        #[arg(required = true)]
        policies: Vec<String>,
    },
    /// Detach policies from a role.
    Detach {
        role: String,
        #[arg(required = true)]
        policies: Vec<String>,
    },
}

fn role_line(r: &Value) -> String {
    format!(
        "role {}: policies {}; users {}",
        text(&r["name"]),
        list(&r["policies"]),
        list(&r["users"])
    )
}

pub fn roles(args: &ClientArgs, cmd: RolesCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        let shown = match cmd {
            RolesCmd::Create {
                name,
                description,
                policies,
            } => {
                let body = json!({"name": name, "description": description, "policies": policies});
                client.post("/v1/roles", &body).await?
            }
            RolesCmd::List => {
                let all = client.get("/v1/roles").await?;
                if args.json {
                    print_json(&all);
                } else {
                    let table_rows = rows(&all)
                        .iter()
                        .map(|r| {
                            vec![
                                text(&r["name"]),
                                list(&r["policies"]),
                                list(&r["users"]),
                                text(&r["description"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "POLICIES", "USERS", "DESCRIPTION"], table_rows)
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            RolesCmd::Show { name } => {
                client
                    .get(&format!("/v1/roles/{}", segment("role", &name)?))
                    .await?
            }
            RolesCmd::Delete { name } => {
                let deleted = client
                    .delete(&format!("/v1/roles/{}", segment("role", &name)?))
                    .await?;
                show(args, &deleted, |d| {
                    format!("role {} deleted", text(&d["name"]))
                });
                return Ok(ExitCode::SUCCESS);
            }
            RolesCmd::Attach { role, policies } => {
                let path = format!("/v1/roles/{}/policies", segment("role", &role)?);
                client.post(&path, &json!({"attach": policies})).await?
            }
            RolesCmd::Detach { role, policies } => {
                let path = format!("/v1/roles/{}/policies", segment("role", &role)?);
                client.post(&path, &json!({"detach": policies})).await?
            }
        };
        show(args, &shown, role_line);
        Ok(ExitCode::SUCCESS)
    })
}

// ----- audit -----------------------------------------------------------------------
