//! `inferprobe thresholds`: turns load-test results into Prometheus alert rules.
//!
//! Result files of several tools are imported ([`formats`]), normalized into stages sorted by
//! load and classified against SLO targets ([`stages`]); the highest load still within the SLO
//! gives the warning thresholds and the SLO gives the critical ones ([`rules`]). Parsing and
//! rule generation are pure ([`generate`]); [`run_cli`] does the file I/O around them.

pub mod formats;
pub mod rules;
pub mod stages;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

pub use formats::{detect, parse, Format, ImportError, Imported};
pub use rules::{Rule, RuleOptions, Sizing, WarnStage};
pub use stages::{classify, safe_point, Class, Classification, LoadKind, Quantiles, Slo, Stage};

use stages::fmt_num;

/// Exit code of a failed run (unreadable or unusable input).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of contradictory flags.
pub const EXIT_USAGE: u8 = 2;

/// `--format` values: a format, or detection from content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Detect each file's format from its content.
    Auto,
    /// `vllm bench serve` result JSON.
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
    /// k6 `--summary-export` JSON.
    K6,
    /// `inferprobe calibrate` result JSON.
    Inferprobe,
}

impl FormatArg {
    /// The forced format, or `None` for detection.
    pub fn format(self) -> Option<Format> {
        Some(match self {
            FormatArg::Auto => return None,
            FormatArg::Vllm => Format::Vllm,
            FormatArg::Aiperf => Format::Aiperf,
            FormatArg::GenaiPerf => Format::GenaiPerf,
            FormatArg::Guidellm => Format::Guidellm,
            FormatArg::InferencePerf => Format::InferencePerf,
            FormatArg::Llmperf => Format::Llmperf,
            FormatArg::K6 => Format::K6,
            FormatArg::Inferprobe => Format::Inferprobe,
        })
    }
}

