//! `operon archives create|list|delete`: kept copies of a bus's events.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::events::CreateArchive;
use serde_json::Value;

use super::bus::done;
use super::client::{Client, ClientArgs, runtime};
use super::input::json_arg;
use super::output::{escape, table, text, time};

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
                let body = CreateArchive {
                    name: name.clone(),
                    bus: Some(bus),
                    pattern,
                    retention_days,
                };
                let created = client.create_archive(&body).await?;
                done(client_args, &created.json, |_| {
                    println!("created archive {name}")
                })
            }
            ArchivesCmd::List => {
                let archives = client.archives().await?;
                done(client_args, &archives.json, |_| {
                    let rows = archives
                        .value
                        .iter()
                        .map(|a| {
                            vec![
                                escape(&a.name).into_owned(),
                                escape(&a.bus).into_owned(),
                                text(&Value::from(a.retention_days)),
                                time(&Value::from(a.created_at)),
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
                let deleted = client.delete_archive(&name).await?;
                done(client_args, &deleted.json, |_| {
                    println!("deleted archive {name}")
                })
            }
        })
    })
}
