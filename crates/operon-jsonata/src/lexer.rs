//! Tokenizer. Positions are character offsets just past the end of the token, as in jsonata-js.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// An operator or punctuation symbol, including the keywords `and`, `or`, `in`.
    Op(&'static str),
    /// A field name (plain or back-quoted).
    Name(String),
    /// A variable reference without the leading `$` (`""` for `$`, `"$"` for `$$`).
    Var(String),
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Regex {
        pattern: String,
        flags: String,
    },
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// Character offset just past the token.
    pub position: usize,
    /// Character offset of the token's first character.
    pub start: usize,
}

const OPERATORS: &[&str] = &[
    "..", ":=", "!=", ">=", "<=", "**", "~>", "?:", "??", ".", "[", "]", "{", "}", "(", ")", ",",
    "@", "#", ";", ":", "?", "+", "-", "*", "/", "%", "|", "=", "<", ">", "^", "&", "!", "~",
];

pub(crate) struct Lexer {
    chars: Vec<char>,
    pos: usize,
    token_start: usize,
}

fn is_name_char(c: char) -> bool {
    !c.is_whitespace() && !"()[]{}.,;:'\"?=<>!&|*+-/%@#^~`$".contains(c)
}

impl Lexer {
    pub fn new(source: &str) -> Lexer {
        Lexer {
            chars: source.chars().collect(),
            pos: 0,
            token_start: 0,
        }
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn token(&self, kind: TokenKind) -> Token {
        Token {
            kind,
            position: self.pos,
            start: self.token_start,
        }
    }

    /// Returns the next token. `prefix` is true when an operand is expected, which is the
    /// only place a `/` starts a regular expression literal.
    pub fn next_token(&mut self, prefix: bool) -> Result<Token> {
        self.skip_space_and_comments()?;
        self.token_start = self.pos;
        let Some(c) = self.peek_at(0) else {
            return Ok(self.token(TokenKind::End));
        };
        if prefix && c == '/' {
            self.pos += 1;
            return self.scan_regex();
        }
        if c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) && prefix {
            return self.scan_number();
        }
        if let Some(op) = self.match_operator() {
            self.pos += op.chars().count();
            return Ok(self.token(TokenKind::Op(op)));
        }
        match c {
            '"' | '\'' => {
                self.pos += 1;
                self.scan_string(c)
            }
            '`' => {
                self.pos += 1;
                self.scan_backquoted()
            }
            '$' => {
                self.pos += 1;
                let name = self.scan_name_chars();
                if name.is_empty() && self.peek_at(0) == Some('$') {
                    self.pos += 1;
                    return Ok(self.token(TokenKind::Var("$".into())));
                }
                Ok(self.token(TokenKind::Var(name)))
            }
            d if d.is_ascii_digit() => self.scan_number(),
            _ => {
                let name = self.scan_name_chars();
                if name.is_empty() {
                    return Err(Error::at(
                        "S0204",
                        self.pos,
                        format!("Unknown operator: \"{c}\""),
                    ));
                }
                Ok(self.token(match name.as_str() {
                    "and" => TokenKind::Op("and"),
                    "or" => TokenKind::Op("or"),
                    "in" => TokenKind::Op("in"),
                    "true" => TokenKind::Bool(true),
                    "false" => TokenKind::Bool(false),
                    "null" => TokenKind::Null,
                    _ => TokenKind::Name(name),
                }))
            }
        }
    }

