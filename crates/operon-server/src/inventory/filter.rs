//! Pure: inventory filters and Debian's version ordering.
//!
//! A filter is a comma-separated AND of `ATTR OP VALUE` conditions:
//! `name=openssl,version<3.0.7`. `name` (or `key`) is the item's key, any
//! other name one of its attributes. Operators: `=` and `!=` (exact text),
//! `<`, `<=`, `>`, `>=` (Debian version ordering, which orders plain numbers
//! and dotted versions as people expect), `~` (a regular expression found
//! anywhere in the value). A condition on an attribute the item lacks holds
//! only for `!=`. A `\,` in a value is a comma that does not end it.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A comparison operator of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
}

/// One `ATTR OP VALUE` condition.
#[derive(Debug, Clone)]
pub struct Condition {
    /// `name` for the item's key.
    pub attribute: String,
    pub op: Op,
    pub value: String,
    regex: Option<regex::Regex>,
}

/// A parsed filter: every condition must hold. Empty: every item.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub conditions: Vec<Condition>,
}

/// Longest regular expression accepted, and its compiled size limit.
const MAX_PATTERN: usize = 512;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Filter {
    /// Parse `text`; errors name the bad part.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut conditions = Vec::new();
        if text.trim().is_empty() {
            return Ok(Filter { conditions });
        }
        for part in split_unescaped(text) {
            conditions.push(parse_condition(&part)?);
        }
        Ok(Filter { conditions })
    }

    /// The key every matching item must have, when a condition says `name=...`.
    pub fn exact_key(&self) -> Option<&str> {
        self.conditions
            .iter()
            .find(|c| c.op == Op::Eq && is_key(&c.attribute))
            .map(|c| c.value.as_str())
    }

    /// Whether an item (its key and attributes) passes every condition.
    pub fn matches(&self, key: &str, attributes: &BTreeMap<String, String>) -> bool {
        self.conditions.iter().all(|c| {
            let found = if is_key(&c.attribute) {
                Some(key)
            } else {
                attributes.get(&c.attribute).map(String::as_str)
            };
            match found {
                None => c.op == Op::Ne,
                Some(found) => c.holds(found),
            }
        })
    }
}

fn is_key(attribute: &str) -> bool {
    attribute == "name" || attribute == "key"
}

impl Condition {
    fn holds(&self, found: &str) -> bool {
        match self.op {
            Op::Eq => found == self.value,
            Op::Ne => found != self.value,
            Op::Lt => compare_versions(found, &self.value) == Ordering::Less,
            Op::Le => compare_versions(found, &self.value) != Ordering::Greater,
            Op::Gt => compare_versions(found, &self.value) == Ordering::Greater,
            Op::Ge => compare_versions(found, &self.value) != Ordering::Less,
            Op::Matches => self.regex.as_ref().is_some_and(|r| r.is_match(found)),
        }
    }
}

/// Split on commas not preceded by a backslash; `\,` becomes `,`.
fn split_unescaped(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                chars.next();
                part.push(',');
            }
            ',' => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    parts
}

fn parse_condition(part: &str) -> Result<Condition, String> {
    let at = part
        .find(['=', '!', '<', '>', '~'])
        .ok_or_else(|| format!("condition {part:?} has no operator (one of = != < <= > >= ~)"))?;
    let attribute = part[..at].trim();
    let rest = &part[at..];
    let (op, width) = if rest.starts_with("!=") {
        (Op::Ne, 2)
    } else if rest.starts_with("<=") {
        (Op::Le, 2)
    } else if rest.starts_with(">=") {
        (Op::Ge, 2)
    } else if rest.starts_with('=') {
        (Op::Eq, 1)
    } else if rest.starts_with('<') {
        (Op::Lt, 1)
    } else if rest.starts_with('>') {
        (Op::Gt, 1)
    } else if rest.starts_with('~') {
        (Op::Matches, 1)
    } else {
        return Err(format!(
            "condition {part:?}: unknown operator at {rest:?} (one of = != < <= > >= ~)"
        ));
    };
    if attribute.is_empty() {
        return Err(format!("condition {part:?} names no attribute"));
    }
    if !attribute
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(format!(
            "condition {part:?}: attribute {attribute:?} may hold only letters, digits, _ - . :"
        ));
    }
    let value = rest[width..].trim().to_owned();
    let regex = if op == Op::Matches {
        if value.len() > MAX_PATTERN {
            return Err(format!(
                "condition {part:?}: the pattern is longer than {MAX_PATTERN} characters"
            ));
        }
        Some(
            regex::RegexBuilder::new(&value)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("condition {part:?}: bad regular expression: {e}"))?,
        )
    } else {
        None
    };
    Ok(Condition {
        attribute: attribute.to_owned(),
        op,
        value,
        regex,
    })
}

