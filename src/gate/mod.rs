//! `inferprobe gate`: a release gate from the same probes the daemon sends.
//!
//! It probes a candidate endpoint a set number of times (or for a set time) at low concurrency,
//! compares each metric with a baseline and exits 0 (every judged metric within its limit), 1
//! (a regression the data shows) or 2 (could not judge: not enough evidence, bad input, or the
//! run was cut short by its spending cap). Baselines: a live reference endpoint probed
//! interleaved with the candidate, an earlier gate's result file, an `inferprobe calibrate`
//! result or any load-test result `inferprobe thresholds` reads ([`baseline`]). The statistics
//! are in [`stats`], the per-metric verdicts in [`judge`], the reports in [`report`].

pub mod baseline;
pub mod criteria;
pub mod judge;
pub mod report;
pub mod run;
pub mod stats;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

pub use baseline::{Baseline, GateFile, ProbeSample};
pub use criteria::{Criteria, Limit, Metric};
pub use judge::{Evaluation, Overall};
pub use run::Progress;
pub use stats::Verdict;

use crate::cli::parse_duration;
use crate::config::{self, BaseUrl, PriceConfig, Scenario, Target, Timeouts};
use crate::probe::engine;
use crate::sim::SimHandle;

/// Exit code when the gate could not judge (also bad input).
pub const EXIT_INCONCLUSIVE: u8 = 2;
/// Probes per side when neither `--probes` nor `--duration` is given.
pub const DEFAULT_PROBES: usize = 100;
/// Most probes per side.
pub const MAX_PROBES: usize = 100_000;
/// Most probes in flight.
pub const MAX_CONCURRENCY: usize = 64;

