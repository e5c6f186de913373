//! Configuration of the built-in simulated endpoint (the `simulator:` block and `inferprobe sim`).
//!
//! The same type describes the live behaviour: `GET /control` serializes it and `PATCH /control`
//! merges a partial object into it, so every field name here is also a control field name.
//! Timing and length fields take either a fixed value or a distribution drawn per request:
//!
//! ```yaml
//! ttft: 300ms                                   # fixed
//! itl: {dist: uniform, min: 10ms, max: 30ms}    # uniform between min and max
//! ttft: {dist: normal, mean: 300ms, stddev: 50ms}  # normal, clamped at 0
//! ttft: {dist: lognormal, median: 300ms, p99: 2s}  # log-normal with that median and 99th percentile
//! output_tokens: {dist: uniform, min: 16, max: 64}
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::types::humantime_serde_compat;

/// Which requests a fault may hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultOn {
    /// Every request.
    #[default]
    Any,
    /// Requests that offer tools.
    Tools,
    /// Requests whose last turn is a tool result.
    ToolResult,
}

impl FaultOn {
    /// Parses a config, flag or header value.
    pub fn parse(s: &str) -> Option<FaultOn> {
        match s {
            "any" => Some(FaultOn::Any),
            "tools" => Some(FaultOn::Tools),
            "tool-result" => Some(FaultOn::ToolResult),
            _ => None,
        }
    }
}

/// The simulated endpoint's behaviour.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Listen address; `127.0.0.1:0` picks a free port. Fixed once the simulator runs.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The served model name: listed by `/v1/models` and the `model_name` label of `/metrics`.
    #[serde(default = "default_model")]
    pub model: String,
    /// When set, responses report this model instead of echoing the request's model (simulates
    /// a silent model swap behind an endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_model: Option<String>,
    /// Time to first token, from the moment a request starts decoding (after any queueing).
    #[serde(default = "default_ttft")]
    pub ttft: DurationDist,
    /// Gap between two tokens at a batch of one; see `batch_itl_factor`.
    #[serde(default = "default_itl")]
    pub itl: DurationDist,
    /// Answer tokens per request, capped by the request's `max_tokens`/`max_completion_tokens`.
    #[serde(default = "default_output_tokens")]
    pub output_tokens: CountDist,
    /// Reasoning tokens sent before the answer (`reasoning_content` / `thinking_delta`); they
    /// count towards the output tokens and the request's cap. The legacy completions API has no
    /// reasoning field and skips them.
    #[serde(default)]
    pub reasoning_tokens: u32,
    /// Requests decoding at once; the rest wait in a FIFO queue. 0 = unlimited.
    #[serde(default)]
    pub slots: u32,
    /// ITL growth per extra running request: effective ITL = itl × (1 + factor × (running − 1)).
    #[serde(default = "default_batch_itl_factor")]
    pub batch_itl_factor: f64,
    /// Fault probabilities, each drawn per request.
    #[serde(default)]
    pub faults: FaultsConfig,
    /// Which requests the faults may hit: `any` (default), `tools` (requests that offer tools)
    /// or `tool-result` (requests whose last turn is a tool result). A request's
    /// `x-sim-fault-on` header replaces it.
    #[serde(default)]
    pub fault_on: FaultOn,
    /// How long a `timeout_idle` fault stalls the stream (in practice: until the client gives up).
    #[serde(default = "default_stall_duration", with = "duration_serde")]
    pub stall_duration: Duration,
    /// How long a `slow_headers` fault holds back the response headers.
    #[serde(default = "default_slow_headers_delay", with = "duration_serde")]
    pub slow_headers_delay: Duration,
    /// When set, requests to `/v1/*` must carry this key (`Authorization: Bearer`, `x-api-key` or
    /// `api-key`), else they get 401. A test value, never echoed by `/control` or logs.
    #[serde(default, skip_serializing)]
    pub api_key: Option<SimApiKey>,
    /// Seed of the random draws (distributions and faults), for reproducible runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            listen: default_listen(),
            model: default_model(),
            served_model: None,
            ttft: default_ttft(),
            itl: default_itl(),
            output_tokens: default_output_tokens(),
            reasoning_tokens: 0,
            slots: 0,
            batch_itl_factor: default_batch_itl_factor(),
            faults: FaultsConfig::default(),
            fault_on: FaultOn::Any,
            stall_duration: default_stall_duration(),
            slow_headers_delay: default_slow_headers_delay(),
            api_key: None,
            seed: None,
        }
    }
}

