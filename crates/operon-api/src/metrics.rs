//! Metrics: datapoints agents push about their nodes, queried as
//! statistics over periods (CloudWatch's `GetMetricStatistics`, per node).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// One answered series: the statistic per period, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricSeriesAnswer {
    /// The node, when the series is one node's (`by=node`, `by=series` or `node=`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The dimensions of the series (`by=series`); empty otherwise
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// `[period start (Unix ms), value]`, periods without data left out
    pub points: Vec<(i64, f64)>,
}

/// `GET /v1/metrics/query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricQueryAnswer {
    pub metric: String,
    /// `avg`, `min`, `max`, `sum`, `count` or `pNN`
    pub stat: String,
    /// Seconds per datapoint
    pub period: u64,
    /// Start of the first period (Unix ms, aligned on the period)
    pub from: i64,
    /// End of the last period (Unix ms, exclusive)
    pub to: i64,
    /// What the statistics were computed from: `raw`, `1m` or `1h`
    pub resolution: String,
    /// `all` (one series for every node), `node` or `series`
    pub by: String,
    pub series: Vec<MetricSeriesAnswer>,
}

/// One metric name and how many series and nodes have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricName {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub series: u64,
    pub nodes: u64,
    /// The dimension keys its series have
    pub dimension_keys: Vec<String>,
}

/// `GET /v1/metrics/names`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricNames {
    pub names: Vec<MetricName>,
}

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "metrics";
    let text = |example: &str| json!({"type": "string", "examples": [example]});
    api.op(Op::get(
        "/v1/metrics/query",
        TAG,
        "Statistics of a metric per period (metrics:Get on node/NAME with the node's tags; \
         without node, metrics:Get on node/* and only the nodes metrics:Get allows)",
    )
    .query("metric", text("cpu.used"), "The metric name (required)")
    .query("node", text("web-1"), "Only this node (name or id)")
    .query(
        "dim.KEY",
        text("/"),
        "Only series with this dimension value (dim.mount=/); repeatable",
    )
    .query(
        "stat",
        text("avg"),
        "avg (default), min, max, sum, count or pNN",
    )
    .query(
        "period",
        json!({"type": "integer", "examples": [60]}),
        "Seconds per datapoint (default: chosen from the range)",
    )
    .query(
        "since",
        text("6h"),
        "Range ending now: 90s, 30m, 6h, 7d, 2w (default 1h)",
    )
    .query(
        "from",
        text("1796205600000"),
        "Range start, Unix ms (instead of since)",
    )
    .query(
        "to",
        text("1796209200000"),
        "Range end, Unix ms (default now)",
    )
    .query(
        "by",
        text("node"),
        "all (default: one series), node or series",
    )
    .query(
        "resolution",
        text("raw"),
        "Force raw, 1m or 1h data (default: chosen by range, period and retention)",
    )
    .ok::<MetricQueryAnswer>());
    api.op(Op::get(
        "/v1/metrics/names",
        TAG,
        "Metric names stored, with their series (on the nodes metrics:Get allows)",
    )
    .query("node", text("web-1"), "Only this node (name or id)")
    .ok::<MetricNames>());
}
