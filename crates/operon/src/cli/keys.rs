//! `operon keys list|rotate|rewrap`: the server's key ring, which seals
//! SecureString values and access-key secrets. Keys are shown by id and
//! fingerprint, never their bytes.

use std::process::ExitCode;

use anyhow::Result;
use operon_api::params::KeyInfo;

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, millis, print_json};

#[derive(clap::Subcommand)]
pub enum KeysCmd {
    /// The key ring's keys, the active one marked.
    List,
    /// Add a key and make it active: new SecureStrings are sealed under it;
    /// nothing stored is re-encrypted (see `rewrap`).
    Rotate,
    /// Re-wrap every stored data key under the active key (after a rotate,
    /// so that the old key can be retired).
    Rewrap,
}

fn key_line(k: &KeyInfo) -> String {
    format!(
        "key {} created {} fingerprint {}{}",
        esc(&k.id),
        millis(Some(k.created_at)),
        esc(&k.fingerprint),
        if k.active { " (active)" } else { "" }
    )
}

fn print_keys(keys: &[KeyInfo]) {
    for key in keys {
        println!("{}", key_line(key));
    }
}

pub fn keys(args: &ClientArgs, cmd: KeysCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            KeysCmd::List => {
                let keys = client.keys().await?;
                if args.json {
                    print_json(&keys.json);
                } else {
                    print_keys(&keys.value);
                }
            }
            KeysCmd::Rotate => {
                let keys = client.rotate_key().await?;
                if args.json {
                    print_json(&keys.json);
                } else {
                    print_keys(&keys.value);
                    eprintln!(
                        "rotated: new values are sealed under the active key; run `operon keys rewrap` to move the stored ones to it"
                    );
                }
            }
            KeysCmd::Rewrap => {
                let done = client.rewrap_keys().await?;
                if args.json {
                    print_json(&done.json);
                } else {
                    let done = &done.value;
                    println!(
                        "rewrapped {} under {} ({} already were)",
                        done.rewrapped,
                        esc(&done.active),
                        done.unchanged
                    );
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
    fn a_key_line_marks_the_active_key_and_escapes() {
        let key = KeyInfo {
            id: "k2\u{1b}".into(),
            created_at: 1_700_000_000_000,
            active: true,
            fingerprint: "0123456789abcdef".into(),
        };
        assert_eq!(
            key_line(&key),
            "key k2\\x1b created 2023-11-14T22:13:20Z fingerprint 0123456789abcdef (active)"
        );
        let old = KeyInfo {
            active: false,
            ..key
        };
        assert!(!key_line(&old).contains("active"));
    }
}
