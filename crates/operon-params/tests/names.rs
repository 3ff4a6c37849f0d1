//! Names, paths, labels, selectors and ARNs.

use operon_params::ParamError;
use operon_params::names::*;
use operon_params::ssm::SsmErrorCode;
use proptest::prelude::*;

fn code_of(name: &str) -> Option<SsmErrorCode> {
    validate_name(name).err().map(|err| err.code())
}

#[test]
fn name_rules_table() {
    use SsmErrorCode::*;
    let deep_ok = "/a".repeat(15);
    let deep_bad = "/a".repeat(16);
    let long_ok = format!("/{}", "x".repeat(MAX_NAME_LEN - 1));
    let long_bad = format!("/{}", "x".repeat(MAX_NAME_LEN));
    let cases: &[(&str, Option<SsmErrorCode>)] = &[
        ("MyParameter", None),
        ("my.param-1_x", None),
        ("/Dev/DBServer/MySQL/db-string13", None),
        ("/a", None),
        (&deep_ok, None),
        (&long_ok, None),
        ("", Some(ValidationException)),
        (&long_bad, Some(ValidationException)),
        ("has space", Some(ValidationException)),
        ("semi;colon", Some(ValidationException)),
        ("name:3", Some(ValidationException)),
        ("é", Some(ValidationException)),
        ("Dev/x", Some(ValidationException)),
        ("/", Some(ValidationException)),
        ("/a//b", Some(ValidationException)),
        ("/a/b/", Some(ValidationException)),
        ("aws", Some(ValidationException)),
        ("AWSparam", Some(ValidationException)),
        ("/aws/x", Some(ValidationException)),
        ("/SsM/x", Some(ValidationException)),
        ("ssmx", Some(ValidationException)),
        ("/x/aws", None),
        ("aw", None),
        ("/sm/x", None),
        (&deep_bad, Some(HierarchyLevelLimitExceededException)),
    ];
    for (name, want) in cases {
        assert_eq!(code_of(name), *want, "name {name:?}");
    }
}

#[test]
fn name_errors_say_what_was_wrong() {
    assert_eq!(
        validate_name("/ssm/x").unwrap_err().to_string(),
        "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive)."
    );
    assert_eq!(
        validate_name("/a/b c").unwrap_err(),
        ParamError::NameInvalidChar {
            name: "/a/b c".into(),
            ch: ' ',
            position: 4
        }
    );
    assert_eq!(
        validate_name(&"/a".repeat(16)).unwrap_err(),
        ParamError::HierarchyTooDeep {
            name: "/a".repeat(16),
            levels: 16
        }
    );
    assert!(matches!(
        validate_name("a/b").unwrap_err(),
        ParamError::NotFullyQualified { .. }
    ));
}

#[test]
fn levels_count_segments() {
    assert_eq!(levels("a"), 1);
    assert_eq!(levels("/a"), 1);
    assert_eq!(levels("/a/b/c"), 3);
    assert_eq!(levels("/"), 0);
}

#[test]
fn path_rules_table() {
    let cases: &[(&str, bool)] = &[
        ("/", true),
        ("/a", true),
        ("/a/", true),
        ("/a/b/c", true),
        (&"/a".repeat(15), true),
        (&"/a".repeat(16), false),
        ("a", false),
        ("", false),
        ("//", false),
        ("/a//b", false),
        ("/a b", false),
    ];
    for (path, ok) in cases {
        assert_eq!(validate_path(path).is_ok(), *ok, "path {path:?}");
    }
    assert_eq!(
        validate_path(&"/a".repeat(16)).unwrap_err().code(),
        SsmErrorCode::HierarchyLevelLimitExceededException
    );
}

#[test]
fn under_path_table() {
    let cases: &[(&str, &str, bool, bool)] = &[
        ("/a/b", "/a", false, true),
        ("/a/b", "/a/", false, true),
        ("/a/b/c", "/a", false, false),
        ("/a/b/c", "/a", true, true),
        ("/a", "/a", true, false),
        ("/ab/c", "/a", true, false),
        ("/a", "/", false, true),
        ("/a/b", "/", false, false),
        ("/a/b", "/", true, true),
        ("plain", "/", true, false),
        ("/b/a", "/a", true, false),
    ];
    for (name, path, recursive, want) in cases {
        assert_eq!(
            under_path(name, path, *recursive),
            *want,
            "{name} under {path} recursive={recursive}"
        );
    }
}

