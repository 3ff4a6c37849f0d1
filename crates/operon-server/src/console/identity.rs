//! Identity and audit in the console: users, tokens (create, shown once;
//! revoke), roles, policies with the simulator, and the audit trail with
//! its chain check.
//!
//! Every page calls `IdentityService` with the signed-in principal. Pages
//! whose API twin is authorized by the action catalogue (`GET /v1/users`,
//! `/v1/roles`, `/v1/policies`, `/v1/audit`, `POST /v1/audit/verify`) go
//! through [`gate`]; the others (tokens, simulator) are authorized by the
//! service itself, as their API handlers are. A new token's secret is in
//! the answer to its creating POST only (never cached, never stored in
//! clear), so no later page can show it again.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use operon_store::AuditFilter;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::pages::time_text;
use super::session::{CsrfForm, SignedIn, check_csrf};
use super::{Chrome, audited, gate, render, service_error_page, status_of};
use crate::AppState;
use crate::identity::service::{NewToken, Simulate, TokenView};
use crate::service::ErrorKind;

/// Audit records per page.
const AUDIT_PAGE: usize = 100;
/// The furthest back the audit pages go (the service's own limit).
const AUDIT_MAX: usize = 10_000;

fn no_params() -> HashMap<String, String> {
    HashMap::new()
}

// ----- Users

struct UserRow {
    name: String,
    kind: String,
    status: &'static str,
    roles: String,
    created: String,
}

#[derive(askama::Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    chrome: Chrome,
    rows: Vec<UserRow>,
}

/// `GET /users`: allowed as `GET /v1/users` is.
pub(super) async fn users(State(state): State<Arc<AppState>>, signed_in: SignedIn) -> Response {
    let chrome = signed_in.chrome("Users", "/users");
    let listed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/users",
            &no_params(),
        )
        .await?;
        state.identity().list_users().await
    };
    match listed.await {
        Ok(views) => {
            let rows = views
                .into_iter()
                .map(|v| UserRow {
                    kind: v.user.kind.clone(),
                    status: v.status,
                    roles: v.roles.join(", "),
                    created: time_text(v.user.created_at),
                    name: v.user.name,
                })
                .collect();
            render(&UsersPage { chrome, rows })
        }
        Err(e) => service_error_page(chrome, e),
    }
}

// ----- Tokens

struct TokenRow {
    id: String,
    name: String,
    user: String,
    scopes: String,
    created: String,
    expires: String,
    status: &'static str,
    revocable: bool,
}

impl TokenRow {
    fn new(view: TokenView) -> TokenRow {
        TokenRow {
            scopes: view
                .scopes
                .map_or_else(|| "all".to_string(), |s| s.join(" ")),
            created: time_text(view.created_at),
            expires: view.expires_at.map_or_else(|| "never".into(), time_text),
            revocable: view.revoked_at.is_none() && view.user != "(admin)",
            status: view.status,
            id: view.id,
            name: view.name,
            user: view.user,
        }
    }
}

/// The create form as the browser sends it.
#[derive(Deserialize, Default)]
pub(super) struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// The owner; the signed-in user when empty.
    #[serde(default)]
    user: String,
    /// Action patterns separated by spaces or commas; all actions when empty.
    #[serde(default)]
    scopes: String,
    /// Seconds until it expires; never when empty.
    #[serde(default)]
    expires_in_secs: String,
}

#[derive(askama::Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    chrome: Chrome,
    rows: Vec<TokenRow>,
    form: TokenForm,
    error: String,
}

#[derive(askama::Template)]
#[template(path = "console/token_created.html")]
struct TokenCreatedPage {
    chrome: Chrome,
    token: TokenRow,
    secret: String,
}

async fn tokens_page(
    state: &AppState,
    signed_in: &SignedIn,
    form: TokenForm,
    error: String,
    status: StatusCode,
) -> Response {
    let chrome = signed_in.chrome("Tokens", "/tokens");
    match state
        .identity()
        .list_tokens(&signed_in.principal, None)
        .await
    {
        Ok(views) => {
            let rows = views.into_iter().map(TokenRow::new).collect();
            let page = TokensPage {
                chrome,
                rows,
                form,
                error,
            };
            (status, render(&page)).into_response()
        }
        Err(e) => service_error_page(chrome, e),
    }
}

