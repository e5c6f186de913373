//! The `otlp:` block: push the same measurements that `/metrics` shows to an OpenTelemetry
//! receiver (an OTel Collector, a vendor's OTLP endpoint, Prometheus' OTLP receiver). Off unless
//! the block is present.
//!
//! ```yaml
//! otlp:
//!   endpoint: http://otel-collector:4318   # base URL; /v1/metrics is appended
//!   protocol: http/protobuf
//!   interval: 15s
//!   timeout: 10s
//!   headers:
//!     authorization: {env: OTLP_AUTHORIZATION}
//!     x-scope-orgid: team-a
//!   tls: {ca_file: /etc/ssl/private-ca.pem}
//!   resource:
//!     service.instance.id: canary-eu-1
//!     cloud.region: eu-west-1
//!   semconv: latest          # latest | v1.41
//!   histograms: exponential  # exponential | explicit
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::load::{io_reason, Diag, YamlPath};
use crate::config::types::{humantime_serde_compat, Secret, SecretRef};

/// The `otlp:` block as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The receiver's base URL (`http(s)://host:port[/prefix]`); `/v1/metrics` is appended, as
    /// the OpenTelemetry SDKs do with `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    /// Wire protocol; only `http/protobuf` is built in.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Time between two exports.
    #[serde(default = "default_interval", with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Longest time one export may take, retries included.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Extra request headers; values are text, `{env: NAME}` or `{file: PATH}` and are treated as
    /// secrets (redacted from every output).
    #[serde(default)]
    pub headers: BTreeMap<String, SecretRef>,
    /// TLS settings for an `https://` endpoint.
    #[serde(default)]
    pub tls: OtlpTlsConfig,
    /// Resource attributes added to (and overriding) the defaults: `service.name` (`inferprobe`),
    /// `service.version`, `service.instance.id` (the host name).
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
    /// Which GenAI semantic conventions name the probe measurements.
    #[serde(default)]
    pub semconv: Semconv,
    /// How latency histograms are aggregated.
    #[serde(default)]
    pub histograms: HistogramMode,
}

/// `otlp.tls`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OtlpTlsConfig {
    /// PEM file of extra CA certificates trusted for the receiver (a private CA).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate chain, for receivers that require mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Accept any server certificate. Only for a test receiver: the headers are sent to whoever
    /// answers.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `otlp.protocol`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with a binary protobuf body.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/gRPC: not built in (see docs/otlp.md); rejected with the reason.
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with a JSON body: not built in; rejected with the reason.
    #[serde(rename = "http/json")]
    HttpJson,
}

/// `otlp.semconv`: the GenAI semantic conventions' metric names.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub enum Semconv {
    /// The current GenAI conventions (`gen_ai.client.inference.*`, usage counters).
    #[default]
    #[serde(rename = "latest")]
    Latest,
    /// Semantic conventions v1.41, the last release with the GenAI conventions in the main
    /// repository (`gen_ai.client.operation.*`, `gen_ai.client.token.usage`).
    #[serde(rename = "v1.41")]
    V1_41,
}

impl Semconv {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Semconv::Latest => "latest",
            Semconv::V1_41 => "v1.41",
        }
    }
}

/// `otlp.histograms`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum HistogramMode {
    /// Base-2 exponential histograms for the latency (seconds) families: accurate percentiles
    /// without choosing buckets. Other histograms keep explicit buckets.
    #[default]
    Exponential,
    /// Explicit buckets everywhere: the GenAI conventions' advice for the GenAI families, the
    /// same buckets as `/metrics` for inferprobe's own.
    Explicit,
}

/// Default for `otlp.interval`.
pub fn default_interval() -> Duration {
    Duration::from_secs(15)
}

