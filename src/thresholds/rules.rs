//! Prometheus alert rules from classified stages, as a rule file or a Kubernetes
//! `PrometheusRule`.
//!
//! Warnings sit at the p99 measured at the safe operating point, on the inferprobe histogram
//! that matches the tool's own definition (vLLM's chat TTFT is inferprobe's time to first
//! event, AIPerf's ITL is inferprobe's TPOT, ...); criticals sit at the SLO targets on
//! inferprobe's TTFT and ITL. Every rule names where its number came from in its annotations.
//!
//! A latency threshold is compared exactly: it must be a bucket boundary (`le`) of the histogram
//! the rule reads (the rule file says which `buckets:` overrides put it there), and the rule
//! fires when more than 5% of the probes in its window were slower than that boundary, which is
//! what "p95 above the threshold" means, without interpolating inside a bucket.
//!
//! Windows are sized by the probe interval ([`Sizing`]): the long window holds 1.5 times
//! [`MIN_SAMPLES`] probes (at least 5 minutes), a short window confirms the condition still
//! holds (so an alert clears soon after recovery), and every rule requires [`MIN_SAMPLES`]
//! probes in its long window, so a target that just started or probes rarely cannot page.

use std::time::Duration;

use super::stages::{fmt_num, Slo, Stage};
use super::yaml::{self, Node};

/// Name of the rule group (and of the `PrometheusRule` object).
pub const GROUP: &str = "inferprobe-thresholds";
/// Probes a rule needs in its long window before it may fire. A p95 of fewer than 20
/// observations is their maximum; with 20, "more than 5% above the threshold" takes at least two
/// slow probes, so a single outlier never pages.
pub const MIN_SAMPLES: u32 = 20;
/// Failed probes an error-ratio rule needs in its window. A canary cannot measure a ratio far
/// below (failures / probes in the window): at a 5 s interval 10 minutes hold 120 probes, and a
/// healthy endpoint failing 0.3% of them reaches 5 failures about once in 20,000 windows, while a
/// 10% failure rate gets there in about 4 minutes.
pub const MIN_FAILURES: u32 = 5;
/// `keep_firing_for:` of the error-ratio rules (Prometheus 2.42 or later): bridges a short window
/// that holds no failure by chance while the fault goes on.
pub const KEEP_FIRING_FOR: &str = "1m";
/// Probe interval assumed when neither a config nor `--probe-interval` gives one (the config's
/// default `schedule.every`).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// `for:` of every rule: one more evaluation or so, so that a single evaluation never pages.
pub const FOR: &str = "1m";
/// Share of observations above the threshold that makes a p95 exceed it.
const ABOVE_SHARE: &str = "0.05";
/// Labels every aggregation keeps: two inferprobe instances (regions) or two models are never
/// averaged into one verdict.
const BY: &str = "job, instance, target, model";

const TTFT_FAMILY: &str = "inferprobe_time_to_first_token_seconds";
const ITL_FAMILY: &str = "inferprobe_inter_token_latency_seconds";
const E2E_FAMILY: &str = "inferprobe_request_duration_seconds";

/// Which load-test stage's p99 becomes the warning threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WarnStage {
    /// The safe operating point: the highest load still within the SLO.
    #[default]
    SafePoint,
    /// The stage before the knee (N-1): the knee is the first stage whose TTFT p95 passes 1.5
    /// times the lowest load's, or that leaves the SLO.
    BeforeKnee,
}

impl WarnStage {
    /// How annotations name the stage.
    pub fn describe(self) -> &'static str {
        match self {
            WarnStage::SafePoint => "its safe operating point",
            WarnStage::BeforeKnee => "the stage before its knee",
        }
    }
}

/// Windows of the rules, derived from the probe interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizing {
    /// The probe interval the windows were sized for.
    pub interval: Duration,
    /// Long window: holds about 1.5 × [`MIN_SAMPLES`] probes, at least 5 minutes.
    pub long: Duration,
    /// Short window: the condition must still hold here (at least 2 minutes and 4 probes).
    pub short: Duration,
    /// Window of the error-ratio rules: twice the long window (failures are rarer than slow
    /// probes, so they need more probes to count).
    pub error_long: Duration,
    /// Short window of the error-ratio rules: at least 3 minutes.
    pub error_short: Duration,
}

