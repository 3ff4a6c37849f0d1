//! Sessions in the browser: a terminal on a node (`/nodes/{name}/terminal`,
//! xterm.js speaking `operon_proto::session` over the console's own
//! WebSocket `/sessions/connect`), the sessions list and a session's page
//! with Terminate and a recording player (`/sessions`, `/sessions/{id}`).
//!
//! (Not to be confused with `session.rs`, the console's sign-in session.)
//!
//! Why it is shaped this way:
//!
//! - **One session path.** `/sessions/connect` authenticates the browser by
//!   its console cookie, then calls `sessions::http::open`, the function
//!   behind `/v1/sessions/connect`: the same checks, authorization,
//!   recording, audit and relay, whoever asks.
//! - **No cross-site WebSocket.** Browsers send cookies with a WebSocket
//!   handshake from any site and WebSockets have no same-origin rule, and the
//!   console's cross-site refusal covers only non-GET requests. So the
//!   upgrade must carry an `Origin` that is this server's own, or it is
//!   refused (403, audited) before anything else (cross-site WebSocket
//!   hijacking).
//! - **Refusals are shown before connecting.** A browser learns nothing of
//!   a refused upgrade but that it failed, so the terminal page asks the
//!   sessions service the same question first (refusals audited by it) and
//!   shows a refusal as the page.
//! - **Reads go through the service**, which authorizes them itself
//!   (`sessions:Get`, `sessions:Terminate`, `sessions:GetRecording` on the
//!   node, as the API); the recording's read is audited as the API audits
//!   it, and its digest is checked against the audit trail by the service.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, ORIGIN};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use operon_api::sessions::{ConnectQuery, RECORDING_SHA256_HEADER};
use operon_proto::session::INITIAL_WINDOW;
use operon_store::{SESSION_ACTIVE, SessionRecord};
use serde::Deserialize;

use super::pages::time_text;
use super::session::{CsrfForm, SignedIn, check_csrf, resolve};
use super::{Chrome, audited, error_page, refuse_request, render, service_error_page, status_of};
use crate::AppState;
use crate::sessions::http::{ConnectQueryResult, UpgradeResult};

/// The section of every sessions page.
const SECTION: &str = "/sessions";

/// `12s`, `4m 05s`, `2h 03m 09s`: how long a session lasted.
pub(crate) fn duration_text(millis: i64) -> String {
    let secs = millis.max(0) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// One session as a row of the list or the facts of its page.
struct SessionRow {
    id: String,
    node: String,
    /// The account on the node, or the forwarded `host:port`.
    user: String,
    kind: String,
    command: String,
    started_by: String,
    status: String,
    active: bool,
    started: String,
    ended: String,
    /// So far, for an active session.
    duration: String,
    reason: String,
    exit_code: String,
    recording: bool,
    recording_sha256: String,
    recording_bytes: String,
}

impl SessionRow {
    fn new(record: SessionRecord, now: i64) -> SessionRow {
        let active = record.status == SESSION_ACTIVE;
        let end = record.ended_at.unwrap_or(now);
        SessionRow {
            node: record.node_name,
            user: record.run_as.or(record.remote).unwrap_or_default(),
            kind: record.kind,
            command: record.command.unwrap_or_default(),
            started_by: record.started_by,
            active,
            started: time_text(record.started_at),
            ended: record.ended_at.map(time_text).unwrap_or_default(),
            duration: duration_text(end - record.started_at),
            reason: record.end_reason.unwrap_or_default(),
            exit_code: record.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            recording: !active && record.recording_sha256.is_some(),
            recording_sha256: record.recording_sha256.unwrap_or_default(),
            recording_bytes: record
                .recording_bytes
                .map(|b| b.to_string())
                .unwrap_or_default(),
            status: record.status,
            id: record.id,
        }
    }
}

#[derive(askama::Template)]
#[template(path = "console/sessions.html")]
struct SessionsPage {
    chrome: Chrome,
    rows: Vec<SessionRow>,
    active_only: bool,
}

/// The sessions list's filter, a GET form.
#[derive(Deserialize, Default)]
pub(super) struct ListFilter {
    #[serde(default)]
    active: Option<String>,
}

/// `GET /sessions`: sessions, newest first, as `GET /v1/sessions`
/// (`sessions:Get`, per node).
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<ListFilter>,
) -> Response {
    let chrome = signed_in.chrome("Sessions", SECTION);
    let active_only = filter.active.is_some_and(|a| a == "true" || a == "on");
    match state
        .sessions()
        .list(&signed_in.principal, active_only, None)
        .await
    {
        Ok(records) => {
            let now = crate::now_millis();
            let rows = records
                .into_iter()
                .map(|r| SessionRow::new(r, now))
                .collect();
            render(&SessionsPage {
                chrome,
                rows,
                active_only,
            })
        }
        Err(e) => service_error_page(chrome, e),
    }
}

