//! Every metric family inferprobe exports: name, help, type, labels and buckets live in this
//! folder, apart from the logic that records into them.
//!
//! This file holds the probe families ([`ProbeMetrics`]) and inferprobe's own families
//! ([`SelfMetrics`]); GPU and inference-server families live in [`gpu`] and [`server`]. Names follow
//! `inferprobe_<what>_<base unit>[_total]` and are linted with `promtool check metrics` in tests.

pub mod buckets;
pub mod gpu;
pub mod journey;
pub mod otlp;
pub mod server;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    CounterVec, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::probe::ratelimit::Resource;
use crate::probe::result::ProbeResult;
use crate::probe::trace::{ConnectionUse, RetryReason};
use crate::probe::Outcome;

pub use buckets::BucketsError;

/// Prefix of every family name (`inferprobe_...`).
pub const NAMESPACE: &str = "inferprobe";

/// Content type of [`encode`]'s output, for the `/metrics` response.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Labels of every probe family, in the order label values are passed.
const PROBE_LABELS: [&str; 3] = ["target", "model", "scenario"];

/// Labels of the rate-limit quota gauges: a quota belongs to the key and model, not a scenario.
const RATELIMIT_LABELS: [&str; 3] = ["target", "model", "resource"];

/// Reason a scheduled probe did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The previous probe of the same target and scenario was still running.
    Overlap,
    /// The global concurrency cap was reached and the probe could not start before its next slot.
    Concurrency,
    /// The target's token budget for the current window was spent.
    TokenBudget,
    /// The target answered its last probe with a rate limit and a time to retry (Retry-After or
    /// a quota reset) that has not yet come.
    RetryAfter,
}

impl SkipReason {
    /// Every value, in the order used for pre-creating series.
    pub const ALL: [SkipReason; 4] = [
        SkipReason::Overlap,
        SkipReason::Concurrency,
        SkipReason::TokenBudget,
        SkipReason::RetryAfter,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Overlap => "overlap",
            SkipReason::Concurrency => "concurrency",
            SkipReason::TokenBudget => "token_budget",
            SkipReason::RetryAfter => "retry_after",
        }
    }
}

/// Token direction, the `direction` label of `inferprobe_tokens_total`.
const DIRECTION_INPUT: &str = "input";
const DIRECTION_OUTPUT: &str = "output";

/// Why metric families could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A bucket override names a family that is not a probe histogram.
    #[error("buckets.{name}: unknown histogram; expected one of: {}", HISTOGRAM_NAMES.join(", "))]
    UnknownHistogram {
        /// The name as given in config.
        name: String,
    },
    /// A bucket override is not a usable bucket list.
    #[error("buckets.{family}: {source}")]
    InvalidBuckets {
        /// Family name without the `inferprobe_` prefix.
        family: String,
        /// What is wrong with the list.
        #[source]
        source: BucketsError,
    },
    /// The registry refused a family (usually a name registered twice).
    #[error("cannot register metric family {family}: {source}")]
    Register {
        /// Full family name.
        family: String,
        /// The registry's reason.
        #[source]
        source: prometheus::Error,
    },
}

/// One histogram family of the probe set: name without namespace, help, default buckets.
struct HistogramSpec {
    name: &'static str,
    help: &'static str,
    buckets: &'static [f64],
}

const TTFT: HistogramSpec = HistogramSpec {
    name: "time_to_first_token_seconds",
    help: "Time from just before the request is sent to the first SSE event carrying generated \
           output (answer, reasoning or tool-call text).",
    buckets: buckets::FIRST_MILESTONE_SECONDS,
};
const TTFAT: HistogramSpec = HistogramSpec {
    name: "time_to_first_answer_token_seconds",
    help: "Time from just before the request is sent to the first SSE event carrying answer text, \
           after any reasoning or tool-call output.",
    buckets: buckets::FIRST_MILESTONE_SECONDS,
};
const TTFE: HistogramSpec = HistogramSpec {
    name: "time_to_first_event_seconds",
    help: "Time from just before the request is sent to the first SSE event of any kind, \
           including role-only and metadata events.",
    buckets: buckets::FIRST_MILESTONE_SECONDS,
};
const ITL: HistogramSpec = HistogramSpec {
    name: "inter_token_latency_seconds",
    help: "Gap between the arrivals of two consecutive SSE events carrying generated output, one \
           observation per gap.",
    buckets: buckets::PER_TOKEN_SECONDS,
};
const TPOT: HistogramSpec = HistogramSpec {
    name: "time_per_output_token_seconds",
    help: "Time from the first to the last output-bearing SSE event divided by the output tokens \
           minus one, for probes with at least two output tokens.",
    buckets: buckets::PER_TOKEN_SECONDS,
};
const DURATION: HistogramSpec = HistogramSpec {
    name: "request_duration_seconds",
    help: "Time from just before the request is sent to the end of the stream, for completed \
           streams only.",
    buckets: buckets::REQUEST_DURATION_SECONDS,
};
const TTFB: HistogramSpec = HistogramSpec {
    name: "time_to_first_byte_seconds",
    help: "Time from just before the request is sent to the arrival of the response headers.",
    buckets: buckets::FIRST_MILESTONE_SECONDS,
};
const RATE: HistogramSpec = HistogramSpec {
    name: "output_tokens_per_second",
    help: "Output tokens of a completed stream divided by its request duration.",
    buckets: buckets::OUTPUT_TOKENS_PER_SECOND,
};
const COST: HistogramSpec = HistogramSpec {
    name: "request_cost_usd",
    help: "Cost of one probe request in US dollars from its token counts and configured prices, \
           for probes whose cost is known.",
    buckets: buckets::REQUEST_COST_USD,
};