fn ceil_minutes(secs: f64) -> u64 {
    ((secs / 60.0).ceil() as u64).max(1)
}

impl Sizing {
    /// Windows for targets probed every `interval` (zero means [`DEFAULT_PROBE_INTERVAL`]).
    pub fn for_interval(interval: Duration) -> Sizing {
        let interval = if interval.is_zero() {
            DEFAULT_PROBE_INTERVAL
        } else {
            interval
        };
        let every = interval.as_secs_f64();
        let long = ceil_minutes(1.5 * f64::from(MIN_SAMPLES) * every).max(5);
        let short = ceil_minutes(4.0 * every).max(2).min(long);
        Sizing {
            interval,
            long: Duration::from_secs(long * 60),
            short: Duration::from_secs(short * 60),
            error_long: Duration::from_secs(2 * long * 60),
            error_short: Duration::from_secs(short.max(3) * 60),
        }
    }

    /// Probes the long window holds on schedule.
    pub fn expected_samples(&self) -> f64 {
        self.long.as_secs_f64() / self.interval.as_secs_f64()
    }

    /// Worst-case time from a step regression (every probe slow or failing) to the alert firing,
    /// with a 15 s scrape and evaluation interval: enough probes to cross the share (2 in the
    /// short window, or [`MIN_FAILURES`] failures), a scrape and an evaluation, then `for:`.
    pub fn detection_delay(&self) -> Duration {
        let probes =
            2.0_f64.max((self.short.as_secs_f64() / self.interval.as_secs_f64() * 0.05).ceil());
        Duration::from_secs_f64(probes * self.interval.as_secs_f64() + 30.0 + 60.0)
    }
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing::for_interval(DEFAULT_PROBE_INTERVAL)
    }
}

/// `5m`, `1h30m`: a Prometheus duration of whole minutes.
pub fn prom_duration(d: Duration) -> String {
    let m = d.as_secs().div_ceil(60);
    match (m / 60, m % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

/// Options of the rule output.
#[derive(Clone, Debug, Default)]
pub struct RuleOptions {
    /// Restrict every rule to this `target` label value.
    pub target: Option<String>,
    /// `runbook_url` annotation on every rule.
    pub runbook_url: Option<String>,
}

/// One alerting rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Alert name.
    pub alert: String,
    /// PromQL expression.
    pub expr: String,
    /// How long `expr` must hold.
    pub for_: String,
    /// `keep_firing_for:`, if any.
    pub keep_firing_for: Option<&'static str>,
    /// `warning` or `critical`.
    pub severity: &'static str,
    /// The threshold in `expr`, for tests and tables.
    pub threshold: f64,
    /// The histogram family whose bucket boundary the threshold is, for latency rules.
    pub family: Option<&'static str>,
    /// Annotations in output order: `summary`, `description`, provenance, `runbook_url`.
    pub annotations: Vec<(String, String)>,
}

/// PromQL string literal.
fn promql_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn selector(opts: &RuleOptions, extra: &str) -> String {
    let mut m = Vec::new();
    if let Some(t) = &opts.target {
        m.push(format!("target={}", promql_str(t)));
    }
    if !extra.is_empty() {
        m.push(extra.to_string());
    }
    if m.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", m.join(","))
    }
}

/// The `le` matcher of a threshold. Prometheus 3 stores whole-number bounds as `1.0` where
/// Prometheus 2 (and inferprobe's exposition) writes `1`; the regular expression takes either.
pub fn le_matcher(threshold: f64) -> String {
    let le = fmt_num(threshold);
    if threshold == threshold.trunc() {
        format!("le=~\"{le}|{le}.0\"")
    } else {
        format!("le=\"{le}\"")
    }
}

/// Share of the observations of `family` in window `w` above `threshold` (a bucket boundary).
fn share_above(family: &str, opts: &RuleOptions, threshold: f64, w: &str) -> String {
    format!(
        "(1 - sum by ({BY}) (rate({family}_bucket{}[{w}])) / sum by ({BY}) (rate({family}_count{}[{w}])))",
        selector(opts, &le_matcher(threshold)),
        selector(opts, "")
    )
}

