//! `operon users|tokens|policies|roles|audit ...`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, key_value, runtime};
use super::output::{print_json, table, text, time};

fn segment(kind: &str, value: &str) -> Result<String> {
    if value.is_empty() || value.contains(['/', '?', '#', '%', ' ']) {
        bail!("invalid {kind} {value:?}");
    }
    Ok(value.to_string())
}

fn rows(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

fn list(value: &Value) -> String {
    match value.as_array() {
        Some(items) if !items.is_empty() => items.iter().map(text).collect::<Vec<_>>().join(","),
        _ => "-".into(),
    }
}

/// Print JSON, or a one-line summary for people.
fn show(args: &ClientArgs, value: &Value, summary: impl FnOnce(&Value) -> String) {
    if args.json {
        print_json(value);
    } else {
        println!("{}", summary(value));
    }
}

// ----- users -----------------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum UsersCmd {
    /// Create a user (or a service account with --service).
    Create {
        name: String,
        #[arg(long)]
        service: bool,
        /// Role to grant (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List users with their roles.
    List,
    /// Show one user.
    Show { name: String },
    /// Disable a user: every token of theirs stops working at once.
    Disable { name: String },
    /// Grant roles to a user.
    Grant {
        name: String,
        #[arg(required = true)]
        roles: Vec<String>,
    },
    /// Take roles back from a user.
    Ungrant {
        name: String,
        #[arg(required = true)]
        roles: Vec<String>,
    },
}

fn user_line(u: &Value) -> String {
    format!(
        "user {} ({}, {}), roles: {}",
        text(&u["name"]),
        text(&u["kind"]),
        text(&u["status"]),
        list(&u["roles"])
    )
}

pub fn users(args: &ClientArgs, cmd: UsersCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        let shown = match cmd {
            UsersCmd::Create {
                name,
                service,
                roles,
            } => {
                let kind = if service { "service" } else { "user" };
                let body = json!({"name": name, "kind": kind, "roles": roles});
                client.post("/v1/users", &body).await?
            }
            UsersCmd::List => {
                let all = client.get("/v1/users").await?;
                if args.json {
                    print_json(&all);
                } else {
                    let table_rows = rows(&all)
                        .iter()
                        .map(|u| {
                            vec![
                                text(&u["name"]),
                                text(&u["kind"]),
                                text(&u["status"]),
                                list(&u["roles"]),
                                time(&u["created_at"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "KIND", "STATUS", "ROLES", "CREATED"], table_rows)
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            UsersCmd::Show { name } => {
                client
                    .get(&format!("/v1/users/{}", segment("user", &name)?))
                    .await?
            }
            UsersCmd::Disable { name } => {
                let path = format!("/v1/users/{}/disable", segment("user", &name)?);
                client.post(&path, &json!({})).await?
            }
            UsersCmd::Grant { name, roles } => {
                let path = format!("/v1/users/{}/roles", segment("user", &name)?);
                client.post(&path, &json!({"grant": roles})).await?
            }
            UsersCmd::Ungrant { name, roles } => {
                let path = format!("/v1/users/{}/roles", segment("user", &name)?);
                client.post(&path, &json!({"revoke": roles})).await?
            }
        };
        show(args, &shown, user_line);
        Ok(ExitCode::SUCCESS)
    })
}

// ----- tokens ----------------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum TokensCmd {
    /// Create an API token; the secret is printed once.
    Create {
        /// A name that says what the token is for.
        #[arg(long)]
        name: String,
        /// Owner (default: you).
        #[arg(long)]
        user: Option<String>,
        /// Limit the token to these actions, e.g. nodes:* (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, e.g. 12h or 90d (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets): yours, or --user's.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by id.
    Revoke { id: String },
    /// Replace the admin token (admin token only); the new one is printed once
    /// and written to the server's admin-token file.
    RotateAdmin,
}

fn token_line(t: &Value) -> String {
    format!(
        "token {} \"{}\" of {}: {}",
        text(&t["id"]),
        text(&t["name"]),
        text(&t["user"]),
        text(&t["status"])
    )
}

pub fn tokens(args: &ClientArgs, cmd: TokensCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            TokensCmd::Create {
                name,
                user,
                scopes,
                expires,
            } => {
                let expires_in_secs = expires
                    .map(|e| {
                        humantime::parse_duration(&e)
                            .map(|d| d.as_secs().max(1))
                            .with_context(|| format!("--expires {e:?}: use a duration such as 12h or 90d"))
                    })
                    .transpose()?;
                let scopes = (!scopes.is_empty()).then_some(scopes);
                let body = json!({"name": name, "user": user, "scopes": scopes, "expires_in_secs": expires_in_secs});
                let created = client.post("/v1/tokens", &body).await?;
                if args.json {
                    print_json(&created);
                } else {
                    println!("{}", text(&created["token"]));
                    eprintln!("{}; the secret is shown only once", token_line(&created));
                }
            }
            TokensCmd::List { user } => {
                let path = match user {
                    Some(user) => format!("/v1/tokens?user={}", segment("user", &user)?),
                    None => "/v1/tokens".to_string(),
                };
                let all = client.get(&path).await?;
                if args.json {
                    print_json(&all);
                } else {
                    let table_rows = rows(&all)
                        .iter()
                        .map(|t| {
                            vec![
                                text(&t["id"]),
                                text(&t["name"]),
                                text(&t["user"]),
                                text(&t["status"]),
                                list(&t["scopes"]),
                                time(&t["expires_at"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["ID", "NAME", "USER", "STATUS", "SCOPES", "EXPIRES"], table_rows)
                    );
                }
            }
            TokensCmd::Revoke { id } => {
                let path = format!("/v1/tokens/{}/revoke", segment("token id", &id)?);
                let revoked = client.post(&path, &json!({})).await?;
                show(args, &revoked, token_line);
            }
            TokensCmd::RotateAdmin => {
                let rotated = client.post("/v1/admin-token/rotate", &json!({})).await?;
                if args.json {
                    print_json(&rotated);
                } else {
                    println!("{}", text(&rotated["token"]));
                    eprintln!(
                        "admin token rotated ({}); the old one no longer works; also written to {}",
                        text(&rotated["id"]),
                        text(&rotated["file"])
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ----- policies --------------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum PoliciesCmd {
    /// Create or replace a policy from an IAM-shaped JSON document.
    Put {
        name: String,
        #[arg(long)]
        document: std::path::PathBuf,
    },
    /// List policies.
    List,
    /// Show a policy document.
    Show { name: String },
    /// Delete a policy no role uses.
    Delete { name: String },
    /// Explain how a user's policies decide an action on a resource.
    Simulate {
        #[arg(long)]
        user: String,
        #[arg(long)]
        action: String,
        /// e.g. node/web-1, workflow/deploy (default with --node: node/NAME).
        #[arg(long, default_value = "")]
        resource: String,
        /// Take operon:NodeTag/* condition keys from this node's tags.
        #[arg(long)]
        node: Option<String>,
        /// Extra condition key, e.g. operon:NodeTag/env=staging (repeatable).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
    },
}

pub fn policies(args: &ClientArgs, cmd: PoliciesCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            PoliciesCmd::Put { name, document } => {
                let text_in = std::fs::read_to_string(&document)
                    .with_context(|| format!("reading {}", document.display()))?;
                let document_json: Value = serde_json::from_str(&text_in)
                    .with_context(|| format!("{} is not JSON", document.display()))?;
                let stored = client
                    .post("/v1/policies", &json!({"name": name, "document": document_json}))
                    .await?;
                show(args, &stored, |p| format!("policy {} stored", text(&p["name"])));
            }
            PoliciesCmd::List => {
                let all = client.get("/v1/policies").await?;
                if args.json {
                    print_json(&all);
                } else {
                    let table_rows = rows(&all)
                        .iter()
                        .map(|p| {
                            let statements = p["document"]["Statement"]
                                .as_array()
                                .map_or(1, Vec::len);
                            vec![text(&p["name"]), statements.to_string(), time(&p["updated_at"])]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "STATEMENTS", "UPDATED"], table_rows));
                }
            }
            PoliciesCmd::Show { name } => {
                let policy = client
                    .get(&format!("/v1/policies/{}", segment("policy", &name)?))
                    .await?;
                if args.json {
                    print_json(&policy);
                } else {
                    print_json(&policy["document"]);
                }
            }
            PoliciesCmd::Delete { name } => {
                let deleted = client
                    .delete(&format!("/v1/policies/{}", segment("policy", &name)?))
                    .await?;
                show(args, &deleted, |d| format!("policy {} deleted", text(&d["name"])));
            }
            PoliciesCmd::Simulate {
                user,
                action,
                resource,
                node,
                context,
            } => {
                let mut keys = serde_json::Map::new();
                for pair in &context {
                    let (key, value) = key_value(pair)?;
                    keys.insert(key, Value::String(value));
                }
                let body = json!({"user": user, "action": action, "resource": resource, "node": node, "context": keys});
                let answer = client.post("/v1/policies/simulate", &body).await?;
                if args.json {
                    print_json(&answer);
                } else {
                    println!(
                        "{}: {} {} on {}",
                        text(&answer["decision"]).to_uppercase(),
                        text(&answer["user"]),
                        text(&answer["action"]),
                        text(&answer["resource"])
                    );
                    println!("{}", text(&answer["explanation"]));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ----- roles -----------------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum RolesCmd {
    /// Create a role, optionally with policies attached.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    /// List roles with their policies and users.
    List,
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Attach policies to a role.
    Attach {
        role: String,
        #[arg(required = true)]
        policies: Vec<String>,
    },
    /// Detach policies from a role.
    Detach {
        role: String,
        #[arg(required = true)]
        policies: Vec<String>,
    },
}

fn role_line(r: &Value) -> String {
    format!(
        "role {}: policies {}; users {}",
        text(&r["name"]),
        list(&r["policies"]),
        list(&r["users"])
    )
}

pub fn roles(args: &ClientArgs, cmd: RolesCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        let shown = match cmd {
            RolesCmd::Create {
                name,
                description,
                policies,
            } => {
                let body = json!({"name": name, "description": description, "policies": policies});
                client.post("/v1/roles", &body).await?
            }
            RolesCmd::List => {
                let all = client.get("/v1/roles").await?;
                if args.json {
                    print_json(&all);
                } else {
                    let table_rows = rows(&all)
                        .iter()
                        .map(|r| {
                            vec![
                                text(&r["name"]),
                                list(&r["policies"]),
                                list(&r["users"]),
                                text(&r["description"]),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "POLICIES", "USERS", "DESCRIPTION"], table_rows)
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            RolesCmd::Show { name } => {
                client
                    .get(&format!("/v1/roles/{}", segment("role", &name)?))
                    .await?
            }
            RolesCmd::Delete { name } => {
                let deleted = client
                    .delete(&format!("/v1/roles/{}", segment("role", &name)?))
                    .await?;
                show(args, &deleted, |d| {
                    format!("role {} deleted", text(&d["name"]))
                });
                return Ok(ExitCode::SUCCESS);
            }
            RolesCmd::Attach { role, policies } => {
                let path = format!("/v1/roles/{}/policies", segment("role", &role)?);
                client.post(&path, &json!({"attach": policies})).await?
            }
            RolesCmd::Detach { role, policies } => {
                let path = format!("/v1/roles/{}/policies", segment("role", &role)?);
                client.post(&path, &json!({"detach": policies})).await?
            }
        };
        show(args, &shown, role_line);
        Ok(ExitCode::SUCCESS)
    })
}

// ----- audit -----------------------------------------------------------------------

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
                let mut path = format!("/v1/audit?limit={limit}");
                if let Some(actor) = actor {
                    path.push_str(&format!("&actor={}", query_value(&actor)));
                }
                if let Some(action) = action {
                    path.push_str(&format!("&action={}", query_value(&action)));
                }
                if let Some(since) = since {
                    path.push_str(&format!("&since={}", since_millis(&since)?));
                }
                let records = client.get(&path).await?;
                if args.json {
                    print_json(&records);
                } else {
                    let table_rows = rows(&records)
                        .iter()
                        .map(|r| {
                            vec![
                                text(&r["seq"]),
                                time(&r["at"]),
                                text(&r["actor"]),
                                text(&r["action"]),
                                text(&r["resource"]),
                                text(&r["outcome"]),
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
                let report = client.post("/v1/audit/verify", &json!({})).await?;
                let ok = report["ok"].as_bool() == Some(true);
                if args.json {
                    print_json(&report);
                } else if ok {
                    println!(
                        "audit log intact: {} records, chain verified",
                        text(&report["records"])
                    );
                } else {
                    for problem in rows(&report["problems"]) {
                        println!("TAMPERED: {}", text(&problem));
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
