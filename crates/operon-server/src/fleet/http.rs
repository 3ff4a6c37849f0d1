//! The HTTP edge of the fleet: `/v1/nodes`, `/v1/enroll-tokens`, `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use operon_api::fleet::{self as api, CreateEnrollToken, CreatedEnrollToken};
use operon_store::EnrollToken;

use super::service::{NodeView, TagChange};
use crate::AppState;
use crate::access::Ctx;
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/v1/enroll-tokens",
            post(create_enroll_token).get(list_enroll_tokens),
        )
        .route("/v1/enroll-tokens/{id}/revoke", post(revoke_enroll_token))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{key}", get(show_node))
        .route("/v1/nodes/{key}/tags", post(tag_node))
        .route("/v1/nodes/{key}/revoke", post(revoke_node))
        .route(
            "/v1/nodes/{key}/rotate-credential",
            post(super::rotation::rotate_credential),
        )
        .route("/metrics", get(metrics))
}

async fn create_enroll_token(
    State(state): State<Arc<AppState>>,
    Json(body): Json<CreateEnrollToken>,
) -> ApiResult<Json<CreatedEnrollToken>> {
    let (token, record) = state
        .fleet()
        .create_enroll_token(
            body.tags,
            body.uses.unwrap_or(1),
            body.expires_in_secs.unwrap_or(24 * 3600),
        )
        .await?;
    Ok(Json(CreatedEnrollToken {
        token,
        server_fingerprint: state.tls_fingerprint.clone(),
        record: enroll_token(record),
    }))
}