const SERVER_DURATION: HistogramSpec = HistogramSpec {
    name: "server_reported_duration_seconds",
    help: "Durations the server itself reports about a probe request, by phase: Ollama's load \
           (model load), prompt_eval, eval (generation) and total; Bedrock's latency \
           (metrics.latencyMs). Observed only for servers that report them.",
    buckets: buckets::REQUEST_DURATION_SECONDS,
};

const HISTOGRAMS: [&HistogramSpec; 10] = [
    &TTFT,
    &TTFAT,
    &TTFE,
    &ITL,
    &TPOT,
    &DURATION,
    &TTFB,
    &RATE,
    &COST,
    &SERVER_DURATION,
];

/// Names (without the `inferprobe_` prefix) of the histograms whose buckets config may override.
pub const HISTOGRAM_NAMES: [&str; 10] = [
    TTFT.name,
    TTFAT.name,
    TTFE.name,
    ITL.name,
    TPOT.name,
    DURATION.name,
    TTFB.name,
    RATE.name,
    COST.name,
    SERVER_DURATION.name,
];

/// Default buckets of a probe histogram, by name without the `inferprobe_` prefix.
pub fn default_buckets(name: &str) -> Option<&'static [f64]> {
    HISTOGRAMS
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.buckets)
}

/// Checks bucket overrides as [`ProbeMetrics::register`] does: every key names a probe histogram
/// and every list is non-empty, finite and strictly increasing.
pub fn validate_bucket_overrides(
    overrides: &BTreeMap<String, Vec<f64>>,
) -> Result<(), MetricsError> {
    for (name, list) in overrides {
        if default_buckets(name).is_none() {
            return Err(MetricsError::UnknownHistogram { name: name.clone() });
        }
        buckets::validate(list).map_err(|source| MetricsError::InvalidBuckets {
            family: name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The probe families, registered in one registry. Cheap to clone (handles to shared families).
///
/// `observe` resolves label values on each call rather than caching children: probes run at most a
/// few times a second in total, so a cache would add invalidation bugs (on `remove`) for no
/// measurable gain.
#[derive(Clone)]
pub struct ProbeMetrics {
    ttft: HistogramVec,
    ttfat: HistogramVec,
    ttfe: HistogramVec,
    itl: HistogramVec,
    tpot: HistogramVec,
    duration: HistogramVec,
    ttfb: HistogramVec,
    rate: HistogramVec,
    cost: HistogramVec,
    server_duration: HistogramVec,
    probes: IntCounterVec,
    tokens: IntCounterVec,
    cost_total: CounterVec,
    skipped: IntCounterVec,
    token_mismatch: IntCounterVec,
    success: GaugeVec,
    last_probe: GaugeVec,
    gpu_cost_rate: GaugeVec,
    ratelimit_remaining: GaugeVec,
    ratelimit_limit: GaugeVec,
    retries: IntCounterVec,
    connections: IntCounterVec,
}

impl std::fmt::Debug for ProbeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeMetrics").finish_non_exhaustive()
    }
}

impl ProbeMetrics {
    /// Registers every probe family in `registry`; `buckets` overrides default buckets per family,
    /// keyed by name without the `inferprobe_` prefix.
    pub fn register(
        registry: &Registry,
        buckets: &BTreeMap<String, Vec<f64>>,
    ) -> Result<ProbeMetrics, MetricsError> {
        validate_bucket_overrides(buckets)?;
        let histogram_with = |spec: &HistogramSpec,
                              labels: &[&str]|
         -> Result<HistogramVec, MetricsError> {
            let bounds = buckets
                .get(spec.name)
                .cloned()
                .unwrap_or_else(|| spec.buckets.to_vec());
            let opts = HistogramOpts::new(spec.name, spec.help)
                .namespace(NAMESPACE)
                .buckets(bounds);
            let vec = HistogramVec::new(opts, labels).map_err(|e| register_error(spec.name, e))?;
            registry
                .register(Box::new(vec.clone()))
                .map_err(|e| register_error(spec.name, e))?;
            Ok(vec)
        };
        let histogram = |spec: &HistogramSpec| histogram_with(spec, &PROBE_LABELS);
        let labels_plus =
            |extra: &'static str| [PROBE_LABELS[0], PROBE_LABELS[1], PROBE_LABELS[2], extra];

        let probes = IntCounterVec::new(
            opts(
                "probes_total",
                "Probes run, by how the probe ended (result).",
            ),
            &labels_plus("result"),
        );
        let tokens = IntCounterVec::new(
            opts(
                "tokens_total",
                "Tokens consumed by probes, by direction: input as reported by the server's usage, \
                 output from usage or else counted events.",
            ),
            &labels_plus("direction"),
        );
        let cost_total = CounterVec::new(
            opts(
                "cost_usd_total",
                "Cost of probe requests in US dollars from their token counts and configured \
                 prices, summed over probes whose cost is known.",
            ),
            &PROBE_LABELS,
        );
        let skipped = IntCounterVec::new(
            opts(
                "probes_skipped_total",
                "Scheduled probes that did not run, by reason: the previous probe still running \
                 (overlap), the global concurrency cap (concurrency), the token budget \
                 (token_budget) or a rate limit's time to retry (retry_after).",
            ),
            &labels_plus("reason"),
        );
        let token_mismatch = IntCounterVec::new(
            opts(
                "token_count_mismatch_total",
                "Probes whose server-reported output token count was lower than the number of \
                 output-bearing events received (every event carries at least one token): a \
                 tokenizer or usage bug on the server.",
            ),
            &PROBE_LABELS,
        );
        let success = GaugeVec::new(
            opts(
                "probe_success",
                "Whether the last probe succeeded (1) or ended in any other result (0).",
            ),
            &PROBE_LABELS,
        );
        let last_probe = GaugeVec::new(
            opts(
                "last_probe_timestamp_seconds",
                "Wall-clock time at which the last probe started, in seconds since the Unix epoch.",
            ),
            &PROBE_LABELS,
        );
        let gpu_cost_rate = GaugeVec::new(
            opts(
                "gpu_cost_usd_per_hour",
                "Hourly cost of the GPUs serving a self-hosted target: gpus × gpu_hour_usd, plus \
                 their measured power × energy_usd_per_kwh when an energy price is configured.",
            ),
            &["target", "model"],
        );

        let ratelimit_remaining = GaugeVec::new(
            opts(
                "ratelimit_remaining",
                "Quota left in the provider's rate-limit window, by resource (requests, tokens, \
                 input_tokens, output_tokens), from the last response that reported it.",
            ),
            &RATELIMIT_LABELS,
        );
        let ratelimit_limit = GaugeVec::new(
            opts(
                "ratelimit_limit",
                "Size of the provider's rate-limit window, by resource (requests, tokens, \
                 input_tokens, output_tokens), from the last response that reported it.",
            ),
            &RATELIMIT_LABELS,
        );
        let retries = IntCounterVec::new(
            opts(
                "probe_retries_total",
                "Probes sent a second time, by reason: stale_connection when the request failed \
                 on a reused connection before any response byte (the server had closed it). \
                 The probe's timings are those of the retry.",
            ),
            &labels_plus("reason"),
        );
        let connections = IntCounterVec::new(
            opts(
                "probe_connections_total",
                "Probes that got a response, by the connection it came on: new (TCP and TLS \
                 set-up inside TTFB and TTFT) or reused from an earlier probe.",
            ),
            &labels_plus("connection"),
        );

        let metrics = ProbeMetrics {
            ttft: histogram(&TTFT)?,
            ttfat: histogram(&TTFAT)?,
            ttfe: histogram(&TTFE)?,
            itl: histogram(&ITL)?,
            tpot: histogram(&TPOT)?,
            duration: histogram(&DURATION)?,
            ttfb: histogram(&TTFB)?,
            rate: histogram(&RATE)?,
            cost: histogram(&COST)?,
            server_duration: histogram_with(&SERVER_DURATION, &labels_plus("phase"))?,
            probes: register(registry, "probes_total", probes)?,
            tokens: register(registry, "tokens_total", tokens)?,
            cost_total: register(registry, "cost_usd_total", cost_total)?,
            skipped: register(registry, "probes_skipped_total", skipped)?,
            token_mismatch: register(registry, "token_count_mismatch_total", token_mismatch)?,
            success: register(registry, "probe_success", success)?,
            last_probe: register(registry, "last_probe_timestamp_seconds", last_probe)?,
            gpu_cost_rate: register(registry, "gpu_cost_usd_per_hour", gpu_cost_rate)?,
            ratelimit_remaining: register(registry, "ratelimit_remaining", ratelimit_remaining)?,
            ratelimit_limit: register(registry, "ratelimit_limit", ratelimit_limit)?,
            retries: register(registry, "probe_retries_total", retries)?,
            connections: register(registry, "probe_connections_total", connections)?,
        };
        Ok(metrics)
    }

    /// Sets the hourly GPU cost of a self-hosted target (`inferprobe_gpu_cost_usd_per_hour`).
    pub fn set_gpu_cost_rate(&self, target: &str, model: &str, usd_per_hour: f64) {
        if usd_per_hour.is_finite() && usd_per_hour >= 0.0 {
            self.gpu_cost_rate
                .with_label_values(&[target, model])
                .set(usd_per_hour);
        }
    }

    /// Pre-creates the counter series of a (target, model, scenario) at 0: every `result` of
    /// `probes_total`, both token directions, cost and every skip reason, so that `rate()` and
    /// `increase()` see a series before its first occurrence.
    ///
    /// `probe_success` and `last_probe_timestamp_seconds` are left absent until the first probe:
    /// a 0 there would read as "failed" and "never probed since 1970" and fire alerts on start-up.
    pub fn precreate(&self, target: &str, model: &str, scenario: &str) {
        for r in ProbeResult::ALL {
            self.probes
                .with_label_values(&[target, model, scenario, r.as_str()]);
        }
        for d in [DIRECTION_INPUT, DIRECTION_OUTPUT] {
            self.tokens.with_label_values(&[target, model, scenario, d]);
        }
        self.cost_total
            .with_label_values(&[target, model, scenario]);
        self.token_mismatch
            .with_label_values(&[target, model, scenario]);
        for r in SkipReason::ALL {
            self.skipped
                .with_label_values(&[target, model, scenario, r.as_str()]);
        }
        for r in RetryReason::ALL {
            self.retries
                .with_label_values(&[target, model, scenario, r.as_str()]);
        }
        for c in ConnectionUse::ALL {
            self.connections
                .with_label_values(&[target, model, scenario, c.as_str()]);
        }
    }

    /// Records one probe outcome. A milestone the probe did not reach is not observed.
    pub fn observe(&self, outcome: &Outcome) {
        let l = [
            outcome.target.as_str(),
            outcome.model.as_str(),
            outcome.scenario.as_str(),
        ];
        let seconds = |vec: &HistogramVec, d: Option<Duration>| {
            if let Some(d) = d {
                vec.with_label_values(&l).observe(d.as_secs_f64());
            }
        };
        seconds(&self.ttfb, outcome.ttfb);
        seconds(&self.ttfe, outcome.time_to_first_event);
        seconds(&self.ttft, outcome.ttft);
        seconds(&self.ttfat, outcome.time_to_first_answer_token);
        seconds(&self.tpot, outcome.tpot);
        seconds(&self.duration, outcome.e2e);
        if !outcome.inter_token_latencies.is_empty() {
            let itl = self.itl.with_label_values(&l);
            for gap in &outcome.inter_token_latencies {
                itl.observe(gap.as_secs_f64());
            }
        }
        if let Some(rate) = outcome.recordable_output_rate() {
            self.rate.with_label_values(&l).observe(rate);
        }
        for (phase, secs) in &outcome.server_timings {
            self.server_duration
                .with_label_values(&[l[0], l[1], l[2], phase])
                .observe(*secs);
        }
        if let Some(cost) = outcome.recordable_cost() {
            self.cost.with_label_values(&l).observe(cost);
            self.cost_total.with_label_values(&l).inc_by(cost);
        }

        let [target, model, scenario] = l;
        self.probes
            .with_label_values(&[target, model, scenario, outcome.result.as_str()])
            .inc();
        if let Some(input) = outcome.input_tokens {
            self.tokens
                .with_label_values(&[target, model, scenario, DIRECTION_INPUT])
                .inc_by(input);
        }
        self.tokens
            .with_label_values(&[target, model, scenario, DIRECTION_OUTPUT])
            .inc_by(outcome.output_tokens);
        if outcome.token_count_mismatch() {
            self.token_mismatch.with_label_values(&l).inc();
        }
        if let Some(r) = outcome.connection.retried {
            self.retries
                .with_label_values(&[target, model, scenario, r.as_str()])
                .inc();
        }
        if let Some(c) = outcome.connection.used {
            self.connections
                .with_label_values(&[target, model, scenario, c.as_str()])
                .inc();
        }
        self.success
            .with_label_values(&l)
            .set(if outcome.result.is_success() {
                1.0
            } else {
                0.0
            });
        self.last_probe
            .with_label_values(&l)
            .set(unix_seconds(outcome.started_at));
        // A quota series appears once a response reported it and keeps its last value: a response
        // without the headers (an error from a proxy in front) says nothing about the quota.
        for r in Resource::ALL {
            let q = outcome.rate_limit.quota(r);
            let rl = [target, model, r.as_str()];
            if let Some(n) = q.remaining {
                self.ratelimit_remaining
                    .with_label_values(&rl)
                    .set(n as f64);
            }
            if let Some(n) = q.limit {
                self.ratelimit_limit.with_label_values(&rl).set(n as f64);
            }
        }
    }

    /// Counts a scheduled probe that did not run.
    pub fn skipped(&self, target: &str, model: &str, scenario: &str, reason: SkipReason) {
        self.skipped
            .with_label_values(&[target, model, scenario, reason.as_str()])
            .inc();
    }

    /// Removes every series of a (target, model, scenario), e.g. after a reload removed the target
    /// or changed its model or scenarios. Series that never existed are ignored.
    pub fn remove(&self, target: &str, model: &str, scenario: &str) {
        let l = [target, model, scenario];
        for vec in [
            &self.ttft,
            &self.ttfat,
            &self.ttfe,
            &self.itl,
            &self.tpot,
            &self.duration,
            &self.ttfb,
            &self.rate,
            &self.cost,
        ] {
            // Err only means the series did not exist, which is what we want.
            let _ = vec.remove_label_values(&l);
        }
        for r in ProbeResult::ALL {
            let _ = self
                .probes
                .remove_label_values(&[target, model, scenario, r.as_str()]);
        }
        for d in [DIRECTION_INPUT, DIRECTION_OUTPUT] {
            let _ = self
                .tokens
                .remove_label_values(&[target, model, scenario, d]);
        }
        for r in SkipReason::ALL {
            let _ = self
                .skipped
                .remove_label_values(&[target, model, scenario, r.as_str()]);
        }
        for r in RetryReason::ALL {
            let _ = self
                .retries
                .remove_label_values(&[target, model, scenario, r.as_str()]);
        }
        for c in ConnectionUse::ALL {
            let _ = self
                .connections
                .remove_label_values(&[target, model, scenario, c.as_str()]);
        }
        for phase in crate::probe::dialect::SERVER_TIMING_PHASES {
            let _ = self
                .server_duration
                .remove_label_values(&[target, model, scenario, phase]);
        }
        let _ = self.cost_total.remove_label_values(&l);
        let _ = self.token_mismatch.remove_label_values(&l);
        let _ = self.success.remove_label_values(&l);
        let _ = self.last_probe.remove_label_values(&l);
        let _ = self.gpu_cost_rate.remove_label_values(&[target, model]);
        for r in Resource::ALL {
            let rl = [target, model, r.as_str()];
            let _ = self.ratelimit_remaining.remove_label_values(&rl);
            let _ = self.ratelimit_limit.remove_label_values(&rl);
        }
    }
}

/// inferprobe's own families: build and configuration state.
#[derive(Clone)]
pub struct SelfMetrics {
    reload_successful: IntGauge,
    reload_success_timestamp: Gauge,
}

impl std::fmt::Debug for SelfMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfMetrics").finish_non_exhaustive()
    }
}

