//! `operon login` / `operon logout`: a token stored for the CLI.
//!
//! Tokens live in `credentials.json` under `$OPERON_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/operon`, else `~/.config/operon`, keyed by server URL.
//! The directory is created 0700 and the file written 0600 through a
//! temporary file and a rename, so it is never readable by others and never
//! half-written.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, print_json};

const CREDENTIALS_FILE: &str = "credentials.json";

fn config_dir() -> Option<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("OPERON_CONFIG_DIR")
        .or_else(|| from_env("XDG_CONFIG_HOME").map(|d| d.join("operon")))
        .or_else(|| from_env("HOME").map(|h| h.join(".config").join("operon")))
}

fn server_key(server: &str) -> String {
    server.trim_end_matches('/').to_string()
}

fn read_all(path: &std::path::Path) -> Result<BTreeMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON object of server -> token", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The token `operon login` stored for `server`, if any.
pub fn stored_token(server: &str) -> Result<Option<String>> {
    let Some(dir) = config_dir() else {
        return Ok(None);
    };
    Ok(read_all(&dir.join(CREDENTIALS_FILE))?.remove(&server_key(server)))
}

fn store(server: &str, token: Option<&str>) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = config_dir()
        .context("no HOME, XDG_CONFIG_HOME or OPERON_CONFIG_DIR to store the token in")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(CREDENTIALS_FILE);
    let mut all = read_all(&path)?;
    match token {
        Some(token) => all.insert(server_key(server), token.to_string()),
        None => all.remove(&server_key(server)),
    };
    let tmp = dir.join(format!("{CREDENTIALS_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(&all)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `operon login`: check the token with the server (which audits the login),
/// then store it.
pub fn login(args: &ClientArgs) -> Result<ExitCode> {
    super::client::check_transport(args)?;
    let token = match &args.token {
        Some(token) => token.trim().to_string(),
        None => {
            eprint!("API token for {}: ", args.server);
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the token from standard input")?;
            line.trim().to_string()
        }
    };
    if token.is_empty() {
        bail!("no token given: pass --token, set OPERON_TOKEN or type it when asked");
    }
    let client = Client::with_token(args, token.clone())?;
    let who = runtime()?.block_on(client.login())?;
    let path = store(&args.server, Some(&token))?;
    if args.json {
        print_json(
            &json!({"server": server_key(&args.server), "identity": who.json, "stored_in": path}),
        );
    } else {
        println!(
            "logged in to {} as {}; token stored in {}",
            server_key(&args.server),
            esc(&who.value.name),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `operon logout`: forget the stored token for this server.
pub fn logout(args: &ClientArgs) -> Result<ExitCode> {
    let path = store(&args.server, None)?;
    println!(
        "logged out of {} ({})",
        server_key(&args.server),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
