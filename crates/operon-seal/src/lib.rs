/*!
Envelope encryption for secrets at rest, with a rotatable key ring.

Every value is sealed under its own fresh 256-bit *data key* with AES-256-GCM;
the data key is then *wrapped* (encrypted) by a *key-encryption key* from a
[`Keyring`]. The key ring lives in the server's data directory; this crate
only defines its text format and does the cryptography. It is pure: no
clock, files or operating-system randomness. Callers pass the time as Unix
seconds and a cryptographic random number generator.

* [`seal`] encrypts under the ring's active key; [`open`] decrypts.
* [`Keyring::rotate`] adds a new key and makes it active without
  re-encrypting anything: older envelopes keep opening with older keys.
* [`rewrap`] moves an envelope's data key to the active key, copying the
  value ciphertext unchanged, so old keys can eventually be retired.
* [`key_id`] tells which key an envelope is wrapped under.

The caller's *associated data* (AAD) is authenticated but not stored. Parameter
Store passes the parameter name and version, so a ciphertext copied to another
parameter or version is refused.

# Example

```
use operon_seal::{Keyring, open, rewrap, seal, key_id};

let mut rng = rand::rng();
let mut ring = Keyring::generate(&mut rng, 1_700_000_000);
let envelope = seal(&ring, b"/prod/db/password#1", b"hunter2", &mut rng)?;
assert_eq!(key_id(&envelope)?, "k1");

// Rotation keeps old envelopes readable.
ring.rotate(&mut rng, 1_700_086_400)?;
let ring = operon_seal::Keyring::from_text(&ring.to_text())?;
assert_eq!(&*open(&ring, b"/prod/db/password#1", &envelope)?, b"hunter2");

// The wrong associated data is refused.
assert!(open(&ring, b"/prod/db/password#2", &envelope).is_err());

// Rewrapping moves the envelope to the active key.
let moved = rewrap(&ring, &envelope, &mut rng)?.expect("k1 is not active");
assert_eq!(key_id(&moved)?, "k2");
assert_eq!(&*open(&ring, b"/prod/db/password#1", &moved)?, b"hunter2");
assert_eq!(rewrap(&ring, &moved, &mut rng)?, None);
# Ok::<(), operon_seal::SealError>(())
```

# Envelope format (version 1)

All fields are back to back, with no padding:

| bytes            | field                                                          |
|------------------|----------------------------------------------------------------|
| 4                | magic `OPS1` (`O P S` then format version `1`)                 |
| 1                | key id length *L* (2 to 7)                                     |
| *L*              | key id, ASCII, `k<N>`                                          |
| 12               | wrap nonce                                                     |
| 48               | wrapped data key: 32 bytes AES-256-GCM ciphertext + 16-byte tag |
| 12               | value nonce                                                    |
| *n* + 16         | value: AES-256-GCM ciphertext of the *n*-byte plaintext + tag  |

* The data key is wrapped under the key-encryption key named by the key id,
  with the first 5 + *L* bytes (magic, length, key id) as AAD, so a wrapped key
  cannot be relabelled as another key's or moved to another format version.
* The value is encrypted under the data key with AAD `OPS1` followed by the
  caller's AAD. It does not depend on the key id, which is what lets
  [`rewrap`] replace the first three fields and keep the last two.
* Nonces are random (96 bits). Every data key encrypts exactly one value, and
  each key-encryption key should wrap well under 2³² data keys, which rotation
  provides in practice.

A minimal envelope (empty plaintext, two-byte key id) is 95 bytes; the
overhead is 93 + *L* bytes. Any truncation, extension or changed bit is
refused with an error: the magic and lengths are checked, and everything else
is covered by one of the two authentication tags.

# Key ring text format (version 1)

JSON, written by [`Keyring::to_text`] and read by [`Keyring::from_text`]:

```json
{
  "version": 1,
  "active": "k2",
  "keys": [
    { "id": "k1", "created_unix": 1700000000, "key": "<64 hex digits>" },
    { "id": "k2", "created_unix": 1700086400, "key": "<64 hex digits>" }
  ]
}
```

Key ids are `k1`, `k2`, … (at most `k999999`), never reused: rotation takes
the highest number plus one. Reading refuses an unknown version, unknown
fields, no keys, malformed or duplicate ids, keys that are not 32 bytes of
hex, and an active id that is not among the keys. The file holds the keys in
the clear: the server must keep it readable only by itself.

# Key hygiene

Key-encryption keys, data keys, the key ring text and opened plaintext are
held in [`zeroize::Zeroizing`] buffers wiped on drop. `Debug` for [`Keyring`]
prints ids, times and fingerprints, never key bytes, and no [`SealError`]
carries key material or plaintext. (The AES key schedules inside `aes-gcm`
are not wiped: that needs its `zeroize` feature.)
*/

mod envelope;
mod error;
mod keyring;

pub use envelope::{MAGIC, key_id, open, rewrap, seal};
pub use error::SealError;
pub use keyring::{KEY_LEN, KEYRING_FORMAT_VERSION, KeyId, KeyInfo, Keyring};
pub use zeroize::Zeroizing;
