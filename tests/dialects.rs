//! Recorded-style SSE transcripts framed through `sse::frame` and decoded by each dialect, under
//! several chunkings and line endings; the token count and `token_source` each one yields; and
//! the exact request bodies each dialect builds.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::{decode, frame_events};
use futures_util::{stream, FutureExt, StreamExt};
use inferprobe::probe::dialect::{
    DialectKind, ErrorCondition, Message, OutputKind, ProbeRequest, Signal,
};
use inferprobe::probe::framing::{sse, FrameError};
use inferprobe::probe::result::{ProbeResult, Transport};
use inferprobe::probe::trace::{TokenSource, UsageReport, UsageTotals};
use serde_json::{json, Map, Value};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sse/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes `name` under 1-byte, 7-byte and whole-body chunks, with LF and CRLF line ends, and
/// checks every variant gives `want`.
fn check(dialect: DialectKind, name: &str, want: &[Signal]) {
    let lf = fixture(name);
    let crlf = lf.replace('\n', "\r\n");
    for (ending, body) in [("lf", &lf), ("crlf", &crlf)] {
        for size in [Some(1), Some(7), None] {
            let got = decode(dialect, body.as_bytes(), size);
            assert_eq!(got.as_deref(), Ok(want), "{name} {ending} chunk={size:?}");
        }
    }
}

fn output(kind: OutputKind, text: &str) -> Signal {
    Signal::Output {
        kind,
        text: text.to_string(),
    }
}

fn answer(text: &str) -> Signal {
    output(OutputKind::Answer, text)
}

/// A report of the standard `usage` field.
fn usage(input: Option<u64>, output: Option<u64>, cached: Option<u64>) -> Signal {
    report(TokenSource::Usage, input, output, cached, None)
}

