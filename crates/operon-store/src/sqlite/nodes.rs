//! The fleet on SQLite: enrollment tokens, nodes and credential rotation.
//!
//! The current credential of a node is `nodes.credential_hash`. A rotation
//! first records the new credential as *pending* (both are accepted), then,
//! once the agent has confirmed that it stored the new one (or has connected
//! with it), promotes it in one transaction: the old one becomes *retired*
//! and is refused from then on, with the time it was replaced. Until the
//! promotion nothing is lost if either side crashes: the agent holds one of
//! the two accepted credentials whatever happened to the message or the ack.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, from_json, to_json};
use crate::{CredentialMatch, EnrollRefusal, EnrollToken, NewNode, Node, NodeStore, Result, db};

#[async_trait]
impl NodeStore for SqliteStore {
    // ----- Enrollment tokens -----------------------------------------------
    async fn insert_enroll_token(&self, token: &EnrollToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO enroll_tokens (id, token_hash, tags, uses_allowed, uses, expires_at, created_at, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(&token.token_hash)
        .bind(to_json(&token.tags))
        .bind(token.uses_allowed)
        .bind(token.uses)
        .bind(token.expires_at)
        .bind(token.created_at)
        .bind(token.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(db("inserting an enrollment token"))?;
        Ok(())
    }

    async fn list_enroll_tokens(&self) -> Result<Vec<EnrollToken>> {
        let rows = sqlx::query(
            "SELECT id, token_hash, tags, uses_allowed, uses, expires_at, created_at, revoked_at
             FROM enroll_tokens ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing enrollment tokens"))?;
        rows.iter().map(enroll_token_from_row).collect()
    }

    async fn revoke_enroll_token(&self, id: &str, now: i64) -> Result<Option<EnrollToken>> {
        let row = sqlx::query(
            "UPDATE enroll_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?
             RETURNING id, token_hash, tags, uses_allowed, uses, expires_at, created_at, revoked_at",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("revoking an enrollment token"))?;
        row.as_ref().map(enroll_token_from_row).transpose()
    }

    async fn enroll_node(
        &self,
        token_hash: &str,
        now: i64,
        node: NewNode,
    ) -> Result<Result<Node, EnrollRefusal>> {
        let mut tx = self.begin_write("starting enrollment").await?;
        let row = sqlx::query(
            "SELECT id, token_hash, tags, uses_allowed, uses, expires_at, created_at, revoked_at
             FROM enroll_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("reading the enrollment token"))?;
        let Some(row) = row else {
            return Ok(Err(EnrollRefusal::Unknown));
        };
        let token = enroll_token_from_row(&row)?;
        if token.revoked_at.is_some() {
            return Ok(Err(EnrollRefusal::Revoked));
        }
        if token.expires_at <= now {
            return Ok(Err(EnrollRefusal::Expired));
        }
        // The condition is re-checked by the update itself: a revocation
        // committed since the read above wins.
        let counted = sqlx::query(
            "UPDATE enroll_tokens SET uses = uses + 1
             WHERE id = ? AND uses < uses_allowed AND expires_at > ? AND revoked_at IS NULL",
        )
        .bind(&token.id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("counting an enrollment token use"))?;
        if counted.rows_affected() == 0 {
            let revoked: Option<i64> =
                sqlx::query_scalar("SELECT revoked_at FROM enroll_tokens WHERE id = ?")
                    .bind(&token.id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("reading the enrollment token"))?;
            return Ok(Err(if revoked.is_some() {
                EnrollRefusal::Revoked
            } else {
                EnrollRefusal::UsedUp
            }));
        }
        // The token's tags win, also over a requested key that differs from
        // one of them only in case (`Env` against the token's `env`).
        let mut tags = node.requested_tags;
        tags.retain(|key, _| {
            !token
                .tags
                .keys()
                .any(|t| t != key && t.eq_ignore_ascii_case(key))
        });
        tags.extend(token.tags.clone());
        let mut created = Node {
            id: node.id,
            name: node.name.clone(),
            tags,
            inventory: node.inventory,
            enrolled_at: now,
            last_seen: None,
            revoked_at: None,
        };
        // The wanted name, else `name-2`, `name-3`, ...: the first the
        // insert does not find taken, shortened to make room for the suffix
        // so that no name is longer than NODE_NAME_MAX.
        for n in 1_u64.. {
            if n > 1 {
                let suffix = format!("-{n}");
                let mut base = node.name.as_str();
                while base.len() + suffix.len() > crate::NODE_NAME_MAX && !base.is_empty() {
                    let mut cut = base.len() - 1;
                    while !base.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    base = &base[..cut];
                }
                created.name = format!("{base}{suffix}");
            }
            let inserted = sqlx::query(
                "INSERT INTO nodes (id, name, credential_hash, tags, inventory, enrolled_at, last_seen, revoked_at)
                 VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&created.id)
            .bind(&created.name)
            .bind(&node.credential_hash)
            .bind(to_json(&created.tags))
            .bind(to_json(&created.inventory))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("inserting an enrolled node"))?;
            if inserted.rows_affected() == 1 {
                break;
            }
        }
        tx.commit().await.map_err(db("committing enrollment"))?;
        Ok(Ok(created))
    }

    // ----- Nodes -------------------------------------------------------------
    async fn node_by_credential(&self, hash: &str) -> Result<Option<Node>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{NODE_SELECT} WHERE credential_hash = ?"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up a node credential"))?;
        row.as_ref().map(node_from_row).transpose()
    }

