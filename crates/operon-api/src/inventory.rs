//! Inventory: what agents reported about their nodes (packages, services,
//! users, ports, custom files), per node and across the fleet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// One inventory item of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InventoryItem {
    /// `os`, `packages`, `services`, `users`, `groups`, `interfaces`, `ports` or `custom:NAME`
    #[serde(rename = "type")]
    pub kind: String,
    /// Unique within its type: a package's name, `tcp/0.0.0.0:22` for a port
    pub key: String,
    pub attributes: BTreeMap<String, String>,
    /// Unix time in milliseconds when this item last changed
    pub updated_at: i64,
}

/// `GET /v1/nodes/{key}/inventory`: one node's items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeInventory {
    pub node_id: String,
    pub node_name: String,
    pub items: Vec<InventoryItem>,
}

/// One item found by a fleet-wide query, with its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InventoryMatch {
    pub node_id: String,
    pub node_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
    pub attributes: BTreeMap<String, String>,
    /// Unix time in milliseconds when this item last changed
    pub updated_at: i64,
}

/// `GET /v1/inventory`: matching items across the nodes the caller may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InventoryQueryAnswer {
    #[serde(rename = "type")]
    pub kind: String,
    /// The filter as given (empty: every item)
    pub filter: String,
    pub matches: Vec<InventoryMatch>,
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "inventory";
    let kind = json!({"type": "string", "examples": ["packages", "custom:apps"]});
    api.op(Op::get(
        "/v1/nodes/{key}/inventory",
        TAG,
        "A node's inventory (inventory:Get on node/NAME, with the node's tags)",
    )
    .query("type", kind.clone(), "Only this type")
    .ok::<NodeInventory>());
    api.op(Op::get(
        "/v1/inventory",
        TAG,
        "Inventory items of one type across the fleet (inventory:Query on node/*; \
         only nodes inventory:Get allows)",
    )
    .query("type", kind, "The type queried (required)")
    .query(
        "filter",
        json!({"type": "string", "examples": ["name=openssl,version<3.0.7"]}),
        "Comma-separated ATTR OP VALUE conditions, all of which must hold; \
         name is the item's key; OP one of = != < <= > >= (Debian version order) ~ (regex)",
    )
    .ok::<InventoryQueryAnswer>());
}
