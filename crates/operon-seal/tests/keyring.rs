//! The key ring: generation, rotation, listing, Debug, and its text format.

use operon_seal::{KeyId, Keyring, SealError, open, seal};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00112233445566778899aabbccddeeff";

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn ring_text(version: &str, active: &str, keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(id, key)| format!(r#"{{"id": "{id}", "created_unix": 100, "key": "{key}"}}"#))
        .collect();
    format!(
        r#"{{"version": {version}, "active": "{active}", "keys": [{}]}}"#,
        keys.join(", ")
    )
}

#[test]
fn generate_holds_one_active_key_k1() {
    let ring = Keyring::generate(&mut rng(1), 1_700_000_000);
    assert_eq!(ring.active().as_str(), "k1");
    let listed: Vec<_> = ring
        .ids()
        .map(|info| (info.id.to_string(), info.created_unix, info.active))
        .collect();
    assert_eq!(listed, vec![("k1".to_string(), 1_700_000_000, true)]);
}

#[test]
fn rotate_appends_the_next_id_and_makes_it_active() {
    let mut generator = rng(1);
    let mut ring = Keyring::generate(&mut generator, 10);
    assert_eq!(ring.rotate(&mut generator, 20).unwrap().as_str(), "k2");
    assert_eq!(ring.rotate(&mut generator, 30).unwrap().as_str(), "k3");
    assert_eq!(ring.active().as_str(), "k3");
    let listed: Vec<_> = ring
        .ids()
        .map(|info| (info.id.to_string(), info.created_unix, info.active))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("k1".into(), 10, false),
            ("k2".into(), 20, false),
            ("k3".into(), 30, true)
        ]
    );
    let fingerprints: Vec<String> = ring.ids().map(|info| info.fingerprint).collect();
    assert!(
        fingerprints
            .iter()
            .all(|f| f.len() == 16 && f.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    assert_ne!(
        fingerprints[0], fingerprints[1],
        "fresh bytes for every key"
    );
}

#[test]
fn rotation_continues_after_the_highest_id_even_when_lower_ones_are_gone() {
    let text = ring_text("1", "k2", &[("k7", KEY_A), ("k2", KEY_B)]);
    let mut ring = Keyring::from_text(&text).unwrap();
    let ids: Vec<String> = ring.ids().map(|info| info.id.to_string()).collect();
    assert_eq!(ids, ["k2", "k7"], "listed by number, not by file order");
    assert_eq!(ring.rotate(&mut rng(1), 0).unwrap().as_str(), "k8");
}

#[test]
fn rotation_stops_at_the_last_id() {
    let text = ring_text("1", "k999999", &[("k999999", KEY_A)]);
    let mut ring = Keyring::from_text(&text).unwrap();
    assert_eq!(
        ring.rotate(&mut rng(1), 0),
        Err(SealError::KeyIdsExhausted(999_999))
    );
    assert_eq!(ring.active().as_str(), "k999999");
}

#[test]
fn text_roundtrip_is_exact_and_readable() {
    let mut generator = rng(3);
    let mut ring = Keyring::generate(&mut generator, 5);
    ring.rotate(&mut generator, 6).unwrap();
    let text = ring.to_text();
    assert_eq!(Keyring::from_text(&text).unwrap(), ring);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["active"], "k2");
    assert_eq!(json["keys"][0]["id"], "k1");
    assert_eq!(json["keys"][1]["created_unix"], 6);
    assert_eq!(json["keys"][1]["key"].as_str().unwrap().len(), 64);
}

#[test]
fn a_ring_read_from_text_opens_with_the_given_key() {
    let ring = Keyring::from_text(&ring_text("1", "k1", &[("k1", KEY_A)])).unwrap();
    let same = Keyring::from_text(&ring_text("1", "k1", &[("k1", KEY_A)])).unwrap();
    let different = Keyring::from_text(&ring_text("1", "k1", &[("k1", KEY_B)])).unwrap();
    let envelope = seal(&ring, b"aad", b"value", &mut rng(1)).unwrap();
    assert_eq!(&*open(&same, b"aad", &envelope).unwrap(), b"value");
    assert_eq!(
        open(&different, b"aad", &envelope),
        Err(SealError::WrappedKeyRejected("k1".into()))
    );
    let fingerprint = |ring: &Keyring| ring.ids().next().unwrap().fingerprint;
    assert_eq!(fingerprint(&ring), fingerprint(&same));
    assert_ne!(fingerprint(&ring), fingerprint(&different));
}

#[test]
fn debug_never_prints_key_bytes() {
    let ring = Keyring::from_text(&ring_text("1", "k2", &[("k1", KEY_A), ("k2", KEY_B)])).unwrap();
    let debug = format!("{ring:?}");
    assert!(debug.contains("k1") && debug.contains("k2"), "{debug}");
    for key in [KEY_A, KEY_B] {
        assert!(!debug.contains(key), "{debug}");
        assert!(!debug.contains(&key[..8]), "{debug}");
    }
    // Nor in decimal, as a derived Debug of the byte array would print them.
    assert!(!debug.contains("240, 241"), "{debug}");
}

