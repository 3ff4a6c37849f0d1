//! Access control: who may do what to which resource, and the record of it.
//!
//! Every handler names the action and the resource it acts on and calls
//! [`authorize`] (or, for a node, `FleetService::find_for`, which adds the
//! node's tags as `operon:NodeTag/KEY` condition keys through
//! [`node_request`]) before it changes or reveals anything. Actions are `noun:Verb` strings in the manner of IAM
//! (`commands:Run`, `nodes:List`, `workflows:Start`); resources are
//! `kind/name` paths (`node/web-1`, `workflow/deploy`, `bus/default`).
//!
//! A principal is allowed an action when
//! 1. it holds the admin token (the root credential: everything is allowed), or
//! 2. its token's scopes (if it has any) include the action, *and* the
//!    policies of its roles allow it: default deny, explicit deny wins
//!    (evaluated by `operon-policy`).
//!
//! Refusals are written to the audit trail before the 403 goes out; the
//! request middleware writes the record of every mutating call once the
//! handler has answered, with the checks made and the notes the handler left
//! (see [`Principal::note`]).

use std::sync::{Arc, Mutex};

use operon_policy::{NamedPolicy, Request};
use operon_store::{AuditEntry, Node};
use serde_json::{Map, Value};

use crate::AppState;
use crate::error::ApiResult;

/// Who made an authenticated request, with what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user's name, or `admin` for the admin token.
    pub name: String,
    pub user_id: Option<String>,
    pub token_id: String,
    /// The admin token: allowed everything.
    pub root: bool,
    /// Action patterns the token is limited to.
    pub scopes: Option<Vec<String>>,
    /// The scopes as an allow-policy, so they match exactly as policies do.
    scope_policy: Option<Arc<[NamedPolicy; 1]>>,
    pub policies: Arc<Vec<NamedPolicy>>,
    /// For a non-human actor (`rule/NAME`, `execution/ID`): the authority it
    /// acts with (`role/ops`, `user/alice`, `admin`); see [`crate::runas`].
    pub acting_as: Option<String>,
    pub(crate) trail: Arc<Mutex<Trail>>,
}

/// What happened during one request, for its audit record.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    /// (action, resource) pairs that were allowed.
    pub allowed: Vec<(String, String)>,
    /// A refusal was already recorded.
    pub denied: bool,
    /// The handler committed the call's record itself (with its data).
    pub recorded: bool,
    pub notes: Map<String, Value>,
}

impl Principal {
    pub fn new(
        name: String,
        user_id: Option<String>,
        token_id: String,
        scopes: Option<Vec<String>>,
        policies: Vec<NamedPolicy>,
    ) -> Principal {
        let scope_policy = scopes
            .as_deref()
            .and_then(|s| scope_policy(s).ok())
            .map(|p| Arc::new([p]));
        Principal {
            scope_policy,
            root: user_id.is_none(),
            name,
            user_id,
            token_id,
            scopes,
            policies: Arc::new(policies),
            acting_as: None,
            trail: Arc::default(),
        }
    }

    /// A rule's or an execution's principal for one effect: named after the
    /// actor, holding the policies of what it acts as (`root` only for the
    /// admin's own rules and runbooks).
    pub fn actor(
        name: &str,
        acting_as: String,
        root: bool,
        policies: Vec<NamedPolicy>,
    ) -> Principal {
        Principal {
            name: name.to_string(),
            user_id: None,
            token_id: String::new(),
            root,
            scopes: None,
            scope_policy: None,
            policies: Arc::new(policies),
            acting_as: Some(acting_as),
            trail: Arc::default(),
        }
    }

    /// The same principal with a trail of its own: an actor resolved once
    /// and used for several effects gets a clean trail for each.
    pub(crate) fn with_fresh_trail(&self) -> Principal {
        let mut fresh = self.clone();
        fresh.trail = Arc::default();
        fresh
    }

    /// Add a detail to this request's audit record (never a secret).
    pub fn note(&self, key: &str, value: impl Into<Value>) {
        if let Ok(mut trail) = self.trail.lock() {
            trail.notes.insert(key.to_string(), value.into());
        }
    }

    /// Whether this principal may do `action` on `resource` given the
    /// condition context, without recording anything. `Err` explains the
    /// refusal.
    pub fn decide(&self, request: &Request) -> Result<(), String> {
        if self.root {
            return Ok(());
        }
        if let Some(scopes) = &self.scopes {
            let in_scope = self
                .scope_policy
                .as_ref()
                .is_some_and(|p| operon_policy::evaluate(&p[..], request).is_allowed());
            if !in_scope {
                return Err(format!(
                    "the token's scopes ({}) do not include {}",
                    scopes.join(", "),
                    request.action
                ));
            }
        }
        let decision = operon_policy::evaluate(&self.policies, request);
        if decision.is_allowed() {
            Ok(())
        } else {
            Err(decision.explain())
        }
    }

    pub(crate) fn request(&self, action: &str, resource: &str) -> Request {
        Request::new(action, resource).with_principal(self.name.clone())
    }

    /// The handler wrote this call's audit record in its own transaction;
    /// the middleware must not write another.
    pub fn mark_recorded(&self) {
        if let Ok(mut trail) = self.trail.lock() {
            trail.recorded = true;
        }
    }

    /// Record that a check done outside [`authorize`] passed.
    pub(crate) fn allowed_action(&self, action: &str, resource: &str) {
        self.allowed(action, resource);
    }

    fn allowed(&self, action: &str, resource: &str) {
        if let Ok(mut trail) = self.trail.lock() {
            trail
                .allowed
                .push((action.to_string(), resource.to_string()));
        }
    }
}

