//! The AWS edge of Parameter Store: the SSM JSON 1.1 protocol, so the AWS
//! CLI and SDKs work against Operon with `--endpoint-url`.
//!
//! `POST /` with `X-Amz-Target: AmazonSSM.<Operation>` and a SigV4
//! `Authorization` made with an access key Operon issued
//! (`operon access-keys create`). The request is authenticated here
//! (`operon-sigv4`), the access key's user becomes the principal with its
//! policies now, and the operation goes to the same [`ParamService`] as the
//! native API: same rules, same authorization, same audit (every mutating
//! call gets the record the native API's middleware writes, every refusal
//! of a signature is audited, rate limited per address like bad tokens).
//! Answers and errors are the JSON 1.1 shapes (`{"__type", "message"}`),
//! from the wire types of `operon-params`.
//!
//! [`ParamService`]: super::service::ParamService

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use operon_params::filters::{self, FilterContext};
use operon_params::ssm::{self, Operation, SsmError, SsmErrorCode};
use operon_sigv4::SigError;
use operon_store::AuditEntry;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::service::{ParamView, PathRead, PutParameter};
use crate::access::Principal;
use crate::events::envelope::ACCOUNT;
use crate::refusals::Verdict;
use crate::service::{ErrorKind, ServiceError};
use crate::{AppState, now_millis};

/// The content type of the JSON 1.1 protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The largest request body read (a PutParameter of an 8 KB value is far below).
const MAX_BODY: usize = 1 << 20;
/// The service name in a SigV4 credential scope.
pub const SERVICE: &str = "ssm";

/// Whether a request is for this edge: the JSON protocol is told apart from
/// everything else on the listener by its target header.
pub fn is_aws_request(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("AmazonSSM."))
}

fn answer<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

fn error_response(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"__type": code, "message": message}).to_string();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

fn ssm_error(err: SsmError) -> Response {
    error_response(err.http_status(), err.code.as_str(), &err.message)
}

/// A service refusal in SSM's terms: the service's codes are SSM's codes
/// already, but for the generic kinds.
fn service_error(err: ServiceError) -> Response {
    let (status, code) = match err.kind {
        ErrorKind::Forbidden => (400, SsmErrorCode::AccessDeniedException.as_str()),
        ErrorKind::Internal => (500, SsmErrorCode::InternalServerError.as_str()),
        ErrorKind::Unavailable => (400, SsmErrorCode::ThrottlingException.as_str()),
        _ if err.code == "Conflict" || err.code == "InvalidName" => {
            (400, SsmErrorCode::ValidationException.as_str())
        }
        _ => (400, err.code),
    };
    error_response(status, code, &err.message)
}

fn sig_error(err: &SigError) -> Response {
    error_response(err.status(), err.code(), &err.message())
}

/// `POST /` carrying `X-Amz-Target`.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
) -> Response {
    if !is_aws_request(request.headers()) {
        return crate::error::ApiError::not_found(
            "no such endpoint (POST / serves the SSM JSON protocol: X-Amz-Target: AmazonSSM.<Operation>)",
        )
        .into_response();
    }
    let (parts, body) = request.into_parts();
    let source = parts
        .extensions
        .get::<ConnectInfo<crate::PeerAddr>>()
        .map(|c| c.0.0.ip());
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return ssm_error(SsmError::new(
                SsmErrorCode::ValidationException,
                format!("the request body is larger than {MAX_BODY} bytes"),
            ));
        }
    };
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (principal, region) = match authenticate(&state, &method, &uri, &headers, &body).await {
        Ok(signed) => signed,
        Err((actor, err)) => {
            if actor == crate::api::ANONYMOUS
                && state.refusals.check(source, now_millis()) == Verdict::Suppress
            {
                return crate::api::too_many_refusals(&state);
            }
            let entry = AuditEntry {
                actor,
                action: "auth:Authenticate".into(),
                resource: "aws/ssm".into(),
                outcome: "unauthenticated".into(),
                detail: serde_json::json!({"target": target, "reason": err.message(), "code": err.code()}),
            };
            if let Err(e) = state.audit.record(entry).await {
                tracing::error!(error = %e, "a refused request could not be audited");
            }
            return sig_error(&err);
        }
    };
    let operation = match Operation::from_target(&target) {
        Ok(operation) => operation,
        Err(err) => return ssm_error(err),
    };
    let response = match dispatch(&state, &principal, &region, operation, &body).await {
        Ok(response) => response,
        Err(Failure::Ssm(err)) => ssm_error(err),
        Err(Failure::Service(err)) => service_error(err),
    };
    if mutating(operation) {
        let path = format!("AmazonSSM.{}", operation.as_str());
        crate::api::audit_call(&state, &principal, &Method::POST, &path, response.status()).await;
    }
    response
}

