//! event-ruler's 14 citylots benchmark rule sets on the synthetic stand-in for
//! citylots2 (213,068 events, generated at test time by the corpus's
//! `gen_citylots.py`): every per-rule match count must equal the expected one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use operon_pattern::{Matcher, Pattern, Scratch};
use serde_json::Value;

/// Generates the events (once per target dir) and returns the uncompressed file.
fn citylots_events() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("citylots-synth");
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("citylots.jsonl");
    if plain.exists() {
        return plain;
    }
    let generator = common::eventbridge_file("gen_citylots.py");
    let gz = dir.join("citylots.jsonl.gz");
    let status = Command::new("python3")
        .arg(&generator)
        .arg(&gz)
        .status()
        .expect("python3 is needed to generate the citylots data");
    assert!(status.success(), "gen_citylots.py failed");
    let unzip = "import gzip,shutil,sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[2] + '.part', 'wb'))";
    let status = Command::new("python3")
        .args(["-c", unzip])
        .arg(&gz)
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success(), "decompressing the citylots data failed");
    std::fs::rename(dir.join("citylots.jsonl.part"), &plain).unwrap();
    plain
}

#[test]
fn every_benchmark_rule_set_count_matches() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(common::eventbridge_file("citylots-synth.expected.json")).unwrap(),
    )
    .unwrap();
    let mut matcher: Matcher<usize> = Matcher::new();
    let mut names = Vec::new();
    let mut want = Vec::new();
    for set in expected["rule_sets"].as_array().unwrap() {
        for (i, rule) in set["rules"].as_array().unwrap().iter().enumerate() {
            let pattern = Pattern::from_value(&rule["pattern"]).expect("benchmark rules are valid");
            matcher.add(names.len(), &pattern);
            names.push(format!("{}/r{i}", set["name"].as_str().unwrap()));
            want.push(rule["expected_matches"].as_u64().unwrap());
        }
    }
    assert_eq!(names.len(), 70, "14 rule sets of 5 rules");

    let text = std::fs::read_to_string(citylots_events()).unwrap();
    let mut counts = vec![0u64; names.len()];
    let mut scratch = Scratch::default();
    let mut events = 0u64;
    for line in text.lines() {
        events += 1;
        matcher
            .for_each_match(line, &mut scratch, |&i| counts[i] += 1)
            .expect("events are valid");
    }
    assert_eq!(events, expected["events"].as_u64().unwrap());
    let wrong: Vec<String> = names
        .iter()
        .zip(counts.iter().zip(&want))
        .filter(|(_, (got, want))| got != want)
        .map(|(name, (got, want))| format!("{name}: got {got}, expected {want}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
