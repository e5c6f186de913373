//! `inferprobe sim` flags. A `--config` file gives the base; flags override it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::simulator::{
    CountDist, DurationDist, FaultKind, FaultOn, SimApiKey, SimulatorConfig,
};
use crate::config::types::humantime_serde_compat;

/// Listen address of `inferprobe sim` when neither a flag nor the file sets one.
pub const DEFAULT_CLI_LISTEN: &str = "127.0.0.1:8000";

/// Flags of `inferprobe sim`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SimArgs {
    /// Listen address [default: 127.0.0.1:8000].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// A YAML file with a simulator block (either at top level or under `simulator:`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Time to first token: `300ms`, or `uniform:MIN:MAX`, `normal:MEAN:STDDEV`,
    /// `lognormal:MEDIAN:P99`.
    #[arg(long, value_name = "DIST", value_parser = DurationDist::parse_cli)]
    pub ttft: Option<DurationDist>,
    /// Inter-token latency at a batch of one (same forms as --ttft).
    #[arg(long, value_name = "DIST", value_parser = DurationDist::parse_cli)]
    pub itl: Option<DurationDist>,
    /// Answer tokens per request: `32`, or `uniform:16:64` etc.
    #[arg(long, value_name = "DIST", value_parser = CountDist::parse_cli)]
    pub output_tokens: Option<CountDist>,
    /// Reasoning tokens sent before the answer.
    #[arg(long, value_name = "N")]
    pub reasoning_tokens: Option<u32>,
    /// Requests decoding at once (0 = unlimited); the rest queue.
    #[arg(long, value_name = "N")]
    pub slots: Option<u32>,
    /// ITL growth per extra running request.
    #[arg(long, value_name = "F")]
    pub batch_itl_factor: Option<f64>,
    /// Fault probability, repeatable: `--fault http_5xx=0.1`.
    #[arg(long = "fault", value_name = "KIND=P", value_parser = parse_fault)]
    pub faults: Vec<(FaultKind, f64)>,
    /// Which requests the faults may hit: any, tools (requests that offer tools) or
    /// tool-result (requests answering a tool call).
    #[arg(long = "fault-on", value_name = "SCOPE", value_parser = parse_fault_on)]
    pub fault_on: Option<FaultOn>,
    /// Served model name.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Report this model in responses whatever was asked (a silent model swap).
    #[arg(long, value_name = "NAME")]
    pub served_model: Option<String>,
    /// Require the API key held in this environment variable.
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,
    /// Seed of the random draws.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// How long a `timeout_idle` fault stalls.
    #[arg(long, value_name = "DURATION", value_parser = humantime_serde_compat::parse)]
    pub stall_duration: Option<Duration>,
    /// How long a `slow_headers` fault holds the headers back.
    #[arg(long, value_name = "DURATION", value_parser = humantime_serde_compat::parse)]
    pub slow_headers_delay: Option<Duration>,
}

/// Parses `--fault-on`.
pub fn parse_fault_on(s: &str) -> Result<FaultOn, String> {
    FaultOn::parse(s).ok_or_else(|| format!("unknown scope {s:?}; one of any, tools, tool-result"))
}

