//! `inferprobe gate` against pairs of built-in simulators: a 20% slower candidate fails, an
//! equal one passes, a small change and an equal-but-noisy pair are never failed, errors are
//! judged in points with score intervals, file baselines (an earlier gate, a calibrate result),
//! the spending cap, usage errors, and the JUnit report checked strictly against the
//! Jenkins/Ant JUnit schema's rules (and with xmllint where it is installed).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use inferprobe::cli::{Cli, Command as Sub};
use inferprobe::gate::{self, GateFile, Progress, Verdict};
use inferprobe::sim::SimHandle;

const BIN: &str = env!("CARGO_BIN_EXE_inferprobe");

/// The tests judge latencies a few percent apart: one at a time, so that they do not add each
/// other's scheduling delays to the tails they measure.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A simulator answering after `ttft`, with five quick tokens (about `ttft` + 25 ms a probe).
async fn sim_ttft(ttft: &str, seed: u64) -> SimHandle {
    common::sim(&format!(
        "{{ttft: {ttft}, itl: 5ms, output_tokens: 5, batch_itl_factor: 0.0, seed: {seed}}}"
    ))
    .await
}

fn v1(sim: &SimHandle) -> String {
    format!("{}/v1", sim.base_url())
}

/// Runs the binary with `args` (blocking work off the runtime that serves the simulators).
async fn bin(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(BIN).args(&args).output().expect("binary runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}

/// `gate --url <candidate> --dialect openai-chat --model m` plus `extra`.
fn gate_argv(candidate: &SimHandle, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "gate",
        "--url",
        &v1(candidate),
        "--dialect",
        "openai-chat",
        "--model",
        "sim-llm",
        "--max-tokens",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Runs the gate in-process (no progress output) and returns its result.
async fn gate_lib(argv: Vec<String>) -> GateFile {
    let mut full = vec!["inferprobe".to_string()];
    full.extend(argv);
    let cli = Cli::try_parse_from(full).expect("flags parse");
    let Sub::Gate(args) = cli.command else {
        panic!("not the gate command");
    };
    let setup = gate::setup(&args).await.expect("setup");
    gate::gate(&setup, Progress::quiet())
        .await
        .expect("gate runs")
}

fn row<'a>(f: &'a GateFile, metric: &str) -> &'a gate::Evaluation {
    f.metrics
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} row in {:#?}", f.metrics))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_300_vs_360_fails_with_a_15_percent_limit_naming_ttft() {
    let _serial = SERIAL.lock().await;
    let t0 = Instant::now();
    let (cand, reference) = (sim_ttft("360ms", 1).await, sim_ttft("300ms", 2).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("gate.xml");
    let (code, out, err) = bin(gate_argv(
        &cand,
        &[
            "--reference-url",
            &v1(&reference),
            "--probes",
            "30",
            "--concurrency",
            "4",
            "--max-regression",
            "ttft_p95=15%",
            "--junit",
            junit.to_str().expect("utf-8"),
        ],
    ))
    .await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let fail_line = out
        .lines()
        .find(|l| l.starts_with("ttft_p95"))
        .unwrap_or_else(|| panic!("no ttft_p95 row:\n{out}"));
    assert!(fail_line.contains("FAIL"), "{out}");
    assert!(
        out.contains("verdict     FAIL (exit 1): regression beyond the limit: ttft_p95"),
        "{out}"
    );
    assert!(out.contains("reference"), "{out}");
    // Progress goes to a terminal only.
    assert!(!err.contains("gate ["), "{err}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    let doc = check_junit(&xml);
    let case = &doc.children[0].children[1];
    assert_eq!(case.attrs["name"], "ttft_p95");
    assert_eq!(case.children[0].name, "failure");
    assert_eq!(case.children[0].attrs["type"], "regression");
    xmllint_validate(&xml);
    eprintln!("took {:?}", t0.elapsed());
    cand.shutdown().await;
    reference.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_300_vs_300_passes() {
    let _serial = SERIAL.lock().await;
    let (cand, reference) = (sim_ttft("300ms", 3).await, sim_ttft("300ms", 4).await);
    let (code, out, err) = bin(gate_argv(
        &cand,
        &[
            "--reference-url",
            &v1(&reference),
            "--probes",
            "30",
            "--concurrency",
            "4",
            "--max-regression",
            "ttft_p95=15%",
            "--json",
        ],
    ))
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json on stdout");
    assert_eq!(v["format"], "inferprobe-gate/1");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["metrics"][0]["metric"], "ttft_p95");
    let (lo, hi) = (
        v["metrics"][0]["ci_low"].as_f64().expect("ci"),
        v["metrics"][0]["ci_high"].as_f64().expect("ci"),
    );
    assert!(lo <= hi && hi <= 0.15 && lo > -0.15, "{v:#}");
    // --json leaves the raw probes to --output.
    assert!(v.get("samples").is_none());
    cand.shutdown().await;
    reference.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_300_vs_310_with_30_probes_is_not_failed() {
    let _serial = SERIAL.lock().await;
    let (cand, reference) = (sim_ttft("310ms", 5).await, sim_ttft("300ms", 6).await);
    let (code, out, err) = bin(gate_argv(
        &cand,
        &[
            "--reference-url",
            &v1(&reference),
            "--probes",
            "30",
            "--concurrency",
            "4",
            "--max-regression",
            "ttft_p95=15%",
        ],
    ))
    .await;
    assert!(code == 0 || code == 2, "exit {code}\n{out}\n{err}");
    assert!(!out.contains("FAIL"), "{out}");
    cand.shutdown().await;
    reference.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equal_but_noisy_pair_is_not_failed() {
    let _serial = SERIAL.lock().await;
    // Both long-tailed (median 60 ms, p99 400 ms), different seeds: their p95s differ by chance.
    let noisy = |seed: u64| {
        format!(
            "{{ttft: {{dist: lognormal, median: 60ms, p99: 400ms}}, itl: 2ms, output_tokens: 5, \
             seed: {seed}}}"
        )
    };
    let (cand, reference) = (common::sim(&noisy(7)).await, common::sim(&noisy(8)).await);
    let f = gate_lib(gate_argv(
        &cand,
        &[
            "--reference-url",
            &v1(&reference),
            "--probes",
            "60",
            "--concurrency",
            "4",
            "--max-regression",
            "ttft_p95=15%",
            "--max-regression",
            "ttft_p50=15%",
        ],
    ))
    .await;
    for r in &f.metrics {
        assert_ne!(r.verdict, Verdict::Fail, "{r:#?}");
        let (lo, hi) = (r.ci_low.expect("ci"), r.ci_high.expect("ci"));
        assert!(lo < hi, "a noisy pair has a wide interval: {r:#?}");
        if r.verdict == Verdict::Inconclusive {
            assert!(r.needed_probes.expect("needed") > 60, "{r:#?}");
            assert!(r
                .note
                .as_deref()
                .unwrap_or("")
                .contains("not enough evidence"));
        }
    }
    assert_ne!(f.exit_code, 1);
    assert_eq!(f.samples.candidate.len(), 60);
    assert_eq!(f.samples.reference.len(), 60);
    cand.shutdown().await;
    reference.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_with_1_percent_errors_is_judged_in_points() {
    let _serial = SERIAL.lock().await;
    let cand =
        common::sim("{ttft: 20ms, itl: 2ms, output_tokens: 5, seed: 11, faults: {http_5xx: 0.01}}")
            .await;
    let reference = common::sim("{ttft: 20ms, itl: 2ms, output_tokens: 5, seed: 12}").await;
    let argv = |limit: &str| {
        gate_argv(
            &cand,
            &[
                "--reference-url",
                &v1(&reference),
                "--probes",
                "80",
                "--concurrency",
                "4",
                "--max-regression",
                limit,
            ],
        )
    };
    // 80 probes cannot show that 1% errors stay within 0.5 points of the reference, nor
    // beyond: not enough evidence, with the size that would settle it.
    let tight = gate_lib(argv("error_ratio=0.5%")).await;
    let r = row(&tight, "error_ratio");
    assert_eq!(r.verdict, Verdict::Inconclusive, "{r:#?}");
    assert_eq!(tight.exit_code, 2);
    assert!(r.needed_probes.expect("needed") > 80, "{r:#?}");
    assert_eq!(r.n_candidate, 80);
    assert_eq!(r.method, "Newcombe hybrid score interval of the difference");
    // Within 10 points it demonstrably is.
    let loose = gate_lib(argv("error_ratio=10%")).await;
    assert_eq!(row(&loose, "error_ratio").verdict, Verdict::Pass);
    assert_eq!(loose.exit_code, 0);
    cand.shutdown().await;

    // A third of the probes failing is beyond 2 points whatever the noise.
    let broken =
        common::sim("{ttft: 20ms, itl: 2ms, output_tokens: 5, seed: 13, faults: {http_5xx: 0.33}}")
            .await;
    let f = gate_lib(gate_argv(
        &broken,
        &[
            "--reference-url",
            &v1(&reference),
            "--probes",
            "60",
            "--concurrency",
            "4",
            "--max-regression",
            "error_ratio=2%",
        ],
    ))
    .await;
    let r = row(&f, "error_ratio");
    assert_eq!(r.verdict, Verdict::Fail, "{r:#?}");
    assert!(r.ci_low.expect("ci") > 0.02);
    assert_eq!(f.exit_code, 1);
    broken.shutdown().await;
    reference.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_gate_and_a_calibrate_result_serve_as_baselines() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let recorded = dir.path().join("baseline.json");
    let fast = sim_ttft("100ms", 21).await;
    // No baseline: the probes are recorded (exit 0) for the next run.
    let (code, out, err) = bin(gate_argv(
        &fast,
        &[
            "--probes",
            "30",
            "--concurrency",
            "4",
            "--output",
            recorded.to_str().expect("utf-8"),
        ],
    ))
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("RECORDED"), "{out}");
    let text = std::fs::read_to_string(&recorded).expect("written");
    let file: GateFile = serde_json::from_str(&text).expect("parses back");
    assert_eq!(file.samples.candidate.len(), 30);
    assert!(file.samples.candidate.iter().all(|p| p.is_success()));
    fast.shutdown().await;

    let slow = sim_ttft("120ms", 22).await;
    let against_file = gate_lib(gate_argv(
        &slow,
        &[
            "--baseline",
            recorded.to_str().expect("utf-8"),
            "--probes",
            "30",
            "--concurrency",
            "4",
            "--max-regression",
            "ttft_p50=10%",
            "--max-regression",
            "cost_per_request=10%",
        ],
    ))
    .await;
    let r = row(&against_file, "ttft_p50");
    assert_eq!(r.verdict, Verdict::Fail, "{r:#?}");
    assert!((r.change.expect("change") - 0.2).abs() < 0.08, "{r:#?}");
    assert_eq!(
        against_file.baseline.as_ref().expect("baseline").kind,
        "gate"
    );
    // Neither side is priced: the cost row does not decide.
    assert_eq!(
        row(&against_file, "cost_per_request").verdict,
        Verdict::Skipped
    );
    assert_eq!(against_file.exit_code, 1);

    // A calibrate result: its lowest stage's summary values, taken as exact.
    let cal = dir.path().join("calibrate.json");
    std::fs::write(
        &cal,
        r#"{"tool":"inferprobe","version":"0.1.0","target":"t","model":"sim-llm",
        "dialect":"openai-chat","mode":"concurrency","knee":null,
        "slo":{"ttft_p95_seconds":0.5,"itl_p95_seconds":0.05,"error_rate":0.01},
        "stages":[{"load":1,"requests":200,"errors":0,"duration_seconds":30,
          "ttft_seconds":{"p50":0.100,"p95":0.102,"p99":0.105},
          "itl_seconds":{"p50":0.005,"p95":0.006,"p99":0.007},
          "e2e_seconds":{"p50":0.125,"p95":0.128,"p99":0.130},
          "output_tokens_per_second":40}]}"#,
    )
    .expect("write");
    let f = gate_lib(gate_argv(
        &slow,
        &[
            "--baseline",
            cal.to_str().expect("utf-8"),
            "--probes",
            "30",
            "--concurrency",
            "4",
            "--max-regression",
            "ttft_p95=15%",
            "--max-regression",
            "output_rate=-10%",
        ],
    ))
    .await;
    let r = row(&f, "ttft_p95");
    assert_eq!(r.verdict, Verdict::Fail, "{r:#?}");
    assert_eq!(r.baseline, Some(0.102));
    assert!(r.method.contains("against the baseline value"));
    assert_eq!(row(&f, "output_rate").verdict, Verdict::Skipped);
    assert_eq!(f.baseline.as_ref().expect("baseline").kind, "load-test");
    assert_eq!(f.exit_code, 1);
    slow.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spending_cap_stops_the_run_with_exit_2() {
    let _serial = SERIAL.lock().await;
    let cand = sim_ttft("10ms", 31).await;
    let reference = sim_ttft("10ms", 32).await;
    // Prompt ~20 tokens + 5 output tokens at $1000 per million: a few cents per probe.
    let (code, out, err) = bin(gate_argv(
        &cand,
        &[
            "--reference-url",
            &v1(&reference),
            "--probes",
            "50",
            "--input-price",
            "1000",
            "--output-price",
            "1000",
            "--max-cost-usd",
            "0.2",
            "--max-regression",
            "ttft_p95=50%",
        ],
    ))
    .await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(out.contains("stopped     spending cap"), "{out}");
    let probes = cand.ground_truth().len() + reference.ground_truth().len();
    assert!((2..100).contains(&probes), "sent {probes}");
    let spent: f64 = out
        .lines()
        .find_map(|l| l.split(", $").nth(1)?.strip_suffix(" spent")?.parse().ok())
        .unwrap_or_else(|| panic!("no spend in\n{out}"));
    assert!(spent > 0.0 && spent <= 0.2, "{spent}");
    cand.shutdown().await;
    reference.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_naming_the_problem() {
    let _serial = SERIAL.lock().await;
    let cand = sim_ttft("10ms", 41).await;
    let cases: [(&[&str], &str); 4] = [
        (&["--max-regression", "ttft_p42=15%"], "unknown metric"),
        (&["--probes", "5"], "nothing to compare with"),
        (
            &["--baseline", "/nonexistent/gate.json"],
            "--baseline /nonexistent/gate.json: cannot read",
        ),
        (
            &[
                "--reference-url",
                "http://127.0.0.1:1/v1",
                "--max-cost-usd",
                "1",
            ],
            "has no price",
        ),
    ];
    for (extra, needle) in cases {
        let (code, out, err) = bin(gate_argv(&cand, extra)).await;
        assert_eq!(code, 2, "{extra:?}\n{out}\n{err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    // A criteria file is read and checked like the flags.
    let dir = tempfile::tempdir().expect("tempdir");
    let criteria = dir.path().join("gate.yml");
    std::fs::write(
        &criteria,
        "max_regression:\n  ttft_p95: 15%\n  error_ratio: 0.5\n",
    )
    .expect("write");
    let path = criteria.to_str().expect("utf-8");
    let (code, _, err) = bin(gate_argv(&cand, &["--criteria", path, "--probes", "5"])).await;
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("--criteria {path}")) && err.contains("max_regression.error_ratio"),
        "{err}"
    );
    assert!(cand.ground_truth().is_empty(), "nothing was sent");
    cand.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_targets_are_judged_per_scenario_with_correctness_checks() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gate.yml");
    std::fs::write(
        &config,
        "simulator:\n  ttft: 20ms\n  itl: 1ms\n  output_tokens: 4\n\
         scenarios:\n  plain:\n    prompt: Say something.\n    max_tokens: 8\n\
         \x20 strict:\n    prompt: Say zebra.\n    max_tokens: 8\n    checks:\n      must_contain: [\"zebra-zebra-zebra\"]\n\
         targets:\n  - {name: cand, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [plain, strict]}\n\
         \x20 - {name: prod, dialect: openai-chat, base_url: simulator, model: sim-llm}\n",
    )
    .expect("write config");
    let f = gate_lib(
        [
            "gate",
            "--config.file",
            config.to_str().expect("utf-8"),
            "--target",
            "cand",
            "--reference-target",
            "prod",
            "--probes",
            "20",
            "--concurrency",
            "4",
            "--max-check-failures",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
    .await;
    let rows: Vec<(&str, &str, Verdict)> = f
        .metrics
        .iter()
        .map(|r| (r.scenario.as_str(), r.metric.as_str(), r.verdict))
        .collect();
    assert_eq!(
        rows,
        [
            ("plain", "check_failures", Verdict::Pass),
            ("strict", "check_failures", Verdict::Fail)
        ]
    );
    assert_eq!(f.metrics[1].candidate, Some(10.0));
    assert_eq!(f.exit_code, 1);
    // Scenarios in turn, the same one to both sides of a pair.
    let cand: Vec<&str> = f
        .samples
        .candidate
        .iter()
        .map(|p| p.scenario.as_str())
        .collect();
    let refs: Vec<&str> = f
        .samples
        .reference
        .iter()
        .map(|p| p.scenario.as_str())
        .collect();
    assert_eq!(cand, refs);
    assert_eq!(&cand[..4], ["plain", "strict", "plain", "strict"]);
    assert_eq!(f.candidate.target, "cand");
    assert!(f
        .baseline
        .as_ref()
        .expect("baseline")
        .source
        .starts_with("prod "));
    let table = gate::report::table(&f);
    assert!(table.contains("strict/check_failures"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_bounds_the_run() {
    let _serial = SERIAL.lock().await;
    let (cand, reference) = (sim_ttft("40ms", 51).await, sim_ttft("40ms", 52).await);
    let started = Instant::now();
    let f = gate_lib(gate_argv(
        &cand,
        &["--reference-url", &v1(&reference), "--duration", "1500ms"],
    ))
    .await;
    let took = started.elapsed();
    // Probes of ~65 ms one after another: about 23 in 1.5 s, split evenly between the sides.
    let (c, r) = (f.samples.candidate.len(), f.samples.reference.len());
    assert!(c >= 3 && c.abs_diff(r) <= 1, "{c} vs {r}");
    assert!(took.as_secs_f64() < 10.0, "{took:?}");
    assert!(f.duration_seconds >= 1.5 && f.duration_seconds < 10.0);
    cand.shutdown().await;
    reference.shutdown().await;
}

#[test]
fn junit_of_every_verdict_follows_the_schema() {
    let mut rows = Vec::new();
    for (metric, verdict) in [
        ("ttft_p95", Verdict::Pass),
        ("e2e_p95", Verdict::Fail),
        ("error_ratio", Verdict::Inconclusive),
        ("itl_p95", Verdict::Skipped),
    ] {
        rows.push(gate::Evaluation {
            metric: metric.into(),
            scenario: "chat <&> \"quoted\"".into(),
            unit: "seconds".into(),
            limit: "+15%".into(),
            baseline: Some(0.3),
            candidate: Some(0.36),
            change: Some(0.2),
            change_kind: "relative".into(),
            ci_low: Some(0.18),
            ci_high: Some(0.22),
            verdict,
            method: "bootstrap".into(),
            n_candidate: 30,
            n_baseline: Some(30),
            needed_probes: None,
            note: Some("a note with ]]> and \u{1} inside".into()),
        });
    }
    let file = GateFile {
        format: "inferprobe-gate/1".into(),
        version: "0".into(),
        verdict: "fail".into(),
        exit_code: 1,
        candidate: gate::baseline::Endpoint {
            target: "t&t".into(),
            model: "m".into(),
            dialect: "openai-chat".into(),
            url: "http://127.0.0.1:1/v1".into(),
        },
        baseline: None,
        stopped: Some("spending cap".into()),
        spent_usd: None,
        duration_seconds: 12.5,
        metrics: rows,
        samples: Default::default(),
    };
    let xml = gate::report::junit(&file, "2026-01-02T03:04:05");
    let doc = check_junit(&xml);
    let suite = &doc.children[0];
    assert_eq!(
        (
            &suite.attrs["tests"][..],
            &suite.attrs["failures"][..],
            &suite.attrs["errors"][..],
            &suite.attrs["skipped"][..]
        ),
        ("5", "1", "2", "1")
    );
    assert_eq!(suite.attrs["name"], "inferprobe gate: t&t");
    let names: Vec<&str> = suite.children[1..]
        .iter()
        .map(|c| c.attrs["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["ttft_p95", "e2e_p95", "error_ratio", "itl_p95", "run"]
    );
    assert_eq!(
        suite.children[1].attrs["classname"],
        "inferprobe.gate.chat <&> \"quoted\""
    );
    assert_eq!(suite.children[3].children[0].attrs["type"], "inconclusive");
    assert_eq!(suite.children[4].children[0].name, "skipped");
    xmllint_validate(&xml);
}

// ---------------------------------------------------------------------------------------------
// A small, strict XML reader and the JUnit schema's rules.

#[derive(Debug)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Element>,
    text: String,
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find(';').expect("unterminated entity") + i;
        out.push(match &rest[i + 1..j] {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            other => panic!("unknown entity &{other};"),
        });
        rest = &rest[j + 1..];
    }
    assert!(!rest.contains('<'), "raw < in text");
    out.push_str(rest);
    out
}

/// Parses a document of elements, attributes in double quotes, text and the XML declaration;
/// anything else (comments, CDATA, unbalanced tags, bad names, duplicate attributes) panics.
fn parse_xml(xml: &str) -> Element {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("XML declaration first");
    for c in body.chars() {
        let ok = matches!(c, '\t' | '\n' | '\r') || (c as u32 >= 0x20 && c != '\u{FFFE}');
        assert!(ok, "character {c:?} is not allowed in XML 1.0");
    }
    let mut stack: Vec<Element> = vec![Element {
        name: "#document".into(),
        attrs: BTreeMap::new(),
        children: Vec::new(),
        text: String::new(),
    }];
    let mut rest = body;
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = unescape(&rest[..lt]);
        stack.last_mut().expect("open element").text.push_str(&text);
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        let gt = rest.find('>').expect("unterminated tag");
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        assert!(
            !tag.starts_with('!') && !tag.starts_with('?'),
            "unexpected <{tag}>"
        );
        if let Some(name) = tag.strip_prefix('/') {
            let done = stack.pop().expect("element");
            assert_eq!(done.name, name, "mismatched close tag");
            stack.last_mut().expect("parent").children.push(done);
            continue;
        }
        let (tag, closed) = match tag.strip_suffix('/') {
            Some(t) => (t, true),
            None => (tag, false),
        };
        let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
        let name = &tag[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "bad element name {name:?}"
        );
        let mut attrs = BTreeMap::new();
        let mut a = tag[name_end..].trim_start();
        while !a.is_empty() {
            let eq = a.find("=\"").expect("attribute as name=\"value\"");
            let key = &a[..eq];
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'),
                "{key:?}"
            );
            let end = a[eq + 2..].find('"').expect("closing quote") + eq + 2;
            let value = unescape(&a[eq + 2..end]);
            assert!(
                attrs.insert(key.to_string(), value).is_none(),
                "duplicate {key}"
            );
            a = a[end + 1..].trim_start();
        }
        let el = Element {
            name: name.into(),
            attrs,
            children: Vec::new(),
            text: String::new(),
        };
        if closed {
            stack.last_mut().expect("parent").children.push(el);
        } else {
            stack.push(el);
        }
    }
    let mut doc = stack.pop().expect("document");
    assert!(stack.is_empty(), "unclosed elements");
    assert_eq!(doc.children.len(), 1, "one root element");
    assert!(doc.text.trim().is_empty());
    doc.children.pop().expect("root")
}

fn check_attrs(el: &Element, required: &[&str], optional: &[&str]) {
    for r in required {
        assert!(el.attrs.contains_key(*r), "<{}> lacks {r}", el.name);
    }
    for k in el.attrs.keys() {
        assert!(
            required.contains(&k.as_str()) || optional.contains(&k.as_str()),
            "<{}> may not carry {k}",
            el.name
        );
    }
}

fn int_attr(el: &Element, k: &str) -> usize {
    el.attrs[k]
        .parse()
        .unwrap_or_else(|_| panic!("<{}> {k} is not a count", el.name))
}

fn decimal_attr(el: &Element, k: &str) {
    let v = &el.attrs[k];
    assert!(
        v.parse::<f64>().is_ok_and(|x| x >= 0.0) && !v.contains(['e', 'E']),
        "<{}> {k}={v:?} is not a decimal",
        el.name
    );
}

/// Checks the Jenkins/Ant JUnit schema's rules (element order, required and allowed attributes)
/// plus what CI systems rely on: counts that are integers agreeing with the test cases, times
/// that are decimals, ISO 8601 timestamps. Returns the root.
fn check_junit(xml: &str) -> Element {
    let root = parse_xml(xml);
    assert_eq!(root.name, "testsuites");
    check_attrs(
        &root,
        &[],
        &["name", "time", "tests", "failures", "disabled", "errors"],
    );
    assert!(!root.children.is_empty());
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for suite in &root.children {
        assert_eq!(suite.name, "testsuite");
        check_attrs(
            suite,
            &["name", "tests"],
            &[
                "failures",
                "errors",
                "time",
                "disabled",
                "skipped",
                "timestamp",
                "hostname",
                "id",
                "package",
            ],
        );
        let mut kids = suite.children.iter().peekable();
        if kids.peek().is_some_and(|k| k.name == "properties") {
            let props = kids.next().expect("properties");
            check_attrs(props, &[], &[]);
            assert!(!props.children.is_empty(), "<properties> needs a property");
            for p in &props.children {
                assert_eq!(p.name, "property");
                check_attrs(p, &["name", "value"], &[]);
                assert!(p.children.is_empty());
            }
        }
        let (mut n, mut f, mut e, mut s) = (0, 0, 0, 0);
        for case in kids {
            assert_eq!(
                case.name, "testcase",
                "only test cases after the properties"
            );
            check_attrs(
                case,
                &["name"],
                &["assertions", "time", "classname", "status"],
            );
            if case.attrs.contains_key("time") {
                decimal_attr(case, "time");
            }
            n += 1;
            // skipped?, error*, failure*: in that order.
            let order = ["skipped", "error", "failure", "system-out", "system-err"];
            let mut last = 0;
            for c in &case.children {
                let pos = order
                    .iter()
                    .position(|o| *o == c.name)
                    .expect("known child");
                assert!(pos >= last, "<{}> out of order", c.name);
                last = pos;
                match c.name.as_str() {
                    "skipped" => {
                        assert!(c.attrs.is_empty() && c.children.is_empty(), "text only");
                        s += 1;
                    }
                    "error" | "failure" => {
                        check_attrs(c, &[], &["type", "message"]);
                        assert!(c.attrs.contains_key("message") && c.attrs.contains_key("type"));
                        if c.name == "error" {
                            e += 1;
                        } else {
                            f += 1;
                        }
                    }
                    _ => {}
                }
            }
            assert!(
                case.children.iter().filter(|c| c.name == "skipped").count() <= 1,
                "at most one <skipped>"
            );
        }
        assert_eq!(int_attr(suite, "tests"), n);
        assert_eq!(int_attr(suite, "failures"), f);
        assert_eq!(int_attr(suite, "errors"), e);
        assert_eq!(int_attr(suite, "skipped"), s);
        decimal_attr(suite, "time");
        let ts = &suite.attrs["timestamp"];
        assert!(
            ts.len() == 19 && &ts[4..5] == "-" && &ts[10..11] == "T" && &ts[13..14] == ":",
            "timestamp {ts:?}"
        );
        tests += n;
        failures += f;
        errors += e;
    }
    assert_eq!(int_attr(&root, "tests"), tests);
    assert_eq!(int_attr(&root, "failures"), failures);
    assert_eq!(int_attr(&root, "errors"), errors);
    decimal_attr(&root, "time");
    root
}

/// Validates against `tests/fixtures/junit/jenkins-junit.xsd` with xmllint when it is installed.
fn xmllint_validate(xml: &str) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit/jenkins-junit.xsd");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).expect("write");
    let out = match Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            // CI installs it (libxml2-utils); elsewhere the strict reader above still ran.
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true: xmllint is required to validate the JUnit report: {e}");
            }
            eprintln!("xmllint not installed; schema validation skipped");
            return;
        }
    };
    assert!(
        out.status.success(),
        "xmllint: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tool journey as each probe: a candidate whose tool-result step fails on every run is failed
/// on the error ratio; the same endpoint against itself passes, with task time (E2E) judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_are_gated_as_whole_tasks() {
    let _serial = SERIAL.lock().await;
    let yaml = r#"
simulator: {ttft: 20ms, itl: 2ms, output_tokens: 6, seed: 9}
journeys:
  weather:
    tools:
      get_weather:
        parameters: {type: object, properties: {city: {type: string}}, required: [city]}
    steps:
      - {name: ask, prompt: Weather?, expect_tool: get_weather, tool_result: {temp_c: 21}}
      - {name: answer, checks: {must_contain: ["21"]}}
prices:
  sim-llm: {input_per_million: 1.0, output_per_million: 2.0}
targets:
  - {name: good, dialect: openai-chat, base_url: simulator, model: sim-llm, journeys: [weather]}
  - {name: twin, dialect: anthropic-messages, base_url: simulator, model: sim-llm, journeys: [weather]}
  - name: broken
    dialect: openai-chat
    base_url: simulator
    model: sim-llm
    journeys: [weather]
    headers: {x-sim-fault: http_5xx, x-sim-fault-on: tool-result}
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gate.yml");
    std::fs::write(&path, yaml).expect("write");
    let path = path.to_str().expect("utf-8").to_string();
    let args = |target: &str, reference: &str, limits: &[&str]| {
        let mut v: Vec<String> = [
            "gate",
            "--config.file",
            &path,
            "--target",
            target,
            "--journey",
            "weather",
            "--reference-target",
            reference,
            "--probes",
            "24",
            "--concurrency",
            "2",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for l in limits {
            v.extend(["--max-regression".to_string(), l.to_string()]);
        }
        v
    };
    let (code, out, err) = bin(args("broken", "good", &["error_ratio=5%"])).await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let row = &v["metrics"][0];
    assert_eq!(row["metric"], "error_ratio");
    assert_eq!(row["scenario"], "weather", "rows are named by the journey");
    assert_eq!(row["verdict"], "fail");
    assert_eq!(row["candidate"], 1.0, "every run fails at its second step");

    let (code, out, err) = bin(args(
        "good",
        "twin",
        &["error_ratio=50%", "e2e_p95=200%", "cost_per_request=100%"],
    ))
    .await;
    assert_ne!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows = v["metrics"].as_array().expect("rows");
    let e2e = rows
        .iter()
        .find(|r| r["metric"] == "e2e_p95")
        .expect("task time judged");
    // Task time of two model calls: both TTFTs (20 ms) and the tokens.
    assert!(e2e["candidate"].as_f64().expect("value") > 0.04, "{e2e}");
    assert_eq!(e2e["n_candidate"], 24);
}
