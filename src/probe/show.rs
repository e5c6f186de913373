//! What `probe --trace` and `probe --count` print: a stream's events one by one (JSON lines or a
//! terminal waterfall), and a summary of several probes in a row.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::trace::ItlSummary;
use super::Outcome;

/// Width of the waterfall's bar, in characters.
const BAR: usize = 40;

/// One JSON object per event: `{"type":"event","index","offset_seconds","gap_seconds","kind","bytes"}`.
/// `gap_seconds` is the time since the previous event (`null` for the first).
pub fn event_lines(o: &Outcome) -> Vec<serde_json::Value> {
    let mut prev: Option<Duration> = None;
    o.events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let gap = prev.map(|p| e.offset.saturating_sub(p).as_secs_f64());
            prev = Some(e.offset);
            serde_json::json!({
                "type": "event",
                "index": i + 1,
                "offset_seconds": e.offset.as_secs_f64(),
                "gap_seconds": gap,
                "kind": e.kind.as_str(),
                "bytes": e.bytes,
            })
        })
        .collect()
}

/// The terminal waterfall of one probe: the response headers, then every event with its offset,
/// the gap since the previous event, its kind and size, and a mark placed to scale on a bar that
/// spans the probe.
pub fn waterfall(o: &Outcome) -> String {
    let end = o
        .events
        .last()
        .map(|e| e.offset)
        .max(o.e2e)
        .max(o.ttfb)
        .unwrap_or(o.elapsed)
        .max(Duration::from_micros(1));
    let bar = |at: Duration| {
        let pos = ((at.as_secs_f64() / end.as_secs_f64()) * (BAR - 1) as f64).round() as usize;
        let mut b: Vec<char> = vec![' '; BAR];
        b[pos.min(BAR - 1)] = '█';
        b.into_iter().collect::<String>()
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>5} {:>11} {:>10}  {:<9} {:>6}  |{}|",
        "#",
        "offset",
        "gap",
        "kind",
        "bytes",
        " ".repeat(BAR)
    );
    if let Some(h) = o.ttfb {
        let _ = writeln!(
            s,
            "{:>5} {:>8.1} ms {:>10}  {:<9} {:>6}  |{}|",
            "",
            h.as_secs_f64() * 1e3,
            "",
            "headers",
            "",
            bar(h)
        );
    }
    let mut prev: Option<Duration> = None;
    for (i, e) in o.events.iter().enumerate() {
        let gap = prev
            .map(|p| format!("{:.1} ms", e.offset.saturating_sub(p).as_secs_f64() * 1e3))
            .unwrap_or_default();
        prev = Some(e.offset);
        let _ = writeln!(
            s,
            "{:>5} {:>8.1} ms {:>10}  {:<9} {:>6}  |{}|",
            i + 1,
            e.offset.as_secs_f64() * 1e3,
            gap,
            e.kind.as_str(),
            e.bytes,
            bar(e.offset)
        );
    }
    let outputs = o.events.iter().filter(|e| e.kind.is_output()).count();
    let _ = writeln!(
        s,
        "{} events, {outputs} with output, {} gaps between them; result {}",
        o.events.len(),
        o.inter_token_latencies.len(),
        o.result.as_str()
    );
    s
}

/// A duration in milliseconds with one decimal (`12.3 ms`), `–` when absent.
pub fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "–".to_string())
}

/// Nearest-rank p50, p95 and max of a sample.
fn summary(values: &[Duration]) -> Option<ItlSummary> {
    ItlSummary::of(values)
}

