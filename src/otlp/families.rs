//! The OpenTelemetry instruments: the GenAI families, inferprobe's own probe and journey
//! families, and the observable GPU and inference-server families read from the collectors'
//! snapshots.

use std::collections::BTreeMap;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use opentelemetry::KeyValue;

use super::semconv::{self, key, TargetAttrs};
use crate::config::otlp::Semconv;
use crate::journey::JourneyOutcome;
use crate::metrics::gpu::{GpuFamily, GpuMetrics};
use crate::metrics::server::ServerMetrics;
use crate::metrics::{buckets, SkipReason};
use crate::probe::ratelimit::Resource;
use crate::probe::Outcome;

/// The OpenTelemetry name and unit of one of inferprobe's Prometheus families: the unit
/// suffix becomes the unit (`_seconds` → `s`, `_bytes` → `By`, `_ratio` → `1`, ...) and
/// `_total` is dropped, so that Prometheus' OTLP translation (which appends the unit's suffix,
/// and `_total` to monotonic sums) gives back the same name. A name without a unit suffix keeps
/// its whole name and gets no unit (cost families: `{USD}`, which adds no suffix).
pub fn otel_name(prometheus: &str) -> (String, &'static str) {
    let (base, counter) = match prometheus.strip_suffix("_total") {
        Some(b) => (b, true),
        None => (prometheus, false),
    };
    const UNITS: [(&str, &str); 8] = [
        ("_bytes_per_second", "By/s"),
        ("_seconds", "s"),
        ("_bytes", "By"),
        ("_ratio", "1"),
        ("_celsius", "Cel"),
        ("_watts", "W"),
        ("_joules", "J"),
        ("_hertz", "Hz"),
    ];
    for (suffix, unit) in UNITS {
        // Prometheus adds `_ratio` for unit `1` to gauges only.
        if unit == "1" && counter {
            continue;
        }
        if let Some(stem) = base.strip_suffix(suffix) {
            return (stem.to_string(), unit);
        }
    }
    if base.ends_with("_usd") {
        return (base.to_string(), "{USD}");
    }
    (base.to_string(), "")
}

fn histogram(m: &Meter, prometheus: &str, help: &'static str, bounds: &[f64]) -> Histogram<f64> {
    let (name, unit) = otel_name(prometheus);
    m.f64_histogram(name)
        .with_unit(unit)
        .with_description(help)
        .with_boundaries(bounds.to_vec())
        .build()
}

fn counter(m: &Meter, prometheus: &str, help: &'static str) -> Counter<u64> {
    let (name, unit) = otel_name(prometheus);
    m.u64_counter(name)
        .with_unit(unit)
        .with_description(help)
        .build()
}

fn counter_f64(m: &Meter, prometheus: &str, help: &'static str) -> Counter<f64> {
    let (name, unit) = otel_name(prometheus);
    m.f64_counter(name)
        .with_unit(unit)
        .with_description(help)
        .build()
}

fn gauge(m: &Meter, prometheus: &str, help: &'static str) -> Gauge<f64> {
    let (name, unit) = otel_name(prometheus);
    m.f64_gauge(name)
        .with_unit(unit)
        .with_description(help)
        .build()
}

/// The GenAI token instruments of one convention version.
enum Tokens {
    /// Current: counters by kind, and per-call histograms.
    Latest {
        input: Counter<u64>,
        output: Counter<u64>,
        cache_read: Counter<u64>,
        reasoning: Counter<u64>,
        per_call_input: Histogram<u64>,
        per_call_output: Histogram<u64>,
    },
    /// v1.41: one histogram by `gen_ai.token.type`.
    V1_41 { usage: Histogram<u64> },
}

