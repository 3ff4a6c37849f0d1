//! [`Schedule`]: a parsed expression plus its time zone, and the three
//! questions the scheduler asks of it (next after, next since creation, due
//! now). See the crate docs for the semantics.

use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use crate::bits::Direction;
use crate::cron::{Cron, CronError, FIRST_YEAR, LAST_YEAR, Visit};
use crate::error::ScheduleError;

/// A validated schedule expression in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    expression: String,
    time_zone: Tz,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Rate(Rate),
    Cron(Box<Cron>),
    At(DateTime<Utc>),
}

/// Which form of expression a schedule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleKind {
    Rate,
    Cron,
    At,
}

/// The unit of a `rate(...)` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateUnit {
    Minutes,
    Hours,
    Days,
}

/// A `rate(value unit)` expression: `value` (at least 1) units apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub value: u32,
    pub unit: RateUnit,
}

impl Rate {
    /// The time between occurrences (a day is 24 hours).
    pub fn period(&self) -> TimeDelta {
        TimeDelta::seconds(self.period_seconds())
    }

    fn period_seconds(&self) -> i64 {
        let unit_seconds = match self.unit {
            RateUnit::Minutes => 60,
            RateUnit::Hours => 3_600,
            RateUnit::Days => 86_400,
        };
        i64::from(self.value) * unit_seconds
    }

    fn parse(inner: &str) -> Result<Rate, String> {
        let parts: Vec<&str> = inner.split_whitespace().collect();
        let [value, unit] = parts[..] else {
            return Err(format!(
                "expected `value unit` such as `5 minutes`, found {} word(s)",
                parts.len()
            ));
        };
        let value: u32 = value
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| value.parse().ok())
            .flatten()
            .filter(|value| *value >= 1)
            .ok_or_else(|| format!("value `{value}` must be a whole number of at least 1"))?;
        let (unit, plural) = match unit {
            "minute" => (RateUnit::Minutes, false),
            "minutes" => (RateUnit::Minutes, true),
            "hour" => (RateUnit::Hours, false),
            "hours" => (RateUnit::Hours, true),
            "day" => (RateUnit::Days, false),
            "days" => (RateUnit::Days, true),
            other => {
                return Err(format!(
                    "unit `{other}` must be minute(s), hour(s) or day(s)"
                ));
            }
        };
        if plural == (value == 1) {
            let singular = unit_singular(unit);
            return Err(if value == 1 {
                format!("a value of 1 takes the singular unit: `1 {singular}`")
            } else {
                format!("a value other than 1 takes the plural unit: `{value} {singular}s`")
            });
        }
        Ok(Rate { value, unit })
    }
}

fn unit_singular(unit: RateUnit) -> &'static str {
    match unit {
        RateUnit::Minutes => "minute",
        RateUnit::Hours => "hour",
        RateUnit::Days => "day",
    }
}

impl Schedule {
    /// Parses and validates `expr` (`rate(...)`, `cron(...)` or `at(...)`)
    /// for the IANA time zone `tz` (UTC when `None`).
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule, ScheduleError> {
        let time_zone = parse_time_zone(tz)?;
        let expression = expr.trim();
        let unknown = || ScheduleError::UnknownForm {
            expr: expression.to_string(),
        };
        let (name, inner) = split_call(expression).ok_or_else(unknown)?;
        let kind = match name {
            "rate" => Kind::Rate(Rate::parse(inner).map_err(|reason| ScheduleError::Rate {
                expr: expression.to_string(),
                reason,
            })?),
            "cron" => Kind::Cron(Box::new(
                Cron::parse(inner).map_err(|error| cron_error(expression, inner, error))?,
            )),
            "at" => Kind::At(
                parse_at(inner, time_zone).map_err(|reason| ScheduleError::At {
                    expr: expression.to_string(),
                    reason,
                })?,
            ),
            _ => return Err(unknown()),
        };
        Ok(Schedule {
            expression: expression.to_string(),
            time_zone,
            kind,
        })
    }

    /// The expression as given (surrounding whitespace removed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone `cron` and `at` are evaluated in.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// Whether this is a `rate`, `cron` or `at` schedule.
    pub fn kind(&self) -> ScheduleKind {
        match self.kind {
            Kind::Rate(_) => ScheduleKind::Rate,
            Kind::Cron(_) => ScheduleKind::Cron,
            Kind::At(_) => ScheduleKind::At,
        }
    }

