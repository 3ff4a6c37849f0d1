//! Table tests of the expression language and its daylight-saving rules,
//! unit tests of rate/at/due, and property tests that compare the field-
//! skipping search with a minute-by-minute brute force over real time zones.
//!
//! Expected instants in the tables were worked out by hand from the calendar
//! and the zones' rules (weekdays and offsets checked with Python's
//! `zoneinfo`), not produced by this crate.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use proptest::prelude::*;

use crate::cron::{Cron, DayOfMonth, DayOfWeek, Days, FIRST_YEAR};
use crate::{CronField, Schedule, ScheduleError, ScheduleKind};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("bad test instant {text}: {error}"))
        .with_timezone(&Utc)
}

fn parse(expr: &str, tz: Option<&str>) -> Schedule {
    Schedule::parse(expr, tz).unwrap_or_else(|error| panic!("{expr}: {error}"))
}

/// (expression, time zone, after, the next occurrences in order; `None`
/// last when the schedule runs out).
type Case = (
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static [Option<&'static str>],
);

const NY: Option<&str> = Some("America/New_York");
const BERLIN: Option<&str> = Some("Europe/Berlin");

const CASES: &[Case] = &[
    // L: last day of the month, leap years included.
    (
        "cron(0 12 L * ? *)",
        None,
        "2026-02-10T00:00:00Z",
        &[
            Some("2026-02-28T12:00:00Z"),
            Some("2026-03-31T12:00:00Z"),
            Some("2026-04-30T12:00:00Z"),
        ],
    ),
    (
        "cron(0 12 L 2 ? *)",
        None,
        "2027-03-01T00:00:00Z",
        &[Some("2028-02-29T12:00:00Z"), Some("2029-02-28T12:00:00Z")],
    ),
    // LW: 2026-05-31 is a Sunday, so Friday the 29th; 2026-06-30 is a Tuesday.
    (
        "cron(0 9 LW * ? *)",
        None,
        "2026-05-01T00:00:00Z",
        &[Some("2026-05-29T09:00:00Z"), Some("2026-06-30T09:00:00Z")],
    ),
    // 15W: Sat 15 Aug -> Fri 14; Tue 15 Sep; Thu 15 Oct; Sun 15 Nov -> Mon 16.
    (
        "cron(0 9 15W * ? *)",
        None,
        "2026-08-01T00:00:00Z",
        &[
            Some("2026-08-14T09:00:00Z"),
            Some("2026-09-15T09:00:00Z"),
            Some("2026-10-15T09:00:00Z"),
            Some("2026-11-16T09:00:00Z"),
        ],
    ),
    // 1W never leaves the month: Sat 1 Aug 2026 -> Mon 3 Aug.
    (
        "cron(0 9 1W 8 ? 2026)",
        None,
        "2026-01-01T00:00:00Z",
        &[Some("2026-08-03T09:00:00Z"), None],
    ),
    // 31W: Sun 31 May -> Fri 29; months without a 31st never match.
    (
        "cron(0 9 31W * ? 2026)",
        None,
        "2026-04-01T00:00:00Z",
        &[
            Some("2026-05-29T09:00:00Z"),
            Some("2026-07-31T09:00:00Z"),
            Some("2026-08-31T09:00:00Z"),
        ],
    ),
    // #: third Friday.
    (
        "cron(0 10 ? * 6#3 *)",
        None,
        "2026-11-01T00:00:00Z",
        &[Some("2026-11-20T10:00:00Z"), Some("2026-12-18T10:00:00Z")],
    ),
    // #5 skips months without a fifth Monday (first in 2026: March 30).
    (
        "cron(0 10 ? * MON#5 *)",
        None,
        "2026-01-01T00:00:00Z",
        &[Some("2026-03-30T10:00:00Z")],
    ),
    // Five Fridays in February: only 2036 in this range of years.
    (
        "cron(0 0 ? 2 FRI#5 2026-2040)",
        None,
        "2026-01-01T00:00:00Z",
        &[Some("2036-02-29T00:00:00Z"), None],
    ),
    // nL in day-of-week: last Thursday.
    (
        "cron(0 10 ? * 5L *)",
        None,
        "2026-11-01T00:00:00Z",
        &[Some("2026-11-26T10:00:00Z"), Some("2026-12-31T10:00:00Z")],
    ),
    // A lone L in day-of-week is Saturday.
    (
        "cron(0 10 ? * L *)",
        None,
        "2026-08-01T12:00:00Z",
        &[Some("2026-08-08T10:00:00Z"), Some("2026-08-15T10:00:00Z")],
    ),
    // Names, lists and ranges; lower case is accepted. Fri 30 Jan, then July.
    (
        "cron(0 8 ? jan,JUL Mon-Fri *)",
        None,
        "2026-01-30T12:00:00Z",
        &[Some("2026-07-01T08:00:00Z"), Some("2026-07-02T08:00:00Z")],
    ),
    // Steps over ranges and over `*`.
    (
        "cron(5-20/5 */6 * * ? *)",
        None,
        "2026-01-01T00:07:00Z",
        &[
            Some("2026-01-01T00:10:00Z"),
            Some("2026-01-01T00:15:00Z"),
            Some("2026-01-01T00:20:00Z"),
            Some("2026-01-01T06:05:00Z"),
        ],
    ),
    // `a/s` runs from a to the end of the field.
    (
        "cron(50/5 23 * * ? *)",
        None,
        "2026-01-01T23:52:00Z",
        &[Some("2026-01-01T23:55:00Z"), Some("2026-01-02T23:50:00Z")],
    ),
    // Ranges wrap around: 22-1 is 22, 23, 0, 1.
    (
        "cron(0 22-1 * * ? *)",
        None,
        "2026-01-01T12:00:00Z",
        &[
            Some("2026-01-01T22:00:00Z"),
            Some("2026-01-01T23:00:00Z"),
            Some("2026-01-02T00:00:00Z"),
            Some("2026-01-02T01:00:00Z"),
            Some("2026-01-02T22:00:00Z"),
        ],
    ),
    // FRI-MON wraps over the week: Fri 3, Sat 4, Sun 5, Mon 6 July 2026.
    (
        "cron(0 0 ? * FRI-MON *)",
        None,
        "2026-07-01T00:00:00Z",
        &[
            Some("2026-07-03T00:00:00Z"),
            Some("2026-07-04T00:00:00Z"),
            Some("2026-07-05T00:00:00Z"),
            Some("2026-07-06T00:00:00Z"),
            Some("2026-07-10T00:00:00Z"),
        ],
    ),
    // The year field: a range, then nothing.
    (
        "cron(0 0 1 1 ? 2030-2032)",
        None,
        "2026-06-01T00:00:00Z",
        &[
            Some("2030-01-01T00:00:00Z"),
            Some("2031-01-01T00:00:00Z"),
            Some("2032-01-01T00:00:00Z"),
            None,
        ],
    ),
    // Year steps start at the value: 2030, 2035, ...
    (
        "cron(0 0 1 1 ? 2030/5)",
        None,
        "2026-06-01T00:00:00Z",
        &[Some("2030-01-01T00:00:00Z"), Some("2035-01-01T00:00:00Z")],
    ),
    // The last possible occurrence, then none.
    (
        "cron(59 23 31 12 ? *)",
        None,
        "2199-06-01T00:00:00Z",
        &[Some("2199-12-31T23:59:00Z"), None],
    ),
    // February 30th never comes.
    ("cron(0 0 30 2 ? *)", None, "2026-01-01T00:00:00Z", &[None]),
    // Time zones: 09:30 in Tokyo (UTC+9, no DST) is 00:30 UTC.
    (
        "cron(30 9 * * ? *)",
        Some("Asia/Tokyo"),
        "2026-01-01T00:00:00Z",
        &[Some("2026-01-01T00:30:00Z"), Some("2026-01-02T00:30:00Z")],
    ),
    // New York, spring forward on Sun 8 Mar 2026 (02:00 EST -> 03:00 EDT):
    // 02:30 does not exist that day and is skipped, not moved.
    (
        "cron(30 2 * * ? *)",
        NY,
        "2026-03-07T00:00:00Z",
        &[Some("2026-03-07T07:30:00Z"), Some("2026-03-09T06:30:00Z")],
    ),
    // Every 30 minutes through the gap: 01:30 EST, then 03:00 EDT.
    (
        "cron(0/30 * * * ? *)",
        NY,
        "2026-03-08T06:10:00Z",
        &[
            Some("2026-03-08T06:30:00Z"),
            Some("2026-03-08T07:00:00Z"),
            Some("2026-03-08T07:30:00Z"),
        ],
    ),
    // New York, fall back on Sun 1 Nov 2026 (02:00 EDT -> 01:00 EST):
    // 01:30 fires once, at its first occurrence (EDT).
    (
        "cron(30 1 * * ? *)",
        NY,
        "2026-10-31T12:00:00Z",
        &[Some("2026-11-01T05:30:00Z"), Some("2026-11-02T06:30:00Z")],
    ),
    // Every 15 minutes through the repeated hour: 01:45 EDT, then 02:00 EST.
    (
        "cron(0/15 * * * ? *)",
        NY,
        "2026-11-01T05:40:00Z",
        &[
            Some("2026-11-01T05:45:00Z"),
            Some("2026-11-01T07:00:00Z"),
            Some("2026-11-01T07:15:00Z"),
        ],
    ),
    // Asked from inside the second 01:xx (01:10 EST), 01:45 has already
    // been shown once: the next is the following day.
    (
        "cron(45 1 * * ? *)",
        NY,
        "2026-11-01T06:10:00Z",
        &[Some("2026-11-02T06:45:00Z")],
    ),
    // Berlin, spring forward on Sun 29 Mar 2026 (02:00 CET -> 03:00 CEST).
    (
        "cron(30 2 * * ? *)",
        BERLIN,
        "2026-03-28T00:00:00Z",
        &[Some("2026-03-28T01:30:00Z"), Some("2026-03-30T00:30:00Z")],
    ),
    // Berlin, fall back on Sun 25 Oct 2026 (03:00 CEST -> 02:00 CET).
    (
        "cron(30 2 * * ? *)",
        BERLIN,
        "2026-10-24T12:00:00Z",
        &[Some("2026-10-25T00:30:00Z"), Some("2026-10-26T01:30:00Z")],
    ),
    // Hourly through Berlin's repeated 02:xx: 02:00 CEST, then 03:00 CET.
    (
        "cron(0 * * * ? *)",
        BERLIN,
        "2026-10-24T23:30:00Z",
        &[
            Some("2026-10-25T00:00:00Z"),
            Some("2026-10-25T02:00:00Z"),
            Some("2026-10-25T03:00:00Z"),
        ],
    ),
    // Weekly in Berlin keeps its local time across the change.
    (
        "cron(0 9 ? * SUN *)",
        BERLIN,
        "2026-03-21T00:00:00Z",
        &[
            Some("2026-03-22T08:00:00Z"),
            Some("2026-03-29T07:00:00Z"),
            Some("2026-04-05T07:00:00Z"),
        ],
    ),
    // at(): once, then never.
    (
        "at(2026-06-01T09:00:00)",
        NY,
        "2026-01-01T00:00:00Z",
        &[Some("2026-06-01T13:00:00Z"), None],
    ),
    // at() in the repeated hour is its first occurrence.
    (
        "at(2026-11-01T01:30:00)",
        NY,
        "2026-01-01T00:00:00Z",
        &[Some("2026-11-01T05:30:00Z"), None],
    ),
];

#[test]
fn cron_and_at_table() {
    for (expr, tz, after, expected) in CASES {
        let schedule = parse(expr, *tz);
        let mut cursor = utc(after);
        for (index, want) in expected.iter().enumerate() {
            let got = schedule.next_after(cursor);
            assert_eq!(
                got,
                want.map(utc),
                "{expr} in {tz:?}: occurrence {index} after {cursor}"
            );
            match got {
                Some(next) => cursor = next,
                None => break,
            }
        }
    }
}

/// Table of rejected expressions: (expression, time zone, text the error
/// must contain).
const INVALID: &[(&str, Option<&str>, &str)] = &[
    ("every 5 minutes", None, "is not one of rate(value unit)"),
    ("cron 0 12 * * ? *", None, "is not one of"),
    ("Cron(0 12 * * ? *)", None, "is not one of"),
    ("cron(0 12 * * ?)", None, "expected 6 fields"),
    ("cron(0 12 * * ? * *)", None, "found 7"),
    (
        "cron(0 12 * * * *)",
        None,
        "exactly one of day-of-month and day-of-week must be `?`",
    ),
    (
        "cron(0 12 1 * MON *)",
        None,
        "exactly one of day-of-month and day-of-week",
    ),
    ("cron(0 12 ? * ? *)", None, "both `?`"),
    (
        "cron(60 12 * * ? *)",
        None,
        "minutes (field 1) `60`: `60` is out of range 0-59",
    ),
    (
        "cron(0 24 * * ? *)",
        None,
        "hours (field 2) `24`: `24` is out of range 0-23",
    ),
    (
        "cron(0 12 0 * ? *)",
        None,
        "day-of-month (field 3) `0`: `0` is out of range 1-31",
    ),
    ("cron(0 12 32 * ? *)", None, "`32` is out of range 1-31"),
    (
        "cron(0 12 * 13 ? *)",
        None,
        "month (field 4) `13`: `13` is out of range 1-12",
    ),
    (
        "cron(0 12 * FOO ? *)",
        None,
        "`FOO` is not a number 1-12 or a name JAN-DEC",
    ),
    (
        "cron(0 12 ? * 8 *)",
        None,
        "day-of-week (field 5) `8`: `8` is out of range 1-7",
    ),
    (
        "cron(0 12 ? * MON-FUN *)",
        None,
        "`FUN` is not a number 1-7 or a name SUN-SAT",
    ),
    ("cron(0 12 ? * funL *)", None, "`fun` is not a number 1-7"),
    (
        "cron(0 12 lw,1 * ? *)",
        None,
        "`L` and `W` must stand alone",
    ),
    ("cron(0 12 ? * 6#6 *)", None, "must be 1-5"),
    (
        "cron(0 12 ? * */2 *)",
        None,
        "day-of-week (field 5) `*/2`: `/` (increments) is not allowed",
    ),
    ("cron(0 12 ? * 3#1,6#3 *)", None, "`#` must stand alone"),
    ("cron(0 12 ? * 6#0 *)", None, "must be 1-5"),
    ("cron(0 12 ? * 9#2 *)", None, "`9` is out of range 1-7"),
    (
        "cron(0 12 * * ? 1969)",
        None,
        "year (field 6) `1969`: `1969` is out of range 1970-2199",
    ),
    ("cron(0 12 * * ? 2200)", None, "out of range 1970-2199"),
    ("cron(0 12 * * ? 2030-2020)", None, "runs backwards"),
    (
        "cron(*/0 12 * * ? *)",
        None,
        "step `0` must be between 1 and 60",
    ),
    (
        "cron(0/x 12 * * ? *)",
        None,
        "step `x` is not a whole number",
    ),
    (
        "cron(0 12 L,15 * ? *)",
        None,
        "`L` and `W` must stand alone",
    ),
    ("cron(0 12 L-2 * ? *)", None, "`L` and `W` must stand alone"),
    (
        "cron(0 12 1-5W * ? *)",
        None,
        "`L` and `W` must stand alone",
    ),
    ("cron(0 12 32W * ? *)", None, "the day must be 1-31"),
    ("cron(0 12 ? * 1-5L *)", None, "`L` must stand alone"),
    ("cron(0 12 ?,1 * ? *)", None, "`?` must be the whole field"),
    ("cron(0 12 * * ?1 *)", None, "`?` must be the whole field"),
    ("cron(0 ? * * ? *)", None, "hours (field 2) `?`"),
    ("cron(1,,2 12 * * ? *)", None, "empty item"),
    ("cron(1- 12 * * ? *)", None, "`` is not a number 0-59"),
    ("cron(0 12 # * ? *)", None, "day-of-month (field 3)"),
    ("cron(0 12 * * ? L)", None, "year (field 6) `L`"),
    (
        "rate(0 minutes)",
        None,
        "value `0` must be a whole number of at least 1",
    ),
    ("rate(-5 minutes)", None, "value `-5`"),
    ("rate(1.5 hours)", None, "value `1.5`"),
    ("rate(99999999999 minutes)", None, "value `99999999999`"),
    (
        "rate(1 minutes)",
        None,
        "a value of 1 takes the singular unit: `1 minute`",
    ),
    (
        "rate(5 hour)",
        None,
        "a value other than 1 takes the plural unit: `5 hours`",
    ),
    (
        "rate(5 weeks)",
        None,
        "unit `weeks` must be minute(s), hour(s) or day(s)",
    ),
    ("rate(5)", None, "expected `value unit`"),
    ("rate(5 minutes now)", None, "found 3 word(s)"),
    (
        "at(2026-06-01 09:00:00)",
        None,
        "is not of the form yyyy-mm-ddThh:mm:ss",
    ),
    ("at(2026-6-01T09:00:00)", None, "is not of the form"),
    ("at(2026-06-01T09:00)", None, "is not of the form"),
    (
        "at(2026-13-01T00:00:00)",
        None,
        "is not a valid date and time",
    ),
    (
        "at(2026-02-29T00:00:00)",
        None,
        "is not a valid date and time",
    ),
    (
        "at(2026-06-01T24:00:00)",
        None,
        "is not a valid date and time",
    ),
    (
        "at(2026-03-08T02:30:00)",
        NY,
        "`2026-03-08T02:30:00` does not exist in America/New_York",
    ),
    (
        "rate(5 minutes)",
        Some("Mars/Olympus_Mons"),
        "unknown time zone `Mars/Olympus_Mons`",
    ),
    ("rate(5 minutes)", Some(""), "unknown time zone ``"),
];

#[test]
fn invalid_expressions_say_where_and_why() {
    for (expr, tz, wanted) in INVALID {
        match Schedule::parse(expr, *tz) {
            Ok(schedule) => panic!("{expr} was accepted as {schedule:?}"),
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.contains(wanted),
                    "{expr}: error `{message}` does not contain `{wanted}`"
                );
                if let ScheduleError::CronField { expr: quoted, .. } = &error {
                    assert_eq!(quoted, expr.trim());
                }
            }
        }
    }
}

