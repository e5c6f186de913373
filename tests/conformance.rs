//! Every dialect through the same checks against the built-in simulator: tokens counted, the four
//! milestones set and ordered, usage and its fallback, and every `result` class reachable.

mod common;

use std::time::Duration;

use inferprobe::config::{BaseUrl, Checks, Scenario, Target, Timeouts};
use inferprobe::probe::dialect::DialectKind;
use inferprobe::probe::engine;
use inferprobe::probe::trace::TokenSource;
use inferprobe::probe::{Outcome, ProbeResult};
use inferprobe::runtime::simulator_base_url;

fn target(dialect: DialectKind, base_url: String) -> Target {
    let (mut t, _) = inferprobe::commands::adhoc_target(&inferprobe::commands::AdHoc {
        url: Some(&base_url),
        dialect: Some(dialect.as_str()),
        model: Some("sim-llm"),
        prompt: None,
        max_tokens: 64,
        api_key_env: None,
        headers: &[],
        no_usage: false,
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            first_token: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(10),
        },
    })
    .expect("a valid ad-hoc target");
    t.name = format!("t-{}", dialect.as_str());
    t.max_response_bytes = 1 << 20;
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
        assert_eq!(o.token_source, TokenSource::Usage, "{dialect:?}");
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
        assert_eq!(o.response_model.as_deref(), Some("sim-llm"), "{dialect:?}");
        assert!(
            o.answer.split_whitespace().count() >= 20,
            "{dialect:?} answer {:?}",
            o.answer
        );
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
    for dialect in [DialectKind::OpenaiChat, DialectKind::AnthropicMessages] {
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
        let o = probe(&t, &Scenario::builtin_default()).await;
        assert_eq!(o.result, ProbeResult::Http4xx, "{dialect:?} without a key");
        assert_eq!(o.http_status, Some(401));
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
