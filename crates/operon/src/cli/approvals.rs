//! `operon approvals list|describe|approve|reject`: human approval steps.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::client::{Client, ClientArgs, runtime};
use super::output::{table, text};
use super::runbooks::*;

#[derive(clap::Subcommand)]
pub enum ApprovalsCmd {
    /// List approvals (pending by default).
    List {
        /// Pending, Approved, Rejected, Expired or all.
        #[arg(long, default_value = "Pending")]
        status: String,
    },
    /// Approve: the execution continues.
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject: the task fails with Operon.ApprovalRejected.
    Reject {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

pub fn approvals(args: &ClientArgs, cmd: ApprovalsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            ApprovalsCmd::List { status } => {
                let path = if status.eq_ignore_ascii_case("all") {
                    "/v1/approvals".to_string()
                } else {
                    format!("/v1/approvals?status={status}")
                };
                let list = client.get(&path).await?;
                print_or(args, &list, || {
                    let rows = items(&list)
                        .map(|a| {
                            vec![
                                text(&a["id"]),
                                text(&a["status"]),
                                text(&a["execution_id"]),
                                text(&a["state"]),
                                text(&a["message"]),
                                text(&a["decided_by"]),
                            ]
                        })
                        .collect();
                    table(
                        &[
                            "ID",
                            "STATUS",
                            "EXECUTION",
                            "STATE",
                            "MESSAGE",
                            "DECIDED BY",
                        ],
                        rows,
                    )
                });
            }
            ApprovalsCmd::Approve { id, comment } => {
                let a = client
                    .post(
                        &format!("/v1/approvals/{id}/approve"),
                        &json!({"comment": comment}),
                    )
                    .await?;
                print_or(args, &a, || {
                    format!("{id} {} by {}", text(&a["status"]), text(&a["decided_by"]))
                });
            }
            ApprovalsCmd::Reject { id, comment } => {
                let a = client
                    .post(
                        &format!("/v1/approvals/{id}/reject"),
                        &json!({"comment": comment}),
                    )
                    .await?;
                print_or(args, &a, || {
                    format!("{id} {} by {}", text(&a["status"]), text(&a["decided_by"]))
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
