//! Sealing, opening and rewrapping envelopes (format in the crate docs).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::CryptoRng;
use zeroize::Zeroizing;

use crate::SealError;
use crate::keyring::{KEY_LEN, KeyId, Keyring};

/// The four bytes every envelope starts with: `OPS` and the format version `1`.
pub const MAGIC: &[u8; 4] = b"OPS1";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const WRAPPED_KEY_LEN: usize = KEY_LEN + TAG_LEN;
/// The longest key id an envelope may carry (`k999999`).
const MAX_KEY_ID_LEN: usize = 7;

/// An envelope split into its fields; borrowed from the envelope bytes.
struct Envelope<'a> {
    /// Magic, key id length and key id: the wrap AAD.
    header: &'a [u8],
    key_id: &'a str,
    wrap_nonce: &'a [u8],
    wrapped_key: &'a [u8],
    /// The value nonce followed by the value ciphertext and tag; rewrap copies it as is.
    sealed_value: &'a [u8],
}

/// Seals `plaintext` under a fresh data key wrapped by the ring's active key.
///
/// `aad` is authenticated but not stored: [`open`] needs the same bytes (for
/// Parameter Store, the parameter name and version), so an envelope copied to
/// another parameter or version does not open there.
pub fn seal(
    ring: &Keyring,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, SealError> {
    let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill_bytes(&mut *data_key);
    let value_nonce = random_nonce(rng);
    let value_ciphertext = encrypt(&data_key, &value_nonce, &value_aad(aad), plaintext)
        .ok_or(SealError::PlaintextTooLarge(plaintext.len()))?;

    let (key_id, kek) = ring.active_secret();
    let mut envelope = header(key_id);
    append_wrapped_key(&mut envelope, kek, &data_key, rng);
    envelope.extend_from_slice(&value_nonce);
    envelope.extend_from_slice(&value_ciphertext);
    Ok(envelope)
}

/// Opens an envelope sealed by [`seal`] with the same `aad`; the plaintext is
/// wiped when dropped.
pub fn open(ring: &Keyring, aad: &[u8], envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let parsed = parse(envelope)?;
    let data_key = unwrap_key(ring, &parsed)?;
    let (value_nonce, value_ciphertext) = parsed.sealed_value.split_at(NONCE_LEN);
    decrypt(&data_key, value_nonce, &value_aad(aad), value_ciphertext)
        .ok_or(SealError::ValueRejected)
}

/// The id of the key that wraps the envelope's data key. Checks the
/// envelope's shape only, not its authenticity.
pub fn key_id(envelope: &[u8]) -> Result<&str, SealError> {
    parse(envelope).map(|parsed| parsed.key_id)
}

/// Re-wraps the envelope's data key under the ring's active key, leaving the
/// value ciphertext byte for byte as it was; `None` when the envelope is
/// already under the active key.
///
/// The wrapped data key is authenticated; the value is not (that needs the
/// caller's AAD), so a damaged value is still refused, later, by [`open`].
pub fn rewrap(
    ring: &Keyring,
    envelope: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Option<Vec<u8>>, SealError> {
    let parsed = parse(envelope)?;
    let data_key = unwrap_key(ring, &parsed)?;
    let (active_id, active_kek) = ring.active_secret();
    if parsed.key_id == active_id.as_str() {
        return Ok(None);
    }
    let mut rewrapped = header(active_id);
    append_wrapped_key(&mut rewrapped, active_kek, &data_key, rng);
    rewrapped.extend_from_slice(parsed.sealed_value);
    Ok(Some(rewrapped))
}

fn parse(envelope: &[u8]) -> Result<Envelope<'_>, SealError> {
    let (magic, rest) = take(envelope, "magic", MAGIC.len())?;
    check_magic(magic)?;
    let (id_len, rest) = take(rest, "key id length", 1)?;
    let id_len = usize::from(id_len[0]);
    let (id_bytes, rest) = take(rest, "key id", id_len)?;
    let key_id = parse_key_id(id_bytes)?;
    let (wrap_nonce, rest) = take(rest, "wrapped data key nonce", NONCE_LEN)?;
    let (wrapped_key, sealed_value) = take(rest, "wrapped data key", WRAPPED_KEY_LEN)?;
    take(sealed_value, "value nonce and tag", NONCE_LEN + TAG_LEN)?;
    Ok(Envelope {
        header: &envelope[..MAGIC.len() + 1 + id_len],
        key_id,
        wrap_nonce,
        wrapped_key,
        sealed_value,
    })
}

/// Splits `len` bytes off the front of `bytes`, or says which field did not fit.
fn take<'a>(
    bytes: &'a [u8],
    field: &'static str,
    len: usize,
) -> Result<(&'a [u8], &'a [u8]), SealError> {
    bytes.split_at_checked(len).ok_or(SealError::Truncated {
        field,
        needed: len,
        available: bytes.len(),
    })
}

