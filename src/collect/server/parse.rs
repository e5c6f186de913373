//! A parser for the Prometheus text exposition format (0.0.4), as inference servers write it.
//!
//! Written here rather than taken from a crate: `prometheus-parse` (0.2.5, the one maintained
//! candidate) matches names with `\w+`, so it drops every `vllm:`/`sglang:`/`llamacpp:` metric,
//! splits labels on `,` and `=` (breaking values with escaped quotes or commas), and pulls in
//! chrono and itertools. This parser is a pure function over a string that never panics; it
//! accepts what real servers emit (blank lines between families, `_created` samples, `NaN`,
//! `+Inf`, timestamps, labels in any order, a trailing comma in a label set) and rejects a
//! malformed sample line, as Prometheus itself would.

use std::fmt;

/// The declared type of a metric family (`# TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `summary`
    Summary,
    /// `untyped`, any other type word, or no `# TYPE` line.
    Untyped,
}

impl MetricType {
    fn from_word(word: &str) -> MetricType {
        match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            _ => MetricType::Untyped,
        }
    }

    /// Whether a sample named `sample` belongs to a family named `family` of this type.
    fn owns(self, family: &str, sample: &str) -> bool {
        let Some(suffix) = sample.strip_prefix(family) else {
            return false;
        };
        match self {
            _ if suffix.is_empty() => true,
            MetricType::Counter => matches!(suffix, "_total" | "_created"),
            MetricType::Histogram => {
                matches!(suffix, "_bucket" | "_sum" | "_count" | "_created")
            }
            MetricType::Summary => matches!(suffix, "_sum" | "_count" | "_created"),
            MetricType::Gauge | MetricType::Untyped => false,
        }
    }
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The full sample name, e.g. `vllm:time_to_first_token_seconds_bucket`.
    pub name: String,
    /// Label pairs in the order written, escapes resolved.
    pub labels: Vec<(String, String)>,
    /// The value (may be `NaN` or infinite).
    pub value: f64,
    /// The optional timestamp, in milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family: its `# HELP`/`# TYPE` and the samples that follow them.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The family name (for a histogram, without `_bucket`/`_sum`/`_count`).
    pub name: String,
    /// The `# HELP` text, escapes resolved.
    pub help: Option<String>,
    /// The declared type.
    pub metric_type: MetricType,
    /// The samples, in page order.
    pub samples: Vec<Sample>,
}

/// Why a page could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a whole exposition page into families, in page order.
pub fn parse(text: &str) -> Result<Vec<Family>, ParseError> {
    let mut families: Vec<Family> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_start_matches([' ', '\t']);
        if line.trim_end_matches([' ', '\t']).is_empty() {
            continue;
        }
        let err = |message: String| ParseError {
            line: line_no,
            message,
        };
        if let Some(comment) = line.strip_prefix('#') {
            match parse_comment(comment).map_err(err)? {
                Comment::Help(name, help) => family_for(&mut families, name).help = Some(help),
                Comment::Type(name, t) => family_for(&mut families, name).metric_type = t,
                Comment::Other => {}
            }
            continue;
        }
        let sample = parse_sample(line).map_err(err)?;
        match families.last_mut() {
            Some(f) if f.metric_type.owns(&f.name, &sample.name) => f.samples.push(sample),
            _ => families.push(Family {
                name: sample.name.clone(),
                help: None,
                metric_type: MetricType::Untyped,
                samples: vec![sample],
            }),
        }
    }
    Ok(families)
}

/// The family that a `# HELP`/`# TYPE` line for `name` describes: the current one when the
/// name matches, else a new one.
fn family_for<'a>(families: &'a mut Vec<Family>, name: &str) -> &'a mut Family {
    let start_new = families.last().is_none_or(|f| f.name != name);
    if start_new {
        families.push(Family {
            name: name.to_string(),
            help: None,
            metric_type: MetricType::Untyped,
            samples: Vec::new(),
        });
    }
    let last = families.len() - 1;
    &mut families[last]
}