    async fn node(&self, id: &str) -> Result<Option<Node>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{NODE_SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a node"))?;
        row.as_ref().map(node_from_row).transpose()
    }

    async fn node_by_id_or_name(&self, key: &str) -> Result<Option<Node>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{NODE_SELECT} WHERE id = ? OR name = ? ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(key)
        .bind(key)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a node"))?;
        row.as_ref().map(node_from_row).transpose()
    }

    async fn list_nodes(&self) -> Result<Vec<Node>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{NODE_SELECT} ORDER BY name")))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing nodes"))?;
        rows.iter().map(node_from_row).collect()
    }

    async fn update_node_seen(
        &self,
        id: &str,
        inventory: Option<&operon_proto::Inventory>,
        now: i64,
    ) -> Result<()> {
        let query = match inventory {
            Some(inv) => sqlx::query("UPDATE nodes SET last_seen = ?, inventory = ? WHERE id = ?")
                .bind(now)
                .bind(to_json(inv)),
            None => sqlx::query("UPDATE nodes SET last_seen = ? WHERE id = ?").bind(now),
        };
        query
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("recording that a node was seen"))?;
        Ok(())
    }

    async fn set_node_tags(
        &self,
        id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        sqlx::query("UPDATE nodes SET tags = ? WHERE id = ?")
            .bind(to_json(tags))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("updating node tags"))?;
        Ok(())
    }

    async fn revoke_node(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE nodes SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("revoking a node"))?;
        Ok(())
    }

    // ----- Credential rotation ---------------------------------------------------
    async fn find_node_credential(&self, hash: &str) -> Result<Option<CredentialMatch>> {
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

    async fn begin_credential_rotation(
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

    async fn complete_credential_rotation(
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

    async fn credential_rotated_at(&self, node_id: &str) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MAX(retired_at) FROM node_credentials WHERE node_id = ? AND state = 'retired'",
        )
        .bind(node_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db("reading the last credential rotation"))
    }
}

const NODE_SELECT: &str =
    "SELECT id, name, tags, inventory, enrolled_at, last_seen, revoked_at FROM nodes";

fn node_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Node> {
    Ok(Node {
        id: row.get("id"),
        name: row.get("name"),
        tags: from_json("reading node tags", row.get("tags"))?,
        inventory: from_json("reading node inventory", row.get("inventory"))?,
        enrolled_at: row.get("enrolled_at"),
        last_seen: row.get("last_seen"),
        revoked_at: row.get("revoked_at"),
    })
}

fn enroll_token_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<EnrollToken> {
    Ok(EnrollToken {
        id: row.get("id"),
        token_hash: row.get("token_hash"),
        tags: from_json("reading enrollment token tags", row.get("tags"))?,
        uses_allowed: row.get("uses_allowed"),
        uses: row.get("uses"),
        expires_at: row.get("expires_at"),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
    })
}
