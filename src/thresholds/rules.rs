//! Prometheus alert rules from classified stages, as a rule file or a Kubernetes
//! `PrometheusRule`.
//!
//! Warnings sit at the p99 measured at the safe operating point, on the inferprobe histogram
//! that matches the tool's own definition (vLLM's chat TTFT is inferprobe's time to first
//! event, AIPerf's ITL is inferprobe's TPOT, ...); criticals sit at the SLO targets on
//! inferprobe's TTFT and ITL. Every rule names where its number came from in its annotations.

use super::stages::{fmt_num, Slo, Stage};
use super::yaml::{self, Node};

/// Name of the rule group (and of the `PrometheusRule` object).
pub const GROUP: &str = "inferprobe-thresholds";
/// Range of every `rate()` in the rules.
pub const WINDOW: &str = "10m";
/// `for:` of warning rules.
pub const FOR_WARNING: &str = "10m";
/// `for:` of critical rules.
pub const FOR_CRITICAL: &str = "5m";

const TTFT_FAMILY: &str = "inferprobe_time_to_first_token_seconds";
const ITL_FAMILY: &str = "inferprobe_inter_token_latency_seconds";
const E2E_FAMILY: &str = "inferprobe_request_duration_seconds";

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
    /// `warning` or `critical`.
    pub severity: &'static str,
    /// The threshold in `expr`, for tests and tables.
    pub threshold: f64,
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

fn p95_expr(family: &str, opts: &RuleOptions, threshold: f64) -> String {
    format!(
        "histogram_quantile(0.95, sum by (target, le) (rate({family}_bucket{}[{WINDOW}]))) > {}",
        selector(opts, ""),
        fmt_num(threshold)
    )
}

fn error_expr(opts: &RuleOptions, threshold: f64) -> String {
    format!(
        "sum by (target) (rate(inferprobe_probes_total{}[{WINDOW}])) / sum by (target) (rate(inferprobe_probes_total{}[{WINDOW}])) > {}",
        selector(opts, r#"result!="success""#),
        selector(opts, ""),
        fmt_num(threshold)
    )
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

/// One latency of the safe stage that becomes a warning threshold.
struct Baseline<'a> {
    /// Alert-name part and inferprobe metric name (`TTFT`, `FirstEvent`, `TPOT`, `E2E`, ...).
    short: &'a str,
    /// The inferprobe histogram family compared.
    family: &'a str,
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
                "inferprobe's {short} p95 over {WINDOW} is {{{{ $value | humanizeDuration }}}}, above {}s: the {which} {what} {} measured at its safe operating point ({}, {}). {SHAPE_NOTE}",
                fmt_num(value),
                stage.format.tool(),
                stage.label,
                stage.source_file
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
        expr: p95_expr(family, opts, value),
        for_: FOR_WARNING.into(),
        severity: "warning",
        threshold: value,
        annotations,
    }
}

fn slo_rule(
    short: &str,
    family: &str,
    target: f64,
    first_over: Option<&Stage>,
    opts: &RuleOptions,
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
        expr: p95_expr(family, opts, target),
        for_: FOR_CRITICAL.into(),
        severity: "critical",
        threshold: target,
        annotations: vec![
            (
                "summary".into(),
                format!("{short} p95 of {{{{ $labels.target }}}} is above its SLO"),
            ),
            (
                "description".into(),
                format!(
                    "inferprobe's {short} p95 over {WINDOW} is {{{{ $value | humanizeDuration }}}}, above the SLO target of {}s.{context}",
                    fmt_num(target)
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
) -> Rule {
    let measured = match safe.and_then(|s| s.error_rate.map(|e| (s, e))) {
        Some((s, e)) => format!(
            " The load test measured an error ratio of {} at its safe operating point ({}, {}).",
            fmt_num(e),
            s.label,
            s.source_file
        ),
        None => String::new(),
    };
    Rule {
        alert: name.into(),
        expr: error_expr(opts, threshold),
        for_: if severity == "critical" { FOR_CRITICAL } else { FOR_WARNING }.into(),
        severity,
        threshold,
        annotations: vec![
            (
                "summary".into(),
                format!("Probes of {{{{ $labels.target }}}} fail more often than {}", fmt_num(threshold)),
            ),
            (
                "description".into(),
                format!(
                    "The share of inferprobe probes not ending in success over {WINDOW} is {{{{ $value | humanizePercentage }}}}, above {}.{measured}",
                    fmt_num(threshold)
                ),
            ),
            ("source_slo".into(), format!("error ratio <= {}", fmt_num(threshold))),
        ],
    }
}

/// Builds the rules from stages sorted by load and the index of the safe operating point.
pub fn build(stages: &[Stage], safe: Option<usize>, slo: &Slo, opts: &RuleOptions) -> Vec<Rule> {
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
            ));
        }
    }
    rules.push(slo_rule(
        "TTFT",
        TTFT_FAMILY,
        slo.ttft_p95,
        first_over(|s| s.ttft.p95, slo.ttft_p95),
        opts,
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
            ));
        }
    }
    rules.push(slo_rule(
        "ITL",
        ITL_FAMILY,
        slo.itl_p95,
        first_over(|s| s.itl.p95, slo.itl_p95),
        opts,
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
            ));
        }
    }
    rules.push(error_rule(
        "InferprobeErrorRatioAboveWarn",
        "warning",
        slo.error_rate_warn,
        safe_stage,
        opts,
    ));
    rules.push(error_rule(
        "InferprobeErrorRatioAboveBreach",
        "critical",
        slo.error_rate_breach,
        safe_stage,
        opts,
    ));
    if let Some(url) = &opts.runbook_url {
        for r in &mut rules {
            r.annotations.push(("runbook_url".into(), url.clone()));
        }
    }
    rules
}

fn rule_node(r: &Rule) -> Node {
    Node::Map(vec![
        ("alert".into(), Node::str(&r.alert)),
        ("expr".into(), Node::str(&r.expr)),
        ("for".into(), Node::str(&r.for_)),
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
    ])
}

fn groups_node(rules: &[Rule]) -> Node {
    Node::Seq(vec![Node::Map(vec![
        ("name".into(), Node::str(GROUP)),
        (
            "rules".into(),
            Node::Seq(rules.iter().map(rule_node).collect()),
        ),
    ])])
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
pub fn render_rule_file(rules: &[Rule], header: &[String]) -> String {
    comment_block(header) + &yaml::render(&Node::Map(vec![("groups".into(), groups_node(rules))]))
}

/// A Kubernetes `PrometheusRule` wrapping the same group, with `header` lines as comments on top.
pub fn render_prometheus_rule(rules: &[Rule], header: &[String]) -> String {
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
            Node::Map(vec![("groups".into(), groups_node(rules))]),
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
        assert_eq!(
            p95_expr(TTFT_FAMILY, &opts, 0.5),
            r#"histogram_quantile(0.95, sum by (target, le) (rate(inferprobe_time_to_first_token_seconds_bucket{target="a\"b\\c"}[10m]))) > 0.5"#
        );
        assert_eq!(
            error_expr(&RuleOptions::default(), 0.01),
            r#"sum by (target) (rate(inferprobe_probes_total{result!="success"}[10m])) / sum by (target) (rate(inferprobe_probes_total[10m])) > 0.01"#
        );
    }
}
