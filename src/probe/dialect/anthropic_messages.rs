//! Anthropic Messages (`POST {base_url}/v1/messages`).
//!
//! Events are dispatched on the JSON `type` field (the `event:` line, which normally matches, is
//! used only when `type` is missing). Unknown types are ignored, so new event kinds do not break
//! probes. A `content_block_start` of a `tool_use` block starts a tool call
//! ([`Signal::ToolCall`] with its `id` and `name`); its `input_json_delta`s are the arguments.
//!
//! Token usage is normalized to the OpenAI meaning, so cost and token counters need one rule:
//! `input_tokens` is the whole prompt, i.e. Anthropic's `input_tokens` (the uncached part) plus
//! `cache_read_input_tokens` plus `cache_creation_input_tokens`; `cached_input_tokens` is
//! `cache_read_input_tokens`. `message_start.message.usage` carries the input and cache counts;
//! its `output_tokens` is an early placeholder (0 to a few tokens) and is not reported, so a
//! stream cut before `message_delta` falls back to counting events. `message_delta.usage` carries
//! the cumulative `output_tokens` ([`TokenSource::MessageDeltaUsage`]) and, on current API
//! versions, cumulative input and cache counts too. Every count is checked with
//! [`super::token_count`].

use serde::Deserialize;
use serde_json::{Map, Value};

use super::common::{arguments_object, content_withheld, declared_tools, merge_extra, truncate, Text};
use super::{
    token_count, AuthStyle, DecodeError, Dialect, Framing, ErrorCondition, OutputKind, ProbeRequest, Signal, FramedEvent,
    StreamDecoder, TokenSource, UsageReport,
};

/// Headers every Anthropic request carries.
pub const FIXED_HEADERS: &[(&str, &str)] = &[("anthropic-version", "2023-06-01")];

const DIALECT_NAME: &str = "anthropic-messages";

/// The dialect's row: `POST {base_url}/v1/messages`, SSE, `x-api-key`; complete only at
/// `message_stop`.
pub static DIALECT: Dialect = Dialect {
    name: DIALECT_NAME,
    framing: Framing::Sse,
    path: |_| "/v1/messages".to_string(),
    default_auth: AuthStyle::XApiKey,
    fixed_headers: FIXED_HEADERS,
    content_types: &["text/event-stream"],
    build_body,
    decoder: || Box::new(Decoder::default()),
    finish_reason_ends_stream: false,
    end_marker: "message_stop",
    reports_model: true,
    supports_tools: true,
    simulator_prefix: "",
};

