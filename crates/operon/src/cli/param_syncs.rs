//! `operon params sync create|list|status|delete`: files on the nodes that
//! follow the parameters under a path.

use anyhow::Result;
use operon_api::params::{PutSync, Sync, SyncStatus};

use super::client::{Answer, Client, ClientArgs};
use super::client_params::encode;
use super::output::{esc, millis, print_json, table};

// Parsed once from the command line: boxing `Create` would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum SyncCmd {
    /// Keep FILE on every targeted node equal to the parameters under PATH
    /// (created, or replaced if NAME exists).
    Create {
        name: String,
        /// The path whose parameters the file holds, such as /app/prod/.
        #[arg(long)]
        path: String,
        /// Every level below the path, not only its direct children.
        #[arg(long)]
        recursive: bool,
        /// Nodes: tag:KEY=VALUE, all, or node names (repeatable).
        #[arg(long = "targets", required = true, num_args = 1.., value_delimiter = ',')]
        targets: Vec<String>,
        /// The absolute path of the file on the nodes.
        #[arg(long)]
        file: String,
        /// dotenv (the default: KEY="value" lines), json or yaml.
        #[arg(long, value_parser = ["dotenv", "json", "yaml"])]
        format: Option<String>,
        /// Octal permission bits (0600 by default).
        #[arg(long)]
        mode: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// A shell command run on a node once each time its file changed.
        #[arg(long)]
        on_change: Option<String>,
        /// The role the sync acts as (roles:Pass); yourself when absent.
        #[arg(long)]
        role: Option<String>,
    },
    /// List syncs.
    List,
    /// A sync and where each node is: the parameter versions it applied, when.
    Status { name: String },
    /// Delete a sync; the files stay on the nodes as they are.
    Delete { name: String },
}

impl Client {
    pub async fn put_sync(&self, name: &str, body: &PutSync) -> Result<Answer<Sync>> {
        let path = format!("/v1/param-syncs/{}", encode(name));
        Answer::read(self.put(&path, &super::client::to_json(body)?).await?)
    }

    pub async fn syncs(&self) -> Result<Answer<Vec<Sync>>> {
        Answer::read(self.get("/v1/param-syncs").await?)
    }

    pub async fn sync_status(&self, name: &str) -> Result<Answer<SyncStatus>> {
        Answer::read(
            self.get(&format!("/v1/param-syncs/{}", encode(name)))
                .await?,
        )
    }

    pub async fn delete_sync(&self, name: &str) -> Result<Answer<Sync>> {
        Answer::read(
            self.delete(&format!("/v1/param-syncs/{}", encode(name)))
                .await?,
        )
    }
}

fn describe(sync: &Sync) -> String {
    let on_change = sync
        .on_change
        .as_deref()
        .map(|c| format!(", then {}", esc(c)))
        .unwrap_or_default();
    format!(
        "{}: {} on {} follows {}{} ({}, {}){on_change}",
        esc(&sync.name),
        esc(&sync.file),
        esc(&sync.targets.join(", ")),
        esc(&sync.path),
        if sync.recursive { " recursively" } else { "" },
        esc(&sync.format),
        sync.mode,
    )
}

pub async fn sync(client: &Client, args: &ClientArgs, cmd: SyncCmd) -> Result<()> {
    match cmd {
        SyncCmd::Create {
            name,
            path,
            recursive,
            targets,
            file,
            format,
            mode,
            owner,
            group,
            on_change,
            role,
        } => {
            let body = PutSync {
                path,
                recursive,
                targets,
                file,
                format,
                mode,
                owner,
                group,
                on_change,
                role,
            };
            let sync = client.put_sync(&name, &body).await?;
            if args.json {
                print_json(&sync.json);
            } else {
                println!("{}", describe(&sync.value));
            }
        }
        SyncCmd::List => {
            let syncs = client.syncs().await?;
            if args.json {
                print_json(&syncs.json);
            } else {
                let rows = syncs
                    .value
                    .iter()
                    .map(|s| {
                        vec![
                            esc(&s.name),
                            esc(&s.path),
                            esc(&s.targets.join(",")),
                            esc(&s.file),
                            esc(&s.format),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["NAME", "PATH", "TARGETS", "FILE", "FORMAT"], rows)
                );
            }
        }
        SyncCmd::Status { name } => {
            let status = client.sync_status(&name).await?;
            if args.json {
                print_json(&status.json);
            } else {
                println!("{}", describe(&status.value.sync));
                let rows = status
                    .value
                    .nodes
                    .iter()
                    .map(|n| {
                        vec![
                            esc(&n.node_name),
                            esc(&n.status),
                            esc(n.versions.as_deref().unwrap_or("-")),
                            millis(n.applied_at),
                            n.on_change_exit.map_or("-".into(), |c| c.to_string()),
                            esc(n.detail.as_deref().unwrap_or("")),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "NODE",
                            "STATUS",
                            "VERSIONS",
                            "APPLIED",
                            "ON-CHANGE",
                            "DETAIL"
                        ],
                        rows
                    )
                );
            }
        }
        SyncCmd::Delete { name } => {
            let sync = client.delete_sync(&name).await?;
            if args.json {
                print_json(&sync.json);
            } else {
                println!(
                    "deleted sync {} (the files stay as they are)",
                    esc(&sync.value.name)
                );
            }
        }
    }
    Ok(())
}
