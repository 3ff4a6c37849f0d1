//! The `Numeric*` condition operators, decided through the public API:
//! every operator, with and without `IfExists`, against a request value
//! below, equal to and above the policy value, one that is not a number,
//! and no value at all. The expectations are written out, not computed, so
//! a change in any cell shows up as that cell.

use operon_policy::{NamedPolicy, Policy, Request, evaluate};
use serde_json::{Value, json};

const KEY: &str = "operon:NodeTag/tier";

/// What the request holds for `KEY`.
#[derive(Debug, Clone, Copy)]
enum Given {
    Less,
    Equal,
    Greater,
    NotANumber,
    Absent,
}

const GIVEN: [Given; 5] = [
    Given::Less,
    Given::Equal,
    Given::Greater,
    Given::NotANumber,
    Given::Absent,
];

/// Per operator: whether the condition holds for each of `GIVEN`, without
/// and with the `IfExists` suffix.
const TABLE: [(&str, [bool; 5], [bool; 5]); 6] = [
    //                           less   equal  greater NaN    absent
    (
        "NumericEquals",
        [false, true, false, false, false],
        [false, true, false, false, true],
    ),
    (
        "NumericNotEquals",
        [true, false, true, false, true],
        [true, false, true, false, true],
    ),
    (
        "NumericLessThan",
        [true, false, false, false, false],
        [true, false, false, false, true],
    ),
    (
        "NumericLessThanEquals",
        [true, true, false, false, false],
        [true, true, false, false, true],
    ),
    (
        "NumericGreaterThan",
        [false, false, true, false, false],
        [false, false, true, false, true],
    ),
    (
        "NumericGreaterThanEquals",
        [false, true, true, false, false],
        [false, true, true, false, true],
    ),
];

/// Policy values, each with the request values standing for less / equal /
/// greater, so the table is checked with integers, decimals, negatives, a
/// JSON number, and numbers whose text differs from the policy's.
fn scales() -> Vec<(Value, [&'static str; 3])> {
    vec![
        (json!(3), ["2", "3", "4"]),
        (json!("3"), ["2.99", "3.0", "3.01"]),
        (json!("3"), ["-7", "003", "10"]),
        (json!("1.50"), ["1.25", "1.5", "1.75"]),
        (json!("-2"), ["-2.5", "-2", "-1.999"]),
        (json!("0"), ["-0.001", "-0", "0.001"]),
        (json!("3600"), ["3599", "3600", "86400"]),
    ]
}

fn policy_with(operator: &str, value: Value) -> Vec<NamedPolicy> {
    let document = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "commands:Run",
            "Resource": "node/*",
            "Condition": {operator: {KEY: value}}
        }]
    });
    let policy =
        Policy::from_value(&document).unwrap_or_else(|e| panic!("{operator} with {value}: {e}"));
    vec![NamedPolicy::new("p", policy)]
}

fn request_with(values: &[&str]) -> Request {
    let request = Request::new("commands:Run", "node/web-1");
    if values.is_empty() {
        request
    } else {
        request.with(KEY, values.iter().copied())
    }
}

fn holds(operator: &str, policy: Value, request: &[&str]) -> bool {
    evaluate(&policy_with(operator, policy), &request_with(request)).is_allowed()
}