/// Builds the streaming request body.
///
/// `system` messages become the top-level `system` string (joined by blank lines when there are
/// several); every other message is sent in order with its role unchanged. An assistant turn
/// with tool calls has a content array: its text (if any), then one `tool_use` block per call
/// (`input` the parsed arguments). Tool results become `tool_result` blocks of one user
/// message (consecutive results share it, and a user text right after them joins it as a text
/// block, since the API wants roles to alternate). `tools` (`{name, description,
/// input_schema}`) are sent when offered, or declared from the history when it holds tool use
/// (the API rejects tool blocks without tool definitions).
pub fn build_body(req: &ProbeRequest<'_>) -> Value {
    let mut system = String::new();
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
    // Whether the last message pushed is a user message of content blocks (tool results).
    let mut open_results = false;
    for m in req.messages {
        match m.role.as_str() {
            "system" => {
                if !system.is_empty() {
                    system.push_str("\n\n");
                }
                system.push_str(&m.content);
            }
            "tool" => {
                let mut block = Map::with_capacity(3);
                block.insert("type".into(), Value::from("tool_result"));
                block.insert(
                    "tool_use_id".into(),
                    Value::from(m.tool_call_id.as_deref().unwrap_or_default()),
                );
                block.insert("content".into(), Value::from(m.content.as_str()));
                push_block(&mut messages, &mut open_results, Value::Object(block));
            }
            "user" if open_results => {
                let mut block = Map::with_capacity(2);
                block.insert("type".into(), Value::from("text"));
                block.insert("text".into(), Value::from(m.content.as_str()));
                push_block(&mut messages, &mut open_results, Value::Object(block));
                open_results = false;
            }
            role => {
                open_results = false;
                let content = if m.tool_calls.is_empty() {
                    Value::from(m.content.as_str())
                } else {
                    let mut blocks = Vec::with_capacity(m.tool_calls.len() + 1);
                    if !m.content.is_empty() {
                        let mut b = Map::with_capacity(2);
                        b.insert("type".into(), Value::from("text"));
                        b.insert("text".into(), Value::from(m.content.as_str()));
                        blocks.push(Value::Object(b));
                    }
                    for c in &m.tool_calls {
                        let mut b = Map::with_capacity(4);
                        b.insert("type".into(), Value::from("tool_use"));
                        b.insert("id".into(), Value::from(c.id.as_str()));
                        b.insert("name".into(), Value::from(c.name.as_str()));
                        b.insert("input".into(), arguments_object(&c.arguments));
                        blocks.push(Value::Object(b));
                    }
                    Value::Array(blocks)
                };
                let mut o = Map::with_capacity(2);
                o.insert("role".into(), Value::from(role));
                o.insert("content".into(), content);
                messages.push(Value::Object(o));
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::from(req.model));
    body.insert("max_tokens".into(), Value::from(req.max_tokens));
    body.insert("temperature".into(), Value::from(req.temperature));
    body.insert("stream".into(), Value::Bool(true));
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::from(system));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), Value::from(req.stop.to_vec()));
    }
    let tools = declared_tools(req);
    if !tools.is_empty() {
        let tools: Vec<Value> = tools
            .into_iter()
            .map(|t| {
                let mut o = Map::with_capacity(3);
                o.insert("name".into(), Value::from(t.name));
                if !t.description.is_empty() {
                    o.insert("description".into(), Value::from(t.description));
                }
                o.insert("input_schema".into(), t.parameters);
                Value::Object(o)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    merge_extra(&mut body, req.extra_body);
    Value::Object(body)
}

/// Appends a content block to the open user message of tool results, or opens one.
fn push_block(messages: &mut Vec<Value>, open: &mut bool, block: Value) {
    if *open {
        if let Some(Value::Array(blocks)) = messages.last_mut().and_then(|m| m.get_mut("content"))
        {
            blocks.push(block);
            return;
        }
    }
    let mut o = Map::with_capacity(2);
    o.insert("role".into(), Value::from("user"));
    o.insert("content".into(), Value::Array(vec![block]));
    messages.push(Value::Object(o));
    *open = true;
}

/// Per-probe decoding state.
#[derive(Default)]
pub struct Decoder {
    /// Cache counts from `message_start`, to complete a later `input_tokens` that comes alone.
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<MessageStart<'a>>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    content_block: Option<Block<'a>>,
    usage: Option<Value>,
    #[serde(borrow)]
    error: Option<ErrorBody<'a>>,
}

#[derive(Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow)]
    model: Option<Text<'a>>,
    usage: Option<Value>,
}

/// The `delta` of `content_block_delta` and of `message_delta`, in one shape.
#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    thinking: Option<Text<'a>>,
    #[serde(borrow)]
    partial_json: Option<Text<'a>>,
    #[serde(borrow)]
    stop_reason: Option<Text<'a>>,
}

/// The block a `content_block_start` opens.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
}

/// Longest error message kept, in bytes.
const MAX_ERROR_MESSAGE: usize = 300;

impl Decoder {
    /// Reads a usage object at `prefix`; `with_output` is false for `message_start`, whose
    /// `output_tokens` is a placeholder.
    fn usage(
        &mut self,
        u: &Value,
        prefix: &str,
        with_output: bool,
        out: &mut Vec<Signal>,
    ) -> Result<(), DecodeError> {
        if u.is_null() {
            return Ok(());
        }
        let count = |field: &str| token_count(DIALECT_NAME, u, prefix, field);
        let uncached = count("input_tokens")?;
        let output = if with_output {
            count("output_tokens")?
        } else {
            // Still validated: an absurd placeholder is as malformed as an absurd total.
            count("output_tokens")?;
            None
        };
        let cache_read = count("cache_read_input_tokens")?;
        let cache_creation = count("cache_creation_input_tokens")?;
        if cache_read.is_some() {
            self.cache_read = cache_read;
        }
        if cache_creation.is_some() {
            self.cache_creation = cache_creation;
        }
        let input = uncached.map(|n| {
            n.saturating_add(self.cache_read.unwrap_or(0))
                .saturating_add(self.cache_creation.unwrap_or(0))
        });
        if input.is_none() && output.is_none() && cache_read.is_none() {
            return Ok(());
        }
        out.push(Signal::Usage(UsageReport {
            source: TokenSource::MessageDeltaUsage,
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cache_read,
            reasoning_tokens: None,
        }));
        Ok(())
    }
}