/// Parses `KIND=PROBABILITY` (`--fault`).
pub fn parse_fault(s: &str) -> Result<(FaultKind, f64), String> {
    let (kind, p) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KIND=PROBABILITY, e.g. http_5xx=0.1, got {s:?}"))?;
    let kind = FaultKind::from_name(kind.trim()).ok_or_else(|| {
        format!(
            "unknown fault kind {:?}; valid kinds: {}",
            kind.trim(),
            FaultKind::names()
        )
    })?;
    let p: f64 = p
        .trim()
        .parse()
        .map_err(|_| format!("invalid probability {p:?}; use a number between 0 and 1"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("probability {p} is outside 0..1"));
    }
    Ok((kind, p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped {
    simulator: SimulatorConfig,
}

/// Parses a YAML simulator block, bare or under a `simulator:` key.
pub fn parse_file_text(text: &str) -> Result<SimulatorConfig, String> {
    let top: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let wrapped = top.as_object().is_some_and(|o| o.contains_key("simulator"));
    if wrapped {
        serde_saphyr::from_str::<Wrapped>(text)
            .map(|w| w.simulator)
            .map_err(|e| e.to_string())
    } else if top.is_null() {
        Ok(SimulatorConfig::default())
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }
}

impl SimArgs {
    /// The file (if any) with the flags applied, validated.
    pub fn into_config(self) -> Result<SimulatorConfig, String> {
        let (mut cfg, from_file) = match &self.config {
            Some(path) => {
                let text = crate::fsutil::read_to_string(path, crate::fsutil::CONFIG_FILE_LIMIT)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let cfg = parse_file_text(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                (cfg, true)
            }
            None => (SimulatorConfig::default(), false),
        };
        match self.listen {
            Some(l) => cfg.listen = l,
            // The file's default (port 0) suits tests; a command line wants a known port.
            None if !from_file || cfg.listen == SimulatorConfig::default().listen => {
                cfg.listen = DEFAULT_CLI_LISTEN.to_string();
            }
            None => {}
        }
        if let Some(v) = self.ttft {
            cfg.ttft = v;
        }
        if let Some(v) = self.itl {
            cfg.itl = v;
        }
        if let Some(v) = self.output_tokens {
            cfg.output_tokens = v;
        }
        if let Some(v) = self.reasoning_tokens {
            cfg.reasoning_tokens = v;
        }
        if let Some(v) = self.slots {
            cfg.slots = v;
        }
        if let Some(v) = self.batch_itl_factor {
            cfg.batch_itl_factor = v;
        }
        for (kind, p) in self.faults {
            cfg.faults.set(kind, p);
        }
        if let Some(v) = self.fault_on {
            cfg.fault_on = v;
        }
        if let Some(v) = self.model {
            cfg.model = v;
        }
        if let Some(v) = self.served_model {
            cfg.served_model = Some(v);
        }
        if let Some(name) = self.api_key_env {
            let key = std::env::var(&name)
                .ok()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| format!("--api-key-env: environment variable {name} is not set"))?;
            cfg.api_key = Some(SimApiKey::new(key));
        }
        if let Some(v) = self.seed {
            cfg.seed = Some(v);
        }
        if let Some(v) = self.stall_duration {
            cfg.stall_duration = v;
        }
        if let Some(v) = self.slow_headers_delay {
            cfg.slow_headers_delay = v;
        }
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            let msgs: Vec<String> = problems
                .into_iter()
                .map(|(p, m)| format!("{p}: {m}"))
                .collect();
            Err(msgs.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::simulator::Dist;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, String> {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .map(|c| c.sim)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_build_a_config() {
        let cfg = parse(&[
            "--ttft",
            "lognormal:300ms:2s",
            "--itl",
            "25ms",
            "--output-tokens",
            "uniform:8:16",
            "--fault",
            "http_5xx=0.1",
            "--fault",
            "rate_limited=0.05",
            "--slots",
            "4",
            "--served-model",
            "swapped",
            "--stall-duration",
            "10s",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:8000");
        assert_eq!(
            cfg.ttft,
            Dist::Lognormal {
                median: Duration::from_millis(300),
                p99: Duration::from_secs(2)
            }
        );
        assert_eq!(cfg.itl, Dist::Fixed(Duration::from_millis(25)));
        assert_eq!(cfg.output_tokens, Dist::Uniform { min: 8, max: 16 });
        assert_eq!((cfg.faults.http_5xx, cfg.faults.rate_limited), (0.1, 0.05));
        assert_eq!(cfg.slots, 4);
        assert_eq!(cfg.served_model.as_deref(), Some("swapped"));
        assert_eq!(cfg.stall_duration, Duration::from_secs(10));
    }

    #[test]
    fn bad_fault_lists_the_valid_kinds() {
        let e = parse(&["--fault", "boom=0.1"]).unwrap_err();
        assert!(
            e.contains("unknown fault kind \"boom\"; valid kinds: rate_limited, http_4xx, http_5xx, api_error, stream_aborted, timeout_idle, malformed_stream, empty_response, slow_headers"),
            "{e}"
        );
        let e = parse(&["--fault", "http_5xx=2"]).unwrap_err();
        assert!(e.contains("outside 0..1"), "{e}");
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.yml");
        std::fs::write(
            &path,
            "simulator:\n  listen: 127.0.0.1:9999\n  ttft: 1s\n  faults: {api_error: 0.2}\n",
        )
        .unwrap();
        let args = SimArgs {
            config: Some(path.clone()),
            itl: Some(Dist::Fixed(Duration::from_millis(5))),
            ..SimArgs::default()
        };
        let cfg = args.into_config().unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9999");
        assert_eq!(cfg.ttft, Dist::Fixed(Duration::from_secs(1)));
        assert_eq!(cfg.itl, Dist::Fixed(Duration::from_millis(5)));
        assert_eq!(cfg.faults.api_error, 0.2);

        std::fs::write(&path, "ttft: 2s\nslots: 3\n").unwrap();
        let cfg = SimArgs {
            config: Some(path.clone()),
            ..SimArgs::default()
        }
        .into_config()
        .unwrap();
        assert_eq!(
            (cfg.ttft, cfg.slots),
            (Dist::Fixed(Duration::from_secs(2)), 3)
        );
        assert_eq!(cfg.listen, "127.0.0.1:8000");

        std::fs::write(&path, "ttft: 2s\nslotz: 3\n").unwrap();
        let e = SimArgs {
            config: Some(path),
            ..SimArgs::default()
        }
        .into_config()
        .unwrap_err();
        assert!(e.contains("unknown field `slotz`"), "{e}");
    }

    #[test]
    fn missing_key_variable_is_an_error() {
        let e = SimArgs {
            api_key_env: Some("INFERPROBE_SIM_TEST_UNSET_VARIABLE".to_string()),
            ..SimArgs::default()
        }
        .into_config()
        .unwrap_err();
        assert_eq!(
            e,
            "--api-key-env: environment variable INFERPROBE_SIM_TEST_UNSET_VARIABLE is not set"
        );
    }
}
