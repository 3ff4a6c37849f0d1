//! `operon users create|list|show|disable|roles`: people and service accounts.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, runtime};
use super::identity::*;
use super::output::{print_json, table, text, time};

#[derive(clap::Subcommand)]
pub enum UsersCmd {
    /// Create a user (or a service account with --service).
    Create {
        name: String,
        #[arg(long)]
        service: bool,
        /// Role to grant (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List users with their roles.
    List,
    /// Show one user.
    Show { name: String },
    /// Disable a user: every token of theirs stops working at once.
    Disable { name: String },
    /// Grant roles to a user.
    Grant {
        name: String,
        #[arg(required = true)]
        roles: Vec<String>,
    },
    /// Take roles back from a user.
    Ungrant {
        name: String,
        #[arg(required = true)]
        roles: Vec<String>,
    },
}

fn user_line(u: &Value) -> String {
    format!(
        "user {} ({}, {}), roles: {}",
        text(&u["name"]),
        text(&u["kind"]),
        text(&u["status"]),
        list(&u["roles"])
    )
}

pub fn users(args: &ClientArgs, cmd: UsersCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        let shown = match cmd {
            UsersCmd::Create {
                name,
                service,
                roles,
            } => {
                let kind = if service { "service" } else { "user" };
                let body = json!({"name": name, "kind": kind, "roles": roles});
                client.post("/v1/users", &body).await?
            }
            UsersCmd::List => {
                let all = client.get("/v1/users").await?;
                if args.json {
                    print_json(&all);
                } else {
                    let table_rows = rows(&all)
                        .iter()
                        .map(|u| {
                            vec![
                                text(&u["name"]),
                                text(&u["kind"]),
                                text(&u["status"]),
                                list(&u["roles"]),
                                time(&u["created_at"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "KIND", "STATUS", "ROLES", "CREATED"], table_rows)
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            UsersCmd::Show { name } => {
                client
                    .get(&format!("/v1/users/{}", segment("user", &name)?))
                    .await?
            }
            UsersCmd::Disable { name } => {
                let path = format!("/v1/users/{}/disable", segment("user", &name)?);
                client.post(&path, &json!({})).await?
            }
            UsersCmd::Grant { name, roles } => {
                let path = format!("/v1/users/{}/roles", segment("user", &name)?);
                client.post(&path, &json!({"grant": roles})).await?
            }
            UsersCmd::Ungrant { name, roles } => {
                let path = format!("/v1/users/{}/roles", segment("user", &name)?);
                client.post(&path, &json!({"revoke": roles})).await?
            }
        };
        show(args, &shown, user_line);
        Ok(ExitCode::SUCCESS)
    })
}

// ----- tokens ----------------------------------------------------------------------
