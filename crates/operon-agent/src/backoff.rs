//! Reconnection backoff: exponential (0.5 s, doubling, capped at 30 s) with
//! full jitter (a uniformly random delay between zero and that bound), so a
//! fleet that lost its server does not come back in lockstep.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_millis(500);
pub const CAP: Duration = Duration::from_secs(30);

/// The upper bound of the delay before retry number `attempt` (0-based).
pub fn ceiling(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(16));
    INITIAL.saturating_mul(factor).min(CAP)
}

/// The delay before retry `attempt`, given `unit` drawn uniformly from [0, 1).
pub fn delay(attempt: u32, unit: f64) -> Duration {
    ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
}

/// Attempts counter with the jitter source.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The next delay to wait, advancing the attempt count.
    pub fn next_delay(&mut self) -> Duration {
        let unit: f64 = rand::random();
        let wait = delay(self.attempt, unit);
        self.attempt = self.attempt.saturating_add(1);
        wait
    }

    /// Start again from the initial delay (after a healthy connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_from_half_a_second_to_thirty() {
        let ms: Vec<u128> = (0..9).map(|a| ceiling(a).as_millis()).collect();
        assert_eq!(
            ms,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(ceiling(u32::MAX), CAP);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        assert_eq!(delay(3, 0.0), Duration::ZERO);
        assert_eq!(delay(3, 0.5), Duration::from_secs(2));
        assert!(delay(3, 0.999) < ceiling(3));
        assert_eq!(delay(1, 7.0), ceiling(1)); // out-of-range input is clamped
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::default();
        for _ in 0..10 {
            assert!(backoff.next_delay() <= CAP);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= INITIAL);
    }
}