fn mutating(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::PutParameter
            | Operation::DeleteParameter
            | Operation::DeleteParameters
            | Operation::LabelParameterVersion
            | Operation::UnlabelParameterVersion
            | Operation::AddTagsToResource
            | Operation::RemoveTagsFromResource
    )
}

/// Who signed the request, or who tried (`anonymous` when no key is known)
/// and why they are refused.
async fn authenticate(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Principal, String), (String, SigError)> {
    let anonymous = |err| (crate::api::ANONYMOUS.to_string(), err);
    let pairs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let request = operon_sigv4::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &pairs,
        body,
    };
    let auth = operon_sigv4::parse(&request).map_err(anonymous)?;
    let key_id = auth.credential.access_key_id.clone();
    let found = state.access_keys().secret_for(&key_id).await.map_err(|e| {
        tracing::error!(error = %e.message, "an access key could not be read");
        anonymous(SigError::unknown_access_key())
    })?;
    let Some((secret, user)) = found else {
        return Err(anonymous(SigError::unknown_access_key()));
    };
    let who = format!("access key {key_id} ({})", user.name);
    if auth.credential.service != SERVICE {
        return Err((
            who,
            SigError::IncompleteSignature(format!(
                "Credential should be scoped to correct service: '{SERVICE}'."
            )),
        ));
    }
    operon_sigv4::verify(&auth, &request, &secret, now_millis() / 1000)
        .map_err(|e| (who.clone(), e))?;
    let region = auth.credential.region.clone();
    crate::api::user_principal(state, user, key_id, None)
        .await
        .map(|principal| (principal, region))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot load a user's policies");
            (who, SigError::unknown_access_key())
        })
}

enum Failure {
    Ssm(SsmError),
    Service(ServiceError),
}

impl From<SsmError> for Failure {
    fn from(e: SsmError) -> Self {
        Failure::Ssm(e)
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        Failure::Service(e)
    }
}

fn request<T: DeserializeOwned>(body: &[u8]) -> Result<T, SsmError> {
    let body = if body.is_empty() {
        b"{}" as &[u8]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        SsmError::new(
            SsmErrorCode::SerializationException,
            format!("The request body is not valid: {e}"),
        )
    })
}

/// A parameter's ARN in the region the caller signed for (Operon has one
/// region; answering in the caller's keeps ARNs the SDKs build themselves
/// equal to ours).
fn arn(region: &str, name: &str) -> String {
    operon_params::names::arn(region, ACCOUNT, name)
}

/// A name as the API takes it: the name itself, or its ARN
/// (`arn:aws:ssm:REGION:ACCOUNT:parameter/app/x` is `/app/x`,
/// `...:parameter/x` is `x`), with a `:version`/`:label` kept.
fn name_of(given: &str) -> String {
    let given = operon_params::names::normalize_name(given);
    let Some(rest) = given.strip_prefix("arn:") else {
        return given.to_string();
    };
    // arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME[:SELECTOR]
    let mut parts = rest.splitn(5, ':');
    let resource = parts.nth(4).unwrap_or_default();
    match resource.strip_prefix("parameter/") {
        Some(name) if name.contains('/') => format!("/{name}"),
        Some(name) => name.to_string(),
        None => given.to_string(),
    }
}

