//! Property tests: the compiled matcher agrees with the reference matcher on
//! generated patterns and events, and no input makes anything panic.

use operon_pattern::{Matcher, Pattern, reference};
use proptest::prelude::*;
use serde_json::{Value, json};

const KEYS: [&str; 3] = ["a", "b", "c"];

fn scalar_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "", "a", "ab", "ba", "abc", "A", "Ab", "10.0.0.1", "10.0.1.1", "a*b"
        ])
        .prop_map(|s| json!(s)),
        prop::sample::select(vec![0.0, 1.0, 1.5, -2.0, 300.0, 100.25]).prop_map(|n| json!(n)),
        prop::sample::select(vec![0i64, 1, 300, -2]).prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
    ]
}

fn event_value() -> impl Strategy<Value = Value> {
    scalar_value().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(KEYS.to_vec()).prop_map(String::from),
                inner,
                1..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(KEYS.to_vec()).prop_map(String::from),
        event_value(),
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn matcher_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        scalar_value(),
        prop::sample::select(vec!["a", "A", "ab", ""]).prop_map(|s| json!({"prefix": s})),
        prop::sample::select(vec!["b", "B", "ab"]).prop_map(|s| json!({"suffix": s})),
        prop::sample::select(vec!["a", "AB"])
            .prop_map(|s| json!({"prefix": {"equals-ignore-case": s}})),
        prop::sample::select(vec!["b", "aB"])
            .prop_map(|s| json!({"suffix": {"equals-ignore-case": s}})),
        prop::sample::select(vec!["ab", "a", ""]).prop_map(|s| json!({"equals-ignore-case": s})),
        prop::sample::select(vec!["a*", "*b", "a*b", "*", "", "a\\*b"])
            .prop_map(|s| json!({"wildcard": s})),
        prop::sample::select(vec!["a", "ab"]).prop_map(|s| json!({"anything-but": s})),
        Just(json!({"anything-but": [1, 300]})),
        Just(json!({"anything-but": {"prefix": "a"}})),
        Just(json!({"anything-but": {"suffix": ["b", "c"]}})),
        Just(json!({"anything-but": {"equals-ignore-case": ["A"]}})),
        Just(json!({"anything-but": {"wildcard": "*b"}})),
        Just(json!({"numeric": [">", 0]})),
        Just(json!({"numeric": [">=", 1, "<", 300]})),
        Just(json!({"numeric": ["=", 300]})),
        Just(json!({"numeric": ["<=", 1.5]})),
        any::<bool>().prop_map(|b| json!({"exists": b})),
        Just(json!({"cidr": "10.0.0.0/24"})),
    ]
}

