//! The live tail of a bus: the page (bus, optional pattern) and its
//! stream, the API's own feed ([`crate::events::http::tail_feed`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{SECTION, may, named, page_status};
use crate::AppState;
use crate::console::session::SignedIn;
use crate::console::{Chrome, gate, render, service_error_page};
use crate::events::http as events_http;
use crate::service::{ErrorKind, ServiceError};

// ----- Live tail --------------------------------------------------------------------

/// The tail's bus and optional pattern (JSON text).
#[derive(Deserialize, Default)]
pub(in crate::console) struct TailQuery {
    #[serde(default)]
    bus: String,
    #[serde(default)]
    pattern: String,
}

impl TailQuery {
    fn pattern(&self) -> Option<&str> {
        Some(self.pattern.trim()).filter(|p| !p.is_empty())
    }
}

#[derive(askama::Template)]
#[template(path = "console/events_tail.html")]
struct TailPage {
    chrome: Chrome,
    bus: String,
    pattern: String,
    /// The buses to pick from, when the principal may list them.
    buses: Vec<String>,
    /// Why the pattern cannot be used; the stream is not offered then.
    error: String,
}

/// `GET /events/tail?bus=&pattern=`: the tail's form and, once a bus is
/// chosen (`events:Tail` on it), the live list `events_tail.js` fills. A
/// pattern that does not compile is a 400 page naming the fault.
pub(in crate::console) async fn tail(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<TailQuery>,
) -> Response {
    let chrome = signed_in.chrome("Live tail", SECTION);
    let principal = &signed_in.principal;
    let bus = query.bus.trim().to_string();
    let mut status = StatusCode::OK;
    let mut error = String::new();
    if !bus.is_empty() {
        let checked = async {
            gate(
                &state,
                principal,
                "GET",
                "/v1/buses/{name}/tail",
                &named(&bus),
            )
            .await?;
            if !state.events.bus_exists(&bus) {
                return Err(ServiceError::not_found(
                    "NoSuchBus",
                    format!("no bus named {bus}"),
                ));
            }
            events_http::tail_filter(query.pattern()).map(|_| ())
        };
        match checked.await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Forbidden => return service_error_page(chrome, e),
            Err(e) => {
                status = page_status(&e);
                error = e.message;
            }
        }
    }
    let buses = if may(principal, "buses:List", "bus/*") {
        match state.store.list_buses().await {
            Ok(list) => list.into_iter().map(|b| b.name).collect(),
            Err(e) => return service_error_page(chrome, e.into()),
        }
    } else {
        Vec::new()
    };
    let page = TailPage {
        chrome,
        bus,
        pattern: query.pattern,
        buses,
        error,
    };
    (status, render(&page)).into_response()
}

/// `GET /events/tail/stream?bus=&pattern=`: the API's live tail of the bus
/// (`GET /v1/buses/{name}/tail`, `events:Tail`), the same feed.
pub(in crate::console) async fn tail_stream(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<TailQuery>,
) -> Response {
    let bus = query.bus.trim();
    let feed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/buses/{name}/tail",
            &named(bus),
        )
        .await?;
        events_http::tail_feed(&state, bus, query.pattern())
    };
    match feed.await {
        Ok(sse) => sse.into_response(),
        Err(e) => service_error_page(signed_in.chrome("Live tail", SECTION), e),
    }
}
