//! The typed configuration. Every field is documented here; `config/example.yml` uses them all.
//!
//! Durations are human strings (`30s`, `250ms`) parsed by [`humantime`]. Defaults are named
//! functions so that the documentation and the code cannot drift apart.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::gpus::GpusConfig;
use crate::config::servers::ServerConfig;
use crate::config::simulator::SimulatorConfig;
use crate::probe::dialect::{AuthStyle, DialectKind};

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings that apply to every target.
    #[serde(default)]
    pub global: GlobalConfig,
    /// Named scenarios: what a probe sends and what it checks.
    #[serde(default)]
    pub scenarios: BTreeMap<String, ScenarioConfig>,
    /// Named journeys: multi-step probes that carry a conversation (and tool calls) from step
    /// to step.
    #[serde(default)]
    pub journeys: BTreeMap<String, JourneyConfig>,
    /// The endpoints to probe.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Per-model prices, keyed by the model name used in targets.
    #[serde(default)]
    pub prices: BTreeMap<String, PriceConfig>,
    /// Histogram bucket overrides, keyed by metric name without the `inferprobe_` prefix.
    #[serde(default)]
    pub buckets: BTreeMap<String, Vec<f64>>,
    /// An in-process simulated endpoint; targets reach it with `base_url: simulator`.
    #[serde(default)]
    pub simulator: Option<SimulatorConfig>,
    /// NVIDIA GPU sampling through NVML.
    #[serde(default)]
    pub gpus: GpusConfig,
    /// Local inference servers whose `/metrics` are scraped and normalized.
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
}

/// Settings that apply to every target.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Most probes in flight at once across all targets.
    #[serde(default = "default_max_concurrent_probes")]
    pub max_concurrent_probes: usize,
    /// Schedule used by targets that set none.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Timeouts used by targets that set none (field by field).
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Largest response body read from one probe, in bytes; beyond it the probe is `stream_aborted`.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Output-token budget per target per hour (0 = unlimited); probes beyond it are skipped with
    /// reason `token_budget`.
    #[serde(default)]
    pub max_output_tokens_per_hour: u64,
    /// Longest wait honoured after a rate limit: a target whose probe ends `rate_limited` with a
    /// Retry-After (or a quota reset) is not probed again before that time, capped by this
    /// (`0s` = ignore Retry-After); skipped ticks count as `reason="retry_after"`.
    #[serde(default = "default_max_retry_after", with = "humantime_serde_compat")]
    pub max_retry_after: Duration,
    /// Probes kept in memory per target and scenario for the status page (sparklines,
    /// waterfalls); 0 keeps none.
    #[serde(default = "default_status_history")]
    pub status_history: usize,
}

/// Default for `global.status_history`.
pub fn default_status_history() -> usize {
    30
}

/// Upper bound of `global.status_history`.
pub const MAX_STATUS_HISTORY: usize = 1000;

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            max_concurrent_probes: default_max_concurrent_probes(),
            schedule: ScheduleConfig::default(),
            timeouts: TimeoutsConfig::default(),
            max_response_bytes: default_max_response_bytes(),
            max_output_tokens_per_hour: 0,
            max_retry_after: default_max_retry_after(),
            status_history: default_status_history(),
        }
    }
}

/// Default for `global.max_concurrent_probes`.
pub fn default_max_concurrent_probes() -> usize {
    4
}

/// Default for `global.max_retry_after`: long enough for a per-minute quota to refill, short
/// enough that a bogus Retry-After does not silence a canary for long.
pub fn default_max_retry_after() -> Duration {
    Duration::from_secs(600)
}

/// Upper bound of `global.max_retry_after`.
pub const MAX_RETRY_AFTER_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Default for `global.max_response_bytes`: 4 MiB, far above any canary answer.
pub fn default_max_response_bytes() -> u64 {
    4 * 1024 * 1024
}

/// When a target is probed: every interval (with jitter) or on a cron expression.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Interval between probe starts.
    #[serde(default = "default_every", with = "humantime_serde_compat")]
    pub every: Duration,
    /// Random spread of each start, as a fraction of `every` (0.0–0.5): a start is drawn
    /// uniformly from `every × (1 ± jitter)`.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// A cron expression with seconds (`0 */5 * * * *`); replaces `every` when set.
    #[serde(default)]
    pub cron: Option<String>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            every: default_every(),
            jitter: default_jitter(),
            cron: None,
        }
    }
}

