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

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::pages::time_text;
use super::session::{CsrfForm, SignedIn, check_csrf};
use super::{Chrome, audited, gate, render, service_error_page, status_of};
use crate::AppState;
use crate::access::Principal;
use crate::events::put_events::RedriveRequest;
use crate::events::{http as events_http, replay, rules};
use crate::service::{ErrorKind, ServiceError, ServiceResult};

/// The section every page here belongs to, in the navigation.
const SECTION: &str = "/events";
/// How many dead letters the list shows.
const DEAD_LETTER_PAGE: i64 = 200;
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

// ----- Rules ----------------------------------------------------------------------

/// The rule list's filter.
#[derive(Deserialize, Default)]
pub(super) struct RuleFilter {
    #[serde(default)]
    bus: String,
}

struct RuleRow {
    name: String,
    bus: String,
    enabled: bool,
    /// `cron(...)` / `rate(...)`, or the pattern's summary.
    trigger: String,
    targets: usize,
}

#[derive(askama::Template)]
#[template(path = "console/events_rules.html")]
struct RulesPage {
    chrome: Chrome,
    bus: String,
    rules: Vec<RuleRow>,
}

/// `GET /rules` (`?bus=` to keep one bus's): as `GET /v1/rules` (`rules:List`).
pub(super) async fn rules_list(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<RuleFilter>,
) -> Response {
    let chrome = signed_in.chrome("Rules", SECTION);
    let allowed = gate(
        &state,
        &signed_in.principal,
        "GET",
        "/v1/rules",
        &HashMap::new(),
    )
    .await;
    if let Err(e) = allowed {
        return service_error_page(chrome, e);
    }
    let bus = filter.bus.trim().to_string();
    let mut list: Vec<_> = state
        .rules()
        .list()
        .iter()
        .map(|r| rules::view(r))
        .filter(|r| bus.is_empty() || r.bus == bus)
        .collect();
    list.sort_by(|a, b| (&a.bus, &a.name).cmp(&(&b.bus, &b.name)));
    let rules = list
        .into_iter()
        .map(|rule| RuleRow {
            trigger: match (&rule.schedule, &rule.pattern) {
                (Some(schedule), _) => schedule.clone(),
                (None, Some(pattern)) => summary(pattern),
                (None, None) => String::new(),
            },
            targets: rule.targets.len(),
            enabled: rule.enabled,
            name: rule.name,
            bus: rule.bus,
        })
        .collect();
    render(&RulesPage { chrome, bus, rules })
}

/// One target of a rule, spelled out.
#[derive(Debug, Default, PartialEq)]
struct TargetRow {
    id: String,
    kind: String,
    /// Where it delivers: the URL, workflow, bus, document and nodes.
    destination: String,
    /// The role it acts as; empty when it acts as the rule's author.
    role: String,
    /// How the event is turned into its input (`Input`, `InputPath`,
    /// `InputTransformer`), pretty-printed; empty for the whole event.
    input: String,
    /// Retries and maximum event age before a dead letter.
    retry: String,
}

