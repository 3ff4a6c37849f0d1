//! The operations pages: compliance (`/compliance`), alarms (`/alarms`, an
//! alarm's metric charted with its threshold and its state history) and
//! incidents (`/incidents`, one's timeline, acknowledge and resolve), plus
//! the node page's compliance and metrics sections.
//!
//! Why it is shaped this way: these features' API routes are authorized by
//! their services (`compliance:Get`, `metrics:Get`, `alarms:Get`,
//! `incidents:*` per node, alarm or incident), so each page calls the same
//! principal-taking service method as its /v1 twin, and a refusal is the
//! service's own, audited there. Sections of a page that belong to another
//! feature (the node's metrics, an alarm's chart) degrade to "not permitted"
//! instead of refusing the whole page. Charts are drawn by `chart.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use operon_alarms::Statistic;
use operon_api::alarms::{Alarm, AlarmHistoryItem};
use operon_api::associations::NodeCompliance;
use serde::Deserialize;

use super::chart::{self, Chart};
use super::pages::time_text;
use super::session::{CsrfForm, SignedIn, check_csrf};
use super::{audited, path_segment, render, service_error_page};
use crate::AppState;
use crate::heal::service::IncidentQuery;
use crate::metrics::query::{By, parse_stat, stat_name};
use crate::metrics::service::{MetricQuery, TimeRange};
use crate::service::{ErrorKind, ServiceError};

const HOUR: i64 = 3_600_000;

/// Why a section of a page is not shown: "not permitted" for a refusal
/// (naming what was refused), the service's message otherwise.
pub(super) fn section_refusal(e: ServiceError) -> String {
    match e.kind {
        ErrorKind::Forbidden => format!("not permitted: {}", e.message),
        _ => e.message,
    }
}

/// A chart ready for a template: `svg` is trusted markup (`chart::render`
/// escapes everything it draws).
pub(super) struct ChartView {
    pub heading: String,
    pub svg: String,
}

/// The metrics an agent reports that a node page charts: name, heading,
/// unit, and the statistic folding several series (disks) into one.
const NODE_METRICS: [(&str, &str, &str, Statistic); 4] = [
    ("cpu.used", "CPU used", "%", Statistic::Average),
    ("mem.used_percent", "Memory used", "%", Statistic::Average),
    ("load.1", "Load (1 min)", "", Statistic::Average),
    (
        "disk.used_percent",
        "Disk used (fullest mount)",
        "%",
        Statistic::Maximum,
    ),
];

/// The node's standard metrics over the last hour, as `GET
/// /v1/metrics/query?node=NAME` reads them (`metrics:Get` on the node).
/// Empty when the node reported none; `Err` says why they are not shown.
pub(super) async fn node_charts(
    state: &AppState,
    signed_in: &SignedIn,
    node: &str,
) -> Result<Vec<ChartView>, String> {
    let now = crate::now_millis();
    let mut charts = Vec::new();
    let mut any = false;
    for (metric, heading, unit, stat) in NODE_METRICS {
        let query = MetricQuery {
            metric: metric.to_string(),
            node: Some(node.to_string()),
            dimensions: BTreeMap::new(),
            stat,
            period_secs: Some(60),
            range: TimeRange::Between {
                from: now - HOUR,
                to: Some(now),
            },
            by: By::All,
            resolution: None,
        };
        let result = state
            .metrics()
            .query(&signed_in.principal, &query)
            .await
            .map_err(section_refusal)?;
        let points: Vec<(i64, f64)> = result.series.into_iter().flat_map(|s| s.points).collect();
        any |= !points.is_empty();
        let title = format!("{heading} on {node}, last hour");
        charts.push(ChartView {
            heading: heading.to_string(),
            svg: chart::render(&Chart {
                title: &title,
                unit,
                points: &points,
                span: Some((now - HOUR, now)),
                threshold: None,
            }),
        });
    }
    Ok(if any { charts } else { Vec::new() })
}

/// One association's state on a node, as a table row.
pub(super) struct ComplianceRow {
    pub association: String,
    pub node_name: String,
    pub status: String,
    pub severity: String,
    pub at: String,
    pub resources: usize,
    /// The resources not compliant: `kind resource (outcome)`.
    pub failing: Vec<String>,
}