/// "p95 of `family` above `threshold`", exactly: more than 5% of the observations in the long
/// window and in the short window were slower than the boundary, among at least
/// [`MIN_SAMPLES`] observations.
pub fn p95_expr(family: &str, opts: &RuleOptions, threshold: f64, sizing: &Sizing) -> String {
    let long = prom_duration(sizing.long);
    let short = prom_duration(sizing.short);
    format!(
        "{} > {ABOVE_SHARE}\nand\n{} > {ABOVE_SHARE}\nand\nsum by ({BY}) (increase({family}_count{}[{long}])) >= {MIN_SAMPLES}",
        share_above(family, opts, threshold, &long),
        share_above(family, opts, threshold, &short),
        selector(opts, "")
    )
}

/// Error ratio among the probes that were not rate limited (rate limiting has its own bundled
/// alert, InferprobeRateLimited, and a different fix), over the long window, with at least
/// [`MIN_SAMPLES`] such probes and [`MIN_FAILURES`] failures in it.
pub fn error_expr(opts: &RuleOptions, threshold: f64, sizing: &Sizing) -> String {
    let w = prom_duration(sizing.error_long);
    let short = prom_duration(sizing.error_short);
    let failed = selector(opts, r#"result!~"success|rate_limited""#);
    let answered = selector(opts, r#"result!="rate_limited""#);
    // The short window confirms with at least the ratio that MIN_FAILURES make in the long
    // window: a lone background failure after recovery cannot hold the alert up.
    let floor =
        f64::from(MIN_FAILURES) * sizing.interval.as_secs_f64() / sizing.error_long.as_secs_f64();
    let ratio = |w: &str, t: f64| {
        format!(
            "sum by ({BY}) (rate(inferprobe_probes_total{failed}[{w}])) / sum by ({BY}) (rate(inferprobe_probes_total{answered}[{w}])) > {}",
            fmt_num((t * 1e4).ceil() / 1e4)
        )
    };
    format!(
        "{}\nand\n{}\nand\nsum by ({BY}) (increase(inferprobe_probes_total{answered}[{w}])) >= {MIN_SAMPLES}\nand\nsum by ({BY}) (increase(inferprobe_probes_total{failed}[{w}])) >= {MIN_FAILURES}",
        ratio(&w, threshold),
        ratio(&short, threshold.max(floor))
    )
}

/// Fires for every target whose histogram lacks a boundary one of the rules compares with: those
/// rules are blind there (their share is empty) until the config gets the `buckets:` overrides.
pub fn not_a_bucket_expr(needs: &[(&str, f64)], opts: &RuleOptions) -> String {
    needs
        .iter()
        .map(|(family, t)| {
            format!(
                "label_replace(label_replace(group by ({BY}) ({family}_count{}) unless on ({BY}) group by ({BY}) ({family}_bucket{}), \"histogram\", \"{family}\", \"\", \"\"), \"threshold\", \"{}\", \"\", \"\")",
                selector(opts, ""),
                selector(opts, &le_matcher(*t)),
                fmt_num(*t)
            )
        })
        .collect::<Vec<_>>()
        .join("\nor\n")
}

fn provenance(stage: &Stage, measured: String, definition: &str) -> Vec<(String, String)> {
    vec![
        ("source_file".into(), stage.source_file.clone()),
        ("source_stage".into(), stage.label.clone()),
        ("source_tool".into(), stage.format.tool().to_string()),
        ("source_measured".into(), measured),
        ("source_definition".into(), definition.to_string()),
    ]
}

/// Picks p99, or p95 when the tool wrote no p99; returns the value and its name.
fn tail(q: &super::stages::Quantiles) -> Option<(f64, &'static str)> {
    q.p99
        .map(|v| (v, "p99"))
        .or_else(|| q.p95.map(|v| (v, "p95")))
}

const SHAPE_NOTE: &str = "The baseline holds for probes shaped like the load test's requests (prompt and output sizes); regenerate it when either changes.";

fn window_note(sizing: &Sizing) -> String {
    format!(
        "Windows: {} (at least {MIN_SAMPLES} probes), confirmed over the last {}.",
        prom_duration(sizing.long),
        prom_duration(sizing.short)
    )
}

/// One latency of the safe stage that becomes a warning threshold.
struct Baseline<'a> {
    /// Alert-name part and inferprobe metric name (`TTFT`, `FirstEvent`, `TPOT`, `E2E`, ...).
    short: &'a str,
    /// The inferprobe histogram family compared.
    family: &'static str,
    /// What the tool called it (`TTFT`, `ITL`, `end-to-end latency`).
    what: &'a str,
    /// The tool's definition, in words.
    definition: &'a str,
}

fn baseline_rule(
    b: Baseline<'_>,
    stage: &Stage,
    (value, which): (f64, &str),
    opts: &RuleOptions,
    sizing: &Sizing,
    warn: WarnStage,
) -> Rule {
    let Baseline {
        short,
        family,
        what,
        definition,
    } = b;
    let mut annotations = vec![
        (
            "summary".into(),
            format!("{short} p95 of {{{{ $labels.target }}}} is above its load-test baseline"),
        ),
        (
            "description".into(),
            format!(
                "{{{{ $value | humanizePercentage }}}} of inferprobe's {short} observations of {{{{ $labels.target }}}} (model {{{{ $labels.model }}}}, instance {{{{ $labels.instance }}}}) took longer than {}s, more than the 5% a p95 allows: the {which} {what} {} measured at {} ({}, {}). {} {SHAPE_NOTE}",
                fmt_num(value),
                stage.format.tool(),
                warn.describe(),
                stage.label,
                stage.source_file,
                window_note(sizing)
            ),
        ),
    ];
    annotations.extend(provenance(
        stage,
        format!("{which} {what} = {}s", fmt_num(value)),
        definition,
    ));
    Rule {
        alert: format!("Inferprobe{short}p95AboveLoadTestBaseline"),
        expr: p95_expr(family, opts, value, sizing),
        for_: FOR.into(),
        keep_firing_for: None,
        severity: "warning",
        threshold: value,
        family: Some(family),
        annotations,
    }
}

fn slo_rule(
    short: &str,
    family: &'static str,
    target: f64,
    first_over: Option<&Stage>,
    opts: &RuleOptions,
    sizing: &Sizing,
) -> Rule {
    let context = match first_over {
        Some(s) => format!(
            " In the load test it was first exceeded at {} ({}).",
            s.label, s.source_file
        ),
        None => " The load test stayed within it at every stage.".to_string(),
    };
    Rule {
        alert: format!("Inferprobe{short}p95AboveSLO"),
        expr: p95_expr(family, opts, target, sizing),
        for_: FOR.into(),
        keep_firing_for: None,
        severity: "critical",
        threshold: target,
        family: Some(family),
        annotations: vec![
            (
                "summary".into(),
                format!("{short} p95 of {{{{ $labels.target }}}} is above its SLO"),
            ),
            (
                "description".into(),
                format!(
                    "{{{{ $value | humanizePercentage }}}} of inferprobe's {short} observations of {{{{ $labels.target }}}} (model {{{{ $labels.model }}}}, instance {{{{ $labels.instance }}}}) took longer than the SLO target of {}s, more than the 5% a p95 allows.{context} {}",
                    fmt_num(target),
                    window_note(sizing)
                ),
            ),
            ("source_slo".into(), format!("{short} p95 <= {}s", fmt_num(target))),
        ],
    }
}

fn error_rule(
    name: &str,
    severity: &'static str,
    threshold: f64,
    safe: Option<&Stage>,
    opts: &RuleOptions,
    sizing: &Sizing,
    warn: WarnStage,
) -> Rule {
    let measured = match safe.and_then(|s| s.error_rate.map(|e| (s, e))) {
        Some((s, e)) => format!(
            " The load test measured an error ratio of {} at {} ({}, {}).",
            fmt_num(e),
            warn.describe(),
            s.label,
            s.source_file
        ),
        None => String::new(),
    };
    Rule {
        alert: name.into(),
        expr: error_expr(opts, threshold, sizing),
        for_: FOR.into(),
        keep_firing_for: Some(KEEP_FIRING_FOR),
        severity,
        threshold,
        family: None,
        annotations: vec![
            (
                "summary".into(),
                format!("Probes of {{{{ $labels.target }}}} fail more often than {}", fmt_num(threshold)),
            ),
            (
                "description".into(),
                format!(
                    "{{{{ $value | humanizePercentage }}}} of the inferprobe probes of {{{{ $labels.target }}}} (model {{{{ $labels.model }}}}, instance {{{{ $labels.instance }}}}) that were not rate limited failed over the last {}, above {} (at least {MIN_SAMPLES} probes and {MIN_FAILURES} failures), and still over the last {}.{measured} Rate limiting is left to InferprobeRateLimited.",
                    prom_duration(sizing.error_long),
                    fmt_num(threshold),
                    prom_duration(sizing.error_short)
                ),
            ),
            ("source_slo".into(), format!("error ratio <= {}", fmt_num(threshold))),
        ],
    }
}

fn not_a_bucket_rule(needs: &[(&'static str, f64)], opts: &RuleOptions) -> Rule {
    Rule {
        alert: "InferprobeDerivedThresholdNotABucket".into(),
        expr: not_a_bucket_expr(needs, opts),
        for_: "10m".into(),
        keep_firing_for: None,
        severity: "warning",
        threshold: 0.0,
        family: None,
        annotations: vec![
            (
                "summary".into(),
                "{{ $labels.histogram }} of {{ $labels.target }} has no bucket at {{ $labels.threshold }}s".into(),
            ),
            (
                "description".into(),
                "The derived rules compare {{ $labels.histogram }} with {{ $labels.threshold }}s, but inferprobe at {{ $labels.instance }} exports no bucket with that `le` for {{ $labels.target }}, so those rules cannot fire. Add the `buckets:` overrides listed at the top of the generated rule file to the inferprobe config.".into(),
            ),
        ],
    }
}

/// Histogram families and the boundaries the rules compare with, in rule order, deduplicated.
pub fn needed_boundaries(rules: &[Rule]) -> Vec<(&'static str, f64)> {
    let mut out: Vec<(&'static str, f64)> = Vec::new();
    for r in rules {
        if let Some(f) = r.family {
            if !out
                .iter()
                .any(|(g, t)| *g == f && fmt_num(*t) == fmt_num(r.threshold))
            {
                out.push((f, r.threshold));
            }
        }
    }
    out
}

/// Builds the rules from stages sorted by load and the index of the stage whose p99 becomes the
/// warning threshold (`warn` says which one it is).
pub fn build(
    stages: &[Stage],
    (safe, warn): (Option<usize>, WarnStage),
    slo: &Slo,
    opts: &RuleOptions,
    sizing: &Sizing,
) -> Vec<Rule> {
    let safe_stage = safe.and_then(|i| stages.get(i));
    // First stage whose p95 of `pick` exceeds `target`: context for the SLO rule.
    let first_over = |pick: fn(&Stage) -> Option<f64>, target: f64| {
        stages.iter().find(|s| pick(s).is_some_and(|v| v > target))
    };
    let mut rules = Vec::new();
    if let Some(s) = safe_stage {
        if let Some(t) = tail(&s.ttft) {
            rules.push(baseline_rule(
                Baseline {
                    short: s.first_metric.short(),
                    family: s.first_metric.family(),
                    what: "TTFT",
                    definition: &s.ttft_definition,
                },
                s,
                t,
                opts,
                sizing,
                warn,
            ));
        }
    }
    rules.push(slo_rule(
        "TTFT",
        TTFT_FAMILY,
        slo.ttft_p95,
        first_over(|s| s.ttft.p95, slo.ttft_p95),
        opts,
        sizing,
    ));
    if let Some(s) = safe_stage {
        if let Some(t) = tail(&s.itl) {
            rules.push(baseline_rule(
                Baseline {
                    short: s.gap_metric.short(),
                    family: s.gap_metric.family(),
                    what: "ITL",
                    definition: &s.itl_definition,
                },
                s,
                t,
                opts,
                sizing,
                warn,
            ));
        }
    }
    rules.push(slo_rule(
        "ITL",
        ITL_FAMILY,
        slo.itl_p95,
        first_over(|s| s.itl.p95, slo.itl_p95),
        opts,
        sizing,
    ));
    if let Some(s) = safe_stage {
        if let Some(t) = tail(&s.e2e) {
            rules.push(baseline_rule(
                Baseline {
                    short: "E2E",
                    family: E2E_FAMILY,
                    what: "end-to-end latency",
                    definition: "request start to the end of the response",
                },
                s,
                t,
                opts,
                sizing,
                warn,
            ));
        }
    }
    rules.push(error_rule(
        "InferprobeErrorRatioAboveWarn",
        "warning",
        slo.error_rate_warn,
        safe_stage,
        opts,
        sizing,
        warn,
    ));
    rules.push(error_rule(
        "InferprobeErrorRatioAboveBreach",
        "critical",
        slo.error_rate_breach,
        safe_stage,
        opts,
        sizing,
        warn,
    ));
    if let Some(url) = &opts.runbook_url {
        for r in &mut rules {
            r.annotations.push(("runbook_url".into(), url.clone()));
        }
    }
    rules
}

/// The rule of the second group: fires where a boundary the rules need is missing.
pub fn bucket_check(rules: &[Rule], opts: &RuleOptions) -> Option<Rule> {
    let needs = needed_boundaries(rules);
    if needs.is_empty() {
        return None;
    }
    let mut r = not_a_bucket_rule(&needs, opts);
    if let Some(url) = &opts.runbook_url {
        r.annotations.push(("runbook_url".into(), url.clone()));
    }
    Some(r)
}

/// Name of the group holding [`bucket_check`].
pub const CHECK_GROUP: &str = "inferprobe-thresholds-buckets";

fn rule_node(r: &Rule) -> Node {
    let mut fields = vec![
        ("alert".into(), Node::str(&r.alert)),
        ("expr".into(), Node::str(&r.expr)),
        ("for".into(), Node::str(&r.for_)),
    ];
    if let Some(k) = r.keep_firing_for {
        fields.push(("keep_firing_for".into(), Node::str(k)));
    }
    fields.extend([
        (
            "labels".into(),
            Node::Map(vec![("severity".into(), Node::str(r.severity))]),
        ),
        (
            "annotations".into(),
            Node::Map(
                r.annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), Node::str(v)))
                    .collect(),
            ),
        ),
    ]);
    Node::Map(fields)
}

fn groups_node(rules: &[Rule], check: Option<&Rule>) -> Node {
    let group = |name: &str, rules: Vec<&Rule>| {
        Node::Map(vec![
            ("name".into(), Node::str(name)),
            (
                "rules".into(),
                Node::Seq(rules.into_iter().map(rule_node).collect()),
            ),
        ])
    };
    let mut groups = vec![group(GROUP, rules.iter().collect())];
    if let Some(c) = check {
        groups.push(group(CHECK_GROUP, vec![c]));
    }
    Node::Seq(groups)
}

fn comment_block(header: &[String]) -> String {
    header
        .iter()
        .flat_map(|h| h.lines())
        .map(|l| {
            if l.is_empty() {
                "#\n".to_string()
            } else {
                format!("# {l}\n")
            }
        })
        .collect()
}

/// A Prometheus rule file (`groups:`), with `header` lines as comments on top.
pub fn render_rule_file(rules: &[Rule], check: Option<&Rule>, header: &[String]) -> String {
    comment_block(header)
        + &yaml::render(&Node::Map(vec![(
            "groups".into(),
            groups_node(rules, check),
        )]))
}

/// A Kubernetes `PrometheusRule` wrapping the same group, with `header` lines as comments on top.
pub fn render_prometheus_rule(rules: &[Rule], check: Option<&Rule>, header: &[String]) -> String {
    let doc = Node::Map(vec![
        ("apiVersion".into(), Node::str("monitoring.coreos.com/v1")),
        ("kind".into(), Node::str("PrometheusRule")),
        (
            "metadata".into(),
            Node::Map(vec![
                ("name".into(), Node::str(GROUP)),
                (
                    "labels".into(),
                    Node::Map(vec![(
                        "app.kubernetes.io/name".into(),
                        Node::str("inferprobe"),
                    )]),
                ),
            ]),
        ),
        (
            "spec".into(),
            Node::Map(vec![("groups".into(), groups_node(rules, check))]),
        ),
    ]);
    comment_block(header) + &yaml::render(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_escape_the_target_name() {
        let opts = RuleOptions {
            target: Some(r#"a"b\c"#.into()),
            runbook_url: None,
        };
        let sizing = Sizing::for_interval(Duration::from_secs(5));
        assert_eq!(
            p95_expr(TTFT_FAMILY, &opts, 0.5, &sizing),
            [
                r#"(1 - sum by (job, instance, target, model) (rate(inferprobe_time_to_first_token_seconds_bucket{target="a\"b\\c",le="0.5"}[5m])) / sum by (job, instance, target, model) (rate(inferprobe_time_to_first_token_seconds_count{target="a\"b\\c"}[5m]))) > 0.05"#,
                "and",
                r#"(1 - sum by (job, instance, target, model) (rate(inferprobe_time_to_first_token_seconds_bucket{target="a\"b\\c",le="0.5"}[2m])) / sum by (job, instance, target, model) (rate(inferprobe_time_to_first_token_seconds_count{target="a\"b\\c"}[2m]))) > 0.05"#,
                "and",
                r#"sum by (job, instance, target, model) (increase(inferprobe_time_to_first_token_seconds_count{target="a\"b\\c"}[5m])) >= 20"#,
            ]
            .join("\n")
        );
        assert_eq!(
            error_expr(&RuleOptions::default(), 0.01, &sizing),
            [
                r#"sum by (job, instance, target, model) (rate(inferprobe_probes_total{result!~"success|rate_limited"}[10m])) / sum by (job, instance, target, model) (rate(inferprobe_probes_total{result!="rate_limited"}[10m])) > 0.01"#,
                "and",
                r#"sum by (job, instance, target, model) (rate(inferprobe_probes_total{result!~"success|rate_limited"}[3m])) / sum by (job, instance, target, model) (rate(inferprobe_probes_total{result!="rate_limited"}[3m])) > 0.0417"#,
                "and",
                r#"sum by (job, instance, target, model) (increase(inferprobe_probes_total{result!="rate_limited"}[10m])) >= 20"#,
                "and",
                r#"sum by (job, instance, target, model) (increase(inferprobe_probes_total{result!~"success|rate_limited"}[10m])) >= 5"#,
            ]
            .join("\n")
        );
    }

    #[test]
    fn whole_number_thresholds_match_both_le_spellings() {
        assert_eq!(le_matcher(1.0), r#"le=~"1|1.0""#);
        assert_eq!(le_matcher(0.3319), r#"le="0.3319""#);
        assert_eq!(le_matcher(2.5), r#"le="2.5""#);
    }

    #[test]
    fn windows_hold_enough_probes_at_every_interval() {
        let secs = |n| Duration::from_secs(n);
        let cases = [
            // interval, long, short
            (1, 5 * 60, 2 * 60),
            (5, 5 * 60, 2 * 60),
            (15, 8 * 60, 2 * 60),
            (30, 15 * 60, 2 * 60),
            (60, 30 * 60, 4 * 60),
            (300, 150 * 60, 20 * 60),
        ];
        for (every, long, short) in cases {
            let s = Sizing::for_interval(secs(every));
            assert_eq!(
                (s.long, s.short),
                (secs(long), secs(short)),
                "every {every}s"
            );
            assert_eq!(s.error_long, 2 * s.long);
            assert_eq!(s.error_short, s.short.max(secs(180)));
            // At least 1.5 × MIN_SAMPLES probes on schedule, so jitter cannot starve the rule.
            assert!(
                s.expected_samples() >= 1.5 * f64::from(MIN_SAMPLES),
                "{s:?}"
            );
        }
        assert_eq!(Sizing::for_interval(Duration::ZERO), Sizing::default());
        assert_eq!(Sizing::default().interval, DEFAULT_PROBE_INTERVAL);
        assert_eq!(prom_duration(secs(150 * 60)), "2h30m");
        assert_eq!(prom_duration(secs(60 * 60)), "1h");
        assert_eq!(prom_duration(secs(5 * 60)), "5m");
    }

    #[test]
    fn bucket_check_names_every_family_and_boundary_once() {
        let opts = RuleOptions::default();
        let rule = |family, t| Rule {
            alert: "X".into(),
            expr: String::new(),
            for_: FOR.into(),
            keep_firing_for: None,
            severity: "warning",
            threshold: t,
            family: Some(family),
            annotations: Vec::new(),
        };
        let rules = [
            rule(TTFT_FAMILY, 0.3319),
            rule(TTFT_FAMILY, 0.5),
            rule(TTFT_FAMILY, 0.5),
            rule(E2E_FAMILY, 2.0),
        ];
        assert_eq!(
            needed_boundaries(&rules),
            [(TTFT_FAMILY, 0.3319), (TTFT_FAMILY, 0.5), (E2E_FAMILY, 2.0)]
        );
        let check = bucket_check(&rules, &opts).expect("check");
        assert_eq!(check.expr.matches("\nor\n").count(), 2);
        assert!(check
            .expr
            .contains(r#"inferprobe_request_duration_seconds_bucket{le=~"2|2.0"}"#));
        assert!(bucket_check(&[], &opts).is_none());
    }
}
