//! The agent side of the server: enrollment and the WebSocket session.
//!
//! A session authenticates with the node credential *before* the upgrade, so
//! a refused agent gets an HTTP status and a JSON reason it can print. After
//! the `Hello`, the server resends every invocation it believes is in progress
//! on that node (the agent deduplicates by invocation id), then relays frames:
//! heartbeats, live output, and results, which are persisted before they are
//! acknowledged.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use operon_api::fleet::{EnrollRequest, EnrollResponse};
use operon_proto::{AgentMessage, CommandResult, PROTOCOL_VERSION, ServerMessage};
use operon_store::{AgentWrite, AuditEntry, CredentialMatch, NewNode, Node, split_invocation_id};
use tokio::sync::mpsc;

use super::hub::Outbound;
use crate::auth::{self, NODE_CREDENTIAL_PREFIX};
use crate::coordination::Topic;
use crate::error::{ApiError, ApiResult};
use crate::happenings::{Happening, NodeChange};
use crate::live::LiveEvent;
use crate::{AppState, now_millis};

/// `POST /v1/agent/enroll`: exchange an enrollment token for a node credential.
pub async fn enroll(
    State(state): State<Arc<AppState>>,
    Json(request): Json<EnrollRequest>,
) -> ApiResult<Json<EnrollResponse>> {
    super::service::validate_tags(&request.tags)?;
    // A name asked for must be valid; a hostname is made into one.
    let name = match request.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => {
            super::service::validate_node_name(name)?;
            name.to_string()
        }
        _ => super::service::name_from_hostname(&request.inventory.hostname),
    };
    // Never another node's id, whatever shape ids have (the shape of ours is
    // refused above).
    if state.store.node(&name).await?.is_some() {
        return Err(ApiError::invalid(format!(
            "invalid node name {name:?}: it is another node's id"
        )));
    }
    let credential = auth::new_secret(NODE_CREDENTIAL_PREFIX);
    let node = NewNode {
        id: auth::new_id("n-"),
        name,
        credential_hash: auth::hash_secret(&credential),
        requested_tags: request.tags,
        inventory: super::http::proto_inventory(request.inventory),
    };
    let token_hash = auth::hash_secret(request.enroll_token.trim());
    match state
        .store
        .enroll_node(&token_hash, now_millis(), node)
        .await?
    {
        Ok(node) => {
            tracing::info!(node_id = %node.id, name = %node.name, "node enrolled");
            audit_enrollment(
                &state,
                &node.name,
                "allowed",
                serde_json::json!({
                    "node_id": node.id, "tags": node.tags,
                }),
            )
            .await;
            state.happenings.publish(Happening::Node {
                change: NodeChange::Enrolled,
                node_id: node.id.clone(),
                node_name: node.name.clone(),
                tags: node.tags.clone(),
            });
            Ok(Json(EnrollResponse {
                node_id: node.id,
                name: node.name,
                credential,
            }))
        }
        Err(refusal) => {
            let reason = format!("enrollment refused: {}", refusal.message());
            audit_enrollment(&state, "*", "denied", serde_json::json!({"reason": reason})).await;
            Err(ApiError::unauthorized(reason))
        }
    }
}

/// Enrollments, granted or refused, go to the audit trail (never the token).
async fn audit_enrollment(state: &AppState, node: &str, outcome: &str, detail: serde_json::Value) {
    let entry = operon_store::AuditEntry {
        actor: "enrollment".into(),
        action: "nodes:Enroll".into(),
        resource: format!("node/{node}"),
        outcome: outcome.into(),
        detail,
    };
    if let Err(e) = state.audit.record(entry).await {
        tracing::error!(error = %e, "an enrollment could not be audited");
    }
}

