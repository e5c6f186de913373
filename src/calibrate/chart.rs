//! The saturation curve as a hand-drawn SVG: load on x, p95/p50 TTFT on the left axis, output
//! throughput on the right, the knee as a vertical line. No plotting crate: a few hundred bytes
//! of markup per series is all it takes.

use std::fmt::Write as _;

use crate::calibrate::format::{CalibrateResult, MODE_RATE};
use crate::calibrate::knee::Knee;
use crate::redact::html_escape as esc;

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 790.0;
const TOP: f64 = 80.0;
const BOTTOM: f64 = 430.0;

const TTFT_P95: &str = "#d62728";
const TTFT_P50: &str = "#ff9896";
const THROUGHPUT: &str = "#1f77b4";
const KNEE: &str = "#2ca02c";
const SATURATION: &str = "#7f7f7f";

/// A round axis maximum at or above `v` and its tick step (1, 2 or 5 × a power of ten).
pub fn nice_axis(v: f64) -> (f64, f64) {
    if !(v.is_finite() && v > 0.0) {
        return (1.0, 0.2);
    }
    let raw = v / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((v / step).ceil() * step, step)
}

/// A number with no more decimals than `step` needs.
fn num(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{v:.decimals$}")
}

/// A load value as written in labels (`4`, `0.5`).
pub fn load_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Maps loads to x: logarithmic when the loads are positive and span a factor of 4 or more
/// (the usual 1, 2, 4, 8, … ramp), else linear.
struct XScale {
    log: bool,
    min: f64,
    max: f64,
}

impl XScale {
    fn new(loads: &[f64]) -> XScale {
        let min = loads.iter().copied().fold(f64::INFINITY, f64::min);
        let max = loads.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log = min > 0.0 && max / min >= 4.0;
        XScale { log, min, max }
    }

    fn x(&self, v: f64) -> f64 {
        let pad = 30.0;
        let (a, b, v) = if self.log {
            (self.min.ln(), self.max.ln(), v.ln())
        } else {
            (self.min, self.max, v)
        };
        // One stage (or equal loads): nothing to spread, centre it.
        if b.partial_cmp(&a) != Some(std::cmp::Ordering::Greater) {
            return (LEFT + RIGHT) / 2.0;
        }
        LEFT + pad + (v - a) / (b - a) * (RIGHT - LEFT - 2.0 * pad)
    }
}

fn y(v: f64, max: f64) -> f64 {
    BOTTOM - v / max * (BOTTOM - TOP)
}

