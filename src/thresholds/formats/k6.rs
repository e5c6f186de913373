//! k6 summary JSON, one run, one stage, in three layouts:
//! - legacy `--summary-export` (the default through k6 2.x): statistics flat on each metric
//!   (`metrics.<name>.med`, `p(95)`, ...; a rate's ratio in `value`);
//! - a legacy `handleSummary` dump: statistics under `metrics.<name>.values`;
//! - the machine-readable summary 1.0.0 (k6 1.5 on, `--new-machine-readable-summary`, for both
//!   `--summary-export` and `handleSummary`): `version`, `metadata.k6Version` and a list
//!   `results.metrics[]` of `{name, type, contains, values}`. Its trends carry only `avg`, `min`,
//!   `med`, `max`, `p(90)` and `p(95)`, so it has no p99, and its rates carry
//!   `{matches, total, rate}` instead of `passes`/`fails`.
//!
//! Time trends are in milliseconds; a legacy `p(99)` is there only with
//! `--summary-trend-stats="avg,min,med,max,p(90),p(95),p(99)"`. A script that measures TTFT or
//! ITL itself records custom trends, looked up as `ttft` / `time_to_first_token` and `itl` /
//! `inter_token_latency`; without one, TTFT falls back to `http_req_waiting`, which is time to
//! first byte. The load is `vus_max` (virtual users, i.e. concurrency).

use serde_json::Value;

use super::{concurrency_label, get, ms, quantiles, Cx, ImportError};
use crate::thresholds::stages::{FirstMetric, GapMetric, LoadKind, Quantiles, Stage};

const TTFT_TREND: &str =
    "k6 custom trend `{name}` as recorded by the test script (its definition is the script's)";
const TTFB: &str = "k6 `http_req_waiting`: time to the response headers (TTFB), not to the first token; compared with inferprobe's time to first byte";
const ITL_TREND: &str =
    "k6 custom trend `{name}` as recorded by the test script, taken as one value per gap";
const NO_ITL: &str = "not measured (no `itl` trend in the k6 summary)";
const HINT: &str = "run k6 with `--summary-trend-stats=\"avg,min,med,max,p(90),p(95),p(99)\"`";

/// The statistics object of metric `name`: `results.metrics[i].values` (machine-readable),
/// `metrics.<name>.values` (`handleSummary`) or `metrics.<name>` (`--summary-export`).
fn stats<'v>(doc: &'v Value, name: &str) -> Option<(String, &'v Value)> {
    if let Some(list) = get(doc, &["results", "metrics"]).and_then(Value::as_array) {
        return list.iter().enumerate().find_map(|(i, m)| {
            (m.get("name").and_then(Value::as_str) == Some(name))
                .then(|| {
                    m.get("values")
                        .map(|v| (format!("results.metrics[{i}].values"), v))
                })
                .flatten()
        });
    }
    let m = get(doc, &["metrics", name])?;
    Some(match m.get("values") {
        Some(v) => (format!("metrics.{name}.values"), v),
        None => (format!("metrics.{name}"), m),
    })
}

/// Where metric `name` would be in this file's layout, for messages.
fn metric_path(doc: &Value, name: &str) -> String {
    if get(doc, &["results", "metrics"]).is_some() {
        format!("results.metrics[name={name}]")
    } else {
        format!("metrics.{name}")
    }
}

fn trend(cx: &Cx<'_>, doc: &Value, name: &str, required: bool) -> Result<Quantiles, ImportError> {
    let Some((prefix, s)) = stats(doc, name) else {
        return Ok(Quantiles::default());
    };
    let p50 = match cx.opt_num(s, &prefix, &["med"])? {
        Some(v) => Some(v),
        None => cx.opt_num(s, &prefix, &["p(50)"])?,
    };
    let p95 = cx.opt_num(s, &prefix, &["p(95)"])?;
    let p99 = cx.opt_num(s, &prefix, &["p(99)"])?;
    if required && p95.is_none() {
        return Err(cx.missing(&format!("{prefix}.p(95)"), HINT));
    }
    Ok(quantiles(p50.map(ms), p95.map(ms), p99.map(ms)))
}

/// Parses one k6 summary file.
pub(crate) fn parse(cx: &Cx<'_>, doc: &Value) -> Result<Stage, ImportError> {
    let (first_metric, ttft_definition, ttft) = match ["ttft", "time_to_first_token"]
        .into_iter()
        .find(|n| stats(doc, n).is_some())
    {
        Some(n) => (
            FirstMetric::Ttft,
            TTFT_TREND.replace("{name}", n),
            trend(cx, doc, n, true)?,
        ),
        None => {
            if stats(doc, "http_req_waiting").is_none() {
                return Err(cx.missing(
                    &metric_path(doc, "ttft"),
                    "record a `ttft` Trend in the script, or keep `http_req_waiting`",
                ));
            }
            (
                FirstMetric::Ttfb,
                TTFB.to_string(),
                trend(cx, doc, "http_req_waiting", true)?,
            )
        }
    };
    let (itl_definition, itl) = match ["itl", "inter_token_latency"]
        .into_iter()
        .find(|n| stats(doc, n).is_some())
    {
        Some(n) => (ITL_TREND.replace("{name}", n), trend(cx, doc, n, true)?),
        None => (NO_ITL.to_string(), Quantiles::default()),
    };
    let vus = match stats(doc, "vus_max") {
        // `--summary-export` writes `value`; `handleSummary` writes `value` or only `max`.
        Some((p, s)) => match cx.opt_num(s, &p, &["value"])? {
            Some(v) => v,
            None => cx.num(s, &p, &["max"], "")?,
        },
        None => return Err(cx.missing(&metric_path(doc, "vus_max"), "")),
    };
    // `(failed, succeeded)` request counts of `http_req_failed`, whose true samples are failures.
    let (error_rate, failed_count) = match stats(doc, "http_req_failed") {
        Some((p, s)) => {
            let rate = match cx.opt_num(s, &p, &["value"])? {
                Some(v) => Some(v),
                None => cx.opt_num(s, &p, &["rate"])?,
            };
            let counts = match cx.opt_count(s, &p, &["matches"])? {
                // Machine-readable: `matches` true samples out of `total`.
                Some(m) => cx
                    .opt_count(s, &p, &["total"])?
                    .map(|t| (m, t.saturating_sub(m))),
                // Legacy: `passes` true samples, `fails` false ones.
                None => cx
                    .opt_count(s, &p, &["passes"])?
                    .zip(cx.opt_count(s, &p, &["fails"])?),
            };
            (rate, counts)
        }
        None => (None, None),
    };
    let requests = match stats(doc, "http_reqs") {
        Some((p, s)) => cx.opt_count(s, &p, &["count"])?,
        None => failed_count.map(|(t, f)| t + f),
    };
    Ok(Stage {
        source_file: cx.file.to_string(),
        format: cx.format,
        label: concurrency_label(vus),
        load_kind: LoadKind::Concurrency,
        load: vus,
        ttft,
        itl,
        e2e: trend(cx, doc, "http_req_duration", false)?,
        error_rate,
        requests,
        first_metric,
        ttft_definition,
        gap_metric: GapMetric::Itl,
        itl_definition,
    })
}
