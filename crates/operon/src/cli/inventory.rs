//! `operon inventory show|query`: what the agents reported about their
//! nodes (os, packages, services, users, groups, interfaces, ports, and
//! custom:NAME from the agents' custom inventory files).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, millis, print_json, table};

#[derive(clap::Subcommand)]
pub enum InventoryCmd {
    /// A node's inventory (every type unless --type).
    Show {
        /// The node's id or name.
        node: String,
        /// os, packages, services, users, groups, interfaces, ports or custom:NAME.
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// One type of inventory across the fleet, filtered.
    Query {
        /// os, packages, services, users, groups, interfaces, ports or custom:NAME.
        #[arg(long = "type")]
        kind: String,
        /// Comma-separated ATTR OP VALUE conditions, all of which must hold:
        /// 'name=openssl,version<3.0.7'. name is the item's key; OP is one of
        /// = != < <= > >= (Debian version order) ~ (regular expression).
        #[arg(long)]
        filter: Option<String>,
    },
}

/// `k=v k2=v2`, escaped like every table cell.
fn attributes(attributes: &BTreeMap<String, String>) -> String {
    attributes
        .iter()
        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn inventory(args: &ClientArgs, cmd: InventoryCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            InventoryCmd::Show { node, kind } => {
                let answer = client.node_inventory(&node, kind.as_deref()).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    let rows = answer
                        .value
                        .items
                        .iter()
                        .map(|i| {
                            vec![
                                esc(&i.kind),
                                esc(&i.key),
                                attributes(&i.attributes),
                                millis(Some(i.updated_at)),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["TYPE", "KEY", "ATTRIBUTES", "CHANGED"], rows));
                }
            }
            InventoryCmd::Query { kind, filter } => {
                let answer = client.query_inventory(&kind, filter.as_deref()).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    let rows = answer
                        .value
                        .matches
                        .iter()
                        .map(|m| {
                            vec![
                                esc(&m.node_name),
                                esc(&m.key),
                                attributes(&m.attributes),
                                millis(Some(m.updated_at)),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["NODE", "KEY", "ATTRIBUTES", "CHANGED"], rows));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
