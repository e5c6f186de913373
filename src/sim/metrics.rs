//! The simulator's own `/metrics`, named and labelled like vLLM's (V1 engine) so the server
//! scraper can be tested against it. Buckets follow vLLM's.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::capacity::Slots;
use super::wire::FinishReason;

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// Every family the simulator exports, in its own registry.
#[derive(Clone, Debug)]
pub struct SimMetrics {
    registry: Registry,
    running: IntGaugeVec,
    waiting: IntGaugeVec,
    kv_cache: GaugeVec,
    /// `vllm:prompt_tokens_total`.
    pub prompt_tokens: IntCounterVec,
    /// `vllm:generation_tokens_total`.
    pub generation_tokens: IntCounterVec,
    preemptions: IntCounterVec,
    success: IntCounterVec,
    /// `vllm:time_to_first_token_seconds`.
    pub ttft: HistogramVec,
    /// `vllm:inter_token_latency_seconds`.
    pub itl: HistogramVec,
    /// `vllm:e2e_request_latency_seconds`.
    pub e2e: HistogramVec,
}

impl SimMetrics {
    /// Registers every family; `model` pre-creates its series so they exist at zero.
    pub fn new(model: &str) -> Result<SimMetrics, prometheus::Error> {
        let registry = Registry::new();
        let m = ["model_name"];
        let gauge = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(name, help), &m)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h =
                HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), &m)?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let running = gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
        )?;
        let waiting = gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
        )?;
        let kv_cache = GaugeVec::new(
            Opts::new(
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
            ),
            &m,
        )?;
        registry.register(Box::new(kv_cache.clone()))?;
        let metrics = SimMetrics {
            running,
            waiting,
            kv_cache,
            prompt_tokens: counter(
                "vllm:prompt_tokens_total",
                "Number of prefill tokens processed.",
                &m,
            )?,
            generation_tokens: counter(
                "vllm:generation_tokens_total",
                "Number of generation tokens processed.",
                &m,
            )?,
            preemptions: counter(
                "vllm:num_preemptions_total",
                "Cumulative number of preemption from the engine.",
                &m,
            )?,
            success: counter(
                "vllm:request_success_total",
                "Count of successfully processed requests.",
                &["model_name", "finished_reason"],
            )?,
            ttft: histogram(
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                TTFT_BUCKETS,
            )?,
            itl: histogram(
                "vllm:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
                ITL_BUCKETS,
            )?,
            e2e: histogram(
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                E2E_BUCKETS,
            )?,
            registry,
        };
        metrics.touch(model);
        Ok(metrics)
    }

    /// Creates the series of one model name at zero.
    pub fn touch(&self, model: &str) {
        self.prompt_tokens.with_label_values(&[model]);
        self.generation_tokens.with_label_values(&[model]);
        self.preemptions.with_label_values(&[model]);
        for r in [
            FinishReason::Stop,
            FinishReason::Length,
            FinishReason::Abort,
        ] {
            self.success.with_label_values(&[model, r.as_str()]);
        }
        self.ttft.with_label_values(&[model]);
        self.itl.with_label_values(&[model]);
        self.e2e.with_label_values(&[model]);
    }

    /// Counts a finished request.
    pub fn finished(&self, model: &str, reason: FinishReason) {
        self.success
            .with_label_values(&[model, reason.as_str()])
            .inc();
    }

    /// The text exposition, with the gauges read from the slots now.
    pub fn render(&self, model: &str, slots: &Slots) -> String {
        let (running, waiting, limit) = (slots.running(), slots.waiting(), slots.limit());
        // Reset so a renamed model does not leave a stale gauge series behind.
        self.running.reset();
        self.waiting.reset();
        self.kv_cache.reset();
        self.running
            .with_label_values(&[model])
            .set(i64::from(running));
        self.waiting
            .with_label_values(&[model])
            .set(i64::from(waiting));
        let usage = if limit == 0 {
            0.0
        } else {
            (f64::from(running) / f64::from(limit)).min(1.0)
        };
        self.kv_cache.with_label_values(&[model]).set(usage);
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "Encoding the simulator metrics failed.");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vllm_families_with_model_label() {
        let m = SimMetrics::new("sim-llm").unwrap();
        m.prompt_tokens.with_label_values(&["sim-llm"]).inc_by(7);
        m.finished("sim-llm", FinishReason::Length);
        let slots = Slots::new(4);
        let text = m.render("sim-llm", &slots);
        for line in [
            "vllm:num_requests_running{model_name=\"sim-llm\"} 0",
            "vllm:num_requests_waiting{model_name=\"sim-llm\"} 0",
            "vllm:kv_cache_usage_perc{model_name=\"sim-llm\"} 0",
            "vllm:prompt_tokens_total{model_name=\"sim-llm\"} 7",
            "vllm:generation_tokens_total{model_name=\"sim-llm\"} 0",
            "vllm:num_preemptions_total{model_name=\"sim-llm\"} 0",
            "vllm:request_success_total{finished_reason=\"length\",model_name=\"sim-llm\"} 1",
            "vllm:request_success_total{finished_reason=\"stop\",model_name=\"sim-llm\"} 0",
            "vllm:time_to_first_token_seconds_count{model_name=\"sim-llm\"} 0",
            "# TYPE vllm:inter_token_latency_seconds histogram",
            "vllm:e2e_request_latency_seconds_bucket{model_name=\"sim-llm\",le=\"0.3\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
