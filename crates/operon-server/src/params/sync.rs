//! Files that follow parameters: `operon params sync create app-env --path
//! /app/prod/ --targets tag:env=prod --file /etc/app/env`.
//!
//! A sync keeps one file on every targeted node equal to the parameters
//! under a path, rendered as dotenv, JSON or YAML ([`super::render`]).
//! [`SyncService`] creates, lists, shows and deletes syncs; the reconciler
//! ([`run`], one process, the `params.sync` lease) brings nodes up to date:
//!
//! - The content is rendered as the sync's actor (`sync/NAME`, acting as
//!   its role or its author), reading each parameter with `params:Get`, a
//!   SecureString with `params:GetDecrypted` (one audit record per render
//!   naming every version read). It is rendered again only when the set of
//!   parameter versions under the path changes; the rendered content stays
//!   in this process's memory, never in a row.
//! - A node gets it (`SyncFile`, over its agent's authenticated link) when
//!   what it applied last is not the current digest, if the actor may
//!   `commands:Run` on that node now (writing a root-owned file is running
//!   a command). Nodes that join or come back online are caught up by the
//!   same rule; a send not answered in 30 s is sent again.
//! - The agent writes only when the bytes differ and runs `--on-change`
//!   once per change; a hand edit is reported (`SyncDrifted`), the file is
//!   sent again and put back.
//!
//! Events (`operon.params`): `Parameter Sync Applied` when a node's file
//! changed, `Parameter Sync Drift Detected` and `Parameter Sync Drift
//! Corrected`. None carries content.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use operon_proto::{SyncFile, SyncReport};
use operon_store::{AuditEntry, Node, ParamSync, ParamSyncNode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::render::{self, Format};
use crate::access::{Principal, check_action, node_request};
use crate::commands::targets::TargetSpec;
use crate::coordination::Topic;
use crate::runas::RunAs;
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// The lease of the one process that reconciles syncs.
const LEASE: &str = "params.sync";
/// How often the reconciler looks without being woken.
const TICK: Duration = Duration::from_secs(5);
/// A send not answered within this is sent again.
const RESEND_AFTER_MS: i64 = 30_000;
/// How long `--on-change` may run on the node.
const ON_CHANGE_TIMEOUT_SECS: u64 = 300;

/// A sync as asked for.
#[derive(Debug, Clone, Default)]
pub struct NewSync {
    pub name: String,
    pub path: String,
    pub recursive: bool,
    pub targets: Vec<String>,
    pub file: String,
    pub format: Option<String>,
    /// Octal, `0600` by default.
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub on_change: Option<String>,
    pub role: Option<String>,
}

/// A sync and its nodes.
#[derive(Debug, Clone)]
pub struct SyncView {
    pub sync: ParamSync,
    pub nodes: Vec<ParamSyncNode>,
}

fn resource(name: &str) -> String {
    format!("param-sync/{name}")
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("InvalidSync", message)
}

fn parse_mode(text: Option<&str>) -> ServiceResult<i64> {
    let Some(text) = text else { return Ok(0o600) };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match i64::from_str_radix(digits, 8) {
        Ok(mode) if (0..=0o7777).contains(&mode) => Ok(mode),
        _ => Err(invalid(format!(
            "mode {text:?} is not an octal file mode (0600, 0640, ...)"
        ))),
    }
}

fn target_spec(targets: &Value) -> ServiceResult<TargetSpec> {
    let entries: Vec<Value> = targets.as_array().cloned().unwrap_or_default();
    let spec = TargetSpec::parse(&[], &entries, "targets")
        .map_err(|e| invalid(format!("targets: {e:?}")))?;
    // A sync's nodes are decided from tags alone (no store read per pass).
    if !spec.inventory_filters().is_empty() {
        return Err(invalid(
            "targets: inventory:KIND:FILTER targets are not supported for syncs; use tags",
        ));
    }
    Ok(spec)
}

pub struct SyncService<'a> {
    pub(crate) state: &'a AppState,
}