/// The value AWS shows: clear, or a SecureString's envelope in base64 when
/// read without decryption.
fn wire_value(view: &ParamView) -> String {
    match (&view.value, &view.sealed) {
        (Some(value), _) => value.clone(),
        (None, Some(sealed)) => base64::engine::general_purpose::STANDARD.encode(sealed),
        (None, None) => String::new(),
    }
}

fn wire_parameter(view: &ParamView, region: &str) -> ssm::Parameter {
    ssm::Parameter {
        name: view.name.clone(),
        parameter_type: view.param_type.clone(),
        value: wire_value(view),
        version: view.version.max(0) as u64,
        selector: view.selector.clone(),
        source_result: None,
        last_modified_date: ssm::epoch_seconds(view.modified_at),
        arn: arn(region, &view.name),
        data_type: view.data_type.clone(),
    }
}

fn inline_policies(view: &ParamView) -> Vec<ssm::ParameterInlinePolicy> {
    view.policies
        .as_deref()
        .and_then(|text| operon_params::policies::parse_policies(text).ok())
        .map(|parsed| parsed.iter().map(|p| p.to_inline("Pending")).collect())
        .unwrap_or_default()
}

fn metadata(view: &ParamView, region: &str) -> ssm::ParameterMetadata {
    ssm::ParameterMetadata {
        name: view.name.clone(),
        arn: arn(region, &view.name),
        parameter_type: view.param_type.clone(),
        key_id: view.key_id.clone(),
        last_modified_date: ssm::epoch_seconds(view.modified_at),
        last_modified_user: Some(view.modified_by.clone()),
        description: view.description.clone(),
        allowed_pattern: view.allowed_pattern.clone(),
        version: view.version.max(0) as u64,
        tier: view.tier.clone(),
        policies: inline_policies(view),
        data_type: view.data_type.clone(),
    }
}

fn history_entry(view: &ParamView) -> ssm::ParameterHistory {
    ssm::ParameterHistory {
        name: view.name.clone(),
        parameter_type: view.param_type.clone(),
        key_id: view.key_id.clone(),
        last_modified_date: ssm::epoch_seconds(view.modified_at),
        last_modified_user: Some(view.modified_by.clone()),
        description: view.description.clone(),
        value: wire_value(view),
        allowed_pattern: view.allowed_pattern.clone(),
        version: view.version.max(0) as u64,
        labels: view.labels.clone(),
        tier: view.tier.clone(),
        policies: inline_policies(view),
        data_type: view.data_type.clone(),
    }
}

fn page_size(max: Option<i64>) -> Option<usize> {
    max.and_then(|n| usize::try_from(n).ok())
}

