//! `operon webhooks create|list|delete`: signed inbound webhooks onto a bus.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::events::CreateWebhook;
use serde_json::{Value, json};

use super::bus::done;
use super::client::{Client, ClientArgs, runtime};
use super::output::{escape, table, text, time};

// ----- webhooks ----------------------------------------------------------------

#[derive(clap::Subcommand)]
pub enum WebhooksCmd {
    /// Create an inbound webhook; prints its URL and secret (shown once).
    Create {
        name: String,
        #[arg(long, default_value = "default")]
        bus: String,
        /// Shared secret (at least 16 characters); generated when absent.
        #[arg(long)]
        secret: Option<String>,
    },
    List,
    Delete {
        name: String,
    },
}

pub fn webhooks(client_args: &ClientArgs, cmd: WebhooksCmd) -> Result<ExitCode> {
    let client = Client::new(client_args)?;
    let base = client_args.server.trim_end_matches('/').to_string();
    runtime()?.block_on(async {
        Ok(match cmd {
            WebhooksCmd::Create { name, bus, secret } => {
                let body = CreateWebhook {
                    name,
                    bus: Some(bus),
                    secret,
                };
                let created = client.create_webhook(&body).await?;
                let mut v = created.json;
                v["url"] = json!(format!("{base}{}", escape(&created.value.path)));
                done(client_args, &v, |v| {
                    println!("url:    {}", text(&v["url"]));
                    println!("secret: {}", text(&v["secret"]));
                    eprintln!(
                        "sign each request: {}: <unix seconds>, {}: sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<body>\")>; the secret is shown only once",
                        text(&v["timestamp_header"]),
                        text(&v["signature_header"])
                    );
                })
            }
            WebhooksCmd::List => {
                let hooks = client.webhooks().await?;
                done(client_args, &hooks.json, |_| {
                    let rows = hooks
                        .value
                        .iter()
                        .map(|h| {
                            vec![
                                escape(&h.name).into_owned(),
                                escape(&h.bus).into_owned(),
                                format!("{base}{}", escape(&h.path)),
                                time(&Value::from(h.created_at)),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "BUS", "URL", "CREATED"], rows));
                })
            }
            WebhooksCmd::Delete { name } => {
                let deleted = client.delete_webhook(&name).await?;
                done(client_args, &deleted.json, |_| {
                    println!("deleted webhook {name}")
                })
            }
        })
    })
}
