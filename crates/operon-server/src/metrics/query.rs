//! Pure query planning and statistics: durations (`6h`), statistic names,
//! period alignment, which stored resolution answers a range, and the
//! statistic per period from raw points or from rollups.
//!
//! Invariants: periods are aligned on the epoch (as CloudWatch's and
//! [`operon_alarms::aggregate`]'s are); a rollup answers only when its
//! bucket divides the period, so every period is made of whole buckets and
//! the answer equals what the raw points would give (percentiles need every
//! sample, so they always come from raw points).

use std::collections::BTreeMap;

use operon_alarms::Statistic;
use operon_store::{MetricRollup, Resolution};

/// Most periods one series may have in an answer: a week of minutes, plus
/// the partial period a range not aligned on the period (`--since 7d`
/// ending now) adds.
pub const MAX_PERIODS: i64 = 10_080 + 1;

/// Periods the default is chosen from, in seconds.
const NICE_PERIODS: [u64; 6] = [60, 300, 900, 3_600, 21_600, 86_400];
/// About how many datapoints a default period gives.
const DEFAULT_POINTS: i64 = 360;

/// How long each resolution is kept (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_ms: i64,
    pub minute_ms: i64,
    pub hour_ms: i64,
}

impl Retention {
    pub fn of(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::Raw => self.raw_ms,
            Resolution::Minute => self.minute_ms,
            Resolution::Hour => self.hour_ms,
        }
    }

    /// The longest of the three: a series with no point since is dropped.
    pub fn longest_ms(&self) -> i64 {
        self.raw_ms.max(self.minute_ms).max(self.hour_ms)
    }
}

/// How answered series are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// One series: every matching series' samples together.
    All,
    /// One series per node (its matching dimensions together).
    Node,
    /// One series per stored series (node and dimensions).
    Series,
}

impl By {
    pub fn parse(text: &str) -> Result<By, String> {
        match text {
            "" | "all" => Ok(By::All),
            "node" => Ok(By::Node),
            "series" => Ok(By::Series),
            other => Err(format!("by: {other:?} is not all, node or series")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            By::All => "all",
            By::Node => "node",
            By::Series => "series",
        }
    }
}

/// A duration written `90s`, `30m`, `6h`, `7d` or `2w`, in ms.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {text:?} has no unit: use s, m, h, d or w (6h)"))?;
    let (digits, unit) = text.split_at(split);
    let amount: i64 = digits
        .parse()
        .map_err(|_| format!("duration {text:?} must start with a whole number (6h)"))?;
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => {
            return Err(format!(
                "duration {text:?}: unknown unit {unit:?}, use s, m, h, d or w"
            ));
        }
    };
    match amount.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        Some(_) => Err(format!("duration {text:?} must be more than zero")),
        None => Err(format!("duration {text:?} is too long")),
    }
}

/// `avg|min|max|sum|count|pNN` (CloudWatch's names are accepted too).
pub fn parse_stat(text: &str) -> Result<Statistic, String> {
    match text {
        "" | "avg" | "average" => Ok(Statistic::Average),
        "min" | "minimum" => Ok(Statistic::Minimum),
        "max" | "maximum" => Ok(Statistic::Maximum),
        "sum" => Ok(Statistic::Sum),
        "count" | "samplecount" => Ok(Statistic::SampleCount),
        other => other.parse().map_err(|e: operon_alarms::StatisticError| {
            format!("stat: {e} (or avg, min, max, sum, count)")
        }),
    }
}

/// The short name of a statistic, as [`parse_stat`] reads it.
pub fn stat_name(stat: Statistic) -> String {
    match stat {
        Statistic::Average => "avg".into(),
        Statistic::Minimum => "min".into(),
        Statistic::Maximum => "max".into(),
        Statistic::Sum => "sum".into(),
        Statistic::SampleCount => "count".into(),
        Statistic::Percentile(p) => format!("p{p}"),
    }
}

