//! GuideLLM `benchmarks.json`: one file holds every stage of a run, one entry of `benchmarks`
//! per strategy.
//!
//! Each metric is a status breakdown (`successful`, `errored`, `incomplete`, `total`) of
//! distribution summaries with `percentiles.{p50, p95, p99, ...}`. Latency keys carry their
//! unit: `time_to_first_token_ms` and `inter_token_latency_ms` in milliseconds,
//! `request_latency` in seconds. The strategy (`type_` and `streams` or `rate`) sits in
//! `config.strategy` from 0.4 on and `args.strategy` before; request counts in
//! `metrics.request_totals` (0.4 on) or `request_totals` (before). 0.5 added the report's
//! `metadata.guidellm_version`; 0.7 (report schema `version` 2) added the `trace` strategy,
//! which replays recorded arrival times and so, like `throughput`, has no load of its own: it
//! is placed by its measured rate.

use serde_json::Value;

use super::{
    concurrency_label, display, error_rate, get, ms, quantiles, rate_label, round_ns, Cx,
    ImportError,
};
use crate::thresholds::stages::{fmt_num, FirstMetric, GapMetric, LoadKind, Quantiles, Stage};

const TTFT: &str = "GuideLLM `time_to_first_token_ms`: time to the first streamed iteration carrying output, reasoning included (`time_to_first_output_token_ms` excludes it)";
const ITL: &str = "GuideLLM `inter_token_latency_ms`: per request (latency - TTFT) / (output tokens - 1), token-weighted, i.e. inferprobe's TPOT, not a per-gap ITL";

/// Reads `metrics.<name>.successful.percentiles` converted by `to_s`.
fn dist(
    cx: &Cx<'_>,
    bench: &Value,
    prefix: &str,
    name: &str,
    to_s: fn(f64) -> f64,
    required: bool,
) -> Result<Quantiles, ImportError> {
    let base = ["metrics", name, "successful"];
    let Some(succ) = get(bench, &base) else {
        if required {
            return Err(cx.missing(
                &display(
                    prefix,
                    &["metrics", name, "successful", "percentiles", "p95"],
                ),
                "",
            ));
        }
        return Ok(Quantiles::default());
    };
    let p = format!("{prefix}.metrics.{name}.successful");
    let p50 = match cx.opt_num(succ, &p, &["percentiles", "p50"])? {
        Some(v) => Some(v),
        None => cx.opt_num(succ, &p, &["median"])?,
    };
    let p95 = cx.opt_num(succ, &p, &["percentiles", "p95"])?;
    let p99 = cx.opt_num(succ, &p, &["percentiles", "p99"])?;
    if required && p95.is_none() {
        return Err(cx.missing(&format!("{p}.percentiles.p95"), ""));
    }
    Ok(quantiles(p50.map(to_s), p95.map(to_s), p99.map(to_s)))
}

enum Strategy {
    Concurrent(f64),
    Rate(f64),
    /// `synchronous` or `throughput`: a fixed or unbounded concurrency, described by the label.
    Other(String, Option<f64>),
}

fn strategy(cx: &Cx<'_>, bench: &Value, prefix: &str) -> Result<Strategy, ImportError> {
    let (sp, s) = match get(bench, &["config", "strategy"]) {
        Some(s) => (display(prefix, &["config", "strategy"]), s),
        None => match get(bench, &["args", "strategy"]) {
            Some(s) => (display(prefix, &["args", "strategy"]), s),
            None => {
                return Err(cx.unknown_layout(
                    "load strategy",
                    &[
                        &display(prefix, &["config", "strategy"]),
                        &display(prefix, &["args", "strategy"]),
                    ],
                ))
            }
        },
    };
    let kind = get(s, &["type_"])
        .and_then(Value::as_str)
        .ok_or_else(|| cx.missing(&format!("{sp}.type_"), ""))?;
    Ok(match kind {
        "synchronous" => Strategy::Other("synchronous".into(), Some(1.0)),
        "concurrent" => Strategy::Concurrent(cx.num(s, &sp, &["streams"], "")?),
        "throughput" => Strategy::Other(
            "throughput".into(),
            cx.opt_num(s, &sp, &["max_concurrency"])?,
        ),
        "constant" | "poisson" => Strategy::Rate(cx.num(s, &sp, &["rate"], "")?),
        "trace" => Strategy::Other("trace replay".into(), None),
        other => {
            return Err(cx.invalid(
                &format!("{sp}.type_"),
                format!("is an unknown strategy: {other:?}"),
            ))
        }
    })
}

