//! Dead letters: the list with redrive (ticked ones, all, or all of a
//! rule) and one dead letter's page (an audited read, as the API's is).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{SECTION, pretty_text};
use crate::AppState;
use crate::console::pages::time_text;
use crate::console::session::{SignedIn, check_csrf};
use crate::console::{Chrome, audited, gate, render, service_error_page, status_of};
use crate::events::put_events::RedriveRequest;

/// How many dead letters the list shows.
const DEAD_LETTER_PAGE: i64 = 200;

// ----- Dead letters ---------------------------------------------------------------

/// The dead-letter list's filter and the outcome of the last redrive.
#[derive(Deserialize, Default)]
pub(in crate::console) struct DeadLetterFilter {
    #[serde(default)]
    rule: String,
    redriven: Option<usize>,
    not_found: Option<usize>,
}

struct DeadLetterRow {
    id: String,
    rule: String,
    target_id: String,
    attempts: i64,
    error: String,
    failed: String,
}

#[derive(askama::Template)]
#[template(path = "console/events_dlq.html")]
struct DeadLettersPage {
    chrome: Chrome,
    rule: String,
    /// What the last redrive did, for the note above the list.
    redriven: Option<usize>,
    not_found: usize,
    letters: Vec<DeadLetterRow>,
    limit: i64,
}

/// `GET /dlq` (`?rule=` to keep one rule's): as `GET /v1/dlq` (`dlq:List`).
pub(in crate::console) async fn dead_letters(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<DeadLetterFilter>,
) -> Response {
    let chrome = signed_in.chrome("Dead letters", SECTION);
    let rule = filter.rule.trim().to_string();
    let listed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/dlq",
            &HashMap::new(),
        )
        .await?;
        let rule = Some(rule.as_str()).filter(|r| !r.is_empty());
        state
            .dead_letters()
            .list(rule, Some(DEAD_LETTER_PAGE))
            .await
    };
    let list = match listed.await {
        Ok(list) => list,
        Err(e) => return service_error_page(chrome, e),
    };
    let letters = list
        .into_iter()
        .map(|letter| DeadLetterRow {
            failed: time_text(letter.failed_at),
            id: letter.id,
            rule: letter.rule,
            target_id: letter.target_id,
            attempts: letter.attempts,
            error: letter.last_error,
        })
        .collect();
    render(&DeadLettersPage {
        chrome,
        rule,
        redriven: filter.redriven,
        not_found: filter.not_found.unwrap_or(0),
        letters,
        limit: DEAD_LETTER_PAGE,
    })
}

/// What the redrive form sent: `csrf`, an `id` per ticked dead letter,
/// `all=true` for every one, `rule` for every one of a rule. Pairs, since
/// `id` repeats.
struct RedriveForm {
    csrf: String,
    request: RedriveRequest,
}

impl RedriveForm {
    fn new(pairs: Vec<(String, String)>) -> RedriveForm {
        let mut form = RedriveForm {
            csrf: String::new(),
            request: RedriveRequest::default(),
        };
        for (key, value) in pairs {
            match key.as_str() {
                "csrf" => form.csrf = value,
                "id" if !value.trim().is_empty() => form.request.ids.push(value),
                "all" => form.request.all = value == "true",
                "rule" if !value.trim().is_empty() => form.request.rule = Some(value),
                _ => {}
            }
        }
        form
    }
}

/// `POST /dlq/redrive`: as `POST /v1/dlq/redrive` (`dlq:Redrive`), then
/// back to the list with how many were redriven.
pub(in crate::console) async fn redrive(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = RedriveForm::new(pairs);
    let path = "/dlq/redrive";
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let done = async {
        gate(
            &state,
            principal,
            "POST",
            "/v1/dlq/redrive",
            &HashMap::new(),
        )
        .await?;
        state.dead_letters().redrive(form.request).await
    };
    match audited(&state, principal, path, done.await).await {
        Ok(done) => Redirect::to(&format!(
            "/dlq?redriven={}&not_found={}",
            done.redriven.len(),
            done.not_found.len()
        ))
        .into_response(),
        Err(e) => service_error_page(signed_in.chrome("Dead letters", SECTION), e),
    }
}

#[derive(askama::Template)]
#[template(path = "console/events_dead_letter.html")]
struct DeadLetterPage {
    chrome: Chrome,
    id: String,
    rule: String,
    target_id: String,
    attempts: i64,
    error: String,
    created: String,
    failed: String,
    event_id: String,
    /// The event, pretty-printed.
    event: String,
}

/// `GET /dlq/{id}`: as `GET /v1/dlq/{id}` (`dlq:Show`), an audited read
/// there and so here.
pub(in crate::console) async fn dead_letter(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Dead letter {id}"), SECTION);
    let principal = &signed_in.principal;
    let params = HashMap::from([("id".to_string(), id.clone())]);
    let allowed = gate(&state, principal, "GET", "/v1/dlq/{id}", &params).await;
    if let Err(e) = allowed {
        return service_error_page(chrome, e);
    }
    let found = state.dead_letters().get(&id).await;
    let status = found.as_ref().map_or_else(status_of, |_| StatusCode::OK);
    let path = format!("/dlq/{id}");
    crate::api::audit_call(&state, principal, &Method::GET, &path, status).await;
    match found {
        Ok(letter) => render(&DeadLetterPage {
            chrome,
            event: pretty_text(&letter.event.body),
            event_id: letter.event.id,
            created: time_text(letter.created_at),
            failed: time_text(letter.failed_at),
            id: letter.id,
            rule: letter.rule,
            target_id: letter.target_id,
            attempts: letter.attempts,
            error: letter.last_error,
        }),
        Err(e) => service_error_page(chrome, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redrive_form_collects_every_ticked_id() {
        let pairs = [
            ("csrf", "s"),
            ("id", "a"),
            ("id", "b"),
            ("id", " "),
            ("rule", ""),
        ];
        let form = RedriveForm::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        assert_eq!(form.csrf, "s");
        assert_eq!(form.request.ids, ["a", "b"]);
        assert!(!form.request.all);
        assert_eq!(form.request.rule, None);
    }
}