async fn dispatch(
    state: &AppState,
    principal: &Principal,
    region: &str,
    operation: Operation,
    body: &[u8],
) -> Result<Response, Failure> {
    let params = state.params();
    Ok(match operation {
        Operation::PutParameter => {
            let r: ssm::PutParameterRequest = request(body)?;
            r.validate()?;
            let tags = r
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect();
            let put = PutParameter {
                name: operon_params::names::normalize_name(&r.name).to_string(),
                value: r.value,
                param_type: r.parameter_type,
                description: r.description,
                allowed_pattern: r.allowed_pattern,
                overwrite: r.overwrite.unwrap_or(false),
                tier: r.tier,
                policies: r.policies,
                tags,
                key_id: r.key_id,
                data_type: r.data_type,
            };
            let written = params.put(principal, put).await?;
            answer(&ssm::PutParameterResponse {
                version: written.version.max(0) as u64,
                tier: written.tier,
            })
        }
        Operation::GetParameter => {
            let r: ssm::GetParameterRequest = request(body)?;
            r.validate()?;
            let view = params
                .get(
                    principal,
                    &name_of(&r.name),
                    r.with_decryption.unwrap_or(false),
                )
                .await?;
            answer(&ssm::GetParameterResponse {
                parameter: wire_parameter(&view, region),
            })
        }
        Operation::GetParameters => {
            let r: ssm::GetParametersRequest = request(body)?;
            r.validate()?;
            let names: Vec<String> = r.names.iter().map(|n| name_of(n)).collect();
            let (found, invalid) = params
                .get_many(principal, &names, r.with_decryption.unwrap_or(false))
                .await?;
            answer(&ssm::GetParametersResponse {
                parameters: found.iter().map(|v| wire_parameter(v, region)).collect(),
                invalid_parameters: invalid,
            })
        }
        Operation::GetParametersByPath => {
            let r: ssm::GetParametersByPathRequest = request(body)?;
            r.validate()?;
            let filters = filters::validate_filters(
                FilterContext::GetParametersByPath,
                r.parameter_filters.as_deref().unwrap_or_default(),
            )
            .map_err(SsmError::from)?;
            let page = params
                .get_by_path(
                    principal,
                    &PathRead {
                        path: &r.path,
                        recursive: r.recursive.unwrap_or(false),
                        filters: &filters,
                        decrypt: r.with_decryption.unwrap_or(false),
                        max_results: page_size(r.max_results),
                        token: r.next_token.as_deref(),
                    },
                )
                .await?;
            answer(&ssm::GetParametersByPathResponse {
                parameters: page
                    .items
                    .iter()
                    .map(|v| wire_parameter(v, region))
                    .collect(),
                next_token: page.next_token,
            })
        }
        Operation::GetParameterHistory => {
            let r: ssm::GetParameterHistoryRequest = request(body)?;
            r.validate()?;
            let versions = params
                .history(
                    principal,
                    &name_of(&r.name),
                    r.with_decryption.unwrap_or(false),
                )
                .await?;
            let (items, next_token) =
                history_page(&versions, page_size(r.max_results), r.next_token.as_deref())?;
            answer(&ssm::GetParameterHistoryResponse {
                parameters: items.iter().map(history_entry).collect(),
                next_token,
            })
        }
        Operation::DescribeParameters => {
            let r: ssm::DescribeParametersRequest = request(body)?;
            r.validate()?;
            let filters = filters::validate_describe_filters(
                r.filters.as_deref(),
                r.parameter_filters.as_deref(),
            )
            .map_err(SsmError::from)?;
            let page = params
                .describe(
                    principal,
                    &filters,
                    page_size(r.max_results),
                    r.next_token.as_deref(),
                )
                .await?;
            answer(&ssm::DescribeParametersResponse {
                parameters: page.items.iter().map(|v| metadata(v, region)).collect(),
                next_token: page.next_token,
            })
        }
        Operation::DeleteParameter => {
            let r: ssm::DeleteParameterRequest = request(body)?;
            r.validate()?;
            params.delete(principal, &name_of(&r.name)).await?;
            answer(&ssm::EmptyResponse {})
        }
        Operation::DeleteParameters => {
            let r: ssm::DeleteParametersRequest = request(body)?;
            r.validate()?;
            let mut deleted = Vec::new();
            let mut invalid = Vec::new();
            for name in r.names {
                match params.delete(principal, &name_of(&name)).await {
                    Ok(_) => deleted.push(name),
                    Err(e) if e.kind == ErrorKind::NotFound => invalid.push(name),
                    Err(e) => return Err(e.into()),
                }
            }
            answer(&ssm::DeleteParametersResponse {
                deleted_parameters: deleted,
                invalid_parameters: invalid,
            })
        }
        Operation::LabelParameterVersion => {
            let r: ssm::LabelParameterVersionRequest = request(body)?;
            r.validate()?;
            let done = params
                .label(principal, &name_of(&r.name), r.parameter_version, &r.labels)
                .await?;
            answer(&ssm::LabelParameterVersionResponse {
                invalid_labels: done.invalid_labels,
                parameter_version: done.version.max(0) as u64,
            })
        }
        Operation::UnlabelParameterVersion => {
            let r: ssm::UnlabelParameterVersionRequest = request(body)?;
            r.validate()?;
            let done = params
                .unlabel(principal, &name_of(&r.name), r.parameter_version, &r.labels)
                .await?;
            answer(&ssm::UnlabelParameterVersionResponse {
                removed_labels: done.removed_labels,
                invalid_labels: done.invalid_labels,
            })
        }
        Operation::AddTagsToResource => {
            let r: ssm::AddTagsToResourceRequest = request(body)?;
            r.validate()?;
            let existing: Vec<String> = params
                .tags(principal, &r.resource_id)
                .await?
                .into_keys()
                .collect();
            if let Some(err) = ssm::too_many_tags(&existing, &r.tags) {
                return Err(err.into());
            }
            let add = r.tags.into_iter().map(|t| (t.key, t.value)).collect();
            params.tag(principal, &r.resource_id, &add, &[]).await?;
            answer(&ssm::EmptyResponse {})
        }
        Operation::ListTagsForResource => {
            let r: ssm::ListTagsForResourceRequest = request(body)?;
            r.validate()?;
            let tags = params.tags(principal, &r.resource_id).await?;
            answer(&ssm::ListTagsForResourceResponse {
                tag_list: tags
                    .into_iter()
                    .map(|(key, value)| ssm::Tag { key, value })
                    .collect(),
            })
        }
        Operation::RemoveTagsFromResource => {
            let r: ssm::RemoveTagsFromResourceRequest = request(body)?;
            r.validate()?;
            params
                .tag(principal, &r.resource_id, &Default::default(), &r.tag_keys)
                .await?;
            answer(&ssm::EmptyResponse {})
        }
    })
}

