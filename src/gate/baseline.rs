//! What the candidate is compared with, and the gate's own result file (which can be the next
//! baseline).
//!
//! A baseline is either a *sample* (the probes of a live reference target run interleaved with
//! the candidate, or the raw probes an earlier gate wrote), resampled like the candidate, or a
//! set of *point values* (the summary of an `inferprobe calibrate` result or another load-test
//! tool's result file, read by the `thresholds` importers), which are taken as exact.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::criteria::Metric;
use crate::probe::Outcome;
use crate::thresholds::stages::{FirstMetric, GapMetric};
use crate::thresholds::{self, LoadKind, Stage};

/// The `format` of a gate result file.
pub const FORMAT: &str = "inferprobe-gate/1";
/// Most inter-token gaps kept per probe in a result file.
pub const MAX_GAPS_PER_PROBE: usize = 1024;
/// Largest baseline file read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// What one probe measured, as kept in a result file. Seconds; `null` for unreached phases.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSample {
    /// Scenario name.
    pub scenario: String,
    /// The `result` label value (`success`, `http_5xx`, ...).
    pub result: String,
    /// Time to first token.
    #[serde(default)]
    pub ttft: Option<f64>,
    /// Time per output token.
    #[serde(default)]
    pub tpot: Option<f64>,
    /// End to end.
    #[serde(default)]
    pub e2e: Option<f64>,
    /// Output tokens per second of E2E.
    #[serde(default)]
    pub output_rate: Option<f64>,
    /// Cost of the request, USD, when priced.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Inter-token gaps (at most [`MAX_GAPS_PER_PROBE`]).
    #[serde(default)]
    pub itl: Vec<f64>,
}

impl ProbeSample {
    /// The sample of an outcome; `cost_usd` overrides the outcome's cost when given
    /// (self-hosted targets).
    pub fn from_outcome(o: &Outcome, cost_usd: Option<f64>) -> ProbeSample {
        let s = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
        ProbeSample {
            scenario: o.scenario.clone(),
            result: o.result.as_str().to_string(),
            ttft: s(o.ttft),
            tpot: s(o.tpot),
            e2e: s(o.e2e),
            output_rate: o.output_tokens_per_second,
            cost_usd: cost_usd.or(o.cost_usd),
            itl: o
                .inter_token_latencies
                .iter()
                .take(MAX_GAPS_PER_PROBE)
                .map(|d| d.as_secs_f64())
                .collect(),
        }
    }

    /// The sample of one journey run, judged as one probe: TTFT is the first step's, E2E the
    /// journey's duration (successful runs only), ITL every step's gaps together, cost the sum
    /// of the steps'; TPOT and output rate are left out (think time is not generation).
    pub fn from_journey(o: &crate::journey::JourneyOutcome, cost_usd: Option<f64>) -> ProbeSample {
        let first = o.steps.first().map(|s| &s.outcome);
        ProbeSample {
            scenario: o.journey.clone(),
            result: o.result.as_str().to_string(),
            ttft: first.and_then(|f| f.ttft).map(|d| d.as_secs_f64()),
            tpot: None,
            e2e: o.result.is_success().then_some(o.duration.as_secs_f64()),
            output_rate: None,
            cost_usd: cost_usd.or(o.cost_usd()),
            itl: o
                .steps
                .iter()
                .flat_map(|s| s.outcome.inter_token_latencies.iter())
                .take(MAX_GAPS_PER_PROBE)
                .map(|d| d.as_secs_f64())
                .collect(),
        }
    }

    /// Whether the probe succeeded.
    pub fn is_success(&self) -> bool {
        self.result == "success"
    }
}

/// The gate's result file (`--output`), also read back as a baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The inferprobe version that wrote it.
    pub version: String,
    /// `pass`, `fail`, `inconclusive` or `recorded` (no baseline).
    pub verdict: String,
    /// The process exit code the run ended with.
    pub exit_code: u8,
    /// The candidate endpoint.
    pub candidate: Endpoint,
    /// What the candidate was compared with.
    pub baseline: Option<BaselineInfo>,
    /// Why the run stopped before its plan (spending cap), if it did.
    pub stopped: Option<String>,
    /// USD spent on the probes of both sides, when priced.
    pub spent_usd: Option<f64>,
    /// Seconds the probes took.
    pub duration_seconds: f64,
    /// One row per judged metric (and scenario).
    pub metrics: Vec<super::Evaluation>,
    /// Raw probes: `candidate` (the next baseline) and `reference` (A/B runs).
    #[serde(default, skip_serializing_if = "Samples::is_empty")]
    pub samples: Samples,
}

/// The raw probes of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// The candidate's probes, in the order they were sent.
    #[serde(default)]
    pub candidate: Vec<ProbeSample>,
    /// The reference's probes (A/B only).
    #[serde(default)]
    pub reference: Vec<ProbeSample>,
}