/// Default for `simulator.listen`.
pub fn default_listen() -> String {
    "127.0.0.1:0".to_string()
}

/// Default for `simulator.model`.
pub fn default_model() -> String {
    "sim-llm".to_string()
}

/// Default for `simulator.ttft`.
pub fn default_ttft() -> DurationDist {
    Dist::Fixed(Duration::from_millis(200))
}

/// Default for `simulator.itl`.
pub fn default_itl() -> DurationDist {
    Dist::Fixed(Duration::from_millis(20))
}

/// Default for `simulator.output_tokens`.
pub fn default_output_tokens() -> CountDist {
    Dist::Fixed(32)
}

/// Default for `simulator.batch_itl_factor`: each extra running request slows decoding by 5 %.
pub fn default_batch_itl_factor() -> f64 {
    0.05
}

/// Default for `simulator.stall_duration`.
pub fn default_stall_duration() -> Duration {
    Duration::from_secs(3600)
}

/// Default for `simulator.slow_headers_delay`.
pub fn default_slow_headers_delay() -> Duration {
    Duration::from_secs(2)
}

impl SimulatorConfig {
    /// Every problem in this block, as (field path relative to the block, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if let Err(m) = check_listen(&self.listen) {
            errs.push(("listen".to_string(), m));
        }
        if self.model.trim().is_empty() {
            errs.push(("model".to_string(), "must not be empty".to_string()));
        }
        if let Some(m) = &self.served_model {
            if m.trim().is_empty() {
                errs.push((
                    "served_model".to_string(),
                    "must not be empty; omit it to echo the request's model".to_string(),
                ));
            }
        }
        for (name, msg) in [
            ("ttft", self.ttft.check()),
            ("itl", self.itl.check()),
            ("output_tokens", self.output_tokens.check()),
        ] {
            if let Err(m) = msg {
                errs.push((name.to_string(), m));
            }
        }
        if !self.batch_itl_factor.is_finite() || self.batch_itl_factor < 0.0 {
            errs.push((
                "batch_itl_factor".to_string(),
                format!("must be a number >= 0, got {}", self.batch_itl_factor),
            ));
        }
        for kind in FaultKind::ALL {
            let p = self.faults.get(kind);
            if !(0.0..=1.0).contains(&p) {
                errs.push((
                    format!("faults.{}", kind.as_str()),
                    format!("must be a probability between 0 and 1, got {p}"),
                ));
            }
        }
        if let Some(k) = &self.api_key {
            if k.0.is_empty() {
                errs.push((
                    "api_key".to_string(),
                    "must not be empty; omit it to accept requests without a key".to_string(),
                ));
            }
        }
        errs
    }

    /// The model name a response reports for a request that asked for `requested`.
    pub fn response_model<'a>(&'a self, requested: &'a str) -> &'a str {
        match &self.served_model {
            Some(m) => m,
            None if requested.is_empty() => &self.model,
            None => requested,
        }
    }
}

/// `host:port` with a numeric port; name resolution happens when binding.
fn check_listen(listen: &str) -> Result<(), String> {
    if listen.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    match listen.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "invalid address {listen:?}; use HOST:PORT, e.g. \"127.0.0.1:8000\" (port 0 picks a free port)"
        )),
    }
}

/// The API key clients must send. Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SimApiKey(String);

impl SimApiKey {
    /// Wraps a value.
    pub fn new(value: String) -> SimApiKey {
        SimApiKey(value)
    }
    /// The value, for comparing with a request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SimApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The injectable faults, in the fixed order in which they are drawn. Each name is the prober
/// `result` the fault provokes (`slow_headers` only slows the response down).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// HTTP 429 with `Retry-After: 1`.
    RateLimited,
    /// HTTP 400 with an API-shaped error body.
    Http4xx,
    /// HTTP 500 and 503, alternately.
    Http5xx,
    /// HTTP 200, then an error object inside the stream.
    ApiError,
    /// A few tokens, then the connection is cut without the chunked terminator.
    StreamAborted,
    /// A few tokens, then silence for `stall_duration`.
    TimeoutIdle,
    /// An event whose data is not valid JSON.
    MalformedStream,
    /// A well-formed stream without output tokens.
    EmptyResponse,
    /// Response headers held back for `slow_headers_delay`, then a normal answer.
    SlowHeaders,
}

