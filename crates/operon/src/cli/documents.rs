//! `operon documents create|list|show|update-default`: SSM-shaped command documents and their versions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use operon_api::{CreateDocument, UpdateDefaultVersion};
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, millis, print_json, table};

#[derive(clap::Subcommand)]
pub enum DocumentsCmd {
    /// Store a document from YAML or JSON: a new version if the name exists,
    /// which runs by name only once made the default (update-default).
    /// Command documents (schemaVersion 2.2) and desired-state documents
    /// (operon-state/1) are stored alike.
    Create {
        name: String,
        /// The document, YAML or JSON.
        #[arg(
            long,
            required_unless_present = "content_from",
            conflicts_with = "content_from"
        )]
        file: Option<PathBuf>,
        /// Store this file's text as a file document (operon-file/1), which a
        /// desired-state document's file resource names as its `source`.
        #[arg(long, value_name = "PATH")]
        content_from: Option<PathBuf>,
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
            DocumentsCmd::Create {
                name,
                file,
                content_from,
            } => {
                let content = match (file, content_from) {
                    (Some(file), _) => read_document(&file)?,
                    (None, Some(path)) => file_document(&path)?,
                    (None, None) => anyhow::bail!("give --file or --content-from"),
                };
                let created = client
                    .create_document(&CreateDocument { name, content })
                    .await?;
                if client_args.json {
                    print_json(&created.json);
                } else {
                    let created = &created.value;
                    println!(
                        "document {} version {} (default version {})",
                        esc(&created.name),
                        created.version,
                        created.default_version
                    );
                }
            }
            DocumentsCmd::List => {
                let list = client.documents().await?;
                if client_args.json {
                    print_json(&list.json);
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = list
                    .value
                    .iter()
                    .map(|d| {
                        vec![
                            esc(&d.name),
                            d.default_version.to_string(),
                            d.latest_version.to_string(),
                            millis(d.created_at),
                        ]
                    })
                    .collect();
                println!("{}", table(&["NAME", "DEFAULT", "LATEST", "CREATED"], rows));
            }
            DocumentsCmd::Show { name, version } => {
                let doc = client.document(&name, version.as_deref()).await?;
                print_json(&doc.json);
            }
            DocumentsCmd::UpdateDefault { name, version } => {
                let body = UpdateDefaultVersion {
                    version: version_value(&version),
                };
                let change = client.update_default_version(&name, &body).await?;
                if client_args.json {
                    print_json(&change.json);
                } else {
                    let change = &change.value;
                    println!(
                        "document {} default version {} (was {}; latest {})",
                        esc(&change.name),
                        change.default_version,
                        change.previous_default_version,
                        change.latest_version
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A file document holding the text of `path`.
fn file_document(path: &std::path::Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "--content-from {}: {e} (a file document holds text)",
            path.display()
        )
    })?;
    Ok(json!({"schemaVersion": "operon-file/1", "content": text}))
}

/// Read a YAML or JSON document file.
fn read_document(path: &Path) -> Result<Value> {
    super::input::read_json_or_yaml_file("--file", path)
}
