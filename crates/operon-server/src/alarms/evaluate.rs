//! One evaluation of one alarm instance (pure: the runner reads the
//! datapoints and the clock, this decides).
//!
//! Metric alarms evaluate whole periods only: the newest period evaluated is
//! the last one that ended at least [`SETTLE_MS`] ago, so a period still
//! filling (or whose last batch is in flight) never counts as missing or
//! partial. The evaluation range is N + [`EXTRA_PERIODS`] periods, as
//! CloudWatch retrieves more than N so older real datapoints still count
//! when newer ones are missing.

use std::collections::HashMap;

use operon_alarms::{Rule, State, aggregate, evaluate_at};
use serde_json::{Value, json};

use super::definition::{BandSide, Definition, Kind};

/// How long after a period ends before it is evaluated.
pub const SETTLE_MS: i64 = 2_000;
/// Periods read beyond N.
pub const EXTRA_PERIODS: usize = 2;

/// A new state and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub state: State,
    pub reason: String,
    pub data: Value,
}

/// Start (ms) of the newest period that ended at least [`SETTLE_MS`] ago.
pub fn newest_complete_period(now_ms: i64, period_secs: u64) -> i64 {
    let period = period_ms(period_secs);
    ((now_ms - SETTLE_MS).div_euclid(period) - 1) * period
}

