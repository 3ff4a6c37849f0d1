//! The console's static files, embedded in the binary (nothing is fetched
//! at build or run time) and served at `/assets/{name}` with a strong
//! `ETag` (their SHA-256), so browsers revalidate them cheaply, and gzipped
//! for browsers that accept it (compressed once, on first use): the
//! vendored scripts are most of a page's transfer.

use std::io::Write;
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
    Asset {
        // The terminal page (`sessions.rs`).
        name: "terminal.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/terminal.js"),
    },
    Asset {
        // The terminal and the player (`sessions.rs`).
        name: "terminal.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/console/terminal.css"),
    },
    Asset {
        // xterm.js's own styles under the console's CSP (`sessions.rs`).
        name: "xterm-styles.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/xterm-styles.js"),
    },
    Asset {
        // The session page's recording player (`sessions.rs`).
        name: "player.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/player.js"),
    },
    Asset {
        // Vendored; see assets/console/vendor/xterm/VENDORED.md.
        name: "xterm.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/vendor/xterm/xterm.js"),
    },
    Asset {
        // Vendored; see assets/console/vendor/xterm/VENDORED.md.
        name: "xterm.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/console/vendor/xterm/xterm.css"),
    },
    Asset {
        // Vendored; see assets/console/vendor/xterm/VENDORED.md.
        name: "addon-fit.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/vendor/xterm/addon-fit.js"),
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

/// Each asset gzipped at the best ratio, in [`ASSETS`] order: computed once.
static GZIPPED: LazyLock<Vec<Vec<u8>>> =
    LazyLock::new(|| ASSETS.iter().map(|a| gzip(a.bytes)).collect());

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Whether `Accept-Encoding` accepts gzip (named, or `*`, and not with
/// `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(accepted) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    accepted.split(',').any(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// `GET /assets/{name}`: the file (gzipped when accepted), or 304 when
/// the browser's copy is current, or a 404 page.
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
    let gzipped = accepts_gzip(&headers);
    // Each representation has its own strong validator.
    let etag = &if gzipped {
        format!("{}-gz\"", ETAGS[index].trim_end_matches('"'))
    } else {
        ETAGS[index].clone()
    };
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let status = if cached {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut response = match (cached, gzipped) {
        (true, _) => status.into_response(),
        (false, true) => (status, GZIPPED[index].clone()).into_response(),
        (false, false) => (status, asset.bytes).into_response(),
    };
    let out = response.headers_mut();
    if gzipped && !cached {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
        out.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        assert!(accepts_gzip(&accept("gzip")));
        assert!(accepts_gzip(&accept("br, GZIP;q=0.5, deflate")));
        assert!(accepts_gzip(&accept("*")));
        assert!(!accepts_gzip(&accept("gzip;q=0")));
        assert!(!accepts_gzip(&accept("gzip; q=0.0, br")));
        assert!(!accepts_gzip(&accept("br, deflate")));
        assert!(!accepts_gzip(&accept("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_gzipped_asset_unpacks_to_its_bytes_and_is_smaller() {
        for (asset, gzipped) in ASSETS.iter().zip(GZIPPED.iter()) {
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(gzipped.as_slice())
                .read_to_end(&mut unpacked)
                .unwrap();
            assert_eq!(unpacked, asset.bytes, "{}", asset.name);
            assert!(gzipped.len() < asset.bytes.len(), "{}", asset.name);
        }
    }

    /// The gzipped answer, then a 304 for its own validator; the plain
    /// answer has another validator.
    #[tokio::test]
    async fn assets_are_served_gzipped_with_their_own_validator() {
        let gzipped = serve(Path("htmx.min.js".into()), accept("gzip, br")).await;
        assert_eq!(gzipped.status(), StatusCode::OK);
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gzipped.headers()[header::VARY], "accept-encoding");
        let gz_tag = gzipped.headers()[header::ETAG].clone();
        let plain = serve(Path("htmx.min.js".into()), HeaderMap::new()).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_ne!(plain.headers()[header::ETAG], gz_tag);
        let mut again = accept("gzip");
        again.insert(header::IF_NONE_MATCH, gz_tag);
        let revalidated = serve(Path("htmx.min.js".into()), again).await;
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
        assert!(
            revalidated
                .headers()
                .get(header::CONTENT_ENCODING)
                .is_none()
        );
    }

    /// The vendored file is the one its record names.
    #[test]
    fn vendored_htmx_matches_its_recorded_sha256() {
        let record = include_str!("../../assets/console/vendor/htmx/VENDORED.md");
        let htmx = ASSETS.iter().position(|a| a.name == "htmx.min.js").unwrap();
        let sha = ETAGS[htmx].trim_matches('"');
        assert!(record.contains(sha), "VENDORED.md does not record {sha}");
    }

    /// The vendored xterm.js files are the ones their record names.
    #[test]
    fn vendored_xterm_matches_its_recorded_sha256() {
        let record = include_str!("../../assets/console/vendor/xterm/VENDORED.md");
        for name in ["xterm.js", "xterm.css", "addon-fit.js"] {
            let index = ASSETS.iter().position(|a| a.name == name).unwrap();
            let sha = ETAGS[index].trim_matches('"');
            let line = format!("| sha256 of `{name}` | {sha} |");
            assert!(record.contains(&line), "VENDORED.md does not record {line}");
        }
    }
}
