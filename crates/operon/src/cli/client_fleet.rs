//! The typed calls of the fleet that `client.rs` does not have yet.

use anyhow::Result;
use operon_api::fleet::CredentialRotated;

use super::client::{Answer, Client, segment};

impl Client {
    /// Give a connected node (by id or name) a new credential.
    pub async fn rotate_credential(&self, key: &str) -> Result<Answer<CredentialRotated>> {
        let path = format!("/v1/nodes/{}/rotate-credential", segment(key)?);
        Answer::read(self.post(&path, &serde_json::json!({})).await?)
    }
}
