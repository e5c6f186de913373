//! Load-test result formats: detection from content and one parser per tool.
//!
//! Every parser is a pure function from the file's JSON to [`Stage`]s; reading files is the
//! caller's business. Units are read from the file where it states them (AIPerf, GenAI-Perf)
//! and from the key names or the tool's documentation elsewhere (`_ms`, `_s`).
//!
//! Tools change their layouts between releases, so each parser reads every layout listed in
//! `tests/fixtures/loadtest/SOURCES.md`, and an error names the tool, the version field the file
//! carries (where the tool writes one) and the key or keys it looked for.

mod aiperf;
mod genai_perf;
mod guidellm;
mod inference_perf;
mod inferprobe;
mod k6;
mod llmperf;
mod vllm;

use std::fmt;

use serde_json::Value;

use super::stages::{round_ns, Quantiles, Slo, Stage};

/// A load-test tool whose result files can be imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `vllm bench serve` / `benchmark_serving.py --save-result` JSON.
    Vllm,
    /// AIPerf `profile_export_aiperf.json`.
    Aiperf,
    /// GenAI-Perf `profile_export_genai_perf.json`.
    GenaiPerf,
    /// GuideLLM `benchmarks.json`.
    Guidellm,
    /// inference-perf `stage_N_lifecycle_metrics.json`.
    InferencePerf,
    /// LLMPerf `*_summary.json`.
    Llmperf,
    /// k6 `--summary-export` (or `handleSummary` JSON).
    K6,
    /// `inferprobe calibrate` output ([`super::calibrate_format::CalibrateResult`]).
    Inferprobe,
}

impl Format {
    /// Every format, in the order detection tries them.
    pub const ALL: [Format; 8] = [
        Format::Inferprobe,
        Format::Vllm,
        Format::Aiperf,
        Format::GenaiPerf,
        Format::Guidellm,
        Format::InferencePerf,
        Format::Llmperf,
        Format::K6,
    ];

