//! Composite alarm rules: `ALARM("a") AND (OK("b") OR NOT ALARM("c"))`.

use std::collections::HashMap;

use crate::State;

/// A parsed composite alarm rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    True,
    False,
    /// `ALARM("name")`, `OK("name")` or `INSUFFICIENT_DATA("name")`.
    StateIs(State, String),
    Not(Box<Rule>),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

/// Why a rule did not parse: the byte offset and what was expected there.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("at position {position}: expected {expected}, found {found}")]
pub struct RuleError {
    pub position: usize,
    pub expected: &'static str,
    pub found: String,
}

impl Rule {
    /// Parses a rule. Keywords are upper case as in CloudWatch; alarm names
    /// are double-quoted (with `\"` and `\\` escapes) or bare.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let mut parser = Parser { text, pos: 0 };
        let rule = parser.or()?;
        parser.skip_space();
        if parser.pos < text.len() {
            return Err(parser.error("AND, OR, ')' or the end of the rule"));
        }
        Ok(rule)
    }

    /// The alarm names the rule reads, in order of first mention.
    pub fn names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.collect_names(&mut names);
        names
    }

    fn collect_names<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            Rule::True | Rule::False => {}
            Rule::StateIs(_, name) => {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
            Rule::Not(inner) => inner.collect_names(names),
            Rule::And(a, b) | Rule::Or(a, b) => {
                a.collect_names(names);
                b.collect_names(names);
            }
        }
    }

    /// Evaluates against the alarms' states; an alarm absent from `states`
    /// is INSUFFICIENT_DATA.
    pub fn evaluate(&self, states: &HashMap<String, State>) -> bool {
        match self {
            Rule::True => true,
            Rule::False => false,
            Rule::StateIs(wanted, name) => {
                states.get(name).copied().unwrap_or(State::InsufficientData) == *wanted
            }
            Rule::Not(inner) => !inner.evaluate(states),
            Rule::And(a, b) => a.evaluate(states) && b.evaluate(states),
            Rule::Or(a, b) => a.evaluate(states) || b.evaluate(states),
        }
    }
}

