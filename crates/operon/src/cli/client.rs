//! The HTTP client behind every client command.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use operon_agent::tls::{Fingerprint, TlsTrust};
use operon_api::{
    CancelRequested, CommandSummary, CommandView, CreateCommand, CreateDocument, CreateEnrollToken,
    CreatedEnrollToken, CreatedVersion, DefaultVersionChange, DocumentSummary, DocumentView,
    EnrollToken, NodeView, TagChange, UpdateDefaultVersion,
};
use serde_json::Value;

/// Connection options shared by every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "OPERON_SERVER",
        default_value = "http://127.0.0.1:7780"
    )]
    pub server: String,
    /// API token. Defaults to the admin token file in --data-dir, if readable.
    #[arg(long, global = true, env = "OPERON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory of a local server, used to find its admin token.
    #[arg(
        long,
        global = true,
        env = "OPERON_DATA_DIR",
        default_value = "operon-data"
    )]
    pub data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// For an https:// server: trust the CA certificates in this PEM file
    /// (besides the system roots).
    #[arg(long, global = true, env = "OPERON_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// For an https:// server: accept exactly the certificate with this
    /// fingerprint (sha256:<hex>, as `operon server` prints it). Without this
    /// or --ca-cert, the self-signed certificate of a local server in
    /// --data-dir is pinned if there is one, else the system roots decide.
    #[arg(long, global = true, env = "OPERON_SERVER_FINGERPRINT")]
    pub server_fingerprint: Option<String>,
    /// Send the API token over plain http:// to a server that is not on a
    /// loopback address (anyone on the network path can read it).
    #[arg(long, global = true, env = "OPERON_INSECURE")]
    pub insecure: bool,
}

/// How the CLI trusts an https:// server, and why (for error messages).
fn tls_trust(args: &ClientArgs) -> Result<(TlsTrust, String)> {
    if let Some(text) = &args.server_fingerprint {
        let fingerprint = Fingerprint::parse(text)
            .map_err(|e| anyhow!("--server-fingerprint / OPERON_SERVER_FINGERPRINT: {e}"))?;
        let trust = TlsTrust {
            fingerprint: Some(fingerprint),
            ca_file: None,
        };
        return Ok((trust, "--server-fingerprint".into()));
    }
    if let Some(path) = &args.ca_cert {
        let trust = TlsTrust {
            fingerprint: None,
            ca_file: Some(path.clone()),
        };
        return Ok((trust, format!("--ca-cert {}", path.display())));
    }
    let (local_cert, _) = operon_server::tls::self_signed_paths(&args.data_dir);
    if local_cert.exists() {
        let chain = operon_server::tls::read_cert_chain(&local_cert)?;
        let fingerprint = Fingerprint::of_der(chain[0].as_ref());
        let trust = TlsTrust {
            fingerprint: Some(fingerprint),
            ca_file: None,
        };
        return Ok((
            trust,
            format!("the local server's certificate {}", local_cert.display()),
        ));
    }
    Ok((TlsTrust::default(), "the system's trusted roots".into()))
}

/// Refuse, before any token is looked up or sent, plain HTTP to a server
/// that is not on a loopback address, unless --insecure
/// (see `operon_agent::transport`).
pub fn check_transport(args: &ClientArgs) -> Result<()> {
    let pin = args.server_fingerprint.as_deref();
    operon_agent::transport::check(&args.server, pin, args.insecure)?;
    Ok(())
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// What an https:// server is trusted by (named in errors).
    trusted_by: String,
    /// The same TLS trust for WebSocket links (`operon sessions`).
    ws_connector: tokio_tungstenite::Connector,
}

impl Client {
    pub fn new(args: &ClientArgs) -> Result<Client> {
        check_transport(args)?;
        let token = resolve_token(args)?;
        Self::with_token(args, token)
    }