fn report(
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

/// An Anthropic usage report.
fn anthropic(input: Option<u64>, output: Option<u64>, cached: Option<u64>) -> Signal {
    report(TokenSource::MessageDeltaUsage, input, output, cached, None)
}

/// What a probe of this stream would count: (output-bearing events, merged usage). An event
/// with several output kinds is one event, as in the engine.
fn tally(signals: &[Signal]) -> UsageTotals {
    let mut u = UsageTotals::default();
    for s in signals {
        if let Signal::Usage(r) = s {
            u.merge(r);
        }
    }
    u
}

/// Decodes `name` whole and checks the output count, where it came from, and the number of
/// output-bearing events (which a reported count may exceed but not undercut).
#[track_caller]
fn check_tokens(
    dialect: DialectKind,
    name: &str,
    events: u64,
    output: Option<(u64, TokenSource)>,
    input: Option<u64>,
) -> UsageTotals {
    let body = fixture(name);
    let mut decoder = dialect.decoder();
    let mut counted = 0;
    let mut all = Vec::new();
    for ev in frame_events(dialect, body.as_bytes(), Some(5)) {
        let ev = ev.unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = Vec::new();
        decoder
            .decode(&ev.as_event(), &mut out)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if out.iter().any(|s| matches!(s, Signal::Output { .. })) {
            counted += 1;
        }
        all.extend(out);
    }
    assert_eq!(counted, events, "{name}: output-bearing events");
    let u = tally(&all);
    assert_eq!(u.output(), output, "{name}: output tokens and source");
    assert_eq!(u.input(), input, "{name}: input tokens");
    if let Some((n, _)) = output {
        assert!(
            n >= events,
            "{name}: a fixture must not mismatch by accident"
        );
    }
    u
}

#[test]
fn vllm_chat_with_usage() {
    let mut want = vec![Signal::Model("Qwen/Qwen2.5-1.5B-Instruct".into())];
    want.extend(
        ["The", " capital", " of", " France", " is", " Paris", ".\n"]
            .into_iter()
            .map(answer),
    );
    want.extend([
        Signal::FinishReason("stop".into()),
        usage(Some(31), Some(8), None),
        Signal::Done,
    ]);
    check(DialectKind::OpenaiChat, "vllm_chat_usage.txt", &want);
}

#[test]
fn vllm_reasoning_then_answer() {
    let r = |t| output(OutputKind::Reasoning, t);
    check(
        DialectKind::OpenaiChat,
        "vllm_reasoning.txt",
        &[
            Signal::Model("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B".into()),
            r("Compare"),
            r(" 9.11 and 9.8:"),
            r(" 0.8 > 0.11 \u{2014} so 9.8."),
            // One event carrying both kinds: reasoning first, then answer.
            r("\n"),
            answer("9.8"),
            answer(" is greater \u{2713}"),
            Signal::FinishReason("stop".into()),
            usage(Some(18), Some(23), None),
            Signal::Done,
        ],
    );
}

#[test]
fn openai_tool_call_argument_deltas() {
    let t = |s| output(OutputKind::ToolCall, s);
    check(
        DialectKind::OpenaiChat,
        "openai_tool_call.txt",
        &[
            Signal::Model("gpt-4o-mini-2024-07-18".into()),
            Signal::ToolCall {
                id: Some("call_Q1w2E3r4".into()),
                name: "get_weather".into(),
                signature: None,
            },
            t("{\""),
            t("location"),
            t("\":\""),
            t("Paris"),
            t("\"}"),
            Signal::FinishReason("tool_calls".into()),
            report(
                TokenSource::Usage,
                Some(1284),
                Some(15),
                Some(1152),
                Some(0),
            ),
            Signal::Done,
        ],
    );
}

#[test]
fn llamacpp_chat() {
    let mut want = vec![Signal::Model("gpt-3.5-turbo".into())];
    want.extend(["Hello", "!", " How", " can"].into_iter().map(answer));
    want.extend([
        Signal::FinishReason("length".into()),
        // An older llama-server put both in the finish chunk: timings, then usage.
        report(TokenSource::Timings, Some(17), Some(4), None, None),
        usage(Some(17), Some(4), None),
        Signal::Done,
    ]);
    check(DialectKind::OpenaiChat, "llamacpp_chat.txt", &want);
    check_tokens(
        DialectKind::OpenaiChat,
        "llamacpp_chat.txt",
        4,
        Some((4, TokenSource::Usage)),
        Some(17),
    );
}

#[test]
fn openai_in_stream_rate_limit_error() {
    check(
        DialectKind::OpenaiChat,
        "openai_stream_error.txt",
        &[
            Signal::Model("gpt-4o-2024-08-06".into()),
            answer("Sure"),
            Signal::Error {
                kind: ErrorCondition::RateLimited,
                message: "tokens (rate_limit_exceeded): Rate limit reached for gpt-4o in \
                          organization org-XXXX on tokens per min (TPM): Limit 30000, Used 30000, \
                          Requested 512. Please try again in 1.02s."
                    .into(),
            },
        ],
    );
}

#[test]
fn vllm_in_stream_error_object() {
    check(
        DialectKind::OpenaiChat,
        "vllm_stream_error.txt",
        &[
            Signal::Model("meta-llama/Llama-3.1-8B-Instruct".into()),
            answer("Once"),
            Signal::Error {
                kind: ErrorCondition::Other,
                message: "BadRequestError (400): The decoder prompt (length 131090) is longer \
                          than the maximum model length of 131072."
                    .into(),
            },
            Signal::Done,
        ],
    );
}

#[test]
fn vllm_completions() {
    let mut want = vec![Signal::Model("Qwen/Qwen2.5-1.5B".into())];
    want.extend([" Paris", ".", " It", " is"].into_iter().map(answer));
    want.extend([
        Signal::FinishReason("length".into()),
        usage(Some(7), Some(4), None),
        Signal::Done,
    ]);
    check(
        DialectKind::OpenaiCompletions,
        "completions_vllm.txt",
        &want,
    );
}

#[test]
fn anthropic_text() {
    check(
        DialectKind::AnthropicMessages,
        "anthropic_text.txt",
        &[
            Signal::Model("claude-sonnet-4-5-20250929".into()),
            // message_start's output_tokens (1) is a placeholder and is not reported.
            anthropic(Some(25), None, Some(0)),
            answer("Hello"),
            answer("! How can"),
            answer(" I help?"),
            Signal::FinishReason("end_turn".into()),
            anthropic(None, Some(12), None),
            Signal::Done,
        ],
    );
    check_tokens(
        DialectKind::AnthropicMessages,
        "anthropic_text.txt",
        3,
        Some((12, TokenSource::MessageDeltaUsage)),
        Some(25),
    );
}

#[test]
fn anthropic_thinking_then_text() {
    check(
        DialectKind::AnthropicMessages,
        "anthropic_thinking.txt",
        &[
            Signal::Model("claude-sonnet-4-5-20250929".into()),
            // input_tokens 12 + cache_read 2048 + cache_creation 0.
            anthropic(Some(2060), None, Some(2048)),
            output(OutputKind::Reasoning, "27 * 453 = 27 * 400 + 27 * 53"),
            output(OutputKind::Reasoning, "\n= 10800 + 1431 = 12231"),
            answer("27 \u{d7} 453 = 12,231"),
            Signal::FinishReason("end_turn".into()),
            anthropic(None, Some(87), None),
            Signal::Done,
        ],
    );
}

#[test]
fn anthropic_tool_use() {
    check(
        DialectKind::AnthropicMessages,
        "anthropic_tool_use.txt",
        &[
            Signal::Model("claude-haiku-4-5-20251001".into()),
            anthropic(Some(472), None, None),
            answer("Let me check."),
            Signal::ToolCall {
                id: Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6".into()),
                name: "get_weather".into(),
                signature: None,
            },
            output(OutputKind::ToolCall, "{\"location\":"),
            output(OutputKind::ToolCall, " \"San Francisco, CA\"}"),
            Signal::FinishReason("tool_use".into()),
            anthropic(None, Some(89), None),
            Signal::Done,
        ],
    );
}

#[test]
fn anthropic_overloaded_error() {
    check(
        DialectKind::AnthropicMessages,
        "anthropic_overloaded.txt",
        &[
            Signal::Model("claude-opus-4-1-20250805".into()),
            anthropic(Some(9), None, None),
            Signal::Error {
                kind: ErrorCondition::Overloaded,
                message: "overloaded_error: Overloaded".into(),
            },
        ],
    );
}

#[test]
fn groq_reports_tokens_in_x_groq_usage() {
    let mut want = vec![Signal::Model("llama-3.1-8b-instant".into())];
    want.extend(["Paris", " is the capital", " of France."].map(answer));
    want.extend([
        Signal::FinishReason("stop".into()),
        report(TokenSource::XGroqUsage, Some(43), Some(8), None, None),
        Signal::Done,
    ]);
    check(DialectKind::OpenaiChat, "groq_x_groq_usage.txt", &want);
    check_tokens(
        DialectKind::OpenaiChat,
        "groq_x_groq_usage.txt",
        3,
        Some((8, TokenSource::XGroqUsage)),
        Some(43),
    );
}

#[test]
fn llamacpp_without_usage_reports_its_timings() {
    let mut want = vec![Signal::Model("qwen2.5-0.5b-instruct".into())];
    want.extend(["The", " capital", " is", " Paris", "."].map(answer));
    want.extend([
        Signal::FinishReason("stop".into()),
        // prompt_n 9 processed + cache_n 24 reused = 33 prompt tokens, 24 of them cached.
        report(TokenSource::Timings, Some(33), Some(6), Some(24), None),
        Signal::Done,
    ]);
    check(DialectKind::OpenaiChat, "llamacpp_timings_only.txt", &want);
    let u = check_tokens(
        DialectKind::OpenaiChat,
        "llamacpp_timings_only.txt",
        5,
        Some((6, TokenSource::Timings)),
        Some(33),
    );
    assert_eq!(u.cached(), Some(24));
}

#[test]
fn llamacpp_usage_wins_over_timings_in_the_same_chunk() {
    check_tokens(
        DialectKind::OpenaiChat,
        "llamacpp_usage_and_timings.txt",
        2,
        Some((2, TokenSource::Usage)),
        Some(21),
    );
}

#[test]
fn usage_as_a_running_total_ends_at_the_finish_chunk_total() {
    let want = [
        Signal::Model("gemini-2.5-flash".into()),
        answer("Two"),
        usage(Some(8), Some(1), None),
        answer(" plus two"),
        usage(Some(8), Some(3), None),
        answer(" is four."),
        Signal::FinishReason("stop".into()),
        usage(Some(8), Some(7), None),
        Signal::Done,
    ];
    check(
        DialectKind::OpenaiChat,
        "gemini_usage_running_total.txt",
        &want,
    );
    check_tokens(
        DialectKind::OpenaiChat,
        "gemini_usage_running_total.txt",
        3,
        Some((7, TokenSource::Usage)),
        Some(8),
    );
}

#[test]
fn mistral_usage_rides_on_the_finish_chunk() {
    let mut want = vec![Signal::Model("mistral-small-latest".into())];
    want.extend(["Bonjour", " !"].map(answer));
    want.extend([
        Signal::FinishReason("stop".into()),
        usage(Some(11), Some(4), None),
        Signal::Done,
    ]);
    check(DialectKind::OpenaiChat, "mistral_chat.txt", &want);
    check_tokens(
        DialectKind::OpenaiChat,
        "mistral_chat.txt",
        2,
        Some((4, TokenSource::Usage)),
        Some(11),
    );
}

#[test]
fn deepseek_cache_hits_and_reasoning_tokens() {
    let r = |t| output(OutputKind::Reasoning, t);
    check(
        DialectKind::OpenaiChat,
        "deepseek_reasoner.txt",
        &[
            Signal::Model("deepseek-reasoner".into()),
            r("The user asks"),
            r(" for 2+2."),
            answer("4"),
            Signal::FinishReason("stop".into()),
            report(TokenSource::Usage, Some(74), Some(9), Some(64), Some(7)),
            Signal::Done,
        ],
    );
    let u = check_tokens(
        DialectKind::OpenaiChat,
        "deepseek_reasoner.txt",
        3,
        Some((9, TokenSource::Usage)),
        Some(74),
    );
    assert_eq!((u.cached(), u.reasoning()), (Some(64), Some(7)));
}

#[test]
fn ollama_chat_and_completions_usage() {
    let mut want = vec![Signal::Model("llama3.2:1b".into())];
    want.extend(["Hi", " there", "!"].map(answer));
    want.extend([
        Signal::FinishReason("stop".into()),
        usage(Some(30), Some(3), None),
        Signal::Done,
    ]);
    check(DialectKind::OpenaiChat, "ollama_chat.txt", &want);
    check_tokens(
        DialectKind::OpenaiChat,
        "ollama_chat.txt",
        3,
        Some((3, TokenSource::Usage)),
        Some(30),
    );
    // The all-zero placeholder on every completions chunk is not a report of zero tokens.
    check(
        DialectKind::OpenaiCompletions,
        "ollama_completions.txt",
        &[
            Signal::Model("llama3.2:1b".into()),
            answer(" Paris"),
            answer("."),
            Signal::FinishReason("stop".into()),
            usage(Some(12), Some(3), None),
            Signal::Done,
        ],
    );
    check_tokens(
        DialectKind::OpenaiCompletions,
        "ollama_completions.txt",
        2,
        Some((3, TokenSource::Usage)),
        Some(12),
    );
}

#[test]
fn streams_without_usage_leave_the_count_to_the_events() {
    // vLLM's stream error fixture reports no usage: the engine counts events.
    let u = tally(
        &decode(
            DialectKind::OpenaiChat,
            fixture("vllm_stream_error.txt").as_bytes(),
            None,
        )
        .unwrap_or_default(),
    );
    assert_eq!(u.output(), None);
}

/// The last signal of a fixture that ends in an in-stream error, and the result it gets.
fn stream_error_result(dialect: DialectKind, name: &str) -> (ErrorCondition, ProbeResult) {
    let signals = decode(dialect, fixture(name).as_bytes(), Some(11))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let kind = signals
        .iter()
        .find_map(|s| match s {
            Signal::Error { kind, .. } => Some(*kind),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name}: no error signal in {signals:?}"));
    (kind, kind.result(Transport::InStream))
}

/// Every in-stream row of the result table, on recorded streams.
#[test]
fn in_stream_errors_map_through_the_one_table() {
    use ErrorCondition::*;
    use ProbeResult::{ApiError, RateLimited as Limited};
    let cases = [
        (
            DialectKind::OpenaiChat,
            "openai_stream_error.txt",
            RateLimited,
            Limited,
        ),
        (
            DialectKind::AnthropicMessages,
            "anthropic_rate_limited.txt",
            RateLimited,
            Limited,
        ),
        (
            DialectKind::OpenaiChat,
            "groq_stream_error.txt",
            RateLimited,
            Limited,
        ),
        (
            DialectKind::AnthropicMessages,
            "anthropic_overloaded.txt",
            Overloaded,
            ApiError,
        ),
        (
            DialectKind::OpenaiChat,
            "vllm_stream_error.txt",
            Other,
            ApiError,
        ),
        (
            DialectKind::OpenaiChat,
            "vllm_stream_error_current.txt",
            Other,
            ApiError,
        ),
        (
            DialectKind::OpenaiChat,
            "tgi_stream_error.txt",
            Other,
            ApiError,
        ),
        (
            DialectKind::OpenaiChat,
            "openrouter_midstream_error.txt",
            Other,
            ApiError,
        ),
    ];
    for (dialect, name, condition, result) in cases {
        assert_eq!(
            stream_error_result(dialect, name),
            (condition, result),
            "{name}"
        );
    }
}

#[test]
fn every_dialect_rejects_non_json_data() {
    use inferprobe::probe::dialect::Framing;
    use inferprobe::probe::framing::aws_eventstream::encode_event;
    for dialect in DialectKind::ALL {
        // Data that is not JSON, in the dialect's own framing.
        let body = match dialect.framing() {
            Framing::Sse => b": hi\n\ndata: {oops\n\n".to_vec(),
            Framing::Ndjson => b"\n{oops\n".to_vec(),
            Framing::AwsEventStream => encode_event("contentBlockDelta", b"{oops"),
        };
        let got = decode(dialect, &body, Some(3));
        let err = got.err().unwrap_or_default();
        assert!(
            err.starts_with(&format!(
                "malformed {} event: invalid JSON",
                dialect.as_str()
            )),
            "{dialect:?}: {err}"
        );
    }
}

#[test]
fn transport_error_surfaces_after_the_events_before_it() {
    let chunks: Vec<Result<(Instant, Bytes), String>> = vec![
        Ok((
            Instant::now(),
            Bytes::from_static(b"data: [DONE]\n\ndata: x"),
        )),
        Err("connection reset by peer".into()),
    ];
    let got: Vec<_> = sse::frame(stream::iter(chunks))
        .collect::<Vec<_>>()
        .now_or_never()
        .unwrap_or_default();
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[0], Ok(e) if e.data == "[DONE]"));
    assert!(
        matches!(&got[1], Err(FrameError::Transport(m)) if m == "connection reset by peer"),
        "{:?}",
        got[1]
    );
}