#[test]
fn cron_field_errors_are_structured() {
    let error = Schedule::parse("cron(0 12 ? * 6#6 *)", None).unwrap_err();
    match error {
        ScheduleError::CronField { field, value, .. } => {
            assert_eq!(field, CronField::DayOfWeek);
            assert_eq!(value, "6#6");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn accessors_describe_the_schedule() {
    let schedule = parse("  rate(15 minutes) ", Some("Europe/Berlin"));
    assert_eq!(schedule.expression(), "rate(15 minutes)");
    assert_eq!(schedule.kind(), ScheduleKind::Rate);
    assert_eq!(schedule.time_zone(), chrono_tz::Europe::Berlin);
    assert_eq!(
        schedule.rate().map(|rate| rate.period()),
        Some(TimeDelta::minutes(15))
    );
    assert_eq!(schedule.to_string(), "rate(15 minutes) in Europe/Berlin");
    let cron = parse("cron(0 12 * * ? *)", None);
    assert_eq!(
        (cron.kind(), cron.time_zone()),
        (ScheduleKind::Cron, Tz::UTC)
    );
    assert_eq!(cron.rate(), None);
    assert_eq!(
        parse("at(2026-01-01T00:00:00)", None).kind(),
        ScheduleKind::At
    );
}

#[test]
fn rate_units_and_periods() {
    for (expr, period) in [
        ("rate(1 minute)", TimeDelta::minutes(1)),
        ("rate(5 minutes)", TimeDelta::minutes(5)),
        ("rate(1 hour)", TimeDelta::hours(1)),
        ("rate(12 hours)", TimeDelta::hours(12)),
        ("rate(1 day)", TimeDelta::days(1)),
        ("rate(7 days)", TimeDelta::days(7)),
        ("rate(4294967295 days)", TimeDelta::days(4_294_967_295)),
    ] {
        assert_eq!(
            parse(expr, None).rate().map(|rate| rate.period()),
            Some(period)
        );
    }
}

#[test]
fn rate_next_after_is_one_period_after() {
    let schedule = parse("rate(1 day)", Some("America/New_York"));
    // A day is 24 hours even across spring forward (a 23-hour local day).
    assert_eq!(
        schedule.next_after(utc("2026-03-07T17:00:00Z")),
        Some(utc("2026-03-08T17:00:00Z"))
    );
    let huge = parse("rate(4294967295 days)", None);
    assert_eq!(huge.next_after(DateTime::<Utc>::MAX_UTC), None);
}

#[test]
fn rate_next_since_stays_on_the_creation_grid() {
    let schedule = parse("rate(5 minutes)", None);
    let created = utc("2026-01-01T10:00:00.500Z");
    let cases = [
        ("2026-01-01T09:00:00Z", "2026-01-01T10:00:00.500Z"),
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00.500Z"),
        ("2026-01-01T10:00:00.500Z", "2026-01-01T10:05:00.500Z"),
        ("2026-01-01T10:07:12Z", "2026-01-01T10:10:00.500Z"),
        ("2026-01-01T10:10:00.500Z", "2026-01-01T10:15:00.500Z"),
        ("2026-02-01T00:00:00Z", "2026-02-01T00:00:00.500Z"),
    ];
    for (after, want) in cases {
        assert_eq!(
            schedule.next_since(created, utc(after)),
            Some(utc(want)),
            "after {after}"
        );
    }
}

#[test]
fn rate_due_fires_on_creation_then_the_latest_missed_tick() {
    let schedule = parse("rate(5 minutes)", None);
    let created = utc("2026-01-01T10:00:00Z");
    let due = |last: Option<&str>, now: &str| schedule.due(last.map(utc), created, utc(now));
    assert_eq!(due(None, "2026-01-01T09:59:59Z"), None);
    assert_eq!(due(None, "2026-01-01T10:00:00Z"), Some(created));
    assert_eq!(
        due(Some("2026-01-01T10:00:00Z"), "2026-01-01T10:04:59Z"),
        None
    );
    assert_eq!(
        due(Some("2026-01-01T10:00:00Z"), "2026-01-01T10:17:00Z"),
        Some(utc("2026-01-01T10:15:00Z"))
    );
    assert_eq!(
        due(Some("2026-01-01T10:15:00Z"), "2026-01-01T10:19:59Z"),
        None
    );
    // Down for a year: one firing, the latest tick.
    assert_eq!(
        due(Some("2026-01-01T10:15:00Z"), "2027-01-01T10:03:00Z"),
        Some(utc("2027-01-01T10:00:00Z"))
    );
}

#[test]
fn at_due_fires_once_and_not_before_creation() {
    let schedule = parse("at(2026-06-01T09:00:00)", Some("Europe/Berlin"));
    let instant = utc("2026-06-01T07:00:00Z");
    let created = utc("2026-05-01T00:00:00Z");
    assert_eq!(
        schedule.due(None, created, utc("2026-06-01T06:59:59Z")),
        None
    );
    assert_eq!(schedule.due(None, created, instant), Some(instant));
    assert_eq!(
        schedule.due(None, created, utc("2026-07-01T00:00:00Z")),
        Some(instant)
    );
    assert_eq!(
        schedule.due(Some(instant), created, utc("2026-07-01T00:00:00Z")),
        None
    );
    // Created after its time: it never fires.
    let late = utc("2026-06-02T00:00:00Z");
    assert_eq!(schedule.due(None, late, utc("2026-07-01T00:00:00Z")), None);
    assert_eq!(schedule.next_since(late, late), None);
    assert_eq!(schedule.next_since(created, created), Some(instant));
}

#[test]
fn cron_due_returns_only_the_latest_missed_occurrence() {
    let schedule = parse("cron(0 * * * ? *)", None);
    let created = utc("2026-01-01T00:30:00Z");
    let due = |last: Option<&str>, now: &str| schedule.due(last.map(utc), created, utc(now));
    assert_eq!(due(None, "2026-01-01T00:59:59Z"), None);
    assert_eq!(
        due(None, "2026-01-01T01:00:00Z"),
        Some(utc("2026-01-01T01:00:00Z"))
    );
    assert_eq!(
        due(Some("2026-01-01T01:00:00Z"), "2026-01-01T05:20:00Z"),
        Some(utc("2026-01-01T05:00:00Z"))
    );
    assert_eq!(
        due(Some("2026-01-01T05:00:00Z"), "2026-01-01T05:59:00Z"),
        None
    );
    assert_eq!(due(None, "2026-01-01T00:10:00Z"), None);
    // An occurrence exactly at creation counts.
    let on_the_hour = utc("2026-01-01T03:00:00Z");
    assert_eq!(
        schedule.due(None, on_the_hour, on_the_hour),
        Some(on_the_hour)
    );
    assert_eq!(
        schedule.next_since(on_the_hour, utc("2025-01-01T00:00:00Z")),
        Some(on_the_hour)
    );
}

#[test]
fn cron_due_after_years_of_downtime_is_immediate() {
    let every_minute = parse("cron(* * * * ? *)", None);
    assert_eq!(
        every_minute.due(
            None,
            utc("1990-01-01T00:00:00Z"),
            utc("2150-06-01T12:34:56Z")
        ),
        Some(utc("2150-06-01T12:34:00Z"))
    );
    let not_yet = parse("cron(0 0 1 1 ? 2030)", None);
    assert_eq!(
        not_yet.due(
            None,
            utc("2020-01-01T00:00:00Z"),
            utc("2026-01-01T00:00:00Z")
        ),
        None
    );
    let past_its_years = parse("cron(0 0 1 1 ? 2030)", None);
    assert_eq!(
        past_its_years.due(
            None,
            utc("2020-01-01T00:00:00Z"),
            utc("2300-01-01T00:00:00Z")
        ),
        Some(utc("2030-01-01T00:00:00Z"))
    );
}

#[test]
fn cron_due_across_fall_back_fires_once() {
    let schedule = parse("cron(30 1 * * ? *)", Some("America/New_York"));
    let created = utc("2026-10-30T00:00:00Z");
    // 06:40Z is 01:40 EST, inside the repeated hour: 01:30 was first shown
    // at 05:30Z (EDT) and is due once.
    let first = utc("2026-11-01T05:30:00Z");
    assert_eq!(
        schedule.due(
            Some(utc("2026-10-31T05:30:00Z")),
            created,
            utc("2026-11-01T06:40:00Z")
        ),
        Some(first)
    );
    assert_eq!(
        schedule.due(Some(first), created, utc("2026-11-01T06:40:00Z")),
        None
    );
    // Asked during the repeated hour, the latest occurrence of a schedule
    // matching 01:59 is 01:59 EDT (05:59Z), even though 01:40 EST is "now".
    let late_minute = parse("cron(59 1 * * ? *)", Some("America/New_York"));
    assert_eq!(
        late_minute.due(None, created, utc("2026-11-01T06:40:00Z")),
        Some(utc("2026-11-01T05:59:00Z"))
    );
}

#[test]
fn cron_due_across_spring_forward_skips_the_gap() {
    let schedule = parse("cron(30 2 * * ? *)", Some("America/New_York"));
    let created = utc("2026-03-01T00:00:00Z");
    // 02:30 on 8 March does not exist; the latest at 12:00Z is the 7th's.
    assert_eq!(
        schedule.due(None, created, utc("2026-03-08T12:00:00Z")),
        Some(utc("2026-03-07T07:30:00Z"))
    );
}

#[test]
fn extreme_instants_do_not_panic() {
    let schedule = parse("cron(0 0 * * ? *)", Some("Pacific/Kiritimati"));
    assert_eq!(schedule.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert_eq!(
        schedule.next_after(DateTime::<Utc>::MIN_UTC),
        Some(utc("1970-01-01T10:40:00Z")) // UTC-10:40 until 1979
    );
    assert_eq!(
        schedule.due(None, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC),
        None
    );
    assert!(
        schedule
            .due(None, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
            .is_some()
    );
    assert_eq!(
        schedule.next_since(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC),
        Some(utc("1970-01-01T10:40:00Z"))
    );
    let rate = parse("rate(1 minute)", None);
    assert_eq!(
        rate.due(None, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
            .map(|instant| instant <= DateTime::<Utc>::MAX_UTC),
        Some(true)
    );
    assert!(
        rate.next_since(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
            .is_none()
    );
}

// ---------------------------------------------------------------------------
// Property tests against a brute force.

/// Does the wall-clock minute `local` match `cron`? Written from the field
/// definitions, without the search's day sets.
fn reference_matches(cron: &Cron, local: NaiveDateTime) -> bool {
    let date = local.date();
    let year_index = u32::try_from(date.year() - FIRST_YEAR).ok();
    local.second() == 0
        && cron.minutes.contains(local.minute())
        && cron.hours.contains(local.hour())
        && cron.months.contains(date.month())
        && year_index.is_some_and(|index| cron.years.contains(index))
        && reference_day(&cron.days, date)
}

fn reference_day(days: &Days, date: NaiveDate) -> bool {
    let weekday = date.weekday().number_from_sunday();
    let is_weekday = (2..=6).contains(&weekday);
    let same_month = |other: Option<NaiveDate>| other.is_some_and(|o| o.month() == date.month());
    let is_last_day = !same_month(date.succ_opt());
    match days {
        Days::OfMonth(DayOfMonth::Listed(listed)) => listed.contains(date.day()),
        Days::OfMonth(DayOfMonth::Last) => is_last_day,
        Days::OfMonth(DayOfMonth::LastWeekday) => {
            is_weekday
                && (1..=3).all(|ahead| {
                    let later = date.checked_add_signed(TimeDelta::days(ahead));
                    !same_month(later)
                        || !(2..=6).contains(&later.map_or(0, |d| d.weekday().number_from_sunday()))
                })
        }
        Days::OfMonth(DayOfMonth::NearestWeekday(target)) => {
            // The weekday of the month closest to the target day.
            let Some(target_date) = date.with_day(*target) else {
                return false;
            };
            let candidates = (1..=31)
                .filter_map(|day| date.with_day(day))
                .filter(|d| (2..=6).contains(&d.weekday().number_from_sunday()));
            candidates.min_by_key(|d| {
                (
                    d.signed_duration_since(target_date).num_days().abs(),
                    d.day(),
                )
            }) == Some(date)
        }
        Days::OfWeek(DayOfWeek::Listed(listed)) => listed.contains(weekday),
        Days::OfWeek(DayOfWeek::Last(wanted)) => {
            weekday == *wanted && !same_month(date.checked_add_signed(TimeDelta::days(7)))
        }
        Days::OfWeek(DayOfWeek::Nth {
            weekday: wanted,
            nth,
        }) => weekday == *wanted && (date.day() - 1) / 7 + 1 == *nth,
    }
}

/// Does the schedule fire at UTC minute `instant`? Only if the wall clock
/// then shows a matching minute for the first time.
fn fires_at(cron: &Cron, tz: Tz, instant: DateTime<Utc>) -> bool {
    let local = instant.with_timezone(&tz).naive_local();
    reference_matches(cron, local)
        && tz
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            == Some(instant)
}

fn cron_of(schedule: &Schedule) -> &Cron {
    schedule.cron().expect("a cron schedule")
}

const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe", // 30-minute daylight saving
    "America/Sao_Paulo",   // clocks changed at midnight until 2019
    "America/St_Johns",    // UTC-3:30 with daylight saving
    "Pacific/Chatham",     // UTC+12:45 with daylight saving
    "Asia/Kolkata",
    "Pacific/Apia", // skipped 30 December 2011 entirely
];

fn list_field(min: u32, max: u32) -> BoxedStrategy<String> {
    prop_oneof![
        8 => list_field_without_steps(min, max),
        2 => (1..=(max - min + 1).min(20)).prop_map(|s| format!("*/{s}")),
        1 => (min..=max, 1..=(max - min + 1).min(20)).prop_map(|(a, s)| format!("{a}/{s}")),
        1 => (min..=max, min..=max, 1u32..=5).prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
    ]
    .boxed()
}

fn list_field_without_steps(min: u32, max: u32) -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just("*".to_string()),
        2 => (min..=max).prop_map(|v| v.to_string()),
        1 => (min..=max, min..=max).prop_map(|(a, b)| format!("{a}-{b}")),
        1 => prop::collection::vec(min..=max, 2..4).prop_map(|values| {
            values.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        }),
    ]
    .boxed()
}

fn day_of_month_field() -> BoxedStrategy<String> {
    prop_oneof![
        4 => list_field(1, 31),
        1 => Just("L".to_string()),
        1 => Just("LW".to_string()),
        1 => (1u32..=31).prop_map(|d| format!("{d}W")),
    ]
    .boxed()
}

fn day_of_week_field() -> BoxedStrategy<String> {
    prop_oneof![
        4 => list_field_without_steps(1, 7),
        1 => Just("MON-FRI".to_string()),
        1 => Just("L".to_string()),
        1 => (1u32..=7).prop_map(|d| format!("{d}L")),
        1 => (1u32..=7, 1u32..=5).prop_map(|(d, n)| format!("{d}#{n}")),
    ]
    .boxed()
}

fn cron_expression() -> impl Strategy<Value = String> {
    (
        list_field(0, 59),
        list_field(0, 23),
        any::<bool>(),
        day_of_month_field(),
        list_field(1, 12),
        day_of_week_field(),
        prop_oneof![
            3 => Just("*".to_string()),
            1 => Just("1995-2040".to_string()),
            1 => Just("2000/3".to_string()),
        ],
    )
        .prop_map(|(minutes, hours, by_month, dom, month, dow, year)| {
            let (dom, dow) = if by_month {
                (dom, "?".to_string())
            } else {
                ("?".to_string(), dow)
            };
            format!("cron({minutes} {hours} {dom} {month} {dow} {year})")
        })
}

/// Every change of UTC offset of `zone` between 1995 and 2040, found by a
/// daily scan and bisection to the second (computed once per zone).
fn transitions(zone: &str) -> &'static [DateTime<Utc>] {
    type ByZone = HashMap<String, &'static [DateTime<Utc>]>;
    static CACHE: OnceLock<Mutex<ByZone>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    cache.entry(zone.to_string()).or_insert_with(|| {
        let tz: Tz = zone.parse().unwrap();
        let offset = |instant: DateTime<Utc>| instant.with_timezone(&tz).offset().fix();
        let mut found = Vec::new();
        let mut day = Utc.with_ymd_and_hms(1995, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).unwrap();
        while day < end {
            let next_day = day + TimeDelta::days(1);
            if offset(day) != offset(next_day) {
                let (mut low, mut high) = (day.timestamp(), next_day.timestamp());
                while high - low > 1 {
                    let middle = low + (high - low) / 2;
                    let at = |seconds| DateTime::from_timestamp(seconds, 0).unwrap();
                    if offset(at(middle)) == offset(at(low)) {
                        low = middle;
                    } else {
                        high = middle;
                    }
                }
                found.push(DateTime::from_timestamp(high, 0).unwrap());
            }
            day = next_day;
        }
        Vec::leak(found)
    })
}

/// A zone and an instant between 1995 and 2040 (to the second), half the
/// time within a day of one of that zone's offset changes.
fn zone_and_instant() -> impl Strategy<Value = (&'static str, DateTime<Utc>)> {
    let from = Utc
        .with_ymd_and_hms(1995, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let to = Utc
        .with_ymd_and_hms(2040, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    prop::sample::select(ZONES).prop_flat_map(move |zone| {
        let changes = transitions(zone);
        let anywhere = (from..to).prop_map(|seconds| DateTime::from_timestamp(seconds, 0).unwrap());
        let near_change =
            (0..changes.len().max(1), -86_400i64..86_400).prop_map(move |(index, offset)| {
                changes
                    .get(index)
                    .map_or(DateTime::from_timestamp(from, 0).unwrap(), |change| {
                        *change + TimeDelta::seconds(offset)
                    })
            });
        (Just(zone), prop_oneof![anywhere, near_change])
    })
}

#[test]
fn transitions_are_found() {
    // New York: two changes a year; Kolkata: none since 1945.
    assert_eq!(transitions("America/New_York").len(), 90);
    assert!(transitions("America/New_York").contains(&utc("2026-03-08T07:00:00Z")));
    assert!(transitions("America/New_York").contains(&utc("2026-11-01T06:00:00Z")));
    assert!(transitions("Asia/Kolkata").is_empty());
}

/// How far the brute force looks.
const WINDOW_MINUTES: i64 = 3 * 24 * 60;

fn minute_ceiling(instant: DateTime<Utc>) -> DateTime<Utc> {
    let floor = instant.with_second(0).unwrap().with_nanosecond(0).unwrap();
    if floor == instant {
        floor
    } else {
        floor + TimeDelta::minutes(1)
    }
}

/// next_after is strictly after, fires only at a matching, first-shown
/// minute, and no brute-force match lies between `after` and it.
fn check_next_after(expr: &str, zone: &str, after: DateTime<Utc>) -> Result<(), TestCaseError> {
    let schedule = parse(expr, Some(zone));
    let cron = cron_of(&schedule);
    let tz = schedule.time_zone();
    let next = schedule.next_after(after);
    if let Some(next) = next {
        prop_assert!(next > after);
        prop_assert!(
            fires_at(cron, tz, next),
            "{expr} in {zone}: next_after({after}) = {next} does not match"
        );
    }
    let mut minute = minute_ceiling(after + TimeDelta::nanoseconds(1));
    for _ in 0..WINDOW_MINUTES {
        if next.is_some_and(|next| minute >= next) {
            break;
        }
        prop_assert!(
            !fires_at(cron, tz, minute),
            "{expr} in {zone}: {minute} matches but next_after({after}) = {next:?}"
        );
        minute += TimeDelta::minutes(1);
    }
    Ok(())
}

/// Successive occurrences strictly increase and each one matches.
fn check_successive(expr: &str, zone: &str, after: DateTime<Utc>) -> Result<(), TestCaseError> {
    let schedule = parse(expr, Some(zone));
    let cron = cron_of(&schedule);
    let mut cursor = after;
    for _ in 0..20 {
        let Some(next) = schedule.next_after(cursor) else {
            break;
        };
        prop_assert!(next > cursor, "{expr} in {zone}: {next} after {cursor}");
        prop_assert!(fires_at(cron, schedule.time_zone(), next));
        cursor = next;
    }
    Ok(())
}

/// due() is the latest brute-force match in [created, now], fires nothing
/// more once recorded, and agrees with next_since.
fn check_due(expr: &str, zone: &str, now: DateTime<Utc>, back: i64) -> Result<(), TestCaseError> {
    let schedule = parse(expr, Some(zone));
    let cron = cron_of(&schedule);
    let tz = schedule.time_zone();
    let created = now - TimeDelta::seconds(back);
    let due = schedule.due(None, created, now);
    let mut minute = now.with_second(0).unwrap().with_nanosecond(0).unwrap();
    let mut brute = None;
    while minute >= created {
        if fires_at(cron, tz, minute) {
            brute = Some(minute);
            break;
        }
        minute -= TimeDelta::minutes(1);
    }
    prop_assert_eq!(
        due,
        brute,
        "{} in {}: created {}, now {}",
        expr,
        zone,
        created,
        now
    );
    if let Some(due) = due {
        prop_assert_eq!(schedule.due(Some(due), created, now), None);
        prop_assert!(
            schedule
                .next_since(created, due)
                .is_none_or(|next| next > now)
        );
    }
    Ok(())
}

/// Schedules that fire at least daily, to meet every gap and repeated hour.
fn daily_expression() -> impl Strategy<Value = String> {
    (
        list_field(0, 59),
        prop_oneof![Just("*".to_string()), list_field(0, 23)],
    )
        .prop_map(|(minutes, hours)| format!("cron({minutes} {hours} * * ? *)"))
}

/// A zone with daylight saving and an instant within three hours of one of
/// its offset changes.
fn zone_and_instant_near_change() -> impl Strategy<Value = (&'static str, DateTime<Utc>)> {
    let zones: Vec<&str> = ZONES
        .iter()
        .copied()
        .filter(|zone| !transitions(zone).is_empty())
        .collect();
    prop::sample::select(zones).prop_flat_map(|zone| {
        let changes = transitions(zone);
        (0..changes.len(), -3 * 3_600i64..3 * 3_600)
            .prop_map(move |(index, offset)| (zone, changes[index] + TimeDelta::seconds(offset)))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn next_after_matches_the_brute_force(
        expr in cron_expression(),
        (zone, after) in zone_and_instant(),
    ) {
        check_next_after(&expr, zone, after)?;
    }

    #[test]
    fn next_after_matches_the_brute_force_across_offset_changes(
        expr in daily_expression(),
        (zone, after) in zone_and_instant_near_change(),
    ) {
        check_next_after(&expr, zone, after)?;
    }

    #[test]
    fn successive_occurrences_increase(
        expr in cron_expression(),
        (zone, after) in zone_and_instant(),
    ) {
        check_successive(&expr, zone, after)?;
    }

    #[test]
    fn due_is_the_latest_brute_force_match(
        expr in cron_expression(),
        (zone, now) in zone_and_instant(),
        back in 0i64..WINDOW_MINUTES * 60,
    ) {
        check_due(&expr, zone, now, back)?;
    }

    #[test]
    fn due_is_the_latest_brute_force_match_across_offset_changes(
        expr in daily_expression(),
        (zone, now) in zone_and_instant_near_change(),
        back in 0i64..6 * 3_600,
    ) {
        check_due(&expr, zone, now, back)?;
    }

    /// Random text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(text in "(cron|rate|at)\\([ -~]{0,40}\\)", zone in "[A-Za-z/_]{0,20}") {
        let _ = Schedule::parse(&text, Some(&zone));
        let _ = Schedule::parse(&text, None);
    }

    /// Rate occurrences since creation are exactly created + k * period.
    #[test]
    fn rate_next_since_and_due_agree(
        value in 1u32..500,
        unit in prop::sample::select(&["minutes", "hours", "days"][..]),
        (_zone, created) in zone_and_instant(),
        elapsed in 0i64..10_000_000,
    ) {
        let unit = if value == 1 { unit.trim_end_matches('s') } else { unit };
        let schedule = parse(&format!("rate({value} {unit})"), None);
        let period = schedule.rate().unwrap().period();
        let now = created + TimeDelta::seconds(elapsed);
        let due = schedule.due(None, created, now).unwrap();
        let periods = (due - created).num_seconds() / period.num_seconds();
        prop_assert_eq!(due, created + period * periods as i32);
        prop_assert!(due <= now && now < due + period);
        prop_assert_eq!(schedule.next_since(created, now), Some(due + period));
    }
}

#[test]
fn letters_and_names_are_case_insensitive() {
    for (lower, upper) in [
        ("cron(0 9 lw * ? *)", "cron(0 9 LW * ? *)"),
        ("cron(0 9 l * ? *)", "cron(0 9 L * ? *)"),
        ("cron(0 9 15w * ? *)", "cron(0 9 15W * ? *)"),
        ("cron(0 9 ? * fri#3 *)", "cron(0 9 ? * 6#3 *)"),
        ("cron(0 9 ? * thuL *)", "cron(0 9 ? * 5L *)"),
        ("cron(0 9 ? * l *)", "cron(0 9 ? * SAT *)"),
        ("cron(0 9 ? dec-feb sun *)", "cron(0 9 ? 12,1,2 1 *)"),
    ] {
        assert_eq!(
            parse(lower, None).cron(),
            parse(upper, None).cron(),
            "{lower} vs {upper}"
        );
    }
}

#[test]
fn schedules_and_errors_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Schedule>();
    shareable::<ScheduleError>();
}

#[test]
fn occurrences_since_lists_upcoming_runs() {
    let created = utc("2026-01-01T10:00:00Z");
    let rate = parse("rate(2 hours)", None);
    let upcoming: Vec<_> = rate
        .occurrences_since(created, utc("2026-01-01T11:00:00Z"))
        .take(3)
        .collect();
    assert_eq!(
        upcoming,
        vec![
            utc("2026-01-01T12:00:00Z"),
            utc("2026-01-01T14:00:00Z"),
            utc("2026-01-01T16:00:00Z")
        ]
    );
    let yearly = parse("cron(0 0 1 1 ? 2027-2028)", Some("Europe/Berlin"));
    let all: Vec<_> = yearly.occurrences_since(created, created).collect();
    assert_eq!(
        all,
        vec![utc("2026-12-31T23:00:00Z"), utc("2027-12-31T23:00:00Z")]
    );
    let once = parse("at(2026-06-01T09:00:00)", None);
    assert_eq!(once.occurrences_since(created, created).count(), 1);
}