    /// A client using exactly this token (for `operon login`).
    pub fn with_token(args: &ClientArgs, token: String) -> Result<Client> {
        check_transport(args)?;
        let (trust, trusted_by) = if args.server.starts_with("https://") {
            tls_trust(args)?
        } else {
            (TlsTrust::default(), String::new())
        };
        // Always explicit: the ring provider is the only one compiled in.
        let tls = operon_agent::tls::client_config(&trust)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("operon-cli/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured((*tls).clone())
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base: args.server.trim_end_matches('/').to_string(),
            token,
            trusted_by,
            ws_connector: tokio_tungstenite::Connector::Rustls(tls),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let request = self.http.get(self.url(path)).bearer_auth(&self.token);
        self.send(request).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let request = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body);
        self.send(request).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        let request = self
            .http
            .put(self.url(path))
            .bearer_auth(&self.token)
            .json(body);
        self.send(request).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        let request = self.http.delete(self.url(path)).bearer_auth(&self.token);
        self.send(request).await
    }

    /// Open a server-sent-events stream.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response> {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        Ok(response)
    }

    /// A GET whose body is not JSON (a recording): the successful response
    /// as it is, for its headers and bytes.
    pub async fn get_raw(&self, path: &str) -> Result<reqwest::Response> {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        Ok(response)
    }

    /// Upgrade `GET path_and_query` to a WebSocket with the token and the
    /// TLS trust of every other call; a refusal before the upgrade is
    /// reported with the server's message, as [`Client::get`] does.
    pub async fn websocket(&self, path_and_query: &str) -> Result<super::session_link::WsStream> {
        super::session_link::connect(
            &self.base,
            path_and_query,
            &self.token,
            &self.ws_connector,
            &self.trusted_by,
        )
        .await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        response.json().await.context("reading the server's answer")
    }

    fn unreachable(&self, err: reqwest::Error) -> anyhow::Error {
        if let Some(mismatch) = operon_agent::tls::find_pin_mismatch(&err) {
            // Not `Unreachable`: retrying cannot help.
            return anyhow!(
                "refusing the Operon server at {}: {mismatch} (pinned by {})",
                self.base,
                self.trusted_by
            );
        }
        if let Some(failure) = operon_agent::tls::find_tls_failure(&err) {
            return anyhow!(
                "TLS with the Operon server at {} failed: {failure} (the server was checked against {}; pass --server-fingerprint or --ca-cert, or set OPERON_SERVER_FINGERPRINT / OPERON_CA_CERT)",
                self.base,
                self.trusted_by
            );
        }
        anyhow::Error::new(Unreachable(format!(
            "cannot reach the Operon server at {} ({err}); is it running? (set --server or OPERON_SERVER)",
            self.base
        )))
    }
}

/// The token to use: `--token`/`OPERON_TOKEN`, else the one `operon login`
/// stored for this server, else a local server's admin token file.
fn resolve_token(args: &ClientArgs) -> Result<String> {
    if let Some(token) = &args.token {
        return Ok(token.trim().to_string());
    }
    if let Some(token) = super::login::stored_token(&args.server)? {
        return Ok(token);
    }
    let path = args.data_dir.join(operon_server::ADMIN_TOKEN_FILE);
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_string())
        .map_err(|_| {
            anyhow!(
                "no API token: run `operon login`, pass --token or set OPERON_TOKEN (a local server keeps its admin token in {})",
                path.display()
            )
        })
}

