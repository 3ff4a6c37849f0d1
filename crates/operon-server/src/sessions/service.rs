//! The sessions service: the only code that opens, ends and reads sessions.
//!
//! Opening checks the request ([`super::limits`]), finds the node, and
//! authorizes the start *now*, per node with its tags:
//!
//! - a terminal (`shell`, `exec`): `sessions:Start` with
//!   `operon:RunAsUser` (the account), `operon:SessionKind`,
//!   `operon:IdleTimeout` and `operon:MaxDuration` (seconds, so a policy
//!   can hold sessions shorter than the server's limits with
//!   `NumericLessThanEquals`);
//! - port forwarding: `sessions:PortForward` with `operon:RemoteHost` and
//!   `operon:RemotePort` and the same duration keys; a literal address in a
//!   deny entry is refused here, names are checked by the agent after it
//!   resolves them (and each refused connection is audited when it reports).
//!
//! Every start, end and refusal is audited with the session id; the end's
//! record carries the recording's SHA-256, so a recording changed later no
//! longer matches the hash-chained trail. Recordings are sealed with the key
//! ring chunk by chunk (the additional data binds each chunk to its session
//! and place).

use operon_api::sessions::ConnectQuery;
use operon_store::{
    AuditEntry, AuditFilter, Node, SESSION_ACTIVE, SessionEnd, SessionFilter, SessionRecord,
};
use serde_json::json;

use super::limits::{self, Kind, SessionRequest, Target};
use crate::access::{Principal, node_request, record_denial_detailed};
use crate::commands::service::RUN_AS_USER_KEY;
use crate::service::{ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// Condition keys of a session start.
pub const SESSION_KIND_KEY: &str = "operon:SessionKind";
pub const IDLE_TIMEOUT_KEY: &str = "operon:IdleTimeout";
pub const MAX_DURATION_KEY: &str = "operon:MaxDuration";
pub const REMOTE_HOST_KEY: &str = "operon:RemoteHost";
pub const REMOTE_PORT_KEY: &str = "operon:RemotePort";

/// Most sessions a listing answers.
const LIST_LIMIT: i64 = 500;

pub struct SessionService<'a> {
    pub(crate) state: &'a AppState,
}

/// A session allowed and recorded, ready to relay.
#[derive(Debug, Clone)]
pub struct Opening {
    pub record: SessionRecord,
    pub request: SessionRequest,
    pub node: Node,
    /// The hub's id of the agent link the session uses.
    pub link: u64,
}

