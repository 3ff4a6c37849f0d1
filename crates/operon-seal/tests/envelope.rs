//! Sealing, opening, rewrapping: table tests per error and properties.

use operon_seal::{Keyring, SealError, key_id, open, rewrap, seal};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const AAD: &[u8] = b"/prod/db/password#3";
const SECRET: &[u8] = b"correct horse battery staple";

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A ring holding k1 and k2, k2 active.
fn two_key_ring(seed: u64) -> Keyring {
    let mut rng = rng(seed);
    let mut ring = Keyring::generate(&mut rng, 1_000);
    ring.rotate(&mut rng, 2_000).expect("k2");
    ring
}

/// Offsets in an envelope with a two-byte key id.
const ID_LEN_AT: usize = 4;
const ID_AT: usize = 5;
const WRAP_NONCE_AT: usize = 7;
const WRAPPED_KEY_AT: usize = 19;
const VALUE_NONCE_AT: usize = 67;
const VALUE_AT: usize = 79;

#[test]
fn layout_matches_the_documented_format() {
    let ring = two_key_ring(1);
    let envelope = seal(&ring, AAD, SECRET, &mut rng(2)).unwrap();
    assert_eq!(&envelope[..ID_AT], b"OPS1\x02");
    assert_eq!(&envelope[ID_AT..WRAP_NONCE_AT], b"k2");
    assert_eq!(envelope.len(), VALUE_AT + SECRET.len() + 16);
    assert_eq!(envelope.len(), 93 + 2 + SECRET.len());
    let empty = seal(&ring, b"", b"", &mut rng(3)).unwrap();
    assert_eq!(empty.len(), 95);
    assert_eq!(&*open(&ring, b"", &empty).unwrap(), b"");
}

#[test]
fn sealing_is_deterministic_for_a_seeded_rng_and_fresh_otherwise() {
    let ring = two_key_ring(1);
    let a = seal(&ring, AAD, SECRET, &mut rng(9)).unwrap();
    let b = seal(&ring, AAD, SECRET, &mut rng(9)).unwrap();
    assert_eq!(a, b, "the crate takes all randomness from the caller");
    let c = seal(&ring, AAD, SECRET, &mut rand::rng()).unwrap();
    let d = seal(&ring, AAD, SECRET, &mut rand::rng()).unwrap();
    assert_ne!(c, d);
    assert_ne!(c[WRAP_NONCE_AT..VALUE_AT], d[WRAP_NONCE_AT..VALUE_AT]);
    assert_eq!(&*open(&ring, AAD, &c).unwrap(), SECRET);
}

fn with_byte(mut envelope: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
    envelope[at] = value;
    envelope
}

fn flip(envelope: Vec<u8>, at: usize) -> Vec<u8> {
    let byte = envelope[at] ^ 0x01;
    with_byte(envelope, at, byte)
}

/// Name, ring to open with, AAD, envelope, the error `open` must return.
type Case<'a> = (&'static str, &'a Keyring, &'a [u8], Vec<u8>, SealError);

