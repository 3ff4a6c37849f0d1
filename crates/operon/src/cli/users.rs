//! `operon users create|list|show|disable|roles`: people and service accounts.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::identity::{CreateUser, RoleChange, User};

use super::client::{Client, ClientArgs, runtime};
use super::identity::*;
use super::output::{esc, millis, print_json, table};

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

fn user_line(u: &User) -> String {
    format!(
        "user {} ({}, {}), roles: {}",
        esc(&u.name),
        esc(&u.kind),
        esc(&u.status),
        list(&u.roles)
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
                let body = CreateUser {
                    name,
                    kind: Some(kind.into()),
                    roles,
                };
                client.create_user(&body).await?
            }
            UsersCmd::List => {
                let all = client.users().await?;
                if args.json {
                    print_json(&all.json);
                } else {
                    let table_rows = all
                        .value
                        .iter()
                        .map(|u| {
                            vec![
                                esc(&u.name),
                                esc(&u.kind),
                                esc(&u.status),
                                list(&u.roles),
                                millis(Some(u.created_at)),
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
            UsersCmd::Show { name } => client.user(&segment("user", &name)?).await?,
            UsersCmd::Disable { name } => client.disable_user(&segment("user", &name)?).await?,
            UsersCmd::Grant { name, roles } => {
                let change = RoleChange {
                    grant: roles,
                    revoke: vec![],
                };
                client
                    .change_user_roles(&segment("user", &name)?, &change)
                    .await?
            }
            UsersCmd::Ungrant { name, roles } => {
                let change = RoleChange {
                    grant: vec![],
                    revoke: roles,
                };
                client
                    .change_user_roles(&segment("user", &name)?, &change)
                    .await?
            }
        };
        show(args, &shown, user_line);
        Ok(ExitCode::SUCCESS)
    })
}

// ----- tokens ----------------------------------------------------------------------
