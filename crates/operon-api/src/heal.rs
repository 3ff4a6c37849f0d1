//! Auto-healing and incidents: a heal starts a runbook when an alarm it
//! names goes to ALARM, then waits for the alarm to return to OK; every
//! alarm episode is an incident with a timeline.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// `PUT /v1/heals/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealSpec {
    /// The alarms it acts on: a name, or a pattern with `*` (`app-errors-*`)
    pub alarm: String,
    /// The runbook started for each attempt
    pub workflow: String,
    /// Passed to the runbook as `parameters` (beside `alarm`, `node`, `incident`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    /// Seconds from an attempt's start for the alarm to be OK again (default 300)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_within: Option<u64>,
    /// Attempts allowed per node and alarm in `max_runs_window` (default 3)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u32>,
    /// Seconds (default 3600)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs_window: Option<u64>,
    /// Seconds after an attempt ends before another starts on that node (default 0)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<u64>,
    /// Also POST the escalation to this URL (http:Invoke on its host); a
    /// "Heal Escalated" event is always put on the default bus
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_webhook: Option<String>,
    /// The role attempts act as (roles:Pass): it needs workflows:Start on
    /// the runbook; the author when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// One attempt of a heal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealRunView {
    pub id: String,
    pub heal: String,
    pub incident_id: String,
    pub alarm: String,
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub attempt: i64,
    /// `starting`, `running`, `confirming`, `confirmed` or `failed`
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Heal {
    pub name: String,
    pub version: i64,
    #[serde(flatten)]
    pub spec: HealSpec,
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The newest attempts, newest first
    pub runs: Vec<HealRunView>,
}

/// An alarm episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    pub id: String,
    pub alarm: String,
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// `open`, `recovered` or `resolved`
    pub status: String,
    pub reason: String,
    pub opened_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<i64>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub at: i64,
    /// `detected`, `state`, `recovered`, `heal_started`, `heal_finished`,
    /// `confirmed`, `heal_failed`, `escalated`, `acknowledged`, `resolved`
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub data: Option<Value>,
}

/// An incident with its timeline and the heal attempts made for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub timeline: Vec<TimelineEntry>,
    pub heal_runs: Vec<HealRunView>,
}

/// `POST /v1/incidents/{id}/resolve`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveIncident {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn utc(ms: i64) -> String {
    chrono_free_utc(ms)
}