/// Parses a GuideLLM report into one stage per benchmark.
pub(crate) fn parse(cx: &Cx<'_>, doc: &Value) -> Result<Vec<Stage>, ImportError> {
    let benches = doc
        .get("benchmarks")
        .and_then(Value::as_array)
        .ok_or_else(|| cx.missing("benchmarks", ""))?;
    let mut parsed = Vec::with_capacity(benches.len());
    for (i, bench) in benches.iter().enumerate() {
        let prefix = format!("benchmarks[{i}]");
        let strat = strategy(cx, bench, &prefix)?;
        let measured_rate = cx.opt_num(
            bench,
            &prefix,
            &["metrics", "requests_per_second", "successful", "mean"],
        )?;
        let totals = match get(bench, &["metrics", "request_totals"]) {
            Some(t) => (format!("{prefix}.metrics.request_totals"), t),
            None => match bench.get("request_totals") {
                Some(t) => (format!("{prefix}.request_totals"), t),
                None => {
                    return Err(cx.unknown_layout(
                        "request counts",
                        &[
                            &format!("{prefix}.metrics.request_totals"),
                            &format!("{prefix}.request_totals"),
                        ],
                    ))
                }
            },
        };
        let ok = cx.count(totals.1, &totals.0, &["successful"])?;
        let errored = cx.count(totals.1, &totals.0, &["errored"])?;
        let total = cx.opt_count(totals.1, &totals.0, &["total"])?;
        let stage = Stage {
            source_file: cx.file.to_string(),
            format: cx.format,
            label: String::new(),
            load_kind: LoadKind::Concurrency,
            load: 0.0,
            ttft: dist(cx, bench, &prefix, "time_to_first_token_ms", ms, true)?,
            itl: dist(cx, bench, &prefix, "inter_token_latency_ms", ms, true)?,
            e2e: dist(cx, bench, &prefix, "request_latency", round_ns, false)?,
            // `incomplete` requests were cut off by the benchmark's end, not failed by the server.
            error_rate: error_rate(errored, ok),
            requests: Some(total.unwrap_or(ok + errored)),
            first_metric: FirstMetric::Ttft,
            ttft_definition: TTFT.to_string(),
            gap_metric: GapMetric::Tpot,
            itl_definition: ITL.to_string(),
        };
        parsed.push((prefix, strat, measured_rate, stage));
    }
    // A sweep mixes synchronous, throughput and fixed-rate stages: put them all on the measured
    // request-rate axis so the stages can be ordered by load.
    let any_rate = parsed
        .iter()
        .any(|(_, s, _, _)| matches!(s, Strategy::Rate(_)));
    let mut stages = Vec::with_capacity(parsed.len());
    for (prefix, strat, measured, mut stage) in parsed {
        let measured_or_err = |what: &str| {
            measured.ok_or_else(|| {
                cx.missing(
                    &format!("{prefix}.metrics.requests_per_second.successful.mean"),
                    &format!("needed to place the {what} stage on the rate axis"),
                )
            })
        };
        // Labels show the measured rate to two decimals; the load keeps every digit.
        let short = |m: f64| fmt_num((m * 100.0).round() / 100.0);
        let (kind, load, label) = match strat {
            Strategy::Rate(r) => (LoadKind::Rate, r, rate_label(r)),
            Strategy::Concurrent(c) if !any_rate => {
                (LoadKind::Concurrency, c, concurrency_label(c))
            }
            Strategy::Other(name, Some(c)) if !any_rate => (
                LoadKind::Concurrency,
                c,
                format!("{name} ({})", concurrency_label(c)),
            ),
            Strategy::Concurrent(c) => {
                let m = measured_or_err("concurrent")?;
                (
                    LoadKind::Rate,
                    m,
                    format!("{} (measured {} req/s)", concurrency_label(c), short(m)),
                )
            }
            Strategy::Other(name, _) => {
                let m = measured_or_err(&name)?;
                (
                    LoadKind::Rate,
                    m,
                    format!("{name} (measured {} req/s)", short(m)),
                )
            }
        };
        stage.load_kind = kind;
        stage.load = load;
        stage.label = label;
        stages.push(stage);
    }
    Ok(stages)
}
