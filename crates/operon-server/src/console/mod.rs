//! The web console: server-rendered pages at `/`, on the API's listener.
//!
//! Why it is shaped this way:
//!
//! - **Pages call the services** with the signed-in [`Principal`], never the
//!   HTTP API: a page shows exactly what the CLI would, and a refusal is the
//!   service's own (audited by the same gate, `access::check_in`), rendered
//!   as a 403 page naming the refused action. Pages whose API route is
//!   authorized by the action catalogue go through [`gate`], which reads the
//!   action and resource from that catalogue: one table, one gate.
//! - **Sessions hold the API token, sealed** (`session.rs`): each request
//!   resolves the principal from it through `api::authenticate_token`, the
//!   bearer check itself, so a revoked or expired token, a disabled user or a
//!   changed policy takes effect on the next page.
//! - **CSRF** is refused twice over on every POST: the request must not be
//!   cross-site (`Origin`, `Sec-Fetch-Site`, checked by [`refuse_cross_site`]
//!   before any handler) and must echo the session's secret (`csrf` field or
//!   `X-CSRF-Token` header, compared in constant time).
//! - **Templates are compiled** (askama, `templates/console/`), escaped by
//!   default; assets are embedded in the binary (`assets.rs`). No inline
//!   script or style, so the Content-Security-Policy allows only `'self'`.
//!
//! A later feature adds its pages as a module here, its routes in
//! [`routes`] and one line in [`NAV`].

mod assets;
mod associations;
mod chart;
mod events;
mod graph;
mod identity;
mod ops;
mod pages;
mod parameters;
mod run;
mod runbooks;
mod session;
mod sessions;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use operon_store::AuditEntry;

use crate::AppState;
use crate::access::Principal;
use crate::service::{ErrorKind, ServiceError};

/// One entry of the navigation bar.
#[derive(Debug)]
pub(crate) struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
}

/// The navigation bar, in order: the one table later pages add a line to.
pub(crate) const NAV: &[NavItem] = &[
    NavItem {
        href: "/nodes",
        label: "Fleet",
    },
    NavItem {
        href: "/commands",
        label: "Commands",
    },
    NavItem {
        href: "/run",
        label: "Run command",
    },
    NavItem {
        href: "/workflows",
        label: "Runbooks",
    },
    NavItem {
        href: "/executions",
        label: "Executions",
    },
    NavItem {
        href: "/approvals",
        label: "Approvals",
    },
    NavItem {
        href: "/events",
        label: "Events",
    },
    NavItem {
        href: "/parameters",
        label: "Parameters",
    },
    NavItem {
        href: "/associations",
        label: "Associations",
    },
    NavItem {
        href: "/compliance",
        label: "Compliance",
    },
    NavItem {
        href: "/alarms",
        label: "Alarms",
    },
    NavItem {
        href: "/incidents",
        label: "Incidents",
    },
    NavItem {
        href: "/sessions",
        label: "Sessions",
    },
    NavItem {
        href: "/users",
        label: "Users",
    },
    NavItem {
        href: "/tokens",
        label: "Tokens",
    },
    NavItem {
        href: "/roles",
        label: "Roles",
    },
    NavItem {
        href: "/policies",
        label: "Policies",
    },
    NavItem {
        href: "/audit",
        label: "Audit",
    },
];

