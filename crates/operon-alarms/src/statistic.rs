//! Aggregating raw datapoints into periods.

use std::collections::BTreeMap;

/// A statistic CloudWatch computes over the samples of one period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    /// A percentile in `[0, 100]`, written `p90` or `p99.9`.
    Percentile(f64),
}

/// Why a statistic name was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StatisticError {
    #[error(
        "unknown statistic {0:?}: expected SampleCount, Average, Sum, Minimum, Maximum or pNN (p90, p99.9)"
    )]
    Unknown(String),
    #[error("percentile {0:?} is not a number between 0 and 100")]
    BadPercentile(String),
    #[error("period must be at least one second, got {0}")]
    ZeroPeriod(u64),
}

impl std::str::FromStr for Statistic {
    type Err = StatisticError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "SampleCount" => Ok(Self::SampleCount),
            "Average" => Ok(Self::Average),
            "Sum" => Ok(Self::Sum),
            "Minimum" => Ok(Self::Minimum),
            "Maximum" => Ok(Self::Maximum),
            _ => {
                let Some(digits) = name.strip_prefix('p') else {
                    return Err(StatisticError::Unknown(name.to_string()));
                };
                match digits.parse::<f64>() {
                    Ok(p) if (0.0..=100.0).contains(&p) => Ok(Self::Percentile(p)),
                    _ => Err(StatisticError::BadPercentile(name.to_string())),
                }
            }
        }
    }
}

impl Statistic {
    /// Computes the statistic over `samples`; `None` when there are none
    /// (CloudWatch reports no datapoint for an empty period). Non-finite
    /// samples are skipped: they cannot be ordered or summed meaningfully.
    pub fn compute(self, samples: &[f64]) -> Option<f64> {
        let mut finite: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        let count = finite.len() as f64;
        let value = match self {
            Self::SampleCount => count,
            Self::Sum => finite.iter().sum(),
            Self::Average => finite.iter().sum::<f64>() / count,
            Self::Minimum => finite.iter().copied().fold(f64::INFINITY, f64::min),
            Self::Maximum => finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Self::Percentile(p) => {
                finite.sort_by(f64::total_cmp);
                nearest_rank(&finite, p)
            }
        };
        Some(value)
    }
}

/// Nearest-rank percentile: the smallest sample such that at least `p`% of
/// the samples are less than or equal to it. It is always an observed value,
/// as CloudWatch's percentiles over raw samples are.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

/// Groups `(timestamp_ms, value)` datapoints into periods of `period_secs`
/// aligned on the epoch, computes `statistic` in each, and returns the
/// `period_count` periods ending with the one containing `newest_period_start_ms`,
/// oldest first (`None` = no datapoint in that period).
pub fn aggregate(
    datapoints: &[(i64, f64)],
    period_secs: u64,
    statistic: Statistic,
    newest_period_start_ms: i64,
    period_count: usize,
) -> Result<Vec<Option<f64>>, StatisticError> {
    if period_secs == 0 {
        return Err(StatisticError::ZeroPeriod(period_secs));
    }
    let period_ms = i64::try_from(period_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(timestamp, value) in datapoints {
        buckets
            .entry(timestamp.div_euclid(period_ms))
            .or_default()
            .push(value);
    }
    let newest = newest_period_start_ms.div_euclid(period_ms);
    let periods = (0..period_count)
        .rev()
        .map(|back| {
            let bucket = newest.saturating_sub(back as i64);
            buckets.get(&bucket).and_then(|s| statistic.compute(s))
        })
        .collect();
    Ok(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_table() {
        let samples = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        let cases: &[(&str, f64)] = &[
            ("SampleCount", 10.0),
            ("Sum", 39.0),
            ("Average", 3.9),
            ("Minimum", 1.0),
            ("Maximum", 9.0),
            ("p50", 3.0),
            ("p90", 6.0),
            ("p99.9", 9.0),
            ("p0", 1.0),
            ("p100", 9.0),
        ];
        for (name, expected) in cases {
            let stat: Statistic = name.parse().unwrap();
            let got = stat.compute(&samples).unwrap();
            assert!((got - expected).abs() < 1e-9, "{name}: {got} != {expected}");
        }
    }

    #[test]
    fn bad_names() {
        assert!(matches!(
            "avg".parse::<Statistic>(),
            Err(StatisticError::Unknown(_))
        ));
        assert!(matches!(
            "p101".parse::<Statistic>(),
            Err(StatisticError::BadPercentile(_))
        ));
        assert!(matches!(
            "pxx".parse::<Statistic>(),
            Err(StatisticError::BadPercentile(_))
        ));
    }

    #[test]
    fn empty_period_has_no_datapoint() {
        assert_eq!(Statistic::Sum.compute(&[]), None);
        assert_eq!(Statistic::Sum.compute(&[f64::NAN]), None);
    }

    #[test]
    fn aggregates_into_aligned_periods() {
        // Period 60 s; periods start at 0, 60_000, 120_000.
        let points = [(1_000, 1.0), (59_999, 3.0), (125_000, 10.0), (-1, 99.0)];
        let got = aggregate(&points, 60, Statistic::Average, 120_000, 3).unwrap();
        assert_eq!(got, vec![Some(2.0), None, Some(10.0)]);
        assert_eq!(
            aggregate(&points, 0, Statistic::Sum, 0, 1),
            Err(StatisticError::ZeroPeriod(0))
        );
    }
}
