//! The metrics service: the only code writing metrics, and its reads.
//!
//! Agents' batches are validated here (bad points are dropped with a
//! warning, the batch is still stored and acknowledged so the agent does not
//! resend it forever), then group-committed by the [`MetricsWriter`]
//! (super::writer::MetricsWriter). Reads are the alarm evaluator's
//! ([`datapoints`](MetricsService::datapoints), [`series`](MetricsService::series),
//! no authorization: the server itself asks) and people's
//! ([`query`](MetricsService::query), [`names`](MetricsService::names),
//! [`prometheus`](MetricsService::prometheus): `metrics:Get` per node).

use std::collections::{BTreeMap, BTreeSet};

use operon_alarms::Statistic;
use operon_proto::MetricBatch;
use operon_store::{MetricBatchWrite, MetricRollup, MetricSample, MetricSeries, Node, Resolution};

use super::query::{self, Ask, By, Plan};
use crate::access::{Principal, check_action, node_request};
use crate::service::{ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// Longest metric name and dimension key or value.
const MAX_NAME: usize = 128;
const MAX_DIMENSION_VALUE: usize = 256;
const MAX_DIMENSIONS: usize = 10;
const MAX_UNIT: usize = 32;
/// Most points one batch may carry; the rest are dropped.
const MAX_POINTS: usize = 10_000;
/// How far in the future a point may be (clock skew).
const MAX_FUTURE_MS: i64 = 3_600_000;
/// Series not updated for this long are left out of `/metrics` (stale).
const PROMETHEUS_STALE_MS: i64 = 15 * 60_000;
/// Most stored rows (raw points or rollup buckets) one query may read.
const MAX_ROWS_READ: usize = 2_000_000;
/// The action guarding metric reads.
const ACTION: &str = "metrics:Get";

pub struct MetricsService<'a> {
    pub(crate) state: &'a AppState,
}

/// A series of a metric: a node and dimensions, with its latest value.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub node_id: String,
    pub dimensions: BTreeMap<String, String>,
    pub unit: Option<String>,
    /// Unix ms of the newest point.
    pub last_at: i64,
    pub last_value: f64,
}

/// The time range of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRange {
    /// The last `ms` up to now.
    Since(i64),
    /// From `from` to `to` (now when `None`), Unix ms.
    Between { from: i64, to: Option<i64> },
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub metric: String,
    /// A node name or id: only that node.
    pub node: Option<String>,
    /// Only series having these dimension values.
    pub dimensions: BTreeMap<String, String>,
    pub stat: Statistic,
    pub period_secs: Option<u64>,
    pub range: TimeRange,
    pub by: By,
    /// Read this resolution instead of the planned one.
    pub resolution: Option<Resolution>,
}

/// One answered series.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// The node (`by` node or series, or the one node queried).
    pub node: Option<Node>,
    /// The series' dimensions (`by` series).
    pub dimensions: BTreeMap<String, String>,
    pub unit: Option<String>,
    pub points: Vec<(i64, f64)>,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub plan: Plan,
    pub series: Vec<Answered>,
}

/// A metric name and its series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NameInfo {
    pub name: String,
    pub unit: Option<String>,
    pub series: u64,
    pub nodes: u64,
    pub dimension_keys: Vec<String>,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneReport {
    pub raw: u64,
    pub minute: u64,
    pub hour: u64,
    pub series: u64,
}

