//! Numbers as EventBridge compares them.
//!
//! event-ruler (the library EventBridge builds on) compares numbers as IEEE
//! doubles, but only numbers whose decimal text is *exactly* the value of the
//! shortest decimal form of the nearest double: `1E-325` (which would silently
//! become `0.0`) and `1E309` (infinite) cannot be compared. Such numbers are
//! rejected in numeric rules and are matched only as text in exact rules.

/// The double value of a JSON number, if it can be compared without losing precision.
pub fn comparable(text: &str) -> Option<f64> {
    let written = Digits::parse(text.as_bytes())?;
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    if written.mantissa == 0 {
        return Some(0.0);
    }
    // Up to 15 significant digits always survive a round trip through a
    // normal (not subnormal) double.
    if written.count <= 15 && value.abs() >= f64::MIN_POSITIVE {
        return Some(value);
    }
    if written.count > 17 {
        return None;
    }
    let mut buffer = StackText::default();
    std::fmt::Write::write_fmt(&mut buffer, format_args!("{value:e}")).ok()?;
    let shortest = Digits::parse(buffer.as_bytes())?;
    (shortest == written).then_some(value)
}

/// A decimal as (significant digits without trailing zeros, count, power of ten):
/// value = mantissa x 10^exponent. `mantissa` saturates past 19 digits; `count` does not.
#[derive(Debug, PartialEq, Eq)]
struct Digits {
    negative: bool,
    mantissa: u64,
    count: u32,
    exponent: i64,
}

impl Digits {
    fn parse(text: &[u8]) -> Option<Digits> {
        let (negative, mut rest) = match text.first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let mut mantissa = 0u64;
        let mut count = 0u32;
        let mut pending_zeros = 0i64;
        let mut exponent = 0i64;
        let mut seen_point = false;
        let mut seen_digit = false;
        while let Some((&b, tail)) = rest.split_first() {
            match b {
                b'0'..=b'9' => {
                    seen_digit = true;
                    if seen_point {
                        exponent -= 1;
                    }
                    if b == b'0' {
                        pending_zeros += 1;
                    } else {
                        // Zeros before the first significant digit are not digits of the mantissa.
                        if count > 0 {
                            for _ in 0..pending_zeros {
                                mantissa = mantissa.saturating_mul(10);
                                count = count.saturating_add(1);
                            }
                        }
                        pending_zeros = 0;
                        mantissa = mantissa
                            .saturating_mul(10)
                            .saturating_add(u64::from(b - b'0'));
                        count = count.saturating_add(1);
                    }
                }
                b'.' if !seen_point => seen_point = true,
                b'e' | b'E' => {
                    exponent = exponent.saturating_add(parse_saturating_exponent(tail)?);
                    break;
                }
                _ => return None,
            }
            rest = tail;
        }
        if !seen_digit {
            return None;
        }
        if mantissa == 0 {
            return Some(Digits {
                negative: false,
                mantissa: 0,
                count: 0,
                exponent: 0,
            });
        }
        // Trailing zeros were not added to the mantissa: they scale it instead.
        Some(Digits {
            negative,
            mantissa,
            count,
            exponent: exponent.saturating_add(pending_zeros),
        })
    }
}

/// A fixed buffer for formatting one double without allocating.
struct StackText {
    bytes: [u8; 40],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn parse_saturating_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |acc, b| {
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
        assert_eq!(comparable("4.9e-324"), None);
        assert_eq!(comparable("5e-324"), Some(5e-324));
        assert_eq!(comparable("1E309"), None);
        assert_eq!(comparable("2.0e422"), None);
        assert_eq!(comparable("0.1000000000000000055511151231257827"), None);
        assert_eq!(comparable("12345678901234567890"), None);
    }
}
