//! `*` / `?` glob matching as IAM does it for actions, resources and
//! `StringLike`: `*` matches any run of characters (including none and
//! including `/`), `?` matches exactly one character, everything else
//! matches itself. There is no escape character, as in IAM.
//!
//! The matcher is the greedy two-pointer algorithm with one backtrack point
//! (the last `*` seen): it runs in O(pattern × text) at worst and never
//! recurses, so a hostile pattern such as `*a*a*a*a*b` cannot blow the stack
//! or take exponential time.

/// A glob prepared for matching many texts: the common shapes (no
/// wildcard, `*` alone, a trailing `*` only) skip the general matcher.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    pattern: String,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Exact,
    Anything,
    /// `prefix*` with no other wildcard.
    Prefix,
    General,
}

impl Glob {
    pub fn new(pattern: String) -> Glob {
        let shape = match pattern.find(['*', '?']) {
            None => Shape::Exact,
            Some(_) if pattern == "*" => Shape::Anything,
            Some(at) if at + 1 == pattern.len() && pattern.ends_with('*') => Shape::Prefix,
            Some(_) => Shape::General,
        };
        Glob { pattern, shape }
    }

    pub fn matches(&self, text: &str) -> bool {
        match self.shape {
            Shape::Exact => self.pattern == text,
            Shape::Anything => true,
            Shape::Prefix => text.starts_with(&self.pattern[..self.pattern.len() - 1]),
            Shape::General => matches(&self.pattern, text),
        }
    }
}

/// Whether `text` matches the glob `pattern` (case-sensitive).
pub fn matches(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        // Each byte is a character: match without allocating.
        return matches_units(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    matches_units(&pattern, &text, '*', '?')
}

/// The matcher over characters (`char`s, or bytes of ASCII text).
fn matches_units<T: Copy + PartialEq>(pattern: &[T], text: &[T], star: T, one: T) -> bool {
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` in the pattern and the text position it was
    // tried at; on a mismatch the star swallows one more character.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(&c) if c == star => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == one || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star_at, tried)) => {
                    p = star_at + 1;
                    t = tried + 1;
                    backtrack = Some((star_at, tried + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == star)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(matches("node/web-1", "node/web-1"));
        assert!(!matches("node/web-1", "node/web-10"));
        assert!(!matches("node/web-1", "node/web-"));
        assert!(!matches("node/web-1", "Node/web-1"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
    }

    #[test]
    fn star_matches_any_run_including_slashes() {
        assert!(matches("*", ""));
        assert!(matches("*", "param/app/db/password"));
        assert!(matches("param/app/*", "param/app/db/password"));
        assert!(matches("param/*/password", "param/app/db/password"));
        assert!(matches("node/web-*", "node/web-"));
        assert!(!matches("node/web-*", "node/db-1"));
        assert!(matches("*-1", "node/web-1"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(matches("node/web-?", "node/web-1"));
        assert!(!matches("node/web-?", "node/web-10"));
        assert!(!matches("node/web-?", "node/web-"));
        assert!(matches("node/wé?-1", "node/wéb-1"));
        assert!(matches("node/w?b-1", "node/wéb-1"));
        assert!(matches("?", "é"));
        assert!(!matches("??", "é"));
    }

    #[test]
    fn backtracking_finds_later_occurrences() {
        assert!(matches("*ab", "aab"));
        assert!(matches("*a*a*a*b", "aaaaaaaaaab"));
        assert!(!matches("*a*a*a*b", "aaaaaaaaaaa"));
    }

    #[test]
    fn prepared_globs_agree_with_the_matcher() {
        let patterns = [
            "", "*", "**", "a*", "a?", "a", "*a", "a*b", "?", "ab*", "a*?",
        ];
        let texts = ["", "a", "ab", "abc", "ba", "b", "aab"];
        for pattern in patterns {
            let glob = super::Glob::new(pattern.to_owned());
            for text in texts {
                assert_eq!(
                    glob.matches(text),
                    matches(pattern, text),
                    "{pattern:?} on {text:?}"
                );
            }
        }
    }

    #[test]
    fn hostile_patterns_finish_quickly() {
        let text = "a".repeat(5000);
        let pattern = format!("{}b", "*a".repeat(200));
        assert!(!matches(&pattern, &text));
    }
}
