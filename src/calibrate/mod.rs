//! `inferprobe calibrate`: a staged load ramp that finds where an endpoint's latency bends.
//!
//! The only part of inferprobe that generates load, and only when asked: it prints its plan
//! before sending anything and refuses targets marked `production: true` unless
//! `--allow-production` is given. Each stage runs `warmup + hold` at one load level, either
//! closed loop (N workers sending back to back) or open loop (launches at a fixed rate, however
//! many are in flight, up to a safety limit). Requests go through the probe engine, so the
//! numbers mean what the daemon's metrics mean. Requests started during a stage's warm-up are
//! not counted, so each stage is measured with its queue already filled; requests still in
//! flight when the stage ends are waited for and counted.
//!
//! Output: a table on stdout, `DIR/calibrate.json` ([`CalibrateResult`], read by
//! `inferprobe thresholds`) and `DIR/calibrate.svg` (the saturation curve). The knee is
//! defined in [`knee`].

pub mod chart;
pub mod format;
pub mod knee;
pub mod progress;
pub mod ramp;
pub mod report;
pub mod stats;

use crate::redact::display_url;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args};
use tokio::sync::watch;

pub use format::{CalibrateResult, CalibrateSlo, CalibrateStage, Quantiles};
pub use knee::Knee;
pub use progress::Progress;
pub use ramp::Arrival;

use crate::cli::parse_duration;
use crate::commands::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::{self, BaseUrl, ConfigErrors, Scenario, Target, Timeouts};
use crate::probe::engine;
use crate::sim::{SimError, SimHandle};
use progress::StageLabel;
use ramp::{Counters, Shooter};
use stats::Window;

/// Most workers of one concurrency stage.
pub const MAX_CONCURRENCY: u32 = 10_000;
/// Most launches one rate stage may plan.
pub const MAX_LAUNCHES_PER_STAGE: f64 = 1_000_000.0;
/// Name of the result file in `--out`.
pub const JSON_FILE: &str = "calibrate.json";
/// Name of the chart in `--out`.
pub const SVG_FILE: &str = "calibrate.svg";

/// `inferprobe calibrate`: from a config (`--config.file`) or ad hoc (`--url --dialect --model`).
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("ramp").required(true).args(["stages", "rates"])))]
pub struct CalibrateArgs {
    /// The endpoint.
    #[command(flatten)]
    pub endpoint: crate::cli::TargetArgs,
    /// Closed-loop stages: requests in flight at once, ascending (`1,2,4,8,16`).
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    pub stages: Vec<u32>,
    /// Open-loop stages: requests started per second, ascending (`0.5,1,2,4`).
    #[arg(long, value_delimiter = ',', value_name = "R,R,...")]
    pub rates: Vec<f64>,
    /// How open-loop launches are spaced.
    #[arg(long, value_enum, default_value = "constant")]
    pub arrival: Arrival,
    /// Measured length of each stage.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Unmeasured lead-in of each stage, so queues fill before measuring.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// SLO: highest acceptable p95 time to first token.
    #[arg(long = "slo.ttft-p95", default_value = "500ms", value_parser = parse_duration)]
    pub slo_ttft_p95: Duration,
    /// SLO: highest acceptable p95 inter-token latency.
    #[arg(long = "slo.itl-p95", default_value = "50ms", value_parser = parse_duration)]
    pub slo_itl_p95: Duration,
    /// SLO: highest acceptable share of failed requests (0–1).
    #[arg(long = "slo.error-rate", default_value_t = 0.01)]
    pub slo_error_rate: f64,
    /// Run every stage even after one breaks the SLO.
    #[arg(long = "no-stop-on-breach")]
    pub no_stop_on_breach: bool,
    /// Allow calibrating a target marked `production: true`.
    #[arg(long = "allow-production")]
    pub allow_production: bool,
    /// Open loop: most requests in flight; launches beyond it are refused and count as errors.
    #[arg(long = "max-in-flight", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Directory for `calibrate.json` and `calibrate.svg` (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Why a calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// The target is marked `production: true` and `--allow-production` was not given.
    #[error(
        "target {0:?} is marked `production: true`; calibrate sends real load and refuses \
         production targets unless --allow-production is given"
    )]
    Production(String),
    /// Flags that name nothing runnable.
    #[error("{0}")]
    Usage(String),
    /// The config file is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The in-process simulator did not start.
    #[error("starting the simulator: {0}")]
    Simulator(#[from] SimError),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// An output file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl CalibrateError {
    /// The process exit code for this error: 2 for usage, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CalibrateError::Production(_) | CalibrateError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

fn usage(msg: impl Into<String>) -> CalibrateError {
    CalibrateError::Usage(msg.into())
}

/// The load levels of a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Ramp {
    /// Closed loop: this many requests in flight, stage by stage.
    Concurrency(Vec<u32>),
    /// Open loop: this many launches per second, stage by stage.
    Rate {
        /// Requests per second of each stage.
        rates: Vec<f64>,
        /// How launches are spaced.
        arrival: Arrival,
    },
}