/// Default for `schedule.every`.
pub fn default_every() -> Duration {
    Duration::from_secs(30)
}

/// Default for `schedule.jitter`.
pub fn default_jitter() -> f64 {
    0.1
}

/// Timeouts of one probe. A missing field falls back to `global.timeouts`, then to the default.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// TCP (and TLS) connection setup.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub connect: Option<Duration>,
    /// From `t_start` to the first output-bearing event.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub first_token: Option<Duration>,
    /// Longest silence between two reads of the body.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub idle: Option<Duration>,
    /// The whole probe, from `t_start` to the end of the stream.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub total: Option<Duration>,
}

/// Timeouts with every field resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connection setup.
    pub connect: Duration,
    /// From `t_start` to the first output-bearing event.
    pub first_token: Duration,
    /// Longest silence between two reads of the body.
    pub idle: Duration,
    /// The whole probe.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(120),
        }
    }
}

impl TimeoutsConfig {
    /// Resolves this layer over `fallback`.
    pub fn resolve(&self, fallback: &Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect.unwrap_or(fallback.connect),
            first_token: self.first_token.unwrap_or(fallback.first_token),
            idle: self.idle.unwrap_or(fallback.idle),
            total: self.total.unwrap_or(fallback.total),
        }
    }
}

/// Where an API key comes from. Inline keys work but are warned about.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `{env: NAME}`: read from an environment variable when the config is loaded.
    Env {
        /// Variable name.
        env: String,
    },
    /// `{file: PATH}`: read from a file (trailing newline trimmed), e.g. a mounted secret.
    File {
        /// File path.
        file: String,
    },
    /// A literal key in the config file (discouraged: `check-config` warns).
    Inline(String),
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env { env } => write!(f, "{{env: {env}}}"),
            SecretRef::File { file } => write!(f, "{{file: {file}}}"),
            SecretRef::Inline(_) => f.write_str("<inline secret>"),
        }
    }
}

/// A resolved secret value. Its `Debug` and `Display` never print the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    /// The value, for building a request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One endpoint to probe.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name; the `target` label.
    pub name: String,
    /// API dialect: a name from the dialect table (`openai-chat`, `anthropic-messages`, `gemini`,
    /// ...; see `DialectKind::names`).
    pub dialect: DialectKind,
    /// Base URL as the provider's SDK takes it (`http://host:8000/v1` for OpenAI dialects,
    /// `https://api.anthropic.com` for Anthropic; the dialect appends its path), or `simulator`
    /// for the in-process simulator.
    pub base_url: String,
    /// Model name sent in requests; the `model` label.
    pub model: String,
    /// API key reference; omit for servers without auth.
    #[serde(default)]
    pub api_key: Option<SecretRef>,
    /// How the key is sent (or the request signed); defaults to the dialect's habit (bearer for
    /// OpenAI, `x-api-key` for Anthropic, `aws-sigv4` for Bedrock without an `api_key`).
    #[serde(default)]
    pub auth: Option<AuthStyle>,
    /// Extra request headers (values are not logged).
    #[serde(default, deserialize_with = "scalar_string_map::deserialize")]
    pub headers: BTreeMap<String, String>,
    /// Extra query parameters, e.g. `api-version` for Azure OpenAI.
    #[serde(default, deserialize_with = "scalar_string_map::deserialize")]
    pub query: BTreeMap<String, String>,
    /// OpenAI dialects: request usage in the stream (`stream_options.include_usage`). Turn off
    /// for servers that reject the field; output tokens are then counted from events.
    #[serde(default = "default_true")]
    pub include_usage: bool,
    /// Scenarios to run, by name (defaults to every scenario, or a built-in short chat when the
    /// file defines none).
    #[serde(default)]
    pub scenarios: Vec<ScenarioRef>,
    /// Journeys to run, by name, in the same rotation as the scenarios (none by default). A
    /// target that lists journeys but no scenarios runs only its journeys.
    #[serde(default)]
    pub journeys: Vec<ScenarioRef>,
    /// How the next scenario (or journey) is chosen when there are several.
    #[serde(default)]
    pub scenario_selection: ScenarioSelection,
    /// When to probe; falls back to `global.schedule`.
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// Timeouts; missing fields fall back to `global.timeouts`.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Response byte cap; falls back to `global.max_response_bytes`.
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
    /// Price override for this target (else `prices[model]`).
    #[serde(default)]
    pub price: Option<PriceConfig>,
    /// For an endpoint served by GPUs you run: cost per request from the GPU cost rate instead
    /// of token prices. Exclusive with `price` and `prices[model]`.
    #[serde(default)]
    pub self_hosted: Option<SelfHostedConfig>,
    /// Marks a production endpoint (used by tools that generate load).
    #[serde(default)]
    pub production: bool,
    /// `reuse` (default): keep the connection for the next probe, as most clients do; `fresh`:
    /// open a new connection (TCP, TLS) for every probe, so set-up time is inside every TTFB.
    #[serde(default)]
    pub connection: ConnectionMode,
    /// How long a reused connection may sit idle before the next probe opens a new one. Below the
    /// common server keep-alive timeouts (5 s in uvicorn, cpp-httplib and Node) by default, so a
    /// probe never reuses a connection the server is closing; a shorter `Keep-Alive: timeout=N`
    /// from the server wins.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub connection_idle_timeout: Option<Duration>,
    /// Follow HTTP redirects (same method and body; credentials and custom headers only to the
    /// same origin). Off by default: a redirect is a failed probe naming the new location's host.
    #[serde(default)]
    pub follow_redirects: bool,
}