#[test]
fn every_envelope_error_is_reported_as_such() {
    let ring = two_key_ring(1);
    let good = seal(&ring, AAD, SECRET, &mut rng(2)).unwrap();
    let other_ring = two_key_ring(77);
    let mut renamed = good.clone();
    renamed[ID_AT..WRAP_NONCE_AT].copy_from_slice(b"k1");
    let mut long_id = good[..ID_LEN_AT].to_vec();
    long_id.push(8);
    long_id.extend_from_slice(b"k1234567");
    long_id.extend_from_slice(&good[WRAP_NONCE_AT..]);

    let truncated = |field: &'static str, needed: usize, available: usize| SealError::Truncated {
        field,
        needed,
        available,
    };
    let cases: Vec<Case> = vec![
        ("empty", &ring, AAD, vec![], truncated("magic", 4, 0)),
        (
            "magic only",
            &ring,
            AAD,
            b"OPS1".to_vec(),
            truncated("key id length", 1, 0),
        ),
        (
            "not an envelope",
            &ring,
            AAD,
            with_byte(good.clone(), 0, b'X'),
            SealError::NotAnEnvelope,
        ),
        (
            "plaintext",
            &ring,
            AAD,
            SECRET.to_vec(),
            SealError::NotAnEnvelope,
        ),
        (
            "future version",
            &ring,
            AAD,
            with_byte(good.clone(), 3, b'2'),
            SealError::UnsupportedEnvelopeVersion(b'2'),
        ),
        (
            "empty key id",
            &ring,
            AAD,
            with_byte(good.clone(), ID_LEN_AT, 0),
            SealError::MalformedKeyId { len: 0 },
        ),
        (
            "key id too long",
            &ring,
            AAD,
            long_id,
            SealError::MalformedKeyId { len: 8 },
        ),
        (
            "key id not k<N>",
            &ring,
            AAD,
            with_byte(good.clone(), ID_AT, b'x'),
            SealError::MalformedKeyId { len: 2 },
        ),
        (
            "key id length past the end",
            &ring,
            AAD,
            with_byte(good[..40].to_vec(), ID_LEN_AT, 200),
            truncated("key id", 200, 35),
        ),
        (
            "unknown key",
            &ring,
            AAD,
            with_byte(good.clone(), ID_AT + 1, b'3'),
            SealError::UnknownKey("k3".into()),
        ),
        (
            "relabelled to another key",
            &ring,
            AAD,
            renamed,
            SealError::WrappedKeyRejected("k1".into()),
        ),
        (
            "different ring, same ids",
            &other_ring,
            AAD,
            good.clone(),
            SealError::WrappedKeyRejected("k2".into()),
        ),
        (
            "wrap nonce flipped",
            &ring,
            AAD,
            flip(good.clone(), WRAP_NONCE_AT),
            SealError::WrappedKeyRejected("k2".into()),
        ),
        (
            "wrapped key flipped",
            &ring,
            AAD,
            flip(good.clone(), WRAPPED_KEY_AT + 5),
            SealError::WrappedKeyRejected("k2".into()),
        ),
        (
            "value nonce flipped",
            &ring,
            AAD,
            flip(good.clone(), VALUE_NONCE_AT),
            SealError::ValueRejected,
        ),
        (
            "value flipped",
            &ring,
            AAD,
            flip(good.clone(), VALUE_AT),
            SealError::ValueRejected,
        ),
        (
            "tag flipped",
            &ring,
            AAD,
            flip(good.clone(), good.len() - 1),
            SealError::ValueRejected,
        ),
        (
            "wrong aad",
            &ring,
            b"/prod/db/password#4",
            good.clone(),
            SealError::ValueRejected,
        ),
        (
            "empty aad",
            &ring,
            b"",
            good.clone(),
            SealError::ValueRejected,
        ),
        (
            "extended",
            &ring,
            AAD,
            [good.as_slice(), b"\0"].concat(),
            SealError::ValueRejected,
        ),
        (
            "cut inside the wrapped key",
            &ring,
            AAD,
            good[..WRAPPED_KEY_AT + 10].to_vec(),
            truncated("wrapped data key", 48, 10),
        ),
        (
            "cut inside the value tag",
            &ring,
            AAD,
            good[..VALUE_AT + 15].to_vec(),
            truncated("value nonce and tag", 28, 27),
        ),
        (
            "cut by one byte",
            &ring,
            AAD,
            good[..good.len() - 1].to_vec(),
            SealError::ValueRejected,
        ),
    ];
    for (name, ring, aad, envelope, expected) in cases {
        let got = open(ring, aad, &envelope);
        assert_eq!(got, Err(expected.clone()), "{name}");
        let message = expected.to_string();
        assert!(!message.contains("correct horse"), "{name}: {message}");
    }
}

#[test]
fn unknown_key_message_names_the_id() {
    let ring = Keyring::generate(&mut rng(1), 0);
    let other = two_key_ring(2);
    let envelope = seal(&other, AAD, SECRET, &mut rng(3)).unwrap();
    let error = open(&ring, AAD, &envelope).unwrap_err();
    assert_eq!(error, SealError::UnknownKey("k2".into()));
    assert_eq!(
        error.to_string(),
        "envelope is sealed under key k2, which the key ring does not hold"
    );
}

#[test]
fn key_id_reads_the_wrapping_key_and_checks_shape_only() {
    let ring = two_key_ring(1);
    let envelope = seal(&ring, AAD, SECRET, &mut rng(2)).unwrap();
    assert_eq!(key_id(&envelope), Ok("k2"));
    // Shape only: a damaged value still names its key.
    assert_eq!(key_id(&flip(envelope.clone(), VALUE_AT)), Ok("k2"));
    assert_eq!(
        key_id(&envelope[..10]),
        Err(SealError::Truncated {
            field: "wrapped data key nonce",
            needed: 12,
            available: 3,
        })
    );
    assert_eq!(key_id(b"nope"), Err(SealError::NotAnEnvelope));
}

