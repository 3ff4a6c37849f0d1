//! The identity service: the only code that changes users, API tokens,
//! policies and roles, and the one reader of the audit trail for the API.
//!
//! Operations whose resource comes from the body or a query (creating a
//! user, a token, a policy or a role, listing and revoking tokens, the
//! simulator, rotating the admin token) authorize the principal here through
//! the one gate ([`check_in`]); the others are authorized by the route layer
//! from the path (`users:Disable` on `user/{name}`, see `crate::catalogue`)
//! and take the principal only for the notes of the call's audit record.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use operon_policy::{Decision, NamedPolicy, Policy, Request, StatementRef};
use operon_store::{
    ApiToken, AuditFilter, AuditRecord, PolicyRecord, Role, Store, StoreError, User,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::access::{Principal, check_action, record_denial_in, scope_policy};
use crate::audit::{AuditLog, Verification};
use crate::coordination::{Coordination, Topic};
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::{auth, now_millis};

// ----- Names (pure) --------------------------------------------------------------

/// A name the API accepts for a user, token, role or policy: 1 to 64 of
/// letters, digits, `_`, `-`, `.`, `@`.
pub fn valid_name(kind: &str, name: &str) -> ServiceResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "InvalidName",
            format!("invalid {kind} name {name:?}: 1 to 64 of letters, digits, '_', '-', '.', '@'"),
        ))
    }
}

/// Actor names the server uses itself: the admin token, unauthenticated
/// callers, agent enrollment, and two kept for later (`system`, `root`).
pub const RESERVED_NAMES: &[&str] = &["admin", "anonymous", "enrollment", "system", "root"];

/// Kinds of actor the audit trail names `KIND/NAME` (`rule/critical`,
/// `execution/x-1`, `webhook/prom`, a run-as `role/NAME`, a parameter
/// `sync/NAME`), with those planned (`schedule`, `association`, `window`,
/// `alarm`).
pub const ACTOR_KINDS: &[&str] = &[
    "rule",
    "sync",
    "execution",
    "schedule",
    "association",
    "window",
    "alarm",
    "monitor",
    "role",
    "webhook",
];

/// The reserved word a user, role or policy name would be confused with, if
/// any. Names cannot hold `/` or `:`, so `rule/x` is impossible already; what
/// is refused is the bare word of a server actor and, for the actor kinds,
/// the word followed by a separator (`rule-critical`, `Execution.x`), which
/// reads like the actor in the trail. Case does not matter.
pub fn reserved_word(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if let Some(word) = RESERVED_NAMES.iter().find(|w| lower == **w) {
        return Some(word);
    }
    ACTOR_KINDS.iter().copied().find(|kind| {
        lower
            .strip_prefix(kind)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_', '.', '@']))
    })
}

/// [`valid_name`] for names that appear as actors or grants: users, roles
/// and policies must not be mistaken for the server's own actors.
pub fn valid_identity_name(kind: &str, name: &str) -> ServiceResult<()> {
    valid_name(kind, name)?;
    match reserved_word(name) {
        None => Ok(()),
        Some(word) => Err(ServiceError::invalid(
            "ReservedName",
            format!(
                "invalid {kind} name {name:?}: {word:?} is reserved (the server's own actors are {}; \
                 names of the actor kinds {} followed by '-', '_', '.' or '@' are refused too, \
                 whatever the case)",
                RESERVED_NAMES.join(", "),
                ACTOR_KINDS.join(", ")
            ),
        )),
    }
}

/// The longest a token may live: ten years. Longer is a mistake, and would
/// overflow the clock.
pub const MAX_TOKEN_SECS: i64 = 10 * 365 * 24 * 3600;

/// A token's status at `now`.
fn token_status(token: &ApiToken, now: i64) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

// ----- Inputs and outputs -----------------------------------------------------------

/// Who a caller is, as `whoami` and `login` show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Identity {
    pub name: String,
    pub user_id: Option<String>,
    pub token_id: String,
    /// The admin token.
    pub admin: bool,
    pub scopes: Option<Vec<String>>,
    /// The names of the caller's policies.
    pub policies: Vec<String>,
}

