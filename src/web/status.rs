//! The status page at `/` and the per-probe waterfalls at `/waterfall`: server-rendered HTML
//! with inline SVG, no script and no external asset, so it works without network access.
//!
//! Every value from the config or the network is escaped ([`esc`]); errors were redacted by the
//! engine before they reached the status board.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::{ms, text};
use crate::redact::html_escape as esc;
use crate::runtime::{Daemon, JourneyRow, ProbeRecord};

/// Width and height of a sparkline, in CSS pixels.
const SPARK_W: f64 = 180.0;
const SPARK_H: f64 = 36.0;

/// Width of a waterfall's time axis, in CSS pixels.
const FALL_W: f64 = 720.0;

const STYLE: &str = concat!(
    "body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}",
    "td,th{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}",
    "td.n{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#1a7f37}",
    ".bad{color:#cf222e;font-weight:600}svg .ttft{stroke:#0969da;fill:none}",
    "svg .e2e{stroke:#8c959f;fill:none}svg circle.ok{fill:#1a7f37}svg circle.bad{fill:#cf222e}",
    "svg .gap{fill:#0969da;fill-opacity:.25;stroke:#0969da;stroke-width:.5}",
    "svg .mark{stroke:#24292f}svg text{font-size:11px}small{color:#57606a}"
);

fn page_start(h: &mut String, title: &str, refresh: bool) {
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{}</title>{}\
         <style>{STYLE}</style></head><body>",
        esc(title),
        if refresh {
            "<meta http-equiv=\"refresh\" content=\"10\"/>"
        } else {
            ""
        }
    );
}

/// A query string value, percent-encoded (everything but unreserved characters).
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `GET /`: per target and scenario, the latest probe, a sparkline of the last probes' TTFT and
/// E2E with a green or red dot per probe, the success ratio and results over that window, the
/// last failure, and links to each recent probe's waterfall; then the journeys.
pub async fn status_page(State(d): State<Arc<Daemon>>) -> Html<String> {
    let rows = d.status().await;
    let mut h = String::with_capacity(8192);
    page_start(&mut h, "inferprobe", true);
    let _ = write!(
        h,
        "<h1>inferprobe</h1><p>version {} (revision {}) · <a href=\"/metrics\">metrics</a> · \
         {} target/scenario pairs</p>",
        esc(crate::VERSION),
        esc(crate::REVISION),
        rows.len()
    );
    if let Some((endpoint, s)) = d.otlp_status() {
        otlp_line(&mut h, &endpoint, &s, SystemTime::now());
    }
    h.push_str(concat!(
        "<table id=\"probes\"><thead><tr><th>target</th><th>dialect</th><th>model</th>",
        "<th>scenario</th><th>schedule</th><th>result</th><th>TTFT</th><th>ITL p50</th>",
        "<th>E2E</th><th>tokens in/out</th><th>cost</th><th>age</th><th>recent probes</th>",
        "<th>success</th><th>last failure</th></tr></thead><tbody>"
    ));
    let now = SystemTime::now();
    for r in &rows {
        let _ = write!(
            h,
            "<tr class=\"probe-row\" data-target=\"{}\" data-scenario=\"{}\"><td title=\"{}\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&r.target),
            esc(&r.scenario),
            esc(&r.base_url),
            esc(&r.target),
            esc(r.dialect),
            esc(&r.model),
            esc(&r.scenario),
            esc(&r.schedule)
        );
        match &r.latest {
            None => {
                h.push_str("<td>pending</td><td></td><td></td><td></td><td></td><td></td><td></td>")
            }
            Some(o) => {
                let class = if o.result.is_success() { "ok" } else { "bad" };
                let age = now.duration_since(o.started_at).unwrap_or_default();
                let _ = write!(
                    h,
                    "<td class=\"{class}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                     <td class=\"n\">{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td>\
                     <td class=\"n\">{}s</td>",
                    o.result.as_str(),
                    ms(o.ttft),
                    ms(o.itl_summary().map(|s| s.p50)),
                    ms(o.e2e),
                    o.input_tokens
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "–".into()),
                    o.output_tokens,
                    o.cost_usd
                        .map(|c| format!("${c:.6}"))
                        .unwrap_or_else(|| "–".into()),
                    age.as_secs(),
                );
            }
        }
        let history = d.history(&r.target, &r.scenario);
        h.push_str("<td>");
        sparkline(&mut h, &history);
        h.push_str("<br/>");
        for p in history.iter().rev().take(10) {
            let _ = write!(
                h,
                "<a class=\"fall-link {}\" href=\"/waterfall?target={}&amp;scenario={}&amp;seq={}\">#{}</a> ",
                if p.result.is_success() { "ok" } else { "bad" },
                q(&r.target),
                q(&r.scenario),
                p.seq,
                p.seq
            );
        }
        h.push_str("</td>");
        window_summary(&mut h, &history);
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
    journey_table(&mut h, &d.journey_status().await, now);
    h.push_str("</body></html>\n");
    Html(h)
}

