//! The HTTP API under `/v1/`: JSON in and out, bearer tokens on every route
//! except the health check and the agent endpoints (which carry their own
//! credentials).

use operon_store::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use operon_store::{AuditEntry, EnrollToken, Node};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::{authorize, authorize_node};
use crate::auth::{self, ENROLL_TOKEN_PREFIX};
use crate::documents::{self, RUN_SHELL_SCRIPT};
use crate::error::{ApiError, ApiResult};
use crate::refusals::Verdict;
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
        .route("/metrics", get(metrics))
        .merge(crate::commands::http::routes())
        .merge(crate::identity::routes())
        .merge(crate::workflows::api::routes())
        .merge(crate::events::http::protected())
        // Layers run last-added first: the token, then the catalogue's check.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::catalogue::authorize_route,
        ))
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
        .layer(axum::middleware::map_response(crate::error::json_errors))
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
            // Unknown callers are limited per address; known ones are always audited.
            if actor == ANONYMOUS {
                let source = request
                    .extensions()
                    .get::<ConnectInfo<crate::PeerAddr>>()
                    .map(|c| c.0.0.ip());
                if state.refusals.check(source, now_millis()) == Verdict::Suppress {
                    return too_many_refusals(&state);
                }
            }
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

/// The actor of refusals whose token names no one.
const ANONYMOUS: &str = "anonymous";

/// 429 for an address past its rate of unauthenticated refusals.
fn too_many_refusals(state: &AppState) -> Response {
    let mut response = ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "too many unauthenticated requests from this address; try again later",
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(state.refusals.retry_after_secs()),
    );
    response
}

/// Write one audit record per address that was answered 429 since the last
/// call: how many refusals, from when to when.
pub(crate) async fn record_flood_summaries(state: &AppState) {
    for summary in state.refusals.take_summaries(now_millis()) {
        let source = summary
            .source
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        let entry = AuditEntry {
            actor: ANONYMOUS.into(),
            action: "auth:Authenticate".into(),
            resource: format!("source/{source}"),
            outcome: "unauthenticated (rate limited)".into(),
            detail: serde_json::json!({
                "source": source,
                "count": summary.count,
                "first_at": summary.first_at,
                "last_at": summary.last_at,
                "reason": "missing or invalid API token",
            }),
        };
        if let Err(e) = state.audit.record(entry).await {
            tracing::error!(error = %e, "a flood summary could not be audited");
        }
    }
}

/// The principal behind a bearer token, or who tried and why they are refused.
async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Principal, (String, String)> {
    let anonymous = |reason: &str| (ANONYMOUS.to_string(), reason.to_string());
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
async fn metrics(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
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
    Json(body): Json<CreateEnrollToken>,
) -> ApiResult<Json<CreatedEnrollToken>> {
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
) -> ApiResult<Json<Vec<EnrollToken>>> {
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

async fn list_nodes(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<NodeView>>> {
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

async fn list_documents(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Value>>> {
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
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    let (version, content) =
        crate::commands::service::load_document(&state.store, &name, q.version).await?;
    Ok(Json(
        serde_json::json!({"name": name, "version": version, "content": content}),
    ))
}

#[cfg(test)]
mod flood_tests {
    use operon_store::prelude::*;

    use crate::refusals::RefusalRate;
    use crate::{ServerConfig, start};

    async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// A real server on loopback, in-process: past the rate, unknown callers
    /// get 429 and one summary record; known tokens still pass.
    #[tokio::test]
    async fn unauthenticated_floods_are_limited_per_address_and_summarised() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
        config.refusal_rate = RefusalRate {
            burst: 3,
            per_minute: 1,
        };
        let server = start(config).await.unwrap();
        let admin = server.new_admin_token.clone().unwrap();
        let url = format!("{}/v1/nodes", server.url());
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for i in 0..6 {
            let token = (i % 2 == 0).then_some("op_not-a-real-token");
            let response = get(&client, &url, token).await;
            statuses.push(response.status().as_u16());
            if response.status() == 429 {
                assert_eq!(response.headers()["retry-after"], "60");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "TooManyRequests");
            }
        }
        assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
        assert_eq!(get(&client, &url, Some(&admin)).await.status(), 200);

        let state = server.state();
        super::record_flood_summaries(&state).await;
        let mut records = Vec::new();
        for _ in 0..100 {
            records = state
                .store
                .list_audit(&operon_store::AuditFilter {
                    actor: Some("anonymous".into()),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap();
            if records.len() == 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(
            outcomes,
            [
                "unauthenticated",
                "unauthenticated",
                "unauthenticated",
                "unauthenticated (rate limited)"
            ]
        );
        assert_eq!(records[3].detail["count"], 3);
        assert_eq!(records[3].detail["source"], "127.0.0.1");
        // Nothing more to summarise until more refusals come.
        super::record_flood_summaries(&state).await;
        assert!(
            state
                .refusals
                .take_summaries(crate::now_millis())
                .is_empty()
        );
    }
}

#[cfg(test)]
mod rejection_tests {
    use serde_json::Value;

    /// Errors raised by the framework before a handler runs are the
    /// documented JSON error body too.
    #[tokio::test]
    async fn framework_rejections_are_json_error_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
        let server = crate::start(config).await.unwrap();
        let token = server.new_admin_token.clone().unwrap();
        let client = reqwest::Client::new();
        let url = |path: &str| format!("{}{path}", server.url());
        let cases = [
            (
                client.post(url("/v1/commands")).body("{}"),
                415,
                "UnsupportedMediaType",
            ),
            (
                client
                    .post(url("/v1/commands"))
                    .header("content-type", "application/json")
                    .body("{not json"),
                400,
                "ValidationError",
            ),
            (
                client
                    .post(url("/v1/workflows"))
                    .header("content-type", "application/json")
                    .body(r#"{"name": "x"}"#),
                422,
                "ValidationError",
            ),
            (
                client.get(url("/v1/commands?limit=abc")),
                400,
                "ValidationError",
            ),
            (client.delete(url("/v1/commands")), 405, "MethodNotAllowed"),
        ];
        for (request, status, code) in cases {
            let response = request.bearer_auth(&token).send().await.unwrap();
            assert_eq!(response.status().as_u16(), status);
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(content_type, "application/json", "{status}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(
                !body["error"]["message"].as_str().unwrap().is_empty(),
                "{body}"
            );
        }
    }
}
