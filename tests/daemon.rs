//! The daemon end to end, in-process: scheduled probes against the simulator, every `result`
//! value in `inferprobe_probes_total`, `/probe`, the status page, reload and `promtool`.

mod common;

use std::time::Duration;

use common::{eventually, get, sample};
use inferprobe::commands;

/// One target per result class, all against one in-process simulator, probing every second.
const ALL_RESULTS: &str = r#"
global:
  max_concurrent_probes: 16
  schedule: {every: 1s, jitter: 0}
  timeouts: {connect: 1s, first_token: 2s, idle: 400ms, total: 4s}
simulator:
  ttft: 50ms
  itl: 5ms
  output_tokens: 8
  stall_duration: 30s
scenarios:
  short:
    prompt: "Count to eight."
    max_tokens: 16
  wrong-model:
    prompt: "Count to eight."
    checks: {expect_model: gpt-9}
prices:
  sim-llm: {input_per_million: 1.0, output_per_million: 2.0}
targets:
  - {name: ok, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short]}
  - {name: ok-anthropic, dialect: anthropic-messages, base_url: simulator, model: sim-llm, scenarios: [short]}
  - {name: f-rate, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-fault: rate_limited}}
  - {name: f-4xx, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-fault: http_4xx}}
  - {name: f-5xx, dialect: openai-completions, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-fault: http_5xx}}
  - {name: f-api, dialect: anthropic-messages, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-fault: api_error}}
  - {name: f-abort, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-fault: stream_aborted}}
  - {name: f-stall, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-fault: timeout_idle}}
  - {name: f-malformed, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-fault: malformed_stream}}
  - {name: f-empty, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-fault: empty_response}}
  - {name: f-check, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [wrong-model]}
  - {name: f-first, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-ttft: 2s}, timeouts: {first_token: 300ms, total: 3s}}
  - {name: f-total, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], headers: {x-sim-itl: 300ms}, timeouts: {first_token: 1s, total: 1500ms, idle: 1s}}
  - {name: f-connect, dialect: openai-chat, base_url: "http://127.0.0.1:1/v1", model: sim-llm, scenarios: [short]}
  - {name: f-tls, dialect: openai-chat, base_url: "https://127.0.0.1:TLS_PORT/v1", model: sim-llm, scenarios: [short]}
"#;

