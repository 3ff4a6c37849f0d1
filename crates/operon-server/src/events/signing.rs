//! HMAC-SHA256 signatures for webhooks (both directions) and sealing of the
//! webhook secrets the server must be able to read back.
//!
//! A signature covers `"{timestamp}.{body}"`, so a captured request cannot be
//! replayed later with a fresh timestamp. Secrets of inbound webhooks and of
//! webhook targets cannot be stored as hashes (verifying or producing an
//! HMAC needs the key itself), so they are sealed with a key kept in the data
//! directory (`events.key`, mode 0600) with AES-256-GCM (the `aes-gcm`
//! crate; a random 96-bit nonce per secret). HMAC comes from the `hmac`
//! crate. The database alone reveals no secret.

use rand::RngCore;
use sha2::Sha256;

/// Header carrying `sha256=<hex>` of the HMAC of `"{timestamp}.{body}"`.
pub const SIGNATURE_HEADER: &str = "x-operon-signature";
/// Header carrying the Unix time (seconds) the request was signed.
pub const TIMESTAMP_HEADER: &str = "x-operon-timestamp";
/// Header carrying the delivery id receivers deduplicate on.
pub const DELIVERY_ID_HEADER: &str = "x-operon-delivery-id";
/// How far a signed timestamp may be from the server's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// HMAC-SHA256 (RFC 2104), from the `hmac` crate.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        <hmac::Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The `x-operon-signature` value for a body signed at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &message))
    )
}

/// Check a signature header in constant time, and the timestamp's freshness.
pub fn verify(
    secret: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(), &'static str> {
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "x-operon-timestamp is not a Unix time in seconds")?;
    if (now_secs - timestamp).abs() > MAX_CLOCK_SKEW_SECS {
        return Err("x-operon-timestamp is more than 5 minutes from the server's clock");
    }
    let expected = signature(secret, timestamp, body);
    if constant_time_eq(expected.as_bytes(), signature_header.trim().as_bytes()) {
        Ok(())
    } else {
        Err("x-operon-signature does not match the body and timestamp")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key that seals secrets at rest.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl SealKey {
    /// Load the key file, creating it (0600) on first use.
    pub fn load_or_create(path: &std::path::Path) -> std::io::Result<SealKey> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(std::io::Error::other)?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| std::io::Error::other("events.key must hold 32 bytes in hex"))?;
                Ok(SealKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                crate::write_secret_file(path, &hex::encode(key))?;
                Ok(SealKey(key))
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> SealKey {
        SealKey(key)
    }

    fn cipher(&self) -> aes_gcm::Aes256Gcm {
        use aes_gcm::KeyInit;
        aes_gcm::Aes256Gcm::new(&self.0.into())
    }

    /// AES-256-GCM with a random 96-bit nonce: `hex(nonce) . hex(ciphertext
    /// and tag)`.
    pub fn seal(&self, secret: &str) -> String {
        use aes_gcm::aead::Aead;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(&nonce.into(), secret.as_bytes())
            .expect("AES-GCM seals any secret shorter than 64 GiB");
        format!("{}.{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// The secret, or None if the sealed text was not sealed by this key
    /// (or was changed).
    pub fn open(&self, sealed: &str) -> Option<String> {
        use aes_gcm::aead::Aead;
        let (nonce, cipher) = sealed.split_once('.')?;
        let nonce: [u8; 12] = hex::decode(nonce).ok()?.try_into().ok()?;
        let cipher = hex::decode(cipher).ok()?;
        let plain = self
            .cipher()
            .decrypt(&nonce.into(), cipher.as_slice())
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 and test case 6 (a key longer than the block).
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn verify_accepts_fresh_signatures_only() {
        let sig = signature("s3cret", 1000, b"{}");
        assert!(verify("s3cret", "1000", &sig, b"{}", 1100).is_ok());
        assert!(verify("other", "1000", &sig, b"{}", 1100).is_err());
        assert!(verify("s3cret", "1000", &sig, b"{ }", 1100).is_err());
        assert!(verify("s3cret", "1000", &sig, b"{}", 2000).is_err());
        assert!(verify("s3cret", "x", &sig, b"{}", 1000).is_err());
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = SealKey::from_bytes([7; 32]);
        let secret = "a secret longer than one keystream block of thirty-two bytes";
        let sealed = key.seal(secret);
        assert!(!sealed.contains("secret"));
        assert_eq!(key.open(&sealed).as_deref(), Some(secret));
        assert_eq!(SealKey::from_bytes([8; 32]).open(&sealed), None);
        let mut tampered = sealed.clone();
        tampered.replace_range(40..41, if &sealed[40..41] == "0" { "1" } else { "0" });
        assert_eq!(key.open(&tampered), None);
    }
}
