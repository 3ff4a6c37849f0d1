//! `operon dlq list|show|redrive`: deliveries that gave up.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::bus::{as_array, done, encode};
use super::client::{Client, ClientArgs, runtime};
use super::output::{print_json, table, text, time};

// ----- dead letters ------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum DlqCmd {
    /// Deliveries that exhausted their retry policy.
    List {
        #[arg(long)]
        rule: Option<String>,
    },
    /// One dead letter with its event and last error.
    Show { id: String },
    /// Deliver again (same delivery ids, attempts reset).
    Redrive {
        ids: Vec<String>,
        /// Every dead letter of this rule.
        #[arg(long, conflicts_with = "all")]
        rule: Option<String>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
}

pub fn dlq(client_args: &ClientArgs, cmd: DlqCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        Ok(match cmd {
            DlqCmd::List { rule } => {
                let path = match rule {
                    Some(r) => format!("/v1/dlq?rule={}", encode(&r)),
                    None => "/v1/dlq".to_string(),
                };
                let v = client.get(&path).await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|d| {
                            vec![
                                text(&d["id"]),
                                text(&d["rule"]),
                                text(&d["target_id"]),
                                text(&d["attempts"]),
                                time(&d["failed_at"]),
                                text(&d["last_error"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["ID", "RULE", "TARGET", "ATTEMPTS", "FAILED", "ERROR"],
                            rows
                        )
                    );
                })
            }
            DlqCmd::Show { id } => {
                print_json(&client.get(&format!("/v1/dlq/{id}")).await?);
                ExitCode::SUCCESS
            }
            DlqCmd::Redrive { ids, rule, all } => {
                let v = client
                    .post(
                        "/v1/dlq/redrive",
                        &json!({"ids": ids, "rule": rule, "all": all}),
                    )
                    .await?;
                let missing = as_array(&v["not_found"]).len();
                done(client_args, &v, |v| {
                    println!("redrove {} dead letter(s)", as_array(&v["redriven"]).len());
                    for id in as_array(&v["not_found"]) {
                        eprintln!("no dead letter {}", text(id));
                    }
                });
                if missing > 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
        })
    })
}
