//! `operon webhooks create|list|delete`: signed inbound webhooks onto a bus.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::bus::{as_array, done};
use super::client::{Client, ClientArgs, runtime};
use super::output::{table, text, time};

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
                let mut v = client
                    .post("/v1/webhooks", &json!({"name": name, "bus": bus, "secret": secret}))
                    .await?;
                v["url"] = json!(format!("{base}{}", text(&v["path"])));
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
                let v = client.get("/v1/webhooks").await?;
                done(client_args, &v, |v| {
                    let rows = as_array(v)
                        .iter()
                        .map(|h| {
                            vec![
                                text(&h["name"]),
                                text(&h["bus"]),
                                format!("{base}{}", text(&h["path"])),
                                time(&h["created_at"]),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "BUS", "URL", "CREATED"], rows));
                })
            }
            WebhooksCmd::Delete { name } => {
                let v = client.delete(&format!("/v1/webhooks/{name}")).await?;
                done(client_args, &v, |_| println!("deleted webhook {name}"))
            }
        })
    })
}
