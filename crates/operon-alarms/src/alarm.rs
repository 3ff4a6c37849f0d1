//! M-out-of-N alarm evaluation with CloudWatch's TreatMissingData rules.

/// How a period's value is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    /// Whether `value` breaches `threshold`. NaN never breaches.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::GreaterThanThreshold => value > threshold,
            Self::LessThanThreshold => value < threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Self::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Self::GreaterThanThreshold => "greater than",
            Self::LessThanThreshold => "less than",
            Self::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

/// CloudWatch's `TreatMissingData`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TreatMissingData {
    /// The default: only real datapoints count; all missing is INSUFFICIENT_DATA.
    #[default]
    Missing,
    /// Keep the current state when the real datapoints cannot decide.
    Ignore,
    /// Missing datapoints count as breaching.
    Breaching,
    /// Missing datapoints count as within the threshold.
    NotBreaching,
}

/// An alarm's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Ok,
    Alarm,
    InsufficientData,
}

impl State {
    /// The CloudWatch spelling: `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// A metric alarm's evaluation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmConfig {
    pub period_secs: u64,
    /// N: how many datapoints are evaluated.
    pub evaluation_periods: usize,
    /// M: how many of the N must breach for ALARM.
    pub datapoints_to_alarm: usize,
    pub threshold: f64,
    pub comparison: Comparison,
    pub treat_missing_data: TreatMissingData,
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub state: State,
    pub reason: String,
}

/// Evaluates the alarm over `window`, the *evaluation range* (oldest first,
/// `None` = missing period). CloudWatch retrieves more periods than N (its
/// documentation's example: 5 for N = 3) so that real datapoints older than
/// the last N still count when newer ones are missing; pass at least N.
/// Reasons carry values only; see [`evaluate_at`] for timestamps.
pub fn evaluate(config: &AlarmConfig, previous: State, window: &[Option<f64>]) -> Evaluation {
    evaluate_inner(config, previous, window, None)
}

/// Like [`evaluate`], with the start (epoch ms) of the newest period in
/// `window`, so that the reason names each datapoint's time (UTC).
pub fn evaluate_at(
    config: &AlarmConfig,
    previous: State,
    window: &[Option<f64>],
    newest_period_start_ms: i64,
) -> Evaluation {
    evaluate_inner(config, previous, window, Some(newest_period_start_ms))
}

/// A real datapoint inside the evaluation range.
struct Point {
    /// Periods before the newest one (0 = newest).
    age: usize,
    value: f64,
    breaching: bool,
}

fn evaluate_inner(
    config: &AlarmConfig,
    previous: State,
    window: &[Option<f64>],
    newest_ms: Option<i64>,
) -> Evaluation {
    // N = 0 would evaluate nothing; CloudWatch requires N >= 1 and 1 <= M <= N.
    let n = config.evaluation_periods.max(1);
    let m = config.datapoints_to_alarm.clamp(1, n);
    let real: Vec<Point> = window
        .iter()
        .rev()
        .enumerate()
        .filter_map(|(age, v)| v.filter(|x| !x.is_nan()).map(|value| (age, value)))
        .map(|(age, value)| Point {
            age,
            value,
            breaching: config.comparison.breaches(value, config.threshold),
        })
        .collect();
    let oldest_is_real_breach = window
        .first()
        .is_some_and(|v| v.is_some_and(|x| config.comparison.breaches(x, config.threshold)));
    let describe = |state: State, evaluated: &[Point], filled: usize| Evaluation {
        state,
        reason: reason(config, state, previous, evaluated, filled, m, newest_ms),
    };

    // Enough real datapoints: the most recent N decide; missing data is irrelevant.
    if real.len() >= n {
        let evaluated = &real[..n];
        let breaching = evaluated.iter().filter(|p| p.breaching).count();
        let state = if breaching >= m {
            State::Alarm
        } else {
            State::Ok
        };
        return describe(state, evaluated, 0);
    }

    let fill = n - real.len();
    let breaching = real.iter().filter(|p| p.breaching).count();
    let any_non_breaching = real.iter().any(|p| !p.breaching);
    let state = match config.treat_missing_data {
        TreatMissingData::Breaching => {
            if breaching + fill >= m {
                State::Alarm
            } else {
                State::Ok
            }
        }
        TreatMissingData::NotBreaching => {
            if breaching >= m {
                State::Alarm
            } else {
                State::Ok
            }
        }
        TreatMissingData::Missing | TreatMissingData::Ignore => {
            let undecided = if config.treat_missing_data == TreatMissingData::Missing {
                State::InsufficientData
            } else {
                previous
            };
            if real.is_empty() {
                undecided
            } else if breaching >= m {
                State::Alarm
            } else if any_non_breaching {
                // The documented rows (0 - - - -, 0 - X - -, - - - - 0) are OK.
                State::Ok
            } else if oldest_is_real_breach
                && config.treat_missing_data == TreatMissingData::Missing
            {
                // Documented row "X - - - -" (3 of 3, missing): ALARM "because the
                // oldest evaluated data point is breaching and there aren't any
                // non-breaching data points"; ignore retains the state there.
                State::Alarm
            } else {
                undecided
            }
        }
    };
    let filled = match config.treat_missing_data {
        TreatMissingData::Breaching | TreatMissingData::NotBreaching => fill,
        _ => 0,
    };
    describe(state, &real, filled)
}

