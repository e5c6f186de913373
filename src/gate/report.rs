//! The gate's reports: a table for people, JSON and JUnit XML for machines.
//!
//! JUnit XML follows the JUnit/Ant report schema as Jenkins publishes it (`junit-4.xsd`, the one
//! the JUnit 5 project validates its own reports against): `testsuites` carries `name`,
//! `tests`, `failures`, `errors` and `time` (that schema declares no `skipped` on it), each
//! `testsuite` carries those plus `skipped` and `timestamp`, and a `testcase` holds at most one
//! `skipped` (text only) then `error` and `failure` elements with `message` and `type`. One
//! testcase per judged metric: a regression is a `failure`, a verdict the data cannot support
//! an `error` (the gate could not judge it), a metric without baseline `skipped`.

use std::fmt::Write as _;

use super::baseline::GateFile;
use super::judge::Evaluation;
use super::stats::Verdict;

/// A value in its unit for the table.
pub fn fmt_value(v: Option<f64>, unit: &str) -> String {
    let Some(v) = v else {
        return "–".to_string();
    };
    match unit {
        "seconds" => format!("{:.1} ms", v * 1e3),
        "ratio" => format!("{:.2}%", v * 100.0),
        "USD" => format!("${v:.6}"),
        "tokens/s" => format!("{v:.1} tok/s"),
        _ => format!("{v}"),
    }
}

/// A change for the table: `+20.0%` (relative) or `+1.25 pt` (absolute).
pub fn fmt_change(v: Option<f64>, kind: &str) -> String {
    match (v, kind) {
        (None, _) => "–".to_string(),
        (Some(v), "absolute") => format!("{:+.2} pt", v * 100.0),
        (Some(v), _) => format!("{:+.1}%", v * 100.0),
    }
}

fn fmt_interval(r: &Evaluation) -> String {
    match (r.ci_low, r.ci_high) {
        (Some(lo), Some(hi)) => format!(
            "[{}, {}]",
            fmt_change(Some(lo), &r.change_kind),
            fmt_change(Some(hi), &r.change_kind)
        ),
        _ => "–".to_string(),
    }
}

/// A row's verdict as shown.
fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Inconclusive => "not enough evidence",
        Verdict::Skipped => "no baseline",
    }
}

