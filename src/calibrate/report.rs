//! The summary printed on stdout when a calibration ends.

use std::fmt::Write as _;

use crate::calibrate::chart::load_label;
use crate::calibrate::format::{CalibrateResult, Quantiles, MODE_RATE};
use crate::calibrate::knee::{Knee, QUEUEING_FACTOR, SATURATION_FACTOR};
use crate::calibrate::stats::{breach_reasons, error_rate};

fn ms(v: Option<f64>) -> String {
    v.map(|s| format!("{:.1}", s * 1e3))
        .unwrap_or_else(|| "–".to_string())
}

fn three(q: &Quantiles) -> String {
    format!("{} / {} / {}", ms(q.p50), ms(q.p95), ms(q.p99))
}

/// The stage table and what it means.
pub fn table(result: &CalibrateResult, knee: &Knee) -> String {
    let unit = if result.mode == MODE_RATE {
        "req/s"
    } else {
        "concurrent"
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}, {}), {} stages",
        result.target, result.model, result.dialect, result.mode
    );
    let _ = writeln!(
        s,
        "{:>8} {:>8} {:>7} {:>24} {:>24} {:>17} {:>10}  SLO",
        if result.mode == MODE_RATE {
            "rate"
        } else {
            "conc."
        },
        "requests",
        "errors",
        "TTFT p50/p95/p99 ms",
        "ITL p50/p95/p99 ms",
        "E2E p50/p95 ms",
        "out tok/s",
    );
    for st in &result.stages {
        let _ = writeln!(
            s,
            "{:>8} {:>8} {:>7} {:>24} {:>24} {:>17} {:>10.1}  {}",
            load_label(st.load),
            st.requests,
            format!("{:.1}%", error_rate(st) * 100.0),
            three(&st.ttft_seconds),
            three(&st.itl_seconds),
            format!("{} / {}", ms(st.e2e_seconds.p50), ms(st.e2e_seconds.p95)),
            st.output_tokens_per_second,
            if st.breach { "BREACH" } else { "ok" }
        );
    }
    let base = result
        .stages
        .first()
        .and_then(|st| st.ttft_seconds.p95)
        .map(|p| format!("{:.1} ms", p * 1e3))
        .unwrap_or_else(|| "–".to_string());
    let at = |i: Option<usize>| {
        i.and_then(|i| result.stages.get(i))
            .map(|st| format!("{} {unit}", load_label(st.load)))
    };
    let _ = writeln!(s);
    match at(knee.knee) {
        Some(k) => {
            let _ = writeln!(
                s,
                "knee:        {k} (highest load before p95 TTFT passed {QUEUEING_FACTOR}× the lowest \
                 stage's {base} and before any SLO breach)"
            );
        }
        None if knee.first_breach == Some(0) => {
            let _ = writeln!(
                s,
                "knee:        none: the lowest load already breaks the SLO; start lower"
            );
        }
        None => {
            let _ = writeln!(
                s,
                "knee:        not reached: p95 TTFT stayed within {QUEUEING_FACTOR}× of {base} \
                 and within the SLO; try higher loads"
            );
        }
    }
    if let Some(q) = at(knee.queueing) {
        let _ = writeln!(
            s,
            "queueing:    from {q} (p95 TTFT > {QUEUEING_FACTOR}× {base})"
        );
    }
    if let Some(q) = at(knee.saturation) {
        let _ = writeln!(
            s,
            "saturated:   from {q} (p95 TTFT > {SATURATION_FACTOR}× {base})"
        );
    }
    match knee.first_breach.and_then(|i| result.stages.get(i)) {
        Some(st) => {
            let _ = writeln!(
                s,
                "SLO breach:  at {} {unit}: {}",
                load_label(st.load),
                breach_reasons(st, &result.slo).join(", ")
            );
        }
        None => {
            let _ = writeln!(
                s,
                "SLO:         met by every stage (p95 TTFT ≤ {:.0} ms, p95 ITL ≤ {:.0} ms, errors ≤ {:.1} %)",
                result.slo.ttft_p95_seconds * 1e3,
                result.slo.itl_p95_seconds * 1e3,
                result.slo.error_rate * 100.0
            );
        }
    }
    s
}
