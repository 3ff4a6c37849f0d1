//! The HTTP edge of the documents service: `/v1/documents`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::service::DocumentSummary;
use crate::AppState;
use crate::access::{Ctx, authorize};
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/documents", post(create_document).get(list_documents))
        .route("/v1/documents/{name}", get(show_document))
}

#[derive(Deserialize)]
struct CreateDocument {
    name: String,
    content: Value,
}

async fn create_document(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateDocument>,
) -> ApiResult<Json<Value>> {
    authorize(
        &state,
        &principal,
        "documents:Create",
        &format!("document/{}", body.name),
    )
    .await?;
    let version = state.documents().create(&body.name, &body.content).await?;
    Ok(Json(json!({"name": body.name, "version": version})))
}

async fn list_documents(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<DocumentSummary>>> {
    Ok(Json(state.documents().list().await?))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<i64>,
}

async fn show_document(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    let (version, content) = state.documents().get(&name, q.version).await?;
    Ok(Json(
        json!({"name": name, "version": version, "content": content}),
    ))
}
