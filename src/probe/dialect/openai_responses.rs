//! OpenAI Responses (`POST {base_url}/responses`), as spoken by OpenAI and vLLM.
//!
//! Request: `system` messages become `instructions` (joined by blank lines), every other message
//! goes to `input` in order with its role; an assistant turn's tool calls follow it as
//! `function_call` items (`call_id`, `name`, `arguments` text) and a tool result is a
//! `function_call_output` item (`call_id`, `output`); offered tools are
//! `{type: "function", name, description, parameters, strict: false}`; `max_output_tokens`, `temperature`, `stream: true` and
//! `store: false` (a probe's answer is not worth keeping server-side; vLLM ignores the field).
//! The API has no stop sequences: a scenario's `stop` is not sent.
//!
//! Events are dispatched on the JSON `type` (the SSE `event:` name, which servers set to the
//! same value, is used only when `type` is missing):
//! - output: `response.output_text.delta` and `response.refusal.delta` (answer),
//!   `response.reasoning_text.delta` (vLLM, open-weight models) and
//!   `response.reasoning_summary_text.delta` (OpenAI reasoning summaries) (reasoning),
//!   `response.function_call_arguments.delta` and `response.custom_tool_call_input.delta`
//!   (tool-call arguments);
//! - `response.output_item.added` with a `function_call` (or `custom_tool_call`) item starts a
//!   tool call ([`Signal::ToolCall`] with its `call_id` and `name`);
//! - `response.created` / `response.in_progress` / `response.queued` report the model;
//! - `response.completed` and `response.incomplete` end the stream. Their `response.usage`
//!   (`input_tokens` with `input_tokens_details.cached_tokens`, `output_tokens` with
//!   `output_tokens_details.reasoning_tokens`) has the OpenAI chat meaning, so it is reported
//!   unchanged. The finish reason is the `response.status` (`completed`), or for an incomplete
//!   response its `incomplete_details.reason` (`max_output_tokens`). vLLM ends a truncated
//!   response with `response.completed` whose `status` is `incomplete`; both forms are read.
//!   An incomplete response whose reason is `content_filter` is the server withholding the
//!   answer: [`Signal::Withheld`] (the probe is `check_failed`), then the end as usual.
//! - `response.failed` carries `response.error` `{code, message}`; `error` events carry `code`
//!   and `message` at the top level (or, from some proxies, an `error` object). The code picks
//!   the [`ErrorCondition`] (`rate_limit_exceeded` is a rate limit).
//!
//! `[DONE]` (sent by some proxies after the last event) and unknown event types are ignored: the
//! stream is complete only at `response.completed` or `response.incomplete`.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::common::{merge_extra, stream_error, Text};
use super::{
    token_count, AuthStyle, DecodeError, Dialect, FramedEvent, Framing, OutputKind, ProbeRequest,
    Signal, StreamDecoder, TokenSource, UsageReport,
};

const NAME: &str = "openai-responses";

/// The table row.
pub static DIALECT: Dialect = Dialect {
    name: NAME,
    framing: Framing::Sse,
    path: |_| "/responses".to_string(),
    default_auth: AuthStyle::Bearer,
    fixed_headers: &[],
    content_types: &["text/event-stream"],
    build_body,
    decoder: || Box::new(Decoder::default()),
    finish_reason_ends_stream: false,
    end_marker: "response.completed or response.incomplete",
    reports_model: true,
    supports_tools: true,
    simulator_prefix: "/v1",
};

