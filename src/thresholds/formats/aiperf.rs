//! AIPerf `profile_export_aiperf.json`: one run, so one stage per file.
//!
//! Each metric is an object with its `unit` and statistics (`avg`, `p50`, `p90`, `p95`,
//! `p99`, ...). `request_count` counts successful requests and `error_request_count` failed
//! ones (`null` or absent when there were none); the load is `input_config.loadgen.concurrency`
//! or `.request_rate`.

use serde_json::Value;

use super::{
    concurrency_label, error_rate, get, quantiles, rate_label, to_seconds, Cx, ImportError,
};
use crate::thresholds::stages::{FirstMetric, GapMetric, LoadKind, Quantiles, Stage};

const TTFT: &str = "AIPerf: time to the first response with non-empty content, reasoning content included (its TTFO excludes reasoning)";
const ITL: &str = "AIPerf `inter_token_latency`: per request (request_latency - TTFT) / (output tokens - 1), i.e. inferprobe's TPOT, not a per-gap ITL";

/// Reads `{unit, p50, p95, p99}` of metric `name` as seconds (shared with GenAI-Perf).
pub(crate) fn unit_metric(
    cx: &Cx<'_>,
    doc: &Value,
    name: &str,
    required: bool,
) -> Result<Quantiles, ImportError> {
    let Some(m) = doc.get(name).filter(|m| !m.is_null()) else {
        if required {
            return Err(cx.missing(
                &format!("{name}.p95"),
                "profile a streaming endpoint (`--streaming`)",
            ));
        }
        return Ok(Quantiles::default());
    };
    let unit = get(m, &["unit"])
        .and_then(Value::as_str)
        .ok_or_else(|| cx.missing(&format!("{name}.unit"), ""))?;
    let conv = |key: &str| -> Result<Option<f64>, ImportError> {
        match cx.opt_num(m, name, &[key])? {
            None => Ok(None),
            Some(v) => to_seconds(v, unit).map(Some).ok_or_else(|| {
                cx.invalid(
                    &format!("{name}.unit"),
                    format!("is not a time unit: {unit:?}"),
                )
            }),
        }
    };
    let q = quantiles(conv("p50")?, conv("p95")?, conv("p99")?);
    if required && q.p95.is_none() {
        return Err(cx.missing(&format!("{name}.p95"), ""));
    }
    Ok(q)
}

/// A count written either as a number or as `{unit, avg}`; `None` when absent or null.
pub(crate) fn unit_count(cx: &Cx<'_>, doc: &Value, name: &str) -> Result<Option<u64>, ImportError> {
    match doc.get(name) {
        Some(Value::Object(_)) => cx.opt_count(doc, "", &[name, "avg"]),
        _ => cx.opt_count(doc, "", &[name]),
    }
}

/// Parses one AIPerf result file.
pub(crate) fn parse(cx: &Cx<'_>, doc: &Value) -> Result<Stage, ImportError> {
    let ok = unit_count(cx, doc, "request_count")?;
    let failed = unit_count(cx, doc, "error_request_count")?.unwrap_or(0);
    let loadgen = get(doc, &["input_config", "loadgen"]);
    let rate = match loadgen {
        Some(l) => cx.opt_num(l, "input_config.loadgen", &["request_rate"])?,
        None => None,
    };
    let concurrency = match loadgen {
        Some(l) => cx.opt_num(l, "input_config.loadgen", &["concurrency"])?,
        None => None,
    };
    let (load_kind, load, label) = match (rate, concurrency) {
        (Some(r), _) => (LoadKind::Rate, r, rate_label(r)),
        (None, Some(c)) => (LoadKind::Concurrency, c, concurrency_label(c)),
        (None, None) => return Err(cx.missing("input_config.loadgen.concurrency", "")),
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
        error_rate: ok.and_then(|ok| error_rate(failed, ok)),
        requests: ok.map(|ok| ok + failed),
        first_metric: FirstMetric::Ttft,
        ttft_definition: TTFT.to_string(),
        gap_metric: GapMetric::Tpot,
        itl_definition: ITL.to_string(),
    })
}
