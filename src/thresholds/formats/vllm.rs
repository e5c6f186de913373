//! `vllm bench serve --save-result` (and the older `benchmarks/benchmark_serving.py`): one JSON
//! object per run, so one stage per file.
//!
//! Latencies are flat keys in milliseconds: `median_ttft_ms`, `p{P}_ttft_ms` for every
//! `--metric-percentiles` value, likewise `itl`, `e2el` (only with
//! `--percentile-metrics ...,e2el`). The default percentile list is `99` only, so p95 needs
//! `--metric-percentiles 50,95,99`. Load: `max_concurrency` (null when unlimited) and
//! `request_rate` (the string `"inf"` when unlimited). Failures: `failed`; vLLM 0.11.0 and earlier
//! do not write it, and there `num_prompts - completed` failed. The file names no vLLM version (unless the user added one
//! with `--metadata`).

use serde_json::Value;

use super::{concurrency_label, error_rate, ms, quantiles, rate_label, Cx, ImportError};
use crate::thresholds::stages::{FirstMetric, GapMetric, LoadKind, Quantiles, Stage};

const HINT: &str = "run `vllm bench serve` with `--percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,95,99 --save-result`";

/// vLLM's chat client stamps TTFT at the first chunk with a `choices` entry even when its
/// content is empty, and vLLM's chat stream opens with a role-only chunk.
const TTFT_CHAT: &str = "vLLM bench serve (chat backend): time to the first streamed chunk carrying a `choices` entry, even with empty content; vLLM's chat stream opens with a role-only chunk, so this is inferprobe's time to first event";
const TTFT_COMPLETIONS: &str = "vLLM bench serve: time to the first streamed chunk carrying a `choices` entry (its text may be empty for special tokens)";
const ITL: &str = "vLLM bench serve: gap between consecutive streamed chunks, one value per gap, pooled over requests (like inferprobe's ITL)";

fn metric(cx: &Cx<'_>, doc: &Value, name: &str, required: bool) -> Result<Quantiles, ImportError> {
    let key = |p: &str| format!("{p}_{name}_ms");
    let get = |k: &str| cx.opt_num(doc, "", &[k]);
    let p50 = match get(&key("p50"))? {
        Some(v) => Some(v),
        None => get(&key("median"))?,
    };
    let p95 = get(&key("p95"))?;
    let p99 = get(&key("p99"))?;
    if required && p95.is_none() {
        return Err(cx.missing(&key("p95"), HINT));
    }
    Ok(quantiles(p50.map(ms), p95.map(ms), p99.map(ms)))
}

/// Parses one vLLM result file.
pub(crate) fn parse(cx: &Cx<'_>, doc: &Value) -> Result<Stage, ImportError> {
    let completed = cx.count(doc, "", &["completed"])?;
    let failed = match cx.opt_count(doc, "", &["failed"])? {
        Some(f) => f,
        // Before `failed` was written, `num_prompts - completed` were the failures.
        None => cx
            .opt_count(doc, "", &["num_prompts"])?
            .map_or(0, |n| n.saturating_sub(completed)),
    };
    let max_concurrency = cx.opt_num(doc, "", &["max_concurrency"])?;
    let rate = match doc.get("request_rate") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "inf" => None,
        Some(Value::Number(n)) => n.as_f64().filter(|r| r.is_finite()),
        Some(other) => {
            return Err(cx.invalid(
                "request_rate",
                format!("is neither a number nor \"inf\": {other}"),
            ))
        }
    };
    let (load_kind, load, label) = match (rate, max_concurrency) {
        (Some(r), None) => (LoadKind::Rate, r, rate_label(r)),
        (Some(r), Some(c)) => (
            LoadKind::Rate,
            r,
            format!(
                "{} (max concurrency {})",
                rate_label(r),
                crate::thresholds::stages::fmt_num(c)
            ),
        ),
        (None, Some(c)) => (LoadKind::Concurrency, c, concurrency_label(c)),
        (None, None) => {
            // Unlimited rate and concurrency: every prompt is sent at once.
            let n = (completed + failed) as f64;
            (
                LoadKind::Concurrency,
                n,
                format!("burst of {} requests", n as u64),
            )
        }
    };
    let chat = ["backend", "endpoint_type"].iter().any(|k| {
        doc.get(*k)
            .and_then(Value::as_str)
            .is_some_and(|b| b.contains("chat"))
    });
    Ok(Stage {
        source_file: cx.file.to_string(),
        format: cx.format,
        label,
        load_kind,
        load,
        ttft: metric(cx, doc, "ttft", true)?,
        itl: metric(cx, doc, "itl", true)?,
        e2e: metric(cx, doc, "e2el", false)?,
        error_rate: error_rate(failed, completed),
        requests: Some(completed + failed),
        first_metric: if chat {
            FirstMetric::FirstEvent
        } else {
            FirstMetric::Ttft
        },
        ttft_definition: (if chat { TTFT_CHAT } else { TTFT_COMPLETIONS }).to_string(),
        gap_metric: GapMetric::Itl,
        itl_definition: ITL.to_string(),
    })
}
