//! `inferprobe thresholds`: every load-test format imported from recorded result files, with
//! exact normalized values, classification, safe point and the rules generated from them;
//! rule files checked by YAML parsing and, where installed, `promtool check rules`.
//!
//! `promtool` missing skips that check with a note, except under CI (env `CI` set), where it
//! fails the test so the lint cannot silently stop running.

use std::path::{Path, PathBuf};
use std::process::Command;

use inferprobe::calibrate::format::{
    CalibrateResult, CalibrateSlo, CalibrateStage, Quantiles as Percentiles, MODE_CONCURRENCY,
};
use inferprobe::thresholds::stages::{FirstMetric, GapMetric};
use inferprobe::thresholds::{
    detect, generate, import_file, parse, Class, Format, ImportError, Imported, LoadKind, Options,
    Quantiles, Report, RuleOptions, Sizing, SloFlags, ThresholdsError,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_inferprobe");

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/loadtest")
        .join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("fixture dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {dir}");
    out
}

fn import(dir: &str, format: Format) -> Vec<Imported> {
    fixtures(dir)
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read fixture");
            let doc: Value = serde_json::from_str(&text).expect("fixture is JSON");
            assert_eq!(
                detect(&doc),
                Some(format),
                "detected format of {}",
                p.display()
            );
            let imported = import_file(p, None).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(imported.format, format);
            imported
        })
        .collect()
}

fn q(p50: f64, p95: f64, p99: f64) -> Quantiles {
    Quantiles {
        p50: Some(p50),
        p95: Some(p95),
        p99: Some(p99),
    }
}

/// Expected normalized stage: label, load, ttft, itl, e2e, error rate, requests.
struct Want {
    label: &'static str,
    load: f64,
    ttft: Quantiles,
    itl: Quantiles,
    e2e: Quantiles,
    error_rate: Option<f64>,
    requests: Option<u64>,
}

fn promtool_check(text: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, text).expect("write rules");
    match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules:\n{}{}\non:\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not on PATH; CI must install it"
            );
            eprintln!("note: promtool not on PATH, skipping `promtool check rules`");
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text)
        .unwrap_or_else(|e| panic!("rule file is not YAML: {e}\n{text}"))
}

/// (alert, severity, family in expr, threshold) of every rule, from the parsed YAML.
fn parsed_rules(doc: &Value) -> Vec<(String, String, String)> {
    let rules = doc["groups"][0]["rules"].as_array().expect("rules");
    assert_eq!(doc["groups"][0]["name"], "inferprobe-thresholds");
    rules
        .iter()
        .map(|r| {
            for key in ["summary", "description"] {
                assert!(r["annotations"][key].is_string(), "{key} on {r}");
            }
            (
                r["alert"].as_str().expect("alert").to_string(),
                r["labels"]["severity"]
                    .as_str()
                    .expect("severity")
                    .to_string(),
                r["expr"].as_str().expect("expr").to_string(),
            )
        })
        .collect()
}

fn baseline(family: &str, v: &str) -> String {
    let v: f64 = v.parse().expect("threshold");
    inferprobe::thresholds::rules::p95_expr(family, &RuleOptions::default(), v, &Sizing::default())
}

fn error_ratio(v: &str) -> String {
    let v: f64 = v.parse().expect("threshold");
    inferprobe::thresholds::rules::error_expr(&RuleOptions::default(), v, &Sizing::default())
}

/// Runs the whole pipeline on one fixture directory and checks every stage, verdict and rule.
fn check(
    dir: &str,
    format: Format,
    want: &[Want],
    classes: &[Class],
    safe: Option<usize>,
    (first, gap): (FirstMetric, GapMetric),
    rules: &[(&str, &str, String)],
) -> Report {
    let report =
        generate(import(dir, format), &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.stages.len(), want.len());
    for (s, w) in report.stages.iter().zip(want) {
        assert_eq!(s.label, w.label);
        assert_eq!(s.load, w.load, "{}", w.label);
        assert_eq!(s.ttft, w.ttft, "ttft of {}", w.label);
        assert_eq!(s.itl, w.itl, "itl of {}", w.label);
        assert_eq!(s.e2e, w.e2e, "e2e of {}", w.label);
        assert_eq!(s.error_rate, w.error_rate, "error rate of {}", w.label);
        assert_eq!(s.requests, w.requests, "requests of {}", w.label);
        assert_eq!(s.format, format);
        assert_eq!(s.first_metric, first);
        assert_eq!(s.gap_metric, gap);
        assert!(!s.ttft_definition.is_empty() && !s.itl_definition.is_empty());
    }
    let got: Vec<Class> = report.classes.iter().map(|c| c.class).collect();
    assert_eq!(got, classes);
    assert_eq!(report.safe, safe);

    let doc = yaml(&report.output);
    let parsed = parsed_rules(&doc);
    let want_rules: Vec<(String, String, String)> = rules
        .iter()
        .map(|(a, s, e)| (a.to_string(), s.to_string(), e.clone()))
        .collect();
    assert_eq!(parsed, want_rules);
    // Every baseline rule cites the safe stage and the tool.
    if let Some(i) = safe {
        let stage = &report.stages[i];
        for r in doc["groups"][0]["rules"].as_array().expect("rules") {
            if r["alert"]
                .as_str()
                .is_some_and(|a| a.ends_with("AboveLoadTestBaseline"))
            {
                let a = &r["annotations"];
                assert_eq!(a["source_file"], stage.source_file.as_str());
                assert_eq!(a["source_stage"], stage.label.as_str());
                assert_eq!(a["source_tool"], format.tool());
                assert!(
                    a["source_measured"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("p99 ")),
                    "{a}"
                );
                assert!(a["source_definition"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()));
            }
        }
    }
    assert!(report
        .output
        .starts_with("# Prometheus alert rules generated by `inferprobe thresholds`"));
    promtool_check(&report.output);
    report
}

fn slo_rules(
    warn_ttft: (&str, &str, &str),
    warn_gap: (&str, &str, &str),
    e2e: &str,
) -> Vec<(&'static str, &'static str, String)> {
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    vec![
        (
            leak(warn_ttft.0),
            "warning",
            baseline(warn_ttft.1, warn_ttft.2),
        ),
        (
            "InferprobeTTFTp95AboveSLO",
            "critical",
            baseline("inferprobe_time_to_first_token_seconds", "0.5"),
        ),
        (
            leak(warn_gap.0),
            "warning",
            baseline(warn_gap.1, warn_gap.2),
        ),
        (
            "InferprobeITLp95AboveSLO",
            "critical",
            baseline("inferprobe_inter_token_latency_seconds", "0.05"),
        ),
        (
            "InferprobeE2Ep95AboveLoadTestBaseline",
            "warning",
            baseline("inferprobe_request_duration_seconds", e2e),
        ),
        (
            "InferprobeErrorRatioAboveWarn",
            "warning",
            error_ratio("0.001"),
        ),
        (
            "InferprobeErrorRatioAboveBreach",
            "critical",
            error_ratio("0.01"),
        ),
    ]
}

const TTFT: &str = "inferprobe_time_to_first_token_seconds";
const ITL: &str = "inferprobe_inter_token_latency_seconds";
const TPOT: &str = "inferprobe_time_per_output_token_seconds";

