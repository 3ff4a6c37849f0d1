//! Number formatting: `$formatNumber` (XPath `format-number` pictures, common subset),
//! `$formatBase`, `$formatInteger` and `$parseInteger` (decimal, roman, alphabetic, words).

use crate::error::{Error, Result};
use crate::functions::round_half_even;
use crate::value::{ObjMap, Val};

struct Symbols {
    decimal: char,
    grouping: char,
    percent: char,
    per_mille: char,
    zero: char,
    digit: char,
    pattern: char,
    exponent: char,
    minus: char,
}

fn symbols(options: Option<&ObjMap>) -> Symbols {
    let get = |key: &str, default: char| -> char {
        options
            .and_then(|o| o.get(key))
            .and_then(Val::as_str)
            .and_then(|s| s.chars().next())
            .unwrap_or(default)
    };
    Symbols {
        decimal: get("decimal-separator", '.'),
        grouping: get("grouping-separator", ','),
        percent: get("percent", '%'),
        per_mille: get("per-mille", '\u{2030}'),
        zero: get("zero-digit", '0'),
        digit: get("digit", '#'),
        pattern: get("pattern-separator", ';'),
        exponent: get("exponent-separator", 'e'),
        minus: get("minus-sign", '-'),
    }
}

impl Symbols {
    fn is_decimal_digit(&self, c: char) -> bool {
        let zero = self.zero as u32;
        (zero..zero + 10).contains(&(c as u32))
    }

    fn is_active(&self, c: char) -> bool {
        c == self.decimal
            || c == self.grouping
            || c == self.digit
            || self.is_decimal_digit(c)
            || c == self.exponent
    }
}

struct SubPicture {
    prefix: String,
    suffix: String,
    min_int: usize,
    max_frac: usize,
    min_frac: usize,
    grouping: Vec<usize>,
    min_exponent: Option<usize>,
    percent: bool,
    per_mille: bool,
}

fn analyse(picture: &str, sym: &Symbols) -> Result<SubPicture> {
    let chars: Vec<char> = picture.chars().collect();
    let first = chars
        .iter()
        .position(|&c| sym.is_active(c) && c != sym.exponent);
    let last = chars
        .iter()
        .rposition(|&c| sym.is_active(c) && c != sym.exponent);
    let (Some(first), Some(last)) = (first, last) else {
        return Err(Error::new(
            "D3085",
            "The mantissa part of a sub-picture must contain at least one character that is either an 'optional digit character' or a member of the 'decimal digit family'",
        ));
    };
    let prefix: String = chars[..first].iter().collect();
    let mut body: String = chars[first..=last].iter().collect();
    let mut suffix: String = chars[last + 1..].iter().collect();
    let mut min_exponent = None;
    if let Some(rest) = suffix.strip_prefix(sym.exponent)
        && !rest.is_empty()
        && rest
            .chars()
            .take_while(|&c| sym.is_decimal_digit(c))
            .count()
            > 0
    {
        let digits = rest
            .chars()
            .take_while(|&c| sym.is_decimal_digit(c))
            .count();
        min_exponent = Some(digits);
        suffix = rest.chars().skip(digits).collect();
    } else if let Some(at) = body.find(sym.exponent) {
        let exp: String = body[at + sym.exponent.len_utf8()..].to_string();
        if exp.is_empty() || !exp.chars().all(|c| sym.is_decimal_digit(c)) {
            return Err(Error::new(
                "D3093",
                "The exponent part of the sub-picture must comprise only of one or more characters that are members of the 'decimal digit family'",
            ));
        }
        min_exponent = Some(
            exp.chars()
                .filter(|&c| sym.is_decimal_digit(c))
                .count()
                .max(1),
        );
        body.truncate(at);
    }
    if body.matches(sym.decimal).count() > 1 {
        return Err(Error::new(
            "D3081",
            "The sub-picture must not contain more than one instance of the 'decimal-separator' character",
        ));
    }
    validate_mantissa(&body, sym)?;
    let percent = picture.contains(sym.percent);
    let per_mille = picture.contains(sym.per_mille);
    if picture.matches(sym.percent).count() > 1 {
        return Err(Error::new(
            "D3082",
            "The sub-picture must not contain more than one instance of the 'percent' character",
        ));
    }
    if picture.matches(sym.per_mille).count() > 1 {
        return Err(Error::new(
            "D3083",
            "The sub-picture must not contain more than one instance of the 'per-mille' character",
        ));
    }
    if (percent || per_mille) && min_exponent.is_some() {
        return Err(Error::new(
            "D3092",
            "A sub-picture that contains a 'percent' or 'per-mille' character must not contain a character treated as an 'exponent-separator'",
        ));
    }
    if percent && per_mille {
        return Err(Error::new(
            "D3084",
            "The sub-picture must not contain both a 'percent' and a 'per-mille' character",
        ));
    }
    let (int_part, frac_part) = match body.split_once(sym.decimal) {
        Some((i, f)) => (i.to_string(), f.to_string()),
        None => (body.clone(), String::new()),
    };
    let min_int = int_part
        .chars()
        .filter(|&c| sym.is_decimal_digit(c))
        .count();
    let min_frac = frac_part
        .chars()
        .filter(|&c| sym.is_decimal_digit(c))
        .count();
    let max_frac = frac_part
        .chars()
        .filter(|&c| sym.is_decimal_digit(c) || c == sym.digit)
        .count();
    let mut grouping = Vec::new();
    let mut digits_to_right = 0;
    for c in int_part.chars().rev() {
        if c == sym.grouping {
            grouping.push(digits_to_right);
        } else if sym.is_decimal_digit(c) || c == sym.digit {
            digits_to_right += 1;
        }
    }
    Ok(SubPicture {
        prefix,
        suffix,
        min_int,
        max_frac,
        min_frac,
        grouping,
        min_exponent,
        percent,
        per_mille,
    })
}

