//! Turns the requests of one stage into a [`CalibrateStage`]: percentiles, error rate,
//! throughput and the SLO verdict. Pure functions over recorded samples.

use std::time::Duration;

use crate::calibrate::format::{CalibrateSlo, CalibrateStage, Quantiles};
use crate::probe::result::ProbeResult;

/// What one request of a stage measured, with its times relative to the stage start.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When the request was sent, since the stage started.
    pub started: Duration,
    /// When it ended (completed or failed), since the stage started.
    pub ended: Duration,
    /// How it ended.
    pub result: ProbeResult,
    /// Time to first token.
    pub ttft: Option<Duration>,
    /// Every inter-token gap.
    pub itl: Vec<Duration>,
    /// End to end, when the stream completed.
    pub e2e: Option<Duration>,
    /// Output tokens.
    pub output_tokens: u64,
}

/// The nearest-rank `q` quantile (0 < q ≤ 1) of ascending `sorted`; `None` when empty. The same
/// rule as the probe's own ITL summary, so numbers agree between `probe` and `calibrate`.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

/// p50, p95 and p99 of `values` (seconds, any order).
pub fn quantiles(mut values: Vec<f64>) -> Quantiles {
    values.sort_by(f64::total_cmp);
    Quantiles {
        p50: nearest_rank(&values, 0.50),
        p95: nearest_rank(&values, 0.95),
        p99: nearest_rank(&values, 0.99),
    }
}

/// How a stage's requests are judged.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Requests started before this (warm-up) are not counted.
    pub warmup: Duration,
    /// Length of the measured window; the stage's duration is at least this.
    pub hold: Duration,
}

/// Summarizes one stage. `skipped` are the start offsets of launches the in-flight limit
/// refused (open loop); they count as failed requests.
pub fn summarize(
    load: f64,
    samples: &[Sample],
    skipped: &[Duration],
    window: Window,
    slo: &CalibrateSlo,
) -> CalibrateStage {
    let counted: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= window.warmup)
        .collect();
    let skipped = skipped.iter().filter(|d| **d >= window.warmup).count() as u64;
    let ok: Vec<&&Sample> = counted.iter().filter(|s| s.result.is_success()).collect();
    let requests = counted.len() as u64 + skipped;
    let errors = requests - ok.len() as u64;
    let hold = window.hold.as_secs_f64();
    let tokens = tokens_in_window(samples, window);
    let secs = |d: &Duration| d.as_secs_f64();
    let mut stage = CalibrateStage {
        load,
        requests,
        errors,
        duration_seconds: hold,
        ttft_seconds: quantiles(
            ok.iter()
                .filter_map(|s| s.ttft.as_ref().map(secs))
                .collect(),
        ),
        itl_seconds: quantiles(ok.iter().flat_map(|s| s.itl.iter().map(secs)).collect()),
        e2e_seconds: quantiles(ok.iter().filter_map(|s| s.e2e.as_ref().map(secs)).collect()),
        output_tokens_per_second: if hold > 0.0 { tokens / hold } else { 0.0 },
        breach: false,
    };
    stage.breach = !breach_reasons(&stage, slo).is_empty();
    stage
}

/// Output tokens generated inside the measured window by successful requests, whenever they
/// started: each request's tokens are spread evenly over its decode span (first token to end)
/// and the part inside the window is counted. Counting by start time instead would make a
/// saturated closed loop look slower than it is, since its queue shifts work past the window.
pub fn tokens_in_window(samples: &[Sample], window: Window) -> f64 {
    let w0 = window.warmup.as_secs_f64();
    let w1 = w0 + window.hold.as_secs_f64();
    samples
        .iter()
        .filter(|s| s.result.is_success())
        .map(|s| {
            let end = s.ended.as_secs_f64();
            let first = (s.started + s.ttft.unwrap_or_default())
                .as_secs_f64()
                .min(end);
            let tokens = s.output_tokens as f64;
            if end - first <= 0.0 {
                return if (w0..w1).contains(&end) { tokens } else { 0.0 };
            }
            if first >= w0 && end <= w1 {
                return tokens;
            }
            let overlap = (end.min(w1) - first.max(w0)).max(0.0);
            tokens * overlap / (end - first)
        })
        .sum()
}

/// Failed requests over requests; 0 for a stage without requests.
pub fn error_rate(stage: &CalibrateStage) -> f64 {
    if stage.requests == 0 {
        0.0
    } else {
        stage.errors as f64 / stage.requests as f64
    }
}