impl SyncService<'_> {
    /// Create or replace a sync (`paramSyncs:Create` on `param-sync/NAME`;
    /// naming a role needs `roles:Pass`).
    pub async fn put(
        &self,
        principal: &Principal,
        new: NewSync,
    ) -> ServiceResult<(ParamSync, bool)> {
        crate::identity::service::valid_name("sync", &new.name)?;
        check_action(
            &self.state.audit,
            principal,
            "paramSyncs:Create",
            &resource(&new.name),
        )
        .await?;
        operon_params::names::validate_path(&new.path).map_err(super::service::rule)?;
        if !new.file.starts_with('/') || new.file.ends_with('/') || new.file.contains('\0') {
            return Err(invalid(format!(
                "file {:?} must be an absolute file path",
                new.file
            )));
        }
        let format = Format::parse(new.format.as_deref().unwrap_or("dotenv")).map_err(invalid)?;
        let mode = parse_mode(new.mode.as_deref())?;
        if new.targets.is_empty() {
            return Err(invalid(
                "give the nodes to keep the file on: --targets tag:KEY=VALUE",
            ));
        }
        let targets = Value::from(
            new.targets
                .iter()
                .map(|t| Value::String(t.clone()))
                .collect::<Vec<_>>(),
        );
        target_spec(&targets)?;
        if let Some(role) = &new.role {
            crate::runas::authorize_pass_role(
                &self.state.store,
                &self.state.audit,
                principal,
                role,
            )
            .await?;
        }
        let now = now_millis();
        let created_at = self
            .state
            .store
            .param_sync(&new.name)
            .await?
            .map_or(now, |s| s.created_at);
        let sync = ParamSync {
            name: new.name,
            path: new.path,
            recursive: new.recursive,
            targets,
            file: new.file,
            format: format.as_str().into(),
            mode,
            owner: new.owner,
            group: new.group,
            on_change: new.on_change,
            role: new.role,
            author: principal.name.clone(),
            created_at,
            updated_at: now,
        };
        let created = self.state.store.put_param_sync(&sync).await?;
        self.state.coordination.notify(Topic::ParameterSyncs);
        Ok((sync, created))
    }

    /// Syncs (`paramSyncs:Get` on `param-sync/*`, then each: a Deny on one
    /// hides it).
    pub async fn list(&self, principal: &Principal) -> ServiceResult<Vec<ParamSync>> {
        check_action(
            &self.state.audit,
            principal,
            "paramSyncs:Get",
            "param-sync/*",
        )
        .await?;
        Ok(self
            .state
            .store
            .list_param_syncs()
            .await?
            .into_iter()
            .filter(|s| {
                principal
                    .decide(&principal.request("paramSyncs:Get", &resource(&s.name)))
                    .is_ok()
            })
            .collect())
    }

    /// A sync with the state of every node (`paramSyncs:Get`).
    pub async fn get(&self, principal: &Principal, name: &str) -> ServiceResult<SyncView> {
        check_action(
            &self.state.audit,
            principal,
            "paramSyncs:Get",
            &resource(name),
        )
        .await?;
        let sync = self.state.store.param_sync(name).await?.ok_or_else(|| {
            ServiceError::not_found("UnknownSync", format!("no sync named {name:?}"))
        })?;
        let nodes = self.state.store.param_sync_nodes(name).await?;
        Ok(SyncView { sync, nodes })
    }

    /// Delete a sync: its nodes stop keeping the file (which stays as it is).
    pub async fn delete(&self, principal: &Principal, name: &str) -> ServiceResult<()> {
        check_action(
            &self.state.audit,
            principal,
            "paramSyncs:Delete",
            &resource(name),
        )
        .await?;
        let nodes = self.state.store.param_sync_nodes(name).await?;
        if !self.state.store.delete_param_sync(name).await? {
            return Err(ServiceError::not_found(
                "UnknownSync",
                format!("no sync named {name:?}"),
            ));
        }
        for node in nodes {
            self.state.hub.send(
                &node.node_id,
                operon_proto::ServerMessage::SyncForget {
                    sync_id: name.to_string(),
                },
            );
        }
        self.state.coordination.notify(Topic::ParameterSyncs);
        Ok(())
    }
}

// ----- The reconciler ---------------------------------------------------------------