/// Default for `otlp.timeout`.
pub fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Shortest accepted `otlp.interval`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest accepted `otlp.interval`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The `otlp:` block resolved: secrets read, files loaded, the full export URL built.
#[derive(Clone, PartialEq)]
pub struct OtlpSettings {
    /// The base URL as configured (no trailing slash), for logs and the status page.
    pub endpoint: String,
    /// `endpoint` + `/v1/metrics`.
    pub metrics_url: String,
    /// Time between two exports.
    pub interval: Duration,
    /// Longest time one export may take, retries included.
    pub timeout: Duration,
    /// Header name and value; every value is a secret.
    pub headers: Vec<(String, Secret)>,
    /// Extra CA certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (PEM, concatenated) for mutual TLS.
    pub identity_pem: Option<Vec<u8>>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
    /// Resource attributes set in the config.
    pub resource: BTreeMap<String, String>,
    /// GenAI semantic-convention names.
    pub semconv: Semconv,
    /// Histogram aggregation.
    pub histograms: HistogramMode,
}

impl std::fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("semconv", &self.semconv)
            .field("histograms", &self.histograms)
            .finish_non_exhaustive()
    }
}

/// Headers the exporter sets itself.
const RESERVED_HEADERS: [&str; 4] = ["content-type", "content-length", "content-encoding", "host"];