impl Ramp {
    /// Each stage's load as written to the result.
    pub fn loads(&self) -> Vec<f64> {
        match self {
            Ramp::Concurrency(n) => n.iter().map(|n| f64::from(*n)).collect(),
            Ramp::Rate { rates, .. } => rates.clone(),
        }
    }

    /// `concurrency` or `rate`.
    pub fn mode(&self) -> &'static str {
        match self {
            Ramp::Concurrency(_) => format::MODE_CONCURRENCY,
            Ramp::Rate { .. } => format::MODE_RATE,
        }
    }

    fn stage_name(&self, load: f64) -> String {
        match self {
            Ramp::Concurrency(_) => format!("concurrency {}", chart::load_label(load)),
            Ramp::Rate { .. } => format!("rate {} req/s", chart::load_label(load)),
        }
    }

    /// Checks the loads: positive, finite, ascending, within the safety caps.
    pub fn validate(&self, span: Duration) -> Result<(), String> {
        let loads = self.loads();
        let flag = match self {
            Ramp::Concurrency(_) => "--stages",
            Ramp::Rate { .. } => "--rates",
        };
        if loads.is_empty() {
            return Err(format!("{flag}: give at least one load level"));
        }
        if let Some(bad) = loads.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(format!("{flag}: every load must be above 0, got {bad}"));
        }
        if loads.windows(2).any(|w| w[1] <= w[0]) {
            return Err(format!(
                "{flag}: loads must be strictly ascending (the knee is judged against the lowest \
                 stage, which runs first)"
            ));
        }
        match self {
            Ramp::Concurrency(n) => {
                if let Some(big) = n.iter().find(|n| **n > MAX_CONCURRENCY) {
                    return Err(format!(
                        "--stages: {big} is above the limit of {MAX_CONCURRENCY} workers"
                    ));
                }
            }
            Ramp::Rate { rates, .. } => {
                if let Some(big) = rates
                    .iter()
                    .find(|r| **r * span.as_secs_f64() > MAX_LAUNCHES_PER_STAGE)
                {
                    return Err(format!(
                        "--rates: {big}/s for {} plans more than {MAX_LAUNCHES_PER_STAGE} requests \
                         in one stage",
                        humantime::format_duration(span)
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A fully resolved calibration: what to send, where, and how to judge it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The target (its `production` flag is checked by [`calibrate`]).
    pub target: Target,
    /// The resolved base URL.
    pub base_url: String,
    /// Scenarios sent in turn; never empty.
    pub scenarios: Vec<Scenario>,
    /// The load levels.
    pub ramp: Ramp,
    /// Measured length of each stage.
    pub hold: Duration,
    /// Unmeasured lead-in of each stage.
    pub warmup: Duration,
    /// The SLO.
    pub slo: CalibrateSlo,
    /// Stop after the first stage that breaks the SLO.
    pub stop_on_breach: bool,
    /// Run even when the target is marked `production: true`.
    pub allow_production: bool,
    /// Open loop: most requests in flight.
    pub max_in_flight: usize,
}

impl Plan {
    /// Checks everything that does not need the network.
    pub fn validate(&self) -> Result<(), CalibrateError> {
        if self.target.production && !self.allow_production {
            return Err(CalibrateError::Production(self.target.name.clone()));
        }
        if self.scenarios.is_empty() {
            return Err(usage("no scenario to send"));
        }
        if self.hold.is_zero() {
            return Err(usage("--hold must be longer than 0s"));
        }
        if !(0.0..=1.0).contains(&self.slo.error_rate) {
            return Err(usage(format!(
                "--slo.error-rate must be between 0 and 1, got {}",
                self.slo.error_rate
            )));
        }
        if self.max_in_flight == 0 {
            return Err(usage("--max-in-flight must be at least 1"));
        }
        self.ramp
            .validate(self.warmup + self.hold)
            .map_err(CalibrateError::Usage)
    }

    /// The longest the stages take, not counting requests draining at each stage's end.
    pub fn expected_duration(&self) -> Duration {
        (self.warmup + self.hold) * self.ramp.loads().len() as u32
    }

    /// What the run is about to do, printed before any load is sent.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Calibrating target {:?} (model {}, {}) at {}.",
            self.target.name,
            self.target.model,
            self.target.dialect.as_str(),
            display_url(&self.base_url)
        );
        let loads: Vec<String> = self
            .ramp
            .loads()
            .iter()
            .map(|l| chart::load_label(*l))
            .collect();
        let _ = match &self.ramp {
            Ramp::Concurrency(_) => writeln!(
                s,
                "  closed loop, requests in flight per stage: {}",
                loads.join(", ")
            ),
            Ramp::Rate { arrival, .. } => writeln!(
                s,
                "  open loop ({} arrivals, at most {} in flight), requests per second per stage: {}",
                match arrival {
                    Arrival::Constant => "evenly spaced",
                    Arrival::Poisson => "Poisson",
                },
                self.max_in_flight,
                loads.join(", ")
            ),
        };
        let names: Vec<&str> = self.scenarios.iter().map(|s| s.name.as_str()).collect();
        let _ = writeln!(
            s,
            "  each stage: {} warm-up (not counted) + {} measured; scenarios in turn: {}",
            humantime::format_duration(self.warmup),
            humantime::format_duration(self.hold),
            names.join(", ")
        );
        let _ = writeln!(
            s,
            "  SLO: p95 TTFT <= {:.0} ms, p95 ITL <= {:.0} ms, errors <= {:.1} %; {}",
            self.slo.ttft_p95_seconds * 1e3,
            self.slo.itl_p95_seconds * 1e3,
            self.slo.error_rate * 100.0,
            if self.stop_on_breach {
                "stops at the first breach"
            } else {
                "runs every stage"
            }
        );
        let _ = writeln!(
            s,
            "  expected duration: up to {}, plus in-flight requests finishing after each stage",
            humantime::format_duration(self.expected_duration())
        );
        s
    }
}

/// What a calibration produced.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// The result file's contents.
    pub result: CalibrateResult,
    /// The landmarks of the curve.
    pub knee: Knee,
    /// Stopped by a stop request before the plan was done (the cut stage is dropped).
    pub interrupted: bool,
    /// Stopped early at the first SLO breach.
    pub stopped_at_breach: bool,
}

/// Runs the stages of `plan`. `stop` turning true ends the run after the requests in flight.
pub async fn calibrate(
    plan: &Plan,
    stop: watch::Receiver<bool>,
    progress: Progress,
) -> Result<Calibration, CalibrateError> {
    plan.validate()?;
    let client = engine::client_for(&plan.target.timeouts).map_err(CalibrateError::Client)?;
    let counters = Arc::new(Counters::default());
    let shooter = Shooter::new(
        client,
        plan.target.clone(),
        plan.base_url.clone(),
        plan.scenarios.clone(),
        Arc::clone(&counters),
    );
    let loads = plan.ramp.loads();
    let span = plan.warmup + plan.hold;
    let window = Window {
        warmup: plan.warmup,
        hold: plan.hold,
    };
    let mut stages = Vec::new();
    let mut interrupted = false;
    let mut stopped_at_breach = false;
    for (i, load) in loads.iter().copied().enumerate() {
        if *stop.borrow() {
            interrupted = true;
            break;
        }
        counters.reset();
        let label = StageLabel {
            number: i + 1,
            of: loads.len(),
            load: plan.ramp.stage_name(load),
        };
        let ticker = progress.start(&label, span, Arc::clone(&counters));
        let run = match &plan.ramp {
            Ramp::Concurrency(n) => ramp::closed_loop(&shooter, n[i], span, &stop).await,
            Ramp::Rate { arrival, .. } => {
                let offsets = ramp::launch_offsets(load, span, *arrival, &mut rand::rng());
                ramp::open_loop(&shooter, &offsets, plan.max_in_flight, &stop).await
            }
        };
        if let Some(t) = ticker {
            t.abort();
        }
        if run.interrupted {
            progress.line(&format!(
                "stage {}/{} {}: interrupted; not counted",
                label.number, label.of, label.load
            ));
            interrupted = true;
            break;
        }
        if !run.skipped.is_empty() {
            tracing::warn!(
                stage = %label.load,
                refused = run.skipped.len(),
                max_in_flight = plan.max_in_flight,
                "Launches refused at the in-flight limit; they count as errors."
            );
        }
        let stage = stats::summarize(load, &run.samples, &run.skipped, window, &plan.slo);
        let reasons = stats::breach_reasons(&stage, &plan.slo);
        progress.done(&label, &stage, &reasons);
        let breach = stage.breach;
        stages.push(stage);
        if breach && plan.stop_on_breach && i + 1 < loads.len() {
            stopped_at_breach = true;
            break;
        }
    }
    let knee = knee::find(&stages);
    let result = CalibrateResult {
        tool: format::TOOL.to_string(),
        version: crate::VERSION.to_string(),
        target: plan.target.name.clone(),
        model: plan.target.model.clone(),
        dialect: plan.target.dialect.as_str().to_string(),
        mode: plan.ramp.mode().to_string(),
        knee: knee.load(&stages),
        stages,
        slo: plan.slo,
    };
    Ok(Calibration {
        result,
        knee,
        interrupted,
        stopped_at_breach,
    })
}

/// Writes `DIR/calibrate.json` and `DIR/calibrate.svg`, creating `DIR` if needed; returns both
/// paths.
pub fn write_outputs(cal: &Calibration, dir: &Path) -> Result<(PathBuf, PathBuf), CalibrateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CalibrateError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json_path = dir.join(JSON_FILE);
    let mut json =
        serde_json::to_string_pretty(&cal.result).map_err(|e| CalibrateError::Write {
            path: json_path.clone(),
            source: std::io::Error::other(e),
        })?;
    json.push('\n');
    std::fs::write(&json_path, json).map_err(io(&json_path))?;
    let svg_path = dir.join(SVG_FILE);
    std::fs::write(&svg_path, chart::svg(&cal.result, &cal.knee)).map_err(io(&svg_path))?;
    Ok((json_path, svg_path))
}