#[test]
fn rewrap_moves_old_envelopes_to_the_active_key_and_keeps_the_value_bytes() {
    let mut generator = rng(1);
    let mut ring = Keyring::generate(&mut generator, 0);
    let old = seal(&ring, AAD, SECRET, &mut generator).unwrap();
    assert_eq!(rewrap(&ring, &old, &mut generator), Ok(None));

    ring.rotate(&mut generator, 10).unwrap();
    ring.rotate(&mut generator, 20).unwrap();
    let moved = rewrap(&ring, &old, &mut generator)
        .unwrap()
        .expect("k1 is not active");
    assert_eq!(key_id(&moved), Ok("k3"));
    assert_eq!(&*open(&ring, AAD, &moved).unwrap(), SECRET);
    // Value nonce, ciphertext and tag are copied byte for byte.
    assert_eq!(moved[VALUE_NONCE_AT..], old[VALUE_NONCE_AT..]);
    assert_ne!(
        moved[WRAP_NONCE_AT..VALUE_NONCE_AT],
        old[WRAP_NONCE_AT..VALUE_NONCE_AT]
    );
    assert_eq!(rewrap(&ring, &moved, &mut generator), Ok(None));
}

#[test]
fn rewrap_refuses_what_open_would_refuse_about_the_key() {
    let ring = two_key_ring(1);
    let old = seal(&Keyring::generate(&mut rng(1), 0), AAD, SECRET, &mut rng(2)).unwrap();
    assert_eq!(
        rewrap(&ring, &flip(old.clone(), WRAPPED_KEY_AT), &mut rng(3)),
        Err(SealError::WrappedKeyRejected("k1".into()))
    );
    let stranger = seal(&two_key_ring(5), AAD, SECRET, &mut rng(2)).unwrap();
    let lone = Keyring::generate(&mut rng(6), 0);
    assert_eq!(
        rewrap(&lone, &stranger, &mut rng(3)),
        Err(SealError::UnknownKey("k2".into()))
    );
    // A damaged value is not rewrap's to see; open still refuses it afterwards.
    let damaged = rewrap(&ring, &flip(old, VALUE_AT), &mut rng(3))
        .unwrap()
        .unwrap();
    assert_eq!(open(&ring, AAD, &damaged), Err(SealError::ValueRejected));
}

proptest! {
    #[test]
    fn seal_then_open_returns_the_plaintext(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        seed in any::<u64>(),
    ) {
        let ring = two_key_ring(seed);
        let envelope = seal(&ring, &aad, &plaintext, &mut rng(seed ^ 1)).unwrap();
        prop_assert_eq!(envelope.len(), 95 + plaintext.len());
        prop_assert_eq!(open(&ring, &aad, &envelope).unwrap().to_vec(), plaintext.clone());
        let mut other_aad = aad.clone();
        other_aad.push(0);
        prop_assert_eq!(open(&ring, &other_aad, &envelope), Err(SealError::ValueRejected));
    }

    #[test]
    fn two_seals_of_the_same_plaintext_differ(
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
        seed in any::<u64>(),
    ) {
        let ring = two_key_ring(seed);
        let mut generator = rng(seed ^ 1);
        let a = seal(&ring, AAD, &plaintext, &mut generator).unwrap();
        let b = seal(&ring, AAD, &plaintext, &mut generator).unwrap();
        prop_assert_ne!(&a[WRAP_NONCE_AT..WRAPPED_KEY_AT], &b[WRAP_NONCE_AT..WRAPPED_KEY_AT]);
        prop_assert_ne!(&a[VALUE_NONCE_AT..], &b[VALUE_NONCE_AT..]);
    }

    #[test]
    fn rotation_keeps_every_older_envelope_open(rotations in 1usize..6, seed in any::<u64>()) {
        let mut generator = rng(seed);
        let mut ring = Keyring::generate(&mut generator, 0);
        let mut sealed = Vec::new();
        for step in 0..=rotations {
            let plaintext = format!("value {step}").into_bytes();
            sealed.push((seal(&ring, AAD, &plaintext, &mut generator).unwrap(), plaintext));
            ring.rotate(&mut generator, step as i64).unwrap();
        }
        let ring = Keyring::from_text(&ring.to_text()).unwrap();
        for (index, (envelope, plaintext)) in sealed.iter().enumerate() {
            let expected_id = format!("k{}", index + 1);
            prop_assert_eq!(key_id(envelope).unwrap(), expected_id.as_str());
            prop_assert_eq!(open(&ring, AAD, envelope).unwrap().to_vec(), plaintext.clone());
            let moved = rewrap(&ring, envelope, &mut generator).unwrap().unwrap();
            prop_assert_eq!(key_id(&moved).unwrap(), ring.active().as_str());
            prop_assert_eq!(open(&ring, AAD, &moved).unwrap().to_vec(), plaintext.clone());
        }
    }
}

