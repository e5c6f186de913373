//! Command-line flags, Prometheus style (`--config.file`, `--web.listen-address`, ...).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// Version line of `--version`: crate version and git revision.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("INFERPROBE_GIT_REVISION"),
    ")"
);

/// Default `--web.listen-address`.
pub const DEFAULT_LISTEN: &str = ":10048";

/// inferprobe: streaming canary probes for LLM endpoints, exported to Prometheus.
#[derive(Debug, Parser)]
#[command(name = "inferprobe", version = LONG_VERSION, about, long_about = None)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    pub log_format: LogFormat,
    /// Log level (`debug`, `info`, `warn`, `error`) or a filter such as `inferprobe=debug`.
    #[arg(long = "log.level", default_value = "info", global = true)]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: probe on schedule and serve /metrics.
    Run(RunArgs),
    /// Validate a config file and print every error with its YAML path.
    CheckConfig(CheckConfigArgs),
    /// Run one probe now and print its phases, tokens, cost and result.
    Probe(Box<ProbeArgs>),
    /// Serve the built-in simulated LLM endpoint.
    Sim(Box<crate::sim::SimArgs>),
    /// Derive Prometheus alert rules from load-test results.
    Thresholds(crate::thresholds::ThresholdsArgs),
    /// Ramp load up stage by stage to find where latency bends (generates real load).
    Calibrate(Box<crate::calibrate::CalibrateArgs>),
    /// Release gate: probe a candidate, compare with a baseline; exit 0 pass, 1 regression,
    /// 2 could not judge.
    Gate(Box<crate::gate::GateArgs>),
}

/// `inferprobe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file.
    #[arg(long = "config.file", default_value = "/etc/inferprobe/config.yml")]
    pub config_file: PathBuf,
    /// Address for /metrics and the other endpoints (`:PORT` listens on every interface).
    #[arg(long = "web.listen-address", default_value = DEFAULT_LISTEN)]
    pub listen_address: String,
    /// Web config file (exporter-toolkit format): TLS, client certificates, basic auth, headers.
    #[arg(long = "web.config.file")]
    pub web_config_file: Option<PathBuf>,
    /// Answer 403 on /-/reload (reload with SIGHUP only).
    #[arg(long = "web.disable-reload")]
    pub web_disable_reload: bool,
    /// Answer 403 on /probe (no probes on demand).
    #[arg(long = "web.disable-probe")]
    pub web_disable_probe: bool,
    /// Most web connections open at once; never more than half the open-files limit, which is
    /// raised to its hard limit at start. At the cap, a new connection displaces the one that
    /// has waited longest without a request in flight.
    #[arg(long = "web.max-connections", default_value_t = crate::webconfig::DEFAULT_MAX_CONNECTIONS)]
    pub web_max_connections: usize,
    /// Time a client has to send a request's headers (on HTTP/1.1 also the longest wait for the
    /// next request on a kept-alive connection).
    #[arg(long = "web.read-header-timeout", default_value = "10s", value_parser = parse_duration)]
    pub web_read_header_timeout: Duration,
    /// A web connection with no traffic and no request in flight for this long is closed.
    #[arg(long = "web.idle-timeout", default_value = "60s", value_parser = parse_duration)]
    pub web_idle_timeout: Duration,
    /// On SIGTERM, time requests in flight get to finish before their connections are closed.
    /// Probing stops at once.
    #[arg(long = "web.shutdown-grace", default_value = "10s", value_parser = parse_duration)]
    pub web_shutdown_grace: Duration,
    /// This replica's index when several replicas share the targets (`0..shard.count`); each
    /// replica probes only the targets that rendezvous hashing of their names assigns to it.
    #[arg(long = "shard.index", default_value_t = 0)]
    pub shard_index: u32,
    /// How many replicas share the targets (1: this one probes them all).
    #[arg(long = "shard.count", default_value_t = 1)]
    pub shard_count: u32,
}

/// `inferprobe check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Config file to validate.
    pub file: PathBuf,
}