enum Comment<'a> {
    Help(&'a str, String),
    Type(&'a str, MetricType),
    Other,
}

fn parse_comment(rest: &str) -> Result<Comment<'_>, String> {
    let rest = rest.trim_start_matches([' ', '\t']);
    let (keyword, rest) = split_token(rest);
    if keyword != "HELP" && keyword != "TYPE" {
        return Ok(Comment::Other);
    }
    let (name, rest) = split_token(rest);
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?} in # {keyword}"));
    }
    if keyword == "HELP" {
        return Ok(Comment::Help(name, unescape_help(rest.trim_end())));
    }
    let (word, rest) = split_token(rest);
    if word.is_empty() || !rest.trim().is_empty() {
        return Err(format!("malformed # TYPE line for {name}"));
    }
    Ok(Comment::Type(name, MetricType::from_word(word)))
}

/// Splits off the first blank-separated token; the rest keeps its own leading blanks trimmed.
fn split_token(s: &str) -> (&str, &str) {
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    let (token, rest) = s.split_at(end);
    (token, rest.trim_start_matches([' ', '\t']))
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    if !is_metric_name(name) {
        return Err(format!("expected a metric name, found {:?}", preview(line)));
    }
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    if !rest.starts_with([' ', '\t']) {
        return Err(format!("expected a blank before the value of {name}"));
    }
    let (value_text, rest) = split_token(rest.trim_start_matches([' ', '\t']));
    let value = parse_value(value_text)
        .ok_or_else(|| format!("invalid value {:?} for {name}", preview(value_text)))?;
    let (ts_text, rest) = split_token(rest);
    let timestamp_ms = if ts_text.is_empty() {
        None
    } else {
        Some(
            ts_text
                .parse::<i64>()
                .map_err(|_| format!("invalid timestamp {:?} for {name}", preview(ts_text)))?,
        )
    };
    if !rest.trim_end_matches([' ', '\t']).is_empty() {
        return Err(format!("unexpected text after the sample of {name}"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Parses `name="value",...}` (the opening brace already consumed) and returns what follows
/// the closing brace.
fn parse_labels<'a>(mut s: &'a str, out: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let (label, after_name) = s.split_at(name_end);
        if !is_label_name(label) {
            return Err(format!("expected a label name, found {:?}", preview(s)));
        }
        let after_eq = after_name
            .trim_start_matches([' ', '\t'])
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after label {label}"))?;
        let after_quote = after_eq
            .trim_start_matches([' ', '\t'])
            .strip_prefix('"')
            .ok_or_else(|| format!("expected '\"' to open the value of label {label}"))?;
        let (value, after_value) = parse_label_value(after_quote)
            .ok_or_else(|| format!("unterminated value of label {label}"))?;
        out.push((label.to_string(), value));
        s = after_value.trim_start_matches([' ', '\t']);
        if let Some(after_comma) = s.strip_prefix(',') {
            s = after_comma;
        } else if !s.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {label}"));
        }
    }
}

/// Reads a quoted label value (the opening quote already consumed), resolving `\\`, `\"` and
/// `\n`; returns the value and what follows the closing quote, or `None` when unterminated.
fn parse_label_value(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, s.get(i + 1..).unwrap_or(""))),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            _ => out.push(c),
        }
    }
    None
}