/// Draws the chart of `result` with its landmarks.
pub fn svg(result: &CalibrateResult, knee: &Knee) -> String {
    let stages = &result.stages;
    let loads: Vec<f64> = stages.iter().map(|s| s.load).collect();
    let xs = XScale::new(&loads);
    let unit = if result.mode == MODE_RATE {
        "req/s"
    } else {
        "concurrent"
    };
    let ms = |v: Option<f64>| v.map(|s| s * 1e3);
    let ttft_max = stages
        .iter()
        .filter_map(|s| ms(s.ttft_seconds.p95))
        .fold(0.0, f64::max);
    // 10 % headroom keeps the highest point off the frame.
    let (lmax, lstep) = nice_axis(ttft_max * 1.1);
    let tput_max = stages
        .iter()
        .map(|s| s.output_tokens_per_second)
        .fold(0.0, f64::max);
    let (rmax, rstep) = nice_axis(tput_max * 1.1);

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        o,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="17" font-weight="bold">Saturation curve: {} ({})</text>"#,
        WIDTH / 2.0,
        esc(&result.target),
        esc(&result.model)
    );
    let knee_text = match knee.load(stages) {
        Some(k) => format!("knee: {} {unit}", load_label(k)),
        None => "no knee found in the tested loads".to_string(),
    };
    let _ = writeln!(
        o,
        r##"<text x="{}" y="48" text-anchor="middle" fill="#444">{}, {} stages, SLO p95 TTFT {} ms; {}</text>"##,
        WIDTH / 2.0,
        esc(&result.dialect),
        esc(&result.mode),
        num(result.slo.ttft_p95_seconds * 1e3, 1.0),
        esc(&knee_text)
    );

    // Grid and left axis (TTFT, ms).
    let mut t = 0.0;
    while t <= lmax + lstep / 2.0 {
        let yy = y(t, lmax);
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{RIGHT}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            yy + 4.0,
            num(t, lstep)
        );
        t += lstep;
    }
    // Right axis (throughput).
    let mut t = 0.0;
    while t <= rmax + rstep / 2.0 {
        let yy = y(t, rmax);
        let _ = writeln!(
            o,
            r#"<line x1="{RIGHT}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="{THROUGHPUT}"/><text x="{}" y="{:.1}" fill="{THROUGHPUT}">{}</text>"#,
            RIGHT + 5.0,
            RIGHT + 8.0,
            yy + 4.0,
            num(t, rstep)
        );
        t += rstep;
    }
    // X ticks at each stage's load; thinned when there are many.
    let every = stages.len().div_ceil(12).max(1);
    for (i, l) in loads.iter().enumerate() {
        let xx = xs.x(*l);
        let _ = writeln!(
            o,
            r#"<line x1="{xx:.1}" y1="{BOTTOM}" x2="{xx:.1}" y2="{}" stroke="black"/>"#,
            BOTTOM + 5.0
        );
        if i % every == 0 {
            let _ = writeln!(
                o,
                r#"<text x="{xx:.1}" y="{}" text-anchor="middle">{}</text>"#,
                BOTTOM + 20.0,
                load_label(*l)
            );
        }
    }
    // Axes and their titles.
    let _ = writeln!(
        o,
        r#"<path d="M{LEFT} {TOP} V{BOTTOM} H{RIGHT} V{TOP}" fill="none" stroke="black"/>"#
    );
    let x_title = if result.mode == MODE_RATE {
        "offered load (requests per second)"
    } else {
        "concurrency (requests in flight)"
    };
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">{}{}</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 42.0,
        x_title,
        if xs.log { ", log scale" } else { "" }
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate(22 {}) rotate(-90)" text-anchor="middle">time to first token (ms)</text>"#,
        (TOP + BOTTOM) / 2.0
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate({} {}) rotate(90)" text-anchor="middle" fill="{THROUGHPUT}">output tokens per second</text>"#,
        WIDTH - 20.0,
        (TOP + BOTTOM) / 2.0
    );

    // The SLO line, when it falls on the chart.
    let slo_ms = result.slo.ttft_p95_seconds * 1e3;
    if slo_ms <= lmax {
        let yy = y(slo_ms, lmax);
        let _ = writeln!(
            o,
            r#"<line x1="{LEFT}" y1="{yy:.1}" x2="{RIGHT}" y2="{yy:.1}" stroke="{TTFT_P95}" stroke-dasharray="2 4"/><text x="{}" y="{:.1}" fill="{TTFT_P95}">SLO p95 TTFT</text>"#,
            LEFT + 4.0,
            yy - 4.0
        );
    }

    // Landmarks.
    if let Some(s) = knee.saturation.and_then(|i| stages.get(i)) {
        let xx = xs.x(s.load);
        let _ = writeln!(
            o,
            r#"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{BOTTOM}" stroke="{SATURATION}" stroke-dasharray="3 3"/><text x="{:.1}" y="{}" fill="{SATURATION}">2× TTFT: {}</text>"#,
            xx + 4.0,
            BOTTOM - 8.0,
            load_label(s.load)
        );
    }
    if let Some(k) = knee.load(stages) {
        let xx = xs.x(k);
        let _ = writeln!(
            o,
            r#"<line class="knee" x1="{xx:.1}" y1="{}" x2="{xx:.1}" y2="{BOTTOM}" stroke="{KNEE}" stroke-width="2" stroke-dasharray="6 4"/><text class="knee" x="{xx:.1}" y="{}" text-anchor="middle" fill="{KNEE}" font-weight="bold">{}</text>"#,
            TOP - 4.0,
            TOP - 9.0,
            esc(&knee_text)
        );
    }

    // Series.
    let series = |o: &mut String, pts: Vec<(f64, f64)>, color: &str, dash: &str| {
        if pts.len() > 1 {
            let d: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                o,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                d.join(" ")
            );
        }
    };
    let p50: Vec<(f64, f64)> = stages
        .iter()
        .filter_map(|s| ms(s.ttft_seconds.p50).map(|v| (xs.x(s.load), y(v, lmax))))
        .collect();
    series(&mut o, p50.clone(), TTFT_P50, r#" stroke-dasharray="5 3""#);
    for (xx, yy) in &p50 {
        let _ = writeln!(
            o,
            r#"<circle cx="{xx:.1}" cy="{yy:.1}" r="3" fill="{TTFT_P50}"/>"#
        );
    }
    let tput: Vec<(f64, f64)> = stages
        .iter()
        .map(|s| (xs.x(s.load), y(s.output_tokens_per_second, rmax)))
        .collect();
    series(&mut o, tput.clone(), THROUGHPUT, "");
    for (xx, yy) in &tput {
        let _ = writeln!(
            o,
            r#"<rect x="{:.1}" y="{:.1}" width="7" height="7" fill="{THROUGHPUT}"/>"#,
            xx - 3.5,
            yy - 3.5
        );
    }
    let p95: Vec<(f64, f64, bool)> = stages
        .iter()
        .filter_map(|s| ms(s.ttft_seconds.p95).map(|v| (xs.x(s.load), y(v, lmax), s.breach)))
        .collect();
    series(
        &mut o,
        p95.iter().map(|(x, y, _)| (*x, *y)).collect(),
        TTFT_P95,
        "",
    );
    for (xx, yy, breach) in &p95 {
        let fill = if *breach { TTFT_P95 } else { "white" };
        let _ = writeln!(
            o,
            r#"<circle cx="{xx:.1}" cy="{yy:.1}" r="4.5" fill="{fill}" stroke="{TTFT_P95}" stroke-width="2"/>"#
        );
    }

    // Legend.
    let ly = HEIGHT - 30.0;
    let items = [
        (TTFT_P95, "p95 TTFT (filled: SLO breach)"),
        (TTFT_P50, "p50 TTFT"),
        (THROUGHPUT, "output tokens/s (right axis)"),
        (KNEE, "knee"),
    ];
    let mut lx = LEFT;
    for (color, label) in items {
        let _ = writeln!(
            o,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            esc(label)
        );
        lx += 28.0 + 6.2 * label.chars().count() as f64 + 22.0;
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_to_nice_steps() {
        assert_eq!(nice_axis(480.0), (500.0, 100.0));
        assert_eq!(nice_axis(52.0), (60.0, 20.0));
        assert_eq!(nice_axis(551.0), (600.0, 200.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
        let (max, step) = nice_axis(0.7);
        assert!((max - 0.8).abs() < 1e-12 && (step - 0.2).abs() < 1e-12);
        assert_eq!(num(0.4, 0.2), "0.4");
        assert_eq!(num(400.0, 100.0), "400");
    }

    #[test]
    fn load_labels_and_escaping() {
        assert_eq!(load_label(4.0), "4");
        assert_eq!(load_label(0.5), "0.5");
        assert_eq!(load_label(1.25), "1.25");
        assert_eq!(esc(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }

    #[test]
    fn log_scale_for_doubling_loads() {
        let xs = XScale::new(&[1.0, 2.0, 4.0, 8.0, 16.0]);
        assert!(xs.log);
        let steps: Vec<f64> = [1.0, 2.0, 4.0, 8.0, 16.0]
            .iter()
            .map(|l| xs.x(*l))
            .collect();
        // Doubling loads are evenly spaced on a log axis.
        for w in steps.windows(2) {
            assert!(((w[1] - w[0]) - (steps[1] - steps[0])).abs() < 1e-9);
        }
        assert!(!XScale::new(&[1.0, 2.0, 3.0]).log);
        assert_eq!(XScale::new(&[5.0]).x(5.0), (LEFT + RIGHT) / 2.0);
    }
}