fn output(out: &mut Vec<Signal>, kind: OutputKind, text: Option<Text<'_>>) {
    if let Some(Text(text)) = text.filter(|t| !t.0.is_empty()) {
        out.push(Signal::Output {
            kind,
            text: text.into_owned(),
        });
    }
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, event: &FramedEvent<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let ev: Event<'_> = serde_json::from_str(data).map_err(|e| DecodeError {
            dialect: DIALECT_NAME,
            reason: format!("invalid JSON event: {e}"),
        })?;
        let kind = match &ev.kind {
            Some(Text(k)) => &**k,
            None if !event.event.is_empty() && event.event != "message" => event.event,
            None => {
                return Err(DecodeError {
                    dialect: DIALECT_NAME,
                    reason: "event without a type".into(),
                })
            }
        };
        match kind {
            "message_start" => {
                if let Some(m) = ev.message {
                    if let Some(Text(model)) = m.model.filter(|m| !m.0.is_empty()) {
                        out.push(Signal::Model(model.into_owned()));
                    }
                    if let Some(u) = &m.usage {
                        self.usage(u, "message_start.message.usage", false, out)?;
                    }
                }
            }
            "content_block_delta" => {
                if let Some(d) = ev.delta {
                    match d.kind.as_ref().map(|k| &*k.0) {
                        Some("text_delta") => output(out, OutputKind::Answer, d.text),
                        Some("thinking_delta") => output(out, OutputKind::Reasoning, d.thinking),
                        Some("input_json_delta") => {
                            output(out, OutputKind::ToolCall, d.partial_json)
                        }
                        // signature_delta, citations_delta and future kinds carry no tokens.
                        _ => {}
                    }
                }
            }
            "message_delta" => {
                if let Some(Text(reason)) = ev
                    .delta
                    .and_then(|d| d.stop_reason)
                    .filter(|r| !r.0.is_empty())
                {
                    // Claude declines with `stop_reason: "refusal"`.
                    let refused = reason == "refusal";
                    out.push(Signal::FinishReason(reason.into_owned()));
                    if refused {
                        out.push(content_withheld("stop_reason", "refusal"));
                    }
                }
                if let Some(u) = &ev.usage {
                    self.usage(u, "message_delta.usage", true, out)?;
                }
            }
            "message_stop" => out.push(Signal::Done),
            "error" => {
                let (kind, message) = match &ev.error {
                    Some(e) => (
                        e.kind.as_ref().map(|k| &*k.0),
                        e.message.as_ref().map(|m| &*m.0),
                    ),
                    None => (None, None),
                };
                out.push(error_signal(kind, message));
            }
            "content_block_start" => {
                // A tool_use block names the call; its arguments follow as input_json_delta.
                if let Some(b) = ev.content_block.filter(|b| {
                    b.kind.as_ref().is_some_and(|k| k.0 == "tool_use")
                }) {
                    out.push(Signal::ToolCall {
                        id: b.id.map(|i| i.0.into_owned()).filter(|i| !i.is_empty()),
                        name: b.name.map(|n| n.0.into_owned()).unwrap_or_default(),
                        signature: None,
                    });
                }
            }
            // ping, content_block_stop and unknown types.
            _ => {}
        }
        Ok(())
    }
}

