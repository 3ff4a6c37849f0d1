//! Decimal numbers as the `Numeric*` condition operators compare them.
//!
//! Values are compared digit by digit on the text rather than through `f64`,
//! so the comparison is exact however long the number is
//! (`9007199254740993` is greater than `9007199254740992`, `0.3` equals
//! `0.30`) and there is no NaN or infinity to reason about. Parsing borrows
//! the text and allocates nothing, so request values can be read on every
//! decision.
//!
//! The accepted form is the one IAM's documentation shows for these
//! operators: an integer or a decimal with an optional leading minus sign
//! (`3600`, `1.5`, `-2`, `007`, `-0.25`). Anything else is not a number:
//! a `+` sign, exponents (`1e3`), a bare point (`.5`, `5.`), surrounding
//! whitespace, `NaN`, `Infinity`, digits other than ASCII.

use std::cmp::Ordering;

/// A parsed decimal, normalised so that equal numbers have equal fields:
/// no leading zeros in `whole`, no trailing zeros in `fraction`, and zero
/// is never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal<'a> {
    negative: bool,
    whole: &'a str,
    fraction: &'a str,
}

impl<'a> Decimal<'a> {
    /// The number `text` spells, or `None` when it is not an integer or a
    /// decimal in the accepted form.
    pub(crate) fn parse(text: &'a str) -> Option<Decimal<'a>> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        if !all_digits(whole) || fraction.is_some_and(|digits| !all_digits(digits)) {
            return None;
        }
        let whole = whole.trim_start_matches('0');
        let fraction = fraction.unwrap_or("").trim_end_matches('0');
        let is_zero = whole.is_empty() && fraction.is_empty();
        Some(Decimal {
            negative: negative && !is_zero,
            whole,
            fraction,
        })
    }

    /// Compares absolute values: the longer whole part is larger; with
    /// equal lengths the digits decide, whole part first, then the fraction
    /// (trailing zeros are gone, so comparing its text is comparing values).
    fn cmp_magnitude(&self, other: &Decimal<'_>) -> Ordering {
        self.whole
            .len()
            .cmp(&other.whole.len())
            .then_with(|| self.whole.cmp(other.whole))
            .then_with(|| self.fraction.cmp(other.fraction))
    }
}

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering::{self, Equal, Greater, Less};

    use super::Decimal;

    fn compare(a: &str, b: &str) -> Ordering {
        let parse = |text| Decimal::parse(text).unwrap_or_else(|| panic!("{text:?} is a number"));
        parse(a).cmp(&parse(b))
    }

    #[test]
    fn numbers_in_iam_form_parse() {
        for text in [
            "0", "3600", "-2", "1.5", "-0.25", "007", "0.0", "-0", "10.000", "00.50",
        ] {
            assert!(Decimal::parse(text).is_some(), "{text:?} should parse");
        }
    }

    #[test]
    fn anything_else_is_not_a_number() {
        for text in [
            "", "-", ".", "+1", "1e3", "1E3", ".5", "5.", "-.5", "1.2.3", "--1", " 1", "1 ",
            "0x10", "NaN", "Infinity", "-inf", "1_000", "1,5", "١٢", "ten", "1-",
        ] {
            assert_eq!(Decimal::parse(text), None, "{text:?} should not parse");
        }
    }

    #[test]
    fn comparison_is_numeric_not_textual() {
        let table = [
            ("2", "10", Less),
            ("10", "9", Greater),
            ("9.5", "10", Less),
            ("1.5", "1.25", Greater),
            ("0.5", "0.51", Less),
            ("0.3", "0.30", Equal),
            ("007", "7", Equal),
            ("7", "7.0", Equal),
            ("-0", "0", Equal),
            ("-0.0", "0.00", Equal),
            ("-1", "0", Less),
            ("-1", "1", Less),
            ("-2", "-10", Greater),
            ("-1.5", "-1.25", Less),
            ("-0.1", "0", Less),
            ("0", "0.1", Less),
            ("100", "099", Greater),
            // Beyond f64's exact integers: still told apart.
            ("9007199254740993", "9007199254740992", Greater),
            (
                "123456789012345678901234567890.000000000000000000001",
                "123456789012345678901234567890",
                Greater,
            ),
        ];
        for (a, b, expected) in table {
            assert_eq!(compare(a, b), expected, "{a} vs {b}");
            assert_eq!(compare(b, a), expected.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn equal_numbers_are_equal_values() {
        assert_eq!(Decimal::parse("-0.0"), Decimal::parse("0"));
        assert_eq!(Decimal::parse("0012.3400"), Decimal::parse("12.34"));
        assert_ne!(Decimal::parse("12.34"), Decimal::parse("-12.34"));
    }
}
