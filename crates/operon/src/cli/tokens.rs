//! `operon tokens create|list|revoke|rotate-admin`: API tokens.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, runtime};
use super::identity::*;
use super::output::{print_json, table, text, time};

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

fn token_line(t: &Value) -> String {
    format!(
        "token {} \"{}\" of {}: {}",
        text(&t["id"]),
        text(&t["name"]),
        text(&t["user"]),
        text(&t["status"])
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
                            .with_context(|| format!("--expires {e:?}: use a duration such as 12h or 90d"))
                    })
                    .transpose()?;
                let scopes = (!scopes.is_empty()).then_some(scopes);
                let body = json!({"name": name, "user": user, "scopes": scopes, "expires_in_secs": expires_in_secs});
                let created = client.post("/v1/tokens", &body).await?;
                if args.json {
                    print_json(&created);
                } else {
                    println!("{}", text(&created["token"]));
                    eprintln!("{}; the secret is shown only once", token_line(&created));
                }
            }
            TokensCmd::List { user } => {
                let path = match user {
                    Some(user) => format!("/v1/tokens?user={}", segment("user", &user)?),
                    None => "/v1/tokens".to_string(),
                };
                let all = client.get(&path).await?;
                if args.json {
                    print_json(&all);
                } else {
                    let table_rows = rows(&all)
                        .iter()
                        .map(|t| {
                            vec![
                                text(&t["id"]),
                                text(&t["name"]),
                                text(&t["user"]),
                                text(&t["status"]),
                                list(&t["scopes"]),
                                time(&t["expires_at"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["ID", "NAME", "USER", "STATUS", "SCOPES", "EXPIRES"], table_rows)
                    );
                }
            }
            TokensCmd::Revoke { id } => {
                let path = format!("/v1/tokens/{}/revoke", segment("token id", &id)?);
                let revoked = client.post(&path, &json!({})).await?;
                show(args, &revoked, token_line);
            }
            TokensCmd::RotateAdmin => {
                let rotated = client.post("/v1/admin-token/rotate", &json!({})).await?;
                if args.json {
                    print_json(&rotated);
                } else {
                    println!("{}", text(&rotated["token"]));
                    eprintln!(
                        "admin token rotated ({}); the old one no longer works; also written to {}",
                        text(&rotated["id"]),
                        text(&rotated["file"])
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ----- policies --------------------------------------------------------------------
