//! The HTTP edge of alarms: `/v1/alarms`.

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use operon_api::alarms::{Alarm, AlarmHistoryItem, AlarmSpec, SetAlarmState};

use crate::AppState;
use crate::access::Ctx;
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/alarms", get(list))
        .route("/v1/alarms/{name}", put(put_alarm).get(show).delete(delete))
        .route("/v1/alarms/{name}/history", get(history))
        .route("/v1/alarms/{name}/state", post(set_state))
}

async fn put_alarm(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(spec): Json<AlarmSpec>,
) -> ApiResult<Json<Alarm>> {
    Ok(Json(state.alarms().put(&principal, &name, spec).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    prefix: Option<String>,
}

async fn list(
    Ctx { state, principal }: Ctx,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<Alarm>>> {
    let alarms = state
        .alarms()
        .list(&principal, query.state.as_deref(), query.prefix.as_deref())
        .await?;
    Ok(Json(alarms))
}

async fn show(Ctx { state, principal }: Ctx, Path(name): Path<String>) -> ApiResult<Json<Alarm>> {
    Ok(Json(state.alarms().get(&principal, &name).await?))
}

#[derive(Deserialize)]
struct HistoryQuery {
    node: Option<String>,
    limit: Option<i64>,
}

async fn history(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<AlarmHistoryItem>>> {
    let items = state
        .alarms()
        .history(&principal, &name, query.node.as_deref(), query.limit)
        .await?;
    Ok(Json(items))
}

async fn delete(Ctx { state, principal }: Ctx, Path(name): Path<String>) -> ApiResult<Json<Alarm>> {
    Ok(Json(state.alarms().delete(&principal, &name).await?))
}

async fn set_state(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<SetAlarmState>,
) -> ApiResult<Json<Alarm>> {
    Ok(Json(
        state.alarms().set_state(&principal, &name, body).await?,
    ))
}