/// The console's routes, with its security headers and cross-site refusal.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/nodes", get(pages::nodes))
        .route("/nodes/{name}", get(pages::node))
        .route("/commands", get(pages::commands))
        .route("/run", get(run::run_form).post(run::run))
        .route("/commands/{id}", get(run::command))
        .route("/commands/{id}/cancel", post(run::cancel))
        .route("/commands/{id}/events", get(run::events))
        .route("/executions", get(runbooks::executions))
        .route("/approvals", get(runbooks::approvals))
        .route("/approvals/{id}", post(runbooks::decide))
        .route("/executions/{id}", get(runbooks::execution))
        .route("/workflows", get(workflows::workflows))
        .route("/workflows/{name}", get(workflows::workflow))
        .route("/workflows/{name}/start", post(workflows::start))
        .route("/executions/{id}/stop", post(workflows::stop))
        .route("/executions/{id}/redrive", post(workflows::redrive))
        .route("/events", get(events::buses))
        .route("/events/tail", get(events::tail))
        .route("/events/tail/stream", get(events::tail_stream))
        .route("/rules", get(events::rules_list))
        .route("/rules/{name}", get(events::rule))
        .route("/rules/{name}/enable", post(events::enable_rule))
        .route("/rules/{name}/disable", post(events::disable_rule))
        .route("/dlq", get(events::dead_letters))
        .route("/dlq/redrive", post(events::redrive))
        .route("/dlq/{id}", get(events::dead_letter))
        .route(
            "/archives",
            get(events::archives).post(events::create_archive),
        )
        .route("/replays", get(events::replays).post(events::start_replay))
        .route("/users", get(identity::users))
        .route(
            "/tokens",
            get(identity::tokens).post(identity::create_token),
        )
        .route("/tokens/{id}/revoke", post(identity::revoke_token))
        .route("/roles", get(identity::roles))
        .route("/policies", get(identity::policies))
        .route("/policies/simulate", post(identity::simulate))
        .route("/audit", get(identity::audit))
        .route("/audit/verify", post(identity::verify))
        .route("/parameters", get(parameters::list))
        .route(
            "/parameters/reveal",
            get(parameters::show_reveal).post(parameters::reveal),
        )
        .route("/parameters/{name}", get(parameters::show))
        .route("/associations", get(associations::list))
        .route("/associations/{name}", get(associations::show))
        .route("/associations/{name}/run", post(associations::run))
        .route("/compliance", get(ops::compliance))
        .route("/alarms", get(ops::alarms))
        .route("/alarms/{name}", get(ops::alarm))
        .route("/incidents", get(ops::incidents))
        .route("/incidents/{id}", get(ops::incident))
        .route("/incidents/{id}/ack", post(ops::acknowledge))
        .route("/incidents/{id}/resolve", post(ops::resolve))
        .route("/nodes/{name}/terminal", get(sessions::terminal))
        .route("/sessions", get(sessions::list))
        .route("/sessions/connect", get(sessions::connect))
        .route("/sessions/{id}", get(sessions::detail))
        .route("/sessions/{id}/terminate", post(sessions::terminate))
        .route("/sessions/{id}/recording", get(sessions::recording))
        .route("/assets/{name}", get(assets::serve))
        // Layers run last-added first: headers wrap everything, refusals included.
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            refuse_cross_site,
        ))
        .route_layer(axum::middleware::from_fn(security_headers))
}

/// What the page layout needs besides the page itself.
pub(crate) struct Chrome {
    pub title: String,
    /// The signed-in user's name; `None` on the sign-in and error pages
    /// of a visitor.
    pub user: Option<String>,
    /// The session's CSRF secret, for the sign-out form (and page forms).
    pub csrf: String,
    /// The `href` of the current section, marked in the navigation.
    pub current: &'static str,
    pub nav: &'static [NavItem],
}

impl Chrome {
    pub(crate) fn visitor(title: &str) -> Chrome {
        Chrome {
            title: title.to_string(),
            user: None,
            csrf: String::new(),
            current: "",
            nav: NAV,
        }
    }
}

/// The error page: a status, what went wrong, and (for refusals) the
/// action that was refused.
#[derive(askama::Template)]
#[template(path = "console/error.html")]
pub(crate) struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub heading: String,
    pub message: String,
}

/// An error page as a response. Never fails: a template error falls back
/// to plain text.
pub(crate) fn error_page(
    chrome: Chrome,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> Response {
    let page = ErrorPage {
        chrome,
        status: status.as_u16(),
        heading: heading.to_string(),
        message: message.to_string(),
    };
    (status, render(&page)).into_response()
}

/// A page rendered, or the plain text of the error (logged) when a
/// template fails at run time, which only a bug can cause.
pub(crate) fn render(page: &impl askama::Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log",
            )
                .into_response()
        }
    }
}

/// A service's refusal or failure as the page of the signed-in user.
pub(crate) fn service_error_page(chrome: Chrome, e: ServiceError) -> Response {
    let (status, heading) = match e.kind {
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "Refused"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "Not found"),
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "Invalid request"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "Conflict"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Server error"),
    };
    error_page(chrome, status, heading, &e.message)
}

