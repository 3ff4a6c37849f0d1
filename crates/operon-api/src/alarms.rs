//! Alarms: CloudWatch-style metric alarms (threshold, anomaly band,
//! forecast) on one node or templated over the nodes a target selects, and
//! composite alarms over other alarms.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// What an alarm watches and when it is in ALARM. `PUT /v1/alarms/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmSpec {
    /// `threshold` (the default), `anomaly`, `forecast` or `composite`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The metric (`cpu.used`, `log.matches`, ...); not for composite alarms
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Dimensions the metric's series must have (`{"mount": "/"}`)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    /// `Average` (the default), `Sum`, `Minimum`, `Maximum`, `SampleCount` or `pNN`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    /// Seconds per period (default 60)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    /// N: the periods evaluated (default 1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_periods: Option<u32>,
    /// M: how many of the N must breach (default N)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    /// The threshold (threshold and forecast alarms)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// `GreaterThanThreshold` (the default), `GreaterThanOrEqualToThreshold`,
    /// `LessThanThreshold`, `LessThanOrEqualToThreshold`; anomaly alarms:
    /// `LessThanLowerOrGreaterThanUpperThreshold` (the default),
    /// `GreaterThanUpperThreshold`, `LessThanLowerThreshold`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<String>,
    /// `missing` (the default), `ignore`, `breaching` or `notBreaching`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treat_missing_data: Option<String>,
    /// One node (name or id)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// One alarm per node these select (`tag:KEY=VALUE`, `all`, node names)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Anomaly alarms: the band's half width in standard deviations (default 2)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_width: Option<f64>,
    /// Anomaly alarms: days of history the band is learned from (default 14)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_days: Option<u32>,
    /// Forecast alarms: seconds ahead; ALARM when the trend crosses the
    /// threshold within them (default 86400)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_horizon: Option<u64>,
    /// Forecast alarms: seconds of history the trend is fitted on (default 21600)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_lookback: Option<u64>,
    /// Composite alarms: `ALARM("a") AND (OK("b") OR NOT ALARM("c/web-1"))`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The role evaluation acts as (roles:Pass): only nodes whose metrics it
    /// may read (metrics:Get) are evaluated; the author when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The state of an alarm on one node (or of the alarm, `node_id` empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlarmInstance {
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`
    pub state: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub reason_data: Option<Value>,
    /// When the state last changed (ms since the epoch)
    pub updated_at: i64,
}

/// An alarm with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alarm {
    pub name: String,
    pub version: i64,
    #[serde(flatten)]
    pub spec: AlarmSpec,
    pub author: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// ALARM if any instance is, OK if all are, INSUFFICIENT_DATA otherwise
    pub state: String,
    pub instances: Vec<AlarmInstance>,
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlarmHistoryItem {
    pub alarm: String,
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<String>,
    pub state: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub reason_data: Option<Value>,
}

/// `POST /v1/alarms/{name}/state`: set the state by hand (to test what
/// reacts to it); the next evaluation sets it again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlarmState {
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`
    pub state: String,
    pub reason: String,
    /// The node of a templated alarm (name or id)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "alarms";
    let text = json!({"type": "string"});
    api.op(Op::put(
        "/v1/alarms/{name}",
        TAG,
        "Create or replace an alarm (alarms:Put on alarm/NAME); its state changes put \
             \"Alarm State Change\" events (source operon.alarms) on the default bus",
    )
    .body::<AlarmSpec>()
    .example(
        json!({"metric": "cpu.used", "statistic": "Average", "period": 60,
                    "evaluation_periods": 5, "datapoints_to_alarm": 3, "threshold": 90,
                    "comparison": "GreaterThanThreshold", "targets": ["tag:role=web"]}),
    )
    .ok::<Alarm>());
    api.op(
        Op::get("/v1/alarms", TAG, "List alarms (those alarms:Get allows)")
            .query("state", text.clone(), "Only alarms in this state")
            .query("prefix", text.clone(), "Only alarms whose name starts so")
            .ok_list::<Alarm>(),
    );
    api.op(Op::get(
        "/v1/alarms/{name}",
        TAG,
        "An alarm with its state per node (alarms:Get)",
    )
    .ok::<Alarm>());
    api.op(Op::get(
        "/v1/alarms/{name}/history",
        TAG,
        "An alarm's state changes, newest first (alarms:Get)",
    )
    .query("node", text, "Only this node (name or id)")
    .query(
        "limit",
        json!({"type": "integer"}),
        "At most this many (default 100)",
    )
    .ok_list::<AlarmHistoryItem>());
    api.op(Op::delete(
        "/v1/alarms/{name}",
        TAG,
        "Delete an alarm (alarms:Delete); its history stays",
    )
    .ok::<Alarm>());
    api.op(Op::post(
        "/v1/alarms/{name}/state",
        TAG,
        "Set an alarm's state by hand until its next evaluation (alarms:SetState)",
    )
    .body::<SetAlarmState>()
    .ok::<Alarm>());
}
