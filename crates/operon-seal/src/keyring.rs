//! The key ring: key-encryption keys by id, one of them active, and its text format.

use std::fmt;

use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::SealError;

/// Length of every key-encryption key, in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// The key ring text format version this build writes and reads.
pub const KEYRING_FORMAT_VERSION: u64 = 1;

/// The highest key number; `k999999` is the last id a key ring may use.
const MAX_KEY_NUMBER: u32 = 999_999;

/// The name of a key-encryption key: `k` followed by a number from 1 to 999999
/// without leading zeros (`k1`, `k2`, …).
///
/// The number lets [`Keyring::rotate`] pick the next id without ever reusing one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Parses `text` as a key id, or `None` when it is not of the form `k<N>`.
    pub fn parse(text: &str) -> Option<KeyId> {
        Self::number_of(text).map(|_| KeyId(text.to_owned()))
    }

    /// The id as text, e.g. `"k2"`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_number(number: u32) -> KeyId {
        KeyId(format!("k{number}"))
    }

    fn number(&self) -> u32 {
        // Every KeyId was validated on construction; 0 is never a valid number.
        Self::number_of(&self.0).unwrap_or(0)
    }

    fn number_of(text: &str) -> Option<u32> {
        let digits = text.strip_prefix('k')?;
        let canonical = !digits.is_empty()
            && digits.len() <= 6
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !canonical {
            return None;
        }
        digits
            .parse()
            .ok()
            .filter(|n| (1..=MAX_KEY_NUMBER).contains(n))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One key-encryption key; the bytes are wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
struct KeyEntry {
    id: KeyId,
    created_unix: i64,
    secret: Zeroizing<[u8; KEY_LEN]>,
}

/// What [`Keyring::ids`] tells about one key: everything but its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo<'a> {
    /// The key's id.
    pub id: &'a KeyId,
    /// When the key was generated, in Unix seconds.
    pub created_unix: i64,
    /// Whether new envelopes are sealed under this key.
    pub active: bool,
    /// 16 hex digits of SHA-256 over a label and the key: tells two copies of a
    /// key ring apart (same id, different bytes) without revealing the key.
    pub fingerprint: String,
}

/// Key-encryption keys by id, oldest first, one of them active.
///
/// Keys are never removed or reused: [`Keyring::rotate`] appends a key with
/// the next unused number and makes it active; older keys stay to open older
/// envelopes until they are [rewrapped](crate::rewrap).
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    /// Ordered by key number, so the last one has the highest number.
    keys: Vec<KeyEntry>,
    active: KeyId,
}

impl Keyring {
    /// A new key ring holding one fresh key, `k1`, which is active.
    pub fn generate(rng: &mut impl CryptoRng, now_unix: i64) -> Keyring {
        let id = KeyId::from_number(1);
        Keyring {
            keys: vec![fresh_key(rng, id.clone(), now_unix)],
            active: id,
        }
    }

    /// Adds a fresh key with the next unused id and makes it active; returns its id.
    ///
    /// Nothing is re-encrypted: envelopes sealed under older keys still open.
    pub fn rotate(&mut self, rng: &mut impl CryptoRng, now_unix: i64) -> Result<KeyId, SealError> {
        let highest = self.keys.last().map_or(0, |entry| entry.id.number());
        if highest >= MAX_KEY_NUMBER {
            return Err(SealError::KeyIdsExhausted(MAX_KEY_NUMBER));
        }
        let id = KeyId::from_number(highest + 1);
        self.keys.push(fresh_key(rng, id.clone(), now_unix));
        self.active = id.clone();
        Ok(id)
    }

    /// The id of the key new envelopes are sealed under.
    pub fn active(&self) -> &KeyId {
        &self.active
    }