/// A sync's content as last rendered (kept in memory only).
struct Rendered {
    /// The parameter versions rendered (`NAME:VERSION,...`), as shown.
    version_set: String,
    /// The versions and the settings that shape the file: rendered again
    /// when any of them changes.
    cache_key: String,
    content: zeroize::Zeroizing<String>,
    digest: String,
}

/// Why a sync's content cannot be made now.
struct RenderRefusal(String);

/// The reconciler loop.
pub async fn run(state: Arc<AppState>) {
    let mut wake = state.coordination.subscribe(Topic::ParameterSyncs);
    let mut cache: HashMap<String, Rendered> = HashMap::new();
    loop {
        if state
            .coordination
            .try_lease(LEASE, 3 * TICK.as_millis() as i64)
            .is_some()
        {
            if let Err(e) = pass(&state, &mut cache).await {
                tracing::error!(error = %e.message, "reconciling parameter syncs failed; retrying");
            }
        } else {
            cache.clear();
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = wake.notified() => {}
        }
    }
}

async fn pass(state: &AppState, cache: &mut HashMap<String, Rendered>) -> ServiceResult<()> {
    let syncs = state.store.list_param_syncs().await?;
    cache.retain(|name, _| syncs.iter().any(|s| &s.name == name));
    let nodes = state.store.list_nodes().await?;
    for sync in syncs {
        reconcile(state, cache, &sync, &nodes).await?;
    }
    Ok(())
}

fn actor_name(sync: &ParamSync) -> String {
    format!("sync/{}", sync.name)
}

async fn reconcile(
    state: &AppState,
    cache: &mut HashMap<String, Rendered>,
    sync: &ParamSync,
    all_nodes: &[Node],
) -> ServiceResult<()> {
    // No matching node (yet) is not an error: nodes may join later.
    let targeted = target_spec(&sync.targets)
        .and_then(|spec| {
            spec.select(all_nodes)
                .map_err(|e| invalid(format!("targets: {e:?}")))
        })
        .unwrap_or_default();
    let rows: BTreeMap<String, ParamSyncNode> = state
        .store
        .param_sync_nodes(&sync.name)
        .await?
        .into_iter()
        .map(|n| (n.node_id.clone(), n))
        .collect();
    // Nodes no longer targeted stop keeping the file.
    for (node_id, _) in rows
        .iter()
        .filter(|(id, _)| !targeted.iter().any(|n| &&n.id == id))
    {
        state.hub.send(
            node_id,
            operon_proto::ServerMessage::SyncForget {
                sync_id: sync.name.clone(),
            },
        );
        state
            .store
            .delete_param_sync_node(&sync.name, node_id)
            .await?;
    }
    if targeted.is_empty() {
        return Ok(());
    }
    let run_as = RunAs::new(sync.role.as_deref(), Some(&sync.author));
    let actor = state.actor(&actor_name(sync), &run_as).await?;
    let rendered = match content(state, cache, sync, &actor).await? {
        Ok(rendered) => rendered,
        Err(RenderRefusal(why)) => {
            // Audited once, when the nodes first learn of it.
            let news = targeted.iter().any(|node| {
                rows.get(&node.id)
                    .is_none_or(|r| r.detail.as_deref() != Some(why.as_str()))
            });
            if news {
                let entry = AuditEntry {
                    actor: actor.name.clone(),
                    action: "paramSyncs:Render".into(),
                    resource: resource(&sync.name),
                    outcome: "denied".into(),
                    detail: json!({"reason": why, "acting_as": actor.acting_as}),
                };
                if let Err(e) = state.audit.record(entry).await {
                    tracing::error!(error = %e, "a sync's refusal could not be audited");
                }
            }
            let failed: Vec<ParamSyncNode> = targeted
                .iter()
                .map(|node| ParamSyncNode {
                    status: "failed".into(),
                    detail: Some(why.clone()),
                    ..row_for(sync, node, rows.get(&node.id))
                })
                .collect();
            if news {
                state.store.put_param_sync_nodes(&failed).await?;
            }
            return Ok(());
        }
    };
    let now = now_millis();
    let mut to_send = Vec::new();
    for node in &targeted {
        let row = row_for(sync, node, rows.get(&node.id));
        if row.applied_digest.as_deref() == Some(&rendered.digest) && row.status == "applied" {
            continue;
        }
        if !state.hub.is_online(&node.id) {
            if row.status != "pending" && row.applied_digest.as_deref() != Some(&rendered.digest) {
                set_status(
                    state,
                    row,
                    "pending",
                    Some("waiting for the node to be online".into()),
                )
                .await?;
            }
            continue;
        }
        if state
            .hub
            .supports(&node.id, operon_proto::CAPABILITY_FILE_SYNC)
            == Some(false)
        {
            set_status(
                state,
                row,
                "unsupported",
                Some(format!(
                    "the agent on {} does not support file sync; upgrade it",
                    node.name
                )),
            )
            .await?;
            continue;
        }
        if let Err(why) = actor.decide(&node_request(&actor, "commands:Run", node)) {
            let detail = format!(
                "{} (acting as {}) may not commands:Run on node/{}: {why}",
                actor.name,
                actor.acting_as.as_deref().unwrap_or("nobody"),
                node.name
            );
            if row.status != "refused" {
                audit(state, &actor, node, "denied", json!({"reason": detail})).await;
            }
            set_status(state, row, "refused", Some(detail)).await?;
            continue;
        }
        let fresh_send = row.status == "sent"
            && row.sent_digest.as_deref() == Some(&rendered.digest)
            && row.sent_at.is_some_and(|at| now - at < RESEND_AFTER_MS);
        if fresh_send {
            continue;
        }
        to_send.push((node, row));
    }
    send(state, sync, &actor, to_send, rendered, now).await
}

