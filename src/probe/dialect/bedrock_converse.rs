//! Amazon Bedrock ConverseStream (`POST {base_url}/model/{modelId}/converse-stream`), framed
//! as AWS event-stream messages (`application/vnd.amazon.eventstream`).
//!
//! Shapes follow the Bedrock Runtime service model (`bedrock-runtime` 2023-09-30, operation
//! `ConverseStream`, output union `ConverseStreamOutput`). The framer hands each message over
//! with `event` = its `:event-type` (or `:exception-type`, or `error`) and `data` = its JSON
//! payload. Payloads may carry extra fields (Bedrock pads them with `p`); unknown fields and
//! unknown event types are ignored.
//! - `messageStart` (`role`) and `contentBlockStop` carry nothing to report; a
//!   `contentBlockStart` with `start.toolUse` starts a tool call ([`Signal::ToolCall`] with its
//!   `toolUseId` and `name`) whose arguments come in later deltas.
//! - `contentBlockDelta.delta`: `text` is answer text, `reasoningContent.text` reasoning text
//!   (its `signature` and `redactedContent` carry no tokens), `toolUse.input` a piece of the
//!   tool call's JSON arguments.
//! - `messageStop.stopReason` is the finish reason (`end_turn`, `max_tokens`, `tool_use`, ...).
//! - `metadata` comes last: `usage` ([`TokenSource::MetadataUsage`]) and `metrics.latencyMs`,
//!   reported as [`Signal::ServerTiming`] `latency`. As with Anthropic (and per AWS's prompt
//!   caching guide) `inputTokens` excludes the cache, so the input reported is `inputTokens` +
//!   `cacheReadInputTokens` + `cacheWriteInputTokens`, and the cached part is
//!   `cacheReadInputTokens`.
//! - End marker: `metadata` after `messageStop` ([`Signal::Done`]). The AWS SDKs end the stream
//!   when the body ends, and `metadata` is the last event Bedrock sends; waiting for it means
//!   the usage is in. A body that ends cleanly right after `messageStop` (a proxy that drops
//!   `metadata`) still completes through the dialect's "finish reason then a clean end" rule.
//! - Exceptions inside the stream (`throttlingException`, `modelStreamErrorException`,
//!   `validationException`, `internalServerException`, `serviceUnavailableException`, or any
//!   other `…Exception`, and event-stream `error` messages) are errors classified by their type
//!   name through the one error table: throttling is a rate limit, service unavailable an
//!   overload, the rest other API errors.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::common::{
    arguments_object, content_withheld, declared_tools, merge_extra, obj1, truncate, Text,
    MAX_ERROR_MESSAGE,
};
use super::{
    token_count, AuthStyle, DecodeError, Dialect, ErrorCondition, FramedEvent, Framing, OutputKind,
    ProbeRequest, Signal, StreamDecoder, TokenSource, UsageReport,
};

const DIALECT_NAME: &str = "bedrock-converse";

/// The dialect's row: `POST {base_url}/model/{modelId}/converse-stream`, AWS event-stream,
/// SigV4 signing for service `bedrock` (or a Bedrock API key with `auth: bearer`); complete at
/// `metadata` after `messageStop`, or at a clean end right after `messageStop`.
pub static DIALECT: Dialect = Dialect {
    name: DIALECT_NAME,
    framing: Framing::AwsEventStream,
    path,
    default_auth: AuthStyle::AwsSigv4,
    fixed_headers: &[],
    content_types: &["application/vnd.amazon.eventstream"],
    build_body,
    decoder: || Box::new(Decoder::default()),
    finish_reason_ends_stream: true,
    end_marker: "metadata after messageStop",
    reports_model: false,
    supports_tools: true,
    simulator_prefix: "",
};

/// Largest `latencyMs` accepted: one day.
const MAX_PLAUSIBLE_LATENCY_MS: u64 = 86_400_000;

/// Request path under the base URL: the model id is one path segment, so every byte outside
/// RFC 3986's unreserved set is percent-encoded (ARNs and inference profiles contain `:` and
/// `/`), as the AWS SDKs encode the `{modelId}` label.
pub fn path(model: &str) -> String {
    let mut p = String::with_capacity(model.len() + 24);
    p.push_str("/model/");
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            p.push(char::from(b));
        } else {
            p.push_str(&format!("%{b:02X}"));
        }
    }
    p.push_str("/converse-stream");
    p
}

