//! The fleet service: node views, tags, revocation and enrollment tokens.

use std::collections::BTreeMap;

use operon_api::fleet::NodeStatus;
use operon_store::{EnrollToken, Node, Store};
use serde::Serialize;

use super::hub::Hub;
use crate::access::{Principal, check_action, check_in, node_request};
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
    pub status: NodeStatus,
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
            (Some(_), _) => NodeStatus::Revoked,
            (None, true) => NodeStatus::Online,
            (None, false) => NodeStatus::Offline,
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
        self.store
            .node_by_id_or_name(key)
            .await?
            .ok_or_else(|| unknown_node(key))
    }

    /// A node the principal may `action` (with the node's tags as conditions).
    ///
    /// A key that names no node is authorized as `node/KEY` without tags
    /// before the 404: a caller who may not act on it is refused (and
    /// audited) exactly as for a node that exists, so a refusal never tells
    /// which names are taken.
    pub async fn find_for(
        &self,
        principal: &Principal,
        action: &str,
        key: &str,
    ) -> ServiceResult<Node> {
        match self.store.node_by_id_or_name(key).await? {
            Some(node) => {
                self.authorize_node(principal, action, &node).await?;
                Ok(node)
            }
            None => {
                check_action(self.audit, principal, action, &format!("node/{key}")).await?;
                Err(unknown_node(key))
            }
        }
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
        for key in change.set.keys() {
            if let Some(other) = node
                .tags
                .keys()
                .find(|k| *k != key && k.eq_ignore_ascii_case(key))
            {
                return Err(ServiceError::invalid(
                    "InvalidTag",
                    format!(
                        "tag key {key:?} differs only in case from the node's tag {other:?}; set {other:?} or remove it first"
                    ),
                ));
            }
        }
        node.tags.extend(change.set);
        self.authorize_node(principal, "nodes:Tag", &node).await?;
        principal.note("tags", serde_json::to_value(&node.tags).unwrap_or_default());
        self.store.set_node_tags(&node.id, &node.tags).await?;
        // Tags target monitors and decide their authorization.
        self.coordination.notify(Topic::Monitors);
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

fn unknown_node(key: &str) -> ServiceError {
    ServiceError::not_found("UnknownNode", format!("no node with id or name {key:?}"))
}

/// Longest tag key and value, as in AWS.
const TAG_KEY_MAX: usize = 128;
const TAG_VALUE_MAX: usize = 256;

/// A character a tag may hold: AWS's set (letters, digits, spaces and
/// `_ . : / = + - @`); keys may not hold `=`, which separates key and value
/// in `tag:KEY=VALUE` targets. Control characters never pass.
fn tag_char(c: char, key: bool) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/+-@".contains(c) || (!key && c == '=')
}

/// Tags a node may carry: keys of 1 to 128 characters, values of up to 256,
/// from AWS's character set, and no two keys differing only in case (`Env`
/// and `env` would target and authorize differently while reading alike).
pub(crate) fn validate_tags(tags: &BTreeMap<String, String>) -> ServiceResult<()> {
    let invalid = |message: String| ServiceError::invalid("InvalidTag", message);
    for (key, value) in tags {
        if key.is_empty()
            || key.chars().count() > TAG_KEY_MAX
            || !key.chars().all(|c| tag_char(c, true))
        {
            return Err(invalid(format!(
                "invalid tag key {key:?}: 1 to {TAG_KEY_MAX} letters, digits, spaces or '_.:/+-@' (no '=')"
            )));
        }
        if value.chars().count() > TAG_VALUE_MAX || !value.chars().all(|c| tag_char(c, false)) {
            return Err(invalid(format!(
                "invalid value {value:?} of tag {key:?}: up to {TAG_VALUE_MAX} letters, digits, spaces or '_.:/=+-@'"
            )));
        }
    }
    let keys: Vec<&String> = tags.keys().collect();
    for (i, a) in keys.iter().enumerate() {
        if let Some(b) = keys[i + 1..].iter().find(|b| a.eq_ignore_ascii_case(b)) {
            return Err(invalid(format!(
                "tag keys {a:?} and {b:?} differ only in case; keep one"
            )));
        }
    }
    Ok(())
}

