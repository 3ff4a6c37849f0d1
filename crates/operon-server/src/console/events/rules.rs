//! Rules: the list (state, schedule or pattern summary, target count),
//! a rule's page (the pattern pretty-printed, every target spelled out)
//! and its enable/disable buttons.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::{SECTION, named, pretty, pretty_text, summary};
use crate::AppState;
use crate::console::pages::time_text;
use crate::console::path_segment;
use crate::console::session::{CsrfForm, SignedIn, check_csrf};
use crate::console::{Chrome, audited, gate, render, service_error_page};
use crate::events::rules;

// ----- Rules ----------------------------------------------------------------------

/// The rule list's filter.
#[derive(Deserialize, Default)]
pub(in crate::console) struct RuleFilter {
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
pub(in crate::console) async fn rules_list(
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
pub(in crate::console) async fn rule(
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
pub(in crate::console) async fn enable_rule(
    state: State<Arc<AppState>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    name: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    set_enabled(state, signed_in, headers, name, form, true).await
}

/// `POST /rules/{name}/disable`: as `POST /v1/rules/{name}/disable` (`rules:Disable`).
pub(in crate::console) async fn disable_rule(
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
        Ok(_) => Redirect::to(&format!("/rules/{}", path_segment(&name))).into_response(),
        Err(e) => service_error_page(signed_in.chrome(&format!("Rule {name}"), SECTION), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_webhook_target_says_it_signs_and_how_long_it_retries() {
        let row = TargetRow::new(&json!({
            "Id": "hook", "Kind": "webhook", "Url": "https://example.test/in",
            "HasSecret": true, "RoleArn": "role/notifier",
            "RetryPolicy": {"MaximumRetryAttempts": 3}
        }));
        assert_eq!(row.id, "hook");
        assert_eq!(row.destination, "https://example.test/in (signed)");
        assert_eq!(row.role, "role/notifier");
        assert_eq!(row.input, "");
        assert_eq!(row.retry, "3 retries within 86400 s, then a dead letter");
    }

    #[test]
    fn a_run_command_target_names_its_document_and_nodes_and_its_input() {
        let row = TargetRow::new(&json!({
            "Id": "fix", "Kind": "run-command", "NodeIds": ["web-1"],
            "Targets": ["tag:env=prod"],
            "InputTransformer": {"InputPathsMap": {"n": "$.detail.node"},
                "InputTemplate": "{\"node\": <n>}"}
        }));
        assert_eq!(
            row.destination,
            "the default document on web-1 tag:env=prod"
        );
        assert!(
            row.input.starts_with("InputTransformer {\n"),
            "{}",
            row.input
        );
        assert!(
            row.input.contains("\"n\": \"$.detail.node\""),
            "{}",
            row.input
        );
        assert_eq!(row.retry, "185 retries within 86400 s, then a dead letter");
        let constant = TargetRow::new(&json!({"Id": "l", "Kind": "log", "Input": "{\"a\":1}"}));
        assert_eq!(constant.destination, "the server log");
        assert_eq!(constant.input, "Input {\n  \"a\": 1\n}");
    }
}
