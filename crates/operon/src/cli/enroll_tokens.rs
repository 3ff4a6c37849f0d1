//! `operon enroll-tokens create|list|revoke`: tokens that let agents enroll.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use super::client::{Client, ClientArgs, runtime};
use super::fleet::*;
use super::output::{print_json, table, tags, text, time};

#[derive(clap::Subcommand)]
pub enum EnrollTokensCmd {
    /// Create an enrollment token; it is printed once.
    Create {
        /// Tag given to every node enrolled with this token (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// How many nodes may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: i64,
        /// Lifetime, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
    },
    /// List enrollment tokens (never their secrets).
    List,
    /// Revoke an enrollment token: it enrolls no more nodes. Nodes it
    /// already enrolled keep their credentials (`operon nodes revoke`).
    Revoke {
        /// The token's id (`et-...`, from `enroll-tokens list`).
        id: String,
    },
}

pub fn enroll_tokens(client_args: &ClientArgs, cmd: EnrollTokensCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        match cmd {
            EnrollTokensCmd::Create {
                tags,
                uses,
                expires,
            } => {
                let ttl = humantime::parse_duration(&expires).with_context(|| {
                    format!("--expires {expires:?}: use a duration such as 30m, 24h or 7d")
                })?;
                let tags = tags_object(&tags)?;
                let body =
                    json!({"tags": tags, "uses": uses, "expires_in_secs": ttl.as_secs().max(1)});
                let created = client.post("/v1/enroll-tokens", &body).await?;
                if client_args.json {
                    print_json(&created);
                } else {
                    println!("{}", text(&created["token"]));
                    eprintln!(
                        "enrollment token {} for {} node(s), expires {}; it is shown only once",
                        text(&created["id"]),
                        uses,
                        time(&created["expires_at"])
                    );
                    eprintln!("on the node, run:");
                    eprintln!("  {}", agent_command_line(&client_args.server, &created));
                }
            }
            EnrollTokensCmd::List => {
                let list = client.get("/v1/enroll-tokens").await?;
                if client_args.json {
                    print_json(&list);
                } else {
                    let rows = as_array(&list)
                        .iter()
                        .map(|t| {
                            vec![
                                text(&t["id"]),
                                tags(&t["tags"]),
                                format!("{}/{}", text(&t["uses"]), text(&t["uses_allowed"])),
                                time(&t["expires_at"]),
                                time(&t["revoked_at"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["ID", "TAGS", "USED", "EXPIRES", "REVOKED"], rows)
                    );
                }
            }
            EnrollTokensCmd::Revoke { id } => {
                let path = format!("/v1/enroll-tokens/{}/revoke", segment(&id)?);
                let revoked = client.post(&path, &json!({})).await?;
                if client_args.json {
                    print_json(&revoked);
                } else {
                    println!(
                        "enrollment token {} revoked at {} ({} of {} uses taken); it enrolls no more nodes",
                        text(&revoked["id"]),
                        time(&revoked["revoked_at"]),
                        text(&revoked["uses"]),
                        text(&revoked["uses_allowed"])
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
