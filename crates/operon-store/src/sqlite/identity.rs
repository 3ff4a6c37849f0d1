//! Users, API tokens, policies and roles on SQLite.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;

use super::{SqliteStore, from_json, to_json};
use crate::{ApiToken, IdentityStore, PolicyRecord, Result, Role, StoreError, User, db};

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

#[async_trait]
impl IdentityStore for SqliteStore {
    // ----- API tokens ----------------------------------------------------------
    async fn insert_api_token(&self, token: &ApiToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, created_at, expires_at, revoked_at, user_id, scopes)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.revoked_at)
        .bind(&token.user_id)
        .bind(token.scopes.as_ref().map(to_json))
        .execute(&self.pool)
        .await
        .map_err(db("inserting an API token"))?;
        Ok(())
    }

    // ----- API tokens -------------------------------------------------------
    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE token_hash = ?",
            TOKEN_SELECT
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up an API token"))?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn count_api_tokens(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting API tokens"))
    }

    // ----- Users -------------------------------------------------------------
    async fn insert_user(&self, user: &User, roles: &[String]) -> Result<()> {
        let mut tx = self.begin_write("starting a user insert").await?;
        let result = sqlx::query(
            "INSERT INTO users (id, name, kind, created_at, disabled_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.kind)
        .bind(user.created_at)
        .bind(user.disabled_at)
        .execute(&mut *tx)
        .await
        .map_err(db("inserting a user"))?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "a user named {:?} already exists",
                user.name
            )));
        }
        for role in roles {
            sqlx::query(
                "INSERT INTO user_roles (user_id, role) VALUES (?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&user.id)
            .bind(role)
            .execute(&mut *tx)
            .await
            .map_err(db("granting a new user's roles"))?;
        }
        tx.commit().await.map_err(db("committing a user insert"))?;
        Ok(())
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a user"))?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} WHERE name = ?")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a user"))?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} ORDER BY name")))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing users"))?;
        Ok(rows.iter().map(user_from_row).collect())
    }

    async fn disable_user(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("disabling a user"))?;
        Ok(())
    }

    // ----- API tokens ----------------------------------------------------------
    async fn list_api_tokens(&self, user_id: Option<&str>) -> Result<Vec<ApiToken>> {
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

    async fn api_token(&self, id: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{TOKEN_SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an API token"))?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn revoke_api_token(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("revoking an API token"))?;
        Ok(())
    }

    async fn rotate_admin_token(&self, new: &ApiToken, now: i64) -> Result<()> {
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
    async fn put_policy(&self, name: &str, document: &Value, now: i64) -> Result<()> {
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

    async fn policy(&self, name: &str) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query(
            "SELECT name, document, created_at, updated_at FROM policies WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a policy"))?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>> {
        let rows = sqlx::query(
            "SELECT name, document, created_at, updated_at FROM policies ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing policies"))?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn delete_policy(&self, name: &str) -> Result<bool> {
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

    async fn policies_for_user(&self, user_id: &str) -> Result<Vec<PolicyRecord>> {
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
    async fn create_role(&self, name: &str, description: &str, now: i64) -> Result<()> {
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

    async fn list_roles(&self) -> Result<Vec<Role>> {
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

    async fn role(&self, name: &str) -> Result<Option<Role>> {
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

    async fn delete_role(&self, name: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM roles WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a role"))?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn set_role_policy(&self, role: &str, policy: &str, attached: bool) -> Result<()> {
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

    async fn set_user_role(&self, user_id: &str, role: &str, granted: bool) -> Result<()> {
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

    async fn user_roles(&self, user_id: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT role FROM user_roles WHERE user_id = ? ORDER BY role")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading a user's roles"))
    }
}

impl SqliteStore {
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
}

fn policy_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<PolicyRecord> {
    Ok(PolicyRecord {
        name: row.get("name"),
        document: from_json("reading a policy", row.get("document"))?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}