fn check_magic(magic: &[u8]) -> Result<(), SealError> {
    match magic {
        m if m == MAGIC => Ok(()),
        [b'O', b'P', b'S', version] => Err(SealError::UnsupportedEnvelopeVersion(*version)),
        _ => Err(SealError::NotAnEnvelope),
    }
}

fn parse_key_id(bytes: &[u8]) -> Result<&str, SealError> {
    let malformed = SealError::MalformedKeyId { len: bytes.len() };
    if bytes.len() > MAX_KEY_ID_LEN {
        return Err(malformed);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if KeyId::parse(text).is_some() => Ok(text),
        _ => Err(malformed),
    }
}

fn header(key_id: &KeyId) -> Vec<u8> {
    let id = key_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(MAGIC);
    // Key ids are at most MAX_KEY_ID_LEN bytes, well under 256.
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out
}

/// Appends the wrap nonce and the data key encrypted under `kek`, with the
/// header written so far (magic, key id) as AAD: a wrapped key cannot be
/// relabelled as another key's or another version's.
fn append_wrapped_key(
    envelope: &mut Vec<u8>,
    kek: &[u8; KEY_LEN],
    data_key: &[u8; KEY_LEN],
    rng: &mut impl CryptoRng,
) {
    let nonce = random_nonce(rng);
    // A 32-byte message is far below AES-GCM's length limit, so this never fails.
    let wrapped = encrypt(kek, &nonce, envelope, data_key).unwrap_or_default();
    envelope.extend_from_slice(&nonce);
    envelope.extend_from_slice(&wrapped);
}

fn unwrap_key(
    ring: &Keyring,
    parsed: &Envelope<'_>,
) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
    let kek = ring
        .secret(parsed.key_id)
        .ok_or_else(|| SealError::UnknownKey(parsed.key_id.to_owned()))?;
    let rejected = || SealError::WrappedKeyRejected(parsed.key_id.to_owned());
    let plain =
        decrypt(kek, parsed.wrap_nonce, parsed.header, parsed.wrapped_key).ok_or_else(rejected)?;
    let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
    if plain.len() != KEY_LEN {
        return Err(rejected());
    }
    data_key.copy_from_slice(&plain);
    Ok(data_key)
}

/// The value's AAD: the format magic, then the caller's bytes. The prefix is
/// fixed-length, so the concatenation is unambiguous.
fn value_aad(aad: &[u8]) -> Vec<u8> {
    [MAGIC.as_slice(), aad].concat()
}

fn random_nonce(rng: &mut impl CryptoRng) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    nonce
}

fn encrypt(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    msg: &[u8],
) -> Option<Vec<u8>> {
    // From a slice rather than by value, so no unwiped copy of the key lands on the stack.
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    cipher
        .encrypt(&Nonce::from(*nonce), Payload { msg, aad })
        .ok()
}

/// `None` when `nonce` is not NONCE_LEN bytes or the tag does not verify.
fn decrypt(
    key: &[u8; KEY_LEN],
    nonce: &[u8],
    aad: &[u8],
    msg: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg, aad })
        .ok()
        .map(Zeroizing::new)
}