    /// The `--format` value.
    pub fn name(self) -> &'static str {
        match self {
            Format::Vllm => "vllm",
            Format::Aiperf => "aiperf",
            Format::GenaiPerf => "genai-perf",
            Format::Guidellm => "guidellm",
            Format::InferencePerf => "inference-perf",
            Format::Llmperf => "llmperf",
            Format::K6 => "k6",
            Format::Inferprobe => "inferprobe",
        }
    }

    /// The tool's name as its users know it.
    pub fn tool(self) -> &'static str {
        match self {
            Format::Vllm => "vLLM bench serve",
            Format::Aiperf => "AIPerf",
            Format::GenaiPerf => "GenAI-Perf",
            Format::Guidellm => "GuideLLM",
            Format::InferencePerf => "inference-perf",
            Format::Llmperf => "LLMPerf",
            Format::K6 => "k6",
            Format::Inferprobe => "inferprobe calibrate",
        }
    }

    /// What detection looks for in a file of this format.
    pub fn signature(self) -> &'static str {
        match self {
            Format::Vllm => "`completed` and `*_ttft_ms` keys",
            Format::Aiperf => {
                "`time_to_first_token.unit` with `aiperf_version`, `input_config.phases`, `input_config.loadgen` or `error_summary`"
            }
            Format::GenaiPerf => "`time_to_first_token.unit` with `input_config`",
            Format::Guidellm => "`benchmarks[].metrics.time_to_first_token_ms`",
            Format::InferencePerf => "`load_summary` and `successes.latency`",
            Format::Llmperf => "`results_ttft_s_*` keys",
            Format::K6 => {
                "`metrics.http_req_duration` or `metrics.iterations`, or `results.metrics[]` with `metadata.k6Version`"
            }
            Format::Inferprobe => "`\"tool\": \"inferprobe\"` with `stages`",
        }
    }

    /// Whether `doc` looks like a result of this format.
    fn matches(self, doc: &Value) -> bool {
        let Some(obj) = doc.as_object() else {
            return false;
        };
        match self {
            Format::Inferprobe => {
                obj.get("tool").and_then(Value::as_str) == Some("inferprobe")
                    && obj.contains_key("stages")
            }
            Format::Vllm => {
                obj.contains_key("completed") && obj.keys().any(|k| k.ends_with("_ttft_ms"))
            }
            Format::Aiperf => {
                has_unit_metric(doc, "time_to_first_token")
                    && (obj.contains_key("aiperf_version")
                        || get(doc, &["input_config", "phases"]).is_some()
                        || get(doc, &["input_config", "loadgen"]).is_some()
                        || obj.contains_key("error_summary")
                        || get(doc, &["input_config", "cli_command"])
                            .and_then(Value::as_str)
                            .is_some_and(|c| c.contains("aiperf")))
            }
            Format::GenaiPerf => {
                has_unit_metric(doc, "time_to_first_token") && obj.contains_key("input_config")
            }
            Format::Guidellm => obj
                .get("benchmarks")
                .and_then(Value::as_array)
                .and_then(|b| b.first())
                .and_then(|b| get(b, &["metrics", "time_to_first_token_ms"]))
                .is_some(),
            Format::InferencePerf => {
                obj.contains_key("load_summary") && get(doc, &["successes", "latency"]).is_some()
            }
            Format::Llmperf => obj.keys().any(|k| k.starts_with("results_ttft_s_")),
            Format::K6 => {
                get(doc, &["metrics", "http_req_duration"]).is_some()
                    || get(doc, &["metrics", "iterations"]).is_some()
                    || (get(doc, &["metadata", "k6Version"]).is_some()
                        && get(doc, &["results", "metrics"]).is_some_and(Value::is_array))
            }
        }
    }

    /// Where the tool writes its own version in a result file, if it writes one at all.
    ///
    /// vLLM bench, GenAI-Perf and inference-perf write none; k6 writes one only in its
    /// machine-readable summary (`--new-machine-readable-summary`), not in the legacy one.
    fn version_path(self, doc: &Value) -> Option<&'static [&'static str]> {
        match self {
            Format::Aiperf => Some(&["aiperf_version"]),
            Format::Guidellm => Some(&["metadata", "guidellm_version"]),
            Format::Llmperf | Format::Inferprobe => Some(&["version"]),
            Format::K6 => get(doc, &["results", "metrics"])
                .is_some_and(Value::is_array)
                .then_some(&["metadata", "k6Version"][..]),
            Format::Vllm | Format::GenaiPerf | Format::InferencePerf => None,
        }
    }

    /// The version the file says it was written by, as ` (key value)`, ` (no key field)` where
    /// the tool writes one but this file has none, or empty where the tool writes none.
    fn version_tag(self, doc: &Value) -> (String, Option<String>) {
        let Some(path) = self.version_path(doc) else {
            return (String::new(), None);
        };
        let key = path.join(".");
        match get(doc, path) {
            Some(Value::String(s)) => {
                let v = printable(s);
                (format!(" ({key} {v})"), Some(v))
            }
            Some(Value::Number(n)) => (format!(" ({key} {n})"), Some(n.to_string())),
            _ => (format!(" (no {key} field)"), None),
        }
    }
}

/// A string from the file made safe and short for an error message.
fn printable(s: &str) -> String {
    const MAX: usize = 40;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn has_unit_metric(doc: &Value, name: &str) -> bool {
    get(doc, &[name, "unit"]).is_some()
}

/// Detects the format of a parsed result file, or `None` when nothing matches.
pub fn detect(doc: &Value) -> Option<Format> {
    Format::ALL.into_iter().find(|f| f.matches(doc))
}

/// What one file contributed.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// The format it was read as.
    pub format: Format,
    /// Its stages, in file order.
    pub stages: Vec<Stage>,
    /// SLO targets recorded in the file (only `inferprobe calibrate` records them).
    pub slo: Option<Slo>,
    /// The tool version the file names (`aiperf_version`, `metadata.guidellm_version`, ...),
    /// where the tool writes one.
    pub tool_version: Option<String>,
}

