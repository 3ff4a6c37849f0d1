//! `/v1/nodes`, `/v1/enroll-tokens`, `/metrics`, and the public operations
//! of the server and its agents: `/v1/health`, `/v1/openapi.json`,
//! `/v1/agent/enroll` and `/v1/agent/connect`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// `POST /v1/enroll-tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateEnrollToken {
    /// Tag keys are 1 to 128 bytes without '='; values are strings
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// How many nodes it may enroll
    #[schema(minimum = 1, maximum = 9223372036854775807_i64, default = 1)]
    pub uses: Option<i64>,
    #[schema(minimum = 1, maximum = 31536000, default = 86400)]
    pub expires_in_secs: Option<i64>,
}

/// A token that enrolls up to `uses_allowed` nodes until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnrollToken {
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub uses_allowed: i64,
    pub uses: i64,
    /// Unix time in milliseconds
    pub expires_at: i64,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds; a revoked token enrolls nothing
    #[serde(default)]
    #[schema(required = true)]
    pub revoked_at: Option<i64>,
}

/// A new enrollment token: the secret, returned once, and its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedEnrollToken {
    /// Returned once
    pub token: String,
    /// The fingerprint agents pin (`--server-fingerprint`), when serving TLS
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub server_fingerprint: Option<String>,
    #[serde(flatten)]
    pub record: EnrollToken,
}

/// What a node is, as its agent reports it
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Inventory {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    #[schema(value_type = u64, minimum = 0, maximum = 4294967295_u64)]
    pub cpus: u32,
    #[schema(minimum = 0, maximum = 18446744073709551615_u64)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    pub agent_version: String,
}

/// A node's live status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Online,
    Offline,
    Revoked,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node with its live status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Node)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub inventory: Inventory,
    /// Unix time in milliseconds
    pub enrolled_at: i64,
    /// Unix time in milliseconds
    #[schema(required = true)]
    pub last_seen: Option<i64>,
    /// Unix time in milliseconds
    #[schema(required = true)]
    pub revoked_at: Option<i64>,
    pub status: NodeStatus,
    pub online: bool,
}

/// `POST /v1/nodes/{key}/tags`: tags to set and keys to remove (removal
/// first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TagChange {
    /// Tags to set. Tag keys are 1 to 128 bytes without '='; values are strings
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Tag keys to remove (before set applies)
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `POST /v1/nodes/{key}/rotate-credential`: a completed rotation (never
/// the credential itself: only the agent ever sees it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialRotated {
    pub node_id: String,
    pub name: String,
    pub rotation_id: String,
    /// Unix time in milliseconds
    pub rotated_at: i64,
}

/// `GET /v1/health`: liveness and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub version: String,
    pub agents_connected: u64,
    /// The fingerprint of the server's certificate, when serving TLS.
    #[schema(required = true)]
    pub tls_fingerprint: Option<String>,
}

/// `POST /v1/agent/enroll`: the agent's side of `operon_proto::EnrollRequest`,
/// field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnrollRequest {
    /// The one-time enrollment token (oet_...)
    pub enroll_token: String,
    /// Desired node name; the hostname when absent or blank
    pub name: Option<String>,
    /// Tags the node asks for; the token's tags win on shared keys. Tag keys
    /// are 1 to 128 bytes without '='; values are strings
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub inventory: Inventory,
}

/// A node's enrollment (`operon_proto::EnrollResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    pub node_id: String,
    pub name: String,
    /// The node's secret; returned once
    pub credential: String,
}

/// Tags as the server accepts them: keys of 1 to 128 bytes without '=',
/// string values.
fn tags(description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "propertyNames": {"minLength": 1, "maxLength": 128, "pattern": "^[^=]*$"},
        "additionalProperties": {"type": "string"},
    })
}