/// The success ratio and results by class over the window, and the last failure with its
/// reason.
fn window_summary(h: &mut String, history: &[ProbeRecord]) {
    if history.is_empty() {
        h.push_str("<td></td><td></td>");
        return;
    }
    let ok = history.iter().filter(|p| p.result.is_success()).count();
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for p in history {
        *by.entry(p.result.as_str()).or_default() += 1;
    }
    let results: Vec<String> = by.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = write!(
        h,
        "<td class=\"n\"><span class=\"ratio\">{:.0}%</span><br/><small>{}</small></td>",
        100.0 * ok as f64 / history.len() as f64,
        esc(&results.join(", "))
    );
    match history.iter().rev().find(|p| !p.result.is_success()) {
        Some(f) => {
            let age = SystemTime::now()
                .duration_since(f.started_at)
                .unwrap_or_default();
            let _ = write!(
                h,
                "<td class=\"last-failure\"><span class=\"bad\">{}</span> {}s ago<br/><small>{}</small></td>",
                f.result.as_str(),
                age.as_secs(),
                esc(f.error.as_deref().unwrap_or(""))
            );
        }
        None => h.push_str("<td class=\"last-failure\"></td>"),
    }
}

/// An inline SVG of the last probes: TTFT (blue) and E2E (grey) lines on one scale, and a dot
/// per probe, green for a success and red for any other result.
fn sparkline(h: &mut String, history: &[ProbeRecord]) {
    let n = history.len();
    let _ = write!(
        h,
        "<svg class=\"spark\" width=\"{SPARK_W}\" height=\"{SPARK_H}\" viewBox=\"0 0 {SPARK_W} {SPARK_H}\" role=\"img\" aria-label=\"TTFT and E2E of the last {n} probes\">"
    );
    if n > 0 {
        let top = history
            .iter()
            .map(|p| p.e2e.unwrap_or(p.elapsed).max(p.ttft.unwrap_or_default()))
            .max()
            .unwrap_or_default()
            .as_secs_f64()
            .max(1e-6);
        let step = if n > 1 {
            (SPARK_W - 8.0) / (n - 1) as f64
        } else {
            0.0
        };
        let x = |i: usize| 4.0 + step * i as f64;
        let y = |d: Duration| (SPARK_H - 8.0) - (d.as_secs_f64() / top) * (SPARK_H - 12.0);
        for (class, get) in [
            (
                "e2e",
                (|p: &ProbeRecord| p.e2e) as fn(&ProbeRecord) -> Option<Duration>,
            ),
            ("ttft", |p: &ProbeRecord| p.ttft),
        ] {
            let points: Vec<String> = history
                .iter()
                .enumerate()
                .filter_map(|(i, p)| get(p).map(|d| format!("{:.1},{:.1}", x(i), y(d))))
                .collect();
            if !points.is_empty() {
                let _ = write!(
                    h,
                    "<polyline class=\"{class}\" points=\"{}\"/>",
                    points.join(" ")
                );
            }
        }
        for (i, p) in history.iter().enumerate() {
            let _ = write!(
                h,
                "<circle class=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>#{} {}</title></circle>",
                if p.result.is_success() { "ok" } else { "bad" },
                x(i),
                SPARK_H - 3.0,
                p.seq,
                p.result.as_str()
            );
        }
    }
    h.push_str("</svg>");
}