/// Builds the request body: `messages` with text content blocks, `system` blocks from the
/// `system` messages, and `inferenceConfig` with `maxTokens`, `temperature` and
/// `stopSequences`. The model is in the path, not the body. An assistant turn's tool calls are
/// `toolUse` blocks (`toolUseId`, `name`, `input` object); tool results are `toolResult` blocks
/// (`toolUseId`, `content: [{text}]`) of one user message. `toolConfig.tools`
/// (`[{toolSpec: {name, description, inputSchema: {json}}}]`) is sent when tools are offered,
/// or declared from the history when it holds tool use (Bedrock requires it then).
///
/// `extra_body` is merged at the top level (e.g. `additionalModelRequestFields`,
/// `performanceConfig`), except that an `inferenceConfig` object is merged into ours field by
/// field (e.g. `{inferenceConfig: {topP: 0.9}}`).
pub fn build_body(req: &ProbeRequest<'_>) -> Value {
    let block = |text: &str| {
        let mut b = Map::with_capacity(1);
        b.insert("text".into(), Value::from(text));
        Value::Object(b)
    };
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
    // Whether the last message pushed is a user message of tool results.
    let mut open_results = false;
    for m in req.messages {
        match m.role.as_str() {
            "system" => system.push(block(&m.content)),
            "tool" => {
                let mut r = Map::with_capacity(2);
                r.insert(
                    "toolUseId".into(),
                    Value::from(m.tool_call_id.as_deref().unwrap_or_default()),
                );
                r.insert("content".into(), Value::Array(vec![block(&m.content)]));
                let b = obj1("toolResult", Value::Object(r));
                match messages.last_mut().and_then(|l| l.get_mut("content")) {
                    Some(Value::Array(blocks)) if open_results => blocks.push(b),
                    _ => {
                        let mut o = Map::with_capacity(2);
                        o.insert("role".into(), Value::from("user"));
                        o.insert("content".into(), Value::Array(vec![b]));
                        messages.push(Value::Object(o));
                        open_results = true;
                    }
                }
            }
            role => {
                let mut content = Vec::with_capacity(m.tool_calls.len() + 1);
                // Bedrock rejects blank text blocks: a turn of only tool calls has none.
                if !m.content.is_empty() || m.tool_calls.is_empty() {
                    content.push(block(&m.content));
                }
                for c in &m.tool_calls {
                    let mut u = Map::with_capacity(3);
                    u.insert("toolUseId".into(), Value::from(c.id.as_str()));
                    u.insert("name".into(), Value::from(c.name.as_str()));
                    u.insert("input".into(), arguments_object(&c.arguments));
                    content.push(obj1("toolUse", Value::Object(u)));
                }
                match messages.last_mut().and_then(|l| l.get_mut("content")) {
                    // A user text right after tool results joins their message (roles
                    // alternate).
                    Some(Value::Array(blocks)) if open_results && role == "user" => {
                        blocks.extend(content)
                    }
                    _ => {
                        let mut o = Map::with_capacity(2);
                        o.insert("role".into(), Value::from(role));
                        o.insert("content".into(), Value::Array(content));
                        messages.push(Value::Object(o));
                    }
                }
                open_results = false;
            }
        }
    }
    let mut config = Map::new();
    config.insert("maxTokens".into(), Value::from(req.max_tokens));
    config.insert("temperature".into(), Value::from(req.temperature));
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), Value::from(req.stop.to_vec()));
    }
    let mut extra = req.extra_body.clone();
    match extra.remove("inferenceConfig") {
        Some(Value::Object(more)) => merge_extra(&mut config, &more),
        Some(Value::Null) => config.clear(),
        Some(other) => {
            // Not an object: passed through for the server to judge.
            extra.insert("inferenceConfig".into(), other);
        }
        None => {}
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    if !config.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(config));
    }
    let tools = declared_tools(req);
    if !tools.is_empty() {
        let tools: Vec<Value> = tools
            .into_iter()
            .map(|t| {
                let mut spec = Map::with_capacity(3);
                spec.insert("name".into(), Value::from(t.name));
                if !t.description.is_empty() {
                    spec.insert("description".into(), Value::from(t.description));
                }
                spec.insert("inputSchema".into(), obj1("json", t.parameters));
                obj1("toolSpec", Value::Object(spec))
            })
            .collect();
        body.insert("toolConfig".into(), obj1("tools", Value::Array(tools)));
    }
    merge_extra(&mut body, &extra);
    Value::Object(body)
}

