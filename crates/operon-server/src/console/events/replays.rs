//! Archives (the list and the create form) and replays (the list with
//! state and progress, and the start form).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::{SECTION, may, page_status, pretty_text};
use crate::AppState;
use crate::console::pages::time_text;
use crate::console::path_segment;
use crate::console::session::{SignedIn, check_csrf};
use crate::console::{Chrome, audited, gate, render, service_error_page};
use crate::events::replay;
use crate::service::{ServiceError, ServiceResult};

// ----- Archives and replays ----------------------------------------------------------

struct ArchiveRow {
    name: String,
    bus: String,
    pattern: String,
    retention: String,
    created: String,
}

/// The create-archive form, every field text.
#[derive(Deserialize, Default)]
pub(in crate::console) struct ArchiveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    bus: String,
    /// An event pattern as JSON; every event of the bus when empty.
    #[serde(default)]
    pattern: String,
    /// Whole days; forever when empty.
    #[serde(default)]
    retention_days: String,
}

impl ArchiveForm {
    /// The archive the form asks for, as `POST /v1/archives` would take
    /// it (the pattern as compact JSON), or what is wrong with a field.
    fn new_archive(&self) -> Result<replay::NewArchive, String> {
        let pattern = match self.pattern.trim() {
            "" => None,
            text => match serde_json::from_str::<Value>(text) {
                Ok(value @ Value::Object(_)) => crate::events::pattern_text(Some(value)),
                Ok(_) => return Err("the pattern must be a JSON object".into()),
                Err(e) => return Err(format!("the pattern is not JSON: {e}")),
            },
        };
        let retention_days = match self.retention_days.trim() {
            "" => None,
            text => Some(text.parse::<i64>().map_err(|_| {
                format!("the retention must be a whole number of days, not {text:?}")
            })?),
        };
        let bus = Some(self.bus.trim().to_string()).filter(|b| !b.is_empty());
        Ok(replay::NewArchive {
            name: self.name.trim().to_string(),
            bus,
            pattern,
            retention_days,
        })
    }
}

#[derive(askama::Template)]
#[template(path = "console/events_archives.html")]
struct ArchivesPage {
    chrome: Chrome,
    /// `None` when the principal may not list archives (a refused
    /// creation shown again to someone who may only create them).
    archives: Option<Vec<ArchiveRow>>,
    /// The buses to pick from, when the principal may list them.
    buses: Vec<String>,
    form: ArchiveForm,
    error: String,
    created: String,
}

/// The archives' query: the one just created.
#[derive(Deserialize, Default)]
pub(in crate::console) struct ArchivesQuery {
    #[serde(default)]
    created: String,
}

/// `GET /archives`: as `GET /v1/archives` (`archives:List`), with the
/// form that creates one.
pub(in crate::console) async fn archives(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<ArchivesQuery>,
) -> Response {
    let chrome = signed_in.chrome("Archives", SECTION);
    let allowed = gate(
        &state,
        &signed_in.principal,
        "GET",
        "/v1/archives",
        &HashMap::new(),
    )
    .await;
    if let Err(e) = allowed {
        return service_error_page(chrome, e);
    }
    let form = ArchiveForm {
        bus: "default".into(),
        ..ArchiveForm::default()
    };
    match archives_page(&state, &signed_in, chrome, form, String::new()).await {
        Ok(mut page) => {
            page.created = query.created;
            render(&page)
        }
        Err(e) => service_error_page(signed_in.chrome("Archives", SECTION), e),
    }
}