/// The milestones `probe --count` summarizes, with how to read each from an outcome.
type Milestone = (&'static str, fn(&Outcome) -> Option<Duration>);

const MILESTONES: [Milestone; 6] = [
    ("time_to_first_byte", |o| o.ttfb),
    ("time_to_first_event", |o| o.time_to_first_event),
    ("time_to_first_token", |o| o.ttft),
    ("time_to_first_answer_token", |o| {
        o.time_to_first_answer_token
    }),
    ("time_per_output_token", |o| o.tpot),
    ("request_duration", |o| o.e2e),
];

/// The summary of several probes: per milestone the count, p50, p95 and max over the probes that
/// reached it (inter-token latency over all gaps of all probes), and the results by class.
pub fn count_summary(outcomes: &[Outcome]) -> serde_json::Value {
    let mut milestones = serde_json::Map::new();
    let entry = |values: &[Duration]| match summary(values) {
        Some(s) => serde_json::json!({
            "count": values.len(),
            "p50_seconds": s.p50.as_secs_f64(),
            "p95_seconds": s.p95.as_secs_f64(),
            "max_seconds": s.max.as_secs_f64(),
        }),
        None => serde_json::json!({"count": 0}),
    };
    for (name, get) in MILESTONES {
        let values: Vec<Duration> = outcomes.iter().filter_map(get).collect();
        milestones.insert(name.to_string(), entry(&values));
    }
    let gaps: Vec<Duration> = outcomes
        .iter()
        .flat_map(|o| o.inter_token_latencies.iter().copied())
        .collect();
    milestones.insert("inter_token_latency".to_string(), entry(&gaps));
    let mut results: BTreeMap<&str, usize> = BTreeMap::new();
    for o in outcomes {
        *results.entry(o.result.as_str()).or_default() += 1;
    }
    serde_json::json!({
        "type": "summary",
        "probes": outcomes.len(),
        "results": results,
        "milestones": milestones,
    })
}

/// The summary as a table.
pub fn count_table(outcomes: &[Outcome]) -> String {
    let v = count_summary(outcomes);
    let mut s = String::new();
    let results: Vec<String> = v["results"]
        .as_object()
        .map(|m| m.iter().map(|(k, n)| format!("{k} {n}")).collect())
        .unwrap_or_default();
    let _ = writeln!(s, "{} probes: {}", outcomes.len(), results.join(", "));
    let _ = writeln!(
        s,
        "{:<28} {:>6} {:>11} {:>11} {:>11}",
        "milestone", "count", "p50", "p95", "max"
    );
    let ms = |x: &serde_json::Value| ms(x.as_f64().map(Duration::from_secs_f64));
    let names = MILESTONES
        .iter()
        .map(|(n, _)| *n)
        .chain(["inter_token_latency"]);
    for name in names {
        let m = &v["milestones"][name];
        let _ = writeln!(
            s,
            "{:<28} {:>6} {:>11} {:>11} {:>11}",
            name,
            m["count"].to_string(),
            ms(&m["p50_seconds"]),
            ms(&m["p95_seconds"]),
            ms(&m["max_seconds"])
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::trace::{EventKind, TraceEvent};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn event_lines_carry_offsets_gaps_kinds_and_sizes() {
        let mut o = crate::probe::trace::tests_support::outcome();
        o.ttfb = Some(ms(5));
        o.e2e = Some(ms(45));
        o.events = vec![
            TraceEvent {
                offset: ms(10),
                kind: EventKind::Metadata,
                bytes: 80,
            },
            TraceEvent {
                offset: ms(30),
                kind: EventKind::Answer,
                bytes: 90,
            },
            TraceEvent {
                offset: ms(45),
                kind: EventKind::End,
                bytes: 6,
            },
        ];
        let lines = event_lines(&o);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["gap_seconds"], serde_json::Value::Null);
        assert_eq!(lines[1]["kind"], "answer");
        assert!((lines[1]["gap_seconds"].as_f64().unwrap() - 0.020).abs() < 1e-9);
        assert_eq!(lines[2]["bytes"], 6);
        let w = waterfall(&o);
        // Column titles, the headers, three events, the closing line.
        assert_eq!(w.lines().count(), 6, "{w}");
        assert!(
            w.lines().nth(4).unwrap().ends_with("█|"),
            "the last event ends the bar:\n{w}"
        );
        // 10 ms of 45 ms: 9 of the bar's 39 steps.
        assert!(
            w.lines()
                .nth(2)
                .unwrap()
                .ends_with(&format!("|{}█{}|", " ".repeat(9), " ".repeat(30))),
            "{w}"
        );
    }

    #[test]
    fn count_summary_pools_gaps_and_counts_results() {
        let mut a = crate::probe::trace::tests_support::outcome();
        a.ttft = Some(ms(100));
        a.inter_token_latencies = vec![ms(10), ms(20)];
        let mut b = a.clone();
        b.ttft = Some(ms(300));
        b.inter_token_latencies = vec![ms(30)];
        let mut c = a.clone();
        c.ttft = None;
        c.result = crate::probe::ProbeResult::Http5xx;
        c.inter_token_latencies.clear();
        let v = count_summary(&[a, b, c]);
        assert_eq!(v["probes"], 3);
        assert_eq!(v["results"]["success"], 2);
        assert_eq!(v["results"]["http_5xx"], 1);
        let ttft = &v["milestones"]["time_to_first_token"];
        assert_eq!(ttft["count"], 2);
        assert_eq!(ttft["p50_seconds"], 0.1);
        assert_eq!(ttft["max_seconds"], 0.3);
        assert_eq!(v["milestones"]["inter_token_latency"]["count"], 3);
        assert_eq!(v["milestones"]["inter_token_latency"]["p50_seconds"], 0.02);
    }
}
