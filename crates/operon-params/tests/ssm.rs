//! The JSON 1.1 wire: serde round trips, request validation, error bodies.
//!
//! The JSON documents below follow the request/response shapes of the AWS
//! Systems Manager API Reference (docs.aws.amazon.com/systems-manager/latest/
//! APIReference: API_GetParameter, API_PutParameter, API_GetParametersByPath,
//! API_DescribeParameters, API_LabelParameterVersion, API_DeleteParameters
//! "Examples" sections), with their example names and values.

use operon_params::filters::ParameterStringFilter;
use operon_params::ssm::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Parses `text` as `T`, serializes it back and compares the JSON values.
fn round_trip<T: Serialize + DeserializeOwned>(text: &str) -> T {
    let parsed: T = serde_json::from_str(text).unwrap();
    let back = serde_json::to_value(&parsed).unwrap();
    let original: Value = serde_json::from_str(text).unwrap();
    assert_eq!(back, original);
    parsed
}

#[test]
fn get_parameter_example() {
    // API_GetParameter example.
    let request: GetParameterRequest =
        round_trip(r#"{"Name": "MyGitHubPassword", "WithDecryption": true}"#);
    assert_eq!(request.name, "MyGitHubPassword");
    let response: GetParameterResponse = round_trip(
        r#"{
            "Parameter": {
                "ARN": "arn:aws:ssm:us-east-2:111122223333:parameter/MyGitHubPassword",
                "DataType": "text",
                "LastModifiedDate": 1582657288.8,
                "Name": "MyGitHubPassword",
                "Type": "SecureString",
                "Value": "AYA39c3b3042cd2aEXAMPLE/AKIAIOSFODNN7EXAMPLE/fh983hg9awEXAMPLE==",
                "Version": 3
            }
        }"#,
    );
    assert_eq!(response.parameter.version, 3);
    assert_eq!(response.parameter.last_modified_date, 1582657288.8);
    assert_eq!(response.parameter.selector, None);
}

#[test]
fn parameter_serializes_selector_only_when_present() {
    let parameter = Parameter {
        name: "/p".into(),
        parameter_type: "String".into(),
        value: "v".into(),
        version: 2,
        selector: Some(":2".into()),
        source_result: None,
        last_modified_date: epoch_seconds(1_700_000_000_500),
        arn: "arn:aws:ssm:us-east-1:1:parameter/p".into(),
        data_type: "text".into(),
    };
    let text = serde_json::to_string(&parameter).unwrap();
    assert!(text.contains(r#""Selector":":2""#));
    assert!(!text.contains("SourceResult"));
    assert!(text.contains(r#""LastModifiedDate":1700000000.5"#));
    assert!(
        serde_json::to_string(&epoch_seconds(1_700_000_000_000))
            .unwrap()
            .contains('.')
    );
}

#[test]
fn put_parameter_example() {
    // API_PutParameter example.
    let request: PutParameterRequest = round_trip(
        r#"{"Name": "EC2TestServerType", "Type": "String", "Value": "t2.large", "Overwrite": true}"#,
    );
    assert_eq!(request.parameter_type.as_deref(), Some("String"));
    assert_eq!(request.overwrite, Some(true));
    assert!(request.validate().is_ok());
    let response: PutParameterResponse = round_trip(r#"{"Tier": "Standard", "Version": 2}"#);
    assert_eq!(response.version, 2);
}

#[test]
fn put_parameter_with_everything() {
    let request: PutParameterRequest = round_trip(
        r#"{"Name": "/Finance/Payroll/elixir3131", "Description": "d", "Value": "P@sSwW)rd",
            "Type": "SecureString", "KeyId": "alias/aws/ssm", "AllowedPattern": ".*",
            "Tags": [{"Key": "Region", "Value": "East"}], "Tier": "Advanced",
            "Policies": "[]", "DataType": "text"}"#,
    );
    assert_eq!(request.tags.unwrap()[0].key, "Region");
}

#[test]
fn get_parameters_by_path_example() {
    // API_GetParametersByPath example.
    let request: GetParametersByPathRequest = round_trip(
        r#"{"Path": "/Branch312/Dev/", "Recursive": true,
            "ParameterFilters": [{"Key": "Type", "Option": "Equals", "Values": ["String"]}],
            "MaxResults": 10}"#,
    );
    assert!(request.validate().is_ok());
    let response: GetParametersByPathResponse = round_trip(
        r#"{"Parameters": [{
              "ARN": "arn:aws:ssm:us-east-2:111122223333:parameter/Branch312/Dev/Engineer1",
              "DataType": "text", "LastModifiedDate": 1582154764.222, "Name": "/Branch312/Dev/Engineer1",
              "Type": "String", "Value": "Saanvi Sarkar", "Version": 1}],
            "NextToken": "abc"}"#,
    );
    assert_eq!(response.parameters.len(), 1);
}