#[test]
fn vllm_bench_serve() {
    let report = check(
        "vllm/sweep",
        Format::Vllm,
        &[
            Want {
                label: "concurrency 1",
                load: 1.0,
                ttft: q(0.0853, 0.1204, 0.1409),
                itl: q(0.0112, 0.0148, 0.0221),
                e2e: q(1.5205, 1.7002, 1.8107),
                error_rate: Some(0.0),
                requests: Some(100),
            },
            Want {
                label: "concurrency 8",
                load: 8.0,
                ttft: q(0.1902, 0.3106, 0.4025),
                itl: q(0.0184, 0.0297, 0.0413),
                e2e: q(2.5408, 3.1026, 3.391),
                error_rate: Some(0.0),
                requests: Some(400),
            },
            Want {
                label: "concurrency 32",
                load: 32.0,
                ttft: q(0.6204, 0.9108, 1.2043),
                itl: q(0.0299, 0.0482, 0.0775),
                e2e: q(4.4902, 5.8013, 6.4229),
                error_rate: Some(0.005),
                requests: Some(400),
            },
        ],
        &[Class::Normal, Class::Normal, Class::Breach],
        Some(1),
        // The chat backend stamps TTFT at vLLM's role-only first chunk.
        (FirstMetric::FirstEvent, GapMetric::Itl),
        &slo_rules(
            (
                "InferprobeFirstEventp95AboveLoadTestBaseline",
                "inferprobe_time_to_first_event_seconds",
                "0.4025",
            ),
            ("InferprobeITLp95AboveLoadTestBaseline", ITL, "0.0413"),
            "3.391",
        ),
    );
    assert_eq!(
        report.classes[2].reasons,
        vec![
            "FirstEvent p95 0.9108s > 1.5 × 0.5s",
            "error rate 0.005 > 0.001"
        ]
    );
    assert!(
        report
            .table
            .contains("safe operating point: concurrency 8 ("),
        "{}",
        report.table
    );
}

#[test]
fn aiperf() {
    check(
        "aiperf/sweep",
        Format::Aiperf,
        &[
            Want {
                label: "concurrency 4",
                load: 4.0,
                ttft: q(0.1512, 0.2483, 0.3319),
                itl: q(0.0156, 0.0193, 0.0227),
                e2e: q(4.1509, 4.9705, 5.6103),
                error_rate: Some(0.0),
                requests: Some(400),
            },
            Want {
                label: "concurrency 16",
                load: 16.0,
                ttft: q(0.2804, 0.4689, 0.7023),
                itl: q(0.0239, 0.0302, 0.0365),
                e2e: q(6.4502, 7.9801, 9.1006),
                error_rate: Some(0.00125),
                requests: Some(800),
            },
            Want {
                label: "concurrency 64",
                load: 64.0,
                ttft: q(1.1807, 2.4806, 3.3902),
                itl: q(0.0518, 0.0647, 0.0729),
                e2e: q(14.5003, 18.5109, 21.4006),
                error_rate: Some(0.0125),
                requests: Some(1600),
            },
        ],
        &[Class::Normal, Class::Degraded, Class::Breach],
        Some(0),
        // AIPerf's inter_token_latency is a per-request average: inferprobe's TPOT.
        (FirstMetric::Ttft, GapMetric::Tpot),
        &slo_rules(
            ("InferprobeTTFTp95AboveLoadTestBaseline", TTFT, "0.3319"),
            ("InferprobeTPOTp95AboveLoadTestBaseline", TPOT, "0.0227"),
            "5.6103",
        ),
    );
}

#[test]
fn genai_perf() {
    check(
        "genai-perf/sweep",
        Format::GenaiPerf,
        &[
            Want {
                label: "concurrency 1",
                load: 1.0,
                ttft: q(0.0452, 0.0786, 0.1103),
                itl: q(0.00638, 0.0071, 0.0076),
                e2e: q(1.3184, 1.4402, 1.4801),
                error_rate: None,
                requests: None,
            },
            Want {
                label: "concurrency 8",
                load: 8.0,
                ttft: q(0.1408, 0.4803, 0.6027),
                itl: q(0.0089, 0.0124, 0.0136),
                e2e: q(1.9502, 2.6003, 2.9001),
                error_rate: None,
                requests: None,
            },
            Want {
                label: "concurrency 32",
                load: 32.0,
                ttft: q(0.4609, 1.3207, 1.7105),
                itl: q(0.0178, 0.0261, 0.0298),
                e2e: q(4.1002, 6.1203, 7.0106),
                error_rate: None,
                requests: None,
            },
        ],
        &[Class::Normal, Class::Normal, Class::Breach],
        Some(1),
        (FirstMetric::FirstAnswerToken, GapMetric::Tpot),
        &slo_rules(
            (
                "InferprobeFirstAnswerTokenp95AboveLoadTestBaseline",
                "inferprobe_time_to_first_answer_token_seconds",
                "0.6027",
            ),
            ("InferprobeTPOTp95AboveLoadTestBaseline", TPOT, "0.0136"),
            "2.9001",
        ),
    );
}

#[test]
fn guidellm() {
    check(
        "guidellm/sweep",
        Format::Guidellm,
        &[
            Want {
                label: "concurrency 1",
                load: 1.0,
                ttft: q(0.0608, 0.0814, 0.0927),
                itl: q(0.0133, 0.0146, 0.0156),
                e2e: q(1.7581, 1.9402, 2.0811),
                error_rate: Some(0.0),
                requests: Some(63),
            },
            Want {
                label: "concurrency 4",
                load: 4.0,
                ttft: q(0.1052, 0.2339, 0.3512),
                itl: q(0.0175, 0.0218, 0.0241),
                e2e: q(2.3401, 2.8877, 3.2004),
                error_rate: Some(0.0),
                requests: Some(240),
            },
            Want {
                label: "concurrency 16",
                load: 16.0,
                ttft: q(0.4551, 1.1046, 1.5603),
                itl: q(0.0398, 0.0573, 0.0669),
                e2e: q(5.5592, 8.1204, 9.7733),
                error_rate: Some(12.0 / 702.0),
                requests: Some(718),
            },
        ],
        &[Class::Normal, Class::Normal, Class::Breach],
        Some(1),
        (FirstMetric::Ttft, GapMetric::Tpot),
        &slo_rules(
            ("InferprobeTTFTp95AboveLoadTestBaseline", TTFT, "0.3512"),
            ("InferprobeTPOTp95AboveLoadTestBaseline", TPOT, "0.0241"),
            "3.2004",
        ),
    );
}

#[test]
fn inference_perf() {
    check(
        "inference-perf/sweep",
        Format::InferencePerf,
        &[
            Want {
                label: "rate 2 req/s",
                load: 2.0,
                ttft: q(0.1302, 0.2011, 0.2713),
                itl: q(0.0151, 0.0229, 0.0321),
                e2e: q(4.2911, 4.9213, 5.2104),
                error_rate: Some(0.0),
                requests: Some(120),
            },
            Want {
                label: "rate 8 req/s",
                load: 8.0,
                ttft: q(0.2511, 0.4437, 0.621),
                itl: q(0.0271, 0.0446, 0.0671),
                e2e: q(7.8812, 9.331, 10.2214),
                error_rate: Some(0.0),
                requests: Some(480),
            },
            Want {
                label: "rate 16 req/s",
                load: 16.0,
                ttft: q(0.7812, 1.8811, 3.0213),
                itl: q(0.0511, 0.0902, 0.1523),
                e2e: q(15.3311, 19.221, 22.0131),
                error_rate: Some(0.03125),
                requests: Some(960),
            },
        ],
        &[Class::Normal, Class::Normal, Class::Breach],
        Some(1),
        (FirstMetric::Ttft, GapMetric::Itl),
        &slo_rules(
            ("InferprobeTTFTp95AboveLoadTestBaseline", TTFT, "0.621"),
            ("InferprobeITLp95AboveLoadTestBaseline", ITL, "0.0671"),
            "10.2214",
        ),
    );
}

