//! The reason texts, which users read in `operon alarms describe`.

use operon_alarms::{AlarmConfig, Comparison, State, TreatMissingData, evaluate, evaluate_at};

fn config(m: usize, n: usize, mode: TreatMissingData) -> AlarmConfig {
    AlarmConfig {
        period_secs: 300,
        evaluation_periods: n,
        datapoints_to_alarm: m,
        threshold: 90.0,
        comparison: Comparison::GreaterThanOrEqualToThreshold,
        treat_missing_data: mode,
    }
}

// 2026-12-02 10:00:00 UTC
const NEWEST: i64 = 1_796_205_600_000;

struct Case {
    m: usize,
    n: usize,
    mode: TreatMissingData,
    previous: State,
    window: &'static [Option<f64>],
    state: State,
    reason: &'static str,
}

const CASES: &[Case] = &[
    Case {
        m: 3,
        n: 5,
        mode: TreatMissingData::Missing,
        previous: State::Ok,
        window: &[Some(91.0), Some(10.0), Some(95.0), Some(20.0), Some(92.0)],
        state: State::Alarm,
        reason: "Threshold Crossed: 3 out of the last 5 datapoints [92.0 (02/12/26 10:00:00), 95.0 (02/12/26 09:50:00), 91.0 (02/12/26 09:40:00)] were greater than or equal to the threshold (90.0) (minimum 3 datapoints for OK -> ALARM transition).",
    },
    Case {
        m: 3,
        n: 5,
        mode: TreatMissingData::Missing,
        previous: State::Alarm,
        window: &[Some(91.0), Some(10.0), Some(95.0), Some(20.0), Some(30.0)],
        state: State::Ok,
        reason: "Threshold Crossed: 3 out of the last 5 datapoints [30.0 (02/12/26 10:00:00), 20.0 (02/12/26 09:55:00), 10.0 (02/12/26 09:45:00)] were not greater than or equal to the threshold (90.0) (minimum 3 datapoints for ALARM -> OK transition).",
    },
    Case {
        m: 2,
        n: 3,
        mode: TreatMissingData::Breaching,
        previous: State::Ok,
        window: &[None, None, Some(91.0)],
        state: State::Alarm,
        reason: "Threshold Crossed: 3 out of the last 3 datapoints [91.0 (02/12/26 10:00:00)] were greater than or equal to the threshold (90.0), 2 of them missing and treated as breaching (minimum 2 datapoints for OK -> ALARM transition).",
    },
    Case {
        m: 1,
        n: 1,
        mode: TreatMissingData::Missing,
        previous: State::Ok,
        window: &[None, None],
        state: State::InsufficientData,
        reason: "Insufficient Data: no datapoints were received and missing data is treated as missing (OK -> INSUFFICIENT_DATA transition).",
    },
    Case {
        m: 3,
        n: 3,
        mode: TreatMissingData::Ignore,
        previous: State::Alarm,
        window: &[None, None, Some(99.0)],
        state: State::Alarm,
        reason: "Unchanged: only 1 of the 3 datapoints needed were received [99.0 (02/12/26 10:00:00)] and missing data is treated as ignore, so the state stays ALARM.",
    },
];

#[test]
fn reasons_table() {
    for case in CASES {
        let cfg = config(case.m, case.n, case.mode);
        let got = evaluate_at(&cfg, case.previous, case.window, NEWEST);
        assert_eq!(got.state, case.state, "{:?}", case.window);
        assert_eq!(got.reason, case.reason);
    }
}

#[test]
fn without_a_time_values_stand_alone() {
    let got = evaluate(
        &config(1, 1, TreatMissingData::Missing),
        State::InsufficientData,
        &[Some(95.5)],
    );
    assert_eq!(
        got.reason,
        "Threshold Crossed: 1 out of the last 1 datapoints [95.5] were greater than or equal to the threshold (90.0) (minimum 1 datapoints for INSUFFICIENT_DATA -> ALARM transition)."
    );
}

#[test]
fn comparisons_at_the_threshold() {
    let at = [Some(90.0)];
    let cases = [
        (Comparison::GreaterThanOrEqualToThreshold, State::Alarm),
        (Comparison::GreaterThanThreshold, State::Ok),
        (Comparison::LessThanThreshold, State::Ok),
        (Comparison::LessThanOrEqualToThreshold, State::Alarm),
    ];
    for (comparison, expected) in cases {
        let cfg = AlarmConfig {
            comparison,
            ..config(1, 1, TreatMissingData::Missing)
        };
        assert_eq!(
            evaluate(&cfg, State::Ok, &at).state,
            expected,
            "{comparison:?}"
        );
    }
}
