//! `operon roles create|list|show|delete|policies`: named sets of policies.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::identity::{CreateRole, PolicyChange, Role};

use super::client::{Client, ClientArgs, runtime};
use super::identity::*;
use super::output::{esc, print_json, table};

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

fn role_line(r: &Role) -> String {
    format!(
        "role {}: policies {}; users {}",
        esc(&r.name),
        list(&r.policies),
        list(&r.users)
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
                let body = CreateRole {
                    name,
                    description,
                    policies,
                };
                client.create_role(&body).await?
            }
            RolesCmd::List => {
                let all = client.roles().await?;
                if args.json {
                    print_json(&all.json);
                } else {
                    let table_rows = all
                        .value
                        .iter()
                        .map(|r| {
                            vec![
                                esc(&r.name),
                                list(&r.policies),
                                list(&r.users),
                                esc(&r.description),
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
            RolesCmd::Show { name } => client.role(&segment("role", &name)?).await?,
            RolesCmd::Delete { name } => {
                let deleted = client.delete_role(&segment("role", &name)?).await?;
                show(args, &deleted, |d| format!("role {} deleted", esc(&d.name)));
                return Ok(ExitCode::SUCCESS);
            }
            RolesCmd::Attach { role, policies } => {
                let change = PolicyChange {
                    attach: policies,
                    detach: vec![],
                };
                client
                    .change_role_policies(&segment("role", &role)?, &change)
                    .await?
            }
            RolesCmd::Detach { role, policies } => {
                let change = PolicyChange {
                    attach: vec![],
                    detach: policies,
                };
                client
                    .change_role_policies(&segment("role", &role)?, &change)
                    .await?
            }
        };
        show(args, &shown, role_line);
        Ok(ExitCode::SUCCESS)
    })
}

// ----- audit -----------------------------------------------------------------------
