//! The shipped Prometheus rules (`alerts/*.rules.yml`): `promtool check rules`, the promtool unit
//! tests in `alerts/tests/`, and the conventions every rule keeps (severity, annotations, a
//! runbook section, a firing and a silent unit test per alert, recording-rule names).
//!
//! The promtool tests are skipped with a note when `promtool` is not installed, except under CI
//! (env `CI` set), where a missing `promtool` fails them so they cannot silently stop running.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// Where every `runbook_url` points: the runbook page, one anchor per alert.
const RUNBOOK_BASE: &str =
    "https://github.com/inferprobe/inferprobe/blob/main/docs/runbook.md#runbook-";

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct Rule {
    record: Option<String>,
    alert: Option<String>,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct TestFile {
    rule_files: Vec<String>,
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
struct TestGroup {
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Debug, Deserialize)]
struct AlertTest {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize)]
struct ExpectedAlert {
    exp_labels: BTreeMap<String, String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn rule_files() -> Vec<PathBuf> {
    files(&root().join("alerts"), ".rules.yml")
}

fn test_files() -> Vec<PathBuf> {
    files(&root().join("alerts/tests"), ".test.yml")
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every rule of every shipped rule file, with its file name.
fn all_rules() -> Vec<(String, Rule)> {
    let mut out = Vec::new();
    for path in rule_files() {
        let file: RuleFile = read(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for group in file.groups {
            assert!(
                group.name.starts_with("inferprobe-"),
                "{name}: group {} should start with inferprobe-",
                group.name
            );
            for rule in group.rules {
                out.push((name.clone(), rule));
            }
        }
    }
    out
}

/// Runs promtool with `args`; `None` (after a note) when it is missing outside CI.
fn promtool(args: &[&str], paths: &[PathBuf]) -> Option<(bool, String)> {
    let out = Command::new("promtool")
        .args(args)
        .args(paths)
        .current_dir(root())
        .output();
    match out {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            Some((out.status.success(), text))
        }
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "promtool is required in CI (Debian/Ubuntu: apt-get install prometheus): {e}"
                );
            }
            eprintln!(
                "note: promtool not found ({e}); skipping `promtool {}`",
                args.join(" ")
            );
            None
        }
    }
}

#[test]
fn promtool_check_rules_accepts_every_rule_file() {
    let paths = rule_files();
    assert_eq!(paths.len(), 4, "{paths:?}");
    if let Some((ok, out)) = promtool(&["check", "rules"], &paths) {
        assert!(ok, "promtool check rules failed:\n{out}");
        assert_eq!(out.matches("SUCCESS").count(), paths.len(), "{out}");
    }
}

#[test]
fn promtool_unit_tests_pass() {
    let paths = test_files();
    assert!(!paths.is_empty());
    if let Some((ok, out)) = promtool(&["test", "rules"], &paths) {
        assert!(ok, "promtool test rules failed:\n{out}");
        assert_eq!(out.matches("SUCCESS").count(), paths.len(), "{out}");
    }
}

#[test]
fn every_alert_has_severity_annotations_and_a_runbook_section() {
    let runbook = std::fs::read_to_string(root().join("docs/runbook.md")).expect("docs/runbook.md");
    let anchors = common::heading_anchors(&runbook);
    let mut names = BTreeSet::new();
    for (file, rule) in all_rules() {
        let Some(alert) = rule.alert else { continue };
        assert!(names.insert(alert.clone()), "{alert} is defined twice");
        assert!(alert.starts_with("Inferprobe"), "{file}: {alert}");
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("critical" | "warning" | "info")),
            "{file}: {alert} has severity {severity:?}"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule.annotations
                    .get(key)
                    .is_some_and(|v| !v.trim().is_empty()),
                "{file}: {alert} lacks annotation {key}"
            );
        }
        let anchor = format!("runbook-{}", alert.to_lowercase());
        assert_eq!(
            rule.annotations["runbook_url"],
            format!("{RUNBOOK_BASE}{}", alert.to_lowercase()),
            "{file}: {alert}"
        );
        assert!(
            anchors.contains(&anchor),
            "docs/runbook.md has no heading `Runbook: {alert}` (anchor #{anchor})"
        );
    }
    assert_eq!(names.len(), 25, "{names:?}");
    // And no runbook section for an alert that does not exist.
    for a in anchors.iter().filter_map(|a| a.strip_prefix("runbook-")) {
        assert!(
            names.iter().any(|n| n.to_lowercase() == a),
            "docs/runbook.md documents an unknown alert #{a}"
        );
    }
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let alerts: BTreeSet<String> = all_rules()
        .into_iter()
        .filter_map(|(_, r)| r.alert)
        .collect();
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for path in test_files() {
        let file: TestFile = read(&path);
        for rf in &file.rule_files {
            assert!(
                path.parent().unwrap().join(rf).is_file(),
                "{}: rule file {rf} does not exist",
                path.display()
            );
        }
        for t in file.tests.iter().flat_map(|g| &g.alert_rule_test) {
            assert!(
                alerts.contains(&t.alertname),
                "unknown alert {}",
                t.alertname
            );
            if t.exp_alerts.is_empty() {
                silent.insert(t.alertname.clone());
            } else {
                for a in &t.exp_alerts {
                    assert!(a.exp_labels.contains_key("severity"), "{}", t.alertname);
                }
                firing.insert(t.alertname.clone());
            }
        }
    }
    let missing_firing: Vec<_> = alerts.difference(&firing).collect();
    let missing_silent: Vec<_> = alerts.difference(&silent).collect();
    assert!(
        missing_firing.is_empty(),
        "no firing test: {missing_firing:?}"
    );
    assert!(
        missing_silent.is_empty(),
        "no silent test: {missing_silent:?}"
    );
}