/// `GET /tokens`: the caller's tokens (every token for the admin token),
/// as `GET /v1/tokens` lists them. Never a secret: only hashes are stored.
pub(super) async fn tokens(State(state): State<Arc<AppState>>, signed_in: SignedIn) -> Response {
    tokens_page(
        &state,
        &signed_in,
        TokenForm::default(),
        String::new(),
        StatusCode::OK,
    )
    .await
}

/// The token the form asks for, or what is wrong with it.
fn new_token(form: &TokenForm) -> Result<NewToken, String> {
    let scopes: Vec<String> = form
        .scopes
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let expires_in_secs = match form.expires_in_secs.trim() {
        "" => None,
        text => Some(
            text.parse::<i64>()
                .map_err(|_| format!("expiry: a whole number of seconds, not {text:?}"))?,
        ),
    };
    let user = Some(form.user.trim().to_string()).filter(|u| !u.is_empty());
    Ok(NewToken {
        user,
        name: form.name.trim().to_string(),
        scopes: Some(scopes).filter(|s| !s.is_empty()),
        expires_in_secs,
    })
}

/// `POST /tokens`: create a token as `POST /v1/tokens` does, and show its
/// secret on this answer only (`no-store`).
pub(super) async fn create_token(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, "/tokens").await {
        return refused;
    }
    let new = match new_token(&form) {
        Ok(new) => new,
        Err(error) => {
            return tokens_page(&state, &signed_in, form, error, StatusCode::BAD_REQUEST).await;
        }
    };
    let principal = &signed_in.principal;
    let created = state.identity().create_token(principal, new).await;
    match audited(&state, principal, "/tokens", created).await {
        Ok(created) => {
            let page = TokenCreatedPage {
                chrome: signed_in.chrome("Token created", "/tokens"),
                token: TokenRow::new(created.view),
                secret: created.token,
            };
            let mut response = render(&page);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            let status = status_of(&e);
            tokens_page(&state, &signed_in, form, e.message, status).await
        }
    }
}

/// `POST /tokens/{id}/revoke`: as `POST /v1/tokens/{id}/revoke`.
pub(super) async fn revoke_token(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = format!("/tokens/{id}/revoke");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let revoked = state.identity().revoke_token(principal, &id).await;
    match audited(&state, principal, &path, revoked).await {
        Ok(_) => Redirect::to("/tokens").into_response(),
        Err(e) => service_error_page(signed_in.chrome("Tokens", "/tokens"), e),
    }
}

// ----- Roles and policies

struct RoleRow {
    name: String,
    description: String,
    policies: String,
    users: String,
}

#[derive(askama::Template)]
#[template(path = "console/roles.html")]
struct RolesPage {
    chrome: Chrome,
    rows: Vec<RoleRow>,
}

/// `GET /roles`: allowed as `GET /v1/roles` is.
pub(super) async fn roles(State(state): State<Arc<AppState>>, signed_in: SignedIn) -> Response {
    let chrome = signed_in.chrome("Roles", "/roles");
    let listed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/roles",
            &no_params(),
        )
        .await?;
        state.identity().list_roles().await
    };
    match listed.await {
        Ok(roles) => {
            let rows = roles
                .into_iter()
                .map(|r| RoleRow {
                    name: r.name,
                    description: r.description,
                    policies: r.policies.join(", "),
                    users: r.users.join(", "),
                })
                .collect();
            render(&RolesPage { chrome, rows })
        }
        Err(e) => service_error_page(chrome, e),
    }
}

struct PolicyRow {
    name: String,
    document: String,
    updated: String,
}

/// The simulator form as the browser sends it.
#[derive(Deserialize, Default)]
pub(super) struct SimulateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource: String,
    /// `key=value` lines; a key given twice is a list.
    #[serde(default)]
    context: String,
}

