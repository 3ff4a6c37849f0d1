//! Inventory on SQLite: `inventory_sets` (the digest per node and kind) and
//! `inventory_items`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use operon_proto::{InventoryDelta, InventoryItem};
use sqlx::Row;

use super::{SqliteStore, from_json, to_json};
use crate::{InventoryChange, InventoryRefusal, InventoryRow, InventoryStore, Result, db};

fn row_to_item(row: &sqlx::sqlite::SqliteRow) -> Result<InventoryRow> {
    let attributes: String = row.get("attributes");
    Ok(InventoryRow {
        node_id: row.get("node_id"),
        kind: row.get("kind"),
        key: row.get("key"),
        attributes: from_json("reading inventory attributes", &attributes)?,
        updated_at: row.get("updated_at"),
    })
}

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn apply_inventory(
        &self,
        node_id: &str,
        delta: &InventoryDelta,
        now: i64,
    ) -> Result<std::result::Result<InventoryChange, InventoryRefusal>> {
        // Every reconnect sends each kind as an empty delta on the held
        // base: answered from a read, without a write transaction (and its
        // fsync), which dominated reconnect storms.
        let unchanged = delta.upserts.is_empty()
            && delta.removals.is_empty()
            && delta.base.as_deref() == Some(delta.digest.as_str());
        if unchanged {
            let held: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM inventory_sets WHERE node_id = ? AND kind = ?",
            )
            .bind(node_id)
            .bind(&delta.kind)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an inventory digest"))?;
            if held.as_deref() == Some(delta.digest.as_str()) {
                return Ok(Ok(InventoryChange::default()));
            }
        }
        let mut tx = self.begin_write("starting an inventory write").await?;
        let held: Option<String> =
            sqlx::query_scalar("SELECT digest FROM inventory_sets WHERE node_id = ? AND kind = ?")
                .bind(node_id)
                .bind(&delta.kind)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("reading an inventory digest"))?;
        if let Some(base) = &delta.base
            && held.as_ref() != Some(base)
        {
            return Ok(Err(InventoryRefusal::BaseMismatch { held }));
        }
        let rows = sqlx::query(
            "SELECT key, attributes FROM inventory_items WHERE node_id = ? AND kind = ?",
        )
        .bind(node_id)
        .bind(&delta.kind)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("reading inventory items"))?;
        let mut set: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for row in &rows {
            let attributes: String = row.get("attributes");
            set.insert(
                row.get("key"),
                from_json("reading inventory attributes", &attributes)?,
            );
        }
        let before = set.clone();
        if delta.base.is_none() {
            set.clear();
        }
        for key in &delta.removals {
            set.remove(key);
        }
        for item in &delta.upserts {
            set.insert(item.key.clone(), item.attributes.clone());
        }
        let items: Vec<InventoryItem> = set
            .iter()
            .map(|(key, attributes)| InventoryItem {
                key: key.clone(),
                attributes: attributes.clone(),
            })
            .collect();
        let computed = operon_proto::inventory_digest(&items);
        if computed != delta.digest {
            return Ok(Err(InventoryRefusal::DigestMismatch {
                announced: delta.digest.clone(),
                computed,
            }));
        }
        let mut change = InventoryChange::default();
        for key in before.keys() {
            if !set.contains_key(key) {
                change.removed.push(key.clone());
                sqlx::query(
                    "DELETE FROM inventory_items WHERE node_id = ? AND kind = ? AND key = ?",
                )
                .bind(node_id)
                .bind(&delta.kind)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db("deleting an inventory item"))?;
            }
        }
        for (key, attributes) in &set {
            match before.get(key) {
                Some(old) if old == attributes => continue,
                Some(_) => change.updated.push(key.clone()),
                None => change.added.push(key.clone()),
            }
            sqlx::query(
                "INSERT INTO inventory_items (node_id, kind, key, attributes, updated_at)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (node_id, kind, key) DO UPDATE SET
                    attributes = excluded.attributes, updated_at = excluded.updated_at",
            )
            .bind(node_id)
            .bind(&delta.kind)
            .bind(key)
            .bind(to_json(attributes))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("writing an inventory item"))?;
        }
        sqlx::query(
            "INSERT INTO inventory_sets (node_id, kind, digest, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (node_id, kind) DO UPDATE SET digest = excluded.digest,
                updated_at = excluded.updated_at",
        )
        .bind(node_id)
        .bind(&delta.kind)
        .bind(&computed)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("writing an inventory digest"))?;
        tx.commit()
            .await
            .map_err(db("committing an inventory write"))?;
        Ok(Ok(change))
    }

    async fn node_inventory(&self, node_id: &str, kind: Option<&str>) -> Result<Vec<InventoryRow>> {
        let rows = sqlx::query(
            "SELECT node_id, kind, key, attributes, updated_at FROM inventory_items
             WHERE node_id = ? AND (? IS NULL OR kind = ?) ORDER BY kind, key",
        )
        .bind(node_id)
        .bind(kind)
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading a node's inventory"))?;
        rows.iter().map(row_to_item).collect()
    }

    async fn inventory_items(&self, kind: &str, key: Option<&str>) -> Result<Vec<InventoryRow>> {
        let rows = sqlx::query(
            "SELECT node_id, kind, key, attributes, updated_at FROM inventory_items
             WHERE kind = ? AND (? IS NULL OR key = ?) ORDER BY node_id, key",
        )
        .bind(kind)
        .bind(key)
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading inventory items"))?;
        rows.iter().map(row_to_item).collect()
    }
}
