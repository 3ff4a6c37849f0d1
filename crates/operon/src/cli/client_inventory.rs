//! The typed API of inventory (`operon_api::inventory`).

use anyhow::Result;
use operon_api::inventory::{InventoryQueryAnswer, NodeInventory};

use super::client::{Answer, Client};
use super::client_params::{encode, query};

impl Client {
    /// A node's items, of one type when given.
    pub async fn node_inventory(
        &self,
        node: &str,
        kind: Option<&str>,
    ) -> Result<Answer<NodeInventory>> {
        let path = format!(
            "/v1/nodes/{}/inventory{}",
            encode(node),
            query(&[("type", kind.map(str::to_string))])
        );
        Answer::read(self.get(&path).await?)
    }

    /// Items of one type across the fleet that the filter accepts.
    pub async fn query_inventory(
        &self,
        kind: &str,
        filter: Option<&str>,
    ) -> Result<Answer<InventoryQueryAnswer>> {
        let path = format!(
            "/v1/inventory{}",
            query(&[
                ("type", Some(kind.to_string())),
                ("filter", filter.map(str::to_string)),
            ])
        );
        Answer::read(self.get(&path).await?)
    }
}
