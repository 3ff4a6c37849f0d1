//! The HTTP edge of identity: parse the request, call [`IdentityService`],
//! shape the answer. Routes whose resource is in the path are authorized by
//! the route layer (`crate::catalogue`); the others by the service.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use operon_api::identity::{
    AdminTokenRotated, AuditRecord, AuditVerification, CreateRole, CreateToken, CreateUser,
    CreatedToken, Deleted, Identity, Policy, PolicyChange, PutPolicy, Role, RoleChange,
    SimulateRequest, Simulation, StatementRef, Token, User,
};
use operon_store::{AuditFilter, PolicyRecord};
use serde::Deserialize;

use super::service::{self, NewRole, NewToken, NewUser, Simulate, TokenView, UserView};
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
    Json(identity(service::Identity::of(&principal)))
}

/// `operon login`: checks the token and records the login in the audit trail
/// (the middleware audits this POST).
async fn login(Ctx { state, principal }: Ctx) -> Json<Identity> {
    Json(identity(state.identity().login(&principal)))
}

// ----- Users ---------------------------------------------------------------------

async fn create_user(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateUser>,
) -> ApiResult<Json<User>> {
    let new = NewUser {
        name: body.name,
        kind: body.kind,
        roles: body.roles,
    };
    let view = state.identity().create_user(&principal, new).await?;
    Ok(Json(user(view)))
}

async fn list_users(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<User>>> {
    let views = state.identity().list_users().await?;
    Ok(Json(views.into_iter().map(user).collect()))
}

async fn show_user(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(user(state.identity().user(&name).await?)))
}

async fn disable_user(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(user(state.identity().disable_user(&name).await?)))
}

async fn change_user_roles(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<RoleChange>,
) -> ApiResult<Json<User>> {
    let change = service::RoleChange {
        grant: body.grant,
        revoke: body.revoke,
    };
    let view = state
        .identity()
        .change_user_roles(&principal, &name, change)
        .await?;
    Ok(Json(user(view)))
}

// ----- Tokens --------------------------------------------------------------------

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
    let created = state.identity().create_token(&principal, new).await?;
    Ok(Json(created_token(created)))
}

#[derive(Deserialize)]
struct TokenQuery {
    user: Option<String>,
}

async fn list_tokens(
    Ctx { state, principal }: Ctx,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Json<Vec<Token>>> {
    let views = state.identity().list_tokens(&principal, q.user).await?;
    Ok(Json(views.into_iter().map(token).collect()))
}

async fn revoke_token(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Token>> {
    let view = state.identity().revoke_token(&principal, &id).await?;
    Ok(Json(token(view)))
}

async fn rotate_admin_token(Ctx { state, principal }: Ctx) -> ApiResult<Json<AdminTokenRotated>> {
    let rotated = state.identity().rotate_admin_token(&principal).await?;
    Ok(Json(AdminTokenRotated {
        id: rotated.id,
        token: rotated.token,
        file: rotated.file,
    }))
}

// ----- Policies ------------------------------------------------------------------

async fn put_policy(
    Ctx { state, principal }: Ctx,
    Json(body): Json<PutPolicy>,
) -> ApiResult<Json<Policy>> {
    let record = state
        .identity()
        .put_policy(&principal, &body.name, &body.document)
        .await?;
    Ok(Json(policy(record)))
}

async fn list_policies(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Policy>>> {
    let records = state.identity().list_policies().await?;
    Ok(Json(records.into_iter().map(policy).collect()))
}

async fn show_policy(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Policy>> {
    Ok(Json(policy(state.identity().policy(&name).await?)))
}

async fn delete_policy(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Deleted>> {
    Ok(Json(deleted(state.identity().delete_policy(&name).await?)))
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
    let simulation = state.identity().simulate(&principal, ask).await?;
    Ok(Json(Simulation {
        user: simulation.user,
        action: simulation.action,
        resource: simulation.resource,
        context: simulation.context,
        decision: simulation.decision.into(),
        statement: simulation.statement.map(|s| StatementRef {
            policy: s.policy,
            statement: s.statement,
            sid: s.sid,
        }),
        explanation: simulation.explanation,
        policies: simulation.policies,
    }))
}

// ----- Roles ---------------------------------------------------------------------

async fn create_role(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateRole>,
) -> ApiResult<Json<Role>> {
    let new = NewRole {
        name: body.name,
        description: body.description,
        policies: body.policies,
    };
    Ok(Json(role(
        state.identity().create_role(&principal, new).await?,
    )))
}

async fn list_roles(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Role>>> {
    let roles = state.identity().list_roles().await?;
    Ok(Json(roles.into_iter().map(role).collect()))
}

async fn show_role(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Role>> {
    Ok(Json(role(state.identity().role(&name).await?)))
}

async fn delete_role(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Deleted>> {
    Ok(Json(deleted(state.identity().delete_role(&name).await?)))
}

async fn change_role_policies(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<PolicyChange>,
) -> ApiResult<Json<Role>> {
    let change = service::PolicyChange {
        attach: body.attach,
        detach: body.detach,
    };
    let changed = state
        .identity()
        .change_role_policies(&principal, &name, change)
        .await?;
    Ok(Json(role(changed)))
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
    let records = state.identity().list_audit(filter).await?;
    Ok(Json(records.into_iter().map(audit_record).collect()))
}

async fn verify_audit(State(state): State<Arc<AppState>>) -> ApiResult<Json<AuditVerification>> {
    let Verification {
        records,
        head_seq,
        ok,
        problems,
    } = state.identity().verify_audit().await?;
    Ok(Json(AuditVerification {
        records,
        head_seq,
        ok,
        problems,
    }))
}

// ----- The answers: the service's views and the store's rows as the API's types

fn identity(who: service::Identity) -> Identity {
    Identity {
        name: who.name,
        user_id: who.user_id,
        token_id: who.token_id,
        admin: who.admin,
        scopes: who.scopes,
        policies: who.policies,
    }
}

fn user(view: UserView) -> User {
    let UserView {
        user,
        roles,
        status,
    } = view;
    User {
        id: user.id,
        name: user.name,
        kind: user.kind,
        created_at: user.created_at,
        disabled_at: user.disabled_at,
        roles,
        status: status.into(),
    }
}

fn token(view: TokenView) -> Token {
    Token {
        id: view.id,
        name: view.name,
        user: view.user,
        scopes: view.scopes,
        created_at: view.created_at,
        expires_at: view.expires_at,
        revoked_at: view.revoked_at,
        status: view.status.into(),
    }
}

fn created_token(created: service::CreatedToken) -> CreatedToken {
    CreatedToken {
        view: token(created.view),
        token: created.token,
    }
}

fn policy(record: PolicyRecord) -> Policy {
    Policy {
        name: record.name,
        document: record.document,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

fn role(role: operon_store::Role) -> Role {
    Role {
        name: role.name,
        description: role.description,
        created_at: role.created_at,
        policies: role.policies,
        users: role.users,
    }
}

fn deleted(deleted: service::Deleted) -> Deleted {
    Deleted {
        name: deleted.name,
        deleted: deleted.deleted,
    }
}

fn audit_record(record: operon_store::AuditRecord) -> AuditRecord {
    AuditRecord {
        seq: record.seq,
        at: record.at,
        actor: record.actor,
        action: record.action,
        resource: record.resource,
        outcome: record.outcome,
        detail: record.detail,
        prev_hash: record.prev_hash,
        hash: record.hash,
    }
}