#[derive(askama::Template)]
#[template(path = "console/session.html")]
struct SessionPage {
    chrome: Chrome,
    row: SessionRow,
}

/// `GET /sessions/{id}`: a session, Terminate while active, and the
/// recording player once it ended (as `GET /v1/sessions/{id}`).
pub(super) async fn detail(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Session {id}"), SECTION);
    match state.sessions().get(&signed_in.principal, &id).await {
        Ok(record) => render(&SessionPage {
            chrome,
            row: SessionRow::new(record, crate::now_millis()),
        }),
        Err(e) => service_error_page(chrome, e),
    }
}

/// `POST /sessions/{id}/terminate`: as `POST /v1/sessions/{id}/terminate`
/// (one's own session with the right that opened it, anyone's with
/// `sessions:Terminate`), then back to the session.
pub(super) async fn terminate(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = format!("/sessions/{id}/terminate");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let ended = state.sessions().terminate(principal, &id).await;
    match audited(&state, principal, &path, ended).await {
        Ok(_) => Redirect::to(&format!("/sessions/{id}")).into_response(),
        Err(e) => service_error_page(signed_in.chrome(&format!("Session {id}"), SECTION), e),
    }
}

/// `GET /sessions/{id}/recording`: the asciicast, as
/// `GET /v1/sessions/{id}/recording` answers it (`sessions:GetRecording` on
/// the node, the digest checked against the audit trail) and audited as
/// that route's reads are.
pub(super) async fn recording(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let principal = &signed_in.principal;
    let path = format!("/sessions/{id}/recording");
    let read = state.sessions().recording(principal, &id).await;
    let status = read.as_ref().map_or_else(status_of, |_| StatusCode::OK);
    crate::api::audit_call(&state, principal, &Method::GET, &path, status).await;
    match read {
        Ok((text, sha)) => (
            [
                (CONTENT_TYPE, "application/x-asciicast".to_string()),
                (CACHE_CONTROL, "no-store".to_string()),
                (HeaderName::from_static(RECORDING_SHA256_HEADER), sha),
            ],
            text,
        )
            .into_response(),
        Err(e) => service_error_page(signed_in.chrome(&format!("Session {id}"), SECTION), e),
    }
}

#[derive(askama::Template)]
#[template(path = "console/terminal.html")]
struct TerminalPage {
    chrome: Chrome,
    node: String,
    user: String,
    idle_timeout: String,
    max_duration: String,
    /// The bytes the browser may send before the server credits any.
    window: u32,
}

/// What the terminal page may ask for beyond the node (a form on the page).
#[derive(Deserialize, Default)]
pub(super) struct TerminalQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    idle_timeout: String,
    #[serde(default)]
    max_duration: String,
}

