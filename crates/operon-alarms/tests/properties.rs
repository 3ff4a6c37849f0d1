//! Properties of the evaluator, the rule parser and the statistics.

use std::collections::HashMap;

use operon_alarms::{
    AlarmConfig, Comparison, Rule, State, Statistic, TreatMissingData, evaluate, trend,
};
use proptest::prelude::*;

fn comparison() -> impl Strategy<Value = Comparison> {
    prop_oneof![
        Just(Comparison::GreaterThanOrEqualToThreshold),
        Just(Comparison::GreaterThanThreshold),
        Just(Comparison::LessThanThreshold),
        Just(Comparison::LessThanOrEqualToThreshold),
    ]
}

fn mode() -> impl Strategy<Value = TreatMissingData> {
    prop_oneof![
        Just(TreatMissingData::Missing),
        Just(TreatMissingData::Ignore),
        Just(TreatMissingData::Breaching),
        Just(TreatMissingData::NotBreaching),
    ]
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Ok),
        Just(State::Alarm),
        Just(State::InsufficientData)
    ]
}

/// Any f64 including NaN and infinities.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1000.0..1000.0f64,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        any::<f64>(),
    ]
}

fn config(
    n: usize,
    m: usize,
    threshold: f64,
    cmp: Comparison,
    mode: TreatMissingData,
) -> AlarmConfig {
    AlarmConfig {
        period_secs: 60,
        evaluation_periods: n,
        datapoints_to_alarm: m,
        threshold,
        comparison: cmp,
        treat_missing_data: mode,
    }
}

/// A value that breaches `threshold` under `cmp` (threshold is finite here).
fn breaching_value(cmp: Comparison, threshold: f64, offset: f64) -> f64 {
    match cmp {
        Comparison::GreaterThanOrEqualToThreshold => threshold + offset,
        Comparison::GreaterThanThreshold => threshold + offset + 1.0,
        Comparison::LessThanThreshold => threshold - offset - 1.0,
        Comparison::LessThanOrEqualToThreshold => threshold - offset,
    }
}

