//! Configuration: typed YAML, defaults, validation with YAML paths, secret references.
//!
//! [`load`] is the one entry point: it reads a file, parses it (serde-saphyr), validates it,
//! collects *every* error with its YAML path, resolves secrets and scenarios, and returns a
//! [`Loaded`] config that the runtime uses without further checks. This module knows nothing of
//! the runtime.

pub mod gpus;
mod journeys;
mod load;
pub mod otlp;
mod resolve;
pub mod servers;
pub mod simulator;
pub mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use load::{declares_no_targets, load, load_for_check, load_str, load_str_with, Environment};
pub use resolve::{
    parse_cron, resolve_adhoc, resolve_adhoc_with, AdHoc, AdHocErrors, BUCKET_METRICS,
};
pub use types::*;

use crate::probe::dialect::{AuthStyle, DialectKind, Message, ToolSpec};

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// YAML path, e.g. `targets[2].schedule.every`; empty for file-level problems.
    pub path: String,
    /// 1-based line, where the parser gives one.
    pub line: Option<u64>,
    /// What is wrong, in words that say what to write instead.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), self.line) {
            (true, None) => write!(f, "{}", self.message),
            (true, Some(l)) => write!(f, "line {l}: {}", self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (false, Some(l)) => write!(f, "{} (line {l}): {}", self.path, self.message),
        }
    }
}

/// Every problem found in a config file, in document order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The file (or `<string>`).
    pub source_name: String,
    /// The problems; never empty.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{}: {n} error{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// A non-fatal remark about a valid config (e.g. an inline API key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// YAML path.
    pub path: String,
    /// What is discouraged and why.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A validated configuration, ready for the runtime.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Where it came from.
    pub source_name: String,
    /// Global settings.
    pub global: GlobalConfig,
    /// Targets, in file order, fully resolved.
    pub targets: Vec<Arc<Target>>,
    /// Histogram bucket overrides, keyed by metric name without the `inferprobe_` prefix.
    pub buckets: BTreeMap<String, Vec<f64>>,
    /// The in-process simulator, if configured.
    pub simulator: Option<simulator::SimulatorConfig>,
    /// NVML GPU sampling.
    pub gpus: gpus::GpusConfig,
    /// Inference servers to scrape.
    pub servers: Vec<servers::ServerConfig>,
    /// OTLP export, when the `otlp:` block is present.
    pub otlp: Option<otlp::OtlpSettings>,
    /// Non-fatal remarks, logged at start and printed by `check-config`.
    pub warnings: Vec<ConfigWarning>,
}

/// Where a target's requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseUrl {
    /// An absolute `http(s)://` URL without a trailing slash.
    Url(String),
    /// The in-process simulator; its address is known only once it is listening.
    Simulator,
}

/// A target with every reference resolved. Its `Debug` hides header values and the API key.
#[derive(Clone)]
pub struct Target {
    /// Unique name; the `target` label.
    pub name: String,
    /// API dialect.
    pub dialect: DialectKind,
    /// Where requests go.
    pub base_url: BaseUrl,
    /// Model name; the `model` label.
    pub model: String,
    /// The API key, read from env/file at load time.
    pub api_key: Option<Secret>,
    /// How the key is sent.
    pub auth: AuthStyle,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Extra query parameters.
    pub query: BTreeMap<String, String>,
    /// OpenAI dialects: request usage in the stream.
    pub include_usage: bool,
    /// Scenarios with their weights; empty only when the target runs journeys alone.
    pub scenarios: Vec<(Arc<Scenario>, u32)>,
    /// Journeys with their weights, after the scenarios in the rotation.
    pub journeys: Vec<(Arc<Journey>, u32)>,
    /// How the next scenario is chosen.
    pub scenario_selection: ScenarioSelection,
    /// When to probe.
    pub schedule: ScheduleConfig,
    /// Resolved timeouts.
    pub timeouts: Timeouts,
    /// Response byte cap.
    pub max_response_bytes: u64,
    /// Prices for this target's model, if known.
    pub price: Option<PriceConfig>,
    /// The self-hosted cost model, when the target runs on GPUs you pay for by the hour.
    pub self_hosted: Option<SelfHostedConfig>,
    /// Marks a production endpoint.
    pub production: bool,
    /// Connection reuse and redirects.
    pub connection: ConnectionSettings,
}

/// How a target's probes use connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionSettings {
    /// Reuse pooled connections or open a fresh one per probe.
    pub mode: ConnectionMode,
    /// Longest idle time of a pooled connection that a probe reuses.
    pub idle_timeout: Duration,
    /// Follow redirects (same method; credentials only to the same origin).
    pub follow_redirects: bool,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            mode: ConnectionMode::Reuse,
            idle_timeout: default_connection_idle_timeout(),
            follow_redirects: false,
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be credentials (`Authorization: ...`); only their names are shown.
        let headers: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("auth", &self.auth)
            .field("headers", &headers)
            .field("query", &self.query)
            .field("include_usage", &self.include_usage)
            .field("scenarios", &self.scenarios)
            .field("journeys", &self.journeys)
            .field("scenario_selection", &self.scenario_selection)
            .field("schedule", &self.schedule)
            .field("timeouts", &self.timeouts)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("price", &self.price)
            .field("production", &self.production)
            .field("connection", &self.connection)
            .finish()
    }
}

