//! `operon enroll-tokens ...` and `operon nodes ...`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use operon_api::{CreatedEnrollToken, NodeView, TagChange};

use super::client::{Client, ClientArgs, key_value, runtime};
use super::output::{esc, millis, opt, print_json, table, tag_map};

/// The `operon agent` command line that enrolls a node with this token,
/// pinning the server's certificate when it serves TLS.
pub(super) fn agent_command_line(server: &str, created: &CreatedEnrollToken) -> String {
    let mut line = format!(
        "operon agent --server {} --enroll-token {}",
        server.trim_end_matches('/'),
        esc(&created.token)
    );
    if let Some(fingerprint) = &created.server_fingerprint {
        line.push_str(&format!(" --server-fingerprint {}", esc(fingerprint)));
    }
    line
}

pub(super) fn tag_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs.iter().map(|p| key_value(p)).collect()
}

#[derive(clap::Subcommand)]
pub enum NodesCmd {
    /// List nodes with their status and tags.
    List,
    /// Show one node (by id or name), with its inventory.
    Show { node: String },
    /// Set tags on a node.
    Tag {
        node: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        tags: Vec<String>,
    },
    /// Remove tags from a node.
    Untag {
        node: String,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
    /// Revoke a node: its connection is dropped and its credential refused.
    Revoke { node: String },
    /// Give a connected node a new credential without interrupting it; the
    /// old credential is refused once the agent has stored the new one.
    RotateCredential { node: String },
}

pub fn nodes(client_args: &ClientArgs, cmd: NodesCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        let shown = match cmd {
            NodesCmd::List => {
                let list = client.nodes().await?;
                if client_args.json {
                    print_json(&list.json);
                } else {
                    print_node_table(&list.value);
                }
                return Ok(ExitCode::SUCCESS);
            }
            NodesCmd::Show { node } => client.node(&node).await?,
            NodesCmd::Tag { node, tags } => {
                let change = TagChange {
                    set: tag_pairs(&tags)?,
                    remove: vec![],
                };
                client.tag_node(&node, &change).await?
            }
            NodesCmd::Untag { node, keys } => {
                let change = TagChange {
                    set: BTreeMap::new(),
                    remove: keys,
                };
                client.tag_node(&node, &change).await?
            }
            NodesCmd::RotateCredential { node } => {
                let answer = client.rotate_credential(&node).await?;
                if client_args.json {
                    print_json(&answer.json);
                } else {
                    let rotated = &answer.value;
                    println!(
                        "node {} ({}) has a new credential since {}; the old one is refused from now on",
                        esc(&rotated.node_id),
                        esc(&rotated.name),
                        millis(Some(rotated.rotated_at))
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            NodesCmd::Revoke { node } => client.revoke_node(&node).await?,
        };
        if client_args.json {
            print_json(&shown.json);
        } else {
            print_node(&shown.value);
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn print_node_table(list: &[NodeView]) {
    let rows = list
        .iter()
        .map(|n| {
            vec![
                esc(&n.id),
                esc(&n.name),
                n.status.to_string(),
                tag_map(&n.tags),
                millis(n.last_seen),
                format!(
                    "{} {}",
                    esc(&n.inventory.os_name),
                    esc(&n.inventory.os_version)
                ),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["ID", "NAME", "STATUS", "TAGS", "LAST SEEN", "OS"], rows)
    );
}

pub(super) fn print_node(n: &NodeView) {
    let inv = &n.inventory;
    let memory_gib = inv.memory_bytes as f64 / (1u64 << 30) as f64;
    let ips = inv
        .ip_addresses
        .iter()
        .map(|ip| esc(ip))
        .collect::<Vec<_>>()
        .join(", ");
    let lines = [
        ("ID", esc(&n.id)),
        ("Name", esc(&n.name)),
        ("Status", n.status.to_string()),
        ("Tags", tag_map(&n.tags)),
        ("Enrolled", millis(Some(n.enrolled_at))),
        ("Last seen", millis(n.last_seen)),
        ("Revoked", millis(n.revoked_at)),
        ("Hostname", esc(&inv.hostname)),
        (
            "OS",
            format!("{} {}", esc(&inv.os_name), esc(&inv.os_version)),
        ),
        ("Kernel", esc(&inv.kernel)),
        ("Arch", esc(&inv.arch)),
        ("CPUs", opt(Some(inv.cpus))),
        ("Memory", format!("{memory_gib:.1} GiB")),
        ("IP addresses", ips),
        ("Agent version", esc(&inv.agent_version)),
    ];
    for (label, value) in lines {
        println!("{label:<14} {value}");
    }
}