/// Whether a target's probes reuse connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionMode {
    /// Keep connections in a pool between probes (idle at most `connection_idle_timeout`).
    #[default]
    Reuse,
    /// A new connection for every probe.
    Fresh,
}

impl ConnectionMode {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionMode::Reuse => "reuse",
            ConnectionMode::Fresh => "fresh",
        }
    }
}

/// Default for `connection_idle_timeout`: 4 s, below the 5 s keep-alive of uvicorn (vLLM,
/// SGLang), cpp-httplib (llama.cpp) and Node.
pub fn default_connection_idle_timeout() -> Duration {
    Duration::from_secs(4)
}

/// The cost model of a self-hosted endpoint: what its GPUs cost per hour, shared by the requests
/// the server runs at once.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelfHostedConfig {
    /// GPUs serving this endpoint.
    pub gpus: u32,
    /// Cost of one GPU-hour in USD (rental price, or amortized purchase plus hosting).
    pub gpu_hour_usd: f64,
    /// Electricity price; when set, the GPUs' measured power draw (NVML, mean over the GPUs of
    /// this machine, times `gpus`) is added to the hourly rate.
    #[serde(default)]
    pub energy_usd_per_kwh: Option<f64>,
    /// The `servers:` entry whose running requests share the rate; without it every request is
    /// charged the whole rate for its duration (an upper bound).
    #[serde(default)]
    pub server: Option<String>,
}

/// Default helper for boolean fields that default to true.
pub fn default_true() -> bool {
    true
}

/// A scenario reference: a bare name, or a name with a weight.
#[derive(Clone, Debug, PartialEq)]
pub enum ScenarioRef {
    /// `- short-chat`
    Name(String),
    /// `- {name: short-chat, weight: 3}`
    Weighted {
        /// Scenario name.
        name: String,
        /// Relative weight for `scenario_selection: weighted` (default 1).
        weight: u32,
    },
}

impl ScenarioRef {
    /// The referenced scenario's name.
    pub fn name(&self) -> &str {
        match self {
            ScenarioRef::Name(n) => n,
            ScenarioRef::Weighted { name, .. } => name,
        }
    }
    /// The weight (1 for a bare name).
    pub fn weight(&self) -> u32 {
        match self {
            ScenarioRef::Name(_) => 1,
            ScenarioRef::Weighted { weight, .. } => *weight,
        }
    }
}

/// How a target with several scenarios picks the next one.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioSelection {
    /// In turn, in the order listed.
    #[default]
    Rotate,
    /// At random, in proportion to each reference's `weight`.
    Weighted,
}

