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
        "vllm",
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
        "aiperf",
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
        "genai-perf",
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
        "guidellm",
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
        "inference-perf",
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
        "llmperf",
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
        "k6",
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
        "run.json: vllm result has no `p95_ttft_ms`; run `vllm bench serve` with `--percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,95,99 --save-result`"
    );
    // A forced format that does not fit names what it looked for.
    let vllm = &fixtures("vllm")[0];
    let e = import_file(vllm, Some(Format::Llmperf)).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("llmperf result has no `num_concurrent_requests`"),
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
    let mut imported = import("vllm", Format::Vllm);
    imported.extend(import("inference-perf", Format::InferencePerf));
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
    let report = generate(import("vllm", Format::Vllm), &opts).expect("generate");
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
    let report = generate(import("aiperf", Format::Aiperf), &opts).expect("generate");
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
    assert!(rules[0].2.contains(r#"{target="prod-llama",le="0.3319"}[15m]"#));
    assert!(rules[5].2.contains(
        r#"inferprobe_probes_total{target="prod-llama",result!~"success|rate_limited"}[15m]"#
    ));
    for r in spec["groups"][0]["rules"].as_array().expect("rules") {
        assert_eq!(
            r["annotations"]["runbook_url"],
            "https://runbooks.example/inferprobe#latency"
        );
    }
    // The wrapped groups are a valid rule file on their own.
    let plain = generate(
        import("aiperf", Format::Aiperf),
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
    let files = fixtures("vllm");
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
    let vllm = fixtures("vllm")[0].display().to_string();

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