fn row_for(sync: &ParamSync, node: &Node, existing: Option<&ParamSyncNode>) -> ParamSyncNode {
    existing.cloned().unwrap_or_else(|| ParamSyncNode {
        sync_name: sync.name.clone(),
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        status: "pending".into(),
        detail: None,
        version_set: None,
        sent_digest: None,
        sent_at: None,
        applied_digest: None,
        applied_at: None,
        on_change_exit: None,
    })
}

async fn set_status(
    state: &AppState,
    mut row: ParamSyncNode,
    status: &str,
    detail: Option<String>,
) -> ServiceResult<()> {
    if row.status == status && row.detail == detail {
        return Ok(());
    }
    row.status = status.into();
    row.detail = detail;
    state
        .store
        .put_param_sync_nodes(std::slice::from_ref(&row))
        .await?;
    Ok(())
}

async fn audit(state: &AppState, actor: &Principal, node: &Node, outcome: &str, detail: Value) {
    let mut detail = detail;
    if let Some(acting_as) = &actor.acting_as {
        detail["acting_as"] = json!(acting_as);
    }
    let entry = AuditEntry {
        actor: actor.name.clone(),
        action: "paramSyncs:Write".into(),
        resource: format!("node/{}", node.name),
        outcome: outcome.into(),
        detail,
    };
    if let Err(e) = state.audit.record(entry).await {
        tracing::error!(error = %e, "a sync's write could not be audited");
    }
}

/// Send the content to `nodes`: their states are recorded first, in one
/// transaction (a crash before the frames leave resends them), then one
/// audit record names every node sent to.
async fn send(
    state: &AppState,
    sync: &ParamSync,
    actor: &Principal,
    nodes: Vec<(&Node, ParamSyncNode)>,
    rendered: &Rendered,
    now: i64,
) -> ServiceResult<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let rows: Vec<ParamSyncNode> = nodes
        .iter()
        .map(|(_, row)| ParamSyncNode {
            status: "sent".into(),
            detail: None,
            sent_digest: Some(rendered.digest.clone()),
            sent_at: Some(now),
            version_set: Some(rendered.version_set.clone()),
            ..row.clone()
        })
        .collect();
    state.store.put_param_sync_nodes(&rows).await?;
    let mut sent = Vec::with_capacity(nodes.len());
    for (node, _) in &nodes {
        let frame = SyncFile {
            sync_id: sync.name.clone(),
            path: sync.file.clone(),
            content: operon_proto::Secret(rendered.content.to_string()),
            digest: rendered.digest.clone(),
            mode: u32::try_from(sync.mode).unwrap_or(0o600),
            owner: sync.owner.clone(),
            group: sync.group.clone(),
            on_change: sync.on_change.clone(),
            on_change_timeout_secs: ON_CHANGE_TIMEOUT_SECS,
        };
        if state
            .hub
            .send(&node.id, operon_proto::ServerMessage::SyncFile(frame))
        {
            sent.push(node.name.clone());
        }
    }
    if !sent.is_empty() {
        let mut detail = json!({"nodes": sent, "file": sync.file, "digest": rendered.digest,
                                "versions": rendered.version_set});
        if let Some(acting_as) = &actor.acting_as {
            detail["acting_as"] = json!(acting_as);
        }
        let entry = AuditEntry {
            actor: actor.name.clone(),
            action: "paramSyncs:Write".into(),
            resource: resource(&sync.name),
            outcome: "allowed".into(),
            detail,
        };
        if let Err(e) = state.audit.record(entry).await {
            tracing::error!(error = %e, "a sync's writes could not be audited");
        }
    }
    Ok(())
}

