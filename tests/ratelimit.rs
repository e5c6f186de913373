//! Rate limits end to end: the engine reads the rate-limit headers of a 429 and of a 200 stream
//! that carries a rate-limit error, and the daemon holds a rate-limited target until its
//! Retry-After, counts the skipped ticks and exports the remaining quota.
//!
//! The fake servers below bind 127.0.0.1 port 0. Their header names and value formats follow the
//! providers' rate-limit documentation: OpenAI's `x-ratelimit-*` (counts, Go-style durations such
//! as `6m0s`; sample values from its "Rate limits in headers" table) and Anthropic's
//! `anthropic-ratelimit-*` (counts, RFC 3339 reset times), with `retry-after` in seconds.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use common::{eventually, get, sample};
use inferprobe::commands;
use inferprobe::probe::{engine, ProbeResult};

/// Serves an OpenAI-style 429 on `/v1/chat/completions` (with `retry-after: RETRY` seconds) and
/// an Anthropic stream whose only event is a `rate_limit_error` on `/v1/messages`; counts requests.
async fn limited_server(retry_after_secs: u64) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let openai_hits = hits.clone();
    let openai = move || {
        let hits = openai_hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let mut h = HeaderMap::new();
            for (k, v) in [
                ("retry-after", retry_after_secs.to_string()),
                ("x-ratelimit-limit-requests", "60".to_string()),
                ("x-ratelimit-remaining-requests", "0".to_string()),
                ("x-ratelimit-reset-requests", "1s".to_string()),
                ("x-ratelimit-limit-tokens", "150000".to_string()),
                ("x-ratelimit-remaining-tokens", "149984".to_string()),
                ("x-ratelimit-reset-tokens", "6m0s".to_string()),
            ] {
                h.insert(k, HeaderValue::from_str(&v).unwrap());
            }
            let body = r#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#;
            (StatusCode::TOO_MANY_REQUESTS, h, body)
        }
    };
    let anthropic = || async {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert("retry-after-ms", HeaderValue::from_static("2500"));
        h.insert(
            "anthropic-ratelimit-output-tokens-limit",
            HeaderValue::from_static("16000"),
        );
        h.insert(
            "anthropic-ratelimit-output-tokens-remaining",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "anthropic-ratelimit-output-tokens-reset",
            HeaderValue::from_static("2099-01-01T00:00:00Z"),
        );
        let body = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Number of request tokens has exceeded your per-minute rate limit\"}}\n\n";
        (StatusCode::OK, h, body).into_response()
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(openai))
        .route("/v1/messages", axum::routing::post(anthropic));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), hits)
}

fn config(root: &str, every: &str) -> String {
    format!(
        r#"
global:
  schedule: {{every: {every}, jitter: 0}}
  timeouts: {{connect: 1s, first_token: 2s, idle: 2s, total: 3s}}
  max_retry_after: 10m
scenarios:
  short: {{prompt: "Say hi."}}
targets:
  - {{name: oai, dialect: openai-chat, base_url: "{root}/v1", model: gpt, scenarios: [short]}}
  - {{name: ant, dialect: anthropic-messages, base_url: "{root}", model: claude, scenarios: [short]}}
"#
    )
}

#[tokio::test]
async fn the_engine_reads_rate_limit_headers_of_a_429_and_of_an_in_stream_error() {
    let (root, _) = limited_server(7).await;
    let loaded = common::load(&config(&root, "30s"));
    let base_urls = [format!("{root}/v1"), root.clone()];
    let mut outcomes = Vec::new();
    for (t, base) in loaded.targets.iter().zip(&base_urls) {
        let client = engine::client_for(&t.timeouts).unwrap();
        outcomes.push(engine::run_probe(&client, t, base, &t.scenarios[0].0).await);
    }

    let o = &outcomes[0];
    assert_eq!(o.result, ProbeResult::RateLimited, "{:?}", o.error);
    assert_eq!(o.http_status, Some(429));
    let rl = &o.rate_limit;
    assert_eq!(rl.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(rl.requests.remaining, Some(0));
    assert_eq!(rl.requests.limit, Some(60));
    assert_eq!(rl.requests.reset, Some(Duration::from_secs(1)));
    assert_eq!(rl.tokens.remaining, Some(149_984));
    assert_eq!(rl.tokens.reset, Some(Duration::from_secs(360)));

    let o = &outcomes[1];
    assert_eq!(o.result, ProbeResult::RateLimited, "{:?}", o.error);
    assert_eq!(o.http_status, Some(200));
    let rl = &o.rate_limit;
    assert_eq!(rl.retry_after, Some(Duration::from_millis(2500)));
    assert_eq!(rl.output_tokens.remaining, Some(0));
    assert_eq!(rl.output_tokens.limit, Some(16_000));
    assert!(rl
        .output_tokens
        .reset
        .is_some_and(|d| d > Duration::from_secs(3600)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_holds_a_rate_limited_target_and_exports_its_quota() {
    // Probed every second; the server asks for 4 s after each 429.
    let (root, hits) = limited_server(4).await;
    let loaded = common::load(&config(&root, "1s"));
    let running = commands::start(loaded, None, "127.0.0.1:0")
        .await
        .expect("daemon starts");
    let metrics_url = format!("http://{}/metrics", running.addr);
    let skipped = |text: &str, target: &str| {
        sample(
            text,
            "inferprobe_probes_skipped_total",
            &[("target", target), ("reason", "retry_after")],
        )
        .unwrap_or(0.0)
    };
    let text = eventually(
        Duration::from_secs(15),
        "retry_after skips on both targets",
        || {
            let url = metrics_url.clone();
            async move {
                let (_, text) = get(&url).await;
                (skipped(&text, "oai") >= 3.0 && skipped(&text, "ant") >= 2.0).then_some(text)
            }
        },
    )
    .await;
    // While held, the OpenAI target is not probed: each 429 is followed by about three skipped
    // ticks (4 s hold, 1 s interval; two allow for a late tick), and every request the server saw
    // is a recorded probe (one may still be in flight).
    let probes = sample(
        &text,
        "inferprobe_probes_total",
        &[("target", "oai"), ("result", "rate_limited")],
    )
    .unwrap_or(0.0);
    assert!(probes >= 1.0, "{text}");
    let skips = skipped(&text, "oai");
    assert!(
        skips >= 2.0 * (probes - 1.0),
        "{probes} probes vs {skips} skips"
    );
    let seen = hits.load(Ordering::SeqCst) as f64;
    assert!(seen <= probes + 1.0, "{seen} requests vs {probes} probes");

    let quota = |target: &str, resource: &str| {
        sample(
            &text,
            "inferprobe_ratelimit_remaining",
            &[("target", target), ("resource", resource)],
        )
    };
    assert_eq!(quota("oai", "requests"), Some(0.0));
    assert_eq!(quota("oai", "tokens"), Some(149_984.0));
    assert_eq!(quota("ant", "output_tokens"), Some(0.0));
    assert_eq!(quota("ant", "requests"), None, "never reported: no series");
    assert_eq!(
        sample(
            &text,
            "inferprobe_ratelimit_limit",
            &[("target", "oai"), ("resource", "tokens")]
        ),
        Some(150_000.0)
    );
    running.stop().await;
}
