//! `operon replays start|list|describe`: an archive's events put on its bus again.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::events::StartReplay;
use serde_json::Value;

use super::bus::done;
use super::client::{Client, ClientArgs, runtime};
use super::output::{escape, print_json, table, time};

#[derive(clap::Subcommand)]
pub enum ReplaysCmd {
    /// Re-send archived events of a time window to the bus's rules.
    Start {
        #[arg(long)]
        archive: String,
        /// Start of the window (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        from: String,
        /// End of the window (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        to: String,
        /// Only these rules (comma-separated).
        #[arg(long, value_delimiter = ',')]
        rules: Vec<String>,
        /// Replay name (default: replay-<time>).
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Describe {
        name: String,
    },
}

pub fn replays(client_args: &ClientArgs, cmd: ReplaysCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        Ok(match cmd {
            ReplaysCmd::Start {
                archive,
                from,
                to,
                rules,
                name,
            } => {
                let name = name.unwrap_or_else(|| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    format!("replay-{now}")
                });
                let body = StartReplay {
                    name,
                    archive,
                    from,
                    to,
                    rules,
                };
                let started = client.start_replay(&body).await?;
                done(client_args, &started.json, |_| {
                    println!("started replay {}", escape(&started.value.name))
                })
            }
            ReplaysCmd::List => {
                let replays = client.replays().await?;
                done(client_args, &replays.json, |_| {
                    let rows = replays
                        .value
                        .iter()
                        .map(|r| {
                            vec![
                                escape(&r.name).into_owned(),
                                escape(&r.archive).into_owned(),
                                escape(&r.state).into_owned(),
                                r.events_replayed.to_string(),
                                time(&Value::from(r.started_at)),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "ARCHIVE", "STATE", "EVENTS", "STARTED"], rows)
                    );
                })
            }
            ReplaysCmd::Describe { name } => {
                print_json(&client.replay(&name).await?.json);
                ExitCode::SUCCESS
            }
        })
    })
}