/// The sync's content now: from the cache while the parameter versions
/// under the path are the same, else rendered again as `actor`.
async fn content<'c>(
    state: &AppState,
    cache: &'c mut HashMap<String, Rendered>,
    sync: &ParamSync,
    actor: &Principal,
) -> ServiceResult<Result<&'c Rendered, RenderRefusal>> {
    let prefix = if sync.path.ends_with('/') {
        sync.path.clone()
    } else {
        format!("{}/", sync.path)
    };
    const PAGE: usize = 500;
    let mut versions = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .store
            .parameters_after(&prefix, after.as_deref(), PAGE)
            .await?;
        let full = page.len() == PAGE;
        after = page.last().map(|p| p.name().to_string());
        versions
            .extend(page.into_iter().filter(|p| {
                operon_params::names::under_path(p.name(), &sync.path, sync.recursive)
            }));
        if !full {
            break;
        }
    }
    let version_set = versions
        .iter()
        .map(|v| format!("{}:{}", v.name(), v.version))
        .collect::<Vec<_>>()
        .join(",");
    let cache_key = format!(
        "{version_set}|{}|{}|{}",
        sync.format, sync.path, sync.recursive
    );
    if cache
        .get(&sync.name)
        .is_some_and(|r| r.cache_key == cache_key)
    {
        return Ok(Ok(&cache[&sync.name]));
    }
    let format = Format::parse(&sync.format).unwrap_or(Format::Dotenv);
    let mut entries = Vec::with_capacity(versions.len());
    let mut decrypted = Vec::new();
    for version in &versions {
        let name = version.name();
        let secure = version.fields.param_type == "SecureString";
        let action = if secure {
            "params:GetDecrypted"
        } else {
            "params:Get"
        };
        if let Err(why) = actor.decide(&actor.request(action, &super::service::resource(name))) {
            return Ok(Err(RenderRefusal(format!(
                "{} (acting as {}) may not {action} on {}: {why}",
                actor.name,
                actor.acting_as.as_deref().unwrap_or("nobody"),
                super::service::resource(name)
            ))));
        }
        let value = if secure {
            let sealed = version.fields.sealed.as_deref().unwrap_or_default();
            let clear = state
                .keys
                .unseal(&super::service::seal_aad(name, version.version), sealed)
                .map_err(|e| {
                    tracing::error!(parameter = name, error = %e, "a SecureString does not open");
                    ServiceError::new(
                        ErrorKind::Internal,
                        "InternalError",
                        "a value could not be decrypted",
                    )
                })?;
            decrypted.push(json!({"name": name, "version": version.version}));
            String::from_utf8_lossy(&clear).into_owned()
        } else {
            version.fields.value.clone().unwrap_or_default()
        };
        let key = render::relative_key(&sync.path, name).unwrap_or_else(|| name.to_string());
        entries.push((key, value));
    }
    let text = match render::render(format, &entries) {
        Ok(text) => zeroize::Zeroizing::new(text),
        Err(why) => return Ok(Err(RenderRefusal(why))),
    };
    if !decrypted.is_empty() {
        let mut detail = json!({"parameters": decrypted, "sync": sync.name});
        if let Some(acting_as) = &actor.acting_as {
            detail["acting_as"] = json!(acting_as);
        }
        let entry = AuditEntry {
            actor: actor.name.clone(),
            action: "params:GetDecrypted".into(),
            resource: format!("{}*", super::service::resource(&prefix)),
            outcome: "allowed".into(),
            detail,
        };
        state
            .audit
            .record(entry)
            .await
            .map_err(|e| ServiceError::new(ErrorKind::Unavailable, "AuditUnavailable", e))?;
    }
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    cache.insert(
        sync.name.clone(),
        Rendered {
            version_set,
            cache_key,
            content: text,
            digest,
        },
    );
    Ok(Ok(&cache[&sync.name]))
}