impl FaultKind {
    /// Every kind, in draw order.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::RateLimited,
        FaultKind::Http4xx,
        FaultKind::Http5xx,
        FaultKind::ApiError,
        FaultKind::StreamAborted,
        FaultKind::TimeoutIdle,
        FaultKind::MalformedStream,
        FaultKind::EmptyResponse,
        FaultKind::SlowHeaders,
    ];

    /// The config and label name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RateLimited => "rate_limited",
            FaultKind::Http4xx => "http_4xx",
            FaultKind::Http5xx => "http_5xx",
            FaultKind::ApiError => "api_error",
            FaultKind::StreamAborted => "stream_aborted",
            FaultKind::TimeoutIdle => "timeout_idle",
            FaultKind::MalformedStream => "malformed_stream",
            FaultKind::EmptyResponse => "empty_response",
            FaultKind::SlowHeaders => "slow_headers",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Every name, comma-separated, for error messages.
    pub fn names() -> String {
        FaultKind::ALL.map(FaultKind::as_str).join(", ")
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FaultKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Fault probabilities in [0, 1]. They are drawn independently, in the order of the fields, and
/// the first that hits decides the request's fault, so a request has at most one.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsConfig {
    /// HTTP 429 with `Retry-After: 1` and a JSON error body.
    #[serde(default)]
    pub rate_limited: f64,
    /// HTTP 400 with an OpenAI- or Anthropic-shaped error body.
    #[serde(default)]
    pub http_4xx: f64,
    /// HTTP 500 and 503, alternately.
    #[serde(default)]
    pub http_5xx: f64,
    /// HTTP 200, a first event, then an in-stream error object.
    #[serde(default)]
    pub api_error: f64,
    /// A few tokens, then the connection is cut without the chunked terminator.
    #[serde(default)]
    pub stream_aborted: f64,
    /// A few tokens, then silence for `stall_duration`.
    #[serde(default)]
    pub timeout_idle: f64,
    /// An event whose data is not valid JSON.
    #[serde(default)]
    pub malformed_stream: f64,
    /// A well-formed stream with no output tokens.
    #[serde(default)]
    pub empty_response: f64,
    /// Response headers held back for `slow_headers_delay`, then a normal answer.
    #[serde(default)]
    pub slow_headers: f64,
}

impl FaultsConfig {
    /// The probability of one kind.
    pub fn get(&self, kind: FaultKind) -> f64 {
        match kind {
            FaultKind::RateLimited => self.rate_limited,
            FaultKind::Http4xx => self.http_4xx,
            FaultKind::Http5xx => self.http_5xx,
            FaultKind::ApiError => self.api_error,
            FaultKind::StreamAborted => self.stream_aborted,
            FaultKind::TimeoutIdle => self.timeout_idle,
            FaultKind::MalformedStream => self.malformed_stream,
            FaultKind::EmptyResponse => self.empty_response,
            FaultKind::SlowHeaders => self.slow_headers,
        }
    }

    /// Sets the probability of one kind.
    pub fn set(&mut self, kind: FaultKind, p: f64) {
        let slot = match kind {
            FaultKind::RateLimited => &mut self.rate_limited,
            FaultKind::Http4xx => &mut self.http_4xx,
            FaultKind::Http5xx => &mut self.http_5xx,
            FaultKind::ApiError => &mut self.api_error,
            FaultKind::StreamAborted => &mut self.stream_aborted,
            FaultKind::TimeoutIdle => &mut self.timeout_idle,
            FaultKind::MalformedStream => &mut self.malformed_stream,
            FaultKind::EmptyResponse => &mut self.empty_response,
            FaultKind::SlowHeaders => &mut self.slow_headers,
        };
        *slot = p;
    }
}

/// A value that is fixed or drawn per request from a distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist<T> {
    /// Always this value (written as a bare value: `300ms`, `32`).
    Fixed(T),
    /// Uniform between `min` and `max` inclusive.
    Uniform {
        /// Smallest value.
        min: T,
        /// Largest value.
        max: T,
    },
    /// Normal, clamped at 0.
    Normal {
        /// Mean.
        mean: T,
        /// Standard deviation.
        stddev: T,
    },
    /// Log-normal, fixed by its median and 99th percentile: a long right tail.
    Lognormal {
        /// Median (must be > 0).
        median: T,
        /// 99th percentile (at least the median).
        p99: T,
    },
}