/// Debian's version ordering (`dpkg --compare-versions`):
/// `[epoch:]upstream[-revision]`, the epoch compared as a number, then
/// upstream and revision by alternating runs of non-digits (letters before
/// other characters, `~` before anything, even the end) and digits
/// (numerically). A missing epoch is 0, a missing revision equals `0`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a.trim());
    let (eb, ub, rb) = split_version(b.trim());
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

fn split_version(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    /// Each checked with `dpkg --compare-versions` (and again by the test
    /// below wherever dpkg is installed).
    const CASES: &[(&str, &str, Ordering)] = &[
        ("1.0", "1.0", Equal),
        ("1.0", "1.0-0", Equal),
        ("1.0~rc1", "1.0", Less),
        ("1:0.9", "2.0", Greater),
        ("1.0-1", "1.0-1~bpo1", Greater),
        ("1.2.3", "1.2.10", Less),
        ("3.0.2-0ubuntu1.10", "3.0.7", Less),
        ("3.0.7", "3.0.7-1", Less),
        ("1.0a", "1.0", Greater),
        ("1.0+b1", "1.0", Greater),
        ("1.0.0", "1.0", Greater),
        ("2.30-1", "2.30-1+deb12u1", Less),
        ("0:1.0", "1.0", Equal),
        ("1.0~~", "1.0~", Less),
        ("1.0~", "1.0", Less),
        ("1.001", "1.1", Equal),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Less),
        ("1:2.0", "1:10.0", Less),
        ("1.0-a", "1.0-1", Greater),
        ("5.2.15-2+b7", "5.2.21-2", Less),
        ("1.0.0-1", "1.0-1", Greater),
        ("10", "9", Greater),
        ("1.0+dfsg-1", "1.0-1", Greater),
        ("2:1.0", "1:9.9", Greater),
        ("1.0-1-2", "1.0-1-10", Less),
    ];

    #[test]
    fn versions_order_as_dpkg_does() {
        for (a, b, want) in CASES {
            assert_eq!(compare_versions(a, b), *want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn the_table_agrees_with_dpkg_where_it_is_installed() {
        let Ok(probe) = std::process::Command::new("dpkg").arg("--version").output() else {
            eprintln!("SKIPPED: dpkg is not installed; the table stands alone");
            return;
        };
        assert!(probe.status.success());
        for (a, b, want) in CASES {
            let op = match want {
                Less => "lt",
                Equal => "eq",
                Greater => "gt",
            };
            let status = std::process::Command::new("dpkg")
                .args(["--compare-versions", a, op, b])
                .status()
                .expect("dpkg runs");
            assert!(status.success(), "dpkg disagrees: {a} {op} {b}");
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn filters_and_their_conditions() {
        let openssl = attrs(&[("version", "3.0.2-0ubuntu1"), ("arch", "amd64")]);
        let cases: &[(&str, &str, bool)] = &[
            ("", "openssl", true),
            ("name=openssl", "openssl", true),
            ("name=openssl", "openssl-dev", false),
            ("key=openssl", "openssl", true),
            ("name=openssl,version<3.0.7", "openssl", true),
            ("name=openssl, version >= 3.0.7", "openssl", false),
            ("version<=3.0.2-0ubuntu1", "x", true),
            ("version>3.0.2", "x", true),
            ("arch!=arm64", "x", true),
            ("arch!=amd64", "x", false),
            ("missing!=x", "x", true),
            ("missing=x", "x", false),
            ("missing<9", "x", false),
            ("name~^open", "openssl", true),
            ("name~ssl$", "libssl", true),
            ("name~^ssl", "openssl", false),
            ("version~ubuntu", "x", true),
        ];
        for (text, key, want) in cases {
            let filter = Filter::parse(text).unwrap();
            assert_eq!(filter.matches(key, &openssl), *want, "{text} on {key}");
        }
        assert_eq!(
            Filter::parse("version<3,name=openssl").unwrap().exact_key(),
            Some("openssl")
        );
        assert_eq!(Filter::parse("name~x").unwrap().exact_key(), None);
        let escaped = Filter::parse(r"name~a\,b").unwrap();
        assert!(escaped.matches("a,b", &BTreeMap::new()));
    }

    #[test]
    fn bad_filters_name_the_bad_part() {
        let cases: &[(&str, &str)] = &[
            ("name=openssl,version", "\"version\" has no operator"),
            ("=x", "names no attribute"),
            ("na me=x", "attribute \"na me\""),
            ("name~(", "bad regular expression"),
            ("name!x", "unknown operator at \"!x\""),
        ];
        for (text, want) in cases {
            let err = Filter::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
