//! An alarm's spec, checked and typed (pure). Every error names the field.

use std::collections::BTreeMap;

use operon_alarms::{AlarmConfig, Comparison, Rule, Statistic, TreatMissingData};
use operon_api::alarms::AlarmSpec;

/// Longest period: a day (what the rollups can answer).
const MAX_PERIOD_SECS: u64 = 86_400;
/// Most periods an alarm may look at (CloudWatch's limit for periods under a day).
const MAX_EVALUATION_PERIODS: u32 = 100;

/// Which side of an anomaly band breaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandSide {
    Upper,
    Lower,
    Both,
}

/// What decides the state.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// M of N periods against a fixed threshold.
    Threshold,
    /// M of N periods outside a band learned from `history_days` of history.
    Anomaly {
        band_width: f64,
        history_days: u32,
        side: BandSide,
    },
    /// The trend over `lookback_secs` reaches the threshold within `horizon_secs`.
    Forecast {
        horizon_secs: u64,
        lookback_secs: u64,
    },
    /// A rule over other alarms' states.
    Composite(Rule),
}

/// The metric a metric alarm reads.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricQuery {
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: Statistic,
}

/// Where a metric alarm looks.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    /// One node (name or id).
    Node(String),
    /// One instance per node these targets select.
    Targets(Vec<String>),
    /// A composite alarm: no node.
    None,
}

/// A checked alarm.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub kind: Kind,
    /// `None` for composite alarms.
    pub query: Option<MetricQuery>,
    pub scope: Scope,
    /// Period, N, M, threshold, comparison (for anomaly alarms: the excess
    /// outside the band, compared with 0) and missing-data treatment.
    pub config: AlarmConfig,
}

impl Definition {
    pub fn is_composite(&self) -> bool {
        matches!(self.kind, Kind::Composite(_))
    }
}

pub fn parse(spec: &AlarmSpec) -> Result<Definition, String> {
    let kind_name = spec.kind.as_deref().unwrap_or("threshold");
    if kind_name == "composite" {
        return composite(spec);
    }
    let metric = spec
        .metric
        .clone()
        .ok_or_else(|| format!("metric: a {kind_name} alarm needs one (cpu.used, ...)"))?;
    if !valid_metric_name(&metric) {
        return Err(format!(
            "metric {metric:?}: letters, digits, '.', '_' and '-', 1 to 128 characters"
        ));
    }
    if spec.rule.is_some() {
        return Err("rule: only composite alarms have one".into());
    }
    let statistic: Statistic = spec
        .statistic
        .as_deref()
        .unwrap_or("Average")
        .parse()
        .map_err(|e| format!("statistic: {e}"))?;
    let period_secs = spec.period.unwrap_or(60);
    if !(1..=MAX_PERIOD_SECS).contains(&period_secs) {
        return Err(format!(
            "period {period_secs}: seconds between 1 and {MAX_PERIOD_SECS}"
        ));
    }
    let n = spec.evaluation_periods.unwrap_or(1);
    if !(1..=MAX_EVALUATION_PERIODS).contains(&n) {
        return Err(format!(
            "evaluation_periods {n}: between 1 and {MAX_EVALUATION_PERIODS}"
        ));
    }
    let m = spec.datapoints_to_alarm.unwrap_or(n);
    if !(1..=n).contains(&m) {
        return Err(format!(
            "datapoints_to_alarm {m}: between 1 and evaluation_periods ({n})"
        ));
    }
    let treat_missing_data = treat_missing(spec.treat_missing_data.as_deref())?;
    let scope = scope(spec)?;
    let (kind, threshold, comparison) = match kind_name {
        "threshold" => {
            let threshold = threshold_of(spec, kind_name)?;
            (Kind::Threshold, threshold, comparison(spec)?)
        }
        "forecast" => {
            let threshold = threshold_of(spec, kind_name)?;
            let horizon_secs = spec.forecast_horizon.unwrap_or(86_400);
            let lookback_secs = spec.forecast_lookback.unwrap_or(21_600);
            if !(60..=30 * 86_400).contains(&horizon_secs) {
                return Err(format!(
                    "forecast_horizon {horizon_secs}: seconds between 60 and 30 days"
                ));
            }
            if !(600..=86_400).contains(&lookback_secs) {
                return Err(format!(
                    "forecast_lookback {lookback_secs}: seconds between 600 and a day"
                ));
            }
            let kind = Kind::Forecast {
                horizon_secs,
                lookback_secs,
            };
            (kind, threshold, comparison(spec)?)
        }
        "anomaly" => {
            if spec.threshold.is_some() {
                return Err("threshold: an anomaly alarm's threshold is its band".into());
            }
            let band_width = spec.band_width.unwrap_or(2.0);
            if !(band_width.is_finite() && band_width > 0.0 && band_width <= 10.0) {
                return Err(format!("band_width {band_width}: between 0 and 10"));
            }
            let history_days = spec.history_days.unwrap_or(14);
            if !(1..=60).contains(&history_days) {
                return Err(format!("history_days {history_days}: between 1 and 60"));
            }
            let side = band_side(spec.comparison.as_deref())?;
            let kind = Kind::Anomaly {
                band_width,
                history_days,
                side,
            };
            (kind, 0.0, Comparison::GreaterThanThreshold)
        }
        other => {
            return Err(format!(
                "kind {other:?}: threshold, anomaly, forecast or composite"
            ));
        }
    };
    Ok(Definition {
        kind,
        query: Some(MetricQuery {
            metric,
            dimensions: spec.dimensions.clone(),
            statistic,
        }),
        scope,
        config: AlarmConfig {
            period_secs,
            evaluation_periods: n as usize,
            datapoints_to_alarm: m as usize,
            threshold,
            comparison,
            treat_missing_data,
        },
    })
}

