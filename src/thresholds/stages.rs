//! Load-test stages normalized across tools, and their classification against SLO targets.
//!
//! A stage is one load level of a run (one concurrency or one request rate). Every latency is
//! in seconds, rounded to the nanosecond so that the same value read from milliseconds or from
//! seconds compares equal.
//!
//! Classification of one stage (`t` a latency target, `1.5 t` its breach line):
//! - **normal**: TTFT p95 ≤ `t_ttft`, ITL p95 ≤ `t_itl` and error rate ≤ `warn`;
//! - **degraded**: some latency p95 in (`t`, `1.5 t`] or the error rate in (`warn`, `breach`],
//!   and nothing beyond;
//! - **breach**: some latency p95 above `1.5 t` or the error rate above `breach`.
//!
//! A metric the tool did not measure (k6 without an ITL trend, GenAI-Perf's missing error
//! count) is left out of the verdict rather than guessed. The safe operating point is the last
//! stage of the leading run of normal stages: a normal stage above a degraded one is noise, not
//! headroom.

use std::fmt;

use super::formats::Format;

/// Which inferprobe histogram a tool's "time to first token" corresponds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstMetric {
    /// First event carrying generated output of any kind (`time_to_first_token`).
    Ttft,
    /// First event of any kind, e.g. a role-only chunk (`time_to_first_event`).
    FirstEvent,
    /// First answer text, reasoning excluded (`time_to_first_answer_token`).
    FirstAnswerToken,
    /// Response headers (`time_to_first_byte`).
    Ttfb,
}

impl FirstMetric {
    /// The inferprobe histogram family (without `_bucket`).
    pub fn family(self) -> &'static str {
        match self {
            FirstMetric::Ttft => "inferprobe_time_to_first_token_seconds",
            FirstMetric::FirstEvent => "inferprobe_time_to_first_event_seconds",
            FirstMetric::FirstAnswerToken => "inferprobe_time_to_first_answer_token_seconds",
            FirstMetric::Ttfb => "inferprobe_time_to_first_byte_seconds",
        }
    }

    /// Short name used in alert names and tables.
    pub fn short(self) -> &'static str {
        match self {
            FirstMetric::Ttft => "TTFT",
            FirstMetric::FirstEvent => "FirstEvent",
            FirstMetric::FirstAnswerToken => "FirstAnswerToken",
            FirstMetric::Ttfb => "TTFB",
        }
    }
}

/// Which inferprobe histogram a tool's "inter-token latency" corresponds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapMetric {
    /// One observation per gap between output events (`inter_token_latency`).
    Itl,
    /// One per-request average (`time_per_output_token`).
    Tpot,
}

impl GapMetric {
    /// The inferprobe histogram family (without `_bucket`).
    pub fn family(self) -> &'static str {
        match self {
            GapMetric::Itl => "inferprobe_inter_token_latency_seconds",
            GapMetric::Tpot => "inferprobe_time_per_output_token_seconds",
        }
    }

    /// Short name used in alert names and tables.
    pub fn short(self) -> &'static str {
        match self {
            GapMetric::Itl => "ITL",
            GapMetric::Tpot => "TPOT",
        }
    }
}

/// Three quantiles of one latency, in seconds; `None` where the tool did not report one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quantiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// How a stage's load is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    /// Requests in flight at once.
    Concurrency,
    /// Requests started per second.
    Rate,
}

impl fmt::Display for LoadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoadKind::Concurrency => "concurrency",
            LoadKind::Rate => "rate",
        })
    }
}

