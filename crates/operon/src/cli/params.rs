//! `operon params put|get|get-path|list|history|label|unlabel|delete|tag|tags`:
//! Parameter Store.
//!
//! `get` prints the value alone, as it is stored (for `$(operon params get
//! NAME)` in scripts); tables escape what they show like every other table.
//! A SecureString's value is shown only with `--decrypt`, which the server
//! audits; `put --value -` reads the value from stdin so that a secret is
//! never in the shell history or the process list.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use operon_api::params::{LabelChange, Parameter, ParameterPage, ParameterTagChange, PutParameter};
use serde_json::Value;

use super::client::{Answer, Client, ClientArgs, key_value, runtime};
use super::client_params::{ListFilter, PathRead};
use super::output::{esc, millis, print_json, table};

const TYPES: [&str; 3] = ["String", "StringList", "SecureString"];

#[derive(clap::Subcommand)]
pub enum ParamsCmd {
    /// Put a parameter: each put of an existing one (with --overwrite) makes
    /// a new version.
    Put {
        /// The name, such as /app/prod/db_url.
        name: String,
        /// The value; `-` reads it from stdin (one trailing newline dropped),
        /// which keeps secrets out of shell history and `ps`.
        #[arg(long, allow_hyphen_values = true)]
        value: String,
        /// String (the default for a new parameter), StringList or SecureString.
        #[arg(long = "type", value_parser = TYPES)]
        param_type: Option<String>,
        /// What the parameter is for.
        #[arg(long)]
        description: Option<String>,
        /// A regular expression every value must match.
        #[arg(long)]
        allowed_pattern: Option<String>,
        /// Write a new version of an existing parameter.
        #[arg(long)]
        overwrite: bool,
        /// Standard, Advanced or Intelligent-Tiering.
        #[arg(long)]
        tier: Option<String>,
        /// Parameter policies as AWS's JSON array (Advanced tier).
        #[arg(long)]
        policies: Option<String>,
        /// KEY=VALUE tag of a new parameter (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Print a parameter's value: NAME, NAME:VERSION or NAME:LABEL.
    Get {
        selector: String,
        /// Show a SecureString's value (params:GetDecrypted, audited).
        #[arg(long)]
        decrypt: bool,
    },
    /// The parameters under a path, with their values (every page).
    GetPath {
        path: String,
        /// Every level below the path, not only the first.
        #[arg(long)]
        recursive: bool,
        /// Show SecureString values (audited).
        #[arg(long)]
        decrypt: bool,
        /// Only versions carrying this label.
        #[arg(long)]
        label: Option<String>,
    },
    /// List parameters' metadata (every page).
    List {
        /// Only parameters under this path.
        #[arg(long)]
        path: Option<String>,
        /// With --path: every level below it.
        #[arg(long, requires = "path")]
        recursive: bool,
        /// Only this type.
        #[arg(long = "type", value_parser = TYPES)]
        param_type: Option<String>,
        /// Only names containing this.
        #[arg(long)]
        name_contains: Option<String>,
        /// KEY or KEY=VALUE: only parameters with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Every kept version of a parameter, oldest first.
    History {
        name: String,
        /// Show SecureString values (audited).
        #[arg(long)]
        decrypt: bool,
    },
    /// Put labels on a version (the latest by default); a label moves from
    /// the version that had it.
    Label {
        name: String,
        #[arg(long)]
        version: Option<i64>,
        #[arg(required = true)]
        labels: Vec<String>,
    },
    /// Take labels off a version.
    Unlabel {
        name: String,
        #[arg(long)]
        version: i64,
        #[arg(required = true)]
        labels: Vec<String>,
    },
    /// Delete parameters and every version of them; each name's outcome is
    /// reported, and the exit status is 1 if any failed.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Add and remove a parameter's tags.
    Tag {
        name: String,
        /// KEY=VALUE to add or change (repeatable).
        #[arg(long = "add")]
        add: Vec<String>,
        /// KEY to remove (repeatable).
        #[arg(long = "remove")]
        remove: Vec<String>,
    },
    /// A parameter's tags.
    Tags { name: String },
    /// Files on the nodes that follow the parameters under a path.
    Sync {
        #[command(subcommand)]
        cmd: super::param_syncs::SyncCmd,
    },
}

pub fn params(args: &ClientArgs, cmd: ParamsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            ParamsCmd::Put {
                name,
                value,
                param_type,
                description,
                allowed_pattern,
                overwrite,
                tier,
                policies,
                tags,
            } => {
                let value = if value == "-" {
                    read_stdin_value()?
                } else {
                    value
                };
                let policies = policies
                    .map(|text| {
                        serde_json::from_str::<Value>(&text)
                            .with_context(|| format!("--policies is not JSON: {text:?}"))
                    })
                    .transpose()?;
                let tags = tags
                    .iter()
                    .map(|t| key_value(t))
                    .collect::<Result<BTreeMap<_, _>>>()?;
                let body = PutParameter {
                    value,
                    param_type,
                    description,
                    allowed_pattern,
                    overwrite,
                    tier,
                    policies,
                    tags,
                };
                let written = client.put_parameter(&name, &body).await?;
                show(args, &written, |w| {
                    format!("{} version {} ({})", esc(&w.name), w.version, esc(&w.tier))
                });
            }
            ParamsCmd::Get { selector, decrypt } => {
                let found = client.parameter(&selector, decrypt).await?;
                if args.json {
                    print_json(&found.json);
                } else {
                    match &found.value.value {
                        // The value as stored: scripts read it.
                        Some(value) => println!("{value}"),
                        None => eprintln!(
                            "{} is a SecureString: pass --decrypt to see its value",
                            esc(&found.value.name)
                        ),
                    }
                }
            }
            ParamsCmd::GetPath {
                path,
                recursive,
                decrypt,
                label,
            } => {
                let read = PathRead {
                    path,
                    recursive,
                    decrypt,
                    label,
                };
                let pages =
                    every_page(async |token| client.parameters_by_path(&read, token).await).await?;
                if args.json {
                    print_pages(&pages);
                } else {
                    let rows = parameters(&pages)
                        .map(|p| {
                            vec![
                                esc(&p.name),
                                esc(&p.param_type),
                                p.version.to_string(),
                                shown_value(p),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "TYPE", "VERSION", "VALUE"], rows));
                }
            }
            ParamsCmd::List {
                path,
                recursive,
                param_type,
                name_contains,
                tag,
            } => {
                let filter = ListFilter {
                    path,
                    recursive,
                    param_type,
                    name_contains,
                    tag,
                };
                let pages =
                    every_page(async |token| client.list_parameters(&filter, token).await).await?;
                if args.json {
                    print_pages(&pages);
                } else {
                    let rows = parameters(&pages).map(metadata_row).collect();
                    println!(
                        "{}",
                        table(
                            &[
                                "NAME",
                                "TYPE",
                                "VERSION",
                                "TIER",
                                "MODIFIED",
                                "BY",
                                "DESCRIPTION"
                            ],
                            rows
                        )
                    );
                }
            }
            ParamsCmd::History { name, decrypt } => {
                let versions = client.parameter_history(&name, decrypt).await?;
                if args.json {
                    print_json(&versions.json);
                } else {
                    let rows = versions
                        .value
                        .iter()
                        .map(|p| {
                            vec![
                                p.version.to_string(),
                                esc(&p.param_type),
                                labels(&p.labels),
                                millis(Some(p.last_modified)),
                                esc(&p.last_modified_by),
                                shown_value(p),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(
                            &["VERSION", "TYPE", "LABELS", "MODIFIED", "BY", "VALUE"],
                            rows
                        )
                    );
                }
            }
            ParamsCmd::Label {
                name,
                version,
                labels: wanted,
            } => {
                let change = LabelChange {
                    version,
                    labels: wanted,
                };
                let done = client.label_parameter(&name, &change).await?;
                show(args, &done, |r| {
                    format!("{} version {} labelled", esc(&name), r.version)
                });
                if !done.value.invalid_labels.is_empty() {
                    eprintln!(
                        "not applied (they break the label rules): {}",
                        labels(&done.value.invalid_labels)
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            ParamsCmd::Unlabel {
                name,
                version,
                labels: unwanted,
            } => {
                let change = LabelChange {
                    version: Some(version),
                    labels: unwanted,
                };
                let done = client.unlabel_parameter(&name, &change).await?;
                show(args, &done, |r| {
                    format!(
                        "{} version {}: removed {}",
                        esc(&name),
                        r.version,
                        labels(&r.removed_labels)
                    )
                });
                if !done.value.invalid_labels.is_empty() {
                    eprintln!(
                        "version {version} did not carry: {}",
                        labels(&done.value.invalid_labels)
                    );
                }
            }
            ParamsCmd::Delete { names } => return delete(args, &client, &names).await,
            ParamsCmd::Tag { name, add, remove } => {
                if add.is_empty() && remove.is_empty() {
                    bail!("give --add KEY=VALUE or --remove KEY");
                }
                let add = add
                    .iter()
                    .map(|t| key_value(t))
                    .collect::<Result<BTreeMap<_, _>>>()?;
                let change = ParameterTagChange { add, remove };
                let tags = client.tag_parameter(&name, &change).await?;
                show(args, &tags, |t| {
                    format!("{} tags: {}", esc(&t.name), tag_list(&t.tags))
                });
            }
            ParamsCmd::Sync { cmd } => super::param_syncs::sync(&client, args, cmd).await?,
            ParamsCmd::Tags { name } => {
                let tags = client.parameter_tags(&name).await?;
                if args.json {
                    print_json(&tags.json);
                } else {
                    let rows = tags
                        .value
                        .tags
                        .iter()
                        .map(|(k, v)| vec![esc(k), esc(v)])
                        .collect();
                    println!("{}", table(&["KEY", "VALUE"], rows));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Delete each name in turn, whatever happened to the ones before; `--json`
/// prints the array of the server's answers for those deleted.
async fn delete(args: &ClientArgs, client: &Client, names: &[String]) -> Result<ExitCode> {
    let mut answers = Vec::new();
    let mut failed = 0;
    for name in names {
        match client.delete_parameter(name).await {
            Ok(deleted) => {
                if !args.json {
                    println!(
                        "deleted {} (latest version {})",
                        esc(&deleted.value.name),
                        deleted.value.version
                    );
                }
                answers.push(deleted.json);
            }
            Err(err) => {
                failed += 1;
                eprintln!("error: {}: {err:#}", esc(name));
            }
        }
    }
    if args.json {
        print_json(&Value::Array(answers));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The value from stdin, without the one newline `echo` or a heredoc adds.
fn read_stdin_value() -> Result<String> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("reading the value from stdin (--value -)")?;
    let trimmed = value
        .strip_suffix("\r\n")
        .or_else(|| value.strip_suffix('\n'))
        .unwrap_or(&value);
    Ok(trimmed.to_string())
}

/// Every page of a paged read: `fetch` is called with the token of the page
/// before until a page has none.
async fn every_page(
    mut fetch: impl AsyncFnMut(Option<&str>) -> Result<Answer<ParameterPage>>,
) -> Result<Vec<Answer<ParameterPage>>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = fetch(token.as_deref()).await?;
        let next = page.value.next_token.clone();
        pages.push(page);
        match next {
            // A server handing the same token back would loop for ever.
            Some(next) if Some(&next) != token.as_ref() => token = Some(next),
            Some(_) => bail!("the server returned the same page token twice"),
            None => return Ok(pages),
        }
    }
}

fn parameters(pages: &[Answer<ParameterPage>]) -> impl Iterator<Item = &Parameter> {
    pages.iter().flat_map(|page| &page.value.parameters)
}

/// All pages as one `{"parameters": [...]}`, each parameter as the server
/// sent it.
fn print_pages(pages: &[Answer<ParameterPage>]) {
    let all: Vec<Value> = pages
        .iter()
        .flat_map(|page| {
            page.json["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    print_json(&serde_json::json!({ "parameters": all }));
}

/// A value for a table: `(secure)` for a SecureString read without
/// decryption.
fn shown_value(p: &Parameter) -> String {
    match &p.value {
        Some(value) => esc(value),
        None if p.param_type == "SecureString" => "(secure)".into(),
        None => "-".into(),
    }
}

fn metadata_row(p: &Parameter) -> Vec<String> {
    vec![
        esc(&p.name),
        esc(&p.param_type),
        p.version.to_string(),
        esc(&p.tier),
        millis(Some(p.last_modified)),
        esc(&p.last_modified_by),
        p.description.as_deref().map_or_else(|| "-".into(), esc),
    ]
}

fn labels(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.iter().map(|s| esc(s)).collect::<Vec<_>>().join(",")
    }
}

fn tag_list(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        "-".into()
    } else {
        super::output::tag_map(tags)
    }
}

/// Print the answer's JSON, or a one-line summary for people.
fn show<T>(args: &ClientArgs, answer: &Answer<T>, summary: impl FnOnce(&T) -> String) {
    if args.json {
        print_json(&answer.json);
    } else {
        println!("{}", summary(&answer.value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(param_type: &str, value: Option<&str>) -> Parameter {
        Parameter {
            name: "/app/x".into(),
            param_type: param_type.into(),
            value: value.map(str::to_string),
            version: 1,
            selector: None,
            labels: vec![],
            last_modified: 0,
            last_modified_by: "admin".into(),
            description: None,
            allowed_pattern: None,
            tier: "Standard".into(),
            data_type: "text".into(),
            policies: None,
            key_id: None,
        }
    }

    #[test]
    fn secure_values_are_hidden_unless_decrypted_and_cells_are_escaped() {
        let cases = [
            ("SecureString", None, "(secure)"),
            ("SecureString", Some("s3cret"), "s3cret"),
            ("String", Some("a\u{1b}[2Jb"), "a\\x1b[2Jb"),
            ("StringList", Some("a,b"), "a,b"),
            ("String", None, "-"),
        ];
        for (param_type, value, shown) in cases {
            assert_eq!(shown_value(&parameter(param_type, value)), shown);
        }
    }

    #[test]
    fn labels_and_tags_read_as_lists() {
        assert_eq!(labels(&[]), "-");
        assert_eq!(labels(&["prod".into(), "x\u{7}".into()]), "prod,x\\x07");
        assert_eq!(tag_list(&BTreeMap::new()), "-");
        let tags = [("env".to_string(), "prod".to_string())].into();
        assert_eq!(tag_list(&tags), "env=prod");
    }
}
