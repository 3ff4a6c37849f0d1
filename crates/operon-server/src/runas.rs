//! Run-as: what a rule target or a workflow acts as when it has an effect.
//!
//! Nothing that acts later or indirectly carries authority frozen when it
//! was configured. A rule target (`RoleArn`) or a workflow version (`role`)
//! names a role; without one it acts as its author (whoever put the rule or
//! made the version). At each effect — each command on each node, each child
//! start, each event put, each HTTP call — [`ActorCache::principal`] builds
//! a principal named after the actor (`rule/NAME`, `execution/ID`) holding
//! the role's (or the author's) policies *as they are now* (resolved again
//! after any identity change), and the effect goes
//! through the same gate ([`crate::access::check_in`], or the commands
//! service's per-node check) as a person's call. Refusals are audited under
//! the actor's name with what it acted as.
//!
//! Naming a role needs `roles:Pass` on `role/NAME` (AWS's `iam:PassRole`),
//! so nobody lends a rule or a runbook more than they may hand out.

use operon_policy::NamedPolicy;
use operon_store::{PolicyRecord, Store};

use crate::access::Principal;
use crate::service::{ServiceError, ServiceResult};

/// The name the admin token acts under. A rule or version whose author is
/// this name (and no user has it) acts with the admin's authority.
pub const ADMIN: &str = "admin";

/// What an actor's effects are authorized as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RunAs {
    /// A role's policies.
    Role(String),
    /// The author's current policies; `None` when the author is unknown
    /// (a rule from before authorship was recorded): everything is refused.
    Author(Option<String>),
}

impl RunAs {
    /// The role if one is named, else the author.
    pub fn new(role: Option<&str>, author: Option<&str>) -> RunAs {
        match role {
            Some(role) => RunAs::Role(role.to_string()),
            None => RunAs::Author(author.map(str::to_string)),
        }
    }

    /// How audit records name it: `role/ops`, `user/alice`, `admin`.
    pub fn label(&self) -> String {
        match self {
            RunAs::Role(role) => format!("role/{role}"),
            RunAs::Author(Some(name)) if name == ADMIN => ADMIN.to_string(),
            RunAs::Author(Some(name)) => format!("user/{name}"),
            RunAs::Author(None) => "nobody (unknown author)".to_string(),
        }
    }
}

/// A role reference as given by a user: `ops`, `role/ops` or an ARN ending
/// in `:role/ops`. Returns the role's name.
pub fn role_name(reference: &str) -> Result<String, String> {
    let name = reference
        .rsplit_once(":role/")
        .map(|(_, name)| name)
        .or_else(|| reference.strip_prefix("role/"))
        .unwrap_or(reference);
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c));
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!(
            "invalid role {reference:?}: a role name (1 to 64 of letters, digits, '_', '-', '.', '@'), role/NAME or an ARN ending in :role/NAME"
        ))
    }
}

/// The resource of an outbound HTTP call (`http:Invoke`): `host/NAME`, the
/// URL's host without port or credentials.
pub fn host_resource(url: &str) -> String {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    format!("host/{host}")
}

/// Whether `run_as` is the built-in admin, and the policies it holds now.
/// A missing role, a disabled or deleted author and an unknown author hold
/// no policies, so every effect is refused.
async fn resolve(store: &Store, run_as: &RunAs) -> ServiceResult<(bool, Vec<NamedPolicy>)> {
    Ok(match run_as {
        RunAs::Role(role) => (false, role_policies(store, role).await?),
        RunAs::Author(Some(name)) => match store.user_by_name(name).await? {
            Some(user) if user.disabled_at.is_none() => (
                false,
                parse_policies(store.policies_for_user(&user.id).await?),
            ),
            Some(_) => (false, Vec::new()),
            None if name == ADMIN => (true, Vec::new()),
            None => (false, Vec::new()),
        },
        RunAs::Author(None) => (false, Vec::new()),
    })
}

/// Actors resolved under the current identity generation
/// ([`Topic::Identity`](crate::coordination::Topic::Identity)): rule
/// deliveries and runbook tasks authorize every effect, and resolving an
/// actor is three or four store reads that queued behind the writers on a
/// busy server. Every change of a user, role or policy bumps the generation
/// after it commits, so an effect authorized after a change sees it: the
/// same moment a fresh read would. One entry per role or author.
#[derive(Default)]
pub struct ActorCache {
    resolved: std::sync::Mutex<std::collections::HashMap<RunAs, Resolved>>,
}

#[derive(Clone)]
struct Resolved {
    generation: u64,
    admin: bool,
    policies: Vec<NamedPolicy>,
}

