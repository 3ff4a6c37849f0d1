//! `operon enroll-tokens ...` and `operon nodes ...`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, key_value, runtime};
use super::output::{print_json, table, tags, text, time};

/// The `operon agent` command line that enrolls a node with this token,
/// pinning the server's certificate when it serves TLS.
pub(super) fn agent_command_line(server: &str, created: &Value) -> String {
    let mut line = format!(
        "operon agent --server {} --enroll-token {}",
        server.trim_end_matches('/'),
        text(&created["token"])
    );
    if let Some(fingerprint) = created["server_fingerprint"].as_str() {
        line.push_str(&format!(" --server-fingerprint {fingerprint}"));
    }
    line
}

pub(super) fn tags_object(pairs: &[String]) -> Result<serde_json::Map<String, Value>> {
    pairs
        .iter()
        .map(|p| key_value(p).map(|(k, v)| (k, Value::String(v))))
        .collect()
}

pub(super) fn as_array(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
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
                let list = client.get("/v1/nodes").await?;
                if client_args.json {
                    print_json(&list);
                } else {
                    print_node_table(&list);
                }
                return Ok(ExitCode::SUCCESS);
            }
            NodesCmd::Show { node } => {
                client
                    .get(&format!("/v1/nodes/{}", segment(&node)?))
                    .await?
            }
            NodesCmd::Tag { node, tags } => {
                let body = json!({"set": tags_object(&tags)?});
                client
                    .post(&format!("/v1/nodes/{}/tags", segment(&node)?), &body)
                    .await?
            }
            NodesCmd::Untag { node, keys } => {
                let body = json!({"remove": keys});
                client
                    .post(&format!("/v1/nodes/{}/tags", segment(&node)?), &body)
                    .await?
            }
            NodesCmd::RotateCredential { node } => {
                let path = format!("/v1/nodes/{}/rotate-credential", segment(&node)?);
                let rotated = client.post(&path, &json!({})).await?;
                if client_args.json {
                    print_json(&rotated);
                } else {
                    println!(
                        "node {} ({}) has a new credential since {}; the old one is refused from now on",
                        text(&rotated["node_id"]),
                        text(&rotated["name"]),
                        time(&rotated["rotated_at"])
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            NodesCmd::Revoke { node } => {
                client
                    .post(&format!("/v1/nodes/{}/revoke", segment(&node)?), &json!({}))
                    .await?
            }
        };
        if client_args.json {
            print_json(&shown);
        } else {
            print_node(&shown);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A path segment from user input; ids and names never need escaping.
pub(super) fn segment(text: &str) -> Result<&str> {
    if text.is_empty() || text.contains(['/', '?', '#', '%', ' ']) {
        bail!("invalid id or name {text:?}");
    }
    Ok(text)
}

pub(super) fn print_node_table(list: &Value) {
    let rows = as_array(list)
        .iter()
        .map(|n| {
            vec![
                text(&n["id"]),
                text(&n["name"]),
                text(&n["status"]),
                tags(&n["tags"]),
                time(&n["last_seen"]),
                format!(
                    "{} {}",
                    text(&n["inventory"]["os_name"]),
                    text(&n["inventory"]["os_version"])
                ),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["ID", "NAME", "STATUS", "TAGS", "LAST SEEN", "OS"], rows)
    );
}

pub(super) fn print_node(n: &Value) {
    let inv = &n["inventory"];
    let memory_gib = inv["memory_bytes"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64;
    let ips = inv["ip_addresses"]
        .as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let lines = [
        ("ID", text(&n["id"])),
        ("Name", text(&n["name"])),
        ("Status", text(&n["status"])),
        ("Tags", tags(&n["tags"])),
        ("Enrolled", time(&n["enrolled_at"])),
        ("Last seen", time(&n["last_seen"])),
        ("Revoked", time(&n["revoked_at"])),
        ("Hostname", text(&inv["hostname"])),
        (
            "OS",
            format!("{} {}", text(&inv["os_name"]), text(&inv["os_version"])),
        ),
        ("Kernel", text(&inv["kernel"])),
        ("Arch", text(&inv["arch"])),
        ("CPUs", text(&inv["cpus"])),
        ("Memory", format!("{memory_gib:.1} GiB")),
        ("IP addresses", ips),
        ("Agent version", text(&inv["agent_version"])),
    ];
    for (label, value) in lines {
        println!("{label:<14} {value}");
    }
}
