//! Where the saturation curve bends.
//!
//! Three landmarks, all judged on p95 TTFT against the lowest stage (the first one run; stages
//! run in ascending load) and on the SLO verdict of each stage:
//! - **queueing**: the first stage whose p95 TTFT exceeds [`QUEUEING_FACTOR`] × the lowest
//!   stage's. With a fixed number of decode slots, TTFT is flat until requests start waiting for
//!   a slot, then grows by a whole service time at once, so this catches the first stage that
//!   queues.
//! - **saturation**: the first stage whose p95 TTFT exceeds [`SATURATION_FACTOR`] × the lowest
//!   stage's (clearly past the knee; shown in the report and the chart).
//! - **first breach**: the first stage that broke the SLO.
//!
//! The reported `knee` is the highest load before *both* queueing and the first breach: the
//! most load the endpoint serves at its unloaded latency and within the SLO. It is `None` when
//! the lowest stage already queues or breaches, or when no tested load reached either landmark
//! (test higher loads).

use crate::calibrate::format::CalibrateStage;

/// p95 TTFT growth over the lowest stage that counts as queueing.
pub const QUEUEING_FACTOR: f64 = 1.5;
/// p95 TTFT growth over the lowest stage that counts as saturated.
pub const SATURATION_FACTOR: f64 = 2.0;

/// The landmarks of one run, as stage indices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Knee {
    /// The reported knee: highest stage before queueing and before the first breach.
    pub knee: Option<usize>,
    /// First stage whose p95 TTFT exceeds 1.5× the lowest stage's.
    pub queueing: Option<usize>,
    /// First stage whose p95 TTFT exceeds 2× the lowest stage's.
    pub saturation: Option<usize>,
    /// First stage that broke the SLO.
    pub first_breach: Option<usize>,
}

impl Knee {
    /// The knee's load, as written to `calibrate.json`.
    pub fn load(&self, stages: &[CalibrateStage]) -> Option<f64> {
        self.knee.and_then(|i| stages.get(i)).map(|s| s.load)
    }
}

/// Finds the landmarks of `stages` (in the order they ran).
pub fn find(stages: &[CalibrateStage]) -> Knee {
    let first_breach = stages.iter().position(|s| s.breach);
    let base = stages.first().and_then(|s| s.ttft_seconds.p95);
    // A stage without a TTFT (nothing succeeded) is past any knee.
    let past = |factor: f64| -> Option<usize> {
        let base = base?;
        stages
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, s)| s.ttft_seconds.p95.is_none_or(|p| p > factor * base))
            .map(|(i, _)| i)
    };
    let queueing = past(QUEUEING_FACTOR);
    let saturation = past(SATURATION_FACTOR);
    let knee = if base.is_none() {
        None
    } else {
        match (queueing, first_breach) {
            (None, None) => None,
            (a, b) => {
                let limit = a.unwrap_or(usize::MAX).min(b.unwrap_or(usize::MAX));
                limit.checked_sub(1)
            }
        }
    };
    Knee {
        knee,
        queueing,
        saturation,
        first_breach,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::format::Quantiles;

    /// A stage with this p95 TTFT (ms) and breach flag.
    fn stage(load: f64, p95_ms: Option<f64>, breach: bool) -> CalibrateStage {
        CalibrateStage {
            load,
            requests: 10,
            errors: 0,
            duration_seconds: 1.0,
            ttft_seconds: Quantiles {
                p50: p95_ms.map(|v| v / 1e3),
                p95: p95_ms.map(|v| v / 1e3),
                p99: p95_ms.map(|v| v / 1e3),
            },
            itl_seconds: Quantiles::default(),
            e2e_seconds: Quantiles::default(),
            output_tokens_per_second: 0.0,
            breach,
        }
    }

    #[test]
    fn knee_is_the_last_stage_before_queueing() {
        // Four slots: flat up to 4, one service time of queueing at 8, three at 16.
        let stages = vec![
            stage(1.0, Some(52.0), false),
            stage(2.0, Some(55.0), false),
            stage(4.0, Some(60.0), false),
            stage(8.0, Some(200.0), false),
            stage(16.0, Some(480.0), false),
        ];
        let k = find(&stages);
        assert_eq!(
            k,
            Knee {
                knee: Some(2),
                queueing: Some(3),
                saturation: Some(3),
                first_breach: None,
            }
        );
        assert_eq!(k.load(&stages), Some(4.0));
    }

    #[test]
    fn gradual_growth_separates_queueing_from_saturation() {
        let stages = vec![
            stage(1.0, Some(100.0), false),
            stage(2.0, Some(140.0), false),
            stage(3.0, Some(160.0), false),
            stage(4.0, Some(190.0), false),
            stage(5.0, Some(260.0), false),
        ];
        let k = find(&stages);
        assert_eq!(
            (k.queueing, k.saturation, k.knee),
            (Some(2), Some(4), Some(1))
        );
    }

    #[test]
    fn an_earlier_breach_bounds_the_knee() {
        let stages = vec![
            stage(1.0, Some(50.0), false),
            stage(2.0, Some(52.0), true),
            stage(4.0, Some(200.0), true),
        ];
        let k = find(&stages);
        assert_eq!(
            (k.first_breach, k.queueing, k.knee),
            (Some(1), Some(2), Some(0))
        );
        assert_eq!(k.load(&stages), Some(1.0));
    }

    #[test]
    fn a_failed_stage_counts_as_past_the_knee() {
        let stages = vec![
            stage(1.0, Some(50.0), false),
            stage(2.0, Some(51.0), false),
            stage(4.0, None, true),
        ];
        let k = find(&stages);
        assert_eq!(
            (k.queueing, k.saturation, k.knee),
            (Some(2), Some(2), Some(1))
        );
    }

    #[test]
    fn no_knee_when_not_reached_or_breached_at_once() {
        let flat = vec![stage(1.0, Some(50.0), false), stage(2.0, Some(55.0), false)];
        assert_eq!(find(&flat), Knee::default());
        let bad = vec![stage(1.0, Some(900.0), true), stage(2.0, Some(950.0), true)];
        let k = find(&bad);
        assert_eq!((k.first_breach, k.knee), (Some(0), None));
        let dead = vec![stage(1.0, None, true)];
        assert_eq!(find(&dead).knee, None);
        assert_eq!(find(&[]), Knee::default());
    }
}
