//! The key ring as a service: list, rotate, rewrap.
//!
//! A rotation only adds a key (nothing stored changes); a rewrap walks every
//! sealed SecureString version and access-key secret and re-wraps its data
//! key under the active key (the value ciphertext is untouched). Each
//! envelope is replaced only if it is still what was read, so a concurrent
//! put or rewrap is never overwritten.

use crate::AppState;
use crate::keyring::KeyView;
use crate::service::{ErrorKind, ServiceError, ServiceResult};

/// What a rewrap did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RewrapCount {
    pub rewrapped: u64,
    pub unchanged: u64,
}

pub struct KeyService<'a> {
    pub(crate) state: &'a AppState,
}

fn internal(what: &str, e: impl std::fmt::Display) -> ServiceError {
    tracing::error!(error = %e, "{what}");
    ServiceError::new(
        ErrorKind::Internal,
        "InternalServerError",
        format!("{what}; see the server log"),
    )
}

impl KeyService<'_> {
    pub fn list(&self) -> Vec<KeyView> {
        self.state.keys.list()
    }

    /// Add a key and make it active. The route layer authorized `keys:Rotate`.
    pub fn rotate(&self) -> ServiceResult<Vec<KeyView>> {
        let id = self
            .state
            .keys
            .rotate()
            .map_err(|e| internal("the key ring could not be rotated", e))?;
        tracing::info!(key = %id, "key ring rotated");
        Ok(self.list())
    }

    /// Re-wrap every stored envelope under the active key.
    pub async fn rewrap(&self) -> ServiceResult<RewrapCount> {
        let mut count = RewrapCount::default();
        let store = &self.state.store;
        let mut after: Option<(String, i64)> = None;
        loop {
            let page = store
                .sealed_parameter_versions(after.as_ref().map(|(n, v)| (n.as_str(), *v)), 200)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.0.clone(), last.1));
            for (name, version, sealed) in page {
                match self.rewrap_one(&sealed, &format!("{name} version {version}"))? {
                    Some(new) => {
                        if store
                            .reseal_parameter_version(&name, version, &sealed, &new)
                            .await?
                        {
                            count.rewrapped += 1;
                        }
                    }
                    None => count.unchanged += 1,
                }
            }
        }
        for key in store.list_access_keys(None).await? {
            match self.rewrap_one(&key.sealed_secret, &format!("access key {}", key.id))? {
                Some(new) => {
                    if store
                        .reseal_access_key(&key.id, &key.sealed_secret, &new)
                        .await?
                    {
                        count.rewrapped += 1;
                    }
                }
                None => count.unchanged += 1,
            }
        }
        Ok(count)
    }

    fn rewrap_one(&self, sealed: &[u8], what: &str) -> ServiceResult<Option<Vec<u8>>> {
        self.state
            .keys
            .rewrap(sealed)
            .map_err(|e| internal(&format!("{what} could not be rewrapped"), e))
    }
}