/// A duration that is fixed or drawn per request.
pub type DurationDist = Dist<Duration>;
/// A token count that is fixed or drawn per request.
pub type CountDist = Dist<u32>;

/// A value type a [`Dist`] can hold.
pub trait DistValue: Copy + PartialOrd + Sized {
    /// How the value is written in config (a wrapper with the right serde form).
    type Wire: for<'de> Deserialize<'de> + Serialize + Into<Self> + From<Self>;
    /// What a bare value looks like, for error messages.
    const EXPECTING: &'static str;
    /// Parses a bare string value.
    fn parse_str(s: &str) -> Result<Self, String>;
    /// Accepts a bare integer value.
    fn from_u64(v: u64) -> Result<Self, String>;
    /// The value as a float (seconds for durations).
    fn to_f64(self) -> f64;
    /// A float back to the value type, clamped to its range.
    fn from_f64(v: f64) -> Self;
    /// The value as written in config, for messages.
    fn show(self) -> String;
}

/// The config form of a duration: a humantime string.
#[derive(Clone, Copy, Debug)]
pub struct HumanDuration(pub Duration);

impl From<HumanDuration> for Duration {
    fn from(h: HumanDuration) -> Duration {
        h.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> HumanDuration {
        HumanDuration(d)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration_serde::deserialize(d).map(HumanDuration)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        duration_serde::serialize(&self.0, s)
    }
}

impl DistValue for Duration {
    type Wire = HumanDuration;
    const EXPECTING: &'static str = "a duration like \"300ms\"";
    fn parse_str(s: &str) -> Result<Self, String> {
        humantime_serde_compat::parse(s)
    }
    fn from_u64(v: u64) -> Result<Self, String> {
        Err(format!(
            "a duration needs a unit: write \"{v}ms\" or \"{v}s\""
        ))
    }
    fn to_f64(self) -> f64 {
        self.as_secs_f64()
    }
    fn from_f64(v: f64) -> Self {
        // try_from rejects NaN, negatives and overflow; all of those clamp.
        Duration::try_from_secs_f64(v.max(0.0)).unwrap_or(if v > 0.0 {
            Duration::MAX
        } else {
            Duration::ZERO
        })
    }
    fn show(self) -> String {
        humantime::format_duration(self).to_string()
    }
}

impl DistValue for u32 {
    type Wire = u32;
    const EXPECTING: &'static str = "a whole number like 32";
    fn parse_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("invalid count {s:?}; use a whole number like 32"))
    }
    fn from_u64(v: u64) -> Result<Self, String> {
        u32::try_from(v).map_err(|_| format!("count {v} is too large"))
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        // `as` saturates and maps NaN to 0, which is the clamp wanted here.
        v.round() as u32
    }
    fn show(self) -> String {
        self.to_string()
    }
}

impl<T: DistValue> Dist<T> {
    /// Checks the parameters; the message names what to change.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Dist::Fixed(_) | Dist::Normal { .. } => Ok(()),
            Dist::Uniform { min, max } if min > max => Err(format!(
                "uniform: min ({}) must not exceed max ({})",
                min.show(),
                max.show()
            )),
            Dist::Uniform { .. } => Ok(()),
            Dist::Lognormal { median, .. } if median.to_f64() <= 0.0 => {
                Err("lognormal: median must be greater than 0".to_string())
            }
            Dist::Lognormal { median, p99 } if p99 < median => Err(format!(
                "lognormal: p99 ({}) must be at least the median ({})",
                p99.show(),
                median.show()
            )),
            Dist::Lognormal { .. } => Ok(()),
        }
    }

    /// Parses the command-line form: a bare value (`300ms`, `32`) or `KIND:A:B` with KIND one of
    /// `uniform:MIN:MAX`, `normal:MEAN:STDDEV`, `lognormal:MEDIAN:P99`.
    pub fn parse_cli(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let dist = match parts.as_slice() {
            [v] => Dist::Fixed(T::parse_str(v)?),
            [kind, a, b] => {
                let (a, b) = (T::parse_str(a)?, T::parse_str(b)?);
                match *kind {
                    "uniform" => Dist::Uniform { min: a, max: b },
                    "normal" => Dist::Normal { mean: a, stddev: b },
                    "lognormal" => Dist::Lognormal { median: a, p99: b },
                    other => {
                        return Err(format!(
                            "unknown distribution {other:?}; use uniform, normal or lognormal"
                        ))
                    }
                }
            }
            _ => {
                return Err(format!(
                    "invalid value {s:?}; use {} or uniform:MIN:MAX, normal:MEAN:STDDEV, lognormal:MEDIAN:P99",
                    T::EXPECTING
                ))
            }
        };
        dist.check()?;
        Ok(dist)
    }
}