/// The XPath rules on the mantissa (D3086-D3091).
fn validate_mantissa(body: &str, sym: &Symbols) -> Result<()> {
    let chars: Vec<char> = body.chars().collect();
    if chars.iter().any(|&c| !sym.is_active(c)) {
        return Err(Error::new(
            "D3086",
            "The sub-picture must not contain a passive character that is preceded by an active character and that is followed by another active character",
        ));
    }
    for pair in chars.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if (a == sym.grouping && b == sym.decimal) || (a == sym.decimal && b == sym.grouping) {
            return Err(Error::new(
                "D3087",
                "The sub-picture must not contain a 'grouping-separator' character that appears adjacent to a 'decimal-separator' character",
            ));
        }
        if a == sym.grouping && b == sym.grouping {
            return Err(Error::new(
                "D3089",
                "The sub-picture must not contain two adjacent instances of the 'grouping-separator' character",
            ));
        }
    }
    let (int_part, frac_part) = body.split_once(sym.decimal).unwrap_or((body, ""));
    if int_part.ends_with(sym.grouping) {
        return Err(Error::new(
            "D3088",
            "The sub-picture must not contain a 'grouping-separator' at the end of the integer part",
        ));
    }
    let first_digit = int_part.find(|c| sym.is_decimal_digit(c));
    if first_digit.is_some_and(|i| int_part[i..].contains(sym.digit)) {
        return Err(Error::new(
            "D3090",
            "The integer part of the sub-picture must not contain a member of the 'decimal digit family' that is followed by an instance of the 'optional digit character'",
        ));
    }
    let first_optional = frac_part.find(sym.digit);
    if first_optional.is_some_and(|i| frac_part[i..].contains(|c| sym.is_decimal_digit(c))) {
        return Err(Error::new(
            "D3091",
            "The fractional part of the sub-picture must not contain an instance of the 'optional digit character' that is followed by a member of the 'decimal digit family'",
        ));
    }
    Ok(())
}

/// Inserts grouping separators; regular grouping (e.g. every 3 digits) repeats.
fn group_digits(digits: &str, positions: &[usize], separator: char) -> String {
    if positions.is_empty() {
        return digits.to_string();
    }
    let regular = positions[0] > 0
        && positions
            .iter()
            .enumerate()
            .all(|(i, &p)| p == positions[0] * (i + 1));
    let chars: Vec<char> = digits.chars().collect();
    let mut out = Vec::new();
    for (i, c) in chars.iter().rev().enumerate() {
        if i > 0
            && (if regular {
                i % positions[0] == 0
            } else {
                positions.contains(&i)
            })
        {
            out.push(separator);
        }
        out.push(*c);
    }
    out.into_iter().rev().collect()
}

