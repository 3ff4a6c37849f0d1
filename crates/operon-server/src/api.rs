//! The HTTP API under `/v1/`: JSON in and out, bearer tokens on every route
//! except the health check and the agent endpoints (which carry their own
//! credentials).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::Stream;
use operon_proto::{InvocationStatus, ServerMessage};
use operon_store::{AuditEntry, Command, EnrollToken, Invocation, Node, RunTemplate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::access::{authorize, authorize_node};
use crate::auth::{self, ENROLL_TOKEN_PREFIX};
use crate::documents::{self, RUN_SHELL_SCRIPT};
use crate::error::{ApiError, ApiResult};
use crate::live::LiveEvent;
use crate::rate::Limit;
use crate::{AppState, agent_ws, now_millis};

pub use crate::access::Principal;

pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route(
            "/v1/enroll-tokens",
            post(create_enroll_token).get(list_enroll_tokens),
        )
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{key}", get(show_node))
        .route("/v1/nodes/{key}/tags", post(tag_node))
        .route("/v1/nodes/{key}/revoke", post(revoke_node))
        .route(
            "/v1/nodes/{key}/rotate-credential",
            post(crate::rotation::rotate_credential),
        )
        .route("/v1/documents", post(create_document).get(list_documents))
        .route("/v1/documents/{name}", get(show_document))
        .route("/v1/commands", post(create_command).get(list_commands))
        .route("/v1/commands/{id}", get(show_command))
        .route("/v1/commands/{id}/cancel", post(cancel_command))
        .route("/v1/commands/{id}/stream", get(stream_command))
        .route("/metrics", get(metrics))
        .merge(crate::identity::routes())
        .merge(crate::workflows::api::routes())
        .merge(crate::events::http::protected())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route(operon_proto::AGENT_ENROLL_PATH, post(agent_ws::enroll))
        .route(operon_proto::AGENT_CONNECT_PATH, get(agent_ws::connect))
        .merge(crate::events::http::public())
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(state)
}

/// Authenticate the bearer token, attach the [`Principal`], run the handler,
/// then write the audit record of a mutating call. Refusals (401 here, 403 in
/// handlers) are audited too.
async fn require_token(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let principal = match authenticate(&state, request.headers()).await {
        Ok(principal) => principal,
        Err((actor, reason)) => {
            let entry = AuditEntry {
                actor,
                action: "auth:Authenticate".into(),
                resource: path.clone(),
                outcome: "unauthenticated".into(),
                detail: serde_json::json!({"method": method.as_str(), "path": path, "reason": reason}),
            };
            if let Err(e) = state.audit.record(entry).await {
                tracing::error!(error = %e, "a refused request could not be audited");
            }
            return ApiError::unauthorized(reason).into_response();
        }
    };
    request.extensions_mut().insert(principal.clone());
    let response = next.run(request).await;
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if mutating {
        audit_call(&state, &principal, &method, &path, response.status()).await;
    }
    response
}

/// The principal behind a bearer token, or who tried and why they are refused.
async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Principal, (String, String)> {
    let anonymous = |reason: &str| ("anonymous".to_string(), reason.to_string());
    let Some(token) = auth::bearer(headers) else {
        return Err(anonymous(
            "missing bearer token (Authorization: Bearer ...)",
        ));
    };
    let record = match state
        .store
        .api_token_by_hash(&auth::hash_secret(token))
        .await
    {
        Ok(Some(record)) => record,
        Ok(None) => return Err(anonymous("invalid API token")),
        Err(e) => {
            tracing::error!(error = %e, "cannot look up an API token");
            return Err(anonymous(
                "the token could not be checked; see the server log",
            ));
        }
    };
    let who = format!("token {} ({})", record.id, record.name);
    if record.revoked_at.is_some() {
        return Err((who, "API token has been revoked".into()));
    }
    if record.expires_at.is_some_and(|at| at <= now_millis()) {
        return Err((who, "API token has expired".into()));
    }
    let Some(user_id) = record.user_id.clone() else {
        return Ok(Principal::new(
            "admin".into(),
            None,
            record.id,
            None,
            vec![],
        ));
    };
    let failed = |e: operon_store::StoreError| {
        tracing::error!(error = %e, "cannot load a user");
        (
            who.clone(),
            "the token could not be checked; see the server log".to_string(),
        )
    };
    let user = match state.store.user(&user_id).await.map_err(failed)? {
        Some(user) if user.disabled_at.is_none() => user,
        Some(user) => return Err((user.name, "user is disabled".into())),
        None => return Err((who, "the token's user no longer exists".into())),
    };
    let policies = state
        .store
        .policies_for_user(&user.id)
        .await
        .map_err(failed)?
        .into_iter()
        .filter_map(|p| match operon_policy::Policy::from_value(&p.document) {
            Ok(policy) => Some(operon_policy::NamedPolicy::new(p.name, policy)),
            Err(e) => {
                tracing::error!(policy = %p.name, error = %e, "a stored policy no longer parses; it is ignored");
                None
            }
        })
        .collect();
    Ok(Principal::new(
        user.name,
        Some(user.id),
        record.id,
        record.scopes,
        policies,
    ))
}