impl SelfMetrics {
    /// Registers the self families in `registry` and sets `inferprobe_build_info` to 1 with the
    /// crate version and git revision as labels.
    ///
    /// Both reload gauges read 0 until the first [`SelfMetrics::config_reloaded`] call, which the
    /// caller makes after the initial config load.
    pub fn register(registry: &Registry) -> Result<SelfMetrics, MetricsError> {
        let build_info = IntGauge::with_opts(
            opts(
                "build_info",
                "A metric with a constant value of 1, labeled by the version and git revision \
                 inferprobe was built from.",
            )
            .const_label("version", crate::VERSION)
            .const_label("revision", crate::REVISION),
        );
        let build_info = register(registry, "build_info", build_info)?;
        build_info.set(1);

        let reload_successful = IntGauge::with_opts(opts(
            "config_last_reload_successful",
            "Whether the last attempt to load the configuration file succeeded (1) or failed (0).",
        ));
        let reload_success_timestamp = Gauge::with_opts(opts(
            "config_last_reload_success_timestamp_seconds",
            "Wall-clock time of the last successful configuration load, in seconds since the Unix \
             epoch.",
        ));
        Ok(SelfMetrics {
            reload_successful: register(
                registry,
                "config_last_reload_successful",
                reload_successful,
            )?,
            reload_success_timestamp: register(
                registry,
                "config_last_reload_success_timestamp_seconds",
                reload_success_timestamp,
            )?,
        })
    }

