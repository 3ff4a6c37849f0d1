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

/// What the state was decided from, for the reason text.
enum Basis {
    /// `breaching` of `total` evaluated datapoints breach; `filled` of them
    /// are missing periods filled in by `breaching`/`notBreaching`.
    Counted {
        breaching: usize,
        total: usize,
        filled: usize,
    },
    /// The real datapoints could not decide (`missing` or `ignore`).
    Undecided,
    /// The documented `missing` case where only breaching datapoints exist and
    /// the oldest period of the range is one of them.
    OldestBreaching,
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
    let real = real_points(config, window);
    let (state, basis, evaluated) = decide(config, previous, window, &real, n, m);
    let reason = reason(config, state, previous, basis, evaluated, n, m, newest_ms);
    Evaluation { state, reason }
}

/// The real (non-missing, non-NaN) datapoints, newest first.
fn real_points(config: &AlarmConfig, window: &[Option<f64>]) -> Vec<Point> {
    window
        .iter()
        .rev()
        .enumerate()
        .filter_map(|(age, v)| v.filter(|x| !x.is_nan()).map(|value| (age, value)))
        .map(|(age, value)| Point {
            age,
            value,
            breaching: config.comparison.breaches(value, config.threshold),
        })
        .collect()
}

fn decide<'p>(
    config: &AlarmConfig,
    previous: State,
    window: &[Option<f64>],
    real: &'p [Point],
    n: usize,
    m: usize,
) -> (State, Basis, &'p [Point]) {
    let alarm_if = |breaching: usize| {
        if breaching >= m {
            State::Alarm
        } else {
            State::Ok
        }
    };
    // Enough real datapoints: the most recent N decide and the
    // TreatMissingData setting "is not needed and is ignored".
    if let Some(evaluated) = real.get(..n) {
        let breaching = evaluated.iter().filter(|p| p.breaching).count();
        let basis = Basis::Counted {
            breaching,
            total: n,
            filled: 0,
        };
        return (alarm_if(breaching), basis, evaluated);
    }
    // Fewer real datapoints than N: all of them count, and the gap is filled
    // according to TreatMissingData.
    let fill = n - real.len();
    let breaching = real.iter().filter(|p| p.breaching).count();
    let counted = |breaching| Basis::Counted {
        breaching,
        total: n,
        filled: fill,
    };
    let undecided = match config.treat_missing_data {
        TreatMissingData::Breaching => {
            return (alarm_if(breaching + fill), counted(breaching + fill), real);
        }
        TreatMissingData::NotBreaching => return (alarm_if(breaching), counted(breaching), real),
        TreatMissingData::Missing => State::InsufficientData,
        TreatMissingData::Ignore => previous,
    };
    let real_only = Basis::Counted {
        breaching,
        total: real.len(),
        filled: 0,
    };
    if real.is_empty() {
        (undecided, Basis::Undecided, real)
    } else if breaching >= m {
        (State::Alarm, real_only, real)
    } else if breaching < real.len() {
        // A datapoint within the threshold: the documented rows
        // "0 - - - -", "0 - X - -" and "- - - - 0" are OK for missing and ignore.
        (State::Ok, real_only, real)
    } else if config.treat_missing_data == TreatMissingData::Missing
        && oldest_is_breaching(config, window)
    {
        // Documented row "X - - - -" (3 of 3): ALARM under missing "because the
        // oldest evaluated data point is breaching and there aren't any
        // non-breaching data points"; ignore retains the state there.
        (State::Alarm, Basis::OldestBreaching, real)
    } else {
        (undecided, Basis::Undecided, real)
    }
}

fn oldest_is_breaching(config: &AlarmConfig, window: &[Option<f64>]) -> bool {
    matches!(window.first(), Some(Some(v)) if config.comparison.breaches(*v, config.threshold))
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn reason(
    config: &AlarmConfig,
    state: State,
    previous: State,
    basis: Basis,
    evaluated: &[Point],
    n: usize,
    m: usize,
    newest_ms: Option<i64>,
) -> String {
    // CloudWatch lists the datapoints that support the new state, newest first.
    let list = |breaching: bool| -> String {
        let shown: Vec<String> = evaluated
            .iter()
            .filter(|p| p.breaching == breaching)
            .map(|p| describe_point(p, config.period_secs, newest_ms))
            .collect();
        shown.join(", ")
    };
    let phrase = config.comparison.phrase();
    let threshold = config.threshold;
    let transition = format!("{} -> {}", previous.as_str(), state.as_str());
    match basis {
        Basis::Counted {
            breaching,
            total,
            filled,
        } => {
            let filled_note = match (filled, config.treat_missing_data) {
                (0, _) => String::new(),
                (k, TreatMissingData::Breaching) => {
                    format!(", {k} of them missing and treated as breaching")
                }
                (k, _) => format!(", {k} of them missing and treated as not breaching"),
            };
            if state == State::Alarm {
                format!(
                    "Threshold Crossed: {breaching} out of the last {total} datapoints [{}] were {phrase} the threshold ({threshold:?}){filled_note} (minimum {m} datapoints for {transition} transition).",
                    list(true)
                )
            } else {
                // OK needs enough datapoints within the threshold that M breaching is impossible.
                format!(
                    "Threshold Crossed: {} out of the last {total} datapoints [{}] were not {phrase} the threshold ({threshold:?}){filled_note} (minimum {} datapoints for {transition} transition).",
                    total - breaching,
                    list(false),
                    n - m + 1
                )
            }
        }
        Basis::OldestBreaching => format!(
            "Threshold Crossed: the oldest datapoint in the evaluation range and every other received datapoint [{}] were {phrase} the threshold ({threshold:?}) and missing data is treated as missing ({transition} transition).",
            list(true)
        ),
        Basis::Undecided => {
            let received = if evaluated.is_empty() {
                "no datapoints were received".to_string()
            } else {
                format!(
                    "only {} of the {n} datapoints needed were received [{}]",
                    evaluated.len(),
                    list(true)
                )
            };
            match config.treat_missing_data {
                TreatMissingData::Ignore => format!(
                    "Unchanged: {received} and missing data is treated as ignore, so the state stays {}.",
                    state.as_str()
                ),
                _ => format!(
                    "Insufficient Data: {received} and missing data is treated as missing ({transition} transition)."
                ),
            }
        }
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
