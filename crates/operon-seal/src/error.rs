//! The one error type of the crate.
//!
//! Messages name what was wrong and where (which key id, which byte count,
//! which line of the key ring text), and never include key bytes or plaintext.

/// Everything that can go wrong sealing, opening, rewrapping or reading a key ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The envelope ends before a field it must contain.
    #[error("envelope is truncated: {field} needs {needed} more bytes but only {available} remain")]
    Truncated {
        /// The envelope field that did not fit.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The envelope does not start with `OPS`: it is not a sealed value at all.
    #[error("not a sealed envelope: it does not start with the OPS magic")]
    NotAnEnvelope,
    /// The envelope starts with `OPS` but carries a version this build does not read.
    #[error("unsupported envelope version byte 0x{0:02x} (this build reads version '1')")]
    UnsupportedEnvelopeVersion(u8),
    /// The key id stored in the envelope is not of the form `k<N>`.
    #[error("envelope key id is malformed ({len} bytes, expected k<N>)")]
    MalformedKeyId {
        /// The stored key id length.
        len: usize,
    },
    /// The envelope names a key the key ring does not hold.
    #[error("envelope is sealed under key {0}, which the key ring does not hold")]
    UnknownKey(String),
    /// The wrapped data key did not authenticate under the named key.
    #[error(
        "the data key wrapped under {0} failed authentication: the envelope was altered or the key ring holds a different {0}"
    )]
    WrappedKeyRejected(String),
    /// The value did not authenticate under its data key.
    #[error(
        "the sealed value failed authentication: wrong associated data or the envelope was altered"
    )]
    ValueRejected,
    /// The plaintext is larger than AES-GCM can encrypt under one nonce (64 GiB).
    #[error("plaintext of {0} bytes is too large to seal")]
    PlaintextTooLarge(usize),
    /// Every key id up to the maximum has been used; rotation cannot pick a new one.
    #[error("key ids are exhausted: k{0} is the last id a key ring may use")]
    KeyIdsExhausted(u32),

    /// The key ring text is not JSON of the key ring shape.
    #[error("key ring text is invalid at line {line} column {column}: {what}")]
    KeyringSyntax {
        /// What kind of problem (syntax, unexpected type, end of input).
        what: &'static str,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// The key ring text names a format version this build does not read.
    #[error("unsupported key ring format version {0} (this build reads version 1)")]
    UnsupportedKeyringVersion(u64),
    /// The key ring text holds no keys.
    #[error("key ring has no keys")]
    EmptyKeyring,
    /// A key id in the key ring text is not of the form `k<N>`.
    #[error(
        "key ring key id {0:?} is not of the form k<N> with N from 1 to 999999 and no leading zeros"
    )]
    BadKeyId(String),
    /// The same key id appears twice in the key ring text.
    #[error("key ring lists key {0} more than once")]
    DuplicateKey(String),
    /// A key in the key ring text is not hexadecimal.
    #[error("key ring key {0} is not valid hexadecimal")]
    BadKeyHex(String),
    /// A key in the key ring text has the wrong length.
    #[error("key ring key {id} is {len} bytes; keys must be 32 bytes")]
    BadKeyLength {
        /// The key's id.
        id: String,
        /// Its decoded length in bytes.
        len: usize,
    },
    /// The active key named by the key ring text is not among its keys.
    #[error("key ring active key {0} is not among its keys")]
    MissingActive(String),
}
