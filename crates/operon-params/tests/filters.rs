//! DescribeParameters / GetParametersByPath filter validation and matching.

use std::collections::BTreeMap;

use operon_params::filters::*;
use operon_params::model::{ParameterType, Tier};
use operon_params::ssm::SsmErrorCode;

fn filter(key: &str, option: Option<&str>, values: &[&str]) -> ParameterStringFilter {
    ParameterStringFilter {
        key: key.into(),
        option: option.map(Into::into),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

fn describe_code(f: ParameterStringFilter) -> Option<SsmErrorCode> {
    validate_filters(FilterContext::DescribeParameters, &[f])
        .err()
        .map(|err| err.code())
}

fn by_path_code(f: ParameterStringFilter) -> Option<SsmErrorCode> {
    validate_by_path_filters(&[f]).err().map(|err| err.code())
}

#[test]
fn describe_filter_validation_table() {
    use SsmErrorCode::*;
    let long = "v".repeat(1025);
    let fifty_one: Vec<String> = (0..51).map(|i| format!("v{i}")).collect();
    let fifty_one: Vec<&str> = fifty_one.iter().map(String::as_str).collect();
    let cases: Vec<(ParameterStringFilter, Option<SsmErrorCode>)> = vec![
        (filter("Name", None, &["/a"]), None),
        (filter("Name", Some("Equals"), &["/a"]), None),
        (filter("Name", Some("BeginsWith"), &["/a"]), None),
        (filter("Name", Some("Contains"), &["db"]), None),
        (filter("Type", Some("Equals"), &["SecureString"]), None),
        (
            filter("Type", Some("Contains"), &["Secure"]),
            Some(InvalidFilterOption),
        ),
        (filter("Type", None, &["Secret"]), Some(InvalidFilterValue)),
        (filter("KeyId", Some("BeginsWith"), &["alias/"]), None),
        (filter("Path", None, &["/a"]), None),
        (filter("Path", Some("Recursive"), &["/a"]), None),
        (filter("Path", Some("OneLevel"), &["/"]), None),
        (
            filter("Path", Some("Equals"), &["/a"]),
            Some(InvalidFilterOption),
        ),
        (
            filter("Path", Some("Recursive"), &["a"]),
            Some(InvalidFilterValue),
        ),
        (filter("Tier", None, &["Intelligent-Tiering"]), None),
        (filter("Tier", None, &["Premium"]), Some(InvalidFilterValue)),
        (filter("DataType", None, &["text"]), None),
        (
            filter("DataType", None, &["json"]),
            Some(InvalidFilterValue),
        ),
        (filter("Label", None, &["Prod"]), Some(InvalidFilterKey)),
        (filter("tag:env", None, &["prod"]), None),
        (filter("tag:env", Some("BeginsWith"), &["pr"]), None),
        (filter("tag:", None, &["prod"]), Some(InvalidFilterKey)),
        (filter("tag-key", None, &["env"]), Some(InvalidFilterKey)),
        (filter("name", None, &["x"]), Some(InvalidFilterKey)),
        (
            filter("Name", Some("Like"), &["x"]),
            Some(InvalidFilterOption),
        ),
        (filter("Name", None, &[]), Some(InvalidFilterValue)),
        (filter("Name", None, &[""]), Some(InvalidFilterValue)),
        (filter("Name", None, &[&long]), Some(InvalidFilterValue)),
        (filter("Name", None, &fifty_one), Some(InvalidFilterValue)),
        (filter("tag:env", None, &[]), None),
    ];
    for (f, want) in cases {
        assert_eq!(describe_code(f.clone()), want, "{f:?}");
    }
}

#[test]
fn by_path_filter_validation_table() {
    use SsmErrorCode::*;
    let cases = vec![
        (filter("Type", None, &["String"]), None),
        (filter("KeyId", Some("BeginsWith"), &["alias/"]), None),
        (filter("Label", None, &["Prod"]), None),
        (filter("Label", Some("Equals"), &["Prod"]), None),
        (
            filter("Label", Some("BeginsWith"), &["Pr"]),
            Some(InvalidFilterOption),
        ),
        (filter("Name", None, &["/a"]), Some(InvalidFilterKey)),
        (filter("Path", None, &["/a"]), Some(InvalidFilterKey)),
        (filter("Tier", None, &["Standard"]), Some(InvalidFilterKey)),
        (filter("DataType", None, &["text"]), Some(InvalidFilterKey)),
        (filter("tag:env", None, &["prod"]), Some(InvalidFilterKey)),
        (
            filter("Type", Some("Contains"), &["S"]),
            Some(InvalidFilterOption),
        ),
    ];
    for (f, want) in cases {
        assert_eq!(by_path_code(f.clone()), want, "{f:?}");
    }
    let err = validate_by_path_filters(&[filter("Name", None, &["/a"])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The following filter key is not valid: Name. Valid filter keys include: [Type, KeyId, Label]."
    );
}

#[test]
fn defaults_and_duplicates() {
    let path = validate_filters(
        FilterContext::DescribeParameters,
        &[filter("Path", None, &["/a"])],
    )
    .unwrap();
    assert_eq!(path[0].option, FilterOption::OneLevel);
    let name = validate_filters(
        FilterContext::DescribeParameters,
        &[filter("Name", None, &["a"])],
    )
    .unwrap();
    assert_eq!(name[0].option, FilterOption::Equals);
    let dup = validate_filters(
        FilterContext::DescribeParameters,
        &[filter("Name", None, &["a"]), filter("Name", None, &["b"])],
    )
    .unwrap_err();
    assert_eq!(dup.code(), SsmErrorCode::ValidationException);
    // Two different tags are two different keys.
    assert!(
        validate_filters(
            FilterContext::DescribeParameters,
            &[filter("tag:a", None, &["1"]), filter("tag:b", None, &["2"])],
        )
        .is_ok()
    );
}

#[test]
fn legacy_filters() {
    let legacy = [ParametersFilter {
        key: "Type".into(),
        values: vec!["String".into()],
    }];
    let converted = validate_describe_filters(Some(&legacy), None).unwrap();
    assert_eq!(converted[0].key, FilterKey::Type);
    assert_eq!(converted[0].option, FilterOption::Equals);
    let path = [ParametersFilter {
        key: "Path".into(),
        values: vec!["/a".into()],
    }];
    assert_eq!(
        validate_describe_filters(Some(&path), None)
            .unwrap_err()
            .code(),
        SsmErrorCode::InvalidFilterKey
    );
    let both = validate_describe_filters(Some(&legacy), Some(&[filter("Name", None, &["a"])]))
        .unwrap_err();
    assert_eq!(both.code(), SsmErrorCode::ValidationException);
    assert!(validate_describe_filters(None, None).unwrap().is_empty());
}

fn meta() -> ParameterMeta {
    ParameterMeta {
        name: "/prod/db/password".into(),
        parameter_type: ParameterType::SecureString,
        key_id: Some("alias/aws/ssm".into()),
        tier: Tier::Advanced,
        data_type: "text".into(),
        labels: vec!["Live".into()],
        tags: BTreeMap::from([("env".to_string(), "production".to_string())]),
        description: None,
    }
}

fn matches_describe(filters: &[ParameterStringFilter]) -> bool {
    let validated = validate_filters(FilterContext::DescribeParameters, filters).unwrap();
    matches(&meta(), &validated)
}

#[test]
fn matching_table() {
    let cases: Vec<(Vec<ParameterStringFilter>, bool)> = vec![
        (vec![], true),
        (vec![filter("Name", None, &["/prod/db/password"])], true),
        (vec![filter("Name", None, &["/prod/db"])], false),
        (vec![filter("Name", Some("BeginsWith"), &["/prod/"])], true),
        (
            vec![filter("Name", Some("BeginsWith"), &["/dev/", "/prod/"])],
            true,
        ),
        (vec![filter("Name", Some("Contains"), &["db"])], true),
        (vec![filter("Name", Some("Contains"), &["DB"])], false),
        (vec![filter("Type", None, &["SecureString"])], true),
        (vec![filter("Type", None, &["String"])], false),
        (vec![filter("Type", Some("BeginsWith"), &["Secure"])], true),
        (vec![filter("KeyId", None, &["alias/aws/ssm"])], true),
        (vec![filter("Tier", None, &["Standard"])], false),
        (vec![filter("Tier", None, &["Advanced"])], true),
        (vec![filter("DataType", None, &["text"])], true),
        (vec![filter("Path", None, &["/prod"])], false),
        (vec![filter("Path", None, &["/prod/db"])], true),
        (vec![filter("Path", Some("Recursive"), &["/prod"])], true),
        (vec![filter("Path", Some("Recursive"), &["/dev"])], false),
        (vec![filter("tag:env", None, &["production"])], true),
        (vec![filter("tag:env", None, &["prod"])], false),
        (vec![filter("tag:env", Some("BeginsWith"), &["prod"])], true),
        (vec![filter("tag:env", None, &[])], true),
        (vec![filter("tag:team", None, &[])], false),
        (
            vec![
                filter("Type", None, &["SecureString"]),
                filter("Tier", None, &["Standard"]),
            ],
            false,
        ),
        (
            vec![
                filter("Type", None, &["SecureString"]),
                filter("tag:env", None, &["production"]),
            ],
            true,
        ),
    ];
    for (filters, want) in cases {
        assert_eq!(matches_describe(&filters), want, "{filters:?}");
    }
}

#[test]
fn matching_labels_and_missing_key_id() {
    let by_label = validate_by_path_filters(&[filter("Label", None, &["Live"])]).unwrap();
    assert!(matches(&meta(), &by_label));
    let other = validate_by_path_filters(&[filter("Label", None, &["Old"])]).unwrap();
    assert!(!matches(&meta(), &other));
    let key = validate_by_path_filters(&[filter("KeyId", None, &["alias/aws/ssm"])]).unwrap();
    let plain = ParameterMeta {
        key_id: None,
        ..meta()
    };
    assert!(!matches(&plain, &key));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // A name one level under a path is also under it recursively.
        #[test]
        fn one_level_implies_recursive(
            segments in prop::collection::vec("[a-c]{1,2}", 1..6),
            cut in 0usize..6,
        ) {
            let name = format!("/{}", segments.join("/"));
            let cut = cut.min(segments.len());
            let path = format!("/{}", segments[..cut].join("/"));
            let meta = ParameterMeta { name, ..ParameterMeta::default() };
            let one = validate_filters(FilterContext::DescribeParameters, &[filter("Path", Some("OneLevel"), &[&path])]).unwrap();
            let deep = validate_filters(FilterContext::DescribeParameters, &[filter("Path", Some("Recursive"), &[&path])]).unwrap();
            if matches(&meta, &one) {
                prop_assert!(matches(&meta, &deep));
            }
            // Exactly the parent path matches one level.
            prop_assert_eq!(matches(&meta, &one), cut + 1 == segments.len());
        }

        #[test]
        fn validation_never_panics(key in any::<String>(), option in proptest::option::of(any::<String>()), values in prop::collection::vec(any::<String>(), 0..3)) {
            let f = ParameterStringFilter { key, option, values: Some(values) };
            let _ = validate_filters(FilterContext::DescribeParameters, std::slice::from_ref(&f));
            let _ = validate_by_path_filters(&[f]);
        }
    }
}