proptest! {
    #[test]
    fn evaluation_never_panics(
        n in 0usize..12, m in 0usize..14, threshold in any_value(), cmp in comparison(),
        mode in mode(), previous in state(),
        window in prop::collection::vec(prop::option::of(any_value()), 0..20),
        newest in any::<i64>(),
    ) {
        let cfg = config(n, m, threshold, cmp, mode);
        let plain = evaluate(&cfg, previous, &window);
        let timed = operon_alarms::evaluate_at(&cfg, previous, &window, newest);
        prop_assert_eq!(plain.state, timed.state);
        prop_assert!(!plain.reason.is_empty());
    }

    #[test]
    fn all_breaching_is_alarm_in_every_mode(
        n in 1usize..10, m_seed in 0usize..10, extra in 0usize..5, threshold in -100.0..100.0f64,
        cmp in comparison(), mode in mode(), previous in state(),
        offsets in prop::collection::vec(0.0..50.0f64, 15),
    ) {
        let m = 1 + m_seed % n;
        let window: Vec<Option<f64>> = offsets[..n + extra]
            .iter()
            .map(|o| Some(breaching_value(cmp, threshold, *o)))
            .collect();
        let got = evaluate(&config(n, m, threshold, cmp, mode), previous, &window);
        prop_assert_eq!(got.state, State::Alarm, "{}", got.reason);
    }

    #[test]
    fn older_values_do_not_matter_once_n_real_datapoints_exist(
        n in 1usize..8, m_seed in 0usize..8, threshold in -10.0..10.0f64, cmp in comparison(),
        mode in mode(), previous in state(),
        recent in prop::collection::vec(-20.0..20.0f64, 8),
        older_a in prop::collection::vec(prop::option::of(any_value()), 0..10),
        older_b in prop::collection::vec(prop::option::of(any_value()), 0..10),
    ) {
        let m = 1 + m_seed % n;
        let cfg = config(n, m, threshold, cmp, mode);
        let last_n: Vec<Option<f64>> = recent[..n].iter().copied().map(Some).collect();
        let with = |older: &[Option<f64>]| {
            let mut window = older.to_vec();
            window.extend_from_slice(&last_n);
            evaluate(&cfg, previous, &window)
        };
        prop_assert_eq!(with(&older_a), with(&older_b));
    }

    #[test]
    fn only_ignore_depends_on_the_previous_state(
        n in 1usize..6, m_seed in 0usize..6, cmp in comparison(), mode in mode(),
        window in prop::collection::vec(prop::option::of(-20.0..20.0f64), 0..8),
    ) {
        prop_assume!(mode != TreatMissingData::Ignore);
        let cfg = config(n, 1 + m_seed % n, 0.0, cmp, mode);
        let states: Vec<State> = [State::Ok, State::Alarm, State::InsufficientData]
            .iter()
            .map(|p| evaluate(&cfg, *p, &window).state)
            .collect();
        prop_assert!(states.iter().all(|s| *s == states[0]), "{states:?}");
        if matches!(mode, TreatMissingData::Breaching | TreatMissingData::NotBreaching) {
            prop_assert_ne!(states[0], State::InsufficientData);
        }
    }

    #[test]
    fn rule_parser_never_panics(text in ".{0,40}") {
        let _ = Rule::parse(&text);
    }

    #[test]
    fn printed_rules_parse_back(rule in rule_strategy()) {
        let printed = rule.to_string();
        prop_assert_eq!(Rule::parse(&printed), Ok(rule), "{}", printed);
    }

    #[test]
    fn rule_logic_matches_its_definition(
        a in state(), b in state(), known_b in any::<bool>(),
    ) {
        let mut states = HashMap::from([("a".to_string(), a)]);
        if known_b {
            states.insert("b".to_string(), b);
        }
        let b_state = if known_b { b } else { State::InsufficientData };
        let rule = Rule::parse(r#"ALARM("a") OR NOT OK("b")"#).unwrap();
        prop_assert_eq!(rule.evaluate(&states), a == State::Alarm || b_state != State::Ok);
    }

    #[test]
    fn statistics_lie_between_minimum_and_maximum(
        samples in prop::collection::vec(-1e6..1e6f64, 1..50), p in 0.0..=100.0f64,
    ) {
        let min = Statistic::Minimum.compute(&samples).unwrap();
        let max = Statistic::Maximum.compute(&samples).unwrap();
        for stat in [Statistic::Average, Statistic::Percentile(p)] {
            let v = stat.compute(&samples).unwrap();
            prop_assert!(min - 1e-6 <= v && v <= max + 1e-6, "{stat:?} = {v} outside [{min}, {max}]");
        }
        let pv = Statistic::Percentile(p).compute(&samples).unwrap();
        prop_assert!(samples.contains(&pv), "percentile {pv} is not an observed sample");
    }

    #[test]
    fn trend_recovers_exact_lines(
        slope in -100.0..100.0f64, intercept in -1e3..1e3f64, start in -1e6..1e6f64, count in 2usize..30,
    ) {
        let points: Vec<(f64, f64)> = (0..count)
            .map(|i| { let t = start + i as f64 * 60.0; (t, intercept + slope * t) })
            .collect();
        let fitted = trend(&points).unwrap();
        prop_assert!((fitted.slope - slope).abs() < 1e-6 * (1.0 + slope.abs()), "{fitted:?}");
    }
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    let name = "[a-zA-Z0-9 _\\-\"\\\\()]{1,8}";
    let leaf = prop_oneof![
        Just(Rule::True),
        Just(Rule::False),
        (state(), name).prop_map(|(s, n)| Rule::StateIs(s, n)),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|r| Rule::Not(Box::new(r))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Rule::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Rule::Or(Box::new(a), Box::new(b))),
        ]
    })
}
