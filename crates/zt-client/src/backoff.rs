//! Exponential backoff with jitter, as gRPC's connection-backoff document specifies:
//! by default 1 s, then x1.6 per attempt, +-20 % jitter, capped at 120 s (see
//! [`BackoffConfig`]). Pure: the caller sleeps.

use std::time::Duration;

use crate::config::BackoffConfig;

/// Successive delays between reconnection attempts. [`Backoff::default`] follows
/// [`BackoffConfig::default`].
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    multiplier: f64,
    jitter: f64,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::from(BackoffConfig::default())
    }
}

impl From<BackoffConfig> for Backoff {
    fn from(config: BackoffConfig) -> Self {
        Self::new(config.initial, config.multiplier, config.jitter, config.max)
    }
}

impl Backoff {
    /// Starts at `initial`, multiplies by `multiplier` each step up to `max`, and spreads each
    /// delay uniformly by `+-jitter` (a fraction) so that clients cut off together do not
    /// reconnect together.
    pub fn new(initial: Duration, multiplier: f64, jitter: f64, max: Duration) -> Self {
        Self {
            next: initial,
            multiplier,
            jitter: jitter.clamp(0.0, 1.0),
            max,
        }
    }

    /// The next delay, given a uniform sample `unit` in `[0, 1)` (clamped to `[0, 1]`):
    /// `unit` 0.5 is the step itself, 0 and 1 its lower and upper jitter bounds.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let base = self.next.min(self.max);
        self.next = base.mul_f64(self.multiplier).min(self.max);
        let spread = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        base.mul_f64(spread)
    }

    /// The next delay, with random jitter (a uniform sample from the thread's RNG).
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_multiplier_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let centre: Vec<u64> = (0..14)
            .map(|_| backoff.next_with(0.5).as_millis() as u64)
            .collect();
        assert_eq!(&centre[..4], [1000, 1600, 2560, 4096]);
        assert_eq!(*centre.last().unwrap(), 120_000, "capped");
        assert!(centre.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut low = Backoff::default();
        let mut high = Backoff::default();
        assert_eq!(low.next_with(0.0), Duration::from_millis(800));
        assert_eq!(high.next_with(1.0), Duration::from_millis(1200));
        // A twin without jitter walks the same steps, so every random delay can be held to
        // within 20 % of its step, on both sides.
        let mut random = Backoff::default();
        let mut centre = Backoff::default();
        for step in 0..100 {
            let (d, c) = (random.next_delay(), centre.next_with(0.5));
            assert!(
                d >= c.mul_f64(0.8) && d <= c.mul_f64(1.2),
                "step {step}: {d:?} is not within 20 % of {c:?}"
            );
        }
    }
}