/// The map form of a distribution, as written in config.
#[derive(Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
enum DistMap<W> {
    Uniform { min: W, max: W },
    Normal { mean: W, stddev: W },
    Lognormal { median: W, p99: W },
}

impl<'de, T: DistValue> Deserialize<'de> for Dist<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DistVisitor(PhantomData))
    }
}

struct DistVisitor<T>(PhantomData<T>);

impl<'de, T: DistValue> Visitor<'de> for DistVisitor<T> {
    type Value = Dist<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} or a map like {{dist: uniform, min: .., max: ..}}",
            T::EXPECTING
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        T::parse_str(v).map(Dist::Fixed).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::from_u64(v).map(Dist::Fixed).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("{v} is negative; use {}", T::EXPECTING))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let m = DistMap::<T::Wire>::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(match m {
            DistMap::Uniform { min, max } => Dist::Uniform {
                min: min.into(),
                max: max.into(),
            },
            DistMap::Normal { mean, stddev } => Dist::Normal {
                mean: mean.into(),
                stddev: stddev.into(),
            },
            DistMap::Lognormal { median, p99 } => Dist::Lognormal {
                median: median.into(),
                p99: p99.into(),
            },
        })
    }
}

impl<T: DistValue> Serialize for Dist<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (kind, (ka, a), (kb, b)) = match *self {
            Dist::Fixed(v) => return T::Wire::from(v).serialize(s),
            Dist::Uniform { min, max } => ("uniform", ("min", min), ("max", max)),
            Dist::Normal { mean, stddev } => ("normal", ("mean", mean), ("stddev", stddev)),
            Dist::Lognormal { median, p99 } => ("lognormal", ("median", median), ("p99", p99)),
        };
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("dist", kind)?;
        m.serialize_entry(ka, &T::Wire::from(a))?;
        m.serialize_entry(kb, &T::Wire::from(b))?;
        m.end()
    }
}

/// Serde for a required duration written as a humantime string (`300ms`, `1h`).
pub mod duration_serde {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    use crate::config::types::humantime_serde_compat;

