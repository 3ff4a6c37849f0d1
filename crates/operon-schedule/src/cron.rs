//! AWS cron expressions: parsing into per-field sets, and the search for the
//! next (or previous) matching local minute.
//!
//! The search is a nested walk year → month → day → hour → minute in which
//! every level jumps straight to the next member of its set, so finding
//! "02:30 on the third Friday of February 2030" from 2026 touches a few dozen
//! values, never the minutes in between. Days are the only field that depends
//! on the others (`L`, `W`, `#`, weekdays), so the matching days of a month
//! are computed once per month visited, as a set.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use crate::bits::{Bits, Direction};
use crate::error::CronField;

/// The first year a cron year field (and so any cron schedule) can name.
pub const FIRST_YEAR: i32 = 1970;
/// The last year a cron year field (and so any cron schedule) can name.
pub const LAST_YEAR: i32 = 2199;

const MONTH_NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const SATURDAY: u32 = 7;
const SUNDAY: u32 = 1;

/// A parsed cron expression. All sets hold values as written, except years,
/// which are stored as `year - 1970`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    pub(crate) minutes: Bits,
    pub(crate) hours: Bits,
    pub(crate) months: Bits,
    pub(crate) years: Bits,
    pub(crate) days: Days,
}

/// Which of the two day fields is in use (the other one is `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Days {
    OfMonth(DayOfMonth),
    OfWeek(DayOfWeek),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DayOfMonth {
    /// Days 1-31 from values, ranges, steps and `*`.
    Listed(Bits),
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last weekday (Monday-Friday) of the month.
    LastWeekday,
    /// `15W`: the weekday nearest the 15th, within the same month.
    NearestWeekday(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DayOfWeek {
    /// Weekdays 1-7 (1 = Sunday) from values, names, ranges, steps, `*`
    /// and a lone `L` (Saturday, the last day of the week).
    Listed(Bits),
    /// `5L`: the last Thursday of the month.
    Last(u32),
    /// `6#3`: the third Friday of the month.
    Nth { weekday: u32, nth: u32 },
}

/// What a search visitor decides about one candidate minute.
pub(crate) enum Visit<T> {
    Accept(T),
    Skip,
    Stop,
}

/// A field's valid values and names. `bias` is subtracted before a value is
/// stored (only years, which do not fit 256 bits otherwise).
struct FieldRule {
    field: CronField,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    bias: u32,
    /// AWS documents `/` for every field but day-of-week.
    steps: bool,
}

const MINUTES: FieldRule = FieldRule::plain(CronField::Minutes, 0, 59);
const HOURS: FieldRule = FieldRule::plain(CronField::Hours, 0, 23);
const DAY_OF_MONTH: FieldRule = FieldRule::plain(CronField::DayOfMonth, 1, 31);
const MONTH: FieldRule = FieldRule {
    names: MONTH_NAMES,
    ..FieldRule::plain(CronField::Month, 1, 12)
};
const DAY_OF_WEEK: FieldRule = FieldRule {
    names: WEEKDAY_NAMES,
    steps: false,
    ..FieldRule::plain(CronField::DayOfWeek, 1, 7)
};
const YEAR: FieldRule = FieldRule {
    bias: FIRST_YEAR as u32,
    ..FieldRule::plain(CronField::Year, FIRST_YEAR as u32, LAST_YEAR as u32)
};

/// A field-level parse error: which field, and why.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub(crate) field: CronField,
    pub(crate) reason: String,
}

/// An expression-level parse error.
#[derive(Debug)]
pub(crate) enum CronError {
    Whole(String),
    Field(FieldError),
}

impl From<FieldError> for CronError {
    fn from(error: FieldError) -> Self {
        CronError::Field(error)
    }
}

impl FieldRule {
    const fn plain(field: CronField, min: u32, max: u32) -> FieldRule {
        FieldRule {
            field,
            min,
            max,
            names: &[],
            bias: 0,
            steps: true,
        }
    }

    fn error(&self, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: self.field,
            reason: reason.into(),
        }
    }

    fn span(&self) -> u32 {
        self.max - self.min + 1
    }

    /// A comma-separated list of `*`, `v`, `a-b`, `*/s`, `v/s`, `a-b/s`.
    fn parse_list(&self, text: &str) -> Result<Bits, FieldError> {
        let mut bits = Bits::default();
        for item in text.split(',') {
            if item.is_empty() {
                return Err(self.error("empty item in the comma-separated list"));
            }
            self.parse_item(item, &mut bits)?;
        }
        Ok(bits)
    }

    fn parse_item(&self, item: &str, bits: &mut Bits) -> Result<(), FieldError> {
        let (range, step) = match item.split_once('/') {
            Some(_) if !self.steps => {
                return Err(self.error(
                    "`/` (increments) is not allowed in day-of-week, which takes , - * ? L #",
                ));
            }
            Some((range, step)) => (range, Some(self.parse_step(step)?)),
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (self.min, self.max)
        } else if let Some((low, high)) = range.split_once('-') {
            (self.parse_value(low)?, self.parse_value(high)?)
        } else {
            let value = self.parse_value(range)?;
            // `5/15` means 5, 20, 35, 50: from the value to the field's end.
            (value, if step.is_some() { self.max } else { value })
        };
        if low > high && self.field == CronField::Year {
            return Err(self.error(format!(
                "range `{low}-{high}` runs backwards (years do not wrap around)"
            )));
        }
        self.insert_range(low, high, step.unwrap_or(1), bits);
        Ok(())
    }

    /// Inserts `low..=high` by `step`. A range whose start is after its end
    /// wraps around the field (`22-2` in hours is 22, 23, 0, 1, 2), as in
    /// Quartz, on which AWS's syntax is modelled.
    fn insert_range(&self, low: u32, high: u32, step: u32, bits: &mut Bits) {
        let length = if low <= high {
            high - low
        } else {
            (self.max - low) + (high - self.min) + 1
        };
        for offset in (0..=length).step_by(step as usize) {
            let mut value = low + offset;
            if value > self.max {
                value -= self.span();
            }
            bits.insert(value - self.bias);
        }
    }

    fn parse_step(&self, text: &str) -> Result<u32, FieldError> {
        let step = parse_number(text)
            .ok_or_else(|| self.error(format!("step `{text}` is not a whole number")))?;
        if step == 0 || step > self.span() {
            return Err(self.error(format!(
                "step `{step}` must be between 1 and {}",
                self.span()
            )));
        }
        Ok(step)
    }

    /// A number in range, or a name (JAN-DEC, SUN-SAT) where the field has names.
    fn parse_value(&self, text: &str) -> Result<u32, FieldError> {
        if let Some(value) = parse_number(text) {
            if (self.min..=self.max).contains(&value) {
                return Ok(value);
            }
            return Err(self.error(format!(
                "`{text}` is out of range {}-{}",
                self.min, self.max
            )));
        }
        if let Some(index) = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
        {
            return Ok(self.min + index as u32);
        }
        Err(self.error(match self.names.first().zip(self.names.last()) {
            Some((first, last)) => format!(
                "`{text}` is not a number {}-{} or a name {first}-{last}",
                self.min, self.max
            ),
            None => format!(
                "`{text}` is not a number {}-{} (this field allows , - * /)",
                self.min, self.max
            ),
        }))
    }
}