/// A node name: 1 to 63 letters, digits, '-', '_' or '.' (a DNS label, give
/// or take the underscore), and not shaped like a node id (`n-` and 16 hex
/// digits), so a name can never be taken for another node's id where nodes
/// are named by id or name.
pub(crate) fn validate_node_name(name: &str) -> ServiceResult<()> {
    let invalid = |message: String| ServiceError::invalid("InvalidNodeName", message);
    let max = operon_store::NODE_NAME_MAX;
    if name.is_empty()
        || name.len() > max
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(invalid(format!(
            "invalid node name {name:?}: 1 to {max} letters, digits, '-', '_' or '.'"
        )));
    }
    if looks_like_node_id(name) {
        return Err(invalid(format!(
            "invalid node name {name:?}: names shaped like node ids (n- and 16 hex digits) are reserved for ids"
        )));
    }
    Ok(())
}

/// `n-` and 16 hex digits, in any case: the shape of [`auth::new_id`]`("n-")`.
pub(crate) fn looks_like_node_id(name: &str) -> bool {
    name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("n-"))
        && name.len() == 18
        && name[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// The name a node enrolls under when it asks for none: its hostname, with
/// characters a name may not hold replaced by '-', cut to the longest name;
/// `node` if nothing usable is left.
pub(crate) fn name_from_hostname(hostname: &str) -> String {
    let mut name: String = hostname
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(operon_store::NODE_NAME_MAX)
        .collect();
    if name.trim_matches('-').is_empty() || looks_like_node_id(&name) {
        name = "node".into();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_are_validated() {
        for ok in [
            tags(&[("env", "staging")]),
            tags(&[("team:owner", "ops@example.com"), ("path", "/a/b=c")]),
            tags(&[("Name", "web 1"), ("empty", "")]),
            tags(&[("région", "île-de-france")]),
        ] {
            assert!(validate_tags(&ok).is_ok(), "{ok:?}");
        }
        for (bad, says) in [
            (tags(&[("", "x")]), "invalid tag key"),
            (tags(&[("a=b", "x")]), "invalid tag key"),
            (tags(&[(&"k".repeat(129), "x")]), "invalid tag key"),
            (tags(&[("env\u{1b}[2J", "x")]), "invalid tag key"),
            (tags(&[("env", "prod\r\nfake")]), "invalid value"),
            (tags(&[("env", "a\u{7}")]), "invalid value"),
            (tags(&[("env", &"v".repeat(257))]), "invalid value"),
            (tags(&[("env", "a,b")]), "invalid value"),
            (tags(&[("Env", "a"), ("env", "b")]), "differ only in case"),
        ] {
            let refused = validate_tags(&bad).unwrap_err();
            assert!(
                refused.message.contains(says),
                "{bad:?}: {}",
                refused.message
            );
        }
    }

    #[test]
    fn node_names_are_validated_and_never_shaped_like_ids() {
        for ok in [
            "web-1",
            "db_2.prod",
            "a",
            &"x".repeat(63),
            "n-1",
            "n-0123456789abcdefg",
        ] {
            assert!(validate_node_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(64),
            "web 1",
            "web/1",
            "web\u{1b}]0;pwned\u{7}",
            "n-0123456789abcdef",
            "N-0123456789ABCDEF",
        ] {
            assert!(validate_node_name(bad).is_err(), "{bad:?}");
        }
        assert!(looks_like_node_id(&crate::auth::new_id("n-")));
    }

    #[test]
    fn hostnames_become_valid_names() {
        assert_eq!(name_from_hostname("web-1.example.com"), "web-1.example.com");
        assert_eq!(name_from_hostname("my host\u{1b}"), "my-host-");
        assert_eq!(name_from_hostname(""), "node");
        assert_eq!(name_from_hostname("\u{1b}\u{7}"), "node");
        assert_eq!(name_from_hostname("n-0123456789abcdef"), "node");
        assert_eq!(name_from_hostname(&"h".repeat(80)).len(), 63);
        for name in ["web-1.example.com", "my-host-", "node"] {
            assert!(validate_node_name(name).is_ok());
        }
    }
}