    /// Deserializes a duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        humantime_serde_compat::deserialize(d)
    }

    /// Serializes as a humantime string, e.g. `1s 500ms`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SimulatorConfig, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_from_empty_block() {
        let c = parse("{}").unwrap();
        assert_eq!(c, SimulatorConfig::default());
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.ttft, Dist::Fixed(Duration::from_millis(200)));
        assert_eq!(c.itl, Dist::Fixed(Duration::from_millis(20)));
        assert_eq!(c.output_tokens, Dist::Fixed(32));
        assert!(c.validate().is_empty());
        let c = parse("output_tokens: 48\nitl: 1s 500ms\n").unwrap();
        assert_eq!(c.output_tokens, Dist::Fixed(48));
        assert_eq!(c.itl, Dist::Fixed(Duration::from_millis(1500)));
        let e = parse("output_tokens: -3").unwrap_err();
        assert!(e.contains("-3 is negative"), "{e}");
    }

    #[test]
    fn every_distribution_form_parses() {
        let c = parse(
            "ttft: {dist: lognormal, median: 300ms, p99: 2s}\n\
             itl: {dist: uniform, min: 10ms, max: 30ms}\n\
             output_tokens: {dist: normal, mean: 40, stddev: 5}\n\
             stall_duration: 5s\n\
             faults: {http_5xx: 0.5}\n\
             api_key: test-key\n\
             seed: 7\n",
        )
        .unwrap();
        assert_eq!(
            c.ttft,
            Dist::Lognormal {
                median: Duration::from_millis(300),
                p99: Duration::from_secs(2)
            }
        );
        assert_eq!(
            c.itl,
            Dist::Uniform {
                min: Duration::from_millis(10),
                max: Duration::from_millis(30)
            }
        );
        assert_eq!(
            c.output_tokens,
            Dist::Normal {
                mean: 40,
                stddev: 5
            }
        );
        assert_eq!(c.stall_duration, Duration::from_secs(5));
        assert_eq!(c.faults.http_5xx, 0.5);
        assert_eq!(c.seed, Some(7));
        assert_eq!(c.api_key.as_ref().map(SimApiKey::expose), Some("test-key"));
        assert!(!format!("{c:?}").contains("test-key"));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        let e = parse("ttfb: 1s").unwrap_err();
        assert!(e.contains("unknown field `ttfb`"), "{e}");
        let e = parse("faults: {http_6xx: 0.1}").unwrap_err();
        assert!(e.contains("unknown field `http_6xx`"), "{e}");
        let e = parse("ttft: {dist: gamma, shape: 2}").unwrap_err();
        assert!(e.contains("gamma"), "{e}");
        let e = parse("ttft: {dist: uniform, min: 1s, mean: 2s}").unwrap_err();
        assert!(e.contains("mean"), "{e}");
        let e = parse("ttft: 300").unwrap_err();
        assert!(e.contains("needs a unit"), "{e}");
        let e = parse("ttft: fast").unwrap_err();
        assert!(e.contains("invalid duration \"fast\""), "{e}");
    }

    #[test]
    fn validate_reports_every_problem_with_its_path() {
        let mut c = SimulatorConfig {
            listen: "nowhere".to_string(),
            ttft: Dist::Uniform {
                min: Duration::from_secs(2),
                max: Duration::from_secs(1),
            },
            output_tokens: Dist::Lognormal { median: 10, p99: 5 },
            batch_itl_factor: -1.0,
            ..SimulatorConfig::default()
        };
        c.faults.http_5xx = 1.5;
        c.faults.slow_headers = -0.1;
        let paths: Vec<String> = c.validate().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "listen",
                "ttft",
                "output_tokens",
                "batch_itl_factor",
                "faults.http_5xx",
                "faults.slow_headers"
            ]
        );
        let msgs = c.validate();
        assert_eq!(
            msgs[1].1,
            "uniform: min (2s) must not exceed max (1s)".to_string()
        );
        assert_eq!(
            msgs[4].1,
            "must be a probability between 0 and 1, got 1.5".to_string()
        );
    }

    #[test]
    fn serializes_back_to_the_config_form() {
        let c =
            parse("ttft: {dist: uniform, min: 200ms, max: 1s 500ms}\nitl: 20ms\napi_key: secret\n")
                .unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["ttft"],
            serde_json::json!({"dist": "uniform", "min": "200ms", "max": "1s 500ms"})
        );
        assert_eq!(v["itl"], "20ms");
        assert_eq!(v["output_tokens"], 32);
        assert_eq!(v["stall_duration"], "1h");
        assert!(v.get("api_key").is_none());
        // The JSON form reads back to the same behaviour (the key aside).
        let back: SimulatorConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back.ttft, c.ttft);
        assert_eq!(back.api_key, None);
    }

    #[test]
    fn cli_form_of_distributions() {
        assert_eq!(
            DurationDist::parse_cli("300ms").unwrap(),
            Dist::Fixed(Duration::from_millis(300))
        );
        assert_eq!(
            CountDist::parse_cli("uniform:16:64").unwrap(),
            Dist::Uniform { min: 16, max: 64 }
        );
        assert_eq!(
            DurationDist::parse_cli("lognormal:300ms:2s").unwrap(),
            Dist::Lognormal {
                median: Duration::from_millis(300),
                p99: Duration::from_secs(2)
            }
        );
        assert!(DurationDist::parse_cli("uniform:2s:1s").is_err());
        assert!(DurationDist::parse_cli("gamma:1s:2s")
            .unwrap_err()
            .contains("unknown distribution"));
    }

    #[test]
    fn fault_names_round_trip() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(FaultKind::from_name("nope"), None);
        assert!(FaultKind::names().starts_with("rate_limited, http_4xx"));
    }
}
