//! Numbers as EventBridge compares them.
//!
//! event-ruler (the library EventBridge builds on) compares numbers as IEEE
//! doubles, but only numbers whose decimal text is *exactly* the value of the
//! shortest decimal form of the nearest double: `1E-325` (which would silently
//! become `0.0`) and `1E309` (infinite) cannot be compared. Such numbers are
//! rejected in numeric rules and are matched only as text in exact rules.

/// The double value of a JSON number, if it can be compared without losing precision.
pub fn comparable(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let written = Decimal::parse(text)?;
    let shortest = Decimal::parse(&format!("{value:e}"))?;
    (written == shortest).then_some(if value == 0.0 { 0.0 } else { value })
}

/// A decimal in normal form: value = 0.DIGITS x 10^exponent, no leading or
/// trailing zero digits; zero has no digits (and no sign).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (mantissa, exp_text) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let exponent = match exp_text {
            Some(e) => parse_saturating_exponent(e)?,
            None => 0,
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int_part.is_empty()
            || !int_part
                .bytes()
                .chain(frac_part.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let all: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        let Some(first_nonzero) = all.iter().position(|&d| d != 0) else {
            return Some(Decimal {
                negative: false,
                digits: Vec::new(),
                exponent: 0,
            });
        };
        let last_nonzero = all.iter().rposition(|&d| d != 0).unwrap_or(first_nonzero);
        let point_exponent = int_part.len() as i64 - first_nonzero as i64;
        Some(Decimal {
            negative,
            digits: all[first_nonzero..=last_nonzero].to_vec(),
            exponent: exponent.saturating_add(point_exponent),
        })
    }
}

fn parse_saturating_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |acc, b| {
        acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::comparable;

    #[test]
    fn accepts_exact_doubles() {
        assert_eq!(comparable("300"), Some(300.0));
        assert_eq!(comparable("300.0"), Some(300.0));
        assert_eq!(comparable("-122.42916360922355"), Some(-122.42916360922355));
        assert_eq!(comparable("3.018e2"), Some(301.8));
        assert_eq!(comparable("123456789012"), Some(123456789012.0));
        assert_eq!(comparable("-0"), Some(0.0));
        assert_eq!(comparable("0.000001"), Some(0.000001));
    }

    #[test]
    fn rejects_lossy_numbers() {
        assert_eq!(comparable("1E-325"), None);
        assert_eq!(comparable("1E309"), None);
        assert_eq!(comparable("2.0e422"), None);
        assert_eq!(comparable("0.1000000000000000055511151231257827"), None);
        assert_eq!(comparable("12345678901234567890"), None);
    }
}