/// The archives page: the list when the principal may see it, the form
/// with `form`'s values and `error`.
async fn archives_page(
    state: &AppState,
    signed_in: &SignedIn,
    chrome: Chrome,
    form: ArchiveForm,
    error: String,
) -> ServiceResult<ArchivesPage> {
    let principal = &signed_in.principal;
    let archives = if may(principal, "archives:List", "archive/*") {
        let rows = state
            .replays()
            .list_archives()
            .await?
            .into_iter()
            .map(|a| ArchiveRow {
                pattern: a.pattern.as_deref().map(pretty_text).unwrap_or_default(),
                retention: a
                    .retention_days
                    .map_or_else(|| "forever".to_string(), |d| format!("{d} days")),
                created: time_text(a.created_at),
                name: a.name,
                bus: a.bus,
            })
            .collect();
        Some(rows)
    } else {
        None
    };
    let buses = if may(principal, "buses:List", "bus/*") {
        state
            .store
            .list_buses()
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect()
    } else {
        Vec::new()
    };
    Ok(ArchivesPage {
        chrome,
        archives,
        buses,
        form,
        error,
        created: String::new(),
    })
}

/// `POST /archives`: create an archive as `POST /v1/archives` does (the
/// service checks `archives:Create`, the bus, the pattern, the
/// retention), then back to the list; a refusal or a bad field shows the
/// form again with the error.
pub(in crate::console) async fn create_archive(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<ArchiveForm>,
) -> Response {
    let path = "/archives";
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    // A bad field is a failed call too, as the API's refused body is.
    let created = match form.new_archive() {
        Ok(new) => state.replays().create_archive(principal, new).await,
        Err(message) => Err(ServiceError::invalid("InvalidArchive", message)),
    };
    match audited(&state, principal, path, created).await {
        Ok(archive) => Redirect::to(&format!(
            "/archives?created={}",
            path_segment(&archive.name)
        ))
        .into_response(),
        Err(e) => {
            let status = page_status(&e);
            let chrome = signed_in.chrome("Archives", SECTION);
            match archives_page(&state, &signed_in, chrome, form, e.message).await {
                Ok(page) => (status, render(&page)).into_response(),
                Err(e) => service_error_page(signed_in.chrome("Archives", SECTION), e),
            }
        }
    }
}

/// The start-replay form, every field text.
#[derive(Deserialize, Default)]
pub(in crate::console) struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    archive: String,
    /// RFC 3339 or `YYYY-MM-DD`.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Rule names separated by spaces, commas or lines; all when empty.
    #[serde(default)]
    rules: String,
}

impl ReplayForm {
    fn new_replay(&self) -> replay::NewReplay {
        replay::NewReplay {
            name: self.name.trim().to_string(),
            archive: self.archive.trim().to_string(),
            from: self.from.trim().to_string(),
            to: self.to.trim().to_string(),
            rules: words(&self.rules),
        }
    }
}

/// Names separated by spaces, commas or lines.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

struct ReplayRow {
    name: String,
    archive: String,
    window: String,
    rules: String,
    state: String,
    events_replayed: i64,
    started: String,
    finished: String,
    error: String,
}

#[derive(askama::Template)]
#[template(path = "console/events_replays.html")]
struct ReplaysPage {
    chrome: Chrome,
    /// `None` when the principal may not list replays (a refused start
    /// shown again to someone who may only start them).
    replays: Option<Vec<ReplayRow>>,
    /// The archives to pick from, when the principal may list them.
    archive_names: Vec<String>,
    form: ReplayForm,
    error: String,
    started: String,
}

/// The replays' query: the one just started.
#[derive(Deserialize, Default)]
pub(in crate::console) struct ReplaysQuery {
    #[serde(default)]
    started: String,
}

/// `GET /replays`: as `GET /v1/replays` (`replays:List`), with the form
/// that starts one.
pub(in crate::console) async fn replays(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<ReplaysQuery>,
) -> Response {
    let chrome = signed_in.chrome("Replays", SECTION);
    let allowed = gate(
        &state,
        &signed_in.principal,
        "GET",
        "/v1/replays",
        &HashMap::new(),
    )
    .await;
    if let Err(e) = allowed {
        return service_error_page(chrome, e);
    }
    let form = ReplayForm::default();
    match replays_page(&state, &signed_in, chrome, form, String::new()).await {
        Ok(mut page) => {
            page.started = query.started;
            render(&page)
        }
        Err(e) => service_error_page(signed_in.chrome("Replays", SECTION), e),
    }
}

