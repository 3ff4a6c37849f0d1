//! Node credential rotation without downtime.
//!
//! The current credential of a node is `nodes.credential_hash`. A rotation
//! first records the new credential as *pending* (both are accepted), then,
//! once the agent has confirmed that it stored the new one (or has connected
//! with it), promotes it in one transaction: the old one becomes *retired*
//! and is refused from then on, with the time it was replaced. Until the
//! promotion nothing is lost if either side crashes: the agent holds one of
//! the two accepted credentials whatever happened to the message or the ack.

use sqlx::Row;

use crate::{Node, Result, Store, db};

/// What a presented credential hash is to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum CredentialMatch {
    /// The node's current credential.
    Current(Node),
    /// The new credential of a rotation the agent has not confirmed yet.
    Pending { node: Node, rotation_id: String },
    /// A credential replaced by a rotation at `retired_at`.
    Retired { node: Node, retired_at: i64 },
}

impl Store {
    /// Look up a credential hash among current, pending and retired ones.
    pub async fn find_node_credential(&self, hash: &str) -> Result<Option<CredentialMatch>> {
        if let Some(node) = self.node_by_credential(hash).await? {
            return Ok(Some(CredentialMatch::Current(node)));
        }
        let row = sqlx::query(
            "SELECT node_id, rotation_id, state, retired_at FROM node_credentials WHERE credential_hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up a rotated node credential"))?;
        let Some(row) = row else { return Ok(None) };
        let node_id: String = row.get("node_id");
        let Some(node) = self.node(&node_id).await? else {
            return Ok(None);
        };
        let state: String = row.get("state");
        Ok(Some(match state.as_str() {
            "pending" => CredentialMatch::Pending {
                node,
                rotation_id: row.get("rotation_id"),
            },
            _ => CredentialMatch::Retired {
                node,
                retired_at: row.get::<Option<i64>, _>("retired_at").unwrap_or(0),
            },
        }))
    }

    /// Record the new credential of a rotation; the current one stays valid.
    pub async fn begin_credential_rotation(
        &self,
        node_id: &str,
        rotation_id: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO node_credentials (credential_hash, node_id, rotation_id, state, created_at, retired_at)
             VALUES (?, ?, ?, 'pending', ?, NULL)",
        )
        .bind(new_hash)
        .bind(node_id)
        .bind(rotation_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("recording a credential rotation"))?;
        Ok(())
    }

    /// Make the pending credential of `rotation_id` the node's current one and
    /// retire the old one (and any other unconfirmed rotation), in one
    /// transaction. Returns false if there is no such pending rotation (for
    /// example because it was already completed).
    pub async fn complete_credential_rotation(
        &self,
        node_id: &str,
        rotation_id: &str,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write("starting to complete a rotation").await?;
        let new_hash: Option<String> = sqlx::query_scalar(
            "SELECT credential_hash FROM node_credentials
             WHERE node_id = ? AND rotation_id = ? AND state = 'pending'",
        )
        .bind(node_id)
        .bind(rotation_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("reading a pending credential"))?;
        let Some(new_hash) = new_hash else {
            return Ok(false);
        };
        let old_hash: String = sqlx::query_scalar("SELECT credential_hash FROM nodes WHERE id = ?")
            .bind(node_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("reading the current credential"))?;
        sqlx::query(
            "UPDATE node_credentials SET state = 'retired', retired_at = ?
             WHERE node_id = ? AND state = 'pending' AND credential_hash <> ?",
        )
        .bind(now)
        .bind(node_id)
        .bind(&new_hash)
        .execute(&mut *tx)
        .await
        .map_err(db("retiring unconfirmed credentials"))?;
        sqlx::query("DELETE FROM node_credentials WHERE credential_hash = ?")
            .bind(&new_hash)
            .execute(&mut *tx)
            .await
            .map_err(db("promoting a pending credential"))?;
        sqlx::query("UPDATE nodes SET credential_hash = ? WHERE id = ?")
            .bind(&new_hash)
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db("switching the node credential"))?;
        sqlx::query(
            "INSERT INTO node_credentials (credential_hash, node_id, rotation_id, state, created_at, retired_at)
             VALUES (?, ?, ?, 'retired', ?, ?)",
        )
        .bind(&old_hash)
        .bind(node_id)
        .bind(rotation_id)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("retiring the old credential"))?;
        tx.commit()
            .await
            .map_err(db("committing a credential rotation"))?;
        Ok(true)
    }

    /// When the node's credential was last replaced by a rotation, if ever.
    pub async fn credential_rotated_at(&self, node_id: &str) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MAX(retired_at) FROM node_credentials WHERE node_id = ? AND state = 'retired'",
        )
        .bind(node_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db("reading the last credential rotation"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{EnrollToken, NewNode};

    async fn store_with_node() -> (tempfile::TempDir, Store, Node) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("operon.db")).await.unwrap();
        let token = EnrollToken {
            id: "et-1".into(),
            token_hash: "token-hash".into(),
            tags: BTreeMap::new(),
            uses_allowed: 1,
            uses: 0,
            expires_at: i64::MAX,
            created_at: 0,
        };
        store.insert_enroll_token(&token).await.unwrap();
        let new = NewNode {
            id: "n-1".into(),
            name: "web-1".into(),
            credential_hash: "old".into(),
            requested_tags: BTreeMap::new(),
            inventory: Default::default(),
        };
        let node = store
            .enroll_node("token-hash", 1, new)
            .await
            .unwrap()
            .unwrap();
        (dir, store, node)
    }

    fn kind(found: Option<CredentialMatch>) -> String {
        match found {
            None => "unknown".into(),
            Some(CredentialMatch::Current(n)) => format!("current {}", n.id),
            Some(CredentialMatch::Pending { node, rotation_id }) => {
                format!("pending {} {rotation_id}", node.id)
            }
            Some(CredentialMatch::Retired { node, retired_at }) => {
                format!("retired {} {retired_at}", node.id)
            }
        }
    }

    #[tokio::test]
    async fn both_credentials_work_until_the_rotation_completes_then_only_the_new_one() {
        let (_dir, store, node) = store_with_node().await;
        store
            .begin_credential_rotation(&node.id, "rot-1", "new", 10)
            .await
            .unwrap();
        assert_eq!(
            kind(store.find_node_credential("old").await.unwrap()),
            "current n-1"
        );
        assert_eq!(
            kind(store.find_node_credential("new").await.unwrap()),
            "pending n-1 rot-1"
        );
        assert_eq!(store.credential_rotated_at(&node.id).await.unwrap(), None);

        assert!(
            store
                .complete_credential_rotation(&node.id, "rot-1", 20)
                .await
                .unwrap()
        );
        assert_eq!(
            kind(store.find_node_credential("new").await.unwrap()),
            "current n-1"
        );
        assert_eq!(
            kind(store.find_node_credential("old").await.unwrap()),
            "retired n-1 20"
        );
        assert_eq!(
            store.credential_rotated_at(&node.id).await.unwrap(),
            Some(20)
        );
        // Completing twice (ack after a reconnect already completed it) is a no-op.
        assert!(
            !store
                .complete_credential_rotation(&node.id, "rot-1", 30)
                .await
                .unwrap()
        );
        assert_eq!(
            kind(store.find_node_credential("new").await.unwrap()),
            "current n-1"
        );
        assert_eq!(
            kind(store.find_node_credential("nope").await.unwrap()),
            "unknown"
        );
    }

    #[tokio::test]
    async fn an_unconfirmed_rotation_is_retired_when_another_one_completes() {
        let (_dir, store, node) = store_with_node().await;
        store
            .begin_credential_rotation(&node.id, "rot-1", "lost", 10)
            .await
            .unwrap();
        store
            .begin_credential_rotation(&node.id, "rot-2", "kept", 11)
            .await
            .unwrap();
        assert!(
            store
                .complete_credential_rotation(&node.id, "rot-2", 12)
                .await
                .unwrap()
        );
        assert_eq!(
            kind(store.find_node_credential("kept").await.unwrap()),
            "current n-1"
        );
        assert_eq!(
            kind(store.find_node_credential("lost").await.unwrap()),
            "retired n-1 12"
        );
        assert_eq!(
            kind(store.find_node_credential("old").await.unwrap()),
            "retired n-1 12"
        );
        assert!(
            !store
                .complete_credential_rotation(&node.id, "rot-1", 13)
                .await
                .unwrap()
        );
    }
}