    fn skip_space_and_comments(&mut self) -> Result<()> {
        loop {
            match self.peek_at(0) {
                Some(c) if c.is_whitespace() => self.pos += 1,
                Some('/') if self.peek_at(1) == Some('*') => {
                    let start = self.pos;
                    self.pos += 2;
                    loop {
                        match self.peek_at(0) {
                            None => {
                                return Err(Error::at(
                                    "S0106",
                                    start,
                                    "Comment has no closing tag",
                                ));
                            }
                            Some('*') if self.peek_at(1) == Some('/') => {
                                self.pos += 2;
                                break;
                            }
                            Some(_) => self.pos += 1,
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn match_operator(&self) -> Option<&'static str> {
        OPERATORS.iter().copied().find(|op| {
            op.chars()
                .enumerate()
                .all(|(i, oc)| self.peek_at(i) == Some(oc))
        })
    }

    fn scan_name_chars(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek_at(0) {
            if !is_name_char(c) {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn scan_number(&mut self) -> Result<Token> {
        let start = self.pos;
        let digits = |lx: &mut Lexer| {
            while lx.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                lx.pos += 1;
            }
        };
        digits(self);
        if self.peek_at(0) == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            digits(self);
        }
        if matches!(self.peek_at(0), Some('e' | 'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek_at(0), Some('+' | '-')) {
                self.pos += 1;
            }
            if self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                digits(self);
            } else {
                self.pos = save;
            }
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(self.token(TokenKind::Num(n))),
            _ => Err(Error::at(
                "S0102",
                self.pos,
                format!("Number out of range: {text}"),
            )),
        }
    }

    fn scan_string(&mut self, quote: char) -> Result<Token> {
        let start = self.pos;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_at(0) else {
                return Err(Error::at(
                    "S0101",
                    start,
                    "String literal must be terminated by a matching quote",
                ));
            };
            self.pos += 1;
            if c == quote {
                return Ok(self.token(TokenKind::Str(out)));
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek_at(0) else {
                return Err(Error::at(
                    "S0101",
                    start,
                    "String literal must be terminated by a matching quote",
                ));
            };
            self.pos += 1;
            match e {
                '"' | '\\' | '/' | '\'' => out.push(e),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => out.push(self.scan_unicode_escape()?),
                other => {
                    return Err(Error::at(
                        "S0103",
                        self.pos,
                        format!("Unsupported escape sequence: \\{other}"),
                    ));
                }
            }
        }
    }

    fn scan_hex4(&mut self) -> Option<u32> {
        let hex: String = (0..4).filter_map(|i| self.peek_at(i)).collect();
        if hex.chars().count() != 4 {
            return None;
        }
        let value = u32::from_str_radix(&hex, 16).ok()?;
        self.pos += 4;
        Some(value)
    }

    fn scan_unicode_escape(&mut self) -> Result<char> {
        let bad = |pos| {
            Error::at(
                "S0104",
                pos,
                "The escape sequence \\u must be followed by 4 hex digits",
            )
        };
        let high = self.scan_hex4().ok_or_else(|| bad(self.pos))?;
        if (0xD800..0xDC00).contains(&high)
            && self.peek_at(0) == Some('\\')
            && self.peek_at(1) == Some('u')
        {
            let save = self.pos;
            self.pos += 2;
            match self.scan_hex4() {
                Some(low) if (0xDC00..0xE000).contains(&low) => {
                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    return Ok(char::from_u32(code).unwrap_or('\u{FFFD}'));
                }
                _ => self.pos = save,
            }
        }
        Ok(char::from_u32(high).unwrap_or('\u{FFFD}'))
    }

    fn scan_backquoted(&mut self) -> Result<Token> {
        let start = self.pos;
        let mut name = String::new();
        loop {
            match self.peek_at(0) {
                None => {
                    return Err(Error::at(
                        "S0105",
                        start,
                        "Quoted property name must be terminated with a backquote (`)",
                    ));
                }
                Some('`') => {
                    self.pos += 1;
                    return Ok(self.token(TokenKind::Name(name)));
                }
                Some(c) => {
                    name.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn scan_regex(&mut self) -> Result<Token> {
        let start = self.pos;
        let mut pattern = String::new();
        let mut depth_class = false;
        loop {
            let Some(c) = self.peek_at(0) else {
                return Err(Error::at(
                    "S0302",
                    start,
                    "No terminating / in regular expression",
                ));
            };
            self.pos += 1;
            match c {
                '\\' => {
                    pattern.push(c);
                    if let Some(n) = self.peek_at(0) {
                        pattern.push(n);
                        self.pos += 1;
                    }
                }
                '[' => {
                    depth_class = true;
                    pattern.push(c);
                }
                ']' => {
                    depth_class = false;
                    pattern.push(c);
                }
                '/' if !depth_class => break,
                _ => pattern.push(c),
            }
        }
        if pattern.is_empty() {
            return Err(Error::at(
                "S0301",
                self.pos,
                "Empty regular expressions are not allowed",
            ));
        }
        let mut flags = String::new();
        while let Some(c) = self.peek_at(0).filter(|c| c.is_ascii_alphabetic()) {
            flags.push(c);
            self.pos += 1;
        }
        Ok(self.token(TokenKind::Regex { pattern, flags }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str, prefixes: &[bool]) -> Vec<TokenKind> {
        let mut lexer = Lexer::new(source);
        prefixes
            .iter()
            .map(|&p| lexer.next_token(p).expect("token").kind)
            .collect()
    }

    #[test]
    fn slash_is_a_regex_only_where_an_operand_is_expected() {
        assert_eq!(
            kinds("/ab+/i", &[true, true]),
            vec![
                TokenKind::Regex {
                    pattern: "ab+".into(),
                    flags: "i".into()
                },
                TokenKind::End
            ]
        );
        assert_eq!(
            kinds("a / 2", &[true, false, true]),
            vec![
                TokenKind::Name("a".into()),
                TokenKind::Op("/"),
                TokenKind::Num(2.0)
            ]
        );
    }

    #[test]
    fn strings_names_and_variables() {
        assert_eq!(
            kinds(r#""a\u00e9\n""#, &[true]),
            vec![TokenKind::Str("aé\n".into())]
        );
        assert_eq!(kinds("`a b`", &[true]), vec![TokenKind::Name("a b".into())]);
        assert_eq!(
            kinds("$ $$ $x", &[true, true, true]),
            vec![
                TokenKind::Var(String::new()),
                TokenKind::Var("$".into()),
                TokenKind::Var("x".into())
            ]
        );
        assert_eq!(
            kinds("1..3", &[true, false, true]),
            vec![
                TokenKind::Num(1.0),
                TokenKind::Op(".."),
                TokenKind::Num(3.0)
            ]
        );
    }

    #[test]
    fn positions_are_character_offsets_past_the_token() {
        let mut lexer = Lexer::new("é + x");
        assert_eq!(lexer.next_token(true).expect("name").position, 1);
        assert_eq!(lexer.next_token(false).expect("op").position, 3);
        let token = lexer.next_token(true).expect("name");
        assert_eq!((token.start, token.position), (4, 5));
    }
}
