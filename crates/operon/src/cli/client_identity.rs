//! The typed API of identity and the audit trail (`operon_api::identity`):
//! users, API tokens, policies, roles, login and the audit trail. Names and
//! ids are path segments the caller has checked (`identity::segment`).

use anyhow::Result;
use operon_api::identity::{
    AdminTokenRotated, AuditRecord, AuditVerification, CreateRole, CreateToken, CreateUser,
    CreatedToken, Deleted, Identity, Policy, PolicyChange, PutPolicy, Role, RoleChange,
    SimulateRequest, Simulation, Token, User,
};
use serde_json::json;

use super::client::{Answer, Client, to_json};

impl Client {
    /// Checks the token; the server records the login.
    pub async fn login(&self) -> Result<Answer<Identity>> {
        Answer::read(self.post("/v1/login", &json!({})).await?)
    }

    // ----- Users

    pub async fn create_user(&self, body: &CreateUser) -> Result<Answer<User>> {
        Answer::read(self.post("/v1/users", &to_json(body)?).await?)
    }

    pub async fn users(&self) -> Result<Answer<Vec<User>>> {
        Answer::read(self.get("/v1/users").await?)
    }

    pub async fn user(&self, name: &str) -> Result<Answer<User>> {
        Answer::read(self.get(&format!("/v1/users/{name}")).await?)
    }

    pub async fn disable_user(&self, name: &str) -> Result<Answer<User>> {
        let path = format!("/v1/users/{name}/disable");
        Answer::read(self.post(&path, &json!({})).await?)
    }

    pub async fn change_user_roles(&self, name: &str, change: &RoleChange) -> Result<Answer<User>> {
        let path = format!("/v1/users/{name}/roles");
        Answer::read(self.post(&path, &to_json(change)?).await?)
    }

    // ----- Tokens

    pub async fn create_token(&self, body: &CreateToken) -> Result<Answer<CreatedToken>> {
        Answer::read(self.post("/v1/tokens", &to_json(body)?).await?)
    }

    /// `user`'s tokens, or the caller's (every token for the admin token).
    pub async fn tokens(&self, user: Option<&str>) -> Result<Answer<Vec<Token>>> {
        let path = match user {
            Some(user) => format!("/v1/tokens?user={user}"),
            None => "/v1/tokens".to_string(),
        };
        Answer::read(self.get(&path).await?)
    }

    pub async fn revoke_token(&self, id: &str) -> Result<Answer<Token>> {
        let path = format!("/v1/tokens/{id}/revoke");
        Answer::read(self.post(&path, &json!({})).await?)
    }

    pub async fn rotate_admin_token(&self) -> Result<Answer<AdminTokenRotated>> {
        Answer::read(self.post("/v1/admin-token/rotate", &json!({})).await?)
    }

    // ----- Policies

    pub async fn put_policy(&self, body: &PutPolicy) -> Result<Answer<Policy>> {
        Answer::read(self.post("/v1/policies", &to_json(body)?).await?)
    }

    pub async fn policies(&self) -> Result<Answer<Vec<Policy>>> {
        Answer::read(self.get("/v1/policies").await?)
    }

    pub async fn policy(&self, name: &str) -> Result<Answer<Policy>> {
        Answer::read(self.get(&format!("/v1/policies/{name}")).await?)
    }

    pub async fn delete_policy(&self, name: &str) -> Result<Answer<Deleted>> {
        Answer::read(self.delete(&format!("/v1/policies/{name}")).await?)
    }

    pub async fn simulate(&self, body: &SimulateRequest) -> Result<Answer<Simulation>> {
        Answer::read(self.post("/v1/policies/simulate", &to_json(body)?).await?)
    }

    // ----- Roles

    pub async fn create_role(&self, body: &CreateRole) -> Result<Answer<Role>> {
        Answer::read(self.post("/v1/roles", &to_json(body)?).await?)
    }

    pub async fn roles(&self) -> Result<Answer<Vec<Role>>> {
        Answer::read(self.get("/v1/roles").await?)
    }

    pub async fn role(&self, name: &str) -> Result<Answer<Role>> {
        Answer::read(self.get(&format!("/v1/roles/{name}")).await?)
    }

    pub async fn delete_role(&self, name: &str) -> Result<Answer<Deleted>> {
        Answer::read(self.delete(&format!("/v1/roles/{name}")).await?)
    }

    pub async fn change_role_policies(
        &self,
        name: &str,
        change: &PolicyChange,
    ) -> Result<Answer<Role>> {
        let path = format!("/v1/roles/{name}/policies");
        Answer::read(self.post(&path, &to_json(change)?).await?)
    }

    // ----- The audit trail

    /// Audit records; `query` is the encoded query string
    /// (`limit=100&actor=alice`).
    pub async fn audit_records(&self, query: &str) -> Result<Answer<Vec<AuditRecord>>> {
        Answer::read(self.get(&format!("/v1/audit?{query}")).await?)
    }

    pub async fn verify_audit(&self) -> Result<Answer<AuditVerification>> {
        Answer::read(self.post("/v1/audit/verify", &json!({})).await?)
    }
}
