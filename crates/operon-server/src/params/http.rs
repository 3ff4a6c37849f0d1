//! The HTTP edge of Parameter Store: `/v1/parameters`,
//! `/v1/parameters-by-path`, `/v1/keys` and `/v1/access-keys`.

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use operon_api::params::{
    AccessKey, CreateAccessKey, KeyInfo, LabelChange, LabelResult, Parameter, ParameterDeleted,
    ParameterPage, ParameterTagChange, ParameterTags, ParameterWritten, PutParameter, PutSync,
    Rewrapped, Sync, SyncNode, SyncStatus,
};
use operon_params::filters::{FilterContext, ParameterStringFilter};

use super::access_keys::AccessKeyView;
use super::service::{self, Labelled, ParamView};
use crate::AppState;
use crate::access::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::keyring::KeyView;
use crate::service::ServiceError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/parameters", get(list))
        .route(
            "/v1/parameters/{name}",
            get(get_one).put(put).delete(delete),
        )
        .route("/v1/parameters-by-path", get(by_path))
        .route("/v1/parameters/{name}/history", get(history))
        .route("/v1/parameters/{name}/labels", post(label))
        .route("/v1/parameters/{name}/unlabel", post(unlabel))
        .route("/v1/parameters/{name}/tags", get(tags).post(tag))
        .route("/v1/param-syncs", get(list_syncs))
        .route(
            "/v1/param-syncs/{name}",
            get(show_sync).put(put_sync).delete(delete_sync),
        )
        .route("/v1/keys", get(keys))
        .route("/v1/keys/rotate", post(rotate))
        .route("/v1/keys/rewrap", post(rewrap))
        .route(
            "/v1/access-keys",
            post(create_access_key).get(list_access_keys),
        )
        .route(
            "/v1/access-keys/{id}",
            axum::routing::delete(revoke_access_key),
        )
}

/// A service refusal with its SSM code kept (`ParameterNotFound`,
/// `ParameterAlreadyExists`, ...), so the native API names the same rule the
/// AWS edge does; the status comes from the kind as everywhere.
fn coded(err: ServiceError) -> ApiError {
    let code = err.code;
    let mut api: ApiError = err.into();
    if !matches!(code, "Forbidden" | "InternalError") {
        api.code = code;
    }
    api
}

/// The wire view of a parameter version.
pub(crate) fn parameter(view: ParamView) -> Parameter {
    Parameter {
        value: view.value,
        name: view.name,
        param_type: view.param_type,
        version: view.version,
        selector: view.selector,
        labels: view.labels,
        last_modified: view.modified_at,
        last_modified_by: view.modified_by,
        description: view.description,
        allowed_pattern: view.allowed_pattern,
        tier: view.tier,
        data_type: view.data_type,
        policies: view
            .policies
            .and_then(|text| serde_json::from_str(&text).ok()),
        key_id: view.key_id,
    }
}