/// The HTTP status the API twin of a console action answers a failure
/// `e` with, for the audit record of the action.
pub(crate) fn status_of(e: &ServiceError) -> StatusCode {
    match e.kind {
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound | ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Record a console action (a POST to `path`, already past its CSRF check)
/// in the audit trail as the API's middleware records a mutating call,
/// with the status its `outcome` had, and give the outcome back. Every
/// acting console handler ends with this, so an action taken in a browser
/// leaves the same record as its API twin.
pub(crate) async fn audited<T>(
    state: &AppState,
    principal: &Principal,
    path: &str,
    outcome: crate::service::ServiceResult<T>,
) -> crate::service::ServiceResult<T> {
    let status = outcome.as_ref().map_or_else(status_of, |_| StatusCode::OK);
    crate::api::audit_call(state, principal, &Method::POST, path, status).await;
    outcome
}

/// Markup built by hand (the SVG of `graph.rs` and `chart.rs`) escapes
/// every text and attribute value with this.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Authorize `principal` for what the API route `method path` (with its
/// path `params`) would be authorized for by the action catalogue, so a
/// page and its API twin are allowed and refused alike (and refusals are
/// audited by the one gate).
pub(crate) async fn gate(
    state: &AppState,
    principal: &Principal,
    method: &str,
    path: &str,
    params: &std::collections::HashMap<String, String>,
) -> Result<(), ServiceError> {
    let Some(route) = operon_api::catalogue::find(method, path) else {
        return Err(ServiceError::internal(format!(
            "the console gates on {method} {path}, which the catalogue lacks"
        )));
    };
    let crate::catalogue::Access::Path(template) = route.access else {
        return Err(ServiceError::internal(format!(
            "the console gates on {method} {path}, whose handler authorizes itself"
        )));
    };
    let resource = crate::catalogue::resource(template, params);
    crate::access::check_action(&state.audit, principal, route.action, &resource).await
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// Security headers on every console response; pages (anything that did
/// not set its own `Cache-Control`, as assets do) are never cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it browsers send `Origin: null` with the
        // console's own form POSTs, which the cross-site check must refuse.
        // `same-origin` still sends nothing to other sites.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Refuse (403, audited) a state-changing request that is cross-site: an
/// `Origin` other than this server's, or `Sec-Fetch-Site: cross-site`.
/// The CSRF secret is checked by the handler, which has the form.
async fn refuse_cross_site(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    match cross_site_reason(&state, request.headers()) {
        None => next.run(request).await,
        Some(reason) => {
            let path = request.uri().path().to_string();
            let source = peer_ip(request.extensions());
            refuse_forgery(&state, request.headers(), source, &path, &reason).await
        }
    }
}

/// Why a request is cross-site, if it is.
fn cross_site_reason(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let text = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Some("the browser says the request is cross-site (Sec-Fetch-Site)".into());
    }
    let origin = headers.get(header::ORIGIN)?;
    let own = own_origin(state, headers);
    match (origin.to_str(), own) {
        (Ok(origin), Some(own)) if origin.eq_ignore_ascii_case(&own) => None,
        (Ok(origin), _) => Some(format!("the request comes from another origin ({origin})")),
        (Err(_), _) => Some("the request's Origin is unreadable".into()),
    }
}

/// This server's origin as the browser addressed it: the scheme it serves
/// and the `Host` the request was sent to.
fn own_origin(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if serves_tls(state) { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// Whether the server serves HTTPS (its cookies are then `Secure`).
pub(crate) fn serves_tls(state: &AppState) -> bool {
    state.tls_fingerprint.is_some()
}

/// The address a request came from, when the server knows it.
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<crate::PeerAddr>>()
        .map(|info| info.0.0.ip())
}

/// Text as one URL path segment: unreserved bytes as they are, anything
/// else percent-encoded (names are plain, but a redirect must not carry
/// what a crafted one could).
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The 403 page of a refused POST (cross-site or without the session's
/// CSRF secret), audited with who the cookie names, if anyone. Refusals of
/// no one are limited per address (`source`) as the API's are: past the
/// rate, 429 and no record each.
pub(crate) async fn refuse_forgery(
    state: &AppState,
    headers: &HeaderMap,
    source: Option<std::net::IpAddr>,
    path: &str,
    reason: &str,
) -> Response {
    refuse_request(state, headers, source, "console:Post", path, reason).await
}

/// [`refuse_forgery`] for any request the console refuses as cross-site,
/// audited under `action` (`console:Connect` for the terminal's WebSocket
/// upgrade, a GET).
pub(crate) async fn refuse_request(
    state: &AppState,
    headers: &HeaderMap,
    source: Option<std::net::IpAddr>,
    action: &str,
    path: &str,
    reason: &str,
) -> Response {
    let actor = match session::cookie_actor(state, headers).await {
        Some(actor) => actor,
        None => {
            let verdict = state.refusals.check(source, crate::now_millis());
            if verdict == crate::refusals::Verdict::Suppress {
                return crate::api::too_many_refusals(state);
            }
            crate::api::ANONYMOUS.to_string()
        }
    };
    let entry = AuditEntry {
        actor,
        action: action.into(),
        resource: path.to_string(),
        outcome: "refused".into(),
        detail: serde_json::json!({"path": path, "reason": reason}),
    };
    if let Err(e) = state.audit.record(entry).await {
        tracing::error!(error = %e, "a refused console request could not be audited");
    }
    error_page(
        Chrome::visitor("Refused"),
        StatusCode::FORBIDDEN,
        "Request refused",
        &format!(
            "This request was refused as a possible cross-site request forgery: {reason}. \
             Go back, reload the page and try again."
        ),
    )
}
