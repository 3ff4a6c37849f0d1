//! Anomaly detection: a band of expected values learned from a metric's own
//! history, with daily and weekly seasonality.
//!
//! The model is deliberately simple and explainable. The history is grouped
//! by the hour of the week (when it spans at least two weeks) or the hour of
//! the day (at least two days); the expected value at an instant is the mean
//! of the history's values in the same hour and its two neighbours, the
//! spread their standard deviation. With less history, or fewer than
//! [`MIN_BUCKET_SAMPLES`] values in that hour, the next coarser model is
//! used, down to the mean of the whole history. The band is
//! `expected ± width × spread`, where the spread is at least 2 % of the
//! expected value (a perfectly flat history would otherwise make any wobble
//! an anomaly).

/// Fewer history points than this give no band (the alarm has insufficient data).
pub const MIN_HISTORY: usize = 12;
/// A seasonal bucket needs this many values to be trusted.
pub const MIN_BUCKET_SAMPLES: usize = 3;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_MS: i64 = 7 * DAY_MS;

/// Which seasonality a band was computed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seasonality {
    Weekly,
    Daily,
    None,
}

/// The expected range of a metric at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub seasonality: Seasonality,
}

impl Band {
    pub fn contains(&self, value: f64) -> bool {
        value >= self.lower && value <= self.upper
    }
}

/// The band at `at_ms` learned from `history` (`(timestamp_ms, value)`, any
/// order; non-finite values are skipped), `width` standard deviations wide
/// on each side. `None` with fewer than [`MIN_HISTORY`] points.
pub fn band(history: &[(i64, f64)], at_ms: i64, width: f64) -> Option<Band> {
    let points: Vec<(i64, f64)> = history
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    if points.len() < MIN_HISTORY {
        return None;
    }
    let first = points.iter().map(|p| p.0).min()?;
    let last = points.iter().map(|p| p.0).max()?;
    let span = last - first;
    let candidates = [
        (Seasonality::Weekly, WEEK_MS, 2 * WEEK_MS),
        (Seasonality::Daily, DAY_MS, 2 * DAY_MS),
    ];
    for (seasonality, cycle, needed) in candidates {
        if span < needed {
            continue;
        }
        let values = same_hour(&points, at_ms, cycle);
        if values.len() >= MIN_BUCKET_SAMPLES {
            return Some(make_band(&values, width, seasonality));
        }
    }
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    Some(make_band(&values, width, Seasonality::None))
}

/// Values whose hour within `cycle` is the hour of `at_ms` or a neighbour.
fn same_hour(points: &[(i64, f64)], at_ms: i64, cycle: i64) -> Vec<f64> {
    let hours = cycle / HOUR_MS;
    let target = at_ms.rem_euclid(cycle) / HOUR_MS;
    points
        .iter()
        .filter(|(t, _)| {
            let hour = t.rem_euclid(cycle) / HOUR_MS;
            let distance = (hour - target).rem_euclid(hours);
            distance <= 1 || distance == hours - 1
        })
        .map(|p| p.1)
        .collect()
}

fn make_band(values: &[f64], width: f64, seasonality: Seasonality) -> Band {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let spread = variance.sqrt().max(0.02 * mean.abs()).max(1e-9);
    Band {
        expected: mean,
        lower: mean - width * spread,
        upper: mean + width * spread,
        seasonality,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-02 00:00 UTC, a Monday.
    const MONDAY: i64 = 1_793_577_600_000;
    const FIVE_MINUTES: i64 = 300_000;

    /// A small deterministic wobble in [-1, 1].
    fn wobble(i: i64) -> f64 {
        ((i * 7919) % 200) as f64 / 100.0 - 1.0
    }

    /// Busy from 09:00 to 17:59 (80), quiet otherwise (10), every day.
    fn office_hours(days: i64) -> Vec<(i64, f64)> {
        (0..days * 288)
            .map(|i| {
                let t = MONDAY + i * FIVE_MINUTES;
                let hour = (t % DAY_MS) / HOUR_MS;
                let base = if (9..18).contains(&hour) { 80.0 } else { 10.0 };
                (t, base + wobble(i))
            })
            .collect()
    }

    #[test]
    fn the_daily_pattern_decides_what_is_normal() {
        let history = office_hours(4);
        let night = MONDAY + 4 * DAY_MS + 3 * HOUR_MS;
        let afternoon = MONDAY + 4 * DAY_MS + 14 * HOUR_MS;
        let at_night = band(&history, night, 3.0).unwrap();
        assert_eq!(at_night.seasonality, Seasonality::Daily);
        assert!(at_night.contains(10.5));
        assert!(
            !at_night.contains(80.0),
            "busy at 03:00 is an anomaly: {at_night:?}"
        );
        let by_day = band(&history, afternoon, 3.0).unwrap();
        assert!(by_day.contains(80.0));
        assert!(
            !by_day.contains(10.0),
            "quiet at 14:00 is an anomaly: {by_day:?}"
        );
    }

    #[test]
    fn weekends_are_learned_once_two_weeks_are_known() {
        // 50 on weekdays, 5 at weekends, all day.
        let history: Vec<(i64, f64)> = (0..21 * 288)
            .map(|i| {
                let t = MONDAY + i * FIVE_MINUTES;
                let weekday = ((t - MONDAY) / DAY_MS) % 7;
                let base = if weekday >= 5 { 5.0 } else { 50.0 };
                (t, base + wobble(i))
            })
            .collect();
        let saturday_noon = MONDAY + 3 * WEEK_MS + 5 * DAY_MS + 12 * HOUR_MS;
        let wednesday_noon = MONDAY + 3 * WEEK_MS + 2 * DAY_MS + 12 * HOUR_MS;
        let saturday = band(&history, saturday_noon, 3.0).unwrap();
        assert_eq!(saturday.seasonality, Seasonality::Weekly);
        assert!(
            !saturday.contains(50.0),
            "weekday load on a Saturday: {saturday:?}"
        );
        assert!(saturday.contains(5.0));
        assert!(band(&history, wednesday_noon, 3.0).unwrap().contains(50.0));

        // With only the last ten days, the daily model mixes both and
        // cannot tell a Saturday.
        let recent: Vec<(i64, f64)> = history
            .iter()
            .copied()
            .filter(|(t, _)| *t >= MONDAY + 11 * DAY_MS)
            .collect();
        let daily = band(&recent, saturday_noon, 3.0).unwrap();
        assert_eq!(daily.seasonality, Seasonality::Daily);
        assert!(daily.contains(50.0) && daily.contains(5.0));
    }

    #[test]
    fn short_flat_or_missing_history() {
        let few: Vec<(i64, f64)> = (0..MIN_HISTORY as i64 - 1).map(|i| (i, 1.0)).collect();
        assert_eq!(band(&few, 0, 2.0), None);
        let flat: Vec<(i64, f64)> = (0..100).map(|i| (i * FIVE_MINUTES, 100.0)).collect();
        let b = band(&flat, 0, 2.0).unwrap();
        assert_eq!(b.seasonality, Seasonality::None);
        assert!(b.contains(103.0), "2 % floor on the spread, 2 wide: {b:?}");
        assert!(!b.contains(105.0));
        let with_nan: Vec<(i64, f64)> = flat
            .iter()
            .copied()
            .chain([(1, f64::NAN), (2, f64::INFINITY)])
            .collect();
        assert_eq!(band(&with_nan, 0, 2.0), Some(b));
    }
}