/// Per-probe decoding state.
#[derive(Default)]
pub struct Decoder {
    stopped: bool,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, rename = "stopReason")]
    stop_reason: Option<Text<'a>>,
    usage: Option<Value>,
    metrics: Option<Value>,
    start: Option<Value>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow, rename = "reasoningContent")]
    reasoning: Option<TextField<'a>>,
    #[serde(borrow, rename = "toolUse")]
    tool_use: Option<ToolUse<'a>>,
}

#[derive(Deserialize)]
struct TextField<'a> {
    #[serde(borrow)]
    text: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct ToolUse<'a> {
    #[serde(borrow)]
    input: Option<Text<'a>>,
}

fn output(out: &mut Vec<Signal>, kind: OutputKind, text: Option<Text<'_>>) {
    if let Some(Text(text)) = text.filter(|t| !t.0.is_empty()) {
        out.push(Signal::Output {
            kind,
            text: text.into_owned(),
        });
    }
}

fn is_exception(event: &str) -> bool {
    event == "error" || event.ends_with("Exception") || event.ends_with("exception")
}

impl Decoder {
    fn metadata(&mut self, ev: &Event<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        if let Some(u) = ev.usage.as_ref().filter(|u| !u.is_null()) {
            let count = |field: &str| token_count(DIALECT_NAME, u, "metadata.usage", field);
            let uncached = count("inputTokens")?;
            let output = count("outputTokens")?;
            let cache_read = count("cacheReadInputTokens")?;
            let cache_write = count("cacheWriteInputTokens")?;
            let input = uncached.map(|n| {
                n.saturating_add(cache_read.unwrap_or(0))
                    .saturating_add(cache_write.unwrap_or(0))
            });
            if input.is_some() || output.is_some() {
                out.push(Signal::Usage(UsageReport {
                    source: TokenSource::MetadataUsage,
                    input_tokens: input,
                    output_tokens: output,
                    cached_input_tokens: cache_read,
                    reasoning_tokens: None,
                }));
            }
        }
        if let Some(latency) = ev.metrics.as_ref().and_then(|m| m.get("latencyMs")) {
            match latency {
                Value::Null => {}
                Value::Number(n) => match n.as_u64() {
                    Some(ms) if ms <= MAX_PLAUSIBLE_LATENCY_MS => out.push(Signal::ServerTiming {
                        name: "latency",
                        seconds: ms as f64 / 1000.0,
                    }),
                    _ => {
                        return Err(DecodeError {
                            dialect: DIALECT_NAME,
                            reason: format!(
                                "implausible duration: metadata.metrics.latencyMs = {n} \
                                 (not a count of milliseconds up to a day)"
                            ),
                        })
                    }
                },
                other => {
                    let text: String = other.to_string().chars().take(40).collect();
                    return Err(DecodeError {
                        dialect: DIALECT_NAME,
                        reason: format!(
                            "implausible duration: metadata.metrics.latencyMs = {text} \
                             (not a count of milliseconds)"
                        ),
                    });
                }
            }
        }
        if self.stopped {
            out.push(Signal::Done);
        }
        Ok(())
    }
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, event: &FramedEvent<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        if is_exception(event.event) {
            out.push(exception_signal(event.event, event.data));
            return Ok(());
        }
        let data = event.data.trim();
        let ev: Event<'_> = if data.is_empty() {
            Event {
                delta: None,
                stop_reason: None,
                usage: None,
                metrics: None,
                start: None,
            }
        } else {
            serde_json::from_str(data).map_err(|e| DecodeError {
                dialect: DIALECT_NAME,
                reason: format!("invalid JSON in {} event: {e}", event.event),
            })?
        };
        match event.event {
            "contentBlockDelta" => {
                if let Some(d) = ev.delta {
                    output(out, OutputKind::Reasoning, d.reasoning.and_then(|r| r.text));
                    output(out, OutputKind::Answer, d.text);
                    output(out, OutputKind::ToolCall, d.tool_use.and_then(|t| t.input));
                }
            }
            "contentBlockStart" => {
                // A toolUse start names the call; its input follows in deltas.
                if let Some(t) = ev.start.as_ref().and_then(|s| s.get("toolUse")) {
                    let text = |k: &str| {
                        t.get(k)
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                    };
                    out.push(Signal::ToolCall {
                        id: text("toolUseId"),
                        name: text("name").unwrap_or_default(),
                        signature: None,
                    });
                }
            }
            "messageStop" => {
                self.stopped = true;
                if let Some(Text(reason)) = ev.stop_reason.filter(|r| !r.0.is_empty()) {
                    // A guardrail or the model's content filter stopped the answer.
                    let withheld = matches!(
                        reason.as_ref(),
                        "guardrail_intervened" | "content_filtered"
                    );
                    let stop = reason.to_string();
                    out.push(Signal::FinishReason(reason.into_owned()));
                    if withheld {
                        out.push(content_withheld("stopReason", &stop));
                    }
                }
            }
            "metadata" => self.metadata(&ev, out)?,
            "" => {
                return Err(DecodeError {
                    dialect: DIALECT_NAME,
                    reason: "event without an :event-type".into(),
                })
            }
            // messageStart, contentBlockStop and unknown types.
            _ => {}
        }
        Ok(())
    }
}