/// `YYYY-MM-DD HH:MM:SS UTC` without a date library.
fn chrono_free_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, in_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// The incident as a Markdown report (for tickets and post-mortems).
pub fn to_markdown(detail: &IncidentDetail) -> String {
    let i = &detail.incident;
    let node = i.node_name.as_deref().unwrap_or(&i.node_id);
    let mut out = format!(
        "# Incident {}: {} on {}\n\n",
        i.id,
        i.alarm,
        if node.is_empty() { "-" } else { node }
    );
    out.push_str(&format!("- **Status:** {}\n", i.status));
    out.push_str(&format!("- **Opened:** {}\n", utc(i.opened_at)));
    if let Some(at) = i.recovered_at {
        out.push_str(&format!(
            "- **Recovered:** {} ({} s after it opened)\n",
            utc(at),
            (at - i.opened_at) / 1000
        ));
    }
    if let Some(at) = i.escalated_at {
        out.push_str(&format!("- **Escalated:** {}\n", utc(at)));
    }
    if let (Some(by), Some(at)) = (&i.acknowledged_by, i.acknowledged_at) {
        out.push_str(&format!("- **Acknowledged:** by {by} at {}\n", utc(at)));
    }
    if let (Some(by), Some(at)) = (&i.resolved_by, i.resolved_at) {
        out.push_str(&format!("- **Resolved:** by {by} at {}\n", utc(at)));
    }
    out.push_str(&format!("- **Reason:** {}\n\n## Timeline\n\n", i.reason));
    out.push_str("| Time | Event | Detail |\n|---|---|---|\n");
    for entry in &detail.timeline {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            utc(entry.at),
            entry.kind,
            entry.message.replace('|', "\\|").replace('\n', " ")
        ));
    }
    if !detail.heal_runs.is_empty() {
        out.push_str("\n## Heal attempts\n\n| Heal | Attempt | Status | Execution | Detail |\n|---|---|---|---|---|\n");
        for run in &detail.heal_runs {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                run.heal,
                run.attempt,
                run.status,
                run.execution_id.as_deref().unwrap_or("-"),
                run.detail.as_deref().unwrap_or("").replace('|', "\\|")
            ));
        }
    }
    out
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "heal";
    let text = json!({"type": "string"});
    api.op(Op::put(
        "/v1/heals/{name}",
        TAG,
        "Create or replace a heal (heals:Put on heal/NAME): when an alarm it names goes to \
             ALARM it starts the runbook, then waits for the alarm to be OK; past max_runs it \
             escalates",
    )
    .body::<HealSpec>()
    .example(
        json!({"alarm": "app-errors-*", "workflow": "restart-service",
                    "input": {"service": "app"}, "confirm_within": 300, "max_runs": 3,
                    "max_runs_window": 3600, "cooldown": 600}),
    )
    .ok::<Heal>());
    api.op(Op::get("/v1/heals", TAG, "List heals (those heals:Get allows)").ok_list::<Heal>());
    api.op(Op::get(
        "/v1/heals/{name}",
        TAG,
        "A heal with its newest attempts (heals:Get)",
    )
    .ok::<Heal>());
    api.op(Op::delete(
        "/v1/heals/{name}",
        TAG,
        "Delete a heal (heals:Delete); attempts running finish",
    )
    .ok::<Heal>());
    api.op(Op::get(
        "/v1/incidents",
        TAG,
        "Incidents, newest first (incidents:Get)",
    )
    .query("status", text.clone(), "open, recovered or resolved")
    .query("alarm", text.clone(), "Only this alarm")
    .query("node", text, "Only this node (name or id)")
    .query(
        "since",
        json!({"type": "integer"}),
        "Opened at or after (ms since the epoch)",
    )
    .query(
        "limit",
        json!({"type": "integer"}),
        "At most this many (default 100)",
    )
    .ok_list::<Incident>());
    api.op(Op::get(
        "/v1/incidents/{id}",
        TAG,
        "An incident with its timeline and heal attempts (incidents:Get)",
    )
    .ok::<IncidentDetail>());
    api.op(Op::post(
        "/v1/incidents/{id}/ack",
        TAG,
        "Acknowledge an incident (incidents:Acknowledge)",
    )
    .ok::<IncidentDetail>());
    api.op(Op::post(
        "/v1/incidents/{id}/resolve",
        TAG,
        "Resolve an incident (incidents:Resolve)",
    )
    .body::<ResolveIncident>()
    .ok::<IncidentDetail>());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_report_has_the_timeline() {
        let detail = IncidentDetail {
            incident: Incident {
                id: "inc-7".into(),
                alarm: "app-errors".into(),
                node_id: "n-1".into(),
                node_name: Some("web-1".into()),
                status: "recovered".into(),
                reason: "Threshold Crossed".into(),
                opened_at: 1_796_205_600_000,
                recovered_at: Some(1_796_205_660_000),
                escalated_at: None,
                acknowledged_by: None,
                acknowledged_at: None,
                resolved_by: None,
                resolved_at: None,
            },
            timeline: vec![TimelineEntry {
                at: 1_796_205_600_000,
                kind: "detected".into(),
                message: "a | b".into(),
                data: None,
            }],
            heal_runs: vec![],
        };
        let text = to_markdown(&detail);
        assert!(
            text.starts_with("# Incident inc-7: app-errors on web-1\n"),
            "{text}"
        );
        assert!(
            text.contains("- **Opened:** 2026-12-02 10:00:00 UTC"),
            "{text}"
        );
        assert!(text.contains("(60 s after it opened)"), "{text}");
        assert!(
            text.contains("| 2026-12-02 10:00:00 UTC | detected | a \\| b |"),
            "{text}"
        );
    }
}
