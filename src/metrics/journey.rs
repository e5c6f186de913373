//! Journey families: one set for the whole task (`journey` label) and one per step (`journey`
//! and `step` labels, whose values come only from the config).
//!
//! Steps are observed in families of their own rather than in the single-probe families with an
//! extra label: a step's latency depends on the context the earlier turns built, so the
//! thresholds and baselines of single-request probes (and the alert rules built on them) do not
//! apply to it, and the single-probe series keep the labels existing queries use.

use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Registry};

use super::{buckets, opts, register, MetricsError, SkipReason, NAMESPACE};
use crate::config::Journey;
use crate::journey::JourneyOutcome;
use crate::probe::ProbeResult;

const TASK_LABELS: [&str; 3] = ["target", "model", "journey"];
const STEP_LABELS: [&str; 4] = ["target", "model", "journey", "step"];
const INPUT: &str = "input";
const OUTPUT: &str = "output";

/// The journey families, registered in one registry. Cheap to clone.
#[derive(Clone)]
pub struct JourneyMetrics {
    journeys: IntCounterVec,
    duration: HistogramVec,
    calls: IntCounterVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    success: GaugeVec,
    skipped: IntCounterVec,
    step_requests: IntCounterVec,
    step_ttft: HistogramVec,
    step_itl: HistogramVec,
    step_duration: HistogramVec,
    step_tokens: IntCounterVec,
}

impl std::fmt::Debug for JourneyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JourneyMetrics").finish_non_exhaustive()
    }
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    bounds: &[f64],
    labels: &[&str],
) -> Result<HistogramVec, MetricsError> {
    let o = HistogramOpts::new(name, help)
        .namespace(NAMESPACE)
        .buckets(bounds.to_vec());
    register(registry, name, HistogramVec::new(o, labels))
}