/// The audit record of a mutating call: the checks it passed, the handler's
/// notes and how it ended. Refused calls were recorded when refused.
async fn audit_call(
    state: &AppState,
    principal: &Principal,
    method: &Method,
    path: &str,
    status: axum::http::StatusCode,
) {
    let (allowed, denied, notes) = match principal.trail.lock() {
        Ok(trail) if trail.recorded => return,
        Ok(mut trail) => (
            std::mem::take(&mut trail.allowed),
            trail.denied,
            std::mem::take(&mut trail.notes),
        ),
        Err(_) => return,
    };
    if denied && allowed.is_empty() {
        return;
    }
    let (action, resource) = allowed
        .first()
        .cloned()
        .unwrap_or_else(|| (format!("{method} {path}"), path.to_string()));
    let outcome = match (status.is_success(), denied) {
        (true, false) => "allowed".to_string(),
        (true, true) => "partially denied".to_string(),
        (false, _) => format!("failed ({})", status.as_u16()),
    };
    let mut detail = notes;
    detail.insert("method".into(), method.as_str().into());
    detail.insert("path".into(), path.into());
    detail.insert("status".into(), status.as_u16().into());
    if allowed.len() > 1 {
        let more: Vec<Value> = allowed[1..]
            .iter()
            .map(|(a, r)| serde_json::json!({"action": a, "resource": r}))
            .collect();
        detail.insert("also".into(), Value::Array(more));
    }
    let entry = AuditEntry {
        actor: principal.name.clone(),
        action,
        resource,
        outcome,
        detail: Value::Object(detail),
    };
    if let Err(e) = state.audit.record(entry).await {
        tracing::error!(error = %e, "a call could not be audited");
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "agents_connected": state.hub.connected_count(),
        "tls_fingerprint": state.tls_fingerprint,
    }))
}

