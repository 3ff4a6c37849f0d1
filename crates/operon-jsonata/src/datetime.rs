//! ISO 8601 timestamps and a subset of XPath date/time pictures for `$fromMillis`,
//! `$toMillis` and `$now`. Pure arithmetic: no clock, no time zone database (only fixed
//! offsets such as `+0100` or `-05:00`).

use crate::error::{Error, Result};

const MS_PER_DAY: i64 = 86_400_000;
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if month <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        month,
        day,
    )
}

struct Parts {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    weekday: i64,
    day_of_year: i64,
    offset_minutes: i64,
}

fn parts(millis: i64, offset_minutes: i64) -> Parts {
    let local = millis + offset_minutes * 60_000;
    let days = local.div_euclid(MS_PER_DAY);
    let ms_of_day = local.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: ms_of_day / 3_600_000,
        minute: ms_of_day / 60_000 % 60,
        second: ms_of_day / 1000 % 60,
        millis: ms_of_day % 1000,
        weekday: (days + 3).rem_euclid(7),
        day_of_year: days - days_from_civil(year, 1, 1) + 1,
        offset_minutes,
    }
}

/// Parses a fixed offset: `Z`, `+01:00`, `-0500`, `+01`.
fn parse_offset(tz: &str) -> Option<i64> {
    if tz == "Z" || tz.is_empty() {
        return Some(0);
    }
    let sign = match tz.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = tz[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    Some(sign * (hours * 60 + minutes))
}

fn format_offset(minutes: i64, separator: &str, zulu: bool) -> String {
    if minutes == 0 && zulu {
        return "Z".into();
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    format!(
        "{sign}{:02}{separator}{:02}",
        minutes.abs() / 60,
        minutes.abs() % 60
    )
}

fn iso(p: &Parts) -> String {
    let year = if (0..=9999).contains(&p.year) {
        format!("{:04}", p.year)
    } else {
        format!("{:+07}", p.year)
    };
    format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}",
        p.month,
        p.day,
        p.hour,
        p.minute,
        p.second,
        p.millis,
        format_offset(p.offset_minutes, ":", true)
    )
}

/// Formats epoch milliseconds: ISO 8601 without a picture, else an XPath picture subset.
pub(crate) fn format_millis(
    millis: i64,
    picture: Option<&str>,
    timezone: Option<&str>,
) -> Result<String> {
    let offset = match timezone {
        Some(tz) => parse_offset(tz)
            .ok_or_else(|| Error::new("D3134", format!("Unsupported timezone: {tz}")))?,
        None => 0,
    };
    // JavaScript dates span ±8.64e15 ms; beyond that there is no calendar date.
    if millis.unsigned_abs() > 8_640_000_000_000_000 {
        return Err(Error::new(
            "D3137",
            format!("Timestamp out of range: {millis}"),
        ));
    }
    let p = parts(millis, offset);
    match picture {
        None => Ok(iso(&p)),
        Some(picture) => format_picture(&p, picture),
    }
}