pub(crate) fn describe(api: &mut Api) {
    api.refine(
        "CreateEnrollToken/properties/tags",
        tags("Tag keys are 1 to 128 bytes without '='; values are strings"),
    );
    api.refine(
        "TagChange/properties/set",
        tags("Tags to set. Tag keys are 1 to 128 bytes without '='; values are strings"),
    );
    api.refine(
        "EnrollRequest/properties/tags",
        tags(
            "Tags the node asks for; the token's tags win on shared keys. Tag keys are 1 \
             to 128 bytes without '='; values are strings",
        ),
    );
    api.refine("Health/properties/status", json!({"const": "ok"}));

    const SYSTEM: &str = "system";
    api.op(Op::get("/v1/health", SYSTEM, "Liveness and version")
        .public(&[400, 404])
        .ok::<Health>());
    api.op(Op::get("/v1/openapi.json", SYSTEM, "This document")
        .public(&[400, 404])
        .answers(
            200,
            "OK",
            "application/json",
            json!({"type": "object", "description": "This OpenAPI 3.1 document"}),
        ));
    api.op(Op::get(
        "/metrics",
        SYSTEM,
        "Prometheus metrics (text format 0.0.4): agents connected, nodes, commands and \
             invocations by status",
    )
    .answers(200, "OK", "text/plain", json!({"type": "string"})));

    const AGENT: &str = "agent";
    api.op(Op::post(
        "/v1/agent/enroll",
        AGENT,
        "Exchange an enrollment token for a node credential",
    )
    .public(&[400, 401, 404])
    .body::<EnrollRequest>()
    .example(json!({
        "enroll_token": "oet_not-a-real-token",
        "name": "web-1",
        "tags": {"env": "staging"},
        "inventory": {
            "hostname": "web-1",
            "os_name": "Debian GNU/Linux",
            "os_version": "12",
            "kernel": "6.1.0",
            "arch": "x86_64",
            "cpus": 2,
            "memory_bytes": 4294967296_u64,
            "ip_addresses": ["10.0.0.5"],
            "agent_version": "0.1.0",
        },
    }))
    .ok::<EnrollResponse>());
    api.op(Op::get(
        "/v1/agent/connect",
        AGENT,
        "Agent WebSocket (Authorization: Bearer <node credential>); frames are \
             operon-proto messages",
    )
    // 429: an address past its rate of refusals (the refusal limiter).
    .public(&[400, 401, 404, 426, 429])
    .answers_without_body(
        101,
        "Switching Protocols: the WebSocket session (needs Connection: upgrade, Upgrade: \
             websocket, Sec-WebSocket-Key and -Version headers)",
    ));

    const FLEET: &str = "fleet";
    api.op(Op::get("/v1/enroll-tokens", FLEET, "List enrollment tokens").ok_list::<EnrollToken>());
    api.op(Op::post(
        "/v1/enroll-tokens",
        FLEET,
        "Create an enrollment token (returned once)",
    )
    .body::<CreateEnrollToken>()
    .example(json!({"tags": {"env": "staging"}, "uses": 1, "expires_in_secs": 3600}))
    .ok::<CreatedEnrollToken>());
    api.op(Op::post(
        "/v1/enroll-tokens/{id}/revoke",
        FLEET,
        "Revoke an enrollment token: it enrolls no more nodes (nodes it enrolled keep \
             their credentials)",
    )
    .ok::<EnrollToken>());
    api.op(Op::get("/v1/nodes", FLEET, "List nodes with status").ok_list::<NodeView>());
    api.op(Op::get("/v1/nodes/{key}", FLEET, "Show a node by id or name").ok::<NodeView>());
    api.op(
        Op::post("/v1/nodes/{key}/tags", FLEET, "Set and remove tags")
            .body::<TagChange>()
            .example(json!({"set": {"role": "web"}, "remove": ["old"]}))
            .ok::<NodeView>(),
    );
    api.op(Op::post(
        "/v1/nodes/{key}/revoke",
        FLEET,
        "Revoke a node and drop its connection",
    )
    .ok::<NodeView>());
    api.op(Op::post(
        "/v1/nodes/{key}/rotate-credential",
        FLEET,
        "Give a connected node a new credential over its session; the old one is refused \
             once the agent has stored the new one (409 if the node is not connected, 504 if \
             the agent does not confirm)",
    )
    .may(&[409, 502, 504])
    .ok::<CredentialRotated>());
}
