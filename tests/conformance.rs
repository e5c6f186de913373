//! Every dialect through the same checks against the built-in simulator: tokens counted, the four
//! milestones set and ordered, usage and its fallback, and every `result` class reachable.

mod common;

use std::time::Duration;

use inferprobe::config::{BaseUrl, Checks, Scenario, Target};
use inferprobe::probe::dialect::{AuthStyle, DialectKind};
use inferprobe::probe::engine;
use inferprobe::probe::trace::TokenSource;
use inferprobe::probe::{Outcome, ProbeResult};
use inferprobe::runtime::simulator_base_url;

fn target(dialect: DialectKind, base_url: String) -> Target {
    let mut t = common::sim_target(dialect, base_url);
    t.price = Some(inferprobe::config::PriceConfig {
        input_per_million: 1.0,
        output_per_million: 2.0,
        cached_input_per_million: None,
    });
    t
}

async fn probe(t: &Target, scenario: &Scenario) -> Outcome {
    let url = match &t.base_url {
        BaseUrl::Url(u) => u.clone(),
        BaseUrl::Simulator => unreachable!(),
    };
    let client = engine::client_for(&t.timeouts).expect("client");
    engine::run_probe(&client, t, &url, scenario).await
}

fn with_fault(mut t: Target, fault: &str) -> Target {
    t.headers
        .insert("x-sim-fault".to_string(), fault.to_string());
    t
}

#[tokio::test]
async fn every_dialect_streams_counts_and_times_the_same_way() {
    let sim = common::sim("ttft: 150ms\nitl: 10ms\noutput_tokens: 20\n").await;
    for dialect in DialectKind::ALL {
        let t = target(dialect, simulator_base_url(&sim.base_url(), dialect));
        let o = probe(&t, &Scenario::builtin_default()).await;
        assert_eq!(o.result, ProbeResult::Success, "{dialect:?}: {:?}", o.error);
        assert_eq!(o.output_tokens, 20, "{dialect:?}");
        assert_eq!(o.output_events, 20, "{dialect:?}");
        // Every dialect's simulator reports usage: the count must come from the server.
        if dialect == DialectKind::AnthropicMessages {
            assert_eq!(o.token_source, TokenSource::MessageDeltaUsage);
        } else if matches!(
            dialect,
            DialectKind::OpenaiChat | DialectKind::OpenaiCompletions
        ) {
            assert_eq!(o.token_source, TokenSource::Usage);
        } else {
            assert_ne!(o.token_source, TokenSource::CountedEvents, "{dialect:?}");
        }
        assert!(o.input_tokens.unwrap_or(0) > 0, "{dialect:?} input tokens");
        assert_eq!(o.inter_token_latencies.len(), 19, "{dialect:?}");
        let (ttfb, first_event, ttft, answer, e2e) = (
            o.ttfb.unwrap(),
            o.time_to_first_event.unwrap(),
            o.ttft.unwrap(),
            o.time_to_first_answer_token.unwrap(),
            o.e2e.unwrap(),
        );
        assert!(
            ttfb <= first_event && first_event <= ttft && ttft == answer && answer < e2e,
            "{dialect:?} {o:?}"
        );
        assert!(
            ttft >= Duration::from_millis(150),
            "{dialect:?} ttft {ttft:?}"
        );
        assert!(
            ttft < Duration::from_millis(600),
            "{dialect:?} ttft {ttft:?}"
        );
        let tpot = o.tpot.unwrap();
        assert!(
            tpot >= Duration::from_millis(8) && tpot < Duration::from_millis(60),
            "{dialect:?} tpot {tpot:?}"
        );
        assert!(o.output_tokens_per_second.unwrap() > 0.0);
        let expected_cost = (o.input_tokens.unwrap() as f64 * 1.0 + 20.0 * 2.0) / 1e6;
        assert!(
            (o.cost_usd.unwrap() - expected_cost).abs() < 1e-12,
            "{dialect:?}"
        );
        // ConverseStream names no model in its events (the model is in the request path).
        let model = (dialect != DialectKind::BedrockConverse).then_some("sim-llm");
        assert_eq!(o.response_model.as_deref(), model, "{dialect:?}");
        assert!(
            o.answer.split_whitespace().count() >= 20,
            "{dialect:?} answer {:?}",
            o.answer
        );
    }
    sim.shutdown().await;
}