/// Prometheus text exposition (format 0.0.4) of the fleet and command state.
/// Authenticated like every other call: scrapers send a bearer token.
async fn metrics(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Response> {
    authorize(&state, &principal, "metrics:Get", "metrics").await?;
    use std::fmt::Write;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, i64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let connected = state.hub.connected_count() as i64;
    gauge(
        "operon_agents_connected",
        "Agents with a live session.",
        &[(String::new(), connected)],
    );
    let mut nodes: BTreeMap<&str, i64> =
        BTreeMap::from([("online", 0), ("offline", 0), ("revoked", 0)]);
    for node in state.store.list_nodes().await? {
        *nodes.entry(node_view(&state, node).status).or_default() += 1;
    }
    let nodes: Vec<(String, i64)> = nodes
        .into_iter()
        .map(|(status, n)| (format!("{{status=\"{status}\"}}"), n))
        .collect();
    gauge("operon_nodes", "Enrolled nodes by status.", &nodes);
    for (name, help, table) in [
        (
            "operon_commands",
            "Commands by status.",
            operon_store::StatusTable::Commands,
        ),
        (
            "operon_invocations",
            "Command invocations (one per node) by status.",
            operon_store::StatusTable::Invocations,
        ),
    ] {
        let samples: Vec<(String, i64)> = state
            .store
            .count_by_status(table)
            .await?
            .into_iter()
            .map(|(status, n)| (format!("{{status=\"{status}\"}}"), n))
            .collect();
        gauge(name, help, &samples);
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response())
}

/// The OpenAPI document, kept by hand beside this file; a test checks that
/// every path it lists is served.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

// ----- Enrollment tokens -----------------------------------------------------

#[derive(Deserialize)]
struct CreateEnrollToken {
    #[serde(default)]
    tags: BTreeMap<String, String>,
    uses: Option<i64>,
    expires_in_secs: Option<i64>,
}

#[derive(Serialize)]
struct CreatedEnrollToken {
    token: String,
    /// The fingerprint agents pin (`--server-fingerprint`), when serving TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_fingerprint: Option<String>,
    #[serde(flatten)]
    record: EnrollToken,
}

async fn create_enroll_token(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateEnrollToken>,
) -> ApiResult<Json<CreatedEnrollToken>> {
    authorize(&state, &principal, "enrollTokens:Create", "enroll-token/*").await?;
    let uses = body.uses.unwrap_or(1);
    let ttl = body.expires_in_secs.unwrap_or(24 * 3600);
    if uses < 1 {
        return Err(ApiError::invalid("uses must be at least 1"));
    }
    if ttl < 1 {
        return Err(ApiError::invalid("expires_in_secs must be at least 1"));
    }
    validate_tags(&body.tags)?;
    let (token, record) = state.new_enroll_token(body.tags, uses, ttl).await?;
    Ok(Json(CreatedEnrollToken {
        token,
        server_fingerprint: state.tls_fingerprint.clone(),
        record,
    }))
}

async fn list_enroll_tokens(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<EnrollToken>>> {
    authorize(&state, &principal, "enrollTokens:List", "enroll-token/*").await?;
    Ok(Json(state.store.list_enroll_tokens().await?))
}

pub(crate) fn validate_tags(tags: &BTreeMap<String, String>) -> ApiResult<()> {
    for key in tags.keys() {
        if key.is_empty() || key.len() > 128 || key.contains('=') {
            return Err(ApiError::invalid(format!(
                "invalid tag key {key:?}: 1 to 128 characters, no '='"
            )));
        }
    }
    Ok(())
}

impl AppState {
    pub(crate) async fn new_enroll_token(
        &self,
        tags: BTreeMap<String, String>,
        uses: i64,
        ttl_secs: i64,
    ) -> ApiResult<(String, EnrollToken)> {
        let token = auth::new_secret(ENROLL_TOKEN_PREFIX);
        let now = now_millis();
        let record = EnrollToken {
            id: auth::new_id("et-"),
            token_hash: auth::hash_secret(&token),
            tags,
            uses_allowed: uses,
            uses: 0,
            expires_at: now + ttl_secs * 1000,
            created_at: now,
        };
        self.store.insert_enroll_token(&record).await?;
        Ok((token, record))
    }
}

// ----- Nodes -------------------------------------------------------------------

#[derive(Serialize)]
struct NodeView {
    #[serde(flatten)]
    node: Node,
    status: &'static str,
    online: bool,
}

fn node_view(state: &AppState, mut node: Node) -> NodeView {
    if let Some(seen) = state.hub.last_heartbeat_millis(&node.id) {
        node.last_seen = Some(node.last_seen.map_or(seen, |stored| stored.max(seen)));
    }
    let online = node.revoked_at.is_none() && state.hub.is_online(&node.id);
    let status = match (node.revoked_at, online) {
        (Some(_), _) => "revoked",
        (None, true) => "online",
        (None, false) => "offline",
    };
    NodeView {
        node,
        status,
        online,
    }
}

async fn find_node(state: &AppState, key: &str) -> ApiResult<Node> {
    state
        .store
        .node_by_id_or_name(key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no node with id or name {key:?}")))
}

async fn list_nodes(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<NodeView>>> {
    authorize(&state, &principal, "nodes:List", "node/*").await?;
    let nodes = state.store.list_nodes().await?;
    Ok(Json(
        nodes.into_iter().map(|n| node_view(&state, n)).collect(),
    ))
}

async fn show_node(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(key): Path<String>,
) -> ApiResult<Json<NodeView>> {
    let node = find_node(&state, &key).await?;
    authorize_node(&state, &principal, "nodes:Get", &node).await?;
    Ok(Json(node_view(&state, node)))
}

#[derive(Deserialize)]
struct TagChange {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn tag_node(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(key): Path<String>,
    Json(change): Json<TagChange>,
) -> ApiResult<Json<NodeView>> {
    validate_tags(&change.set)?;
    let mut node = find_node(&state, &key).await?;
    authorize_node(&state, &principal, "nodes:Tag", &node).await?;
    for key in &change.remove {
        node.tags.remove(key);
    }
    node.tags.extend(change.set);
    // Tags decide access: the node must stay within reach after the change
    // too, or retagging would move nodes into someone's scope.
    authorize_node(&state, &principal, "nodes:Tag", &node).await?;
    principal.note(
        "tags",
        serde_json::to_value(&node.tags).unwrap_or(Value::Null),
    );
    state.store.set_node_tags(&node.id, &node.tags).await?;
    Ok(Json(node_view(&state, node)))
}

async fn revoke_node(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(key): Path<String>,
) -> ApiResult<Json<NodeView>> {
    let node = find_node(&state, &key).await?;
    authorize_node(&state, &principal, "nodes:Revoke", &node).await?;
    state.store.revoke_node(&node.id, now_millis()).await?;
    state.hub.disconnect(&node.id, "node revoked");
    tracing::info!(node_id = %node.id, "node revoked");
    let node = find_node(&state, &node.id).await?;
    state.wake.notify_one();
    Ok(Json(node_view(&state, node)))
}

// ----- Documents -----------------------------------------------------------------

#[derive(Deserialize)]
struct CreateDocument {
    name: String,
    content: Value,
}

async fn create_document(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateDocument>,
) -> ApiResult<Json<Value>> {
    authorize(
        &state,
        &principal,
        "documents:Create",
        &format!("document/{}", body.name),
    )
    .await?;
    let valid_name = !body.name.is_empty()
        && body.name.len() <= 128
        && body
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !valid_name {
        return Err(ApiError::invalid(format!(
            "invalid document name {:?}: 1 to 128 of letters, digits, '_', '-', '.'",
            body.name
        )));
    }
    if body.name == RUN_SHELL_SCRIPT {
        return Err(ApiError::conflict(format!(
            "{RUN_SHELL_SCRIPT} is built in and cannot be replaced"
        )));
    }
    documents::parse_document(&body.content)
        .map_err(|e| ApiError::invalid(format!("invalid document: {e}")))?;
    let version = state
        .store
        .put_document(&body.name, &body.content, now_millis())
        .await?;
    Ok(Json(
        serde_json::json!({"name": body.name, "version": version}),
    ))
}

async fn list_documents(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<Value>>> {
    authorize(&state, &principal, "documents:List", "document/*").await?;
    let mut out =
        vec![serde_json::json!({"name": RUN_SHELL_SCRIPT, "version": 1, "builtin": true})];
    for doc in state.store.list_documents().await? {
        out.push(serde_json::json!({"name": doc.name, "version": doc.version, "created_at": doc.created_at}));
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<i64>,
}

async fn show_document(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    authorize(
        &state,
        &principal,
        "documents:Get",
        &format!("document/{name}"),
    )
    .await?;
    let (version, content) = load_document(&state, &name, q.version).await?;
    Ok(Json(
        serde_json::json!({"name": name, "version": version, "content": content}),
    ))
}

pub(crate) async fn load_document(
    state: &AppState,
    name: &str,
    version: Option<i64>,
) -> ApiResult<(i64, Value)> {
    if name == RUN_SHELL_SCRIPT {
        return Ok((1, documents::run_shell_script_document()));
    }
    let doc = state
        .store
        .document(name, version)
        .await?
        .ok_or_else(|| match version {
            Some(v) => ApiError::not_found(format!("document {name:?} has no version {v}")),
            None => ApiError::not_found(format!("no document named {name:?}")),
        })?;
    Ok((doc.version, doc.content))
}

// ----- Commands -------------------------------------------------------------------

/// Maximum bytes of stdout and of stderr stored per node.
pub const DEFAULT_OUTPUT_CAP: usize = 256 * 1024;

#[derive(Default, Deserialize, Serialize)]
pub struct CreateCommand {
    #[serde(default)]
    pub(crate) document: Option<String>,
    #[serde(default)]
    pub(crate) document_version: Option<i64>,
    #[serde(default)]
    pub(crate) parameters: Map<String, Value>,
    #[serde(default)]
    pub(crate) node_ids: Vec<String>,
    /// `tag:KEY=VALUE` filters (all must hold) or `all`.
    #[serde(default)]
    pub(crate) targets: Vec<String>,
    pub(crate) max_concurrency: Option<String>,
    pub(crate) max_errors: Option<String>,
    pub(crate) timeout_secs: Option<i64>,
    pub(crate) delivery_timeout_secs: Option<i64>,
    pub(crate) cwd: Option<String>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) user: Option<String>,
}

#[derive(Serialize)]
struct CommandView {
    #[serde(flatten)]
    command: Command,
    target_count: usize,
    completed_count: usize,
    error_count: usize,
    invocations: Vec<Invocation>,
}

async fn command_view(state: &AppState, command: Command) -> ApiResult<CommandView> {
    let invocations = state.store.invocations(&command.id).await?;
    Ok(CommandView {
        target_count: invocations.len(),
        completed_count: invocations.iter().filter(|i| i.status.is_final()).count(),
        error_count: invocations
            .iter()
            .filter(|i| i.status.is_final() && i.status.is_error())
            .count(),
        command,
        invocations,
    })
}

async fn create_command(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateCommand>,
) -> ApiResult<Json<Value>> {
    let candidates = resolve_targets(&state, &body.node_ids, &body.targets).await?;
    let (targets, refused) = permitted_targets(&state, &principal, candidates).await?;
    let command = create_command_on(
        &state,
        body,
        principal.name.clone(),
        auth::new_id("c-"),
        targets,
        &refused,
    )
    .await?;
    principal.note("command_id", command.id.clone());
    let invocations = state.store.invocations(&command.id).await?;
    let names: Vec<String> = invocations.iter().map(|i| i.node_name.clone()).collect();
    principal.note("targets", names);
    if !refused.is_empty() {
        principal.note(
            "refused",
            serde_json::to_value(&refused).unwrap_or(Value::Null),
        );
    }
    let view = command_view(&state, command).await?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

/// Validate, render and persist a command with the given id (rule targets
/// pass an id derived from the delivery, so a redelivery creates nothing new).
/// It acts with the server's authority: who may create the rule is checked
/// when the rule is put.
pub(crate) async fn create_command_as(
    state: &AppState,
    body: CreateCommand,
    requested_by: String,
    id: String,
) -> ApiResult<Command> {
    let targets = resolve_targets(state, &body.node_ids, &body.targets).await?;
    create_command_on(state, body, requested_by, id, targets, &[]).await
}

/// Render and persist a command on these (already resolved and permitted)
/// nodes; `refused` are kept in its request for everyone to see.
async fn create_command_on(
    state: &AppState,
    body: CreateCommand,
    requested_by: String,
    id: String,
    targets: Vec<Node>,
    refused: &[RefusedTarget],
) -> ApiResult<Command> {
    let max_concurrency = body.max_concurrency.clone().unwrap_or_else(|| "50".into());
    let max_errors = body.max_errors.clone().unwrap_or_else(|| "0".into());
    Limit::parse(&max_concurrency)
        .map_err(|e| ApiError::invalid(format!("max_concurrency: {e}")))?;
    Limit::parse(&max_errors).map_err(|e| ApiError::invalid(format!("max_errors: {e}")))?;
    let timeout_secs = positive("timeout_secs", body.timeout_secs, 3600)?;
    let delivery_timeout_secs =
        positive("delivery_timeout_secs", body.delivery_timeout_secs, 3600)?;
    let document_name = body
        .document
        .clone()
        .unwrap_or_else(|| RUN_SHELL_SCRIPT.into());
    let (version, content) = load_document(state, &document_name, body.document_version).await?;
    let document = documents::parse_document(&content)
        .map_err(|e| ApiError::invalid(format!("document {document_name}: {e}")))?;
    let (parameters, steps) = document
        .render(&body.parameters)
        .map_err(|e| ApiError::invalid(format!("parameters for {document_name}: {e}")))?;
    let mut request = serde_json::to_value(&body).unwrap_or(Value::Null);
    if !refused.is_empty()
        && let Some(map) = request.as_object_mut()
    {
        map.insert(
            "refused".into(),
            serde_json::to_value(refused).unwrap_or(Value::Null),
        );
    }
    let command = Command {
        id,
        document_name,
        document_version: version,
        parameters: Value::Object(parameters),
        request,
        run_template: RunTemplate {
            steps,
            cwd: body.cwd.clone(),
            env: body.env.clone(),
            user: body.user.clone(),
            output_cap_bytes: state.config.output_cap_bytes,
        },
        max_concurrency,
        max_errors,
        timeout_secs,
        delivery_timeout_secs,
        status: InvocationStatus::Pending,
        created_at: now_millis(),
        finished_at: None,
        cancel_requested: false,
        requested_by,
    };
    let pairs: Vec<(String, String)> = targets
        .iter()
        .map(|n| (n.id.clone(), n.name.clone()))
        .collect();
    state.store.insert_command(&command, &pairs).await?;
    state.wake.notify_one();
    tracing::info!(command_id = %command.id, targets = pairs.len(), by = %command.requested_by, "command created");
    Ok(command)
}

/// A node a command was not run on, and why.
#[derive(Serialize)]
struct RefusedTarget {
    node: String,
    reason: String,
}

/// Split the resolved targets into the nodes the principal may run commands
/// on and the refused ones. All refused is a 403 (and audited); some refused
/// is noted in the command and its audit record.
async fn permitted_targets(
    state: &AppState,
    principal: &Principal,
    candidates: Vec<Node>,
) -> ApiResult<(Vec<Node>, Vec<RefusedTarget>)> {
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for node in candidates {
        match principal.decide(&crate::access::node_request(
            principal,
            "commands:Run",
            &node,
        )) {
            Ok(()) => allowed.push(node),
            Err(reason) => refused.push(RefusedTarget {
                node: node.name,
                reason,
            }),
        }
    }
    if !refused.is_empty() {
        let names: Vec<&str> = refused.iter().map(|r| r.node.as_str()).collect();
        let resource = format!("node/{}", names.join(","));
        let reason = refused[0].reason.clone();
        crate::access::record_denial(state, principal, "commands:Run", &resource, &reason).await;
        if allowed.is_empty() {
            return Err(ApiError::forbidden(format!(
                "{} may not commands:Run on {}: {reason}",
                principal.name,
                names.join(", ")
            )));
        }
    }
    for node in &allowed {
        principal.allowed_action("commands:Run", &format!("node/{}", node.name));
    }
    Ok((allowed, refused))
}

fn positive(field: &str, value: Option<i64>, default: i64) -> ApiResult<i64> {
    match value {
        None => Ok(default),
        Some(v) if v >= 1 => Ok(v),
        Some(v) => Err(ApiError::invalid(format!(
            "{field} must be at least 1, got {v}"
        ))),
    }
}

/// Nodes named by id/name, plus nodes matching every tag filter.
async fn resolve_targets(
    state: &AppState,
    node_keys: &[String],
    filters: &[String],
) -> ApiResult<Vec<Node>> {
    if node_keys.is_empty() && filters.is_empty() {
        return Err(ApiError::invalid(
            "no targets: give node ids (--node) or --targets tag:KEY=VALUE|all",
        ));
    }
    let mut chosen: Vec<Node> = Vec::new();
    for key in node_keys {
        let node = find_node(state, key).await?;
        if node.revoked_at.is_some() {
            return Err(ApiError::invalid(format!("node {key:?} is revoked")));
        }
        if !chosen.iter().any(|n| n.id == node.id) {
            chosen.push(node);
        }
    }
    if !filters.is_empty() {
        let wanted = parse_filters(filters)?;
        for node in state.store.list_nodes().await? {
            let matches = wanted
                .as_ref()
                .is_none_or(|w| w.iter().all(|(k, v)| node.tags.get(k) == Some(v)));
            if node.revoked_at.is_none() && matches && !chosen.iter().any(|n| n.id == node.id) {
                chosen.push(node);
            }
        }
    }
    if chosen.is_empty() {
        return Err(ApiError::invalid(format!(
            "no nodes match the targets {}",
            filters.join(" ")
        )));
    }
    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(chosen)
}

/// `None` means all nodes.
fn parse_filters(filters: &[String]) -> ApiResult<Option<Vec<(String, String)>>> {
    if filters.iter().any(|f| f == "all") {
        if filters.len() > 1 {
            return Err(ApiError::invalid(
                "--targets all cannot be combined with tag filters",
            ));
        }
        return Ok(None);
    }
    filters
        .iter()
        .map(|f| {
            f.strip_prefix("tag:")
                .and_then(|kv| kv.split_once('='))
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "invalid target {f:?}: expected tag:KEY=VALUE or all"
                    ))
                })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list_commands(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    authorize(&state, &principal, "commands:List", "command/*").await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let mut out = Vec::new();
    for command in state.store.list_commands(limit).await? {
        let mut view =
            serde_json::to_value(command_view(&state, command).await?).unwrap_or(Value::Null);
        if let Some(map) = view.as_object_mut() {
            map.remove("invocations");
        }
        out.push(view);
    }
    Ok(Json(out))
}

async fn find_command(state: &AppState, id: &str) -> ApiResult<Command> {
    state
        .store
        .command(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no command with id {id:?}")))
}

async fn show_command(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    authorize(&state, &principal, "commands:Get", &format!("command/{id}")).await?;
    let command = find_command(&state, &id).await?;
    Ok(Json(
        serde_json::to_value(command_view(&state, command).await?).unwrap_or(Value::Null),
    ))
}

async fn cancel_command(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    authorize(
        &state,
        &principal,
        "commands:Cancel",
        &format!("command/{id}"),
    )
    .await?;
    let command = find_command(&state, &id).await?;
    if !state.store.request_cancel(&id).await? {
        return Err(ApiError::conflict(format!(
            "command {id} already finished with status {}",
            command.status
        )));
    }
    for invocation in state.store.invocations(&id).await? {
        if invocation.status == InvocationStatus::InProgress {
            let message = ServerMessage::Cancel {
                invocation_id: invocation.invocation_id(),
            };
            state.hub.send(&invocation.node_id, message);
        }
    }
    state.wake.notify_one();
    Ok(Json(
        serde_json::json!({"id": id, "cancel_requested": true}),
    ))
}

/// Server-sent events: the backlog, then live events, until the command is done.
async fn stream_command(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    authorize(&state, &principal, "commands:Get", &format!("command/{id}")).await?;
    let command = find_command(&state, &id).await?;
    let (backlog, receiver) = state.live.subscribe(&id);
    let already_done = command.status.is_final().then_some(command.status);
    let events = futures_util::stream::unfold(
        (backlog.into_iter(), receiver, already_done, false),
        |(mut backlog, mut receiver, already_done, finished)| async move {
            if finished {
                return None;
            }
            let event = if let Some(status) = already_done {
                LiveEvent::Done { status }
            } else if let Some(event) = backlog.next() {
                event
            } else {
                loop {
                    match receiver.recv().await {
                        Ok(event) => break event,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            };
            let done = matches!(event, LiveEvent::Done { .. });
            let sse = Event::default()
                .json_data(&event)
                .unwrap_or_else(|_| Event::default());
            Some((Ok(sse), (backlog, receiver, None, done)))
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}