/// A loopback listener that answers every connection with plain text, so a TLS handshake fails.
async fn not_tls_listener() -> u16 {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_value_reaches_probes_total() {
    let tls_port = not_tls_listener().await;
    let loaded = common::load(&ALL_RESULTS.replace("TLS_PORT", &tls_port.to_string()));
    let running = commands::start(loaded, None, "127.0.0.1:0")
        .await
        .expect("daemon starts");
    let base = format!("http://{}", running.addr);

    let expected = [
        ("ok", "success"),
        ("ok-anthropic", "success"),
        ("f-rate", "rate_limited"),
        ("f-4xx", "http_4xx"),
        ("f-5xx", "http_5xx"),
        ("f-api", "api_error"),
        ("f-abort", "stream_aborted"),
        ("f-stall", "timeout_idle"),
        ("f-malformed", "malformed_stream"),
        ("f-empty", "empty_response"),
        ("f-check", "check_failed"),
        ("f-first", "timeout_first_token"),
        ("f-total", "timeout_total"),
        ("f-connect", "connect_error"),
        ("f-tls", "tls_error"),
    ];
    let text = eventually(Duration::from_secs(15), "one probe of every target", || {
        let url = format!("{base}/metrics");
        async move {
            let (_, text) = get(&url).await;
            expected
                .iter()
                .all(|(t, r)| {
                    sample(
                        &text,
                        "inferprobe_probes_total",
                        &[("target", t), ("result", r)],
                    )
                    .unwrap_or(0.0)
                        >= 1.0
                })
                .then_some(text)
        }
    })
    .await;

    // Every result series exists for every target (pre-created at 0), so alerts see them early.
    for r in inferprobe::probe::ProbeResult::ALL {
        assert!(
            sample(
                &text,
                "inferprobe_probes_total",
                &[("target", "ok"), ("result", r.as_str())]
            )
            .is_some(),
            "missing pre-created series result={}",
            r.as_str()
        );
    }
    // A failing target never counts as a success.
    assert_eq!(
        sample(
            &text,
            "inferprobe_probes_total",
            &[("target", "f-5xx"), ("result", "success")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "inferprobe_probe_success", &[("target", "f-5xx")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "inferprobe_probe_success", &[("target", "ok")]),
        Some(1.0)
    );
    let ttft_count = sample(
        &text,
        "inferprobe_time_to_first_token_seconds_count",
        &[("target", "ok")],
    )
    .unwrap();
    assert!(ttft_count >= 1.0);
    let out = sample(
        &text,
        "inferprobe_tokens_total",
        &[("target", "ok"), ("direction", "output")],
    )
    .unwrap();
    assert_eq!(out % 8.0, 0.0, "8 output tokens per probe, got {out}");
    assert!(sample(&text, "inferprobe_cost_usd_total", &[("target", "ok")]).unwrap() > 0.0);
    assert_eq!(
        sample(&text, "inferprobe_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "inferprobe_build_info",
            &[("version", inferprobe::VERSION)]
        ),
        Some(1.0)
    );

    if let Some((ok, out)) = common::promtool_check_metrics(&text) {
        assert!(
            ok && out.trim().is_empty(),
            "promtool check metrics:\n{out}"
        );
    }

    // The status page shows each target's latest result.
    let (status, page) = get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("f-malformed") && page.contains("malformed_stream"),
        "{page}"
    );
    running.stop().await;
}

const RELOADABLE: &str = r#"
global:
  schedule: {every: 1s, jitter: 0}
simulator: {ttft: 20ms, itl: 2ms, output_tokens: 4}
targets:
  - {name: keep, dialect: openai-chat, base_url: simulator, model: sim-llm}
  - {name: drop-me, dialect: anthropic-messages, base_url: simulator, model: sim-llm}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_targets_and_a_bad_config_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, RELOADABLE).unwrap();
    let loaded = inferprobe::config::load(&path).expect("loads");
    let running = commands::start(loaded, Some(path.clone()), "127.0.0.1:0")
        .await
        .expect("starts");
    let base = format!("http://{}", running.addr);
    inferprobe::probe::engine::install_crypto_provider();
    let client = reqwest::Client::new();

    eventually(Duration::from_secs(10), "probes of both targets", || {
        let url = format!("{base}/metrics");
        async move {
            let (_, t) = get(&url).await;
            let n = |target| {
                sample(
                    &t,
                    "inferprobe_probes_total",
                    &[("target", target), ("result", "success")],
                )
                .unwrap_or(0.0)
            };
            (n("keep") >= 1.0 && n("drop-me") >= 1.0).then_some(())
        }
    })
    .await;

    // A broken file: the reload fails, says why, and the running targets stay.
    std::fs::write(
        &path,
        "targets:\n  - {name: x, dialect: openai-chat, base_url: simulator, model: m, bogus: 1}\n",
    )
    .unwrap();
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("targets[0]") && body.contains("bogus"),
        "{body}"
    );
    let (_, t) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&t, "inferprobe_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert!(t.contains("target=\"drop-me\""));

    // A good file without `drop-me`: its series disappear, `keep` goes on.
    std::fs::write(&path, RELOADABLE.replace("  - {name: drop-me, dialect: anthropic-messages, base_url: simulator, model: sim-llm}\n", "")).unwrap();
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let (_, t) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&t, "inferprobe_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert!(
        !t.contains("target=\"drop-me\""),
        "series of a removed target disappear"
    );
    let before = sample(
        &t,
        "inferprobe_probes_total",
        &[("target", "keep"), ("result", "success")],
    )
    .unwrap();
    eventually(Duration::from_secs(5), "keep probing after reload", || {
        let url = format!("{base}/metrics");
        async move {
            let (_, t) = get(&url).await;
            (sample(
                &t,
                "inferprobe_probes_total",
                &[("target", "keep"), ("result", "success")],
            )
            .unwrap_or(0.0)
                > before)
                .then_some(())
        }
    })
    .await;

    // /-/healthy and /-/ready.
    assert_eq!(get(&format!("{base}/-/healthy")).await.0, 200);
    assert_eq!(get(&format!("{base}/-/ready")).await.0, 200);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_runs_one_probe_into_a_fresh_registry() {
    let yaml = r#"
global: {schedule: {every: 1h}}
simulator: {ttft: 20ms, itl: 2ms, output_tokens: 6}
scenarios:
  a: {prompt: "hi"}
  b: {prompt: "hello", max_tokens: 3}
targets:
  - {name: sim, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [a, b]}
"#;
    let running = commands::start(common::load(yaml), None, "127.0.0.1:0")
        .await
        .expect("starts");
    let base = format!("http://{}", running.addr);
    let (status, text) = get(&format!("{base}/probe?target=sim&scenario=b")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        sample(
            &text,
            "inferprobe_probe_success",
            &[("target", "sim"), ("scenario", "b")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "inferprobe_tokens_total", &[("direction", "output")]),
        Some(3.0),
        "max_tokens 3 caps the output"
    );
    assert_eq!(
        sample(&text, "inferprobe_time_to_first_token_seconds_count", &[]),
        Some(1.0)
    );
    // The fresh registry holds nothing of the daemon's own state.
    assert!(!text.contains("inferprobe_build_info"));

    let (status, text) = get(&format!("{base}/probe?target=nope")).await;
    assert_eq!(status, 400);
    // Only what was asked is named, never the configured targets or scenarios.
    assert_eq!(text, "unknown target \"nope\"\n");
    let (status, text) = get(&format!("{base}/probe?target=sim&scenario=zzz")).await;
    assert_eq!(status, 400);
    assert_eq!(text, "target \"sim\" has no scenario \"zzz\"\n");
    let (status, _) = get(&format!("{base}/probe")).await;
    assert_eq!(status, 400);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_hosted_cost_shares_the_gpu_rate_with_running_requests() {
    // 3.6 USD per GPU-hour = 0.001 USD per GPU-second.
    let yaml = r#"
global: {schedule: {every: 1s, jitter: 0}}
simulator: {ttft: 100ms, itl: 10ms, output_tokens: 20}
servers:
  - {name: local, url: simulator, kind: vllm, interval: 1s, timeout: 500ms}
targets:
  - name: gpu-box
    dialect: openai-chat
    base_url: simulator
    model: sim-llm
    self_hosted: {gpus: 1, gpu_hour_usd: 3.6, server: local}
"#;
    let running = commands::start(common::load(yaml), None, "127.0.0.1:0")
        .await
        .expect("starts");
    let url = format!("http://{}/metrics", running.addr);
    let text = eventually(Duration::from_secs(10), "two self-hosted probes", || {
        let url = url.clone();
        async move {
            let (_, t) = get(&url).await;
            (sample(
                &t,
                "inferprobe_request_cost_usd_count",
                &[("target", "gpu-box")],
            )
            .unwrap_or(0.0)
                >= 2.0)
                .then_some(t)
        }
    })
    .await;
    assert_eq!(
        sample(
            &text,
            "inferprobe_gpu_cost_usd_per_hour",
            &[("target", "gpu-box")]
        ),
        Some(3.6)
    );
    let cost = sample(
        &text,
        "inferprobe_request_cost_usd_sum",
        &[("target", "gpu-box")],
    )
    .unwrap();
    let e2e = sample(
        &text,
        "inferprobe_request_duration_seconds_sum",
        &[("target", "gpu-box")],
    )
    .unwrap();
    let probes = sample(
        &text,
        "inferprobe_request_cost_usd_count",
        &[("target", "gpu-box")],
    )
    .unwrap();
    let e2e_probes = sample(
        &text,
        "inferprobe_request_duration_seconds_count",
        &[("target", "gpu-box")],
    )
    .unwrap();
    assert_eq!(probes, e2e_probes, "every completed probe has a cost");
    // Alone on the simulator, each request pays the whole rate for its duration: cost = 0.001 × E2E.
    assert!(
        (cost - 0.001 * e2e).abs() < 1e-9,
        "cost {cost} vs 0.001 × e2e {e2e}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_cover_every_target_exactly_once() {
    use inferprobe::shard::Shard;
    let mut yaml = String::from("global: {schedule: {every: 1h}}\ntargets:\n");
    let names: Vec<String> = (0..24).map(|i| format!("region-{i}")).collect();
    for n in &names {
        yaml.push_str(&format!(
            "  - {{name: {n}, dialect: openai-chat, base_url: \"http://127.0.0.1:1/v1\", model: m}}\n"
        ));
    }
    let mut owned: Vec<Vec<String>> = Vec::new();
    for index in 0..3 {
        let running = commands::start_with_web(
            common::load(&yaml),
            None,
            "127.0.0.1:0",
            inferprobe::webconfig::WebSecurity::open(),
            Shard::new(index, 3).unwrap(),
        )
        .await
        .expect("starts");
        let (_, text) = get(&format!("http://{}/metrics", running.addr)).await;
        let mut mine: Vec<String> = names
            .iter()
            .filter(|n| text.contains(&format!("target=\"{n}\"")))
            .cloned()
            .collect();
        mine.sort();
        owned.push(mine);
        running.stop().await;
    }
    let mut all: Vec<String> = owned.concat();
    all.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(
        all, expected,
        "every target is probed by exactly one of three replicas"
    );
    assert!(owned.iter().all(|o| !o.is_empty()), "{owned:?}");
}
