//! The identity API: users, their tokens, policies, roles, the policy
//! simulator, login, admin-token rotation and the audit trail.
//!
//! Every route here is behind the bearer-token middleware and authorizes its
//! own action (`users:Create`, `policies:Simulate`, `audit:Verify`, ...).
//! Token secrets are returned once, at creation, and stored only as hashes.

use operon_store::prelude::*;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use operon_policy::{NamedPolicy, Policy, Request};
use operon_store::{ApiToken, AuditFilter, StoreError, User};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{Ctx, Principal, authorize, scope_policy};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, auth, now_millis};

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

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(message) => ApiError::conflict(message),
        other => other.into(),
    }
}

fn valid_name(kind: &str, name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "invalid {kind} name {name:?}: 1 to 64 of letters, digits, '_', '-', '.', '@'"
        )))
    }
}

/// Actor names the server uses itself: the admin token, unauthenticated
/// callers, agent enrollment, and two kept for later (`system`, `root`).
const RESERVED_NAMES: &[&str] = &["admin", "anonymous", "enrollment", "system", "root"];

/// Kinds of actor the audit trail names `KIND/NAME` (`rule/critical`,
/// `execution/x-1`, `webhook/prom`, a run-as `role/NAME`), with those planned
/// (`schedule`, `association`, `window`, `alarm`).
const ACTOR_KINDS: &[&str] = &[
    "rule",
    "execution",
    "schedule",
    "association",
    "window",
    "alarm",
    "role",
    "webhook",
];

/// The reserved word a user, role or policy name would be confused with, if
/// any. Names cannot hold `/` or `:`, so `rule/x` is impossible already; what
/// is refused is the bare word of a server actor and, for the actor kinds,
/// the word followed by a separator (`rule-critical`, `Execution.x`), which
/// reads like the actor in the trail. Case does not matter.
pub(crate) fn reserved_word(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if let Some(word) = RESERVED_NAMES.iter().find(|w| lower == **w) {
        return Some(word);
    }
    ACTOR_KINDS.iter().copied().find(|kind| {
        lower
            .strip_prefix(kind)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_', '.', '@']))
    })
}

/// [`valid_name`] for names that appear as actors or grants: users, roles
/// and policies must not be mistaken for the server's own actors.
fn valid_identity_name(kind: &str, name: &str) -> ApiResult<()> {
    valid_name(kind, name)?;
    match reserved_word(name) {
        None => Ok(()),
        Some(word) => Err(ApiError::invalid(format!(
            "invalid {kind} name {name:?}: {word:?} is reserved (the server's own actors are {}; \
             names of the actor kinds {} followed by '-', '_', '.' or '@' are refused too, \
             whatever the case)",
            RESERVED_NAMES.join(", "),
            ACTOR_KINDS.join(", ")
        ))),
    }
}

// ----- Who am I ------------------------------------------------------------------

fn identity_view(principal: &Principal) -> Value {
    json!({
        "name": principal.name,
        "user_id": principal.user_id,
        "token_id": principal.token_id,
        "admin": principal.root,
        "scopes": principal.scopes,
        "policies": principal.policies.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
    })
}

async fn whoami(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(identity_view(&principal))
}

/// `operon login`: checks the token and records the login in the audit trail
/// (the middleware audits this POST).
async fn login(Extension(principal): Extension<Principal>) -> Json<Value> {
    principal.allowed_action("auth:Login", &format!("user/{}", principal.name));
    principal.note("event", "login");
    Json(identity_view(&principal))
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
) -> ApiResult<Json<Value>> {
    authorize(
        &state,
        &principal,
        "users:Create",
        &format!("user/{}", body.name),
    )
    .await?;
    valid_identity_name("user", &body.name)?;
    let kind = body.kind.unwrap_or_else(|| "user".into());
    if kind != "user" && kind != "service" {
        return Err(ApiError::invalid(format!(
            "kind must be \"user\" or \"service\", got {kind:?}"
        )));
    }
    for role in &body.roles {
        require_role(&state, role).await?;
    }
    let user = User {
        id: auth::new_id("u-"),
        name: body.name,
        kind,
        created_at: now_millis(),
        disabled_at: None,
    };
    // The user and its roles are written together: no user without its roles.
    state
        .store
        .insert_user(&user, &body.roles)
        .await
        .map_err(store_error)?;
    principal.note("roles", body.roles.clone());
    user_view(&state, user).await.map(Json)
}

async fn user_view(state: &AppState, user: User) -> ApiResult<Value> {
    let roles = state.store.user_roles(&user.id).await?;
    let mut view = serde_json::to_value(&user).unwrap_or(Value::Null);
    if let Some(map) = view.as_object_mut() {
        map.insert("roles".into(), json!(roles));
        map.insert(
            "status".into(),
            json!(if user.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            }),
        );
    }
    Ok(view)
}