/// The replays page: the list when the principal may see it, the form
/// with `form`'s values and `error`.
async fn replays_page(
    state: &AppState,
    signed_in: &SignedIn,
    chrome: Chrome,
    form: ReplayForm,
    error: String,
) -> ServiceResult<ReplaysPage> {
    let principal = &signed_in.principal;
    let service = state.replays();
    let replays = if may(principal, "replays:List", "replay/*") {
        let rows = service
            .list_replays()
            .await?
            .into_iter()
            .map(|r| ReplayRow {
                window: format!("{} – {}", time_text(r.from_ms), time_text(r.to_ms)),
                rules: if r.rules.is_empty() {
                    "all".to_string()
                } else {
                    r.rules.join(", ")
                },
                started: time_text(r.started_at),
                finished: r.finished_at.map_or_else(String::new, time_text),
                error: r.error.unwrap_or_default(),
                name: r.name,
                archive: r.archive,
                state: r.state,
                events_replayed: r.events_replayed,
            })
            .collect();
        Some(rows)
    } else {
        None
    };
    let archive_names = if may(principal, "archives:List", "archive/*") {
        service
            .list_archives()
            .await?
            .into_iter()
            .map(|a| a.name)
            .collect()
    } else {
        Vec::new()
    };
    Ok(ReplaysPage {
        chrome,
        replays,
        archive_names,
        form,
        error,
        started: String::new(),
    })
}

/// `POST /replays`: start a replay as `POST /v1/replays` does (the service
/// checks `replays:Start` and `events:Put` on the archive's bus), run it
/// in the background, and go back to the list; a refusal or a bad field
/// shows the form again with the error.
pub(in crate::console) async fn start_replay(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<ReplayForm>,
) -> Response {
    let path = "/replays";
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let started = state.replays().start(principal, form.new_replay()).await;
    match audited(&state, principal, path, started).await {
        Ok(started) => {
            let name = started.replay.name.clone();
            replay::spawn_replay(state.clone(), started);
            Redirect::to(&format!("/replays?started={}", path_segment(&name))).into_response()
        }
        Err(e) => {
            let status = page_status(&e);
            let chrome = signed_in.chrome("Replays", SECTION);
            match replays_page(&state, &signed_in, chrome, form, e.message).await {
                Ok(page) => (status, render(&page)).into_response(),
                Err(e) => service_error_page(signed_in.chrome("Replays", SECTION), e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_form_takes_a_pattern_object_and_whole_days() {
        let form = ArchiveForm {
            name: " ar1 ".into(),
            bus: "ops".into(),
            pattern: "{\n  \"source\": [\"app\"]\n}".into(),
            retention_days: "30".into(),
            ..ArchiveForm::default()
        };
        let new = form.new_archive().unwrap();
        assert_eq!(new.name, "ar1");
        assert_eq!(new.bus.as_deref(), Some("ops"));
        assert_eq!(new.pattern.as_deref(), Some(r#"{"source":["app"]}"#));
        assert_eq!(new.retention_days, Some(30));
        let every = ArchiveForm::default().new_archive().unwrap();
        assert_eq!(
            (every.bus, every.pattern, every.retention_days),
            (None, None, None)
        );
        let list = ArchiveForm {
            pattern: "[1]".into(),
            ..ArchiveForm::default()
        };
        assert!(list.new_archive().unwrap_err().contains("JSON object"));
        let days = ArchiveForm {
            retention_days: "a week".into(),
            ..ArchiveForm::default()
        };
        assert!(days.new_archive().unwrap_err().contains("a week"));
    }

    #[test]
    fn replay_rules_are_names_separated_by_spaces_commas_or_lines() {
        assert_eq!(words(" r1, r2\nr3 "), ["r1", "r2", "r3"]);
        assert!(words("  ").is_empty());
    }
}
