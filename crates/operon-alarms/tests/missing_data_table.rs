//! The examples of "How alarm state is evaluated when data is missing" in the
//! CloudWatch User Guide, page "Configuring how CloudWatch alarms treat
//! missing data":
//! https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data
//! In the data points column `0` is non-breaching, `X` breaching, `-`
//! missing, oldest first; CloudWatch retrieves the 5 most recent periods.

use operon_alarms::{AlarmConfig, Comparison, State, TreatMissingData, evaluate};

/// What the documentation's columns say; `Retain` = "Retain current state".
#[derive(Clone, Copy, Debug)]
enum Expect {
    Ok,
    Alarm,
    Insufficient,
    Retain,
}

const MODES: [TreatMissingData; 4] = [
    TreatMissingData::Missing,
    TreatMissingData::Ignore,
    TreatMissingData::Breaching,
    TreatMissingData::NotBreaching,
];

fn window(points: &str) -> Vec<Option<f64>> {
    points
        .split_whitespace()
        .map(|p| match p {
            "0" => Some(1.0),
            "X" => Some(100.0),
            _ => None,
        })
        .collect()
}

fn config(m: usize, n: usize, mode: TreatMissingData) -> AlarmConfig {
    AlarmConfig {
        period_secs: 300,
        evaluation_periods: n,
        datapoints_to_alarm: m,
        threshold: 50.0,
        comparison: Comparison::GreaterThanThreshold,
        treat_missing_data: mode,
    }
}

fn check(m: usize, n: usize, rows: &[(&str, [Expect; 4])]) {
    for (points, expected) in rows {
        for (mode, want) in MODES.iter().zip(expected) {
            for previous in [State::Ok, State::Alarm, State::InsufficientData] {
                let got = evaluate(&config(m, n, *mode), previous, &window(points)).state;
                let want_state = match want {
                    Expect::Ok => State::Ok,
                    Expect::Alarm => State::Alarm,
                    Expect::Insufficient => State::InsufficientData,
                    Expect::Retain => previous,
                };
                assert_eq!(
                    got, want_state,
                    "{m} of {n}, data {points:?}, {mode:?}, previous {previous:?}"
                );
            }
        }
    }
}

#[test]
fn three_out_of_three() {
    use Expect::*;
    check(
        3,
        3,
        &[
            //  data          MISSING       IGNORE  BREACHING NOT BREACHING
            ("0 - X - X", [Ok, Ok, Ok, Ok]),
            ("0 - - - -", [Ok, Ok, Ok, Ok]),
            ("- - - - -", [Insufficient, Retain, Alarm, Ok]),
            ("0 X X - X", [Alarm, Alarm, Alarm, Alarm]),
            ("- - - - X", [Insufficient, Retain, Alarm, Ok]),
            ("X - - - -", [Alarm, Retain, Alarm, Ok]),
        ],
    );
}

#[test]
fn two_out_of_three() {
    use Expect::*;
    check(
        2,
        3,
        &[
            ("0 - X - X", [Alarm, Alarm, Alarm, Alarm]),
            ("0 0 X 0 X", [Alarm, Alarm, Alarm, Alarm]),
            ("0 - X - -", [Ok, Ok, Alarm, Ok]),
            ("- - - - 0", [Ok, Ok, Alarm, Ok]),
            ("- - - - X", [Insufficient, Retain, Alarm, Ok]),
        ],
    );
}