/// Every synchronous instrument.
pub(super) struct Instruments {
    duration: Histogram<f64>,
    ttfc: Histogram<f64>,
    tpoc: Histogram<f64>,
    tokens: Tokens,
    ttfb: Histogram<f64>,
    ttfe: Histogram<f64>,
    ttfat: Histogram<f64>,
    tpot: Histogram<f64>,
    rate: Histogram<f64>,
    cost: Histogram<f64>,
    server_duration: Histogram<f64>,
    probes: Counter<u64>,
    probe_tokens: Counter<u64>,
    cost_total: Counter<f64>,
    skipped: Counter<u64>,
    mismatch: Counter<u64>,
    retries: Counter<u64>,
    connections: Counter<u64>,
    success: Gauge<f64>,
    last_probe: Gauge<f64>,
    gpu_cost_rate: Gauge<f64>,
    ratelimit_remaining: Gauge<f64>,
    ratelimit_limit: Gauge<f64>,
    journeys: Counter<u64>,
    journey_duration: Histogram<f64>,
    journey_calls: Counter<u64>,
    journey_tokens: Counter<u64>,
    journey_cost: Counter<f64>,
    journey_success: Gauge<f64>,
    journeys_skipped: Counter<u64>,
    step_requests: Counter<u64>,
    step_ttft: Histogram<f64>,
    step_itl: Histogram<f64>,
    step_duration: Histogram<f64>,
    step_tokens: Counter<u64>,
}

