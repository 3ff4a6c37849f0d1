//! Signing in and out of the console, and the session behind each page.
//!
//! The browser holds a random session id (a new one at every sign-in, so an
//! id planted before sign-in is worth nothing); the store keeps its SHA-256,
//! the API token sealed by the key ring, a CSRF secret and an expiry. Every
//! page unseals the token and authenticates it exactly as the API does.
//! The sign-in form itself is guarded by a double submit: a random value in
//! a short-lived cookie that the form must echo.

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use operon_store::{AuditEntry, ConsoleSession};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{Chrome, error_page, refuse_forgery, render, serves_tls};
use crate::access::Principal;
use crate::api::{ANONYMOUS, authenticate_token};
use crate::refusals::Verdict;
use crate::{AppState, auth, now_millis};

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "operon_console";
/// The sign-in form's double-submit cookie.
const LOGIN_COOKIE: &str = "operon_console_login";
/// How long a session lasts after sign-in.
const SESSION_LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// How long a sign-in form may be left open.
const LOGIN_FORM_SECS: i64 = 3600;
/// The header htmx requests carry the CSRF secret in.
const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in browser: who, and the secret its forms echo.
pub(crate) struct SignedIn {
    pub principal: Principal,
    pub csrf: String,
    id_hash: String,
}

impl SignedIn {
    /// The page layout of this user, in section `current`.
    pub(crate) fn chrome(&self, title: &str, current: &'static str) -> Chrome {
        Chrome {
            title: title.to_string(),
            user: Some(self.principal.name.clone()),
            csrf: self.csrf.clone(),
            current,
            nav: super::NAV,
        }
    }
}

/// Pages that need a session send visitors without one to the sign-in form.
impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match resolve(state, &parts.headers).await {
            Some(signed_in) => Ok(signed_in),
            None => Err(to_sign_in(state, &parts.headers)),
        }
    }
}

/// A redirect to the sign-in form, clearing a session cookie that names no
/// live session.
fn to_sign_in(state: &AppState, headers: &HeaderMap) -> Response {
    let mut response = Redirect::to("/login").into_response();
    if cookie(headers, SESSION_COOKIE).is_some() {
        append_cookie(&mut response, &expired_cookie(state, SESSION_COOKIE, "/"));
    }
    response
}

/// The session the request's cookie names, with the principal its token
/// stands for now; `None` when there is no such live session or the token
/// no longer authenticates (then the session is deleted, and the refusal
/// audited like the API's).
pub(crate) async fn resolve(state: &AppState, headers: &HeaderMap) -> Option<SignedIn> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let id_hash = auth::hash_secret(id);
    let session = match state.store.console_session(&id_hash, now_millis()).await {
        Ok(session) => session?,
        Err(e) => {
            tracing::error!(error = %e, "cannot read a console session");
            return None;
        }
    };
    let token = match state
        .keys
        .unseal(&sealing_context(&id_hash), &session.sealed_token)
    {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(error = %e, "a console session's token cannot be unsealed");
            return None;
        }
    };
    let token = std::str::from_utf8(&token).ok()?;
    match authenticate_token(state, token).await {
        Ok(principal) => Some(SignedIn {
            principal,
            csrf: session.csrf_secret,
            id_hash,
        }),
        Err((actor, reason)) => {
            end_session(state, &id_hash).await;
            audit(
                state,
                actor,
                "auth:Authenticate",
                "unauthenticated",
                &reason,
            )
            .await;
            None
        }
    }
}

/// Who the request's session cookie names, without checking the token:
/// for the audit record of a refused request.
pub(crate) async fn cookie_actor(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let id_hash = auth::hash_secret(cookie(headers, SESSION_COOKIE)?);
    let session = state
        .store
        .console_session(&id_hash, now_millis())
        .await
        .ok()??;
    Some(session.actor)
}

/// What a sealed token is bound to: its session, so an envelope copied to
/// another row does not open.
fn sealing_context(id_hash: &str) -> Vec<u8> {
    format!("console-session/{id_hash}").into_bytes()
}

#[derive(askama::Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    /// The double-submit value the form echoes.
    login_csrf: String,
    error: Option<String>,
}

/// `GET /login`: the sign-in form, with a fresh double-submit value.
pub(super) async fn login_form(State(state): State<Arc<AppState>>) -> Response {
    login_page(&state, StatusCode::OK, None)
}