/// `inferprobe gate`: probes a candidate and judges it against a baseline.
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// The candidate endpoint.
    #[command(flatten)]
    pub endpoint: crate::cli::TargetArgs,
    /// Ad hoc: extra header `NAME: VALUE` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Run this journey of the target as each probe (task time as E2E, the first step's TTFT,
    /// every step's gaps as ITL, the whole task's cost and result).
    #[arg(long, requires = "config_file", conflicts_with = "scenario")]
    pub journey: Option<String>,
    /// A live reference probed interleaved with the candidate: its base URL, with the
    /// candidate's dialect, model, API key and headers (they are sent to it too).
    #[arg(long = "reference-url", conflicts_with_all = ["baseline", "reference_target"])]
    pub reference_url: Option<String>,
    /// The reference's model, when it differs from the candidate's.
    #[arg(long = "reference-model")]
    pub reference_model: Option<String>,
    /// A live reference from the same config: another target's name.
    #[arg(
        long = "reference-target",
        requires = "config_file",
        conflicts_with = "baseline"
    )]
    pub reference_target: Option<String>,
    /// A baseline file: an earlier `gate --output` result, an `inferprobe calibrate` result or a
    /// load-test result of any format `inferprobe thresholds` reads.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Probes per side [default: 100, or unbounded up to 100000 with --duration].
    #[arg(long)]
    pub probes: Option<usize>,
    /// Start no probe after this long (`5m`); with --probes, whichever comes first.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Probes in flight at once, both sides together.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Regression limit, repeatable: `ttft_p95=15%`, `error_ratio=0.5%` (points),
    /// `output_rate=-10%`. Without any limit (here or in --criteria): ttft_p95=15%,
    /// e2e_p95=15%, error_ratio=5%.
    #[arg(long = "max-regression", value_name = "METRIC=PCT", value_parser = criteria::parse_limit)]
    pub max_regression: Vec<Limit>,
    /// A YAML file of criteria (`max_regression: {ttft_p95: 15%}`, `max_check_failures`,
    /// `max_cost_usd`); flags win over it.
    #[arg(long)]
    pub criteria: Option<PathBuf>,
    /// Fail when more candidate probes than this fail their scenario checks.
    #[arg(long = "max-check-failures")]
    pub max_check_failures: Option<u64>,
    /// Stop (exit 2) before a probe that could take the run's summed cost past this, USD.
    #[arg(long = "max-cost-usd")]
    pub max_cost_usd: Option<f64>,
    /// Ad hoc: input price, USD per million tokens (for cost metrics and --max-cost-usd).
    #[arg(long = "input-price")]
    pub input_price: Option<f64>,
    /// Ad hoc: output price, USD per million tokens.
    #[arg(long = "output-price")]
    pub output_price: Option<f64>,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the result file (with the raw probes: the next run's `--baseline`) here.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Why the gate could not run.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Flags or files that name nothing runnable.
    #[error("{0}")]
    Usage(String),
    /// The baseline file is unusable.
    #[error(transparent)]
    Baseline(#[from] baseline::BaselineError),
    /// The in-process simulator did not start.
    #[error("starting the simulator: {0}")]
    Simulator(#[from] crate::sim::SimError),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// An output file could not be written.
    #[error("{flag} {}: cannot write: {source}", path.display())]
    Write {
        /// The flag that named it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
}

fn usage(msg: impl Into<String>) -> GateError {
    GateError::Usage(msg.into())
}

/// A resolved gate: what to probe, what to compare with, how to judge.
#[derive(Debug)]
pub struct Setup {
    /// The probes to send.
    pub plan: run::Plan,
    /// A file baseline (a live reference is in the plan instead).
    pub baseline: Option<Baseline>,
    /// The criteria.
    pub criteria: Criteria,
    /// Simulators started for config targets that use one.
    pub sims: Vec<SimHandle>,
}

/// Resolves the flags: targets, baseline file, criteria. Starts the config's simulator when a
/// target uses it. Nothing is sent yet.
pub async fn setup(args: &GateArgs) -> Result<Setup, GateError> {
    let file = match &args.criteria {
        Some(p) => Some(criteria::read_criteria_file(p).map_err(GateError::Usage)?),
        None => None,
    };
    let criteria = criteria::resolve(
        &args.max_regression,
        file.as_ref(),
        args.max_check_failures,
        args.max_cost_usd,
    )
    .map_err(
        |e| match (&args.criteria, e.starts_with("max_regression.")) {
            (Some(p), true) => usage(format!("--criteria {}: {e}", p.display())),
            _ => usage(e),
        },
    )?;
    if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
        return Err(usage(format!(
            "--concurrency must be from 1 to {MAX_CONCURRENCY}, got {}",
            args.concurrency
        )));
    }
    let probes = match (args.probes, args.duration) {
        (Some(0), _) => return Err(usage("--probes must be at least 1")),
        (Some(n), _) if n > MAX_PROBES => {
            return Err(usage(format!("--probes must be at most {MAX_PROBES}")))
        }
        (Some(n), _) => n,
        (None, Some(_)) => MAX_PROBES,
        (None, None) => DEFAULT_PROBES,
    };
    if args.duration.is_some_and(|d| d.is_zero()) {
        return Err(usage("--duration must be longer than 0s"));
    }
    for (flag, p) in [
        ("--input-price", args.input_price),
        ("--output-price", args.output_price),
    ] {
        if p.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
            return Err(usage(format!("{flag} must be 0 or more")));
        }
    }
    let baseline = match &args.baseline {
        Some(p) => Some(baseline::read_file(p)?),
        None => None,
    };
    let (mut candidate, mut reference, scenarios, sim_cfg, journey) =
        match &args.endpoint.config_file {
            Some(path) => from_config(args, path)?,
            None => ad_hoc(args)?,
        };
    if args.input_price.is_some() || args.output_price.is_some() {
        let price = PriceConfig {
            input_per_million: args.input_price.unwrap_or(0.0),
            output_per_million: args.output_price.unwrap_or(0.0),
            cached_input_per_million: None,
        };
        candidate.price = Some(price.clone());
        if let Some(r) = reference.as_mut() {
            r.price = Some(price);
        }
    }
    if criteria.max_cost_usd.is_some() {
        let unpriced = std::iter::once(&candidate)
            .chain(reference.as_ref())
            .find(|t| t.price.is_none() && t.self_hosted.is_none());
        if let Some(t) = unpriced {
            return Err(usage(format!(
                "--max-cost-usd: target {:?} has no price, so the spend cannot be counted; give \
                 prices in the config or --input-price/--output-price",
                t.name
            )));
        }
    }
    let mut sims = Vec::new();
    let resolve = |t: &Target| match &t.base_url {
        BaseUrl::Url(u) => Some(u.clone()),
        BaseUrl::Simulator => None,
    };
    let cand_url = resolve(&candidate);
    let ref_url = reference.as_ref().map(resolve);
    let needs_sim = cand_url.is_none() || ref_url.as_ref().is_some_and(|u| u.is_none());
    let sim_base = if needs_sim {
        let cfg = sim_cfg.ok_or_else(|| {
            usage("a target uses the simulator, but the config has no simulator block")
        })?;
        let sim = crate::sim::start(cfg).await?;
        let base = sim.base_url();
        sims.push(sim);
        Some(base)
    } else {
        None
    };
    let url_of = |t: &Target, u: Option<String>| {
        u.unwrap_or_else(|| {
            crate::runtime::simulator_base_url(sim_base.as_deref().unwrap_or_default(), t.dialect)
        })
    };
    let cand_side = run::Side {
        base_url: url_of(&candidate, cand_url),
        target: candidate,
    };
    let ref_side = match (reference, ref_url) {
        (Some(t), Some(u)) => Some(run::Side {
            base_url: url_of(&t, u),
            target: t,
        }),
        _ => None,
    };
    Ok(Setup {
        plan: run::Plan {
            candidate: cand_side,
            reference: ref_side,
            scenarios,
            journey,
            probes,
            duration: args.duration,
            concurrency: args.concurrency,
            max_cost_usd: criteria.max_cost_usd,
        },
        baseline,
        criteria,
        sims,
    })
}

type Resolved = (
    Target,
    Option<Target>,
    Vec<Scenario>,
    Option<config::simulator::SimulatorConfig>,
    Option<std::sync::Arc<config::Journey>>,
);

fn from_config(args: &GateArgs, path: &Path) -> Result<Resolved, GateError> {
    let loaded = config::load(path).map_err(|e| usage(e.to_string()))?;
    let (target, scenarios) = crate::commands::select_from_config(
        &loaded,
        path,
        args.endpoint.target.as_deref(),
        args.endpoint.scenario.as_deref(),
    )
    .map_err(GateError::Usage)?;
    let scenarios: Vec<Scenario> = scenarios.iter().map(|s| (**s).clone()).collect();
    let journey = match &args.journey {
        None => None,
        Some(name) => Some(
            target
                .journeys
                .iter()
                .find(|(j, _)| &j.name == name)
                .map(|(j, _)| j.clone())
                .ok_or_else(|| {
                    let names: Vec<&str> = target
                        .journeys
                        .iter()
                        .map(|(j, _)| j.name.as_str())
                        .collect();
                    usage(format!(
                        "--journey={name}: target {:?} runs no such journey; its journeys: {}",
                        target.name,
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ))
                })?,
        ),
    };
    if scenarios.is_empty() && journey.is_none() {
        return Err(usage(format!(
            "target {:?} has no scenarios; name one of its journeys with --journey",
            target.name
        )));
    }
    let candidate = (**target).clone();
    let reference = match (&args.reference_target, &args.reference_url) {
        (Some(name), _) => {
            let (t, _) = crate::commands::select_from_config(&loaded, path, Some(name), None)
                .map_err(|e| usage(e.replace("--target", "--reference-target")))?;
            Some((**t).clone())
        }
        (None, Some(url)) => Some(reference_from_url(&candidate, url, args)?),
        (None, None) => None,
    };
    let reference = reference.map(|mut r| {
        if let Some(m) = &args.reference_model {
            r.model = m.clone();
        }
        r
    });
    Ok((
        candidate,
        reference,
        scenarios,
        loaded.simulator.clone(),
        journey,
    ))
}

fn adhoc_flags<'a>(
    args: &'a GateArgs,
    url: Option<&'a str>,
    model: Option<&'a str>,
) -> config::AdHoc<'a> {
    config::AdHoc {
        url,
        dialect: args.endpoint.dialect.as_deref(),
        model,
        prompt: args.endpoint.prompt.as_deref(),
        max_tokens: args.endpoint.max_tokens,
        api_key_env: args.endpoint.api_key_env.as_deref(),
        headers: &args.headers,
        no_usage: args.endpoint.no_usage,
        timeouts: Timeouts::default(),
    }
}