impl Identity {
    pub fn of(principal: &Principal) -> Identity {
        Identity {
            name: principal.name.clone(),
            user_id: principal.user_id.clone(),
            token_id: principal.token_id.clone(),
            admin: principal.root,
            scopes: principal.scopes.clone(),
            policies: principal.policies.iter().map(|p| p.name.clone()).collect(),
        }
    }
}

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    /// `user` (the default) or `service`.
    pub kind: Option<String>,
    /// Roles granted with the user; each must exist.
    pub roles: Vec<String>,
}

/// A user with its roles and status (`active` or `disabled`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserView {
    #[serde(flatten)]
    pub user: User,
    pub roles: Vec<String>,
    pub status: &'static str,
}

/// Roles to grant to and revoke from a user.
#[derive(Debug, Clone, Default)]
pub struct RoleChange {
    pub grant: Vec<String>,
    pub revoke: Vec<String>,
}

/// An API token to create.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// The owner; defaults to the caller.
    pub user: Option<String>,
    pub name: String,
    /// Action patterns the token is limited to (`nodes:*`); none means all.
    pub scopes: Option<Vec<String>>,
    pub expires_in_secs: Option<i64>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// The owner's name; `(admin)` for the admin token.
    pub user: String,
    pub scopes: Option<Vec<String>>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
}

impl TokenView {
    fn new(token: &ApiToken, owner: &str) -> TokenView {
        TokenView {
            id: token.id.clone(),
            name: token.name.clone(),
            user: owner.to_string(),
            scopes: token.scopes.clone(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
            status: token_status(token, now_millis()),
        }
    }
}

/// A created token with its secret, shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: TokenView,
    pub token: String,
}

/// The new admin token, shown this once, and the file it was written to.
#[derive(Debug, Clone, Serialize)]
pub struct RotatedAdminToken {
    pub id: String,
    pub token: String,
    pub file: String,
}

/// A policy or role that was deleted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Deleted {
    pub name: String,
    pub deleted: bool,
}

/// A role to create.
#[derive(Debug, Clone, Default)]
pub struct NewRole {
    pub name: String,
    pub description: String,
    /// Policies attached with the role; each must exist.
    pub policies: Vec<String>,
}

/// Policies to attach to and detach from a role.
#[derive(Debug, Clone, Default)]
pub struct PolicyChange {
    pub attach: Vec<String>,
    pub detach: Vec<String>,
}

/// A request for the policy simulator.
#[derive(Debug, Clone, Default)]
pub struct Simulate {
    pub user: String,
    pub action: String,
    pub resource: String,
    /// Extra condition keys, e.g. `{"operon:NodeTag/env": "staging"}`: a
    /// string or a list of strings each.
    pub context: Map<String, Value>,
    /// Use this node's tags as `operon:NodeTag/...` keys (and `node/NAME` as
    /// the resource when `resource` is empty).
    pub node: Option<String>,
}

/// How a user's policies decide a request, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Simulation {
    pub user: String,
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
    /// `allowed`, `explicit_deny` or `implicit_deny`.
    pub decision: &'static str,
    pub statement: Option<StatementRef>,
    pub explanation: String,
    pub policies: Vec<String>,
}

// ----- The service --------------------------------------------------------------------

/// The identity service, over the parts of the server it uses.
pub struct IdentityService<'a> {
    pub(crate) store: &'a Store,
    pub(crate) audit: &'a AuditLog,
    /// Told of every user, role and policy change ([`Topic::Identity`]), so
    /// actors resolved before it are resolved again.
    pub(crate) coordination: &'a Coordination,
    /// Where the admin-token file is written on rotation.
    pub(crate) data_dir: &'a Path,
}

/// A store conflict named by the rule it breaks; other failures as usual.
fn conflict_as(code: &'static str) -> impl Fn(StoreError) -> ServiceError {
    move |e| match e {
        StoreError::Conflict(message) => ServiceError::conflict(code, message),
        other => other.into(),
    }
}

fn no_such_user(name: &str) -> ServiceError {
    ServiceError::not_found("NoSuchUser", format!("no user named {name:?}"))
}

fn no_such_role(name: &str) -> ServiceError {
    ServiceError::not_found("NoSuchRole", format!("no role named {name:?}"))
}

fn no_such_policy(name: &str) -> ServiceError {
    ServiceError::not_found("NoSuchPolicy", format!("no policy named {name:?}"))
}

