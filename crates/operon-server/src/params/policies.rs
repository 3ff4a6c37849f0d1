//! Parameter policies, evaluated by the server: `Expiration` deletes the
//! parameter at its time, `ExpirationNotification` and
//! `NoChangeNotification` put `Parameter Store Policy Action` events on the
//! default bus, shaped like AWS's.
//!
//! One process evaluates (the `params.policies` lease). Each parameter
//! remembers how far its policies were evaluated (`policy_checked_at`), so
//! after a restart the actions that fell due while the server was down run
//! once, late rather than never; a put resets it (new version, new
//! policies). What falls due is decided by the pure
//! `operon_params::policies::due`. Events carry an id derived from the
//! parameter, version, policy and due time, so a repeat after a crash
//! between the action and its bookkeeping can be told apart by receivers.

use std::sync::Arc;
use std::time::Duration;

use operon_params::policies::{self, PolicyAction};
use operon_store::{AuditEntry, ParameterVersion};
use serde_json::json;

use crate::coordination::Topic;
use crate::{AppState, now_millis};

/// The lease of the one process that evaluates policies.
const LEASE: &str = "params.policies";
/// Longest sleep between passes (puts with policies wake the loop).
const MAX_SLEEP_MS: i64 = 60_000;
/// Who the audit trail names for an expiry.
const ACTOR: &str = "system";

/// The evaluator loop (spawned with the server's background tasks).
pub async fn run(state: Arc<AppState>) {
    let mut changed = state.coordination.subscribe(Topic::ParameterPolicies);
    loop {
        let now = now_millis();
        let held = state
            .coordination
            .try_lease(LEASE, 3 * MAX_SLEEP_MS)
            .is_some();
        let next = if held {
            match pass(&state, now).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "evaluating parameter policies failed; retrying");
                    Some(now + 5_000)
                }
            }
        } else {
            None
        };
        let until = next.unwrap_or(now + MAX_SLEEP_MS).min(now + MAX_SLEEP_MS);
        let wait = Duration::from_millis((until - now_millis()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => {}
        }
    }
}

/// Do what is due for every parameter with policies; answers when the next
/// action falls due (Unix ms).
async fn pass(state: &AppState, now_ms: i64) -> Result<Option<i64>, operon_store::StoreError> {
    let now = now_ms / 1000;
    let mut next: Option<i64> = None;
    for (param, checked_at) in state.store.parameters_with_policies().await? {
        let Some(text) = &param.fields.policies else {
            continue;
        };
        let Ok(parsed) = policies::parse_policies(text) else {
            continue;
        };
        let modified = param.fields.modified_at / 1000;
        let since = checked_at.map_or(modified, |at| at / 1000);
        let actions = policies::due(&parsed, modified, since, now);
        let expired = actions.contains(&PolicyAction::Expire);
        for action in actions {
            act(state, &param, action).await;
        }
        if expired {
            continue;
        }
        state
            .store
            .set_policy_checked(param.name(), now * 1000)
            .await?;
        if let Some((at, _)) = policies::next_due(&parsed, modified, now) {
            let at_ms = at.saturating_mul(1000);
            next = Some(next.map_or(at_ms, |n| n.min(at_ms)));
        }
    }
    Ok(next)
}

/// The name of a policy action as AWS's events write it.
fn policy_type(action: PolicyAction) -> &'static str {
    match action {
        PolicyAction::Expire => "Expiration",
        PolicyAction::NotifyExpiration { .. } => "ExpirationNotification",
        PolicyAction::NotifyNoChange { .. } => "NoChangeNotification",
    }
}

fn reason(param: &ParameterVersion, action: PolicyAction) -> String {
    let name = param.name();
    match action {
        PolicyAction::Expire => format!("Parameter {name} has expired and was deleted"),
        PolicyAction::NotifyExpiration { expires_at } => format!(
            "Parameter {name} will expire at {}",
            crate::events::envelope::rfc3339(expires_at * 1000)
        ),
        PolicyAction::NotifyNoChange { since } => format!(
            "Parameter {name} has not been changed since {}",
            crate::events::envelope::rfc3339(since * 1000)
        ),
    }
}

async fn act(state: &AppState, param: &ParameterVersion, action: PolicyAction) {
    let name = param.name();
    if action == PolicyAction::Expire {
        // Only the version whose policy expired: a put since brought new policies.
        match state.store.parameter(name).await {
            Ok(Some(latest)) if latest.version == param.version => {}
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, parameter = name, "cannot read an expiring parameter");
                return;
            }
        }
        match state.store.delete_parameter(name).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, parameter = name, "cannot delete an expired parameter");
                return;
            }
        }
        let entry = AuditEntry {
            actor: ACTOR.into(),
            action: "params:Delete".into(),
            resource: super::service::resource(name),
            outcome: "allowed".into(),
            detail: json!({"reason": "Expiration policy", "version": param.version}),
        };
        if let Err(e) = state.audit.record(entry).await {
            tracing::error!(error = %e, "an expiry could not be audited");
        }
        let detail = json!({
            "operation": "Delete",
            "name": name,
            "type": param.fields.param_type,
            "version": param.version,
        });
        super::put_event(state, "Parameter Store Change", name, detail).await;
    }
    let detail = json!({
        "parameter-name": name,
        "parameter-type": param.fields.param_type,
        "policy-type": policy_type(action),
        "action-status": "Finished",
        "action-reason": reason(param, action),
        "version": param.version,
    });
    super::put_event(state, "Parameter Store Policy Action", name, detail).await;
}
