//! AIPerf `profile_export_aiperf.json`: one run, so one stage per file.
//!
//! Each metric is an object with its `unit` and statistics (`avg`, `p50`, `p90`, `p95`,
//! `p99`, ...). `request_count` counts successful requests and `error_request_count` failed
//! ones (`null` or absent when there were none).
//!
//! Where the load sits depends on the release:
//! - up to 0.8: `input_config` is the user config, the load is `input_config.loadgen.concurrency`
//!   or `.request_rate` (0.8 added the top-level `aiperf_version` and `schema_version`);
//! - from 0.9: `input_config` is the benchmark config, an ordered list `input_config.phases[]`
//!   of `{name, kind, type, concurrency, rate, ...}`. The top-level metrics cover the profiling
//!   phases only, so warm-up phases are skipped. Unset fields are left out of the export, and a
//!   `concurrency` phase without `concurrency` ran at AIPerf's default of 1.

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

/// Every place a release has written the load, newest first.
const LOAD_KEYS: [&str; 4] = [
    "input_config.phases[].concurrency",
    "input_config.phases[].rate",
    "input_config.loadgen.concurrency",
    "input_config.loadgen.request_rate",
];

/// `rate R req/s`, with the concurrency cap when one was set.
fn rate_with_cap(r: f64, cap: Option<f64>) -> String {
    match cap {
        Some(c) => format!("{} (max {})", rate_label(r), concurrency_label(c)),
        None => rate_label(r),
    }
}

/// Whether a phase is a warm-up, whose requests are not in the top-level metrics.
fn is_warmup(phase: &Value) -> bool {
    let s = |k: &str| phase.get(k).and_then(Value::as_str);
    s("kind") == Some("warmup")
        || (s("kind").is_none() && s("name") == Some("warmup"))
        || phase.get("exclude_from_results").and_then(Value::as_bool) == Some(true)
}

/// The load of the profiling phase in `input_config.phases` (AIPerf 0.9 and later).
fn phases_load(cx: &Cx<'_>, phases: &Value) -> Result<(LoadKind, f64, String), ImportError> {
    let list = phases
        .as_array()
        .ok_or_else(|| cx.invalid("input_config.phases", "is not a list"))?;
    let mut loads = Vec::new();
    for (i, phase) in list.iter().enumerate() {
        if is_warmup(phase) {
            continue;
        }
        let prefix = format!("input_config.phases[{i}]");
        let rate = cx.opt_num(phase, &prefix, &["rate"])?;
        let concurrency = cx.opt_num(phase, &prefix, &["concurrency"])?;
        let kind = phase.get("type").and_then(Value::as_str);
        let load = match (rate, concurrency, kind) {
            (Some(r), cap, _) => (LoadKind::Rate, r, rate_with_cap(r, cap)),
            (None, Some(c), _) => (LoadKind::Concurrency, c, concurrency_label(c)),
            // The export leaves out fields the user did not set; 1 is AIPerf's default.
            (None, None, Some("concurrency")) => {
                (LoadKind::Concurrency, 1.0, concurrency_label(1.0))
            }
            (None, None, _) => {
                return Err(cx.unknown_layout_note(
                    "concurrency or request rate",
                    &[&format!("{prefix}.concurrency"), &format!("{prefix}.rate")],
                    &format!(
                        "the profiling phase is of type `{}`",
                        kind.map_or_else(|| "(none)".to_string(), printable_type)
                    ),
                ))
            }
        };
        loads.push((prefix, load));
    }
    let Some((_, first)) = loads.first() else {
        return Err(cx.unknown_layout(
            "profiling phase",
            &["input_config.phases[].kind = \"profiling\""],
        ));
    };
    // Several profiling phases are pooled into the top-level metrics; only one load makes a stage.
    if let Some((other, _)) = loads.iter().find(|(_, l)| (l.0, l.1) != (first.0, first.1)) {
        return Err(cx.invalid(
            other,
            format!(
                "runs at another load than {} ({}); the top-level metrics pool both, so give the \
                 phase-scoped exports (`phases/<name>/profile_export_aiperf.json`)",
                loads[0].0, first.2
            ),
        ));
    }
    Ok(first.clone())
}

/// A phase `type` from the file, bounded for a message.
fn printable_type(t: &str) -> String {
    t.chars().take(32).filter(|c| !c.is_control()).collect()
}

/// The load of `input_config.loadgen` (AIPerf 0.8 and earlier).
fn loadgen_load(cx: &Cx<'_>, l: &Value) -> Result<(LoadKind, f64, String), ImportError> {
    let prefix = "input_config.loadgen";
    let rate = cx.opt_num(l, prefix, &["request_rate"])?;
    let concurrency = cx.opt_num(l, prefix, &["concurrency"])?;
    match (rate, concurrency) {
        (Some(r), cap) => Ok((LoadKind::Rate, r, rate_with_cap(r, cap))),
        (None, Some(c)) => Ok((LoadKind::Concurrency, c, concurrency_label(c))),
        (None, None) => Err(cx.unknown_layout("concurrency or request rate", &LOAD_KEYS)),
    }
}

/// Parses one AIPerf result file.
pub(crate) fn parse(cx: &Cx<'_>, doc: &Value) -> Result<Stage, ImportError> {
    let ok = unit_count(cx, doc, "request_count")?;
    let failed = unit_count(cx, doc, "error_request_count")?.unwrap_or(0);
    let (load_kind, load, label) = match (
        get(doc, &["input_config", "phases"]),
        get(doc, &["input_config", "loadgen"]),
    ) {
        (Some(phases), _) => phases_load(cx, phases)?,
        (None, Some(loadgen)) => loadgen_load(cx, loadgen)?,
        (None, None) => return Err(cx.unknown_layout("concurrency or request rate", &LOAD_KEYS)),
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
