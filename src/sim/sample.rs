//! Random draws: distributions and the per-request plan (fault, timings, lengths).

use std::time::Duration;

use rand::Rng;

use crate::config::simulator::{Dist, DistValue, FaultKind, SimulatorConfig};

/// z of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874_040_841;

/// A standard normal draw (Box–Muller; `rand` alone has no normal distribution).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - [0, 1) is (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One draw from a distribution, clamped to the value type's range (so never negative).
pub fn draw<T: DistValue>(d: &Dist<T>, rng: &mut impl Rng) -> T {
    match *d {
        Dist::Fixed(v) => v,
        Dist::Uniform { min, max } => {
            let (a, b) = (min.to_f64(), max.to_f64());
            T::from_f64(a + (b - a) * rng.random::<f64>())
        }
        Dist::Normal { mean, stddev } => {
            T::from_f64(mean.to_f64() + stddev.to_f64() * standard_normal(rng))
        }
        Dist::Lognormal { median, p99 } => {
            let mu = median.to_f64().ln();
            let sigma = (p99.to_f64().ln() - mu) / Z_P99;
            T::from_f64((mu + sigma * standard_normal(rng)).exp())
        }
    }
}

/// Everything random about one request, drawn once at arrival so a seeded run is reproducible.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The injected fault, if any.
    pub fault: Option<FaultKind>,
    /// Time from decode start to the first token.
    pub ttft: Duration,
    /// Base gap before each token after the first (batch slowdown applied at send time).
    pub itls: Vec<Duration>,
    /// Reasoning tokens to send.
    pub reasoning: u32,
    /// Answer tokens to send.
    pub answer: u32,
    /// The request's cap cut the output short (`finish_reason: length`).
    pub truncated: bool,
}

impl Plan {
    /// Output tokens of a complete answer.
    pub fn total(&self) -> u32 {
        self.reasoning + self.answer
    }
}

/// Draws the faults in their fixed order (all of them, so the draw count is constant) and keeps
/// the first that hits.
pub fn draw_fault(cfg: &SimulatorConfig, rng: &mut impl Rng) -> Option<FaultKind> {
    let mut hit = None;
    for kind in FaultKind::ALL {
        let roll = rng.random::<f64>();
        if hit.is_none() && roll < cfg.faults.get(kind) {
            hit = Some(kind);
        }
    }
    hit
}

/// Draws a request's plan. `cap` is the request's `max_tokens`; `reasoning_allowed` is false for
/// APIs without a reasoning field.
/// `forced_fault`, when set, replaces the drawn fault (`Some(None)` forces "no fault"); the draw
/// still happens so the random sequence does not depend on it.
#[cfg(test)]
pub fn draw_plan(
    cfg: &SimulatorConfig,
    cap: Option<u32>,
    reasoning_allowed: bool,
    forced_fault: Option<Option<FaultKind>>,
    rng: &mut impl Rng,
) -> Plan {
    draw_shaped_plan(
        cfg,
        cap,
        reasoning_allowed,
        forced_fault,
        Length::Drawn,
        rng,
    )
}

/// How many answer tokens a plan wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// As drawn from `output_tokens`.
    Drawn,
    /// Exactly this many (a tool call's argument pieces).
    Exactly(u32),
    /// At least this many (an answer that starts with a tool's result).
    AtLeast(u32),
}

