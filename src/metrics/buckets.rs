//! Default histogram buckets, chosen around the SLOs people set for LLM serving, and validation of
//! bucket overrides from config.
//!
//! Prometheus estimates quantiles by interpolating inside a bucket, so the estimate is only as
//! good as the buckets around the threshold an SLO or alert compares it with. The defaults are
//! dense where those thresholds usually sit and sparse in the tails, which only need to be caught.

/// First-milestone latencies (TTFT, first answer token, first event, first byte). Interactive
/// chat SLOs put TTFT between 0.2 s and 2 s, so buckets are dense there; the tail reaches a minute
/// to cover long-context prefill and queueing on a saturated server.
pub const FIRST_MILESTONE_SECONDS: &[f64] = &[
    0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0,
    30.0, 60.0,
];

/// Per-token latencies (ITL, TPOT). Decode steps take 5–200 ms on real deployments (a 50 ms ITL is
/// 20 tokens/s, below reading speed), so buckets are dense there; the tail catches stalls.
pub const PER_TOKEN_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 1.0, 2.5,
];

/// Whole-request durations. A probe's answer is short, but reasoning models and long outputs run
/// for minutes, and the total timeout is usually set in minutes too.
pub const REQUEST_DURATION_SECONDS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
    180.0, 300.0, 600.0,
];

/// Output rate in tokens per second: from a crawling CPU backend (a few tokens/s) to fast
/// hosted APIs and small models on large GPUs (hundreds).
pub const OUTPUT_TOKENS_PER_SECOND: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0,
];

/// Cost of one probe request in USD. A short probe on a cheap model costs around a millionth of a
/// dollar; a long-context probe on a frontier model can approach a dollar.
pub const REQUEST_COST_USD: &[f64] = &[
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Why a bucket list cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BucketsError {
    /// The list has no bounds.
    #[error("bucket list is empty")]
    Empty,
    /// A bound is NaN or infinite (other than a trailing `+Inf`, which is implicit anyway).
    #[error("bucket bound at index {index} is not a finite number")]
    NotFinite {
        /// Position of the bad bound.
        index: usize,
    },
    /// A bound is not greater than the one before it.
    #[error("bucket bounds must be strictly increasing: {previous} is followed by {next}")]
    NotIncreasing {
        /// The earlier bound, as written.
        previous: String,
        /// The later bound, as written.
        next: String,
    },
}

/// Checks a bucket list: non-empty, finite (a trailing `+Inf` is allowed and ignored), strictly
/// increasing.
pub fn validate(buckets: &[f64]) -> Result<(), BucketsError> {
    let Some((last, _)) = buckets.split_last() else {
        return Err(BucketsError::Empty);
    };
    let finite = if *last == f64::INFINITY {
        &buckets[..buckets.len() - 1]
    } else {
        buckets
    };
    if let Some(index) = finite.iter().position(|b| !b.is_finite()) {
        return Err(BucketsError::NotFinite { index });
    }
    if let Some(w) = buckets.windows(2).find(|w| w[0] >= w[1]) {
        return Err(BucketsError::NotIncreasing {
            previous: w[0].to_string(),
            next: w[1].to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        for b in [
            FIRST_MILESTONE_SECONDS,
            PER_TOKEN_SECONDS,
            REQUEST_DURATION_SECONDS,
            OUTPUT_TOKENS_PER_SECOND,
            REQUEST_COST_USD,
        ] {
            assert_eq!(validate(b), Ok(()));
        }
    }

    #[test]
    fn rejects_bad_lists() {
        assert_eq!(validate(&[]), Err(BucketsError::Empty));
        assert_eq!(
            validate(&[0.1, 0.1]),
            Err(BucketsError::NotIncreasing {
                previous: "0.1".into(),
                next: "0.1".into()
            })
        );
        assert_eq!(
            validate(&[1.0, 0.5]),
            Err(BucketsError::NotIncreasing {
                previous: "1".into(),
                next: "0.5".into()
            })
        );
        assert_eq!(
            validate(&[0.1, f64::NAN, 1.0]),
            Err(BucketsError::NotFinite { index: 1 })
        );
        assert_eq!(
            validate(&[f64::NEG_INFINITY, 1.0]),
            Err(BucketsError::NotFinite { index: 0 })
        );
        assert_eq!(validate(&[0.5, 1.0, f64::INFINITY]), Ok(()));
    }
}
