//! The HTTP edge of identity: parse the request, call [`IdentityService`],
//! shape the answer. Routes whose resource is in the path are authorized by
//! the route layer (`crate::catalogue`); the others by the service.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use operon_store::{AuditFilter, AuditRecord, PolicyRecord, Role};
use serde::Deserialize;
use serde_json::Value;

use super::service::{
    CreatedToken, Deleted, Identity, NewRole, NewToken, NewUser, PolicyChange, RoleChange,
    RotatedAdminToken, Simulate, Simulation, TokenView, UserView,
};
use crate::AppState;
use crate::access::{Ctx, Principal};
use crate::audit::Verification;
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/login", post(login))
        .route("/v1/users", post(create_user).get(list_users))
        .route("/v1/users/{name}", get(show_user))
        .route("/v1/users/{name}/disable", post(disable_user))
        .route("/v1/users/{name}/roles", post(change_user_roles))
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/{id}/revoke", post(revoke_token))
        .route("/v1/admin-token/rotate", post(rotate_admin_token))
        .route("/v1/policies", post(put_policy).get(list_policies))
        .route("/v1/policies/simulate", post(simulate))
        .route(
            "/v1/policies/{name}",
            get(show_policy).delete(delete_policy),
        )
        .route("/v1/roles", post(create_role).get(list_roles))
        .route("/v1/roles/{name}", get(show_role).delete(delete_role))
        .route("/v1/roles/{name}/policies", post(change_role_policies))
        .route("/v1/audit", get(list_audit))
        .route("/v1/audit/verify", post(verify_audit))
}

// ----- Who am I ------------------------------------------------------------------

async fn whoami(Extension(principal): Extension<Principal>) -> Json<Identity> {
    Json(Identity::of(&principal))
}

/// `operon login`: checks the token and records the login in the audit trail
/// (the middleware audits this POST).
async fn login(Ctx { state, principal }: Ctx) -> Json<Identity> {
    Json(state.identity().login(&principal))
}

// ----- Users ---------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    name: String,
    /// `user` (default) or `service`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

async fn create_user(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateUser>,
) -> ApiResult<Json<UserView>> {
    let new = NewUser {
        name: body.name,
        kind: body.kind,
        roles: body.roles,
    };
    Ok(Json(state.identity().create_user(&principal, new).await?))
}

async fn list_users(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(state.identity().list_users().await?))
}

async fn show_user(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(state.identity().user(&name).await?))
}

async fn disable_user(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(state.identity().disable_user(&name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChangeBody {
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    revoke: Vec<String>,
}

async fn change_user_roles(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<RoleChangeBody>,
) -> ApiResult<Json<UserView>> {
    let change = RoleChange {
        grant: body.grant,
        revoke: body.revoke,
    };
    let user = state
        .identity()
        .change_user_roles(&principal, &name, change)
        .await?;
    Ok(Json(user))
}

// ----- Tokens --------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    /// Owner; defaults to the caller.
    #[serde(default)]
    user: Option<String>,
    name: String,
    /// Action patterns the token is limited to (`nodes:*`); none means all.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    expires_in_secs: Option<i64>,
}

async fn create_token(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateToken>,
) -> ApiResult<Json<CreatedToken>> {
    let new = NewToken {
        user: body.user,
        name: body.name,
        scopes: body.scopes,
        expires_in_secs: body.expires_in_secs,
    };
    Ok(Json(state.identity().create_token(&principal, new).await?))
}

#[derive(Deserialize)]
struct TokenQuery {
    user: Option<String>,
}

async fn list_tokens(
    Ctx { state, principal }: Ctx,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(
        state.identity().list_tokens(&principal, q.user).await?,
    ))
}

async fn revoke_token(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(state.identity().revoke_token(&principal, &id).await?))
}

async fn rotate_admin_token(Ctx { state, principal }: Ctx) -> ApiResult<Json<RotatedAdminToken>> {
    Ok(Json(state.identity().rotate_admin_token(&principal).await?))
}

// ----- Policies ------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutPolicy {
    name: String,
    document: Value,
}

async fn put_policy(
    Ctx { state, principal }: Ctx,
    Json(body): Json<PutPolicy>,
) -> ApiResult<Json<PolicyRecord>> {
    let record = state
        .identity()
        .put_policy(&principal, &body.name, &body.document)
        .await?;
    Ok(Json(record))
}

async fn list_policies(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<PolicyRecord>>> {
    Ok(Json(state.identity().list_policies().await?))
}

async fn show_policy(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<PolicyRecord>> {
    Ok(Json(state.identity().policy(&name).await?))
}

async fn delete_policy(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Deleted>> {
    Ok(Json(state.identity().delete_policy(&name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateRequest {
    user: String,
    action: String,
    resource: String,
    /// Extra condition keys, e.g. `{"operon:NodeTag/env": "staging"}`.
    #[serde(default)]
    context: serde_json::Map<String, Value>,
    /// Use this node's tags as `operon:NodeTag/...` keys (and `node/NAME` as
    /// the resource when `resource` is empty).
    #[serde(default)]
    node: Option<String>,
}

/// Explain how a user's policies decide a request, naming the statement.
async fn simulate(
    Ctx { state, principal }: Ctx,
    Json(body): Json<SimulateRequest>,
) -> ApiResult<Json<Simulation>> {
    let ask = Simulate {
        user: body.user,
        action: body.action,
        resource: body.resource,
        context: body.context,
        node: body.node,
    };
    Ok(Json(state.identity().simulate(&principal, ask).await?))
}

// ----- Roles ---------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRole {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    policies: Vec<String>,
}

async fn create_role(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateRole>,
) -> ApiResult<Json<Role>> {
    let new = NewRole {
        name: body.name,
        description: body.description,
        policies: body.policies,
    };
    Ok(Json(state.identity().create_role(&principal, new).await?))
}

async fn list_roles(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Role>>> {
    Ok(Json(state.identity().list_roles().await?))
}

async fn show_role(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Role>> {
    Ok(Json(state.identity().role(&name).await?))
}

async fn delete_role(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Deleted>> {
    Ok(Json(state.identity().delete_role(&name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyChangeBody {
    #[serde(default)]
    attach: Vec<String>,
    #[serde(default)]
    detach: Vec<String>,
}

async fn change_role_policies(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<PolicyChangeBody>,
) -> ApiResult<Json<Role>> {
    let change = PolicyChange {
        attach: body.attach,
        detach: body.detach,
    };
    let role = state
        .identity()
        .change_role_policies(&principal, &name, change)
        .await?;
    Ok(Json(role))
}

// ----- Audit ---------------------------------------------------------------------

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    /// Milliseconds since the epoch.
    since: Option<i64>,
    limit: Option<i64>,
}

async fn list_audit(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        since: q.since,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(state.identity().list_audit(filter).await?))
}

async fn verify_audit(State(state): State<Arc<AppState>>) -> ApiResult<Json<Verification>> {
    Ok(Json(state.identity().verify_audit().await?))
}
