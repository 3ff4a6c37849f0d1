//! `GET /v1/logs`: parse, call the logs service, shape the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};

use operon_api::logs as api;

use super::service::LogQuery;
use crate::AppState;
use crate::access::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::metrics::query::parse_duration;
use crate::now_millis;
use crate::service::ServiceError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/logs", get(query))
}

/// The service's code (`InvalidQuery`, `UnknownNode`) as the answer's.
fn coded(err: ServiceError) -> ApiError {
    let code = err.code;
    let mut api: ApiError = err.into();
    if !matches!(code, "Forbidden" | "InternalError") {
        api.code = code;
    }
    api
}

/// `since` as a Unix ms: a duration back from `now` (`1h`) or a Unix ms.
fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    parse_duration(text).map(|ago| now.saturating_sub(ago))
}

/// A query string as a [`LogQuery`]; every parameter at most once.
pub fn parse_query(pairs: Vec<(String, String)>, now: i64) -> Result<LogQuery, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in pairs {
        match key.as_str() {
            "node" | "source" | "level" | "text" | "grep" | "since" | "until" | "after"
            | "limit" => {
                if fields.insert(key.clone(), value).is_some() {
                    return Err(format!("{key} is given twice"));
                }
            }
            other => return Err(format!("unknown query parameter {other:?}")),
        }
    }
    let mut take = |key: &str| fields.remove(key).filter(|v| !v.is_empty());
    let whole = |name: &str, text: String| -> Result<i64, String> {
        text.parse()
            .map_err(|_| format!("{name} {text:?} is not a whole number"))
    };
    let now_or = |t: Option<String>| t.map(|t| parse_since(&t, now)).transpose();
    Ok(LogQuery {
        node: take("node"),
        source: take("source"),
        level: take("level"),
        text: take("text"),
        grep: take("grep"),
        since: now_or(take("since"))?,
        until: take("until").map(|u| whole("until", u)).transpose()?,
        after: take("after").map(|a| whole("after", a)).transpose()?,
        limit: take("limit")
            .map(|l| {
                l.parse::<u32>()
                    .map_err(|_| format!("limit {l:?} is not a whole number"))
            })
            .transpose()?,
    })
}

/// Authorized by the service (`logs:Get` on `node/*`, then per node).
async fn query(
    Ctx { state, principal }: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Json<api::LogQueryAnswer>> {
    let q = parse_query(pairs, now_millis())
        .map_err(|e| coded(ServiceError::invalid("InvalidQuery", e)))?;
    let answer = state.logs().query(&principal, &q).await.map_err(coded)?;
    Ok(Json(api::LogQueryAnswer {
        entries: answer
            .entries
            .into_iter()
            .map(|(l, node_name)| api::LogLine {
                id: l.id,
                node_id: l.node_id,
                node_name,
                at: l.at,
                source: l.source,
                level: l.level,
                message: l.message,
                fields: l.fields,
            })
            .collect(),
        cursor: answer.cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn queries() {
        let now = 10_000_000;
        let q = parse_query(
            pairs("node=web-1&level=error&since=1h&after=5&limit=20"),
            now,
        )
        .unwrap();
        assert_eq!(q.node.as_deref(), Some("web-1"));
        assert_eq!(q.since, Some(now - 3_600_000));
        assert_eq!((q.after, q.limit), (Some(5), Some(20)));
        assert_eq!(
            parse_query(pairs("since=1234"), now).unwrap().since,
            Some(1234)
        );
        assert_eq!(parse_query(pairs("node="), now).unwrap().node, None);
        for (bad, says) in [
            ("level=x&level=y", "twice"),
            ("colour=red", "unknown query parameter"),
            ("since=soon", "duration"),
            ("after=x", "after"),
            ("limit=-1", "limit"),
        ] {
            let err = parse_query(pairs(bad), now).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
