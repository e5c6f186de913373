//! The OpenAI Responses and Gemini dialects on their recorded-style transcripts
//! (`tests/fixtures/sse/openai-responses/`, `tests/fixtures/sse/gemini/`, each with a
//! SOURCES.md): framed by the real SSE framer under several chunkings and line endings and
//! decoded, with every signal asserted.

mod common;

use std::time::Duration;

use common::decode;
use inferprobe::probe::dialect::{DialectKind, ErrorCondition, OutputKind, Signal};
use inferprobe::probe::trace::{TokenSource, UsageReport, UsageTotals};

fn fixture(dir: &str, name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/sse/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes a fixture under 1-byte, 7-byte and whole-body chunks, LF and CRLF, and checks that
/// every variant gives `want`.
#[track_caller]
fn check(dialect: DialectKind, name: &str, want: &[Signal]) {
    let dir = dialect.as_str();
    let lf = fixture(dir, name);
    let crlf = lf.replace('\n', "\r\n");
    for (ending, body) in [("lf", &lf), ("crlf", &crlf)] {
        for size in [Some(1), Some(7), None] {
            let got = decode(dialect, body.as_bytes(), size);
            assert_eq!(
                got.as_deref(),
                Ok(want),
                "{dir}/{name} {ending} chunk={size:?}"
            );
        }
    }
}

fn out(kind: OutputKind, text: &str) -> Signal {
    Signal::Output {
        kind,
        text: text.to_string(),
    }
}

fn answer(text: &str) -> Signal {
    out(OutputKind::Answer, text)
}

fn usage(
    source: TokenSource,
    input: Option<u64>,
    output: Option<u64>,
    cached: Option<u64>,
    reasoning: Option<u64>,
) -> Signal {
    Signal::Usage(UsageReport {
        source,
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        reasoning_tokens: reasoning,
    })
}

fn error(kind: ErrorCondition, message: &str) -> Signal {
    Signal::Error {
        kind,
        message: message.to_string(),
    }
}

/// The merged usage a probe of these signals would report.
fn totals(signals: &[Signal]) -> UsageTotals {
    let mut u = UsageTotals::default();
    for s in signals {
        if let Signal::Usage(r) = s {
            u.merge(r);
        }
    }
    u
}

const R: DialectKind = DialectKind::OpenaiResponses;
const G: DialectKind = DialectKind::Gemini;

#[test]
fn responses_text() {
    check(
        R,
        "text.txt",
        &[
            Signal::Model("gpt-probe-mini-2026-01-15".into()),
            answer("Two"),
            answer(" plus two"),
            answer(" is four."),
            usage(TokenSource::Usage, Some(19), Some(6), Some(0), Some(0)),
            Signal::FinishReason("completed".into()),
            Signal::Done,
        ],
    );
}

#[test]
fn responses_reasoning_summary_and_cached_input() {
    let want = [
        Signal::Model("o-probe-2026-02-01".into()),
        out(OutputKind::Reasoning, "**Adding small numbers**"),
        out(OutputKind::Reasoning, "\n\nThe sum is simple."),
        answer("Four"),
        answer("."),
        usage(
            TokenSource::Usage,
            Some(1100),
            Some(70),
            Some(1024),
            Some(64),
        ),
        Signal::FinishReason("completed".into()),
        Signal::Done,
    ];
    check(R, "reasoning_summary.txt", &want);
    let u = totals(&want);
    assert_eq!(
        (u.output(), u.cached(), u.reasoning()),
        (Some((70, TokenSource::Usage)), Some(1024), Some(64))
    );
}

#[test]
fn responses_vllm_reasoning_cut_by_max_output_tokens() {
    check(
        R,
        "vllm_reasoning_truncated.txt",
        &[
            Signal::Model("Qwen/Qwen3-8B".into()),
            out(OutputKind::Reasoning, "The user"),
            out(OutputKind::Reasoning, " wants a count."),
            answer("One,"),
            answer(" two,"),
            usage(TokenSource::Usage, Some(31), Some(16), Some(16), Some(11)),
            Signal::FinishReason("max_output_tokens".into()),
            Signal::Done,
        ],
    );
}

#[test]
fn responses_function_call_arguments() {
    let t = |s| out(OutputKind::ToolCall, s);
    check(
        R,
        "function_call.txt",
        &[
            Signal::Model("gpt-probe-2026-01-15".into()),
            Signal::ToolCall {
                id: Some("call_Qz1".into()),
                name: "get_time".into(),
                signature: None,
            },
            t("{\""),
            t("tz\":\""),
            t("UTC\"}"),
            usage(TokenSource::Usage, Some(52), Some(15), Some(0), Some(0)),
            Signal::FinishReason("completed".into()),
            Signal::Done,
        ],
    );
}

#[test]
fn responses_incomplete_is_a_complete_stream() {
    check(
        R,
        "incomplete.txt",
        &[
            Signal::Model("gpt-probe-mini-2026-01-15".into()),
            answer("Once upon"),
            answer(" a time"),
            usage(TokenSource::Usage, Some(12), Some(16), Some(0), Some(0)),
            Signal::FinishReason("max_output_tokens".into()),
            Signal::Done,
        ],
    );
}

#[test]
fn responses_failed_with_a_rate_limit() {
    check(
        R,
        "failed_rate_limit.txt",
        &[
            Signal::Model("gpt-probe-2026-01-15".into()),
            error(
                ErrorCondition::RateLimited,
                "rate_limit_exceeded: Rate limit reached for requests per minute. Try again \
                 shortly.",
            ),
        ],
    );
}

#[test]
fn responses_error_event() {
    check(
        R,
        "error_event.txt",
        &[
            Signal::Model("gpt-probe-2026-01-15".into()),
            answer("Let me"),
            answer(" check"),
            error(
                ErrorCondition::Other,
                "server_error: The server had an error while processing your request.",
            ),
        ],
    );
}

#[test]
fn responses_truncated_has_no_end() {
    check(
        R,
        "truncated.txt",
        &[
            Signal::Model("gpt-probe-mini-2026-01-15".into()),
            answer("The answer"),
            answer(" is"),
        ],
    );
}

#[test]
fn gemini_text() {
    let u9 = usage(TokenSource::UsageMetadata, Some(9), None, None, None);
    check(
        G,
        "text.txt",
        &[
            Signal::Model("gemini-probe-flash-001".into()),
            answer("Two"),
            u9.clone(),
            answer(" plus two"),
            u9,
            answer(" is four."),
            usage(TokenSource::UsageMetadata, Some(9), Some(7), None, None),
            Signal::FinishReason("STOP".into()),
        ],
    );
}

#[test]
fn gemini_thoughts_then_answer() {
    let u = |candidates: u64, cached| {
        usage(
            TokenSource::UsageMetadata,
            Some(11),
            Some(candidates + 38),
            cached,
            Some(38),
        )
    };
    let want = [
        Signal::Model("gemini-probe-pro-002".into()),
        out(OutputKind::Reasoning, "**Summing**\nTwo small numbers."),
        u(0, None),
        answer("The sum is"),
        u(3, None),
        answer(" four."),
        u(7, Some(8)),
        Signal::FinishReason("STOP".into()),
    ];
    check(G, "thoughts.txt", &want);
    let t = totals(&want);
    assert_eq!(
        (t.output(), t.reasoning(), t.cached()),
        (Some((45, TokenSource::UsageMetadata)), Some(38), Some(8))
    );
}

#[test]
fn gemini_function_call() {
    check(
        G,
        "function_call.txt",
        &[
            Signal::Model("gemini-probe-flash-001".into()),
            Signal::ToolCall {
                id: None,
                name: "get_time".into(),
                signature: None,
            },
            out(OutputKind::ToolCall, r#"{"tz":"UTC"}"#),
            usage(TokenSource::UsageMetadata, Some(40), Some(6), None, None),
            Signal::FinishReason("STOP".into()),
        ],
    );
}

#[test]
fn gemini_max_tokens() {
    check(
        G,
        "max_tokens.txt",
        &[
            Signal::Model("gemini-probe-flash-001".into()),
            answer("Once upon a time"),
            usage(TokenSource::UsageMetadata, Some(6), None, None, None),
            answer(" there was"),
            usage(TokenSource::UsageMetadata, Some(6), Some(8), None, None),
            Signal::FinishReason("MAX_TOKENS".into()),
        ],
    );
}

#[test]
fn gemini_safety_stop_is_withheld_content() {
    check(
        G,
        "safety.txt",
        &[
            Signal::Model("gemini-probe-flash-001".into()),
            answer("Here is"),
            usage(TokenSource::UsageMetadata, Some(10), None, None, None),
            usage(TokenSource::UsageMetadata, Some(10), Some(2), None, None),
            Signal::FinishReason("SAFETY".into()),
            Signal::Withheld {
                field: "finishReason",
                reason: "SAFETY".into(),
            },
        ],
    );
}

#[test]
fn gemini_in_stream_errors() {
    check(
        G,
        "rate_limited.txt",
        &[error(
            ErrorCondition::RateLimited,
            "RESOURCE_EXHAUSTED (429): Resource has been exhausted (e.g. check quota).",
        )],
    );
    check(
        G,
        "unavailable.txt",
        &[
            Signal::Model("gemini-probe-flash-001".into()),
            answer("Sure,"),
            usage(TokenSource::UsageMetadata, Some(8), None, None, None),
            error(
                ErrorCondition::Overloaded,
                "UNAVAILABLE (503): The model is overloaded. Please try again later.",
            ),
        ],
    );
}

#[test]
fn gemini_truncated_has_no_finish_reason() {
    let u7 = usage(TokenSource::UsageMetadata, Some(7), None, None, None);
    check(
        G,
        "truncated.txt",
        &[
            Signal::Model("gemini-probe-flash-001".into()),
            answer("The capital"),
            u7.clone(),
            answer(" of France"),
            u7,
        ],
    );
}

// ---- The real engine on the same transcripts, served by a loopback replay server ----

use inferprobe::config::{BaseUrl, Scenario, Secret, Target, Timeouts};
use inferprobe::probe::engine;
use inferprobe::probe::{Outcome, ProbeResult};

use common::replay;

async fn probe(dialect: DialectKind, base_url: &str, model: &str) -> Outcome {
    let (mut t, _): (Target, _) =
        inferprobe::commands::adhoc_target(&inferprobe::commands::AdHoc {
            url: Some(base_url),
            dialect: Some(dialect.as_str()),
            model: Some(model),
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
    t.api_key = Some(Secret::new("k-replay-7f3a".to_string()));
    let url = match &t.base_url {
        BaseUrl::Url(u) => u.clone(),
        BaseUrl::Simulator => unreachable!(),
    };
    let client = engine::client_for(&t.timeouts).expect("client");
    engine::run_probe(&client, &t, &url, &Scenario::builtin_default()).await
}

/// A transcript and what a probe of it gets: result, output tokens, `token_source`,
/// output-bearing events and finish reason.
type Expect = (
    DialectKind,
    &'static str,
    ProbeResult,
    u64,
    &'static str,
    u64,
    Option<&'static str>,
);

/// Each transcript through the engine: its `result`, output tokens, where they came from, the
/// output-bearing events and the finish reason.
#[tokio::test]
async fn transcripts_through_the_engine() {
    use ProbeResult::*;
    let cases: [Expect; 16] = [
        (R, "text.txt", Success, 6, "usage", 3, Some("completed")),
        (
            R,
            "reasoning_summary.txt",
            Success,
            70,
            "usage",
            4,
            Some("completed"),
        ),
        (
            R,
            "vllm_reasoning_truncated.txt",
            Success,
            16,
            "usage",
            4,
            Some("max_output_tokens"),
        ),
        (
            R,
            "function_call.txt",
            Success,
            15,
            "usage",
            3,
            Some("completed"),
        ),
        (
            R,
            "incomplete.txt",
            Success,
            16,
            "usage",
            2,
            Some("max_output_tokens"),
        ),
        (
            R,
            "failed_rate_limit.txt",
            RateLimited,
            0,
            "counted_events",
            0,
            None,
        ),
        (R, "error_event.txt", ApiError, 2, "counted_events", 2, None),
        (
            R,
            "truncated.txt",
            StreamAborted,
            2,
            "counted_events",
            2,
            None,
        ),
        (G, "text.txt", Success, 7, "usageMetadata", 3, Some("STOP")),
        (
            G,
            "thoughts.txt",
            Success,
            45,
            "usageMetadata",
            3,
            Some("STOP"),
        ),
        (
            G,
            "function_call.txt",
            Success,
            6,
            "usageMetadata",
            1,
            Some("STOP"),
        ),
        (
            G,
            "max_tokens.txt",
            Success,
            8,
            "usageMetadata",
            2,
            Some("MAX_TOKENS"),
        ),
        (
            G,
            "safety.txt",
            CheckFailed,
            2,
            "usageMetadata",
            1,
            Some("SAFETY"),
        ),
        (
            G,
            "rate_limited.txt",
            RateLimited,
            0,
            "counted_events",
            0,
            None,
        ),
        (G, "unavailable.txt", ApiError, 1, "counted_events", 1, None),
        (
            G,
            "truncated.txt",
            StreamAborted,
            2,
            "counted_events",
            2,
            None,
        ),
    ];
    for (dialect, name, result, tokens, source, events, finish) in cases {
        let r = replay(
            "200 OK",
            "text/event-stream",
            fixture(dialect.as_str(), name),
        )
        .await;
        let base = match dialect {
            DialectKind::OpenaiResponses => format!("{}/v1", r.base_url),
            _ => r.base_url.clone(),
        };
        let o = probe(dialect, &base, "probe-model").await;
        let what = format!("{} {name}: {:?}", dialect.as_str(), o.error);
        assert_eq!(o.result, result, "{what}");
        assert_eq!(o.output_tokens, tokens, "{what}");
        assert_eq!(o.token_source.as_str(), source, "{what}");
        assert_eq!(o.output_events, events, "{what}");
        assert_eq!(o.finish_reason.as_deref(), finish, "{what}");
        assert!(!o.token_count_mismatch(), "{what}");
        match result {
            Success => assert!(o.e2e.is_some() && o.error.is_none(), "{what}"),
            // Withheld content: the stream completed, the answer is unusable.
            CheckFailed => assert!(o.e2e.is_some() && o.error.is_some(), "{what}"),
            _ => assert!(o.e2e.is_none(), "{what}"),
        }
    }
}

/// The request each dialect sends: its path and where the key goes.
#[tokio::test]
async fn requests_carry_the_path_and_the_key_the_dialects_way() {
    let r = replay("200 OK", "text/event-stream", fixture("gemini", "text.txt")).await;
    let o = probe(
        DialectKind::Gemini,
        &r.base_url,
        "models/gemini-probe:flash",
    )
    .await;
    assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
    let heads = r.heads.lock().map(|h| h.clone()).unwrap_or_default();
    let head = heads.first().cloned().unwrap_or_default();
    assert!(
        head.starts_with(
            "POST /v1beta/models/gemini-probe%3Aflash:streamGenerateContent?alt=sse HTTP/1.1"
        ),
        "{head}"
    );
    assert!(head.contains("x-goog-api-key: k-replay-7f3a"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "{head}"
    );
    assert!(
        !head.lines().next().unwrap_or("").contains("k-replay"),
        "{head}"
    );

    let r = replay(
        "200 OK",
        "text/event-stream",
        fixture("openai-responses", "text.txt"),
    )
    .await;
    let o = probe(
        DialectKind::OpenaiResponses,
        &format!("{}/v1", r.base_url),
        "gpt-probe",
    )
    .await;
    assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
    let heads = r.heads.lock().map(|h| h.clone()).unwrap_or_default();
    let head = heads.first().cloned().unwrap_or_default();
    assert!(head.starts_with("POST /v1/responses HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer k-replay-7f3a"),
        "{head}"
    );
}

/// Error bodies on a non-2xx status follow the status; a Gemini quota error is a rate limit.
#[tokio::test]
async fn gemini_http_errors() {
    let body =
        r#"{"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}}"#;
    let r = replay(
        "429 Too Many Requests",
        "application/json",
        body.to_string(),
    )
    .await;
    let o = probe(DialectKind::Gemini, &r.base_url, "gemini-probe").await;
    assert_eq!(o.result, ProbeResult::RateLimited, "{:?}", o.error);
    assert_eq!(o.http_status, Some(429));
    // The same body on a 200 without a stream is still a rate limit.
    let r = replay("200 OK", "application/json", body.to_string()).await;
    let o = probe(DialectKind::Gemini, &r.base_url, "gemini-probe").await;
    assert_eq!(o.result, ProbeResult::RateLimited, "{:?}", o.error);
}

// ---- The simulator's routes for both APIs, with a plain HTTP client ----

async fn sim_with(yaml: &str) -> inferprobe::sim::SimHandle {
    let cfg: inferprobe::config::simulator::SimulatorConfig =
        serde_saphyr::from_str(yaml).expect("simulator yaml");
    inferprobe::sim::start(cfg).await.expect("simulator starts")
}

async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    engine::install_crypto_provider();
    let mut req = reqwest::Client::new().post(url).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, resp.text().await.expect("body"))
}

#[tokio::test]
async fn simulator_gemini_route_reads_model_and_method_from_the_path() {
    let sim = sim_with("ttft: 10ms\nitl: 1ms\noutput_tokens: 3\napi_key: g-sim-key\n").await;
    let base = format!("{}/v1beta/models", sim.base_url());
    let key = [("x-goog-api-key", "g-sim-key")];
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"Count to three."}]}],
                   "generationConfig":{"maxOutputTokens":2}}"#;

    // Unstreamed: the whole answer, cut at maxOutputTokens.
    let (status, ct, text) = post(&format!("{base}/gem-a:generateContent"), &key, body).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["modelVersion"], "gem-a");
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        " one two"
    );
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 4);

    // Streamed: SSE chunks, the last with the finish reason.
    let url = format!("{base}/gem-b:streamGenerateContent?alt=sse");
    let (status, ct, text) = post(&url, &key, body).await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let chunks: Vec<&str> = text.split("\n\n").filter(|c| !c.is_empty()).collect();
    assert_eq!(chunks.len(), 3, "{text}");
    assert!(
        chunks[2].contains(r#""finishReason":"MAX_TOKENS""#),
        "{text}"
    );
    assert!(!text.contains("[DONE]"));

    // Errors in Gemini's shape: a missing key, no alt=sse, an unknown method.
    let (status, _, text) = post(&url, &[], body).await;
    assert_eq!(status, 401);
    assert!(text.contains(r#""status":"UNAUTHENTICATED""#), "{text}");
    let no_sse = format!("{base}/gem-b:streamGenerateContent");
    let (status, _, text) = post(&no_sse, &key, body).await;
    assert_eq!(status, 400);
    assert!(
        text.contains("alt=sse") && text.contains("INVALID_ARGUMENT"),
        "{text}"
    );
    let (status, _, _) = post(&format!("{base}/gem-b:countTokens"), &key, body).await;
    assert_eq!(status, 400);
    let (status, _, text) = post(
        &url,
        &[
            ("x-goog-api-key", "g-sim-key"),
            ("x-sim-fault", "rate_limited"),
        ],
        body,
    )
    .await;
    assert_eq!(status, 429);
    assert!(text.contains("RESOURCE_EXHAUSTED"), "{text}");

    let models: Vec<(String, bool)> = sim
        .ground_truth()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| (r.model.clone(), r.stream))
        .collect();
    assert_eq!(
        models,
        [("gem-a".to_string(), false), ("gem-b".to_string(), true)]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn simulator_responses_route_answers_whole_and_streamed() {
    let sim = sim_with("ttft: 10ms\nitl: 1ms\noutput_tokens: 3\nreasoning_tokens: 2\n").await;
    let url = format!("{}/v1/responses", sim.base_url());
    let (status, _, text) = post(
        &url,
        &[],
        r#"{"model":"r-1","input":"Count.","instructions":"Be brief."}"#,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "reasoning");
    assert_eq!(v["output"][1]["content"][0]["text"], " one two three");
    assert_eq!(v["usage"]["output_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 2);

    let (status, _, text) = post(
        &url,
        &[],
        r#"{"model":"r-1","input":[{"role":"user","content":"Count."}],"stream":true,"max_output_tokens":4}"#,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(names.last(), Some(&"response.incomplete"));
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "response.reasoning_text.delta")
            .count(),
        2
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "response.output_text.delta")
            .count(),
        2
    );
    sim.shutdown().await;
}