/// What a user runs: `inferprobe probe --url … --dialect D --json` against a simulator with a
/// 300 ms TTFT and 20 ms between tokens, for every dialect in the table. A dialect the simulator
/// cannot serve fails here. Tolerances are wide for shared machines; BENCHMARKS.md section 1
/// measures the error properly.
#[tokio::test]
async fn the_probe_command_times_every_dialect_against_the_simulator() {
    let sim = common::sim("ttft: 300ms\nitl: 20ms\noutput_tokens: 30\n").await;
    let mut runs = Vec::new();
    for dialect in DialectKind::ALL {
        let url = simulator_base_url(&sim.base_url(), dialect);
        runs.push(tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_inferprobe"))
                .args(["probe", "--url", &url, "--dialect", dialect.as_str()])
                .args(["--model", "sim-llm", "--json"])
                // Signing dialects sign with these (the simulator does not verify signatures).
                .env("AWS_ACCESS_KEY_ID", "AKIDCONFORMANCE")
                .env("AWS_SECRET_ACCESS_KEY", "conformance-secret")
                .env("AWS_REGION", "us-east-1")
                .output()
                .expect("run inferprobe probe");
            (dialect, out)
        }));
    }
    for run in runs {
        let (dialect, out) = run.await.expect("task");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{dialect:?}: exit {:?}\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
        assert_eq!(v["result"], "success", "{dialect:?}: {v}");
        assert_eq!(v["output_tokens"], 30, "{dialect:?}: {v}");
        assert_ne!(v["token_source"], "counted_events", "{dialect:?}: {v}");
        let ttft = v["time_to_first_token_seconds"].as_f64().unwrap_or(0.0);
        assert!((0.285..0.6).contains(&ttft), "{dialect:?}: ttft {ttft}");
        let itl = v["inter_token_latency_seconds"]["p50"]
            .as_f64()
            .unwrap_or(0.0);
        assert!((0.017..0.045).contains(&itl), "{dialect:?}: itl p50 {itl}");
        assert_eq!(v["inter_token_latency_seconds"]["count"], 29, "{dialect:?}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn openai_without_usage_counts_events_and_says_so() {
    let sim = common::sim("ttft: 20ms\nitl: 2ms\noutput_tokens: 12\n").await;
    for dialect in [DialectKind::OpenaiChat, DialectKind::OpenaiCompletions] {
        let mut t = target(dialect, simulator_base_url(&sim.base_url(), dialect));
        t.include_usage = false;
        let o = probe(&t, &Scenario::builtin_default()).await;
        assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
        assert_eq!(o.token_source, TokenSource::CountedEvents);
        assert_eq!(o.output_tokens, 12);
        assert_eq!(o.input_tokens, None);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn reasoning_comes_before_the_first_answer_token() {
    let sim = common::sim("ttft: 50ms\nitl: 10ms\noutput_tokens: 5\nreasoning_tokens: 8\n").await;
    // Every dialect with a reasoning channel (legacy Completions has none).
    for dialect in DialectKind::ALL
        .into_iter()
        .filter(|d| *d != DialectKind::OpenaiCompletions)
    {
        let t = target(dialect, simulator_base_url(&sim.base_url(), dialect));
        let o = probe(&t, &Scenario::builtin_default()).await;
        assert_eq!(o.result, ProbeResult::Success, "{dialect:?}: {:?}", o.error);
        assert_eq!(o.output_events, 13, "{dialect:?}");
        let gap = o.time_to_first_answer_token.unwrap() - o.ttft.unwrap();
        assert!(
            gap >= Duration::from_millis(60),
            "{dialect:?}: 8 reasoning tokens at 10 ms before the answer, got {gap:?}"
        );
    }
    sim.shutdown().await;
}

/// Each simulator fault provokes the `result` it is named after, in every dialect.
#[tokio::test]
async fn every_fault_kind_maps_to_its_result_in_every_dialect() {
    let sim = common::sim("ttft: 30ms\nitl: 5ms\noutput_tokens: 10\nstall_duration: 30s\n").await;
    let faults = [
        "rate_limited",
        "http_4xx",
        "http_5xx",
        "api_error",
        "stream_aborted",
        "timeout_idle",
        "malformed_stream",
        "empty_response",
    ];
    let mut tasks = Vec::new();
    for dialect in DialectKind::ALL {
        for fault in faults {
            let mut t = with_fault(
                target(dialect, simulator_base_url(&sim.base_url(), dialect)),
                fault,
            );
            t.timeouts.idle = Duration::from_millis(400);
            tasks.push(tokio::spawn(async move {
                let o = probe(&t, &Scenario::builtin_default()).await;
                (dialect, fault, o)
            }));
        }
    }
    for task in tasks {
        let (dialect, fault, o) = task.await.expect("task");
        assert_eq!(
            o.result.as_str(),
            fault,
            "{dialect:?} fault {fault}: error {:?}",
            o.error
        );
        assert!(
            o.error.is_some(),
            "{dialect:?} {fault}: a failure carries a reason"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn timeouts_connect_tls_and_checks_have_their_own_results() {
    let sim =
        common::sim("ttft: 200ms\nitl: 20ms\noutput_tokens: 50\nslow_headers_delay: 300ms\n").await;
    let dialect = DialectKind::OpenaiChat;
    let base = simulator_base_url(&sim.base_url(), dialect);
    let scenario = Scenario::builtin_default();

    let mut t = target(dialect, base.clone());
    t.timeouts.first_token = Duration::from_millis(80);
    let o = probe(&t, &scenario).await;
    assert_eq!(o.result, ProbeResult::TimeoutFirstToken, "{:?}", o.error);
    assert!(
        o.elapsed >= Duration::from_millis(80) && o.elapsed < Duration::from_millis(1500),
        "{:?}",
        o.elapsed
    );

    let mut t = target(dialect, base.clone());
    t.timeouts.first_token = Duration::from_millis(350);
    t.timeouts.total = Duration::from_millis(450);
    let o = probe(&t, &scenario).await;
    assert_eq!(o.result, ProbeResult::TimeoutTotal, "{:?}", o.error);
    assert!(
        o.ttft.is_some(),
        "the first token arrived before the total timeout"
    );
    assert!(o.e2e.is_none(), "an incomplete stream has no E2E");

    // Nothing listens on port 1 of loopback.
    let t = target(dialect, "http://127.0.0.1:1/v1".to_string());
    let o = probe(&t, &scenario).await;
    assert_eq!(o.result, ProbeResult::ConnectError, "{:?}", o.error);

    // TLS against a plain-HTTP listener fails in the handshake.
    let t = target(dialect, base.replace("http://", "https://"));
    let o = probe(&t, &scenario).await;
    assert_eq!(o.result, ProbeResult::TlsError, "{:?}", o.error);

    let mut s = Scenario::builtin_default();
    s.checks = Checks {
        expect_model: Some("gpt-9".to_string()),
        ..Checks::default()
    };
    let o = probe(&target(dialect, base.clone()), &s).await;
    assert_eq!(o.result, ProbeResult::CheckFailed);
    assert_eq!(
        o.error.as_deref(),
        Some("response model \"sim-llm\" != expected \"gpt-9\"")
    );

    let o = probe(
        &with_fault(target(dialect, base.clone()), "slow_headers"),
        &scenario,
    )
    .await;
    assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
    assert!(
        o.ttfb.unwrap() >= Duration::from_millis(300),
        "slow headers show in TTFB: {:?}",
        o.ttfb
    );

    // A response larger than the byte cap is cut off.
    let mut t = target(dialect, base.clone());
    t.max_response_bytes = 600;
    let o = probe(&t, &scenario).await;
    assert_eq!(o.result, ProbeResult::StreamAborted);
    let e = o.error.as_deref().unwrap_or("");
    assert!(
        e.starts_with("response exceeded 600 bytes after ") && e.ends_with(" output events"),
        "{e}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn api_key_is_sent_the_dialects_way() {
    let sim =
        common::sim("ttft: 10ms\nitl: 1ms\noutput_tokens: 3\napi_key: sk-conformance-123\n").await;
    for dialect in DialectKind::ALL {
        let mut t = target(dialect, simulator_base_url(&sim.base_url(), dialect));
        t.api_key = None;
        let o = probe(&t, &Scenario::builtin_default()).await;
        assert_eq!(o.result, ProbeResult::Http4xx, "{dialect:?} without a key");
        if dialect.default_auth() == AuthStyle::AwsSigv4 && o.http_status.is_none() {
            // No AWS credentials where the test runs: the request cannot be signed, so it is
            // not sent (see `bedrock_requests_are_signed_with_the_environments_credentials`).
            let e = o.error.as_deref().unwrap_or("");
            assert!(
                e.starts_with("request not sent: it cannot be authorized: "),
                "{e}"
            );
        } else {
            assert_eq!(o.http_status, Some(401), "{dialect:?}");
        }
        assert_eq!(o.cost_usd, None, "a refused request has no token cost");
        t.api_key = Some(inferprobe::config::Secret::new(
            "sk-conformance-123".to_string(),
        ));
        let o = probe(&t, &Scenario::builtin_default()).await;
        assert_eq!(
            o.result,
            ProbeResult::Success,
            "{dialect:?} with a key: {:?}",
            o.error
        );
        t.api_key = Some(inferprobe::config::Secret::new("sk-wrong-456".to_string()));
        let o = probe(&t, &Scenario::builtin_default()).await;
        assert_eq!(o.result, ProbeResult::Http4xx);
        assert!(
            !format!("{o:?}").contains("sk-wrong-456"),
            "the key never appears in an outcome"
        );
    }
    sim.shutdown().await;
}

/// Bedrock without an API key: every request is signed with SigV4 from the environment's
/// credentials (the simulator, given a key, accepts a signature by that access key id only), and
/// without credentials the probe is not sent and says what is missing, naming no secret.
#[tokio::test]
async fn bedrock_requests_are_signed_with_the_environments_credentials() {
    let sim =
        common::sim("ttft: 10ms\nitl: 1ms\noutput_tokens: 3\napi_key: AKIDCONFORMANCE7\n").await;
    let dialect = DialectKind::BedrockConverse;
    let url = simulator_base_url(&sim.base_url(), dialect);
    let home = tempfile::tempdir().expect("temp dir");
    let run = |access_key: Option<&'static str>| {
        let url = url.clone();
        let home = home.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_inferprobe"));
            cmd.args(["probe", "--url", &url, "--dialect", dialect.as_str()])
                .args(["--model", "anthropic.claude-sonnet-4-5-v1:0", "--json"]);
            for (k, _) in std::env::vars() {
                if k.starts_with("AWS_") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("HOME", &home).env("AWS_REGION", "us-east-1");
            if let Some(id) = access_key {
                cmd.env("AWS_ACCESS_KEY_ID", id)
                    .env(
                        "AWS_SECRET_ACCESS_KEY",
                        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY",
                    )
                    .env("AWS_SESSION_TOKEN", "session-token-conformance");
            }
            cmd.output().expect("run inferprobe probe")
        })
    };
    let out = run(Some("AKIDCONFORMANCE7")).await.expect("task");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["result"], "success", "{v}");

    let out = run(Some("AKIDSOMEONEELSE")).await.expect("task");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        (v["result"].as_str(), v["http_status"].as_u64()),
        (Some("http_4xx"), Some(401))
    );

    let out = run(None).await.expect("task");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["result"], "http_4xx", "{v}");
    assert_eq!(v["http_status"], serde_json::Value::Null, "{v}");
    let e = v["error"].as_str().unwrap_or("");
    assert!(
        e.starts_with("request not sent: it cannot be authorized: ")
            && e.contains("AWS_ACCESS_KEY_ID"),
        "{e}"
    );
    for secret in ["SECRETKEY", "session-token-conformance"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    sim.shutdown().await;
}

use common::{replay, Replay};

fn sse_fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sse/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn probe_replay(dialect: DialectKind, r: &Replay, scenario: &Scenario) -> Outcome {
    // The base URL each dialect's SDK would take for this server.
    let base = dialect.simulator_base_url(&r.base_url);
    probe(&target(dialect, base), scenario).await
}

#[tokio::test]
async fn recorded_streams_report_the_servers_token_count_and_its_field() {
    let cases = [
        (
            DialectKind::OpenaiChat,
            "groq_x_groq_usage.txt",
            8,
            3,
            TokenSource::XGroqUsage,
            Some(43),
        ),
        (
            DialectKind::OpenaiChat,
            "llamacpp_timings_only.txt",
            6,
            5,
            TokenSource::Timings,
            Some(33),
        ),
        (
            DialectKind::OpenaiChat,
            "llamacpp_usage_and_timings.txt",
            2,
            2,
            TokenSource::Usage,
            Some(21),
        ),
        (
            DialectKind::OpenaiChat,
            "deepseek_reasoner.txt",
            9,
            3,
            TokenSource::Usage,
            Some(74),
        ),
        (
            DialectKind::OpenaiChat,
            "mistral_chat.txt",
            4,
            2,
            TokenSource::Usage,
            Some(11),
        ),
        (
            DialectKind::OpenaiChat,
            "ollama_chat.txt",
            3,
            3,
            TokenSource::Usage,
            Some(30),
        ),
        (
            DialectKind::OpenaiCompletions,
            "ollama_completions.txt",
            3,
            2,
            TokenSource::Usage,
            Some(12),
        ),
        (
            DialectKind::OpenaiChat,
            "gemini_usage_running_total.txt",
            7,
            3,
            TokenSource::Usage,
            Some(8),
        ),
        (
            DialectKind::AnthropicMessages,
            "anthropic_text.txt",
            12,
            3,
            TokenSource::MessageDeltaUsage,
            Some(25),
        ),
    ];
    for (dialect, name, tokens, events, source, input) in cases {
        let r = replay("200 OK", "text/event-stream", sse_fixture(name)).await;
        let o = probe_replay(dialect, &r, &Scenario::builtin_default()).await;
        assert_eq!(o.result, ProbeResult::Success, "{name}: {:?}", o.error);
        assert_eq!(
            (
                o.output_tokens,
                o.output_events,
                o.token_source,
                o.input_tokens
            ),
            (tokens, events, source, input),
            "{name}"
        );
        assert!(!o.token_count_mismatch(), "{name}");
        let json = inferprobe::commands::outcome_json(&o, dialect);
        assert_eq!(json["token_source"], source.as_str(), "{name}");
        assert_eq!(json["token_count_mismatch"], false, "{name}");
    }
    // DeepSeek's cache hits and reasoning tokens reach the outcome.
    let r = replay(
        "200 OK",
        "text/event-stream",
        sse_fixture("deepseek_reasoner.txt"),
    )
    .await;
    let o = probe_replay(DialectKind::OpenaiChat, &r, &Scenario::builtin_default()).await;
    assert_eq!(
        (o.cached_input_tokens, o.reasoning_tokens),
        (Some(64), Some(7))
    );
}

/// A stream of four answer events whose final chunk reports `usage` with `completion` tokens.
fn chat_with_usage(completion: &str) -> String {
    let mut s = String::new();
    for word in ["one", " two", " three", " four"] {
        s.push_str(&format!(
            "data: {{\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}}}}]}}\n\n"
        ));
    }
    s.push_str(
        "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    );
    s.push_str(&format!(
        "data: {{\"model\":\"m\",\"choices\":[],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":{completion}}}}}\n\ndata: [DONE]\n\n"
    ));
    s
}