#[test]
fn describe_parameters_example() {
    // API_DescribeParameters example.
    let request: DescribeParametersRequest = round_trip(
        r#"{"ParameterFilters": [{"Key": "Name", "Values": ["MySecureStringParameter"]}]}"#,
    );
    assert_eq!(
        request.parameter_filters.unwrap()[0],
        ParameterStringFilter {
            key: "Name".into(),
            option: None,
            values: Some(vec!["MySecureStringParameter".into()])
        }
    );
    let response: DescribeParametersResponse = round_trip(
        r#"{"Parameters": [{
              "ARN": "arn:aws:ssm:us-east-2:111122223333:parameter/MySecureStringParameter",
              "Name": "MySecureStringParameter", "Type": "SecureString", "KeyId": "alias/aws/ssm",
              "LastModifiedDate": 1582155479.205,
              "LastModifiedUser": "arn:aws:sts::111122223333:assumed-role/Admin/Richard-Roe-Managed",
              "Description": "This is a secure parameter", "Version": 3, "Tier": "Advanced",
              "Policies": [{"PolicyText": "{\"Type\":\"Expiration\",\"Version\":\"1.0\",\"Attributes\":{\"Timestamp\":\"2020-07-07T22:30:00Z\"}}",
                            "PolicyType": "Expiration", "PolicyStatus": "Pending"}],
              "DataType": "text"}]}"#,
    );
    assert_eq!(
        response.parameters[0].policies[0].policy_type.as_deref(),
        Some("Expiration")
    );
}