/// The server could not be reached at all (as opposed to answering an error):
/// callers following a long-running command retry on this.
#[derive(Debug)]
pub struct Unreachable(String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

async fn api_error(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    match response.json::<operon_api::ErrorBody>().await {
        Ok(body) => anyhow!(
            "{} (HTTP {})",
            super::output::escape(&body.error.message),
            status.as_u16()
        ),
        Err(_) => anyhow!("the server answered HTTP {status}"),
    }
}

/// A typed answer: the server's JSON as received (what `--json` prints) and
/// its reading as the API's type.
#[derive(Debug)]
pub struct Answer<T> {
    pub json: Value,
    pub value: T,
}

impl<T: serde::de::DeserializeOwned> Answer<T> {
    pub(super) fn read(json: Value) -> Result<Answer<T>> {
        let value = T::deserialize(&json).with_context(|| {
            format!(
                "reading the server's answer as {}",
                std::any::type_name::<T>()
            )
        })?;
        Ok(Answer { json, value })
    }
}

/// The typed API of commands, nodes, enrollment tokens and documents
/// (`operon_api`'s types), over the untyped calls above.
impl Client {
    pub async fn create_command(&self, body: &CreateCommand) -> Result<Answer<CommandView>> {
        Answer::read(self.post("/v1/commands", &to_json(body)?).await?)
    }

    pub async fn commands(&self, limit: u32) -> Result<Answer<Vec<CommandSummary>>> {
        Answer::read(self.get(&format!("/v1/commands?limit={limit}")).await?)
    }

    pub async fn command(&self, id: &str) -> Result<Answer<CommandView>> {
        Answer::read(self.get(&format!("/v1/commands/{id}")).await?)
    }

    pub async fn cancel_command(&self, id: &str) -> Result<Answer<CancelRequested>> {
        let path = format!("/v1/commands/{id}/cancel");
        Answer::read(self.post(&path, &serde_json::json!({})).await?)
    }

    pub async fn nodes(&self) -> Result<Answer<Vec<NodeView>>> {
        Answer::read(self.get("/v1/nodes").await?)
    }

    /// A node by id or name.
    pub async fn node(&self, key: &str) -> Result<Answer<NodeView>> {
        Answer::read(self.get(&format!("/v1/nodes/{}", segment(key)?)).await?)
    }

    pub async fn tag_node(&self, key: &str, change: &TagChange) -> Result<Answer<NodeView>> {
        let path = format!("/v1/nodes/{}/tags", segment(key)?);
        Answer::read(self.post(&path, &to_json(change)?).await?)
    }

    pub async fn revoke_node(&self, key: &str) -> Result<Answer<NodeView>> {
        let path = format!("/v1/nodes/{}/revoke", segment(key)?);
        Answer::read(self.post(&path, &serde_json::json!({})).await?)
    }

    pub async fn create_enroll_token(
        &self,
        body: &CreateEnrollToken,
    ) -> Result<Answer<CreatedEnrollToken>> {
        Answer::read(self.post("/v1/enroll-tokens", &to_json(body)?).await?)
    }

    pub async fn enroll_tokens(&self) -> Result<Answer<Vec<EnrollToken>>> {
        Answer::read(self.get("/v1/enroll-tokens").await?)
    }

    pub async fn revoke_enroll_token(&self, id: &str) -> Result<Answer<EnrollToken>> {
        let path = format!("/v1/enroll-tokens/{}/revoke", segment(id)?);
        Answer::read(self.post(&path, &serde_json::json!({})).await?)
    }

    pub async fn create_document(&self, body: &CreateDocument) -> Result<Answer<CreatedVersion>> {
        Answer::read(self.post("/v1/documents", &to_json(body)?).await?)
    }

    pub async fn documents(&self) -> Result<Answer<Vec<DocumentSummary>>> {
        Answer::read(self.get("/v1/documents").await?)
    }

    /// A version of a document (a number, `$DEFAULT` or `$LATEST`; the
    /// default version when `None`).
    pub async fn document(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Answer<DocumentView>> {
        let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
        Answer::read(self.get(&format!("/v1/documents/{name}{query}")).await?)
    }

    pub async fn update_default_version(
        &self,
        name: &str,
        body: &UpdateDefaultVersion,
    ) -> Result<Answer<DefaultVersionChange>> {
        let path = format!("/v1/documents/{name}/default-version");
        Answer::read(self.post(&path, &to_json(body)?).await?)
    }
}

pub(super) fn to_json<T: serde::Serialize>(body: &T) -> Result<Value> {
    serde_json::to_value(body).context("encoding the request")
}

/// A path segment from user input; ids and names never need escaping.
pub fn segment(text: &str) -> Result<&str> {
    if text.is_empty() || text.contains(['/', '?', '#', '%', ' ']) {
        bail!("invalid id or name {text:?}");
    }
    Ok(text)
}

/// Parse `KEY=VALUE`.
pub fn key_value(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("expected KEY=VALUE, got {text:?}"),
    }
}

/// Build a runtime for a client command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--json` prints what the server sent, fields the client does not know
    /// included; the typed reading is beside it.
    #[test]
    fn answers_keep_the_json_as_received() {
        let json = serde_json::json!({
            "name": "deploy", "version": 2, "default_version": 1, "added_later": true
        });
        let answer = Answer::<CreatedVersion>::read(json.clone()).unwrap();
        assert_eq!(answer.json, json);
        assert_eq!(answer.value.version, 2);
        assert!(Answer::<CreatedVersion>::read(serde_json::json!({"name": 1})).is_err());
    }
}
