//! `/v1/metrics/query` and `/v1/metrics/names`: parse, call the metrics
//! service, shape the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};

use operon_api::metrics as api;

use super::query::{By, parse_duration, parse_resolution, parse_stat, stat_name};
use super::service::{MetricQuery, TimeRange};
use crate::AppState;
use crate::access::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::service::ServiceError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/metrics/query", get(query))
        .route("/v1/metrics/names", get(names))
}

/// The service's code (`InvalidQuery`, `InvalidMetricName`, `UnknownNode`)
/// as the answer's.
fn coded(err: ServiceError) -> ApiError {
    let code = err.code;
    let mut api: ApiError = err.into();
    if !matches!(code, "Forbidden" | "InternalError") {
        api.code = code;
    }
    api
}

fn invalid(message: String) -> ApiError {
    coded(ServiceError::invalid("InvalidQuery", message))
}

/// A query string as pairs: `dim.KEY` may repeat with different keys.
fn parse_query(pairs: Vec<(String, String)>) -> Result<MetricQuery, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut dimensions = BTreeMap::new();
    for (key, value) in pairs {
        if let Some(dim) = key.strip_prefix("dim.") {
            if dimensions.insert(dim.to_string(), value).is_some() {
                return Err(format!("dimension {dim} is given twice"));
            }
            continue;
        }
        match key.as_str() {
            "metric" | "node" | "stat" | "period" | "since" | "from" | "to" | "by"
            | "resolution" => {
                if fields.insert(key.clone(), value).is_some() {
                    return Err(format!("{key} is given twice"));
                }
            }
            other => return Err(format!("unknown query parameter {other:?}")),
        }
    }
    let metric = fields
        .remove("metric")
        .ok_or("metric is required (cpu.used, ...)")?;
    let number = |name: &str, text: &str| -> Result<i64, String> {
        text.parse()
            .map_err(|_| format!("{name} {text:?} is not a whole number (Unix ms)"))
    };
    let range = match (fields.get("since"), fields.get("from"), fields.get("to")) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("give since, or from (and to), not both".into());
        }
        (Some(since), None, None) => TimeRange::Since(parse_duration(since)?),
        (None, Some(from), to) => TimeRange::Between {
            from: number("from", from)?,
            to: to.map(|t| number("to", t)).transpose()?,
        },
        (None, None, Some(_)) => return Err("to needs from".into()),
        (None, None, None) => TimeRange::Since(3_600_000),
    };
    let period_secs = fields
        .get("period")
        .map(|p| {
            p.parse::<u64>()
                .map_err(|_| format!("period {p:?} is not a whole number of seconds"))
        })
        .transpose()?;
    Ok(MetricQuery {
        metric,
        node: fields.remove("node").filter(|n| !n.is_empty()),
        dimensions,
        stat: parse_stat(fields.get("stat").map_or("", String::as_str))?,
        period_secs,
        range,
        by: By::parse(fields.get("by").map_or("", String::as_str))?,
        resolution: fields
            .get("resolution")
            .map(|r| parse_resolution(r))
            .transpose()?,
    })
}

/// Authorized by the service (`metrics:Get` per node).
async fn query(
    Ctx { state, principal }: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Json<api::MetricQueryAnswer>> {
    let q = parse_query(pairs).map_err(invalid)?;
    let result = state.metrics().query(&principal, &q).await.map_err(coded)?;
    Ok(Json(api::MetricQueryAnswer {
        metric: q.metric,
        stat: stat_name(q.stat),
        period: result.plan.period_secs,
        from: result.plan.from,
        to: result.plan.to,
        resolution: result.plan.resolution.as_str().into(),
        by: q.by.as_str().into(),
        series: result
            .series
            .into_iter()
            .map(|s| api::MetricSeriesAnswer {
                node_id: s.node.as_ref().map(|n| n.id.clone()),
                node_name: s.node.map(|n| n.name),
                dimensions: s.dimensions,
                unit: s.unit,
                points: s.points,
            })
            .collect(),
    }))
}

#[derive(Debug, serde::Deserialize)]
struct NamesQuery {
    node: Option<String>,
}

/// Authorized by the service (`metrics:Get` per node).
async fn names(
    Ctx { state, principal }: Ctx,
    Query(q): Query<NamesQuery>,
) -> ApiResult<Json<api::MetricNames>> {
    let node = q.node.filter(|n| !n.is_empty());
    let names = state
        .metrics()
        .names(&principal, node.as_deref())
        .await
        .map_err(coded)?;
    Ok(Json(api::MetricNames {
        names: names
            .into_iter()
            .map(|n| api::MetricName {
                name: n.name,
                unit: n.unit,
                series: n.series,
                nodes: n.nodes,
                dimension_keys: n.dimension_keys,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        text.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn query_strings() {
        let q = parse_query(pairs(
            "metric=disk.used_percent&node=web-1&dim.mount=/&stat=p90&period=60&since=6h&by=node",
        ))
        .unwrap();
        assert_eq!(q.metric, "disk.used_percent");
        assert_eq!(q.node.as_deref(), Some("web-1"));
        assert_eq!(q.dimensions.get("mount").map(String::as_str), Some("/"));
        assert_eq!(q.stat, operon_alarms::Statistic::Percentile(90.0));
        assert_eq!(q.period_secs, Some(60));
        assert_eq!(q.range, TimeRange::Since(6 * 3_600_000));
        assert_eq!(q.by, By::Node);
        let q = parse_query(pairs("metric=cpu.used&from=1000&to=2000")).unwrap();
        assert_eq!(
            q.range,
            TimeRange::Between {
                from: 1000,
                to: Some(2000)
            }
        );
        assert_eq!(
            parse_query(pairs("metric=cpu.used")).unwrap().range,
            TimeRange::Since(3_600_000)
        );
        for (text, error) in [
            ("", "metric is required"),
            ("metric=a&since=6h&from=1", "not both"),
            ("metric=a&to=1", "to needs from"),
            ("metric=a&since=6", "no unit"),
            ("metric=a&stat=median", "median"),
            ("metric=a&period=-1", "period"),
            ("metric=a&by=mount", "by"),
            ("metric=a&colour=red", "colour"),
            ("metric=a&metric=b", "twice"),
            ("metric=a&from=yesterday", "from"),
        ] {
            let got = parse_query(pairs(text)).unwrap_err();
            assert!(got.contains(error), "{text}: {got}");
        }
    }
}