/// A scenario with its prompt read and its checks compiled.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name; the `scenario` label.
    pub name: String,
    /// The conversation, system prompt first when there is one. Long-context filler is already
    /// appended to the last user message.
    pub messages: Vec<Message>,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Extra body fields.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Prefix a random nonce to defeat the prefix cache.
    pub cache_bust: bool,
    /// Checks, with the regex compiled.
    pub checks: Checks,
    /// Tools offered to the model (journey steps; empty for scenarios).
    pub tools: Vec<ToolSpec>,
    /// Request headers added to the target's (journey steps' `headers:`); values are not logged.
    pub headers: BTreeMap<String, String>,
}

/// A journey with its prompts, tools and checks resolved.
#[derive(Clone, Debug)]
pub struct Journey {
    /// Name; the `journey` label.
    pub name: String,
    /// System prompt, first in every request.
    pub system: Option<String>,
    /// The steps, in order; never empty.
    pub steps: Vec<Step>,
    /// Sampling temperature.
    pub temperature: f64,
    /// Extra body fields of every step.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Prefix the first prompt with a random nonce.
    pub cache_bust: bool,
}

impl Journey {
    /// Whether any step offers tools (the target's dialect must support them).
    pub fn uses_tools(&self) -> bool {
        self.steps.iter().any(|s| !s.tools.is_empty())
    }

    /// The sum of the think times, the part of a journey's duration that is not the model's.
    pub fn think_time(&self) -> Duration {
        self.steps.iter().map(|s| s.think_time).sum()
    }
}

/// One resolved journey step.
#[derive(Clone, Debug)]
pub struct Step {
    /// Name; the `step` label.
    pub name: String,
    /// The user turn; `None` for the model's turn after a tool result.
    pub prompt: Option<String>,
    /// Tools offered in this step's request.
    pub tools: Vec<ToolSpec>,
    /// Canned result of the expected tool call, sent by the next step (JSON or plain text).
    pub tool_result: Option<String>,
    /// Pause before this step (zero for the first).
    pub think_time: Duration,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Checks, `expect_tool` included.
    pub checks: Checks,
    /// Headers of this step's request.
    pub headers: BTreeMap<String, String>,
}

/// Checks with the regex compiled.
#[derive(Clone, Debug, Default)]
pub struct Checks {
    /// Fewest output tokens accepted.
    pub min_output_tokens: Option<u64>,
    /// Most output tokens accepted.
    pub max_output_tokens: Option<u64>,
    /// Substrings the answer must contain.
    pub must_contain: Vec<String>,
    /// A regular expression the answer must match.
    pub regex: Option<regex::Regex>,
    /// The answer must parse as JSON.
    pub valid_json: bool,
    /// The model name the response must report.
    pub expect_model: Option<String>,
    /// A call of this tool the response must make, with arguments valid against its schema.
    pub expect_tool: Option<ExpectTool>,
}

/// A required tool call: the tool's name and the JSON schema its arguments must satisfy.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectTool {
    /// The tool's name.
    pub name: String,
    /// The schema of its `parameters`.
    pub schema: serde_json::Value,
}

impl Scenario {
    /// The scenario used when a file defines none: a short chat that asks for a few words.
    pub fn builtin_default() -> Scenario {
        Scenario {
            name: "default".to_string(),
            messages: vec![Message {
                role: "user".to_string(),
                content: "Count from one to twenty in words, separated by spaces.".to_string(),
                ..Default::default()
            }],
            max_tokens: default_max_tokens(),
            temperature: 0.0,
            stop: Vec::new(),
            extra_body: serde_json::Map::new(),
            cache_bust: true,
            checks: Checks::default(),
            tools: Vec::new(),
            headers: BTreeMap::new(),
        }
    }
}

/// One line for `check-config` and start-up logs, e.g.
/// `OK: 3 targets, 2 scenarios, simulator on, 0 warnings` (with `, N journeys` after the
/// scenarios when targets run any). Scenarios and journeys are counted by name over all targets.
pub fn summary(loaded: &Loaded) -> String {
    let scenarios: std::collections::BTreeSet<&str> = loaded
        .targets
        .iter()
        .flat_map(|t| t.scenarios.iter().map(|(s, _)| s.name.as_str()))
        .collect();
    let journeys: std::collections::BTreeSet<&str> = loaded
        .targets
        .iter()
        .flat_map(|t| t.journeys.iter().map(|(j, _)| j.name.as_str()))
        .collect();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "OK: {}, {}{}, simulator {}, {}{}",
        plural(loaded.targets.len(), "target"),
        plural(scenarios.len(), "scenario"),
        if journeys.is_empty() {
            String::new()
        } else {
            format!(", {}", plural(journeys.len(), "journey"))
        },
        if loaded.simulator.is_some() {
            "on"
        } else {
            "off"
        },
        plural(loaded.warnings.len(), "warning"),
        match &loaded.otlp {
            Some(o) => format!(", OTLP export to {}", o.endpoint),
            None => String::new(),
        },
    )
}
