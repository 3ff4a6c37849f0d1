//! The inventory service: the only code writing inventory, and its reads.

use std::collections::{BTreeMap, BTreeSet};

use operon_proto::{InventoryDelta, ServerMessage, valid_inventory_kind};
use operon_store::{InventoryChange, InventoryRefusal, InventoryRow, Node, Store};
use serde_json::json;

use super::filter::Filter;
use crate::access::{Principal, check_action, node_request};
use crate::events::envelope::PutEntry;
use crate::service::{ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// How many keys of each change list an event names.
const EVENT_KEYS: usize = 20;

/// Limits on what one report may carry.
const MAX_ITEMS: usize = 200_000;
const MAX_KEY: usize = 1024;

pub struct InventoryService<'a> {
    pub(crate) state: &'a AppState,
}

/// A node's items.
#[derive(Debug)]
pub struct NodeItems {
    pub node: Node,
    pub items: Vec<InventoryRow>,
}

/// An item found by a query, with its node.
#[derive(Debug)]
pub struct Found {
    pub node: Node,
    pub item: InventoryRow,
}

impl InventoryService<'_> {
    /// Store an agent's delta. Answers the frame for the agent: `InventoryAck`
    /// once stored, `InventoryResync` when the base is not the one held (or
    /// the result would not be what the agent says). `None`: the report was
    /// malformed and is dropped (logged).
    pub async fn record(
        &self,
        node: &Node,
        delta: &InventoryDelta,
    ) -> ServiceResult<Option<ServerMessage>> {
        if let Err(why) = check_delta(delta) {
            tracing::warn!(node_id = %node.id, kind = %delta.kind, %why, "ignoring an inventory report");
            return Ok(None);
        }
        let answer = self
            .state
            .store
            .apply_inventory(&node.id, delta, now_millis())
            .await?;
        match answer {
            Ok(change) => {
                if !change.is_empty() {
                    self.put_change_event(node, delta, &change).await;
                }
                Ok(Some(ServerMessage::InventoryAck {
                    kind: delta.kind.clone(),
                    digest: delta.digest.clone(),
                }))
            }
            Err(refusal) => {
                match refusal {
                    InventoryRefusal::BaseMismatch { .. } => {
                        tracing::debug!(node_id = %node.id, kind = %delta.kind, "inventory base differs; asking for the whole set")
                    }
                    InventoryRefusal::DigestMismatch { .. } => {
                        tracing::warn!(node_id = %node.id, kind = %delta.kind, "inventory digest differs from the agent's; asking for the whole set")
                    }
                }
                Ok(Some(ServerMessage::InventoryResync {
                    kind: delta.kind.clone(),
                }))
            }
        }
    }

    /// One node's items (of one kind), if the caller may `inventory:Get` it.
    pub async fn show(
        &self,
        principal: &Principal,
        key: &str,
        kind: Option<&str>,
    ) -> ServiceResult<NodeItems> {
        if let Some(kind) = kind {
            check_kind(kind)?;
        }
        let node = self
            .state
            .fleet()
            .find_for(principal, "inventory:Get", key)
            .await?;
        let items = self.state.store.node_inventory(&node.id, kind).await?;
        Ok(NodeItems { node, items })
    }

    /// Items of `kind` the filter accepts, on the nodes the caller may
    /// `inventory:Get` (revoked nodes left out), ordered by node name and key.
    pub async fn query(
        &self,
        principal: &Principal,
        kind: &str,
        filter_text: &str,
    ) -> ServiceResult<Vec<Found>> {
        check_kind(kind)?;
        let filter = parse_filter(filter_text)?;
        check_action(&self.state.audit, principal, "inventory:Query", "node/*").await?;
        let nodes: BTreeMap<String, Node> = self
            .state
            .store
            .list_nodes()
            .await?
            .into_iter()
            .filter(|n| n.revoked_at.is_none())
            .map(|n| (n.id.clone(), n))
            .collect();
        let readable: BTreeSet<&str> = nodes
            .values()
            .filter(|n| {
                principal
                    .decide(&node_request(principal, "inventory:Get", n))
                    .is_ok()
            })
            .map(|n| n.id.as_str())
            .collect();
        let rows = self
            .state
            .store
            .inventory_items(kind, filter.exact_key())
            .await?;
        let mut found: Vec<Found> = rows
            .into_iter()
            .filter(|row| readable.contains(row.node_id.as_str()))
            .filter(|row| filter.matches(&row.key, &row.attributes))
            .filter_map(|item| {
                let node = nodes.get(&item.node_id)?.clone();
                Some(Found { node, item })
            })
            .collect();
        found.sort_by(|a, b| {
            (a.node.name.as_str(), a.item.key.as_str())
                .cmp(&(b.node.name.as_str(), b.item.key.as_str()))
        });
        principal.allowed_action("inventory:Get", "node/*");
        Ok(found)
    }

    /// Put one `operon.inventory` "Inventory Change" event on the default
    /// bus. Best effort: the change has committed; a failure is logged.
    /// The detail says what changed (counts, the first keys of each list)
    /// and what the agent sent: `full` (its whole set) and `sent` (items
    /// upserted or removed).
    async fn put_change_event(
        &self,
        node: &Node,
        delta: &InventoryDelta,
        change: &InventoryChange,
    ) {
        let kind = &delta.kind;
        let first = |keys: &[String]| keys.iter().take(EVENT_KEYS).cloned().collect::<Vec<_>>();
        let detail = json!({
            "node_id": node.id,
            "node_name": node.name,
            "type": kind,
            "added": change.added.len(),
            "removed": change.removed.len(),
            "updated": change.updated.len(),
            "added_keys": first(&change.added),
            "removed_keys": first(&change.removed),
            "updated_keys": first(&change.updated),
            "full": delta.base.is_none(),
            "sent": delta.upserts.len() + delta.removals.len(),
        });
        let entry = PutEntry {
            source: Some(super::EVENT_SOURCE.into()),
            detail_type: Some(super::CHANGE_DETAIL_TYPE.into()),
            detail: Some(detail.to_string()),
            resources: vec![format!("node/{}", node.name)],
            ..PutEntry::default()
        };
        let envelope = match crate::events::envelope::envelope(&entry, now_millis()) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e.message, "an inventory event was refused");
                return;
            }
        };
        if let Err(e) = crate::events::accept(self.state, vec![envelope]).await {
            tracing::warn!(error = %e.message, node_id = %node.id, "putting an inventory event failed");
        }
    }
}

