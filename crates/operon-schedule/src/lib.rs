//! Schedule expressions as EventBridge Scheduler writes them — `rate(...)`,
//! `cron(...)` and `at(...)` — evaluated in an IANA time zone. A pure
//! library: no clock, no I/O, no async. "Now" is always a parameter, so the
//! server's scheduler (the shell) decides when to look, and this crate only
//! answers "when is the next one?" and "what should fire now?".
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use operon_schedule::Schedule;
//!
//! // 09:30 Berlin time on weekdays.
//! let schedule = Schedule::parse("cron(30 9 ? * MON-FRI *)", Some("Europe/Berlin")).unwrap();
//! let friday_noon = Utc.with_ymd_and_hms(2026, 7, 3, 12, 0, 0).unwrap();
//! let monday = schedule.next_after(friday_noon).unwrap();
//! assert_eq!(monday, Utc.with_ymd_and_hms(2026, 7, 6, 7, 30, 0).unwrap()); // CEST is UTC+2
//! ```
//!
//! # Expressions
//!
//! - `rate(value unit)`: every `value` minutes, hours or days. `value` is a
//!   whole number of at least 1; the unit is singular for 1 and plural
//!   otherwise (`rate(1 hour)`, `rate(5 minutes)`), as AWS requires. A day is
//!   24 hours of real time, whatever daylight saving does to the clock.
//! - `cron(minutes hours day-of-month month day-of-week year)`, AWS's six
//!   fields:
//!
//!   | field | values | wildcards |
//!   |---|---|---|
//!   | minutes | 0-59 | `,` `-` `*` `/` |
//!   | hours | 0-23 | `,` `-` `*` `/` |
//!   | day-of-month | 1-31 | `,` `-` `*` `/` `?` `L` `W` |
//!   | month | 1-12 or JAN-DEC | `,` `-` `*` `/` |
//!   | day-of-week | 1-7 (1 = SUN) or SUN-SAT | `,` `-` `*` `?` `L` `#` |
//!   | year | 1970-2199 | `,` `-` `*` `/` |
//!
//!   Exactly one of day-of-month and day-of-week is `?`. In day-of-month, `L`
//!   is the last day of the month, `LW` its last weekday, and `15W` the
//!   weekday nearest the 15th without leaving the month (`1W` on a Saturday
//!   is Monday the 3rd). In day-of-week, `6#3` is the third Friday, `5L`
//!   the last Thursday of the month, and a lone `L` the last day of the
//!   week, Saturday. `L`, `LW`, `nW`, `nL` and `n#k` stand alone in their
//!   field. `a/s` steps from `a` to the end of the field; a range whose start
//!   is after its end wraps around (`22-2` in hours), except in the year.
//!   Names and letters are case-insensitive.
//! - `at(yyyy-mm-ddThh:mm:ss)`: once, at that local time.
//!
//! Errors ([`ScheduleError`]) name the expression, the cron field and its
//! position, the offending text and what would be valid.
//!
//! # Time zones and daylight saving
//!
//! `cron` and `at` are read as wall-clock times in the schedule's time zone
//! (UTC when none is given); `rate` is plain elapsed time. AWS documents
//! EventBridge Scheduler's behaviour (user guide, "Daylight savings time";
//! knowledge-center article "How can I adjust my Amazon EventBridge schedule
//! for daylight saving?") as: when the time shifts forward in spring, an
//! invocation whose cron time falls on a non-existent local time is skipped;
//! when it shifts back in the fall, the schedule runs only once and does not
//! repeat its invocation; a `rate` in days is 24 hours, not a calendar day.
//! AWS does not say which of the two instants of a repeated time it uses.
//! This crate decides:
//!
//! - **Skipped local times** (spring forward, e.g. 02:30 on 8 March 2026 in
//!   America/New_York) never fire: `cron(30 2 * * ? *)` fires on the 7th and
//!   the 9th, not on the 8th, and is not moved to 03:30. `at(...)` naming a
//!   skipped time is rejected at parse time, because such a schedule could
//!   never fire.
//! - **Repeated local times** (fall back, e.g. 01:00-01:59 on 1 November 2026
//!   in America/New_York) fire once, at their *first* occurrence (still on
//!   daylight time, 05:30 UTC for 01:30): the instant the wall clock first
//!   shows that time, so nothing fires an hour "late". `cron(0/15 * * * ? *)`
//!   fires 01:45 EDT and then 02:00 EST, an hour later, without firing
//!   01:00-01:45 EST again. An `at(...)` in the repeated hour is likewise
//!   its first occurrence.
//!
//! With these two rules the map from matching local minutes to instants is
//! strictly increasing, which is what makes the search below exact.
//!
//! # Rate schedules count from creation
//!
//! A rate schedule created at `c` has occurrences `c`, `c + p`, `c + 2p`, …
//! (like EventBridge Scheduler without a start date, it first fires right
//! away). [`Schedule::next_since`] and [`Schedule::due`] take the creation
//! time and keep that grid, so a late invocation (after downtime) does not
//! shift the ones after it; AWS describes the next invocation as one period
//! after the last, which is the same instant whenever invocations are on
//! time. [`Schedule::next_after`] has no creation time, so for a rate it
//! treats `after` as the previous invocation and answers `after + p`.
//!
//! # Fire once after downtime
//!
//! If the server was down over several occurrences, [`Schedule::due`]
//! answers with the single latest missed occurrence (never one per missed
//! tick). Occurrences before the schedule's creation never fire, so an
//! `at(...)` already in the past when it is created never fires: a caller
//! that wants to refuse such a schedule checks
//! `schedule.next_since(created, created).is_none()`.
//!
//! A scheduler built on this crate keeps, per schedule, its creation time
//! and the occurrence it last fired, and on each wake-up:
//!
//! ```
//! # use chrono::{DateTime, TimeZone, Utc};
//! # use operon_schedule::Schedule;
//! # fn fire(_: DateTime<Utc>) {}
//! # let schedule = Schedule::parse("rate(5 minutes)", None).unwrap();
//! # let created = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
//! # let mut last_fired: Option<DateTime<Utc>> = None;
//! # let now = created;
//! if let Some(occurrence) = schedule.due(last_fired, created, now) {
//!     fire(occurrence); // persist `occurrence` as last_fired in the same transaction
//!     last_fired = Some(occurrence);
//! }
//! // Sleep until the next one (None: the schedule is finished).
//! let wake_at = schedule.next_since(created, last_fired.map_or(now, |last| last.max(now)));
//! # assert!(wake_at.is_some());
//! ```
//!
//! # How the search is fast
//!
//! A cron expression is parsed into one bit set per field. Finding the next
//! occurrence walks year → month → day → hour → minute, each level jumping to
//! the next member of its set, and computes the matching days of a month
//! (`L`, `W`, `#`, weekdays) once per month visited. Looking back for
//! [`Schedule::due`] walks the same way backwards. Neither ever steps minute
//! by minute through non-matching time; an expression that never matches
//! (`cron(0 0 30 2 ? *)`) costs one pass over the years 1970-2199. Each
//! candidate minute is converted to UTC with the zone's rules; the only
//! candidates rejected after conversion are those in a daylight-saving gap or
//! repeated hour, at most the minutes of one hour.

mod bits;
mod cron;
mod error;
mod schedule;

pub use chrono_tz::Tz;
pub use cron::{FIRST_YEAR, LAST_YEAR};
pub use error::{CronField, ScheduleError};
pub use schedule::{Rate, RateUnit, Schedule, ScheduleKind};

#[cfg(test)]
mod tests;
