//! The HTTP edge of the documents service: `/v1/documents`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use operon_api::documents::CreateDocument;

use super::DocumentVersion;
use super::service::{CreatedVersion, DefaultVersionChange, DocumentSummary, DocumentView};
use crate::AppState;
use crate::access::{Ctx, authorize};
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/documents", post(create_document).get(list_documents))
        .route("/v1/documents/{name}", get(show_document))
        .route(
            "/v1/documents/{name}/default-version",
            post(update_default_version),
        )
}

async fn create_document(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateDocument>,
) -> ApiResult<Json<CreatedVersion>> {
    authorize(
        &state,
        &principal,
        "documents:Create",
        &format!("document/{}", body.name),
    )
    .await?;
    let created = state.documents().create(&body.name, &body.content).await?;
    principal.note("version", created.version);
    Ok(Json(created))
}

async fn list_documents(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<DocumentSummary>>> {
    Ok(Json(state.documents().list().await?))
}

#[derive(Deserialize)]
struct VersionQuery {
    /// A version number, `$DEFAULT` or `$LATEST`; the default when absent.
    version: Option<String>,
}

async fn show_document(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<DocumentView>> {
    let version = match q.version.as_deref() {
        None => DocumentVersion::Default,
        Some(text) => DocumentVersion::parse(text).map_err(ApiError::invalid)?,
    };
    Ok(Json(state.documents().get(&name, version).await?))
}

/// `POST /v1/documents/{name}/default-version` with `{"version": N}`
/// (`"$LATEST"` is accepted too). Authorized by the route layer
/// (`documents:UpdateDefaultVersion` on `document/NAME`).
async fn update_default_version(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<DefaultVersionChange>> {
    let given = body.get("version").ok_or_else(|| {
        ApiError::invalid(r#"give the version to make the default: {"version": N}"#)
    })?;
    let version = DocumentVersion::from_json(given).map_err(ApiError::invalid)?;
    let change = state.documents().update_default(&name, version).await?;
    principal.note("default_version", change.default_version);
    principal.note("previous_default_version", change.previous_default_version);
    Ok(Json(change))
}