    /// The parsed cron expression, for the property tests.
    #[cfg(test)]
    pub(crate) fn cron(&self) -> Option<&Cron> {
        match &self.kind {
            Kind::Cron(cron) => Some(cron),
            _ => None,
        }
    }

    /// The rate, for a `rate(...)` schedule.
    pub fn rate(&self) -> Option<Rate> {
        match self.kind {
            Kind::Rate(rate) => Some(rate),
            _ => None,
        }
    }

    /// The first occurrence strictly after `after`, or `None` if there is
    /// none (an `at` in the past, a cron whose years have run out).
    ///
    /// For a rate this is `after + period`: without a creation time, `after`
    /// is taken as the previous invocation. Use [`Schedule::next_since`] to
    /// stay on the grid anchored at creation.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Rate(rate) => after.checked_add_signed(rate.period()),
            Kind::At(instant) => (*instant > after).then_some(*instant),
            Kind::Cron(cron) => self.next_cron(cron, after),
        }
    }

    /// The first occurrence strictly after `after` of a schedule created at
    /// `created`: occurrences before `created` do not count, and a rate's
    /// occurrences are `created + k * period` for k = 0, 1, 2, …
    pub fn next_since(
        &self,
        created: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if let Kind::Rate(rate) = &self.kind {
            if after < created {
                return Some(created);
            }
            let periods = periods_between(created, after, rate)?.checked_add(1)?;
            return rate_occurrence(created, rate, periods);
        }
        let just_before_created = created
            .checked_sub_signed(TimeDelta::nanoseconds(1))
            .unwrap_or(created);
        self.next_after(after.max(just_before_created))
    }

    /// The occurrences strictly after `after` of a schedule created at
    /// `created`, in order (for previews such as "the next 5 runs").
    /// Finite for `at` and for crons whose years run out.
    pub fn occurrences_since(
        &self,
        created: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut cursor = after;
        std::iter::from_fn(move || {
            let next = self.next_since(created, cursor)?;
            cursor = next;
            Some(next)
        })
    }

    /// The one occurrence to fire now, if any: the latest occurrence at or
    /// before `now` that is at or after `created` and strictly after
    /// `last_fired`. After downtime this is the latest missed occurrence —
    /// never one per missed tick.
    pub fn due(
        &self,
        last_fired: Option<DateTime<Utc>>,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if now < created {
            return None;
        }
        let unfired = |instant: DateTime<Utc>| {
            instant >= created && last_fired.is_none_or(|last| instant > last)
        };
        let latest = match &self.kind {
            Kind::Rate(rate) => {
                rate_occurrence(created, rate, periods_between(created, now, rate)?)?
            }
            Kind::At(instant) => (*instant <= now).then_some(*instant)?,
            Kind::Cron(cron) => self.latest_cron(cron, now, unfired)?,
        };
        unfired(latest).then_some(latest)
    }

    /// Next cron occurrence strictly after `after`.
    fn next_cron(&self, cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if after.year() > LAST_YEAR + 1 {
            return None;
        }
        let local = if after.year() < FIRST_YEAR - 1 {
            first_cron_minute()
        } else {
            let local = after.with_timezone(&self.time_zone).naive_local();
            truncate_to_minute(local).checked_add_signed(TimeDelta::minutes(1))?
        };
        if local.year() > LAST_YEAR {
            return None;
        }
        let start = local.max(first_cron_minute());
        cron.walk(start, Direction::Forward, |candidate| {
            match self.first_instant(candidate) {
                Some(instant) if instant > after => Visit::Accept(instant),
                _ => Visit::Skip,
            }
        })
    }

    /// Latest cron occurrence at or before `now` for which `wanted` holds,
    /// walking backwards and stopping at the first one for which it does not
    /// (`wanted` must hold for everything after some instant).
    fn latest_cron(
        &self,
        cron: &Cron,
        now: DateTime<Utc>,
        wanted: impl Fn(DateTime<Utc>) -> bool,
    ) -> Option<DateTime<Utc>> {
        if now.year() < FIRST_YEAR - 1 {
            return None;
        }
        let start = if now.year() > LAST_YEAR + 1 {
            last_cron_minute()
        } else {
            let local = truncate_to_minute(now.with_timezone(&self.time_zone).naive_local());
            // If `now` is in a repeated hour, wall-clock times up to the end
            // of that hour were already shown once: start above them.
            local.checked_add_signed(self.repeated_span(local))?
        };
        if start.year() < FIRST_YEAR {
            return None;
        }
        let start = start.min(last_cron_minute());
        cron.walk(start, Direction::Backward, |candidate| {
            match self.first_instant(candidate) {
                None => Visit::Skip,
                Some(instant) if instant > now => Visit::Skip,
                Some(instant) if wanted(instant) => Visit::Accept(instant),
                Some(_) => Visit::Stop,
            }
        })
    }

    /// The instant a local time first occurs: `None` inside a spring-forward
    /// gap, the earlier instant inside a fall-back repeat.
    fn first_instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.time_zone.from_local_datetime(&local) {
            LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, second) => Some(first.min(second).with_timezone(&Utc)),
            LocalResult::None => None,
        }
    }

    /// How far apart the two occurrences of a repeated local time are
    /// (zero for a time that occurs once or not at all).
    fn repeated_span(&self, local: NaiveDateTime) -> TimeDelta {
        match self.time_zone.from_local_datetime(&local) {
            LocalResult::Ambiguous(first, second) => {
                (second.with_timezone(&Utc) - first.with_timezone(&Utc)).abs()
            }
            _ => TimeDelta::zero(),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.expression, self.time_zone.name())
    }
}

