//! `operon replays start|list|describe`: an archive's events put on its bus again.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::bus::{as_array, done};
use super::client::{Client, ClientArgs, runtime};
use super::output::{print_json, table, text, time};

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
                let body = json!({"name": name, "archive": archive, "from": from, "to": to,
                    "rules": rules});
                let v = client.post("/v1/replays", &body).await?;
                done(client_args, &v, |v| {
                    println!("started replay {}", text(&v["name"]))
                })
            }
            ReplaysCmd::List => {
                let v = client.get("/v1/replays").await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|r| {
                            vec![
                                text(&r["name"]),
                                text(&r["archive"]),
                                text(&r["state"]),
                                text(&r["events_replayed"]),
                                time(&r["started_at"]),
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
                let v = client.get(&format!("/v1/replays/{name}")).await?;
                print_json(&v);
                ExitCode::SUCCESS
            }
        })
    })
}