/// What a probe sends and what it checks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioConfig {
    /// Optional system prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// The conversation. Exactly one of `messages`, `prompt` and `prompt_file` is required.
    #[serde(default)]
    pub messages: Vec<MessageConfig>,
    /// A single user message.
    #[serde(default)]
    pub prompt: Option<String>,
    /// A file whose contents are the single user message (read at load time).
    #[serde(default)]
    pub prompt_file: Option<String>,
    /// Pads the user message with neutral filler to about this many input tokens (4 characters
    /// per token), so TTFT is watched at long-context sizes. 0 = no padding.
    #[serde(default)]
    pub context_tokens: u32,
    /// Upper bound on generated tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: f64,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Extra top-level request body fields (e.g. `ignore_eos: true` for vLLM/llama.cpp).
    #[serde(default)]
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Prefix each probe's prompt with a short random nonce so the server's prefix cache cannot
    /// serve it; `false` measures the cached path on purpose.
    #[serde(default = "default_true")]
    pub cache_bust: bool,
    /// Correctness checks; a failure makes the probe `check_failed`.
    #[serde(default)]
    pub checks: ChecksConfig,
}

/// A journey: steps run in order as one probe of a target, each step one model call whose
/// request carries every earlier turn (prompts, real answers, tool calls and tool results).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneyConfig {
    /// Optional system prompt, first in every request.
    #[serde(default)]
    pub system: Option<String>,
    /// Tools steps may offer, by name: a description and JSON-schema parameters.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolConfig>,
    /// The steps, in order (1 to 16).
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// Pause before every step after the first (a user reading, a tool running); a step's own
    /// `think_time` replaces it. Not part of any step's timings.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub think_time: Option<Duration>,
    /// Upper bound on generated tokens per step (a step's `max_tokens` replaces it).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: f64,
    /// Extra top-level request body fields of every step.
    #[serde(default)]
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Prefix the first prompt with a random nonce, so that each run of the journey misses the
    /// prefix cache on its first step and reuses its own prefix on later steps, as a real
    /// conversation does.
    #[serde(default = "default_true")]
    pub cache_bust: bool,
}

/// A tool a journey's steps may offer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// What the tool does, for the model.
    #[serde(default)]
    pub description: String,
    /// JSON schema of the arguments object (`type: object`); the arguments of an expected call
    /// are checked against it.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

/// One step of a journey: one model call.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Unique within the journey; the `step` label.
    pub name: String,
    /// The user turn. Required, except in the step right after a step with `tool_result`,
    /// which is the model's turn answering from the tool's result.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Names of the journey's tools this step offers. Left out, a step offers what the step
    /// before it offered (an agent keeps its tools for the whole task; Anthropic and Bedrock
    /// refuse a conversation with tool calls but no tools), plus its `expect_tool`; `[]` offers
    /// none.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// The model must call this tool, with arguments valid against its schema.
    #[serde(default)]
    pub expect_tool: Option<String>,
    /// The canned result of the expected tool call, sent to the model by the next step: text,
    /// or a map / list sent as JSON. Required when a step follows.
    #[serde(default)]
    pub tool_result: Option<serde_json::Value>,
    /// Pause before this step (replaces the journey's `think_time`).
    #[serde(default, with = "humantime_serde_compat::option")]
    pub think_time: Option<Duration>,
    /// Upper bound on generated tokens (replaces the journey's).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Correctness checks on this step's answer; a failure fails the journey at this step.
    #[serde(default)]
    pub checks: ChecksConfig,
    /// Request headers of this step only, added to the target's (values are not logged). With
    /// the simulator, `x-sim-fault` here injects a fault into this step alone.
    #[serde(default, deserialize_with = "scalar_string_map::deserialize")]
    pub headers: BTreeMap<String, String>,
}

/// Default for `max_tokens`.
pub fn default_max_tokens() -> u32 {
    64
}

