//! The HTTP API under `/v1/`: JSON in and out, bearer tokens on every route
//! except the health check and the agent endpoints (which carry their own
//! credentials).

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use operon_store::AuditEntry;
use serde_json::Value;

use crate::auth;
use crate::error::ApiError;
use crate::refusals::Verdict;
use crate::{AppState, now_millis};

pub use crate::access::Principal;

pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .merge(crate::fleet::http::routes())
        .merge(crate::documents::http::routes())
        .merge(crate::commands::http::routes())
        .merge(crate::identity::routes())
        .merge(crate::workflows::api::routes())
        .merge(crate::events::http::protected())
        .merge(crate::params::http::routes())
        .merge(crate::associations::http::routes())
        .merge(crate::alarms::http::routes())
        .merge(crate::heal::http::routes())
        .merge(crate::monitors::http::routes())
        .merge(crate::inventory::http::routes())
        .merge(crate::metrics::http::routes())
        .merge(crate::logs::http::routes())
        .merge(crate::sessions::http::routes())
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
        // The SSM JSON 1.1 protocol (AWS CLI and SDKs), told apart by its
        // X-Amz-Target header; it authenticates with SigV4 itself.
        .route("/", post(crate::params::aws::handle))
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route(
            operon_proto::AGENT_ENROLL_PATH,
            post(crate::fleet::agent_ws::enroll),
        )
        .route(
            operon_proto::AGENT_CONNECT_PATH,
            get(crate::fleet::agent_ws::connect),
        )
        .merge(crate::events::http::public())
        .merge(protected)
        // The web console: pages at `/` (GET only there; `POST /` is SSM's).
        .merge(crate::console::routes(state.clone()))
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
    let audited_read = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .and_then(|m| crate::catalogue::find(&method, m.as_str()))
        .is_some_and(|route| route.audited_read);
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
    if mutating || audited_read {
        audit_call(&state, &principal, &method, &path, response.status()).await;
    }
    response
}

/// The actor of refusals whose token names no one.
pub(crate) const ANONYMOUS: &str = "anonymous";

/// 429 for an address past its rate of unauthenticated refusals.
pub(crate) fn too_many_refusals(state: &AppState) -> Response {
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
                "reason": "missing or invalid API token or webhook signature",
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
    let Some(token) = auth::bearer(headers) else {
        return Err((
            ANONYMOUS.to_string(),
            "missing bearer token (Authorization: Bearer ...)".to_string(),
        ));
    };
    authenticate_token(state, token).await
}

/// The principal behind an API token, or who tried and why they are
/// refused: the one check of a token, for the API's bearer header and the
/// console's sessions alike (revoked, expired, disabled all refuse at once).
pub(crate) async fn authenticate_token(
    state: &AppState,
    token: &str,
) -> Result<Principal, (String, String)> {
    let anonymous = |reason: &str| (ANONYMOUS.to_string(), reason.to_string());
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
    user_principal(state, user, record.id, record.scopes)
        .await
        .map_err(failed)
}

/// The principal of an enabled user calling with credential `credential_id`
/// (an API token's id, or an access key's): the user's policies now.
pub(crate) async fn user_principal(
    state: &AppState,
    user: operon_store::User,
    credential_id: String,
    scopes: Option<Vec<String>>,
) -> Result<Principal, operon_store::StoreError> {
    let policies = crate::runas::parse_policies(state.store.policies_for_user(&user.id).await?);
    Ok(Principal::new(
        user.name,
        Some(user.id),
        credential_id,
        scopes,
        policies,
    ))
}

/// The audit record of a mutating call: the checks it passed, the handler's
/// notes and how it ended. Refused calls were recorded when refused.
pub(crate) async fn audit_call(
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
    // Which credential made the call: a user's tokens are told apart.
    detail.insert("token".into(), principal.token_id.clone().into());
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

async fn health(State(state): State<Arc<AppState>>) -> Json<operon_api::fleet::Health> {
    Json(operon_api::fleet::Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        agents_connected: state.hub.connected_count() as u64,
        tls_fingerprint: state.tls_fingerprint.clone(),
    })
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::text(),
    )
        .into_response()
}

#[cfg(test)]
mod flood_tests {

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