/// The status page's journeys: the latest run of each, its failing step and totals.
fn journey_table(h: &mut String, rows: &[JourneyRow], now: SystemTime) {
    if rows.is_empty() {
        return;
    }
    h.push_str(concat!(
        "<h2>Journeys</h2><table id=\"journeys\"><thead><tr><th>target</th><th>journey</th>",
        "<th>steps</th><th>result</th><th>failed step</th><th>duration</th><th>model calls</th>",
        "<th>tokens in/out</th><th>cost</th><th>age</th><th>error</th></tr></thead><tbody>"
    ));
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td>",
            esc(&r.target),
            esc(&r.journey),
            r.steps
        );
        match &r.latest {
            None => h.push_str(
                "<td>pending</td><td></td><td></td><td></td><td></td><td></td><td></td><td></td>",
            ),
            Some(o) => {
                let class = if o.result.is_success() { "ok" } else { "bad" };
                let age = now.duration_since(o.started_at).unwrap_or_default();
                let _ = write!(
                    h,
                    "<td class=\"{class}\">{}</td><td>{}</td><td class=\"n\">{}</td>\
                     <td class=\"n\">{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td>\
                     <td class=\"n\">{}s</td><td>{}</td>",
                    o.result.as_str(),
                    esc(o.failed_step.as_deref().unwrap_or("")),
                    ms(Some(o.duration)),
                    o.model_calls(),
                    o.input_tokens()
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "–".into()),
                    o.output_tokens(),
                    o.cost_usd()
                        .map(|c| format!("${c:.6}"))
                        .unwrap_or_else(|| "–".into()),
                    age.as_secs(),
                    esc(o.error.as_deref().unwrap_or(""))
                );
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
}

/// `GET /waterfall?target=T&scenario=S&seq=N`: one recent probe drawn to scale. Milestones
/// (request sent, headers, first event, first token, first answer token, end) are marks on a
/// time axis, each gap between two output-bearing events is a bar, and every event is listed
/// with its offset, gap, kind and size.
pub async fn waterfall_page(
    State(d): State<Arc<Daemon>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (Some(target), Some(scenario), Some(seq)) = (
        params.get("target"),
        params.get("scenario"),
        params.get("seq").and_then(|s| s.parse::<u64>().ok()),
    ) else {
        return text(
            StatusCode::BAD_REQUEST,
            "expected query parameters target, scenario and seq (a number)\n".to_string(),
        );
    };
    let Some(p) = d
        .history(target, scenario)
        .into_iter()
        .find(|p| p.seq == seq)
    else {
        return text(
            StatusCode::NOT_FOUND,
            "no such probe among the recent ones kept (global.status_history)\n".to_string(),
        );
    };
    let mut h = String::with_capacity(8192);
    page_start(&mut h, &format!("probe #{seq}"), false);
    let _ = write!(
        h,
        "<h1>Probe #{seq}</h1><p><a href=\"/\">status</a> · target {} · scenario {} · result \
         <span class=\"{}\">{}</span>{}</p>",
        esc(target),
        esc(scenario),
        if p.result.is_success() { "ok" } else { "bad" },
        p.result.as_str(),
        p.error
            .as_deref()
            .map(|e| format!(" · {}", esc(e)))
            .unwrap_or_default()
    );
    waterfall_svg(&mut h, &p);
    milestone_table(&mut h, &p);
    event_table(&mut h, &p);
    h.push_str("</body></html>\n");
    Html(h).into_response()
}