fn period_ms(period_secs: u64) -> i64 {
    i64::try_from(period_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The raw datapoints an evaluation at `newest` reads: `[from, to)`.
pub fn window(definition: &Definition, newest: i64) -> (i64, i64) {
    let period = period_ms(definition.config.period_secs);
    let count = (definition.config.evaluation_periods + EXTRA_PERIODS) as i64;
    (newest - (count - 1) * period, newest + period)
}

/// A threshold alarm over raw `points` (oldest first).
pub fn threshold(
    definition: &Definition,
    previous: State,
    points: &[(i64, f64)],
    newest: i64,
) -> Outcome {
    let values = periods(definition, points, newest);
    let evaluation = evaluate_at(&definition.config, previous, &values, newest);
    Outcome {
        state: evaluation.state,
        reason: evaluation.reason,
        data: reason_data(
            definition,
            &values,
            newest,
            json!(definition.config.threshold),
        ),
    }
}

/// The statistic per period of the evaluation range, oldest first.
fn periods(definition: &Definition, points: &[(i64, f64)], newest: i64) -> Vec<Option<f64>> {
    let statistic = definition
        .query
        .as_ref()
        .map(|q| q.statistic)
        .unwrap_or(operon_alarms::Statistic::Average);
    let count = definition.config.evaluation_periods + EXTRA_PERIODS;
    aggregate(
        points,
        definition.config.period_secs,
        statistic,
        newest,
        count,
    )
    .unwrap_or_else(|_| vec![None; count])
}

/// CloudWatch's `reasonData` shape.
fn reason_data(
    definition: &Definition,
    values: &[Option<f64>],
    newest: i64,
    threshold: Value,
) -> Value {
    let period = period_ms(definition.config.period_secs);
    let start = newest - (values.len() as i64 - 1) * period;
    let evaluated: Vec<Value> = values
        .iter()
        .enumerate()
        .rev()
        .take(definition.config.evaluation_periods)
        .filter_map(|(i, v)| {
            v.map(|value| json!({"timestamp": iso(start + i as i64 * period), "value": value}))
        })
        .collect();
    let recent: Vec<f64> = values.iter().rev().flatten().copied().collect();
    json!({
        "version": "1.0",
        "startDate": iso(start),
        "statistic": definition.query.as_ref().map(|q| statistic_name(q.statistic)),
        "period": definition.config.period_secs,
        "recentDatapoints": recent,
        "threshold": threshold,
        "evaluatedDatapoints": evaluated,
    })
}

pub fn statistic_name(statistic: operon_alarms::Statistic) -> String {
    use operon_alarms::Statistic::*;
    match statistic {
        SampleCount => "SampleCount".into(),
        Average => "Average".into(),
        Sum => "Sum".into(),
        Minimum => "Minimum".into(),
        Maximum => "Maximum".into(),
        Percentile(p) => format!("p{p}"),
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An anomaly alarm: each period's value is compared with the band learned
/// from `history` (points before the evaluation range) at that period; the
/// distance outside the band is what breaches (threshold 0).
pub fn anomaly(
    definition: &Definition,
    previous: State,
    points: &[(i64, f64)],
    history: &[(i64, f64)],
    newest: i64,
) -> Outcome {
    let Kind::Anomaly {
        band_width, side, ..
    } = definition.kind
    else {
        return threshold(definition, previous, points, newest);
    };
    let values = periods(definition, points, newest);
    let period = period_ms(definition.config.period_secs);
    let start = newest - (values.len() as i64 - 1) * period;
    let mut bands = Vec::with_capacity(values.len());
    let excess: Vec<Option<f64>> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let band = operon_alarms::band(history, start + i as i64 * period, band_width);
            bands.push(band);
            let (value, band) = ((*value)?, band?);
            Some(match side {
                BandSide::Upper => value - band.upper,
                BandSide::Lower => band.lower - value,
                BandSide::Both => (value - band.upper).max(band.lower - value),
            })
        })
        .collect();
    let evaluation = operon_alarms::evaluate(&definition.config, previous, &excess);
    let newest_band = bands.last().copied().flatten();
    let reason = match (evaluation.state, newest_band) {
        (State::InsufficientData, None) => format!(
            "Insufficient history to learn a band (at least {} datapoints are needed)",
            operon_alarms::anomaly::MIN_HISTORY
        ),
        (state, band) => {
            let outside = excess
                .iter()
                .rev()
                .take(definition.config.evaluation_periods)
                .flatten()
                .filter(|e| **e > 0.0)
                .count();
            let band_text = band.map_or(String::new(), |b| {
                format!(
                    " (the band for the newest period: {:.3} to {:.3}, expected {:.3})",
                    b.lower, b.upper, b.expected
                )
            });
            format!(
                "{}: {outside} of the last {} datapoints outside the expected band{band_text}",
                match state {
                    State::Alarm => "Anomaly detected",
                    State::Ok => "Within the expected band",
                    State::InsufficientData => "Insufficient data",
                },
                definition.config.evaluation_periods,
            )
        }
    };
    let band_json = newest_band.map_or(Value::Null, |b| {
        json!({"lower": b.lower, "upper": b.upper, "expected": b.expected,
               "seasonality": format!("{:?}", b.seasonality).to_lowercase()})
    });
    Outcome {
        state: evaluation.state,
        reason,
        data: reason_data(definition, &values, newest, band_json),
    }
}

/// A forecast alarm: a least-squares trend through `points` (the lookback)
/// reaching the threshold within the horizon is ALARM.
pub fn forecast(definition: &Definition, points: &[(i64, f64)], now_ms: i64) -> Outcome {
    let Kind::Forecast { horizon_secs, .. } = definition.kind else {
        return insufficient("not a forecast alarm");
    };
    let threshold = definition.config.threshold;
    let samples: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(t, v)| (*t as f64 / 1000.0, *v))
        .collect();
    if samples.len() < 3 {
        return insufficient(&format!(
            "Insufficient data: {} datapoints in the lookback, a trend needs 3",
            samples.len()
        ));
    }
    let Some(trend) = operon_alarms::trend(&samples) else {
        return insufficient("Insufficient data: no trend (all datapoints at one instant)");
    };
    let now = now_ms as f64 / 1000.0;
    let current = trend.at(now);
    let crossing = operon_alarms::time_until_crossing(&trend, now, threshold);
    let already = definition.config.comparison.breaches(current, threshold);
    let within = crossing.is_some_and(|secs| secs <= horizon_secs as f64);
    let hours = |secs: f64| secs / 3600.0;
    let (state, reason) = if already || within {
        let when = crossing.unwrap_or(0.0);
        (
            State::Alarm,
            format!(
                "Forecast: the trend ({:+.3}/h, now {current:.3}) reaches the threshold {threshold} in {:.1} h, within the horizon of {:.1} h",
                trend.slope * 3600.0,
                hours(when),
                hours(horizon_secs as f64)
            ),
        )
    } else {
        let detail = crossing.map_or("never".to_string(), |s| format!("in {:.1} h", hours(s)));
        (
            State::Ok,
            format!(
                "Forecast: the trend ({:+.3}/h, now {current:.3}) reaches the threshold {threshold} {detail}, beyond the horizon of {:.1} h",
                trend.slope * 3600.0,
                hours(horizon_secs as f64)
            ),
        )
    };
    Outcome {
        state,
        reason,
        data: json!({
            "version": "1.0",
            "slopePerHour": trend.slope * 3600.0,
            "current": current,
            "threshold": threshold,
            "secondsUntilThreshold": crossing,
            "horizon": horizon_secs,
            "datapoints": samples.len(),
        }),
    }
}

fn insufficient(reason: &str) -> Outcome {
    Outcome {
        state: State::InsufficientData,
        reason: reason.to_string(),
        data: json!({"version": "1.0"}),
    }
}

/// A composite alarm over the states of the alarms its rule names (an
/// alarm absent from `states` is INSUFFICIENT_DATA).
pub fn composite(rule: &Rule, states: &HashMap<String, State>) -> Outcome {
    let state = if rule.evaluate(states) {
        State::Alarm
    } else {
        State::Ok
    };
    let named: Vec<String> = rule
        .names()
        .into_iter()
        .map(|name| {
            let s = states.get(name).copied().unwrap_or(State::InsufficientData);
            format!("{name} is {}", s.as_str())
        })
        .collect();
    Outcome {
        state,
        reason: format!(
            "{rule} is {}: {}",
            if state == State::Alarm {
                "true"
            } else {
                "false"
            },
            named.join(", ")
        ),
        data: json!({
            "version": "1.0",
            "triggeringAlarms": rule.names().into_iter()
                .filter(|n| states.get(*n) == Some(&State::Alarm)).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::definition::parse;

    fn definition(json: Value) -> Definition {
        parse(&serde_json::from_value(json).unwrap()).unwrap()
    }

    const T0: i64 = 1_796_205_600_000; // 2026-12-02 10:00:00 UTC

    #[test]
    fn only_complete_settled_periods_are_evaluated() {
        // 10:01:01 with a minute period: 10:00 ended one second ago (not
        // settled), so 09:59 is the newest.
        assert_eq!(newest_complete_period(T0 + 61_000, 60), T0 - 60_000);
        assert_eq!(newest_complete_period(T0 + 62_000, 60), T0);
        let d = definition(json!({"metric": "m", "threshold": 1, "node": "a",
            "evaluation_periods": 3, "period": 60}));
        assert_eq!(window(&d, T0), (T0 - 4 * 60_000, T0 + 60_000));
    }

    #[test]
    fn threshold_alarm_reads_periods_of_raw_points() {
        let d = definition(json!({"metric": "m", "threshold": 50, "node": "a",
            "evaluation_periods": 3, "datapoints_to_alarm": 2, "period": 60,
            "statistic": "Maximum"}));
        // Per minute: max 10, 70, 80 (the newest three).
        let points = [
            (T0 - 120_000, 10.0),
            (T0 - 60_000 + 5_000, 20.0),
            (T0 - 60_000 + 15_000, 70.0),
            (T0 + 1_000, 80.0),
        ];
        let outcome = threshold(&d, State::Ok, &points, T0);
        assert_eq!(outcome.state, State::Alarm, "{}", outcome.reason);
        assert_eq!(outcome.data["statistic"], "Maximum");
        assert_eq!(outcome.data["evaluatedDatapoints"][0]["value"], 80.0);
        assert_eq!(
            outcome.data["evaluatedDatapoints"][0]["timestamp"],
            "2026-12-02T10:00:00.000Z"
        );
        let calm = [
            (T0 + 1_000, 10.0),
            (T0 - 60_000, 10.0),
            (T0 - 120_000, 10.0),
        ];
        assert_eq!(threshold(&d, State::Alarm, &calm, T0).state, State::Ok);
        assert_eq!(
            threshold(&d, State::Ok, &[], T0).state,
            State::InsufficientData
        );
    }

    #[test]
    fn anomaly_alarm_breaches_outside_the_band() {
        let d = definition(json!({"metric": "m", "node": "a", "kind": "anomaly",
            "period": 60, "band_width": 3}));
        // A steady 50 ± 1 for a day before.
        let history: Vec<(i64, f64)> = (0..1440)
            .map(|i| (T0 - 86_400_000 + i * 60_000, 50.0 + (i % 3) as f64 - 1.0))
            .collect();
        let normal = threshold_points(51.0);
        assert_eq!(
            anomaly(&d, State::Ok, &normal, &history, T0).state,
            State::Ok
        );
        let spike = anomaly(&d, State::Ok, &threshold_points(90.0), &history, T0);
        assert_eq!(spike.state, State::Alarm, "{}", spike.reason);
        assert!(spike.reason.contains("outside the expected band"));
        assert!(spike.data["threshold"]["upper"].as_f64().unwrap() < 60.0);
        let none = anomaly(&d, State::Ok, &normal, &[], T0);
        assert_eq!(none.state, State::InsufficientData);
        assert!(none.reason.contains("history"), "{}", none.reason);
    }

    fn threshold_points(value: f64) -> Vec<(i64, f64)> {
        vec![(T0 + 10_000, value)]
    }

    #[test]
    fn forecast_alarm_extrapolates_the_trend() {
        let d = definition(json!({"metric": "disk.used_percent", "node": "a",
            "kind": "forecast", "threshold": 95, "forecast_horizon": 86_400}));
        // 1 % per hour from 60 %: 95 % in 35 h after the first point.
        let growing: Vec<(i64, f64)> = (0..=6)
            .map(|h| (T0 + h * 3_600_000, 60.0 + h as f64))
            .collect();
        let now = T0 + 6 * 3_600_000;
        let outcome = forecast(&d, &growing, now);
        assert_eq!(outcome.state, State::Ok, "29 h away: {}", outcome.reason);
        assert!(
            (outcome.data["secondsUntilThreshold"].as_f64().unwrap() - 29.0 * 3600.0).abs() < 1.0
        );
        let fast: Vec<(i64, f64)> = (0..=6)
            .map(|h| (T0 + h * 3_600_000, 60.0 + 3.0 * h as f64))
            .collect();
        let outcome = forecast(&d, &fast, now);
        assert_eq!(outcome.state, State::Alarm, "{}", outcome.reason);
        assert!(outcome.reason.contains("in 5.7 h"), "{}", outcome.reason);
        let flat: Vec<(i64, f64)> = (0..=6).map(|h| (T0 + h * 3_600_000, 60.0)).collect();
        assert_eq!(forecast(&d, &flat, now).state, State::Ok);
        assert_eq!(forecast(&d, &fast[..2], now).state, State::InsufficientData);
    }

    #[test]
    fn composite_alarm_names_its_inputs() {
        let rule = Rule::parse(r#"ALARM("cpu") AND NOT OK("disk")"#).unwrap();
        let states: HashMap<String, State> = [("cpu".to_string(), State::Alarm)].into();
        let outcome = composite(&rule, &states);
        assert_eq!(outcome.state, State::Alarm);
        assert!(
            outcome
                .reason
                .contains("cpu is ALARM, disk is INSUFFICIENT_DATA"),
            "{}",
            outcome.reason
        );
        assert_eq!(outcome.data["triggeringAlarms"], json!(["cpu"]));
        let states: HashMap<String, State> = [
            ("cpu".to_string(), State::Alarm),
            ("disk".to_string(), State::Ok),
        ]
        .into();
        assert_eq!(composite(&rule, &states).state, State::Ok);
    }
}