/// `raw`, `1m` or `1h`.
pub fn parse_resolution(text: &str) -> Result<Resolution, String> {
    match text {
        "raw" => Ok(Resolution::Raw),
        "1m" => Ok(Resolution::Minute),
        "1h" => Ok(Resolution::Hour),
        other => Err(format!("resolution: {other:?} is not raw, 1m or 1h")),
    }
}

/// What a query asks, before planning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ask {
    pub from: i64,
    pub to: i64,
    pub period_secs: Option<u64>,
    pub stat: Statistic,
    pub resolution: Option<Resolution>,
}

/// A planned query: aligned range, period and the resolution read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// First period's start (aligned).
    pub from: i64,
    /// Last period's end (aligned, exclusive).
    pub to: i64,
    pub period_secs: u64,
    pub resolution: Resolution,
}

impl Plan {
    pub fn period_ms(&self) -> i64 {
        self.period_secs as i64 * 1000
    }

    pub fn periods(&self) -> i64 {
        (self.to - self.from) / self.period_ms()
    }
}

/// A period of about [`DEFAULT_POINTS`] datapoints over `range_ms`.
pub fn default_period(range_ms: i64) -> u64 {
    NICE_PERIODS
        .into_iter()
        .find(|p| range_ms / (*p as i64 * 1000) <= DEFAULT_POINTS)
        .unwrap_or(86_400)
}

/// Align the range on the period and choose the resolution to read.
pub fn plan(ask: &Ask, now: i64, retention: &Retention) -> Result<Plan, String> {
    if ask.to <= ask.from {
        return Err(format!(
            "the range is empty: from {} is not before to {}",
            ask.from, ask.to
        ));
    }
    let period_secs = ask
        .period_secs
        .unwrap_or_else(|| default_period(ask.to - ask.from));
    if period_secs == 0 || period_secs > 31_536_000 {
        return Err(format!(
            "period {period_secs} must be between 1 and 31536000 seconds"
        ));
    }
    let period_ms = period_secs as i64 * 1000;
    let from = ask.from.div_euclid(period_ms) * period_ms;
    let to = ask.to.saturating_add(period_ms - 1).div_euclid(period_ms) * period_ms;
    let periods = (to - from) / period_ms;
    if periods > MAX_PERIODS {
        return Err(format!(
            "{periods} periods of {period_secs}s in the range, at most {MAX_PERIODS}: ask for a longer period or a shorter range"
        ));
    }
    let resolution = match ask.resolution {
        Some(forced) => check_forced(forced, period_ms, ask.stat)?,
        None => choose_resolution(from, period_ms, ask.stat, now, retention)?,
    };
    Ok(Plan {
        from,
        to,
        period_secs,
        resolution,
    })
}

fn check_forced(
    resolution: Resolution,
    period_ms: i64,
    stat: Statistic,
) -> Result<Resolution, String> {
    if resolution == Resolution::Raw {
        return Ok(resolution);
    }
    if matches!(stat, Statistic::Percentile(_)) {
        return Err("percentiles are computed from raw points only (resolution=raw)".into());
    }
    if period_ms % resolution.bucket_ms() != 0 {
        return Err(format!(
            "period {}s is not a multiple of the {} rollup",
            period_ms / 1000,
            resolution.as_str()
        ));
    }
    Ok(resolution)
}

/// The coarsest rollup dividing the period that still holds `from`; raw
/// points when none does but they do; otherwise the longest-kept rollup
/// dividing the period (the older part of the range has no data left).
fn choose_resolution(
    from: i64,
    period_ms: i64,
    stat: Statistic,
    now: i64,
    retention: &Retention,
) -> Result<Resolution, String> {
    let holds = |r: Resolution| from >= now.saturating_sub(retention.of(r));
    if matches!(stat, Statistic::Percentile(_)) {
        if holds(Resolution::Raw) {
            return Ok(Resolution::Raw);
        }
        return Err(format!(
            "percentiles are computed from raw points, kept for {}s: ask for a range within it, or avg/min/max/sum/count",
            retention.raw_ms / 1000
        ));
    }
    let dividing: Vec<Resolution> = [Resolution::Hour, Resolution::Minute]
        .into_iter()
        .filter(|r| period_ms % r.bucket_ms() == 0)
        .collect();
    if let Some(r) = dividing.iter().copied().find(|r| holds(*r)) {
        return Ok(r);
    }
    if holds(Resolution::Raw) {
        return Ok(Resolution::Raw);
    }
    Ok(dividing
        .into_iter()
        .max_by_key(|r| retention.of(*r))
        .unwrap_or(Resolution::Raw))
}