/// The ids of the (non-revoked or not: the targeting decides) nodes having
/// an item of `kind` that `filter_text` accepts. No authorization: the
/// caller authorizes what it does with the nodes.
pub async fn matching_nodes(
    store: &Store,
    kind: &str,
    filter_text: &str,
) -> ServiceResult<BTreeSet<String>> {
    check_kind(kind)?;
    let filter = parse_filter(filter_text)?;
    Ok(store
        .inventory_items(kind, filter.exact_key())
        .await?
        .into_iter()
        .filter(|row| filter.matches(&row.key, &row.attributes))
        .map(|row| row.node_id)
        .collect())
}

fn check_kind(kind: &str) -> ServiceResult<()> {
    if valid_inventory_kind(kind) {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "InvalidInventoryType",
            format!(
                "unknown inventory type {kind:?}: one of {}, or custom:NAME",
                operon_proto::INVENTORY_KINDS.join(", ")
            ),
        ))
    }
}

fn parse_filter(text: &str) -> ServiceResult<Filter> {
    Filter::parse(text).map_err(|e| ServiceError::invalid("InvalidFilter", format!("filter: {e}")))
}

/// What a report must be to be stored.
fn check_delta(delta: &InventoryDelta) -> Result<(), String> {
    if !valid_inventory_kind(&delta.kind) {
        return Err(format!("unknown kind {:?}", delta.kind));
    }
    if delta.upserts.len() + delta.removals.len() > MAX_ITEMS {
        return Err(format!("more than {MAX_ITEMS} items"));
    }
    let too_long = delta
        .upserts
        .iter()
        .map(|i| &i.key)
        .chain(&delta.removals)
        .any(|k| k.is_empty() || k.len() > MAX_KEY);
    if too_long {
        return Err(format!("an empty key or one longer than {MAX_KEY} bytes"));
    }
    Ok(())
}