fn observe(o: &Outcome) -> String {
    let registry = prometheus::Registry::new();
    let metrics =
        inferprobe::metrics::ProbeMetrics::register(&registry, &std::collections::BTreeMap::new())
            .expect("register");
    metrics.precreate(&o.target, &o.model, &o.scenario);
    metrics.observe(o);
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encode")
}

#[tokio::test]
async fn usage_below_the_event_count_is_a_counted_mismatch() {
    let r = replay("200 OK", "text/event-stream", chat_with_usage("2")).await;
    let o = probe_replay(DialectKind::OpenaiChat, &r, &Scenario::builtin_default()).await;
    assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
    assert_eq!((o.output_tokens, o.output_events), (2, 4));
    assert!(o.token_count_mismatch());
    let text = observe(&o);
    let line = format!(
        "inferprobe_token_count_mismatch_total{{model=\"{}\",scenario=\"{}\",target=\"{}\"}} 1",
        o.model, o.scenario, o.target
    );
    assert!(
        text.lines().any(|l| l == line),
        "missing {line} in:\n{text}"
    );

    // Packed events (more tokens than events) are no mismatch.
    let r = replay("200 OK", "text/event-stream", chat_with_usage("9")).await;
    let o = probe_replay(DialectKind::OpenaiChat, &r, &Scenario::builtin_default()).await;
    assert_eq!((o.output_tokens, o.output_events), (9, 4));
    assert!(!o.token_count_mismatch());
    assert!(observe(&o).contains("inferprobe_token_count_mismatch_total{model=\"sim-llm\",scenario=\"default\",target=\"t-openai-chat\"} 0"));
}

