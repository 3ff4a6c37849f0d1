//! Web console sessions: a browser's sign-in, stored by the hash of its id.

use serde::{Deserialize, Serialize};

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the id in the browser's cookie.
    pub id_hash: String,
    /// The API token signed in with, sealed by the server's key ring.
    pub sealed_token: Vec<u8>,
    /// The secret every form of this session echoes (CSRF).
    pub csrf_secret: String,
    /// Who signed in, for the audit trail and the page header.
    pub actor: String,
    pub created_at: i64,
    pub expires_at: i64,
}