#[test]
fn history_and_labels_and_deletes() {
    let history: GetParameterHistoryResponse = round_trip(
        r#"{"Parameters": [{"Name": "MyStringParameter", "Type": "String",
              "LastModifiedDate": 1582154711.976,
              "LastModifiedUser": "arn:aws:iam::111122223333:user/Mary-Major",
              "Description": "This is the first version of my String parameter",
              "Value": "Veni", "Version": 1, "Labels": [], "Tier": "Standard", "Policies": [],
              "DataType": "text"}]}"#,
    );
    assert_eq!(history.parameters[0].value, "Veni");
    let label: LabelParameterVersionResponse =
        round_trip(r#"{"InvalidLabels": [], "ParameterVersion": 1}"#);
    assert_eq!(label.parameter_version, 1);
    let unlabel: UnlabelParameterVersionResponse =
        round_trip(r#"{"RemovedLabels": ["Prod"], "InvalidLabels": ["1x"]}"#);
    assert_eq!(unlabel.invalid_labels, vec!["1x"]);
    let deleted: DeleteParametersResponse = round_trip(
        r#"{"DeletedParameters": ["MyParameter1", "MyParameter2"], "InvalidParameters": ["MyParameter3"]}"#,
    );
    assert_eq!(deleted.invalid_parameters, vec!["MyParameter3"]);
    let tags: ListTagsForResourceResponse =
        round_trip(r#"{"TagList": [{"Key": "Environment", "Value": "Production"}]}"#);
    assert_eq!(tags.tag_list[0].value, "Production");
    assert_eq!(serde_json::to_string(&EmptyResponse {}).unwrap(), "{}");
}

fn message(result: Result<(), SsmError>) -> String {
    let err = result.unwrap_err();
    assert_eq!(err.code, SsmErrorCode::ValidationException);
    err.message
}

#[test]
fn request_validation_messages() {
    let by_path = GetParametersByPathRequest {
        path: "/a".into(),
        max_results: Some(20),
        ..Default::default()
    };
    assert_eq!(
        message(by_path.validate()),
        "1 validation error detected: Value '20' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10"
    );
    let zero = GetParametersByPathRequest {
        path: "/a".into(),
        max_results: Some(0),
        ..Default::default()
    };
    assert!(message(zero.validate()).contains("greater than or equal to 1"));
    let history = GetParameterHistoryRequest {
        name: "p".into(),
        max_results: Some(51),
        ..Default::default()
    };
    assert!(message(history.validate()).contains("less than or equal to 50"));
    assert!(
        GetParameterHistoryRequest {
            name: "p".into(),
            max_results: Some(50),
            ..Default::default()
        }
        .validate()
        .is_ok()
    );
    let describe = DescribeParametersRequest {
        max_results: Some(51),
        ..Default::default()
    };
    assert!(message(describe.validate()).contains("'maxResults'"));
    let names: Vec<String> = (0..11).map(|i| format!("p{i}")).collect();
    let delete = DeleteParametersRequest {
        names: names.clone(),
    };
    assert!(message(delete.validate()).contains(
        "at 'names' failed to satisfy constraint: Member must have length less than or equal to 10"
    ));
    assert!(
        DeleteParametersRequest {
            names: names[..10].to_vec()
        }
        .validate()
        .is_ok()
    );
    assert!(
        message(DeleteParametersRequest { names: vec![] }.validate())
            .contains("greater than or equal to 1")
    );
    assert!(
        message(
            GetParametersRequest {
                names,
                with_decryption: None
            }
            .validate()
        )
        .contains("'names'")
    );
    let label = LabelParameterVersionRequest {
        name: "p".into(),
        parameter_version: None,
        labels: vec![],
    };
    assert!(message(label.validate()).contains("'labels'"));
    let unlabel = UnlabelParameterVersionRequest {
        name: "".into(),
        parameter_version: 0,
        labels: vec!["a".into()],
    };
    let text = message(unlabel.validate());
    assert!(text.starts_with("2 validation errors detected: "), "{text}");
    assert!(text.contains("; Value '0' at 'parameterVersion'"), "{text}");
    let put = PutParameterRequest {
        name: "p".into(),
        value: "v".into(),
        description: Some("d".repeat(1025)),
        ..Default::default()
    };
    assert!(message(put.validate()).contains("'description'"));
}

#[test]
fn tag_requests() {
    let ok = AddTagsToResourceRequest {
        resource_type: "Parameter".into(),
        resource_id: "/p".into(),
        tags: vec![Tag {
            key: "env".into(),
            value: "prod".into(),
        }],
    };
    assert!(ok.validate().is_ok());
    let wrong = AddTagsToResourceRequest {
        resource_type: "Document".into(),
        ..ok.clone()
    };
    assert_eq!(
        wrong.validate().unwrap_err().code,
        SsmErrorCode::InvalidResourceType
    );
    let empty_key = AddTagsToResourceRequest {
        tags: vec![Tag {
            key: "".into(),
            value: "".into(),
        }],
        ..ok.clone()
    };
    assert!(message(empty_key.validate()).contains("'tags.1.member.key'"));
    let list = ListTagsForResourceRequest {
        resource_type: "Parameter".into(),
        resource_id: "".into(),
    };
    assert_eq!(
        list.validate().unwrap_err().code,
        SsmErrorCode::ValidationException
    );
    let existing: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    assert!(
        too_many_tags(
            &existing,
            &[Tag {
                key: "k1".into(),
                value: "x".into()
            }]
        )
        .is_none()
    );
    assert_eq!(
        too_many_tags(
            &existing,
            &[Tag {
                key: "new".into(),
                value: "x".into()
            }]
        )
        .unwrap()
        .code,
        SsmErrorCode::TooManyTagsError
    );
}

#[test]
fn error_bodies_and_statuses() {
    let err = SsmError::parameter_not_found("/p");
    assert_eq!(err.http_status(), 400);
    let body: Value = serde_json::from_str(&err.to_body()).unwrap();
    assert_eq!(
        body,
        json!({"__type": "ParameterNotFound", "message": "Parameter /p not found."})
    );
    assert_eq!(
        SsmError::new(SsmErrorCode::InternalServerError, "x").http_status(),
        500
    );
    assert_eq!(SsmErrorCode::ValidationException.http_status(), 400);
    assert_eq!(
        SsmErrorCode::HierarchyLevelLimitExceededException.as_str(),
        "HierarchyLevelLimitExceededException"
    );
    assert_eq!(
        SsmError::already_exists("p").code,
        SsmErrorCode::ParameterAlreadyExists
    );
    assert_eq!(
        SsmError::version_not_found("p", "5").code,
        SsmErrorCode::ParameterVersionNotFound
    );
    let from_rule =
        SsmError::from(operon_params::names::validate_name(&"/a".repeat(16)).unwrap_err());
    assert_eq!(
        from_rule.code,
        SsmErrorCode::HierarchyLevelLimitExceededException
    );
}

#[test]
fn targets() {
    assert_eq!(
        Operation::from_target("AmazonSSM.GetParameter").unwrap(),
        Operation::GetParameter
    );
    assert_eq!(
        Operation::from_target("AmazonSSM.RemoveTagsFromResource").unwrap(),
        Operation::RemoveTagsFromResource
    );
    for bad in [
        "AmazonSSM.SendCommand",
        "GetParameter",
        "AmazonSSM.",
        "AWSEvents.PutRule",
    ] {
        assert_eq!(
            Operation::from_target(bad).unwrap_err().code,
            SsmErrorCode::UnknownOperationException,
            "{bad}"
        );
    }
}
