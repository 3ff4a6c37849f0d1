//! The HTTP edge of healing: `/v1/heals`, `/v1/incidents`.

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use operon_api::heal::{Heal, HealSpec, Incident, IncidentDetail, ResolveIncident};

use super::service::IncidentQuery;
use crate::AppState;
use crate::access::Ctx;
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/heals", get(list))
        .route("/v1/heals/{name}", put(put_heal).get(show).delete(delete))
        .route("/v1/incidents", get(incidents))
        .route("/v1/incidents/{id}", get(incident))
        .route("/v1/incidents/{id}/ack", post(acknowledge))
        .route("/v1/incidents/{id}/resolve", post(resolve))
}

async fn put_heal(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(spec): Json<HealSpec>,
) -> ApiResult<Json<Heal>> {
    Ok(Json(state.heals().put(&principal, &name, spec).await?))
}

async fn list(Ctx { state, principal }: Ctx) -> ApiResult<Json<Vec<Heal>>> {
    Ok(Json(state.heals().list(&principal).await?))
}

async fn show(Ctx { state, principal }: Ctx, Path(name): Path<String>) -> ApiResult<Json<Heal>> {
    Ok(Json(state.heals().get(&principal, &name).await?))
}

async fn delete(Ctx { state, principal }: Ctx, Path(name): Path<String>) -> ApiResult<Json<Heal>> {
    Ok(Json(state.heals().delete(&principal, &name).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    alarm: Option<String>,
    node: Option<String>,
    since: Option<i64>,
    limit: Option<i64>,
}

async fn incidents(
    Ctx { state, principal }: Ctx,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Incident>>> {
    let query = IncidentQuery {
        status: q.status,
        alarm: q.alarm,
        node: q.node,
        since: q.since,
        limit: q.limit,
    };
    Ok(Json(state.incidents().list(&principal, query).await?))
}

async fn incident(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentDetail>> {
    Ok(Json(state.incidents().get(&principal, &id).await?))
}

async fn acknowledge(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentDetail>> {
    Ok(Json(state.incidents().acknowledge(&principal, &id).await?))
}

async fn resolve(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
    body: Option<Json<ResolveIncident>>,
) -> ApiResult<Json<IncidentDetail>> {
    let note = body.and_then(|Json(b)| b.note);
    Ok(Json(
        state
            .incidents()
            .resolve(&principal, &id, note.as_deref())
            .await?,
    ))
}
