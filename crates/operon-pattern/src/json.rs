//! A small strict JSON parser that keeps number text as written.
//!
//! Patterns need the exact spelling of numbers (`1E-325` must be rejected even
//! though it parses to `0.0` as a double), and duplicate keys resolved the way
//! AWS does (the last one wins). serde_json's `arbitrary_precision` feature would
//! change number handling for the whole workspace, so patterns use this parser.

use std::fmt;

/// Deepest nesting accepted, so hostile input cannot overflow the stack.
pub(crate) const MAX_DEPTH: usize = 256;

/// A parsed JSON value. Objects keep their members in document order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// The number exactly as written in the source.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A syntax error with its byte offset and line/column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonSyntaxError {
    pub message: String,
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for JsonSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )
    }
}

impl Json {
    /// Writes the value back as compact JSON text, numbers as they were written.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(text) => out.push_str(text),
            Json::String(s) => {
                out.push('"');
                write_json_string_content(out, s);
                out.push('"');
            }
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    write_json_string_content(out, key);
                    out.push_str("\":");
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

pub(crate) fn parse(text: &str) -> Result<Json, JsonSyntaxError> {
    parse_with(text, false)
}

/// Parses keeping every member of an object, duplicate keys included (as a
/// streaming reader of an event sees them).
pub(crate) fn parse_keeping_duplicates(text: &str) -> Result<Json, JsonSyntaxError> {
    parse_with(text, true)
}

fn parse_with(text: &str, keep_duplicates: bool) -> Result<Json, JsonSyntaxError> {
    let mut parser = TreeParser {
        bytes: text.as_bytes(),
        pos: 0,
        text,
        keep_duplicates,
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error("unexpected text after the JSON value"));
    }
    Ok(value)
}

struct TreeParser<'a> {
    keep_duplicates: bool,
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl TreeParser<'_> {
    fn error(&self, message: &str) -> JsonSyntaxError {
        syntax_error(self.text, self.pos, message)
    }

    fn skip_whitespace(&mut self) {
        self.pos = skip_whitespace(self.bytes, self.pos);
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonSyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let (s, end) = read_string(self.bytes, self.pos)
                    .map_err(|at| syntax_error(self.text, at, "invalid string"))?;
                self.pos = end;
                Ok(Json::String(s.into_owned()))
            }
            Some(b'-' | b'0'..=b'9') => {
                let end = scan_number(self.bytes, self.pos)
                    .map_err(|at| syntax_error(self.text, at, "invalid number"))?;
                let number = self.text[self.pos..end].to_string();
                self.pos = end;
                Ok(Json::Number(number))
            }
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(_) => Err(self.error("unexpected character, expected a JSON value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, JsonSyntaxError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("unrecognized token"))
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, JsonSyntaxError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']' in array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonSyntaxError> {
        self.pos += 1;
        let mut members: Vec<(String, Json)> = Vec::new();
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("expected a double-quoted field name"));
            }
            let (key, end) = read_string(self.bytes, self.pos)
                .map_err(|at| syntax_error(self.text, at, "invalid string"))?;
            self.pos = skip_whitespace(self.bytes, end);
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error("expected ':' after field name"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value(depth + 1)?;
            members.push((key.into_owned(), value));
            self.skip_whitespace();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    if !self.keep_duplicates {
                        keep_last_duplicates(&mut members);
                    }
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.error("expected ',' or '}' in object")),
            }
        }
    }
}

/// Of members with the same key, keeps only the last (AWS keeps the last one).
fn keep_last_duplicates(members: &mut Vec<(String, Json)>) {
    if members.len() < 2 {
        return;
    }
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, (key, _)) in members.iter().enumerate() {
        last.insert(key, i);
    }
    if last.len() == members.len() {
        return;
    }
    let keep: Vec<bool> = (0..members.len())
        .map(|i| last[members[i].0.as_str()] == i)
        .collect();
    let mut index = 0;
    members.retain(|_| {
        index += 1;
        keep[index - 1]
    });
}

pub(crate) fn syntax_error(text: &str, offset: usize, message: &str) -> JsonSyntaxError {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    JsonSyntaxError {
        message: message.to_string(),
        offset,
        line,
        column: offset - line_start + 1,
    }
}

#[inline]
pub(crate) fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Scans a JSON number starting at `start`; returns its end or the offset of the error.
pub(crate) fn scan_number(bytes: &[u8], start: usize) -> Result<usize, usize> {
    let mut pos = start;
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match bytes.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => pos = skip_digits(bytes, pos),
        _ => return Err(pos),
    }
    if bytes.get(pos) == Some(&b'.') {
        let after = skip_digits(bytes, pos + 1);
        if after == pos + 1 {
            return Err(after);
        }
        pos = after;
    }
    if let Some(b'e' | b'E') = bytes.get(pos) {
        pos += 1;
        if let Some(b'+' | b'-') = bytes.get(pos) {
            pos += 1;
        }
        let after = skip_digits(bytes, pos);
        if after == pos {
            return Err(after);
        }
        pos = after;
    }
    Ok(pos)
}

