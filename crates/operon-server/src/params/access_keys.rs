//! AWS-style access keys: what SigV4-signed calls (the AWS CLI and SDKs,
//! `aws.rs`) authenticate with. A key belongs to a user or service account
//! and acts with that user's policies. HMAC needs the secret itself, so it
//! is sealed under the key ring (bound to the key id), never hashed; the
//! secret is shown once, when created.

use operon_store::AccessKey;
use rand::Rng;

use crate::AppState;
use crate::access::{Principal, check_action};
use crate::service::{ErrorKind, ServiceError, ServiceResult};

/// A key as the API shows it; `secret` only when just created.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyView {
    pub id: String,
    pub user: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub secret: Option<String>,
}

impl std::fmt::Debug for AccessKeyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyView")
            .field("id", &self.id)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What an access key's secret is sealed bound to.
pub fn seal_aad(id: &str) -> Vec<u8> {
    format!("operon-access-key\0{id}").into_bytes()
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_text(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

pub struct AccessKeyService<'a> {
    pub(crate) state: &'a AppState,
}

fn unknown_user(name: &str) -> ServiceError {
    ServiceError::not_found("UnknownUser", format!("no user named {name:?}"))
}

impl AccessKeyService<'_> {
    async fn user_named(&self, name: &str) -> ServiceResult<operon_store::User> {
        self.state
            .store
            .user_by_name(name)
            .await?
            .ok_or_else(|| unknown_user(name))
    }

    /// Create a key for `user` (the caller when `None`; the admin token
    /// must name one). `accessKeys:Create` on `user/NAME`.
    pub async fn create(
        &self,
        principal: &Principal,
        user: Option<&str>,
    ) -> ServiceResult<AccessKeyView> {
        let name = match user {
            Some(name) => name.to_string(),
            None if principal.user_id.is_some() => principal.name.clone(),
            None => {
                return Err(ServiceError::invalid(
                    "UserRequired",
                    "the admin token has no user: name the user the key is for",
                ));
            }
        };
        check_action(
            &self.state.audit,
            principal,
            "accessKeys:Create",
            &format!("user/{name}"),
        )
        .await?;
        let user = self.user_named(&name).await?;
        if user.disabled_at.is_some() {
            return Err(ServiceError::conflict(
                "UserDisabled",
                format!("{name} is disabled"),
            ));
        }
        let id = format!("AKIA{}", random_text(ID_ALPHABET, 16));
        let secret = random_text(SECRET_ALPHABET, 40);
        let sealed = self
            .state
            .keys
            .seal(&seal_aad(&id), secret.as_bytes())
            .map_err(|e| {
                tracing::error!(error = %e, "sealing an access key failed");
                ServiceError::new(ErrorKind::Internal, "InternalError", "sealing failed")
            })?;
        let key = AccessKey {
            id: id.clone(),
            user_id: user.id.clone(),
            sealed_secret: sealed,
            created_at: crate::now_millis(),
            revoked_at: None,
            last_used_at: None,
        };
        self.state.store.insert_access_key(&key).await?;
        principal.note("access_key_id", id.clone());
        Ok(AccessKeyView {
            id,
            user: name,
            created_at: key.created_at,
            revoked_at: None,
            secret: Some(secret),
        })
    }

    /// Keys of one user (`accessKeys:List` on `user/NAME`), or of everyone
    /// (`accessKeys:List` on `user/*`).
    pub async fn list(
        &self,
        principal: &Principal,
        user: Option<&str>,
    ) -> ServiceResult<Vec<AccessKeyView>> {
        let resource = format!("user/{}", user.unwrap_or("*"));
        check_action(&self.state.audit, principal, "accessKeys:List", &resource).await?;
        let user_id = match user {
            Some(name) => Some(self.user_named(name).await?.id),
            None => None,
        };
        let users = self.state.store.list_users().await?;
        let name_of = |id: &str| {
            users
                .iter()
                .find(|u| u.id == id)
                .map_or_else(|| id.to_string(), |u| u.name.clone())
        };
        Ok(self
            .state
            .store
            .list_access_keys(user_id.as_deref())
            .await?
            .into_iter()
            .map(|k| AccessKeyView {
                user: name_of(&k.user_id),
                id: k.id,
                created_at: k.created_at,
                revoked_at: k.revoked_at,
                secret: None,
            })
            .collect())
    }

    /// Revoke a key (`accessKeys:Delete` on its user).
    pub async fn revoke(&self, principal: &Principal, id: &str) -> ServiceResult<AccessKeyView> {
        let missing =
            || ServiceError::not_found("UnknownAccessKey", format!("no access key {id:?}"));
        let Some(key) = self.state.store.access_key(id).await? else {
            // Whether a key exists is told only to who may revoke any.
            check_action(&self.state.audit, principal, "accessKeys:Delete", "user/*").await?;
            return Err(missing());
        };
        let user = self
            .state
            .store
            .user(&key.user_id)
            .await?
            .map_or_else(|| key.user_id.clone(), |u| u.name);
        check_action(
            &self.state.audit,
            principal,
            "accessKeys:Delete",
            &format!("user/{user}"),
        )
        .await?;
        self.state
            .store
            .revoke_access_key(id, crate::now_millis())
            .await?;
        let key = self.state.store.access_key(id).await?.ok_or_else(missing)?;
        Ok(AccessKeyView {
            id: key.id,
            user,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
            secret: None,
        })
    }

    /// The secret and the user of a live key, for SigV4 verification.
    /// `None` for an unknown or revoked key, or a disabled user.
    pub async fn secret_for(
        &self,
        id: &str,
    ) -> ServiceResult<Option<(zeroize::Zeroizing<String>, operon_store::User)>> {
        let Some(key) = self.state.store.access_key(id).await? else {
            return Ok(None);
        };
        if key.revoked_at.is_some() {
            return Ok(None);
        }
        let Some(user) = self.state.store.user(&key.user_id).await? else {
            return Ok(None);
        };
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        let clear = self
            .state
            .keys
            .unseal(&seal_aad(&key.id), &key.sealed_secret)
            .map_err(|e| {
                tracing::error!(key = %key.id, error = %e, "an access key secret does not open");
                ServiceError::new(
                    ErrorKind::Internal,
                    "InternalError",
                    "access key unreadable",
                )
            })?;
        let secret = String::from_utf8_lossy(&clear).into_owned();
        Ok(Some((zeroize::Zeroizing::new(secret), user)))
    }
}