/// [`draw_plan`] with the answer length shaped; `output_tokens` is drawn in every case, so the
/// random sequence does not depend on the shape.
pub fn draw_shaped_plan(
    cfg: &SimulatorConfig,
    cap: Option<u32>,
    reasoning_allowed: bool,
    forced_fault: Option<Option<FaultKind>>,
    length: Length,
    rng: &mut impl Rng,
) -> Plan {
    let drawn = draw_fault(cfg, rng);
    let fault = forced_fault.unwrap_or(drawn);
    let ttft = draw(&cfg.ttft, rng);
    let drawn_answer = draw(&cfg.output_tokens, rng);
    let wanted_answer = match length {
        Length::Drawn => drawn_answer,
        Length::Exactly(n) => n,
        Length::AtLeast(n) => drawn_answer.max(n),
    };
    let wanted_reasoning = if reasoning_allowed {
        cfg.reasoning_tokens
    } else {
        0
    };
    let cap = cap.unwrap_or(u32::MAX);
    let reasoning = wanted_reasoning.min(cap);
    let answer = wanted_answer.min(cap - reasoning);
    let truncated = u64::from(wanted_reasoning) + u64::from(wanted_answer) > u64::from(cap);
    let (reasoning, answer) = if fault == Some(FaultKind::EmptyResponse) {
        (0, 0)
    } else {
        (reasoning, answer)
    };
    let gaps = (reasoning + answer).saturating_sub(1);
    let itls = (0..gaps).map(|_| draw(&cfg.itl, rng)).collect();
    Plan {
        fault,
        ttft,
        itls,
        reasoning,
        answer,
        truncated: truncated && fault != Some(FaultKind::EmptyResponse),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q) as usize]
    }

    #[test]
    fn distributions_have_the_configured_shape() {
        let mut rng = StdRng::seed_from_u64(1);
        let ms = Duration::from_millis;
        let n = 20_000;

        let u: Vec<f64> = (0..n)
            .map(|_| {
                draw(
                    &Dist::Uniform {
                        min: ms(200),
                        max: ms(400),
                    },
                    &mut rng,
                )
                .as_secs_f64()
            })
            .collect();
        assert!(u.iter().all(|v| (0.2..=0.4).contains(v)));
        assert!((quantile(u, 0.5) - 0.3).abs() < 0.01);

        let l: Vec<f64> = (0..n)
            .map(|_| {
                draw(
                    &Dist::Lognormal {
                        median: ms(300),
                        p99: ms(2000),
                    },
                    &mut rng,
                )
                .as_secs_f64()
            })
            .collect();
        assert!((quantile(l.clone(), 0.5) - 0.3).abs() < 0.02);
        assert!((quantile(l, 0.99) - 2.0).abs() < 0.3);

        let z: Vec<f64> = (0..n)
            .map(|_| {
                draw(
                    &Dist::Normal {
                        mean: ms(10),
                        stddev: ms(50),
                    },
                    &mut rng,
                )
                .as_secs_f64()
            })
            .collect();
        // Clamped at zero: a large share of draws land exactly there.
        assert!(z.iter().all(|v| *v >= 0.0));
        assert!(z.iter().filter(|v| **v == 0.0).count() > n / 3);

        let c: Vec<u32> = (0..n)
            .map(|_| {
                draw(
                    &Dist::Normal {
                        mean: 40,
                        stddev: 5,
                    },
                    &mut rng,
                )
            })
            .collect();
        let mean = c.iter().map(|v| f64::from(*v)).sum::<f64>() / n as f64;
        assert!((mean - 40.0).abs() < 0.2, "{mean}");
    }

    #[test]
    fn plan_caps_output_and_marks_truncation() {
        let mut rng = StdRng::seed_from_u64(2);
        let cfg = SimulatorConfig {
            output_tokens: Dist::Fixed(10),
            reasoning_tokens: 3,
            ..SimulatorConfig::default()
        };
        let p = draw_plan(&cfg, None, true, None, &mut rng);
        assert_eq!((p.reasoning, p.answer, p.truncated), (3, 10, false));
        assert_eq!(p.itls.len(), 12);
        let p = draw_plan(&cfg, Some(13), true, None, &mut rng);
        assert_eq!((p.reasoning, p.answer, p.truncated), (3, 10, false));
        let p = draw_plan(&cfg, Some(5), true, None, &mut rng);
        assert_eq!((p.reasoning, p.answer, p.truncated), (3, 2, true));
        let p = draw_plan(&cfg, Some(2), true, None, &mut rng);
        assert_eq!((p.reasoning, p.answer, p.truncated), (2, 0, true));
        let p = draw_plan(&cfg, Some(4), false, None, &mut rng);
        assert_eq!((p.reasoning, p.answer, p.truncated), (0, 4, true));
    }

    #[test]
    fn faults_follow_their_probabilities_and_first_hit_wins() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut cfg = SimulatorConfig::default();
        assert_eq!(draw_fault(&cfg, &mut rng), None);
        cfg.faults.http_5xx = 1.0;
        cfg.faults.slow_headers = 1.0;
        assert_eq!(draw_fault(&cfg, &mut rng), Some(FaultKind::Http5xx));
        cfg.faults.http_5xx = 0.0;
        cfg.faults.slow_headers = 0.0;
        cfg.faults.rate_limited = 0.25;
        let hits = (0..10_000)
            .filter(|_| draw_fault(&cfg, &mut rng) == Some(FaultKind::RateLimited))
            .count();
        assert!((2200..2800).contains(&hits), "{hits}");
    }

    #[test]
    fn empty_response_plans_no_tokens() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut cfg = SimulatorConfig::default();
        cfg.faults.empty_response = 1.0;
        let p = draw_plan(&cfg, Some(4), true, None, &mut rng);
        assert_eq!((p.total(), p.truncated, p.itls.len()), (0, false, 0));
    }

    #[test]
    fn same_seed_same_plan() {
        let cfg = SimulatorConfig {
            ttft: Dist::Uniform {
                min: Duration::ZERO,
                max: Duration::from_secs(1),
            },
            ..SimulatorConfig::default()
        };
        let a = draw_plan(&cfg, None, true, None, &mut StdRng::seed_from_u64(9));
        let b = draw_plan(&cfg, None, true, None, &mut StdRng::seed_from_u64(9));
        assert_eq!(a, b);
    }
}
