//! `operon dlq list|show|redrive`: deliveries that gave up.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::events::RedriveDeadLetters;
use serde_json::Value;

use super::bus::done;
use super::client::{Client, ClientArgs, runtime};
use super::output::{escape, print_json, table, time};

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
                let letters = client.dead_letters(rule.as_deref()).await?;
                done(client_args, &letters.json, |_| {
                    let rows = letters
                        .value
                        .iter()
                        .map(|d| {
                            vec![
                                escape(&d.id).into_owned(),
                                escape(&d.rule).into_owned(),
                                escape(&d.target_id).into_owned(),
                                d.attempts.to_string(),
                                time(&Value::from(d.failed_at)),
                                escape(&d.last_error).into_owned(),
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
                print_json(&client.dead_letter(&id).await?.json);
                ExitCode::SUCCESS
            }
            DlqCmd::Redrive { ids, rule, all } => {
                let done_ = client
                    .redrive(&RedriveDeadLetters { ids, rule, all })
                    .await?;
                let missing = done_.value.not_found.len();
                done(client_args, &done_.json, |_| {
                    println!("redrove {} dead letter(s)", done_.value.redriven.len());
                    for id in &done_.value.not_found {
                        eprintln!("no dead letter {}", escape(id));
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