impl Instruments {
    pub(super) fn new(
        m: &Meter,
        semconv: Semconv,
        overrides: &BTreeMap<String, Vec<f64>>,
    ) -> Instruments {
        let names = semconv.names();
        let genai = |name: &'static str, help: &'static str| {
            m.f64_histogram(name)
                .with_unit("s")
                .with_description(help)
                .with_boundaries(semconv::DURATION_BUCKETS.to_vec())
                .build()
        };
        let token_histogram = |name: &'static str, help: &'static str| {
            m.u64_histogram(name)
                .with_unit("{token}")
                .with_description(help)
                .with_boundaries(semconv::TOKEN_BUCKETS.to_vec())
                .build()
        };
        let token_counter = |name: &'static str, help: &'static str| {
            m.u64_counter(name)
                .with_unit("{token}")
                .with_description(help)
                .build()
        };
        let tokens = match semconv {
            Semconv::Latest => Tokens::Latest {
                input: token_counter(
                    semconv::USAGE_INPUT,
                    "Input tokens of probe requests as the server reported them, cached ones included.",
                ),
                output: token_counter(
                    semconv::USAGE_OUTPUT,
                    "Output tokens of probe requests, reasoning included (server usage, else counted chunks).",
                ),
                cache_read: token_counter(
                    semconv::USAGE_CACHE_READ,
                    "Input tokens served from the provider's prompt cache.",
                ),
                reasoning: token_counter(
                    semconv::USAGE_REASONING,
                    "Reasoning tokens among the output tokens.",
                ),
                per_call_input: token_histogram(
                    semconv::OPERATION_INPUT,
                    "Input tokens of one probe request.",
                ),
                per_call_output: token_histogram(
                    semconv::OPERATION_OUTPUT,
                    "Output tokens of one probe request.",
                ),
            },
            Semconv::V1_41 => Tokens::V1_41 {
                usage: token_histogram(
                    semconv::TOKEN_USAGE_V1_41,
                    "Input and output tokens of one probe request.",
                ),
            },
        };
        let ours = |prom: &str, help: &'static str| {
            let short = prom.trim_start_matches("inferprobe_");
            let bounds = overrides
                .get(short)
                .map(Vec::as_slice)
                .or_else(|| crate::metrics::default_buckets(short))
                .unwrap_or(buckets::REQUEST_DURATION_SECONDS);
            histogram(m, prom, help, bounds)
        };
        Instruments {
            duration: genai(
                names.duration,
                "Probe request duration, from just before sending to the end of the stream or the failure.",
            ),
            ttfc: genai(
                names.time_to_first_chunk,
                "Time to the first chunk carrying generated output (inferprobe's TTFT).",
            ),
            tpoc: genai(
                names.time_per_output_chunk,
                "Gap between two chunks carrying generated output, one observation per gap (inferprobe's inter-token latency).",
            ),
            tokens,
            ttfb: ours(
                "inferprobe_time_to_first_byte_seconds",
                "Time to the response headers.",
            ),
            ttfe: ours(
                "inferprobe_time_to_first_event_seconds",
                "Time to the first stream event of any kind.",
            ),
            ttfat: ours(
                "inferprobe_time_to_first_answer_token_seconds",
                "Time to the first answer text, after any reasoning or tool-call output.",
            ),
            tpot: ours(
                "inferprobe_time_per_output_token_seconds",
                "Time from the first to the last output chunk divided by output tokens minus one.",
            ),
            rate: ours(
                "inferprobe_output_tokens_per_second",
                "Output tokens of a completed stream divided by its duration.",
            ),
            cost: ours(
                "inferprobe_request_cost_usd",
                "Cost of one probe request in US dollars.",
            ),
            server_duration: ours(
                "inferprobe_server_reported_duration_seconds",
                "Durations the server reports about a probe request, by phase.",
            ),
            probes: counter(m, "inferprobe_probes_total", "Probes run, by result."),
            probe_tokens: counter(
                m,
                "inferprobe_tokens_total",
                "Tokens consumed by probes, by direction.",
            ),
            cost_total: counter_f64(
                m,
                "inferprobe_cost_usd_total",
                "Cost of probe requests in US dollars.",
            ),
            skipped: counter(
                m,
                "inferprobe_probes_skipped_total",
                "Scheduled probes that did not run, by reason.",
            ),
            mismatch: counter(
                m,
                "inferprobe_token_count_mismatch_total",
                "Probes whose reported output tokens were fewer than the output chunks received.",
            ),
            retries: counter(
                m,
                "inferprobe_probe_retries_total",
                "Probes sent a second time, by reason.",
            ),
            connections: counter(
                m,
                "inferprobe_probe_connections_total",
                "Probes that got a response, by connection (new or reused).",
            ),
            success: gauge(
                m,
                "inferprobe_probe_success",
                "Whether the last probe succeeded (1) or not (0).",
            ),
            last_probe: gauge(
                m,
                "inferprobe_last_probe_timestamp_seconds",
                "Wall-clock start of the last probe, seconds since the Unix epoch.",
            ),
            gpu_cost_rate: gauge(
                m,
                "inferprobe_gpu_cost_usd_per_hour",
                "Hourly cost of the GPUs serving a self-hosted target.",
            ),
            ratelimit_remaining: gauge(
                m,
                "inferprobe_ratelimit_remaining",
                "Quota left in the provider's rate-limit window, by resource.",
            ),
            ratelimit_limit: gauge(
                m,
                "inferprobe_ratelimit_limit",
                "Size of the provider's rate-limit window, by resource.",
            ),
            journeys: counter(m, "inferprobe_journeys_total", "Journeys run, by result and failing step."),
            journey_duration: histogram(
                m,
                "inferprobe_journey_duration_seconds",
                "Task time of a successful journey, think time included.",
                buckets::REQUEST_DURATION_SECONDS,
            ),
            journey_calls: counter(
                m,
                "inferprobe_journey_model_calls_total",
                "Model calls made by journeys.",
            ),
            journey_tokens: counter(
                m,
                "inferprobe_journey_tokens_total",
                "Tokens of journeys, by direction.",
            ),
            journey_cost: counter_f64(
                m,
                "inferprobe_journey_cost_usd_total",
                "Cost of journeys in US dollars.",
            ),
            journey_success: gauge(
                m,
                "inferprobe_journey_success",
                "Whether the last journey succeeded (1) or not (0).",
            ),
            journeys_skipped: counter(
                m,
                "inferprobe_journeys_skipped_total",
                "Scheduled journeys that did not run, by reason.",
            ),
            step_requests: counter(
                m,
                "inferprobe_journey_step_requests_total",
                "Model calls of journey steps, by step and result.",
            ),
            step_ttft: histogram(
                m,
                "inferprobe_journey_step_time_to_first_token_seconds",
                "Time to first token of a journey step.",
                buckets::FIRST_MILESTONE_SECONDS,
            ),
            step_itl: histogram(
                m,
                "inferprobe_journey_step_inter_token_latency_seconds",
                "Inter-token gaps of journey steps.",
                buckets::PER_TOKEN_SECONDS,
            ),
            step_duration: histogram(
                m,
                "inferprobe_journey_step_request_duration_seconds",
                "Duration of a journey step's completed stream.",
                buckets::REQUEST_DURATION_SECONDS,
            ),
            step_tokens: counter(
                m,
                "inferprobe_journey_step_tokens_total",
                "Tokens of journey steps, by step and direction.",
            ),
        }
    }

    /// Records one probe: the same measurements `ProbeMetrics::observe` records.
    pub(super) fn observe(&self, o: &Outcome, attrs: &TargetAttrs) {
        let common = attrs.common(
            &o.target,
            &o.scenario,
            &o.model,
            o.response_model.as_deref(),
        );
        let ok = o.result.is_success();
        let mut with_error = common.clone();
        if !ok {
            with_error.push(KeyValue::new(key::ERROR_TYPE, o.result.as_str()));
        }
        let took = o.e2e.unwrap_or(o.elapsed);
        self.duration.record(took.as_secs_f64(), &with_error);
        if let Some(d) = o.ttft {
            self.ttfc.record(d.as_secs_f64(), &common);
        }
        for gap in &o.inter_token_latencies {
            self.tpoc.record(gap.as_secs_f64(), &common);
        }
        self.record_tokens(o, &common, &with_error);

        let l = [
            KeyValue::new("target", o.target.clone()),
            KeyValue::new("model", o.model.clone()),
            KeyValue::new("scenario", o.scenario.clone()),
        ];
        let seconds = |h: &Histogram<f64>, d: Option<std::time::Duration>| {
            if let Some(d) = d {
                h.record(d.as_secs_f64(), &l);
            }
        };
        seconds(&self.ttfb, o.ttfb);
        seconds(&self.ttfe, o.time_to_first_event);
        seconds(&self.ttfat, o.time_to_first_answer_token);
        seconds(&self.tpot, o.tpot);
        if let Some(rate) = o.recordable_output_rate() {
            self.rate.record(rate, &l);
        }
        for (phase, secs) in &o.server_timings {
            self.server_duration
                .record(*secs, &with(&l, "phase", phase));
        }
        if let Some(cost) = o.recordable_cost() {
            self.cost.record(cost, &l);
            self.cost_total.add(cost, &l);
        }
        self.probes.add(1, &with(&l, "result", o.result.as_str()));
        if let Some(input) = o.input_tokens {
            self.probe_tokens
                .add(input, &with(&l, "direction", "input"));
        }
        self.probe_tokens
            .add(o.output_tokens, &with(&l, "direction", "output"));
        if o.token_count_mismatch() {
            self.mismatch.add(1, &l);
        }
        if let Some(r) = o.connection.retried {
            self.retries.add(1, &with(&l, "reason", r.as_str()));
        }
        if let Some(c) = o.connection.used {
            self.connections.add(1, &with(&l, "connection", c.as_str()));
        }
        self.success.record(if ok { 1.0 } else { 0.0 }, &l);
        self.last_probe
            .record(crate::metrics::unix_seconds(o.started_at), &l);
        for r in Resource::ALL {
            let q = o.rate_limit.quota(r);
            let rl = [
                KeyValue::new("target", o.target.clone()),
                KeyValue::new("model", o.model.clone()),
                KeyValue::new("resource", r.as_str()),
            ];
            if let Some(n) = q.remaining {
                self.ratelimit_remaining.record(n as f64, &rl);
            }
            if let Some(n) = q.limit {
                self.ratelimit_limit.record(n as f64, &rl);
            }
        }
    }

    fn record_tokens(&self, o: &Outcome, common: &[KeyValue], with_error: &[KeyValue]) {
        match &self.tokens {
            Tokens::Latest {
                input,
                output,
                cache_read,
                reasoning,
                per_call_input,
                per_call_output,
            } => {
                let text = with(common, key::TOKEN_MODALITY, "text");
                // Usage is recorded for every call; without a server count it is 0 with
                // modality `unknown`, as the conventions ask.
                match o.input_tokens {
                    Some(n) => {
                        input.add(n, &text);
                        per_call_input.record(n, with_error);
                    }
                    None => input.add(0, &with(common, key::TOKEN_MODALITY, "unknown")),
                }
                output.add(o.output_tokens, &text);
                per_call_output.record(o.output_tokens, with_error);
                if let Some(n) = o.cached_input_tokens {
                    cache_read.add(n, &text);
                }
                if let Some(n) = o.reasoning_tokens {
                    reasoning.add(n, &text);
                }
            }
            Tokens::V1_41 { usage } => {
                if let Some(n) = o.input_tokens {
                    usage.record(n, &with(common, key::TOKEN_TYPE, "input"));
                }
                usage.record(o.output_tokens, &with(common, key::TOKEN_TYPE, "output"));
            }
        }
    }

    /// Records one journey: the same measurements `JourneyMetrics::observe` records.
    pub(super) fn observe_journey(&self, o: &JourneyOutcome) {
        let t = [
            KeyValue::new("target", o.target.clone()),
            KeyValue::new("model", o.model.clone()),
            KeyValue::new("journey", o.journey.clone()),
        ];
        let mut total = with(&t, "result", o.result.as_str());
        total.push(KeyValue::new(
            "step",
            o.failed_step.clone().unwrap_or_default(),
        ));
        self.journeys.add(1, &total);
        if o.result.is_success() {
            self.journey_duration.record(o.duration.as_secs_f64(), &t);
        }
        self.journey_calls.add(o.model_calls() as u64, &t);
        if let Some(n) = o.input_tokens() {
            self.journey_tokens.add(n, &with(&t, "direction", "input"));
        }
        self.journey_tokens
            .add(o.output_tokens(), &with(&t, "direction", "output"));
        if let Some(c) = o.cost_usd() {
            self.journey_cost.add(c, &t);
        }
        self.journey_success
            .record(if o.result.is_success() { 1.0 } else { 0.0 }, &t);
        for s in &o.steps {
            let l = with(&t, "step", &s.step);
            let so = &s.outcome;
            self.step_requests
                .add(1, &with(&l, "result", so.result.as_str()));
            if let Some(d) = so.ttft {
                self.step_ttft.record(d.as_secs_f64(), &l);
            }
            for gap in &so.inter_token_latencies {
                self.step_itl.record(gap.as_secs_f64(), &l);
            }
            if let Some(d) = so.e2e {
                self.step_duration.record(d.as_secs_f64(), &l);
            }
            if let Some(n) = so.input_tokens {
                self.step_tokens.add(n, &with(&l, "direction", "input"));
            }
            self.step_tokens
                .add(so.output_tokens, &with(&l, "direction", "output"));
        }
    }

    pub(super) fn skipped(
        &self,
        target: &str,
        model: &str,
        name: &str,
        journey: bool,
        r: SkipReason,
    ) {
        let attrs = [
            KeyValue::new("target", target.to_string()),
            KeyValue::new("model", model.to_string()),
            KeyValue::new(
                if journey { "journey" } else { "scenario" },
                name.to_string(),
            ),
            KeyValue::new("reason", r.as_str()),
        ];
        if journey {
            self.journeys_skipped.add(1, &attrs);
        } else {
            self.skipped.add(1, &attrs);
        }
    }

    pub(super) fn gpu_cost_rate(&self, target: &str, model: &str, usd_per_hour: f64) {
        if usd_per_hour.is_finite() && usd_per_hour >= 0.0 {
            self.gpu_cost_rate.record(
                usd_per_hour,
                &[
                    KeyValue::new("target", target.to_string()),
                    KeyValue::new("model", model.to_string()),
                ],
            );
        }
    }
}

