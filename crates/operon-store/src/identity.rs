//! Users, their API tokens, policies and roles.
//!
//! A user holds roles; a role holds policies (IAM-shaped JSON documents that
//! the server evaluates). Tokens belong to a user, or to nobody for the admin
//! token created on first start. Only token hashes are stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::{ApiToken, Result, Store, StoreError, db, from_json, to_json};

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

const USER_SELECT: &str = "SELECT id, name, kind, created_at, disabled_at FROM users";
pub(crate) const TOKEN_SELECT: &str = "SELECT id, name, token_hash, created_at, expires_at, revoked_at, user_id, scopes FROM api_tokens";

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> User {
    User {
        id: row.get("id"),
        name: row.get("name"),
        kind: row.get("kind"),
        created_at: row.get("created_at"),
        disabled_at: row.get("disabled_at"),
    }
}

pub(crate) fn token_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ApiToken> {
    let scopes: Option<String> = row.get("scopes");
    Ok(ApiToken {
        id: row.get("id"),
        name: row.get("name"),
        token_hash: row.get("token_hash"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        revoked_at: row.get("revoked_at"),
        user_id: row.get("user_id"),
        scopes: scopes
            .map(|s| from_json("reading token scopes", &s))
            .transpose()?,
    })
}

impl Store {
    // ----- Users -------------------------------------------------------------

    /// Create a user; a taken name is a [`StoreError::Conflict`].
    pub async fn insert_user(&self, user: &User) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO users (id, name, kind, created_at, disabled_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.kind)
        .bind(user.created_at)
        .bind(user.disabled_at)
        .execute(&self.pool)
        .await
        .map_err(db("inserting a user"))?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "a user named {:?} already exists",
                user.name
            )));
        }
        Ok(())
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a user"))?;
        Ok(row.as_ref().map(user_from_row))
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} WHERE name = ?")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a user"))?;
        Ok(row.as_ref().map(user_from_row))
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} ORDER BY name")))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing users"))?;
        Ok(rows.iter().map(user_from_row).collect())
    }

    /// Disable a user: its tokens stop working at once. Idempotent.
    pub async fn disable_user(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("disabling a user"))?;
        Ok(())
    }

    // ----- API tokens ----------------------------------------------------------

    /// Tokens of one user, or every token with `None`, newest first.
    pub async fn list_api_tokens(&self, user_id: Option<&str>) -> Result<Vec<ApiToken>> {
        let rows = match user_id {
            Some(user) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{TOKEN_SELECT} WHERE user_id = ? ORDER BY created_at DESC, id"
                )))
                .bind(user)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{TOKEN_SELECT} ORDER BY created_at DESC, id"
                )))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db("listing API tokens"))?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn api_token(&self, id: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{TOKEN_SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an API token"))?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Revoke a token. Idempotent; the first revocation time is kept.
    pub async fn revoke_api_token(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("revoking an API token"))?;
        Ok(())
    }

    /// Replace the admin token (the one without a user): the new one is
    /// inserted and every earlier admin token revoked, in one transaction.
    pub async fn rotate_admin_token(&self, new: &ApiToken, now: i64) -> Result<()> {
        let mut tx = self.begin_write("rotating the admin token").await?;
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE user_id IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("revoking the old admin token"))?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, created_at, expires_at, revoked_at, user_id, scopes)
             VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL)",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(&new.token_hash)
        .bind(new.created_at)
        .bind(new.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db("inserting the new admin token"))?;
        tx.commit()
            .await
            .map_err(db("committing the admin token rotation"))
    }

    // ----- Policies ------------------------------------------------------------

    /// Create or replace a policy (the caller validated the document).
    pub async fn put_policy(&self, name: &str, document: &Value, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO policies (name, document, created_at, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(to_json(document))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("storing a policy"))?;
        Ok(())
    }

    pub async fn policy(&self, name: &str) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query(
            "SELECT name, document, created_at, updated_at FROM policies WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a policy"))?;
        row.as_ref().map(policy_from_row).transpose()
    }

    pub async fn list_policies(&self) -> Result<Vec<PolicyRecord>> {
        let rows = sqlx::query(
            "SELECT name, document, created_at, updated_at FROM policies ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing policies"))?;
        rows.iter().map(policy_from_row).collect()
    }

    /// Delete a policy that no role uses; `false` if there was none.
    pub async fn delete_policy(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_write("deleting a policy").await?;
        let roles: Vec<String> =
            sqlx::query_scalar("SELECT role FROM role_policies WHERE policy = ? ORDER BY role")
                .bind(name)
                .fetch_all(&mut *tx)
                .await
                .map_err(db("reading policy attachments"))?;
        if !roles.is_empty() {
            return Err(StoreError::Conflict(format!(
                "policy {name:?} is attached to role(s) {}; detach it first",
                roles.join(", ")
            )));
        }
        let deleted = sqlx::query("DELETE FROM policies WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting a policy"))?
            .rows_affected();
        tx.commit()
            .await
            .map_err(db("committing a policy deletion"))?;
        Ok(deleted > 0)
    }

    /// Every policy that applies to a user through its roles, by name.
    pub async fn policies_for_user(&self, user_id: &str) -> Result<Vec<PolicyRecord>> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.name, p.document, p.created_at, p.updated_at
             FROM user_roles ur
             JOIN role_policies rp ON rp.role = ur.role
             JOIN policies p ON p.name = rp.policy
             WHERE ur.user_id = ? ORDER BY p.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading a user's policies"))?;
        rows.iter().map(policy_from_row).collect()
    }

    // ----- Roles ---------------------------------------------------------------

    pub async fn create_role(&self, name: &str, description: &str, now: i64) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO roles (name, description, created_at) VALUES (?, ?, ?)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("creating a role"))?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "a role named {name:?} already exists"
            )));
        }
        Ok(())
    }

    pub async fn list_roles(&self) -> Result<Vec<Role>> {
        let rows = sqlx::query("SELECT name, description, created_at FROM roles ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing roles"))?;
        let mut roles = Vec::with_capacity(rows.len());
        for row in rows {
            roles.push(self.role_with_members(row).await?);
        }
        Ok(roles)
    }

    pub async fn role(&self, name: &str) -> Result<Option<Role>> {
        let row = sqlx::query("SELECT name, description, created_at FROM roles WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a role"))?;
        match row {
            Some(row) => Ok(Some(self.role_with_members(row).await?)),
            None => Ok(None),
        }
    }

    async fn role_with_members(&self, row: sqlx::sqlite::SqliteRow) -> Result<Role> {
        let name: String = row.get("name");
        let policies =
            sqlx::query_scalar("SELECT policy FROM role_policies WHERE role = ? ORDER BY policy")
                .bind(&name)
                .fetch_all(&self.pool)
                .await
                .map_err(db("reading role policies"))?;
        let users = sqlx::query_scalar(
            "SELECT u.name FROM user_roles ur JOIN users u ON u.id = ur.user_id
             WHERE ur.role = ? ORDER BY u.name",
        )
        .bind(&name)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading role members"))?;
        Ok(Role {
            name,
            description: row.get("description"),
            created_at: row.get("created_at"),
            policies,
            users,
        })
    }

    /// Delete a role (its attachments and grants go with it).
    pub async fn delete_role(&self, name: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM roles WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a role"))?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// Attach (`true`) or detach (`false`) a policy to a role. Idempotent.
    pub async fn set_role_policy(&self, role: &str, policy: &str, attached: bool) -> Result<()> {
        let sql = if attached {
            "INSERT INTO role_policies (role, policy) VALUES (?, ?) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM role_policies WHERE role = ? AND policy = ?"
        };
        sqlx::query(sql)
            .bind(role)
            .bind(policy)
            .execute(&self.pool)
            .await
            .map_err(db("changing a role's policies"))?;
        Ok(())
    }

    /// Grant (`true`) or take back (`false`) a role from a user. Idempotent.
    pub async fn set_user_role(&self, user_id: &str, role: &str, granted: bool) -> Result<()> {
        let sql = if granted {
            "INSERT INTO user_roles (user_id, role) VALUES (?, ?) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM user_roles WHERE user_id = ? AND role = ?"
        };
        sqlx::query(sql)
            .bind(user_id)
            .bind(role)
            .execute(&self.pool)
            .await
            .map_err(db("changing a user's roles"))?;
        Ok(())
    }

    /// Role names granted to a user.
    pub async fn user_roles(&self, user_id: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT role FROM user_roles WHERE user_id = ? ORDER BY role")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading a user's roles"))
    }
}

fn policy_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<PolicyRecord> {
    Ok(PolicyRecord {
        name: row.get("name"),
        document: from_json("reading a policy", row.get("document"))?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}
