//! LLMPerf `*_summary.json` (`token_benchmark_ray.py --results-dir`): one run, one stage.
//!
//! Flat keys in seconds: `results_ttft_s_quantiles_p50` ... `_p99`, likewise
//! `results_inter_token_latency_s_*` and `results_end_to_end_latency_s_*`. The load is
//! `num_concurrent_requests`; failures are `results_number_errors` out of
//! `results_num_requests_started`. The layout has not changed since its results `version`
//! `2023-08-31`, which every file carries.

use serde_json::Value;

use super::{concurrency_label, quantiles, round_ns, Cx, ImportError};
use crate::thresholds::stages::{FirstMetric, GapMetric, LoadKind, Quantiles, Stage};

const TTFT: &str = "LLMPerf: time to the first chunk whose `delta.content` is non-empty (reasoning is not counted, so on reasoning models the first answer token)";
const ITL: &str = "LLMPerf `inter_token_latency_s`: per request, the sum of all chunk gaps including TTFT divided by output tokens, i.e. closest to inferprobe's TPOT and above it by TTFT / tokens";

fn metric(cx: &Cx<'_>, doc: &Value, name: &str, required: bool) -> Result<Quantiles, ImportError> {
    let key = |p: &str| format!("results_{name}_quantiles_{p}");
    let get = |p: &str| cx.opt_num(doc, "", &[key(p).as_str()]);
    let (p50, p95, p99) = (get("p50")?, get("p95")?, get("p99")?);
    if required && p95.is_none() {
        return Err(cx.missing(&key("p95"), ""));
    }
    Ok(quantiles(
        p50.map(round_ns),
        p95.map(round_ns),
        p99.map(round_ns),
    ))
}

/// Parses one LLMPerf summary file.
pub(crate) fn parse(cx: &Cx<'_>, doc: &Value) -> Result<Stage, ImportError> {
    let concurrency = cx.num(doc, "", &["num_concurrent_requests"], "")?;
    let started = cx.opt_count(doc, "", &["results_num_requests_started"])?;
    let errors = cx.opt_count(doc, "", &["results_number_errors"])?;
    let error_rate = match (started, errors) {
        (Some(s), Some(e)) if s > 0 => Some(e as f64 / s as f64),
        _ => cx.opt_num(doc, "", &["results_error_rate"])?,
    };
    Ok(Stage {
        source_file: cx.file.to_string(),
        format: cx.format,
        label: concurrency_label(concurrency),
        load_kind: LoadKind::Concurrency,
        load: concurrency,
        ttft: metric(cx, doc, "ttft_s", true)?,
        itl: metric(cx, doc, "inter_token_latency_s", true)?,
        e2e: metric(cx, doc, "end_to_end_latency_s", false)?,
        error_rate,
        requests: started,
        first_metric: FirstMetric::FirstAnswerToken,
        ttft_definition: TTFT.to_string(),
        gap_metric: GapMetric::Tpot,
        itl_definition: ITL.to_string(),
    })
}