impl MetricsService<'_> {
    /// Store an agent's batch (valid points only) once it is committed. A
    /// batch with a seq already stored for this node is not stored again.
    /// Answering `Ok` means the caller may acknowledge it.
    pub async fn record(&self, node: &Node, batch: MetricBatch) -> Result<(), ServiceError> {
        let now = now_millis();
        let offered = batch.points.len();
        let (samples, dropped) = valid_samples(batch.points, now);
        if let Some(why) = dropped {
            tracing::warn!(node_id = %node.id, seq = batch.seq, offered, kept = samples.len(), %why, "dropping invalid metric points");
        }
        let write = MetricBatchWrite {
            node_id: node.id.clone(),
            seq: batch.seq,
            received_at: now,
            samples,
        };
        let stored = self.state.metrics_writer.write(write).await.map_err(|e| {
            ServiceError::new(
                crate::service::ErrorKind::Unavailable,
                "StoreUnavailable",
                e,
            )
        })?;
        if !stored {
            tracing::debug!(node_id = %node.id, seq = batch.seq, "a resent metric batch was already stored");
        }
        Ok(())
    }

    /// Raw points of one series (exactly these dimensions) with
    /// `from_ms <= at < to_ms`, oldest first. No series: no points.
    pub async fn datapoints(
        &self,
        node_id: &str,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, ServiceError> {
        let found = self
            .state
            .store
            .metric_series(Some(metric), Some(node_id))
            .await?
            .into_iter()
            .find(|s| &s.dimensions == dimensions);
        match found {
            Some(series) => Ok(self
                .state
                .store
                .metric_points(series.id, from_ms, to_ms)
                .await?),
            None => Ok(Vec::new()),
        }
    }

    /// Per-minute averages (from the 1-minute rollups) of one series,
    /// oldest first: `(minute start, average)` for minutes starting in
    /// `[from_ms, to_ms)`. What anomaly bands learn from, beyond the raw
    /// retention.
    pub async fn minute_averages(
        &self,
        node_id: &str,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, ServiceError> {
        let found = self
            .state
            .store
            .metric_series(Some(metric), Some(node_id))
            .await?
            .into_iter()
            .find(|s| &s.dimensions == dimensions);
        match found {
            Some(series) => self.series_minute_averages(series.id, from_ms, to_ms).await,
            None => Ok(Vec::new()),
        }
    }

    /// Every series, to look many up at once (the alarm evaluator reads
    /// this once per pass instead of once per alarm).
    pub async fn all_series(&self) -> Result<Vec<operon_store::MetricSeries>, ServiceError> {
        Ok(self.state.store.metric_series(None, None).await?)
    }

    /// Raw points of one series (by id), oldest first, `from <= at < to`.
    pub async fn series_points(
        &self,
        series_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, ServiceError> {
        Ok(self
            .state
            .store
            .metric_points(series_id, from_ms, to_ms)
            .await?)
    }

    /// [`Self::minute_averages`] of one series (by id).
    pub async fn series_minute_averages(
        &self,
        series_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, ServiceError> {
        let rollups = self
            .state
            .store
            .metric_rollups(series_id, operon_store::Resolution::Minute, from_ms, to_ms)
            .await?;
        Ok(rollups
            .into_iter()
            .filter(|r| r.count > 0)
            .map(|r| (r.bucket, r.sum / r.count as f64))
            .collect())
    }

    /// The series of `metric` whose dimensions include `dimensions`, on
    /// every node, ordered by node id and dimensions.
    pub async fn series(
        &self,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
    ) -> Result<Vec<SeriesInfo>, ServiceError> {
        Ok(self
            .state
            .store
            .metric_series(Some(metric), None)
            .await?
            .into_iter()
            .filter(|s| includes(&s.dimensions, dimensions))
            .map(|s| SeriesInfo {
                node_id: s.node_id,
                dimensions: s.dimensions,
                unit: s.unit,
                last_at: s.last_at,
                last_value: s.last_value,
            })
            .collect())
    }

    /// Statistics of a metric per period, on the nodes the caller may
    /// `metrics:Get`.
    pub async fn query(
        &self,
        principal: &Principal,
        q: &MetricQuery,
    ) -> ServiceResult<QueryResult> {
        check_metric_name(&q.metric)?;
        let now = now_millis();
        let (from, to) = match q.range {
            TimeRange::Since(ms) => (now.saturating_sub(ms), now),
            TimeRange::Between { from, to } => (from, to.unwrap_or(now)),
        };
        let ask = Ask {
            from,
            to,
            period_secs: q.period_secs,
            stat: q.stat,
            resolution: q.resolution,
        };
        let plan = query::plan(&ask, now, &self.state.config.metrics_retention)
            .map_err(|e| ServiceError::invalid("InvalidQuery", e))?;
        let nodes = self.readable_nodes(principal, q.node.as_deref()).await?;
        let node_filter = q
            .node
            .as_ref()
            .and_then(|_| nodes.keys().next().map(String::as_str));
        let series: Vec<MetricSeries> = self
            .state
            .store
            .metric_series(Some(&q.metric), node_filter)
            .await?
            .into_iter()
            .filter(|s| nodes.contains_key(&s.node_id) && includes(&s.dimensions, &q.dimensions))
            .collect();
        let groups = self.read_groups(q, &plan, &series, &nodes).await?;
        let mut answered: Vec<Answered> = groups
            .into_iter()
            .map(|g| Answered {
                points: match plan.resolution {
                    Resolution::Raw => query::from_raw(&g.points, &plan, q.stat),
                    _ => query::from_rollups(&g.rollups, &plan, q.stat),
                },
                node: g.node,
                dimensions: g.dimensions,
                unit: g.unit,
            })
            .collect();
        answered.sort_by(|a, b| {
            let name = |x: &Answered| x.node.as_ref().map(|n| n.name.clone());
            (name(a), &a.dimensions).cmp(&(name(b), &b.dimensions))
        });
        Ok(QueryResult {
            plan,
            series: answered,
        })
    }

    /// Read the stored rows of `series`, grouped as the query asks; refused
    /// past [`MAX_ROWS_READ`] rows.
    async fn read_groups(
        &self,
        q: &MetricQuery,
        plan: &Plan,
        series: &[MetricSeries],
        nodes: &BTreeMap<String, Node>,
    ) -> ServiceResult<Vec<Group>> {
        let mut groups: BTreeMap<(Option<&str>, Option<i64>), Group> = BTreeMap::new();
        let mut read = 0;
        for s in series {
            let key = match q.by {
                By::All => (None, None),
                By::Node => (Some(s.node_id.as_str()), None),
                By::Series => (Some(s.node_id.as_str()), Some(s.id)),
            };
            let group = groups.entry(key).or_insert_with(|| Group {
                node: (q.by != By::All || q.node.is_some())
                    .then(|| nodes.get(&s.node_id).cloned())
                    .flatten(),
                dimensions: if q.by == By::Series {
                    s.dimensions.clone()
                } else {
                    BTreeMap::new()
                },
                unit: s.unit.clone(),
                ..Group::default()
            });
            let rows = match plan.resolution {
                Resolution::Raw => {
                    let points = self
                        .state
                        .store
                        .metric_points(s.id, plan.from, plan.to)
                        .await?;
                    let n = points.len();
                    group.points.extend(points);
                    n
                }
                r => {
                    let rollups = self
                        .state
                        .store
                        .metric_rollups(s.id, r, plan.from, plan.to)
                        .await?;
                    let n = rollups.len();
                    group.rollups.extend(rollups);
                    n
                }
            };
            read += rows;
            if read > MAX_ROWS_READ {
                return Err(ServiceError::invalid(
                    "QueryTooLarge",
                    format!(
                        "the query reads more than {MAX_ROWS_READ} stored datapoints: name a node or dimensions, or ask for a shorter range or a longer period"
                    ),
                ));
            }
        }
        Ok(groups.into_values().collect())
    }

    /// The metric names stored for the nodes the caller may `metrics:Get`.
    pub async fn names(
        &self,
        principal: &Principal,
        node: Option<&str>,
    ) -> ServiceResult<Vec<NameInfo>> {
        let nodes = self.readable_nodes(principal, node).await?;
        let node_filter = node.and_then(|_| nodes.keys().next().map(String::as_str));
        let mut names: BTreeMap<String, (NameInfo, BTreeSet<String>, BTreeSet<String>)> =
            BTreeMap::new();
        for s in self.state.store.metric_series(None, node_filter).await? {
            if !nodes.contains_key(&s.node_id) {
                continue;
            }
            let (info, node_ids, keys) = names.entry(s.name.clone()).or_default();
            info.name = s.name;
            info.unit = info.unit.take().or(s.unit);
            info.series += 1;
            node_ids.insert(s.node_id);
            keys.extend(s.dimensions.into_keys());
        }
        Ok(names
            .into_values()
            .map(|(mut info, node_ids, keys)| {
                info.nodes = node_ids.len() as u64;
                info.dimension_keys = keys.into_iter().collect();
                info
            })
            .collect())
    }

    /// The latest value of every fresh series of the (non-revoked) nodes the
    /// caller may `metrics:Get`, in Prometheus text format: one gauge per
    /// metric name, `node` and the dimensions as labels.
    pub async fn prometheus(&self, principal: &Principal) -> ServiceResult<String> {
        let now = now_millis();
        let nodes: BTreeMap<String, Node> = self
            .state
            .store
            .list_nodes()
            .await?
            .into_iter()
            .filter(|n| n.revoked_at.is_none())
            .filter(|n| {
                principal
                    .decide(&node_request(principal, ACTION, n))
                    .is_ok()
            })
            .map(|n| (n.id.clone(), n))
            .collect();
        let series: Vec<(String, MetricSeries)> = self
            .state
            .store
            .metric_series(None, None)
            .await?
            .into_iter()
            .filter(|s| s.last_at >= now - PROMETHEUS_STALE_MS)
            .filter_map(|s| Some((nodes.get(&s.node_id)?.name.clone(), s)))
            .collect();
        Ok(super::prometheus::exposition(&series))
    }

    /// Delete what is past its retention: raw points, minute and hour
    /// rollups (each in short steps), batch seqs older than a day and series
    /// with nothing left.
    pub async fn prune(&self, now: i64) -> ServiceResult<PruneReport> {
        let retention = self.state.config.metrics_retention;
        let mut report = PruneReport::default();
        for (resolution, deleted) in [
            (Resolution::Raw, &mut report.raw),
            (Resolution::Minute, &mut report.minute),
            (Resolution::Hour, &mut report.hour),
        ] {
            let before = now.saturating_sub(retention.of(resolution));
            let mut first = 0;
            loop {
                let step = self
                    .state
                    .store
                    .prune_metrics(resolution, before, first, super::PRUNE_SERIES_PER_STEP)
                    .await?;
                *deleted += step.deleted;
                match step.next {
                    Some(next) => first = next,
                    None => break,
                }
                // Let waiting writers in between steps.
                tokio::task::yield_now().await;
            }
        }
        report.series = self
            .state
            .store
            .prune_metric_bookkeeping(
                now.saturating_sub(super::SEQ_MEMORY_MS),
                now.saturating_sub(retention.longest_ms()),
            )
            .await?;
        Ok(report)
    }

    /// Nodes whose metrics the caller may read, by id: the one named
    /// (`metrics:Get` on it, refused otherwise), or every node after
    /// `metrics:Get` on `node/*` (refused otherwise) those it allows.
    async fn readable_nodes(
        &self,
        principal: &Principal,
        node: Option<&str>,
    ) -> ServiceResult<BTreeMap<String, Node>> {
        if let Some(key) = node {
            let node = self.state.fleet().find_for(principal, ACTION, key).await?;
            return Ok(BTreeMap::from([(node.id.clone(), node)]));
        }
        check_action(&self.state.audit, principal, ACTION, "node/*").await?;
        Ok(self
            .state
            .store
            .list_nodes()
            .await?
            .into_iter()
            .filter(|n| {
                principal
                    .decide(&node_request(principal, ACTION, n))
                    .is_ok()
            })
            .map(|n| (n.id.clone(), n))
            .collect())
    }
}

/// The series read for one answered series.
#[derive(Default)]
struct Group {
    node: Option<Node>,
    dimensions: BTreeMap<String, String>,
    unit: Option<String>,
    points: Vec<(i64, f64)>,
    rollups: Vec<MetricRollup>,
}

/// Whether `have` holds every key and value of `want`.
fn includes(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// `[A-Za-z0-9_.-]{1,128}`: metric names and dimension keys.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_metric_name(name: &str) -> ServiceResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "InvalidMetricName",
            format!("metric name {name:?} must be 1 to {MAX_NAME} of A-Z a-z 0-9 _ . -"),
        ))
    }
}