    /// Records a configuration (re)load attempt at wall-clock time `at`.
    pub fn config_reloaded(&self, success: bool, at: SystemTime) {
        self.reload_successful.set(i64::from(success));
        if success {
            self.reload_success_timestamp.set(unix_seconds(at));
        }
    }
}

/// The web config file's reload state (`--web.config.file`), apart from the daemon config's: a
/// web config that fails to reload must not hide behind a successful daemon config reload.
#[derive(Clone)]
pub struct WebConfigMetrics {
    reload_successful: IntGauge,
}

impl std::fmt::Debug for WebConfigMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfigMetrics").finish_non_exhaustive()
    }
}

impl WebConfigMetrics {
    /// Registers `inferprobe_web_config_last_reload_successful` in `registry`, set to `ok`.
    pub fn register(registry: &Registry, ok: bool) -> Result<WebConfigMetrics, MetricsError> {
        let g = IntGauge::with_opts(opts(
            "web_config_last_reload_successful",
            "Whether the last attempt to load the web config file (--web.config.file) succeeded \
             (1) or failed (0); 1 when there is no web config file.",
        ));
        let m = WebConfigMetrics {
            reload_successful: register(registry, "web_config_last_reload_successful", g)?,
        };
        m.reloaded(ok);
        Ok(m)
    }