fn parse_time_zone(tz: Option<&str>) -> Result<Tz, ScheduleError> {
    match tz {
        None => Ok(Tz::UTC),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| ScheduleError::UnknownTimeZone(name.to_string())),
    }
}

/// `name(inner)` → `(name, inner)`.
fn split_call(expression: &str) -> Option<(&str, &str)> {
    let open = expression.find('(')?;
    let inner = expression[open + 1..].strip_suffix(')')?;
    Some((&expression[..open], inner))
}

fn cron_error(expression: &str, inner: &str, error: CronError) -> ScheduleError {
    match error {
        CronError::Whole(reason) => ScheduleError::Cron {
            expr: expression.to_string(),
            reason,
        },
        CronError::Field(field_error) => ScheduleError::CronField {
            expr: expression.to_string(),
            field: field_error.field,
            value: inner
                .split_whitespace()
                .nth(field_error.field.position() - 1)
                .unwrap_or_default()
                .to_string(),
            reason: field_error.reason,
        },
    }
}

/// `yyyy-mm-ddThh:mm:ss`, exactly, as a local time in `time_zone`.
fn parse_at(inner: &str, time_zone: Tz) -> Result<DateTime<Utc>, String> {
    const SHAPE: &str = "dddd-dd-ddTdd:dd:dd";
    let shaped = inner.len() == SHAPE.len()
        && inner
            .bytes()
            .zip(SHAPE.bytes())
            .all(|(byte, shape)| match shape {
                b'd' => byte.is_ascii_digit(),
                _ => byte == shape,
            });
    if !shaped {
        return Err(format!(
            "`{inner}` is not of the form yyyy-mm-ddThh:mm:ss, e.g. at(2026-06-01T09:00:00)"
        ));
    }
    let local = NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
        .map_err(|_| format!("`{inner}` is not a valid date and time"))?;
    match time_zone.from_local_datetime(&local) {
        LocalResult::Single(instant) => Ok(instant.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => Ok(first.min(second).with_timezone(&Utc)),
        LocalResult::None => Err(format!(
            "`{inner}` does not exist in {}: the clocks skip it when daylight saving time starts",
            time_zone.name()
        )),
    }
}

/// How many whole periods fit between `created` and `until` (`until >= created`).
fn periods_between(created: DateTime<Utc>, until: DateTime<Utc>, rate: &Rate) -> Option<i64> {
    let elapsed = until.signed_duration_since(created).num_seconds();
    (elapsed >= 0).then(|| elapsed / rate.period_seconds())
}

fn rate_occurrence(created: DateTime<Utc>, rate: &Rate, periods: i64) -> Option<DateTime<Utc>> {
    let offset = TimeDelta::try_seconds(rate.period_seconds().checked_mul(periods)?)?;
    created.checked_add_signed(offset)
}

fn truncate_to_minute(local: NaiveDateTime) -> NaiveDateTime {
    local
        .with_second(0)
        .and_then(|local| local.with_nanosecond(0))
        .unwrap_or(local)
}

fn first_cron_minute() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn last_cron_minute() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(LAST_YEAR, 12, 31)
        .and_then(|date| date.and_hms_opt(23, 59, 0))
        .unwrap_or_default()
}
