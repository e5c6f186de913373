//! The `servers:` list: local inference servers whose `/metrics` page is scraped and normalized
//! into the `inferprobe_server_*` families.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::types::humantime_serde_compat;

/// The word that, in place of a URL, names the in-process simulator's metrics page.
pub const SIMULATOR_URL: &str = "simulator";

/// One local inference server whose `/metrics` is scraped.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Unique name; the `server` label. Letters, digits and `_ . : -` only.
    pub name: String,
    /// Full URL of the metrics page (`http://127.0.0.1:8000/metrics`), or `simulator` for the
    /// in-process simulator's page.
    pub url: String,
    /// Which server software it is; `auto` detects it from the metric names on every scrape.
    #[serde(default)]
    pub kind: ServerKind,
    /// Time between two scrapes.
    #[serde(default = "default_server_interval", with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Longest wait for one scrape (connection, headers and body); must be below `interval`.
    #[serde(default = "default_server_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
}

/// Default for `servers[].interval`: the usual Prometheus scrape interval.
pub fn default_server_interval() -> Duration {
    Duration::from_secs(15)
}

/// Default for `servers[].timeout`.
pub fn default_server_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The inference-server software behind a metrics page.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// Detected from the metric names on each scrape.
    #[default]
    Auto,
    /// vLLM (`vllm:` metrics), v0.x and V1 engines.
    Vllm,
    /// SGLang (`sglang:` metrics).
    Sglang,
    /// Hugging Face text-generation-inference (`tgi_` metrics).
    Tgi,
    /// llama.cpp `llama-server --metrics` (`llamacpp:` metrics).
    Llamacpp,
    /// NVIDIA Triton Inference Server (`nv_inference_` metrics), with or without the
    /// TensorRT-LLM backend.
    Triton,
}

impl ServerKind {
    /// The value of the `kind` label (`auto` never appears there: a detected kind replaces it).
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Auto => "auto",
            ServerKind::Vllm => "vllm",
            ServerKind::Sglang => "sglang",
            ServerKind::Tgi => "tgi",
            ServerKind::Llamacpp => "llamacpp",
            ServerKind::Triton => "triton",
        }
    }

    /// Every concrete kind (everything but `auto`), in detection order.
    pub const CONCRETE: [ServerKind; 5] = [
        ServerKind::Vllm,
        ServerKind::Sglang,
        ServerKind::Tgi,
        ServerKind::Llamacpp,
        ServerKind::Triton,
    ];
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True when `s` is usable as the `server` label: non-empty, `[A-Za-z0-9_.:-]+`.
pub fn is_label_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl ServerConfig {
    /// True when the entry points at the in-process simulator rather than a URL.
    pub fn is_simulator(&self) -> bool {
        self.url.trim() == SIMULATOR_URL
    }

    /// Every problem with this entry, as (path relative to the entry, message), in field order.
    /// Checks that span entries (duplicate names) belong to the caller.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.name.is_empty() {
            errors.push(("name".to_string(), "must not be empty".to_string()));
        } else if !is_label_safe(&self.name) {
            errors.push((
                "name".to_string(),
                format!(
                    "{:?} is not usable as a label value here; use letters, digits and _ . : - only",
                    self.name
                ),
            ));
        }
        if let Some(message) = url_problem(&self.url) {
            errors.push(("url".to_string(), message));
        }
        if self.interval.is_zero() {
            errors.push(("interval".to_string(), "must be above zero".to_string()));
        }
        if self.timeout.is_zero() {
            errors.push(("timeout".to_string(), "must be above zero".to_string()));
        } else if self.timeout >= self.interval && !self.interval.is_zero() {
            errors.push((
                "timeout".to_string(),
                format!(
                    "{} must be shorter than interval ({}), or scrapes would overlap",
                    humantime::format_duration(self.timeout),
                    humantime::format_duration(self.interval)
                ),
            ));
        }
        errors
    }
}

/// What is wrong with a `url` value, if anything.
fn url_problem(url: &str) -> Option<String> {
    let trimmed = url.trim();
    if trimmed == SIMULATOR_URL {
        return None;
    }
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Some(format!(
            "{url:?} is not an http(s) URL; write the full metrics URL, e.g. \
             \"http://127.0.0.1:8000/metrics\", or \"simulator\""
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Some(format!("{url:?} has no host"));
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Some(format!("{url:?} contains whitespace"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, url: &str) -> ServerConfig {
        ServerConfig {
            name: name.to_string(),
            url: url.to_string(),
            kind: ServerKind::Auto,
            interval: default_server_interval(),
            timeout: default_server_timeout(),
        }
    }

    #[test]
    fn defaults_apply() {
        let c: ServerConfig =
            serde_json::from_str(r#"{"name":"gpu0","url":"http://127.0.0.1:8000/metrics"}"#)
                .expect("valid entry");
        assert_eq!(c.kind, ServerKind::Auto);
        assert_eq!(c.interval, Duration::from_secs(15));
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert!(c.validate().is_empty());
    }

    #[test]
    fn durations_and_kind_parse() {
        let c: ServerConfig = serde_json::from_str(
            r#"{"name":"a","url":"simulator","kind":"llamacpp","interval":"2s","timeout":"500ms"}"#,
        )
        .expect("valid entry");
        assert_eq!(c.kind, ServerKind::Llamacpp);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert!(c.is_simulator());
        assert!(c.validate().is_empty());
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        let e = serde_json::from_str::<ServerConfig>(r#"{"name":"a","url":"simulator","port":1}"#)
            .expect_err("unknown field");
        assert!(e.to_string().contains("unknown field `port`"), "{e}");
        let e = serde_json::from_str::<ServerConfig>(
            r#"{"name":"a","url":"simulator","kind":"ollama"}"#,
        )
        .expect_err("unknown kind");
        assert!(e.to_string().contains("unknown variant `ollama`"), "{e}");
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut c = entry("my server", "ftp://host/metrics");
        c.timeout = Duration::from_secs(15);
        assert_eq!(
            c.validate(),
            vec![
                (
                    "name".to_string(),
                    "\"my server\" is not usable as a label value here; use letters, digits and \
                     _ . : - only"
                        .to_string()
                ),
                (
                    "url".to_string(),
                    "\"ftp://host/metrics\" is not an http(s) URL; write the full metrics URL, \
                     e.g. \"http://127.0.0.1:8000/metrics\", or \"simulator\""
                        .to_string()
                ),
                (
                    "timeout".to_string(),
                    "15s must be shorter than interval (15s), or scrapes would overlap".to_string()
                ),
            ]
        );
    }

    #[test]
    fn validate_other_cases() {
        assert_eq!(
            entry("", "http://h/metrics").validate(),
            vec![("name".to_string(), "must not be empty".to_string())]
        );
        assert_eq!(
            entry("a", "http:///metrics").validate(),
            vec![(
                "url".to_string(),
                "\"http:///metrics\" has no host".to_string()
            )]
        );
        let mut c = entry("vllm-0.gpu:1_a", "https://h:8443/metrics");
        assert!(c.validate().is_empty());
        c.interval = Duration::ZERO;
        assert_eq!(
            c.validate(),
            vec![("interval".to_string(), "must be above zero".to_string())]
        );
    }

    #[test]
    fn label_safety() {
        assert!(is_label_safe("a-b_c.d:e9"));
        assert!(!is_label_safe("a b"));
        assert!(!is_label_safe("é"));
        assert!(!is_label_safe(""));
    }
}
