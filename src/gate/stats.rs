//! The gate's statistics: percentile-bootstrap intervals for quantiles, means and costs, Wilson
//! and Newcombe score intervals for ratios, and the verdict rule. Pure functions; the random
//! draws come from a fixed seed so a gate run on the same samples gives the same answer.
//!
//! Why these methods: with 50–200 probes a p95 rests on a handful of observations and has no
//! usable closed-form standard error, while the bootstrap needs no distributional assumption and
//! resamples whole probes (so the inter-token gaps of one stream stay together). For a ratio of
//! rare events (errors) the normal approximation breaks down near 0; the Wilson score interval
//! does not, and Newcombe's hybrid score interval (his method 10) combines two Wilson intervals
//! into one for a difference of two independent proportions.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Resamples per bootstrap interval.
pub const RESAMPLES: usize = 2000;
/// Two-sided confidence of every interval.
pub const CONFIDENCE: f64 = 0.95;
/// The standard normal quantile of `1 − (1 − CONFIDENCE)/2`.
pub const Z: f64 = 1.959_963_984_540_054;
/// Base seed of the bootstrap draws.
pub const SEED: u64 = 0x9a7e_5eed;
/// Most probes an estimate of the needed sample size reports; beyond, "more than".
pub const MAX_NEEDED: u64 = 1_000_000;

/// A closed interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// Half the width.
    pub fn half_width(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }

    /// The interval of `−x` for `x` in this one.
    pub fn negated(self) -> Interval {
        Interval {
            lo: -self.hi,
            hi: -self.lo,
        }
    }
}

/// The nearest-rank `q` quantile (0 < q ≤ 1) of `values` in any order (reordered in place);
/// `None` when empty. The same rank rule as `calibrate` and the probe's ITL summary, found in
/// linear time.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    let (_, v, _) = values.select_nth_unstable_by(rank - 1, f64::total_cmp);
    Some(*v)
}

/// The smallest number of observations for which the nearest-rank `q` quantile is not simply
/// the sample maximum: `⌈1 / (1 − q)⌉` (20 for p95, 100 for p99), and at least 10.
pub fn min_samples_for_quantile(q: f64) -> usize {
    if q >= 1.0 {
        return usize::MAX;
    }
    ((1.0 / (1.0 - q)).ceil() as usize).max(10)
}

/// What a bootstrap interval is computed against.
pub enum Against<'a, T> {
    /// A second sample, resampled too (A/B, or an earlier gate's raw probes).
    Sample(&'a [T]),
    /// A fixed value (a summary from a result file): only the candidate is resampled.
    Point(f64),
}

/// Percentile-bootstrap interval of the relative change `est(candidate) / est(baseline) − 1`,
/// resampling whole elements with replacement, `RESAMPLES` times from a generator seeded with
/// `SEED + stream`. `None` when fewer than 90% of the resamples give a finite change (an
/// estimator without data, or a baseline of zero).
pub fn bootstrap_relative<T>(
    candidate: &[T],
    baseline: &Against<'_, T>,
    est: &dyn Fn(&[&T]) -> Option<f64>,
    stream: u64,
) -> Option<Interval> {
    if candidate.is_empty() {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(SEED.wrapping_add(stream));
    let mut changes = Vec::with_capacity(RESAMPLES);
    let mut c_buf: Vec<&T> = Vec::with_capacity(candidate.len());
    let mut b_buf: Vec<&T> = Vec::new();
    for _ in 0..RESAMPLES {
        resample(candidate, &mut c_buf, &mut rng);
        let Some(c) = est(&c_buf) else { continue };
        let b = match baseline {
            Against::Point(b) => *b,
            Against::Sample(s) => {
                if s.is_empty() {
                    return None;
                }
                resample(s, &mut b_buf, &mut rng);
                match est(&b_buf) {
                    Some(b) => b,
                    None => continue,
                }
            }
        };
        if let Some(r) = relative_change(c, b) {
            changes.push(r);
        }
    }
    if (changes.len() as f64) < 0.9 * RESAMPLES as f64 {
        return None;
    }
    changes.sort_by(f64::total_cmp);
    let alpha = (1.0 - CONFIDENCE) / 2.0;
    Some(Interval {
        lo: percentile_sorted(&changes, alpha),
        hi: percentile_sorted(&changes, 1.0 - alpha),
    })
}

fn resample<'a, T, R: Rng>(from: &'a [T], into: &mut Vec<&'a T>, rng: &mut R) {
    into.clear();
    for _ in 0..from.len() {
        into.push(&from[rng.random_range(0..from.len())]);
    }
}