fn composite(spec: &AlarmSpec) -> Result<Definition, String> {
    let text = spec
        .rule
        .as_deref()
        .ok_or("rule: a composite alarm needs one, e.g. ALARM(\"cpu\") AND NOT OK(\"disk\")")?;
    let rule = Rule::parse(text).map_err(|e| format!("rule: {e}"))?;
    let metric_fields = [
        ("metric", spec.metric.is_some()),
        ("statistic", spec.statistic.is_some()),
        ("threshold", spec.threshold.is_some()),
        ("node", spec.node.is_some()),
        ("targets", !spec.targets.is_empty()),
        ("dimensions", !spec.dimensions.is_empty()),
    ];
    if let Some((field, _)) = metric_fields.iter().find(|(_, set)| *set) {
        return Err(format!(
            "{field}: a composite alarm reads other alarms, not a metric"
        ));
    }
    Ok(Definition {
        kind: Kind::Composite(rule),
        query: None,
        scope: Scope::None,
        config: AlarmConfig {
            period_secs: 60,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            threshold: 0.0,
            comparison: Comparison::GreaterThanThreshold,
            treat_missing_data: TreatMissingData::Missing,
        },
    })
}

pub fn valid_metric_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn threshold_of(spec: &AlarmSpec, kind: &str) -> Result<f64, String> {
    match spec.threshold {
        Some(t) if t.is_finite() => Ok(t),
        Some(t) => Err(format!("threshold {t}: a finite number")),
        None => Err(format!("threshold: a {kind} alarm needs one")),
    }
}

fn scope(spec: &AlarmSpec) -> Result<Scope, String> {
    match (&spec.node, spec.targets.is_empty()) {
        (Some(_), false) => Err("node and targets: give one of them, not both".into()),
        (Some(node), true) if node.is_empty() => Err("node: empty".into()),
        (Some(node), true) => Ok(Scope::Node(node.clone())),
        (None, false) => Ok(Scope::Targets(spec.targets.clone())),
        (None, true) => Err(
            "node or targets: which nodes the alarm watches (--node web-1 or --targets tag:role=web)"
                .into(),
        ),
    }
}

fn comparison(spec: &AlarmSpec) -> Result<Comparison, String> {
    match spec.comparison.as_deref().unwrap_or("GreaterThanThreshold") {
        "GreaterThanThreshold" => Ok(Comparison::GreaterThanThreshold),
        "GreaterThanOrEqualToThreshold" => Ok(Comparison::GreaterThanOrEqualToThreshold),
        "LessThanThreshold" => Ok(Comparison::LessThanThreshold),
        "LessThanOrEqualToThreshold" => Ok(Comparison::LessThanOrEqualToThreshold),
        other => Err(format!(
            "comparison {other:?}: GreaterThanThreshold, GreaterThanOrEqualToThreshold, \
             LessThanThreshold or LessThanOrEqualToThreshold"
        )),
    }
}

fn band_side(text: Option<&str>) -> Result<BandSide, String> {
    match text.unwrap_or("LessThanLowerOrGreaterThanUpperThreshold") {
        "LessThanLowerOrGreaterThanUpperThreshold" => Ok(BandSide::Both),
        "GreaterThanUpperThreshold" => Ok(BandSide::Upper),
        "LessThanLowerThreshold" => Ok(BandSide::Lower),
        other => Err(format!(
            "comparison {other:?}: an anomaly alarm uses LessThanLowerOrGreaterThanUpperThreshold, \
             GreaterThanUpperThreshold or LessThanLowerThreshold"
        )),
    }
}

