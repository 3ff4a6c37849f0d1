//! The server's key ring: the key-encryption keys of envelope encryption
//! (`operon-seal`), kept in `keyring` in the data directory (mode 0600).
//!
//! Every secret the server must be able to read back (SecureString
//! parameters, access-key secrets) is sealed under a fresh data key wrapped
//! by the ring's active key. `rotate` adds a key and makes it active
//! without touching what is stored; `rewrap` (the params service walks the
//! store) re-wraps old data keys under the active one. The file is replaced
//! atomically, so a crash leaves the old ring or the new one, never half.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use operon_seal::{KeyId, Keyring, SealError};

/// The key ring file in the data directory.
pub const KEYRING_FILE: &str = "keyring";

/// What the API shows of a key: never its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    pub id: String,
    pub created_at: i64,
    pub active: bool,
    pub fingerprint: String,
}

/// The loaded key ring and where it lives.
pub struct Keys {
    path: PathBuf,
    ring: RwLock<Keyring>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("path", &self.path).finish()
    }
}

/// Why the key ring could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read or write the key ring {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key ring {path} is not valid: {source}")]
    Invalid { path: PathBuf, source: SealError },
}

fn now_secs() -> i64 {
    crate::now_millis() / 1000
}

impl Keys {
    /// Load the key ring of `data_dir`, creating one with a first key if
    /// there is none.
    pub fn open(data_dir: &Path) -> Result<Keys, KeyringError> {
        let path = data_dir.join(KEYRING_FILE);
        let io = |source| KeyringError::Io {
            path: path.clone(),
            source,
        };
        let ring = match std::fs::read_to_string(&path) {
            Ok(text) => Keyring::from_text(&text).map_err(|source| KeyringError::Invalid {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Keyring::generate(&mut rand::rng(), now_secs());
                crate::write_file_atomically(&path, ring.to_text().as_bytes(), 0o600)
                    .map_err(io)?;
                ring
            }
            Err(e) => return Err(io(e)),
        };
        Ok(Keys {
            path,
            ring: RwLock::new(ring),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Seal `plaintext` bound to `aad` under the active key.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        operon_seal::seal(&self.read(), aad, plaintext, &mut rand::rng())
    }

    /// Open an envelope sealed with the same `aad`.
    pub fn unseal(
        &self,
        aad: &[u8],
        envelope: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError> {
        operon_seal::open(&self.read(), aad, envelope)
    }

    /// The envelope re-wrapped under the active key, `None` if it is already.
    pub fn rewrap(&self, envelope: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        operon_seal::rewrap(&self.read(), envelope, &mut rand::rng())
    }

    /// Add a key, make it active and save the ring (atomically); answers
    /// the new key's id. Envelopes sealed before still open.
    pub fn rotate(&self) -> Result<KeyId, KeyringError> {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let mut next = ring.clone();
        let id = next
            .rotate(&mut rand::rng(), now_secs())
            .map_err(|source| KeyringError::Invalid {
                path: self.path.clone(),
                source,
            })?;
        crate::write_file_atomically(&self.path, next.to_text().as_bytes(), 0o600).map_err(
            |source| KeyringError::Io {
                path: self.path.clone(),
                source,
            },
        )?;
        *ring = next;
        Ok(id)
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Vec<KeyView> {
        self.read()
            .ids()
            .map(|k| KeyView {
                id: k.id.as_str().to_string(),
                created_at: k.created_unix * 1000,
                active: k.active,
                fingerprint: k.fingerprint,
            })
            .collect()
    }

    /// The active key's id.
    pub fn active(&self) -> String {
        self.read().active().as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_ring_is_created_0600_rotated_and_reloaded_opening_old_envelopes() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEYRING_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let old = keys.seal(b"aad", b"secret").unwrap();
        let first = keys.active();
        let second = keys.rotate().unwrap();
        assert_ne!(first, second.as_str());

        let reloaded = Keys::open(dir.path()).unwrap();
        assert_eq!(reloaded.active(), second.as_str());
        assert_eq!(reloaded.list().len(), 2);
        assert_eq!(&reloaded.unseal(b"aad", &old).unwrap()[..], b"secret");
        let moved = reloaded.rewrap(&old).unwrap().unwrap();
        assert_eq!(operon_seal::key_id(&moved).unwrap(), second.as_str());
        assert_eq!(&reloaded.unseal(b"aad", &moved).unwrap()[..], b"secret");
        assert!(reloaded.rewrap(&moved).unwrap().is_none());
        assert!(reloaded.unseal(b"other", &old).is_err());
    }

    #[test]
    fn a_damaged_ring_file_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEYRING_FILE), "not a ring").unwrap();
        let err = Keys::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("keyring"), "{err}");
    }
}
