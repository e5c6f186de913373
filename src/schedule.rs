//! When probes start: interval with jitter (default) or cron, start times spread by target name,
//! never two probes of one target at once, a global concurrency cap and an hourly token budget.
//!
//! Pure helpers (spread, jitter, scenario choice, budget) are unit-tested here; the loops that use
//! them live in [`crate::runtime`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

/// A stable fraction in `[0, 1)` derived from a target's name (FNV-1a, then mixed), so that targets with the
/// same interval start at different offsets, the same offsets after every restart.
pub fn spread_fraction(name: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV alone leaves the high bits nearly equal for names that differ only at the end
    // (`target-1`, `target-2`): finish with the splitmix64 mixer so every bit avalanches.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Offset of a target's first probe within its interval.
pub fn first_delay(name: &str, every: Duration) -> Duration {
    every.mul_f64(spread_fraction(name))
}

/// One interval with jitter: drawn uniformly from `every × (1 ± jitter)`.
pub fn jittered(every: Duration, jitter: f64, rng: &mut impl Rng) -> Duration {
    let j = jitter.clamp(0.0, 0.5);
    if j == 0.0 {
        return every;
    }
    let factor = rng.random_range((1.0 - j)..=(1.0 + j));
    every.mul_f64(factor)
}

/// Picks the next scenario index: in turn (`rotate`) or by weight (`weighted`).
pub fn pick_scenario(weights: &[u32], weighted: bool, turn: usize, rng: &mut impl Rng) -> usize {
    if weights.len() <= 1 {
        return 0;
    }
    if !weighted {
        return turn % weights.len();
    }
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return turn % weights.len();
    }
    let mut x = rng.random_range(0..total);
    for (i, w) in weights.iter().enumerate() {
        let w = u64::from(*w);
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Output tokens spent in the last hour, for `global.max_output_tokens_per_hour`.
#[derive(Debug, Default)]
pub struct TokenBudget {
    spent: VecDeque<(Instant, u64)>,
    sum: u64,
}

impl TokenBudget {
    const WINDOW: Duration = Duration::from_secs(3600);

    /// Records tokens spent at `at`.
    pub fn spend(&mut self, at: Instant, tokens: u64) {
        self.spent.push_back((at, tokens));
        self.sum += tokens;
    }

    /// Tokens spent within the hour before `now`.
    pub fn spent_in_window(&mut self, now: Instant) -> u64 {
        while let Some((t, n)) = self.spent.front() {
            if now.saturating_duration_since(*t) < Self::WINDOW {
                break;
            }
            self.sum -= n;
            self.spent.pop_front();
        }
        self.sum
    }

    /// True when a probe may start under `limit` (0 = unlimited).
    pub fn allows(&mut self, now: Instant, limit: u64) -> bool {
        limit == 0 || self.spent_in_window(now) < limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn spread_is_stable_in_range_and_differs_by_name() {
        let a = spread_fraction("vllm-eu");
        assert_eq!(a, spread_fraction("vllm-eu"));
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, spread_fraction("vllm-us"));
        let d = first_delay("x", Duration::from_secs(10));
        assert!(d < Duration::from_secs(10));
        // 100 names spread over the interval: no tenth of it holds more than a third of them.
        let mut bins = [0; 10];
        for i in 0..100 {
            bins[(spread_fraction(&format!("target-{i}")) * 10.0) as usize] += 1;
        }
        assert!(bins.iter().all(|b| *b < 34), "{bins:?}");
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        let every = Duration::from_secs(30);
        assert_eq!(jittered(every, 0.0, &mut rng), every);
        for _ in 0..1000 {
            let d = jittered(every, 0.1, &mut rng);
            assert!(
                d >= Duration::from_secs(27) && d <= Duration::from_secs(33),
                "{d:?}"
            );
        }
        // Out-of-range jitter is clamped to 0.5.
        for _ in 0..100 {
            let d = jittered(every, 3.0, &mut rng);
            assert!(
                d >= Duration::from_secs(15) && d <= Duration::from_secs(45),
                "{d:?}"
            );
        }
    }

    #[test]
    fn rotate_and_weighted_selection() {
        let mut rng = StdRng::seed_from_u64(1);
        let picks: Vec<usize> = (0..5)
            .map(|t| pick_scenario(&[1, 1, 1], false, t, &mut rng))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1]);
        let mut counts = [0u32; 2];
        for t in 0..4000 {
            counts[pick_scenario(&[3, 1], true, t, &mut rng)] += 1;
        }
        // Expect 3000 / 1000; allow a wide margin.
        assert!((2800..3200).contains(&counts[0]), "{counts:?}");
        assert_eq!(pick_scenario(&[5], true, 9, &mut rng), 0);
    }

    #[test]
    fn token_budget_window() {
        let mut b = TokenBudget::default();
        let t0 = Instant::now();
        assert!(b.allows(t0, 100));
        b.spend(t0, 60);
        b.spend(t0 + Duration::from_secs(10), 50);
        assert_eq!(b.spent_in_window(t0 + Duration::from_secs(20)), 110);
        assert!(!b.allows(t0 + Duration::from_secs(20), 100));
        assert!(b.allows(t0 + Duration::from_secs(20), 0));
        // The first spend leaves the window after an hour.
        assert_eq!(b.spent_in_window(t0 + Duration::from_secs(3600)), 50);
        assert!(b.allows(t0 + Duration::from_secs(3600), 100));
    }
}
