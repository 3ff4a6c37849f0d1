//! The simulator table: `tests/cases.json` holds policies, a request and
//! the decision IAM's rules give, including the deciding statement. Every
//! case runs; failures are listed together.
//!
//! `tests/parse_errors.json` holds documents that must be refused, with the
//! exact error message.

use operon_policy::{Decision, NamedPolicy, Policy, Request, applicable_statements, evaluate};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    policies: Vec<PolicyEntry>,
    request: Request,
    expect: Decision,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    name: String,
    document: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorCase {
    name: String,
    document: serde_json::Value,
    error: String,
}

fn load<T: for<'de> Deserialize<'de>>(file: &str) -> Vec<T> {
    let path = format!("{}/tests/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn named_policies(case: &Case) -> Result<Vec<NamedPolicy>, String> {
    case.policies
        .iter()
        .map(|entry| {
            Policy::from_value(&entry.document)
                .map(|policy| NamedPolicy::new(&entry.name, policy))
                .map_err(|e| format!("policy {:?} does not parse: {e}", entry.name))
        })
        .collect()
}

#[test]
fn simulator_cases_decide_as_iam_does() {
    let cases: Vec<Case> = load("cases.json");
    assert!(cases.len() >= 100, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let policies = match named_policies(case) {
            Ok(policies) => policies,
            Err(e) => {
                failures.push(format!("{}: {e}", case.name));
                continue;
            }
        };
        let decision = evaluate(&policies, &case.request);
        if decision != case.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?} ({})",
                case.name,
                case.expect,
                decision,
                decision.explain()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn case_names_are_unique() {
    let cases: Vec<Case> = load("cases.json");
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate case names in cases.json");
}

#[test]
fn invalid_documents_are_refused_with_the_place_and_the_reason() {
    let cases: Vec<ErrorCase> = load("parse_errors.json");
    assert!(cases.len() >= 30, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match Policy::from_value(&case.document) {
            Ok(policy) => failures.push(format!("{}: accepted as {}", case.name, policy.to_json())),
            Err(e) if e.to_string() != case.error => {
                failures.push(format!(
                    "{}:\n  expected: {}\n  got:      {e}",
                    case.name, case.error
                ));
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn text_that_is_not_json_says_so() {
    let error = Policy::parse("{\"Statement\": [").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("policy is not valid JSON: EOF while parsing a list at line 1"),
        "{error}"
    );
}

#[test]
fn canonical_json_parses_back_to_the_same_policy() {
    let cases: Vec<Case> = load("cases.json");
    for case in &cases {
        for entry in &case.policies {
            let policy = Policy::from_value(&entry.document).expect("cases parse");
            let again = Policy::from_value(&policy.to_json())
                .unwrap_or_else(|e| panic!("{}: canonical form does not parse: {e}", case.name));
            assert_eq!(policy, again, "{}", case.name);
        }
    }
}

#[test]
fn decisions_serialise_for_the_simulate_command() {
    let policy = Policy::parse(
        r#"{"Statement": [{"Sid": "Ops", "Effect": "Allow", "Action": "nodes:*", "Resource": "*"}]}"#,
    )
    .unwrap();
    let policies = [NamedPolicy::new("operators", policy)];
    let decision = evaluate(&policies, &Request::new("nodes:List", "node/*"));
    assert_eq!(
        serde_json::to_value(&decision).unwrap(),
        serde_json::json!({"decision": "Allow", "policy": "operators", "statement": 0, "sid": "Ops"})
    );
    let denied = evaluate(&policies, &Request::new("commands:Run", "node/web-1"));
    assert_eq!(
        serde_json::to_value(&denied).unwrap(),
        serde_json::json!({"decision": "ImplicitDeny"})
    );
    assert_eq!(
        denied.explain(),
        "implicitly denied: no statement allows this action on this resource (default deny)"
    );
}

#[test]
fn requests_read_single_context_values_and_lists() {
    let request: Request = serde_json::from_str(
        r#"{"action": "commands:Run", "resource": "node/web-1",
            "context": {"operon:Principal": "alice", "operon:NodeTag/role": ["web", "db"]}}"#,
    )
    .unwrap();
    let built = Request::new("commands:Run", "node/web-1")
        .with_principal("alice")
        .with_node_tags([("role", "web"), ("role", "db")]);
    assert_eq!(request, built);
    let unknown =
        serde_json::from_str::<Request>(r#"{"action": "a:b", "resource": "x", "contxt": {}}"#);
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `contxt`")
    );
}

#[test]
fn applicable_statements_lists_every_allow_and_deny_that_applies() {
    let ops = Policy::parse(
        r#"{"Statement": [
            {"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Allow", "Action": "nodes:List", "Resource": "*"},
            {"Sid": "NoProd", "Effect": "Deny", "Action": "commands:*", "Resource": "node/*",
             "Condition": {"StringEquals": {"operon:NodeTag/env": "prod"}}}
        ]}"#,
    )
    .unwrap();
    let guard = Policy::parse(
        r#"{"Statement": {"Effect": "Deny", "NotAction": "commands:Run", "Resource": "*"}}"#,
    )
    .unwrap();
    let policies = [
        NamedPolicy::new("ops", ops),
        NamedPolicy::new("guard", guard),
    ];
    let request = Request::new("commands:Run", "node/db-1").with_node_tags([("env", "prod")]);
    let listed: Vec<(String, String)> = applicable_statements(&policies, &request)
        .into_iter()
        .map(|(effect, at)| (format!("{effect:?}"), at.to_string()))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "Allow".to_owned(),
                r#"policy "ops" Statement[0] (Sid "All")"#.to_owned()
            ),
            (
                "Deny".to_owned(),
                r#"policy "ops" Statement[2] (Sid "NoProd")"#.to_owned()
            ),
        ]
    );
    let decision = evaluate(&policies, &request);
    assert_eq!(
        decision.explain(),
        r#"explicitly denied by policy "ops" Statement[2] (Sid "NoProd"); an explicit Deny overrides any Allow"#
    );
}