async fn put(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<PutParameter>,
) -> ApiResult<Json<ParameterWritten>> {
    let put = service::PutParameter {
        name: name.clone(),
        value: body.value,
        param_type: body.param_type,
        description: body.description,
        allowed_pattern: body.allowed_pattern,
        overwrite: body.overwrite,
        tier: body.tier,
        policies: body.policies.map(|p| p.to_string()),
        tags: body.tags,
        key_id: None,
        data_type: None,
    };
    let written = state.params().put(&principal, put).await.map_err(coded)?;
    principal.note("version", written.version);
    Ok(Json(ParameterWritten {
        name,
        version: written.version,
        tier: written.tier,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecryptQuery {
    #[serde(default)]
    decrypt: bool,
}

async fn get_one(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Query(q): Query<DecryptQuery>,
) -> ApiResult<Json<Parameter>> {
    let view = state
        .params()
        .get(&principal, &name, q.decrypt)
        .await
        .map_err(coded)?;
    Ok(Json(parameter(view)))
}

async fn delete(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<ParameterDeleted>> {
    let version = state
        .params()
        .delete(&principal, &name)
        .await
        .map_err(coded)?;
    Ok(Json(ParameterDeleted { name, version }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    path: Option<String>,
    #[serde(default)]
    recursive: bool,
    #[serde(rename = "type")]
    param_type: Option<String>,
    name_contains: Option<String>,
    tag: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

fn filter(key: &str, option: Option<&str>, values: Vec<String>) -> ParameterStringFilter {
    ParameterStringFilter {
        key: key.to_string(),
        option: option.map(str::to_string),
        values: Some(values),
    }
}

fn page_size(max: Option<usize>, limit: usize) -> ApiResult<Option<usize>> {
    match max {
        Some(n) if n == 0 || n > limit => Err(ApiError::invalid(format!(
            "max_results must be between 1 and {limit}"
        ))),
        other => Ok(other),
    }
}

async fn list(
    Ctx { state, principal }: Ctx,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ParameterPage>> {
    let mut filters = Vec::new();
    if let Some(path) = q.path {
        let option = if q.recursive { "Recursive" } else { "OneLevel" };
        filters.push(filter("Path", Some(option), vec![path]));
    }
    if let Some(t) = q.param_type {
        filters.push(filter("Type", Some("Equals"), vec![t]));
    }
    if let Some(text) = q.name_contains {
        filters.push(filter("Name", Some("Contains"), vec![text]));
    }
    if let Some(tag) = q.tag {
        let (key, value) = match tag.split_once('=') {
            Some((k, v)) => (k.to_string(), vec![v.to_string()]),
            None => (tag, vec![]),
        };
        let mut f = filter(&format!("tag:{key}"), Some("Equals"), value);
        if f.values.as_ref().is_some_and(Vec::is_empty) {
            f.values = None;
        }
        filters.push(f);
    }
    let filters =
        service::validate_filters(FilterContext::DescribeParameters, &filters).map_err(coded)?;
    let page = state
        .params()
        .describe(
            &principal,
            &filters,
            page_size(q.max_results, 50)?,
            q.next_token.as_deref(),
        )
        .await
        .map_err(coded)?;
    Ok(Json(ParameterPage {
        parameters: page.items.into_iter().map(parameter).collect(),
        next_token: page.next_token,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathQuery {
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    decrypt: bool,
    label: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

async fn by_path(
    Ctx { state, principal }: Ctx,
    Query(q): Query<PathQuery>,
) -> ApiResult<Json<ParameterPage>> {
    let mut filters = Vec::new();
    if let Some(label) = q.label {
        filters.push(filter("Label", Some("Equals"), vec![label]));
    }
    let filters =
        service::validate_filters(FilterContext::GetParametersByPath, &filters).map_err(coded)?;
    let page = state
        .params()
        .get_by_path(
            &principal,
            &service::PathRead {
                path: &q.path,
                recursive: q.recursive,
                filters: &filters,
                decrypt: q.decrypt,
                max_results: page_size(q.max_results, 10)?,
                token: q.next_token.as_deref(),
            },
        )
        .await
        .map_err(coded)?;
    Ok(Json(ParameterPage {
        parameters: page.items.into_iter().map(parameter).collect(),
        next_token: page.next_token,
    }))
}

async fn history(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Query(q): Query<DecryptQuery>,
) -> ApiResult<Json<Vec<Parameter>>> {
    let versions = state
        .params()
        .history(&principal, &name, q.decrypt)
        .await
        .map_err(coded)?;
    Ok(Json(versions.into_iter().map(parameter).collect()))
}

fn label_result(l: Labelled) -> LabelResult {
    LabelResult {
        version: l.version,
        invalid_labels: l.invalid_labels,
        removed_labels: l.removed_labels,
    }
}

async fn label(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<LabelChange>,
) -> ApiResult<Json<LabelResult>> {
    let done = state
        .params()
        .label(&principal, &name, body.version, &body.labels)
        .await
        .map_err(coded)?;
    Ok(Json(label_result(done)))
}

async fn unlabel(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<LabelChange>,
) -> ApiResult<Json<LabelResult>> {
    let version = body
        .version
        .ok_or_else(|| ApiError::invalid("give the version to take the labels off"))?;
    let done = state
        .params()
        .unlabel(&principal, &name, version, &body.labels)
        .await
        .map_err(coded)?;
    Ok(Json(label_result(done)))
}

async fn tags(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<ParameterTags>> {
    let tags = state
        .params()
        .tags(&principal, &name)
        .await
        .map_err(coded)?;
    Ok(Json(ParameterTags { name, tags }))
}

async fn tag(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<ParameterTagChange>,
) -> ApiResult<Json<ParameterTags>> {
    let tags = state
        .params()
        .tag(&principal, &name, &body.add, &body.remove)
        .await
        .map_err(coded)?;
    Ok(Json(ParameterTags { name, tags }))
}

fn key_info(k: KeyView) -> KeyInfo {
    KeyInfo {
        id: k.id,
        created_at: k.created_at,
        active: k.active,
        fingerprint: k.fingerprint,
    }
}

async fn keys(Ctx { state, .. }: Ctx) -> ApiResult<Json<Vec<KeyInfo>>> {
    Ok(Json(
        state.key_ring().list().into_iter().map(key_info).collect(),
    ))
}

async fn rotate(Ctx { state, principal }: Ctx) -> ApiResult<Json<Vec<KeyInfo>>> {
    let keys = state.key_ring().rotate().map_err(coded)?;
    if let Some(active) = keys.iter().find(|k| k.active) {
        principal.note("active", active.id.clone());
    }
    Ok(Json(keys.into_iter().map(key_info).collect()))
}

async fn rewrap(Ctx { state, principal }: Ctx) -> ApiResult<Json<Rewrapped>> {
    let count = state.key_ring().rewrap().await.map_err(coded)?;
    principal.note("rewrapped", count.rewrapped);
    Ok(Json(Rewrapped {
        active: state.keys.active(),
        rewrapped: count.rewrapped,
        unchanged: count.unchanged,
    }))
}

fn access_key(v: AccessKeyView) -> AccessKey {
    AccessKey {
        access_key_id: v.id,
        user: v.user,
        created_at: v.created_at,
        revoked_at: v.revoked_at,
        secret_access_key: v.secret,
    }
}

async fn create_access_key(
    Ctx { state, principal }: Ctx,
    Json(body): Json<CreateAccessKey>,
) -> ApiResult<Json<AccessKey>> {
    let key = state
        .access_keys()
        .create(&principal, body.user.as_deref())
        .await
        .map_err(coded)?;
    Ok(Json(access_key(key)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserQuery {
    user: Option<String>,
}

async fn list_access_keys(
    Ctx { state, principal }: Ctx,
    Query(q): Query<UserQuery>,
) -> ApiResult<Json<Vec<AccessKey>>> {
    let keys = state
        .access_keys()
        .list(&principal, q.user.as_deref())
        .await
        .map_err(coded)?;
    Ok(Json(keys.into_iter().map(access_key).collect()))
}

async fn revoke_access_key(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<AccessKey>> {
    Ok(Json(access_key(
        state
            .access_keys()
            .revoke(&principal, &id)
            .await
            .map_err(coded)?,
    )))
}

fn sync_view(s: operon_store::ParamSync) -> Sync {
    Sync {
        targets: s
            .targets
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        name: s.name,
        path: s.path,
        recursive: s.recursive,
        file: s.file,
        format: s.format,
        mode: format!("{:04o}", s.mode),
        owner: s.owner,
        group: s.group,
        on_change: s.on_change,
        role: s.role,
        author: s.author,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

async fn put_sync(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
    Json(body): Json<PutSync>,
) -> ApiResult<Json<Sync>> {
    let new = super::sync::NewSync {
        name,
        path: body.path,
        recursive: body.recursive,
        targets: body.targets,
        file: body.file,
        format: body.format,
        mode: body.mode,
        owner: body.owner,
        group: body.group,
        on_change: body.on_change,
        role: body.role,
    };
    let (sync, created) = state
        .param_syncs()
        .put(&principal, new)
        .await
        .map_err(coded)?;
    principal.note("created", created);
    Ok(Json(sync_view(sync)))
}

async fn list_syncs(Ctx { state, principal }: Ctx) -> ApiResult<Json<Vec<Sync>>> {
    let syncs = state.param_syncs().list(&principal).await.map_err(coded)?;
    Ok(Json(syncs.into_iter().map(sync_view).collect()))
}

async fn show_sync(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<SyncStatus>> {
    let view = state
        .param_syncs()
        .get(&principal, &name)
        .await
        .map_err(coded)?;
    Ok(Json(SyncStatus {
        sync: sync_view(view.sync),
        nodes: view
            .nodes
            .into_iter()
            .map(|n| SyncNode {
                node_id: n.node_id,
                node_name: n.node_name,
                status: n.status,
                detail: n.detail,
                versions: n.version_set,
                applied_digest: n.applied_digest,
                applied_at: n.applied_at,
                sent_at: n.sent_at,
                on_change_exit: n.on_change_exit,
            })
            .collect(),
    }))
}

async fn delete_sync(
    Ctx { state, principal }: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<Sync>> {
    let view = state
        .param_syncs()
        .get(&principal, &name)
        .await
        .map_err(coded)?;
    state
        .param_syncs()
        .delete(&principal, &name)
        .await
        .map_err(coded)?;
    Ok(Json(sync_view(view.sync)))
}