/// The statistic per period from raw `(at, value)` points (any order),
/// periods without data left out, oldest first.
pub fn from_raw(points: &[(i64, f64)], plan: &Plan, stat: Statistic) -> Vec<(i64, f64)> {
    let period_ms = plan.period_ms();
    let count = plan.periods().max(0) as usize;
    let newest = plan.to - period_ms;
    let Ok(values) = operon_alarms::aggregate(points, plan.period_secs, stat, newest, count) else {
        return Vec::new();
    };
    values
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| Some((plan.from + i as i64 * period_ms, v?)))
        .collect()
}

/// The statistic per period from rollup buckets (of one or many series).
/// Percentiles cannot be made from rollups: nothing is answered for them.
pub fn from_rollups(rollups: &[MetricRollup], plan: &Plan, stat: Statistic) -> Vec<(i64, f64)> {
    let period_ms = plan.period_ms();
    let mut periods: BTreeMap<i64, MetricRollup> = BTreeMap::new();
    for r in rollups
        .iter()
        .filter(|r| r.bucket >= plan.from && r.bucket < plan.to && r.count > 0)
    {
        let start = r.bucket.div_euclid(period_ms) * period_ms;
        periods
            .entry(start)
            .and_modify(|acc| {
                acc.count += r.count;
                acc.sum += r.sum;
                acc.min = acc.min.min(r.min);
                acc.max = acc.max.max(r.max);
            })
            .or_insert(MetricRollup {
                bucket: start,
                ..*r
            });
    }
    periods
        .into_values()
        .filter_map(|acc| {
            let value = match stat {
                Statistic::SampleCount => acc.count as f64,
                Statistic::Sum => acc.sum,
                Statistic::Average => acc.sum / acc.count as f64,
                Statistic::Minimum => acc.min,
                Statistic::Maximum => acc.max,
                Statistic::Percentile(_) => return None,
            };
            Some((acc.bucket, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_of_minutes_ending_now_is_one_answer() {
        let retention = Retention {
            raw_ms: 86_400_000,
            minute_ms: 15 * 86_400_000,
            hour_ms: 400 * 86_400_000,
        };
        let now = 1_796_205_600_000 + 30_123; // mid-minute
        let week = Ask {
            from: now - 7 * 86_400_000,
            to: now,
            period_secs: Some(60),
            stat: Statistic::Average,
            resolution: None,
        };
        let plan = plan(&week, now, &retention).unwrap();
        assert_eq!((plan.to - plan.from) / 60_000, MAX_PERIODS);
        let longer = Ask {
            from: week.from - 60_000,
            ..week
        };
        assert!(plan_is_refused(&longer, now, &retention));
    }

    fn plan_is_refused(ask: &Ask, now: i64, retention: &Retention) -> bool {
        plan(ask, now, retention).is_err()
    }

    const MIN: i64 = 60_000;
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 86_400_000;

    fn retention() -> Retention {
        Retention {
            raw_ms: DAY,
            minute_ms: 15 * DAY,
            hour_ms: 400 * DAY,
        }
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Result<i64, ()>)] = &[
            ("90s", Ok(90_000)),
            ("30m", Ok(30 * MIN)),
            ("6h", Ok(6 * HOUR)),
            ("7d", Ok(7 * DAY)),
            ("2w", Ok(14 * DAY)),
            (" 1d ", Ok(DAY)),
            ("6", Err(())),
            ("h", Err(())),
            ("0h", Err(())),
            ("-1h", Err(())),
            ("1.5h", Err(())),
            ("6y", Err(())),
            ("99999999999999999w", Err(())),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).map_err(|_| ()), *expected, "{text}");
        }
    }

    #[test]
    fn statistic_names_round_trip() {
        for (text, stat) in [
            ("avg", Statistic::Average),
            ("min", Statistic::Minimum),
            ("max", Statistic::Maximum),
            ("sum", Statistic::Sum),
            ("count", Statistic::SampleCount),
            ("p90", Statistic::Percentile(90.0)),
            ("p99.9", Statistic::Percentile(99.9)),
        ] {
            assert_eq!(parse_stat(text), Ok(stat));
            assert_eq!(parse_stat(&stat_name(stat)), Ok(stat));
        }
        assert_eq!(parse_stat("Average"), Ok(Statistic::Average));
        assert!(parse_stat("median").unwrap_err().contains("median"));
        assert!(parse_stat("p101").is_err());
    }

    #[test]
    fn default_periods_give_a_few_hundred_points() {
        for (range, period) in [
            (10 * MIN, 60),
            (6 * HOUR, 60),
            (DAY, 300),
            (7 * DAY, 3_600),
            (30 * DAY, 21_600),
            (400 * DAY, 86_400),
        ] {
            assert_eq!(default_period(range), period, "range {range}");
        }
    }

    #[test]
    fn plans_align_and_choose_resolution() {
        let now = 1_000 * DAY + 30 * 1000; // 30 s into a minute
        let ask = |since: i64, period: Option<u64>, stat: Statistic| Ask {
            from: now - since,
            to: now,
            period_secs: period,
            stat,
            resolution: None,
        };
        let avg = Statistic::Average;
        let p90 = Statistic::Percentile(90.0);
        // (from, to, period, resolution) of the plan, or a refusal.
        type Planned = Result<(i64, i64, u64, Resolution), ()>;
        let cases: &[(Ask, Planned)] = &[
            // Minute periods: the 1m rollup; the range grows to whole periods.
            (
                ask(HOUR, Some(60), avg),
                Ok((now - 30_000 - HOUR, now + 30_000, 60, Resolution::Minute)),
            ),
            // Hour periods over a week: the 1h rollup.
            (
                ask(7 * DAY, Some(3_600), avg),
                Ok((
                    now - 30_000 - 7 * DAY,
                    now - 30_000 + HOUR,
                    3_600,
                    Resolution::Hour,
                )),
            ),
            // A period not made of minutes: raw.
            (
                ask(HOUR, Some(90), avg),
                Ok((1_000 * DAY - HOUR, now + 60_000, 90, Resolution::Raw)),
            ),
            // Percentiles: raw, within its retention only.
            (
                ask(HOUR, Some(60), p90),
                Ok((now - 30_000 - HOUR, now + 30_000, 60, Resolution::Raw)),
            ),
            (ask(2 * DAY, Some(60), p90), Err(())),
            // Minutes past their retention: hours if they divide the period...
            (
                ask(30 * DAY, Some(3_600), avg),
                Ok((
                    now - 30_000 - 30 * DAY,
                    now - 30_000 + HOUR,
                    3_600,
                    Resolution::Hour,
                )),
            ),
            // ...else the minutes left (the older part has no data).
            (
                ask(30 * DAY, Some(300), avg),
                Ok((
                    now - 30_000 - 30 * DAY,
                    now - 30_000 + 300_000,
                    300,
                    Resolution::Minute,
                )),
            ),
            (ask(30 * DAY, Some(60), avg), Err(())), // too many periods
            (
                ask(20 * DAY, Some(600), avg),
                Ok((
                    now - 30_000 - 20 * DAY,
                    now - 30_000 + 600_000,
                    600,
                    Resolution::Minute,
                )),
            ),
            (
                ask(HOUR, Some(1), avg),
                Ok((now - HOUR, now, 1, Resolution::Raw)),
            ),
            (ask(HOUR, Some(0), avg), Err(())),
        ];
        for (i, (ask, expected)) in cases.iter().enumerate() {
            let got = plan(ask, now, &retention())
                .map(|p| (p.from, p.to, p.period_secs, p.resolution))
                .map_err(|_| ());
            assert_eq!(got, *expected, "case {i}: {ask:?}");
        }
        let empty = Ask {
            from: now,
            ..ask(HOUR, None, avg)
        };
        assert!(
            plan(&empty, now, &retention())
                .unwrap_err()
                .contains("empty")
        );
        let forced = Ask {
            resolution: Some(Resolution::Hour),
            ..ask(HOUR, Some(60), avg)
        };
        assert!(
            plan(&forced, now, &retention())
                .unwrap_err()
                .contains("multiple")
        );
    }

    #[test]
    fn rollups_answer_what_raw_points_answer_for_whole_buckets() {
        // Three minutes of points every 10 s with irregular values.
        let t0 = 100 * HOUR;
        let points: Vec<(i64, f64)> = (0..18)
            .map(|i| (t0 + i * 10_000, ((i * 37) % 11) as f64 + 0.5))
            .collect();
        let mut rollups: BTreeMap<i64, MetricRollup> = BTreeMap::new();
        for &(at, v) in &points {
            let bucket = at - at.rem_euclid(MIN);
            let r = rollups.entry(bucket).or_insert(MetricRollup {
                bucket,
                count: 0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            });
            r.count += 1;
            r.sum += v;
            r.min = r.min.min(v);
            r.max = r.max.max(v);
        }
        let rollups: Vec<MetricRollup> = rollups.into_values().collect();
        for period in [60, 120, 180] {
            // Plans are aligned: the range is whole periods.
            let period_ms = period as i64 * 1000;
            let to = t0 + (3 * MIN + period_ms - 1) / period_ms * period_ms;
            let plan = Plan {
                from: t0,
                to,
                period_secs: period,
                resolution: Resolution::Minute,
            };
            for stat in [
                Statistic::Average,
                Statistic::Minimum,
                Statistic::Maximum,
                Statistic::Sum,
                Statistic::SampleCount,
            ] {
                let raw = from_raw(&points, &plan, stat);
                let rolled = from_rollups(&rollups, &plan, stat);
                assert_eq!(raw.len(), rolled.len(), "{period} {stat:?}");
                for ((ta, a), (tb, b)) in raw.iter().zip(&rolled) {
                    assert_eq!(ta, tb);
                    assert!((a - b).abs() < 1e-9, "{period} {stat:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn raw_statistics_per_period_hand_computed() {
        let plan = Plan {
            from: 0,
            to: 3 * MIN,
            period_secs: 60,
            resolution: Resolution::Raw,
        };
        // Minute 0: 1, 2, 3, 10; minute 1: nothing; minute 2: 5.
        let points = [
            (0, 1.0),
            (15_000, 2.0),
            (30_000, 3.0),
            (59_999, 10.0),
            (2 * MIN, 5.0),
            (3 * MIN, 99.0),
        ];
        assert_eq!(
            from_raw(&points, &plan, Statistic::Average),
            vec![(0, 4.0), (2 * MIN, 5.0)]
        );
        assert_eq!(
            from_raw(&points, &plan, Statistic::Percentile(50.0)),
            vec![(0, 2.0), (2 * MIN, 5.0)]
        );
        assert_eq!(
            from_raw(&points, &plan, Statistic::Percentile(90.0)),
            vec![(0, 10.0), (2 * MIN, 5.0)]
        );
        assert_eq!(
            from_raw(&points, &plan, Statistic::SampleCount),
            vec![(0, 4.0), (2 * MIN, 1.0)]
        );
        assert!(from_rollups(&[], &plan, Statistic::Average).is_empty());
    }

    #[test]
    fn grouping_names() {
        for by in [By::All, By::Node, By::Series] {
            assert_eq!(By::parse(by.as_str()), Ok(by));
        }
        assert_eq!(By::parse(""), Ok(By::All));
        assert!(By::parse("dimension").is_err());
        assert_eq!(parse_resolution("1m"), Ok(Resolution::Minute));
        assert!(parse_resolution("5m").is_err());
    }
}