/// A non-empty run of ASCII digits that fits a u32.
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `?` (unspecified), `L`, `LW`, `15W`, or a plain list.
fn parse_day_of_month(text: &str) -> Result<Option<DayOfMonth>, FieldError> {
    let rule = &DAY_OF_MONTH;
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "?" => return Ok(None),
        "L" => return Ok(Some(DayOfMonth::Last)),
        "LW" => return Ok(Some(DayOfMonth::LastWeekday)),
        _ => {}
    }
    if text.contains('?') {
        return Err(rule.error("`?` must be the whole field"));
    }
    if let Some(day) = upper.strip_suffix('W').and_then(parse_number) {
        if !(1..=31).contains(&day) {
            return Err(rule.error(format!("`{day}W`: the day must be 1-31")));
        }
        return Ok(Some(DayOfMonth::NearestWeekday(day)));
    }
    if upper.contains(['L', 'W']) {
        return Err(rule.error(
            "`L` and `W` must stand alone: use `L` (last day), `LW` (last weekday) or `<day>W` such as `15W` (weekday nearest the 15th)",
        ));
    }
    rule.parse_list(text)
        .map(|days| Some(DayOfMonth::Listed(days)))
}

/// `?` (unspecified), `L` (Saturday), `5L`, `6#3`, or a plain list.
fn parse_day_of_week(text: &str) -> Result<Option<DayOfWeek>, FieldError> {
    let rule = &DAY_OF_WEEK;
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "?" => return Ok(None),
        "L" => return Ok(Some(DayOfWeek::Listed(Bits::range(SATURDAY, SATURDAY)))),
        _ => {}
    }
    if text.contains('?') {
        return Err(rule.error("`?` must be the whole field"));
    }
    if text.contains('#') && text.contains(',') {
        return Err(rule.error(
            "`#` must stand alone: one `<weekday>#<n>` per expression (a list such as `3#1,6#3` is not allowed)",
        ));
    }
    if let Some((weekday, nth)) = text.split_once('#') {
        let weekday = rule.parse_value(weekday)?;
        let nth = parse_number(nth)
            .filter(|nth| (1..=5).contains(nth))
            .ok_or_else(|| {
                rule.error(format!(
                    "`#{nth}`: the occurrence after `#` must be 1-5 (e.g. `6#3`, the third Friday)"
                ))
            })?;
        return Ok(Some(DayOfWeek::Nth { weekday, nth }));
    }
    if let Some(weekday) = text.strip_suffix(['L', 'l'])
        && !weekday.contains([',', '-', '*', '/'])
    {
        return Ok(Some(DayOfWeek::Last(rule.parse_value(weekday)?)));
    }
    if upper.contains('L') {
        return Err(rule.error(
            "`L` must stand alone: use `L` (Saturday, the last day of the week) or `<weekday>L` such as `5L` (the last Thursday of the month)",
        ));
    }
    rule.parse_list(text)
        .map(|days| Some(DayOfWeek::Listed(days)))
}

