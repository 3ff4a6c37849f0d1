//! Linear trends, for warnings such as "disk full within 24 h".

/// A least-squares line `value = intercept + slope * t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trend {
    /// Change of value per unit of `t`.
    pub slope: f64,
    /// The value at `t = 0`.
    pub intercept: f64,
}

impl Trend {
    /// The value the line predicts at `t`.
    pub fn at(&self, t: f64) -> f64 {
        self.intercept + self.slope * t
    }
}

/// Fits a line to `(t, value)` points by least squares. `None` with fewer
/// than two distinct `t`, or when a point is not finite.
pub fn trend(points: &[(f64, f64)]) -> Option<Trend> {
    if points.iter().any(|(t, v)| !t.is_finite() || !v.is_finite()) || points.len() < 2 {
        return None;
    }
    let count = points.len() as f64;
    // Centre on the means first: sums of large raw timestamps squared lose precision.
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / count;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (t, v) in points {
        covariance += (t - mean_t) * (v - mean_v);
        variance += (t - mean_t) * (t - mean_t);
    }
    if variance <= 0.0 {
        return None;
    }
    let slope = covariance / variance;
    let fitted = Trend {
        slope,
        intercept: mean_v - slope * mean_t,
    };
    (fitted.slope.is_finite() && fitted.intercept.is_finite()).then_some(fitted)
}

/// How long after `now` the trend reaches `threshold`: `Some(0.0)` if it
/// already has (at `now`, moving towards or past it), `None` if it never
/// will (flat or moving away).
pub fn time_until_crossing(trend: &Trend, now: f64, threshold: f64) -> Option<f64> {
    let current = trend.at(now);
    let gap = threshold - current;
    if gap == 0.0 {
        return Some(0.0);
    }
    if trend.slope == 0.0 || gap.signum() != trend.slope.signum() {
        return None;
    }
    let wait = gap / trend.slope;
    wait.is_finite().then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_is_recovered() {
        // Disk at 40 % growing 2 %/hour, sampled hourly: full (100 %) 30 h after t=0.
        let points: Vec<(f64, f64)> = (0..10)
            .map(|h| (h as f64 * 3600.0, 40.0 + 2.0 * h as f64))
            .collect();
        let fitted = trend(&points).unwrap();
        assert!((fitted.slope - 2.0 / 3600.0).abs() < 1e-12);
        assert!((fitted.intercept - 40.0).abs() < 1e-9);
        let wait = time_until_crossing(&fitted, 9.0 * 3600.0, 100.0).unwrap();
        assert!((wait - 21.0 * 3600.0).abs() < 1e-6, "{wait}");
    }

    #[test]
    fn noisy_points_match_a_hand_computed_fit() {
        let points = [(0.0, 11.0), (1.0, 8.5), (2.0, 8.5), (3.0, 9.5)];
        // Means t 1.5, v 9.375; covariance sum -2.25, variance sum 5:
        // slope -0.45, intercept 9.375 + 0.45 * 1.5 = 10.05.
        let fitted = trend(&points).unwrap();
        assert!((fitted.slope + 0.45).abs() < 1e-12, "{fitted:?}");
        assert!((fitted.intercept - 10.05).abs() < 1e-12, "{fitted:?}");
    }

    #[test]
    fn no_crossing_when_flat_or_moving_away() {
        let falling = Trend {
            slope: -1.0,
            intercept: 50.0,
        };
        assert_eq!(time_until_crossing(&falling, 0.0, 100.0), None);
        assert_eq!(time_until_crossing(&falling, 0.0, 40.0), Some(10.0));
        let flat = Trend {
            slope: 0.0,
            intercept: 50.0,
        };
        assert_eq!(time_until_crossing(&flat, 0.0, 100.0), None);
        assert_eq!(time_until_crossing(&flat, 0.0, 50.0), Some(0.0));
    }

    #[test]
    fn degenerate_input() {
        assert_eq!(trend(&[]), None);
        assert_eq!(trend(&[(1.0, 2.0)]), None);
        assert_eq!(trend(&[(1.0, 2.0), (1.0, 3.0)]), None);
        assert_eq!(trend(&[(1.0, 2.0), (2.0, f64::NAN)]), None);
    }
}