/// The simulator's answer, as shown.
struct Decision {
    /// Allow or Deny.
    decision: &'static str,
    /// The service's word: `allowed`, `explicit_deny` or `implicit_deny`.
    kind: &'static str,
    statement: String,
    explanation: String,
}

#[derive(askama::Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage {
    chrome: Chrome,
    rows: Vec<PolicyRow>,
    form: SimulateForm,
    decision: Option<Decision>,
    error: String,
}

async fn policies_page(
    state: &AppState,
    signed_in: &SignedIn,
    form: SimulateForm,
    answer: Result<Option<Decision>, String>,
) -> Response {
    let chrome = signed_in.chrome("Policies", "/policies");
    let listed = async {
        gate(
            state,
            &signed_in.principal,
            "GET",
            "/v1/policies",
            &no_params(),
        )
        .await?;
        state.identity().list_policies().await
    };
    let records = match listed.await {
        Ok(records) => records,
        Err(e) => return service_error_page(chrome, e),
    };
    let rows = records
        .into_iter()
        .map(|p| PolicyRow {
            document: serde_json::to_string_pretty(&p.document).unwrap_or_default(),
            updated: time_text(p.updated_at),
            name: p.name,
        })
        .collect();
    let (decision, error, status) = match answer {
        Ok(decision) => (decision, String::new(), StatusCode::OK),
        Err(error) => (None, error, StatusCode::BAD_REQUEST),
    };
    let page = PoliciesPage {
        chrome,
        rows,
        form,
        decision,
        error,
    };
    (status, render(&page)).into_response()
}

/// `GET /policies`: the documents and the simulator form.
pub(super) async fn policies(State(state): State<Arc<AppState>>, signed_in: SignedIn) -> Response {
    policies_page(&state, &signed_in, SimulateForm::default(), Ok(None)).await
}

/// `key=value` lines as the simulator's context.
fn parse_context(text: &str) -> Result<Map<String, Value>, String> {
    let mut context = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("context: {line:?} is not key=value"));
        };
        let value = Value::String(value.trim().to_string());
        match context.get_mut(key.trim()) {
            Some(Value::Array(list)) => list.push(value),
            Some(_) | None => {
                let list = context.remove(key.trim()).into_iter().chain([value]);
                context.insert(key.trim().to_string(), Value::Array(list.collect()));
            }
        }
    }
    Ok(context)
}

/// `POST /policies/simulate`: as `POST /v1/policies/simulate`
/// (`policies:Simulate` on the user), answering Allow or Deny with the
/// deciding statement.
pub(super) async fn simulate(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<SimulateForm>,
) -> Response {
    let path = "/policies/simulate";
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, path).await {
        return refused;
    }
    let context = match parse_context(&form.context) {
        Ok(context) => context,
        Err(error) => return policies_page(&state, &signed_in, form, Err(error)).await,
    };
    let ask = Simulate {
        user: form.user.trim().to_string(),
        action: form.action.trim().to_string(),
        resource: form.resource.trim().to_string(),
        context,
        node: None,
    };
    let answer = match state.identity().simulate(&signed_in.principal, ask).await {
        Ok(s) => Ok(Some(Decision {
            decision: if s.decision == "allowed" {
                "Allow"
            } else {
                "Deny"
            },
            kind: s.decision,
            statement: s.statement.map_or_else(String::new, |r| {
                let sid = r.sid.map(|sid| format!(" ({sid})")).unwrap_or_default();
                format!("{} statement {}{sid}", r.policy, r.statement)
            }),
            explanation: s.explanation,
        })),
        Err(e) if e.kind == ErrorKind::Forbidden => {
            return service_error_page(signed_in.chrome("Policies", "/policies"), e);
        }
        Err(e) => Err(e.message),
    };
    policies_page(&state, &signed_in, form, answer).await
}

// ----- Audit

