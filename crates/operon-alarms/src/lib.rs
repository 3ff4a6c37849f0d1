//! Pure CloudWatch-style alarm evaluation.
//!
//! This crate decides alarm states; it reads no clock, files or network.
//! The server feeds it datapoints and the time, and stores what it returns.
//!
//! * [`statistic`]: group raw `(timestamp_ms, value)` datapoints into periods
//!   aligned on the epoch and compute `SampleCount`, `Average`, `Sum`,
//!   `Minimum`, `Maximum` or a percentile `pNN` (nearest rank, so always an
//!   observed sample).
//! * [`alarm`]: the M-out-of-N rule. The last N datapoints are evaluated; if
//!   at least M (`datapoints_to_alarm`) breach the threshold the alarm is in
//!   `ALARM`, otherwise `OK`. When fewer than N real datapoints exist in the
//!   evaluation range, `TreatMissingData` decides: `breaching` and
//!   `notBreaching` fill the gaps, `missing` gives `INSUFFICIENT_DATA` when
//!   nothing real decides, and `ignore` keeps the previous state. The rules
//!   follow the tables of "Configuring how CloudWatch alarms treat missing
//!   data" in the CloudWatch User Guide.
//! * [`composite`]: composite alarm rules such as
//!   `ALARM("a") AND (OK("b") OR NOT ALARM("c"))`; an alarm that is not
//!   known is `INSUFFICIENT_DATA`.
//! * [`forecast`]: a least-squares trend and when it crosses a threshold.
//! * [`anomaly`]: a band of expected values learned from a metric's own
//!   history, with daily and weekly seasonality.
//!
//! ```
//! use operon_alarms::{evaluate_at, AlarmConfig, Comparison, State, TreatMissingData};
//!
//! let config = AlarmConfig {
//!     period_secs: 300,
//!     evaluation_periods: 5,
//!     datapoints_to_alarm: 3,
//!     threshold: 90.0,
//!     comparison: Comparison::GreaterThanOrEqualToThreshold,
//!     treat_missing_data: TreatMissingData::Missing,
//! };
//! // CPU per 5-minute period, oldest first; None = no datapoint.
//! let window = [Some(91.0), Some(50.0), Some(95.0), None, Some(92.0), Some(40.0)];
//! let newest = 1_796_205_600_000; // 2026-12-02 10:00:00 UTC
//! let evaluation = evaluate_at(&config, State::Ok, &window, newest);
//! assert_eq!(evaluation.state, State::Alarm);
//! assert!(evaluation.reason.starts_with("Threshold Crossed: 3 out of the last 5 datapoints"));
//! assert!(evaluation.reason.contains("92.0 (02/12/26 09:55:00)"));
//!
//! let rule = operon_alarms::Rule::parse(r#"ALARM("cpu") AND NOT OK("disk")"#).unwrap();
//! let states = [("cpu".to_string(), evaluation.state)].into_iter().collect();
//! assert!(rule.evaluate(&states)); // "disk" is unknown: INSUFFICIENT_DATA, not OK
//! ```

pub mod alarm;
pub mod anomaly;
pub mod composite;
pub mod forecast;
pub mod statistic;

pub use alarm::{
    AlarmConfig, Comparison, Evaluation, State, TreatMissingData, evaluate, evaluate_at,
};
pub use anomaly::{Band, Seasonality, band};
pub use composite::{Rule, RuleError};
pub use forecast::{Trend, time_until_crossing, trend};
pub use statistic::{Statistic, StatisticError, aggregate};