impl TerminalQuery {
    /// The session request the page's terminal will make, or why it is
    /// unreadable (a number that is not one).
    fn connect_query(&self, node: &str) -> Result<ConnectQuery, String> {
        let seconds = |name: &str, text: &str| -> Result<Option<u64>, String> {
            match text.trim() {
                "" => Ok(None),
                text => text
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name} must be a number of seconds, not {text:?}")),
            }
        };
        let user = self.user.trim();
        Ok(ConnectQuery {
            node: node.to_string(),
            user: (!user.is_empty()).then(|| user.to_string()),
            idle_timeout: seconds("idle_timeout", &self.idle_timeout)?,
            max_duration: seconds("max_duration", &self.max_duration)?,
            ..ConnectQuery::default()
        })
    }
}

/// `GET /nodes/{name}/terminal`: a terminal on the node. The session is
/// authorized here first (as the WebSocket will authorize it, refusals
/// audited) so a refusal is a page that says why.
pub(super) async fn terminal(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(node): Path<String>,
    Query(query): Query<TerminalQuery>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Terminal on {node}"), "/nodes");
    let request = match query.connect_query(&node) {
        Ok(request) => request,
        Err(message) => {
            return error_page(chrome, StatusCode::BAD_REQUEST, "Invalid request", &message);
        }
    };
    if let Err(e) = state
        .sessions()
        .authorize(&signed_in.principal, &request)
        .await
    {
        return service_error_page(chrome, e);
    }
    render(&TerminalPage {
        chrome,
        node,
        user: query.user.trim().to_string(),
        idle_timeout: query.idle_timeout.trim().to_string(),
        max_duration: query.max_duration.trim().to_string(),
        window: INITIAL_WINDOW,
    })
}

/// `GET /sessions/connect?node=...`: the terminal's WebSocket. Same-origin
/// only, signed in only; then exactly `/v1/sessions/connect`.
pub(super) async fn connect(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    query: ConnectQueryResult,
    upgrade: UpgradeResult,
) -> Response {
    if let Some(reason) = cross_site_upgrade(&state, &headers) {
        let source = super::peer_ip(&extensions);
        let path = "/sessions/connect";
        return refuse_request(&state, &headers, source, "console:Connect", path, &reason).await;
    }
    let Some(signed_in) = resolve(&state, &headers).await else {
        return error_page(
            Chrome::visitor("Sign in"),
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "Sign in to the console to open a terminal.",
        );
    };
    let chrome = signed_in.chrome("Terminal", "/nodes");
    match crate::sessions::http::open(state, signed_in.principal, query, upgrade).await {
        Ok(response) => response,
        Err(e) => service_error_page(chrome, e),
    }
}

/// Why a WebSocket upgrade is not the console's own page asking: browsers
/// always send `Origin` with one, so a missing one is refused too.
fn cross_site_upgrade(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if !headers.contains_key(ORIGIN) {
        return Some("a WebSocket request without an Origin".into());
    }
    super::cross_site_reason(state, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_hours_minutes_and_seconds() {
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(12_999), "12s");
        assert_eq!(duration_text(245_000), "4m 05s");
        assert_eq!(duration_text(7_389_000), "2h 03m 09s");
        assert_eq!(duration_text(-5), "0s", "a clock step back is no time");
    }

    #[test]
    fn the_terminal_form_becomes_the_session_request() {
        let query = TerminalQuery {
            user: " root ".into(),
            idle_timeout: "".into(),
            max_duration: "600".into(),
        };
        let request = query.connect_query("web-1").unwrap();
        assert_eq!(request.node, "web-1");
        assert_eq!(request.user.as_deref(), Some("root"));
        assert_eq!(request.idle_timeout, None);
        assert_eq!(request.max_duration, Some(600));
        let bad = TerminalQuery {
            max_duration: "soon".into(),
            ..TerminalQuery::default()
        };
        assert!(bad.connect_query("web-1").unwrap_err().contains("soon"));
        let default_user = TerminalQuery::default().connect_query("web-1").unwrap();
        assert_eq!(default_user.user, None, "the server's default account");
    }
}