/// One load level of a load test, normalized.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// The file the stage was read from, as given on the command line.
    pub source_file: String,
    /// The tool that wrote it.
    pub format: Format,
    /// Human label, e.g. `concurrency 8` or `rate 4 req/s`.
    pub label: String,
    /// How `load` is expressed.
    pub load_kind: LoadKind,
    /// Concurrency or requests per second.
    pub load: f64,
    /// Time to first token as the tool defines it (see `ttft_definition`).
    pub ttft: Quantiles,
    /// Inter-token latency as the tool defines it (see `itl_definition`).
    pub itl: Quantiles,
    /// End-to-end request latency.
    pub e2e: Quantiles,
    /// Failed requests / all requests, where the tool reports failures.
    pub error_rate: Option<f64>,
    /// All requests of the stage (successful and failed), where reported.
    pub requests: Option<u64>,
    /// The inferprobe family the tool's TTFT corresponds to.
    pub first_metric: FirstMetric,
    /// The tool's own definition of TTFT, in words.
    pub ttft_definition: String,
    /// The inferprobe family the tool's ITL corresponds to.
    pub gap_metric: GapMetric,
    /// The tool's own definition of ITL, in words.
    pub itl_definition: String,
}

/// SLO targets a stage is classified against. Latencies in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slo {
    /// Target for TTFT p95.
    pub ttft_p95: f64,
    /// Target for ITL p95.
    pub itl_p95: f64,
    /// Error rate above which a stage is degraded.
    pub error_rate_warn: f64,
    /// Error rate above which a stage breaches.
    pub error_rate_breach: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Slo {
            ttft_p95: 0.5,
            itl_p95: 0.05,
            error_rate_warn: 0.001,
            error_rate_breach: 0.01,
        }
    }
}

/// Factor on a latency target beyond which a stage breaches.
pub const BREACH_FACTOR: f64 = 1.5;

/// Verdict on one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Every measured metric within target.
    Normal,
    /// Some metric past its target but within the breach line.
    Degraded,
    /// Some metric beyond the breach line.
    Breach,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Normal => "normal",
            Class::Degraded => "degraded",
            Class::Breach => "breach",
        })
    }
}

/// A stage's verdict and the metrics that decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    /// The verdict.
    pub class: Class,
    /// One line per metric past its target, e.g. `TTFT p95 0.9108s > 1.5 × 0.5s`.
    pub reasons: Vec<String>,
}

fn latency_class(value: f64, target: f64) -> Class {
    if value <= target {
        Class::Normal
    } else if value <= target * BREACH_FACTOR {
        Class::Degraded
    } else {
        Class::Breach
    }
}

/// Classifies one stage against `slo` (see the module doc for the rules).
pub fn classify(stage: &Stage, slo: &Slo) -> Classification {
    let mut class = Class::Normal;
    let mut reasons = Vec::new();
    let latencies = [
        (stage.first_metric.short(), stage.ttft.p95, slo.ttft_p95),
        (stage.gap_metric.short(), stage.itl.p95, slo.itl_p95),
    ];
    for (name, value, target) in latencies {
        let Some(v) = value else { continue };
        let c = latency_class(v, target);
        match c {
            Class::Normal => {}
            Class::Degraded => {
                reasons.push(format!("{name} p95 {}s > {}s", fmt_num(v), fmt_num(target)))
            }
            Class::Breach => reasons.push(format!(
                "{name} p95 {}s > {BREACH_FACTOR} × {}s",
                fmt_num(v),
                fmt_num(target)
            )),
        }
        class = class.max(c);
    }
    if let Some(e) = stage.error_rate {
        let c = if e <= slo.error_rate_warn {
            Class::Normal
        } else if e <= slo.error_rate_breach {
            reasons.push(format!(
                "error rate {} > {}",
                fmt_num(e),
                fmt_num(slo.error_rate_warn)
            ));
            Class::Degraded
        } else {
            reasons.push(format!(
                "error rate {} > {}",
                fmt_num(e),
                fmt_num(slo.error_rate_breach)
            ));
            Class::Breach
        };
        class = class.max(c);
    }
    Classification { class, reasons }
}

/// Index of the safe operating point in `classes` (stages sorted by load): the last stage of
/// the leading run of normal stages, or `None` when the lowest load is already not normal.
pub fn safe_point(classes: &[Classification]) -> Option<usize> {
    classes
        .iter()
        .take_while(|c| c.class == Class::Normal)
        .count()
        .checked_sub(1)
}