fn reason(
    config: &AlarmConfig,
    state: State,
    previous: State,
    evaluated: &[Point],
    filled: usize,
    m: usize,
    newest_ms: Option<i64>,
) -> String {
    if evaluated.is_empty() && filled == 0 {
        return match state {
            State::InsufficientData => {
                "Insufficient Data: no datapoints were received in the evaluation range.".into()
            }
            _ => format!(
                "No datapoints were received; treating missing data as ignore keeps the state {}.",
                state.as_str()
            ),
        };
    }
    // CloudWatch lists the newest datapoint first.
    let listed: Vec<String> = evaluated
        .iter()
        .filter(|p| p.breaching == (state == State::Alarm) || state != State::Alarm)
        .map(|p| describe_point(p, config.period_secs, newest_ms))
        .collect();
    let breaching = evaluated.iter().filter(|p| p.breaching).count();
    let total = evaluated.len() + filled;
    let filled_note = if filled > 0 {
        let kind = match config.treat_missing_data {
            TreatMissingData::Breaching => "breaching",
            _ => "not breaching",
        };
        format!(" ({filled} missing datapoints treated as {kind})")
    } else {
        String::new()
    };
    let transition = format!("{} -> {}", previous.as_str(), state.as_str());
    match state {
        State::Alarm => format!(
            "Threshold Crossed: {} out of the last {total} datapoints [{}] were {} the threshold ({:?}){filled_note} (minimum {m} datapoints for {transition} transition).",
            breaching
                + if config.treat_missing_data == TreatMissingData::Breaching {
                    filled
                } else {
                    0
                },
            listed.join(", "),
            config.comparison.phrase(),
            config.threshold,
        ),
        _ => format!(
            "Threshold Crossed: {breaching} out of the last {total} datapoints [{}] were {} the threshold ({:?}){filled_note}, fewer than the minimum {m} for ALARM ({transition}).",
            listed.join(", "),
            config.comparison.phrase(),
            config.threshold,
        ),
    }
}

fn describe_point(point: &Point, period_secs: u64, newest_ms: Option<i64>) -> String {
    match newest_ms {
        None => format!("{:?}", point.value),
        Some(newest) => {
            let back_ms = (point.age as i64)
                .saturating_mul(period_secs as i64)
                .saturating_mul(1000);
            format!(
                "{:?} ({})",
                point.value,
                format_utc(newest.saturating_sub(back_ms))
            )
        }
    }
}

/// `dd/mm/yy HH:MM:SS` in UTC, the form CloudWatch reasons use.
fn format_utc(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let (days, in_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{day:02}/{month:02}/{:02} {:02}:{:02}:{:02}",
        year.rem_euclid(100),
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        // 2026-12-02 10:00:00 UTC
        assert_eq!(format_utc(1_796_205_600_000), "02/12/26 10:00:00");
        assert_eq!(format_utc(0), "01/01/70 00:00:00");
        assert_eq!(format_utc(951_782_400_000), "29/02/00 00:00:00");
    }
}
