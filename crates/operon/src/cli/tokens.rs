//! `operon tokens create|list|revoke|rotate-admin`: API tokens.

use std::process::ExitCode;

use anyhow::{Context, Result};
use operon_api::identity::{CreateToken, Token};

use super::client::{Client, ClientArgs, runtime};
use super::identity::*;
use super::output::{esc, millis, print_json, table};

#[derive(clap::Subcommand)]
pub enum TokensCmd {
    /// Create an API token; the secret is printed once.
    Create {
        /// A name that says what the token is for.
        #[arg(long)]
        name: String,
        /// Owner (default: you).
        #[arg(long)]
        user: Option<String>,
        /// Limit the token to these actions, e.g. nodes:* (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, e.g. 12h or 90d (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets): yours, or --user's.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by id.
    Revoke { id: String },
    /// Replace the admin token (admin token only); the new one is printed once
    /// and written to the server's admin-token file.
    RotateAdmin,
}

fn token_line(t: &Token) -> String {
    format!(
        "token {} \"{}\" of {}: {}",
        esc(&t.id),
        esc(&t.name),
        esc(&t.user),
        esc(&t.status)
    )
}

pub fn tokens(args: &ClientArgs, cmd: TokensCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            TokensCmd::Create {
                name,
                user,
                scopes,
                expires,
            } => {
                let expires_in_secs = expires
                    .map(|e| {
                        humantime::parse_duration(&e)
                            .map(|d| d.as_secs().max(1))
                            .with_context(|| {
                                format!("--expires {e:?}: use a duration such as 12h or 90d")
                            })
                    })
                    .transpose()?;
                let scopes = (!scopes.is_empty()).then_some(scopes);
                let body = CreateToken {
                    user,
                    name,
                    scopes,
                    // Past i64 the server refuses it as too long, not as unreadable.
                    expires_in_secs: expires_in_secs.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
                };
                let created = client.create_token(&body).await?;
                if args.json {
                    print_json(&created.json);
                } else {
                    println!("{}", esc(&created.value.token));
                    eprintln!(
                        "{}; the secret is shown only once",
                        token_line(&created.value.view)
                    );
                }
            }
            TokensCmd::List { user } => {
                let user = user.map(|user| segment("user", &user)).transpose()?;
                let all = client.tokens(user.as_deref()).await?;
                if args.json {
                    print_json(&all.json);
                } else {
                    let table_rows = all
                        .value
                        .iter()
                        .map(|t| {
                            vec![
                                esc(&t.id),
                                esc(&t.name),
                                esc(&t.user),
                                esc(&t.status),
                                t.scopes.as_deref().map_or_else(|| "-".into(), list),
                                millis(t.expires_at),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["ID", "NAME", "USER", "STATUS", "SCOPES", "EXPIRES"],
                            table_rows
                        )
                    );
                }
            }
            TokensCmd::Revoke { id } => {
                let revoked = client.revoke_token(&segment("token id", &id)?).await?;
                show(args, &revoked, token_line);
            }
            TokensCmd::RotateAdmin => {
                let rotated = client.rotate_admin_token().await?;
                if args.json {
                    print_json(&rotated.json);
                } else {
                    let rotated = &rotated.value;
                    println!("{}", esc(&rotated.token));
                    eprintln!(
                        "admin token rotated ({}); the old one no longer works; also written to {}",
                        esc(&rotated.id),
                        esc(&rotated.file)
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ----- policies --------------------------------------------------------------------
