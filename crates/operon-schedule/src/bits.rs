//! A 256-bit set of small integers. Every cron field (minutes, hours, days,
//! months, weekdays, years since 1970) fits, and "the next member at or after
//! `i`" is a few word operations, which is what lets the search skip whole
//! runs of non-matching values instead of stepping through them.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bits([u64; 4]);

/// Which way a search walks through time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Forward,
    Backward,
}

impl Bits {
    pub(crate) const CAPACITY: u32 = 256;

    pub(crate) fn insert(&mut self, value: u32) {
        debug_assert!(value < Self::CAPACITY);
        self.0[(value / 64) as usize] |= 1 << (value % 64);
    }

    pub(crate) fn contains(&self, value: u32) -> bool {
        value < Self::CAPACITY && self.0[(value / 64) as usize] & (1 << (value % 64)) != 0
    }

    /// The set `{low..=high}`.
    pub(crate) fn range(low: u32, high: u32) -> Bits {
        let mut bits = Bits::default();
        for value in low..=high {
            bits.insert(value);
        }
        bits
    }

    /// The smallest member `>= from`.
    pub(crate) fn next_at_or_after(&self, from: u32) -> Option<u32> {
        if from >= Self::CAPACITY {
            return None;
        }
        let mut word_index = (from / 64) as usize;
        let mut word = self.0[word_index] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(word_index as u32 * 64 + word.trailing_zeros());
            }
            word_index += 1;
            if word_index == self.0.len() {
                return None;
            }
            word = self.0[word_index];
        }
    }

    /// The largest member `<= from`.
    pub(crate) fn prev_at_or_before(&self, from: u32) -> Option<u32> {
        let from = from.min(Self::CAPACITY - 1);
        let mut word_index = (from / 64) as usize;
        let mut word = self.0[word_index] & (u64::MAX >> (63 - from % 64));
        loop {
            if word != 0 {
                return Some(word_index as u32 * 64 + 63 - word.leading_zeros());
            }
            if word_index == 0 {
                return None;
            }
            word_index -= 1;
            word = self.0[word_index];
        }
    }

    /// Members starting at `from` in `direction` (`from` included if a member).
    pub(crate) fn walk(self, from: u32, direction: Direction) -> impl Iterator<Item = u32> {
        let mut next = match direction {
            Direction::Forward => self.next_at_or_after(from),
            Direction::Backward => self.prev_at_or_before(from),
        };
        std::iter::from_fn(move || {
            let current = next?;
            next = match direction {
                Direction::Forward => self.next_at_or_after(current + 1),
                Direction::Backward => current
                    .checked_sub(1)
                    .and_then(|below| self.prev_at_or_before(below)),
            };
            Some(current)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_both_ways_across_words() {
        let mut bits = Bits::default();
        for value in [0, 5, 63, 64, 130, 255] {
            bits.insert(value);
        }
        let forward: Vec<u32> = bits.walk(6, Direction::Forward).collect();
        assert_eq!(forward, vec![63, 64, 130, 255]);
        let backward: Vec<u32> = bits.walk(129, Direction::Backward).collect();
        assert_eq!(backward, vec![64, 63, 5, 0]);
        assert_eq!(bits.next_at_or_after(256), None);
        assert_eq!(bits.prev_at_or_before(1000), Some(255));
        assert!(
            Bits::default()
                .walk(0, Direction::Backward)
                .next()
                .is_none()
        );
    }

    #[test]
    fn range_and_contains() {
        let bits = Bits::range(3, 70);
        assert!(!bits.contains(2) && bits.contains(3) && bits.contains(70) && !bits.contains(71));
        assert!(!bits.contains(300));
    }
}
