//! The typed sessions API (`operon_api::sessions`) over the untyped calls.

use anyhow::{Context, Result, bail};
use operon_api::sessions::{RECORDING_SHA256_HEADER, SessionList, SessionView};
use sha2::{Digest, Sha256};

use super::client::{Answer, Client, segment};

/// A recording as served, checked against the SHA-256 the server's audit
/// trail holds for it.
pub struct Recording {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

impl Client {
    pub async fn sessions(&self, active: bool, node: Option<&str>) -> Result<Answer<SessionList>> {
        Answer::read(self.get(&sessions_path(active, node)?).await?)
    }

    pub async fn session(&self, id: &str) -> Result<Answer<SessionView>> {
        Answer::read(self.get(&format!("/v1/sessions/{}", segment(id)?)).await?)
    }

    pub async fn terminate_session(&self, id: &str) -> Result<Answer<SessionView>> {
        let path = format!("/v1/sessions/{}/terminate", segment(id)?);
        Answer::read(self.post(&path, &serde_json::json!({})).await?)
    }

    /// The recording, refused unless its bytes hash to the SHA-256 header.
    pub async fn session_recording(&self, id: &str) -> Result<Recording> {
        let path = format!("/v1/sessions/{}/recording", segment(id)?);
        let response = self.get_raw(&path).await?;
        let expected = response
            .headers()
            .get(RECORDING_SHA256_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .context("reading the recording")?
            .to_vec();
        let sha256 = verify_recording(&bytes, expected.as_deref())?;
        Ok(Recording { bytes, sha256 })
    }
}

/// `GET /v1/sessions` with its filters.
fn sessions_path(active: bool, node: Option<&str>) -> Result<String> {
    let mut query: Vec<(&str, &str)> = Vec::new();
    if active {
        query.push(("active", "true"));
    }
    if let Some(node) = node {
        query.push(("node", node));
    }
    if query.is_empty() {
        return Ok("/v1/sessions".into());
    }
    let encoded = serde_urlencoded::to_string(&query).context("encoding the filters")?;
    Ok(format!("/v1/sessions?{encoded}"))
}

/// The bytes' SHA-256 (hex) when it equals `expected`; an error otherwise,
/// since a recording that does not match its audit record may have been
/// altered.
pub fn verify_recording(bytes: &[u8], expected: Option<&str>) -> Result<String> {
    let actual = sha256_hex(bytes);
    match expected {
        None => bail!(
            "the server sent the recording without its SHA-256 ({RECORDING_SHA256_HEADER}); refusing to use it"
        ),
        Some(expected) if expected.trim().eq_ignore_ascii_case(&actual) => Ok(actual),
        Some(expected) => bail!(
            "the recording does not match its audit record: its SHA-256 is {actual}, the server's record says {}; refusing to use it",
            super::output::esc(expected)
        ),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_filters_are_encoded() {
        assert_eq!(sessions_path(false, None).unwrap(), "/v1/sessions");
        assert_eq!(
            sessions_path(true, Some("web 1&x")).unwrap(),
            "/v1/sessions?active=true&node=web+1%26x"
        );
        assert_eq!(
            sessions_path(false, Some("db")).unwrap(),
            "/v1/sessions?node=db"
        );
    }

    #[test]
    fn a_recording_must_match_its_checksum() {
        let bytes = b"{\"version\":2}\n";
        let good = sha256_hex(bytes);
        assert_eq!(good.len(), 64);
        assert_eq!(verify_recording(bytes, Some(&good)).unwrap(), good);
        assert!(verify_recording(bytes, Some(&good.to_uppercase())).is_ok());
        let err = verify_recording(b"{\"version\":2}\r\n", Some(&good)).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let missing = verify_recording(bytes, None).unwrap_err();
        assert!(
            missing.to_string().contains(RECORDING_SHA256_HEADER),
            "{missing}"
        );
        // The well-known digest of the empty input, so the hashing itself is checked.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