fn login_page(state: &AppState, status: StatusCode, error: Option<String>) -> Response {
    let login_csrf = auth::new_secret("");
    let page = LoginPage {
        chrome: Chrome::visitor("Sign in"),
        login_csrf: login_csrf.clone(),
        error,
    };
    let mut response = (status, render(&page)).into_response();
    let cookie = session_cookie(state, LOGIN_COOKIE, &login_csrf, "/login", LOGIN_FORM_SECS);
    append_cookie(&mut response, &cookie);
    response
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /login`: check the double submit, then the token as the API
/// would; on success a new session (never the browser's old id).
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(expected, &form.csrf) {
        let reason = "the sign-in form's check value is missing or wrong";
        let source = super::peer_ip(&extensions);
        return refuse_forgery(&state, &headers, source, "/login", reason).await;
    }
    let principal = match authenticate_token(&state, form.token.trim()).await {
        Ok(principal) => principal,
        Err((actor, reason)) => {
            if actor == ANONYMOUS {
                let source = super::peer_ip(&extensions);
                if state.refusals.check(source, now_millis()) == Verdict::Suppress {
                    return crate::api::too_many_refusals(&state);
                }
            }
            audit(&state, actor, "console:SignIn", "unauthenticated", &reason).await;
            let message = format!("Sign-in failed: {reason}.");
            return login_page(&state, StatusCode::UNAUTHORIZED, Some(message));
        }
    };
    // The browser's previous session, if any, ends here: one id per sign-in.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        end_session(&state, &auth::hash_secret(old)).await;
    }
    match start_session(&state, &principal, form.token.trim()).await {
        Ok(id) => {
            let detail = format!("signed in with token {}", principal.token_id);
            audit(
                &state,
                principal.name.clone(),
                "console:SignIn",
                "allowed",
                &detail,
            )
            .await;
            let mut response = Redirect::to("/nodes").into_response();
            let lifetime = SESSION_LIFETIME_MS / 1000;
            append_cookie(
                &mut response,
                &session_cookie(&state, SESSION_COOKIE, &id, "/", lifetime),
            );
            append_cookie(
                &mut response,
                &expired_cookie(&state, LOGIN_COOKIE, "/login"),
            );
            response
        }
        Err(message) => {
            tracing::error!(error = %message, "cannot start a console session");
            error_page(
                Chrome::visitor("Sign in"),
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in failed",
                "The session could not be started; see the server log.",
            )
        }
    }
}

/// Store a new session for `principal` signed in with `token`; answers the
/// id for the cookie. Expired sessions are pruned on the way.
async fn start_session(
    state: &AppState,
    principal: &Principal,
    token: &str,
) -> Result<String, String> {
    let now = now_millis();
    if let Err(e) = state.store.prune_console_sessions(now).await {
        tracing::warn!(error = %e, "cannot prune expired console sessions");
    }
    let id = auth::new_secret("ocs_");
    let id_hash = auth::hash_secret(&id);
    let sealed_token = state
        .keys
        .seal(&sealing_context(&id_hash), token.as_bytes())
        .map_err(|e| e.to_string())?;
    let session = ConsoleSession {
        id_hash,
        sealed_token,
        csrf_secret: auth::new_secret(""),
        actor: principal.name.clone(),
        created_at: now,
        expires_at: now + SESSION_LIFETIME_MS,
    };
    state
        .store
        .insert_console_session(&session)
        .await
        .map_err(|e| e.to_string())?;
    Ok(id)
}

/// A form whose only field is the CSRF secret (a button that acts:
/// sign out, cancel, revoke, verify).
#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}

/// `POST /logout`: end the session (CSRF-checked) and clear the cookie.
pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, "/logout").await {
        return refused;
    }
    end_session(&state, &signed_in.id_hash).await;
    let name = signed_in.principal.name.clone();
    audit(&state, name, "console:SignOut", "allowed", "signed out").await;
    let mut response = Redirect::to("/login").into_response();
    append_cookie(&mut response, &expired_cookie(&state, SESSION_COOKIE, "/"));
    response
}

/// Refuse (403, audited) a POST that does not echo the session's CSRF
/// secret in its `csrf` field or its `X-CSRF-Token` header.
pub(crate) async fn check_csrf(
    state: &AppState,
    signed_in: &SignedIn,
    headers: &HeaderMap,
    field: &str,
    path: &str,
) -> Result<(), Response> {
    let header = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let sent = if field.is_empty() { header } else { field };
    if !sent.is_empty() && same_secret(&signed_in.csrf, sent) {
        return Ok(());
    }
    let reason = "the form's CSRF check value is missing or wrong";
    // The session names who asked: always audited, as known callers are.
    Err(refuse_forgery(state, headers, None, path, reason).await)
}

/// Equal secrets, compared in constant time.
fn same_secret(expected: &str, sent: &str) -> bool {
    expected.as_bytes().ct_eq(sent.as_bytes()).into()
}

async fn end_session(state: &AppState, id_hash: &str) {
    if let Err(e) = state.store.delete_console_session(id_hash).await {
        tracing::error!(error = %e, "cannot delete a console session");
    }
}

async fn audit(state: &AppState, actor: String, action: &str, outcome: &str, reason: &str) {
    let entry = AuditEntry {
        actor,
        action: action.into(),
        resource: "console".into(),
        outcome: outcome.into(),
        detail: serde_json::json!({"reason": reason}),
    };
    if let Err(e) = state.audit.record(entry).await {
        tracing::error!(error = %e, "a console sign-in or sign-out could not be audited");
    }
}

/// The value of cookie `name` in the request, if it has it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A cookie scripts cannot read and other sites never send, `Secure` when
/// the server serves HTTPS.
fn session_cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: i64) -> String {
    let secure = if serves_tls(state) { "; Secure" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}{secure}")
}

/// The cookie that deletes cookie `name`.
fn expired_cookie(state: &AppState, name: &str, path: &str) -> String {
    session_cookie(state, name, "", path, 0)
}

fn append_cookie(response: &mut Response, cookie: &str) {
    match HeaderValue::from_str(cookie) {
        Ok(value) => {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        Err(e) => tracing::error!(error = %e, "a console cookie is not a valid header"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name_among_many_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; operon_console_login=x".parse().unwrap(),
        );
        headers.append(header::COOKIE, "operon_console=abc".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("x"));
        assert_eq!(cookie(&headers, "b"), None);
        headers.insert(header::COOKIE, "operon_console=".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), None, "empty is none");
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("abc", ""));
    }
}