    /// Records a web config reload attempt.
    pub fn reloaded(&self, success: bool) {
        self.reload_successful.set(i64::from(success));
    }
}

/// The descriptor of a family built from a snapshot at scrape time. The names and help are
/// constants checked by the tests; a failure here is a programming error and only drops the
/// descriptor.
pub(crate) fn snapshot_desc(
    name: &str,
    help: &str,
    labels: &[&str],
) -> Option<prometheus::core::Desc> {
    let labels = labels.iter().map(|l| l.to_string()).collect();
    prometheus::core::Desc::new(
        name.to_string(),
        help.to_string(),
        labels,
        std::collections::HashMap::new(),
    )
    .ok()
}

/// Label pairs sorted by name, as the `prometheus` crate's own vectors write them (for the
/// families built from snapshots at scrape time).
pub(crate) fn sorted_labels(mut pairs: Vec<(&str, &str)>) -> Vec<prometheus::proto::LabelPair> {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .into_iter()
        .map(|(k, v)| {
            let mut lp = prometheus::proto::LabelPair::default();
            lp.set_name(k.to_string());
            lp.set_value(v.to_string());
            lp
        })
        .collect()
}

/// One gauge or counter series with these labels.
pub(crate) fn scalar_metric(
    labels: Vec<prometheus::proto::LabelPair>,
    value: f64,
    counter: bool,
) -> prometheus::proto::Metric {
    let mut m = prometheus::proto::Metric::default();
    m.set_label(labels);
    if counter {
        let mut c = prometheus::proto::Counter::default();
        c.set_value(value);
        m.set_counter(c);
    } else {
        let mut g = prometheus::proto::Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    }
    m
}

/// Encodes every family of `registry` in the Prometheus text format (0.0.4).
///
/// A family the encoder rejects is skipped with a warning rather than failing the whole scrape.
pub fn encode(registry: &Registry) -> String {
    let encoder = TextEncoder::new();
    let mut out = String::new();
    for family in registry.gather() {
        let mut buf = String::new();
        match encoder.encode_utf8(std::slice::from_ref(&family), &mut buf) {
            Ok(()) => out.push_str(&buf),
            Err(e) => {
                tracing::warn!(family = family.name(), error = %e, "Cannot encode metric family.")
            }
        }
    }
    out
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

fn register_error(name: &str, source: prometheus::Error) -> MetricsError {
    MetricsError::Register {
        family: format!("{NAMESPACE}_{name}"),
        source,
    }
}

/// Registers a freshly built collector, mapping both construction and registration errors.
fn register<C>(
    registry: &Registry,
    name: &str,
    collector: prometheus::Result<C>,
) -> Result<C, MetricsError>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    let collector = collector.map_err(|e| register_error(name, e))?;
    registry
        .register(Box::new(collector.clone()))
        .map_err(|e| register_error(name, e))?;
    Ok(collector)
}