fn error_signal(kind: Option<&str>, message: Option<&str>) -> Signal {
    let condition = ErrorCondition::of_error_words(kind);
    let kind = kind.filter(|k| !k.is_empty());
    let message = message.map(str::trim).filter(|m| !m.is_empty());
    let text = match (kind, message) {
        (Some(k), Some(m)) => format!("{k}: {}", truncate(m, MAX_ERROR_MESSAGE)),
        (Some(k), None) => k.to_string(),
        (None, Some(m)) => truncate(m, MAX_ERROR_MESSAGE).to_string(),
        (None, None) => "unknown error".to_string(),
    };
    Signal::Error {
        kind: condition,
        message: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(events: &[(&str, &str)]) -> Result<Vec<Signal>, DecodeError> {
        super::super::decode_all::<Decoder>(events)
    }

    fn usage(input: Option<u64>, output: Option<u64>, cached: Option<u64>) -> Signal {
        Signal::Usage(UsageReport {
            source: TokenSource::MessageDeltaUsage,
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            reasoning_tokens: None,
        })
    }

    fn out(kind: OutputKind, text: &str) -> Signal {
        Signal::Output {
            kind,
            text: text.into(),
        }
    }

    #[test]
    fn message_lifecycle() {
        let got = decode_all(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":2,"cache_read_input_tokens":30,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"input_tokens":11,"output_tokens":16}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert_eq!(
            got,
            Ok(vec![
                Signal::Model("claude-x".into()),
                // message_start's output_tokens placeholder is not reported.
                usage(Some(42), None, Some(30)),
                out(OutputKind::Answer, "Hi"),
                Signal::FinishReason("end_turn".into()),
                usage(None, Some(15), None),
                usage(Some(43), Some(16), None),
                Signal::Done,
            ])
        );
    }

    #[test]
    fn delta_kinds() {
        let got = decode_all(&[
            (
                "",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}}"#,
            ),
            ("", r#"{"type":"brand_new_event","x":1}"#),
        ]);
        assert_eq!(
            got,
            Ok(vec![
                out(OutputKind::Reasoning, "hmm"),
                out(OutputKind::ToolCall, "{\"city\":"),
            ])
        );
    }

    #[test]
    fn errors() {
        let got = decode_all(&[
            (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            (
                "error",
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#,
            ),
            (
                "error",
                r#"{"type":"error","error":{"type":"api_error","message":"Internal"}}"#,
            ),
            ("error", r#"{"type":"error"}"#),
        ]);
        assert_eq!(
            got,
            Ok(vec![
                Signal::Error {
                    kind: ErrorCondition::Overloaded,
                    message: "overloaded_error: Overloaded".into()
                },
                Signal::Error {
                    kind: ErrorCondition::RateLimited,
                    message: "rate_limit_error: slow".into()
                },
                Signal::Error {
                    kind: ErrorCondition::Other,
                    message: "api_error: Internal".into()
                },
                Signal::Error {
                    kind: ErrorCondition::Other,
                    message: "unknown error".into()
                },
            ])
        );
    }

    #[test]
    fn implausible_usage_names_the_field() {
        let got = decode_all(&[(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":18446744073709551615}}"#,
        )]);
        assert_eq!(
            got,
            Err(DecodeError {
                dialect: "anthropic-messages",
                reason: "implausible usage: message_delta.usage.output_tokens = \
                         18446744073709551615 (more than 100000000 tokens)"
                    .into()
            })
        );
        let got = decode_all(&[(
            "message_start",
            r#"{"type":"message_start","message":{"model":"m","usage":{"input_tokens":-3,"output_tokens":1}}}"#,
        )]);
        assert!(
            matches!(&got, Err(e) if e.reason == "implausible usage: message_start.message.usage.input_tokens = -3 (not a token count)"),
            "{got:?}"
        );
    }

    #[test]
    fn type_falls_back_to_event_name_and_bad_json_is_an_error() {
        assert_eq!(
            decode_all(&[("message_stop", "{}")]),
            Ok(vec![Signal::Done])
        );
        assert_eq!(decode_all(&[("", " ")]), Ok(vec![]));
        assert_eq!(
            decode_all(&[("", "{}")]),
            Err(DecodeError {
                dialect: "anthropic-messages",
                reason: "event without a type".into()
            })
        );
        let err = decode_all(&[("message_start", "{nope")]);
        assert!(
            matches!(&err, Err(DecodeError { dialect: "anthropic-messages", reason }) if reason.starts_with("invalid JSON event: ")),
            "{err:?}"
        );
    }
}