impl ComplianceRow {
    pub(super) fn new(c: NodeCompliance) -> ComplianceRow {
        ComplianceRow {
            resources: c.resources.len(),
            failing: c
                .resources
                .iter()
                .filter(|r| r.status != "COMPLIANT")
                .map(|r| format!("{} {} ({})", r.kind, r.resource, r.outcome))
                .collect(),
            association: c.association,
            node_name: c.node_name,
            status: c.status,
            severity: c.severity,
            at: time_text(c.at),
        }
    }
}

/// A node's compliance, as `GET /v1/compliance?node=ID` (`compliance:Get`).
pub(super) async fn node_compliance(
    state: &AppState,
    signed_in: &SignedIn,
    node_id: &str,
) -> Result<Vec<ComplianceRow>, String> {
    let list = state
        .associations()
        .list_compliance(&signed_in.principal, None, Some(node_id), None)
        .await
        .map_err(section_refusal)?;
    Ok(list.into_iter().map(ComplianceRow::new).collect())
}

/// The compliance page's filter.
#[derive(Deserialize, Default)]
pub(super) struct ComplianceFilter {
    /// `COMPLIANT`, `NON_COMPLIANT` or empty for both.
    #[serde(default)]
    status: String,
}

struct AssociationCount {
    association: String,
    severity: String,
    compliant: usize,
    non_compliant: usize,
}

#[derive(askama::Template)]
#[template(path = "console/compliance.html")]
struct CompliancePage {
    chrome: super::Chrome,
    status: String,
    associations: Vec<AssociationCount>,
    severities: Vec<AssociationCount>,
    rows: Vec<ComplianceRow>,
}

/// `GET /compliance`: counts per association and severity (`GET
/// /v1/compliance/summary`) and every node's state (`GET /v1/compliance`).
pub(super) async fn compliance(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<ComplianceFilter>,
) -> Response {
    let chrome = signed_in.chrome("Compliance", "/compliance");
    let status = filter.status.trim().to_uppercase();
    let service = state.associations();
    let principal = &signed_in.principal;
    let read = async {
        let summary = service.summary(principal).await?;
        let status = (!status.is_empty()).then_some(status.as_str());
        let list = service
            .list_compliance(principal, None, None, status)
            .await?;
        Ok::<_, ServiceError>((summary, list))
    };
    let (summary, list) = match read.await {
        Ok(read) => read,
        Err(e) => return service_error_page(chrome, e),
    };
    render(&CompliancePage {
        chrome,
        associations: summary
            .associations
            .into_iter()
            .map(|a| AssociationCount {
                association: a.association,
                severity: a.severity,
                compliant: a.compliant,
                non_compliant: a.non_compliant,
            })
            .collect(),
        severities: summary
            .severities
            .into_iter()
            .map(|s| AssociationCount {
                association: String::new(),
                severity: s.severity,
                compliant: s.compliant,
                non_compliant: s.non_compliant,
            })
            .collect(),
        rows: list.into_iter().map(ComplianceRow::new).collect(),
        status,
    })
}

/// What an alarm watches, in a few words.
struct AlarmRow {
    name: String,
    state: String,
    kind: String,
    metric: String,
    condition: String,
    scope: String,
    instances: usize,
    updated: String,
}

fn comparison_sign(comparison: Option<&str>) -> &'static str {
    match comparison.unwrap_or("GreaterThanThreshold") {
        "GreaterThanThreshold" => ">",
        "GreaterThanOrEqualToThreshold" => "≥",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "≤",
        _ => "outside",
    }
}