/// The `p` quantile of ascending `sorted` with linear interpolation (the usual percentile of a
/// bootstrap distribution). `sorted` must not be empty.
fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * (pos - i as f64)
}

/// `candidate / baseline − 1`; 0 when both are 0, `None` for a zero baseline otherwise or any
/// non-finite input.
pub fn relative_change(candidate: f64, baseline: f64) -> Option<f64> {
    if !(candidate.is_finite() && baseline.is_finite()) {
        return None;
    }
    if baseline == 0.0 {
        return (candidate == 0.0).then_some(0.0);
    }
    Some(candidate / baseline - 1.0)
}

/// Wilson score interval of a proportion `k / n` at [`CONFIDENCE`]; `None` when `n` is 0.
pub fn wilson(k: u64, n: u64) -> Option<Interval> {
    wilson_f(k as f64, n as f64)
}

/// [`wilson`] for counts scaled to another sample size (not necessarily whole).
fn wilson_f(k: f64, n: f64) -> Option<Interval> {
    if n <= 0.0 {
        return None;
    }
    let p = k / n;
    let z2 = Z * Z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Interval {
        lo: (center - half).max(0.0),
        hi: (center + half).min(1.0),
    })
}

/// Newcombe's hybrid score interval (method 10) of the difference `k1/n1 − k2/n2` of two
/// independent proportions; `None` when either sample is empty.
pub fn newcombe(k1: u64, n1: u64, k2: u64, n2: u64) -> Option<Interval> {
    newcombe_f(k1 as f64, n1 as f64, k2 as f64, n2 as f64)
}

fn newcombe_f(k1: f64, n1: f64, k2: f64, n2: f64) -> Option<Interval> {
    let (w1, w2) = (wilson_f(k1, n1)?, wilson_f(k2, n2)?);
    let p1 = k1 / n1;
    let p2 = k2 / n2;
    let d = p1 - p2;
    Some(Interval {
        lo: d - ((p1 - w1.lo).powi(2) + (w2.hi - p2).powi(2)).sqrt(),
        hi: d + ((w1.hi - p1).powi(2) + (p2 - w2.lo).powi(2)).sqrt(),
    })
}

/// A metric's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval is within the limit.
    Pass,
    /// The whole interval is beyond the limit.
    Fail,
    /// The interval straddles the limit: not enough evidence either way.
    Inconclusive,
    /// Not judged (no baseline value, not measured); does not decide the gate.
    Skipped,
}

impl Verdict {
    /// `pass`, `fail`, `inconclusive`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Skipped => "skipped",
        }
    }
}

/// Judges an interval of the change in the bad direction (higher is worse) against `limit`:
/// fail when even its lower end is beyond the limit, pass when its upper end is within it,
/// inconclusive otherwise.
pub fn judge(bad: Interval, limit: f64) -> Verdict {
    if bad.lo > limit {
        Verdict::Fail
    } else if bad.hi <= limit {
        Verdict::Pass
    } else {
        Verdict::Inconclusive
    }
}

