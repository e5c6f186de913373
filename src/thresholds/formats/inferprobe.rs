//! `inferprobe calibrate` results ([`CalibrateResult`]): every stage of a run in one file, with
//! inferprobe's own timing definitions and the SLO the run was judged against.

use super::{concurrency_label, error_rate, rate_label, round_ns, Cx, ImportError};
use crate::calibrate::format::{
    CalibrateResult, Quantiles as Percentiles, MODE_CONCURRENCY, MODE_RATE, TOOL,
};
use crate::thresholds::stages::{FirstMetric, GapMetric, LoadKind, Quantiles, Slo, Stage};

const TTFT: &str = "inferprobe: time to the first event carrying generated output (answer text, reasoning or tool-call arguments)";
const ITL: &str = "inferprobe: gap between consecutive output-bearing events, one value per gap";

fn q(p: Percentiles) -> Quantiles {
    Quantiles {
        p50: p.p50.map(round_ns),
        p95: p.p95.map(round_ns),
        p99: p.p99.map(round_ns),
    }
}

/// Parses a calibrate result into its stages and recorded SLO.
pub(crate) fn parse(cx: &Cx<'_>, text: &str) -> Result<(Vec<Stage>, Slo), ImportError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result: CalibrateResult = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| cx.invalid(&e.path().to_string(), e.inner().to_string()))?;
    if result.tool != TOOL {
        return Err(cx.invalid("tool", format!("is {:?}, expected {TOOL:?}", result.tool)));
    }
    let rate = match result.mode.as_str() {
        MODE_CONCURRENCY => false,
        MODE_RATE => true,
        other => {
            return Err(cx.invalid(
                "mode",
                format!("is {other:?}, expected {MODE_CONCURRENCY:?} or {MODE_RATE:?}"),
            ))
        }
    };
    let stages = result
        .stages
        .iter()
        .map(|s| {
            let (load_kind, label) = if rate {
                (LoadKind::Rate, rate_label(s.load))
            } else {
                (LoadKind::Concurrency, concurrency_label(s.load))
            };
            Stage {
                source_file: cx.file.to_string(),
                format: cx.format,
                label,
                load_kind,
                load: s.load,
                ttft: q(s.ttft_seconds),
                itl: q(s.itl_seconds),
                e2e: q(s.e2e_seconds),
                error_rate: error_rate(s.errors, s.requests.saturating_sub(s.errors)),
                requests: Some(s.requests),
                first_metric: FirstMetric::Ttft,
                ttft_definition: TTFT.to_string(),
                gap_metric: GapMetric::Itl,
                itl_definition: ITL.to_string(),
            }
        })
        .collect();
    // calibrate judges errors against one limit, the breach level; the warning level stays the
    // default unless that is above the breach level.
    let breach = result.slo.error_rate;
    let slo = Slo {
        ttft_p95: result.slo.ttft_p95_seconds,
        itl_p95: result.slo.itl_p95_seconds,
        error_rate_warn: Slo::default().error_rate_warn.min(breach),
        error_rate_breach: breach,
    };
    Ok((stages, slo))
}