#[test]
fn from_text_refuses_invalid_rings_with_clear_messages() {
    let short = &KEY_A[..62];
    let long = format!("{KEY_A}00");
    let cases: Vec<(&str, String, SealError, &str)> = vec![
        (
            "unknown version",
            ring_text("2", "k1", &[("k1", KEY_A)]),
            SealError::UnsupportedKeyringVersion(2),
            "unsupported key ring format version 2 (this build reads version 1)",
        ),
        (
            "future version with fields this build does not know",
            r#"{"version": 3, "kms": "arn:aws:kms:..."}"#.into(),
            SealError::UnsupportedKeyringVersion(3),
            "version 3",
        ),
        (
            "no keys",
            ring_text("1", "k1", &[]),
            SealError::EmptyKeyring,
            "key ring has no keys",
        ),
        (
            "duplicate ids",
            ring_text("1", "k1", &[("k1", KEY_A), ("k2", KEY_B), ("k1", KEY_B)]),
            SealError::DuplicateKey("k1".into()),
            "key ring lists key k1 more than once",
        ),
        (
            "short key",
            ring_text("1", "k1", &[("k1", short)]),
            SealError::BadKeyLength {
                id: "k1".into(),
                len: 31,
            },
            "key ring key k1 is 31 bytes; keys must be 32 bytes",
        ),
        (
            "long key",
            ring_text("1", "k1", &[("k1", &long)]),
            SealError::BadKeyLength {
                id: "k1".into(),
                len: 33,
            },
            "33 bytes",
        ),
        (
            "key not hex",
            ring_text("1", "k1", &[("k1", &KEY_A.replace('a', "z"))]),
            SealError::BadKeyHex("k1".into()),
            "key ring key k1 is not valid hexadecimal",
        ),
        (
            "missing active",
            ring_text("1", "k3", &[("k1", KEY_A), ("k2", KEY_B)]),
            SealError::MissingActive("k3".into()),
            "key ring active key k3 is not among its keys",
        ),
        (
            "malformed active",
            ring_text("1", "", &[("k1", KEY_A)]),
            SealError::MissingActive("".into()),
            "active key  is not among",
        ),
        (
            "bad key id",
            ring_text("1", "k1", &[("k01", KEY_A)]),
            SealError::BadKeyId("k01".into()),
            "key ring key id \"k01\" is not of the form k<N>",
        ),
        (
            "key id zero",
            ring_text("1", "k1", &[("k0", KEY_A)]),
            SealError::BadKeyId("k0".into()),
            "\"k0\"",
        ),
        (
            "key id too large",
            ring_text("1", "k1", &[("k1000000", KEY_A)]),
            SealError::BadKeyId("k1000000".into()),
            "\"k1000000\"",
        ),
        (
            "not json",
            "version = 1".into(),
            SealError::KeyringSyntax {
                what: "not valid JSON",
                line: 1,
                column: 1,
            },
            "key ring text is invalid at line 1 column 1: not valid JSON",
        ),
        (
            "cut short",
            ring_text("1", "k1", &[("k1", KEY_A)])[..40].into(),
            SealError::KeyringSyntax {
                what: "the text ends early",
                line: 1,
                column: 40,
            },
            "the text ends early",
        ),
        (
            "unknown field",
            ring_text("1", "k1", &[("k1", KEY_A)]).replace("\"active\"", "\"kms\": 1, \"active\""),
            SealError::KeyringSyntax {
                what: "a field is missing, unknown or of the wrong type",
                line: 1,
                column: 20,
            },
            "missing, unknown or of the wrong type",
        ),
        (
            "no version",
            r#"{"active": "k1", "keys": []}"#.into(),
            SealError::KeyringSyntax {
                what: "a field is missing, unknown or of the wrong type",
                line: 1,
                column: 28,
            },
            "line 1 column 28",
        ),
    ];
    for (name, text, expected, message_part) in cases {
        let got = Keyring::from_text(&text);
        assert_eq!(got.as_ref().err(), Some(&expected), "{name}");
        let message = expected.to_string();
        assert!(message.contains(message_part), "{name}: {message}");
        assert!(
            !message.contains(&KEY_A[..16]) && !message.contains(&KEY_B[..16]),
            "{name}: {message}"
        );
    }
}

#[test]
fn type_errors_do_not_quote_key_hex() {
    // serde_json would quote the string it found where a number belongs.
    let text = format!(
        r#"{{"version": 1, "active": "k1", "keys": [{{"id": "k1", "created_unix": "{KEY_A}", "key": "{KEY_A}"}}]}}"#
    );
    let message = Keyring::from_text(&text).unwrap_err().to_string();
    assert!(!message.contains(&KEY_A[..16]), "{message}");
    assert!(message.contains("wrong type"), "{message}");
}

#[test]
fn key_id_parse_accepts_only_canonical_ids() {
    for good in ["k1", "k9", "k10", "k999999"] {
        assert_eq!(
            KeyId::parse(good).map(|id| id.to_string()),
            Some(good.to_string())
        );
    }
    for bad in [
        "", "k", "k0", "k01", "K1", "k-1", "k+1", "k1 ", "k1000000", "key1", "k١",
    ] {
        assert_eq!(KeyId::parse(bad), None, "{bad:?}");
    }
}

proptest! {
    #[test]
    fn text_roundtrip_after_any_rotations(
        rotations in 0usize..8,
        seed in any::<u64>(),
        times in proptest::collection::vec(any::<i64>(), 9),
    ) {
        let mut generator = rng(seed);
        let mut ring = Keyring::generate(&mut generator, times[0]);
        for time in &times[1..=rotations] {
            ring.rotate(&mut generator, *time).unwrap();
        }
        let read = Keyring::from_text(&ring.to_text()).unwrap();
        prop_assert_eq!(&read, &ring);
        prop_assert_eq!(read.active().to_string(), format!("k{}", rotations + 1));
        let listed: Vec<i64> = read.ids().map(|info| info.created_unix).collect();
        prop_assert_eq!(listed, times[..=rotations].to_vec());
    }

    #[test]
    fn from_text_never_panics(text in ".{0,200}") {
        let _ = Keyring::from_text(&text);
    }
}