/// `GET /v1/agent/connect`: authenticate the node, then upgrade.
pub async fn connect(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let node = match authenticate_node(&state, &headers).await {
        Ok(node) => node,
        Err(err) => {
            let source = extensions
                .get::<axum::extract::ConnectInfo<crate::PeerAddr>>()
                .map(|c| c.0.0.ip());
            return refuse_connection(&state, source, err).await;
        }
    };
    upgrade
        .max_message_size(16 << 20)
        .on_upgrade(move |socket| async move {
            let node_id = node.id.clone();
            if let Err(reason) = session(state, node, socket).await {
                tracing::info!(node_id, reason, "agent session ended");
            }
        })
}

/// A refused agent connection is audited like a refused API call, within
/// the source address's refusal budget (past it: 429, counted into the
/// address's summary record), so a flood of bad credentials cannot grow
/// the audit trail without bound.
async fn refuse_connection(
    state: &AppState,
    source: Option<std::net::IpAddr>,
    err: ApiError,
) -> Response {
    if state.refusals.check(source, now_millis()) == crate::refusals::Verdict::Suppress {
        let mut response = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "too many refused requests from this address; try again later",
        )
        .into_response();
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(state.refusals.retry_after_secs()),
        );
        return response;
    }
    let outcome = if err.status == axum::http::StatusCode::FORBIDDEN {
        "denied"
    } else {
        "unauthenticated"
    };
    let entry = AuditEntry {
        actor: "anonymous".into(),
        action: "agent:Connect".into(),
        resource: "node/*".into(),
        outcome: outcome.into(),
        detail: serde_json::json!({
            "path": "/v1/agent/connect",
            "status": err.status.as_u16(),
            "reason": err.message,
            "source": source.map(|ip| ip.to_string()),
        }),
    };
    if let Err(e) = state.audit.record(entry).await {
        tracing::error!(error = %e, "a refused agent connection could not be audited");
    }
    err.into_response()
}

/// Accept the node's current credential, or the new one of a rotation the
/// agent has not confirmed yet (connecting with it is the confirmation, so
/// the rotation completes here). A credential replaced by a rotation is
/// refused with the time it was replaced.
async fn authenticate_node(state: &AppState, headers: &HeaderMap) -> ApiResult<Node> {
    let credential = auth::bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("missing node credential (Authorization: Bearer ...)")
    })?;
    let found = state
        .store
        .find_node_credential(&auth::hash_secret(credential))
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown node credential"))?;
    let node = match found {
        CredentialMatch::Current(node) => node,
        CredentialMatch::Pending { node, rotation_id } => {
            super::rotation::complete(state, &node, &rotation_id, "the agent connected with it")
                .await?;
            node
        }
        CredentialMatch::Retired { node, retired_at } => {
            if node.revoked_at.is_some() {
                return Err(revoked(&node));
            }
            return Err(ApiError::unauthorized(format!(
                "this credential of node {} was replaced by a credential rotation at {} (Unix ms) and is no longer accepted; the agent that received the new one holds it in its credential.json",
                node.id, retired_at
            )));
        }
    };
    if node.revoked_at.is_some() {
        return Err(revoked(&node));
    }
    Ok(node)
}

fn revoked(node: &Node) -> ApiError {
    ApiError::forbidden(format!("node {} has been revoked", node.id))
}

