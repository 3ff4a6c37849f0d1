//! `operon audit list|verify`: the hash-chained audit trail.

use std::process::ExitCode;

use anyhow::Result;

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, millis, print_json, table};

#[derive(clap::Subcommand)]
pub enum AuditCmd {
    /// List audit records, oldest first.
    List {
        #[arg(long)]
        actor: Option<String>,
        /// Exact action or a prefix ending in *, e.g. commands:*.
        #[arg(long)]
        action: Option<String>,
        /// RFC 3339 time (2026-11-30T10:00:00Z) or an age such as 1h.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Check the hash chain; exits 1 and names every edited, removed or
    /// reordered record.
    Verify,
}

fn since_millis(since: &str) -> Result<i64> {
    let at = humantime::parse_rfc3339_weak(since)
        .or_else(|_| humantime::parse_duration(since).map(|age| std::time::SystemTime::now() - age))
        .map_err(|_| {
            anyhow::anyhow!("--since {since:?}: use an RFC 3339 time or an age such as 1h")
        })?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub fn audit(args: &ClientArgs, cmd: AuditCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            AuditCmd::List {
                actor,
                action,
                since,
                limit,
            } => {
                let mut query = format!("limit={limit}");
                if let Some(actor) = actor {
                    query.push_str(&format!("&actor={}", query_value(&actor)));
                }
                if let Some(action) = action {
                    query.push_str(&format!("&action={}", query_value(&action)));
                }
                if let Some(since) = since {
                    query.push_str(&format!("&since={}", since_millis(&since)?));
                }
                let records = client.audit_records(&query).await?;
                if args.json {
                    print_json(&records.json);
                } else {
                    let table_rows = records
                        .value
                        .iter()
                        .map(|r| {
                            vec![
                                r.seq.to_string(),
                                millis(Some(r.at)),
                                esc(&r.actor),
                                esc(&r.action),
                                esc(&r.resource),
                                esc(&r.outcome),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["SEQ", "AT", "ACTOR", "ACTION", "RESOURCE", "OUTCOME"],
                            table_rows
                        )
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCmd::Verify => {
                let report = client.verify_audit().await?;
                let ok = report.value.ok;
                if args.json {
                    print_json(&report.json);
                } else if ok {
                    println!(
                        "audit log intact: {} records, chain verified",
                        report.value.records
                    );
                } else {
                    for problem in &report.value.problems {
                        println!("TAMPERED: {}", esc(problem));
                    }
                }
                Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
        }
    })
}