/// Rounds seconds to the nanosecond, so `452.1 ms` and `0.4521 s` become the same `f64`.
pub fn round_ns(seconds: f64) -> f64 {
    (seconds * 1e9).round() / 1e9
}

/// Formats a number for messages and rule files: shortest form that reads back exactly, after
/// rounding to 9 decimals (no `0.45210000000000006`).
pub fn fmt_num(v: f64) -> String {
    let r = (v * 1e9).round() / 1e9;
    if r == r.trunc() && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(ttft95: Option<f64>, itl95: Option<f64>, err: Option<f64>) -> Stage {
        Stage {
            source_file: "f.json".into(),
            format: Format::Vllm,
            label: "concurrency 1".into(),
            load_kind: LoadKind::Concurrency,
            load: 1.0,
            ttft: Quantiles {
                p50: None,
                p95: ttft95,
                p99: None,
            },
            itl: Quantiles {
                p50: None,
                p95: itl95,
                p99: None,
            },
            e2e: Quantiles::default(),
            error_rate: err,
            requests: None,
            first_metric: FirstMetric::Ttft,
            ttft_definition: String::new(),
            gap_metric: GapMetric::Itl,
            itl_definition: String::new(),
        }
    }

    #[test]
    fn boundaries_are_inclusive_on_the_better_side() {
        let slo = Slo::default();
        assert_eq!(
            classify(&stage(Some(0.5), Some(0.05), Some(0.001)), &slo).class,
            Class::Normal
        );
        assert_eq!(
            classify(&stage(Some(0.5001), Some(0.05), Some(0.0)), &slo).class,
            Class::Degraded
        );
        assert_eq!(
            classify(&stage(Some(0.75), Some(0.01), Some(0.0)), &slo).class,
            Class::Degraded
        );
        assert_eq!(
            classify(&stage(Some(0.7501), Some(0.01), Some(0.0)), &slo).class,
            Class::Breach
        );
        assert_eq!(
            classify(&stage(Some(0.1), Some(0.075), None), &slo).class,
            Class::Degraded
        );
        assert_eq!(
            classify(&stage(Some(0.1), Some(0.08), None), &slo).class,
            Class::Breach
        );
        assert_eq!(
            classify(&stage(Some(0.1), Some(0.01), Some(0.01)), &slo).class,
            Class::Degraded
        );
        assert_eq!(
            classify(&stage(Some(0.1), Some(0.01), Some(0.0101)), &slo).class,
            Class::Breach
        );
    }

    #[test]
    fn unmeasured_metrics_do_not_count_and_reasons_name_the_metric() {
        let slo = Slo::default();
        assert_eq!(
            classify(&stage(None, None, None), &slo).class,
            Class::Normal
        );
        let c = classify(&stage(Some(0.9108), Some(0.06), Some(0.005)), &slo);
        assert_eq!(c.class, Class::Breach);
        assert_eq!(
            c.reasons,
            vec![
                "TTFT p95 0.9108s > 1.5 × 0.5s".to_string(),
                "ITL p95 0.06s > 0.05s".to_string(),
                "error rate 0.005 > 0.001".to_string(),
            ]
        );
    }

    #[test]
    fn safe_point_is_the_end_of_the_leading_normal_run() {
        let c = |class| Classification {
            class,
            reasons: vec![],
        };
        use Class::*;
        assert_eq!(
            safe_point(&[c(Normal), c(Normal), c(Degraded), c(Normal)]),
            Some(1)
        );
        assert_eq!(safe_point(&[c(Normal), c(Normal)]), Some(1));
        assert_eq!(safe_point(&[c(Degraded), c(Normal)]), None);
        assert_eq!(safe_point(&[]), None);
    }

    #[test]
    fn numbers_round_trip_cleanly() {
        assert_eq!(round_ns(452.1 / 1000.0), 0.4521);
        assert_eq!(round_ns(452.1 * 1e-3), 0.4521);
        assert_eq!(fmt_num(0.45210000000000006), "0.4521");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(0.001), "0.001");
    }
}