/// Why a result file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not JSON.
    #[error("{file}: not a JSON document: {source}")]
    Json {
        /// The file.
        file: String,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
    /// No known format matched.
    #[error(
        "{file}: unrecognized load-test result format; looked for: {}",
        signatures()
    )]
    Unrecognized {
        /// The file.
        file: String,
    },
    /// A needed key is absent.
    #[error("{file}: {} result{version}: no `{key}`{hint}", .format.tool())]
    MissingKey {
        /// The file.
        file: String,
        /// The format the file was read as.
        format: Format,
        /// The version the file names, as ` (aiperf_version 0.13.0)`, or empty.
        version: String,
        /// Dotted path of the key.
        key: String,
        /// How to get the key written, starting with `; ` (or empty).
        hint: String,
    },
    /// None of the places where the tool's releases write a value holds it: a layout this
    /// version of inferprobe does not know.
    #[error("{file}: {} result{version}: no {what} found: expected {}{note}", .format.tool(), alternatives(.expected))]
    UnknownLayout {
        /// The file.
        file: String,
        /// The format the file was read as.
        format: Format,
        /// The version the file names, as ` (aiperf_version 0.13.0)`, or empty.
        version: String,
        /// What was looked for, e.g. `concurrency or request rate`.
        what: &'static str,
        /// Dotted paths of every place looked at, newest layout first.
        expected: Vec<String>,
        /// What else the file says about it, starting with `; ` (or empty).
        note: String,
    },
    /// A key holds something unusable.
    #[error("{file}: {} result{version}: `{key}` {problem}", .format.tool())]
    Invalid {
        /// The file.
        file: String,
        /// The format the file was read as.
        format: Format,
        /// The version the file names, as ` (aiperf_version 0.13.0)`, or empty.
        version: String,
        /// Dotted path of the key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
fn alternatives(keys: &[String]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn signatures() -> String {
    Format::ALL
        .iter()
        .map(|f| format!("{} ({})", f.name(), f.signature()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses one result file's text; `format: None` detects it from the content.
pub fn parse(file: &str, text: &str, format: Option<Format>) -> Result<Imported, ImportError> {
    let doc: Value = serde_json::from_str(text).map_err(|source| ImportError::Json {
        file: file.to_string(),
        source,
    })?;
    let format = match format {
        Some(f) => f,
        None => detect(&doc).ok_or_else(|| ImportError::Unrecognized {
            file: file.to_string(),
        })?,
    };
    let (version, tool_version) = format.version_tag(&doc);
    let cx = Cx {
        file,
        format,
        version,
    };
    let mut slo = None;
    let stages = match format {
        Format::Vllm => vec![vllm::parse(&cx, &doc)?],
        Format::Aiperf => vec![aiperf::parse(&cx, &doc)?],
        Format::GenaiPerf => vec![genai_perf::parse(&cx, &doc)?],
        Format::Guidellm => guidellm::parse(&cx, &doc)?,
        Format::InferencePerf => vec![inference_perf::parse(&cx, &doc)?],
        Format::Llmperf => vec![llmperf::parse(&cx, &doc)?],
        Format::K6 => vec![k6::parse(&cx, &doc)?],
        Format::Inferprobe => {
            let (stages, file_slo) = inferprobe::parse(&cx, text)?;
            slo = Some(file_slo);
            stages
        }
    };
    Ok(Imported {
        format,
        stages,
        slo,
        tool_version,
    })
}

/// Walks object keys; `None` when any step is absent or not an object.
pub(crate) fn get<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.as_object()?.get(*k))
}

/// The file and format a parser works on, for error messages.
pub(crate) struct Cx<'a> {
    pub file: &'a str,
    pub format: Format,
    /// ` (aiperf_version 0.13.0)`, ` (no aiperf_version field)` or empty.
    pub version: String,
}

impl Cx<'_> {
    pub fn missing(&self, key: &str, hint: &str) -> ImportError {
        ImportError::MissingKey {
            file: self.file.to_string(),
            format: self.format,
            version: self.version.clone(),
            key: key.to_string(),
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!("; {hint}")
            },
        }
    }

    pub fn invalid(&self, key: &str, problem: impl Into<String>) -> ImportError {
        ImportError::Invalid {
            file: self.file.to_string(),
            format: self.format,
            version: self.version.clone(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    /// No layout the tool has written holds `what`; `expected` lists where each one puts it.
    pub fn unknown_layout(&self, what: &'static str, expected: &[&str]) -> ImportError {
        self.unknown_layout_note(what, expected, "")
    }

    /// [`Cx::unknown_layout`] with a note on what the file holds instead.
    pub fn unknown_layout_note(
        &self,
        what: &'static str,
        expected: &[&str],
        note: &str,
    ) -> ImportError {
        ImportError::UnknownLayout {
            file: self.file.to_string(),
            format: self.format,
            version: self.version.clone(),
            what,
            expected: expected.iter().map(|k| k.to_string()).collect(),
            note: if note.is_empty() {
                String::new()
            } else {
                format!("; {note}")
            },
        }
    }

    /// A number at `path` under `v` (displayed as `prefix` + path); absent or `null` is `None`.
    pub fn opt_num(
        &self,
        v: &Value,
        prefix: &str,
        path: &[&str],
    ) -> Result<Option<f64>, ImportError> {
        match get(v, path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.invalid(&display(prefix, path), "is not a finite number")),
            },
            Some(other) => {
                Err(self.invalid(&display(prefix, path), format!("is not a number: {other}")))
            }
        }
    }

    /// A required number.
    pub fn num(
        &self,
        v: &Value,
        prefix: &str,
        path: &[&str],
        hint: &str,
    ) -> Result<f64, ImportError> {
        self.opt_num(v, prefix, path)?
            .ok_or_else(|| self.missing(&display(prefix, path), hint))
    }

    /// A required non-negative count.
    pub fn count(&self, v: &Value, prefix: &str, path: &[&str]) -> Result<u64, ImportError> {
        let x = self.num(v, prefix, path, "")?;
        to_count(x)
            .ok_or_else(|| self.invalid(&display(prefix, path), "is not a non-negative count"))
    }

    /// An optional non-negative count.
    pub fn opt_count(
        &self,
        v: &Value,
        prefix: &str,
        path: &[&str],
    ) -> Result<Option<u64>, ImportError> {
        match self.opt_num(v, prefix, path)? {
            None => Ok(None),
            Some(x) => to_count(x)
                .map(Some)
                .ok_or_else(|| self.invalid(&display(prefix, path), "is not a non-negative count")),
        }
    }
}

fn to_count(x: f64) -> Option<u64> {
    (x >= 0.0 && x.fract() == 0.0 && x < 1e15).then_some(x as u64)
}

/// `prefix.a.b` for messages.
pub(crate) fn display(prefix: &str, path: &[&str]) -> String {
    let tail = path.join(".");
    match (prefix.is_empty(), tail.is_empty()) {
        (true, _) => tail,
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{tail}"),
    }
}

/// Seconds from a value in `unit` (`ms`, `s`, `sec`, `us`, `ns`), rounded to the nanosecond.
pub(crate) fn to_seconds(value: f64, unit: &str) -> Option<f64> {
    // Divide rather than multiply by 1e-3: 452.1 / 1000 rounds to the `f64` nearest 0.4521.
    let divisor = match unit {
        "s" | "sec" | "secs" | "seconds" => 1.0,
        "ms" => 1e3,
        "us" | "µs" => 1e6,
        "ns" => 1e9,
        _ => return None,
    };
    Some(round_ns(value / divisor))
}

/// Milliseconds to seconds, rounded to the nanosecond.
pub(crate) fn ms(v: f64) -> f64 {
    round_ns(v / 1000.0)
}

/// Quantiles from three optional values already in seconds.
pub(crate) fn quantiles(p50: Option<f64>, p95: Option<f64>, p99: Option<f64>) -> Quantiles {
    Quantiles { p50, p95, p99 }
}

/// Error rate from failed and successful counts; `None` when nothing was sent.
pub(crate) fn error_rate(failed: u64, succeeded: u64) -> Option<f64> {
    let total = failed + succeeded;
    (total > 0).then(|| failed as f64 / total as f64)
}

/// `concurrency 8` / `rate 4 req/s`.
pub(crate) fn concurrency_label(n: f64) -> String {
    format!("concurrency {}", super::stages::fmt_num(n))
}

/// `rate 4 req/s`.
pub(crate) fn rate_label(r: f64) -> String {
    format!("rate {} req/s", super::stages::fmt_num(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_convert_to_exact_seconds() {
        assert_eq!(to_seconds(452.1, "ms"), Some(0.4521));
        assert_eq!(to_seconds(0.4521, "s"), Some(0.4521));
        assert_eq!(to_seconds(452100.0, "us"), Some(0.4521));
        assert_eq!(to_seconds(452_100_000.0, "ns"), Some(0.4521));
        assert_eq!(to_seconds(1.0, "fortnights"), None);
        assert_eq!(ms(14.8), 0.0148);
    }

    #[test]
    fn unrecognized_lists_every_format() {
        let e = parse("x.json", r#"{"hello": [1, 2]}"#, None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("x.json: unrecognized load-test result format; looked for: "),
            "{msg}"
        );
        for f in Format::ALL {
            assert!(msg.contains(&format!("{} (", f.name())), "{msg}");
        }
    }
}
