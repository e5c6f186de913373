//! The shipped Prometheus rules (`alerts/*.rules.yml`): `promtool check rules`, the promtool unit
//! tests in `alerts/tests/`, and the conventions every rule keeps (severity, annotations, a
//! runbook section, a firing and a silent unit test per alert, recording-rule names).
//!
//! The promtool tests are skipped with a note when `promtool` is not installed, except under CI
//! (env `CI` set), where a missing `promtool` fails them so they cannot silently stop running.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// Where every `runbook_url` points: the README's runbook section, one anchor per alert.
const RUNBOOK_BASE: &str = "https://github.com/inferprobe/inferprobe#runbook-";

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
    let runbook = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let anchors = heading_anchors(&runbook);
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
            "README.md has no heading `Runbook: {alert}` (anchor #{anchor})"
        );
    }
    assert_eq!(names.len(), 20, "{names:?}");
    // And no runbook section for an alert that does not exist.
    for a in anchors.iter().filter_map(|a| a.strip_prefix("runbook-")) {
        assert!(
            names.iter().any(|n| n.to_lowercase() == a),
            "README.md documents an unknown alert #{a}"
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
                    ["target", "server"].contains(level),
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
    // Every recorded or constant series an alert reads is defined here.
    let series = regex::Regex::new(r"\b(?:inferprobe|target|server):[a-z0-9_:]+").unwrap();
    for (file, rule) in all_rules() {
        for m in series.find_iter(&rule.expr) {
            assert!(
                recorded.contains(m.as_str()),
                "{file}: {:?} reads undefined {}",
                rule.alert.or(rule.record),
                m.as_str()
            );
        }
    }
}

/// GitHub's anchors for the Markdown headings of `text`.
fn heading_anchors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn heading_anchors_follow_github() {
    let a = heading_anchors("## Runbook\n### Runbook: InferprobeProbesFailing\ntext # not\n");
    assert_eq!(
        a,
        BTreeSet::from([
            "runbook".to_string(),
            "runbook-inferprobeprobesfailing".to_string()
        ])
    );
}
