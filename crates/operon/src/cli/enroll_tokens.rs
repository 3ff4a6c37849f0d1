//! `operon enroll-tokens create|list|revoke`: tokens that let agents enroll.

use std::process::ExitCode;

use anyhow::{Context, Result};
use operon_api::CreateEnrollToken;

use super::client::{Client, ClientArgs, runtime};
use super::fleet::{agent_command_line, tag_pairs};
use super::output::{esc, millis, print_json, table, tag_map};

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
                let body = CreateEnrollToken {
                    tags: tag_pairs(&tags)?,
                    uses: Some(uses),
                    expires_in_secs: Some(i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX)),
                };
                let answer = client.create_enroll_token(&body).await?;
                let created = &answer.value;
                if client_args.json {
                    print_json(&answer.json);
                } else {
                    println!("{}", esc(&created.token));
                    eprintln!(
                        "enrollment token {} for {} node(s), expires {}; it is shown only once",
                        esc(&created.record.id),
                        uses,
                        millis(Some(created.record.expires_at))
                    );
                    eprintln!("on the node, run:");
                    eprintln!("  {}", agent_command_line(&client_args.server, created));
                }
            }
            EnrollTokensCmd::List => {
                let list = client.enroll_tokens().await?;
                if client_args.json {
                    print_json(&list.json);
                } else {
                    let rows = list
                        .value
                        .iter()
                        .map(|t| {
                            vec![
                                esc(&t.id),
                                tag_map(&t.tags),
                                format!("{}/{}", t.uses, t.uses_allowed),
                                millis(Some(t.expires_at)),
                                millis(t.revoked_at),
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
                let answer = client.revoke_enroll_token(&id).await?;
                let revoked = &answer.value;
                if client_args.json {
                    print_json(&answer.json);
                } else {
                    println!(
                        "enrollment token {} revoked at {} ({} of {} uses taken); it enrolls no more nodes",
                        esc(&revoked.id),
                        millis(revoked.revoked_at),
                        revoked.uses,
                        revoked.uses_allowed
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