impl Samples {
    /// No probes on either side.
    pub fn is_empty(&self) -> bool {
        self.candidate.is_empty() && self.reference.is_empty()
    }
}

/// An endpoint as printed (no credentials).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Target name.
    pub target: String,
    /// Model sent.
    pub model: String,
    /// API dialect.
    pub dialect: String,
    /// Base URL without user info or query.
    pub url: String,
}

/// Where the baseline came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineInfo {
    /// `reference` (live, interleaved), `gate` (an earlier gate's probes) or `load-test` (the
    /// summary of a result file: point values).
    pub kind: String,
    /// The reference endpoint, or the file and its format.
    pub source: String,
    /// What the comparison can and cannot say, in words.
    pub note: Option<String>,
}

/// A baseline, ready to compare with.
#[derive(Clone, Debug)]
pub enum Baseline {
    /// Raw probes, resampled like the candidate's.
    Samples {
        /// The probes.
        samples: Vec<ProbeSample>,
        /// Where they came from.
        info: BaselineInfo,
    },
    /// Summary values taken as exact, the same for every scenario.
    Points {
        /// Value per metric (only what the file has).
        values: BTreeMap<Metric, f64>,
        /// Where they came from.
        info: BaselineInfo,
    },
}

impl Baseline {
    /// Where it came from.
    pub fn info(&self) -> &BaselineInfo {
        match self {
            Baseline::Samples { info, .. } | Baseline::Points { info, .. } => info,
        }
    }
}

