//! Properties over generated policies and requests: evaluation never
//! panics, a `Deny *` statement always denies, the decision does not depend
//! on the case of the action or the order of policies' evaluation in ways
//! IAM would not, the glob matcher agrees with an obviously-correct
//! recursive one, and the numeric operators agree with comparing `f64`s on
//! decimals short enough for `f64` to hold. Parsing arbitrary JSON or text
//! never panics.

use std::collections::BTreeMap;

use operon_policy::{Decision, NamedPolicy, Policy, Request, evaluate};
use proptest::prelude::*;
use serde_json::{Value, json};

const KEYS: [&str; 3] = [
    "operon:Principal",
    "operon:NodeTag/env",
    "operon:NodeTag/role",
];
const OPERATORS: [&str; 25] = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "StringEqualsIfExists",
    "StringNotEqualsIfExists",
    "StringLikeIfExists",
    "StringNotLikeIfExists",
    "StringEqualsIgnoreCaseIfExists",
    "StringNotEqualsIgnoreCaseIfExists",
    "Null",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "NumericEqualsIfExists",
    "NumericNotEqualsIfExists",
    "NumericLessThanIfExists",
    "NumericLessThanEqualsIfExists",
    "NumericGreaterThanIfExists",
    "NumericGreaterThanEqualsIfExists",
];

const NUMERIC: [&str; 6] = [
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
];

/// A short decimal in the form IAM accepts: few enough digits that `f64`
/// holds it exactly enough to serve as a reference. Half are drawn from a
/// narrow range so that equal values written differently (`01.10`, `1.1`,
/// `-0`, `0.0`) meet often.
fn short_decimal() -> impl Strategy<Value = String> {
    prop_oneof!["-?[0-9]{1,6}(\\.[0-9]{1,6})?", "-?0?[0-1](\\.[0-1]0?)?",]
}

fn word() -> impl Strategy<Value = String> {
    "[a-cA-C*?]{0,4}"
}

fn action_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        ("[a-bA-B*?]{1,3}", "[a-bA-B*?]{1,3}").prop_map(|(noun, verb)| format!("{noun}:{verb}")),
    ]
}

fn resource_pattern() -> impl Strategy<Value = String> {
    "[a-b/*?]{1,6}"
}

fn condition_values(operator: &'static str) -> BoxedStrategy<Value> {
    if operator == "Null" {
        prop_oneof![Just(json!("true")), Just(json!("false"))].boxed()
    } else if operator.starts_with("Numeric") {
        prop::collection::vec(short_decimal(), 1..3)
            .prop_map(|v| json!(v))
            .boxed()
    } else {
        prop::collection::vec(word(), 1..3)
            .prop_map(|v| json!(v))
            .boxed()
    }
}

fn condition_block() -> impl Strategy<Value = Value> {
    let clause = (
        prop::sample::select(&OPERATORS[..]),
        prop::sample::select(&KEYS[..]),
    )
        .prop_flat_map(|(operator, key)| {
            condition_values(operator).prop_map(move |values| (operator, key, values))
        });
    prop::collection::vec(clause, 0..3).prop_map(|clauses| {
        let mut block = serde_json::Map::new();
        for (operator, key, values) in clauses {
            let keys = block.entry(operator).or_insert_with(|| json!({}));
            keys[key] = values;
        }
        Value::Object(block)
    })
}

fn statement() -> impl Strategy<Value = Value> {
    (
        prop::bool::ANY,
        prop::bool::ANY,
        prop::collection::vec(action_pattern(), 1..3),
        prop::bool::ANY,
        prop::collection::vec(resource_pattern(), 1..3),
        condition_block(),
    )
        .prop_map(
            |(allow, not_action, actions, not_resource, resources, condition)| {
                let mut s = serde_json::Map::new();
                s.insert("Effect".into(), json!(if allow { "Allow" } else { "Deny" }));
                s.insert(
                    if not_action { "NotAction" } else { "Action" }.into(),
                    json!(actions),
                );
                s.insert(
                    if not_resource {
                        "NotResource"
                    } else {
                        "Resource"
                    }
                    .into(),
                    json!(resources),
                );
                if condition.as_object().is_some_and(|c| !c.is_empty()) {
                    s.insert("Condition".into(), condition);
                }
                Value::Object(s)
            },
        )
}