/// An exception (or `error` message): its type names its condition; the message, and for
/// `modelStreamErrorException` the model's original status and message, are shown.
fn exception_signal(kind: &str, payload: &str) -> Signal {
    let v: Value = serde_json::from_str(payload.trim()).unwrap_or(Value::Null);
    let s = |key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|m| !m.is_empty())
    };
    // An event-stream `error` message: the framer puts `:error-code` in `code`.
    let (kind, condition) = match (kind, s("code")) {
        ("error", Some(code)) => (code, ErrorCondition::of_error_words([code])),
        _ => (kind, ErrorCondition::of_error_words([kind])),
    };
    let mut text = kind.to_string();
    if let Some(m) = s("message") {
        text.push_str(": ");
        text.push_str(m);
    }
    let original_status = v.get("originalStatusCode").and_then(Value::as_u64);
    if let Some(status) = original_status {
        text.push_str(&format!(" (model status {status}"));
        if let Some(m) = s("originalMessage") {
            text.push_str(": ");
            text.push_str(m);
        }
        text.push(')');
    }
    Signal::Error {
        kind: condition,
        message: truncate(&text, MAX_ERROR_MESSAGE).to_string(),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Event-stream fixtures are kept readable: each `.events` file under
    //! `tests/fixtures/sse/bedrock-converse/` lists one message per line as
    //! `event <type> <json>`, `exception <type> <json>` or `error <code> <message>`, and
    //! [`encode`] turns them into the binary frames Bedrock sends, with the
    //! `aws-smithy-eventstream` encoder (the codec the AWS SDKs use).

    /// The binary body of a readable fixture.
    pub fn encode(text: &str) -> Vec<u8> {
        crate::probe::framing::aws_eventstream::encode_readable(text)
    }

    /// Reads a fixture by name.
    pub fn read(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/sse/bedrock-converse/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::dialect::Message;
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    use aws_smithy_types::event_stream::HeaderValue;

    /// Encodes a fixture to frames, decodes the frames back (as the engine's framer does) and
    /// feeds each message to a fresh decoder.
    fn decode_fixture(name: &str) -> Result<Vec<Signal>, DecodeError> {
        let wire = fixtures::encode(&fixtures::read(name));
        let mut buf = bytes::BytesMut::from(&wire[..]);
        let mut frames = MessageFrameDecoder::new();
        let mut d = Decoder::default();
        let mut out = Vec::new();
        loop {
            let m = match frames.decode_frame(&mut buf) {
                Ok(DecodedFrame::Complete(m)) => m,
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => panic!("{name}: {e}"),
            };
            let h = |k: &str| {
                m.headers()
                    .iter()
                    .find(|h| h.name().as_str() == k)
                    .and_then(|h| match h.value() {
                        HeaderValue::String(s) => Some(s.as_str().to_string()),
                        _ => None,
                    })
                    .unwrap_or_default()
            };
            let payload = String::from_utf8_lossy(m.payload()).into_owned();
            let (event, data) = match h(":message-type").as_str() {
                "event" => (h(":event-type"), payload),
                "exception" => (h(":exception-type"), payload),
                _ => (
                    "error".to_string(),
                    serde_json::json!({"code": h(":error-code"), "message": h(":error-message")})
                        .to_string(),
                ),
            };
            d.decode(
                &FramedEvent {
                    event: &event,
                    data: &data,
                },
                &mut out,
            )?;
        }
        assert!(buf.is_empty(), "{name}: bytes left after the last frame");
        Ok(out)
    }

    fn out(kind: OutputKind, text: &str) -> Signal {
        Signal::Output {
            kind,
            text: text.into(),
        }
    }

    fn error(kind: ErrorCondition, message: &str) -> Signal {
        Signal::Error {
            kind,
            message: message.into(),
        }
    }

    #[test]
    fn text_stream() {
        assert_eq!(
            decode_fixture("text.events"),
            Ok(vec![
                out(OutputKind::Answer, "Tides"),
                out(OutputKind::Answer, " follow"),
                out(OutputKind::Answer, " the moon."),
                Signal::FinishReason("end_turn".into()),
                Signal::Usage(UsageReport {
                    source: TokenSource::MetadataUsage,
                    input_tokens: Some(21),
                    output_tokens: Some(6),
                    cached_input_tokens: None,
                    reasoning_tokens: None,
                }),
                Signal::ServerTiming {
                    name: "latency",
                    seconds: 0.412
                },
                Signal::Done,
            ])
        );
    }

    #[test]
    fn reasoning_then_answer_with_cache_counts() {
        let got = decode_fixture("reasoning.events").unwrap_or_else(|e| panic!("{e}"));
        let outputs: Vec<_> = got
            .iter()
            .filter(|s| matches!(s, Signal::Output { .. }))
            .cloned()
            .collect();
        assert_eq!(
            outputs,
            [
                out(OutputKind::Reasoning, "Count the"),
                out(OutputKind::Reasoning, " letters."),
                out(OutputKind::Answer, "Three."),
            ]
        );
        assert!(got.contains(&Signal::Usage(UsageReport {
            source: TokenSource::MetadataUsage,
            // 12 uncached + 1500 read + 40 written.
            input_tokens: Some(1552),
            output_tokens: Some(88),
            cached_input_tokens: Some(1500),
            reasoning_tokens: None,
        })));
        assert_eq!(got.last(), Some(&Signal::Done));
    }

    #[test]
    fn tool_use_arguments_arrive_in_pieces() {
        let got = decode_fixture("tool_use.events").unwrap_or_else(|e| panic!("{e}"));
        let args: String = got
            .iter()
            .filter_map(|s| match s {
                Signal::Output {
                    kind: OutputKind::ToolCall,
                    text,
                } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(args, r#"{"city": "Porto"}"#);
        assert!(got.contains(&Signal::FinishReason("tool_use".into())));
        assert_eq!(got.last(), Some(&Signal::Done));
    }

    #[test]
    fn exceptions_follow_the_error_table() {
        let got = decode_fixture("throttled.events").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got,
            [error(
                ErrorCondition::RateLimited,
                "throttlingException: Too many tokens, please wait before trying again."
            )]
        );
        let got = decode_fixture("model_stream_error.events").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got.last(),
            Some(&error(
                ErrorCondition::Other,
                "modelStreamErrorException: The model stream failed. (model status 500: \
                 upstream reset)"
            ))
        );
        assert!(!got.contains(&Signal::Done));
        for (event, want) in [
            ("serviceUnavailableException", ErrorCondition::Overloaded),
            ("internalServerException", ErrorCondition::Other),
            ("validationException", ErrorCondition::Other),
            ("modelTimeoutException", ErrorCondition::Other),
        ] {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            d.decode(
                &FramedEvent {
                    event,
                    data: r#"{"message":"x"}"#,
                },
                &mut got,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got, [error(want, &format!("{event}: x"))], "{event}");
        }
        // An event-stream `error` message, as the framer passes it on.
        let mut got = Vec::new();
        Decoder::default()
            .decode(
                &FramedEvent {
                    event: "error",
                    data: r#"{"code":"ThrottlingException","message":"slow down"}"#,
                },
                &mut got,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got,
            [error(
                ErrorCondition::RateLimited,
                "ThrottlingException: slow down"
            )]
        );
    }

    #[test]
    fn truncated_stream_has_no_end_marker() {
        let got = decode_fixture("truncated.events").unwrap_or_else(|e| panic!("{e}"));
        assert!(got.iter().any(|s| matches!(s, Signal::Output { .. })));
        assert!(!got.contains(&Signal::Done));
        assert!(!got.iter().any(|s| matches!(s, Signal::FinishReason(_))));
        // Frames cut inside a message never reach the decoder: the framer sees the short body.
        let wire = fixtures::encode(&fixtures::read("text.events"));
        let mut buf = bytes::BytesMut::from(&wire[..wire.len() - 7]);
        let mut frames = MessageFrameDecoder::new();
        let mut complete = 0;
        while let Ok(DecodedFrame::Complete(_)) = frames.decode_frame(&mut buf) {
            complete += 1;
        }
        assert_eq!(complete, 6, "all but the last of the 7 messages decode");
    }

    #[test]
    fn metadata_without_message_stop_is_not_the_end_and_bad_values_are_errors() {
        let mut d = Decoder::default();
        let mut got = Vec::new();
        d.decode(
            &FramedEvent {
                event: "metadata",
                data: r#"{"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},"metrics":{"latencyMs":90}}"#,
            },
            &mut got,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!got.contains(&Signal::Done));
        let err = d.decode(
            &FramedEvent {
                event: "metadata",
                data: r#"{"usage":{"inputTokens":3,"outputTokens":-2},"metrics":{"latencyMs":90}}"#,
            },
            &mut got,
        );
        assert_eq!(
            err.map_err(|e| e.reason),
            Err("implausible usage: metadata.usage.outputTokens = -2 (not a token count)".into())
        );
        let err = d.decode(
            &FramedEvent {
                event: "metadata",
                data: r#"{"metrics":{"latencyMs":"fast"}}"#,
            },
            &mut got,
        );
        assert!(
            matches!(&err, Err(e) if e.reason.starts_with("implausible duration: metadata.metrics.latencyMs")),
            "{err:?}"
        );
        let err = d.decode(
            &FramedEvent {
                event: "contentBlockDelta",
                data: "{\"delta\":",
            },
            &mut got,
        );
        assert!(
            matches!(&err, Err(e) if e.reason.starts_with("invalid JSON in contentBlockDelta event")),
            "{err:?}"
        );
    }

    #[test]
    fn path_encodes_the_model_id() {
        assert_eq!(
            path("anthropic.claude-3-5-haiku-20241022-v1:0"),
            "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
        );
        assert_eq!(
            path("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-1-8b"),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-1-8b/converse-stream"
        );
        assert_eq!(path("a b?#é"), "/model/a%20b%3F%23%C3%A9/converse-stream");
    }

    #[test]
    fn body_uses_content_blocks_and_inference_config() {
        let messages = [
            Message {
                role: "system".into(),
                content: "Answer in one word.".into(),
                ..Default::default()
            },
            Message {
                role: "user".into(),
                content: "Capital of France?".into(),
                ..Default::default()
            },
        ];
        let stop = ["END".to_string()];
        let extra: Map<String, Value> = serde_json::from_str(
            r#"{"inferenceConfig": {"topP": 0.9}, "additionalModelRequestFields": {"top_k": 5}}"#,
        )
        .unwrap_or_default();
        let req = ProbeRequest {
            model: "amazon.nova-lite-v1:0",
            messages: &messages,
            max_tokens: 32,
            temperature: 0.0,
            stop: &stop,
            extra_body: &extra,
            include_usage: true,
            tools: &[],
        };
        assert_eq!(
            build_body(&req),
            serde_json::json!({
                "messages": [{"role": "user", "content": [{"text": "Capital of France?"}]}],
                "system": [{"text": "Answer in one word."}],
                "inferenceConfig": {"maxTokens": 32, "temperature": 0.0,
                                    "stopSequences": ["END"], "topP": 0.9},
                "additionalModelRequestFields": {"top_k": 5},
            })
        );
    }
}