/// Resolves the flags into a plan; starts the in-process simulator when the target uses it.
pub async fn setup(args: &CalibrateArgs) -> Result<(Plan, Option<SimHandle>), CalibrateError> {
    let ramp = if args.stages.is_empty() {
        Ramp::Rate {
            rates: args.rates.clone(),
            arrival: args.arrival,
        }
    } else {
        Ramp::Concurrency(args.stages.clone())
    };
    let slo = CalibrateSlo {
        ttft_p95_seconds: args.slo_ttft_p95.as_secs_f64(),
        itl_p95_seconds: args.slo_itl_p95.as_secs_f64(),
        error_rate: args.slo_error_rate,
    };
    let (target, scenarios, sim_cfg) = match &args.endpoint.config_file {
        Some(path) => from_config(args, path)?,
        None => {
            let (t, s) = ad_hoc(args)?;
            (t, s, None)
        }
    };
    let mut plan = Plan {
        target,
        base_url: String::new(),
        scenarios,
        ramp,
        hold: args.hold,
        warmup: args.warmup,
        slo,
        stop_on_breach: !args.no_stop_on_breach,
        allow_production: args.allow_production,
        max_in_flight: args.max_in_flight,
    };
    // Refuse before starting anything.
    plan.validate()?;
    let sim = match (&plan.target.base_url, sim_cfg) {
        (BaseUrl::Url(u), _) => {
            plan.base_url = u.clone();
            None
        }
        (BaseUrl::Simulator, Some(cfg)) => {
            let sim = crate::sim::start(cfg).await?;
            plan.base_url =
                crate::runtime::simulator_base_url(&sim.base_url(), plan.target.dialect);
            Some(sim)
        }
        (BaseUrl::Simulator, None) => {
            return Err(usage(format!(
                "target {:?} uses the simulator, but the config has no simulator block",
                plan.target.name
            )))
        }
    };
    Ok((plan, sim))
}

