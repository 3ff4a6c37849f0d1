//! `operon archives create|list|delete`: kept copies of a bus's events.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::bus::{as_array, done};
use super::client::{Client, ClientArgs, runtime};
use super::input::json_arg;
use super::output::{table, text, time};

// ----- archives and replays ----------------------------------------------------

#[derive(clap::Subcommand)]
pub enum ArchivesCmd {
    /// Keep the events of a bus (matching an optional pattern) for replay.
    Create {
        name: String,
        #[arg(long, default_value = "default")]
        bus: String,
        /// Event pattern (a JSON file or inline JSON).
        #[arg(long)]
        pattern: Option<String>,
        /// Days to keep events (forever when absent).
        #[arg(long)]
        retention_days: Option<i64>,
    },
    List,
    Delete {
        name: String,
    },
}

pub fn archives(client_args: &ClientArgs, cmd: ArchivesCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        Ok(match cmd {
            ArchivesCmd::Create {
                name,
                bus,
                pattern,
                retention_days,
            } => {
                let pattern = pattern.map(|p| json_arg("--pattern", &p)).transpose()?;
                let body = json!({"name": name, "bus": bus, "pattern": pattern,
                    "retention_days": retention_days});
                let v = client.post("/v1/archives", &body).await?;
                done(client_args, &v, |_| println!("created archive {name}"))
            }
            ArchivesCmd::List => {
                let v = client.get("/v1/archives").await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|a| {
                            vec![
                                text(&a["name"]),
                                text(&a["bus"]),
                                text(&a["retention_days"]),
                                time(&a["created_at"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "BUS", "RETENTION DAYS", "CREATED"], rows)
                    );
                })
            }
            ArchivesCmd::Delete { name } => {
                let v = client.delete(&format!("/v1/archives/{name}")).await?;
                done(client_args, &v, |_| println!("deleted archive {name}"))
            }
        })
    })
}