pub(crate) fn unix_seconds(t: SystemTime) -> f64 {
    // A clock before 1970 is a broken clock; 0 is the conventional "unknown".
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::trace::TokenSource;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A completed, successful probe with every field set (see
    /// [`crate::probe::trace::tests_support::outcome`]).
    fn success(target: &str) -> Outcome {
        Outcome {
            target: target.to_string(),
            ..crate::probe::trace::tests_support::outcome()
        }
    }

    /// A probe that timed out waiting for the first token: headers arrived, nothing else.
    fn failed(target: &str) -> Outcome {
        Outcome {
            result: ProbeResult::TimeoutFirstToken,
            error: Some("no output within 5s".to_string()),
            started_at: UNIX_EPOCH + Duration::from_secs(1_700_000_060),
            started: std::time::Instant::now(),
            time_to_first_event: None,
            ttft: None,
            time_to_first_answer_token: None,
            inter_token_latencies: Vec::new(),
            tpot: None,
            e2e: None,
            elapsed: ms(5000),
            output_tokens_per_second: None,
            input_tokens: None,
            cached_input_tokens: None,
            reasoning_tokens: None,
            output_tokens: 0,
            token_source: TokenSource::CountedEvents,
            output_events: 0,
            cost_usd: None,
            response_model: None,
            finish_reason: None,
            answer: String::new(),
            tool_calls: Vec::new(),
            events: Vec::new(),
            connection: Default::default(),
            ..success(target)
        }
    }

    fn setup() -> (Registry, ProbeMetrics) {
        let registry = Registry::new();
        let metrics = ProbeMetrics::register(&registry, &BTreeMap::new()).expect("register");
        (registry, metrics)
    }

    #[track_caller]
    fn assert_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line `{line}` in:\n{text}"
        );
    }

    #[track_caller]
    fn assert_no_prefix(text: &str, prefix: &str) {
        let found: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
        assert!(found.is_empty(), "unexpected lines: {found:#?}");
    }

    const L: &str = r#"model="m",scenario="s",target="t""#;

    #[test]
    fn observes_a_successful_probe() {
        let (registry, metrics) = setup();
        metrics.observe(&success("t"));
        let text = encode(&registry);

        assert_line(
            &text,
            r#"inferprobe_probes_total{model="m",result="success",scenario="s",target="t"} 1"#,
        );
        for (name, sum) in [
            ("time_to_first_byte_seconds", "0.125"),
            ("time_to_first_event_seconds", "0.25"),
            ("time_to_first_token_seconds", "0.5"),
            ("time_to_first_answer_token_seconds", "0.75"),
            ("time_per_output_token_seconds", "0.125"),
            ("request_duration_seconds", "1.5"),
            ("output_tokens_per_second", "2.5"),
            ("request_cost_usd", "0.25"),
        ] {
            assert_line(&text, &format!("inferprobe_{name}_count{{{L}}} 1"));
            assert_line(&text, &format!("inferprobe_{name}_sum{{{L}}} {sum}"));
        }
        // Three gaps: three observations.
        assert_line(
            &text,
            &format!("inferprobe_inter_token_latency_seconds_count{{{L}}} 3"),
        );
        assert_line(
            &text,
            &format!("inferprobe_inter_token_latency_seconds_sum{{{L}}} 0.4375"),
        );
        assert_line(
            &text,
            &format!(r#"inferprobe_inter_token_latency_seconds_bucket{{{L},le="0.1"}} 1"#),
        );
        assert_line(
            &text,
            &format!(r#"inferprobe_inter_token_latency_seconds_bucket{{{L},le="0.15"}} 2"#),
        );
        assert_line(
            &text,
            &format!(r#"inferprobe_inter_token_latency_seconds_bucket{{{L},le="0.3"}} 3"#),
        );
        assert_line(
            &text,
            r#"inferprobe_tokens_total{direction="input",model="m",scenario="s",target="t"} 12"#,
        );
        assert_line(
            &text,
            r#"inferprobe_tokens_total{direction="output",model="m",scenario="s",target="t"} 4"#,
        );
        assert_line(&text, &format!("inferprobe_cost_usd_total{{{L}}} 0.25"));
        assert_line(&text, &format!("inferprobe_probe_success{{{L}}} 1"));
        assert_line(
            &text,
            &format!("inferprobe_last_probe_timestamp_seconds{{{L}}} 1700000000"),
        );
    }

    #[test]
    fn failed_probe_observes_only_reached_milestones() {
        let (registry, metrics) = setup();
        metrics.observe(&success("t"));
        metrics.observe(&failed("t"));
        let text = encode(&registry);

        assert_line(
            &text,
            r#"inferprobe_probes_total{model="m",result="success",scenario="s",target="t"} 1"#,
        );
        assert_line(
            &text,
            r#"inferprobe_probes_total{model="m",result="timeout_first_token",scenario="s",target="t"} 1"#,
        );
        assert_line(&text, &format!("inferprobe_probe_success{{{L}}} 0"));
        assert_line(
            &text,
            &format!("inferprobe_last_probe_timestamp_seconds{{{L}}} 1700000060"),
        );
        // Headers arrived: TTFB observed twice. Nothing else was reached by the failed probe.
        assert_line(
            &text,
            &format!("inferprobe_time_to_first_byte_seconds_count{{{L}}} 2"),
        );
        for name in [
            "time_to_first_event_seconds",
            "time_to_first_token_seconds",
            "time_to_first_answer_token_seconds",
            "time_per_output_token_seconds",
            "request_duration_seconds",
            "output_tokens_per_second",
            "request_cost_usd",
        ] {
            assert_line(&text, &format!("inferprobe_{name}_count{{{L}}} 1"));
        }
        assert_line(
            &text,
            &format!("inferprobe_inter_token_latency_seconds_count{{{L}}} 3"),
        );
        // Input tokens not reported and no cost: counters unchanged.
        assert_line(
            &text,
            r#"inferprobe_tokens_total{direction="input",model="m",scenario="s",target="t"} 12"#,
        );
        assert_line(&text, &format!("inferprobe_cost_usd_total{{{L}}} 0.25"));
    }

    #[test]
    fn failed_probe_alone_creates_no_unreached_histograms() {
        let (registry, metrics) = setup();
        metrics.observe(&failed("t"));
        let text = encode(&registry);
        assert_line(
            &text,
            &format!("inferprobe_time_to_first_byte_seconds_count{{{L}}} 1"),
        );
        for name in [
            "time_to_first_event_seconds",
            "time_to_first_token_seconds",
            "time_to_first_answer_token_seconds",
            "inter_token_latency_seconds",
            "time_per_output_token_seconds",
            "request_duration_seconds",
            "output_tokens_per_second",
            "request_cost_usd",
        ] {
            assert_no_prefix(&text, &format!("inferprobe_{name}"));
        }
        assert_no_prefix(&text, r#"inferprobe_tokens_total{direction="input""#);
        assert_line(
            &text,
            r#"inferprobe_tokens_total{direction="output",model="m",scenario="s",target="t"} 0"#,
        );
    }

    #[test]
    fn bad_numbers_are_not_recorded() {
        let (registry, metrics) = setup();
        metrics.observe(&Outcome {
            cost_usd: Some(-1.0),
            output_tokens_per_second: Some(f64::NAN),
            ..success("t")
        });
        let text = encode(&registry);
        assert_no_prefix(&text, "inferprobe_request_cost_usd");
        assert_no_prefix(&text, "inferprobe_cost_usd_total");
        assert_no_prefix(&text, "inferprobe_output_tokens_per_second");
    }

    #[test]
    fn token_count_mismatch_counts_reports_below_the_event_count() {
        let (registry, metrics) = setup();
        metrics.precreate("t", "m", "s");
        let line = |n: u64| format!("inferprobe_token_count_mismatch_total{{{L}}} {n}");
        // 4 reported for 4 events, and 9 reported for 4 events (packed events): no mismatch.
        metrics.observe(&success("t"));
        metrics.observe(&Outcome {
            output_tokens: 9,
            ..success("t")
        });
        // Counted events cannot disagree with themselves.
        metrics.observe(&failed("t"));
        assert_line(&encode(&registry), &line(0));
        // 3 reported for 4 events, whatever field reported it.
        for source in [TokenSource::Usage, TokenSource::Timings] {
            metrics.observe(&Outcome {
                output_tokens: 3,
                token_source: source,
                ..success("t")
            });
        }
        let text = encode(&registry);
        assert_line(&text, &line(2));
        // The reported count is what goes into the token counter.
        assert_line(
            &text,
            r#"inferprobe_tokens_total{direction="output",model="m",scenario="s",target="t"} 19"#,
        );
    }

    #[test]
    fn precreate_makes_every_counter_series_at_zero() {
        let (registry, metrics) = setup();
        metrics.precreate("t", "m", "s");
        let text = encode(&registry);
        for r in ProbeResult::ALL {
            assert_line(
                &text,
                &format!(
                    r#"inferprobe_probes_total{{model="m",result="{}",scenario="s",target="t"}} 0"#,
                    r.as_str()
                ),
            );
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("inferprobe_probes_total{"))
                .count(),
            14
        );
        for d in ["input", "output"] {
            assert_line(
                &text,
                &format!(
                    r#"inferprobe_tokens_total{{direction="{d}",model="m",scenario="s",target="t"}} 0"#
                ),
            );
        }
        assert_line(&text, &format!("inferprobe_cost_usd_total{{{L}}} 0"));
        assert_line(
            &text,
            &format!("inferprobe_token_count_mismatch_total{{{L}}} 0"),
        );
        for r in ["overlap", "concurrency", "token_budget"] {
            assert_line(
                &text,
                &format!(
                    r#"inferprobe_probes_skipped_total{{model="m",reason="{r}",scenario="s",target="t"}} 0"#
                ),
            );
        }
        // Gauges stay absent until the first probe so that start-up reads as "no data", not "down".
        assert_no_prefix(&text, "inferprobe_probe_success{");
        assert_no_prefix(&text, "inferprobe_last_probe_timestamp_seconds{");
    }

    #[test]
    fn skipped_counts_by_reason() {
        let (registry, metrics) = setup();
        metrics.precreate("t", "m", "s");
        metrics.skipped("t", "m", "s", SkipReason::Overlap);
        metrics.skipped("t", "m", "s", SkipReason::Overlap);
        metrics.skipped("t", "m", "s", SkipReason::TokenBudget);
        metrics.skipped("t", "m", "s", SkipReason::RetryAfter);
        let text = encode(&registry);
        assert_line(
            &text,
            r#"inferprobe_probes_skipped_total{model="m",reason="retry_after",scenario="s",target="t"} 1"#,
        );
        assert_line(
            &text,
            r#"inferprobe_probes_skipped_total{model="m",reason="overlap",scenario="s",target="t"} 2"#,
        );
        assert_line(
            &text,
            r#"inferprobe_probes_skipped_total{model="m",reason="concurrency",scenario="s",target="t"} 0"#,
        );
        assert_line(
            &text,
            r#"inferprobe_probes_skipped_total{model="m",reason="token_budget",scenario="s",target="t"} 1"#,
        );
    }

    #[test]
    fn remove_drops_every_series_of_the_target_only() {
        let (registry, metrics) = setup();
        for t in ["t", "keep"] {
            metrics.precreate(t, "m", "s");
            metrics.observe(&success(t));
            metrics.observe(&failed(t));
            metrics.skipped(t, "m", "s", SkipReason::Concurrency);
        }
        metrics.remove("t", "m", "s");
        // Removing twice, or something never created, is harmless.
        metrics.remove("t", "m", "s");
        metrics.remove("never", "m", "s");
        let text = encode(&registry);
        assert!(!text.contains(r#"target="t""#), "left over:\n{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("inferprobe_probes_total{"))
                .count(),
            14
        );
        assert_line(
            &text,
            r#"inferprobe_probe_success{model="m",scenario="s",target="keep"} 0"#,
        );
    }

    #[test]
    fn bucket_override_is_applied() {
        let registry = Registry::new();
        let overrides = BTreeMap::from([(
            "time_to_first_token_seconds".to_string(),
            vec![0.5, 1.0, 4.0],
        )]);
        let metrics = ProbeMetrics::register(&registry, &overrides).expect("register");
        metrics.observe(&success("t"));
        let text = encode(&registry);
        let les: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("inferprobe_time_to_first_token_seconds_bucket{"))
            .collect();
        assert_eq!(
            les,
            [
                format!(r#"inferprobe_time_to_first_token_seconds_bucket{{{L},le="0.5"}} 1"#),
                format!(r#"inferprobe_time_to_first_token_seconds_bucket{{{L},le="1"}} 1"#),
                format!(r#"inferprobe_time_to_first_token_seconds_bucket{{{L},le="4"}} 1"#),
                format!(r#"inferprobe_time_to_first_token_seconds_bucket{{{L},le="+Inf"}} 1"#),
            ]
        );
        // Other families keep their defaults.
        let ttfb_buckets = text
            .lines()
            .filter(|l| l.starts_with("inferprobe_time_to_first_byte_seconds_bucket{"))
            .count();
        assert_eq!(ttfb_buckets, buckets::FIRST_MILESTONE_SECONDS.len() + 1);
    }

    #[test]
    fn bad_bucket_overrides_name_the_family() {
        let unknown = BTreeMap::from([("time_to_first_token".to_string(), vec![1.0])]);
        let err = ProbeMetrics::register(&Registry::new(), &unknown).unwrap_err();
        assert!(
            matches!(&err, MetricsError::UnknownHistogram { name } if name == "time_to_first_token")
        );
        assert!(err
            .to_string()
            .starts_with("buckets.time_to_first_token: unknown histogram; expected one of: time_to_first_token_seconds, "));

        let decreasing =
            BTreeMap::from([("inter_token_latency_seconds".to_string(), vec![0.1, 0.05])]);
        let err = ProbeMetrics::register(&Registry::new(), &decreasing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "buckets.inter_token_latency_seconds: bucket bounds must be strictly increasing: 0.1 is followed by 0.05"
        );

        let empty = BTreeMap::from([("request_cost_usd".to_string(), Vec::new())]);
        let err = ProbeMetrics::register(&Registry::new(), &empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            "buckets.request_cost_usd: bucket list is empty"
        );
    }

    #[test]
    fn registering_twice_in_one_registry_fails() {
        let (registry, _metrics) = setup();
        let err = ProbeMetrics::register(&registry, &BTreeMap::new()).unwrap_err();
        assert!(matches!(
            &err,
            MetricsError::Register { family, .. } if family == "inferprobe_time_to_first_token_seconds"
        ));
    }

    #[test]
    fn every_histogram_name_has_defaults() {
        for name in HISTOGRAM_NAMES {
            assert!(default_buckets(name).is_some(), "{name}");
        }
        assert_eq!(default_buckets("nope"), None);
    }

    #[test]
    fn self_metrics() {
        let registry = Registry::new();
        let metrics = SelfMetrics::register(&registry).expect("register");
        let text = encode(&registry);
        assert_line(
            &text,
            &format!(
                r#"inferprobe_build_info{{revision="{}",version="{}"}} 1"#,
                crate::REVISION,
                crate::VERSION
            ),
        );
        assert_line(&text, "inferprobe_config_last_reload_successful 0");

        metrics.config_reloaded(true, UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
        let text = encode(&registry);
        assert_line(&text, "inferprobe_config_last_reload_successful 1");
        assert_line(
            &text,
            "inferprobe_config_last_reload_success_timestamp_seconds 1700000000.5",
        );

        // A failed reload keeps the time of the last success.
        metrics.config_reloaded(false, UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let text = encode(&registry);
        assert_line(&text, "inferprobe_config_last_reload_successful 0");
        assert_line(
            &text,
            "inferprobe_config_last_reload_success_timestamp_seconds 1700000000.5",
        );
    }

    #[test]
    fn skip_reason_labels() {
        let labels: Vec<&str> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            ["overlap", "concurrency", "token_budget", "retry_after"]
        );
    }

    #[test]
    fn quota_gauges_appear_once_reported_and_keep_their_last_value() {
        use crate::probe::ratelimit::{Quota, RateLimitInfo};
        let (registry, metrics) = setup();
        metrics.precreate("t", "m", "s");
        metrics.observe(&success("t"));
        let text = encode(&registry);
        assert_no_prefix(&text, "inferprobe_ratelimit_remaining");
        assert_no_prefix(&text, "inferprobe_ratelimit_limit");

        let reported = Outcome {
            rate_limit: RateLimitInfo {
                requests: Quota {
                    limit: Some(60),
                    remaining: Some(59),
                    reset: None,
                },
                output_tokens: Quota {
                    limit: None,
                    remaining: Some(15_000),
                    reset: None,
                },
                ..RateLimitInfo::default()
            },
            ..success("t")
        };
        metrics.observe(&reported);
        // A later response without the headers leaves the values alone.
        metrics.observe(&failed("t"));
        let text = encode(&registry);
        assert_line(
            &text,
            r#"inferprobe_ratelimit_remaining{model="m",resource="requests",target="t"} 59"#,
        );
        assert_line(
            &text,
            r#"inferprobe_ratelimit_remaining{model="m",resource="output_tokens",target="t"} 15000"#,
        );
        assert_line(
            &text,
            r#"inferprobe_ratelimit_limit{model="m",resource="requests",target="t"} 60"#,
        );
        assert!(
            !text.contains(r#"resource="tokens""#) && !text.contains(r#"resource="input_tokens""#),
            "{text}"
        );
        assert!(!text.contains(r#"inferprobe_ratelimit_limit{model="m",resource="output_tokens""#));

        metrics.remove("t", "m", "s");
        let text = encode(&registry);
        assert_no_prefix(&text, "inferprobe_ratelimit_");
    }
}