type FromConfig = (
    Target,
    Vec<Scenario>,
    Option<config::simulator::SimulatorConfig>,
);

fn from_config(args: &CalibrateArgs, path: &Path) -> Result<FromConfig, CalibrateError> {
    let loaded = config::load(path)?;
    let (target, scenarios) = crate::commands::select_from_config(
        &loaded,
        path,
        args.endpoint.target.as_deref(),
        args.endpoint.scenario.as_deref(),
    )
    .map_err(usage)?;
    let scenarios: Vec<Scenario> = scenarios.iter().map(|s| (**s).clone()).collect();
    Ok(((**target).clone(), scenarios, loaded.simulator.clone()))
}

fn ad_hoc(args: &CalibrateArgs) -> Result<(Target, Vec<Scenario>), CalibrateError> {
    let (target, scenario) = crate::commands::adhoc_target(&crate::commands::AdHoc {
        url: args.endpoint.url.as_deref(),
        dialect: args.endpoint.dialect.as_deref(),
        model: args.endpoint.model.as_deref(),
        prompt: args.endpoint.prompt.as_deref(),
        max_tokens: args.endpoint.max_tokens,
        api_key_env: args.endpoint.api_key_env.as_deref(),
        headers: &[],
        no_usage: args.endpoint.no_usage,
        timeouts: Timeouts::default(),
    })
    .map_err(|e| usage(format!("{e:#}")))?;
    Ok((target, vec![scenario]))
}