/// Why one point cannot be stored, if it cannot.
pub fn point_problem(point: &operon_proto::MetricPoint, now: i64) -> Option<String> {
    if !valid_name(&point.name) {
        return Some(format!(
            "metric name {:?} is not 1 to {MAX_NAME} of A-Z a-z 0-9 _ . -",
            point.name
        ));
    }
    if point.dimensions.len() > MAX_DIMENSIONS {
        return Some(format!(
            "{}: more than {MAX_DIMENSIONS} dimensions",
            point.name
        ));
    }
    for (key, value) in &point.dimensions {
        if !valid_name(key) {
            return Some(format!(
                "{}: dimension key {key:?} is not 1 to {MAX_NAME} of A-Z a-z 0-9 _ . -",
                point.name
            ));
        }
        if value.is_empty()
            || value.len() > MAX_DIMENSION_VALUE
            || value.chars().any(char::is_control)
        {
            return Some(format!(
                "{}: dimension {key} must be 1 to {MAX_DIMENSION_VALUE} bytes without control characters",
                point.name
            ));
        }
    }
    if !point.value.is_finite() {
        return Some(format!(
            "{}: value {} is not a finite number",
            point.name, point.value
        ));
    }
    if point.at > now + MAX_FUTURE_MS || point.at < 0 {
        return Some(format!(
            "{}: timestamp {} is more than an hour in the future or before 1970",
            point.name, point.at
        ));
    }
    if let Some(unit) = &point.unit
        && (unit.len() > MAX_UNIT || unit.chars().any(char::is_control))
    {
        return Some(format!("{}: unit longer than {MAX_UNIT} bytes", point.name));
    }
    None
}