fn ad_hoc(args: &GateArgs) -> Result<Resolved, GateError> {
    let (candidate, scenario) = crate::commands::adhoc_target(&adhoc_flags(
        args,
        args.endpoint.url.as_deref(),
        args.endpoint.model.as_deref(),
    ))
    .map_err(|e| usage(format!("{e:#}")))?;
    let reference = match &args.reference_url {
        Some(url) => {
            let model = args
                .reference_model
                .as_deref()
                .or(args.endpoint.model.as_deref());
            let (mut t, _) = crate::commands::adhoc_target(&adhoc_flags(args, Some(url), model))
                .map_err(|e| usage(format!("{e:#}").replace("--url", "--reference-url")))?;
            t.name = "reference".to_string();
            Some(t)
        }
        None => None,
    };
    Ok((candidate, reference, vec![scenario], None, None))
}

/// A config target's twin at another base URL (the candidate's dialect, key and headers).
fn reference_from_url(candidate: &Target, url: &str, args: &GateArgs) -> Result<Target, GateError> {
    // Resolve the URL through the ad-hoc rules so it is checked the same way.
    let (probe, _) = config::resolve_adhoc(&config::AdHoc {
        url: Some(url),
        dialect: Some(candidate.dialect.as_str()),
        model: Some(&candidate.model),
        prompt: None,
        max_tokens: 1,
        api_key_env: None,
        headers: &[],
        no_usage: false,
        timeouts: Timeouts::default(),
    })
    .map_err(|e| usage(e.to_string().replace("--url", "--reference-url")))?;
    let mut t = candidate.clone();
    t.name = format!("{}-reference", candidate.name);
    t.base_url = probe.base_url;
    t.query = probe.query;
    if let Some(m) = &args.reference_model {
        t.model = m.clone();
    }
    Ok(t)
}

