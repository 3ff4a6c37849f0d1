//! The Parameter Store pages: the list (`/parameters`, optionally under a
//! path), one parameter with its history (`/parameters/{name}`), and the
//! audited reveal of a SecureString (`POST /parameters/reveal`).
//!
//! Why it is shaped this way: a secret must never reach a page by accident,
//! so the list and history read SecureStrings **without** decryption (the
//! service hands back only the sealed envelope, which is never rendered)
//! and show a mask. Seeing a value is a deliberate act: a CSRF-checked POST
//! that makes the very call `GET /v1/parameters/{name}?decrypt=true` makes
//! (`params:Get` and `params:GetDecrypted`, the decrypted read audited by
//! the service), answered once on a page never stored (`no-store`, set for
//! every console page). Plain values are shown only where `params:Get`
//! allows, as the API would.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::{self, HeaderValue};
use axum::response::Response;
use operon_params::filters::{FilterContext, ParameterStringFilter};
use serde::Deserialize;

use super::ops::section_refusal;
use super::pages::time_text;
use super::session::{SignedIn, check_csrf};
use super::{audited, render, service_error_page};
use crate::AppState;
use crate::params::service::{self, ParamView};
use crate::service::ServiceResult;

/// What is shown instead of a SecureString's value.
pub(super) const MASK: &str = "••••• (secure)";
/// Parameters listed per page.
const PAGE_SIZE: usize = 50;

/// One parameter (or one version of it) as a table row.
struct ParamRow {
    name: String,
    param_type: String,
    version: i64,
    modified: String,
    modified_by: String,
    labels: String,
    secure: bool,
    /// The value: a String's or StringList's, empty when not readable,
    /// and always empty for a SecureString (the template shows [`MASK`]).
    value: String,
}

impl ParamRow {
    /// The row of `view`: a SecureString's value is dropped here, whatever
    /// the view holds, so no template can show it.
    fn new(view: ParamView) -> ParamRow {
        let secure = view.is_secure();
        ParamRow {
            value: if secure {
                String::new()
            } else {
                view.value.unwrap_or_default()
            },
            secure,
            modified: time_text(view.modified_at),
            labels: view.labels.join(", "),
            name: view.name,
            param_type: view.param_type,
            version: view.version,
            modified_by: view.modified_by,
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    /// Only parameters under this path (`/app/`), recursively.
    #[serde(default)]
    path: String,
    /// The next page's token.
    #[serde(default)]
    next: String,
}

#[derive(askama::Template)]
#[template(path = "console/parameters.html")]
struct ParametersPage {
    chrome: super::Chrome,
    path: String,
    rows: Vec<ParamRow>,
    next: Option<String>,
    mask: &'static str,
}

/// `GET /parameters`: as `GET /v1/parameters?path=...&recursive=true`
/// (`params:List`), each String's value read as `GET /v1/parameters/{name}`
/// where `params:Get` allows it.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<ListQuery>,
) -> Response {
    let chrome = signed_in.chrome("Parameters", "/parameters");
    let path = query.path.trim().to_string();
    let principal = &signed_in.principal;
    let listed = async {
        let mut filters = Vec::new();
        if !path.is_empty() {
            filters.push(ParameterStringFilter {
                key: "Path".into(),
                option: Some("Recursive".into()),
                values: Some(vec![path.clone()]),
            });
        }
        let filters = service::validate_filters(FilterContext::DescribeParameters, &filters)?;
        let token = (!query.next.is_empty()).then_some(query.next.as_str());
        state
            .params()
            .describe(principal, &filters, Some(PAGE_SIZE), token)
            .await
    };
    let page = match listed.await {
        Ok(page) => page,
        Err(e) => return service_error_page(chrome, e),
    };
    let mut rows = Vec::with_capacity(page.items.len());
    for item in page.items {
        let readable = !item.is_secure()
            && principal
                .decide(&principal.request("params:Get", &service::resource(&item.name)))
                .is_ok();
        let view = if readable {
            // Without decryption: a SecureString made since the listing
            // still comes back sealed, and `ParamRow::new` drops it.
            state
                .params()
                .get(principal, &item.name, false)
                .await
                .unwrap_or(item)
        } else {
            item
        };
        rows.push(ParamRow::new(view));
    }
    render(&ParametersPage {
        chrome,
        path,
        rows,
        next: page.next_token,
        mask: MASK,
    })
}

#[derive(askama::Template)]
#[template(path = "console/parameter.html")]
struct ParameterPage {
    chrome: super::Chrome,
    row: ParamRow,
    description: String,
    tier: String,
    data_type: String,
    history: Result<Vec<ParamRow>, String>,
    mask: &'static str,
}

/// `GET /parameters/{name}`: as `GET /v1/parameters/{name}` (`params:Get`,
/// not decrypted), with its versions as `.../history` (`params:GetHistory`,
/// not decrypted; shown as not permitted when refused).
pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(name): Path<String>,
) -> Response {
    show_named(&state, &signed_in, &name).await
}

