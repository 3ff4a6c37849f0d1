//! Users, their API tokens, policies and roles.
//!
//! A user holds roles; a role holds policies (IAM-shaped JSON documents that
//! the server evaluates). Tokens belong to a user, or to nobody for the admin
//! token created on first start. Only token hashes are stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A person or a service account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub name: String,
    /// `user` or `service`.
    pub kind: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// A stored policy document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyRecord {
    pub name: String,
    pub document: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A role with the policies attached to it and the users granted it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub policies: Vec<String>,
    pub users: Vec<String>,
}