    /// Every key, oldest first, without its bytes.
    pub fn ids(&self) -> impl Iterator<Item = KeyInfo<'_>> {
        self.keys.iter().map(|entry| KeyInfo {
            id: &entry.id,
            created_unix: entry.created_unix,
            active: entry.id == self.active,
            fingerprint: fingerprint(&entry.secret),
        })
    }

    /// The key ring in its text format (see the crate docs). The text holds
    /// the keys in hex, so it is wiped when dropped.
    pub fn to_text(&self) -> Zeroizing<String> {
        let hex_keys: Vec<Zeroizing<String>> = self
            .keys
            .iter()
            .map(|entry| Zeroizing::new(hex::encode(*entry.secret)))
            .collect();
        let file = KeyringFileOut {
            version: KEYRING_FORMAT_VERSION,
            active: self.active.as_str(),
            keys: self
                .keys
                .iter()
                .zip(&hex_keys)
                .map(|(entry, key)| KeyEntryOut {
                    id: entry.id.as_str(),
                    created_unix: entry.created_unix,
                    key: key.as_str(),
                })
                .collect(),
        };
        // Sized up front so the buffer does not reallocate and leave stray copies of key hex.
        let mut out = Vec::with_capacity(256 + 160 * self.keys.len());
        // Writing plain strings and integers to a Vec cannot fail; an empty text
        // would be refused by from_text rather than silently accepted.
        let _ = serde_json::to_writer_pretty(&mut out, &file);
        out.push(b'\n');
        Zeroizing::new(String::from_utf8(out).unwrap_or_default())
    }

    /// Reads a key ring from its text format, refusing anything that is not a
    /// valid key ring: unknown version, no keys, malformed or duplicate ids,
    /// keys that are not 32 bytes of hex, or an active id that is not present.
    pub fn from_text(text: &str) -> Result<Keyring, SealError> {
        let probe: VersionProbe = serde_json::from_str(text).map_err(syntax_error)?;
        if probe.version != KEYRING_FORMAT_VERSION {
            return Err(SealError::UnsupportedKeyringVersion(probe.version));
        }
        let file: KeyringFileIn = serde_json::from_str(text).map_err(syntax_error)?;
        if file.keys.is_empty() {
            return Err(SealError::EmptyKeyring);
        }
        let mut keys = file
            .keys
            .iter()
            .map(key_entry_from_text)
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by_key(|entry| entry.id.number());
        if let Some(pair) = keys.windows(2).find(|pair| pair[0].id == pair[1].id) {
            return Err(SealError::DuplicateKey(pair[0].id.to_string()));
        }
        let active = KeyId::parse(&file.active)
            .filter(|id| keys.iter().any(|entry| &entry.id == id))
            .ok_or_else(|| SealError::MissingActive(file.active.clone()))?;
        Ok(Keyring { keys, active })
    }

    /// The bytes of key `id`, if the ring holds it.
    pub(crate) fn secret(&self, id: &str) -> Option<&[u8; KEY_LEN]> {
        self.keys
            .iter()
            .find(|entry| entry.id.as_str() == id)
            .map(|entry| &*entry.secret)
    }

    /// The active key's id and bytes.
    pub(crate) fn active_secret(&self) -> (&KeyId, &[u8; KEY_LEN]) {
        let entry = self
            .keys
            .iter()
            .find(|entry| entry.id == self.active)
            // Construction guarantees the active key is present; the fallback keeps this total.
            .unwrap_or(&self.keys[0]);
        (&entry.id, &entry.secret)
    }
}

impl fmt::Debug for Keyring {
    /// Lists ids, creation times and fingerprints; never the key bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active.as_str())
            .field("keys", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

fn fresh_key(rng: &mut impl CryptoRng, id: KeyId, now_unix: i64) -> KeyEntry {
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill_bytes(&mut *secret);
    KeyEntry {
        id,
        created_unix: now_unix,
        secret,
    }
}

fn fingerprint(secret: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(b"operon-seal key fingerprint v1\0")
        .chain_update(secret)
        .finalize();
    hex::encode(&digest[..8])
}

fn key_entry_from_text(text: &KeyEntryIn) -> Result<KeyEntry, SealError> {
    let id = KeyId::parse(&text.id).ok_or_else(|| SealError::BadKeyId(text.id.clone()))?;
    let bytes =
        Zeroizing::new(hex::decode(&text.key).map_err(|_| SealError::BadKeyHex(text.id.clone()))?);
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(SealError::BadKeyLength {
            id: text.id.clone(),
            len: bytes.len(),
        });
    }
    secret.copy_from_slice(&bytes);
    Ok(KeyEntry {
        id,
        created_unix: text.created_unix,
        secret,
    })
}

/// serde_json's messages can quote the offending input (which may be key hex),
/// so only its category and position are kept.
fn syntax_error(error: serde_json::Error) -> SealError {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "read error",
        Category::Syntax => "not valid JSON",
        Category::Data => "a field is missing, unknown or of the wrong type",
        Category::Eof => "the text ends early",
    };
    SealError::KeyringSyntax {
        what,
        line: error.line(),
        column: error.column(),
    }
}

/// Read first, ignoring everything else, so a future format is refused by
/// version rather than by whichever of its fields this build does not know.
#[derive(Deserialize)]
struct VersionProbe {
    version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFileIn {
    #[allow(dead_code)] // checked by VersionProbe
    version: u64,
    active: String,
    keys: Vec<KeyEntryIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntryIn {
    id: String,
    created_unix: i64,
    key: String,
}

impl Drop for KeyEntryIn {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

#[derive(Serialize)]
struct KeyringFileOut<'a> {
    version: u64,
    active: &'a str,
    keys: Vec<KeyEntryOut<'a>>,
}

#[derive(Serialize)]
struct KeyEntryOut<'a> {
    id: &'a str,
    created_unix: i64,
    key: &'a str,
}