pub fn treat_missing(text: Option<&str>) -> Result<TreatMissingData, String> {
    match text.unwrap_or("missing") {
        "missing" => Ok(TreatMissingData::Missing),
        "ignore" => Ok(TreatMissingData::Ignore),
        "breaching" => Ok(TreatMissingData::Breaching),
        "notBreaching" => Ok(TreatMissingData::NotBreaching),
        other => Err(format!(
            "treat_missing_data {other:?}: missing, ignore, breaching or notBreaching"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> AlarmSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_follow_cloudwatch() {
        let d = parse(&spec(
            serde_json::json!({"metric": "cpu.used", "threshold": 90, "node": "web-1"}),
        ))
        .unwrap();
        assert_eq!(d.kind, Kind::Threshold);
        assert_eq!(d.config.period_secs, 60);
        assert_eq!(d.config.evaluation_periods, 1);
        assert_eq!(d.config.datapoints_to_alarm, 1);
        assert_eq!(d.config.comparison, Comparison::GreaterThanThreshold);
        assert_eq!(d.config.treat_missing_data, TreatMissingData::Missing);
        assert_eq!(d.query.unwrap().statistic, Statistic::Average);
        assert_eq!(d.scope, Scope::Node("web-1".into()));
    }

    #[test]
    fn every_mistake_names_its_field() {
        let cases = [
            (serde_json::json!({"threshold": 1, "node": "a"}), "metric"),
            (
                serde_json::json!({"metric": "a b", "threshold": 1, "node": "a"}),
                "metric \"a b\"",
            ),
            (serde_json::json!({"metric": "m", "node": "a"}), "threshold"),
            (
                serde_json::json!({"metric": "m", "threshold": 1}),
                "node or targets",
            ),
            (
                serde_json::json!({"metric": "m", "threshold": 1, "node": "a", "targets": ["all"]}),
                "node and targets",
            ),
            (
                serde_json::json!({"metric": "m", "threshold": 1, "node": "a", "statistic": "Mean"}),
                "statistic",
            ),
            (
                serde_json::json!({"metric": "m", "threshold": 1, "node": "a", "period": 0}),
                "period 0",
            ),
            (
                serde_json::json!({"metric": "m", "threshold": 1, "node": "a", "evaluation_periods": 3, "datapoints_to_alarm": 4}),
                "datapoints_to_alarm 4",
            ),
            (
                serde_json::json!({"metric": "m", "threshold": 1, "node": "a", "comparison": "Above"}),
                "comparison \"Above\"",
            ),
            (
                serde_json::json!({"metric": "m", "threshold": 1, "node": "a", "treat_missing_data": "zero"}),
                "treat_missing_data",
            ),
            (
                serde_json::json!({"metric": "m", "threshold": 1, "node": "a", "kind": "magic"}),
                "kind \"magic\"",
            ),
            (
                serde_json::json!({"metric": "m", "node": "a", "kind": "anomaly", "threshold": 3}),
                "threshold",
            ),
            (
                serde_json::json!({"metric": "m", "node": "a", "kind": "anomaly", "band_width": -1}),
                "band_width",
            ),
            (
                serde_json::json!({"metric": "m", "node": "a", "kind": "anomaly", "comparison": "GreaterThanThreshold"}),
                "comparison",
            ),
            (
                serde_json::json!({"metric": "m", "node": "a", "kind": "forecast", "threshold": 95, "forecast_horizon": 5}),
                "forecast_horizon",
            ),
            (serde_json::json!({"kind": "composite"}), "rule"),
            (
                serde_json::json!({"kind": "composite", "rule": "ALARM(\"a\") AND"}),
                "rule",
            ),
            (
                serde_json::json!({"kind": "composite", "rule": "ALARM(\"a\")", "metric": "m"}),
                "metric",
            ),
            (
                serde_json::json!({"metric": "m", "threshold": 1, "node": "a", "rule": "ALARM(\"a\")"}),
                "rule",
            ),
        ];
        for (json, field) in cases {
            let error = parse(&spec(json.clone())).expect_err(&json.to_string());
            assert!(error.starts_with(field), "{json}: {error}");
        }
    }

    #[test]
    fn anomaly_forecast_and_composite_kinds() {
        let anomaly = parse(&spec(serde_json::json!({"metric": "m", "targets": ["all"],
            "kind": "anomaly", "comparison": "GreaterThanUpperThreshold"})))
        .unwrap();
        assert_eq!(
            anomaly.kind,
            Kind::Anomaly {
                band_width: 2.0,
                history_days: 14,
                side: BandSide::Upper
            }
        );
        let forecast = parse(&spec(serde_json::json!({"metric": "disk.used_percent",
            "node": "db", "kind": "forecast", "threshold": 95})))
        .unwrap();
        assert_eq!(
            forecast.kind,
            Kind::Forecast {
                horizon_secs: 86_400,
                lookback_secs: 21_600
            }
        );
        let composite = parse(&spec(serde_json::json!({"kind": "composite",
            "rule": "ALARM(\"cpu\") AND NOT OK(\"disk\")"})))
        .unwrap();
        assert!(composite.is_composite());
        assert_eq!(composite.scope, Scope::None);
    }
}
