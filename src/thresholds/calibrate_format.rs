//! The result file `inferprobe calibrate` writes, and `inferprobe thresholds` reads back.
//!
//! One JSON object per run; latencies in seconds, measured with inferprobe's own timing
//! definitions (TTFT: first event carrying generated output; ITL: one value per gap between
//! output events; E2E: request start to the end of the stream). Unknown fields are accepted so
//! that a newer `calibrate` can add fields without breaking an older `thresholds`.

use serde::{Deserialize, Serialize};

/// Value of [`CalibrateResult::tool`].
pub const TOOL: &str = "inferprobe";

/// A whole calibration run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrateResult {
    /// Always `"inferprobe"` ([`TOOL`]); how the format is recognized.
    pub tool: String,
    /// Version of the inferprobe that wrote the file.
    pub version: String,
    /// Name of the target that was calibrated.
    pub target: String,
    /// Model name sent to the target.
    pub model: String,
    /// API dialect used (`openai-chat`, `openai-completions`, `anthropic-messages`).
    pub dialect: String,
    /// Whether `stages[].load` is a concurrency or a request rate.
    pub mode: LoadMode,
    /// One entry per load level, in the order they ran.
    pub stages: Vec<CalibrateStage>,
    /// Load at which latency started to climb steeply, if one was found.
    #[serde(default)]
    pub knee: Option<f64>,
    /// SLO targets the run was judged against.
    pub slo: CalibrateSlo,
}

/// How [`CalibrateStage::load`] is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Requests in flight at once.
    Concurrency,
    /// Requests started per second.
    Rate,
}

/// One load level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrateStage {
    /// Concurrency, or requests per second, per [`CalibrateResult::mode`].
    pub load: f64,
    /// Requests started in the stage (successful and failed).
    pub requests: u64,
    /// Requests that did not end in `success`.
    pub errors: u64,
    /// Wall-clock length of the stage.
    pub duration_seconds: f64,
    /// Time to first token of successful requests.
    pub ttft_seconds: Percentiles,
    /// Inter-token latency, one observation per gap.
    pub itl_seconds: Percentiles,
    /// End-to-end request duration of successful requests.
    pub e2e_seconds: Percentiles,
    /// Output tokens per second over the stage, all requests together.
    pub output_tokens_per_second: f64,
}

/// Three percentiles of one latency, in seconds; `null` when no request of the stage succeeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// SLO targets of a calibration run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrateSlo {
    /// Target for TTFT p95, seconds.
    pub ttft_p95_seconds: f64,
    /// Target for ITL p95, seconds.
    pub itl_p95_seconds: f64,
    /// Error rate above which a stage is degraded.
    pub error_rate_warn: f64,
    /// Error rate above which a stage breaches.
    pub error_rate_breach: f64,
}