fn policies() -> impl Strategy<Value = Vec<NamedPolicy>> {
    prop::collection::vec(prop::collection::vec(statement(), 1..4), 0..3).prop_map(|docs| {
        docs.into_iter()
            .enumerate()
            .map(|(i, statements)| {
                let document = json!({"Version": "2012-10-17", "Statement": statements});
                let policy = Policy::from_value(&document)
                    .unwrap_or_else(|e| panic!("generated policy {document} is invalid: {e}"));
                NamedPolicy::new(format!("p{i}"), policy)
            })
            .collect()
    })
}

fn request() -> impl Strategy<Value = Request> {
    let context = prop::collection::btree_map(
        prop::sample::select(&KEYS[..]).prop_map(str::to_owned),
        prop::collection::vec(prop_oneof!["[a-cA-C]{0,3}", short_decimal()], 0..3),
        0..3,
    );
    ("[a-bA-B]{1,3}:[a-bA-B]{1,3}", "[a-b/]{1,6}", context).prop_map(
        |(action, resource, context): (String, String, BTreeMap<String, Vec<String>>)| Request {
            action,
            resource,
            context,
        },
    )
}

fn deny_everything() -> Value {
    json!({"Effect": "Deny", "Action": "*", "Resource": "*"})
}

/// The textbook recursive glob matcher, exponential but obviously right.
fn reference_glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_glob(rest, &text[skip..])),
        Some(('?', rest)) => !text.is_empty() && reference_glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && reference_glob(rest, &text[1..]),
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("Allow".to_owned()),
            Just("Deny".to_owned()),
            Just("*".to_owned()),
            Just("operon:NodeTag/env".to_owned()),
            ".{0,8}",
        ]
        .prop_map(Value::String),
    ];
    let names = prop_oneof![
        Just("Version".to_owned()),
        Just("Statement".to_owned()),
        Just("Effect".to_owned()),
        Just("Action".to_owned()),
        Just("NotAction".to_owned()),
        Just("Resource".to_owned()),
        Just("NotResource".to_owned()),
        Just("Condition".to_owned()),
        Just("StringLike".to_owned()),
        Just("Null".to_owned()),
        Just("NumericLessThan".to_owned()),
        Just("Sid".to_owned()),
        "[A-Za-z:/]{0,8}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((names.clone(), inner), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn evaluation_never_panics_and_explains(policies in policies(), request in request()) {
        let decision = evaluate(&policies, &request);
        prop_assert!(!decision.explain().is_empty());
        if let Some(at) = decision.statement() {
            let policy = policies.iter().find(|p| p.name == at.policy).expect("named policy exists");
            prop_assert!(at.statement < policy.policy.statements().len());
        }
    }

    #[test]
    fn a_deny_everything_statement_always_denies(
        policies in policies(),
        request in request(),
        at in any::<prop::sample::Index>(),
    ) {
        // As a policy of its own, anywhere in the list.
        let deny = Policy::from_value(&json!({"Statement": [deny_everything()]})).unwrap();
        let mut with_deny = policies.clone();
        with_deny.insert(at.index(policies.len() + 1), NamedPolicy::new("deny-all", deny));
        prop_assert!(matches!(evaluate(&with_deny, &request), Decision::ExplicitDeny(_)));

        // Appended to an existing policy.
        if let Some(first) = policies.first() {
            let mut document = first.policy.to_json();
            document["Statement"].as_array_mut().unwrap().push(deny_everything());
            let mut extended = policies.clone();
            extended[0] = NamedPolicy::new("p0", Policy::from_value(&document).unwrap());
            prop_assert!(matches!(evaluate(&extended, &request), Decision::ExplicitDeny(_)));
        }
    }

    #[test]
    fn only_deny_statements_never_allow(policies in policies(), request in request()) {
        let denies_only: Vec<NamedPolicy> = policies
            .iter()
            .filter_map(|p| {
                let mut document = p.policy.to_json();
                let statements = document["Statement"].as_array_mut().unwrap();
                statements.retain(|s| s["Effect"] == "Deny");
                (!statements.is_empty()).then(|| NamedPolicy::new(&p.name, Policy::from_value(&document).unwrap()))
            })
            .collect();
        prop_assert!(!evaluate(&denies_only, &request).is_allowed());
    }

    #[test]
    fn adding_an_allow_never_turns_allow_into_deny(
        policies in policies(),
        request in request(),
        extra in statement(),
    ) {
        let before = evaluate(&policies, &request);
        let mut extra = extra;
        extra["Effect"] = json!("Allow");
        let mut more = policies.clone();
        more.push(NamedPolicy::new("extra", Policy::from_value(&json!({"Statement": [extra]})).unwrap()));
        let after = evaluate(&more, &request);
        if before.is_allowed() {
            prop_assert_eq!(after, before);
        }
    }

    #[test]
    fn the_kind_of_decision_does_not_depend_on_policy_order(policies in policies(), request in request()) {
        let forward = evaluate(&policies, &request);
        let reversed: Vec<NamedPolicy> = policies.iter().rev().cloned().collect();
        let backward = evaluate(&reversed, &request);
        prop_assert_eq!(
            std::mem::discriminant(&forward),
            std::mem::discriminant(&backward)
        );
    }

    #[test]
    fn actions_match_whatever_their_case(policies in policies(), request in request()) {
        let mut upper = request.clone();
        upper.action = request.action.to_uppercase();
        let mut lower = request.clone();
        lower.action = request.action.to_lowercase();
        prop_assert_eq!(evaluate(&policies, &upper), evaluate(&policies, &lower));
    }

    #[test]
    fn canonical_json_round_trips(policies in policies()) {
        for named in &policies {
            let again = Policy::from_value(&named.policy.to_json()).unwrap();
            prop_assert_eq!(&again, &named.policy);
        }
    }

    #[test]
    fn glob_matching_agrees_with_the_reference(pattern in "[aé*?]{1,8}", text in "[abé]{0,10}") {
        let policy = Policy::from_value(&json!({
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": pattern}]
        })).unwrap();
        let request = Request::new("x:y", text.clone());
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        let expected = reference_glob(&chars(&pattern), &chars(&text));
        prop_assert_eq!(
            evaluate(&[NamedPolicy::new("p", policy)], &request).is_allowed(),
            expected
        );
    }

    #[test]
    fn numeric_operators_agree_with_comparing_floats(
        operator in prop::sample::select(&NUMERIC[..]),
        policy_value in short_decimal(),
        request_value in short_decimal(),
    ) {
        let policy = Policy::from_value(&json!({
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                "Condition": {operator: {"operon:NodeTag/n": policy_value}}}]
        })).unwrap();
        let request = Request::new("x:y", "r").with("operon:NodeTag/n", [request_value.clone()]);
        let float = |text: &str| text.parse::<f64>().unwrap();
        let (r, p) = (float(&request_value), float(&policy_value));
        let expected = match operator {
            "NumericEquals" => r == p,
            "NumericNotEquals" => r != p,
            "NumericLessThan" => r < p,
            "NumericLessThanEquals" => r <= p,
            "NumericGreaterThan" => r > p,
            _ => r >= p,
        };
        prop_assert_eq!(
            evaluate(&[NamedPolicy::new("p", policy)], &request).is_allowed(),
            expected
        );
    }

    #[test]
    fn parsing_arbitrary_json_never_panics(value in arbitrary_json()) {
        if let Err(e) = Policy::from_value(&value) {
            prop_assert!(!e.to_string().is_empty());
        }
        let wrapped = json!({"Statement": [value]});
        let _ = Policy::from_value(&wrapped);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in ".{0,64}") {
        let _ = Policy::parse(&text);
    }
}