#[test]
fn llmperf() {
    check(
        "llmperf/sweep",
        Format::Llmperf,
        &[
            Want {
                label: "concurrency 1",
                load: 1.0,
                ttft: q(0.0795, 0.1102, 0.1391),
                itl: q(0.0127, 0.0142, 0.0151),
                e2e: q(1.9021, 2.1201, 2.2302),
                error_rate: Some(0.0),
                requests: Some(100),
            },
            Want {
                label: "concurrency 8",
                load: 8.0,
                ttft: q(0.1821, 0.3392, 0.4412),
                itl: q(0.0214, 0.0259, 0.0282),
                e2e: q(3.2412, 3.8821, 4.2012),
                error_rate: Some(0.0),
                requests: Some(400),
            },
            Want {
                label: "concurrency 32",
                load: 32.0,
                ttft: q(0.6022, 1.2803, 1.7704),
                itl: q(0.0452, 0.0602, 0.0691),
                e2e: q(7.2011, 9.3012, 10.4511),
                error_rate: Some(0.015),
                requests: Some(600),
            },
        ],
        &[Class::Normal, Class::Normal, Class::Breach],
        Some(1),
        (FirstMetric::FirstAnswerToken, GapMetric::Tpot),
        &slo_rules(
            (
                "InferprobeFirstAnswerTokenp95AboveLoadTestBaseline",
                "inferprobe_time_to_first_answer_token_seconds",
                "0.4412",
            ),
            ("InferprobeTPOTp95AboveLoadTestBaseline", TPOT, "0.0282"),
            "4.2012",
        ),
    );
}

#[test]
fn k6_summary_export_with_custom_trends() {
    check(
        "k6/sweep",
        Format::K6,
        &[
            Want {
                label: "concurrency 5",
                load: 5.0,
                ttft: q(0.0957, 0.1684, 0.2416),
                itl: q(0.0132, 0.0212, 0.0308),
                e2e: q(1.9842, 2.391, 2.6417),
                error_rate: Some(0.0),
                requests: Some(300),
            },
            Want {
                label: "concurrency 20",
                load: 20.0,
                ttft: q(0.2206, 0.4105, 0.5983),
                itl: q(0.0231, 0.0396, 0.0552),
                e2e: q(3.2504, 4.1206, 4.7803),
                error_rate: Some(0.000909),
                requests: Some(1100),
            },
            Want {
                label: "concurrency 50",
                load: 50.0,
                ttft: q(0.7022, 1.5882, 2.4027),
                itl: q(0.041, 0.0709, 0.1015),
                e2e: q(6.4102, 8.9301, 10.4023),
                error_rate: Some(0.02),
                requests: Some(2100),
            },
        ],
        &[Class::Normal, Class::Normal, Class::Breach],
        Some(1),
        (FirstMetric::Ttft, GapMetric::Itl),
        &slo_rules(
            ("InferprobeTTFTp95AboveLoadTestBaseline", TTFT, "0.5983"),
            ("InferprobeITLp95AboveLoadTestBaseline", ITL, "0.0552"),
            "4.7803",
        ),
    );
}

#[test]
fn inferprobe_calibrate_uses_its_recorded_slo() {
    let report = generate(
        import("inferprobe", Format::Inferprobe),
        &Options::default(),
    )
    .expect("generate");
    assert_eq!(report.slo.ttft_p95, 0.4);
    assert_eq!(report.slo.itl_p95, 0.04);
    let labels: Vec<&str> = report.stages.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "rate 1 req/s",
            "rate 2 req/s",
            "rate 4 req/s",
            "rate 8 req/s",
            "rate 16 req/s"
        ]
    );
    let s = &report.stages[2];
    assert_eq!((s.load_kind, s.load), (LoadKind::Rate, 4.0));
    assert_eq!(s.ttft, q(0.142, 0.321, 0.437));
    assert_eq!(s.itl, q(0.0189, 0.0342, 0.0488));
    assert_eq!(s.e2e, q(1.301, 1.702, 1.966));
    assert_eq!(report.stages[3].error_rate, Some(0.00625));
    assert_eq!(report.stages[3].requests, Some(480));
    let got: Vec<Class> = report.classes.iter().map(|c| c.class).collect();
    assert_eq!(
        got,
        [
            Class::Normal,
            Class::Normal,
            Class::Normal,
            Class::Breach,
            Class::Breach
        ]
    );
    assert_eq!(report.safe, Some(2));
    let doc = yaml(&report.output);
    let rules = parsed_rules(&doc);
    assert_eq!(rules[0].2, baseline(TTFT, "0.437"));
    assert_eq!(rules[1].2, baseline(TTFT, "0.4"));
    assert_eq!(rules[2].2, baseline(ITL, "0.0488"));
    assert_eq!(rules[3].2, baseline(ITL, "0.04"));
    promtool_check(&report.output);

    // Flags win over the file's SLO.
    let opts = Options {
        slo: SloFlags {
            ttft_p95: Some(1.0),
            ..SloFlags::default()
        },
        ..Options::default()
    };
    let report = generate(import("inferprobe", Format::Inferprobe), &opts).expect("generate");
    assert_eq!((report.slo.ttft_p95, report.slo.itl_p95), (1.0, 0.04));
}

#[test]
fn calibrate_result_round_trips_through_its_serde_type() {
    let p = |a, b, c| Percentiles {
        p50: Some(a),
        p95: Some(b),
        p99: Some(c),
    };
    let result = CalibrateResult {
        tool: "inferprobe".into(),
        version: "0.1.0".into(),
        target: "t".into(),
        model: "m".into(),
        dialect: "openai-chat".into(),
        mode: MODE_CONCURRENCY.into(),
        stages: vec![CalibrateStage {
            load: 2.0,
            requests: 10,
            errors: 1,
            duration_seconds: 30.0,
            ttft_seconds: p(0.1, 0.2, 0.3),
            itl_seconds: p(0.01, 0.02, 0.03),
            e2e_seconds: Percentiles::default(),
            output_tokens_per_second: 50.0,
            breach: false,
        }],
        knee: None,
        slo: CalibrateSlo {
            ttft_p95_seconds: 0.5,
            itl_p95_seconds: 0.05,
            error_rate: 0.01,
        },
    };
    let text = serde_json::to_string_pretty(&result).expect("serialize");
    assert_eq!(
        serde_json::from_str::<CalibrateResult>(&text).expect("deserialize"),
        result
    );
    let imported = parse("c.json", &text, None).expect("parse");
    assert_eq!(imported.format, Format::Inferprobe);
    let s = &imported.stages[0];
    assert_eq!(
        (s.label.as_str(), s.load_kind, s.error_rate),
        ("concurrency 2", LoadKind::Concurrency, Some(0.1))
    );
    assert_eq!(s.e2e, Quantiles::default());
}