proptest! {
    // Each case opens a few hundred variants; fewer cases keep the debug build quick.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_single_bit_flip_is_refused(
        plaintext in proptest::collection::vec(any::<u8>(), 0..24),
        seed in any::<u64>(),
    ) {
        let ring = two_key_ring(seed);
        let envelope = seal(&ring, AAD, &plaintext, &mut rng(seed ^ 1)).unwrap();
        for bit in 0..envelope.len() * 8 {
            let mut damaged = envelope.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(open(&ring, AAD, &damaged).is_err(), "bit {} accepted", bit);
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused(
        plaintext in proptest::collection::vec(any::<u8>(), 0..24),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
        seed in any::<u64>(),
    ) {
        let ring = two_key_ring(seed);
        let envelope = seal(&ring, AAD, &plaintext, &mut rng(seed ^ 1)).unwrap();
        for len in 0..envelope.len() {
            prop_assert!(open(&ring, AAD, &envelope[..len]).is_err(), "prefix of {} accepted", len);
            prop_assert!(rewrap(&ring, &envelope[..len], &mut rng(0)).is_err() || len >= VALUE_AT);
        }
        let extended = [envelope.as_slice(), extra.as_slice()].concat();
        prop_assert_eq!(open(&ring, AAD, &extended), Err(SealError::ValueRejected));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        let ring = two_key_ring(1);
        let _ = key_id(&bytes);
        let _ = rewrap(&ring, &bytes, &mut rng(0));
        prop_assert!(open(&ring, AAD, &bytes).is_err());
    }
}

/// Builds an envelope by hand from the documented format, independently of
/// the crate's code, and opens it; then takes one of the crate's apart.
mod documented_format {
    use super::*;
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};

    const KEK_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn ring() -> Keyring {
        let text = format!(
            r#"{{"version": 1, "active": "k12", "keys": [{{"id": "k12", "created_unix": 0, "key": "{KEK_HEX}"}}]}}"#
        );
        Keyring::from_text(&text).unwrap()
    }

    fn cipher(key: &[u8]) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(key).unwrap()
    }

    #[test]
    fn a_hand_built_envelope_opens() {
        let kek = hex::decode(KEK_HEX).unwrap();
        let data_key = [7u8; 32];
        let (wrap_nonce, value_nonce) = ([1u8; 12], [2u8; 12]);
        let header = b"OPS1\x03k12".to_vec();
        let wrapped = cipher(&kek)
            .encrypt(
                &Nonce::from(wrap_nonce),
                Payload {
                    msg: &data_key,
                    aad: &header,
                },
            )
            .unwrap();
        let value = cipher(&data_key)
            .encrypt(
                &Nonce::from(value_nonce),
                Payload {
                    msg: b"s3cret",
                    aad: b"OPS1/app/key#1",
                },
            )
            .unwrap();
        let envelope = [&header[..], &wrap_nonce, &wrapped, &value_nonce, &value].concat();
        assert_eq!(
            &*open(&ring(), b"/app/key#1", &envelope).unwrap(),
            b"s3cret"
        );
        assert_eq!(key_id(&envelope), Ok("k12"));
    }

    #[test]
    fn a_sealed_envelope_comes_apart_as_documented() {
        let envelope = seal(&ring(), b"/app/key#1", b"s3cret", &mut rng(1)).unwrap();
        let kek = hex::decode(KEK_HEX).unwrap();
        let (header, rest) = envelope.split_at(8);
        assert_eq!(header, b"OPS1\x03k12");
        let (wrap_nonce, rest) = rest.split_at(12);
        let (wrapped, rest) = rest.split_at(48);
        let (value_nonce, value) = rest.split_at(12);
        let data_key = cipher(&kek)
            .decrypt(
                &Nonce::from(<[u8; 12]>::try_from(wrap_nonce).unwrap()),
                Payload {
                    msg: wrapped,
                    aad: header,
                },
            )
            .unwrap();
        let plaintext = cipher(&data_key)
            .decrypt(
                &Nonce::from(<[u8; 12]>::try_from(value_nonce).unwrap()),
                Payload {
                    msg: value,
                    aad: b"OPS1/app/key#1",
                },
            )
            .unwrap();
        assert_eq!(plaintext, b"s3cret");
    }
}
