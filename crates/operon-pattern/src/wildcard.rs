//! `wildcard` patterns: `*` matches zero or more characters; `\*` and `\\`
//! are literal; any other escape and two wildcards in a row are errors.

use std::collections::{BTreeSet, HashSet};

/// Most simultaneously reachable wildcard states a field may have. EventBridge
/// rejects more complex rules ("Rule is too complex"); this is event-ruler's
/// `MachineComplexityEvaluator` criterion, with AWS's threshold.
pub const MAX_COMPLEXITY: usize = 10;

/// A parsed wildcard pattern: literal pieces separated by `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    /// The literal pieces; there is a `*` between each two.
    pieces: Vec<Vec<u8>>,
}

/// A token of a wildcard pattern: a literal byte or a star.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    Star,
}

impl Wildcard {
    /// Parses a pattern; the error says what is wrong.
    pub fn parse(pattern: &str) -> Result<Wildcard, String> {
        let mut pieces = vec![Vec::new()];
        let mut bytes = pattern.bytes().enumerate();
        let mut previous_was_star = false;
        while let Some((i, b)) = bytes.next() {
            match b {
                b'*' if previous_was_star => {
                    return Err(format!("Consecutive wildcard characters at pos {i}"));
                }
                b'*' => {
                    pieces.push(Vec::new());
                    previous_was_star = true;
                    continue;
                }
                b'\\' => match bytes.next() {
                    Some((_, escaped @ (b'*' | b'\\'))) => push_byte(&mut pieces, escaped),
                    _ => return Err(format!("Invalid escape character at pos {i}")),
                },
                other => push_byte(&mut pieces, other),
            }
            previous_was_star = false;
        }
        Ok(Wildcard { pieces })
    }

    /// Whether `value` matches the whole pattern.
    pub fn matches(&self, value: &[u8]) -> bool {
        let (first, rest) = self
            .pieces
            .split_first()
            .expect("a wildcard has at least one piece");
        let Some((last, middle)) = rest.split_last() else {
            return value == first.as_slice();
        };
        if value.len() < first.len() + last.len()
            || !value.starts_with(first)
            || !value.ends_with(last)
        {
            return false;
        }
        let mut window = &value[first.len()..value.len() - last.len()];
        for piece in middle {
            match find(window, piece) {
                Some(at) => window = &window[at + piece.len()..],
                None => return false,
            }
        }
        true
    }

    fn tokens(&self) -> Vec<Token> {
        let mut tokens = Vec::new();
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                tokens.push(Token::Star);
            }
            tokens.extend(piece.iter().map(|&b| Token::Byte(b)));
        }
        tokens
    }
}

fn push_byte(pieces: &mut [Vec<u8>], b: u8) {
    if let Some(last) = pieces.last_mut() {
        last.push(b);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The largest number of states of the patterns' combined automaton that one
/// input can keep active at once (a star state also counts the state after it,
/// since a star may match nothing). Stops counting past `MAX_COMPLEXITY`.
pub fn complexity(patterns: &[&Wildcard]) -> usize {
    let automata: Vec<Vec<Token>> = patterns.iter().map(|w| w.tokens()).collect();
    let alphabet: BTreeSet<Option<u8>> = automata
        .iter()
        .flatten()
        .filter_map(|t| match t {
            Token::Byte(b) => Some(Some(*b)),
            Token::Star => None,
        })
        .chain([None])
        .collect();
    let start: BTreeSet<(usize, usize)> = (0..automata.len())
        .flat_map(|p| closure(&automata[p], p, 0))
        .collect();
    let mut seen = HashSet::new();
    let mut pending = vec![start];
    let mut worst = 0;
    while let Some(active) = pending.pop() {
        worst = worst.max(active.len());
        if worst > MAX_COMPLEXITY || seen.len() > 10_000 {
            return worst;
        }
        if !seen.insert(active.clone()) {
            continue;
        }
        for byte in &alphabet {
            let next = step(&automata, &active, *byte);
            if !next.is_empty() && !seen.contains(&next) {
                pending.push(next);
            }
        }
    }
    worst
}

/// States reachable from `state` without input (a star may match nothing).
fn closure(tokens: &[Token], pattern: usize, state: usize) -> Vec<(usize, usize)> {
    let mut states = vec![(pattern, state)];
    let mut at = state;
    while tokens.get(at) == Some(&Token::Star) {
        at += 1;
        states.push((pattern, at));
    }
    states
}

fn step(
    automata: &[Vec<Token>],
    active: &BTreeSet<(usize, usize)>,
    byte: Option<u8>,
) -> BTreeSet<(usize, usize)> {
    let mut next = BTreeSet::new();
    for &(pattern, state) in active {
        let tokens = &automata[pattern];
        let target = match tokens.get(state) {
            Some(Token::Star) => Some(state),
            Some(Token::Byte(b)) if Some(*b) == byte => Some(state + 1),
            _ => None,
        };
        if let Some(target) = target {
            next.extend(closure(tokens, pattern, target));
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(p: &str) -> Wildcard {
        Wildcard::parse(p).unwrap()
    }

    #[test]
    fn star_matches_zero_or_more() {
        assert!(w("xy*").matches(b"xy"));
        assert!(w("*bc").matches(b"abcbc"));
        assert!(w("d*f").matches(b"deeeef"));
        assert!(!w("d*f").matches(b"xy"));
        assert!(w("2*0*1*7").matches(b"2001117"));
        assert!(w("a*a").matches(b"aa"));
        assert!(!w("a*a").matches(b"a"));
        assert!(w("").matches(b""));
        assert!(!w("").matches(b"x"));
        assert!(w("a\\*b").matches(b"a*b"));
        assert!(!w("a\\*b").matches(b"axb"));
        assert!(w("a\\\\*").matches(b"a\\zz"));
    }

    #[test]
    fn rejects_bad_syntax() {
        assert!(Wildcard::parse("abc**def").is_err());
        assert!(Wildcard::parse("a*c\\def").is_err());
        assert!(Wildcard::parse("abc\\").is_err());
    }

    #[test]
    fn complexity_follows_repeated_wildcards() {
        assert!(complexity(&[&w("*:*:*:*:*:event-bus/*")]) > MAX_COMPLEXITY);
        assert!(complexity(&[&w("/Users/*/dir/dir/dir/dir/dir/doc.txt")]) <= MAX_COMPLEXITY);
        assert!(complexity(&[&w("2*0*1*7")]) <= MAX_COMPLEXITY);
        assert!(complexity(&[&w("*/init/*"), &w("*/dir/*")]) <= MAX_COMPLEXITY);
    }
}