async fn find_user(state: &AppState, name: &str) -> ApiResult<User> {
    state
        .store
        .user_by_name(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user named {name:?}")))
}

async fn list_users(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Value>>> {
    let mut out = Vec::new();
    for user in state.store.list_users().await? {
        out.push(user_view(&state, user).await?);
    }
    Ok(Json(out))
}

async fn show_user(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = find_user(&state, &name).await?;
    user_view(&state, user).await.map(Json)
}

async fn disable_user(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = find_user(&state, &name).await?;
    state.store.disable_user(&user.id, now_millis()).await?;
    let user = find_user(&state, &name).await?;
    user_view(&state, user).await.map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    revoke: Vec<String>,
}

async fn change_user_roles(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(change): Json<RoleChange>,
) -> ApiResult<Json<Value>> {
    let user = find_user(&state, &name).await?;
    for role in &change.grant {
        require_role(&state, role).await?;
    }
    for role in &change.grant {
        state.store.set_user_role(&user.id, role, true).await?;
    }
    for role in &change.revoke {
        state.store.set_user_role(&user.id, role, false).await?;
    }
    principal.note("granted", change.grant.clone());
    principal.note("revoked", change.revoke.clone());
    user_view(&state, user).await.map(Json)
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
) -> ApiResult<Json<Value>> {
    let owner_name = body.user.clone().unwrap_or_else(|| principal.name.clone());
    authorize(
        &state,
        &principal,
        "tokens:Create",
        &format!("user/{owner_name}"),
    )
    .await?;
    valid_name("token", &body.name)?;
    let owner = find_user(&state, &owner_name).await.map_err(|e| {
        if principal.root && body.user.is_none() {
            ApiError::invalid(
                "the admin token belongs to no user: pass a user to create a token for",
            )
        } else {
            e
        }
    })?;
    if owner.disabled_at.is_some() {
        return Err(ApiError::conflict(format!(
            "user {owner_name:?} is disabled"
        )));
    }
    if let Some(scopes) = &body.scopes {
        if scopes.is_empty() {
            return Err(ApiError::invalid(
                "scopes: give at least one action pattern, or none for all",
            ));
        }
        scope_policy(scopes).map_err(|e| ApiError::invalid(format!("scopes: {e}")))?;
    }
    // Ten years at most: longer is a mistake, and would overflow the clock.
    const MAX_TOKEN_SECS: i64 = 10 * 365 * 24 * 3600;
    let expires_at = match body.expires_in_secs {
        Some(secs) if !(1..=MAX_TOKEN_SECS).contains(&secs) => {
            return Err(ApiError::invalid(format!(
                "expires_in_secs must be between 1 and {MAX_TOKEN_SECS} (ten years), got {secs}"
            )));
        }
        Some(secs) => Some(now_millis() + secs * 1000),
        None => None,
    };
    let secret = auth::new_secret(auth::API_TOKEN_PREFIX);
    let token = ApiToken {
        id: auth::new_id("tok-"),
        name: body.name,
        token_hash: auth::hash_secret(&secret),
        created_at: now_millis(),
        expires_at,
        revoked_at: None,
        user_id: Some(owner.id),
        scopes: body.scopes,
    };
    state.store.insert_api_token(&token).await?;
    principal.note("token_id", token.id.clone());
    let mut view = token_view(&token, &owner_name);
    view["token"] = json!(secret);
    Ok(Json(view))
}

fn token_view(token: &ApiToken, owner: &str) -> Value {
    let status = if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at.is_some_and(|at| at <= now_millis()) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": token.id,
        "name": token.name,
        "user": owner,
        "scopes": token.scopes,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "status": status,
    })
}

#[derive(Deserialize)]
struct TokenQuery {
    user: Option<String>,
}

async fn list_tokens(
    Ctx { state, principal }: Ctx,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let owner = q.user.clone().unwrap_or_else(|| principal.name.clone());
    if principal.root && q.user.is_none() {
        let users: std::collections::HashMap<String, String> = state
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        let tokens = state.store.list_api_tokens(None).await?;
        return Ok(Json(
            tokens
                .iter()
                .map(|t| {
                    let owner = t.user_id.as_ref().and_then(|id| users.get(id));
                    token_view(t, owner.map_or("(admin)", String::as_str))
                })
                .collect(),
        ));
    }
    authorize(&state, &principal, "tokens:List", &format!("user/{owner}")).await?;
    let user = find_user(&state, &owner).await?;
    let tokens = state.store.list_api_tokens(Some(&user.id)).await?;
    Ok(Json(tokens.iter().map(|t| token_view(t, &owner)).collect()))
}