/// `base` plus one attribute.
fn with(base: &[KeyValue], k: &'static str, v: &str) -> Vec<KeyValue> {
    let mut out = base.to_vec();
    out.push(KeyValue::new(k, v.to_string()));
    out
}

/// Registers the GPU and inference-server families as observable instruments whose callbacks
/// read the collectors' latest snapshots at each export.
pub(super) fn observe_collectors(m: &Meter, gpu: &GpuMetrics, servers: &ServerMetrics) {
    for family in GpuFamily::ALL {
        let (name, unit) = otel_name(family.name());
        let src = gpu.clone();
        let read = move |observe: &dyn Fn(f64, &[KeyValue])| {
            let snap = src.snapshot();
            let Some(points) = snap.families.get(&family) else {
                return;
            };
            let keys = family.label_names();
            for p in points {
                let attrs: Vec<KeyValue> = keys
                    .iter()
                    .zip(&p.labels)
                    .map(|(k, v)| KeyValue::new(*k, v.clone()))
                    .collect();
                observe(p.value, &attrs);
            }
        };
        if family.is_counter() {
            m.f64_observable_counter(name)
                .with_unit(unit)
                .with_description(family.help())
                .with_callback(move |o| read(&|v, a| o.observe(v, a)))
                .build();
        } else {
            m.f64_observable_gauge(name)
                .with_unit(unit)
                .with_description(family.help())
                .with_callback(move |o| read(&|v, a| o.observe(v, a)))
                .build();
        }
    }
    for (prom, help, is_counter, pick) in crate::metrics::server::scalar_families() {
        let (name, unit) = otel_name(prom);
        let src = servers.clone();
        let read = move |observe: &dyn Fn(f64, &[KeyValue])| {
            for s in src.views() {
                let base = [
                    KeyValue::new("server", s.server.clone()),
                    KeyValue::new("kind", s.kind.clone()),
                ];
                for (model, value) in pick(&s) {
                    let mut attrs = base.to_vec();
                    if let Some(model) = model {
                        attrs.push(KeyValue::new("model", model));
                    }
                    observe(value, &attrs);
                }
            }
        };
        if is_counter {
            m.f64_observable_counter(name)
                .with_unit(unit)
                .with_description(help)
                .with_callback(move |o| read(&|v, a| o.observe(v, a)))
                .build();
        } else {
            m.f64_observable_gauge(name)
                .with_unit(unit)
                .with_description(help)
                .with_callback(move |o| read(&|v, a| o.observe(v, a)))
                .build();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus' OTLP name translation (default `UnderscoreEscapingWithSuffixes`), as the
    /// `prometheus/otlptranslator` module v1.0.0 does it for the units used here: dots become
    /// underscores; the unit's word is appended unless the name already ends with it (`s` →
    /// `seconds`, `By` → `bytes`, ..., `X/Y` → `X_per_Y`, anything in braces → nothing); `1` on a
    /// gauge gives `ratio`; a monotonic sum gets `_total`.
    fn prometheus_name(name: &str, unit: &str, monotonic: bool, gauge: bool) -> String {
        fn word(u: &str) -> &str {
            match u {
                "s" => "seconds",
                "By" => "bytes",
                "Cel" => "celsius",
                "W" => "watts",
                "J" => "joules",
                "Hz" => "hertz",
                _ if u.starts_with('{') => "",
                other => other,
            }
        }
        fn per(u: &str) -> &str {
            match u {
                "s" => "second",
                "h" => "hour",
                other => other,
            }
        }
        let mut out = name.replace('.', "_");
        let (main, per_unit) = match unit.split_once('/') {
            Some((m, p)) => (word(m), Some(per(p))),
            None if unit == "1" && gauge => ("ratio", None),
            None if unit == "1" => ("", None),
            None => (word(unit), None),
        };
        if !main.is_empty() && !out.ends_with(&format!("_{main}")) {
            out.push('_');
            out.push_str(main);
        }
        if let Some(p) = per_unit {
            let suffix = format!("per_{p}");
            if !out.ends_with(&suffix) {
                out.push('_');
                out.push_str(&suffix);
            }
        }
        if monotonic {
            out.push_str("_total");
        }
        out
    }

    #[test]
    fn prometheus_translation_gives_back_the_scrape_names() {
        // Every family the OTLP side exports under inferprobe's names.
        let mut names: Vec<(String, bool, bool)> = [
            "inferprobe_time_to_first_byte_seconds",
            "inferprobe_time_to_first_event_seconds",
            "inferprobe_time_to_first_answer_token_seconds",
            "inferprobe_time_per_output_token_seconds",
            "inferprobe_output_tokens_per_second",
            "inferprobe_request_cost_usd",
            "inferprobe_server_reported_duration_seconds",
            "inferprobe_journey_duration_seconds",
            "inferprobe_journey_step_time_to_first_token_seconds",
            "inferprobe_journey_step_inter_token_latency_seconds",
            "inferprobe_journey_step_request_duration_seconds",
        ]
        .iter()
        .map(|n| (n.to_string(), false, false))
        .collect();
        for n in [
            "inferprobe_probes_total",
            "inferprobe_tokens_total",
            "inferprobe_cost_usd_total",
            "inferprobe_probes_skipped_total",
            "inferprobe_token_count_mismatch_total",
            "inferprobe_probe_retries_total",
            "inferprobe_probe_connections_total",
            "inferprobe_journeys_total",
            "inferprobe_journey_model_calls_total",
            "inferprobe_journey_tokens_total",
            "inferprobe_journey_cost_usd_total",
            "inferprobe_journeys_skipped_total",
            "inferprobe_journey_step_requests_total",
            "inferprobe_journey_step_tokens_total",
        ] {
            names.push((n.to_string(), true, false));
        }
        for n in [
            "inferprobe_probe_success",
            "inferprobe_last_probe_timestamp_seconds",
            "inferprobe_gpu_cost_usd_per_hour",
            "inferprobe_ratelimit_remaining",
            "inferprobe_ratelimit_limit",
            "inferprobe_journey_success",
        ] {
            names.push((n.to_string(), false, true));
        }
        for f in GpuFamily::ALL {
            names.push((f.name().to_string(), f.is_counter(), !f.is_counter()));
        }
        for (n, _, counter, _) in crate::metrics::server::scalar_families() {
            names.push((n.to_string(), counter, !counter));
        }
        for (prom, monotonic, gauge) in names {
            let (otel, unit) = otel_name(&prom);
            assert_eq!(
                prometheus_name(&otel, unit, monotonic, gauge),
                prom,
                "{otel} ({unit:?}) does not translate back"
            );
            assert!(otel.len() <= 255 && otel.starts_with("inferprobe_"));
        }
    }

    #[test]
    fn units_come_from_the_suffix() {
        assert_eq!(
            otel_name("inferprobe_time_to_first_byte_seconds"),
            ("inferprobe_time_to_first_byte".to_string(), "s")
        );
        assert_eq!(
            otel_name("inferprobe_gpu_pcie_rx_bytes_per_second"),
            ("inferprobe_gpu_pcie_rx".to_string(), "By/s")
        );
        assert_eq!(
            otel_name("inferprobe_cost_usd_total"),
            ("inferprobe_cost_usd".to_string(), "{USD}")
        );
        assert_eq!(
            otel_name("inferprobe_server_kv_cache_usage_ratio"),
            ("inferprobe_server_kv_cache_usage".to_string(), "1")
        );
        assert_eq!(
            otel_name("inferprobe_probes_total"),
            ("inferprobe_probes".to_string(), "")
        );
    }
}