impl Cron {
    /// Parses the inside of `cron(...)`. Names and letters are case-insensitive.
    pub(crate) fn parse(inner: &str) -> Result<Cron, CronError> {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(CronError::Whole(format!(
                "expected 6 fields (minutes hours day-of-month month day-of-week year), found {}",
                fields.len()
            )));
        }
        let minutes = MINUTES.parse_list(fields[0])?;
        let hours = HOURS.parse_list(fields[1])?;
        let day_of_month = parse_day_of_month(fields[2])?;
        let months = MONTH.parse_list(fields[3])?;
        let day_of_week = parse_day_of_week(fields[4])?;
        let years = YEAR.parse_list(fields[5])?;
        let days = match (day_of_month, day_of_week) {
            (Some(of_month), None) => Days::OfMonth(of_month),
            (None, Some(of_week)) => Days::OfWeek(of_week),
            (None, None) => {
                return Err(CronError::Whole(
                    "day-of-month and day-of-week are both `?`: exactly one of them must be `?` and the other must say which days".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(CronError::Whole(
                    "exactly one of day-of-month and day-of-week must be `?` (AWS does not combine them), e.g. cron(0 12 * * ? *) or cron(0 12 ? * MON-FRI *)".into(),
                ));
            }
        };
        Ok(Cron {
            minutes,
            hours,
            months,
            years,
            days,
        })
    }

    /// The days of `month` in `year` that match, as a set of 1..=31.
    pub(crate) fn days_in(&self, year: i32, month: u32) -> Bits {
        let length = days_in_month(year, month);
        let first = first_weekday(year, month);
        let weekday_of = |day: u32| (first - 1 + day - 1) % 7 + 1;
        let mut days = Bits::default();
        match &self.days {
            Days::OfMonth(DayOfMonth::Listed(listed)) => {
                for day in listed.walk(1, Direction::Forward) {
                    if day > length {
                        break;
                    }
                    days.insert(day);
                }
            }
            Days::OfMonth(DayOfMonth::Last) => days.insert(length),
            Days::OfMonth(DayOfMonth::LastWeekday) => {
                days.insert(nearest_weekday(length, length, weekday_of(length)));
            }
            Days::OfMonth(DayOfMonth::NearestWeekday(day)) => {
                if *day <= length {
                    days.insert(nearest_weekday(*day, length, weekday_of(*day)));
                }
            }
            Days::OfWeek(DayOfWeek::Listed(weekdays)) => {
                for day in 1..=length {
                    if weekdays.contains(weekday_of(day)) {
                        days.insert(day);
                    }
                }
            }
            Days::OfWeek(DayOfWeek::Last(weekday)) => {
                let back = (weekday_of(length) + 7 - weekday) % 7;
                days.insert(length - back);
            }
            Days::OfWeek(DayOfWeek::Nth { weekday, nth }) => {
                let first_match = 1 + (weekday + 7 - first) % 7;
                let day = first_match + 7 * (nth - 1);
                if day <= length {
                    days.insert(day);
                }
            }
        }
        days
    }

    /// Visits matching local minutes from `start` (included if it matches)
    /// in `direction`, until the visitor accepts or stops, or the years
    /// 1970-2199 run out. `start` must lie within those years.
    pub(crate) fn walk<T>(
        &self,
        start: NaiveDateTime,
        direction: Direction,
        mut visit: impl FnMut(NaiveDateTime) -> Visit<T>,
    ) -> Option<T> {
        let edge = |low: u32, high: u32| match direction {
            Direction::Forward => low,
            Direction::Backward => high,
        };
        let (start_year, start_month, start_day) = (start.year(), start.month(), start.day());
        let (start_hour, start_minute) = (start.hour(), start.minute());
        let first_year = u32::try_from(start_year - FIRST_YEAR).ok()?;
        for year_index in self.years.walk(first_year, direction) {
            let year = FIRST_YEAR + year_index as i32;
            let on_year = year == start_year;
            let month_from = if on_year { start_month } else { edge(1, 12) };
            for month in self.months.walk(month_from, direction) {
                let on_month = on_year && month == start_month;
                let day_from = if on_month { start_day } else { edge(1, 31) };
                for day in self.days_in(year, month).walk(day_from, direction) {
                    let on_day = on_month && day == start_day;
                    let hour_from = if on_day { start_hour } else { edge(0, 23) };
                    for hour in self.hours.walk(hour_from, direction) {
                        let on_hour = on_day && hour == start_hour;
                        let minute_from = if on_hour { start_minute } else { edge(0, 59) };
                        for minute in self.minutes.walk(minute_from, direction) {
                            let Some(local) = NaiveDate::from_ymd_opt(year, month, day)
                                .and_then(|date| date.and_hms_opt(hour, minute, 0))
                            else {
                                continue;
                            };
                            match visit(local) {
                                Visit::Accept(found) => return Some(found),
                                Visit::Skip => {}
                                Visit::Stop => return None,
                            }
                        }
                    }
                }
            }
        }
        None
    }
}

/// The weekday nearest `day` without leaving the month: a Saturday moves to
/// Friday (or to Monday the 3rd if the Saturday is the 1st), a Sunday to
/// Monday (or to Friday if the Sunday is the last day of the month).
fn nearest_weekday(day: u32, length: u32, weekday: u32) -> u32 {
    match weekday {
        SATURDAY if day == 1 => 3,
        SATURDAY => day - 1,
        SUNDAY if day == length => day - 2,
        SUNDAY => day + 1,
        _ => day,
    }
}

pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 31,
    }
}

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// 1 = Sunday .. 7 = Saturday, as in AWS's day-of-week field.
fn first_weekday(year: i32, month: u32) -> u32 {
    NaiveDate::from_ymd_opt(year, month, 1)
        .map_or(SUNDAY, |date| date.weekday().number_from_sunday())
}
