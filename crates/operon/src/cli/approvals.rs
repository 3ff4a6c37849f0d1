//! `operon approvals list|describe|approve|reject`: human approval steps.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::workflows::{Approval, Decision};

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, opt, table};
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
                let status = (!status.eq_ignore_ascii_case("all")).then_some(status);
                let list = client.approvals(status.as_deref()).await?;
                print_or(args, &list.json, || {
                    let rows = list
                        .value
                        .iter()
                        .map(|a| {
                            vec![
                                esc(&a.id),
                                esc(&a.status),
                                esc(&a.execution_id),
                                esc(&a.state),
                                esc(&a.message),
                                opt(a.decided_by.as_deref()),
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
                    .decide_approval(&id, true, &Decision { comment })
                    .await?;
                print_or(args, &a.json, || decided(&id, &a.value));
            }
            ApprovalsCmd::Reject { id, comment } => {
                let a = client
                    .decide_approval(&id, false, &Decision { comment })
                    .await?;
                print_or(args, &a.json, || decided(&id, &a.value));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `ID STATUS by WHO`, after a decision.
fn decided(id: &str, a: &Approval) -> String {
    format!(
        "{id} {} by {}",
        esc(&a.status),
        opt(a.decided_by.as_deref())
    )
}
