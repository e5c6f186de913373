//! GenAI-Perf `profile_export_genai_perf.json`: one run, so one stage per file.
//!
//! The metric objects look like AIPerf's (`unit`, `avg`, `p50`, ..., `p99`). The load is in
//! `input_config.perf_analyzer.stimulus` (`{"concurrency": N}`, `{"request_rate": R}` or their
//! `session_` variants) from 0.0.13 on, the config-file releases, and flat in `input_config`
//! (`concurrency`, `request_rate`: the command-line arguments) up to 0.0.12. The file names no
//! GenAI-Perf version. GenAI-Perf does not export a failed-request count, so its stages carry no
//! error rate.

use serde_json::Value;

use super::aiperf::{unit_count, unit_metric};
use super::{concurrency_label, error_rate, get, rate_label, Cx, ImportError};
use crate::thresholds::stages::{FirstMetric, GapMetric, LoadKind, Stage};

const TTFT: &str = "GenAI-Perf: time to the first response with content, `reasoning_content` ignored (so on reasoning models the first answer token); releases that did not yet drop empty responses counted the first response of any kind, e.g. a role-only chunk, which is inferprobe's time to first event";
const ITL: &str = "GenAI-Perf `inter_token_latency`: per request (request_latency - TTFT) / (output tokens - 1), i.e. inferprobe's TPOT, not a per-gap ITL";

/// Every place a release has written the load, newest first.
const LOAD_KEYS: [&str; 6] = [
    "input_config.perf_analyzer.stimulus.concurrency",
    "input_config.perf_analyzer.stimulus.request_rate",
    "input_config.perf_analyzer.stimulus.session_concurrency",
    "input_config.perf_analyzer.stimulus.session_request_rate",
    "input_config.concurrency",
    "input_config.request_rate",
];

/// Parses one GenAI-Perf result file.
pub(crate) fn parse(cx: &Cx<'_>, doc: &Value) -> Result<Stage, ImportError> {
    let (prefix, stimulus) = match get(doc, &["input_config", "perf_analyzer", "stimulus"]) {
        Some(s) => ("input_config.perf_analyzer.stimulus", s),
        None => match doc.get("input_config") {
            Some(c) => ("input_config", c),
            None => return Err(cx.unknown_layout("concurrency or request rate", &LOAD_KEYS)),
        },
    };
    let first = |keys: [&str; 2]| -> Result<Option<f64>, ImportError> {
        for k in keys {
            if let Some(v) = cx.opt_num(stimulus, prefix, &[k])? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    };
    let rate = first(["request_rate", "session_request_rate"])?;
    let concurrency = first(["concurrency", "session_concurrency"])?;
    let (load_kind, load, label) = match (rate, concurrency) {
        (Some(r), _) => (LoadKind::Rate, r, rate_label(r)),
        (None, Some(c)) => (LoadKind::Concurrency, c, concurrency_label(c)),
        (None, None) => return Err(cx.unknown_layout("concurrency or request rate", &LOAD_KEYS)),
    };
    let ok = unit_count(cx, doc, "request_count")?;
    let failed = unit_count(cx, doc, "error_request_count")?;
    let (errors, requests) = match (ok, failed) {
        (Some(ok), Some(f)) => (error_rate(f, ok), Some(ok + f)),
        (Some(ok), None) => (None, Some(ok)),
        _ => (None, None),
    };
    Ok(Stage {
        source_file: cx.file.to_string(),
        format: cx.format,
        label,
        load_kind,
        load,
        ttft: unit_metric(cx, doc, "time_to_first_token", true)?,
        itl: unit_metric(cx, doc, "inter_token_latency", true)?,
        e2e: unit_metric(cx, doc, "request_latency", false)?,
        error_rate: errors,
        requests,
        first_metric: FirstMetric::FirstAnswerToken,
        ttft_definition: TTFT.to_string(),
        gap_metric: GapMetric::Tpot,
        itl_definition: ITL.to_string(),
    })
}