async fn session(state: Arc<AppState>, node: Node, socket: WebSocket) -> Result<(), String> {
    let (mut sink, mut stream) = socket.split();
    let hello_timeout = Duration::from_secs(10);
    let (inventory, capabilities) = match tokio::time::timeout(hello_timeout, stream.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match operon_proto::decode::<AgentMessage>(&text) {
            Ok(AgentMessage::Hello {
                protocol_version,
                inventory,
                capabilities,
            }) if protocol_version == PROTOCOL_VERSION => (inventory, capabilities),
            Ok(AgentMessage::Hello {
                protocol_version, ..
            }) => {
                let reason = format!(
                    "unsupported protocol version {protocol_version}; this server speaks {PROTOCOL_VERSION}"
                );
                let _ = sink.send(close_message(&reason)).await;
                return Err(reason);
            }
            _ => return Err("the first frame was not a hello".into()),
        },
        _ => return Err("no hello within 10 s".into()),
    };
    state
        .store
        .update_node_seen(&node.id, Some(&inventory), now_millis())
        .await
        .map_err(|e| e.to_string())?;

    let (tx, mut rx) = mpsc::channel::<Outbound>(1024);
    let (channels_tx, mut channels_rx) = mpsc::unbounded_channel::<Outbound>();
    let session_id = state
        .hub
        .register(&node.id, tx.clone(), channels_tx, capabilities);
    // A node (back) online may have files to catch up on, and associations
    // to apply if it just joined.
    state
        .coordination
        .notify(crate::coordination::Topic::ParameterSyncs);
    state
        .coordination
        .notify(crate::coordination::Topic::Associations);
    let coordination = &state.coordination;
    coordination
        .backend
        .route_session(&node.id, &coordination.process);
    tracing::info!(node_id = %node.id, name = %node.name, "agent connected");
    state.happenings.publish(Happening::Node {
        change: NodeChange::Connected,
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        tags: node.tags.clone(),
    });
    let writer = tokio::spawn(async move {
        loop {
            // Session channels only when nothing else waits: a flood of
            // terminal output never delays a command or a heartbeat answer.
            let out = tokio::select! {
                biased;
                Some(out) = rx.recv() => out,
                Some(out) = channels_rx.recv() => out,
                else => break,
            };
            let frame = match out {
                Outbound::Message(msg) => Message::Text(operon_proto::encode(&msg).into()),
                Outbound::Binary(bytes) => Message::Binary(bytes.into()),
                Outbound::Close(reason) => {
                    let _ = sink.send(close_message(&reason)).await;
                    break;
                }
            };
            if sink.send(frame).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let welcome = ServerMessage::Welcome {
        node_id: node.id.clone(),
        name: node.name.clone(),
        protocol_version: PROTOCOL_VERSION,
        heartbeat_secs: state.config.heartbeat_secs,
    };
    let _ = tx.send(Outbound::Message(welcome)).await;
    // After the Welcome: the push loop sends this new session its monitor set.
    if state
        .hub
        .supports(&node.id, operon_proto::CAPABILITY_MONITORS)
        == Some(true)
    {
        state.coordination.notify(Topic::Monitors);
    }
    let result = async {
        resend_in_progress(&state, &node.id, &tx).await?;
        state.coordination.notify(Topic::Dispatch);
        read_frames(&state, &node, &mut stream, &tx).await
    }
    .await;

    state.hub.unregister(&node.id, session_id);
    state.sessions.link_ended(&node.id, session_id);
    coordination
        .backend
        .unroute_session(&node.id, &coordination.process);
    drop(tx);
    writer.abort();
    let _ = state
        .store
        .update_node_seen(&node.id, None, now_millis())
        .await;
    state.coordination.notify(Topic::Dispatch);
    tracing::info!(node_id = %node.id, "agent disconnected");
    state.happenings.publish(Happening::Node {
        change: NodeChange::Disconnected,
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        tags: node.tags.clone(),
    });
    result
}

fn close_message(reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: axum::extract::ws::close_code::POLICY,
        reason: reason.chars().take(120).collect::<String>().into(),
    }))
}

/// Resend every invocation this node should be running (or report on).
async fn resend_in_progress(
    state: &AppState,
    node_id: &str,
    tx: &mpsc::Sender<Outbound>,
) -> Result<(), String> {
    let invocations = state
        .store
        .in_progress_on_node(node_id)
        .await
        .map_err(|e| e.to_string())?;
    for invocation in invocations {
        let Some(command) = state
            .store
            .command(&invocation.command_id)
            .await
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let message = if command.cancel_requested {
            ServerMessage::Cancel {
                invocation_id: invocation.invocation_id(),
            }
        } else {
            match crate::params::refs::steps_to_send(state, &command).await {
                Ok(steps) => ServerMessage::Run(crate::dispatcher::run_message(
                    &command,
                    steps,
                    node_id,
                    &state.events.key,
                )),
                Err(e) => {
                    // Not resent; the dispatcher's next pass decides again
                    // (a permanent refusal ends it there as Failed).
                    tracing::warn!(command_id = %command.id, error = %e.message, "a resend's parameter references cannot be read");
                    continue;
                }
            }
        };
        tx.send(Outbound::Message(message))
            .await
            .map_err(|_| "connection closed".to_string())?;
    }
    Ok(())
}

