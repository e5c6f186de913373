//! The result file `inferprobe calibrate` writes (`calibrate.json`) and `inferprobe thresholds`
//! reads back. Latencies are in seconds, measured with the probe engine's own timing definitions.

use serde::{Deserialize, Serialize};

/// Value of [`CalibrateResult::tool`].
pub const TOOL: &str = "inferprobe";
/// Value of [`CalibrateResult::mode`] for closed-loop concurrency stages.
pub const MODE_CONCURRENCY: &str = "concurrency";
/// Value of [`CalibrateResult::mode`] for open-loop request-rate stages.
pub const MODE_RATE: &str = "rate";

/// A whole calibration run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrateResult {
    /// Always `"inferprobe"`.
    pub tool: String,
    /// Version of the inferprobe that wrote the file.
    pub version: String,
    /// Name of the calibrated target.
    pub target: String,
    /// Model name sent to the target.
    pub model: String,
    /// API dialect (`openai-chat`, `openai-completions`, `anthropic-messages`).
    pub dialect: String,
    /// `"concurrency"` (closed loop: `load` is requests in flight) or `"rate"` (open loop:
    /// `load` is requests started per second).
    pub mode: String,
    /// One entry per load level, in the order they ran.
    pub stages: Vec<CalibrateStage>,
    /// The highest load served before queueing set in and within the SLO; `null` when the first
    /// stage already breached or no tested load reached the knee (see `calibrate::knee`).
    pub knee: Option<f64>,
    /// The SLO the stages were judged against.
    pub slo: CalibrateSlo,
}

/// One load level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrateStage {
    /// Concurrency, or requests per second, per [`CalibrateResult::mode`].
    pub load: f64,
    /// Requests started in the measured window (after warm-up), successful or not.
    pub requests: u64,
    /// Requests that did not end in `success` (open loop: launches refused by the in-flight
    /// safety limit count here too).
    pub errors: u64,
    /// Length of the measured window (the hold): requests started in it are counted, and
    /// throughput is taken over it.
    pub duration_seconds: f64,
    /// Time to first token of successful requests.
    pub ttft_seconds: Quantiles,
    /// Inter-token latency of successful requests, one observation per gap.
    pub itl_seconds: Quantiles,
    /// End-to-end duration of successful requests.
    pub e2e_seconds: Quantiles,
    /// Aggregate output rate: tokens that successful requests generated inside the measured
    /// window (each request's tokens spread over its first-token-to-end span), per second.
    pub output_tokens_per_second: f64,
    /// The stage broke the SLO (p95 TTFT, p95 ITL or error rate), or measured no request.
    #[serde(default)]
    pub breach: bool,
}

/// Three percentiles (nearest rank) of one latency, in seconds; `null` without observations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// The SLO a calibration run judged its stages against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrateSlo {
    /// Highest acceptable p95 time to first token, seconds.
    pub ttft_p95_seconds: f64,
    /// Highest acceptable p95 inter-token latency, seconds.
    pub itl_p95_seconds: f64,
    /// Highest acceptable share of failed requests (0–1).
    pub error_rate: f64,
}