/// `inferprobe thresholds`: derive alert rules from load-test results.
#[derive(Debug, Args)]
pub struct ThresholdsArgs {
    /// Input format of every file (`auto` detects each file's format from its content).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// SLO target for TTFT p95 [default: from an inferprobe calibrate file, else 500ms].
    #[arg(long = "slo.ttft-p95", value_parser = crate::cli::parse_duration)]
    pub slo_ttft_p95: Option<Duration>,
    /// SLO target for ITL p95 [default: from an inferprobe calibrate file, else 50ms].
    #[arg(long = "slo.itl-p95", value_parser = crate::cli::parse_duration)]
    pub slo_itl_p95: Option<Duration>,
    /// Error ratio above which a stage is degraded and the warning alert fires [default: from an
    /// inferprobe calibrate file, else 0.001].
    #[arg(long = "slo.error-rate-warn", value_parser = parse_ratio)]
    pub slo_error_rate_warn: Option<f64>,
    /// Error ratio above which a stage breaches and the critical alert fires [default: from an
    /// inferprobe calibrate file, else 0.01].
    #[arg(long = "slo.error-rate-breach", value_parser = parse_ratio)]
    pub slo_error_rate_breach: Option<f64>,
    /// Restrict the rules to this inferprobe target (the `target` label); required when
    /// `--config.file` has several targets.
    #[arg(long)]
    pub target: Option<String>,
    /// The inferprobe config the rules are for: its target's schedule sizes the windows and its
    /// `buckets:` are checked for the boundaries the rules compare with.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,
    /// Probe interval of the target the rules watch [default: the target's `schedule.every` in
    /// `--config.file`, else 30s].
    #[arg(long = "probe-interval", value_parser = crate::cli::parse_duration)]
    pub probe_interval: Option<Duration>,
    /// Which stage's p99 the warnings sit at: `safe-point` (the highest load within the SLO) or
    /// `before-knee` (the stage before the first one whose TTFT p95 passes 1.5× the lowest
    /// load's or leaves the SLO).
    #[arg(long = "warn-stage", value_enum, default_value = "safe-point")]
    pub warn_stage: WarnStage,
    /// Emit a Kubernetes `PrometheusRule` manifest instead of a plain rule file.
    #[arg(long = "prometheus-rule")]
    pub prometheus_rule: bool,
    /// Add this `runbook_url` annotation to every rule.
    #[arg(long = "runbook-url")]
    pub runbook_url: Option<String>,
    /// Write the rules here instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Load-test result files, e.g. one vLLM result JSON per concurrency level.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

/// Parses a ratio flag in `[0, 1]`.
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "invalid ratio {s:?}; use a number from 0 to 1, e.g. 0.01"
        )),
    }
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum ThresholdsError {
    /// A file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be imported.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The files held no stage at all.
    #[error("the result files hold no load-test stage")]
    NoStages,
    /// Stages of concurrency and of request-rate runs cannot be ordered on one axis.
    #[error("stages mix concurrency ({concurrency}) and request-rate ({rate}) loads; give the files of one sweep")]
    MixedLoad {
        /// A concurrency stage, `file: label`.
        concurrency: String,
        /// A rate stage, `file: label`.
        rate: String,
    },
    /// The SLO targets contradict each other.
    #[error("{0}")]
    BadSlo(String),
    /// The config given with `--config.file` did not load.
    #[error("--config.file: {0}")]
    Config(String),
    /// The config has several targets and no `--target` picks one.
    #[error("--config.file has {count} targets ({names}); rules derived from one endpoint's load test need --target to say which one they watch")]
    TargetRequired {
        /// How many.
        count: usize,
        /// Their names, comma-separated.
        names: String,
    },
    /// `--target` names no target of the config.
    #[error("--target {target:?} is not a target of --config.file (targets: {names})")]
    UnknownTarget {
        /// The flag's value.
        target: String,
        /// The config's target names.
        names: String,
    },
    /// The target runs on a cron schedule, which has no single interval.
    #[error("target {0:?} is probed on a cron schedule; give its typical interval with --probe-interval")]
    CronSchedule(String),
    /// The rules could not be written.
    #[error("{file}: cannot write: {source}")]
    Write {
        /// The file.
        file: String,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
}

impl ThresholdsError {
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> u8 {
        match self {
            ThresholdsError::BadSlo(_)
            | ThresholdsError::TargetRequired { .. }
            | ThresholdsError::UnknownTarget { .. }
            | ThresholdsError::CronSchedule(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// SLO flags as given; `None` falls back to the file's SLO, then to [`Slo::default`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SloFlags {
    /// `--slo.ttft-p95`, seconds.
    pub ttft_p95: Option<f64>,
    /// `--slo.itl-p95`, seconds.
    pub itl_p95: Option<f64>,
    /// `--slo.error-rate-warn`.
    pub error_rate_warn: Option<f64>,
    /// `--slo.error-rate-breach`.
    pub error_rate_breach: Option<f64>,
}

impl SloFlags {
    /// Flags over `file` over defaults; rejects targets that contradict each other.
    pub fn resolve(&self, file: Option<Slo>) -> Result<Slo, ThresholdsError> {
        let base = file.unwrap_or_default();
        let slo = Slo {
            ttft_p95: self.ttft_p95.unwrap_or(base.ttft_p95),
            itl_p95: self.itl_p95.unwrap_or(base.itl_p95),
            error_rate_warn: self.error_rate_warn.unwrap_or(base.error_rate_warn),
            error_rate_breach: self.error_rate_breach.unwrap_or(base.error_rate_breach),
        };
        if !(slo.ttft_p95 > 0.0 && slo.itl_p95 > 0.0) {
            return Err(ThresholdsError::BadSlo(
                "--slo.ttft-p95 and --slo.itl-p95 must be above zero".into(),
            ));
        }
        if slo.error_rate_warn > slo.error_rate_breach {
            return Err(ThresholdsError::BadSlo(format!(
                "--slo.error-rate-warn ({}) is above --slo.error-rate-breach ({})",
                fmt_num(slo.error_rate_warn),
                fmt_num(slo.error_rate_breach)
            )));
        }
        Ok(slo)
    }
}

/// What [`generate`] produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// Every stage, sorted by load.
    pub stages: Vec<Stage>,
    /// Verdict per stage, same order.
    pub classes: Vec<Classification>,
    /// Index of the safe operating point in `stages`.
    pub safe: Option<usize>,
    /// The SLO used.
    pub slo: Slo,
    /// The rules.
    pub rules: Vec<Rule>,
    /// The rule that fires where a boundary the rules need is not a bucket (its own group).
    pub bucket_check: Option<Rule>,
    /// The `buckets:` overrides that put a boundary at every threshold: metric name without the
    /// `inferprobe_` prefix, and its full bound list.
    pub buckets: Vec<(String, Vec<f64>)>,
    /// Thresholds that are not a boundary of the buckets in [`Options::buckets`]: family, value.
    pub missing_buckets: Vec<(String, f64)>,
    /// The windows used.
    pub sizing: Sizing,
    /// The rule file (or `PrometheusRule`) text.
    pub output: String,
    /// The summary table for the terminal.
    pub table: String,
}

/// Options of [`generate`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// SLO flags.
    pub slo: SloFlags,
    /// Rule options.
    pub rules: RuleOptions,
    /// Emit a `PrometheusRule` manifest.
    pub prometheus_rule: bool,
    /// Windows of the rules.
    pub sizing: Sizing,
    /// Which stage the warnings sit at.
    pub warn_stage: WarnStage,
    /// The running config's bucket overrides (metric name without `inferprobe_`); families it
    /// leaves out use the defaults.
    pub buckets: BTreeMap<String, Vec<f64>>,
}

/// Bucket overrides of a config, keyed by metric name without the `inferprobe_` prefix.
type BucketOverrides = BTreeMap<String, Vec<f64>>;
/// Thresholds that are not a boundary: histogram family, value.
type Missing = Vec<(String, f64)>;

/// The bounds of `family` (full name) under `overrides`, else its defaults.
fn bounds_of(family: &str, overrides: &BTreeMap<String, Vec<f64>>) -> Vec<f64> {
    let name = family.strip_prefix("inferprobe_").unwrap_or(family);
    overrides
        .get(name)
        .cloned()
        .or_else(|| crate::metrics::default_buckets(name).map(<[f64]>::to_vec))
        .unwrap_or_default()
}

/// The overrides that add every needed boundary to the current bounds, and the needed
/// boundaries the current bounds lack.
fn bucket_plan(
    needs: &[(&'static str, f64)],
    overrides: &BucketOverrides,
) -> (Vec<(String, Vec<f64>)>, Missing) {
    let same = |a: f64, b: f64| fmt_num(a) == fmt_num(b);
    let mut plan: Vec<(String, Vec<f64>)> = Vec::new();
    let mut missing = Vec::new();
    for (family, t) in needs {
        let name = family
            .strip_prefix("inferprobe_")
            .unwrap_or(family)
            .to_string();
        let current = bounds_of(family, overrides);
        if !current.iter().any(|b| same(*b, *t)) {
            missing.push((family.to_string(), *t));
        }
        let entry = match plan.iter().position(|(n, _)| *n == name) {
            Some(i) => &mut plan[i].1,
            None => {
                plan.push((name, current));
                &mut plan.last_mut().expect("just pushed").1
            }
        };
        if !entry.iter().any(|b| same(*b, *t)) {
            entry.push(*t);
            entry.sort_by(f64::total_cmp);
        }
    }
    // Only the families that change.
    plan.retain(|(name, _)| {
        missing
            .iter()
            .any(|(f, _)| f.strip_prefix("inferprobe_") == Some(name.as_str()))
    });
    (plan, missing)
}

/// Sorts, classifies and turns imported files into rules; pure.
pub fn generate(imported: Vec<Imported>, opts: &Options) -> Result<Report, ThresholdsError> {
    let file_slo = imported.iter().find_map(|i| i.slo);
    let slo = opts.slo.resolve(file_slo)?;
    let mut stages: Vec<Stage> = imported.into_iter().flat_map(|i| i.stages).collect();
    if stages.is_empty() {
        return Err(ThresholdsError::NoStages);
    }
    let conc = stages.iter().find(|s| s.load_kind == LoadKind::Concurrency);
    let rate = stages.iter().find(|s| s.load_kind == LoadKind::Rate);
    if let (Some(c), Some(r)) = (conc, rate) {
        return Err(ThresholdsError::MixedLoad {
            concurrency: format!("{}: {}", c.source_file, c.label),
            rate: format!("{}: {}", r.source_file, r.label),
        });
    }
    stages.sort_by(|a, b| a.load.total_cmp(&b.load));
    let classes: Vec<Classification> = stages.iter().map(|s| classify(s, &slo)).collect();
    let safe = safe_point(&classes);
    let warn = match opts.warn_stage {
        WarnStage::SafePoint => safe,
        WarnStage::BeforeKnee => before_knee(&stages, &classes),
    };
    let rules = rules::build(
        &stages,
        (warn, opts.warn_stage),
        &slo,
        &opts.rules,
        &opts.sizing,
    );
    let bucket_check = rules::bucket_check(&rules, &opts.rules);
    let (buckets, missing_buckets) = bucket_plan(&rules::needed_boundaries(&rules), &opts.buckets);
    let mut header = header(&stages, safe, &slo);
    if opts.warn_stage == WarnStage::BeforeKnee {
        header.push(match warn.and_then(|i| stages.get(i)) {
            Some(s) => format!("Warnings sit at the stage before the knee instead: {} ({}).", s.label, s.source_file),
            None => "Warnings sit at the stage before the knee instead: none (the knee is the lowest load); only SLO rules.".to_string(),
        });
    }
    header.extend(sizing_header(&opts.sizing, &buckets));
    let output = if opts.prometheus_rule {
        rules::render_prometheus_rule(&rules, bucket_check.as_ref(), &header)
    } else {
        rules::render_rule_file(&rules, bucket_check.as_ref(), &header)
    };
    let table = table(&stages, &classes, safe);
    Ok(Report {
        stages,
        classes,
        safe,
        slo,
        rules,
        bucket_check,
        buckets,
        missing_buckets,
        sizing: opts.sizing,
        output,
        table,
    })
}

/// The stage before the knee: the knee is the first stage that is not normal or whose TTFT p95
/// passes 1.5 times the lowest load's. Without a knee, the highest load measured.
pub fn before_knee(stages: &[Stage], classes: &[Classification]) -> Option<usize> {
    let lowest = stages.first().and_then(|s| s.ttft.p95);
    let knee = stages.iter().zip(classes).position(|(s, c)| {
        c.class != Class::Normal
            || matches!((s.ttft.p95, lowest), (Some(p), Some(l)) if p > 1.5 * l)
    });
    match knee {
        Some(k) => k.checked_sub(1),
        None => stages.len().checked_sub(1),
    }
}

/// `[0.1, 0.25]`: a YAML flow list of bounds.
fn bounds_list(bounds: &[f64]) -> String {
    let items: Vec<String> = bounds.iter().map(|b| fmt_num(*b)).collect();
    format!("[{}]", items.join(", "))
}

/// The `buckets:` overrides as config YAML lines.
pub fn buckets_yaml(buckets: &[(String, Vec<f64>)]) -> Vec<String> {
    let mut out = vec!["buckets:".to_string()];
    out.extend(
        buckets
            .iter()
            .map(|(name, b)| format!("  {name}: {}", bounds_list(b))),
    );
    out
}

fn sizing_header(sizing: &Sizing, buckets: &[(String, Vec<f64>)]) -> Vec<String> {
    let mut h = vec![
        format!(
            "Windows for a probe every {}s: {} (about {:.0} probes; a rule needs at least {} in it), confirmed over the last {}; for: {}.",
            fmt_num(sizing.interval.as_secs_f64()),
            rules::prom_duration(sizing.long),
            sizing.expected_samples(),
            rules::MIN_SAMPLES,
            rules::prom_duration(sizing.short),
            rules::FOR
        ),
        format!(
            "A step regression fires within about {}s; an alert clears about {} after recovery.",
            sizing.detection_delay().as_secs(),
            rules::prom_duration(sizing.short),
        ),
        format!(
            "Error ratios: {} (at least {} failures), confirmed over the last {}, keep_firing_for {} (Prometheus 2.42 or later); they leave rate-limited probes out.",
            rules::prom_duration(sizing.error_long),
            rules::MIN_FAILURES,
            rules::prom_duration(sizing.error_short),
            rules::KEEP_FIRING_FOR
        ),
    ];
    if !buckets.is_empty() {
        h.push("Latency thresholds are bucket boundaries; add these overrides to the inferprobe config:".to_string());
        h.extend(buckets_yaml(buckets).into_iter().map(|l| format!("  {l}")));
    }
    h
}

fn header(stages: &[Stage], safe: Option<usize>, slo: &Slo) -> Vec<String> {
    let mut h = vec![
        "Prometheus alert rules generated by `inferprobe thresholds` from load-test results.".to_string(),
        "Warnings: the p99 measured at the safe operating point (the highest load still within the SLO).".to_string(),
        "Criticals: the SLO targets.".to_string(),
        format!(
            "SLO: TTFT p95 <= {}s, ITL p95 <= {}s, error ratio warn > {}, breach > {}.",
            fmt_num(slo.ttft_p95),
            fmt_num(slo.itl_p95),
            fmt_num(slo.error_rate_warn),
            fmt_num(slo.error_rate_breach)
        ),
        match safe.and_then(|i| stages.get(i)) {
            Some(s) => format!("Safe operating point: {} ({}).", s.label, s.source_file),
            None => "Safe operating point: none (the lowest load already misses the SLO); only SLO rules.".to_string(),
        },
        "Sources and their definitions:".to_string(),
    ];
    // Files that share a tool and definitions are listed under one entry.
    let mut groups: Vec<(&Stage, Vec<&str>)> = Vec::new();
    for s in stages {
        let key = |g: &Stage| {
            (
                g.format,
                g.ttft_definition.clone(),
                g.itl_definition.clone(),
            )
        };
        match groups.iter_mut().find(|(g, _)| key(g) == key(s)) {
            Some((_, files)) => {
                if !files.contains(&s.source_file.as_str()) {
                    files.push(&s.source_file);
                }
            }
            None => groups.push((s, vec![&s.source_file])),
        }
    }
    for (s, files) in groups {
        h.push(format!("  {}:", s.format.tool()));
        h.extend(files.iter().map(|f| format!("    {f}")));
        h.push(format!("    TTFT: {}", s.ttft_definition));
        h.push(format!("    ITL: {}", s.itl_definition));
    }
    h
}

fn ms_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |s| format!("{:.1}", s * 1000.0))
}

/// The summary table: one row per stage, latencies in milliseconds.
pub fn table(stages: &[Stage], classes: &[Classification], safe: Option<usize>) -> String {
    let head = [
        "stage", "load", "ttft_p50", "ttft_p95", "ttft_p99", "itl_p50", "itl_p95", "itl_p99",
        "e2e_p50", "e2e_p95", "e2e_p99", "errors", "class",
    ];
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for (i, (s, c)) in stages.iter().zip(classes).enumerate() {
        let mut class = c.class.to_string();
        if Some(i) == safe {
            class.push_str(" (safe)");
        }
        rows.push(vec![
            s.label.clone(),
            fmt_num(s.load),
            ms_cell(s.ttft.p50),
            ms_cell(s.ttft.p95),
            ms_cell(s.ttft.p99),
            ms_cell(s.itl.p50),
            ms_cell(s.itl.p95),
            ms_cell(s.itl.p99),
            ms_cell(s.e2e.p50),
            ms_cell(s.e2e.p95),
            ms_cell(s.e2e.p99),
            s.error_rate
                .map_or_else(|| "-".to_string(), |e| format!("{:.2}%", e * 100.0)),
            class,
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|col| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::from("latencies in ms\n");
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for (s, c) in stages.iter().zip(classes) {
        if !c.reasons.is_empty() {
            let _ = writeln!(out, "{}: {}", s.label, c.reasons.join("; "));
        }
    }
    match safe.and_then(|i| stages.get(i)) {
        Some(s) => {
            let _ = writeln!(out, "safe operating point: {} ({})", s.label, s.source_file);
        }
        None => {
            let _ = writeln!(
                out,
                "safe operating point: none, the lowest load already misses the SLO"
            );
        }
    }
    out
}

/// Reads and imports one file.
pub fn import_file(
    path: &std::path::Path,
    format: Option<Format>,
) -> Result<Imported, ThresholdsError> {
    let file = path.display().to_string();
    let text = crate::fsutil::read_to_string(path, crate::fsutil::RESULTS_FILE_LIMIT).map_err(
        |source| ThresholdsError::Read {
            file: file.clone(),
            source,
        },
    )?;
    Ok(parse(&file, &text, format)?)
}

/// What `--config.file` contributes: the watched target's interval and the bucket overrides.
fn from_config(
    args: &ThresholdsArgs,
) -> Result<(Option<Duration>, BucketOverrides), ThresholdsError> {
    let Some(path) = &args.config_file else {
        return Ok((None, BTreeMap::new()));
    };
    let loaded =
        crate::config::load_for_check(path).map_err(|e| ThresholdsError::Config(e.to_string()))?;
    let names = || {
        loaded
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match &args.target {
        Some(name) => loaded
            .targets
            .iter()
            .find(|t| &t.name == name)
            .ok_or_else(|| ThresholdsError::UnknownTarget {
                target: name.clone(),
                names: names(),
            })?,
        None if loaded.targets.len() > 1 => {
            return Err(ThresholdsError::TargetRequired {
                count: loaded.targets.len(),
                names: names(),
            })
        }
        None => match loaded.targets.first() {
            Some(t) => t,
            None => return Ok((None, loaded.buckets)),
        },
    };
    let interval = match (&target.schedule.cron, args.probe_interval) {
        (_, Some(d)) => Some(d),
        (Some(_), None) => return Err(ThresholdsError::CronSchedule(target.name.clone())),
        (None, None) => Some(target.schedule.every),
    };
    Ok((interval, loaded.buckets))
}

fn run(args: &ThresholdsArgs) -> Result<Report, ThresholdsError> {
    let (config_interval, buckets) = from_config(args)?;
    let interval = args
        .probe_interval
        .or(config_interval)
        .unwrap_or(rules::DEFAULT_PROBE_INTERVAL);
    let opts = Options {
        slo: SloFlags {
            ttft_p95: args.slo_ttft_p95.map(|d| d.as_secs_f64()),
            itl_p95: args.slo_itl_p95.map(|d| d.as_secs_f64()),
            error_rate_warn: args.slo_error_rate_warn,
            error_rate_breach: args.slo_error_rate_breach,
        },
        rules: RuleOptions {
            target: args.target.clone(),
            runbook_url: args.runbook_url.clone(),
        },
        prometheus_rule: args.prometheus_rule,
        sizing: Sizing::for_interval(interval),
        warn_stage: args.warn_stage,
        buckets,
    };
    let imported = args
        .files
        .iter()
        .map(|p| import_file(p, args.format.format()))
        .collect::<Result<Vec<_>, _>>()?;
    let report = generate(imported, &opts)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &report.output).map_err(|source| ThresholdsError::Write {
                file: path.display().to_string(),
                source,
            })?
        }
        None => print!("{}", report.output),
    }
    Ok(report)
}

/// Runs `inferprobe thresholds`: prints the table to stderr, writes the rules, returns the exit
/// code (0 written, 1 unusable input, 2 contradictory flags).
pub fn run_cli(args: ThresholdsArgs) -> u8 {
    match run(&args) {
        Ok(report) => {
            eprint!("{}", report.table);
            if args.config_file.is_some() && !report.missing_buckets.is_empty() {
                let missing: Vec<String> = report
                    .missing_buckets
                    .iter()
                    .map(|(f, t)| format!("{f} {}s", fmt_num(*t)))
                    .collect();
                eprintln!(
                    "warning: the config's buckets lack the boundaries these rules compare with ({}); until it has them, those rules cannot fire. Add:",
                    missing.join(", ")
                );
                for l in buckets_yaml(&report.buckets) {
                    eprintln!("  {l}");
                }
            }
            if let Some(path) = &args.output {
                eprintln!("wrote {} rules to {}", report.rules.len(), path.display());
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