/// One chat message.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MessageConfig {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// Correctness checks run on a completed response.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    /// Fewest output tokens accepted.
    #[serde(default)]
    pub min_output_tokens: Option<u64>,
    /// Most output tokens accepted.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Substrings the answer must contain (case-sensitive).
    #[serde(default)]
    pub must_contain: Vec<String>,
    /// A regular expression the answer must match.
    #[serde(default)]
    pub regex: Option<String>,
    /// The answer must parse as JSON (surrounding whitespace and a ```json fence allowed).
    #[serde(default)]
    pub valid_json: bool,
    /// The model name the response reports must equal this (catches a silent model swap).
    #[serde(default)]
    pub expect_model: Option<String>,
}

/// Prices in USD per million tokens.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// USD per million input (prompt) tokens.
    #[serde(default)]
    pub input_per_million: f64,
    /// USD per million output (generated) tokens.
    #[serde(default)]
    pub output_per_million: f64,
    /// USD per million cached input tokens, where the API reports them (else input price).
    #[serde(default)]
    pub cached_input_per_million: Option<f64>,
}

// Hand-written rather than `#[serde(untagged)]`: untagged enums accept unknown keys and fail
// with "data did not match any variant", which says nothing about what to write instead.
impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key, {env: NAME} or {file: PATH}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretRef, E> {
                Ok(SecretRef::Inline(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SecretRef, A::Error> {
                use serde::de::Error;
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    let r = match key.as_str() {
                        "env" => SecretRef::Env {
                            env: map.next_value()?,
                        },
                        "file" => SecretRef::File {
                            file: map.next_value()?,
                        },
                        other => return Err(A::Error::unknown_field(other, &["env", "file"])),
                    };
                    if out.replace(r).is_some() {
                        return Err(A::Error::custom("set only one of `env` and `file`"));
                    }
                }
                out.ok_or_else(|| A::Error::custom("expected {env: NAME} or {file: PATH}"))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ScenarioRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ScenarioRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a scenario name or {name: NAME, weight: N}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScenarioRef, E> {
                Ok(ScenarioRef::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ScenarioRef, A::Error> {
                use serde::de::Error;
                let mut name: Option<String> = None;
                let mut weight: Option<u32> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "weight" => weight = Some(map.next_value()?),
                        other => return Err(A::Error::unknown_field(other, &["name", "weight"])),
                    }
                }
                Ok(ScenarioRef::Weighted {
                    name: name.ok_or_else(|| A::Error::missing_field("name"))?,
                    weight: weight.unwrap_or(1),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Serde adapters for humantime durations (`30s`, `250ms`).
pub mod humantime_serde_compat {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Deserializer, Visitor};
    use serde::Deserialize;

    /// A duration written as a human string; a bare number is refused with a hint, since its
    /// unit would be a guess.
    struct Human(Duration);

    impl<'de> Deserialize<'de> for Human {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Human, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Human;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a duration such as \"30s\"")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Human, E> {
                    parse(v).map(Human).map_err(E::custom)
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Human, E> {
                    Err(E::custom(no_unit(v)))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Human, E> {
                    Err(E::custom(no_unit(v)))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Human, E> {
                    Err(E::custom(no_unit(v)))
                }
            }
            d.deserialize_any(V)
        }
    }

    fn no_unit(v: impl fmt::Display) -> String {
        format!("invalid duration {v}: a unit is required, e.g. \"{v}s\" or \"{v}ms\"")
    }

    /// Deserializes a required duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Human::deserialize(d).map(|h| h.0)
    }

    /// Parses a duration string, with an error that says what is accepted.
    pub fn parse(s: &str) -> Result<Duration, String> {
        humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid duration {s:?} ({e}); use e.g. \"30s\", \"250ms\", \"2m\"")
        })
    }

    /// Adapters for optional durations.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer};

        /// Deserializes an optional duration.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Ok(Option::<super::Human>::deserialize(d)?.map(|h| h.0))
        }
    }
}

/// Deserializes a map of strings whose values may also be written as plain YAML numbers or
/// booleans (`api-version: 2024-10-21`, `n: 5`, `X-Flag: true`); they are sent as text.
pub mod scalar_string_map {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};
    use serde::Deserialize;

    struct Text(String);

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Text;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string, number or boolean")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// Deserializes the map.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        let m = BTreeMap::<String, Text>::deserialize(d)?;
        Ok(m.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}