impl ActorCache {
    /// The principal an actor's effect is authorized as, with the policies
    /// its role or author holds now: from the cache when nothing changed.
    /// `generation` must be read before the store would be (a change that
    /// commits during the read leaves an entry that is already stale).
    pub async fn principal(
        &self,
        store: &Store,
        generation: u64,
        actor: &str,
        run_as: &RunAs,
    ) -> ServiceResult<Principal> {
        let known = self.lock().get(run_as).cloned();
        let resolved = match known {
            Some(known) if known.generation == generation => known,
            _ => {
                let (admin, policies) = resolve(store, run_as).await?;
                let resolved = Resolved {
                    generation,
                    admin,
                    policies,
                };
                let mut entries = self.lock();
                // Keep the newer of two racing resolutions.
                if entries
                    .get(run_as)
                    .is_none_or(|e| e.generation <= generation)
                {
                    entries.insert(run_as.clone(), resolved.clone());
                }
                resolved
            }
        };
        Ok(Principal::actor(
            actor,
            run_as.label(),
            resolved.admin,
            resolved.policies,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<RunAs, Resolved>> {
        self.resolved.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn role_policies(store: &Store, role: &str) -> ServiceResult<Vec<NamedPolicy>> {
    let Some(record) = store.role(role).await? else {
        return Ok(Vec::new());
    };
    let mut records = Vec::new();
    for name in &record.policies {
        if let Some(policy) = store.policy(name).await? {
            records.push(policy);
        }
    }
    Ok(parse_policies(records))
}

/// Stored policies as evaluable ones. A policy that no longer parses is
/// left out (and logged): it can only have allowed less by being dropped
/// if it was an Allow, and a broken Deny is reported loudly.
pub fn parse_policies(records: Vec<PolicyRecord>) -> Vec<NamedPolicy> {
    records
        .into_iter()
        .filter_map(|p| match operon_policy::Policy::from_value(&p.document) {
            Ok(policy) => Some(NamedPolicy::new(p.name, policy)),
            Err(e) => {
                tracing::error!(policy = %p.name, error = %e, "a stored policy no longer parses; it is ignored");
                None
            }
        })
        .collect()
}

/// Check that `principal` may hand `role` to a rule or a workflow
/// (`roles:Pass` on `role/NAME`) and that the role exists.
pub async fn authorize_pass_role(
    store: &Store,
    audit: &crate::audit::AuditLog,
    principal: &Principal,
    role: &str,
) -> ServiceResult<()> {
    crate::access::check_action(audit, principal, "roles:Pass", &format!("role/{role}")).await?;
    if store.role(role).await?.is_none() {
        return Err(ServiceError::invalid(
            "NoSuchRole",
            format!("no role named {role:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allow(action: &str) -> serde_json::Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": action, "Resource": "*"}]})
    }

    async fn may(cache: &ActorCache, store: &Store, generation: u64, action: &str) -> bool {
        let run_as = RunAs::new(Some("ops"), Some("alice"));
        let actor = cache
            .principal(store, generation, "rule/r", &run_as)
            .await
            .unwrap();
        actor.decide(&actor.request(action, "workflow/w")).is_ok()
    }

    /// An actor is resolved once per identity generation: a change the
    /// generation does not announce is not seen, one it announces is.
    #[tokio::test]
    async fn actors_are_resolved_again_when_the_identity_generation_moves() {
        let dir = tempfile::tempdir().unwrap();
        let store = operon_store::SqliteStore::open_dyn(&dir.path().join("db"))
            .await
            .unwrap();
        store.create_role("ops", "", 1).await.unwrap();
        store
            .put_policy("start", &allow("workflows:Start"), 1)
            .await
            .unwrap();
        store.set_role_policy("ops", "start", true).await.unwrap();
        let cache = ActorCache::default();
        assert!(may(&cache, &store, 1, "workflows:Start").await);
        assert!(!may(&cache, &store, 1, "events:Put").await);

        store
            .put_policy("start", &allow("events:Put"), 2)
            .await
            .unwrap();
        assert!(
            may(&cache, &store, 1, "workflows:Start").await,
            "same generation: the resolved actor is reused"
        );
        assert!(!may(&cache, &store, 2, "workflows:Start").await);
        assert!(may(&cache, &store, 2, "events:Put").await);

        store.set_role_policy("ops", "start", false).await.unwrap();
        assert!(!may(&cache, &store, 3, "events:Put").await, "detached");
    }

    #[test]
    fn role_references_take_three_forms() {
        assert_eq!(role_name("ops").unwrap(), "ops");
        assert_eq!(role_name("role/ops").unwrap(), "ops");
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/ops-runner").unwrap(),
            "ops-runner"
        );
        for bad in ["", "role/", "a b", "x/y", &"r".repeat(65)] {
            assert!(role_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http_calls_are_named_by_host() {
        assert_eq!(
            host_resource("http://hooks.example:8080/x?y"),
            "host/hooks.example"
        );
        assert_eq!(host_resource("http://user:pw@10.0.0.1/"), "host/10.0.0.1");
        assert_eq!(host_resource("not a url"), "host/");
    }

    #[test]
    fn labels_name_the_authority() {
        assert_eq!(RunAs::new(Some("ops"), Some("alice")).label(), "role/ops");
        assert_eq!(RunAs::new(None, Some("alice")).label(), "user/alice");
        assert_eq!(RunAs::new(None, Some("admin")).label(), "admin");
        assert!(RunAs::new(None, None).label().starts_with("nobody"));
    }
}