/// The table `inferprobe gate` prints.
pub fn table(file: &GateFile) -> String {
    let mut s = String::new();
    let c = &file.candidate;
    let _ = writeln!(
        s,
        "candidate   {} ({}, model {}) at {}",
        c.target, c.dialect, c.model, c.url
    );
    match &file.baseline {
        Some(b) => {
            let _ = writeln!(s, "baseline    {}: {}", b.kind, b.source);
            if let Some(n) = &b.note {
                let _ = writeln!(s, "            {n}");
            }
        }
        None => {
            let _ = writeln!(s, "baseline    none: probes recorded only");
        }
    }
    let count = |v: &[super::baseline::ProbeSample]| {
        let failed = v.iter().filter(|p| !p.is_success()).count();
        format!("{} ({failed} failed)", v.len())
    };
    let mut probes = format!("candidate {}", count(&file.samples.candidate));
    if !file.samples.reference.is_empty() {
        let _ = write!(probes, ", reference {}", count(&file.samples.reference));
    }
    let _ = write!(probes, " in {:.1} s", file.duration_seconds);
    if let Some(spent) = file.spent_usd {
        let _ = write!(probes, ", ${spent:.6} spent");
    }
    let _ = writeln!(s, "probes      {probes}");
    if let Some(why) = &file.stopped {
        let _ = writeln!(s, "stopped     {why}");
    }
    if !file.metrics.is_empty() {
        let scenarios: std::collections::BTreeSet<&str> =
            file.metrics.iter().map(|r| r.scenario.as_str()).collect();
        let show_scenario = scenarios.len() > 1;
        let header = [
            "metric",
            "baseline",
            "candidate",
            "change",
            "95% interval",
            "limit",
            "verdict",
        ];
        let mut rows: Vec<[String; 7]> = vec![header.map(String::from)];
        for r in &file.metrics {
            let name = if show_scenario {
                format!("{}/{}", r.scenario, r.metric)
            } else {
                r.metric.clone()
            };
            rows.push([
                name,
                fmt_value(r.baseline, &r.unit),
                fmt_value(r.candidate, &r.unit),
                fmt_change(r.change, &r.change_kind),
                fmt_interval(r),
                r.limit.clone(),
                verdict_word(r.verdict).to_string(),
            ]);
        }
        let mut widths = [0usize; 7];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let _ = writeln!(s);
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i == 0 || i == 6 {
                    let _ = write!(line, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(line, "{}{cell}", " ".repeat(pad));
                }
                line.push_str("  ");
            }
            let _ = writeln!(s, "{}", line.trim_end());
        }
        let notes: Vec<&Evaluation> = file.metrics.iter().filter(|r| r.note.is_some()).collect();
        if !notes.is_empty() {
            let _ = writeln!(s);
            for r in notes {
                let _ = writeln!(s, "{}: {}", r.metric, r.note.as_deref().unwrap_or_default());
            }
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", summary(file));
    s
}

/// The last line: the verdict, its exit code and what decided it.
pub fn summary(file: &GateFile) -> String {
    let names = |v: Verdict| {
        file.metrics
            .iter()
            .filter(|r| r.verdict == v)
            .map(|r| r.metric.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let why = match file.verdict.as_str() {
        "fail" => format!("regression beyond the limit: {}", names(Verdict::Fail)),
        "pass" => "every judged metric is within its limit".to_string(),
        "recorded" => "no baseline given; the probes are recorded".to_string(),
        _ => match &file.stopped {
            Some(_) => "the run stopped before its plan".to_string(),
            None if file
                .metrics
                .iter()
                .any(|r| r.verdict == Verdict::Inconclusive) =>
            {
                format!("not enough evidence for: {}", names(Verdict::Inconclusive))
            }
            None => "no metric could be judged".to_string(),
        },
    };
    format!(
        "verdict     {} (exit {}): {why}",
        file.verdict.to_uppercase(),
        file.exit_code
    )
}

/// The JSON `--json` prints: the result file without its raw probes.
pub fn json(file: &GateFile) -> String {
    let mut f = file.clone();
    f.samples = Default::default();
    serde_json::to_string_pretty(&f).unwrap_or_else(|_| "{}".to_string())
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 does not allow.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML report. `timestamp` is an ISO 8601 date-time without zone (UTC).
pub fn junit(file: &GateFile, timestamp: &str) -> String {
    let count = |v: Verdict| file.metrics.iter().filter(|r| r.verdict == v).count();
    let (failures, errors, skipped) = (
        count(Verdict::Fail),
        count(Verdict::Inconclusive) + usize::from(file.stopped.is_some()),
        count(Verdict::Skipped),
    );
    let tests = file.metrics.len() + usize::from(file.stopped.is_some());
    let time = format!("{:.3}", file.duration_seconds);
    let suite = xml_escape(&format!("inferprobe gate: {}", file.candidate.target));
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"inferprobe gate\" tests=\"{tests}\" failures=\"{failures}\" \
         errors=\"{errors}\" time=\"{time}\">"
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" \
         errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\" timestamp=\"{}\">",
        xml_escape(timestamp)
    );
    let mut props = vec![
        ("verdict", file.verdict.clone()),
        ("candidate.url", file.candidate.url.clone()),
        ("candidate.model", file.candidate.model.clone()),
    ];
    if let Some(b) = &file.baseline {
        props.push(("baseline.kind", b.kind.clone()));
        props.push(("baseline.source", b.source.clone()));
    }
    x.push_str("    <properties>\n");
    for (k, v) in props {
        let _ = writeln!(
            x,
            "      <property name=\"{}\" value=\"{}\"/>",
            xml_escape(k),
            xml_escape(&v)
        );
    }
    x.push_str("    </properties>\n");
    for r in &file.metrics {
        let classname = xml_escape(&format!("inferprobe.gate.{}", r.scenario));
        let detail = format!(
            "baseline {}, candidate {}, change {}, 95% interval {}, limit {}; {}{}",
            fmt_value(r.baseline, &r.unit),
            fmt_value(r.candidate, &r.unit),
            fmt_change(r.change, &r.change_kind),
            fmt_interval(r),
            r.limit,
            r.method,
            r.note
                .as_deref()
                .map(|n| format!("; {n}"))
                .unwrap_or_default()
        );
        let head = format!(
            "    <testcase name=\"{}\" classname=\"{classname}\" time=\"0.000\"",
            xml_escape(&r.metric)
        );
        match r.verdict {
            Verdict::Pass => {
                let _ = writeln!(x, "{head}/>");
            }
            Verdict::Fail => {
                let msg = format!(
                    "{} regressed: {} (interval {}) beyond the limit {}",
                    r.metric,
                    fmt_change(r.change, &r.change_kind),
                    fmt_interval(r),
                    r.limit
                );
                let _ = writeln!(
                    x,
                    "{head}>\n      <failure message=\"{}\" type=\"regression\">{}</failure>\n    </testcase>",
                    xml_escape(&msg),
                    xml_escape(&detail)
                );
            }
            Verdict::Inconclusive => {
                let msg = r
                    .note
                    .clone()
                    .unwrap_or_else(|| "not enough evidence".to_string());
                let _ = writeln!(
                    x,
                    "{head}>\n      <error message=\"{}\" type=\"inconclusive\">{}</error>\n    </testcase>",
                    xml_escape(&msg),
                    xml_escape(&detail)
                );
            }
            Verdict::Skipped => {
                let msg = r.note.clone().unwrap_or_else(|| "no baseline".to_string());
                let _ = writeln!(
                    x,
                    "{head}>\n      <skipped>{}</skipped>\n    </testcase>",
                    xml_escape(&msg)
                );
            }
        }
    }
    if let Some(why) = &file.stopped {
        let _ = writeln!(
            x,
            "    <testcase name=\"run\" classname=\"inferprobe.gate\" time=\"{time}\">\n      \
             <error message=\"{}\" type=\"stopped\"/>\n    </testcase>",
            xml_escape(why)
        );
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_changes_read_in_their_units() {
        assert_eq!(fmt_value(Some(0.3004), "seconds"), "300.4 ms");
        assert_eq!(fmt_value(Some(0.0125), "ratio"), "1.25%");
        assert_eq!(fmt_value(None, "ratio"), "–");
        assert_eq!(fmt_change(Some(0.2), "relative"), "+20.0%");
        assert_eq!(fmt_change(Some(-0.0125), "absolute"), "-1.25 pt");
        assert_eq!(
            xml_escape("a<b & \"c\" 'd'\u{1}>"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
    }
}
