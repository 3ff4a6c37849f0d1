//! Unit tests of the event pages' pure parts: target rows, pattern
//! summaries, the redrive and archive forms.

use super::*;
use serde_json::json;

#[test]
fn a_webhook_target_says_it_signs_and_how_long_it_retries() {
    let row = TargetRow::new(&json!({
        "Id": "hook", "Kind": "webhook", "Url": "https://example.test/in",
        "HasSecret": true, "RoleArn": "role/notifier",
        "RetryPolicy": {"MaximumRetryAttempts": 3}
    }));
    assert_eq!(row.id, "hook");
    assert_eq!(row.destination, "https://example.test/in (signed)");
    assert_eq!(row.role, "role/notifier");
    assert_eq!(row.input, "");
    assert_eq!(row.retry, "3 retries within 86400 s, then a dead letter");
}

#[test]
fn a_run_command_target_names_its_document_and_nodes_and_its_input() {
    let row = TargetRow::new(&json!({
        "Id": "fix", "Kind": "run-command", "NodeIds": ["web-1"],
        "Targets": ["tag:env=prod"],
        "InputTransformer": {"InputPathsMap": {"n": "$.detail.node"},
            "InputTemplate": "{\"node\": <n>}"}
    }));
    assert_eq!(
        row.destination,
        "the default document on web-1 tag:env=prod"
    );
    assert!(
        row.input.starts_with("InputTransformer {\n"),
        "{}",
        row.input
    );
    assert!(
        row.input.contains("\"n\": \"$.detail.node\""),
        "{}",
        row.input
    );
    assert_eq!(row.retry, "185 retries within 86400 s, then a dead letter");
    let constant = TargetRow::new(&json!({"Id": "l", "Kind": "log", "Input": "{\"a\":1}"}));
    assert_eq!(constant.destination, "the server log");
    assert_eq!(constant.input, "Input {\n  \"a\": 1\n}");
}

#[test]
fn a_long_pattern_is_summarized_on_one_line() {
    let short = json!({"source": ["app"]});
    assert_eq!(summary(&short), r#"{"source":["app"]}"#);
    let long = json!({"detail": {"message": ["x".repeat(200)]}});
    let text = summary(&long);
    assert_eq!(text.chars().count(), SUMMARY_LENGTH + 1);
    assert!(text.ends_with('…'));
}

#[test]
fn the_redrive_form_collects_every_ticked_id() {
    let pairs = [
        ("csrf", "s"),
        ("id", "a"),
        ("id", "b"),
        ("id", " "),
        ("rule", ""),
    ];
    let form = RedriveForm::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    assert_eq!(form.csrf, "s");
    assert_eq!(form.request.ids, ["a", "b"]);
    assert!(!form.request.all);
    assert_eq!(form.request.rule, None);
}

#[test]
fn the_archive_form_takes_a_pattern_object_and_whole_days() {
    let form = ArchiveForm {
        name: " ar1 ".into(),
        bus: "ops".into(),
        pattern: "{\n  \"source\": [\"app\"]\n}".into(),
        retention_days: "30".into(),
        ..ArchiveForm::default()
    };
    let new = form.new_archive().unwrap();
    assert_eq!(new.name, "ar1");
    assert_eq!(new.bus.as_deref(), Some("ops"));
    assert_eq!(new.pattern.as_deref(), Some(r#"{"source":["app"]}"#));
    assert_eq!(new.retention_days, Some(30));
    let every = ArchiveForm::default().new_archive().unwrap();
    assert_eq!(
        (every.bus, every.pattern, every.retention_days),
        (None, None, None)
    );
    let list = ArchiveForm {
        pattern: "[1]".into(),
        ..ArchiveForm::default()
    };
    assert!(list.new_archive().unwrap_err().contains("JSON object"));
    let days = ArchiveForm {
        retention_days: "a week".into(),
        ..ArchiveForm::default()
    };
    assert!(days.new_archive().unwrap_err().contains("a week"));
}

#[test]
fn replay_rules_are_names_separated_by_spaces_commas_or_lines() {
    assert_eq!(words(" r1, r2\nr3 "), ["r1", "r2", "r3"]);
    assert!(words("  ").is_empty());
}
