//! The console's static files, embedded in the binary (nothing is fetched
//! at build or run time) and served at `/assets/{name}` with a strong
//! `ETag` (their SHA-256), so browsers revalidate them cheaply.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{Chrome, error_page};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every asset. A new one is a line here and a file under `assets/console/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/console/app.css"),
    },
    Asset {
        // The run page's live output (`run.rs`).
        name: "run.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/run.js"),
    },
    Asset {
        // The live tail of a bus (`events.rs`).
        name: "events_tail.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/events_tail.js"),
    },
    Asset {
        // Vendored; see assets/console/vendor/htmx/VENDORED.md.
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/vendor/htmx/htmx.min.js"),
    },
];

/// Browsers may keep an asset an hour, then revalidate with its ETag.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// The ETag of each asset, in [`ASSETS`] order: computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", hex::encode(Sha256::digest(a.bytes))))
        .collect()
});

/// `GET /assets/{name}`: the file, or 304 when the browser's copy is
/// current, or a 404 page.
pub(super) async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return error_page(
            Chrome::visitor("Not found"),
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such file.",
        );
    };
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let status = if cached {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut response = if cached {
        status.into_response()
    } else {
        (status, asset.bytes).into_response()
    };
    let out = response.headers_mut();
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored file is the one its record names.
    #[test]
    fn vendored_htmx_matches_its_recorded_sha256() {
        let record = include_str!("../../assets/console/vendor/htmx/VENDORED.md");
        let htmx = ASSETS.iter().position(|a| a.name == "htmx.min.js").unwrap();
        let sha = ETAGS[htmx].trim_matches('"');
        assert!(record.contains(sha), "VENDORED.md does not record {sha}");
    }
}