fn milestones(p: &ProbeRecord) -> [(&'static str, Option<Duration>); 6] {
    [
        ("request sent", Some(Duration::ZERO)),
        ("headers", p.ttfb),
        ("first event", p.ttfe),
        ("first token", p.ttft),
        ("first answer token", p.ttfat),
        ("end", p.e2e),
    ]
}

fn waterfall_svg(h: &mut String, p: &ProbeRecord) {
    let outputs: Vec<Duration> = p
        .events
        .iter()
        .filter(|e| e.kind.is_output())
        .map(|e| e.offset)
        .collect();
    let end = p
        .e2e
        .unwrap_or(p.elapsed)
        .max(p.events.last().map(|e| e.offset).unwrap_or_default())
        .as_secs_f64()
        .max(1e-6);
    let left = 140.0;
    let x = |d: Duration| left + d.as_secs_f64() / end * FALL_W;
    let marks = milestones(p);
    let rows = marks.len() + 1;
    let height = 22.0 * rows as f64 + 24.0;
    let _ = write!(
        h,
        "<svg class=\"waterfall\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"waterfall\">",
        w = left + FALL_W + 80.0
    );
    for (i, (name, at)) in marks.iter().enumerate() {
        let y = 18.0 + 22.0 * i as f64;
        let _ = write!(h, "<text x=\"4\" y=\"{y}\">{name}</text>");
        if let Some(at) = at {
            let _ = write!(
                h,
                "<line class=\"mark\" x1=\"{x:.1}\" y1=\"{y1:.1}\" x2=\"{x:.1}\" y2=\"{y2:.1}\"/>\
                 <text x=\"{tx:.1}\" y=\"{y}\">{:.1} ms</text>",
                at.as_secs_f64() * 1e3,
                x = x(*at),
                y1 = y - 12.0,
                y2 = y + 4.0,
                tx = x(*at) + 4.0,
            );
        }
    }
    let y = 18.0 + 22.0 * marks.len() as f64;
    let _ = write!(
        h,
        "<text x=\"4\" y=\"{y}\">{} token gaps</text>",
        outputs.len().saturating_sub(1)
    );
    for w in outputs.windows(2) {
        let (a, b) = (x(w[0]), x(w[1]));
        let _ = write!(
            h,
            "<rect class=\"gap\" x=\"{a:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"10\"><title>{:.1} ms</title></rect>",
            y - 10.0,
            (b - a).max(0.5),
            w[1].saturating_sub(w[0]).as_secs_f64() * 1e3
        );
    }
    h.push_str("</svg>");
}

fn milestone_table(h: &mut String, p: &ProbeRecord) {
    h.push_str("<h2>Milestones</h2><table id=\"milestones\"><tbody>");
    for (name, at) in milestones(p) {
        let _ = write!(h, "<tr><th>{name}</th><td class=\"n\">{}</td></tr>", ms(at));
    }
    let _ = write!(
        h,
        "<tr><th>output tokens</th><td class=\"n\">{}</td></tr><tr><th>token gaps</th>\
         <td class=\"n\">{}</td></tr></tbody></table>",
        p.output_tokens, p.gaps
    );
}

fn event_table(h: &mut String, p: &ProbeRecord) {
    h.push_str(concat!(
        "<h2>Events</h2><table id=\"events\"><thead><tr><th>#</th><th>offset</th><th>gap</th>",
        "<th>kind</th><th>bytes</th></tr></thead><tbody>"
    ));
    let mut prev: Option<Duration> = None;
    for (i, e) in p.events.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td>\
             <td class=\"n\">{}</td></tr>",
            i + 1,
            ms(Some(e.offset)),
            prev.map(|p| ms(Some(e.offset.saturating_sub(p))))
                .unwrap_or_default(),
            e.kind.as_str(),
            e.bytes
        );
        prev = Some(e.offset);
    }
    h.push_str("</tbody></table>");
}

/// One line on the OTLP export: where to, how the last export ended, the last success.
fn otlp_line(h: &mut String, endpoint: &str, s: &crate::otlp::ExportStatus, now: SystemTime) {
    let ago = |t: Option<SystemTime>| match t {
        Some(t) => format!(
            "{}s ago",
            now.duration_since(t).unwrap_or_default().as_secs()
        ),
        None => "never".to_string(),
    };
    let (class, last) = match s.last_result {
        None => ("", "no export yet".to_string()),
        Some(crate::metrics::otlp::ExportResult::Success) => {
            ("ok", format!("last export ok {}", ago(s.last_export)))
        }
        Some(r) => (
            "bad",
            format!("last export failed ({}) {}", r.as_str(), ago(s.last_export)),
        ),
    };
    let _ = write!(
        h,
        "<p id=\"otlp\">OTLP export to {}: <span class=\"{class}\">{}</span>; last success {}</p>",
        esc(endpoint),
        esc(&last),
        esc(&ago(s.last_success))
    );
}
