//! Sessions: an interactive terminal, a command with a terminal, or TCP port
//! forwarding on a node, over the agent's outbound link; recorded.
//!
//! A session is opened by upgrading `GET /v1/sessions/connect` to a
//! WebSocket (the query names the node and what to open: [`ConnectQuery`]);
//! the frames on it are `operon_proto::session`'s. Refusals answer before
//! the upgrade, with the usual error body.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// What a session opens on the node.
pub const KINDS: &[&str] = &["shell", "exec", "port-forward"];

/// The query of `GET /v1/sessions/connect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectQuery {
    /// Node name or id.
    pub node: String,
    /// `shell` (default), `exec` or `port-forward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The account on the node (shell and exec); the server's default
    /// session user when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// For `exec` (required) and `shell` (instead of the login shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    /// `TERM` for the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    /// Port forwarding: the host as the node resolves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Seconds; at most the server's (and the policy's) limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// Seconds; at most the server's (and the policy's) limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<u64>,
}

/// One session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub node_id: String,
    pub node_name: String,
    /// `shell`, `exec` or `port-forward`
    pub kind: String,
    /// The account on the node (shell and exec)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `host:port` (port forwarding)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Who started it (`user/alice`, `admin`, `token/…`)
    pub started_by: String,
    /// Unix ms
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// `active`, `ended`, `terminated`, `timed-out` or `failed`
    pub status: String,
    /// Why it ended, for people
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub idle_timeout_secs: u64,
    pub max_duration_secs: u64,
    /// SHA-256 (hex) of the asciicast recording, written to the audit trail
    /// when the session ended
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_sha256: Option<String>,
    /// Bytes of the asciicast recording (uncompressed)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_bytes: Option<u64>,
}

/// `GET /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// Newest first
    pub sessions: Vec<SessionView>,
}

/// The header of `GET /v1/sessions/{id}/recording` carrying the recording's
/// SHA-256 as the audit trail has it.
pub const RECORDING_SHA256_HEADER: &str = "x-operon-recording-sha256";

pub(crate) fn describe(api: &mut Api) {
    const TAG: &str = "sessions";
    let text = |example: &str| json!({"type": "string", "examples": [example]});
    let int = |example: u64| json!({"type": "integer", "examples": [example]});
    api.op(Op::get(
        "/v1/sessions/connect",
        TAG,
        "Open a session (WebSocket upgrade; frames as operon_proto::session): a shell or \
             a command with a terminal (sessions:Start on the node with its tags and \
             operon:RunAsUser), or port forwarding (sessions:PortForward with \
             operon:RemoteHost and operon:RemotePort); audited, recorded",
    )
    .query("node", text("web-1"), "Node name or id")
    .query("kind", text("shell"), "shell, exec or port-forward")
    .query("user", text("deploy"), "The account on the node")
    .query(
        "command",
        text("top"),
        "The command (exec; shell instead of the login shell)",
    )
    .query("cols", int(80), "Terminal columns")
    .query("rows", int(24), "Terminal rows")
    .query("term", text("xterm-256color"), "TERM for the program")
    .query(
        "host",
        text("127.0.0.1"),
        "Port forwarding: the host as the node resolves it",
    )
    .query("port", int(5432), "Port forwarding: the port")
    .query(
        "idle_timeout",
        int(600),
        "Seconds without input before the session ends (at most the server's)",
    )
    .query(
        "max_duration",
        int(3600),
        "Seconds the session may last (at most the server's)",
    )
    .answers_without_body(101, "Switching to the session's WebSocket")
    .may(&[409]));
    api.op(Op::get(
        "/v1/sessions",
        TAG,
        "Sessions, newest first (sessions:Get on node/* first, then the sessions of the nodes \
             sessions:Get allows with their tags)",
    )
    .query("active", json!({"type": "boolean"}), "Only active sessions")
    .query("node", text("web-1"), "Only this node")
    .ok::<SessionList>());
    api.op(Op::get(
        "/v1/sessions/{id}",
        TAG,
        "One session (sessions:Get on its node)",
    )
    .ok::<SessionView>());
    api.op(Op::post(
        "/v1/sessions/{id}/terminate",
        TAG,
        "End a session now (your own: sessions:Start on its node suffices; anyone \
             else's: sessions:Terminate on its node)",
    )
    .ok::<SessionView>()
    .may(&[409]));
    api.op(Op::get(
        "/v1/sessions/{id}/recording",
        TAG,
        "The session's recording as asciicast v2 (sessions:GetRecording on its node; \
             audited); checked against the SHA-256 in the audit trail",
    )
    .answers(
        200,
        "The asciicast v2 recording; the x-operon-recording-sha256 header",
        "application/x-asciicast",
        json!({"type": "string"}),
    )
    .may(&[409]));
}