/// The points that can be stored, and the first reason one was dropped.
fn valid_samples(
    points: Vec<operon_proto::MetricPoint>,
    now: i64,
) -> (Vec<MetricSample>, Option<String>) {
    let mut first_problem = None;
    if points.len() > MAX_POINTS {
        first_problem = Some(format!(
            "{} points, at most {MAX_POINTS} per batch",
            points.len()
        ));
    }
    let mut samples = Vec::with_capacity(points.len().min(MAX_POINTS));
    for point in points.into_iter().take(MAX_POINTS) {
        if let Some(problem) = point_problem(&point, now) {
            first_problem.get_or_insert(problem);
            continue;
        }
        samples.push(MetricSample {
            name: point.name,
            dimensions: point.dimensions,
            unit: point.unit,
            at: point.at,
            value: point.value,
        });
    }
    (samples, first_problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use operon_proto::MetricPoint;

    fn point(name: &str, dims: &[(&str, &str)], at: i64, value: f64) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            at,
            value,
            unit: None,
        }
    }

    #[test]
    fn invalid_points_are_named_and_dropped() {
        let now = 1_000_000_000;
        let eleven: Vec<(String, String)> = (0..11)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let mut many = point("cpu.used", &[], now, 1.0);
        many.dimensions = eleven.into_iter().collect();
        let cases: Vec<(MetricPoint, Option<&str>)> = vec![
            (point("cpu.used", &[], now, 1.0), None),
            (
                point("disk.used_percent", &[("mount", "/var/lib")], now, 1.0),
                None,
            ),
            (
                point(
                    "check.healthy",
                    &[("check", "app-http")],
                    now + 3_500_000,
                    1.0,
                ),
                None,
            ),
            (point("", &[], now, 1.0), Some("metric name")),
            (point(&"x".repeat(129), &[], now, 1.0), Some("metric name")),
            (point("cpu used", &[], now, 1.0), Some("metric name")),
            (
                point("cpu.used", &[("mo unt", "/")], now, 1.0),
                Some("dimension key"),
            ),
            (
                point("cpu.used", &[("mount", "")], now, 1.0),
                Some("dimension mount"),
            ),
            (
                point("cpu.used", &[("mount", "a\nb")], now, 1.0),
                Some("dimension mount"),
            ),
            (many, Some("more than 10 dimensions")),
            (point("cpu.used", &[], now, f64::NAN), Some("finite")),
            (point("cpu.used", &[], now, f64::INFINITY), Some("finite")),
            (point("cpu.used", &[], now + 3_700_000, 1.0), Some("future")),
        ];
        for (p, expected) in cases {
            let got = point_problem(&p, now);
            match expected {
                None => assert_eq!(got, None, "{p:?}"),
                Some(part) => assert!(
                    got.as_deref().unwrap_or("").contains(part),
                    "{p:?}: {got:?}"
                ),
            }
        }
        let (kept, why) = valid_samples(
            vec![point("ok", &[], now, 1.0), point("bad", &[], now, f64::NAN)],
            now,
        );
        assert_eq!(kept.len(), 1);
        assert!(why.unwrap().contains("bad"));
    }

    #[test]
    fn dimension_inclusion() {
        let have: BTreeMap<String, String> = [
            ("mount".to_string(), "/".to_string()),
            ("fs".to_string(), "ext4".to_string()),
        ]
        .into();
        assert!(includes(&have, &BTreeMap::new()));
        assert!(includes(
            &have,
            &[("mount".to_string(), "/".to_string())].into()
        ));
        assert!(!includes(
            &have,
            &[("mount".to_string(), "/var".to_string())].into()
        ));
        assert!(!includes(
            &have,
            &[("device".to_string(), "sda".to_string())].into()
        ));
    }
}