fn messages() -> Vec<Message> {
    [
        ("system", "Answer briefly."),
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "And of Italy?"),
    ]
    .into_iter()
    .map(|(role, content)| Message {
        role: role.into(),
        content: content.into(),
        ..Default::default()
    })
    .collect()
}

fn request<'a>(
    messages: &'a [Message],
    stop: &'a [String],
    extra: &'a Map<String, Value>,
    include_usage: bool,
) -> ProbeRequest<'a> {
    ProbeRequest {
        model: "m1",
        messages,
        max_tokens: 64,
        temperature: 0.0,
        stop,
        extra_body: extra,
        include_usage,
        tools: &[],
    }
}

fn extra(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn openai_chat_bodies() {
    let msgs = messages();
    let none = Map::new();
    let chat_messages = json!([
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]);
    assert_eq!(
        DialectKind::OpenaiChat.build_body(&request(&msgs, &[], &none, false)),
        json!({
            "model": "m1", "messages": chat_messages, "max_tokens": 64, "temperature": 0.0,
            "stream": true,
        })
    );
    let stop = vec!["\n\n".to_string()];
    let ex = extra(json!({"ignore_eos": true, "temperature": 0.7, "max_tokens": null}));
    assert_eq!(
        DialectKind::OpenaiChat.build_body(&request(&msgs, &stop, &ex, true)),
        json!({
            "model": "m1", "messages": chat_messages, "temperature": 0.7, "stream": true,
            "stop": ["\n\n"], "stream_options": {"include_usage": true}, "ignore_eos": true,
        })
    );
}

#[test]
fn openai_completions_bodies() {
    let msgs = messages();
    let none = Map::new();
    let prompt = "Answer briefly.\n\nCapital of France?\n\nParis.\n\nAnd of Italy?";
    assert_eq!(
        DialectKind::OpenaiCompletions.build_body(&request(&msgs, &[], &none, true)),
        json!({
            "model": "m1", "prompt": prompt, "max_tokens": 64, "temperature": 0.0,
            "stream": true, "stream_options": {"include_usage": true},
        })
    );
    let stop = vec!["END".to_string(), "\n".to_string()];
    let ex = extra(json!({"prompt": "override", "min_tokens": 8}));
    assert_eq!(
        DialectKind::OpenaiCompletions.build_body(&request(&msgs, &stop, &ex, false)),
        json!({
            "model": "m1", "prompt": "override", "max_tokens": 64, "temperature": 0.0,
            "stream": true, "stop": ["END", "\n"], "min_tokens": 8,
        })
    );
}

#[test]
fn anthropic_messages_bodies() {
    let msgs = messages();
    let none = Map::new();
    let turns = json!([
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]);
    // include_usage has no meaning here: Anthropic always reports usage.
    assert_eq!(
        DialectKind::AnthropicMessages.build_body(&request(&msgs, &[], &none, true)),
        json!({
            "model": "m1", "max_tokens": 64, "temperature": 0.0, "stream": true,
            "messages": turns, "system": "Answer briefly.",
        })
    );
    let stop = vec!["\n\nHuman:".to_string()];
    let ex =
        extra(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048}));
    let user_only = &msgs[1..2];
    assert_eq!(
        DialectKind::AnthropicMessages.build_body(&request(user_only, &stop, &ex, false)),
        json!({
            "model": "m1", "max_tokens": 2048, "temperature": 0.0, "stream": true,
            "messages": [{"role": "user", "content": "Capital of France?"}],
            "stop_sequences": ["\n\nHuman:"],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        })
    );
    assert_eq!(
        DialectKind::AnthropicMessages.fixed_headers(),
        &[("anthropic-version", "2023-06-01")]
    );
}
