//! Types, tiers, values, patterns and version history.

use operon_params::ParamError;
use operon_params::model::*;
use operon_params::ssm::SsmErrorCode;

#[test]
fn types_tiers_and_data_types_parse_in_aws_spelling() {
    for ty in [
        ParameterType::String,
        ParameterType::StringList,
        ParameterType::SecureString,
    ] {
        assert_eq!(ty.to_string().parse::<ParameterType>().unwrap(), ty);
    }
    for tier in [Tier::Standard, Tier::Advanced, Tier::IntelligentTiering] {
        assert_eq!(tier.to_string().parse::<Tier>().unwrap(), tier);
    }
    assert_eq!(Tier::IntelligentTiering.to_string(), "Intelligent-Tiering");
    assert_eq!(
        "string".parse::<ParameterType>().unwrap_err().to_string(),
        "1 validation error detected: Value 'string' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]"
    );
    assert_eq!(
        "Basic".parse::<Tier>().unwrap_err().code(),
        SsmErrorCode::ValidationException
    );
    assert_eq!("text".parse::<DataType>().unwrap(), DataType::Text);
    let err = "aws:ec2:image".parse::<DataType>().unwrap_err();
    assert_eq!(
        err,
        ParamError::UnsupportedDataType {
            value: "aws:ec2:image".into()
        }
    );
    assert!(err.to_string().contains("aws:ec2:image"));
}

#[test]
fn value_limits_table() {
    let s = ParameterType::String;
    let cases: &[(Tier, usize, bool)] = &[
        (Tier::Standard, 1, true),
        (Tier::Standard, 4096, true),
        (Tier::Standard, 4097, false),
        (Tier::Advanced, 8192, true),
        (Tier::Advanced, 8193, false),
        (Tier::IntelligentTiering, 8192, true),
        (Tier::IntelligentTiering, 8193, false),
    ];
    for (tier, len, ok) in cases {
        assert_eq!(
            check_value(s, *tier, &"x".repeat(*len)).is_ok(),
            *ok,
            "{tier} {len}"
        );
    }
    assert_eq!(
        check_value(s, Tier::Standard, "").unwrap_err(),
        ParamError::Empty { field: "value" }
    );
    // Bytes, not characters: 2049 two-byte characters exceed 4 KB.
    let err = check_value(s, Tier::Standard, &"é".repeat(2049)).unwrap_err();
    assert_eq!(
        err,
        ParamError::ValueTooLarge {
            len: 4098,
            max: 4096,
            tier: "Standard"
        }
    );
}

#[test]
fn effective_tier_table() {
    use Tier::*;
    let cases = [
        (Standard, 10, false, false, Standard),
        (Standard, 10, false, true, Advanced),
        (Advanced, 10, false, false, Advanced),
        (IntelligentTiering, 4096, false, false, Standard),
        (IntelligentTiering, 4097, false, false, Advanced),
        (IntelligentTiering, 10, true, false, Advanced),
        (IntelligentTiering, 10, false, true, Advanced),
    ];
    for (requested, len, policies, advanced, want) in cases {
        assert_eq!(effective_tier(requested, len, policies, advanced), want);
    }
    assert_eq!(
        check_policies_tier(Standard, true).unwrap_err().code(),
        SsmErrorCode::ValidationException
    );
    assert!(check_policies_tier(Advanced, true).is_ok());
    assert!(check_policies_tier(Standard, false).is_ok());
}

#[test]
fn description_limit() {
    assert!(check_description(&"d".repeat(1024)).is_ok());
    assert_eq!(
        check_description(&"d".repeat(1025)).unwrap_err(),
        ParamError::DescriptionTooLong { len: 1025 }
    );
}

#[test]
fn allowed_pattern_table() {
    let regex = compile_allowed_pattern("^\\d+$").unwrap();
    assert!(check_allowed_pattern(&regex, "^\\d+$", "123").is_ok());
    let err = check_allowed_pattern(&regex, "^\\d+$", "12a").unwrap_err();
    assert_eq!(err.code(), SsmErrorCode::ParameterPatternMismatchException);
    assert_eq!(
        err.to_string(),
        "Parameter value, cannot be validated against allowedPattern: ^\\d+$"
    );
    // The pattern must match the whole value.
    let partial = compile_allowed_pattern("[a-z]+").unwrap();
    assert!(check_allowed_pattern(&partial, "[a-z]+", "abc").is_ok());
    assert!(check_allowed_pattern(&partial, "[a-z]+", "abc1").is_err());
    let bad = compile_allowed_pattern("([a-z]").unwrap_err();
    assert_eq!(bad.code(), SsmErrorCode::InvalidAllowedPatternException);
    let long = compile_allowed_pattern(&"a".repeat(1025)).unwrap_err();
    assert_eq!(long.code(), SsmErrorCode::InvalidAllowedPatternException);
    assert!(compile_allowed_pattern(&"a".repeat(1024)).is_ok());
}

#[test]
fn string_list_items_split_on_commas() {
    assert_eq!(string_list_items("a,b,c"), vec!["a", "b", "c"]);
    assert_eq!(string_list_items("one"), vec!["one"]);
}

fn history(count: u64, labeled: &[u64]) -> Vec<VersionInfo> {
    (1..=count)
        .map(|version| VersionInfo {
            version,
            labels_count: usize::from(labeled.contains(&version)),
        })
        .collect()
}

#[test]
fn trim_history_table() {
    assert_eq!(trim_history("p", &history(99, &[])), Ok(None));
    assert_eq!(trim_history("p", &history(100, &[])), Ok(Some(1)));
    assert_eq!(trim_history("p", &history(100, &[1, 2, 3])), Ok(Some(4)));
    let trimmed: Vec<VersionInfo> = history(150, &[]).into_iter().skip(50).collect();
    assert_eq!(trim_history("p", &trimmed), Ok(Some(51)));
    let all: Vec<u64> = (1..=100).collect();
    let err = trim_history("/p", &history(100, &all)).unwrap_err();
    assert_eq!(err.code(), SsmErrorCode::ParameterMaxVersionLimitExceeded);
    assert!(err.to_string().contains("Version 1, the oldest version"));
    assert!(err.to_string().contains("/p"));
}

#[test]
fn constants_match_aws() {
    assert_eq!(MAX_VERSIONS, 100);
    assert_eq!(MAX_LABELS_PER_VERSION, 10);
    assert_eq!(MAX_LEVELS, 15);
}

#[test]
fn label_limit_per_version() {
    let labels = |n: usize| (0..n).map(|i| format!("L{i}")).collect::<Vec<_>>();
    assert!(check_label_limit("p", 1, &labels(9), &["new".into()]).is_ok());
    // Re-attaching labels already there does not count.
    assert!(check_label_limit("p", 1, &labels(10), &labels(3)).is_ok());
    let err = check_label_limit("p", 4, &labels(10), &["new".into()]).unwrap_err();
    assert_eq!(err.code(), SsmErrorCode::ParameterVersionLabelLimitExceeded);
    assert_eq!(
        err,
        ParamError::TooManyLabels {
            name: "p".into(),
            version: 4,
            would_have: 11
        }
    );
}