impl IdentityService<'_> {
    /// `action` on `resource` through the one gate: allowed (noted for the
    /// call's audit record) or Forbidden (audited now).
    async fn check(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
    ) -> ServiceResult<()> {
        check_action(self.audit, principal, action, resource).await
    }

    /// `operon login`: the token was checked; the login is noted for the
    /// call's audit record.
    pub fn login(&self, principal: &Principal) -> Identity {
        principal.allowed_action("auth:Login", &format!("user/{}", principal.name));
        principal.note("event", "login");
        Identity::of(principal)
    }

    /// Tell the actor cache (through [`Topic::Identity`]) that users, roles
    /// or policies changed; called after each such write commits.
    fn identity_changed(&self) {
        self.coordination.notify(Topic::Identity);
    }

    // ----- Users

    /// Create a user with its roles, in one transaction.
    pub async fn create_user(
        &self,
        principal: &Principal,
        new: NewUser,
    ) -> ServiceResult<UserView> {
        self.check(principal, "users:Create", &format!("user/{}", new.name))
            .await?;
        valid_identity_name("user", &new.name)?;
        let kind = new.kind.unwrap_or_else(|| "user".into());
        if kind != "user" && kind != "service" {
            return Err(ServiceError::invalid(
                "InvalidUserKind",
                format!("kind must be \"user\" or \"service\", got {kind:?}"),
            ));
        }
        for role in &new.roles {
            self.require_role(role).await?;
        }
        let user = User {
            id: auth::new_id("u-"),
            name: new.name,
            kind,
            created_at: now_millis(),
            disabled_at: None,
        };
        // The user and its roles are written together: no user without its roles.
        self.store
            .insert_user(&user, &new.roles)
            .await
            .map_err(conflict_as("UserExists"))?;
        self.identity_changed();
        principal.note("roles", new.roles);
        self.user_view(user).await
    }

    async fn user_view(&self, user: User) -> ServiceResult<UserView> {
        let roles = self.store.user_roles(&user.id).await?;
        let status = if user.disabled_at.is_some() {
            "disabled"
        } else {
            "active"
        };
        Ok(UserView {
            user,
            roles,
            status,
        })
    }

    async fn find_user(&self, name: &str) -> ServiceResult<User> {
        self.store
            .user_by_name(name)
            .await?
            .ok_or_else(|| no_such_user(name))
    }

    pub async fn list_users(&self) -> ServiceResult<Vec<UserView>> {
        let mut out = Vec::new();
        for user in self.store.list_users().await? {
            out.push(self.user_view(user).await?);
        }
        Ok(out)
    }

    pub async fn user(&self, name: &str) -> ServiceResult<UserView> {
        let user = self.find_user(name).await?;
        self.user_view(user).await
    }

    /// Disable a user: its tokens stop working. Authorized by the route layer.
    pub async fn disable_user(&self, name: &str) -> ServiceResult<UserView> {
        let user = self.find_user(name).await?;
        self.store.disable_user(&user.id, now_millis()).await?;
        self.identity_changed();
        self.user(name).await
    }

    /// Grant and revoke roles; granted roles must exist. Authorized by the
    /// route layer; the change is noted for the call's audit record.
    pub async fn change_user_roles(
        &self,
        principal: &Principal,
        name: &str,
        change: RoleChange,
    ) -> ServiceResult<UserView> {
        let user = self.find_user(name).await?;
        for role in &change.grant {
            self.require_role(role).await?;
        }
        for role in &change.grant {
            self.store.set_user_role(&user.id, role, true).await?;
            self.identity_changed();
        }
        for role in &change.revoke {
            self.store.set_user_role(&user.id, role, false).await?;
            self.identity_changed();
        }
        principal.note("granted", change.grant);
        principal.note("revoked", change.revoke);
        self.user_view(user).await
    }

    // ----- Tokens

    /// Create an API token for a user (the caller by default). The secret is
    /// returned here once and stored only as a hash.
    pub async fn create_token(
        &self,
        principal: &Principal,
        new: NewToken,
    ) -> ServiceResult<CreatedToken> {
        let owner_name = new.user.clone().unwrap_or_else(|| principal.name.clone());
        self.check(principal, "tokens:Create", &format!("user/{owner_name}"))
            .await?;
        valid_name("token", &new.name)?;
        let owner = self.find_user(&owner_name).await.map_err(|e| {
            if principal.root && new.user.is_none() {
                ServiceError::invalid(
                    "AdminTokenHasNoUser",
                    "the admin token belongs to no user: pass a user to create a token for",
                )
            } else {
                e
            }
        })?;
        if owner.disabled_at.is_some() {
            return Err(ServiceError::conflict(
                "UserDisabled",
                format!("user {owner_name:?} is disabled"),
            ));
        }
        if let Some(scopes) = &new.scopes {
            if scopes.is_empty() {
                return Err(ServiceError::invalid(
                    "InvalidScopes",
                    "scopes: give at least one action pattern, or none for all",
                ));
            }
            scope_policy(scopes)
                .map_err(|e| ServiceError::invalid("InvalidScopes", format!("scopes: {e}")))?;
        }
        let expires_at = match new.expires_in_secs {
            Some(secs) if !(1..=MAX_TOKEN_SECS).contains(&secs) => {
                return Err(ServiceError::invalid(
                    "InvalidExpiry",
                    format!(
                        "expires_in_secs must be between 1 and {MAX_TOKEN_SECS} (ten years), got {secs}"
                    ),
                ));
            }
            Some(secs) => Some(now_millis() + secs * 1000),
            None => None,
        };
        let secret = auth::new_secret(auth::API_TOKEN_PREFIX);
        let token = ApiToken {
            id: auth::new_id("tok-"),
            name: new.name,
            token_hash: auth::hash_secret(&secret),
            created_at: now_millis(),
            expires_at,
            revoked_at: None,
            user_id: Some(owner.id),
            scopes: new.scopes,
        };
        self.store.insert_api_token(&token).await?;
        principal.note("token_id", token.id.clone());
        Ok(CreatedToken {
            view: TokenView::new(&token, &owner_name),
            token: secret,
        })
    }

    /// A user's tokens (the caller's by default); the admin token without a
    /// user lists every token, the admin token's own as `(admin)`.
    pub async fn list_tokens(
        &self,
        principal: &Principal,
        user: Option<String>,
    ) -> ServiceResult<Vec<TokenView>> {
        if principal.root && user.is_none() {
            let users: HashMap<String, String> = self
                .store
                .list_users()
                .await?
                .into_iter()
                .map(|u| (u.id, u.name))
                .collect();
            let tokens = self.store.list_api_tokens(None).await?;
            return Ok(tokens
                .iter()
                .map(|t| {
                    let owner = t.user_id.as_ref().and_then(|id| users.get(id));
                    TokenView::new(t, owner.map_or("(admin)", String::as_str))
                })
                .collect());
        }
        let owner = user.unwrap_or_else(|| principal.name.clone());
        self.check(principal, "tokens:List", &format!("user/{owner}"))
            .await?;
        let user = self.find_user(&owner).await?;
        let tokens = self.store.list_api_tokens(Some(&user.id)).await?;
        Ok(tokens.iter().map(|t| TokenView::new(t, &owner)).collect())
    }

    /// Revoke a user's token. The admin token is rotated, never revoked.
    pub async fn revoke_token(&self, principal: &Principal, id: &str) -> ServiceResult<TokenView> {
        let token = self.store.api_token(id).await?.ok_or_else(|| {
            ServiceError::not_found("NoSuchToken", format!("no token with id {id:?}"))
        })?;
        let owner = match &token.user_id {
            Some(user_id) => self.store.user(user_id).await?.map(|u| u.name),
            None => None,
        };
        let Some(owner) = owner else {
            return Err(ServiceError::invalid(
                "AdminTokenNotRevocable",
                "the admin token is not revoked but rotated: POST /v1/admin-token/rotate (operon tokens rotate-admin)",
            ));
        };
        self.check(principal, "tokens:Revoke", &format!("user/{owner}"))
            .await?;
        self.store.revoke_api_token(id, now_millis()).await?;
        let token = self.store.api_token(id).await?.unwrap_or(token);
        Ok(TokenView::new(&token, &owner))
    }

    /// Replace the admin token; only the admin token may do it. The new token
    /// is written to the data directory's admin-token file and returned once.
    pub async fn rotate_admin_token(
        &self,
        principal: &Principal,
    ) -> ServiceResult<RotatedAdminToken> {
        if !principal.root {
            let reason = "only the admin token can rotate the admin token";
            record_denial_in(
                self.audit,
                principal,
                "tokens:RotateAdmin",
                "token/admin",
                reason,
            )
            .await;
            return Err(ServiceError::forbidden(reason));
        }
        let secret = auth::new_secret(auth::API_TOKEN_PREFIX);
        let token = ApiToken {
            id: auth::new_id("tok-"),
            name: "admin".into(),
            token_hash: auth::hash_secret(&secret),
            created_at: now_millis(),
            expires_at: None,
            revoked_at: None,
            user_id: None,
            scopes: None,
        };
        let path = self.data_dir.join(crate::ADMIN_TOKEN_FILE);
        // The file first: if the database then fails, the old token still works
        // and the file can be rewritten; the other order could lock everyone out.
        crate::write_secret_file_atomic(&path, &secret).map_err(|e| {
            tracing::error!(error = %e, "cannot write the admin token file");
            ServiceError::new(
                ErrorKind::Internal,
                "AdminTokenFile",
                "cannot write the admin token file; see the server log",
            )
        })?;
        self.store.rotate_admin_token(&token, now_millis()).await?;
        principal.note("token_id", token.id.clone());
        principal.allowed_action("tokens:RotateAdmin", "token/admin");
        Ok(RotatedAdminToken {
            id: token.id,
            token: secret,
            file: path.display().to_string(),
        })
    }

    // ----- Policies

    /// Create or replace a policy; the document must parse (the error names
    /// the path of what is wrong).
    pub async fn put_policy(
        &self,
        principal: &Principal,
        name: &str,
        document: &Value,
    ) -> ServiceResult<PolicyRecord> {
        self.check(principal, "policies:Put", &format!("policy/{name}"))
            .await?;
        valid_identity_name("policy", name)?;
        Policy::from_value(document)
            .map_err(|e| ServiceError::invalid("InvalidPolicy", format!("policy {name}: {e}")))?;
        self.store.put_policy(name, document, now_millis()).await?;
        self.identity_changed();
        self.policy(name).await
    }

    pub async fn list_policies(&self) -> ServiceResult<Vec<PolicyRecord>> {
        Ok(self.store.list_policies().await?)
    }

    pub async fn policy(&self, name: &str) -> ServiceResult<PolicyRecord> {
        self.store
            .policy(name)
            .await?
            .ok_or_else(|| no_such_policy(name))
    }

    /// Delete a policy; one attached to a role is a conflict. Authorized by
    /// the route layer.
    pub async fn delete_policy(&self, name: &str) -> ServiceResult<Deleted> {
        if !self
            .store
            .delete_policy(name)
            .await
            .map_err(conflict_as("PolicyInUse"))?
        {
            return Err(no_such_policy(name));
        }
        self.identity_changed();
        Ok(Deleted {
            name: name.to_string(),
            deleted: true,
        })
    }

    /// Explain how a user's policies decide a request, naming the statement.
    pub async fn simulate(
        &self,
        principal: &Principal,
        ask: Simulate,
    ) -> ServiceResult<Simulation> {
        self.check(
            principal,
            "policies:Simulate",
            &format!("user/{}", ask.user),
        )
        .await?;
        let user = self.find_user(&ask.user).await?;
        let mut policies = Vec::new();
        for record in self.store.policies_for_user(&user.id).await? {
            let policy = Policy::from_value(&record.document).map_err(|e| {
                ServiceError::invalid(
                    "InvalidPolicy",
                    format!("stored policy {}: {e}", record.name),
                )
            })?;
            policies.push(NamedPolicy::new(record.name, policy));
        }
        let mut request = Request::new(ask.action, ask.resource).with_principal(user.name.clone());
        if let Some(key) = &ask.node {
            let node = self.store.node_by_id_or_name(key).await?.ok_or_else(|| {
                ServiceError::not_found("NoSuchNode", format!("no node with id or name {key:?}"))
            })?;
            if request.resource.is_empty() {
                request.resource = format!("node/{}", node.name);
            }
            request = request.with_node_tags(node.tags.clone());
        }
        for (key, value) in ask.context {
            let values = context_values(&key, value)?;
            request = request.with(key, values);
        }
        let decision = operon_policy::evaluate(&policies, &request);
        let disabled = user.disabled_at.is_some();
        Ok(Simulation {
            decision: if decision.is_allowed() && !disabled {
                "allowed"
            } else if matches!(decision, Decision::ExplicitDeny(_)) {
                "explicit_deny"
            } else {
                "implicit_deny"
            },
            statement: decision.statement().cloned(),
            explanation: if disabled {
                format!(
                    "user {} is disabled; policies would say: {}",
                    user.name,
                    decision.explain()
                )
            } else {
                decision.explain()
            },
            user: user.name,
            action: request.action,
            resource: request.resource,
            context: request.context,
            policies: policies.iter().map(|p| p.name.clone()).collect(),
        })
    }

    // ----- Roles

    async fn require_role(&self, name: &str) -> ServiceResult<()> {
        match self.store.role(name).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::invalid(
                "NoSuchRole",
                format!("no role named {name:?}"),
            )),
        }
    }

    async fn require_policy(&self, name: &str) -> ServiceResult<()> {
        match self.store.policy(name).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::invalid(
                "NoSuchPolicy",
                format!("no policy named {name:?}"),
            )),
        }
    }

    /// Create a role with its policies; each must exist.
    pub async fn create_role(&self, principal: &Principal, new: NewRole) -> ServiceResult<Role> {
        self.check(principal, "roles:Create", &format!("role/{}", new.name))
            .await?;
        valid_identity_name("role", &new.name)?;
        for policy in &new.policies {
            self.require_policy(policy).await?;
        }
        self.store
            .create_role(&new.name, &new.description, now_millis())
            .await
            .map_err(conflict_as("RoleExists"))?;
        self.identity_changed();
        for policy in &new.policies {
            self.store.set_role_policy(&new.name, policy, true).await?;
            self.identity_changed();
        }
        principal.note("policies", new.policies);
        self.role(&new.name).await
    }

    pub async fn list_roles(&self) -> ServiceResult<Vec<Role>> {
        Ok(self.store.list_roles().await?)
    }

    pub async fn role(&self, name: &str) -> ServiceResult<Role> {
        self.store
            .role(name)
            .await?
            .ok_or_else(|| no_such_role(name))
    }

    /// Delete a role. Authorized by the route layer.
    pub async fn delete_role(&self, name: &str) -> ServiceResult<Deleted> {
        let deleted = self.store.delete_role(name).await?;
        self.identity_changed();
        if !deleted {
            return Err(no_such_role(name));
        }
        Ok(Deleted {
            name: name.to_string(),
            deleted: true,
        })
    }

    /// Attach and detach policies; attached policies must exist. Authorized
    /// by the route layer; the change is noted for the call's audit record.
    pub async fn change_role_policies(
        &self,
        principal: &Principal,
        name: &str,
        change: PolicyChange,
    ) -> ServiceResult<Role> {
        self.require_role(name)
            .await
            .map_err(|_| no_such_role(name))?;
        for policy in &change.attach {
            self.require_policy(policy).await?;
        }
        for policy in &change.attach {
            self.store.set_role_policy(name, policy, true).await?;
            self.identity_changed();
        }
        for policy in &change.detach {
            self.store.set_role_policy(name, policy, false).await?;
            self.identity_changed();
        }
        principal.note("attached", change.attach);
        principal.note("detached", change.detach);
        self.role(name).await
    }

    // ----- The audit trail

    /// The most recent audit records matching `filter` (`limit` clamped to
    /// 1..=10,000).
    pub async fn list_audit(&self, mut filter: AuditFilter) -> ServiceResult<Vec<AuditRecord>> {
        filter.limit = filter.limit.clamp(1, 10_000);
        Ok(self.store.list_audit(&filter).await?)
    }

    /// Check the audit trail's hash chain and its head.
    pub async fn verify_audit(&self) -> ServiceResult<Verification> {
        Ok(self.audit.verify(self.store).await?)
    }
}

/// A simulator context value: a string or a list of strings.
fn context_values(key: &str, value: Value) -> ServiceResult<Vec<String>> {
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(ServiceError::invalid(
                    "InvalidContext",
                    format!("context.{key}: values must be strings, got {other}"),
                )),
            })
            .collect(),
        other => Err(ServiceError::invalid(
            "InvalidContext",
            format!("context.{key}: expected a string or a list of strings, got {other}"),
        )),
    }
}