async fn list_enroll_tokens(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<api::EnrollToken>>> {
    let tokens = state.fleet().list_enroll_tokens().await?;
    Ok(Json(tokens.into_iter().map(enroll_token).collect()))
}

/// Authorized by the route layer (`enrollTokens:Revoke` on
/// `enroll-token/{id}`) and audited by the middleware.
async fn revoke_enroll_token(
    Ctx { state, principal }: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<api::EnrollToken>> {
    let token = state.fleet().revoke_enroll_token(&id).await?;
    principal.note("enroll_token_id", token.id.clone());
    Ok(Json(enroll_token(token)))
}

async fn list_nodes(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<api::NodeView>>> {
    let nodes = state.fleet().list().await?;
    Ok(Json(nodes.into_iter().map(node_view).collect()))
}

async fn show_node(
    Ctx { state, principal }: Ctx,
    Path(key): Path<String>,
) -> ApiResult<Json<api::NodeView>> {
    let fleet = state.fleet();
    let node = fleet.find_for(&principal, "nodes:Get", &key).await?;
    Ok(Json(node_view(fleet.view(node))))
}

async fn tag_node(
    Ctx { state, principal }: Ctx,
    Path(key): Path<String>,
    Json(body): Json<api::TagChange>,
) -> ApiResult<Json<api::NodeView>> {
    let change = TagChange {
        set: body.set,
        remove: body.remove,
    };
    let view = state.fleet().tag(&principal, &key, change).await?;
    Ok(Json(node_view(view)))
}

async fn revoke_node(
    Ctx { state, principal }: Ctx,
    Path(key): Path<String>,
) -> ApiResult<Json<api::NodeView>> {
    Ok(Json(node_view(
        state.fleet().revoke(&principal, &key).await?,
    )))
}

/// The stored token in the API's shape (the hash stays behind).
fn enroll_token(t: EnrollToken) -> api::EnrollToken {
    api::EnrollToken {
        id: t.id,
        tags: t.tags,
        uses_allowed: t.uses_allowed,
        uses: t.uses,
        expires_at: t.expires_at,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

/// The service's node view in the API's shape.
fn node_view(view: NodeView) -> api::NodeView {
    let n = view.node;
    let i = n.inventory;
    api::NodeView {
        id: n.id,
        name: n.name,
        tags: n.tags,
        inventory: api::Inventory {
            hostname: i.hostname,
            os_name: i.os_name,
            os_version: i.os_version,
            kernel: i.kernel,
            arch: i.arch,
            cpus: i.cpus,
            memory_bytes: i.memory_bytes,
            ip_addresses: i.ip_addresses,
            agent_version: i.agent_version,
        },
        enrolled_at: n.enrolled_at,
        last_seen: n.last_seen,
        revoked_at: n.revoked_at,
        status: view.status,
        online: view.online,
    }
}

/// An enrolling agent's inventory in the protocol's shape (what the store
/// keeps).
pub(super) fn proto_inventory(i: api::Inventory) -> operon_proto::Inventory {
    operon_proto::Inventory {
        hostname: i.hostname,
        os_name: i.os_name,
        os_version: i.os_version,
        kernel: i.kernel,
        arch: i.arch,
        cpus: i.cpus,
        memory_bytes: i.memory_bytes,
        ip_addresses: i.ip_addresses,
        agent_version: i.agent_version,
    }
}

/// Prometheus text exposition (format 0.0.4) of the fleet and command state,
/// then the latest metric values of the nodes the caller may `metrics:Get`.
/// Authenticated like every other call: scrapers send a bearer token.
async fn metrics(
    crate::access::Ctx { state, principal }: crate::access::Ctx,
) -> ApiResult<Response> {
    use std::fmt::Write;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, i64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let connected = state.hub.connected_count() as i64;
    gauge(
        "operon_agents_connected",
        "Agents with a live session.",
        &[(String::new(), connected)],
    );
    let mut nodes: BTreeMap<&str, i64> =
        BTreeMap::from([("online", 0), ("offline", 0), ("revoked", 0)]);
    for view in state.fleet().list().await? {
        *nodes.entry(view.status.as_str()).or_default() += 1;
    }
    let nodes: Vec<(String, i64)> = nodes
        .into_iter()
        .map(|(status, n)| (format!("{{status=\"{status}\"}}"), n))
        .collect();
    gauge("operon_nodes", "Enrolled nodes by status.", &nodes);
    for (name, help, table) in [
        (
            "operon_commands",
            "Commands by status.",
            operon_store::StatusTable::Commands,
        ),
        (
            "operon_invocations",
            "Command invocations (one per node) by status.",
            operon_store::StatusTable::Invocations,
        ),
    ] {
        let samples: Vec<(String, i64)> = state
            .store
            .count_by_status(table)
            .await?
            .into_iter()
            .map(|(status, n)| (format!("{{status=\"{status}\"}}"), n))
            .collect();
        gauge(name, help, &samples);
    }
    out.push_str(&state.metrics().prometheus(&principal).await?);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's types write what the service's views wrote, byte for byte.
    #[test]
    fn answers_are_unchanged_by_the_api_types() {
        let node = operon_store::Node {
            id: "n-1".into(),
            name: "web-1".into(),
            tags: [("env".to_string(), "prod".to_string())].into(),
            inventory: operon_proto::Inventory {
                hostname: "web-1".into(),
                os_name: "linux".into(),
                os_version: "6".into(),
                kernel: "6.1".into(),
                arch: "x86_64".into(),
                cpus: 2,
                memory_bytes: 1 << 30,
                ip_addresses: vec!["10.0.0.1".into()],
                agent_version: "0.1.0".into(),
            },
            enrolled_at: 1,
            last_seen: Some(2),
            revoked_at: None,
        };
        let view = NodeView {
            node,
            status: api::NodeStatus::Online,
            online: true,
        };
        let before = serde_json::to_string(&view).unwrap();
        assert_eq!(serde_json::to_string(&node_view(view)).unwrap(), before);

        let token = EnrollToken {
            id: "et-1".into(),
            token_hash: "secret hash".into(),
            tags: [("env".to_string(), "prod".to_string())].into(),
            uses_allowed: 3,
            uses: 1,
            expires_at: 10,
            created_at: 1,
            revoked_at: None,
        };
        let before = serde_json::to_string(&token).unwrap();
        assert_eq!(serde_json::to_string(&enroll_token(token)).unwrap(), before);
    }

    /// The API's enrollment types read and write what the agents' protocol
    /// types do.
    #[test]
    fn enrollment_is_the_protocol_on_the_wire() {
        let inventory = operon_proto::Inventory {
            hostname: "web-1".into(),
            os_name: "linux".into(),
            os_version: "6".into(),
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            cpus: 2,
            memory_bytes: 1 << 30,
            ip_addresses: vec!["10.0.0.1".into()],
            agent_version: "0.1.0".into(),
        };
        for name in [Some("web-1".to_string()), None] {
            let sent = operon_proto::EnrollRequest {
                enroll_token: "oet_x".into(),
                name,
                tags: [("env".to_string(), "prod".to_string())].into(),
                inventory: inventory.clone(),
            };
            let wire = serde_json::to_string(&sent).unwrap();
            let read: api::EnrollRequest = serde_json::from_str(&wire).unwrap();
            assert_eq!(serde_json::to_string(&read).unwrap(), wire);
            assert_eq!(proto_inventory(read.inventory), inventory);
        }
        let minimal = serde_json::json!({"enroll_token": "oet_x", "inventory": {
            "hostname": "h", "os_name": "o", "os_version": "v", "kernel": "k", "arch": "a",
            "cpus": 1, "memory_bytes": 1, "agent_version": "0"}});
        let read: api::EnrollRequest = serde_json::from_value(minimal.clone()).unwrap();
        let proto: operon_proto::EnrollRequest = serde_json::from_value(minimal).unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&proto).unwrap()
        );
        let answer = api::EnrollResponse {
            node_id: "n-1".into(),
            name: "web-1".into(),
            credential: "onc_x".into(),
        };
        let back: operon_proto::EnrollResponse =
            serde_json::from_str(&serde_json::to_string(&answer).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&answer).unwrap()
        );
    }
}