// ----- What agents report ---------------------------------------------------------------

/// An agent answered a `SyncFile`.
pub async fn on_applied(state: &AppState, node: &Node, report: SyncReport) {
    let Ok(rows) = state.store.param_sync_nodes(&report.sync_id).await else {
        return;
    };
    let Some(mut row) = rows.into_iter().find(|r| r.node_id == node.id) else {
        return;
    };
    let Ok(Some(sync)) = state.store.param_sync(&report.sync_id).await else {
        return;
    };
    match &report.error {
        Some(error) => {
            row.status = "failed".into();
            row.detail = Some(error.clone());
        }
        None => {
            row.status = "applied".into();
            row.detail = None;
            row.applied_digest = Some(report.digest.clone());
            row.applied_at = Some(report.at);
            if report.changed {
                row.on_change_exit = report.on_change_exit;
            }
        }
    }
    if let Err(e) = state
        .store
        .put_param_sync_nodes(std::slice::from_ref(&row))
        .await
    {
        tracing::error!(error = %e, "a sync report could not be stored");
        return;
    }
    let detail = json!({
        "sync": sync.name,
        "node-id": node.id,
        "node-name": node.name,
        "file": sync.file,
        "digest": report.digest,
        "versions": row.version_set,
        "changed": report.changed,
        "on-change-exit": report.on_change_exit,
        "error": report.error,
    });
    if report.error.is_some() || report.changed {
        super::put_event_about(state, "Parameter Sync Applied", &sync.file, detail.clone()).await;
    }
    if report.drift && report.error.is_none() {
        super::put_event_about(state, "Parameter Sync Drift Corrected", &sync.file, detail).await;
    }
}

/// An agent saw a kept file changed behind its back: record it, say so,
/// and have the reconciler send the content again.
pub async fn on_drifted(
    state: &AppState,
    node: &Node,
    sync_id: &str,
    expected: &str,
    found: Option<&str>,
) {
    let Ok(rows) = state.store.param_sync_nodes(sync_id).await else {
        return;
    };
    let Some(mut row) = rows.into_iter().find(|r| r.node_id == node.id) else {
        return;
    };
    row.status = "drifted".into();
    row.detail = Some(match found {
        Some(found) => {
            format!("the file was changed on the node (digest {found}, expected {expected})")
        }
        None => "the file was removed on the node".into(),
    });
    row.applied_digest = None;
    if let Err(e) = state
        .store
        .put_param_sync_nodes(std::slice::from_ref(&row))
        .await
    {
        tracing::error!(error = %e, "a drift report could not be stored");
        return;
    }
    let file = state
        .store
        .param_sync(sync_id)
        .await
        .ok()
        .flatten()
        .map(|s| s.file)
        .unwrap_or_default();
    let detail = json!({
        "sync": sync_id,
        "node-id": node.id,
        "node-name": node.name,
        "file": file,
        "expected-digest": expected,
        "found-digest": found,
    });
    super::put_event_about(state, "Parameter Sync Drift Detected", &file, detail).await;
    state.coordination.notify(Topic::ParameterSyncs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_and_bounded() {
        assert_eq!(parse_mode(None).unwrap(), 0o600);
        assert_eq!(parse_mode(Some("0640")).unwrap(), 0o640);
        assert_eq!(parse_mode(Some("0o755")).unwrap(), 0o755);
        assert!(parse_mode(Some("0999")).is_err());
        assert!(parse_mode(Some("rw-r--r--")).is_err());
        assert!(parse_mode(Some("77777")).is_err());
    }
}