/// The audit page's filters, a GET form.
#[derive(Deserialize, Default)]
pub(super) struct AuditQuery {
    #[serde(default)]
    actor: String,
    /// Exact, or a prefix ending in `*` (`commands:*`).
    #[serde(default)]
    action: String,
    /// A date (`2026-01-31`), an RFC 3339 time, or milliseconds.
    #[serde(default)]
    since: String,
    /// How many pages of newer records to skip.
    #[serde(default)]
    page: usize,
}

struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    resource: String,
    outcome: String,
    detail: String,
}

#[derive(askama::Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    query: AuditQuery,
    rows: Vec<AuditRow>,
    /// The number of the next (older) page, if there may be one.
    older: Option<usize>,
    verification: Option<crate::audit::Verification>,
    error: String,
}

/// `since` as milliseconds since the epoch.
fn parse_since(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(Some(millis));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.timestamp_millis()));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
        return Ok(midnight);
    }
    Err(format!(
        "since: a date (2026-01-31), an RFC 3339 time or milliseconds, not {text:?}"
    ))
}

async fn audit_page(
    state: &AppState,
    signed_in: &SignedIn,
    query: AuditQuery,
    verification: Option<crate::audit::Verification>,
) -> Response {
    let chrome = signed_in.chrome("Audit", "/audit");
    if let Err(e) = gate(
        state,
        &signed_in.principal,
        "GET",
        "/v1/audit",
        &no_params(),
    )
    .await
    {
        return service_error_page(chrome, e);
    }
    let (since, error) = match parse_since(&query.since) {
        Ok(since) => (since, String::new()),
        Err(error) => (None, error),
    };
    let skip = query.page.saturating_mul(AUDIT_PAGE).min(AUDIT_MAX);
    let wanted = (skip + AUDIT_PAGE).min(AUDIT_MAX);
    let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let filter = AuditFilter {
        actor: text(&query.actor),
        action: text(&query.action),
        since,
        limit: i64::try_from(wanted).unwrap_or(i64::MAX),
    };
    let records = match state.identity().list_audit(filter).await {
        Ok(records) => records,
        Err(e) => return service_error_page(chrome, e),
    };
    let found = records.len();
    // The store answers oldest first; the page shows newest first.
    let rows: Vec<AuditRow> = records
        .into_iter()
        .rev()
        .skip(skip)
        .map(|r| AuditRow {
            seq: r.seq,
            at: time_text(r.at),
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            outcome: r.outcome,
            detail: r.detail.to_string(),
        })
        .collect();
    let older = (found == wanted && wanted < AUDIT_MAX).then_some(query.page + 1);
    let page = AuditPage {
        chrome,
        query,
        rows,
        older,
        verification,
        error,
    };
    render(&page)
}

/// `GET /audit`: the trail, newest first, as `GET /v1/audit` allows.
pub(super) async fn audit(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<AuditQuery>,
) -> Response {
    audit_page(&state, &signed_in, query, None).await
}

/// `POST /audit/verify`: check the chain as `operon audit verify` does
/// (`POST /v1/audit/verify`), and show the result above the trail.
pub(super) async fn verify(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = "/audit/verify";
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let verified = async {
        gate(&state, principal, "POST", "/v1/audit/verify", &no_params()).await?;
        state.identity().verify_audit().await
    };
    match audited(&state, principal, path, verified.await).await {
        Ok(v) => audit_page(&state, &signed_in, AuditQuery::default(), Some(v)).await,
        Err(e) => service_error_page(signed_in.chrome("Audit", "/audit"), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_lines_become_lists_of_values_per_key() {
        let context = parse_context("env = prod\n\nteam=a\nteam=b").unwrap();
        assert_eq!(context["env"], serde_json::json!(["prod"]));
        assert_eq!(context["team"], serde_json::json!(["a", "b"]));
        assert!(parse_context("no-equals").is_err());
    }

    #[test]
    fn since_is_a_date_a_time_or_milliseconds() {
        assert_eq!(parse_since("").unwrap(), None);
        assert_eq!(parse_since("1000").unwrap(), Some(1000));
        assert_eq!(parse_since("1970-01-02").unwrap(), Some(86_400_000));
        assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), Some(1000));
        assert!(parse_since("yesterday").is_err());
    }
}