/// Why a stage breaches the SLO, in words; empty when it does not.
pub fn breach_reasons(stage: &CalibrateStage, slo: &CalibrateSlo) -> Vec<String> {
    let mut why = Vec::new();
    if stage.requests == 0 {
        why.push("no request started in the measured window (lengthen --hold)".to_string());
        return why;
    }
    if let Some(p95) = stage.ttft_seconds.p95 {
        if p95 > slo.ttft_p95_seconds {
            why.push(format!(
                "p95 TTFT {:.1} ms > {:.1} ms",
                p95 * 1e3,
                slo.ttft_p95_seconds * 1e3
            ));
        }
    }
    if let Some(p95) = stage.itl_seconds.p95 {
        if p95 > slo.itl_p95_seconds {
            why.push(format!(
                "p95 ITL {:.1} ms > {:.1} ms",
                p95 * 1e3,
                slo.itl_p95_seconds * 1e3
            ));
        }
    }
    let rate = error_rate(stage);
    if rate > slo.error_rate {
        why.push(format!(
            "error rate {:.1} % > {:.1} %",
            rate * 100.0,
            slo.error_rate * 100.0
        ));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn slo() -> CalibrateSlo {
        CalibrateSlo {
            ttft_p95_seconds: 0.5,
            itl_p95_seconds: 0.05,
            error_rate: 0.01,
        }
    }

    fn ok(started: u64, ttft: u64, gaps: &[u64], e2e: u64, tokens: u64) -> Sample {
        Sample {
            started: ms(started),
            ended: ms(started + e2e),
            result: ProbeResult::Success,
            ttft: Some(ms(ttft)),
            itl: gaps.iter().map(|g| ms(*g)).collect(),
            e2e: Some(ms(e2e)),
            output_tokens: tokens,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.50), Some(50.0));
        assert_eq!(nearest_rank(&v, 0.95), Some(95.0));
        assert_eq!(nearest_rank(&v, 0.99), Some(99.0));
        let q = quantiles((1..=20).rev().map(f64::from).collect());
        assert_eq!((q.p50, q.p95, q.p99), (Some(10.0), Some(19.0), Some(20.0)));
        let one = quantiles(vec![7.0]);
        assert_eq!(
            (one.p50, one.p95, one.p99),
            (Some(7.0), Some(7.0), Some(7.0))
        );
        assert_eq!(quantiles(Vec::new()), Quantiles::default());
    }

    #[test]
    fn summary_counts_only_the_measured_window() {
        let mut failed = ok(1500, 0, &[], 0, 0);
        failed.result = ProbeResult::Http5xx;
        failed.ttft = None;
        failed.e2e = None;
        failed.ended = ms(1510);
        let samples = vec![
            // Started during warm-up: ignored, however slow.
            ok(0, 900, &[500], 1000, 2),
            ok(1000, 100, &[10, 20], 200, 3),
            ok(1200, 300, &[30], 400, 2),
            failed,
        ];
        let w = Window {
            warmup: ms(1000),
            hold: ms(2000),
        };
        let s = summarize(4.0, &samples, &[ms(999), ms(2500)], w, &slo());
        assert_eq!(s.load, 4.0);
        // Two successes, one 5xx, one refused launch inside the window.
        assert_eq!((s.requests, s.errors), (4, 2));
        assert_eq!(s.ttft_seconds.p50, Some(0.1));
        assert_eq!(s.ttft_seconds.p95, Some(0.3));
        assert_eq!(s.itl_seconds.p50, Some(0.02));
        assert_eq!(s.itl_seconds.p99, Some(0.03));
        assert_eq!(s.e2e_seconds.p95, Some(0.4));
        assert_eq!(s.duration_seconds, 2.0);
        // 3 + 2 tokens decoded inside the window; the warm-up request decoded before it.
        assert_eq!(s.output_tokens_per_second, 2.5);
        assert!(s.breach);
        assert_eq!(
            breach_reasons(&s, &slo()),
            vec!["error rate 50.0 % > 1.0 %".to_string()]
        );
    }

    #[test]
    fn breach_on_each_slo_and_on_an_empty_window() {
        let w = Window {
            warmup: ms(0),
            hold: ms(1000),
        };
        let good = summarize(1.0, &[ok(0, 400, &[40], 500, 2)], &[], w, &slo());
        assert!(!good.breach);
        assert_eq!(good.output_tokens_per_second, 2.0);
        let slow = summarize(1.0, &[ok(0, 600, &[40], 700, 2)], &[], w, &slo());
        assert_eq!(
            breach_reasons(&slow, &slo()),
            vec!["p95 TTFT 600.0 ms > 500.0 ms".to_string()]
        );
        let choppy = summarize(1.0, &[ok(0, 100, &[60], 900, 2)], &[], w, &slo());
        assert_eq!(
            breach_reasons(&choppy, &slo()),
            vec!["p95 ITL 60.0 ms > 50.0 ms".to_string()]
        );
        assert_eq!(choppy.duration_seconds, 1.0);
        let empty = summarize(1.0, &[], &[], w, &slo());
        assert!(empty.breach);
        assert_eq!((empty.requests, empty.output_tokens_per_second), (0, 0.0));
    }

    #[test]
    fn throughput_counts_tokens_decoded_inside_the_window() {
        let w = Window {
            warmup: ms(1000),
            hold: ms(1000),
        };
        let part = |s: Sample| tokens_in_window(&[s], w);
        // Decodes 1600–2600 ms: 400 of its 1000 ms fall inside the window.
        assert!((part(ok(1500, 100, &[], 1100, 10)) - 4.0).abs() < 1e-9);
        // Started in warm-up, decodes 800–1300 ms: 300 of 500 ms inside.
        assert!((part(ok(0, 800, &[], 1300, 5)) - 3.0).abs() < 1e-9);
        // Wholly inside, wholly before, wholly after.
        assert_eq!(part(ok(1100, 100, &[], 500, 7)), 7.0);
        assert_eq!(part(ok(0, 100, &[], 500, 7)), 0.0);
        assert_eq!(part(ok(2000, 100, &[], 500, 7)), 0.0);
        // A single token (no decode span) counts where it lands.
        assert_eq!(part(ok(1200, 100, &[], 100, 1)), 1.0);
        // Failed requests add nothing.
        let mut failed = ok(1100, 100, &[], 500, 7);
        failed.result = ProbeResult::StreamAborted;
        assert_eq!(part(failed), 0.0);
        // The stage's rate is over the hold: 4 + 3 tokens in 1 s.
        let s = summarize(
            1.0,
            &[ok(1500, 100, &[], 1100, 10), ok(0, 800, &[], 1300, 5)],
            &[],
            w,
            &slo(),
        );
        assert!((s.output_tokens_per_second - 7.0).abs() < 1e-9);
        assert_eq!(s.requests, 1);
    }
}