#[test]
fn statements_expose_their_conditions() {
    let policy = Policy::parse(
        r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"StringLikeIfExists": {"operon:NodeTag/role": ["web-*", "api"]}, "Null": {"operon:Principal": false}}}]}"#,
    )
    .unwrap();
    let shown: Vec<(String, &str, &[String])> = policy.statements()[0]
        .conditions()
        .iter()
        .map(|c| (c.operator(), c.key(), c.values()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "StringLikeIfExists".to_owned(),
                "operon:NodeTag/role",
                &["web-*".to_owned(), "api".to_owned()][..]
            ),
            (
                "Null".to_owned(),
                "operon:Principal",
                &["false".to_owned()][..]
            ),
        ]
    );
    assert_eq!(
        policy.statements()[0].effect(),
        operon_policy::Effect::Allow
    );
}

#[test]
fn a_key_given_twice_is_refused_not_silently_overwritten() {
    let text =
        r#"{"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Effect": "Allow"}]}"#;
    let error = Policy::parse(text).unwrap_err().to_string();
    assert_eq!(
        error,
        "policy is not valid JSON: duplicate field \"Effect\" (a field may appear only once in an object) at line 1 column 74"
    );

    #[derive(Deserialize, Debug)]
    struct Body {
        #[allow(dead_code)]
        document: Policy,
    }
    let body = format!(r#"{{"document": {text}}}"#);
    let error = serde_json::from_str::<Body>(&body).unwrap_err().to_string();
    assert!(error.starts_with("duplicate field \"Effect\""), "{error}");

    let condition = r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
        "Condition": {"StringEquals": {"operon:Principal": "a"}, "StringEquals": {"operon:Principal": "b"}}}]}"#;
    assert!(
        Policy::parse(condition)
            .unwrap_err()
            .to_string()
            .contains("duplicate field \"StringEquals\"")
    );
}

#[test]
fn deserialising_a_policy_field_validates_it() {
    #[derive(Deserialize, Debug)]
    struct Body {
        #[allow(dead_code)]
        document: Policy,
    }
    let error = serde_json::from_str::<Body>(
        r#"{"document": {"Statement": [{"Effect": "allow", "Action": "*", "Resource": "*"}]}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with(r#"Statement[0].Effect: expected "Allow" or "Deny", got "allow""#),
        "{error}"
    );
}

#[test]
fn deeply_nested_text_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let error = Policy::parse(&deep).unwrap_err().to_string();
    assert!(error.contains("recursion limit exceeded"), "{error}");
}