#[test]
fn label_rules_table() {
    let cases: &[(&str, Result<(), LabelProblem>)] = &[
        ("Production", Ok(())),
        ("prod.v1-x_y", Ok(())),
        ("a1", Ok(())),
        ("", Err(LabelProblem::Empty)),
        ("1abc", Err(LabelProblem::BeginsWithDigit)),
        ("awsLabel", Err(LabelProblem::ReservedPrefix)),
        ("SSM", Err(LabelProblem::ReservedPrefix)),
        ("a/b", Err(LabelProblem::InvalidChar)),
        ("a b", Err(LabelProblem::InvalidChar)),
        ("a:b", Err(LabelProblem::InvalidChar)),
    ];
    for (label, want) in cases {
        assert_eq!(validate_label(label), *want, "label {label:?}");
    }
    assert_eq!(validate_label(&"a".repeat(100)), Ok(()));
    assert_eq!(validate_label(&"a".repeat(101)), Err(LabelProblem::TooLong));
}

#[test]
fn split_labels_keeps_order() {
    let (valid, invalid) = split_labels(&["Prod", "1bad", "beta", "aws-x"]);
    assert_eq!(valid, vec!["Prod", "beta"]);
    assert_eq!(invalid, vec!["1bad", "aws-x"]);
}

#[test]
fn selector_table() {
    assert_eq!(parse_selector("/a/b").unwrap(), ("/a/b", Selector::Latest));
    assert_eq!(
        parse_selector("/a/b:3").unwrap(),
        ("/a/b", Selector::Version(3))
    );
    assert_eq!(
        parse_selector("name:Prod").unwrap(),
        ("name", Selector::Label("Prod".into()))
    );
    for bad in [
        "name:0",
        "name:",
        ":3",
        "name:1:2",
        "name:99999999999999999999999",
        "name:a b",
    ] {
        let err = parse_selector(bad).unwrap_err();
        assert_eq!(err.code(), SsmErrorCode::ValidationException, "{bad}");
    }
    assert_eq!(Selector::Version(3).to_wire().as_deref(), Some(":3"));
    assert_eq!(Selector::Label("L".into()).to_wire().as_deref(), Some(":L"));
    assert_eq!(Selector::Latest.to_wire(), None);
}

#[test]
fn arn_forms() {
    assert_eq!(
        arn("us-east-2", "111122223333", "MyGitHubPassword"),
        "arn:aws:ssm:us-east-2:111122223333:parameter/MyGitHubPassword"
    );
    assert_eq!(
        arn("eu-west-1", "123", "/Dev/db"),
        "arn:aws:ssm:eu-west-1:123:parameter/Dev/db"
    );
}

fn segment() -> impl Strategy<Value = String> {
    // Start with a character that can't form "aws"/"ssm" so the prefix rule
    // does not interfere with the alphabet property.
    "[b-rt-zB-RT-Z0-9_.-][a-zA-Z0-9_.-]{0,20}"
}

proptest! {
    #[test]
    fn allowed_alphabet_within_limits_validates(segments in prop::collection::vec(segment(), 1..=15)) {
        let name = format!("/{}", segments.join("/"));
        prop_assert!(validate_name(&name).is_ok(), "{}", name);
        prop_assert!(validate_path(&name).is_ok(), "{}", name);
    }

    #[test]
    fn plain_names_validate(name in "[b-rt-zB-RT-Z0-9_.-][a-zA-Z0-9_.-]{0,200}") {
        prop_assert!(validate_name(&name).is_ok());
    }

    #[test]
    fn any_other_char_is_refused(
        head in "[b-z][a-z]{0,10}",
        bad in any::<char>().prop_filter("outside alphabet", |c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c))),
        tail in "[a-z]{0,10}",
    ) {
        let name = format!("/{head}{bad}{tail}");
        let is_invalid_char = matches!(validate_name(&name), Err(ParamError::NameInvalidChar { .. }));
        prop_assert!(is_invalid_char, "{:?}", name);
    }

    #[test]
    fn validation_never_panics(input in any::<String>()) {
        let _ = validate_name(&input);
        let _ = validate_path(&input);
        let _ = validate_label(&input);
        let _ = parse_selector(&input);
    }

    #[test]
    fn valid_labels_round_trip_as_selectors(label in "[a-zA-Z][a-zA-Z0-9._-]{0,40}") {
        prop_assume!(validate_label(&label).is_ok());
        let input = format!("/p:{label}");
        prop_assert_eq!(parse_selector(&input).unwrap(), ("/p", Selector::Label(label.clone())));
    }
}

#[test]
fn normalize_trims_outer_spaces_only() {
    assert_eq!(normalize_name("  /a/b "), "/a/b");
    assert!(validate_name(normalize_name(" /a/b ")).is_ok());
    assert!(validate_name(normalize_name("/a b")).is_err());
}
