//! Inventory: what agents report about their nodes, kept per node and kind.
//!
//! ```text
//! filter.rs   pure: `name=openssl,version<3.0.7` filters, Debian version order
//! service.rs  InventoryService: record an agent's delta (Ack or Resync, an
//!             `operon.inventory` event when something changed), show one
//!             node's items, query a kind across the fleet; matching_nodes
//!             for `inventory:KIND:FILTER` targets
//! http.rs     GET /v1/nodes/{key}/inventory, GET /v1/inventory
//! ```
//!
//! Authorization: `inventory:Get` on `node/NAME` with the node's tags (as
//! `nodes:Get`); `inventory:Query` on `node/*`, whose results keep only the
//! nodes the caller may `inventory:Get`.

pub mod filter;
pub mod http;
pub mod service;

use crate::AppState;

impl AppState {
    pub(crate) fn inventory(&self) -> service::InventoryService<'_> {
        service::InventoryService { state: self }
    }
}

/// The source of inventory events.
pub const EVENT_SOURCE: &str = "operon.inventory";

/// The detail-type of an inventory change.
pub const CHANGE_DETAIL_TYPE: &str = "Inventory Change";