/// Prints the rule in the syntax [`Rule::parse`] reads, fully parenthesised
/// and with quoted names, so that printing and parsing give the same rule.
impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::True => f.write_str("TRUE"),
            Rule::False => f.write_str("FALSE"),
            Rule::StateIs(state, name) => {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "{}(\"{escaped}\")", state.as_str())
            }
            Rule::Not(inner) => write!(f, "NOT {inner}"),
            Rule::And(a, b) => write!(f, "({a} AND {b})"),
            Rule::Or(a, b) => write!(f, "({a} OR {b})"),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn error(&self, expected: &'static str) -> RuleError {
        let found = match self.rest().chars().next() {
            None => "the end of the rule".to_string(),
            Some(_) => format!("{:?}", self.rest().chars().take(12).collect::<String>()),
        };
        RuleError {
            position: self.pos,
            expected,
            found,
        }
    }

    /// Consumes `word` if it is next as a whole word.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_space();
        let rest = self.rest();
        let whole = rest.starts_with(word)
            && !rest[word.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if whole {
            self.pos += word.len();
        }
        whole
    }

    fn symbol(&mut self, symbol: char) -> bool {
        self.skip_space();
        if self.rest().starts_with(symbol) {
            self.pos += symbol.len_utf8();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Rule, RuleError> {
        let mut rule = self.and()?;
        while self.keyword("OR") {
            rule = Rule::Or(Box::new(rule), Box::new(self.and()?));
        }
        Ok(rule)
    }

    fn and(&mut self) -> Result<Rule, RuleError> {
        let mut rule = self.not()?;
        while self.keyword("AND") {
            rule = Rule::And(Box::new(rule), Box::new(self.not()?));
        }
        Ok(rule)
    }

    fn not(&mut self) -> Result<Rule, RuleError> {
        if self.keyword("NOT") {
            return Ok(Rule::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Rule, RuleError> {
        const EXPECTED: &str = "ALARM(, OK(, INSUFFICIENT_DATA(, TRUE, FALSE, NOT or '('";
        if self.symbol('(') {
            let rule = self.or()?;
            if !self.symbol(')') {
                return Err(self.error("')'"));
            }
            return Ok(rule);
        }
        if self.keyword("TRUE") {
            return Ok(Rule::True);
        }
        if self.keyword("FALSE") {
            return Ok(Rule::False);
        }
        let functions = [
            ("ALARM", State::Alarm),
            ("OK", State::Ok),
            ("INSUFFICIENT_DATA", State::InsufficientData),
        ];
        for (word, state) in functions {
            if self.keyword(word) {
                if !self.symbol('(') {
                    return Err(self.error("'(' after the state function"));
                }
                let name = self.alarm_name()?;
                if !self.symbol(')') {
                    return Err(self.error("')' after the alarm name"));
                }
                return Ok(Rule::StateIs(state, name));
            }
        }
        self.skip_space();
        Err(self.error(EXPECTED))
    }

    fn alarm_name(&mut self) -> Result<String, RuleError> {
        self.skip_space();
        if self.symbol('"') {
            return self.quoted_name();
        }
        let rest = self.rest();
        let len = rest
            .find(|c: char| c == ')' || c == '(' || c.is_whitespace())
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error("an alarm name"));
        }
        let name = rest[..len].to_string();
        self.pos += len;
        Ok(name)
    }

    fn quoted_name(&mut self) -> Result<String, RuleError> {
        let start = self.pos;
        let mut name = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = start + offset + 1;
                    if name.is_empty() {
                        self.pos = start;
                        return Err(self.error("a non-empty alarm name"));
                    }
                    return Ok(name);
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('"' | '\\'))) => name.push(escaped),
                    _ => {
                        self.pos = start + offset;
                        return Err(self.error("\\\" or \\\\ after a backslash"));
                    }
                },
                other => name.push(other),
            }
        }
        self.pos = self.text.len();
        Err(self.error("a closing '\"'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_listed_once_in_order() {
        let rule = Rule::parse(r#"ALARM("b") AND (OK("a") OR NOT ALARM("b")) OR TRUE"#).unwrap();
        assert_eq!(rule.names(), vec!["b", "a"]);
    }

    fn states(pairs: &[(&str, State)]) -> HashMap<String, State> {
        pairs.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn evaluates_table() {
        let rule = Rule::parse(r#"ALARM("a") AND (OK("b") OR NOT ALARM("c"))"#).unwrap();
        let cases = [
            (states(&[("a", State::Alarm), ("b", State::Ok)]), true),
            (states(&[("a", State::Alarm), ("c", State::Alarm)]), false),
            // b missing = INSUFFICIENT_DATA; c missing = not ALARM.
            (states(&[("a", State::Alarm)]), true),
            (states(&[("a", State::Ok), ("b", State::Ok)]), false),
        ];
        for (map, expected) in cases {
            assert_eq!(rule.evaluate(&map), expected, "{map:?}");
        }
        let absent = Rule::parse(r#"INSUFFICIENT_DATA("nobody")"#).unwrap();
        assert!(absent.evaluate(&HashMap::new()));
        assert!(
            Rule::parse("TRUE OR FALSE")
                .unwrap()
                .evaluate(&HashMap::new())
        );
        assert!(
            !Rule::parse("TRUE AND FALSE")
                .unwrap()
                .evaluate(&HashMap::new())
        );
        assert!(
            Rule::parse("NOT NOT TRUE")
                .unwrap()
                .evaluate(&HashMap::new())
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let rule = Rule::parse("TRUE OR FALSE AND FALSE").unwrap();
        assert!(rule.evaluate(&HashMap::new()));
        assert_eq!(
            Rule::parse(r#"OK(web-1) AND ALARM("a \"q\"")"#).unwrap(),
            Rule::And(
                Box::new(Rule::StateIs(State::Ok, "web-1".into())),
                Box::new(Rule::StateIs(State::Alarm, "a \"q\"".into()))
            )
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "",
                0,
                "ALARM(, OK(, INSUFFICIENT_DATA(, TRUE, FALSE, NOT or '('",
            ),
            (
                "ALARM(\"a\") AND",
                14,
                "ALARM(, OK(, INSUFFICIENT_DATA(, TRUE, FALSE, NOT or '('",
            ),
            ("ALARM \"a\"", 6, "'(' after the state function"),
            ("ALARM(\"a\"", 9, "')' after the alarm name"),
            ("(TRUE", 5, "')'"),
            ("TRUE FALSE", 5, "AND, OR, ')' or the end of the rule"),
            ("OK(\"unterminated", 16, "a closing '\"'"),
            ("OK(\"\")", 4, "a non-empty alarm name"),
            ("OK()", 3, "an alarm name"),
            (
                "alarm(\"a\")",
                0,
                "ALARM(, OK(, INSUFFICIENT_DATA(, TRUE, FALSE, NOT or '('",
            ),
        ];
        for (text, position, expected) in cases {
            let err = Rule::parse(text).unwrap_err();
            assert_eq!(
                (err.position, err.expected),
                (*position, *expected),
                "{text:?}: {err}"
            );
        }
    }
}