/// Checks the block and resolves it; every problem is recorded in `diag` at its YAML path.
pub(crate) fn resolve(
    cfg: &OtlpConfig,
    path: &YamlPath,
    env: &crate::config::Environment<'_>,
    diag: &mut Diag<'_>,
) -> Option<OtlpSettings> {
    let before = diag.error_count();
    let endpoint = check_endpoint(&cfg.endpoint, &path.key("endpoint"), diag);
    match cfg.protocol {
        OtlpProtocol::HttpProtobuf => {}
        OtlpProtocol::Grpc => diag.error(
            &path.key("protocol"),
            "grpc is not built into inferprobe; use http/protobuf (port 4318 on an OpenTelemetry \
             Collector, which accepts both)",
        ),
        OtlpProtocol::HttpJson => diag.error(
            &path.key("protocol"),
            "http/json is not built into inferprobe; use http/protobuf (every OTLP/HTTP \
             receiver must accept it)",
        ),
    }
    if cfg.interval < MIN_INTERVAL || cfg.interval > MAX_INTERVAL {
        diag.error(
            &path.key("interval"),
            format!(
                "must be between 1s and 1h (got {})",
                humantime::format_duration(cfg.interval)
            ),
        );
    }
    if cfg.timeout.is_zero() || cfg.timeout > cfg.interval.max(MIN_INTERVAL) {
        diag.error(
            &path.key("timeout"),
            format!(
                "must be above 0 and at most otlp.interval ({}), so that exports do not pile up \
                 (got {})",
                humantime::format_duration(cfg.interval),
                humantime::format_duration(cfg.timeout)
            ),
        );
    }
    let mut headers = Vec::new();
    for (name, value) in &cfg.headers {
        let p = path.key("headers").key(name);
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            diag.error(&p, format!("{name:?} is not a valid HTTP header name"));
            continue;
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            diag.error(&p, format!("{name} is set by the exporter itself"));
            continue;
        }
        let secret = match value {
            // A plain value (a tenant ID) is fine inline; a credential is warned about.
            SecretRef::Inline(v) => {
                if reqwest::header::HeaderValue::from_str(v).is_err() || v.trim().is_empty() {
                    diag.error(
                        &p,
                        "value is empty or has characters that cannot be sent in an HTTP header",
                    );
                    continue;
                }
                if crate::config::resolve::is_credential_header(name) {
                    diag.warn(
                        &p,
                        format!(
                            "header {name} carries a credential in the config file; prefer {{env: NAME}} or {{file: PATH}}"
                        ),
                    );
                }
                Some(Secret::new(v.trim().to_string()))
            }
            other => crate::config::resolve::resolve_secret(other, &p, env, diag),
        };
        if let Some(s) = secret {
            headers.push((name.to_ascii_lowercase(), s));
        }
    }
    let tls = &cfg.tls;
    let tls_path = path.key("tls");
    let read_pem = |file: &Option<String>, key: &str, diag: &mut Diag<'_>| -> Option<Vec<u8>> {
        let file = file.as_ref()?;
        let p = tls_path.key(key);
        match crate::fsutil::read_to_string(&env.base_dir.join(file), MAX_PEM_BYTES) {
            Ok(text) if text.contains("-----BEGIN ") => Some(text.into_bytes()),
            Ok(_) => {
                diag.error(&p, format!("{file:?} is not a PEM file"));
                None
            }
            Err(e) => {
                diag.error(&p, format!("cannot read {file:?}: {}", io_reason(&e)));
                None
            }
        }
    };
    let ca_pem = read_pem(&tls.ca_file, "ca_file", diag);
    if let Some(pem) = &ca_pem {
        if reqwest::Certificate::from_pem_bundle(pem).is_err() {
            diag.error(
                &tls_path.key("ca_file"),
                "contains no usable PEM certificate",
            );
        }
    }
    let identity_pem = match (&tls.cert_file, &tls.key_file) {
        (None, None) => None,
        (Some(_), None) => {
            diag.error(&tls_path.key("key_file"), "is needed with cert_file");
            None
        }
        (None, Some(_)) => {
            diag.error(&tls_path.key("cert_file"), "is needed with key_file");
            None
        }
        (Some(_), Some(_)) => {
            let cert = read_pem(&tls.cert_file, "cert_file", diag);
            let key = read_pem(&tls.key_file, "key_file", diag);
            match (cert, key) {
                (Some(mut c), Some(k)) => {
                    c.push(b'\n');
                    c.extend_from_slice(&k);
                    if reqwest::Identity::from_pem(&c).is_err() {
                        diag.error(
                            &tls_path.key("cert_file"),
                            "the certificate and key_file do not form a usable client identity",
                        );
                    }
                    Some(c)
                }
                _ => None,
            }
        }
    };
    if tls.insecure_skip_verify {
        diag.warn(
            &tls_path.key("insecure_skip_verify"),
            "the receiver's certificate is not checked: anyone on the path can read the headers",
        );
    }
    if (ca_pem.is_some() || identity_pem.is_some())
        && endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    {
        diag.error(
            &tls_path,
            "TLS files are set but the endpoint is http://; use https://",
        );
    }
    for key in cfg.resource.keys() {
        if key.trim().is_empty() {
            diag.error(&path.key("resource"), "attribute names must not be empty");
        }
    }
    if diag.error_count() > before {
        return None;
    }
    let endpoint = endpoint?;
    Some(OtlpSettings {
        metrics_url: format!("{endpoint}/v1/metrics"),
        endpoint,
        interval: cfg.interval,
        timeout: cfg.timeout,
        headers,
        ca_pem,
        identity_pem,
        insecure_skip_verify: tls.insecure_skip_verify,
        resource: cfg.resource.clone(),
        semconv: cfg.semconv,
        histograms: cfg.histograms,
    })
}

/// The endpoint without a trailing slash, or `None` after recording why it is unusable.
fn check_endpoint(raw: &str, path: &YamlPath, diag: &mut Diag<'_>) -> Option<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = match reqwest::Url::parse(trimmed) {
        Ok(u) => u,
        Err(e) => {
            diag.error(
                path,
                format!("not a URL ({e}); expected http(s)://host:port of the OTLP receiver"),
            );
            return None;
        }
    };
    if !matches!(url.scheme(), "http" | "https") {
        diag.error(
            path,
            format!("scheme {:?} is not http or https", url.scheme()),
        );
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        diag.error(path, "has no host");
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the userinfo is a credential.
        diag.error(
            path,
            "carries credentials in the URL; put them in otlp.headers with {env: NAME}",
        );
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        diag.error(path, "must not have a query or a fragment");
        return None;
    }
    if trimmed.ends_with("/v1/metrics") {
        diag.error(
            path,
            "is the base URL: /v1/metrics is appended, so leave it out",
        );
        return None;
    }
    Some(trimmed.to_string())
}