fn to_digit_family(s: &str, zero: char) -> String {
    if zero == '0' {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(zero as u32 + (c as u32 - '0' as u32)).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// `$formatNumber(value, picture, options)`.
pub(crate) fn format_number(value: f64, picture: &str, options: Option<&ObjMap>) -> Result<String> {
    let sym = symbols(options);
    let subpictures: Vec<&str> = picture.split(sym.pattern).collect();
    if subpictures.len() > 2 {
        return Err(Error::new(
            "D3080",
            "The picture string must only contain a maximum of two sub-pictures",
        ));
    }
    let negative = value < 0.0;
    let chosen = if negative && subpictures.len() == 2 {
        subpictures[1]
    } else {
        subpictures[0]
    };
    let pic = analyse(chosen, &sym)?;
    let mut magnitude = value.abs();
    if pic.percent {
        magnitude *= 100.0;
    } else if pic.per_mille {
        magnitude *= 1000.0;
    }
    let mut exponent_text = String::new();
    let min_int = if pic.min_int == 0 && pic.max_frac == 0 {
        1
    } else {
        pic.min_int
    };
    if let Some(min_exp) = pic.min_exponent {
        let mut exponent = 0i32;
        if magnitude != 0.0 {
            let target = min_int.max(1) as i32;
            exponent = magnitude.log10().floor() as i32 + 1 - target;
            magnitude /= 10f64.powi(exponent);
            if pic.min_int == 0 {
                magnitude /= 10.0;
                exponent += 1;
            }
        }
        let digits = format!("{:0min_exp$}", exponent.unsigned_abs());
        exponent_text = format!(
            "{}{}{}",
            sym.exponent,
            if exponent < 0 {
                sym.minus.to_string()
            } else {
                String::new()
            },
            to_digit_family(&digits, sym.zero)
        );
    }
    let rounded = round_to(magnitude, pic.max_frac);
    let fixed = format!("{:.*}", pic.max_frac, rounded);
    let (int_digits, frac_digits) = fixed.split_once('.').unwrap_or((&fixed, ""));
    let mut frac = frac_digits.to_string();
    while frac.len() > pic.min_frac && frac.ends_with('0') {
        frac.pop();
    }
    let mut int = int_digits.trim_start_matches('0').to_string();
    if int.len() < min_int {
        int = format!("{}{int}", "0".repeat(min_int - int.len()));
    }
    if int.is_empty() && frac.is_empty() {
        int = "0".into();
    }
    let int = group_digits(&int, &pic.grouping, sym.grouping);
    let mut out = String::new();
    if negative && subpictures.len() == 1 && (rounded != 0.0) {
        out.push(sym.minus);
    }
    out.push_str(&pic.prefix);
    out.push_str(&to_digit_family(&int, sym.zero));
    if !frac.is_empty() {
        out.push(sym.decimal);
        out.push_str(&to_digit_family(&frac, sym.zero));
    }
    out.push_str(&exponent_text);
    out.push_str(&pic.suffix);
    Ok(out)
}

fn round_to(value: f64, places: usize) -> f64 {
    let repr = format!("{value:e}");
    let (mantissa, exp) = repr.split_once('e').unwrap_or((&repr, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let shifted: f64 = format!("{mantissa}e{}", exp + places as i64)
        .parse()
        .unwrap_or(value);
    let rounded = round_half_even(shifted);
    let repr = format!("{rounded:e}");
    let (mantissa, exp) = repr.split_once('e').unwrap_or((&repr, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    format!("{mantissa}e{}", exp - places as i64)
        .parse()
        .unwrap_or(value)
}

/// `$formatBase`: an integer in radix 2..=36.
pub(crate) fn to_radix(value: f64, radix: u32) -> String {
    let negative = value < 0.0;
    let mut n = value.abs() as u128;
    if n == 0 {
        return "0".into();
    }
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(std::char::from_digit((n % radix as u128) as u32, radix).unwrap_or('?'));
        n /= radix as u128;
    }
    if negative {
        digits.push('-');
    }
    digits.into_iter().rev().collect()
}

const ROMAN: [(u64, &str); 13] = [
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
];

fn roman(mut n: u64) -> String {
    let mut out = String::new();
    for (value, numeral) in ROMAN {
        while n >= value {
            out.push_str(numeral);
            n -= value;
        }
    }
    out
}

fn letters(mut n: u64, base: char) -> String {
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        out.push(char::from_u32(base as u32 + (n % 26) as u32).unwrap_or(base));
        n /= 26;
    }
    out.into_iter().rev().collect()
}

const SMALL: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [(u64, &str); 4] = [
    (1_000_000_000_000, "trillion"),
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
    (1000, "thousand"),
];

fn words(n: u64) -> String {
    if n < 20 {
        return SMALL[n as usize].to_string();
    }
    if n < 100 {
        let tens = TENS[(n / 10) as usize];
        return if n.is_multiple_of(10) {
            tens.to_string()
        } else {
            format!("{tens}-{}", SMALL[(n % 10) as usize])
        };
    }
    if n < 1000 {
        let rest = n % 100;
        let hundreds = format!("{} hundred", SMALL[(n / 100) as usize]);
        return if rest == 0 {
            hundreds
        } else {
            format!("{hundreds} and {}", words(rest))
        };
    }
    for (scale, name) in SCALES {
        if n >= scale {
            let rest = n % scale;
            let head = format!("{} {name}", words(n / scale));
            return match rest {
                0 => head,
                r if r < 100 => format!("{head} and {}", words(r)),
                r => format!("{head}, {}", words(r)),
            };
        }
    }
    n.to_string()
}

/// `$formatInteger(number, picture)`.
pub(crate) fn format_integer(value: f64, picture: &str) -> Result<String> {
    let negative = value < 0.0;
    let n = value.abs().floor() as u64;
    let primary = picture.split(';').next().unwrap_or("");
    let roman_range = || {
        if n > 100_000 {
            Err(Error::new(
                "D3130",
                format!(
                    "Formatting {n} as a roman numeral is not supported by this implementation"
                ),
            ))
        } else {
            Ok(roman(n))
        }
    };
    let body = match primary {
        "I" => roman_range()?,
        "i" => roman_range()?.to_lowercase(),
        "A" => letters(n, 'A'),
        "a" => letters(n, 'a'),
        "W" => words(n).to_uppercase(),
        "w" => words(n),
        "Ww" => words(n)
            .split(' ')
            .map(capitalize)
            .collect::<Vec<_>>()
            .join(" "),
        _ => {
            let min_digits = primary
                .chars()
                .filter(|c| c.is_ascii_digit())
                .count()
                .max(1);
            let digits = format!("{n:0min_digits$}");
            let mut positions = Vec::new();
            let mut right = 0;
            let mut separator = ',';
            for c in primary.chars().rev() {
                if c.is_ascii_digit() || c == '#' {
                    right += 1;
                } else {
                    positions.push(right);
                    separator = c;
                }
            }
            group_digits(&digits, &positions, separator)
        }
    };
    Ok(if negative { format!("-{body}") } else { body })
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().collect::<String>() + chars.as_str()
    })
}

fn parse_roman(s: &str) -> Option<f64> {
    let upper = s.to_uppercase();
    let mut rest = upper.as_str();
    let mut total = 0u64;
    for (value, numeral) in ROMAN {
        while let Some(r) = rest.strip_prefix(numeral) {
            total += value;
            rest = r;
        }
    }
    rest.is_empty().then_some(total as f64)
}

fn parse_letters(s: &str) -> Option<f64> {
    let mut total = 0u64;
    for c in s.to_uppercase().chars() {
        if !c.is_ascii_uppercase() {
            return None;
        }
        total = total * 26 + (c as u64 - 'A' as u64 + 1);
    }
    Some(total as f64)
}

/// `$parseInteger(string, picture)` for decimal, roman and alphabetic pictures.
pub(crate) fn parse_integer(s: &str, picture: &str) -> Result<f64> {
    let parsed = match picture {
        "I" | "i" => parse_roman(s),
        "A" | "a" => parse_letters(s),
        "W" | "w" | "Ww" => None,
        _ => {
            let negative = s.starts_with('-');
            let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
            digits
                .parse::<f64>()
                .ok()
                .map(|n| if negative { -n } else { n })
        }
    };
    parsed.ok_or_else(|| {
        Error::new(
            "D3137",
            format!("Unable to parse {s:?} with picture {picture:?}"),
        )
    })
}