#[inline]
fn skip_digits(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(word) = word_at(bytes, pos) {
        if !all_ascii_digits(word) {
            break;
        }
        pos += 8;
    }
    while let Some(b'0'..=b'9') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Eight bytes from `pos` as a little-endian word, if there are eight.
#[inline]
fn word_at(bytes: &[u8], pos: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(pos..pos + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether all eight bytes are '0'..='9' (high nibble 3, and still 3 after adding 6).
#[inline]
fn all_ascii_digits(word: u64) -> bool {
    word & HIGH_NIBBLES == 0x3030_3030_3030_3030
        && word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES == 0x3030_3030_3030_3030
}

/// Whether any of the eight bytes is a quote, a backslash or a control character.
#[inline]
fn has_string_special(word: u64) -> bool {
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH_BITS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
    quote | backslash | control != 0
}

/// Finds the end of the string starting at the quote at `start` without decoding it.
/// Returns (offset after the closing quote, whether it contains escapes).
#[inline]
pub(crate) fn scan_string(bytes: &[u8], start: usize) -> Result<(usize, bool), usize> {
    let mut pos = start + 1;
    let mut escaped = false;
    loop {
        while let Some(word) = word_at(bytes, pos) {
            if has_string_special(word) {
                break;
            }
            pos += 8;
        }
        match bytes.get(pos) {
            Some(b'"') => return Ok((pos + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                pos += 2;
            }
            Some(&b) if b < 0x20 => return Err(pos),
            Some(_) => pos += 1,
            None => return Err(pos),
        }
    }
}

/// Reads the string starting at the quote at `start`, decoding escapes.
pub(crate) fn read_string(
    bytes: &[u8],
    start: usize,
) -> Result<(std::borrow::Cow<'_, str>, usize), usize> {
    let (end, escaped) = scan_string(bytes, start)?;
    let raw = &bytes[start + 1..end - 1];
    if !escaped {
        let s = std::str::from_utf8(raw).map_err(|_| start)?;
        return Ok((std::borrow::Cow::Borrowed(s), end));
    }
    decode_escapes(raw, start + 1).map(|s| (std::borrow::Cow::Owned(s), end))
}

fn decode_escapes(raw: &[u8], base: usize) -> Result<String, usize> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let code = *raw.get(i + 1).ok_or(base + i)?;
        i += 2;
        let simple = match code {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(base + i - 1),
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (ch, used) = decode_unicode_escape(raw, i).ok_or(base + i)?;
        i += used;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).map_err(|_| base)
}

/// Decodes the hex digits after `\u` (and a following low surrogate escape when needed).
fn decode_unicode_escape(raw: &[u8], at: usize) -> Option<(char, usize)> {
    let first = hex4(raw.get(at..at + 4)?)?;
    if (0xD800..0xDC00).contains(&first) {
        if raw.get(at + 4) == Some(&b'\\') && raw.get(at + 5) == Some(&b'u') {
            let second = hex4(raw.get(at + 6..at + 10)?)?;
            if (0xDC00..0xE000).contains(&second) {
                let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return Some((char::from_u32(code)?, 10));
            }
        }
        return Some(('\u{FFFD}', 4));
    }
    Some((char::from_u32(first).unwrap_or('\u{FFFD}'), 4))
}

fn hex4(digits: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16)
        .ok()
        .filter(|_| digits.iter().all(u8::is_ascii_hexdigit))
}

/// Appends the escaped content of a JSON string literal (without quotes).
pub(crate) fn write_json_string_content(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_number_text_and_last_duplicate() {
        let v = parse(r#"{"a": 1E-325, "b": 1, "b": 2.50}"#).unwrap();
        assert_eq!(
            v,
            Json::Object(vec![
                ("a".into(), Json::Number("1E-325".into())),
                ("b".into(), Json::Number("2.50".into()))
            ])
        );
    }

    #[test]
    fn rejects_bad_json_with_position() {
        let err = parse("{'bad': 1}").unwrap_err();
        assert_eq!((err.line, err.column), (1, 2));
        assert!(parse(r#"{"a": [1, 2 3]}"#).is_err());
        assert!(parse(r#"{"a": 01}"#).is_err());
        assert!(parse(r#"{"a": 1} x"#).is_err());
    }

    #[test]
    fn scans_strings_and_numbers_by_words() {
        let text = br#""abcdefghijklmnop\"q" 12345678901234567.5e10x"#;
        assert_eq!(
            scan_string(text, 0),
            Ok((text.iter().position(|&b| b == b' ').unwrap(), true))
        );
        let start = text.iter().position(|&b| b == b'1').unwrap();
        assert_eq!(scan_number(text, start), Ok(text.len() - 1));
        assert!(scan_string(b"\"abcdefgh\nijkl\"", 0).is_err());
        assert!(all_ascii_digits(u64::from_le_bytes(*b"01234567")));
        assert!(!all_ascii_digits(u64::from_le_bytes(*b"0123456:")));
        assert!(!all_ascii_digits(u64::from_le_bytes(*b"/1234567")));
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(
            parse(r#""a\u00e9\ud83d\ude00\n""#).unwrap(),
            Json::String("aé😀\n".into())
        );
    }
}