async fn revoke_token(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let token = state
        .store
        .api_token(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token with id {id:?}")))?;
    let owner = match &token.user_id {
        Some(user_id) => state.store.user(user_id).await?.map(|u| u.name),
        None => None,
    };
    let Some(owner) = owner else {
        return Err(ApiError::invalid(
            "the admin token is not revoked but rotated: POST /v1/admin-token/rotate (operon tokens rotate-admin)",
        ));
    };
    authorize(
        &state,
        &principal,
        "tokens:Revoke",
        &format!("user/{owner}"),
    )
    .await?;
    state.store.revoke_api_token(&id, now_millis()).await?;
    let token = state.store.api_token(&id).await?.unwrap_or(token);
    Ok(Json(token_view(&token, &owner)))
}

/// Replace the admin token; only the admin token may do it. The new token is
/// written to the data directory's admin-token file and returned once.
async fn rotate_admin_token(Ctx { state, principal }: Ctx) -> ApiResult<Json<Value>> {
    if !principal.root {
        let reason = "only the admin token can rotate the admin token";
        crate::access::record_denial(
            &state,
            &principal,
            "tokens:RotateAdmin",
            "token/admin",
            reason,
        )
        .await;
        return Err(ApiError::forbidden(reason));
    }
    let secret = auth::new_secret(auth::API_TOKEN_PREFIX);
    let token = ApiToken {
        id: auth::new_id("tok-"),
        name: "admin".into(),
        token_hash: auth::hash_secret(&secret),
        created_at: now_millis(),
        expires_at: None,
        revoked_at: None,
        user_id: None,
        scopes: None,
    };
    let path = state.config.data_dir.join(crate::ADMIN_TOKEN_FILE);
    // The file first: if the database then fails, the old token still works
    // and the file can be rewritten; the other order could lock everyone out.
    crate::write_secret_file_atomic(&path, &secret).map_err(|e| {
        tracing::error!(error = %e, "cannot write the admin token file");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "cannot write the admin token file; see the server log",
        )
    })?;
    state.store.rotate_admin_token(&token, now_millis()).await?;
    principal.note("token_id", token.id.clone());
    principal.allowed_action("tokens:RotateAdmin", "token/admin");
    Ok(Json(json!({
        "id": token.id,
        "token": secret,
        "file": path.display().to_string(),
    })))
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
) -> ApiResult<Json<Value>> {
    authorize(
        &state,
        &principal,
        "policies:Put",
        &format!("policy/{}", body.name),
    )
    .await?;
    valid_identity_name("policy", &body.name)?;
    Policy::from_value(&body.document)
        .map_err(|e| ApiError::invalid(format!("policy {}: {e}", body.name)))?;
    state
        .store
        .put_policy(&body.name, &body.document, now_millis())
        .await?;
    let record = state.store.policy(&body.name).await?;
    Ok(Json(serde_json::to_value(record).unwrap_or(Value::Null)))
}

async fn list_policies(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let policies = state.store.list_policies().await?;
    Ok(Json(serde_json::to_value(policies).unwrap_or(Value::Null)))
}

async fn show_policy(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let policy = state
        .store
        .policy(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no policy named {name:?}")))?;
    Ok(Json(serde_json::to_value(policy).unwrap_or(Value::Null)))
}

async fn delete_policy(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if !state
        .store
        .delete_policy(&name)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found(format!("no policy named {name:?}")));
    }
    Ok(Json(json!({"name": name, "deleted": true})))
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
) -> ApiResult<Json<Value>> {
    authorize(
        &state,
        &principal,
        "policies:Simulate",
        &format!("user/{}", body.user),
    )
    .await?;
    let user = find_user(&state, &body.user).await?;
    let mut policies = Vec::new();
    for record in state.store.policies_for_user(&user.id).await? {
        let policy = Policy::from_value(&record.document)
            .map_err(|e| ApiError::invalid(format!("stored policy {}: {e}", record.name)))?;
        policies.push(NamedPolicy::new(record.name, policy));
    }
    let mut request =
        Request::new(body.action.clone(), body.resource.clone()).with_principal(user.name.clone());
    if let Some(key) = &body.node {
        let node = state
            .store
            .node_by_id_or_name(key)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no node with id or name {key:?}")))?;
        if request.resource.is_empty() {
            request.resource = format!("node/{}", node.name);
        }
        request = request.with_node_tags(node.tags.clone());
    }
    for (key, value) in body.context {
        let values: Vec<String> = match value {
            Value::String(s) => vec![s],
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(ApiError::invalid(format!(
                        "context.{key}: values must be strings, got {other}"
                    ))),
                })
                .collect::<ApiResult<_>>()?,
            other => {
                return Err(ApiError::invalid(format!(
                    "context.{key}: expected a string or a list of strings, got {other}"
                )));
            }
        };
        request = request.with(key, values);
    }
    let decision = operon_policy::evaluate(&policies, &request);
    let disabled = user.disabled_at.is_some();
    Ok(Json(json!({
        "user": user.name,
        "action": request.action,
        "resource": request.resource,
        "context": request.context,
        "decision": if decision.is_allowed() && !disabled { "allowed" } else if matches!(decision, operon_policy::Decision::ExplicitDeny(_)) { "explicit_deny" } else { "implicit_deny" },
        "statement": decision.statement(),
        "explanation": if disabled { format!("user {} is disabled; policies would say: {}", user.name, decision.explain()) } else { decision.explain() },
        "policies": policies.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
    })))
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

