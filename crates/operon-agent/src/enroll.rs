//! Enrollment: exchange a one-time enrollment token for a node credential.

use std::collections::BTreeMap;
use std::time::Duration;

use operon_proto::{AGENT_ENROLL_PATH, EnrollRequest, EnrollResponse};

use crate::credential::Credential;
use crate::error::{AgentError, server_error_message};
use crate::inventory::collect_inventory;
use crate::tls::{self, TlsTrust};

const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// `POST {server_url}/v1/agent/enroll` with the token (no Authorization
/// header). One attempt: a refusal is [`AgentError::EnrollmentRefused`], a
/// network failure or 5xx answer is [`AgentError::Unreachable`] (transient).
/// The caller stores the returned credential. Over `https://` the server is
/// trusted as `trust` says; a pinned fingerprint is recorded in the
/// credential so that every later connection checks it.
pub async fn enroll(
    server_url: &str,
    enroll_token: &str,
    name: Option<String>,
    tags: BTreeMap<String, String>,
    trust: &TlsTrust,
) -> Result<Credential, AgentError> {
    let base = server_url.trim_end_matches('/');
    let url = format!("{base}{AGENT_ENROLL_PATH}");
    let request = EnrollRequest {
        enroll_token: enroll_token.to_owned(),
        name,
        tags,
        inventory: collect_inventory(),
    };
    let client = http_client(base, trust, ENROLL_TIMEOUT)?;
    let response = client
        .post(&url)
        .json(&request)
        .send()
        .await
        .map_err(|err| request_failed(base, &err))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|err| request_failed(base, &err))?;
    // 5xx, 408 and 429 may pass by themselves: retried. Other answers are refusals.
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        return Err(AgentError::Unreachable {
            server: base.to_owned(),
            message: server_error_message(status.as_u16(), &body),
        });
    }
    if !status.is_success() {
        return Err(AgentError::enrollment_refused(
            base,
            server_error_message(status.as_u16(), &body),
        ));
    }
    let answer: EnrollResponse =
        serde_json::from_slice(&body).map_err(|err| AgentError::Protocol {
            server: base.to_owned(),
            message: format!("enrollment response is not valid: {err}"),
        })?;
    Ok(Credential {
        node_id: answer.node_id,
        name: answer.name,
        credential: answer.credential,
        server_url: base.to_owned(),
        server_fingerprint: trust.fingerprint.map(|f| f.to_string()),
    })
}

/// An HTTP client trusting the server as `trust` says (the ring provider is
/// always configured explicitly).
fn http_client(
    base: &str,
    trust: &TlsTrust,
    timeout: Duration,
) -> Result<reqwest::Client, AgentError> {
    let tls = tls::client_config(trust).map_err(|err| AgentError::Tls {
        server: base.to_owned(),
        message: err.to_string(),
    })?;
    reqwest::Client::builder()
        .timeout(timeout)
        .tls_backend_preconfigured((*tls).clone())
        .build()
        .map_err(|err| AgentError::Unreachable {
            server: base.to_owned(),
            message: err.to_string(),
        })
}

/// A failed request: a certificate other than the pinned one is a refusal
/// (retrying cannot help), anything else may pass.
fn request_failed(base: &str, err: &reqwest::Error) -> AgentError {
    match tls::find_pin_mismatch(err) {
        Some(mismatch) => AgentError::ServerCertificateMismatch {
            server: base.to_owned(),
            mismatch,
        },
        None => AgentError::Unreachable {
            server: base.to_owned(),
            message: error_chain(err),
        },
    }
}

/// An error and its sources on one line ("error sending request: connection refused").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