#[tokio::test]
async fn implausible_usage_is_a_malformed_stream_and_never_reaches_the_counters() {
    let mut scenario = Scenario::builtin_default();
    scenario.max_tokens = 64;
    let cases = [
        (
            u64::MAX.to_string(),
            "usage.completion_tokens = 18446744073709551615 (more than 100000000 tokens)",
        ),
        (
            "5000".to_string(),
            "implausible usage: usage reports 5000 output tokens for a request limited to 64",
        ),
    ];
    for (completion, reason) in cases {
        let r = replay("200 OK", "text/event-stream", chat_with_usage(&completion)).await;
        let o = probe_replay(DialectKind::OpenaiChat, &r, &scenario).await;
        assert_eq!(o.result, ProbeResult::MalformedStream, "{completion}");
        let error = o.error.clone().unwrap_or_default();
        assert!(error.contains(reason), "{completion}: {error}");
        assert_eq!(o.token_source, TokenSource::CountedEvents, "{completion}");
        assert_eq!(o.output_tokens, 4, "{completion}: counted, not reported");
        let text = observe(&o);
        let line = format!(
            "inferprobe_tokens_total{{direction=\"output\",model=\"{}\",scenario=\"{}\",target=\"{}\"}} 4",
            o.model, o.scenario, o.target
        );
        assert!(
            text.lines().any(|l| l == line),
            "missing {line} in:\n{text}"
        );
    }
    // Within the slack (4 x 64 + 64 = 320) a count is believed.
    let r = replay("200 OK", "text/event-stream", chat_with_usage("320")).await;
    let o = probe_replay(DialectKind::OpenaiChat, &r, &scenario).await;
    assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
    assert_eq!(o.output_tokens, 320);
}