#[test]
fn every_operator_against_less_equal_greater_not_a_number_and_absent() {
    let mut failures = Vec::new();
    for (base, plain, if_exists) in TABLE {
        for (operator, expected) in [
            (base.to_owned(), plain),
            (format!("{base}IfExists"), if_exists),
        ] {
            for (value, [less, equal, greater]) in scales() {
                for (given, want) in GIVEN.iter().zip(expected) {
                    let request: &[&str] = match given {
                        Given::Less => &[less],
                        Given::Equal => &[equal],
                        Given::Greater => &[greater],
                        Given::NotANumber => &["three"],
                        Given::Absent => &[],
                    };
                    let got = holds(&operator, value.clone(), request);
                    if got != want {
                        failures.push(format!(
                            "{operator} {value} with {given:?} {request:?}: got {got}, expected {want}"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn request_values_that_are_not_iam_numbers_match_no_numeric_operator() {
    for (base, _, _) in TABLE {
        for operator in [base.to_owned(), format!("{base}IfExists")] {
            for text in [
                "", "+3", "3e0", ".3", "3.", " 3", "0x3", "NaN", "Infinity", "3 ",
            ] {
                assert!(
                    !holds(&operator, json!("3"), &[text]),
                    "{operator} 3 held for the request value {text:?}"
                );
            }
        }
    }
}

#[test]
fn several_policy_values_are_alternatives() {
    let values = json!(["1", "5.5", "-10"]);
    assert!(holds("NumericEquals", values.clone(), &["5.50"]));
    assert!(holds("NumericEquals", values.clone(), &["-10"]));
    assert!(!holds("NumericEquals", values.clone(), &["2"]));
    // Less than any of them: less than the largest.
    assert!(holds("NumericLessThan", values.clone(), &["5"]));
    assert!(!holds("NumericLessThan", values.clone(), &["5.5"]));
    // Greater than any of them: greater than the smallest.
    assert!(holds("NumericGreaterThan", values.clone(), &["-9"]));
    assert!(!holds("NumericGreaterThan", values.clone(), &["-10"]));
    // Not equal to any of them (NOR).
    assert!(holds("NumericNotEquals", values.clone(), &["2"]));
    assert!(!holds("NumericNotEquals", values.clone(), &["1"]));
    assert!(!holds("NumericNotEquals", values, &["-10.0"]));
}

#[test]
fn several_request_values_match_if_any_does() {
    let policy = json!("10");
    assert!(holds("NumericLessThan", policy.clone(), &["20", "5"]));
    assert!(!holds("NumericLessThan", policy.clone(), &["20", "10"]));
    // A value that is not a number is skipped by the positive operators.
    assert!(holds("NumericLessThan", policy.clone(), &["many", "5"]));
    assert!(!holds("NumericLessThan", policy.clone(), &["many", "50"]));
    // The negated one needs every value to be a number different from 10.
    assert!(holds("NumericNotEquals", policy.clone(), &["20", "5"]));
    assert!(!holds("NumericNotEquals", policy.clone(), &["20", "10"]));
    assert!(!holds("NumericNotEquals", policy, &["20", "many"]));
}

#[test]
fn a_key_present_with_no_values_is_absent() {
    let policies = policy_with("NumericNotEquals", json!("1"));
    let request = Request::new("commands:Run", "node/web-1").with(KEY, Vec::<String>::new());
    assert!(evaluate(&policies, &request).is_allowed());
    let policies = policy_with("NumericEquals", json!("1"));
    assert!(!evaluate(&policies, &request).is_allowed());
}

#[test]
fn key_names_compare_case_insensitively_for_numeric_operators() {
    let policies = policy_with("NumericGreaterThanEquals", json!("2"));
    let request = Request::new("commands:Run", "node/web-1").with("OPERON:nodetag/TIER", ["2"]);
    assert!(evaluate(&policies, &request).is_allowed());
}

#[test]
fn numbers_longer_than_a_float_holds_compare_exactly() {
    let policy = json!("9007199254740992");
    assert!(holds(
        "NumericGreaterThan",
        policy.clone(),
        &["9007199254740993"]
    ));
    assert!(!holds("NumericEquals", policy, &["9007199254740993"]));
    assert!(holds(
        "NumericLessThan",
        json!("0.30000000000000000001"),
        &["0.3"]
    ));
}

#[test]
fn deny_with_numeric_not_equals_covers_absent_keys_but_not_text() {
    let document = json!({
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "commands:Run", "Resource": "*",
             "Condition": {"NumericNotEquals": {KEY: "1"}}}
        ]
    });
    let policies = vec![NamedPolicy::new(
        "p",
        Policy::from_value(&document).unwrap(),
    )];
    let decide = |values: &[&str]| evaluate(&policies, &request_with(values)).is_allowed();
    assert!(decide(&["1"]), "tier 1 is not denied");
    assert!(decide(&["1.0"]), "tier 1.0 is tier 1");
    assert!(!decide(&["2"]), "tier 2 is denied");
    assert!(!decide(&[]), "no tier is denied, as StringNotEquals would");
    assert!(decide(&["one"]), "a tier that is not a number is no match");
}

#[test]
fn numeric_conditions_keep_their_values_as_written_through_json() {
    let document = json!({
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {
                "NumericLessThanEqualsIfExists": {KEY: [3600, "1.50", "-2"]},
                "NumericNotEquals": {"operon:NodeTag/zone": 0}
            }}]
    });
    let policy = Policy::from_value(&document).unwrap();
    let shown: Vec<(String, &str, &[String])> = policy.statements()[0]
        .conditions()
        .iter()
        .map(|c| (c.operator(), c.key(), c.values()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "NumericLessThanEqualsIfExists".to_owned(),
                KEY,
                &["3600".to_owned(), "1.50".to_owned(), "-2".to_owned()][..]
            ),
            (
                "NumericNotEquals".to_owned(),
                "operon:NodeTag/zone",
                &["0".to_owned()][..]
            ),
        ]
    );
    let canonical = policy.to_json();
    assert_eq!(
        canonical["Statement"][0]["Condition"],
        json!({
            "NumericLessThanEqualsIfExists": {KEY: ["3600", "1.50", "-2"]},
            "NumericNotEquals": {"operon:NodeTag/zone": ["0"]}
        })
    );
    assert_eq!(Policy::from_value(&canonical).unwrap(), policy);
}