/// `inferprobe calibrate`: exit 0 when the ramp ran, 1 when it could not run or nothing
/// succeeded at the lowest load, 2 for bad usage (a production target included).
pub async fn run(args: CalibrateArgs) -> anyhow::Result<u8> {
    engine::install_crypto_provider();
    let (plan, sim) = match setup(&args).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(e.exit_code());
        }
    };
    // Fail on an unwritable output directory before sending any load.
    if let Err(source) = std::fs::create_dir_all(&args.out) {
        eprintln!(
            "error: {}",
            CalibrateError::Write {
                path: args.out.clone(),
                source
            }
        );
        return Ok(EXIT_FAILURE);
    }
    eprint!("{}", plan.describe());
    let (tx, rx) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\nStopping: waiting for requests in flight, then writing what was measured \
                 (ctrl-c again quits at once)."
            );
            let _ = tx.send(true);
        }
        // Once a handler is installed, ctrl-c no longer ends the process by itself.
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    let outcome = calibrate(&plan, rx, Progress::stderr()).await;
    ctrl_c.abort();
    if let Some(s) = sim {
        s.shutdown().await;
    }
    let cal = match outcome {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(e.exit_code());
        }
    };
    let (json, svg) = match write_outputs(&cal, &args.out) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_FAILURE);
        }
    };
    println!();
    print!("{}", report::table(&cal.result, &cal.knee));
    if cal.stopped_at_breach {
        println!("stopped:     at the first SLO breach (--no-stop-on-breach runs every stage)");
    }
    if cal.interrupted {
        println!("stopped:     interrupted; the stages completed before are written");
    }
    println!("wrote:       {}, {}", json.display(), svg.display());
    if cal.interrupted {
        return Ok(EXIT_FAILURE);
    }
    let first_ok = cal
        .result
        .stages
        .first()
        .is_some_and(|s| s.requests > s.errors);
    if !first_ok {
        eprintln!(
            "error: no request succeeded at the lowest load; check the target with `inferprobe probe`"
        );
        return Ok(EXIT_FAILURE);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_urls_drop_credentials_and_query() {
        assert_eq!(
            display_url("https://user:pw@example.com/v1?api-key=k"),
            "https://example.com/v1"
        );
        assert_eq!(
            display_url("http://127.0.0.1:8000/v1"),
            "http://127.0.0.1:8000/v1"
        );
        assert_eq!(display_url("not a url"), "<invalid URL>");
    }

    #[test]
    fn ramps_validate_and_report_their_loads() {
        let span = Duration::from_secs(10);
        let c = Ramp::Concurrency(vec![1, 2, 4]);
        assert_eq!(c.validate(span), Ok(()));
        assert_eq!((c.loads(), c.mode()), (vec![1.0, 2.0, 4.0], "concurrency"));
        let r = Ramp::Rate {
            rates: vec![0.5, 1.0],
            arrival: Arrival::Constant,
        };
        assert_eq!((r.loads(), r.mode()), (vec![0.5, 1.0], "rate"));
        assert_eq!(
            Ramp::Concurrency(vec![]).validate(span),
            Err("--stages: give at least one load level".to_string())
        );
        assert_eq!(
            Ramp::Concurrency(vec![1, 20_000]).validate(span),
            Err("--stages: 20000 is above the limit of 10000 workers".to_string())
        );
        let flood = Ramp::Rate {
            rates: vec![200_000.0],
            arrival: Arrival::Poisson,
        };
        assert_eq!(
            flood.validate(span),
            Err(
                "--rates: 200000/s for 10s plans more than 1000000 requests in one stage"
                    .to_string()
            )
        );
    }
}