impl AlarmRow {
    fn new(alarm: &Alarm) -> AlarmRow {
        let spec = &alarm.spec;
        let kind = spec.kind.clone().unwrap_or_else(|| "threshold".into());
        let condition = match (&spec.rule, spec.threshold) {
            (Some(rule), _) => rule.clone(),
            (None, Some(threshold)) => format!(
                "{} {} {} for {} of {} × {}s",
                spec.statistic.as_deref().unwrap_or("Average"),
                comparison_sign(spec.comparison.as_deref()),
                threshold,
                spec.datapoints_to_alarm
                    .or(spec.evaluation_periods)
                    .unwrap_or(1),
                spec.evaluation_periods.unwrap_or(1),
                spec.period.unwrap_or(60),
            ),
            (None, None) => spec.comparison.clone().unwrap_or_default(),
        };
        let mut metric = spec.metric.clone().unwrap_or_default();
        if !spec.dimensions.is_empty() {
            let dims: Vec<String> = spec
                .dimensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            metric = format!("{metric} {{{}}}", dims.join(", "));
        }
        AlarmRow {
            name: alarm.name.clone(),
            state: alarm.state.clone(),
            kind,
            metric,
            condition,
            scope: match (&spec.node, spec.targets.is_empty()) {
                (Some(node), _) => node.clone(),
                (None, false) => spec.targets.join(", "),
                (None, true) => String::new(),
            },
            instances: alarm.instances.len(),
            updated: time_text(alarm.updated_at),
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct AlarmFilter {
    /// `OK`, `ALARM`, `INSUFFICIENT_DATA` or empty for all.
    #[serde(default)]
    state: String,
}

#[derive(askama::Template)]
#[template(path = "console/alarms.html")]
struct AlarmsPage {
    chrome: super::Chrome,
    state: String,
    states: &'static [&'static str],
    rows: Vec<AlarmRow>,
}

const ALARM_STATES: [&str; 3] = ["OK", "ALARM", "INSUFFICIENT_DATA"];

/// `GET /alarms`: the alarms `alarms:Get` allows, as `GET /v1/alarms`.
pub(super) async fn alarms(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<AlarmFilter>,
) -> Response {
    let chrome = signed_in.chrome("Alarms", "/alarms");
    let wanted = filter.state.trim().to_uppercase();
    let listed = state
        .alarms()
        .list(
            &signed_in.principal,
            (!wanted.is_empty()).then_some(wanted.as_str()),
            None,
        )
        .await;
    match listed {
        Ok(list) => render(&AlarmsPage {
            chrome,
            state: wanted,
            states: &ALARM_STATES,
            rows: list.iter().map(AlarmRow::new).collect(),
        }),
        Err(e) => service_error_page(chrome, e),
    }
}

/// An instance (a node) of an alarm.
struct InstanceRow {
    node: String,
    state: String,
    reason: String,
    updated: String,
}

struct HistoryRow {
    at: String,
    node: String,
    change: String,
    reason: String,
}

impl HistoryRow {
    fn new(item: AlarmHistoryItem) -> HistoryRow {
        HistoryRow {
            at: time_text(item.at),
            node: item.node_name.unwrap_or(item.node_id),
            change: match item.previous_state {
                Some(previous) => format!("{previous} → {}", item.state),
                None => item.state,
            },
            reason: item.reason,
        }
    }
}

#[derive(askama::Template)]
#[template(path = "console/alarm.html")]
struct AlarmPage {
    chrome: super::Chrome,
    row: AlarmRow,
    description: String,
    window: String,
    instances: Vec<InstanceRow>,
    charts: Result<Vec<ChartView>, String>,
    history: Result<Vec<HistoryRow>, String>,
}

/// How far back an alarm's chart goes: its evaluation window five times
/// over, at least three hours, at most two days.
fn chart_range(alarm: &Alarm) -> i64 {
    let period = alarm.spec.period.unwrap_or(60) as i64 * 1000;
    let periods = i64::from(alarm.spec.evaluation_periods.unwrap_or(1));
    (5 * period * periods).clamp(3 * HOUR, 48 * HOUR)
}

/// The alarm's metric per node over [`chart_range`], with its threshold,
/// as `GET /v1/metrics/query` reads it (`metrics:Get`).
async fn alarm_charts(
    state: &AppState,
    signed_in: &SignedIn,
    alarm: &Alarm,
) -> Result<Vec<ChartView>, String> {
    let spec = &alarm.spec;
    let Some(metric) = &spec.metric else {
        return Ok(Vec::new());
    };
    let stat = spec
        .statistic
        .as_deref()
        .map_or(Ok(Statistic::Average), |s| parse_stat(&s.to_lowercase()))
        .unwrap_or(Statistic::Average);
    let now = crate::now_millis();
    let from = now - chart_range(alarm);
    let query = MetricQuery {
        metric: metric.clone(),
        node: spec.node.clone(),
        dimensions: spec.dimensions.clone(),
        stat,
        period_secs: Some(spec.period.unwrap_or(60)),
        range: TimeRange::Between {
            from,
            to: Some(now),
        },
        by: By::Node,
        resolution: None,
    };
    let result = state
        .metrics()
        .query(&signed_in.principal, &query)
        .await
        .map_err(section_refusal)?;
    let mut charts: Vec<ChartView> = result
        .series
        .into_iter()
        .map(|series| {
            let node = series.node.map(|n| n.name).unwrap_or_default();
            let heading = format!("{metric} ({}) on {node}", stat_name(stat));
            let svg = chart::render(&Chart {
                title: &heading,
                unit: "",
                points: &series.points,
                span: Some((from, now)),
                threshold: spec.threshold,
            });
            ChartView { heading, svg }
        })
        .collect();
    if charts.is_empty() {
        let heading = format!("{metric} ({})", stat_name(stat));
        let svg = chart::render(&Chart {
            title: &heading,
            threshold: spec.threshold,
            ..Chart::default()
        });
        charts.push(ChartView { heading, svg });
    }
    Ok(charts)
}

/// `GET /alarms/{name}`: the alarm (`GET /v1/alarms/{name}`), its metric
/// charted with the threshold and its state history (`.../history`).
pub(super) async fn alarm(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(name): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Alarm {name}"), "/alarms");
    let alarm = match state.alarms().get(&signed_in.principal, &name).await {
        Ok(alarm) => alarm,
        Err(e) => return service_error_page(chrome, e),
    };
    let charts = alarm_charts(&state, &signed_in, &alarm).await;
    let history = state
        .alarms()
        .history(&signed_in.principal, &name, None, Some(50))
        .await
        .map(|items| items.into_iter().map(HistoryRow::new).collect())
        .map_err(section_refusal);
    let range_hours = chart_range(&alarm) / HOUR;
    render(&AlarmPage {
        chrome,
        row: AlarmRow::new(&alarm),
        description: alarm.spec.description.clone().unwrap_or_default(),
        window: format!("last {range_hours} h"),
        instances: alarm
            .instances
            .iter()
            .map(|i| InstanceRow {
                node: i.node_name.clone().unwrap_or_else(|| i.node_id.clone()),
                state: i.state.clone(),
                reason: i.reason.clone(),
                updated: time_text(i.updated_at),
            })
            .collect(),
        charts,
        history,
    })
}

struct IncidentRow {
    id: String,
    alarm: String,
    node: String,
    status: String,
    reason: String,
    opened: String,
    acknowledged: String,
}

impl IncidentRow {
    fn new(i: operon_api::heal::Incident) -> IncidentRow {
        IncidentRow {
            node: i.node_name.unwrap_or(i.node_id),
            opened: time_text(i.opened_at),
            acknowledged: match (i.acknowledged_by, i.acknowledged_at) {
                (Some(by), Some(at)) => format!("{by}, {}", time_text(at)),
                (Some(by), None) => by,
                _ => String::new(),
            },
            id: i.id,
            alarm: i.alarm,
            status: i.status,
            reason: i.reason,
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct IncidentFilter {
    /// `open`, `recovered`, `resolved` or empty for all.
    #[serde(default)]
    status: String,
}

#[derive(askama::Template)]
#[template(path = "console/incidents.html")]
struct IncidentsPage {
    chrome: super::Chrome,
    status: String,
    statuses: &'static [&'static str],
    rows: Vec<IncidentRow>,
}

/// `GET /incidents`: as `GET /v1/incidents` (`incidents:Get`).
pub(super) async fn incidents(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<IncidentFilter>,
) -> Response {
    let chrome = signed_in.chrome("Incidents", "/incidents");
    let status = filter.status.trim().to_lowercase();
    let query = IncidentQuery {
        status: (!status.is_empty()).then(|| status.clone()),
        limit: Some(200),
        ..IncidentQuery::default()
    };
    match state.incidents().list(&signed_in.principal, query).await {
        Ok(list) => render(&IncidentsPage {
            chrome,
            status,
            statuses: &["open", "recovered", "resolved"],
            rows: list.into_iter().map(IncidentRow::new).collect(),
        }),
        Err(e) => service_error_page(chrome, e),
    }
}

struct TimelineRow {
    at: String,
    kind: String,
    message: String,
}

struct HealRunRow {
    heal: String,
    attempt: i64,
    status: String,
    execution_id: String,
    started: String,
    detail: String,
}

#[derive(askama::Template)]
#[template(path = "console/incident.html")]
struct IncidentPage {
    chrome: super::Chrome,
    row: IncidentRow,
    resolved: String,
    timeline: Vec<TimelineRow>,
    runs: Vec<HealRunRow>,
}

/// `GET /incidents/{id}`: as `GET /v1/incidents/{id}`, with its timeline,
/// its heal attempts and the acknowledge and resolve buttons.
pub(super) async fn incident(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Incident {id}"), "/incidents");
    let detail = match state.incidents().get(&signed_in.principal, &id).await {
        Ok(detail) => detail,
        Err(e) => return service_error_page(chrome, e),
    };
    let incident = detail.incident;
    let resolved = match (&incident.resolved_by, incident.resolved_at) {
        (Some(by), Some(at)) => format!("{by}, {}", time_text(at)),
        _ => String::new(),
    };
    render(&IncidentPage {
        chrome,
        row: IncidentRow::new(incident),
        resolved,
        timeline: detail
            .timeline
            .into_iter()
            .map(|e| TimelineRow {
                at: time_text(e.at),
                kind: e.kind,
                message: e.message,
            })
            .collect(),
        runs: detail
            .heal_runs
            .into_iter()
            .map(|r| HealRunRow {
                heal: r.heal,
                attempt: r.attempt,
                status: r.status,
                execution_id: r.execution_id.unwrap_or_default(),
                started: time_text(r.started_at),
                detail: r.detail.unwrap_or_default(),
            })
            .collect(),
    })
}

/// `POST /incidents/{id}/ack`: as `POST /v1/incidents/{id}/ack`.
pub(super) async fn acknowledge(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let path = format!("/incidents/{id}/ack");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let principal = &signed_in.principal;
    let done = state.incidents().acknowledge(principal, &id).await;
    after_incident_action(&state, &signed_in, &id, &path, done).await
}

/// The resolve form: the CSRF secret and an optional note.
#[derive(Deserialize)]
pub(super) struct ResolveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// `POST /incidents/{id}/resolve`: as `POST /v1/incidents/{id}/resolve`.
pub(super) async fn resolve(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ResolveForm>,
) -> Response {
    let path = format!("/incidents/{id}/resolve");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let note = form.note.trim();
    let note = (!note.is_empty()).then_some(note);
    let principal = &signed_in.principal;
    let done = state.incidents().resolve(principal, &id, note).await;
    after_incident_action(&state, &signed_in, &id, &path, done).await
}

async fn after_incident_action<T>(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
    path: &str,
    done: crate::service::ServiceResult<T>,
) -> Response {
    match audited(state, &signed_in.principal, path, done).await {
        Ok(_) => Redirect::to(&format!("/incidents/{}", path_segment(id))).into_response(),
        Err(e) => service_error_page(signed_in.chrome(&format!("Incident {id}"), "/incidents"), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_say_not_permitted_for_a_refusal_only() {
        let refused = ServiceError::new(ErrorKind::Forbidden, "Forbidden", "metrics:Get on node/x");
        assert_eq!(
            section_refusal(refused),
            "not permitted: metrics:Get on node/x"
        );
        let other = ServiceError::new(ErrorKind::Invalid, "Bad", "bad query");
        assert_eq!(section_refusal(other), "bad query");
    }

    #[test]
    fn redirect_segments_are_percent_encoded() {
        assert_eq!(path_segment("inc-1_a.b~"), "inc-1_a.b~");
        assert_eq!(path_segment("a/b?c"), "a%2Fb%3Fc");
    }
}