fn pattern_object(depth: u32) -> BoxedStrategy<Value> {
    let list = prop::collection::vec(matcher_json(), 1..3).prop_map(Value::Array);
    let member = if depth == 0 {
        list.boxed()
    } else {
        prop_oneof![3 => list, 1 => pattern_object(depth - 1)].boxed()
    };
    prop::collection::btree_map(
        prop::sample::select(KEYS.to_vec()).prop_map(String::from),
        member,
        1..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
    .boxed()
}

fn pattern() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => pattern_object(2),
        1 => (pattern_object(1), pattern_object(1), pattern_object(1)).prop_map(|(base, x, y)| {
            let mut m = base.as_object().unwrap().clone();
            m.insert("$or".into(), json!([x, y]));
            Value::Object(m)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_matcher_agrees_with_reference(patterns in prop::collection::vec(pattern(), 1..6), events in prop::collection::vec(event(), 1..6)) {
        let compiled: Vec<Pattern> = patterns.iter().filter_map(|p| Pattern::from_value(p).ok()).collect();
        let mut matcher: Matcher<usize> = Matcher::new();
        for (i, p) in compiled.iter().enumerate() {
            matcher.add(i, p);
        }
        for event in &events {
            let text = event.to_string();
            let mut got: Vec<usize> = matcher.matches(&text).unwrap().into_iter().copied().collect();
            got.sort_unstable();
            let want: Vec<usize> = (0..compiled.len()).filter(|&i| reference::matches(&compiled[i], &text) == Some(true)).collect();
            prop_assert_eq!(&got, &want, "event {} patterns {:?}", text, patterns);
        }
    }

    #[test]
    fn removing_rules_matches_a_fresh_matcher(patterns in prop::collection::vec(pattern(), 2..6), event in event(), remove_mask in any::<u8>()) {
        let compiled: Vec<Pattern> = patterns.iter().filter_map(|p| Pattern::from_value(p).ok()).collect();
        let mut matcher: Matcher<usize> = Matcher::new();
        let mut fresh: Matcher<usize> = Matcher::new();
        for (i, p) in compiled.iter().enumerate() {
            matcher.add(i, p);
        }
        for (i, p) in compiled.iter().enumerate() {
            if remove_mask & (1 << i) != 0 {
                prop_assert!(matcher.remove(&i));
            } else {
                fresh.add(i, p);
            }
        }
        let text = event.to_string();
        let mut got: Vec<usize> = matcher.matches(&text).unwrap().into_iter().copied().collect();
        let mut want: Vec<usize> = fresh.matches(&text).unwrap().into_iter().copied().collect();
        got.sort_unstable();
        want.sort_unstable();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = Pattern::parse(&text);
        let matcher: Matcher<usize> = Matcher::new();
        let _ = matcher.matches(&text);
    }

    #[test]
    fn mutated_json_never_panics(pattern in pattern(), event in event(), cut in 0usize..400, byte in any::<u8>()) {
        let mutate = |s: String| -> String {
            let mut bytes = s.into_bytes();
            if !bytes.is_empty() {
                let at = cut % bytes.len();
                bytes[at] = byte;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let pattern_text = mutate(pattern.to_string());
        if let Ok(p) = Pattern::parse(&pattern_text) {
            let mut matcher: Matcher<usize> = Matcher::new();
            matcher.add(0, &p);
            let _ = matcher.matches(&mutate(event.to_string()));
            let _ = reference::matches(&p, &event.to_string());
        }
    }
}

#[test]
fn array_consistency_follows_event_ruler() {
    let pattern = Pattern::parse(r#"{"a": {"b": ["x"], "c": ["y"]}}"#).unwrap();
    assert!(pattern.matches(r#"{"a": [{"b": "x", "c": "y"}]}"#).unwrap());
    assert!(
        !pattern
            .matches(r#"{"a": [{"b": "x"}, {"c": "y"}]}"#)
            .unwrap()
    );
    let absent = Pattern::parse(r#"{"a": {"b": ["x"], "c": [{"exists": false}]}}"#).unwrap();
    assert!(
        absent
            .matches(r#"{"a": [{"b": "x"}, {"c": "y"}]}"#)
            .unwrap()
    );
    assert!(!absent.matches(r#"{"a": [{"b": "x", "c": "y"}]}"#).unwrap());
}

#[test]
fn errors_point_into_the_pattern() {
    let err = Pattern::parse(r#"{"detail": {"state": [{"prefix": 3}]}}"#).unwrap_err();
    assert_eq!(err.pointer, "/detail/state/0/prefix");
    let err = Pattern::parse(r#"{"x": [{"numeric": ["<", 1, ">", 0]}]}"#).unwrap_err();
    assert!(err.pointer.starts_with("/x/0/numeric"), "{err}");
    let err = Pattern::parse(r#"{"a": {"b": []}}"#).unwrap_err();
    assert_eq!(err.pointer, "/a/b");
    assert!(err.to_string().contains("Empty arrays"));
}

#[test]
fn duplicate_event_keys_contribute_every_value() {
    let pattern = Pattern::parse(r#"{"a": ["x"]}"#).unwrap();
    let event = r#"{"a": "x", "a": "y"}"#;
    assert!(pattern.matches(event).unwrap());
    assert_eq!(reference::matches(&pattern, event), Some(true));
}

#[test]
fn exists_false_expansion_is_bounded() {
    let fields: Vec<String> = (0..40)
        .map(|i| format!(r#""f{i}": [{{"exists": false}}, "v"]"#))
        .collect();
    let err = Pattern::parse(&format!("{{{}}}", fields.join(","))).unwrap_err();
    assert!(err.message.contains("too complex"), "{err}");
}

/// event-ruler's StructuredFinderTest shapes: one rule, one event with a big
/// array; each must match once, quickly (the bound here is generous for a
/// debug build on a shared machine; release takes milliseconds).
#[test]
fn big_arrays_match_in_linear_time() {
    let n = 20_000;
    let cases: Vec<(&str, String)> = vec![
        (
            r#"{"d": {"tags": [{"exists": true}], "type": [{"exists": true}]}}"#,
            format!(
                r#"{{"d":{{"tags":[{}],"type":"G"}}}}"#,
                (0..n)
                    .map(|i| format!("\"t{i}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (
            r#"{"d": {"a": [{"exists": true}], "b": [{"exists": true}]}}"#,
            format!(
                r#"{{"d":[{}]}}"#,
                (0..n)
                    .map(|i| format!(r#"{{"a":"{i}","b":"{i}"}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (
            r#"{"x": {"a": [{"exists": true}]}, "y": {"a": [{"exists": true}]}}"#,
            format!(
                r#"{{"x":[{}],"y":[{}]}}"#,
                (0..n)
                    .map(|i| format!(r#"{{"a":"x{i}"}}"#))
                    .collect::<Vec<_>>()
                    .join(","),
                (0..n)
                    .map(|i| format!(r#"{{"a":"y{i}"}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (
            r#"{"d": {"f0": [{"exists": true}], "f9": [{"exists": true}]}}"#,
            format!(
                r#"{{"d":[{}]}}"#,
                (0..n)
                    .map(|i| format!(r#"{{"f0":"v{i}","f5":1,"f9":"v{i}"}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
    ];
    for (rule, event) in cases {
        let pattern = Pattern::parse(rule).unwrap();
        let started = std::time::Instant::now();
        assert!(pattern.matches(&event).unwrap(), "{rule}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{rule} took {:?}",
            started.elapsed()
        );
    }
}