/// Which endpoint to talk to, for `probe` and `calibrate`: a target of a config
/// (`--config.file`) or an ad-hoc one (`--url --dialect --model`).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Config file to take the target from.
    #[arg(long = "config.file", conflicts_with_all = ["url", "dialect", "model"])]
    pub config_file: Option<PathBuf>,
    /// Target name (default: the first target of the config).
    #[arg(long, requires = "config_file")]
    pub target: Option<String>,
    /// Scenario name (default: `probe` sends the target's first scenario, `calibrate` all of
    /// them in turn).
    #[arg(long, requires = "config_file")]
    pub scenario: Option<String>,
    /// Ad hoc: base URL as the provider's SDK takes it (`http://127.0.0.1:8000/v1` for OpenAI
    /// dialects, `https://api.anthropic.com` for Anthropic).
    #[arg(long, requires_all = ["dialect", "model"])]
    pub url: Option<String>,
    /// Ad hoc: API dialect (`openai-chat`, `openai-completions`, `anthropic-messages`,
    /// `openai-responses`, `gemini`, `ollama`, `bedrock-converse`).
    #[arg(long)]
    pub dialect: Option<String>,
    /// Ad hoc: model name.
    #[arg(long)]
    pub model: Option<String>,
    /// Ad hoc: the user prompt.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Ad hoc: upper bound on generated tokens.
    #[arg(long = "max-tokens", default_value_t = 64)]
    pub max_tokens: u32,
    /// Ad hoc: name of the environment variable holding the API key.
    #[arg(long = "api-key-env")]
    pub api_key_env: Option<String>,
    /// Ad hoc: do not send `stream_options.include_usage` (for servers that reject it).
    #[arg(long = "no-usage")]
    pub no_usage: bool,
}

/// `inferprobe probe`: one probe now, from a config or ad hoc.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The endpoint.
    #[command(flatten)]
    pub endpoint: TargetArgs,
    /// Ad hoc: extra header `NAME: VALUE` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Connection setup timeout.
    #[arg(long = "connect-timeout", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Timeout from the request to the first output token.
    #[arg(long = "first-token-timeout", value_parser = parse_duration)]
    pub first_token_timeout: Option<Duration>,
    /// Longest silence between two reads of the stream.
    #[arg(long = "idle-timeout", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Timeout of the whole request.
    #[arg(long = "total-timeout", value_parser = parse_duration)]
    pub total_timeout: Option<Duration>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List every event of the stream: its arrival offset, the gap since the previous one, its
    /// kind and size (a terminal waterfall, or JSON lines with `--json`).
    #[arg(long, conflicts_with = "journey")]
    pub trace: bool,
    /// Run this many probes in a row and summarize them (p50/p95/max of each milestone, results
    /// by class).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000), conflicts_with = "journey")]
    pub count: u32,
    /// With `--count`: time from the start of one probe to the start of the next (default: the
    /// next starts when the previous ends).
    #[arg(long, value_parser = parse_duration, requires = "count")]
    pub interval: Option<Duration>,
    /// Run this journey of the target (all its steps) instead of one scenario.
    #[arg(long, requires = "config_file", conflicts_with = "scenario")]
    pub journey: Option<String>,
}

/// Parses a human duration flag (`30s`, `250ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::types::humantime_serde_compat::parse(s)
}

/// Turns `:PORT` into `0.0.0.0:PORT`; other forms are passed through to the resolver.
pub fn listen_address(s: &str) -> String {
    match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_prometheus_style() {
        let cli = Cli::try_parse_from([
            "inferprobe",
            "run",
            "--config.file=x.yml",
            "--log.format=json",
        ])
        .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        match cli.command {
            Command::Run(r) => {
                assert_eq!(r.config_file, PathBuf::from("x.yml"));
                assert_eq!(r.listen_address, ":10048");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(listen_address(":10048"), "0.0.0.0:10048");
        assert_eq!(listen_address("127.0.0.1:0"), "127.0.0.1:0");
    }

    #[test]
    fn probe_ad_hoc_and_config_modes_are_exclusive() {
        let ok = Cli::try_parse_from([
            "inferprobe",
            "probe",
            "--url",
            "http://127.0.0.1:1/v1",
            "--dialect",
            "openai-chat",
            "--model",
            "m",
            "--first-token-timeout",
            "2s",
        ])
        .unwrap();
        match ok.command {
            Command::Probe(p) => assert_eq!(p.first_token_timeout, Some(Duration::from_secs(2))),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["inferprobe", "probe", "--url", "http://x/v1"]).is_err());
        assert!(Cli::try_parse_from([
            "inferprobe",
            "probe",
            "--config.file",
            "c.yml",
            "--url",
            "http://x/v1",
            "--dialect",
            "openai-chat",
            "--model",
            "m"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "inferprobe",
            "probe",
            "--url",
            "u",
            "--dialect",
            "d",
            "--model",
            "m",
            "--idle-timeout",
            "soon"
        ])
        .is_err());
    }
}