fn format_picture(p: &Parts, picture: &str) -> Result<String> {
    let chars: Vec<char> = picture.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '[' && chars.get(i + 1) == Some(&'[') {
            out.push('[');
            i += 2;
        } else if c == ']' && chars.get(i + 1) == Some(&']') {
            out.push(']');
            i += 2;
        } else if c == '[' {
            let end = chars[i..].iter().position(|&d| d == ']').ok_or_else(|| {
                Error::new(
                    "D3135",
                    "No matching closing bracket ']' in date/time picture string",
                )
            })? + i;
            let marker: String = chars[i + 1..end]
                .iter()
                .filter(|c| !c.is_whitespace())
                .collect();
            out.push_str(&format_component(p, &marker)?);
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

fn format_component(p: &Parts, marker: &str) -> Result<String> {
    let mut chars = marker.chars();
    let component = chars.next().unwrap_or(' ');
    let rest: String = chars.collect();
    let (presentation, width) = match rest.split_once(',') {
        Some((pres, width)) => (pres.to_string(), Some(width.to_string())),
        None => (rest, None),
    };
    let value = match component {
        'Y' => p.year,
        'M' => p.month,
        'D' => p.day,
        'd' => p.day_of_year,
        'F' => p.weekday + 1,
        'H' => p.hour,
        'h' => (p.hour + 11) % 12 + 1,
        'm' => p.minute,
        's' => p.second,
        'f' => p.millis,
        'P' => {
            let am = if p.hour < 12 { "am" } else { "pm" };
            return Ok(if presentation.starts_with('N') {
                am.to_uppercase()
            } else {
                am.to_string()
            });
        }
        'Z' => {
            return Ok(format_offset(
                p.offset_minutes,
                if presentation.contains(':') || presentation.is_empty() {
                    ":"
                } else {
                    ""
                },
                false,
            ));
        }
        'z' => {
            return Ok(format!(
                "GMT{}",
                format_offset(p.offset_minutes, ":", false)
            ));
        }
        'E' => return Ok("AD".into()),
        _ => {
            return Err(Error::new(
                "D3132",
                format!("Unknown component specifier {component} in date/time picture string"),
            ));
        }
    };
    let names = match component {
        'M' => Some(MONTHS[(p.month - 1).clamp(0, 11) as usize]),
        'F' => Some(DAYS[p.weekday.clamp(0, 6) as usize]),
        _ => None,
    };
    if let Some(name) = names
        && matches!(presentation.chars().next(), Some('N' | 'n'))
    {
        let max_len = width
            .as_deref()
            .and_then(|w| w.split('-').nth(1))
            .and_then(|w| w.parse::<usize>().ok());
        let name: String = max_len.map_or(name.to_string(), |n| name.chars().take(n).collect());
        return Ok(match presentation.as_str() {
            "N" => name.to_uppercase(),
            "n" => name.to_lowercase(),
            _ => name,
        });
    }
    if component == 'f' {
        let digits = presentation
            .chars()
            .filter(|c| c.is_ascii_digit())
            .count()
            .max(1);
        let frac = format!("{:03}", p.millis);
        return Ok(if digits <= 3 {
            frac[..digits].to_string()
        } else {
            format!("{frac}{}", "0".repeat(digits - 3))
        });
    }
    format_integer_component(component, value, &presentation, width.as_deref())
}

/// A numeric date/time component: digits (`01`, `#1`, width modifiers), ordinals (`1o`),
/// words (`w`, `W`, `Ww`) or roman numerals (`I`, `i`).
fn format_integer_component(
    component: char,
    value: i64,
    presentation: &str,
    width: Option<&str>,
) -> Result<String> {
    let (presentation, ordinal) = match presentation.strip_suffix('o') {
        Some(stripped) if !stripped.is_empty() => (stripped, true),
        _ => (presentation, false),
    };
    if matches!(presentation, "w" | "W" | "Ww" | "I" | "i") {
        let formatted = crate::numfmt::format_integer(value as f64, presentation)?;
        return Ok(if ordinal && presentation.starts_with(['w', 'W']) {
            ordinal_words(&formatted)
        } else {
            formatted
        });
    }
    let digit_count = presentation.chars().filter(|c| c.is_ascii_digit()).count();
    let default_width = if presentation.is_empty() && matches!(component, 'm' | 's') {
        2
    } else {
        1
    };
    let min_width = digit_count.max(default_width);
    let min_width = width
        .and_then(|w| w.split('-').next())
        .and_then(|w| w.parse::<usize>().ok())
        .map_or(min_width, |w| w.max(min_width));
    let mut digits = format!("{:0min_width$}", value.abs());
    if component == 'Y' && digit_count == 2 {
        digits = digits[digits.len().saturating_sub(2)..].to_string();
    }
    if ordinal {
        digits.push_str(ordinal_suffix(value));
    }
    Ok(if value < 0 {
        format!("-{digits}")
    } else {
        digits
    })
}

fn ordinal_suffix(value: i64) -> &'static str {
    match (value.abs() % 10, value.abs() % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

/// "twenty-one" -> "twenty-first", "seven" -> "seventh".
fn ordinal_words(words: &str) -> String {
    const IRREGULAR: [(&str, &str); 8] = [
        ("one", "first"),
        ("two", "second"),
        ("three", "third"),
        ("five", "fifth"),
        ("eight", "eighth"),
        ("nine", "ninth"),
        ("twelve", "twelfth"),
        ("y", "ieth"),
    ];
    let split = words.rfind([' ', '-']).map_or(0, |i| i + 1);
    let (head, last) = words.split_at(split);
    let lower = last.to_lowercase();
    let converted = IRREGULAR
        .iter()
        .find(|(word, _)| lower.ends_with(word) && (word.len() == 1 || lower == *word))
        .map(|(word, replacement)| format!("{}{replacement}", &lower[..lower.len() - word.len()]))
        .unwrap_or_else(|| format!("{lower}th"));
    let converted = if last.chars().all(|c| !c.is_lowercase()) {
        converted.to_uppercase()
    } else if last.starts_with(char::is_uppercase) {
        let mut chars = converted.chars();
        chars.next().map_or(String::new(), |c| {
            c.to_uppercase().collect::<String>() + chars.as_str()
        })
    } else {
        converted
    };
    format!("{head}{converted}")
}

/// Parses an ISO 8601 timestamp (or a date) to epoch milliseconds. A picture is supported for
/// the numeric components `[Y] [M] [D] [H] [m] [s] [f]` separated by literal text.
pub(crate) fn parse_millis(s: &str, picture: Option<&str>) -> Result<Option<i64>> {
    let parsed = match picture {
        None => parse_iso(s.trim()),
        Some(picture) => parse_with_picture(s, picture),
    };
    parsed.map(Some).ok_or_else(|| {
        Error::new("D3110", format!("The argument of the toMillis function must be an ISO 8601 formatted timestamp. Given {s:?}"))
    })
}

fn take_digits(s: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<i64> {
    let start = *pos;
    while *pos < s.len() && *pos - start < max && s[*pos].is_ascii_digit() {
        *pos += 1;
    }
    if *pos - start < min {
        return None;
    }
    std::str::from_utf8(&s[start..*pos]).ok()?.parse().ok()
}

fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut pos = 0;
    let negative_year = b.first() == Some(&b'-');
    if negative_year || b.first() == Some(&b'+') {
        pos += 1;
    }
    let mut year = take_digits(b, &mut pos, 4, 6)?;
    if negative_year {
        year = -year;
    }
    let (mut month, mut day) = (1, 1);
    if b.get(pos) == Some(&b'-') {
        pos += 1;
        month = take_digits(b, &mut pos, 2, 2)?;
        if b.get(pos) == Some(&b'-') {
            pos += 1;
            day = take_digits(b, &mut pos, 2, 2)?;
        }
    }
    let (mut hour, mut minute, mut second, mut millis, mut offset) = (0, 0, 0, 0, 0);
    if matches!(b.get(pos), Some(b'T' | b't' | b' ')) {
        pos += 1;
        hour = take_digits(b, &mut pos, 2, 2)?;
        if b.get(pos) == Some(&b':') {
            pos += 1;
            minute = take_digits(b, &mut pos, 2, 2)?;
            if b.get(pos) == Some(&b':') {
                pos += 1;
                second = take_digits(b, &mut pos, 2, 2)?;
                if matches!(b.get(pos), Some(b'.' | b',')) {
                    pos += 1;
                    let start = pos;
                    let fraction = take_digits(b, &mut pos, 1, 9)?;
                    let len = (pos - start) as u32;
                    millis = if len >= 3 {
                        fraction / 10i64.pow(len - 3)
                    } else {
                        fraction * 10i64.pow(3 - len)
                    };
                }
            }
        }
        if pos < b.len() {
            offset = parse_offset(&s[pos..])?;
            pos = b.len();
        }
    }
    if pos != b.len()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 24
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(
        days * MS_PER_DAY + hour * 3_600_000 + minute * 60_000 + second * 1000 + millis
            - offset * 60_000,
    )
}

fn parse_with_picture(s: &str, picture: &str) -> Option<i64> {
    let input = s.as_bytes();
    let pic: Vec<char> = picture.chars().collect();
    let mut pos = 0;
    let (mut year, mut month, mut day, mut hour, mut minute, mut second, mut millis) =
        (1970, 1, 1, 0, 0, 0, 0);
    let mut i = 0;
    while i < pic.len() {
        if pic[i] == '[' {
            let end = pic[i..].iter().position(|&c| c == ']')? + i;
            let marker: String = pic[i + 1..end].iter().collect();
            let width = marker.chars().filter(|c| c.is_ascii_digit()).count();
            let (min, max) = if width > 1 { (width, width) } else { (1, 9) };
            let value = take_digits(input, &mut pos, min, max)?;
            match marker.chars().next()? {
                'Y' => year = value,
                'M' => month = value,
                'D' => day = value,
                'H' => hour = value,
                'm' => minute = value,
                's' => second = value,
                'f' => millis = value,
                _ => return None,
            }
            i = end + 1;
        } else {
            let mut buf = [0u8; 4];
            let literal = pic[i].encode_utf8(&mut buf).as_bytes();
            if !input[pos..].starts_with(literal) {
                return None;
            }
            pos += literal.len();
            i += 1;
        }
    }
    if pos != input.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    days.checked_mul(MS_PER_DAY)?
        .checked_add(hour * 3_600_000 + minute * 60_000 + second * 1000 + millis)
}