#[test]
fn unrecognized_and_broken_files_are_named() {
    let e = parse(
        "random.json",
        r#"{"name": "x", "values": [1, 2, 3], "nested": {"a": true}}"#,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, ImportError::Unrecognized { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "random.json: unrecognized load-test result format; looked for: inferprobe ("
        ),
        "{msg}"
    );
    for name in [
        "vllm",
        "aiperf",
        "genai-perf",
        "guidellm",
        "inference-perf",
        "llmperf",
        "k6",
    ] {
        assert!(msg.contains(&format!(", {name} (")), "{msg}");
    }
    let e = parse("broken.json", "{not json", None).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("broken.json: not a JSON document: "),
        "{e}"
    );
}

#[test]
fn missing_percentiles_name_the_file_and_key() {
    // vLLM's default `--metric-percentiles 99` writes no p95.
    let text = r#"{"backend": "vllm", "completed": 10, "failed": 0, "max_concurrency": 4, "request_rate": "inf",
        "mean_ttft_ms": 50.0, "median_ttft_ms": 45.0, "p99_ttft_ms": 90.0,
        "mean_itl_ms": 10.0, "median_itl_ms": 9.0, "p99_itl_ms": 20.0}"#;
    let e = parse("run.json", text, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "run.json: vLLM bench serve result: no `p95_ttft_ms`; run `vllm bench serve` with `--percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,95,99 --save-result`"
    );
    // A forced format that does not fit names what it looked for.
    let vllm = &fixtures("vllm/sweep")[0];
    let e = import_file(vllm, Some(Format::Llmperf)).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("LLMPerf result (no version field): no `num_concurrent_requests`"),
        "{e}"
    );
    let e = import_file(Path::new("/nonexistent/x.json"), None).unwrap_err();
    assert!(matches!(e, ThresholdsError::Read { .. }), "{e}");
}

#[test]
fn k6_without_ttft_trend_falls_back_to_ttfb() {
    let text = r#"{"root_group": {"name": "", "path": "", "groups": {}, "checks": {}},
      "metrics": {
        "http_req_waiting": {"avg": 120.0, "min": 50.0, "med": 110.0, "max": 400.0, "p(90)": 180.0, "p(95)": 210.5},
        "http_req_duration": {"avg": 900.0, "min": 400.0, "med": 850.0, "max": 2000.0, "p(90)": 1200.0, "p(95)": 1400.0},
        "http_req_failed": {"passes": 1, "fails": 999, "value": 0.001},
        "http_reqs": {"count": 1000, "rate": 16.6},
        "iterations": {"count": 1000, "rate": 16.6},
        "vus_max": {"value": 10, "min": 10, "max": 10}}}"#;
    let imported = parse("k6.json", text, None).expect("parse");
    let s = &imported.stages[0];
    assert_eq!(s.first_metric, FirstMetric::Ttfb);
    assert_eq!(
        s.ttft,
        Quantiles {
            p50: Some(0.11),
            p95: Some(0.2105),
            p99: None
        }
    );
    assert_eq!(s.itl, Quantiles::default());
    assert_eq!(s.error_rate, Some(0.001));
    let report = generate(vec![imported], &Options::default()).expect("generate");
    assert_eq!(report.classes[0].class, Class::Normal);
    let rules = parsed_rules(&yaml(&report.output));
    // No p99 in the summary: the baseline falls back to p95; no ITL was measured.
    assert_eq!(rules[0].0, "InferprobeTTFBp95AboveLoadTestBaseline");
    assert_eq!(
        rules[0].2,
        baseline("inferprobe_time_to_first_byte_seconds", "0.2105")
    );
    assert!(!rules
        .iter()
        .any(|r| r.0.starts_with("InferprobeITLp95AboveLoad")));
    assert_eq!(
        rules[3].2,
        baseline("inferprobe_request_duration_seconds", "1.4")
    );
    assert_eq!(rules.len(), 6);
    assert!(
        report
            .output
            .contains("source_measured: p95 TTFT = 0.2105s"),
        "{}",
        report.output
    );
    promtool_check(&report.output);
}

#[test]
fn genai_perf_legacy_flat_input_config_with_request_rate() {
    let text = r#"{"time_to_first_token": {"unit": "ms", "avg": 50.0, "p50": 45.0, "p95": 80.0, "p99": 95.5},
      "inter_token_latency": {"unit": "ms", "avg": 9.0, "p50": 8.8, "p95": 11.0, "p99": 12.0},
      "request_throughput": {"unit": "requests/sec", "avg": 3.9},
      "input_config": {"model": ["gpt2"], "service_kind": "openai", "endpoint_type": "chat", "concurrency": null, "request_rate": 4.0}}"#;
    let imported = parse("g.json", text, None).expect("parse");
    assert_eq!(imported.format, Format::GenaiPerf);
    let s = &imported.stages[0];
    assert_eq!(
        (s.label.as_str(), s.load_kind, s.load),
        ("rate 4 req/s", LoadKind::Rate, 4.0)
    );
    assert_eq!(s.ttft, q(0.045, 0.08, 0.0955));
    assert_eq!(s.e2e, Quantiles::default());
}

#[test]
fn guidellm_sweep_is_ordered_on_the_measured_rate() {
    let bench = |strategy: &str, rps: f64, ttft95: f64| {
        format!(
            r#"{{"args": {{"strategy": {strategy}}},
              "request_totals": {{"successful": 100, "errored": 0, "incomplete": 0, "total": 100}},
              "metrics": {{
                "requests_per_second": {{"successful": {{"mean": {rps}}}}},
                "time_to_first_token_ms": {{"successful": {{"median": 50.0, "percentiles": {{"p95": {ttft95}, "p99": 120.0}}}}}},
                "inter_token_latency_ms": {{"successful": {{"median": 10.0, "percentiles": {{"p95": 12.0, "p99": 14.0}}}}}}}}}}"#
        )
    };
    let text = format!(
        r#"{{"benchmarks": [{}, {}, {}]}}"#,
        bench(r#"{"type_": "synchronous"}"#, 1.25, 60.0),
        bench(
            r#"{"type_": "throughput", "max_concurrency": null}"#,
            9.5,
            900.0
        ),
        bench(r#"{"type_": "constant", "rate": 5.0}"#, 4.98, 300.0),
    );
    let imported = parse("sweep.json", &text, None).expect("parse");
    let report = generate(vec![imported], &Options::default()).expect("generate");
    let got: Vec<(&str, f64)> = report
        .stages
        .iter()
        .map(|s| (s.label.as_str(), s.load))
        .collect();
    assert_eq!(
        got,
        [
            ("synchronous (measured 1.25 req/s)", 1.25),
            ("rate 5 req/s", 5.0),
            ("throughput (measured 9.5 req/s)", 9.5)
        ]
    );
    assert!(report.stages.iter().all(|s| s.load_kind == LoadKind::Rate));
    assert_eq!(report.stages[0].ttft.p50, Some(0.05));
    assert_eq!(report.safe, Some(1));
}

#[test]
fn concurrency_and_rate_stages_do_not_mix() {
    let mut imported = import("vllm/sweep", Format::Vllm);
    imported.extend(import("inference-perf/sweep", Format::InferencePerf));
    let e = generate(imported, &Options::default()).unwrap_err();
    assert!(matches!(e, ThresholdsError::MixedLoad { .. }), "{e}");
    assert!(e.to_string().starts_with("stages mix concurrency ("), "{e}");
}

#[test]
fn no_safe_point_leaves_only_slo_rules() {
    let opts = Options {
        slo: SloFlags {
            ttft_p95: Some(0.01),
            ..SloFlags::default()
        },
        ..Options::default()
    };
    let report = generate(import("vllm/sweep", Format::Vllm), &opts).expect("generate");
    assert_eq!(report.safe, None);
    let rules = parsed_rules(&yaml(&report.output));
    let names: Vec<&str> = rules.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "InferprobeTTFTp95AboveSLO",
            "InferprobeITLp95AboveSLO",
            "InferprobeErrorRatioAboveWarn",
            "InferprobeErrorRatioAboveBreach"
        ]
    );
    assert!(report.output.contains("# Safe operating point: none"));
    promtool_check(&report.output);
}

