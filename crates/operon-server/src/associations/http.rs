//! The HTTP edge of the State Manager: `/v1/associations`, `/v1/compliance`.

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use operon_api::associations::{
    Association, AssociationDetail, AssociationRunStarted, ComplianceSummary, CreateAssociation,
    NodeCompliance, RunAssociation, UpdateAssociation,
};

use crate::AppState;
use crate::access::Ctx;
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/associations", post(create).get(list))
        .route(
            "/v1/associations/{name}",
            get(show).put(update).delete(delete),
        )
        .route("/v1/associations/{name}/run", post(run))
        .route("/v1/compliance", get(compliance))
        .route("/v1/compliance/summary", get(summary))
}

async fn create(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateAssociation>,
) -> ApiResult<Json<Association>> {
    let created = state
        .associations()
        .create(&principal, &body.name, body.spec)
        .await?;
    Ok(Json(created))
}

async fn list(Ctx { state, principal }: Ctx) -> ApiResult<Json<Vec<Association>>> {
    Ok(Json(state.associations().list(&principal).await?))
}

async fn show(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<AssociationDetail>> {
    Ok(Json(state.associations().get(&principal, &name).await?))
}

async fn update(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<UpdateAssociation>,
) -> ApiResult<Json<Association>> {
    let updated = state
        .associations()
        .update(&principal, &name, body.spec, body.expected_version)
        .await?;
    Ok(Json(updated))
}

async fn delete(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<Association>> {
    Ok(Json(state.associations().delete(&principal, &name).await?))
}

async fn run(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<RunAssociation>,
) -> ApiResult<Json<AssociationRunStarted>> {
    let started = state
        .associations()
        .run(&principal, &name, body.check)
        .await?;
    if let Some(id) = &started.command_id {
        principal.note("command_id", id.clone());
    }
    Ok(Json(started))
}

#[derive(Deserialize)]
struct ComplianceQuery {
    association: Option<String>,
    node: Option<String>,
    status: Option<String>,
}

async fn compliance(
    Ctx { state, principal }: Ctx,
    Query(q): Query<ComplianceQuery>,
) -> ApiResult<Json<Vec<NodeCompliance>>> {
    let list = state
        .associations()
        .list_compliance(
            &principal,
            q.association.as_deref(),
            q.node.as_deref(),
            q.status.as_deref(),
        )
        .await?;
    Ok(Json(list))
}

async fn summary(Ctx { state, principal }: Ctx) -> ApiResult<Json<ComplianceSummary>> {
    Ok(Json(state.associations().summary(&principal).await?))
}