async fn require_role(state: &AppState, name: &str) -> ApiResult<()> {
    match state.store.role(name).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(format!("no role named {name:?}"))),
    }
}

async fn require_policy(state: &AppState, name: &str) -> ApiResult<()> {
    match state.store.policy(name).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(format!("no policy named {name:?}"))),
    }
}

async fn create_role(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateRole>,
) -> ApiResult<Json<Value>> {
    authorize(
        &state,
        &principal,
        "roles:Create",
        &format!("role/{}", body.name),
    )
    .await?;
    valid_identity_name("role", &body.name)?;
    for policy in &body.policies {
        require_policy(&state, policy).await?;
    }
    state
        .store
        .create_role(&body.name, &body.description, now_millis())
        .await
        .map_err(store_error)?;
    for policy in &body.policies {
        state
            .store
            .set_role_policy(&body.name, policy, true)
            .await?;
    }
    principal.note("policies", body.policies.clone());
    show_role_value(&state, &body.name).await.map(Json)
}

async fn show_role_value(state: &AppState, name: &str) -> ApiResult<Value> {
    let role = state
        .store
        .role(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no role named {name:?}")))?;
    Ok(serde_json::to_value(role).unwrap_or(Value::Null))
}

async fn list_roles(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let roles = state.store.list_roles().await?;
    Ok(Json(serde_json::to_value(roles).unwrap_or(Value::Null)))
}

async fn show_role(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    show_role_value(&state, &name).await.map(Json)
}

async fn delete_role(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if !state.store.delete_role(&name).await? {
        return Err(ApiError::not_found(format!("no role named {name:?}")));
    }
    Ok(Json(json!({"name": name, "deleted": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyChange {
    #[serde(default)]
    attach: Vec<String>,
    #[serde(default)]
    detach: Vec<String>,
}

async fn change_role_policies(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(change): Json<PolicyChange>,
) -> ApiResult<Json<Value>> {
    require_role(&state, &name)
        .await
        .map_err(|_| ApiError::not_found(format!("no role named {name:?}")))?;
    for policy in &change.attach {
        require_policy(&state, policy).await?;
    }
    for policy in &change.attach {
        state.store.set_role_policy(&name, policy, true).await?;
    }
    for policy in &change.detach {
        state.store.set_role_policy(&name, policy, false).await?;
    }
    principal.note("attached", change.attach.clone());
    principal.note("detached", change.detach.clone());
    show_role_value(&state, &name).await.map(Json)
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
) -> ApiResult<Json<Value>> {
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        since: q.since,
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    };
    let records = state.store.list_audit(&filter).await?;
    Ok(Json(serde_json::to_value(records).unwrap_or(Value::Null)))
}

async fn verify_audit(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let report = state.audit.verify(&state.store).await?;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_actor_names_are_reserved_whatever_the_case() {
        for (name, word) in [
            ("admin", "admin"),
            ("Admin", "admin"),
            ("ANONYMOUS", "anonymous"),
            ("enrollment", "enrollment"),
            ("system", "system"),
            ("Root", "root"),
            ("rule", "rule"),
            ("rule-critical", "rule"),
            ("Execution.x-1", "execution"),
            ("schedule_nightly", "schedule"),
            ("association@a", "association"),
            ("window-1", "window"),
            ("alarm", "alarm"),
            ("role-ops", "role"),
            ("webhook.prom", "webhook"),
        ] {
            assert_eq!(reserved_word(name), Some(word), "{name}");
            let refused = valid_identity_name("user", name).unwrap_err();
            assert!(
                refused.message.contains(&format!("{word:?} is reserved")),
                "{name}: {}",
                refused.message
            );
        }
        for name in [
            "alice",
            "admins",
            "administrator",
            "admin@example.com",
            "rules",
            "roleplay",
            "ops-role",
            "my-rule",
            "windows",
        ] {
            assert_eq!(reserved_word(name), None, "{name}");
            assert!(valid_identity_name("user", name).is_ok(), "{name}");
        }
    }
}