/// Probes per side that would likely settle an inconclusive verdict: an interval's width falls
/// as `1/√n`, so `n × (half-width / distance of the estimate from the limit)²`. `None` when the
/// estimate sits on the limit (no sample size settles it); capped at [`MAX_NEEDED`].
pub fn needed_probes(n: usize, estimate_bad: f64, bad: Interval, limit: f64) -> Option<u64> {
    let margin = (limit - estimate_bad).abs();
    if margin < 1e-9 || !margin.is_finite() {
        return None;
    }
    let factor = (bad.half_width() / margin).powi(2);
    let needed = (n.max(1) as f64 * factor).ceil();
    Some(if needed.is_finite() {
        (needed as u64).clamp(n as u64 + 1, MAX_NEEDED)
    } else {
        MAX_NEEDED
    })
}

/// Probes per side that would settle an inconclusive ratio verdict if the observed proportions
/// held: the smallest size whose score interval (Wilson against a baseline value `Some(pb)`,
/// Newcombe against a baseline proportion `pb_sample`) clears the limit on the side the estimate
/// lies. Score intervals narrow faster than `1/√n` near 0, so this is searched, not scaled.
pub fn needed_probes_ratio(pc: f64, baseline: RatioBaseline, limit: f64, n: usize) -> Option<u64> {
    let interval = |m: f64| match baseline {
        RatioBaseline::Point(pb) => wilson_f(pc * m, m).map(|w| Interval {
            lo: w.lo - pb,
            hi: w.hi - pb,
        }),
        RatioBaseline::Sample(pb) => newcombe_f(pc * m, m, pb * m, m),
    };
    let est = pc
        - match baseline {
            RatioBaseline::Point(p) | RatioBaseline::Sample(p) => p,
        };
    if (est - limit).abs() < 1e-12 {
        return None;
    }
    let settled = |m: u64| {
        interval(m as f64).is_some_and(|i| {
            if est < limit {
                i.hi <= limit
            } else {
                i.lo > limit
            }
        })
    };
    let mut hi = (n as u64 + 1).max(2);
    while !settled(hi) {
        if hi >= MAX_NEEDED {
            return Some(MAX_NEEDED);
        }
        hi = (hi * 2).min(MAX_NEEDED);
    }
    let mut lo = n as u64;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if settled(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// The baseline of a ratio.
#[derive(Clone, Copy, Debug)]
pub enum RatioBaseline {
    /// A value taken as exact.
    Point(f64),
    /// The proportion of a sample of the same size as the candidate's.
    Sample(f64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::stats::nearest_rank;

    #[test]
    fn quantile_matches_the_nearest_rank_rule_of_calibrate() {
        let values: Vec<f64> = (0..37).map(|i| ((i * 7919) % 101) as f64).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.01, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let mut v = values.clone();
            assert_eq!(quantile(&mut v, q), nearest_rank(&sorted, q), "q={q}");
        }
        assert_eq!(quantile(&mut [], 0.5), None);
        assert_eq!(min_samples_for_quantile(0.95), 20);
        assert_eq!(min_samples_for_quantile(0.99), 100);
        assert_eq!(min_samples_for_quantile(0.5), 10);
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263 → 0.2553–0.3662; 0/10 → 0–0.2775; 1/29 → 0.0061–0.1718.
        let w = wilson(81, 263).unwrap();
        assert!(
            (w.lo - 0.2553).abs() < 1e-4 && (w.hi - 0.3662).abs() < 1e-4,
            "{w:?}"
        );
        let w = wilson(0, 10).unwrap();
        assert!(w.lo == 0.0 && (w.hi - 0.2775).abs() < 1e-4, "{w:?}");
        let w = wilson(1, 29).unwrap();
        assert!(
            (w.lo - 0.0061).abs() < 1e-4 && (w.hi - 0.1718).abs() < 1e-4,
            "{w:?}"
        );
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn newcombe_matches_published_values() {
        // Newcombe (1998), difference of proportions, method 10: 56/70 − 48/80 → 0.0524–0.3339;
        // 9/10 − 3/10 → 0.1705–0.8090.
        let d = newcombe(56, 70, 48, 80).unwrap();
        assert!(
            (d.lo - 0.0524).abs() < 1e-4 && (d.hi - 0.3339).abs() < 1e-4,
            "{d:?}"
        );
        let d = newcombe(9, 10, 3, 10).unwrap();
        assert!(
            (d.lo - 0.1705).abs() < 1e-4 && (d.hi - 0.8090).abs() < 1e-4,
            "{d:?}"
        );
    }

    fn median(v: &[&f64]) -> Option<f64> {
        let mut x: Vec<f64> = v.iter().map(|x| **x).collect();
        quantile(&mut x, 0.5)
    }

    #[test]
    fn bootstrap_is_reproducible_and_covers_the_true_change() {
        // Two samples of 1..=100 scaled by 1.0 and 1.2: the median's change is 20%.
        let base: Vec<f64> = (1..=100).map(f64::from).collect();
        let cand: Vec<f64> = base.iter().map(|x| x * 1.2).collect();
        let a = bootstrap_relative(&cand, &Against::Sample(&base), &median, 1).unwrap();
        let b = bootstrap_relative(&cand, &Against::Sample(&base), &median, 1).unwrap();
        assert_eq!(a, b, "same seed, same interval");
        assert!(a.lo < 0.2 && a.hi > 0.2, "{a:?}");
        assert!(a.lo > -0.2 && a.hi < 0.7, "{a:?}");
        // Against a point, only the candidate varies: a narrower interval.
        let p = bootstrap_relative(&cand, &Against::Point(50.5), &median, 1).unwrap();
        assert!(p.half_width() < a.half_width(), "{p:?} vs {a:?}");
        // Constant samples: a zero-width interval on the exact change.
        let c = vec![1.2; 30];
        let k = bootstrap_relative(&c, &Against::Point(1.0), &median, 1).unwrap();
        assert!((k.lo - 0.2).abs() < 1e-12 && (k.hi - 0.2).abs() < 1e-12);
        // No data, or a zero baseline: no interval.
        assert_eq!(
            bootstrap_relative(&[], &Against::Point(1.0), &median, 1),
            None
        );
        assert_eq!(
            bootstrap_relative(&c, &Against::Point(0.0), &median, 1),
            None
        );
    }

    #[test]
    fn verdicts_follow_the_interval_and_the_needed_size_shrinks_the_interval() {
        let i = |lo, hi| Interval { lo, hi };
        assert_eq!(judge(i(0.18, 0.22), 0.15), Verdict::Fail);
        assert_eq!(judge(i(-0.02, 0.08), 0.15), Verdict::Pass);
        assert_eq!(judge(i(0.15, 0.15), 0.15), Verdict::Pass);
        assert_eq!(judge(i(-0.10, 0.25), 0.15), Verdict::Inconclusive);
        // Estimate 0.05, half-width 0.175, margin 0.10: (1.75)² × 40 = 122.5 → 123.
        assert_eq!(needed_probes(40, 0.05, i(-0.125, 0.225), 0.15), Some(123));
        assert_eq!(needed_probes(40, 0.15, i(0.0, 0.3), 0.15), None);
        assert_eq!(needed_probes(10, 0.0, i(-1e6, 1e6), 1e-6), Some(MAX_NEEDED));
        // No errors on either side: Newcombe's upper end is Wilson's for 0/n, 3.84/(n + 3.84),
        // within 5 points from n = 73 on.
        let n = needed_probes_ratio(0.0, RatioBaseline::Sample(0.0), 0.05, 30).unwrap();
        assert_eq!(n, 73);
        assert!(newcombe(0, 73, 0, 73).unwrap().hi <= 0.05);
        assert!(newcombe(0, 72, 0, 72).unwrap().hi > 0.05);
        // Half failing against a 2% baseline value clears a 10-point limit quickly.
        let f = needed_probes_ratio(0.5, RatioBaseline::Point(0.02), 0.10, 5).unwrap();
        assert!(wilson(f / 2, f).unwrap().lo - 0.02 > 0.10 && f < 40, "{f}");
    }
}