/// Why a baseline file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file could not be read.
    #[error("--baseline {file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("--baseline {0}: larger than 64 MiB; not a result file")]
    TooLarge(String),
    /// A gate file that does not parse.
    #[error("--baseline {file}: gate result file: {reason}")]
    Gate {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A load-test file the importers reject.
    #[error("--baseline {0}")]
    Import(#[from] thresholds::ImportError),
    /// A load-test file without a stage.
    #[error("--baseline {0}: holds no load-test stage")]
    NoStages(String),
}

/// Reads a baseline file: a gate result (by its `format`), else any load-test result the
/// `thresholds` command reads.
pub fn read_file(path: &Path) -> Result<Baseline, BaselineError> {
    let file = path.display().to_string();
    let read = |source| BaselineError::Read {
        file: file.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(BaselineError::TooLarge(file));
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    parse(&file, &text)
}

/// Parses baseline file text (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Baseline, BaselineError> {
    let doc: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let format = doc
        .as_ref()
        .and_then(|d| d.get("format"))
        .and_then(|f| f.as_str());
    if let Some(f) = format.filter(|f| f.starts_with("inferprobe-gate/")) {
        if f != FORMAT {
            return Err(BaselineError::Gate {
                file: file.to_string(),
                reason: format!("format {f:?} is not one this version reads ({FORMAT})"),
            });
        }
        let gate: GateFile = serde_json::from_str(text).map_err(|e| BaselineError::Gate {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        if gate.samples.candidate.is_empty() {
            return Err(BaselineError::Gate {
                file: file.to_string(),
                reason: "holds no candidate probes (`samples.candidate`)".to_string(),
            });
        }
        return Ok(Baseline::Samples {
            samples: gate.samples.candidate,
            info: BaselineInfo {
                kind: "gate".to_string(),
                source: format!(
                    "{file} (target {}, model {}, inferprobe {})",
                    gate.candidate.target, gate.candidate.model, gate.version
                ),
                note: Some(
                    "an earlier gate's probes: both samples are resampled, but they were taken \
                     at different times, so drift of network or provider is not cancelled"
                        .to_string(),
                ),
            },
        });
    }
    let imported = thresholds::parse(file, text, None)?;
    let stage =
        lowest_load(&imported.stages).ok_or_else(|| BaselineError::NoStages(file.into()))?;
    let (values, mut notes) = stage_points(stage);
    notes.insert(
        0,
        format!(
            "summary values of {} ({}), taken as exact: only the candidate is resampled",
            imported.format.tool(),
            stage.label
        ),
    );
    if imported.stages.len() > 1 {
        notes.push(format!(
            "the file has {} stages; the lowest load ({}) is compared, as the gate probes at \
             low concurrency",
            imported.stages.len(),
            stage.label
        ));
    }
    Ok(Baseline::Points {
        values,
        info: BaselineInfo {
            kind: "load-test".to_string(),
            source: format!("{file} ({})", imported.format.name()),
            note: Some(notes.join("; ")),
        },
    })
}

fn lowest_load(stages: &[Stage]) -> Option<&Stage> {
    // Concurrency stages first: a rate stage's load is not comparable to sequential probing.
    stages.iter().min_by(|a, b| {
        let key = |s: &Stage| (s.load_kind != LoadKind::Concurrency, s.load);
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    })
}

/// The metrics a load-test stage gives, and notes where its definitions differ from ours.
/// What the stage lacks stays out of the map (reported as "no baseline").
pub fn stage_points(stage: &Stage) -> (BTreeMap<Metric, f64>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut notes = Vec::new();
    let mut put = |m: Metric, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            values.insert(m, v);
        }
    };
    put(Metric::TtftP50, stage.ttft.p50);
    put(Metric::TtftP95, stage.ttft.p95);
    put(Metric::TtftP99, stage.ttft.p99);
    if stage.first_metric != FirstMetric::Ttft {
        notes.push(format!(
            "its TTFT is {} ({}), compared with our time to first token",
            stage.first_metric.short(),
            stage.ttft_definition
        ));
    }
    let gaps = match stage.gap_metric {
        GapMetric::Itl => [Metric::ItlP50, Metric::ItlP95, Metric::ItlP99],
        GapMetric::Tpot => [Metric::TpotP50, Metric::TpotP95, Metric::TpotP95],
    };
    put(gaps[0], stage.itl.p50);
    put(gaps[1], stage.itl.p95);
    if stage.gap_metric == GapMetric::Itl {
        put(gaps[2], stage.itl.p99);
    }
    put(Metric::E2eP50, stage.e2e.p50);
    put(Metric::E2eP95, stage.e2e.p95);
    put(Metric::E2eP99, stage.e2e.p99);
    put(Metric::ErrorRatio, stage.error_rate);
    (values, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calibrate_file_gives_the_lowest_stage_as_points() {
        let text = r#"{"tool":"inferprobe","version":"0.1.0","target":"t","model":"m",
          "dialect":"openai-chat","mode":"concurrency","knee":null,
          "slo":{"ttft_p95_seconds":0.5,"itl_p95_seconds":0.05,"error_rate":0.01},
          "stages":[
            {"load":4,"requests":100,"errors":2,"duration_seconds":10,
             "ttft_seconds":{"p50":0.4,"p95":0.6,"p99":0.7},
             "itl_seconds":{"p50":0.02,"p95":0.03,"p99":0.04},
             "e2e_seconds":{"p50":1.0,"p95":1.2,"p99":1.3},"output_tokens_per_second":50},
            {"load":1,"requests":50,"errors":1,"duration_seconds":10,
             "ttft_seconds":{"p50":0.3,"p95":0.35,"p99":null},
             "itl_seconds":{"p50":0.02,"p95":0.025,"p99":0.03},
             "e2e_seconds":{"p50":0.8,"p95":0.9,"p99":0.95},"output_tokens_per_second":20}]}"#;
        let Baseline::Points { values, info } = parse("cal.json", text).unwrap() else {
            panic!("points expected");
        };
        assert_eq!(values.get(&Metric::TtftP95), Some(&0.35));
        assert_eq!(values.get(&Metric::TtftP99), None);
        assert_eq!(values.get(&Metric::ItlP95), Some(&0.025));
        assert_eq!(values.get(&Metric::E2eP50), Some(&0.8));
        assert_eq!(values.get(&Metric::ErrorRatio), Some(&0.02));
        assert_eq!(values.get(&Metric::OutputRate), None);
        assert_eq!(info.kind, "load-test");
        let note = info.note.unwrap();
        assert!(note.contains("lowest load (concurrency 1)"), "{note}");
    }

    #[test]
    fn a_vllm_bench_file_maps_its_percentiles() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/loadtest/vllm/bench_serve-0.11.0.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let Baseline::Points { values, info } = parse("bench.json", &text).unwrap() else {
            panic!("points expected");
        };
        // The file's `p95_ttft_ms` 417.63, `p99_itl_ms` 44.81, `p50_e2el_ms` 5288.5, 297 of
        // 300 completed.
        let close = |m: Metric, v: f64| (values[&m] - v).abs() < 1e-9;
        assert!(close(Metric::TtftP95, 0.41763));
        assert!(close(Metric::ItlP99, 0.04481));
        assert!(close(Metric::E2eP50, 5.2885));
        assert!(close(Metric::ErrorRatio, 0.01));
        assert_eq!(values.get(&Metric::CostPerRequest), None);
        assert_eq!(info.source, "bench.json (vllm)");
        assert!(info.note.unwrap().contains("vLLM bench serve"));
    }

    #[test]
    fn gate_files_are_versioned_and_need_probes() {
        assert!(matches!(
            parse("g.json", r#"{"format":"inferprobe-gate/9"}"#),
            Err(BaselineError::Gate { reason, .. }) if reason.contains("inferprobe-gate/1")
        ));
        assert!(matches!(
            parse("g.json", r#"{"format":"inferprobe-gate/1","version":"x"}"#),
            Err(BaselineError::Gate { .. })
        ));
        assert!(matches!(
            parse("x.json", "not json"),
            Err(BaselineError::Import(_))
        ));
    }
}