pub use crate::redact::display_url;

/// Probes and judges: the result file's contents.
pub async fn gate(setup: &Setup, progress: Progress) -> Result<GateFile, GateError> {
    let client =
        engine::client_for(&setup.plan.candidate.target.timeouts).map_err(GateError::Client)?;
    let probed = run::run(setup.plan.clone(), client, progress).await;
    Ok(conclude(setup, probed))
}

/// Judges what was probed.
pub fn conclude(setup: &Setup, probed: run::Probed) -> GateFile {
    let plan = &setup.plan;
    let reference_baseline = plan.reference.as_ref().map(|r| Baseline::Samples {
        samples: probed.reference.clone(),
        info: baseline::BaselineInfo {
            kind: "reference".to_string(),
            source: format!(
                "{} (model {}) at {}",
                r.target.name,
                r.target.model,
                display_url(&r.base_url)
            ),
            note: Some(
                "probed interleaved with the candidate in the same window; both samples are \
                 resampled"
                    .to_string(),
            ),
        },
    });
    let baseline = reference_baseline.as_ref().or(setup.baseline.as_ref());
    let (metrics, overall) = match baseline {
        Some(b) => {
            let rows = judge::judge_all(&setup.criteria, &probed.candidate, b);
            let mut o = judge::overall(&rows);
            if probed.candidate.is_empty() || probed.stopped.is_some() {
                o = Overall::Inconclusive;
            }
            (rows, Some(o))
        }
        None => (Vec::new(), None),
    };
    let priced = std::iter::once(&plan.candidate)
        .chain(plan.reference.as_ref())
        .any(|s| s.target.price.is_some() || s.target.self_hosted.is_some());
    let c = &plan.candidate.target;
    GateFile {
        format: baseline::FORMAT.to_string(),
        version: crate::VERSION.to_string(),
        verdict: overall.map_or("recorded", Overall::as_str).to_string(),
        exit_code: overall.map_or(0, Overall::exit_code),
        candidate: baseline::Endpoint {
            target: c.name.clone(),
            model: c.model.clone(),
            dialect: c.dialect.as_str().to_string(),
            url: display_url(&plan.candidate.base_url),
        },
        baseline: baseline.map(|b| b.info().clone()),
        stopped: probed.stopped,
        spent_usd: priced.then_some(probed.spent_usd),
        duration_seconds: probed.elapsed.as_secs_f64(),
        metrics,
        samples: baseline::Samples {
            candidate: probed.candidate,
            reference: probed.reference,
        },
    }
}

fn write(flag: &'static str, path: &Path, text: &str) -> Result<(), GateError> {
    std::fs::write(path, text).map_err(|source| GateError::Write {
        flag,
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `--output` and `--junit` where asked.
pub fn write_outputs(args: &GateArgs, file: &GateFile) -> Result<(), GateError> {
    if let Some(p) = &args.output {
        let mut text = serde_json::to_string_pretty(file).unwrap_or_default();
        text.push('\n');
        write("--output", p, &text)?;
    }
    if let Some(p) = &args.junit {
        let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        write("--junit", p, &report::junit(file, ts.trim_end_matches('Z')))?;
    }
    Ok(())
}

/// `inferprobe gate`: exit 0 pass, 1 regression, 2 could not judge (or bad input).
pub async fn run_cli(args: GateArgs) -> anyhow::Result<u8> {
    engine::install_crypto_provider();
    let setup = match setup(&args).await {
        Ok(s) => s,
        Err(e) => {
            crate::redact::eprint(format_args!("error: {e}"));
            return Ok(EXIT_INCONCLUSIVE);
        }
    };
    if setup.baseline.is_none() && setup.plan.reference.is_none() && args.output.is_none() {
        crate::redact::eprint(format_args!(
            "error: nothing to compare with: give --reference-url, --reference-target or \
             --baseline (or --output alone to record a baseline)"
        ));
        return Ok(EXIT_INCONCLUSIVE);
    }
    let file = gate(&setup, Progress::stderr()).await;
    for s in setup.sims {
        s.shutdown().await;
    }
    let file = match file {
        Ok(f) => f,
        Err(e) => {
            crate::redact::eprint(format_args!("error: {e}"));
            return Ok(EXIT_INCONCLUSIVE);
        }
    };
    if args.json {
        crate::redact::print(format_args!("{}\n", report::json(&file)));
    } else {
        crate::redact::print(format_args!("{}", report::table(&file)));
    }
    if let Err(e) = write_outputs(&args, &file) {
        crate::redact::eprint(format_args!("error: {e}"));
        return Ok(EXIT_INCONCLUSIVE);
    }
    Ok(file.exit_code)
}
