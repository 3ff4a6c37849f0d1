//! Counting matching lines in a byte stream that arrives in pieces.
//!
//! A [`LineCounter`] is fed whatever bytes were appended to a log since the
//! last read. Only complete lines (ended by `\n`) are matched; the bytes after
//! the last newline are kept until the rest of their line arrives, so a line
//! written in two `write`s is counted once, whole. A line longer than
//! [`MAX_LINE_BYTES`] is matched on its first `MAX_LINE_BYTES` bytes (memory
//! stays bounded whatever the log holds). Bytes that are not UTF-8 are
//! matched lossily (replaced by U+FFFD).

use regex::Regex;

/// The longest line prefix kept while waiting for its newline.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Takes a byte stream in pieces (a followed file, `journalctl`'s output).
pub trait LineFeed {
    /// Take the next bytes of the stream; how many lines they complete that
    /// count (matching ones for a watcher, all for shipping).
    fn feed(&mut self, bytes: &[u8]) -> u64;
    /// Forget the partial line: the stream starts over (the file was
    /// truncated or replaced, `journalctl` restarted).
    fn restart(&mut self);
}

impl LineFeed for LineCounter {
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        LineCounter::feed(self, bytes)
    }

    fn restart(&mut self) {
        LineCounter::restart(self)
    }
}

/// Counts lines matching a regular expression across reads.
#[derive(Debug, Clone)]
pub struct LineCounter {
    pattern: Regex,
    /// The start of the line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// The partial line outgrew [`MAX_LINE_BYTES`]: what follows until its
    /// newline is dropped.
    overlong: bool,
}

impl LineCounter {
    pub fn new(pattern: Regex) -> LineCounter {
        LineCounter {
            pattern,
            partial: Vec::new(),
            overlong: false,
        }
    }

    /// Take the next bytes of the stream; the number of lines they complete
    /// that match.
    pub fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut matched = 0;
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.keep(&bytes[..newline]);
            if self.line_matches() {
                matched += 1;
            }
            self.partial.clear();
            self.overlong = false;
            bytes = &bytes[newline + 1..];
        }
        self.keep(bytes);
        matched
    }

    /// Forget the partial line: the stream starts over (the file was
    /// truncated or replaced).
    pub fn restart(&mut self) {
        self.partial.clear();
        self.overlong = false;
    }

    /// Bytes of an unfinished line held.
    pub fn pending_bytes(&self) -> usize {
        self.partial.len()
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        let room = MAX_LINE_BYTES - self.partial.len();
        if bytes.len() > room {
            self.partial.extend_from_slice(&bytes[..room]);
            self.overlong = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn line_matches(&self) -> bool {
        let line = self.partial.strip_suffix(b"\r").unwrap_or(&self.partial);
        self.pattern.is_match(&String::from_utf8_lossy(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(pattern: &str) -> LineCounter {
        LineCounter::new(Regex::new(pattern).unwrap())
    }

    #[test]
    fn counts_complete_matching_lines_across_pieces() {
        // (pieces fed in order, matches reported after each piece)
        let table: &[(&[&str], &[u64])] = &[
            (&["CRITICAL a\nok\nCRITICAL b\n"], &[2]),
            (&["CRIT", "ICAL split\n"], &[0, 1]),
            (&["CRITICAL no newline yet"], &[0]),
            (&["CRITICAL x", "", "\n"], &[0, 0, 1]),
            (&["\n\n\n"], &[0]),
            (&["ok\r\nCRITICAL\r\n"], &[1]),
            (&["a CRITICAL\nb", " OutOfMemory\n"], &[1, 1]),
            (&[""], &[0]),
        ];
        for (pieces, expected) in table {
            let mut c = counter("CRITICAL|OutOfMemory");
            let got: Vec<u64> = pieces.iter().map(|p| c.feed(p.as_bytes())).collect();
            assert_eq!(&got, expected, "pieces {pieces:?}");
        }
    }

    #[test]
    fn anchors_apply_to_each_line() {
        let mut c = counter("^ERROR$");
        assert_eq!(c.feed(b"ERROR\nxERROR\nERROR\r\nERRORx\n"), 2);
    }

    #[test]
    fn restart_drops_the_partial_line() {
        let mut c = counter("^CRITICAL");
        assert_eq!(c.feed(b"CRITI"), 0);
        assert_eq!(c.pending_bytes(), 5);
        c.restart();
        assert_eq!(c.feed(b"CAL\nCRITICAL\n"), 1);
    }

    #[test]
    fn overlong_lines_are_matched_on_their_start_and_memory_is_bounded() {
        let mut c = counter("^CRITICAL");
        let mut long = b"CRITICAL ".to_vec();
        long.resize(MAX_LINE_BYTES * 3, b'x');
        assert_eq!(c.feed(&long), 0);
        assert_eq!(c.pending_bytes(), MAX_LINE_BYTES);
        assert_eq!(c.feed(&long), 0);
        assert_eq!(c.pending_bytes(), MAX_LINE_BYTES);
        assert_eq!(c.feed(b"\nCRITICAL\n"), 2);
        assert_eq!(c.pending_bytes(), 0);
        // A match beyond the kept prefix is not seen.
        let mut tail = vec![b'x'; MAX_LINE_BYTES + 10];
        tail.extend_from_slice(b"CRITICAL\n");
        let mut c = counter("CRITICAL");
        assert_eq!(c.feed(&tail), 0);
    }

    #[test]
    fn invalid_utf8_is_matched_lossily() {
        let mut c = counter("CRITICAL");
        assert_eq!(c.feed(b"\xff\xfe CRITICAL \xc3\n"), 1);
    }
}