impl TargetRow {
    /// A target as the rule's view shows it (`rules::view`: PascalCase,
    /// sealed secrets replaced by `HasSecret`).
    fn new(target: &Value) -> TargetRow {
        let text = |key: &str| target.get(key).and_then(Value::as_str).unwrap_or("");
        let list = |key: &str| -> Vec<String> {
            target
                .get(key)
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let kind = text("Kind").to_string();
        let destination = match kind.as_str() {
            "webhook" => {
                let signed = target.get("HasSecret") == Some(&Value::Bool(true));
                let url = text("Url").to_string();
                if signed {
                    format!("{url} (signed)")
                } else {
                    url
                }
            }
            "workflow" => format!("workflow {}", text("Workflow")),
            "bus" => format!("bus {}", text("Bus")),
            "run-command" => {
                let document = match text("Document") {
                    "" => "the default document".to_string(),
                    name => name.to_string(),
                };
                let mut nodes = list("NodeIds");
                nodes.extend(list("Targets"));
                format!("{document} on {}", nodes.join(" "))
            }
            "log" => "the server log".to_string(),
            _ => String::new(),
        };
        let input = if let Some(transformer) = target.get("InputTransformer") {
            format!("InputTransformer {}", pretty(transformer))
        } else if !text("InputPath").is_empty() {
            format!("InputPath {}", text("InputPath"))
        } else if let Some(input) = target.get("Input").and_then(Value::as_str) {
            format!("Input {}", pretty_text(input))
        } else {
            String::new()
        };
        let policy = target.get("RetryPolicy");
        let number = |key: &str| policy.and_then(|p| p.get(key)).and_then(Value::as_u64);
        let retries = number("MaximumRetryAttempts")
            .unwrap_or(u64::from(crate::events::targets::DEFAULT_MAX_RETRIES));
        let age = number("MaximumEventAgeInSeconds")
            .unwrap_or(crate::events::targets::DEFAULT_MAX_AGE_SECS);
        TargetRow {
            id: text("Id").to_string(),
            kind,
            destination,
            role: text("RoleArn").to_string(),
            input,
            retry: format!("{retries} retries within {age} s, then a dead letter"),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "console/events_rule.html")]
struct RulePage {
    chrome: Chrome,
    name: String,
    bus: String,
    description: String,
    enabled: bool,
    /// The pattern, pretty-printed; empty for a schedule.
    pattern: String,
    schedule: String,
    timezone: String,
    author: String,
    created: String,
    updated: String,
    last_fired: String,
    targets: Vec<TargetRow>,
}

/// `GET /rules/{name}`: as `GET /v1/rules/{name}` (`rules:Describe`).
pub(super) async fn rule(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(name): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Rule {name}"), SECTION);
    let found = async {
        let params = named(&name);
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/rules/{name}",
            &params,
        )
        .await?;
        state.rules().get(&name)
    };
    match found.await {
        Ok(compiled) => render(&rule_page(chrome, rules::view(&compiled))),
        Err(e) => service_error_page(chrome, e),
    }
}

fn rule_page(chrome: Chrome, rule: operon_api::events::Rule) -> RulePage {
    RulePage {
        chrome,
        pattern: rule.pattern.as_ref().map(pretty).unwrap_or_default(),
        schedule: rule.schedule.unwrap_or_default(),
        timezone: rule.timezone.unwrap_or_default(),
        description: rule.description.unwrap_or_default(),
        author: rule.author.unwrap_or_default(),
        created: time_text(rule.created_at),
        updated: time_text(rule.updated_at),
        last_fired: rule.last_fired_at.map_or_else(String::new, time_text),
        targets: rule.targets.iter().map(TargetRow::new).collect(),
        enabled: rule.enabled,
        name: rule.name,
        bus: rule.bus,
    }
}

/// `POST /rules/{name}/enable`: as `POST /v1/rules/{name}/enable` (`rules:Enable`).
pub(super) async fn enable_rule(
    state: State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    name: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    set_enabled(state, signed_in, headers, name, form, true).await
}

/// `POST /rules/{name}/disable`: as `POST /v1/rules/{name}/disable` (`rules:Disable`).
pub(super) async fn disable_rule(
    state: State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    name: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    set_enabled(state, signed_in, headers, name, form, false).await
}

async fn set_enabled(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
    enabled: bool,
) -> Response {
    let verb = if enabled { "enable" } else { "disable" };
    let path = format!("/rules/{name}/{verb}");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let changed = async {
        let route = format!("/v1/rules/{{name}}/{verb}");
        gate(&state, principal, "POST", &route, &named(&name)).await?;
        state.rules().set_enabled(&name, enabled).await
    };
    match audited(&state, principal, &path, changed.await).await {
        Ok(_) => Redirect::to(&format!("/rules/{}", urlencoding_path(&name))).into_response(),
        Err(e) => service_error_page(signed_in.chrome(&format!("Rule {name}"), SECTION), e),
    }
}

/// A name as one path segment (names are letters, digits, `-`, `_`, `.`;
/// anything else is percent-encoded all the same).
fn urlencoding_path(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ----- Live tail --------------------------------------------------------------------

/// The tail's bus and optional pattern (JSON text).
#[derive(Deserialize, Default)]
pub(super) struct TailQuery {
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
pub(super) async fn tail(
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
pub(super) async fn tail_stream(
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

// ----- Dead letters ---------------------------------------------------------------

/// The dead-letter list's filter and the outcome of the last redrive.
#[derive(Deserialize, Default)]
pub(super) struct DeadLetterFilter {
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
pub(super) async fn dead_letters(
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
pub(super) async fn redrive(
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
pub(super) async fn dead_letter(
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
pub(super) struct ArchiveForm {
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
pub(super) struct ArchivesQuery {
    #[serde(default)]
    created: String,
}

/// `GET /archives`: as `GET /v1/archives` (`archives:List`), with the
/// form that creates one.
pub(super) async fn archives(
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
pub(super) async fn create_archive(
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
            urlencoding_path(&archive.name)
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
pub(super) struct ReplayForm {
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
pub(super) struct ReplaysQuery {
    #[serde(default)]
    started: String,
}

/// `GET /replays`: as `GET /v1/replays` (`replays:List`), with the form
/// that starts one.
pub(super) async fn replays(
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
pub(super) async fn start_replay(
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
            Redirect::to(&format!("/replays?started={}", urlencoding_path(&name))).into_response()
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
#[path = "events_tests.rs"]
mod tests;