impl SessionService<'_> {
    /// Check and authorize a new session (refusals audited); nothing is
    /// recorded until [`SessionService::record`].
    pub async fn authorize(
        &self,
        principal: &Principal,
        query: &ConnectQuery,
    ) -> ServiceResult<Opening> {
        let config = &self.state.config.sessions;
        let request = limits::check(query, config)
            .map_err(|message| ServiceError::invalid("InvalidSession", message))?;
        let node = self
            .state
            .store
            .node_by_id_or_name(&request.node)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found("UnknownNode", format!("no node named {:?}", request.node))
            })?;
        let id = crate::auth::new_id("s-");
        let resource = format!("node/{}", node.name);
        let policy_request = start_request(principal, &request, &node);
        if let Err(reason) = principal.decide(&policy_request) {
            self.refuse(principal, &policy_request.action, &resource, &id, &reason)
                .await;
            return Err(ServiceError::forbidden(format!(
                "{} may not {} on {resource}: {reason}",
                principal.name, policy_request.action
            )));
        }
        if let Target::Forward { host, port } = &request.target
            && let Some(entry) = super::deny::literal_denied(host, *port, &config.forward_deny)
        {
            let reason = format!("{host}:{port} is in the forwarding deny list ({entry})");
            self.refuse(principal, &policy_request.action, &resource, &id, &reason)
                .await;
            return Err(ServiceError::forbidden(reason));
        }
        principal.allowed_action(&policy_request.action, &resource);
        let link = match self
            .state
            .hub
            .session_with(&node.id, operon_proto::CAPABILITY_SESSIONS)
        {
            Some(Ok(link)) => link,
            Some(Err(())) => {
                return Err(ServiceError::conflict(
                    "SessionsUnsupported",
                    format!(
                        "the agent on node {} does not support sessions: upgrade it",
                        node.name
                    ),
                ));
            }
            None => {
                return Err(ServiceError::conflict(
                    "NodeNotConnected",
                    format!(
                        "node {} is not connected to this server (sessions are relayed by the server holding the agent's link)",
                        node.name
                    ),
                ));
            }
        };
        Ok(Opening {
            record: new_record(&id, principal, &request, &node),
            request,
            node,
            link,
        })
    }

    /// Record an authorized session as started (its row, its audit record).
    pub async fn record(&self, principal: &Principal, opening: &Opening) -> ServiceResult<()> {
        let record = &opening.record;
        self.state.store.insert_session(record).await?;
        self.audit(AuditEntry {
            actor: principal.name.clone(),
            action: opening.request.kind.action().to_string(),
            resource: format!("node/{}", record.node_name),
            outcome: "allowed".into(),
            detail: json!({
                "session": record.id,
                "kind": record.kind,
                "user": record.run_as,
                "command": record.command,
                "remote": record.remote,
                "idle_timeout_secs": record.idle_timeout_secs,
                "max_duration_secs": record.max_duration_secs,
                "token": principal.token_id,
            }),
        })
        .await;
        principal.mark_recorded();
        Ok(())
    }

    async fn refuse(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
        id: &str,
        reason: &str,
    ) {
        record_denial_detailed(
            &self.state.audit,
            principal,
            action,
            resource,
            reason,
            json!({"session": id}),
        )
        .await;
    }

    async fn audit(&self, entry: AuditEntry) {
        if let Err(e) = self.state.audit.record(entry).await {
            tracing::error!(error = %e, "a session's audit record could not be written");
        }
    }

    /// End a session (once): its row, then its audit record with the
    /// recording's digest.
    pub async fn end(&self, record: &SessionRecord, end: &SessionEnd) -> ServiceResult<bool> {
        if !self.state.store.end_session(&record.id, end).await? {
            return Ok(false);
        }
        self.audit(AuditEntry {
            actor: record.started_by.clone(),
            action: "sessions:End".into(),
            resource: format!("session/{}", record.id),
            outcome: end.status.clone(),
            detail: json!({
                "node": record.node_name,
                "kind": record.kind,
                "reason": end.reason,
                "exit_code": end.exit_code,
                "recording_sha256": end.recording_sha256,
                "recording_bytes": end.recording_bytes,
                "duration_ms": end.ended_at - record.started_at,
            }),
        })
        .await;
        Ok(true)
    }

    /// Seal and store one recording chunk.
    pub async fn store_chunk(&self, session_id: &str, seq: i64, chunk: &[u8]) -> ServiceResult<()> {
        let sealed = self
            .state
            .keys
            .seal(chunk_aad(session_id, seq).as_bytes(), chunk)
            .map_err(|e| ServiceError::internal(format!("sealing a recording chunk: {e}")))?;
        self.state
            .store
            .append_recording_chunk(session_id, seq, &sealed)
            .await?;
        Ok(())
    }

    /// The recording's chunks, unsealed, in order (a gap is an error).
    async fn chunks(&self, session_id: &str) -> ServiceResult<Vec<Vec<u8>>> {
        let sealed = self.state.store.recording_chunks(session_id).await?;
        let mut chunks = Vec::with_capacity(sealed.len());
        for (expected, (seq, envelope)) in sealed.into_iter().enumerate() {
            if seq != expected as i64 {
                return Err(ServiceError::conflict(
                    "RecordingDamaged",
                    format!("the recording of {session_id} lacks chunk {expected}"),
                ));
            }
            let chunk = self
                .state
                .keys
                .unseal(chunk_aad(session_id, seq).as_bytes(), &envelope)
                .map_err(|e| {
                    ServiceError::conflict(
                        "RecordingDamaged",
                        format!("chunk {seq} of the recording of {session_id} does not open: {e}"),
                    )
                })?;
            chunks.push(chunk.to_vec());
        }
        Ok(chunks)
    }

    /// The digest and size of what was stored of a recording (for a session
    /// whose relay died).
    pub async fn stored_digest(&self, session_id: &str) -> ServiceResult<Option<(String, i64)>> {
        let chunks = self.chunks(session_id).await?;
        if chunks.is_empty() {
            return Ok(None);
        }
        let (text, sha) = super::recording::decode(&chunks)
            .map_err(|e| ServiceError::conflict("RecordingDamaged", e))?;
        Ok(Some((sha, text.len() as i64)))
    }

    /// A session and its node; for an unknown id, `action` on `node/*`
    /// decides between 403 and 404 (so a refused caller learns nothing).
    async fn find(
        &self,
        principal: &Principal,
        action: &str,
        id: &str,
    ) -> ServiceResult<(SessionRecord, Node)> {
        let Some(record) = self.state.store.session(id).await? else {
            crate::access::check_action(&self.state.audit, principal, action, "node/*").await?;
            return Err(ServiceError::not_found(
                "UnknownSession",
                format!("no session {id}"),
            ));
        };
        // A deleted node's sessions are still readable, tags and all gone.
        let node = self
            .state
            .store
            .node(&record.node_id)
            .await?
            .unwrap_or_else(|| Node {
                name: record.node_name.clone(),
                ..Node::default()
            });
        Ok((record, node))
    }

    async fn check_on(
        &self,
        principal: &Principal,
        action: &str,
        node: &Node,
    ) -> ServiceResult<()> {
        crate::access::check_in(
            &self.state.audit,
            principal,
            &node_request(principal, action, node),
        )
        .await
    }

    /// Sessions, newest first: `sessions:Get` on `node/*` first, then the
    /// sessions of the nodes `sessions:Get` allows with their tags.
    pub async fn list(
        &self,
        principal: &Principal,
        active_only: bool,
        node: Option<&str>,
    ) -> ServiceResult<Vec<SessionRecord>> {
        crate::access::check_action(&self.state.audit, principal, "sessions:Get", "node/*").await?;
        let node_id = match node {
            Some(key) => Some(
                self.state
                    .store
                    .node_by_id_or_name(key)
                    .await?
                    .map(|n| n.id)
                    .ok_or_else(|| {
                        ServiceError::not_found("UnknownNode", format!("no node named {key:?}"))
                    })?,
            ),
            None => None,
        };
        let records = self
            .state
            .store
            .list_sessions(&SessionFilter {
                active_only,
                node_id,
                limit: LIST_LIMIT,
            })
            .await?;
        let nodes = self.state.store.list_nodes().await?;
        Ok(records
            .into_iter()
            .filter(|r| {
                let node = nodes
                    .iter()
                    .find(|n| n.id == r.node_id)
                    .cloned()
                    .unwrap_or_else(|| Node {
                        name: r.node_name.clone(),
                        ..Node::default()
                    });
                principal
                    .decide(&node_request(principal, "sessions:Get", &node))
                    .is_ok()
            })
            .collect())
    }

    /// One session (`sessions:Get` on its node).
    pub async fn get(&self, principal: &Principal, id: &str) -> ServiceResult<SessionRecord> {
        let (record, node) = self.find(principal, "sessions:Get", id).await?;
        self.check_on(principal, "sessions:Get", &node).await?;
        Ok(record)
    }

    /// End a session now. One's own: the right that opened it suffices
    /// (`sessions:Start` or `sessions:PortForward` on the node); anyone
    /// else's: `sessions:Terminate` on the node. Waits (a few seconds) for
    /// the relaying process to end it.
    pub async fn terminate(&self, principal: &Principal, id: &str) -> ServiceResult<SessionRecord> {
        let (record, node) = self.find(principal, "sessions:Terminate", id).await?;
        let own_action = if record.kind == Kind::PortForward.as_str() {
            Kind::PortForward.action()
        } else {
            Kind::Shell.action()
        };
        let own = record.started_by == principal.name
            && principal
                .decide(&node_request(principal, own_action, &node))
                .is_ok();
        if own {
            principal.allowed_action(own_action, &format!("node/{}", node.name));
        } else {
            self.check_on(principal, "sessions:Terminate", &node)
                .await?;
        }
        if record.status != SESSION_ACTIVE {
            return Err(ServiceError::conflict(
                "SessionEnded",
                format!("session {id} already ended ({})", record.status),
            ));
        }
        principal.note("session", id);
        if !self.state.sessions.terminate(id, &principal.name) {
            // Relayed by another server process: it reads the request.
            self.state
                .store
                .request_session_end(id, &principal.name)
                .await?;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(8);
        loop {
            let now = self.state.store.session(id).await?;
            match now {
                Some(r) if r.status != SESSION_ACTIVE => return Ok(r),
                Some(r) if tokio::time::Instant::now() >= deadline => return Ok(r),
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                None => return Ok(record),
            }
        }
    }

    /// The recording as asciicast text and its SHA-256, checked against
    /// the digest the audit trail holds (`sessions:GetRecording` on the
    /// node; the read is audited).
    pub async fn recording(
        &self,
        principal: &Principal,
        id: &str,
    ) -> ServiceResult<(String, String)> {
        let (record, node) = self.find(principal, "sessions:GetRecording", id).await?;
        self.check_on(principal, "sessions:GetRecording", &node)
            .await?;
        principal.note("session", id);
        if record.status == SESSION_ACTIVE {
            return Err(ServiceError::conflict(
                "SessionActive",
                format!("session {id} is still active: its recording is readable once it ends"),
            ));
        }
        let Some(expected) = record.recording_sha256.clone() else {
            return Err(ServiceError::not_found(
                "NoRecording",
                format!("session {id} has no recording"),
            ));
        };
        let chunks = self.chunks(id).await?;
        let (text, sha) = super::recording::decode(&chunks)
            .map_err(|e| ServiceError::conflict("RecordingDamaged", e))?;
        let audited = self.audited_digest(&record).await?;
        if sha != expected || audited.as_deref() != Some(expected.as_str()) {
            return Err(ServiceError::conflict(
                "RecordingTampered",
                format!(
                    "the recording of {id} does not match the audit trail (stored {sha}, session {expected}, audit {})",
                    audited.as_deref().unwrap_or("none")
                ),
            ));
        }
        Ok((text, sha))
    }

    /// The recording digest the session's end record in the audit trail holds.
    async fn audited_digest(&self, record: &SessionRecord) -> ServiceResult<Option<String>> {
        let resource = format!("session/{}", record.id);
        let entries = self
            .state
            .store
            .list_audit(&AuditFilter {
                action: Some("sessions:End".into()),
                since: record.ended_at.map(|at| at - 60_000),
                limit: 10_000,
                ..AuditFilter::default()
            })
            .await?;
        Ok(entries
            .into_iter()
            .find(|e| e.resource == resource)
            .and_then(|e| e.detail["recording_sha256"].as_str().map(str::to_string)))
    }

    /// End sessions whose relaying process stopped touching them (it
    /// crashed or lost the database): what was stored of the recording is
    /// kept and hashed.
    pub async fn end_stale(&self, before: i64) -> ServiceResult<usize> {
        let mut ended = 0;
        for record in self.state.store.stale_sessions(before).await? {
            if self.state.sessions.is_live(&record.id) {
                continue;
            }
            let digest = match self.stored_digest(&record.id).await {
                Ok(digest) => digest,
                Err(e) => {
                    tracing::warn!(session = %record.id, error = %e.message, "the recording of a stale session cannot be read");
                    None
                }
            };
            let end = SessionEnd {
                status: "failed".into(),
                ended_at: now_millis(),
                reason: "the server relaying it stopped".into(),
                exit_code: None,
                recording_sha256: digest.as_ref().map(|(sha, _)| sha.clone()),
                recording_bytes: digest.map(|(_, bytes)| bytes),
            };
            if self.end(&record, &end).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }
}

fn chunk_aad(session_id: &str, seq: i64) -> String {
    format!("operon:session-recording:{session_id}:{seq}")
}

/// The policy request of a start, with its condition keys.
fn start_request(
    principal: &Principal,
    request: &SessionRequest,
    node: &Node,
) -> operon_policy::Request {
    let base = node_request(principal, request.kind.action(), node)
        .with(SESSION_KIND_KEY, [request.kind.as_str()])
        .with(IDLE_TIMEOUT_KEY, [request.idle_timeout_secs.to_string()])
        .with(MAX_DURATION_KEY, [request.max_duration_secs.to_string()]);
    match &request.target {
        Target::Terminal { user, .. } => base.with(RUN_AS_USER_KEY, [user.as_str()]),
        Target::Forward { host, port } => base
            .with(REMOTE_HOST_KEY, [host.as_str()])
            .with(REMOTE_PORT_KEY, [port.to_string()]),
    }
}

fn new_record(
    id: &str,
    principal: &Principal,
    request: &SessionRequest,
    node: &Node,
) -> SessionRecord {
    let now = now_millis();
    let (run_as, command, remote) = match &request.target {
        Target::Terminal { user, command, .. } => (Some(user.clone()), command.clone(), None),
        Target::Forward { host, port } => (None, None, Some(format_remote(host, *port))),
    };
    SessionRecord {
        id: id.to_string(),
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        kind: request.kind.as_str().to_string(),
        run_as,
        command,
        remote,
        started_by: principal.name.clone(),
        started_at: now,
        touched_at: now,
        idle_timeout_secs: request.idle_timeout_secs as i64,
        max_duration_secs: request.max_duration_secs as i64,
        status: SESSION_ACTIVE.into(),
        ended_at: None,
        end_reason: None,
        exit_code: None,
        terminate_by: None,
        recording_sha256: None,
        recording_bytes: None,
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub fn format_remote(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