/// The request of `action` on `resource`, without condition keys.
/// [`check_in`] for `action` on `resource` without condition context: the
/// gate services call for everything that is not a node.
pub(crate) async fn check_action(
    audit: &crate::audit::AuditLog,
    principal: &Principal,
    action: &str,
    resource: &str,
) -> crate::service::ServiceResult<()> {
    check_in(audit, principal, &principal.request(action, resource)).await
}

/// The condition context of a node: its tags.
pub fn node_request(principal: &Principal, action: &str, node: &Node) -> Request {
    principal
        .request(action, &format!("node/{}", node.name))
        .with_node_tags(node.tags.iter().map(|(k, v)| (k.clone(), v.clone())))
}

/// Allow or refuse `principal` doing `action` on `resource`.
pub async fn authorize(
    state: &AppState,
    principal: &Principal,
    action: &str,
    resource: &str,
) -> ApiResult<()> {
    Ok(check_action(&state.audit, principal, action, resource).await?)
}

/// The one gate, for services that hold the audit trail: allow (and note it
/// for the call's audit record) or refuse (audited now) `request`.
pub(crate) async fn check_in(
    audit: &crate::audit::AuditLog,
    principal: &Principal,
    request: &Request,
) -> crate::service::ServiceResult<()> {
    match principal.decide(request) {
        Ok(()) => {
            principal.allowed(&request.action, &request.resource);
            Ok(())
        }
        Err(reason) => {
            record_denial_in(
                audit,
                principal,
                &request.action,
                &request.resource,
                &reason,
            )
            .await;
            Err(crate::service::ServiceError::forbidden(format!(
                "{} may not {} on {}: {reason}",
                principal.name, request.action, request.resource
            )))
        }
    }
}

/// Write the audit record of a refusal.
pub(crate) async fn record_denial_in(
    audit: &crate::audit::AuditLog,
    principal: &Principal,
    action: &str,
    resource: &str,
    reason: &str,
) {
    record_denial_detailed(audit, principal, action, resource, reason, Value::Null).await
}

/// Write the audit record of a refusal with more detail (`extra`'s fields,
/// such as the id of the session refused, join the reason's).
pub(crate) async fn record_denial_detailed(
    audit: &crate::audit::AuditLog,
    principal: &Principal,
    action: &str,
    resource: &str,
    reason: &str,
    extra: Value,
) {
    if let Ok(mut trail) = principal.trail.lock() {
        trail.denied = true;
    }
    let mut detail = serde_json::json!({"reason": reason, "token": principal.token_id});
    if let Some(acting_as) = &principal.acting_as {
        detail = serde_json::json!({"reason": reason, "acting_as": acting_as});
    }
    if let (Value::Object(extra), Value::Object(detail)) = (extra, &mut detail) {
        detail.extend(extra);
    }
    let entry = AuditEntry {
        actor: principal.name.clone(),
        action: action.to_string(),
        resource: resource.to_string(),
        outcome: "denied".into(),
        detail,
    };
    if let Err(e) = audit.record(entry).await {
        tracing::error!(error = %e, "a refusal could not be audited");
    }
}

/// Token scopes as a policy allowing those actions on every resource.
/// Fails, with the library's message, on a malformed action pattern.
pub fn scope_policy(scopes: &[String]) -> Result<NamedPolicy, operon_policy::PolicyError> {
    let document = serde_json::json!({
        "Statement": [{"Effect": "Allow", "Action": scopes, "Resource": "*"}]
    });
    operon_policy::Policy::from_value(&document).map(|p| NamedPolicy::new("token scopes", p))
}

/// The request context of an authenticated handler: the server's state and
/// the caller, whose audit trail (`Principal::note`, the checks passed) the
/// bearer middleware writes when the call ends.
pub struct Ctx {
    pub state: std::sync::Arc<AppState>,
    pub principal: Principal,
}

impl axum::extract::FromRequestParts<std::sync::Arc<AppState>> for Ctx {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &std::sync::Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        // Set by the bearer middleware on every protected route.
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| crate::error::ApiError::unauthorized("not authenticated"))?;
        Ok(Ctx {
            state: state.clone(),
            principal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(policy: Value, scopes: Option<Vec<String>>) -> Principal {
        let policy = operon_policy::Policy::from_value(&policy).unwrap();
        Principal::new(
            "alice".into(),
            Some("u-1".into()),
            "tok-1".into(),
            scopes,
            vec![NamedPolicy::new("p", policy)],
        )
    }

    #[test]
    fn scopes_narrow_what_policies_allow() {
        let p = principal(
            serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
            Some(vec!["nodes:*".into()]),
        );
        assert!(p.decide(&p.request("nodes:List", "node/*")).is_ok());
        let refused = p.decide(&p.request("commands:Run", "node/a")).unwrap_err();
        assert!(refused.contains("scopes"), "{refused}");
    }

    #[test]
    fn node_tags_reach_conditions() {
        let p = principal(
            serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "commands:Run",
                "Resource": "node/*",
                "Condition": {"StringEquals": {"operon:NodeTag/env": "staging"}}}]}),
            None,
        );
        let node = |env: &str| Node {
            id: "n-1".into(),
            name: "web-1".into(),
            tags: [("env".to_string(), env.to_string())].into(),
            inventory: Default::default(),
            enrolled_at: 0,
            last_seen: None,
            revoked_at: None,
        };
        assert!(
            p.decide(&node_request(&p, "commands:Run", &node("staging")))
                .is_ok()
        );
        assert!(
            p.decide(&node_request(&p, "commands:Run", &node("prod")))
                .is_err()
        );
    }

    #[test]
    fn the_admin_token_is_allowed_everything() {
        let admin = Principal::new("admin".into(), None, "tok-0".into(), None, vec![]);
        assert!(
            admin
                .decide(&admin.request("users:Create", "user/x"))
                .is_ok()
        );
    }
}