/// `GET /parameters/reveal`: the page of a parameter named `reveal` (the
/// POST route of that path shadows `/parameters/{name}`).
pub(super) async fn show_reveal(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
) -> Response {
    show_named(&state, &signed_in, "reveal").await
}

async fn show_named(state: &AppState, signed_in: &SignedIn, name: &str) -> Response {
    let chrome = signed_in.chrome(&format!("Parameter {name}"), "/parameters");
    let principal = &signed_in.principal;
    let view = match state.params().get(principal, name, false).await {
        Ok(view) => view,
        Err(e) => return service_error_page(chrome, e),
    };
    let history = state
        .params()
        .history(principal, &view.name, false)
        .await
        .map(|versions| versions.into_iter().rev().map(ParamRow::new).collect())
        .map_err(section_refusal);
    let description = view.description.clone().unwrap_or_default();
    let (tier, data_type) = (view.tier.clone(), view.data_type.clone());
    render(&ParameterPage {
        chrome,
        row: ParamRow::new(view),
        description,
        tier,
        data_type,
        history,
        mask: MASK,
    })
}

/// The reveal button's form.
#[derive(Deserialize)]
pub(super) struct RevealForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

#[derive(askama::Template)]
#[template(path = "console/parameter_revealed.html")]
struct RevealedPage {
    chrome: super::Chrome,
    name: String,
    version: i64,
    value: String,
}

/// `POST /parameters/reveal`: the decrypted value, read through the same
/// service call as `GET /v1/parameters/{name}?decrypt=true` (which checks
/// `params:Get` and `params:GetDecrypted` and audits the secret read),
/// shown once on a page no cache keeps.
pub(super) async fn reveal(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<RevealForm>,
) -> Response {
    let path = "/parameters/reveal";
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, path).await {
        return refused;
    }
    let chrome = signed_in.chrome(&format!("Parameter {}", form.name), "/parameters");
    let principal = &signed_in.principal;
    let read: ServiceResult<ParamView> = state.params().get(principal, &form.name, true).await;
    let mut response = match audited(&state, principal, path, read).await {
        Ok(view) => render(&RevealedPage {
            chrome,
            version: view.version,
            value: view.value.unwrap_or_default(),
            name: view.name,
        }),
        Err(e) => service_error_page(chrome, e),
    };
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(param_type: &str, value: Option<&str>) -> ParamView {
        ParamView {
            name: "/app/x".into(),
            param_type: param_type.into(),
            value: value.map(str::to_string),
            sealed: None,
            version: 3,
            selector: None,
            labels: vec!["prod".into()],
            modified_at: 0,
            modified_by: "alice".into(),
            description: None,
            allowed_pattern: None,
            tier: "Standard".into(),
            data_type: "text".into(),
            policies: None,
            key_id: None,
        }
    }

    #[test]
    fn a_secure_strings_value_never_reaches_a_row_even_decrypted() {
        let row = ParamRow::new(view("SecureString", Some("hunter2")));
        assert!(row.secure);
        assert_eq!(row.value, "");
        let row = ParamRow::new(view("String", Some("plain")));
        assert!(!row.secure);
        assert_eq!(row.value, "plain");
        assert_eq!(row.labels, "prod");
    }
}