async fn read_frames(
    state: &AppState,
    node: &Node,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    tx: &mpsc::Sender<Outbound>,
) -> Result<(), String> {
    let silence = Duration::from_secs(
        state.config.heartbeat_secs * operon_proto::MISSED_HEARTBEATS_BEFORE_DEAD + 1,
    );
    loop {
        let frame = match tokio::time::timeout(silence, stream.next()).await {
            Err(_) => return Err("missed heartbeats".into()),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(format!("read error: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(bytes) => {
                state.sessions.on_agent_frame(&node.id, &bytes);
                continue;
            }
            Message::Close(_) => return Ok(()),
            _ => continue,
        };
        match operon_proto::decode::<AgentMessage>(&text) {
            Ok(message) => handle_frame(state, node, message, tx).await?,
            Err(e) => tracing::warn!(node_id = %node.id, error = %e, "ignoring a malformed frame"),
        }
    }
}

async fn handle_frame(
    state: &AppState,
    node: &Node,
    message: AgentMessage,
    tx: &mpsc::Sender<Outbound>,
) -> Result<(), String> {
    match message {
        AgentMessage::Hello { .. } => {}
        AgentMessage::Heartbeat { seq } => {
            state.hub.heartbeat(&node.id);
            let _ = tx.try_send(Outbound::Message(ServerMessage::HeartbeatAck { seq }));
        }
        AgentMessage::Started {
            invocation_id,
            started_at,
        } => {
            if let Some((command_id, node_id)) = split_invocation_id(&invocation_id)
                && node_id == node.id
            {
                let write = AgentWrite::Started {
                    command_id: command_id.to_string(),
                    node_id: node_id.to_string(),
                    at: started_at,
                };
                state.writer.write(write).await?;
            }
        }
        AgentMessage::Output {
            invocation_id,
            stream,
            data,
        } => {
            if let Some((command_id, node_id)) = split_invocation_id(&invocation_id)
                && node_id == node.id
            {
                state.live.publish(
                    command_id,
                    LiveEvent::Output {
                        node_id: node.id.clone(),
                        node_name: node.name.clone(),
                        stream,
                        data,
                    },
                );
            }
        }
        AgentMessage::Finished(result) => record_result(state, node, result, tx).await?,
        AgentMessage::CredentialStored { rotation_id } => {
            super::rotation::complete(state, node, &rotation_id, "the agent stored it")
                .await
                .map_err(|e| e.message)?;
        }
        AgentMessage::CredentialNotStored {
            rotation_id,
            reason,
        } => super::rotation::not_stored(state, node, &rotation_id, reason),
        AgentMessage::SyncApplied(report) => {
            crate::params::sync::on_applied(state, node, report).await;
            state
                .coordination
                .notify(crate::coordination::Topic::ParameterSyncs);
        }
        AgentMessage::SyncDrifted {
            sync_id,
            expected_digest,
            found_digest,
            ..
        } => {
            crate::params::sync::on_drifted(
                state,
                node,
                &sync_id,
                &expected_digest,
                found_digest.as_deref(),
            )
            .await;
        }
        AgentMessage::InventoryReport(delta)
            if state
                .hub
                .supports(&node.id, operon_proto::CAPABILITY_INVENTORY)
                != Some(true) =>
        {
            // The answers are frames it did not announce it understands.
            tracing::warn!(node_id = %node.id, kind = %delta.kind, "ignoring an inventory report from an agent that did not announce the inventory capability");
        }
        AgentMessage::InventoryReport(delta) => {
            match state.inventory().record(node, &delta).await {
                Ok(Some(answer)) => tx
                    .send(Outbound::Message(answer))
                    .await
                    .map_err(|_| "connection closed".to_string())?,
                Ok(None) => {}
                // Not answered: the agent sends it again after its next collection.
                Err(e) => {
                    tracing::warn!(node_id = %node.id, kind = %delta.kind, error = %e.message, "storing an inventory report failed")
                }
            }
        }
        AgentMessage::Logs(batch) => {
            let seq = batch.seq;
            match state.logs().record(node, batch).await {
                // Acknowledged only once committed: until then the agent keeps it.
                Ok(()) => tx
                    .send(Outbound::Message(ServerMessage::LogsAck { seq }))
                    .await
                    .map_err(|_| "connection closed".to_string())?,
                // Not acknowledged: the agent sends it again after a reconnect.
                Err(e) => {
                    tracing::warn!(node_id = %node.id, seq, error = %e.message, "storing a log batch failed")
                }
            }
        }
        AgentMessage::Metrics(batch) => {
            let seq = batch.seq;
            match state.metrics().record(node, batch).await {
                // Acknowledged only once committed: until then the agent keeps it.
                Ok(()) => tx
                    .send(Outbound::Message(ServerMessage::MetricsAck { seq }))
                    .await
                    .map_err(|_| "connection closed".to_string())?,
                // Not acknowledged: the agent sends it again after a reconnect.
                Err(e) => {
                    tracing::warn!(node_id = %node.id, seq, error = %e.message, "storing a metrics batch failed")
                }
            }
        }
        AgentMessage::ChannelOpened { channel } => {
            state
                .sessions
                .on_agent(&node.id, channel, crate::sessions::FromAgent::Opened)
        }
        AgentMessage::ChannelClosed {
            channel,
            exit_code,
            error,
        } => state.sessions.on_agent(
            &node.id,
            channel,
            crate::sessions::FromAgent::Closed { exit_code, error },
        ),
        AgentMessage::StateDrifted(drift) => {
            if let Err(e) = crate::associations::runner::record_drift(state, node, &drift).await {
                tracing::warn!(node_id = %node.id, association = %drift.association, error = %e.message, "a drift report could not be recorded");
            }
        }
    }
    Ok(())
}

/// Persist a result, then acknowledge it. Duplicates are acknowledged too.
async fn record_result(
    state: &AppState,
    node: &Node,
    result: CommandResult,
    tx: &mpsc::Sender<Outbound>,
) -> Result<(), String> {
    let Some((command_id, node_id)) = split_invocation_id(&result.invocation_id) else {
        tracing::warn!(node_id = %node.id, id = %result.invocation_id, "result with a malformed invocation id");
        return Ok(());
    };
    if node_id != node.id {
        tracing::warn!(node_id = %node.id, id = %result.invocation_id, "result for another node ignored");
        return Ok(());
    }
    let write = AgentWrite::Finished {
        command_id: command_id.to_string(),
        node_id: node_id.to_string(),
        result: result.clone(),
    };
    let changed = state.writer.write(write).await?;
    // Compliance is recorded before the acknowledgement: a crash in between
    // makes the agent send the result again, and recording it twice is harmless.
    if !result.resources.is_empty()
        && let Err(e) =
            crate::associations::runner::record_result(state, node, command_id, &result).await
    {
        tracing::warn!(node_id = %node.id, %command_id, error = %e.message, "compliance could not be recorded");
    }
    if changed {
        state.live.publish(
            command_id,
            LiveEvent::Status {
                node_id: node.id.clone(),
                node_name: node.name.clone(),
                status: result.status,
                exit_code: result.exit_code,
                detail: result.detail.clone(),
            },
        );
        state.coordination.notify(Topic::Dispatch);
    }
    let ack = ServerMessage::ResultAck {
        invocation_id: result.invocation_id,
    };
    tx.send(Outbound::Message(ack))
        .await
        .map_err(|_| "connection closed".to_string())
}