/// One page of a history (oldest first), the token being the next index.
fn history_page<'a>(
    versions: &'a [ParamView],
    max: Option<usize>,
    token: Option<&str>,
) -> Result<(&'a [ParamView], Option<String>), SsmError> {
    let start = match token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|i| *i <= versions.len())
            .ok_or_else(|| {
                SsmError::new(
                    SsmErrorCode::InvalidNextToken,
                    "The specified token isn't valid.",
                )
            })?,
    };
    let end = (start + max.unwrap_or(50)).min(versions.len());
    let next = (end < versions.len()).then(|| end.to_string());
    Ok((&versions[start..end], next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ssm_targets_are_this_edge() {
        let mut headers = HeaderMap::new();
        assert!(!is_aws_request(&headers));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonSSM.GetParameter"),
        );
        assert!(is_aws_request(&headers));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("AWSEvents.PutEvents"),
        );
        assert!(!is_aws_request(&headers));
    }

    #[test]
    fn arns_name_parameters() {
        assert_eq!(
            name_of("arn:aws:ssm:us-east-1:123:parameter/app/x"),
            "/app/x"
        );
        assert_eq!(
            name_of("arn:aws:ssm:us-east-1:123:parameter/app/x:3"),
            "/app/x:3"
        );
        assert_eq!(
            name_of("arn:aws:ssm:us-east-1:123:parameter/plain"),
            "plain"
        );
        assert_eq!(name_of(" /app/x "), "/app/x");
        assert_eq!(
            name_of("arn:aws:ssm:r:a:document/x"),
            "arn:aws:ssm:r:a:document/x"
        );
        assert_eq!(
            arn("eu-west-1", "/app/x"),
            "arn:aws:ssm:eu-west-1:000000000000:parameter/app/x"
        );
    }

    #[test]
    fn service_kinds_become_ssm_codes() {
        let forbidden = service_error(ServiceError::forbidden("no"));
        assert_eq!(forbidden.status(), 400);
        let internal = service_error(ServiceError::new(ErrorKind::Internal, "X", "x"));
        assert_eq!(internal.status(), 500);
    }
}