/// Parses a sample value the way Prometheus does: Go float syntax plus `+Inf`, `-Inf`, `NaN`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => return Some(f64::INFINITY),
        "-Inf" | "-inf" => return Some(f64::NEG_INFINITY),
        "NaN" | "nan" => return Some(f64::NAN),
        _ => {}
    }
    // Rust also accepts "infinity" and other spellings; keep to digits, sign, dot and exponent.
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// The first few characters of `s`, for error messages.
fn preview(s: &str) -> String {
    s.chars().take(40).collect()
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Sample {
        let families = parse(text).expect("parses");
        assert_eq!(families.len(), 1, "{families:?}");
        assert_eq!(families[0].samples.len(), 1);
        families[0].samples[0].clone()
    }

    #[test]
    fn groups_a_histogram_family() {
        let text = "# HELP vllm:time_to_first_token_seconds Histogram of time to first token.\n\
                    # TYPE vllm:time_to_first_token_seconds histogram\n\
                    vllm:time_to_first_token_seconds_sum{model_name=\"m\"} 1.5\n\
                    vllm:time_to_first_token_seconds_bucket{le=\"0.1\",model_name=\"m\"} 1.0\n\
                    vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 3.0\n\
                    vllm:time_to_first_token_seconds_count{model_name=\"m\"} 3.0\n\
                    vllm:num_requests_running{model_name=\"m\"} 2.0\n";
        let families = parse(text).expect("parses");
        assert_eq!(families.len(), 2);
        let h = &families[0];
        assert_eq!(h.name, "vllm:time_to_first_token_seconds");
        assert_eq!(h.metric_type, MetricType::Histogram);
        assert_eq!(h.help.as_deref(), Some("Histogram of time to first token."));
        assert_eq!(h.samples.len(), 4);
        assert_eq!(h.samples[2].label("le"), Some("+Inf"));
        assert_eq!(h.samples[2].value, 3.0);
        assert_eq!(families[1].name, "vllm:num_requests_running");
        assert_eq!(families[1].metric_type, MetricType::Untyped);
    }

    #[test]
    fn counter_owns_total_and_created() {
        let text = "# TYPE x counter\nx_total 3\nx_created 1.7e9\n# TYPE y gauge\ny 1\n";
        let families = parse(text).expect("parses");
        assert_eq!(families.len(), 2);
        assert_eq!(families[0].samples.len(), 2);
        assert_eq!(families[0].samples[1].value, 1.7e9);
    }

    #[test]
    fn escapes_special_values_and_timestamps() {
        let s = one(r#"m{a="x\"y\\z\nw",b="with,comma",c="{}="} NaN 1712345678000"#);
        assert_eq!(
            s.labels,
            vec![
                ("a".to_string(), "x\"y\\z\nw".to_string()),
                ("b".to_string(), "with,comma".to_string()),
                ("c".to_string(), "{}=".to_string()),
            ]
        );
        assert!(s.value.is_nan());
        assert_eq!(s.timestamp_ms, Some(1_712_345_678_000));
        assert_eq!(one("m +Inf").value, f64::INFINITY);
        assert_eq!(one("m -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one("m 7.557572e+06").value, 7_557_572.0);
        assert_eq!(one("m{} 1").labels, vec![]);
        assert_eq!(
            one("m{ a = \"1\" , } 1\r").labels,
            vec![("a".into(), "1".into())]
        );
        assert_eq!(one("nv:x_1\t\t-2").value, -2.0);
        assert_eq!(one("m{a=\"ünï\"} 1").label("a"), Some("ünï"));
    }

    #[test]
    fn help_escapes_and_other_comments() {
        let families =
            parse("# a plain comment\n# HELP m Line\\none \\\\ two\n# EOF\n").expect("ok");
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].help.as_deref(), Some("Line\none \\ two"));
        assert!(families[0].samples.is_empty());
    }

    #[test]
    fn rejects_malformed_lines_with_line_numbers() {
        let cases = [
            (
                "ok 1\n<html>",
                2,
                "expected a metric name, found \"<html>\"",
            ),
            ("m{a=\"1", 1, "unterminated value of label a"),
            ("m{a=\"1\\\"", 1, "unterminated value of label a"),
            ("m{a=\"1\"", 1, "expected ',' or '}' after label a"),
            ("m{a=1} 2", 1, "expected '\"' to open the value of label a"),
            (
                "m{a=\"1\" b=\"2\"} 3",
                1,
                "expected ',' or '}' after label a",
            ),
            ("m", 1, "expected a blank before the value of m"),
            ("m abc", 1, "invalid value \"abc\" for m"),
            ("m infinity", 1, "invalid value \"infinity\" for m"),
            ("m 1 2.5", 1, "invalid timestamp \"2.5\" for m"),
            ("m 1 2 3", 1, "unexpected text after the sample of m"),
            (
                "m{1a=\"x\"} 1",
                1,
                "expected a label name, found \"1a=\\\"x\\\"} 1\"",
            ),
            ("# TYPE m", 1, "malformed # TYPE line for m"),
            ("# HELP 9m x", 1, "invalid metric name \"9m\" in # HELP"),
        ];
        for (text, line, message) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text}");
            assert_eq!(e.message, message, "{text}");
        }
    }

    #[test]
    fn empty_and_blank_pages() {
        assert_eq!(parse("").expect("ok"), vec![]);
        assert_eq!(parse("\n\n  \n\r\n").expect("ok"), vec![]);
    }
}
