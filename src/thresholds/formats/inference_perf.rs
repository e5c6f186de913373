//! inference-perf `stage_N_lifecycle_metrics.json`: one file per stage.
//!
//! Latency summaries sit in `successes.latency.<metric>` in seconds, with `mean`, `min`, `max`,
//! `median` and `p<P>` keys for the configured percentiles (`p95`, `p99`, ...). The load is
//! `load_summary.requested_rate` (requests per second), with `load_summary.concurrency` in
//! concurrency mode (0.3 on); failures are counted in `failures.count`. The file names no
//! inference-perf version.
//!
//! In concurrency mode inference-perf schedules a stage's whole request budget within one
//! second, so its `requested_rate` is the request count, not a rate: such a stage is labelled by
//! its concurrency alone.

use serde_json::Value;

use super::{concurrency_label, error_rate, get, quantiles, rate_label, round_ns, Cx, ImportError};
use crate::thresholds::stages::{FirstMetric, GapMetric, LoadKind, Quantiles, Stage};

const TTFT: &str =
    "inference-perf: time from sending the request to the first streamed chunk with output text";
const ITL: &str = "inference-perf `inter_token_latency`: every gap between consecutive output tokens, pooled over requests (tokens of one chunk share its arrival time), like inferprobe's ITL";
const HINT: &str = "add 95 and 99 to `report.request_lifecycle.percentiles`";

fn summary(cx: &Cx<'_>, doc: &Value, name: &str, required: bool) -> Result<Quantiles, ImportError> {
    let prefix = format!("successes.latency.{name}");
    let Some(s) = get(doc, &["successes", "latency", name]).filter(|s| !s.is_null()) else {
        if required {
            return Err(cx.missing(
                &format!("{prefix}.p95"),
                "the stage needs successful streamed requests",
            ));
        }
        return Ok(Quantiles::default());
    };
    let p50 = match cx.opt_num(s, &prefix, &["median"])? {
        Some(v) => Some(v),
        None => cx.opt_num(s, &prefix, &["p50"])?,
    };
    let p95 = cx.opt_num(s, &prefix, &["p95"])?;
    let p99 = cx.opt_num(s, &prefix, &["p99"])?;
    if required && p95.is_none() {
        return Err(cx.missing(&format!("{prefix}.p95"), HINT));
    }
    Ok(quantiles(
        p50.map(round_ns),
        p95.map(round_ns),
        p99.map(round_ns),
    ))
}

/// Parses one inference-perf stage file.
pub(crate) fn parse(cx: &Cx<'_>, doc: &Value) -> Result<Stage, ImportError> {
    let ok = cx.count(doc, "", &["successes", "count"])?;
    let failed = cx.opt_count(doc, "", &["failures", "count"])?.unwrap_or(0);
    let rate = cx.opt_num(doc, "", &["load_summary", "requested_rate"])?;
    let concurrency = cx.opt_num(doc, "", &["load_summary", "concurrency"])?;
    let (load_kind, load, label) = match (concurrency, rate) {
        (Some(c), _) => (LoadKind::Concurrency, c, concurrency_label(c)),
        (None, Some(r)) => (LoadKind::Rate, r, rate_label(r)),
        (None, None) => {
            return Err(cx.unknown_layout(
                "concurrency or request rate",
                &["load_summary.concurrency", "load_summary.requested_rate"],
            ))
        }
    };
    Ok(Stage {
        source_file: cx.file.to_string(),
        format: cx.format,
        label,
        load_kind,
        load,
        ttft: summary(cx, doc, "time_to_first_token", true)?,
        itl: summary(cx, doc, "inter_token_latency", true)?,
        e2e: summary(cx, doc, "request_latency", false)?,
        error_rate: error_rate(failed, ok),
        requests: Some(ok + failed),
        first_metric: FirstMetric::Ttft,
        ttft_definition: TTFT.to_string(),
        gap_metric: GapMetric::Itl,
        itl_definition: ITL.to_string(),
    })
}
