//! Parse errors. Each one quotes the expression and, for cron, names the
//! field (and its position) and the offending text, so a user can fix the
//! schedule without reading this crate.

use std::fmt;

/// The six fields of a cron expression, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    Minutes,
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl CronField {
    /// All fields in the order they appear in `cron(...)`.
    pub const ALL: [CronField; 6] = [
        CronField::Minutes,
        CronField::Hours,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
        CronField::Year,
    ];

    /// The field's name as AWS documents it.
    pub fn name(self) -> &'static str {
        match self {
            CronField::Minutes => "minutes",
            CronField::Hours => "hours",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        }
    }

    /// 1-based position in the expression.
    pub fn position(self) -> usize {
        CronField::ALL
            .iter()
            .position(|field| *field == self)
            .map_or(0, |index| index + 1)
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (field {})", self.name(), self.position())
    }
}

/// Why a schedule expression or time zone was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not `rate(...)`, `cron(...)` or `at(...)`.
    #[error(
        "schedule expression `{expr}` is not one of rate(value unit), cron(minutes hours day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)"
    )]
    UnknownForm { expr: String },

    /// A `rate(...)` expression is malformed.
    #[error("rate expression `{expr}`: {reason}")]
    Rate { expr: String, reason: String },

    /// A `cron(...)` expression is malformed as a whole (field count, the
    /// `?` rule between day-of-month and day-of-week).
    #[error("cron expression `{expr}`: {reason}")]
    Cron { expr: String, reason: String },

    /// One field of a `cron(...)` expression is malformed.
    #[error("cron expression `{expr}`, {field} `{value}`: {reason}")]
    CronField {
        expr: String,
        field: CronField,
        value: String,
        reason: String,
    },

    /// An `at(...)` expression is malformed or names a local time that does
    /// not exist in the schedule's time zone.
    #[error("at expression `{expr}`: {reason}")]
    At { expr: String, reason: String },

    /// The time zone is not an IANA time zone name.
    #[error(
        "unknown time zone `{0}`: expected an IANA time zone name such as `UTC`, `Europe/Berlin` or `America/New_York`"
    )]
    UnknownTimeZone(String),
}
