//! `inferprobe calibrate` against the built-in simulator: the knee of a capacity-limited
//! endpoint, open-loop stages, stopping at a breach, the output files and the production guard.

mod common;

use std::path::Path;
use std::process::Command;

use clap::Parser;
use inferprobe::calibrate::{self, CalibrateResult, Calibration, Progress};
use inferprobe::cli::{Cli, Command as Sub};
use inferprobe::sim::SimHandle;
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_inferprobe");

/// Parses `inferprobe calibrate ARGS --url <sim>/v1 ...` and runs it in-process.
async fn run_calibrate(sim: &SimHandle, args: &[&str], out: &Path) -> Calibration {
    let url = format!("{}/v1", sim.base_url());
    let mut argv = vec![
        "inferprobe",
        "calibrate",
        "--url",
        &url,
        "--dialect",
        "openai-chat",
        "--model",
        "sim-llm",
        "--out",
        out.to_str().expect("utf-8 temp path"),
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    let Sub::Calibrate(args) = cli.command else {
        panic!("not the calibrate command");
    };
    let (plan, sim) = calibrate::setup(&args).await.expect("plan");
    assert!(sim.is_none());
    let (_tx, rx) = watch::channel(false);
    calibrate::calibrate(&plan, rx, Progress::quiet())
        .await
        .expect("calibration runs")
}

fn p95_ttft(r: &CalibrateResult, i: usize) -> f64 {
    r.stages[i].ttft_seconds.p95.expect("a p95 TTFT")
}

/// A minimal well-formedness check: every element opened is closed in order.
fn assert_balanced_xml(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').expect("unterminated tag") + i;
        let tag = &rest[i + 1..j];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("tag name");
            stack.push(name.to_string());
        }
        rest = &rest[j + 1..];
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    assert!(!svg.contains("& "), "unescaped ampersand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knee_is_at_the_number_of_decode_slots() {
    // Four slots; a request holds one for 200 ms + 19 × 5 ms = 295 ms. Up to 4 in flight nobody
    // waits; at 8 each request waits about one service time, at 16 about three. A TTFT of
    // 200 ms leaves 100 ms of scheduling noise before a stage counts as queueing on a busy
    // machine.
    let sim = common::sim(
        "{slots: 4, ttft: 200ms, itl: 5ms, output_tokens: 20, batch_itl_factor: 0.0, seed: 1}",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let cal = run_calibrate(
        &sim,
        &[
            "--stages",
            "1,2,4,8,16",
            "--hold",
            "1500ms",
            "--warmup",
            "300ms",
            "--slo.ttft-p95",
            "10s",
            "--slo.itl-p95",
            "1s",
        ],
        &out,
    )
    .await;
    let r = &cal.result;
    let loads: Vec<f64> = r.stages.iter().map(|s| s.load).collect();
    assert_eq!(loads, vec![1.0, 2.0, 4.0, 8.0, 16.0]);
    for s in &r.stages {
        assert_eq!(s.errors, 0, "stage {}", s.load);
        assert!(s.requests > 0, "stage {}", s.load);
        assert!(!s.breach, "stage {}", s.load);
        assert!(s.duration_seconds >= 1.5);
        // Each request holds a slot for 295 ms: four slots cannot make more than
        // 4 × 20 / 0.295 ≈ 271 tokens per second.
        assert!(s.output_tokens_per_second < 275.0, "{s:?}");
    }
    assert_eq!(r.knee, Some(4.0), "stages: {:#?}", r.stages);
    assert_eq!(cal.knee.knee, Some(2));
    assert_eq!(cal.knee.queueing, Some(3));
    assert_eq!(cal.knee.first_breach, None);
    assert!(!cal.stopped_at_breach && !cal.interrupted);
    let base = p95_ttft(r, 0);
    assert!(base >= 0.2, "the simulator's TTFT is 200 ms, got {base}");
    assert!(p95_ttft(r, 3) > 2.0 * base, "{:#?}", r.stages);
    assert!(p95_ttft(r, 4) > 2.0 * base && p95_ttft(r, 4) > p95_ttft(r, 3));
    // More workers than slots add no throughput beyond what four slots give.
    assert!(r.stages[2].output_tokens_per_second > 2.0 * r.stages[0].output_tokens_per_second);
    assert_eq!(r.mode, "concurrency");
    assert_eq!(
        (r.tool.as_str(), r.target.as_str()),
        ("inferprobe", "adhoc")
    );
    assert_eq!(
        (r.model.as_str(), r.dialect.as_str()),
        ("sim-llm", "openai-chat")
    );
    assert_eq!(r.slo.ttft_p95_seconds, 10.0);
    assert_eq!(r.slo.itl_p95_seconds, 1.0);
    assert_eq!(r.slo.error_rate, 0.01);

    let (json, svg) = calibrate::write_outputs(&cal, &out).expect("outputs written");
    assert_eq!(json, out.join("calibrate.json"));
    let text = std::fs::read_to_string(&json).expect("json");
    let back: CalibrateResult = serde_json::from_str(&text).expect("parses back");
    // Decimal text round-trips floats to within an ulp, not always bit for bit.
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(1.0),
        (a, b) => a == b,
    };
    assert_eq!((&back.mode, back.knee, back.slo), (&r.mode, r.knee, r.slo));
    assert_eq!(back.stages.len(), r.stages.len());
    for (b, s) in back.stages.iter().zip(&r.stages) {
        assert_eq!(
            (b.load, b.requests, b.errors, b.breach),
            (s.load, s.requests, s.errors, s.breach)
        );
        assert!(close(Some(b.duration_seconds), Some(s.duration_seconds)));
        assert!(close(
            Some(b.output_tokens_per_second),
            Some(s.output_tokens_per_second)
        ));
        for (x, y) in [
            (b.ttft_seconds, s.ttft_seconds),
            (b.itl_seconds, s.itl_seconds),
            (b.e2e_seconds, s.e2e_seconds),
        ] {
            assert!(close(x.p50, y.p50) && close(x.p95, y.p95) && close(x.p99, y.p99));
        }
    }
    let raw: serde_json::Value = serde_json::from_str(&text).expect("json value");
    assert_eq!(raw["knee"], serde_json::json!(4.0));
    assert!(raw["stages"][0]["ttft_seconds"]["p99"].is_number());
    let svg = std::fs::read_to_string(svg).expect("svg");
    assert!(svg.starts_with("<svg "), "{}", &svg[..40]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("knee: 4 concurrent"));
    assert!(svg.contains("Saturation curve: adhoc (sim-llm)"));
    assert_balanced_xml(&svg);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_stages_launch_on_schedule() {
    let sim = common::sim("{ttft: 20ms, itl: 2ms, output_tokens: 5}").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cal = run_calibrate(
        &sim,
        &["--rates", "5,10", "--hold", "1s", "--warmup", "200ms"],
        dir.path(),
    )
    .await;
    let r = &cal.result;
    assert_eq!(r.mode, "rate");
    // Launches every 1/rate from 0 s; those in the first 200 ms are warm-up.
    let counts: Vec<(f64, u64, u64)> = r
        .stages
        .iter()
        .map(|s| (s.load, s.requests, s.errors))
        .collect();
    assert_eq!(counts, vec![(5.0, 5, 0), (10.0, 10, 0)]);
    assert_eq!(r.knee, None, "an unlimited simulator has no knee");
    // 5 tokens × 5 requests over at least the 1 s hold.
    assert!(r.stages[0].output_tokens_per_second <= 25.0);
    assert!(r.stages[0].output_tokens_per_second > 15.0);
    // Every request was sent to the simulator: warm-up 1 + 2 requests, measured 5 + 10.
    assert_eq!(sim.ground_truth().len(), 18);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ramp_stops_at_the_first_breach() {
    // One slot held 50 ms + 19 × 10 ms = 240 ms: at two workers each request waits ~240 ms.
    let sim = common::sim("{slots: 1, ttft: 50ms, itl: 10ms, output_tokens: 20}").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cal = run_calibrate(
        &sim,
        &[
            "--stages",
            "1,2,4",
            "--hold",
            "1s",
            "--warmup",
            "250ms",
            "--slo.ttft-p95",
            "150ms",
        ],
        dir.path(),
    )
    .await;
    let r = &cal.result;
    let breaches: Vec<(f64, bool)> = r.stages.iter().map(|s| (s.load, s.breach)).collect();
    assert_eq!(breaches, vec![(1.0, false), (2.0, true)]);
    assert!(cal.stopped_at_breach);
    assert_eq!(cal.knee.first_breach, Some(1));
    assert_eq!(r.knee, Some(1.0));
    let table = calibrate::report::table(r, &cal.knee);
    assert!(
        table.contains("SLO breach:  at 2 concurrent: p95 TTFT"),
        "{table}"
    );
    assert!(table.contains("knee:        1 concurrent"), "{table}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_breaches_on_errors_and_has_no_knee() {
    let sim =
        common::sim("{ttft: 10ms, itl: 1ms, output_tokens: 3, faults: {http_5xx: 1.0}}").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cal = run_calibrate(
        &sim,
        &["--stages", "1,2", "--hold", "500ms", "--warmup", "0s"],
        dir.path(),
    )
    .await;
    let r = &cal.result;
    assert_eq!(r.stages.len(), 1);
    let s = &r.stages[0];
    assert!(s.requests > 0);
    assert_eq!(s.errors, s.requests);
    assert!(s.breach);
    assert_eq!(s.ttft_seconds.p95, None);
    assert_eq!(s.output_tokens_per_second, 0.0);
    assert_eq!(r.knee, None);
    sim.shutdown().await;
}

/// A config whose only target is the in-process simulator, marked production.
fn production_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("prod.yml");
    std::fs::write(
        &path,
        "simulator:\n  ttft: 10ms\n  itl: 1ms\n  output_tokens: 4\n\
         targets:\n  - name: prod-chat\n    dialect: openai-chat\n    base_url: simulator\n    \
         model: sim-llm\n    production: true\n",
    )
    .expect("write config");
    path
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("calibrate")
        .args(args)
        .output()
        .expect("run inferprobe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn production_targets_need_allow_production() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = production_config(dir.path());
    let config = config.to_str().expect("utf-8 path");
    let out = dir.path().join("out");
    let out_s = out.to_str().expect("utf-8 path");
    let base = [
        "--config.file",
        config,
        "--stages",
        "1",
        "--hold",
        "300ms",
        "--warmup",
        "0s",
        "--out",
        out_s,
    ];

    let (code, stdout, stderr) = cli(&base);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains(
            "target \"prod-chat\" is marked `production: true`; calibrate sends real load and \
             refuses production targets unless --allow-production is given"
        ),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written before the guard passes");

    let mut allowed = base.to_vec();
    allowed.push("--allow-production");
    let (code, stdout, stderr) = cli(&allowed);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("Calibrating target \"prod-chat\" (model sim-llm, openai-chat)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("expected duration: up to 300ms"),
        "{stderr}"
    );
    assert!(stderr.contains("stage 1/1 concurrency 1: "), "{stderr}");
    assert!(stdout.contains("knee:        not reached"), "{stdout}");
    assert!(stdout.contains("wrote:"), "{stdout}");
    let text = std::fs::read_to_string(out.join("calibrate.json")).expect("json");
    let r: CalibrateResult = serde_json::from_str(&text).expect("parses");
    assert_eq!(r.target, "prod-chat");
    assert_eq!(r.stages.len(), 1);
    assert_eq!(r.stages[0].errors, 0);
    assert!(out.join("calibrate.svg").exists());
}

#[test]
fn bad_ramps_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let out = out.to_str().expect("utf-8 path");
    let adhoc = [
        "--url",
        "http://127.0.0.1:9/v1",
        "--dialect",
        "openai-chat",
        "--model",
        "m",
        "--out",
        out,
    ];
    let mut descending = adhoc.to_vec();
    descending.extend(["--stages", "4,2"]);
    let (code, _, stderr) = cli(&descending);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--stages: loads must be strictly ascending"),
        "{stderr}"
    );

    let mut zero = adhoc.to_vec();
    zero.extend(["--rates", "0,1"]);
    let (code, _, stderr) = cli(&zero);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--rates: every load must be above 0, got 0"),
        "{stderr}"
    );

    // Neither --stages nor --rates: clap refuses, nothing is sent.
    let (code, _, stderr) = cli(&adhoc);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--stages"), "{stderr}");
}
