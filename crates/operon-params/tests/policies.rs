//! Parameter policies: parsing and scheduling.

use operon_params::policies::*;
use operon_params::ssm::SsmErrorCode;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// 2030-01-01T00:00:00Z
const EXPIRES: i64 = 1_893_456_000;

// The three policies in the form of the AWS Systems Manager User Guide's
// "Assigning parameter policies" examples.
const ALL_THREE: &str = r#"[
  {"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2030-01-01T00:00:00.000Z"}},
  {"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"15","Unit":"Days"}},
  {"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"20","Unit":"Hours"}}
]"#;

#[test]
fn parses_the_three_types() {
    let parsed = parse_policies(ALL_THREE).unwrap();
    let policies: Vec<Policy> = parsed.iter().map(|p| p.policy.clone()).collect();
    assert_eq!(
        policies,
        vec![
            Policy::Expiration { at: EXPIRES },
            Policy::ExpirationNotification {
                amount: 15,
                unit: Unit::Days
            },
            Policy::NoChangeNotification {
                amount: 20,
                unit: Unit::Hours
            },
        ]
    );
    assert_eq!(parsed[0].policy.type_name(), "Expiration");
    let text: serde_json::Value = serde_json::from_str(&parsed[1].text).unwrap();
    assert_eq!(text["Attributes"]["Before"], "15");
    let inline = parsed[0].to_inline("Pending");
    assert_eq!(inline.policy_type.as_deref(), Some("Expiration"));
    assert_eq!(inline.policy_status.as_deref(), Some("Pending"));
    assert_eq!(inline.policy_text.as_deref(), Some(parsed[0].text.as_str()));
}

#[test]
fn timestamps() {
    assert_eq!(parse_timestamp("2030-01-01T00:00:00Z"), Some(EXPIRES));
    assert_eq!(parse_timestamp("2030-01-01T02:00:00+02:00"), Some(EXPIRES));
    assert_eq!(parse_timestamp("2030-01-01T00:00:00.000"), Some(EXPIRES));
    assert_eq!(parse_timestamp("2030-01-01T00:00:00"), Some(EXPIRES));
    assert_eq!(parse_timestamp("tomorrow"), None);
    assert_eq!(parse_timestamp("2030-13-01T00:00:00Z"), None);
}

#[test]
fn parse_errors_table() {
    use SsmErrorCode::*;
    let cases: &[(&str, SsmErrorCode)] = &[
        ("not json", InvalidPolicyAttributeException),
        (r#"{"Type":"Expiration"}"#, InvalidPolicyAttributeException),
        ("[1]", InvalidPolicyAttributeException),
        (r#"[{"Version":"1.0"}]"#, InvalidPolicyAttributeException),
        (
            r#"[{"Type":"Rotation","Version":"1.0","Attributes":{}}]"#,
            InvalidPolicyTypeException,
        ),
        (
            r#"[{"Type":"Expiration","Version":"2.0","Attributes":{"Timestamp":"2030-01-01T00:00:00Z"}}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"Expiration","Version":"1.0","Attributes":{}}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"soon"}}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"0","Unit":"Days"}}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"x","Unit":"Days"}}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"3","Unit":"Weeks"}}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"99999999999999999","Unit":"Days"}}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"Unit":"Days"}}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":"x"}]"#,
            InvalidPolicyAttributeException,
        ),
        (
            r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"1","Unit":"Days"}},
                {"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"2","Unit":"Days"}}]"#,
            IncompatiblePolicyException,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_policies(text).unwrap_err().code(), *want, "{text}");
    }
    // A number for Before/After is accepted as well as a string.
    let numeric = r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":2,"Unit":"Days"}}]"#;
    assert!(parse_policies(numeric).is_ok());
    assert!(parse_policies("[]").unwrap().is_empty());
}

#[test]
fn expiration_must_be_in_the_future() {
    let parsed = parse_policies(ALL_THREE).unwrap();
    assert!(check_not_expired(&parsed, EXPIRES - 1).is_ok());
    assert_eq!(
        check_not_expired(&parsed, EXPIRES).unwrap_err().code(),
        SsmErrorCode::InvalidPolicyAttributeException
    );
}

#[test]
fn next_due_table() {
    let parsed = parse_policies(ALL_THREE).unwrap();
    let modified = EXPIRES - 30 * DAY;
    let notify_at = EXPIRES - 15 * DAY;
    let no_change_at = modified + 20 * HOUR;
    let cases = [
        (
            modified,
            Some((
                no_change_at,
                PolicyAction::NotifyNoChange { since: modified },
            )),
        ),
        (
            no_change_at - 1,
            Some((
                no_change_at,
                PolicyAction::NotifyNoChange { since: modified },
            )),
        ),
        (
            no_change_at,
            Some((
                notify_at,
                PolicyAction::NotifyExpiration {
                    expires_at: EXPIRES,
                },
            )),
        ),
        (notify_at, Some((EXPIRES, PolicyAction::Expire))),
        (EXPIRES, None),
    ];
    for (now, want) in cases {
        assert_eq!(next_due(&parsed, modified, now), want, "now {now}");
    }
}

#[test]
fn due_table() {
    let parsed = parse_policies(ALL_THREE).unwrap();
    let modified = EXPIRES - 30 * DAY;
    let notify_at = EXPIRES - 15 * DAY;
    let no_change_at = modified + 20 * HOUR;
    let cases: Vec<(i64, i64, Vec<PolicyAction>)> = vec![
        (modified, no_change_at - 1, vec![]),
        (
            modified,
            no_change_at,
            vec![PolicyAction::NotifyNoChange { since: modified }],
        ),
        (
            no_change_at,
            notify_at,
            vec![PolicyAction::NotifyExpiration {
                expires_at: EXPIRES,
            }],
        ),
        (
            modified,
            EXPIRES + DAY,
            vec![
                PolicyAction::NotifyNoChange { since: modified },
                PolicyAction::NotifyExpiration {
                    expires_at: EXPIRES,
                },
                PolicyAction::Expire,
            ],
        ),
        (EXPIRES, EXPIRES + DAY, vec![]),
    ];
    for (since, now, want) in cases {
        assert_eq!(due(&parsed, modified, since, now), want, "({since}, {now}]");
    }
}

#[test]
fn expiration_notification_needs_an_expiration() {
    let only_notice = parse_policies(
        r#"[{"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"1","Unit":"Days"}}]"#,
    )
    .unwrap();
    assert_eq!(next_due(&only_notice, 0, 0), None);
    assert!(due(&only_notice, 0, 0, i64::MAX).is_empty());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn policies() -> impl Strategy<Value = Vec<ParsedPolicy>> {
        (0i64..400, 1i64..50, 1i64..50, any::<bool>()).prop_map(|(days, before, after, hours)| {
            let unit = if hours { "Hours" } else { "Days" };
            let text = format!(
                r#"[{{"Type":"Expiration","Version":"1.0","Attributes":{{"Timestamp":"{}"}}}},
                    {{"Type":"ExpirationNotification","Version":"1.0","Attributes":{{"Before":"{before}","Unit":"{unit}"}}}},
                    {{"Type":"NoChangeNotification","Version":"1.0","Attributes":{{"After":"{after}","Unit":"{unit}"}}}}]"#,
                chrono::DateTime::from_timestamp(EXPIRES + days * DAY, 0).unwrap().to_rfc3339()
            );
            parse_policies(&text).unwrap()
        })
    }

    proptest! {
        // Consecutive windows fire every event exactly once.
        #[test]
        fn windows_partition_events(
            parsed in policies(),
            a in 0i64..1000, b in 0i64..1000,
        ) {
            let modified = EXPIRES - 100 * DAY;
            let start = modified;
            let middle = start + a * DAY;
            let end = middle + b * DAY;
            let mut split = due(&parsed, modified, start, middle);
            split.extend(due(&parsed, modified, middle, end));
            prop_assert_eq!(split, due(&parsed, modified, start, end));
        }

        // What next_due announces is what due fires when that time comes.
        #[test]
        fn next_due_agrees_with_due(parsed in policies(), offset in 0i64..(800 * DAY)) {
            let modified = EXPIRES - 100 * DAY;
            let now = modified + offset;
            match next_due(&parsed, modified, now) {
                Some((at, action)) => {
                    prop_assert!(at > now);
                    let fired = due(&parsed, modified, now, at);
                    prop_assert!(fired.contains(&action));
                    prop_assert!(due(&parsed, modified, now, at - 1).is_empty());
                }
                None => prop_assert!(due(&parsed, modified, now, i64::MAX).is_empty()),
            }
        }

        #[test]
        fn parsing_never_panics(text in any::<String>()) {
            let _ = parse_policies(&text);
        }
    }
}
