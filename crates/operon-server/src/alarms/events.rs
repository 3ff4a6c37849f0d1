//! Alarm state change events, shaped like CloudWatch's.
//!
//! A state change is committed with its history row first; the row is the
//! outbox entry of its event. [`publish_pending`] puts every unpublished
//! row's event on the default bus, then marks the rows published, so an
//! event is never lost to a crash between the two (it may be put twice:
//! consumers see the same `alarmName`, `state.timestamp` again). The
//! alarm loop calls it every pass, so what a crash left is put at the next
//! start.
//!
//! The detail follows "CloudWatch Alarm State Change" (`alarmName`,
//! `state` and `previousState` with `value`, `reason`, `reasonData` as a
//! JSON string and `timestamp`, `configuration` with `metrics` or
//! `alarmRule`), with `source: operon.alarms` and the node the instance
//! watches in `node` (absent for an alarm that watches no node).

use std::collections::HashMap;

use operon_store::{AlarmHistoryRow, AlarmRecord, AlarmStateRow};
use serde_json::{Value, json};

use super::service::spec_of;
use crate::events::envelope::PutEntry;
use crate::{AppState, now_millis};

pub const EVENT_SOURCE: &str = "operon.alarms";
pub const DETAIL_TYPE: &str = "CloudWatch Alarm State Change";
/// Rows published per round.
const BATCH: i64 = 200;

/// One publisher per process at a time, so two callers don't put a row twice.
static PUBLISHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Put the events of every unpublished state change. Best effort: failures
/// are logged and retried by the next call.
pub async fn publish_pending(state: &AppState) {
    let _turn = PUBLISHING.lock().await;
    loop {
        let rows = match state.store.unpublished_alarm_history(BATCH).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "reading alarm state changes to publish failed");
                return;
            }
        };
        if rows.is_empty() {
            return;
        }
        let count = rows.len();
        match publish(state, &rows).await {
            Ok(()) => {
                incident_events(state, &rows).await;
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                if let Err(e) = state.store.mark_alarm_history_published(&ids).await {
                    tracing::warn!(error = %e, "marking alarm events put failed");
                    return;
                }
            }
            Err(message) => {
                tracing::warn!(error = %message, "putting alarm state change events failed; retrying later");
                return;
            }
        }
        if (count as i64) < BATCH {
            return;
        }
    }
}

async fn publish(state: &AppState, rows: &[AlarmHistoryRow]) -> Result<(), String> {
    let mut alarms: HashMap<String, Option<AlarmRecord>> = HashMap::new();
    let nodes: HashMap<String, String> = state
        .store
        .list_nodes()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|n| (n.id, n.name))
        .collect();
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in rows {
        if !alarms.contains_key(&row.alarm) {
            let record = state
                .store
                .alarm(&row.alarm)
                .await
                .map_err(|e| e.to_string())?;
            alarms.insert(row.alarm.clone(), record);
        }
        let record = alarms.get(&row.alarm).and_then(Option::as_ref);
        let entry = entry(row, record, nodes.get(&row.node_id).map(String::as_str));
        match crate::events::envelope::envelope(&entry, now_millis()) {
            Ok(envelope) => envelopes.push(envelope),
            // Refused events would be refused again: logged and skipped.
            Err(e) => {
                tracing::warn!(alarm = %row.alarm, error = %e.message, "an alarm event was refused")
            }
        }
    }
    if envelopes.is_empty() {
        return Ok(());
    }
    crate::events::accept(state, envelopes)
        .await
        .map(|_| ())
        .map_err(|e| e.message)
}

fn entry(row: &AlarmHistoryRow, record: Option<&AlarmRecord>, node_name: Option<&str>) -> PutEntry {
    let mut resources = vec![format!("alarm/{}", row.alarm)];
    let mut detail = json!({
        "alarmName": row.alarm,
        "state": state_json(&row.state, &row.reason, row.reason_data.as_ref(), row.at),
        "configuration": record.map_or(json!({}), |r| configuration(r, node_name)),
    });
    if let Some(previous) = &row.previous {
        detail["previousState"] = previous_json(previous);
    }
    if !row.node_id.is_empty() {
        detail["node"] = json!({"id": row.node_id, "name": node_name});
        resources.push(format!("node/{}", row.node_id));
    }
    PutEntry {
        source: Some(EVENT_SOURCE.into()),
        detail_type: Some(DETAIL_TYPE.into()),
        detail: Some(detail.to_string()),
        resources,
        ..PutEntry::default()
    }
}

fn state_json(value: &str, reason: &str, data: Option<&Value>, at: i64) -> Value {
    let mut state = json!({
        "value": value,
        "reason": reason,
        "timestamp": chrono::DateTime::from_timestamp_millis(at)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let Some(data) = data {
        // CloudWatch sends reasonData as a JSON string.
        state["reasonData"] = Value::String(data.to_string());
    }
    state
}

fn previous_json(previous: &AlarmStateRow) -> Value {
    state_json(
        &previous.state,
        &previous.reason,
        previous.reason_data.as_ref(),
        previous.updated_at,
    )
}

fn configuration(record: &AlarmRecord, node_name: Option<&str>) -> Value {
    let Ok(spec) = spec_of(record) else {
        return json!({});
    };
    let mut configuration = json!({"description": spec.description});
    if let Some(rule) = &spec.rule {
        configuration["alarmRule"] = json!(rule);
        return configuration;
    }
    let mut dimensions = serde_json::to_value(&spec.dimensions).unwrap_or(json!({}));
    if let Some(node) = node_name {
        dimensions["node"] = json!(node);
    }
    configuration["metrics"] = json!([{
        "id": "m1",
        "metricStat": {
            "metric": {"namespace": "Operon", "name": spec.metric, "dimensions": dimensions},
            "period": spec.period.unwrap_or(60),
            "stat": spec.statistic.as_deref().unwrap_or("Average"),
        },
        "returnData": true,
    }]);
    configuration["kind"] = json!(spec.kind.as_deref().unwrap_or("threshold"));
    configuration
}

/// "Incident Opened" for a change to ALARM (the change opened it, in the
/// same transaction) and "Incident Recovered" for a change to OK that
/// recovered one.
async fn incident_events(state: &AppState, rows: &[AlarmHistoryRow]) {
    for row in rows {
        let detail_type = match row.state.as_str() {
            "ALARM" => "Incident Opened",
            "OK" => "Incident Recovered",
            _ => continue,
        };
        let filter = operon_store::IncidentFilter {
            alarm: Some(row.alarm.clone()),
            node_id: Some(row.node_id.clone()),
            limit: 1,
            ..Default::default()
        };
        let Ok(newest) = state.store.incidents(&filter).await else {
            continue;
        };
        let Some(incident) = newest.first() else {
            continue;
        };
        let caused = match detail_type {
            "Incident Opened" => incident.opened_at == row.at,
            _ => incident.recovered_at == Some(row.at),
        };
        if !caused {
            continue;
        }
        if let Ok(Some(view)) = crate::heal::runner::incident_view(state, &incident.id).await {
            let extra = json!({"alarm": row.alarm, "state": row.state, "reason": row.reason});
            crate::heal::runner::put_event(state, detail_type, &view, extra).await;
        }
    }
}