/// Builds the streaming request body.
pub fn build_body(req: &ProbeRequest<'_>) -> Value {
    let mut instructions = String::new();
    let mut input = Vec::with_capacity(req.messages.len());
    for m in req.messages {
        if m.role == "system" {
            if !instructions.is_empty() {
                instructions.push_str("\n\n");
            }
            instructions.push_str(&m.content);
        } else if m.role == "tool" {
            let mut o = Map::with_capacity(3);
            o.insert("type".into(), Value::from("function_call_output"));
            o.insert(
                "call_id".into(),
                Value::from(m.tool_call_id.as_deref().unwrap_or_default()),
            );
            o.insert("output".into(), Value::from(m.content.as_str()));
            input.push(Value::Object(o));
        } else {
            if m.tool_calls.is_empty() || !m.content.is_empty() {
                let mut o = Map::with_capacity(2);
                o.insert("role".into(), Value::from(m.role.as_str()));
                o.insert("content".into(), Value::from(m.content.as_str()));
                input.push(Value::Object(o));
            }
            for c in &m.tool_calls {
                let mut o = Map::with_capacity(4);
                o.insert("type".into(), Value::from("function_call"));
                o.insert("call_id".into(), Value::from(c.id.as_str()));
                o.insert("name".into(), Value::from(c.name.as_str()));
                o.insert("arguments".into(), Value::from(c.arguments.as_str()));
                input.push(Value::Object(o));
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::from(req.model));
    body.insert("input".into(), Value::Array(input));
    if !instructions.is_empty() {
        body.insert("instructions".into(), Value::from(instructions));
    }
    body.insert("max_output_tokens".into(), Value::from(req.max_tokens));
    body.insert("temperature".into(), Value::from(req.temperature));
    body.insert("stream".into(), Value::Bool(true));
    body.insert("store".into(), Value::Bool(false));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut o = Map::with_capacity(5);
                o.insert("type".into(), Value::from("function"));
                o.insert("name".into(), Value::from(t.name.as_str()));
                if !t.description.is_empty() {
                    o.insert("description".into(), Value::from(t.description.as_str()));
                }
                o.insert("parameters".into(), t.parameters.clone());
                // Strict mode (the API's default) rejects schemas that do not list every
                // property as required and forbid others; a probe sends the schema it is given.
                o.insert("strict".into(), Value::Bool(false));
                Value::Object(o)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    merge_extra(&mut body, req.extra_body);
    Value::Object(body)
}

/// Per-probe decoding state.
#[derive(Default)]
pub struct Decoder {
    /// The model last reported, to report it again only when it changes.
    model: Option<String>,
}

/// One event. Only the fields read here; `delta` is kept as a value because events this
/// decoder ignores may carry other shapes under that name.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    delta: Option<Value>,
    response: Option<Value>,
    code: Option<Value>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
    error: Option<Value>,
    item: Option<Value>,
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, event: &FramedEvent<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let ev: Event<'_> = serde_json::from_str(data).map_err(|e| DecodeError {
            dialect: NAME,
            reason: format!("invalid JSON event: {e}"),
        })?;
        let kind = match &ev.kind {
            Some(Text(k)) => &**k,
            None if ev.error.as_ref().is_some_and(|e| !e.is_null()) => "error",
            None if !event.event.is_empty() && event.event != "message" => event.event,
            None => {
                return Err(DecodeError {
                    dialect: NAME,
                    reason: "event without a type".into(),
                })
            }
        };
        let output_kind = match kind {
            "response.output_text.delta" | "response.refusal.delta" => Some(OutputKind::Answer),
            "response.reasoning_text.delta" | "response.reasoning_summary_text.delta" => {
                Some(OutputKind::Reasoning)
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                Some(OutputKind::ToolCall)
            }
            _ => None,
        };
        if let Some(kind) = output_kind {
            if let Some(text) = ev.delta.as_ref().and_then(Value::as_str) {
                if !text.is_empty() {
                    out.push(Signal::Output {
                        kind,
                        text: text.to_string(),
                    });
                }
            }
            return Ok(());
        }
        match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = &ev.response {
                    self.model(r, out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let r = ev.response.unwrap_or(Value::Null);
                self.model(&r, out);
                usage(&r, kind, out)?;
                let status = r.get("status").and_then(Value::as_str).unwrap_or("");
                if status == "failed" {
                    out.push(failed(&r));
                    return Ok(());
                }
                if kind == "response.incomplete" || status == "incomplete" {
                    let reason = r
                        .get("incomplete_details")
                        .and_then(|d| d.get("reason"))
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or("incomplete");
                    out.push(Signal::FinishReason(reason.to_string()));
                    if reason == "content_filter" {
                        out.push(super::common::content_withheld(
                            "incomplete_details.reason",
                            reason,
                        ));
                    }
                } else {
                    let status = if status.is_empty() {
                        "completed"
                    } else {
                        status
                    };
                    out.push(Signal::FinishReason(status.to_string()));
                }
                out.push(Signal::Done);
            }
            "response.failed" => {
                let r = ev.response.unwrap_or(Value::Null);
                self.model(&r, out);
                usage(&r, kind, out)?;
                out.push(failed(&r));
            }
            "error" => out.push(match ev.error.as_ref().filter(|e| e.is_object()) {
                Some(e) => stream_error(
                    e.get("message").and_then(Value::as_str),
                    e.get("type").and_then(Value::as_str),
                    e.get("code"),
                ),
                None => stream_error(
                    ev.message.as_ref().map(|m| &*m.0),
                    None,
                    ev.code.as_ref(),
                ),
            }),
            "response.output_item.added" => {
                // A function call item names the call; its arguments follow as deltas.
                if let Some(item) = ev.item.as_ref().filter(|i| {
                    matches!(
                        i.get("type").and_then(Value::as_str),
                        Some("function_call" | "custom_tool_call")
                    )
                }) {
                    let text = |k: &str| {
                        item.get(k)
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                    };
                    out.push(Signal::ToolCall {
                        id: text("call_id"),
                        name: text("name").unwrap_or_default(),
                        signature: None,
                    });
                }
            }
            // Other item and part lifecycle, `.done` events that repeat the text, annotations,
            // built-in tool progress and event types added later.
            _ => {}
        }
        Ok(())
    }
}