/// Every row of the result table, through the engine: statuses with recorded error bodies, and
/// recorded streams that carry an error.
#[tokio::test]
async fn one_condition_one_result_whatever_the_transport() {
    let anthropic_overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
    let statuses = [
        (
            DialectKind::OpenaiChat,
            429,
            "Too Many Requests",
            r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
            ProbeResult::RateLimited,
        ),
        (
            DialectKind::AnthropicMessages,
            529,
            "Site Overloaded",
            anthropic_overloaded,
            ProbeResult::Http5xx,
        ),
        (
            DialectKind::OpenaiChat,
            503,
            "Service Unavailable",
            r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"server_error","param":null,"code":null}}"#,
            ProbeResult::Http5xx,
        ),
        (
            DialectKind::OpenaiChat,
            500,
            "Internal Server Error",
            r#"{"error":{"message":"boom","type":"InternalServerError","param":null,"code":500}}"#,
            ProbeResult::Http5xx,
        ),
        (
            DialectKind::OpenaiChat,
            400,
            "Bad Request",
            r#"{"error":{"message":"bad","type":"BadRequestError","param":null,"code":400}}"#,
            ProbeResult::Http4xx,
        ),
    ];
    for (dialect, status, reason, body, want) in statuses {
        let r = replay(
            &format!("{status} {reason}"),
            "application/json",
            body.to_string(),
        )
        .await;
        let o = probe_replay(dialect, &r, &Scenario::builtin_default()).await;
        assert_eq!(o.result, want, "HTTP {status}: {:?}", o.error);
        assert_eq!(o.http_status, Some(status));
    }
    let streams = [
        (
            DialectKind::OpenaiChat,
            "openai_stream_error.txt",
            ProbeResult::RateLimited,
        ),
        (
            DialectKind::AnthropicMessages,
            "anthropic_rate_limited.txt",
            ProbeResult::RateLimited,
        ),
        (
            DialectKind::OpenaiChat,
            "groq_stream_error.txt",
            ProbeResult::RateLimited,
        ),
        (
            DialectKind::AnthropicMessages,
            "anthropic_overloaded.txt",
            ProbeResult::ApiError,
        ),
        (
            DialectKind::OpenaiChat,
            "vllm_stream_error_current.txt",
            ProbeResult::ApiError,
        ),
        (
            DialectKind::OpenaiChat,
            "tgi_stream_error.txt",
            ProbeResult::ApiError,
        ),
        (
            DialectKind::OpenaiChat,
            "openrouter_midstream_error.txt",
            ProbeResult::ApiError,
        ),
    ];
    for (dialect, name, want) in streams {
        let r = replay("200 OK", "text/event-stream", sse_fixture(name)).await;
        let o = probe_replay(dialect, &r, &Scenario::builtin_default()).await;
        assert_eq!(o.result, want, "{name}: {:?}", o.error);
        assert!(
            o.error
                .as_deref()
                .unwrap_or_default()
                .starts_with("error in stream: "),
            "{name}: {:?}",
            o.error
        );
    }
}