#[test]
fn target_runbook_and_prometheus_rule_manifest() {
    let opts = Options {
        rules: RuleOptions {
            target: Some("prod-llama".into()),
            runbook_url: Some("https://runbooks.example/inferprobe#latency".into()),
        },
        prometheus_rule: true,
        ..Options::default()
    };
    let report = generate(import("aiperf/sweep", Format::Aiperf), &opts).expect("generate");
    let doc = yaml(&report.output);
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(doc["kind"], "PrometheusRule");
    assert_eq!(doc["metadata"]["name"], "inferprobe-thresholds");
    let spec = &doc["spec"];
    let rules = parsed_rules(spec);
    assert_eq!(
        rules[0].2,
        inferprobe::thresholds::rules::p95_expr(
            "inferprobe_time_to_first_token_seconds",
            &opts.rules,
            0.3319,
            &Sizing::default()
        )
    );
    assert!(rules[0]
        .2
        .contains(r#"{target="prod-llama",le="0.3319"}[15m]"#));
    assert!(rules[5].2.contains(
        r#"inferprobe_probes_total{target="prod-llama",result!~"success|rate_limited"}[30m]"#
    ));
    for r in spec["groups"][0]["rules"].as_array().expect("rules") {
        assert_eq!(
            r["annotations"]["runbook_url"],
            "https://runbooks.example/inferprobe#latency"
        );
    }
    // The wrapped groups are a valid rule file on their own.
    let plain = generate(
        import("aiperf/sweep", Format::Aiperf),
        &Options {
            prometheus_rule: false,
            ..opts
        },
    )
    .expect("generate");
    assert_eq!(yaml(&plain.output)["groups"], spec["groups"]);
    promtool_check(&plain.output);
}

#[test]
fn cli_writes_rules_for_vllm_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("rules.yml");
    let files = fixtures("vllm/sweep");
    let res = Command::new(BIN)
        .arg("thresholds")
        .args(&files)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run inferprobe");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(0), "{stderr}");
    assert!(res.stdout.is_empty());
    assert!(
        stderr.contains("concurrency 8") && stderr.contains("normal (safe)"),
        "{stderr}"
    );
    assert!(stderr.contains("wrote 7 rules to "), "{stderr}");
    let text = std::fs::read_to_string(&out).expect("rules written");
    assert_eq!(parsed_rules(&yaml(&text)).len(), 7);
    promtool_check(&text);

    // Rules go to stdout without -o.
    let res = Command::new(BIN)
        .arg("thresholds")
        .arg(&files[0])
        .output()
        .expect("run");
    assert_eq!(res.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&res.stdout).contains("groups:\n- name: inferprobe-thresholds\n")
    );
}

