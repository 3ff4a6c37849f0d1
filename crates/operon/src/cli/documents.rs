//! `operon documents create|list|show|update-default`: SSM-shaped command documents and their versions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, runtime};
use super::output::{print_json, table, text, time};

#[derive(clap::Subcommand)]
pub enum DocumentsCmd {
    /// Store a document from YAML or JSON: a new version if the name exists,
    /// which runs by name only once made the default (update-default).
    Create {
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// List documents with their default and latest versions.
    List,
    /// Show a document (its default version unless --version).
    Show {
        name: String,
        /// A version number, $DEFAULT or $LATEST.
        #[arg(long, value_name = "N|$DEFAULT|$LATEST")]
        version: Option<String>,
    },
    /// Make a version the default: what runs when no version is named
    /// (commands, rule targets, runbook tasks). New versions never become
    /// the default by themselves.
    UpdateDefault {
        name: String,
        /// A version number, or $LATEST.
        #[arg(long, value_name = "N|$LATEST")]
        version: String,
    },
}

/// A version given on the command line: a number as a JSON number, anything
/// else (`$DEFAULT`, `$LATEST`) as text for the server to check.
pub(super) fn version_value(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(text),
    }
}

pub fn documents(client_args: &ClientArgs, cmd: DocumentsCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    runtime()?.block_on(async {
        match cmd {
            DocumentsCmd::Create { name, file } => {
                let content = read_document(&file)?;
                let created = client
                    .post("/v1/documents", &json!({"name": name, "content": content}))
                    .await?;
                if client_args.json {
                    print_json(&created);
                } else {
                    println!(
                        "document {} version {} (default version {})",
                        text(&created["name"]),
                        text(&created["version"]),
                        text(&created["default_version"])
                    );
                }
            }
            DocumentsCmd::List => {
                let list = client.get("/v1/documents").await?;
                if client_args.json {
                    print_json(&list);
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        vec![
                            text(&d["name"]),
                            text(&d["default_version"]),
                            text(&d["latest_version"]),
                            time(&d["created_at"]),
                        ]
                    })
                    .collect();
                println!("{}", table(&["NAME", "DEFAULT", "LATEST", "CREATED"], rows));
            }
            DocumentsCmd::Show { name, version } => {
                let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
                let doc = client.get(&format!("/v1/documents/{name}{query}")).await?;
                print_json(&doc);
            }
            DocumentsCmd::UpdateDefault { name, version } => {
                let change = client
                    .post(
                        &format!("/v1/documents/{name}/default-version"),
                        &json!({"version": version_value(&version)}),
                    )
                    .await?;
                if client_args.json {
                    print_json(&change);
                } else {
                    println!(
                        "document {} default version {} (was {}; latest {})",
                        text(&change["name"]),
                        text(&change["default_version"]),
                        text(&change["previous_default_version"]),
                        text(&change["latest_version"])
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Read a YAML or JSON document file.
fn read_document(path: &Path) -> Result<Value> {
    super::input::read_json_or_yaml_file("--file", path)
}
