//! `/v1/nodes/{key}/inventory` and `/v1/inventory`: parse, call the
//! inventory service, shape the answer.

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use operon_api::inventory as api;
use operon_store::InventoryRow;

use crate::AppState;
use crate::access::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::service::ServiceError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/nodes/{key}/inventory", get(show))
        .route("/v1/inventory", get(query))
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct QueryQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    filter: String,
}

/// The service's code (`InvalidFilter`, `InvalidInventoryType`, `UnknownNode`)
/// as the answer's, as Parameter Store's routes do.
fn coded(err: ServiceError) -> ApiError {
    let code = err.code;
    let mut api: ApiError = err.into();
    if !matches!(code, "Forbidden" | "InternalError") {
        api.code = code;
    }
    api
}

fn item(row: InventoryRow) -> api::InventoryItem {
    api::InventoryItem {
        kind: row.kind,
        key: row.key,
        attributes: row.attributes,
        updated_at: row.updated_at,
    }
}

/// Authorized by the service (`inventory:Get` with the node's tags).
async fn show(
    Ctx { state, principal }: Ctx,
    Path(key): Path<String>,
    Query(q): Query<ShowQuery>,
) -> ApiResult<Json<api::NodeInventory>> {
    let found = state
        .inventory()
        .show(&principal, &key, q.kind.as_deref())
        .await
        .map_err(coded)?;
    Ok(Json(api::NodeInventory {
        node_id: found.node.id,
        node_name: found.node.name,
        items: found.items.into_iter().map(item).collect(),
    }))
}

/// Authorized by the service (`inventory:Query`, then per node).
async fn query(
    Ctx { state, principal }: Ctx,
    Query(q): Query<QueryQuery>,
) -> ApiResult<Json<api::InventoryQueryAnswer>> {
    let kind = q.kind.ok_or_else(|| {
        coded(ServiceError::invalid(
            "InvalidInventoryType",
            "type is required (packages, ...)",
        ))
    })?;
    let found = state
        .inventory()
        .query(&principal, &kind, &q.filter)
        .await
        .map_err(coded)?;
    Ok(Json(api::InventoryQueryAnswer {
        kind,
        filter: q.filter,
        matches: found
            .into_iter()
            .map(|f| api::InventoryMatch {
                node_id: f.node.id,
                node_name: f.node.name,
                kind: f.item.kind,
                key: f.item.key,
                attributes: f.item.attributes,
                updated_at: f.item.updated_at,
            })
            .collect(),
    }))
}