#[test]
fn cli_exit_codes() {
    let random = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(random.path(), r#"{"hello": "world"}"#).expect("write");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("thresholds")
            .args(args)
            .output()
            .expect("run")
    };
    let vllm = fixtures("vllm/sweep")[0].display().to_string();

    let res = run(&[random.path().to_str().expect("utf-8 path")]);
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stderr).contains("unrecognized load-test result format"));

    let res = run(&["/nonexistent/result.json"]);
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stderr)
        .starts_with("error: /nonexistent/result.json: cannot read: "));

    let res = run(&[
        "--slo.error-rate-warn=0.5",
        "--slo.error-rate-breach=0.1",
        &vllm,
    ]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr)
        .contains("--slo.error-rate-warn (0.5) is above --slo.error-rate-breach (0.1)"));

    assert_eq!(
        run(&["--slo.error-rate-warn=2", &vllm]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["--slo.ttft-p95=soon", &vllm]).status.code(), Some(2));
    assert_eq!(run(&["--format=jmeter", &vllm]).status.code(), Some(2));
    assert_eq!(run(&[]).status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------------
// One fixture per tool release whose layout differs (see tests/fixtures/loadtest/SOURCES.md).

/// Imports `tests/fixtures/loadtest/<rel>` by detection and checks the format and the tool
/// version the file names.
fn import_version(rel: &str, format: Format, tool_version: Option<&str>) -> Imported {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/loadtest")
        .join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("fixture is JSON");
    assert_eq!(detect(&doc), Some(format), "detected format of {rel}");
    let imported = import_file(&p, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(imported.format, format, "{rel}");
    assert_eq!(imported.tool_version.as_deref(), tool_version, "{rel}");
    imported
}

/// Checks every normalized value of one stage.
fn assert_stage(s: &inferprobe::thresholds::Stage, kind: LoadKind, w: &Want) {
    assert_eq!(s.label, w.label);
    assert_eq!((s.load_kind, s.load), (kind, w.load), "{}", w.label);
    assert_eq!(s.ttft, w.ttft, "ttft of {}", w.label);
    assert_eq!(s.itl, w.itl, "itl of {}", w.label);
    assert_eq!(s.e2e, w.e2e, "e2e of {}", w.label);
    assert_eq!(s.error_rate, w.error_rate, "error rate of {}", w.label);
    assert_eq!(s.requests, w.requests, "requests of {}", w.label);
}

fn only_stage(imported: &Imported) -> &inferprobe::thresholds::Stage {
    assert_eq!(imported.stages.len(), 1, "{:?}", imported.stages);
    &imported.stages[0]
}

fn p50_p95(p50: f64, p95: f64) -> Quantiles {
    Quantiles {
        p50: Some(p50),
        p95: Some(p95),
        p99: None,
    }
}

#[test]
fn aiperf_0_13_reads_the_profiling_phase_not_the_warmup() {
    let imported = import_version(
        "aiperf/profile_export_aiperf-0.13.0.json",
        Format::Aiperf,
        Some("0.13.0"),
    );
    let s = only_stage(&imported);
    assert_stage(
        s,
        LoadKind::Concurrency,
        &Want {
            // The warm-up phase ran at concurrency 4; the profiling phase at 32.
            label: "concurrency 32",
            load: 32.0,
            ttft: q(0.2124, 0.3886, 0.4719),
            itl: q(0.0213, 0.0278, 0.0314),
            e2e: q(5.6402, 6.8905, 7.4158),
            error_rate: Some(1.0 / 2000.0),
            requests: Some(2000),
        },
    );
    assert_eq!(
        (s.first_metric, s.gap_metric),
        (FirstMetric::Ttft, GapMetric::Tpot)
    );
}

#[test]
fn aiperf_0_13_rate_phase() {
    let imported = import_version(
        "aiperf/profile_export_aiperf-0.13.0-poisson.json",
        Format::Aiperf,
        Some("0.13.0"),
    );
    assert_stage(
        only_stage(&imported),
        LoadKind::Rate,
        &Want {
            label: "rate 12.5 req/s",
            load: 12.5,
            ttft: q(0.1402, 0.3017, 0.4225),
            itl: q(0.0182, 0.0239, 0.0272),
            e2e: q(4.8206, 6.0884, 6.7029),
            error_rate: Some(18.0 / 1500.0),
            requests: Some(1500),
        },
    );
}

#[test]
fn aiperf_0_8_loadgen_rate_with_concurrency_cap() {
    let imported = import_version(
        "aiperf/profile_export_aiperf-0.8.0.json",
        Format::Aiperf,
        Some("0.8.0"),
    );
    assert_stage(
        only_stage(&imported),
        LoadKind::Rate,
        &Want {
            label: "rate 6 req/s (max concurrency 48)",
            load: 6.0,
            ttft: q(0.1827, 0.3472, 0.4551),
            itl: q(0.0199, 0.0262, 0.0296),
            e2e: q(5.2904, 6.6409, 7.2883),
            error_rate: Some(3.0 / 600.0),
            requests: Some(600),
        },
    );
    // The 0.3.0 sweep names no version.
    for i in import("aiperf/sweep", Format::Aiperf) {
        assert_eq!(i.tool_version, None);
    }
}

/// The 0.13.0 fixture with `input_config` replaced by `input_config` and `aiperf_version`
/// set as given.
fn aiperf_with(input_config: Value, version: Option<&str>) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/loadtest/aiperf/profile_export_aiperf-0.13.0.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("JSON");
    let obj = doc.as_object_mut().expect("object");
    match version {
        Some(v) => obj.insert("aiperf_version".into(), Value::from(v)),
        None => obj.remove("aiperf_version"),
    };
    if input_config.is_null() {
        obj.remove("input_config");
    } else {
        obj.insert("input_config".into(), input_config);
    }
    doc.to_string()
}

#[test]
fn aiperf_unknown_layouts_name_the_version_and_the_keys() {
    let err = |input_config: Value, version: Option<&str>| {
        parse("p.json", &aiperf_with(input_config, version), None).unwrap_err()
    };
    // A release that moved the load somewhere new.
    let e = err(
        serde_json::json!({"load": {"concurrency": 8}}),
        Some("0.4.0"),
    );
    assert!(matches!(e, ImportError::UnknownLayout { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "p.json: AIPerf result (aiperf_version 0.4.0): no concurrency or request rate found: \
         expected `input_config.phases[].concurrency`, `input_config.phases[].rate`, \
         `input_config.loadgen.concurrency` or `input_config.loadgen.request_rate`"
    );
    // No input_config at all, and no version field (AIPerf before 0.8).
    assert_eq!(
        err(Value::Null, None).to_string(),
        "p.json: AIPerf result (no aiperf_version field): no concurrency or request rate found: \
         expected `input_config.phases[].concurrency`, `input_config.phases[].rate`, \
         `input_config.loadgen.concurrency` or `input_config.loadgen.request_rate`"
    );
    // An old loadgen without either key.
    assert!(
        err(
            serde_json::json!({"loadgen": {"request_count": 10}}),
            Some("0.8.0")
        )
        .to_string()
        .starts_with("p.json: AIPerf result (aiperf_version 0.8.0): no concurrency or request rate found: expected `input_config.phases[].concurrency`"),
    );
    // A profiling phase of a type with neither (trace replay).
    assert_eq!(
        err(
            serde_json::json!({"phases": [
                {"name": "warmup", "kind": "warmup", "type": "concurrency", "concurrency": 2, "requests": 10},
                {"name": "replay", "kind": "profiling", "type": "fixed_schedule"}]}),
            Some("0.13.0")
        )
        .to_string(),
        "p.json: AIPerf result (aiperf_version 0.13.0): no concurrency or request rate found: \
         expected `input_config.phases[1].concurrency` or `input_config.phases[1].rate`; \
         the profiling phase is of type `fixed_schedule`"
    );
    // Only a warm-up phase.
    assert_eq!(
        err(
            serde_json::json!({"phases": [{"name": "warmup", "type": "concurrency", "concurrency": 2}]}),
            Some("0.10.0")
        )
        .to_string(),
        "p.json: AIPerf result (aiperf_version 0.10.0): no profiling phase found: \
         expected `input_config.phases[].kind = \"profiling\"`"
    );
    // Two profiling phases at different loads are pooled in the top-level metrics.
    let e = err(
        serde_json::json!({"phases": [
            {"name": "low", "kind": "profiling", "type": "concurrency", "concurrency": 4, "requests": 100},
            {"name": "high", "kind": "profiling", "type": "poisson", "rate": 9.0, "requests": 100}]}),
        Some("0.13.0"),
    );
    assert!(matches!(e, ImportError::Invalid { .. }), "{e}");
    assert!(
        e.to_string().starts_with(
            "p.json: AIPerf result (aiperf_version 0.13.0): `input_config.phases[1]` runs at another load than input_config.phases[0] (concurrency 4)"
        ),
        "{e}"
    );
    // A version string from the file is bounded and stripped of control characters.
    let e = err(
        Value::Null,
        Some("0.99.0\u{1b}[31m-a-very-long-suffix-that-keeps-going-on"),
    );
    assert!(
        e.to_string().starts_with(
            "p.json: AIPerf result (aiperf_version 0.99.0?[31m-a-very-long-suffix-that-keep…): "
        ),
        "{e}"
    );
}

#[test]
fn aiperf_phase_without_concurrency_ran_at_the_default_of_one() {
    // The export leaves out unset fields; `aiperf profile` without `--concurrency` runs one
    // request at a time.
    let text = aiperf_with(
        serde_json::json!({"phases": [{"name": "profiling", "kind": "profiling", "type": "concurrency", "requests": 50}]}),
        Some("0.13.0"),
    );
    let imported = parse("p.json", &text, None).expect("parse");
    let s = only_stage(&imported);
    assert_eq!(
        (s.label.as_str(), s.load_kind, s.load),
        ("concurrency 1", LoadKind::Concurrency, 1.0)
    );
    // A phase named `warmup` without `kind` (0.9, 0.10) is a warm-up too.
    let text = aiperf_with(
        serde_json::json!({"phases": [
            {"name": "warmup", "type": "concurrency", "concurrency": 2, "requests": 10},
            {"name": "profiling", "type": "gamma", "rate": 3.0, "concurrency": 16, "requests": 50}]}),
        Some("0.10.0"),
    );
    let imported = parse("p.json", &text, None).expect("parse");
    assert_eq!(
        only_stage(&imported).label,
        "rate 3 req/s (max concurrency 16)"
    );
}

#[test]
fn vllm_0_33_and_0_11() {
    let imported = import_version("vllm/bench_serve-0.33.0.json", Format::Vllm, None);
    let s = only_stage(&imported);
    assert_stage(
        s,
        LoadKind::Rate,
        &Want {
            label: "rate 8 req/s (max concurrency 64)",
            load: 8.0,
            ttft: q(0.1496094, 0.2270831, 0.2940527),
            itl: q(0.0183971, 0.0254898, 0.0282679),
            e2e: q(2.4675585, 2.8495575, 2.9825178),
            error_rate: Some(2.0 / 200.0),
            requests: Some(200),
        },
    );
    assert_eq!(s.first_metric, FirstMetric::FirstEvent);
    // 0.11.0 writes no `failed`: num_prompts - completed failed.
    let imported = import_version("vllm/bench_serve-0.11.0.json", Format::Vllm, None);
    assert_stage(
        only_stage(&imported),
        LoadKind::Concurrency,
        &Want {
            label: "concurrency 24",
            load: 24.0,
            ttft: q(0.20187, 0.41763, 0.55208),
            itl: q(0.01875, 0.03126, 0.04481),
            e2e: q(5.2885, 6.2549, 6.7903),
            error_rate: Some(3.0 / 300.0),
            requests: Some(300),
        },
    );
}

#[test]
fn genai_perf_0_0_16_and_0_0_12() {
    let imported = import_version(
        "genai-perf/profile_export_genai_perf-0.0.16.json",
        Format::GenaiPerf,
        None,
    );
    assert_stage(
        only_stage(&imported),
        LoadKind::Rate,
        &Want {
            label: "rate 4 req/s",
            load: 4.0,
            ttft: q(0.0884, 0.1629, 0.2143),
            itl: q(0.0152, 0.0183, 0.0201),
            e2e: q(3.0558, 3.6447, 3.9026),
            error_rate: None,
            requests: Some(240),
        },
    );
    let imported = import_version(
        "genai-perf/profile_export_genai_perf-0.0.12.json",
        Format::GenaiPerf,
        None,
    );
    assert_stage(
        only_stage(&imported),
        LoadKind::Concurrency,
        &Want {
            label: "concurrency 16",
            load: 16.0,
            ttft: q(0.1627, 0.3126, 0.4018),
            itl: q(0.0115, 0.0144, 0.0162),
            e2e: q(2.488, 3.0449, 3.3912),
            error_rate: None,
            requests: Some(480),
        },
    );
    // A stimulus no release has written.
    let text = r#"{"time_to_first_token": {"unit": "ms", "p50": 1.0, "p95": 2.0},
        "inter_token_latency": {"unit": "ms", "p50": 1.0, "p95": 2.0},
        "input_config": {"perf_analyzer": {"stimulus": {"fixed_schedule": true}}}}"#;
    assert_eq!(
        parse("g.json", text, None).unwrap_err().to_string(),
        "g.json: GenAI-Perf result: no concurrency or request rate found: expected \
         `input_config.perf_analyzer.stimulus.concurrency`, `input_config.perf_analyzer.stimulus.request_rate`, \
         `input_config.perf_analyzer.stimulus.session_concurrency`, `input_config.perf_analyzer.stimulus.session_request_rate`, \
         `input_config.concurrency` or `input_config.request_rate`"
    );
}

#[test]
fn guidellm_0_8_sweep_and_0_3_concurrent() {
    let imported = import_version(
        "guidellm/benchmarks-0.8.1.json",
        Format::Guidellm,
        Some("0.8.1"),
    );
    let want = [
        Want {
            label: "synchronous (measured 1.04 req/s)",
            load: 1.04,
            ttft: q(0.0746, 0.1013, 0.1188),
            itl: q(0.0141, 0.0162, 0.0175),
            e2e: q(1.8977, 2.0718, 2.1544),
            error_rate: Some(0.0),
            requests: Some(125),
        },
        Want {
            label: "rate 2.5 req/s",
            load: 2.5,
            ttft: q(0.1048, 0.1715, 0.2152),
            itl: q(0.0165, 0.0194, 0.0213),
            e2e: q(2.2302, 2.5588, 2.7207),
            error_rate: Some(0.0),
            requests: Some(300),
        },
        Want {
            label: "rate 4 req/s",
            load: 4.0,
            ttft: q(0.1764, 0.3529, 0.4681),
            itl: q(0.0217, 0.0289, 0.0336),
            e2e: q(3.0104, 3.9022, 4.4517),
            error_rate: Some(3.0 / 475.0),
            requests: Some(480),
        },
        Want {
            label: "throughput (measured 6.12 req/s)",
            load: 6.12,
            ttft: q(1.3882, 3.3106, 4.1023),
            itl: q(0.0399, 0.0552, 0.063),
            e2e: q(6.4093, 9.8025, 11.2233),
            error_rate: Some(14.0 / 715.0),
            requests: Some(724),
        },
    ];
    assert_eq!(imported.stages.len(), want.len());
    for (s, w) in imported.stages.iter().zip(&want) {
        assert_stage(s, LoadKind::Rate, w);
    }
    let report = generate(vec![imported], &Options::default()).expect("generate");
    assert_eq!(report.safe, Some(1));

    let imported = import_version("guidellm/benchmarks-0.3.1.json", Format::Guidellm, None);
    let want = [
        Want {
            label: "concurrency 4",
            load: 4.0,
            ttft: q(0.1195, 0.2138, 0.2804),
            itl: q(0.0174, 0.0209, 0.0231),
            e2e: q(2.4019, 2.8113, 3.0225),
            error_rate: Some(0.0),
            requests: Some(423),
        },
        Want {
            label: "concurrency 8",
            load: 8.0,
            ttft: q(0.2153, 0.4417, 0.5629),
            itl: q(0.0238, 0.0317, 0.0364),
            e2e: q(3.3302, 4.2915, 4.8221),
            error_rate: Some(6.0 / 722.0),
            requests: Some(729),
        },
    ];
    assert_eq!(imported.stages.len(), want.len());
    for (s, w) in imported.stages.iter().zip(&want) {
        assert_stage(s, LoadKind::Concurrency, w);
    }
}

#[test]
fn guidellm_trace_replay_sits_on_the_measured_rate_and_unknown_layouts_are_named() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/loadtest/guidellm/benchmarks-0.8.1.json");
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("JSON");
    // GuideLLM 0.7 added `trace`, which replays recorded arrivals: no rate of its own.
    let mut doc = original.clone();
    doc["benchmarks"][1]["config"]["strategy"] =
        serde_json::json!({"type_": "trace", "worker_count": 8, "max_concurrency": null});
    let imported = parse("b.json", &doc.to_string(), None).expect("parse");
    assert_eq!(
        imported.stages[1].label,
        "trace replay (measured 2.49 req/s)"
    );
    assert_eq!(imported.stages[1].load, 2.49);

    let mut doc = original.clone();
    doc["benchmarks"][2]["config"]
        .as_object_mut()
        .expect("config")
        .remove("strategy");
    assert_eq!(
        parse("b.json", &doc.to_string(), None)
            .unwrap_err()
            .to_string(),
        "b.json: GuideLLM result (metadata.guidellm_version 0.8.1): no load strategy found: \
         expected `benchmarks[2].config.strategy` or `benchmarks[2].args.strategy`"
    );
    let mut doc = original;
    doc["benchmarks"][0]["metrics"]
        .as_object_mut()
        .expect("metrics")
        .remove("request_totals");
    doc["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("guidellm_version");
    assert_eq!(
        parse("b.json", &doc.to_string(), None)
            .unwrap_err()
            .to_string(),
        "b.json: GuideLLM result (no metadata.guidellm_version field): no request counts found: \
         expected `benchmarks[0].metrics.request_totals` or `benchmarks[0].request_totals`"
    );
}

#[test]
fn inference_perf_0_7_concurrency_and_0_2_rate() {
    let imported = import_version(
        "inference-perf/stage_0_lifecycle_metrics-0.7.0.json",
        Format::InferencePerf,
        None,
    );
    // Its requested_rate (400) is the request budget, not a rate: the label says concurrency.
    assert_stage(
        only_stage(&imported),
        LoadKind::Concurrency,
        &Want {
            label: "concurrency 16",
            load: 16.0,
            ttft: q(0.2218, 0.4316, 0.5521),
            itl: q(0.0288, 0.0497, 0.0702),
            e2e: q(4.2105, 5.1092, 5.6613),
            error_rate: Some(2.0 / 400.0),
            requests: Some(400),
        },
    );
    let imported = import_version(
        "inference-perf/stage_0_lifecycle_metrics-0.2.0.json",
        Format::InferencePerf,
        None,
    );
    assert_stage(
        only_stage(&imported),
        LoadKind::Rate,
        &Want {
            label: "rate 5 req/s",
            load: 5.0,
            ttft: q(0.1873, 0.3528, 0.4411),
            itl: q(0.0243, 0.0412, 0.0583),
            e2e: q(3.5502, 4.3011, 4.7706),
            error_rate: Some(1.0 / 300.0),
            requests: Some(300),
        },
    );
    let text = r#"{"load_summary": {"count": 3, "schedule_delay": null},
        "successes": {"count": 3, "latency": {}}, "failures": {"count": 0}}"#;
    assert_eq!(
        parse("s.json", text, None).unwrap_err().to_string(),
        "s.json: inference-perf result: no concurrency or request rate found: expected \
         `load_summary.concurrency` or `load_summary.requested_rate`"
    );
}

#[test]
fn llmperf_results_version_2023_08_31() {
    let imported = import_version(
        "llmperf/Qwen-Qwen2-5-7B-Instruct_1024_256_summary-2023-08-31.json",
        Format::Llmperf,
        Some("2023-08-31"),
    );
    assert_stage(
        only_stage(&imported),
        LoadKind::Concurrency,
        &Want {
            label: "concurrency 4",
            load: 4.0,
            ttft: q(0.1047, 0.1839, 0.2371),
            itl: q(0.0166, 0.0197, 0.0214),
            e2e: q(4.1802, 4.7512, 5.0127),
            error_rate: Some(1.0 / 200.0),
            requests: Some(200),
        },
    );
}

#[test]
fn k6_2_2_legacy_and_machine_readable_summaries() {
    let legacy = import_version("k6/summary-export-2.2.0.json", Format::K6, None);
    let want = Want {
        label: "concurrency 30",
        load: 30.0,
        ttft: q(0.2046, 0.4127, 0.5483),
        itl: q(0.0181, 0.0348, 0.0512),
        e2e: q(3.9503, 5.1029, 5.6881),
        error_rate: Some(0.005),
        requests: Some(1800),
    };
    assert_stage(only_stage(&legacy), LoadKind::Concurrency, &want);
    // The machine-readable summary carries no p99 and counts rates as matches of a total.
    let mr = import_version(
        "k6/summary-machine-readable-2.2.0.json",
        Format::K6,
        Some("2.2.0"),
    );
    let s = only_stage(&mr);
    assert_stage(
        s,
        LoadKind::Concurrency,
        &Want {
            ttft: p50_p95(0.2046, 0.4127),
            itl: p50_p95(0.0181, 0.0348),
            e2e: p50_p95(3.9503, 5.1029),
            ..want
        },
    );
    assert_eq!(
        (s.first_metric, s.gap_metric),
        (FirstMetric::Ttft, GapMetric::Itl)
    );
    // Without p99 the warning baseline falls back to the measured p95 (the 0.5% errors are
    // within a warning level of 1% here, so the stage is the safe point).
    let opts = Options {
        slo: SloFlags {
            error_rate_warn: Some(0.01),
            error_rate_breach: Some(0.02),
            ..SloFlags::default()
        },
        ..Options::default()
    };
    let report = generate(vec![mr], &opts).expect("generate");
    assert_eq!(report.safe, Some(0));
    assert_eq!(
        parsed_rules(&yaml(&report.output))[0].2,
        baseline(TTFT, "0.4127")
    );

    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/loadtest/k6/summary-machine-readable-2.2.0.json");
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("JSON");
    let without = |name: &str| {
        let mut doc = original.clone();
        doc["results"]["metrics"]
            .as_array_mut()
            .expect("metrics")
            .retain(|m| m["name"] != name);
        doc.to_string()
    };
    // Without http_reqs the request count comes from http_req_failed's total.
    let imported = parse("k.json", &without("http_reqs"), None).expect("parse");
    assert_eq!(imported.stages[0].requests, Some(1800));
    assert_eq!(
        parse("k.json", &without("vus_max"), None)
            .unwrap_err()
            .to_string(),
        "k.json: k6 result (metadata.k6Version 2.2.0): no `results.metrics[name=vus_max]`"
    );
}

#[test]
fn cli_derives_thresholds_from_a_current_aiperf_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("rules.yml");
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/loadtest/aiperf/profile_export_aiperf-0.13.0.json");
    let res = Command::new(BIN)
        .arg("thresholds")
        .arg(&file)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run inferprobe");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("concurrency 32") && stderr.contains("normal (safe)"),
        "{stderr}"
    );
    assert!(stderr.contains("wrote 7 rules to "), "{stderr}");
    let text = std::fs::read_to_string(&out).expect("rules written");
    let doc = yaml(&text);
    let want: Vec<(String, String, String)> = slo_rules(
        ("InferprobeTTFTp95AboveLoadTestBaseline", TTFT, "0.4719"),
        ("InferprobeTPOTp95AboveLoadTestBaseline", TPOT, "0.0314"),
        "7.4158",
    )
    .into_iter()
    .map(|(a, s, e)| (a.to_string(), s.to_string(), e))
    .collect();
    assert_eq!(parsed_rules(&doc), want);
    let first = &doc["groups"][0]["rules"][0]["annotations"];
    assert_eq!(first["source_file"], file.display().to_string().as_str());
    assert_eq!(first["source_stage"], "concurrency 32");
    assert_eq!(first["source_tool"], "AIPerf");
    assert_eq!(first["source_measured"], "p99 TTFT = 0.4719s");
    promtool_check(&text);

    // The same file with its load moved somewhere unknown fails with the tool, version and keys.
    let broken = dir.path().join("profile_export_aiperf.json");
    std::fs::write(
        &broken,
        aiperf_with(serde_json::json!({"load": 8}), Some("0.14.0")),
    )
    .expect("write");
    let res = Command::new(BIN)
        .arg("thresholds")
        .arg(&broken)
        .output()
        .expect("run inferprobe");
    assert_eq!(res.status.code(), Some(1));
    assert!(res.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&res.stderr),
        format!(
            "error: {}: AIPerf result (aiperf_version 0.14.0): no concurrency or request rate found: \
             expected `input_config.phases[].concurrency`, `input_config.phases[].rate`, \
             `input_config.loadgen.concurrency` or `input_config.loadgen.request_rate`\n",
            broken.display()
        )
    );
}