#[test]
fn recording_rules_follow_level_metric_operations() {
    let thresholds = root().join("alerts/inferprobe-thresholds.rules.yml");
    let mut defaults = BTreeMap::new();
    let mut recorded = BTreeSet::new();
    for (file, rule) in all_rules() {
        let Some(name) = rule.record else { continue };
        let parts: Vec<&str> = name.split(':').collect();
        let ok_chars = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        assert!(parts.iter().all(|p| ok_chars(p)), "{file}: {name}");
        match parts.as_slice() {
            // Constants: `inferprobe:threshold_<what>` / `inferprobe:slo_<what>`, only in the
            // thresholds file, so that every threshold lives in one place.
            ["inferprobe", what] => {
                assert_eq!(
                    file,
                    thresholds.file_name().unwrap().to_string_lossy(),
                    "{name}"
                );
                assert!(
                    !what.starts_with("expected_"),
                    "{name}: an expected value is set per target by the user, never shipped"
                );
                assert!(
                    what.starts_with("threshold_") || what.starts_with("slo_"),
                    "{name}"
                );
                assert!(rule.expr.starts_with("vector("), "{name}: {}", rule.expr);
                if !rule.labels.contains_key("target") && !rule.labels.contains_key("server") {
                    *defaults.entry(name.clone()).or_insert(0) += 1;
                }
            }
            [level, metric, _ops] => {
                assert!(
                    ["target", "server", "journey"].contains(level),
                    "{file}: {name}: unknown level"
                );
                assert!(metric.starts_with("inferprobe_"), "{file}: {name}");
            }
            _ => panic!("{file}: {name} is not level:metric:operations"),
        }
        recorded.insert(name);
    }
    // Exactly one default per constant; every `:resolved` rule resolves a constant that exists.
    assert!(defaults.values().all(|n| *n == 1), "{defaults:?}");
    for name in recorded.iter().filter(|n| n.ends_with(":resolved")) {
        let metric = name.split(':').nth(1).unwrap();
        let constant = format!("inferprobe:{}", &metric["inferprobe_".len()..]);
        assert!(
            defaults.contains_key(&constant),
            "{name} resolves {constant}"
        );
    }
    // Every recorded or constant series an alert reads is defined here, except the per-target
    // expected values the user sets (`inferprobe:expected_<what>`, no default), which the
    // thresholds file documents with an example.
    let thresholds_text = std::fs::read_to_string(&thresholds).expect("thresholds file");
    let series = regex::Regex::new(r"\b(?:inferprobe|target|server):[a-z0-9_:]+").unwrap();
    for (file, rule) in all_rules() {
        for m in series.find_iter(&rule.expr) {
            if m.as_str().starts_with("inferprobe:expected_") {
                assert!(
                    thresholds_text.contains(&format!("- record: {}", m.as_str())),
                    "{file}: {} is not documented in the thresholds file",
                    m.as_str()
                );
                continue;
            }
            assert!(
                recorded.contains(m.as_str()),
                "{file}: {:?} reads undefined {}",
                rule.alert.or(rule.record),
                m.as_str()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fire drills: promtool unit tests generated from a model of canary traffic.
//
// Each drill is one target probed every 5 s (±10% jitter), scraped and evaluated every 15 s
// (Prometheus' default configuration), with TTFT drawn from a log-normal distribution. After a
// healthy stretch long enough for every baseline (70 minutes), a fault starts; the drill asserts,
// every minute, on the `ALERTS` series of the bundled rules (every target with an expected cost
// per probe, so the cost alert has a baseline from the first hour) and of the rules `inferprobe
// thresholds` derives from the calibrate fixture at a 5 s probe interval:
// - before the fault nothing fires;
// - during the fault nothing fires but the alerts the drill allows, and each alert it is about
//   has fired by its deadline;
// - after recovery no alert fires that was not already firing at recovery, and 5 minutes after
//   recovery nothing fires at all.
// The healthy drills assert that nothing fires for two hours.

/// Seconds between probes, scrapes and rule evaluations in the drills.
const PROBE_EVERY_S: f64 = 5.0;
const SCRAPE_EVERY_S: u64 = 15;
/// Healthy time before a fault: the relative TTFT baseline needs an hour of history.
const FAULT_AT_S: u64 = 70 * 60;
/// Every alert must have cleared this long after recovery.
const CLEAR_WITHIN_S: u64 = 5 * 60;

/// xorshift64*: a small deterministic generator, so the drills are the same on every run.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Every probe fails to connect.
    Down,
    /// TTFT multiplied by this factor.
    Slow(f64),
    /// This share of probes is rate limited.
    RateLimited(f64),
    /// This share of probes fails with a 5xx.
    Errors(f64),
    /// Every probe costs this many times its usual cost (e.g. twice the output tokens).
    Costly(f64),
}

/// What a probe of every drill target is expected to cost, in USD: the baseline of the cost
/// alert from the first hour (`inferprobe:expected_cost_per_request_usd`). A probe's cost
/// varies by ±10% (1 sigma) around it, as answers vary in length.
const EXPECTED_COST_USD: f64 = 0.0001;

struct Drill {
    target: &'static str,
    /// Median TTFT in seconds and the log-normal sigma.
    ttft: (f64, f64),
    /// Background shares of 5xx and of 429 on a healthy endpoint.
    background: (f64, f64),
    /// The fault, its start and end (seconds), or none.
    fault: Option<(Fault, u64, u64)>,
    /// The alert the drill is about and its deadline after the fault starts (seconds).
    must: Vec<(&'static str, u64)>,
    /// Alerts that may also fire during the fault (they must clear like the others).
    may: Vec<&'static str>,
    /// Length of the drill in seconds.
    length_s: u64,
    seed: u64,
}

const RESULTS: [&str; 4] = ["success", "connect_error", "rate_limited", "http_5xx"];
/// Columns of [`drill_series`] after the results and the TTFT buckets: TTFT +Inf, count and
/// sum, the success gauge, cost count and sum.
const EXTRA_COLUMNS: usize = 6;

/// Input series of one drill: (series selector, space-separated values), one value per scrape.
fn drill_series(d: &Drill, ttft_buckets: &[f64]) -> Vec<(String, String)> {
    let mut rng = Rng(d.seed);
    // Cost draws come from a generator of their own, so that the TTFT and result draws are the
    // same whether or not a drill's cost changes.
    let mut cost_rng = Rng(d.seed ^ 0x9E37_79B9_7F4A_7C15);
    let labels = format!(
        r#"job="inferprobe",instance="canary:10048",target="{}",model="m",scenario="chat""#,
        d.target
    );
    let scrapes = d.length_s / SCRAPE_EVERY_S + 1;
    let mut results = [0u64; 4];
    let mut buckets = vec![0u64; ttft_buckets.len()];
    let (mut count, mut sum) = (0u64, 0.0f64);
    let (mut cost_count, mut cost_sum) = (0u64, 0.0f64);
    let mut last_success = 1u8;
    let mut next_probe = rng.next_f64() * PROBE_EVERY_S;
    let mut cols: Vec<Vec<String>> = vec![Vec::new(); 4 + ttft_buckets.len() + EXTRA_COLUMNS];
    for i in 0..scrapes {
        let now = (i * SCRAPE_EVERY_S) as f64;
        while next_probe <= now {
            let t = next_probe as u64;
            let fault = d
                .fault
                .filter(|(_, from, to)| (*from..*to).contains(&t))
                .map(|(f, _, _)| f);
            let u = rng.next_f64();
            let result = match fault {
                Some(Fault::Down) => 1,
                Some(Fault::RateLimited(p)) if u < p => 2,
                Some(Fault::Errors(p)) if u < p => 3,
                _ if u < d.background.0 => 3,
                _ if u > 1.0 - d.background.1 => 2,
                _ => 0,
            };
            results[result] += 1;
            last_success = u8::from(result == 0);
            if result == 0 {
                let factor = match fault {
                    Some(Fault::Slow(f)) => f,
                    _ => 1.0,
                };
                let v = d.ttft.0 * (d.ttft.1 * rng.normal()).exp() * factor;
                for (b, le) in buckets.iter_mut().zip(ttft_buckets) {
                    if v <= *le {
                        *b += 1;
                    }
                }
                count += 1;
                sum += v;
                let factor = match fault {
                    Some(Fault::Costly(f)) => f,
                    _ => 1.0,
                };
                cost_count += 1;
                cost_sum += EXPECTED_COST_USD * (1.0 + 0.1 * cost_rng.normal()).max(0.5) * factor;
            }
            next_probe += PROBE_EVERY_S * (0.9 + 0.2 * rng.next_f64());
        }
        let mut row: Vec<String> = results.iter().map(u64::to_string).collect();
        row.extend(buckets.iter().map(u64::to_string));
        row.push(count.to_string());
        row.push(count.to_string());
        row.push(format!("{sum:.4}"));
        row.push(last_success.to_string());
        row.push(cost_count.to_string());
        row.push(format!("{cost_sum:.8}"));
        for (c, v) in cols.iter_mut().zip(row) {
            c.push(v);
        }
    }
    let mut names: Vec<String> = RESULTS
        .iter()
        .map(|r| format!(r#"inferprobe_probes_total{{{labels},result="{r}"}}"#))
        .collect();
    names.extend(ttft_buckets.iter().map(|le| {
        format!(r#"inferprobe_time_to_first_token_seconds_bucket{{{labels},le="{le}"}}"#)
    }));
    names.push(format!(
        r#"inferprobe_time_to_first_token_seconds_bucket{{{labels},le="+Inf"}}"#
    ));
    names.push(format!(
        "inferprobe_time_to_first_token_seconds_count{{{labels}}}"
    ));
    names.push(format!(
        "inferprobe_time_to_first_token_seconds_sum{{{labels}}}"
    ));
    names.push(format!("inferprobe_probe_success{{{labels}}}"));
    names.push(format!("inferprobe_request_cost_usd_count{{{labels}}}"));
    names.push(format!("inferprobe_request_cost_usd_sum{{{labels}}}"));
    names
        .into_iter()
        .zip(cols.into_iter().map(|c| c.join(" ")))
        .collect()
}

const FIRING: &str = r#"group by (alertname, target) (ALERTS{alertstate="firing"})"#;

fn expr_test(out: &mut String, expr: &str, at_s: u64, firing: &[(&str, &str)]) {
    out.push_str(&format!(
        "      - expr: '{expr}'\n        eval_time: {at_s}s\n"
    ));
    if firing.is_empty() {
        out.push_str("        exp_samples: []\n");
    } else {
        out.push_str("        exp_samples:\n");
        for (alert, target) in firing {
            out.push_str(&format!(
                "          - labels: '{{alertname=\"{alert}\", target=\"{target}\"}}'\n            value: 1\n"
            ));
        }
    }
}

/// The promtool test group of one drill.
fn drill_group(d: &Drill, ttft_buckets: &[f64]) -> String {
    let mut out = format!(
        "  # Drill `{}`: {:?}, TTFT median {}s sigma {}.\n  - interval: {SCRAPE_EVERY_S}s\n    input_series:\n",
        d.target, d.fault, d.ttft.0, d.ttft.1
    );
    for (series, values) in drill_series(d, ttft_buckets) {
        out.push_str(&format!(
            "      - series: '{series}'\n        values: '{values}'\n"
        ));
    }
    out.push_str("    promql_expr_test:\n");
    let allowed: Vec<&str> = d
        .may
        .iter()
        .copied()
        .chain(d.must.iter().map(|(a, _)| *a))
        .collect();
    let unexpected = format!(
        r#"group by (alertname, target) (ALERTS{{alertstate="firing",alertname!~"{}"}})"#,
        allowed.join("|")
    );
    for t in (60..=d.length_s).step_by(60) {
        match d.fault {
            None => expr_test(&mut out, FIRING, t, &[]),
            Some((_, from, _)) if t < from => expr_test(&mut out, FIRING, t, &[]),
            Some((_, from, to)) if t <= to => {
                expr_test(&mut out, &unexpected, t, &[]);
                for (alert, deadline) in &d.must {
                    // Fired by its deadline (a ratio alert may flap later in a noisy fault).
                    if t == from + deadline {
                        expr_test(
                            &mut out,
                            &format!(
                                r#"group by (alertname, target) (max_over_time(ALERTS{{alertstate="firing",alertname="{alert}"}}[{deadline}s]))"#
                            ),
                            t,
                            &[(alert, d.target)],
                        );
                    }
                }
            }
            Some((_, _, to)) if t < to + CLEAR_WITHIN_S => {
                // Whatever fires now was already firing at recovery.
                let since = t - to;
                expr_test(
                    &mut out,
                    &format!(
                        r#"{FIRING} unless group by (alertname, target) (ALERTS{{alertstate="firing"}} offset {since}s)"#
                    ),
                    t,
                    &[],
                );
            }
            Some(_) => expr_test(&mut out, FIRING, t, &[]),
        }
    }
    out
}

fn drills() -> Vec<Drill> {
    let fault = |f, minutes: u64| Some((f, FAULT_AT_S, FAULT_AT_S + minutes * 60));
    let after = |minutes: u64| FAULT_AT_S + minutes * 60 + 15 * 60;
    vec![
        Drill {
            target: "steady",
            ttft: (0.201, 0.002),
            background: (0.0, 0.0),
            fault: None,
            must: vec![],
            may: vec![],
            length_s: 120 * 60,
            seed: 1,
        },
        Drill {
            target: "jittery",
            ttft: (0.15, 0.35),
            background: (0.003, 0.003),
            fault: None,
            must: vec![],
            may: vec![],
            length_s: 120 * 60,
            seed: 2,
        },
        Drill {
            target: "down",
            ttft: (0.15, 0.35),
            background: (0.003, 0.003),
            fault: fault(Fault::Down, 10),
            must: vec![("InferprobeProbesFailing", 2 * 60)],
            may: vec![
                "InferprobeErrorRatioHigh",
                "InferprobeAvailabilityBudgetBurnFast",
                "InferprobeAvailabilityBudgetBurnSlow",
                "InferprobeErrorRatioAboveWarn",
                "InferprobeErrorRatioAboveBreach",
            ],
            length_s: after(10),
            seed: 3,
        },
        Drill {
            target: "slow",
            ttft: (0.15, 0.35),
            background: (0.003, 0.003),
            fault: fault(Fault::Slow(3.0), 15),
            must: vec![
                ("InferprobeTTFTp95AboveRecentBaseline", 5 * 60),
                ("InferprobeTTFTp95AboveLoadTestBaseline", 5 * 60),
            ],
            may: vec!["InferprobeTTFTp95AboveSLO", "InferprobeTTFTp95High"],
            length_s: after(15),
            seed: 4,
        },
        Drill {
            // TTFT 8x slower: a median of 1.2 s, above the absolute threshold of 1 s.
            target: "sluggish",
            ttft: (0.15, 0.35),
            background: (0.003, 0.003),
            fault: fault(Fault::Slow(8.0), 15),
            must: vec![("InferprobeTTFTp95High", 12 * 60)],
            may: vec![
                "InferprobeTTFTp95AboveRecentBaseline",
                "InferprobeTTFTp95AboveLoadTestBaseline",
                "InferprobeTTFTp95AboveSLO",
                "InferprobeLatencyBudgetBurnFast",
                "InferprobeLatencyBudgetBurnSlow",
            ],
            length_s: after(15),
            seed: 7,
        },
        Drill {
            // Twice the tokens per answer, so twice the cost per probe.
            target: "costly",
            ttft: (0.15, 0.35),
            background: (0.003, 0.003),
            fault: fault(Fault::Costly(2.0), 15),
            must: vec![("InferprobeCostPerRequestAboveBaseline", 10 * 60)],
            may: vec![],
            length_s: after(15),
            seed: 8,
        },
        Drill {
            target: "limited",
            ttft: (0.15, 0.35),
            background: (0.003, 0.003),
            fault: fault(Fault::RateLimited(0.5), 15),
            must: vec![("InferprobeRateLimited", 5 * 60)],
            may: vec![],
            length_s: after(15),
            seed: 5,
        },
        Drill {
            target: "erroring",
            ttft: (0.15, 0.35),
            background: (0.003, 0.003),
            fault: fault(Fault::Errors(0.1), 15),
            must: vec![
                ("InferprobeErrorRatioHigh", 10 * 60),
                ("InferprobeErrorRatioAboveBreach", 10 * 60),
            ],
            may: vec![
                "InferprobeErrorRatioAboveWarn",
                "InferprobeAvailabilityBudgetBurnFast",
                "InferprobeAvailabilityBudgetBurnSlow",
            ],
            length_s: after(15),
            seed: 6,
        },
    ]
}

/// Rules `inferprobe thresholds` derives from the calibrate fixture for a 5 s probe interval,
/// and the TTFT buckets its overrides ask for.
fn derived_rules() -> (String, Vec<f64>) {
    use inferprobe::thresholds::{generate, import_file, Options, Sizing};
    let path = root().join("tests/fixtures/loadtest/inferprobe/calibrate-local-vllm.json");
    let imported = import_file(&path, None).expect("calibrate fixture");
    let opts = Options {
        sizing: Sizing::for_interval(std::time::Duration::from_secs(5)),
        ..Options::default()
    };
    let report = generate(vec![imported], &opts).expect("generate");
    let ttft = report
        .buckets
        .iter()
        .find(|(name, _)| name == "time_to_first_token_seconds")
        .map(|(_, b)| b.clone())
        .expect("the TTFT baseline needs a bucket override");
    (report.output, ttft)
}

/// A rule file setting every drill target's expected cost per probe, the way the thresholds
/// file tells users to.
fn expected_cost_rules() -> String {
    let mut out = String::from("groups:\n  - name: inferprobe-drill-expected-cost\n    rules:\n");
    for d in drills() {
        out.push_str(&format!(
            "      - record: inferprobe:expected_cost_per_request_usd\n        expr: vector({EXPECTED_COST_USD})\n        labels:\n          target: {}\n",
            d.target
        ));
    }
    out
}

/// The whole drill file, its rule files given as absolute paths.
fn drill_file(derived: &Path, expected: &Path, ttft_buckets: &[f64]) -> String {
    let mut out = String::from(
        "# Generated by tests/rules.rs (fire drills); see the comment there.\nrule_files:\n",
    );
    for f in [
        "alerts/inferprobe-thresholds.rules.yml",
        "alerts/inferprobe.rules.yml",
    ] {
        out.push_str(&format!("  - {}\n", root().join(f).display()));
    }
    out.push_str(&format!("  - {}\n", derived.display()));
    out.push_str(&format!("  - {}\n", expected.display()));
    out.push_str(&format!("evaluation_interval: {SCRAPE_EVERY_S}s\ntests:\n"));
    for d in drills() {
        out.push_str(&drill_group(&d, ttft_buckets));
    }
    out
}

#[test]
fn fire_drills_at_canary_rates() {
    let dir = tempfile::Builder::new()
        .prefix("inferprobe-drills")
        .tempdir()
        .expect("tempdir");
    let (derived, ttft_buckets) = derived_rules();
    let derived_path = dir.path().join("derived.rules.yml");
    std::fs::write(&derived_path, derived).expect("write derived rules");
    let expected_path = dir.path().join("expected-cost.rules.yml");
    std::fs::write(&expected_path, expected_cost_rules()).expect("write expected costs");
    let test_path = dir.path().join("drills.test.yml");
    std::fs::write(
        &test_path,
        drill_file(&derived_path, &expected_path, &ttft_buckets),
    )
    .expect("write drills");
    if let Some((ok, out)) = promtool(&["test", "rules"], std::slice::from_ref(&test_path)) {
        if !ok {
            let keep = std::env::temp_dir().join("inferprobe-drills.test.yml");
            let _ = std::fs::copy(&test_path, &keep);
            let _ = std::fs::copy(
                &derived_path,
                std::env::temp_dir().join("derived.rules.yml"),
            );
            panic!(
                "fire drills failed (test file kept at {}):\n{}",
                keep.display(),
                &out[..out.len().min(20_000)]
            );
        }
    }
}

#[test]
fn drill_traffic_model_is_what_it_claims() {
    // One healthy hour of the jittery model: about 720 probes, 0.3% 5xx and 0.3% 429, a TTFT
    // median near 200 ms.
    let d = Drill {
        target: "t",
        ttft: (0.15, 0.35),
        background: (0.003, 0.003),
        fault: Some((Fault::Down, 1800, 2400)),
        must: vec![],
        may: vec![],
        length_s: 3600,
        seed: 9,
    };
    let buckets = [0.15, 1.0];
    let series = drill_series(&d, &buckets);
    let last = |i: usize| -> f64 { series[i].1.split(' ').next_back().unwrap().parse().unwrap() };
    let total: f64 = (0..4).map(last).sum();
    assert!(
        (680.0..=760.0).contains(&total),
        "{total} probes in an hour"
    );
    // 10 minutes down: ~120 connect errors.
    assert!((110.0..=130.0).contains(&last(1)), "{}", last(1));
    let below_median = last(4) / last(7);
    assert!((0.45..=0.55).contains(&below_median), "{below_median}");
    // The gauge is the last probe's result: 0 during the outage.
    let gauge: Vec<&str> = series[9].1.split(' ').collect();
    assert_eq!(gauge[2200 / 15], "0");
    assert_eq!(gauge[3000 / 15], "1");
    // Each successful probe costs the expected cost on average, and only those are counted.
    assert_eq!(last(10), last(7));
    let mean_cost = last(11) / last(10);
    assert!(
        (0.98 * EXPECTED_COST_USD..=1.02 * EXPECTED_COST_USD).contains(&mean_cost),
        "{mean_cost}"
    );
}

// ---------------------------------------------------------------------------------------------
// `inferprobe thresholds` with a config: the target it watches, its interval and its buckets.

fn thresholds_cli(args: &[&str]) -> (i32, String, String) {
    let fixture = root().join("tests/fixtures/loadtest/inferprobe/calibrate-local-vllm.json");
    let out = Command::new(env!("CARGO_BIN_EXE_inferprobe"))
        .arg("thresholds")
        .args(args)
        .arg(fixture)
        .output()
        .expect("run inferprobe thresholds");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TWO_TARGETS: &str = "targets:
  - name: eu
    dialect: openai-chat
    base_url: http://127.0.0.1:9/v1
    model: m
    schedule: {every: 5s}
  - name: us
    dialect: openai-chat
    base_url: http://127.0.0.1:9/v1
    model: m
    schedule: {every: 60s}
buckets:
  time_to_first_token_seconds: [0.1, 0.437, 1]
";

#[test]
fn thresholds_needs_target_with_several_and_sizes_windows_from_its_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yml");
    std::fs::write(&config, TWO_TARGETS).expect("write config");
    let config = config.to_string_lossy().into_owned();

    let (code, stdout, stderr) = thresholds_cli(&["--config.file", &config]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("--config.file has 2 targets (eu, us)") && stderr.contains("--target"),
        "{stderr}"
    );

    let (code, _, stderr) = thresholds_cli(&["--config.file", &config, "--target", "ap"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(r#"--target "ap" is not a target of --config.file (targets: eu, us)"#),
        "{stderr}"
    );

    // `eu` probes every 5 s: 5-minute windows, scoped to it.
    let (code, stdout, stderr) = thresholds_cli(&["--config.file", &config, "--target", "eu"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("# Windows for a probe every 5s: 5m"),
        "{stdout}"
    );
    assert!(
        // (inside a double-quoted YAML string)
        stdout.contains(
            r#"inferprobe_time_to_first_token_seconds_bucket{target=\"eu\",le=\"0.437\"}[5m]"#
        ),
        "{stdout}"
    );
    // The config has the TTFT boundary (0.437) but not the SLO's (0.4), nor ITL's or E2E's.
    assert!(
        stderr.contains("warning: the config's buckets lack"),
        "{stderr}"
    );
    assert!(
        stderr.contains("inferprobe_time_to_first_token_seconds 0.4s"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("inferprobe_time_to_first_token_seconds 0.437s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    time_to_first_token_seconds: [0.1, 0.4, 0.437, 1]"),
        "{stderr}"
    );

    // `us` probes every minute: 30-minute windows; a flag overrides the schedule.
    let (_, stdout, _) = thresholds_cli(&["--config.file", &config, "--target", "us"]);
    assert!(
        stdout.contains("# Windows for a probe every 60s: 30m"),
        "{stdout}"
    );
    let (_, stdout, _) = thresholds_cli(&[
        "--config.file",
        &config,
        "--target",
        "us",
        "--probe-interval",
        "15s",
    ]);
    assert!(
        stdout.contains("# Windows for a probe every 15s: 8m"),
        "{stdout}"
    );
}

#[test]
fn thresholds_warn_stage_picks_the_safe_point_or_the_stage_before_the_knee() {
    // Calibrate fixture: TTFT p95 112, 146, 321, 611, 3102 ms at 1, 2, 4, 8, 16 req/s; the SLO
    // (400 ms) is first left at 8 req/s, so the safe point is 4 req/s. The knee is 4 req/s
    // (321 ms > 1.5 × 112 ms), so the stage before it is 2 req/s.
    let (code, safe, stderr) = thresholds_cli(&["--probe-interval", "5s"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(safe.contains("source_stage: rate 4 req/s"), "{safe}");
    assert!(
        safe.contains("source_measured: p99 TTFT = 0.437s"),
        "{safe}"
    );
    assert!(safe.contains(r#"le=\"0.437\""#), "{safe}");
    let (code, knee, stderr) =
        thresholds_cli(&["--probe-interval", "5s", "--warn-stage", "before-knee"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(knee.contains("source_stage: rate 2 req/s"), "{knee}");
    assert!(
        knee.contains("source_measured: p99 TTFT = 0.188s"),
        "{knee}"
    );
    assert!(knee.contains(r#"le=\"0.188\""#), "{knee}");
    assert!(
        knee.contains("measured at the stage before its knee (rate 2 req/s"),
        "{knee}"
    );
    assert!(
        knee.contains("time_to_first_token_seconds: [0.025, 0.05, 0.1, 0.15, 0.188, 0.2,"),
        "{knee}"
    );
    assert!(!knee.contains("source_stage: rate 4 req/s"), "{knee}");
}

// ---------------------------------------------------------------------------------------------
// Journeys: the `inferprobe-journeys` rule group, the canary dashboard's Journeys row and the
// the journey families of docs/metrics.md. Whether the families exist in the exporter is checked against a
// live scrape by tests/prometheus_e2e.rs (every panel query and recording rule must return data).

/// The raw `inferprobe_*` names an expression reads: recorded names (`level:metric:ops`) and
/// constants (`inferprobe:...`) left out, histogram suffixes removed.
fn families_read(expr: &str) -> BTreeSet<String> {
    let name = regex::Regex::new(r"inferprobe_[a-z0-9_]+").unwrap();
    name.find_iter(expr)
        .filter(|m| !expr[..m.start()].ends_with(':') && !expr[m.end()..].starts_with(':'))
        .map(|m| {
            let n = m.as_str();
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_string()
        })
        .collect()
}

/// The families the "Journey families" section of docs/metrics.md documents.
fn documented_journey_families() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md");
    let section: String = readme
        .lines()
        .skip_while(|l| !l.starts_with("### Journey families"))
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !section.is_empty(),
        "docs/metrics.md has no `### Journey families` section"
    );
    families_read(&section)
}

/// Every panel of the canary dashboard's "Journeys" row, whether the row is collapsed (its
/// panels nested in it) or not (the panels after it, up to the next row).
fn journey_panels() -> Vec<serde_json::Value> {
    let path = root().join("dashboards/inferprobe-canary.json");
    let text = std::fs::read_to_string(&path).expect("canary dashboard");
    let d: serde_json::Value = serde_json::from_str(&text).expect("canary dashboard is JSON");
    let top = d["panels"].as_array().expect("panels");
    let row = top
        .iter()
        .position(|p| p["type"] == "row" && p["title"] == "Journeys")
        .expect("the canary dashboard has a Journeys row");
    let nested = top[row]["panels"].as_array().cloned().unwrap_or_default();
    let following = top[row + 1..]
        .iter()
        .take_while(|p| p["type"] != "row")
        .cloned();
    nested.into_iter().chain(following).collect()
}

#[test]
fn journey_rules_and_panels_read_only_documented_journey_families() {
    let documented = documented_journey_families();
    assert!(
        documented.contains("inferprobe_journeys_total")
            && documented.contains("inferprobe_journey_step_requests_total"),
        "{documented:?}"
    );
    let mut used = BTreeSet::new();
    let mut rules = 0;
    for path in rule_files() {
        let file: RuleFile = read(&path);
        for rule in file
            .groups
            .into_iter()
            .filter(|g| g.name == "inferprobe-journeys")
            .flat_map(|g| g.rules)
        {
            rules += 1;
            let families = families_read(&rule.expr);
            let journey: Vec<_> = families
                .iter()
                .filter(|f| f.starts_with("inferprobe_journey"))
                .collect();
            assert!(
                !journey.is_empty(),
                "{:?} reads no journey family",
                rule.alert.or(rule.record)
            );
            used.extend(families);
        }
    }
    assert_eq!(rules, 6, "rules in the inferprobe-journeys group");
    let panels = journey_panels();
    assert!(panels.len() >= 8, "{} journey panels", panels.len());
    for p in &panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let families = families_read(expr);
            assert!(
                families.iter().all(|f| f.starts_with("inferprobe_journey")),
                "{}: {expr} reads a family outside the journey families",
                p["title"]
            );
            used.extend(families);
        }
    }
    // The journey rules also read inferprobe's own config timestamp (InferprobeJourneyAbsent).
    let unknown: Vec<_> = used
        .iter()
        .filter(|f| f.starts_with("inferprobe_journey") && !documented.contains(*f))
        .collect();
    assert!(
        unknown.is_empty(),
        "not in the journey families of docs/metrics.md: {unknown:?}"
    );
    assert!(used.contains("inferprobe_journey_duration_seconds"));
    assert!(used.contains("inferprobe_journey_step_time_to_first_token_seconds"));
}

#[test]
fn families_read_skips_recorded_names_and_histogram_suffixes() {
    let f = families_read(
        "journey:inferprobe_journey_duration_seconds:p95_rate30m > rate(inferprobe_journey_duration_seconds_count[5m]) * inferprobe:threshold_x and inferprobe_journeys_total",
    );
    assert_eq!(
        f,
        BTreeSet::from([
            "inferprobe_journey_duration_seconds".to_string(),
            "inferprobe_journeys_total".to_string()
        ])
    );
}

#[test]
fn journey_task_time_buckets_make_a_doubling_cross_a_bound() {
    // InferprobeJourneySlow needs the 30-minute p95 to pass a bucket bound its day-old p95 stayed
    // under. That never hides a true regression larger than its ratio wherever neighbouring
    // bounds are at most the ratio apart: true of the default task-time buckets (the request
    // duration ones) from 0.25 s up, for the default ratio.
    let thresholds =
        std::fs::read_to_string(root().join("alerts/inferprobe-thresholds.rules.yml")).unwrap();
    let ratio: f64 = thresholds
        .split("- record: inferprobe:threshold_journey_duration_p95_increase_ratio\n")
        .nth(1)
        .and_then(|rest| rest.split("vector(").nth(1))
        .and_then(|rest| rest.split(')').next())
        .and_then(|v| v.parse().ok())
        .expect("default journey duration ratio");
    assert_eq!(ratio, 2.0);
    use inferprobe::metrics::buckets::REQUEST_DURATION_SECONDS;
    let mut lists = vec![REQUEST_DURATION_SECONDS];
    lists.extend(inferprobe::metrics::default_buckets(
        "journey_duration_seconds",
    ));
    for buckets in lists {
        for w in buckets.windows(2).filter(|w| w[0] >= 0.25) {
            assert!(
                w[1] / w[0] <= ratio,
                "bounds {} and {} are more than {ratio}x apart",
                w[0],
                w[1]
            );
        }
    }
}