impl JourneyMetrics {
    /// Registers every journey family in `registry`.
    pub fn register(registry: &Registry) -> Result<JourneyMetrics, MetricsError> {
        let with = |extra: &'static str| [TASK_LABELS[0], TASK_LABELS[1], TASK_LABELS[2], extra];
        let step_with = |extra: &'static str| {
            [
                STEP_LABELS[0],
                STEP_LABELS[1],
                STEP_LABELS[2],
                STEP_LABELS[3],
                extra,
            ]
        };
        Ok(JourneyMetrics {
            journeys: register(
                registry,
                "journeys_total",
                IntCounterVec::new(
                    opts(
                        "journeys_total",
                        "Journeys run, by how they ended (result: success, or the failing \
                         step's result) and the failing step (step, empty on success).",
                    ),
                    &[
                        TASK_LABELS[0],
                        TASK_LABELS[1],
                        TASK_LABELS[2],
                        "result",
                        "step",
                    ],
                ),
            )?,
            duration: histogram(
                registry,
                "journey_duration_seconds",
                "Time from a successful journey's first request to the end of its last step's \
                 stream: the steps' request durations plus the think time between them.",
                buckets::REQUEST_DURATION_SECONDS,
                &TASK_LABELS,
            )?,
            calls: register(
                registry,
                "journey_model_calls_total",
                IntCounterVec::new(
                    opts(
                        "journey_model_calls_total",
                        "Model calls made by journeys (a failing journey stops at its failing \
                         step).",
                    ),
                    &TASK_LABELS,
                ),
            )?,
            tokens: register(
                registry,
                "journey_tokens_total",
                IntCounterVec::new(
                    opts(
                        "journey_tokens_total",
                        "Tokens consumed by journeys, all steps summed, by direction.",
                    ),
                    &with("direction"),
                ),
            )?,
            cost: register(
                registry,
                "journey_cost_usd_total",
                CounterVec::new(
                    opts(
                        "journey_cost_usd_total",
                        "Cost of journeys in US dollars, all steps summed, for journeys whose \
                         cost is known.",
                    ),
                    &TASK_LABELS,
                ),
            )?,
            success: register(
                registry,
                "journey_success",
                GaugeVec::new(
                    opts(
                        "journey_success",
                        "Whether the last journey succeeded (1) or failed at some step (0).",
                    ),
                    &TASK_LABELS,
                ),
            )?,
            skipped: register(
                registry,
                "journeys_skipped_total",
                IntCounterVec::new(
                    opts(
                        "journeys_skipped_total",
                        "Scheduled journeys that did not run, by reason (as \
                         inferprobe_probes_skipped_total).",
                    ),
                    &with("reason"),
                ),
            )?,
            step_requests: register(
                registry,
                "journey_step_requests_total",
                IntCounterVec::new(
                    opts(
                        "journey_step_requests_total",
                        "Model calls of journey steps, by step and result.",
                    ),
                    &step_with("result"),
                ),
            )?,
            step_ttft: histogram(
                registry,
                "journey_step_time_to_first_token_seconds",
                "Time to first token of a journey step's request (as \
                 inferprobe_time_to_first_token_seconds).",
                buckets::FIRST_MILESTONE_SECONDS,
                &STEP_LABELS,
            )?,
            step_itl: histogram(
                registry,
                "journey_step_inter_token_latency_seconds",
                "Gaps between output-bearing events of a journey step's stream, one observation \
                 per gap (as inferprobe_inter_token_latency_seconds).",
                buckets::PER_TOKEN_SECONDS,
                &STEP_LABELS,
            )?,
            step_duration: histogram(
                registry,
                "journey_step_request_duration_seconds",
                "Request duration (E2E) of a journey step's completed stream (as \
                 inferprobe_request_duration_seconds).",
                buckets::REQUEST_DURATION_SECONDS,
                &STEP_LABELS,
            )?,
            step_tokens: register(
                registry,
                "journey_step_tokens_total",
                IntCounterVec::new(
                    opts(
                        "journey_step_tokens_total",
                        "Tokens of journey steps, by step and direction: input grows step by \
                         step as the conversation does.",
                    ),
                    &step_with("direction"),
                ),
            )?,
        })
    }

    /// Pre-creates the counter series of a journey at 0 (every result × step, success, calls,
    /// tokens, cost, skips), so that `rate()` and `increase()` see them before their first
    /// occurrence. `journey_success` stays absent until the first run.
    pub fn precreate(&self, target: &str, model: &str, journey: &Journey) {
        let t = [target, model, journey.name.as_str()];
        self.journeys
            .with_label_values(&[t[0], t[1], t[2], ProbeResult::Success.as_str(), ""]);
        for step in &journey.steps {
            for r in ProbeResult::ALL.iter().filter(|r| !r.is_success()) {
                self.journeys
                    .with_label_values(&[t[0], t[1], t[2], r.as_str(), &step.name]);
            }
            for r in ProbeResult::ALL {
                self.step_requests
                    .with_label_values(&[t[0], t[1], t[2], &step.name, r.as_str()]);
            }
            for d in [INPUT, OUTPUT] {
                self.step_tokens
                    .with_label_values(&[t[0], t[1], t[2], &step.name, d]);
            }
        }
        self.calls.with_label_values(&t);
        self.cost.with_label_values(&t);
        for d in [INPUT, OUTPUT] {
            self.tokens.with_label_values(&[t[0], t[1], t[2], d]);
        }
        for r in SkipReason::ALL {
            self.skipped
                .with_label_values(&[t[0], t[1], t[2], r.as_str()]);
        }
    }

    /// Records one journey and its steps.
    pub fn observe(&self, o: &JourneyOutcome) {
        let t = [o.target.as_str(), o.model.as_str(), o.journey.as_str()];
        let step_label = o.failed_step.as_deref().unwrap_or("");
        self.journeys
            .with_label_values(&[t[0], t[1], t[2], o.result.as_str(), step_label])
            .inc();
        if o.result.is_success() {
            self.duration
                .with_label_values(&t)
                .observe(o.duration.as_secs_f64());
        }
        self.calls
            .with_label_values(&t)
            .inc_by(o.model_calls() as u64);
        if let Some(input) = o.input_tokens() {
            self.tokens
                .with_label_values(&[t[0], t[1], t[2], INPUT])
                .inc_by(input);
        }
        self.tokens
            .with_label_values(&[t[0], t[1], t[2], OUTPUT])
            .inc_by(o.output_tokens());
        if let Some(c) = o.cost_usd() {
            self.cost.with_label_values(&t).inc_by(c);
        }
        self.success
            .with_label_values(&t)
            .set(if o.result.is_success() { 1.0 } else { 0.0 });
        for s in &o.steps {
            let l = [t[0], t[1], t[2], s.step.as_str()];
            let so = &s.outcome;
            self.step_requests
                .with_label_values(&[l[0], l[1], l[2], l[3], so.result.as_str()])
                .inc();
            if let Some(d) = so.ttft {
                self.step_ttft
                    .with_label_values(&l)
                    .observe(d.as_secs_f64());
            }
            if !so.inter_token_latencies.is_empty() {
                let h = self.step_itl.with_label_values(&l);
                for gap in &so.inter_token_latencies {
                    h.observe(gap.as_secs_f64());
                }
            }
            if let Some(d) = so.e2e {
                self.step_duration
                    .with_label_values(&l)
                    .observe(d.as_secs_f64());
            }
            if let Some(input) = so.input_tokens {
                self.step_tokens
                    .with_label_values(&[l[0], l[1], l[2], l[3], INPUT])
                    .inc_by(input);
            }
            self.step_tokens
                .with_label_values(&[l[0], l[1], l[2], l[3], OUTPUT])
                .inc_by(so.output_tokens);
        }
    }

    /// Counts a scheduled journey that did not run.
    pub fn skipped(&self, target: &str, model: &str, journey: &str, reason: SkipReason) {
        self.skipped
            .with_label_values(&[target, model, journey, reason.as_str()])
            .inc();
    }

    /// Removes every series of a journey of a (target, model) after a reload removed it or
    /// changed it; `steps` are the step names it had.
    pub fn remove(&self, target: &str, model: &str, journey: &str, steps: &[String]) {
        let t = [target, model, journey];
        let _ = self.journeys.remove_label_values(&[
            t[0],
            t[1],
            t[2],
            ProbeResult::Success.as_str(),
            "",
        ]);
        for step in steps {
            for r in ProbeResult::ALL {
                let _ = self
                    .journeys
                    .remove_label_values(&[t[0], t[1], t[2], r.as_str(), step]);
                let _ =
                    self.step_requests
                        .remove_label_values(&[t[0], t[1], t[2], step, r.as_str()]);
            }
            for d in [INPUT, OUTPUT] {
                let _ = self
                    .step_tokens
                    .remove_label_values(&[t[0], t[1], t[2], step, d]);
            }
            let l = [t[0], t[1], t[2], step.as_str()];
            for h in [&self.step_ttft, &self.step_itl, &self.step_duration] {
                let _ = h.remove_label_values(&l);
            }
        }
        let _ = self.duration.remove_label_values(&t);
        let _ = self.calls.remove_label_values(&t);
        let _ = self.cost.remove_label_values(&t);
        let _ = self.success.remove_label_values(&t);
        for d in [INPUT, OUTPUT] {
            let _ = self.tokens.remove_label_values(&[t[0], t[1], t[2], d]);
        }
        for r in SkipReason::ALL {
            let _ = self
                .skipped
                .remove_label_values(&[t[0], t[1], t[2], r.as_str()]);
        }
    }
}