impl Decoder {
    fn model(&mut self, response: &Value, out: &mut Vec<Signal>) {
        let Some(model) = response.get("model").and_then(Value::as_str) else {
            return;
        };
        if !model.is_empty() && self.model.as_deref() != Some(model) {
            self.model = Some(model.to_string());
            out.push(Signal::Model(model.to_string()));
        }
    }
}

/// The error signal of a failed response: its `error` object's code and message.
fn failed(response: &Value) -> Signal {
    let e = response.get("error").unwrap_or(&Value::Null);
    stream_error(
        e.get("message").and_then(Value::as_str),
        e.get("type").and_then(Value::as_str),
        e.get("code").or(Some(&Value::String("response.failed".into()))),
    )
}

/// Reads `response.usage` of a final event.
fn usage(response: &Value, kind: &str, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
    let u = match response.get("usage") {
        None | Some(Value::Null) => return Ok(()),
        Some(u) if u.is_object() => u,
        Some(_) => {
            return Err(DecodeError {
                dialect: NAME,
                reason: format!("implausible usage: {kind}.response.usage is not an object"),
            })
        }
    };
    let prefix = format!("{kind}.response.usage");
    let count = |path: &str| token_count(NAME, u, &prefix, path);
    let report = UsageReport {
        source: TokenSource::Usage,
        input_tokens: count("input_tokens")?,
        output_tokens: count("output_tokens")?,
        cached_input_tokens: count("input_tokens_details.cached_tokens")?,
        reasoning_tokens: count("output_tokens_details.reasoning_tokens")?,
    };
    if report.input_tokens.is_some() || report.output_tokens.is_some() {
        out.push(Signal::Usage(report));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::dialect::{ErrorCondition, Message};
    use serde_json::json;

    fn decode_all(events: &[(&str, &str)]) -> Result<Vec<Signal>, DecodeError> {
        super::super::decode_all::<Decoder>(events)
    }

    fn out(kind: OutputKind, text: &str) -> Signal {
        Signal::Output {
            kind,
            text: text.into(),
        }
    }

    fn usage_report(
        input: Option<u64>,
        output: Option<u64>,
        cached: Option<u64>,
        reasoning: Option<u64>,
    ) -> Signal {
        Signal::Usage(UsageReport {
            source: TokenSource::Usage,
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            reasoning_tokens: reasoning,
        })
    }

    #[test]
    fn body_uses_instructions_input_and_max_output_tokens() {
        let messages = [
            Message {
                role: "system".into(),
                content: "Be brief.".into(),
                ..Default::default()
            },
            Message {
                role: "user".into(),
                content: "Count.".into(),
                ..Default::default()
            },
            Message {
                role: "system".into(),
                content: "No lists.".into(),
                ..Default::default()
            },
        ];
        let extra = match json!({"reasoning": {"effort": "low"}, "temperature": null}) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let stop = ["END".to_string()];
        let req = ProbeRequest {
            model: "gpt-x",
            messages: &messages,
            max_tokens: 64,
            temperature: 0.0,
            stop: &stop,
            extra_body: &extra,
            include_usage: true,
            tools: &[],
        };
        assert_eq!(
            build_body(&req),
            json!({
                "model": "gpt-x",
                "input": [{"role": "user", "content": "Count."}],
                "instructions": "Be brief.\n\nNo lists.",
                "max_output_tokens": 64,
                "stream": true,
                "store": false,
                "reasoning": {"effort": "low"},
            })
        );
    }

    #[test]
    fn output_kinds_and_lifecycle() {
        let got = decode_all(&[
            (
                "response.created",
                r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-x-2026","output":[],"usage":null}}"#,
            ),
            (
                "response.in_progress",
                r#"{"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","status":"in_progress","model":"gpt-x-2026"}}"#,
            ),
            (
                "response.reasoning_summary_text.delta",
                r#"{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Plan","sequence_number":2,"obfuscation":"aB3"}"#,
            ),
            (
                "response.reasoning_text.delta",
                r#"{"type":"response.reasoning_text.delta","item_id":"rs_1","output_index":0,"content_index":0,"delta":" more","sequence_number":3}"#,
            ),
            (
                "response.output_text.delta",
                r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hi","logprobs":[],"sequence_number":4}"#,
            ),
            (
                "response.output_text.delta",
                r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":1,"content_index":0,"delta":"","logprobs":[],"sequence_number":5}"#,
            ),
            (
                "response.refusal.delta",
                r#"{"type":"response.refusal.delta","item_id":"msg_1","output_index":1,"content_index":1,"delta":"No.","sequence_number":6}"#,
            ),
            (
                "response.function_call_arguments.delta",
                r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":2,"delta":"{\"a\":","sequence_number":7}"#,
            ),
            (
                "response.output_text.done",
                r#"{"type":"response.output_text.done","item_id":"msg_1","output_index":1,"content_index":0,"text":"Hi","sequence_number":8}"#,
            ),
            (
                "response.audio.delta",
                r#"{"type":"response.audio.delta","delta":{"not":"a string"},"sequence_number":9}"#,
            ),
            (
                "response.completed",
                r#"{"type":"response.completed","sequence_number":10,"response":{"id":"resp_1","status":"completed","model":"gpt-x-2026","usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":8},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":4},"total_tokens":29}}}"#,
            ),
        ]);
        assert_eq!(
            got,
            Ok(vec![
                Signal::Model("gpt-x-2026".into()),
                out(OutputKind::Reasoning, "Plan"),
                out(OutputKind::Reasoning, " more"),
                out(OutputKind::Answer, "Hi"),
                out(OutputKind::Answer, "No."),
                out(OutputKind::ToolCall, "{\"a\":"),
                usage_report(Some(20), Some(9), Some(8), Some(4)),
                Signal::FinishReason("completed".into()),
                Signal::Done,
            ])
        );
    }

    #[test]
    fn incomplete_responses_finish_with_their_reason() {
        let incomplete = r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":5,"output_tokens":16}}}"#;
        assert_eq!(
            decode_all(&[("", incomplete)]),
            Ok(vec![
                usage_report(Some(5), Some(16), None, None),
                Signal::FinishReason("max_output_tokens".into()),
                Signal::Done,
            ])
        );
        // vLLM: a truncated response still ends with response.completed.
        let vllm = r#"{"type":"response.completed","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}}"#;
        assert_eq!(
            decode_all(&[("", vllm)]),
            Ok(vec![
                Signal::FinishReason("max_output_tokens".into()),
                Signal::Done
            ])
        );
        let filtered = r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"content_filter"}}}"#;
        let got = decode_all(&[("", filtered)]).unwrap_or_default();
        assert_eq!(got[0], Signal::FinishReason("content_filter".into()));
        assert_eq!(
            got[1..],
            [
                Signal::Withheld {
                    field: "incomplete_details.reason",
                    reason: "content_filter".into()
                },
                Signal::Done
            ]
        );
    }

    #[test]
    fn failures_and_error_events_are_classified_by_code() {
        let got = decode_all(&[
            (
                "response.failed",
                r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"rate_limit_exceeded","message":"Slow down."}}}"#,
            ),
            (
                "response.failed",
                r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"Oops."}}}"#,
            ),
            (
                "error",
                r#"{"type":"error","code":"rate_limit_exceeded","message":"Too many.","param":null,"sequence_number":3}"#,
            ),
            (
                "error",
                r#"{"type":"error","error":{"type":"server_error","code":"service_unavailable","message":"Busy."}}"#,
            ),
            (
                "",
                r#"{"error":{"message":"Internal server error","type":"InternalServerError","param":null,"code":500}}"#,
            ),
            ("", r#"{"type":"response.failed","response":{"status":"failed"}}"#),
        ]);
        let Ok(got) = got else {
            panic!("{got:?}")
        };
        let kinds: Vec<_> = got
            .iter()
            .map(|s| match s {
                Signal::Error { kind, message } => (*kind, message.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (ErrorCondition::RateLimited, "rate_limit_exceeded: Slow down."),
                (ErrorCondition::Other, "server_error: Oops."),
                (ErrorCondition::RateLimited, "rate_limit_exceeded: Too many."),
                (
                    ErrorCondition::Overloaded,
                    "server_error (service_unavailable): Busy."
                ),
                (
                    ErrorCondition::Other,
                    "InternalServerError (500): Internal server error"
                ),
                (ErrorCondition::Other, "response.failed"),
            ]
        );
    }

    #[test]
    fn done_marker_keep_alives_and_bad_events() {
        assert_eq!(decode_all(&[("", "[DONE]"), ("", "  ")]), Ok(vec![]));
        assert_eq!(
            decode_all(&[("response.completed", r#"{"response":{}}"#)]),
            Ok(vec![Signal::FinishReason("completed".into()), Signal::Done])
        );
        assert_eq!(
            decode_all(&[("", "{}")]),
            Err(DecodeError {
                dialect: NAME,
                reason: "event without a type".into()
            })
        );
        let err = decode_all(&[("", r#"{"type":"response.output_text.delta","delta":"#)]);
        assert!(
            matches!(&err, Err(e) if e.reason.starts_with("invalid JSON event")),
            "{err:?}"
        );
        let err = decode_all(&[(
            "",
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":-1}}}"#,
        )]);
        assert_eq!(
            err,
            Err(DecodeError {
                dialect: NAME,
                reason: "implausible usage: response.completed.response.usage.output_tokens = -1 \
                         (not a token count)"
                    .into()
            })
        );
    }
}
