//! The HTTP edge of monitors: `/v1/monitors`.

use std::sync::Arc;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};

use operon_api::monitors::{Monitor, MonitorDetail, PutMonitor};

use crate::AppState;
use crate::access::Ctx;
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/monitors", get(list))
        .route("/v1/monitors/{name}", get(show).put(put).delete(delete))
}

async fn put(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<PutMonitor>,
) -> ApiResult<Json<Monitor>> {
    Ok(Json(state.monitors().put(&principal, &name, body).await?))
}

async fn list(Ctx { state, principal }: Ctx) -> ApiResult<Json<Vec<Monitor>>> {
    Ok(Json(state.monitors().list(&principal).await?))
}

async fn show(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<MonitorDetail>> {
    Ok(Json(state.monitors().get(&principal, &name).await?))
}

async fn delete(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<Monitor>> {
    Ok(Json(state.monitors().delete(&principal, &name).await?))
}
