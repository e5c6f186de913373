//! Lints the exported families with `promtool check metrics`, as Prometheus users would.
//!
//! Skipped with a note when `promtool` is not installed, except under CI (env `CI` set), where a
//! missing `promtool` fails the test so the lint cannot silently stop running.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use inferprobe::metrics::{encode, ProbeMetrics, SelfMetrics, SkipReason};
use inferprobe::probe::ratelimit::{Quota, RateLimitInfo};
use inferprobe::probe::trace::TokenSource;
use inferprobe::probe::{Outcome, ProbeResult};

fn outcome(result: ProbeResult) -> Outcome {
    let ms = Duration::from_millis;
    Outcome {
        target: "local".to_string(),
        model: "llama".to_string(),
        scenario: "short_chat".to_string(),
        result,
        error: None,
        started_at: SystemTime::now(),
        started: std::time::Instant::now(),
        http_status: Some(200),
        ttfb: Some(ms(40)),
        time_to_first_event: Some(ms(60)),
        ttft: Some(ms(180)),
        time_to_first_answer_token: Some(ms(220)),
        inter_token_latencies: vec![ms(20), ms(25), ms(30)],
        tpot: Some(ms(25)),
        e2e: Some(ms(300)),
        elapsed: ms(300),
        output_tokens_per_second: Some(13.3),
        input_tokens: Some(20),
        cached_input_tokens: None,
        reasoning_tokens: None,
        output_tokens: 4,
        token_source: TokenSource::Usage,
        output_events: 4,
        cost_usd: Some(0.00002),
        response_model: Some("llama".to_string()),
        finish_reason: Some("length".to_string()),
        answer: "one two three four".to_string(),
        tool_calls: Vec::new(),
        events: Vec::new(),
        rate_limit: RateLimitInfo {
            requests: Quota {
                limit: Some(60),
                remaining: Some(59),
                reset: Some(ms(1000)),
            },
            tokens: Quota {
                limit: Some(150_000),
                remaining: Some(149_984),
                reset: None,
            },
            ..RateLimitInfo::default()
        },
        connection: Default::default(),
        server_timings: Vec::new(),
    }
}

#[test]
fn promtool_check_metrics_is_silent() {
    let registry = prometheus::Registry::new();
    let probes = ProbeMetrics::register(&registry, &BTreeMap::new()).expect("register probes");
    let own = SelfMetrics::register(&registry).expect("register self");
    own.config_reloaded(true, SystemTime::now());
    probes.precreate("local", "llama", "short_chat");
    probes.precreate("remote", "gpt", "short_chat");
    probes.observe(&outcome(ProbeResult::Success));
    probes.observe(&outcome(ProbeResult::CheckFailed));
    probes.skipped("remote", "gpt", "short_chat", SkipReason::Overlap);
    let text = encode(&registry);
    assert!(text.contains("inferprobe_inter_token_latency_seconds_bucket"));
    assert!(text.contains("inferprobe_ratelimit_remaining{"));

    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not on PATH; CI must install it"
            );
            eprintln!("note: promtool not on PATH, skipping the metrics lint");
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.is_empty(),
        "promtool check metrics ({}):\n{report}\non:\n{text}",
        out.status
    );
}
