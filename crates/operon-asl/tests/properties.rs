//! Property tests for JSONPath and the intrinsic functions.

use operon_asl::intrinsics::{self, Scope};
use operon_asl::jsonpath::JsonPath;
use operon_asl::rng::Rng;
use operon_asl::{Failure, StateMachine};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]{1,2}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

struct Input(Value);
impl Scope for Input {
    fn resolve(&self, p: &JsonPath) -> Result<Value, Failure> {
        p.eval(&self.0)
            .map(|c| c.into_owned())
            .ok_or_else(|| Failure::new("States.Runtime", "missing"))
    }
}

fn call(src: &str, input: Value) -> Result<Value, Failure> {
    let c = intrinsics::parse(src).expect("parses");
    intrinsics::eval(&c, &Input(input), &mut Rng::new(3))
}

proptest! {
    #[test]
    fn set_then_get_round_trips(doc in arb_json(), key in "[a-z]{1,5}", value in arb_json()) {
        let path = JsonPath::parse(&format!("$.{key}")).unwrap();
        let mut target = if doc.is_object() { doc } else { json!({}) };
        path.set(&mut target, value.clone()).unwrap();
        prop_assert_eq!(path.eval(&target).map(|c| c.into_owned()), Some(value));
    }

    #[test]
    fn bracket_and_dot_notation_agree(doc in arb_json(), key in "[a-c]{1,2}") {
        let dot = JsonPath::parse(&format!("$.{key}")).unwrap();
        let bracket = JsonPath::parse(&format!("$['{key}']")).unwrap();
        prop_assert_eq!(dot.eval(&doc).map(|c| c.into_owned()), bracket.eval(&doc).map(|c| c.into_owned()));
    }

    #[test]
    fn wildcard_selects_every_array_element(items in prop::collection::vec(arb_json(), 0..8)) {
        let doc = json!({"a": items.clone()});
        let got = JsonPath::parse("$.a[*]").unwrap().eval(&doc).map(|c| c.into_owned());
        prop_assert_eq!(got, Some(Value::Array(items)));
    }

    #[test]
    fn index_matches_vec_indexing(items in prop::collection::vec(arb_json(), 1..8), i in 0usize..8) {
        let doc = Value::Array(items.clone());
        let got = JsonPath::parse(&format!("$[{i}]")).unwrap().eval(&doc).map(|c| c.into_owned());
        prop_assert_eq!(got, items.get(i).cloned());
        let last = JsonPath::parse("$[-1]").unwrap().eval(&doc).map(|c| c.into_owned());
        prop_assert_eq!(last, items.last().cloned());
    }

    #[test]
    fn arbitrary_paths_never_panic(src in "\\$[a-z.\\[\\]*?@()=<>'0-9: ,-]{0,24}", doc in arb_json()) {
        if let Ok(p) = JsonPath::parse(&src) {
            let _ = p.eval(&doc);
        }
    }

    #[test]
    fn partition_concatenates_back(items in prop::collection::vec(arb_json(), 0..20), size in 1i64..6) {
        let out = call("States.ArrayPartition($.a, $.n)", json!({"a": items.clone(), "n": size})).unwrap();
        let chunks = out.as_array().unwrap();
        prop_assert!(chunks.iter().all(|c| c.as_array().unwrap().len() as i64 <= size));
        let flat: Vec<Value> = chunks.iter().flat_map(|c| c.as_array().unwrap().clone()).collect();
        prop_assert_eq!(flat, items);
    }

    #[test]
    fn range_has_the_expected_length(start in -50i64..50, len in 0i64..40, step in 1i64..5) {
        let end = start + len;
        let out = call("States.ArrayRange($.s, $.e, $.st)", json!({"s": start, "e": end, "st": step})).unwrap();
        let arr = out.as_array().unwrap();
        prop_assert_eq!(arr.len() as i64, len / step + 1);
        prop_assert_eq!(arr[0].as_i64(), Some(start));
    }

    #[test]
    fn base64_round_trips(s in ".{0,40}") {
        let enc = call("States.Base64Encode($.s)", json!({"s": s.clone()})).unwrap();
        let dec = call("States.Base64Decode($.e)", json!({"e": enc})).unwrap();
        prop_assert_eq!(dec, json!(s));
    }

    #[test]
    fn json_to_string_and_back(v in arb_json()) {
        let s = call("States.JsonToString($.v)", json!({"v": v.clone()})).unwrap();
        let back = call("States.StringToJson($.s)", json!({"s": s})).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn array_unique_is_idempotent_and_contains_all(items in prop::collection::vec(arb_json(), 0..12)) {
        let once = call("States.ArrayUnique($.a)", json!({"a": items.clone()})).unwrap();
        let twice = call("States.ArrayUnique($.a)", json!({"a": once.clone()})).unwrap();
        prop_assert_eq!(&once, &twice);
        for it in &items {
            let has = call("States.ArrayContains($.a, $.v)", json!({"a": once.clone(), "v": it})).unwrap();
            prop_assert_eq!(has, json!(true));
        }
    }

    #[test]
    fn math_add_matches_int32_addition(a in any::<i32>(), b in any::<i32>()) {
        let got = call("States.MathAdd($.a, $.b)", json!({"a": a, "b": b}));
        match a.checked_add(b) {
            Some(sum) => prop_assert_eq!(got.unwrap(), json!(sum)),
            None => prop_assert_eq!(got.unwrap_err().cause, Some("Invalid arguments in States.MathAdd".to_string())),
        }
    }

    #[test]
    fn math_random_stays_in_range(a in -1000i64..1000, span in 1i64..1000, seed in any::<u32>()) {
        let v = call("States.MathRandom($.a, $.b, $.s)", json!({"a": a, "b": a + span, "s": seed})).unwrap();
        let n = v.as_i64().unwrap();
        prop_assert!(n >= a && n < a + span);
    }

    #[test]
    fn string_split_drops_delimiters(parts in prop::collection::vec("[a-z]{1,4}", 1..6)) {
        let joined = parts.join(",");
        let out = call("States.StringSplit($.s, ',')", json!({"s": joined})).unwrap();
        prop_assert_eq!(out, json!(parts));
    }

    #[test]
    fn arbitrary_definitions_never_panic(def in arb_json()) {
        let _ = StateMachine::from_value(&def);
    }
}
