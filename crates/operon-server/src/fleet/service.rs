//! The fleet service: node views, tags, revocation and enrollment tokens.

use operon_store::prelude::*;
use std::collections::BTreeMap;

use operon_store::{EnrollToken, Node, Store};
use serde::Serialize;

use super::hub::Hub;
use crate::access::{Principal, check_in, node_request};
use crate::audit::AuditLog;
use crate::auth::{self, ENROLL_TOKEN_PREFIX};
use crate::coordination::{Coordination, Topic};
use crate::now_millis;
use crate::service::{ServiceError, ServiceResult};

/// A node with its live status.
#[derive(Debug, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: Node,
    /// `online`, `offline` or `revoked`.
    pub status: &'static str,
    pub online: bool,
}

/// Tags to set and remove on a node.
#[derive(Debug, Default)]
pub struct TagChange {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// Enrollment tokens live a year at most.
pub const MAX_ENROLL_TOKEN_SECS: i64 = 365 * 24 * 3600;

pub struct FleetService<'a> {
    pub(crate) store: &'a Store,
    pub(crate) hub: &'a Hub,
    /// Wakes the dispatcher.
    pub(crate) coordination: &'a Coordination,
    pub(crate) audit: &'a AuditLog,
}

impl FleetService<'_> {
    /// The node with its status as the hub sees it now.
    pub fn view(&self, mut node: Node) -> NodeView {
        if let Some(seen) = self.hub.last_heartbeat_millis(&node.id) {
            node.last_seen = Some(node.last_seen.map_or(seen, |stored| stored.max(seen)));
        }
        let online = node.revoked_at.is_none() && self.hub.is_online(&node.id);
        let status = match (node.revoked_at, online) {
            (Some(_), _) => "revoked",
            (None, true) => "online",
            (None, false) => "offline",
        };
        NodeView {
            node,
            status,
            online,
        }
    }

    pub async fn list(&self) -> ServiceResult<Vec<NodeView>> {
        let nodes = self.store.list_nodes().await?;
        Ok(nodes.into_iter().map(|n| self.view(n)).collect())
    }

    /// A node by id or name.
    pub async fn find(&self, key: &str) -> ServiceResult<Node> {
        self.store.node_by_id_or_name(key).await?.ok_or_else(|| {
            ServiceError::not_found("UnknownNode", format!("no node with id or name {key:?}"))
        })
    }

    /// A node the principal may `action` (with the node's tags as conditions).
    pub async fn find_for(
        &self,
        principal: &Principal,
        action: &str,
        key: &str,
    ) -> ServiceResult<Node> {
        let node = self.find(key).await?;
        self.authorize_node(principal, action, &node).await?;
        Ok(node)
    }

    /// Change a node's tags. The principal must be allowed `nodes:Tag` on the
    /// node both before and after the change: tags decide access, so a retag
    /// must not move a node into (or out of) someone's reach.
    pub async fn tag(
        &self,
        principal: &Principal,
        key: &str,
        change: TagChange,
    ) -> ServiceResult<NodeView> {
        validate_tags(&change.set)?;
        let mut node = self.find_for(principal, "nodes:Tag", key).await?;
        for key in &change.remove {
            node.tags.remove(key);
        }
        node.tags.extend(change.set);
        self.authorize_node(principal, "nodes:Tag", &node).await?;
        principal.note("tags", serde_json::to_value(&node.tags).unwrap_or_default());
        self.store.set_node_tags(&node.id, &node.tags).await?;
        Ok(self.view(node))
    }

    /// Revoke a node: its credentials are refused from now on and its
    /// session is closed.
    pub async fn revoke(&self, principal: &Principal, key: &str) -> ServiceResult<NodeView> {
        let node = self.find_for(principal, "nodes:Revoke", key).await?;
        self.store.revoke_node(&node.id, now_millis()).await?;
        self.hub.disconnect(&node.id, "node revoked");
        tracing::info!(node_id = %node.id, "node revoked");
        let node = self.find(&node.id).await?;
        self.coordination.notify(Topic::Dispatch);
        Ok(self.view(node))
    }

    /// A new enrollment token (the secret is returned once; only its hash is
    /// stored).
    pub async fn create_enroll_token(
        &self,
        tags: BTreeMap<String, String>,
        uses: i64,
        ttl_secs: i64,
    ) -> ServiceResult<(String, EnrollToken)> {
        if uses < 1 {
            return Err(ServiceError::invalid(
                "InvalidUses",
                "uses must be at least 1",
            ));
        }
        if !(1..=MAX_ENROLL_TOKEN_SECS).contains(&ttl_secs) {
            return Err(ServiceError::invalid(
                "InvalidExpiry",
                format!(
                    "expires_in_secs must be between 1 and {MAX_ENROLL_TOKEN_SECS} (a year), got {ttl_secs}"
                ),
            ));
        }
        validate_tags(&tags)?;
        let token = auth::new_secret(ENROLL_TOKEN_PREFIX);
        let now = now_millis();
        let record = EnrollToken {
            id: auth::new_id("et-"),
            token_hash: auth::hash_secret(&token),
            tags,
            uses_allowed: uses,
            uses: 0,
            expires_at: now + ttl_secs * 1000,
            created_at: now,
            revoked_at: None,
        };
        self.store.insert_enroll_token(&record).await?;
        Ok((token, record))
    }

    pub async fn list_enroll_tokens(&self) -> ServiceResult<Vec<EnrollToken>> {
        Ok(self.store.list_enroll_tokens().await?)
    }

    /// Revoke an enrollment token: it enrolls nothing from now on. Nodes it
    /// already enrolled keep their credentials (revoke them one by one).
    pub async fn revoke_enroll_token(&self, id: &str) -> ServiceResult<EnrollToken> {
        let token = self
            .store
            .revoke_enroll_token(id, now_millis())
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "UnknownEnrollToken",
                    format!("no enrollment token with id {id:?}"),
                )
            })?;
        tracing::info!(enroll_token_id = %token.id, "enrollment token revoked");
        Ok(token)
    }

    async fn authorize_node(
        &self,
        principal: &Principal,
        action: &str,
        node: &Node,
    ) -> ServiceResult<()> {
        check_in(
            self.audit,
            principal,
            &node_request(principal, action, node),
        )
        .await
    }
}

/// Tag keys: 1 to 128 characters, no `=` (it separates key and value in
/// `tag:KEY=VALUE` targets).
pub(crate) fn validate_tags(tags: &BTreeMap<String, String>) -> ServiceResult<()> {
    for key in tags.keys() {
        if key.is_empty() || key.len() > 128 || key.contains('=') {
            return Err(ServiceError::invalid(
                "InvalidTag",
                format!("invalid tag key {key:?}: 1 to 128 characters, no '='"),
            ));
        }
    }
    Ok(())
}
