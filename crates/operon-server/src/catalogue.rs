//! The action catalogue's axum layer. The table itself (every authenticated
//! route, its action and how it is authorized) is data in
//! `operon_api::catalogue`, shared with the CLI and the OpenAPI document.
//!
//! The route layer [`authorize_route`] looks each request up here (by method
//! and matched route) before its handler runs:
//!
//! - [`Access::Path`]: the resource is known from the path alone, so the layer
//!   authorizes `action` on it and the handler does not;
//! - [`Access::Handler`]: the resource depends on the body, a query or the
//!   target's tags (commands per node, a user named in the body), so the
//!   handler or its service authorizes `action` itself;
//! - [`Access::SelfService`]: any authenticated caller (who am I, log in).
//!
//! A route missing from the catalogue is refused (500, logged), so a new
//! route cannot go unauthorized by omission; the tests check that the
//! catalogue and the OpenAPI document list the same operations, and the
//! security test walks every entry as callers without rights.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::access::{Principal, authorize};
use crate::error::ApiError;

pub use operon_api::catalogue::{Access, ROUTES, Route, resource};

/// The catalogue entry of a method and matched route (HEAD is GET's).
pub fn find(method: &Method, path: &str) -> Option<&'static Route> {
    operon_api::catalogue::find(method.as_str(), path)
}

/// The route layer, after the bearer middleware: refuse routes missing from
/// the catalogue and authorize the ones whose resource the path names.
pub async fn authorize_route(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let Some(entry) = find(request.method(), &matched) else {
        // Another method of a catalogued route: axum answers 405.
        if ROUTES.iter().any(|r| r.path == matched) {
            return next.run(request).await;
        }
        tracing::error!(method = %request.method(), route = %matched, "a route is missing from the action catalogue; refused");
        return ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "this route has no entry in the action catalogue; see the server log",
        )
        .into_response();
    };
    if let Access::Path(template) = entry.access {
        let Some(principal) = request.extensions().get::<Principal>().cloned() else {
            return ApiError::unauthorized("no principal").into_response();
        };
        let (mut parts, body) = request.into_parts();
        let params =
            match Path::<HashMap<String, String>>::from_request_parts(&mut parts, &state).await {
                Ok(Path(params)) => params,
                Err(rejection) => return rejection.into_response(),
            };
        let resource = resource(template, &params);
        if let Err(e) = authorize(&state, &principal, entry.action, &resource).await {
            return e.into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(request).await
}

use axum::extract::FromRequestParts;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn head_is_get() {
        assert_eq!(
            find(&Method::HEAD, "/v1/nodes"),
            find(&Method::GET, "/v1/nodes")
        );
    }

    /// The catalogue and the OpenAPI document list the same authenticated
    /// operations.
    #[test]
    fn the_catalogue_matches_the_openapi_document() {
        let doc = crate::openapi::document();
        let public = [
            "/v1/health",
            "/v1/openapi.json",
            operon_proto::AGENT_ENROLL_PATH,
            operon_proto::AGENT_CONNECT_PATH,
            "/v1/hooks/{name}",
        ];
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            if public.contains(&path.as_str()) {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let catalogued: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(catalogued, documented);
    }

    /// The router serves exactly the catalogued methods of each catalogued
    /// path: axum's 405 for a method no route uses lists the others in
    /// `Allow`, which must be the catalogue's.
    #[tokio::test]
    async fn the_router_serves_exactly_the_catalogued_methods() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
        let server = crate::start(config).await.unwrap();
        let token = server.new_admin_token.clone().unwrap();
        let client = reqwest::Client::new();
        let paths: BTreeSet<&str> = ROUTES.iter().map(|r| r.path).collect();
        for path in paths {
            let concrete = path.replace('{', "x").replace('}', "");
            let response = client
                .patch(format!("{}{concrete}", server.url()))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405, "PATCH {path}");
            let allow: BTreeSet<String> = response.headers()["allow"]
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| m != "HEAD")
                .collect();
            let catalogued: BTreeSet<String> = ROUTES
                .iter()
                .filter(|r| r.path == path)
                .map(|r| r.method.to_string())
                .collect();
            assert_eq!(allow, catalogued, "{path}");
        }
    }
}
