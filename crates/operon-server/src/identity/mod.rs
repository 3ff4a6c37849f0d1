//! Identity: users, their API tokens, policies, roles, the policy
//! simulator, login, admin-token rotation and the audit trail's API.
//!
//! - [`service`]: [`IdentityService`], the only code that changes users,
//!   tokens, policies and roles, with the pure name rules
//!   ([`service::valid_name`], [`service::reserved_word`]);
//! - [`http`]: the thin `/v1/whoami`, `/v1/login`, `/v1/users`,
//!   `/v1/tokens`, `/v1/admin-token/rotate`, `/v1/policies`, `/v1/roles` and
//!   `/v1/audit` edge.
//!
//! Invariants:
//!
//! - Token secrets are returned once, at creation (or rotation), and stored
//!   only as hashes. The admin token belongs to no user; it is rotated (the
//!   file first, then the database), never revoked, and only it may rotate
//!   itself.
//! - Users, roles and policies cannot take a name the audit trail uses for
//!   the server's own actors (`admin`, `rule-...`, whatever the case).
//! - A user is written with its roles in one transaction; granted roles and
//!   attached policies must exist; a policy document must parse before it
//!   is stored; a policy attached to a role cannot be deleted.
//! - Every operation is authorized before it changes or reveals anything:
//!   by the route layer when the path names the resource, otherwise by the
//!   service through the one gate (`crate::access::check_in`), which audits
//!   refusals.

pub(crate) mod http;
pub(crate) mod service;

pub(crate) use http::routes;
pub(crate) use service::IdentityService;

use crate::AppState;

impl AppState {
    /// The identity service over this server's store and audit trail.
    pub(crate) fn identity(&self) -> IdentityService<'_> {
        IdentityService {
            store: &self.store,
            audit: &self.audit,
            coordination: &self.coordination,
            data_dir: &self.config.data_dir,
        }
    }
}

#[cfg(test)]
mod tests;
