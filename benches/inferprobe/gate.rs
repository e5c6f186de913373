//! How often the release gate passes, fails or cannot judge, on synthetic samples with a known
//! change: the gate's statistics alone (`gate::judge`), no network. Each trial draws fresh
//! log-normal TTFTs for both sides (median 300 ms, σ of the log 0.25: p95 ≈ 1.5 × median),
//! scales the candidate's by `1 + change`, and judges `ttft_p95` (or `ttft_p50`) against a 15%
//! limit as an A/B gate would (both samples resampled).

use inferprobe::gate::criteria::parse_limit;
use inferprobe::gate::judge::{judge, Base};
use inferprobe::gate::{ProbeSample, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Trials per row.
pub const TRIALS: usize = 200;
/// Probes per side of each row group.
pub const SIZES: [usize; 4] = [30, 50, 100, 200];
/// True relative changes of the candidate's TTFT.
pub const CHANGES: [f64; 6] = [0.0, 0.05, 0.10, 0.15, 0.20, 0.30];
/// Median TTFT, seconds, and the σ of its logarithm.
const MEDIAN: f64 = 0.3;
const SIGMA: f64 = 0.25;

/// One row: probes per side, true change, and the shares of pass, not enough evidence, fail.
pub struct Row {
    pub probes: usize,
    pub change: f64,
    pub pass: f64,
    pub inconclusive: f64,
    pub fail: f64,
}

fn normal<R: Rng>(rng: &mut R) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn sample<R: Rng>(rng: &mut R, n: usize, scale: f64) -> Vec<ProbeSample> {
    (0..n)
        .map(|_| ProbeSample {
            scenario: "s".into(),
            result: "success".into(),
            ttft: Some(MEDIAN * (SIGMA * normal(rng)).exp() * scale),
            ..ProbeSample::default()
        })
        .collect()
}

/// Runs every row for `metric` (`ttft_p95`, `ttft_p50`).
pub fn run(metric: &str) -> Vec<Row> {
    let limit = parse_limit(&format!("{metric}=15%")).expect("limit");
    let mut rng = StdRng::seed_from_u64(42);
    let mut rows = Vec::new();
    for n in SIZES {
        for change in CHANGES {
            let mut counts = [0usize; 3];
            for _ in 0..TRIALS {
                let base = sample(&mut rng, n, 1.0);
                let cand = sample(&mut rng, n, 1.0 + change);
                let c: Vec<&ProbeSample> = cand.iter().collect();
                let b: Vec<&ProbeSample> = base.iter().collect();
                let r = judge(&limit, "s", &c, &Base::Samples(b));
                counts[match r.verdict {
                    Verdict::Pass => 0,
                    Verdict::Inconclusive | Verdict::Skipped => 1,
                    Verdict::Fail => 2,
                }] += 1;
            }
            let share = |k: usize| counts[k] as f64 / TRIALS as f64;
            rows.push(Row {
                probes: n,
                change,
                pass: share(0),
                inconclusive: share(1),
                fail: share(2),
            });
        }
    }
    rows
}
