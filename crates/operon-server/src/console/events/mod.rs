//! The event bus in the console: buses, rules (the pattern pretty-printed,
//! the targets spelled out, enable/disable), a live tail of a bus, the
//! dead letters with redrive, archives and replays.
//!
//! Every page is authorized as its `/v1` twin is: through [`gate`] with the
//! twin's catalogue route (`buses:List`, `rules:List`, `rules:Describe`,
//! `events:Tail`, `dlq:List`, `dlq:Show`, ...), or, for starting a replay,
//! by the service itself (`replays:Start` and `events:Put` on the bus), and
//! reads and acts through the same services the API's handlers call. The
//! live tail is the API's own feed ([`crate::events::http::tail_feed`]):
//! the same subscription, the same pattern matcher; `events_tail.js` shows
//! it, and without JavaScript the page says where the raw stream is.
//!
//! What a page adds beside its main content (rule counts on the bus list,
//! the archive picker of the replay form) is shown only when the principal
//! may see it, checked without recording: a refusal of an extra is not an
//! event worth an audit record, and the page itself was gated.

mod dead_letters;
mod replays;
mod rules;
mod tail;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::pages::time_text;
use super::session::SignedIn;
use super::{Chrome, gate, render, service_error_page, status_of};
use crate::AppState;
use crate::access::Principal;
use crate::service::{ErrorKind, ServiceError};

pub(super) use dead_letters::{dead_letter, dead_letters, redrive};
pub(super) use replays::{archives, create_archive, replays, start_replay};
pub(super) use rules::{disable_rule, enable_rule, rule, rules_list};
pub(super) use tail::{tail, tail_stream};

/// The section every page here belongs to, in the navigation.
const SECTION: &str = "/events";
/// How long a pattern may be in a list before it is cut short.
const SUMMARY_LENGTH: usize = 80;

/// The path parameters `{name: value}` of a catalogue route, for [`gate`].
fn named(value: &str) -> HashMap<String, String> {
    HashMap::from([("name".to_string(), value.to_string())])
}

/// Whether `principal` may do `action` on `resource`, asked without an
/// audit record (for what a page shows besides its gated content).
fn may(principal: &Principal, action: &str, resource: &str) -> bool {
    principal
        .decide(&principal.request(action, resource))
        .is_ok()
}

/// The status a page answers a failed service call with (as
/// [`service_error_page`] does), for forms shown again with the error.
fn page_status(e: &ServiceError) -> StatusCode {
    match e.kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        _ => status_of(e),
    }
}

/// JSON as people read it: indented.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// JSON text (as stored) indented, or as it is when it is not JSON.
fn pretty_text(text: &str) -> String {
    serde_json::from_str::<Value>(text).map_or_else(|_| text.to_string(), |v| pretty(&v))
}

/// A one-line summary of a pattern: its compact JSON, cut at
/// [`SUMMARY_LENGTH`] characters.
fn summary(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SUMMARY_LENGTH {
        return text;
    }
    let cut: String = text.chars().take(SUMMARY_LENGTH).collect();
    format!("{cut}…")
}

// ----- Buses ----------------------------------------------------------------------

struct BusRow {
    name: String,
    created: String,
    /// `None` when the principal may not list rules.
    rules: Option<usize>,
}

#[derive(askama::Template)]
#[template(path = "console/events_buses.html")]
struct BusesPage {
    chrome: Chrome,
    buses: Vec<BusRow>,
}

/// `GET /events`: the buses, as `GET /v1/buses` (`buses:List`).
pub(super) async fn buses(State(state): State<Arc<AppState>>, signed_in: SignedIn) -> Response {
    let chrome = signed_in.chrome("Event buses", SECTION);
    let principal = &signed_in.principal;
    let listed = async {
        gate(&state, principal, "GET", "/v1/buses", &HashMap::new()).await?;
        Ok::<_, ServiceError>(state.store.list_buses().await?)
    };
    let list = match listed.await {
        Ok(list) => list,
        Err(e) => return service_error_page(chrome, e),
    };
    let rules = may(principal, "rules:List", "rule/*").then(|| state.rules().list());
    let buses = list
        .into_iter()
        .map(|bus| BusRow {
            rules: rules
                .as_ref()
                .map(|all| all.iter().filter(|r| r.rule.bus == bus.name).count()),
            created: time_text(bus.created_at),
            name: bus.name,
        })
        .collect();
    render(&BusesPage { chrome, buses })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_long_pattern_is_summarized_on_one_line() {
        let short = json!({"source": ["app"]});
        assert_eq!(summary(&short), r#"{"source":["app"]}"#);
        let long = json!({"detail": {"message": ["x".repeat(200)]}});
        let text = summary(&long);
        assert_eq!(text.chars().count(), SUMMARY_LENGTH + 1);
        assert!(text.ends_with('…'));
    }
}
