//! `operon access-keys create|list|delete`: AWS-style access keys, with which
//! AWS SDKs and the AWS CLI sign (SigV4) calls to the SSM endpoint. The
//! secret is shown once, by `create`.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::params::{AccessKey, CreateAccessKey};

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, millis, print_json, table};

#[derive(clap::Subcommand)]
pub enum AccessKeysCmd {
    /// Create an access key (for you, or --user); the secret is printed once.
    Create {
        #[arg(long)]
        user: Option<String>,
    },
    /// List access keys (never their secrets): yours, or --user's.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an access key by id.
    Delete { id: String },
}

fn key_line(k: &AccessKey) -> String {
    let state = match k.revoked_at {
        Some(at) => format!("revoked {}", millis(Some(at))),
        None => "active".into(),
    };
    format!(
        "access key {} of {}: {state}",
        esc(&k.access_key_id),
        esc(&k.user)
    )
}

pub fn access_keys(args: &ClientArgs, cmd: AccessKeysCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            AccessKeysCmd::Create { user } => {
                let created = client.create_access_key(&CreateAccessKey { user }).await?;
                if args.json {
                    print_json(&created.json);
                } else {
                    let key = &created.value;
                    println!("access key id:     {}", esc(&key.access_key_id));
                    println!(
                        "secret access key: {}",
                        key.secret_access_key.as_deref().map_or("-".into(), esc)
                    );
                    eprintln!(
                        "{}; the secret is shown only this once: store it now",
                        key_line(key)
                    );
                }
            }
            AccessKeysCmd::List { user } => {
                let keys = client.access_keys(user.as_deref()).await?;
                if args.json {
                    print_json(&keys.json);
                } else {
                    let rows = keys
                        .value
                        .iter()
                        .map(|k| {
                            vec![
                                esc(&k.access_key_id),
                                esc(&k.user),
                                millis(Some(k.created_at)),
                                millis(k.revoked_at),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["ID", "USER", "CREATED", "REVOKED"], rows));
                }
            }
            AccessKeysCmd::Delete { id } => {
                let revoked = client.delete_access_key(&id).await?;
                if args.json {
                    print_json(&revoked.json);
                } else {
                    println!("{}", key_line(&revoked.value));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_line_says_whether_it_is_revoked() {
        let key = AccessKey {
            access_key_id: "AKIAEXAMPLE".into(),
            user: "alice".into(),
            created_at: 1,
            revoked_at: None,
            secret_access_key: Some("never-in-a-line".into()),
        };
        assert_eq!(key_line(&key), "access key AKIAEXAMPLE of alice: active");
        let revoked = AccessKey {
            revoked_at: Some(1_700_000_000_000),
            ..key
        };
        let line = key_line(&revoked);
        assert_eq!(
            line,
            "access key AKIAEXAMPLE of alice: revoked 2023-11-14T22:13:20Z"
        );
        assert!(!line.contains("never-in-a-line"));
    }
}
