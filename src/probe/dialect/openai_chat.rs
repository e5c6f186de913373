//! OpenAI Chat Completions (`POST {base_url}/chat/completions`), as spoken by OpenAI, vLLM,
//! SGLang, TGI, llama.cpp and most gateways.
//!
//! Decoding, shared with [`super::openai_completions`]:
//! - `data: [DONE]` is [`Signal::Done`]; whitespace-only data is a keep-alive.
//! - `model` is reported the first time it is seen and whenever it changes.
//! - Per event, every output kind present is reported once, texts of all choices (and all tool
//!   calls) concatenated, in the order Reasoning, Answer, ToolCall. An event carrying both
//!   reasoning and answer text therefore yields two outputs with the same arrival time.
//! - Answer text is `delta.content` (and `delta.refusal`, which the user sees the same way);
//!   reasoning is `delta.reasoning_content`, or `delta.reasoning` when the former is absent (vLLM
//!   renamed the field; servers sending both send the same text twice); tool-call text is
//!   `delta.tool_calls[].function.arguments` (and the legacy `delta.function_call.arguments`).
//! - A tool call starts ([`Signal::ToolCall`], before its arguments) at the first chunk of its
//!   `index` that carries an `id` or `function.name`; a chunk repeating the same index and id
//!   (some servers do) continues the call.
//! - Errors: a top-level `error` (object or string), an object whose `object` is `"error"`,
//!   Groq's `x_groq.error`, or any data under `event: error`. Other named events are ignored.
//!   The error's `type`/`code` pick its [`ErrorCondition`] (rate limit, overload, other).
//! - Usage, from every place servers put it, in any chunk (a `choices: []` chunk, the chunk with
//!   `finish_reason`, or every chunk as a running total):
//!   - `usage` ([`TokenSource::Usage`]): `prompt_tokens`, `completion_tokens`, cached prompt
//!     tokens from `prompt_tokens_details.cached_tokens` or DeepSeek's
//!     `prompt_cache_hit_tokens`, reasoning from `completion_tokens_details.reasoning_tokens` or
//!     SGLang's top-level `reasoning_tokens`. An all-zero `usage` is a placeholder (Ollama's
//!     completions endpoint puts one on every chunk before the real one) and is skipped.
//!   - `x_groq.usage` ([`TokenSource::XGroqUsage`]): Groq's final chunk, same fields.
//!   - `timings` ([`TokenSource::Timings`]): llama.cpp's final chunk; `predicted_n` output,
//!     `prompt_n` (tokens processed) + `cache_n` (tokens reused from the cache) input.
//!
//!   Every count is checked with [`super::token_count`]: a negative, non-numeric or absurd
//!   count (above [`super::MAX_PLAUSIBLE_TOKENS`]) is a decode error naming the field.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::common::{
    content_withheld, function_tools, merge_extra, role_content_messages, stream_error, truncate,
    Text, MAX_ERROR_MESSAGE,
};
use super::{
    token_count, AuthStyle, DecodeError, Dialect, Framing, ErrorCondition, FramedEvent, OutputKind, ProbeRequest, Signal,
    StreamDecoder, TokenSource, UsageReport,
};

/// The dialect's row: `POST {base_url}/chat/completions`, SSE, bearer auth.
pub static DIALECT: Dialect = Dialect {
    name: "openai-chat",
    framing: Framing::Sse,
    path: |_| "/chat/completions".to_string(),
    default_auth: AuthStyle::Bearer,
    fixed_headers: &[],
    content_types: &["text/event-stream"],
    build_body,
    decoder: || Box::new(Decoder::default()),
    finish_reason_ends_stream: true,
    end_marker: OPENAI_END_MARKER,
    reports_model: true,
    supports_tools: true,
    simulator_prefix: "/v1",
};

/// What completes an OpenAI-style stream: some servers and proxies omit `[DONE]`, so a finish
/// reason followed by a clean end of body does too.
pub(super) const OPENAI_END_MARKER: &str = "[DONE] or a finish_reason";

/// Builds the streaming request body.
pub fn build_body(req: &ProbeRequest<'_>) -> Value {
    let messages = role_content_messages(req.messages);
    let mut body = Map::new();
    body.insert("model".into(), Value::from(req.model));
    body.insert("messages".into(), messages);
    insert_openai_common(&mut body, req);
    if !req.tools.is_empty() {
        body.insert("tools".into(), function_tools(req.tools));
    }
    merge_extra(&mut body, req.extra_body);
    Value::Object(body)
}

/// Fields both OpenAI dialects send: limits, sampling, streaming, stop and usage reporting.
pub(super) fn insert_openai_common(body: &mut Map<String, Value>, req: &ProbeRequest<'_>) {
    body.insert("max_tokens".into(), Value::from(req.max_tokens));
    body.insert("temperature".into(), Value::from(req.temperature));
    body.insert("stream".into(), Value::Bool(true));
    if !req.stop.is_empty() {
        body.insert("stop".into(), Value::from(req.stop.to_vec()));
    }
    if req.include_usage {
        let mut opts = Map::with_capacity(1);
        opts.insert("include_usage".into(), Value::Bool(true));
        body.insert("stream_options".into(), Value::Object(opts));
    }
}

/// Per-probe decoding state.
#[derive(Default)]
pub struct Decoder {
    state: State,
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, event: &FramedEvent<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        self.state.decode(Mode::Chat, event, out)
    }
}

/// Which OpenAI dialect an event belongs to: where its output text lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// `choices[].delta.*`.
    Chat,
    /// `choices[].text`.
    Completions,
}

impl Mode {
    fn dialect(self) -> &'static str {
        match self {
            Mode::Chat => "openai-chat",
            Mode::Completions => "openai-completions",
        }
    }
}

/// Decoding state shared by both OpenAI dialects.
#[derive(Default)]
pub(super) struct State {
    /// The model last reported, to report it again only when it changes.
    model: Option<String>,
    /// The tool call being streamed: its `index` and `id`, to tell a new call from more of
    /// the same one (some servers repeat the id or name on every chunk).
    tool: Option<(Option<u64>, Option<String>)>,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    model: Option<Text<'a>>,
    #[serde(borrow)]
    object: Option<Text<'a>>,
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
    usage: Option<Value>,
    x_groq: Option<XGroq>,
    timings: Option<Value>,
    /// An object `{message, type, code}` or, on some servers, a plain string.
    error: Option<Value>,
    // Top-level error fields of `{"object": "error", ...}` (vLLM) and TGI's `error_type`.
    #[serde(borrow)]
    message: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    code: Option<Value>,
    #[serde(borrow)]
    error_type: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Text<'a>>,
    #[serde(borrow)]
    refusal: Option<Text<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Text<'a>>,
    #[serde(borrow)]
    reasoning: Option<Text<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow)]
    function_call: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    arguments: Option<Text<'a>>,
}

/// Groq's extension object: `usage` in the final chunk, `error` when it stops a stream early.
#[derive(Deserialize)]
struct XGroq {
    usage: Option<Value>,
    error: Option<Value>,
}

/// Output texts of one event, by kind; tool-call starts and arguments in stream order.
#[derive(Default)]
struct Outputs {
    reasoning: Option<String>,
    answer: Option<String>,
    tools: Vec<Signal>,
}

impl Outputs {
    fn tool_start(&mut self, id: Option<String>, name: String) {
        self.tools.push(Signal::ToolCall {
            id,
            name,
            signature: None,
        });
    }

    fn tool_arguments(&mut self, text: Option<Text<'_>>) {
        let Some(Text(text)) = text.filter(|t| !t.0.is_empty()) else {
            return;
        };
        if let Some(Signal::Output {
            kind: OutputKind::ToolCall,
            text: prev,
        }) = self.tools.last_mut()
        {
            prev.push_str(&text);
        } else {
            self.tools.push(Signal::Output {
                kind: OutputKind::ToolCall,
                text: text.into_owned(),
            });
        }
    }
}

fn append(slot: &mut Option<String>, text: Option<Text<'_>>) {
    let Some(Text(text)) = text else { return };
    if text.is_empty() {
        return;
    }
    match slot {
        Some(s) => s.push_str(&text),
        None => *slot = Some(text.into_owned()),
    }
}

impl Outputs {
    fn emit(self, out: &mut Vec<Signal>) {
        let kinds = [
            (OutputKind::Reasoning, self.reasoning),
            (OutputKind::Answer, self.answer),
        ];
        for (kind, text) in kinds {
            if let Some(text) = text {
                out.push(Signal::Output { kind, text });
            }
        }
        out.extend(self.tools);
    }
}

impl State {
    pub(super) fn decode(
        &mut self,
        mode: Mode,
        event: &FramedEvent<'_>,
        out: &mut Vec<Signal>,
    ) -> Result<(), DecodeError> {
        let data = event.data.trim();
        match event.event {
            "" | "message" => {}
            "error" => {
                out.push(error_event(data));
                return Ok(());
            }
            _ => return Ok(()),
        }
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            out.push(Signal::Done);
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_str(data).map_err(|e| DecodeError {
            dialect: mode.dialect(),
            reason: format!("invalid JSON chunk: {e}"),
        })?;

        if let Some(Text(model)) = chunk.model {
            if !model.is_empty() && self.model.as_deref() != Some(&*model) {
                let model = model.into_owned();
                self.model = Some(model.clone());
                out.push(Signal::Model(model));
            }
        }
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            out.push(error_from_value(
                &error,
                chunk.error_type.as_ref().map(|t| &*t.0),
            ));
            return Ok(());
        }
        if chunk.object.as_ref().is_some_and(|o| o.0 == "error") {
            out.push(stream_error(
                chunk.message.as_ref().map(|m| &*m.0),
                chunk.kind.as_ref().map(|k| &*k.0),
                chunk.code.as_ref(),
            ));
            return Ok(());
        }
        if let Some(message) = chunk
            .x_groq
            .as_ref()
            .and_then(|x| x.error.as_ref())
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            // A short reason string, the only thing Groq says about it: classify it as a type.
            out.push(Signal::Error {
                kind: ErrorCondition::of_error_words([message]),
                message: format!("x_groq.error: {}", truncate(message, MAX_ERROR_MESSAGE)),
            });
            return Ok(());
        }

        let mut outputs = Outputs::default();
        let mut finish = None;
        for choice in chunk.choices.into_iter().flatten() {
            match mode {
                Mode::Chat => {
                    if let Some(d) = choice.delta {
                        append(&mut outputs.reasoning, d.reasoning_content.or(d.reasoning));
                        append(&mut outputs.answer, d.content);
                        append(&mut outputs.answer, d.refusal);
                        for call in d.tool_calls.into_iter().flatten() {
                            let (name, arguments) = match call.function {
                                Some(f) => (f.name, f.arguments),
                                None => (None, None),
                            };
                            let id = call.id.map(|t| t.0.into_owned()).filter(|i| !i.is_empty());
                            let name = name.map(|t| t.0.into_owned()).filter(|n| !n.is_empty());
                            if id.is_some() || name.is_some() {
                                let same = self.tool.as_ref().is_some_and(|(index, cur)| {
                                    *index == call.index && (id.is_none() || id == *cur)
                                });
                                if !same {
                                    self.tool = Some((call.index, id.clone()));
                                    outputs.tool_start(id, name.unwrap_or_default());
                                }
                            }
                            outputs.tool_arguments(arguments);
                        }
                        if let Some(f) = d.function_call {
                            // The legacy single call: its name comes once, first.
                            if let Some(Text(name)) = f.name.filter(|n| !n.0.is_empty()) {
                                outputs.tool_start(None, name.into_owned());
                            }
                            outputs.tool_arguments(f.arguments);
                        }
                    }
                }
                Mode::Completions => append(&mut outputs.answer, choice.text),
            }
            if finish.is_none() {
                finish = choice.finish_reason.filter(|f| !f.0.is_empty());
            }
        }
        outputs.emit(out);
        if let Some(Text(reason)) = finish {
            // Azure OpenAI (and OpenAI) stop a filtered answer with `content_filter`.
            if reason == "content_filter" {
                out.push(Signal::FinishReason(reason.into_owned()));
                out.push(content_withheld("finish_reason", "content_filter"));
            } else {
                out.push(Signal::FinishReason(reason.into_owned()));
            }
        }
        let dialect = mode.dialect();
        if let Some(t) = &chunk.timings {
            if let Some(r) = timings_report(dialect, t)? {
                out.push(Signal::Usage(r));
            }
        }
        if let Some(u) = chunk.x_groq.as_ref().and_then(|x| x.usage.as_ref()) {
            if let Some(r) = usage_report(dialect, u, "x_groq.usage", TokenSource::XGroqUsage)? {
                out.push(Signal::Usage(r));
            }
        }
        if let Some(u) = &chunk.usage {
            if let Some(r) = usage_report(dialect, u, "usage", TokenSource::Usage)? {
                out.push(Signal::Usage(r));
            }
        }
        Ok(())
    }
}

/// Reads an OpenAI-shaped usage object found at `prefix`.
fn usage_report(
    dialect: &'static str,
    u: &Value,
    prefix: &str,
    source: TokenSource,
) -> Result<Option<UsageReport>, DecodeError> {
    if u.is_null() {
        return Ok(None);
    }
    if !u.is_object() {
        return Err(DecodeError {
            dialect,
            reason: format!("implausible usage: {prefix} is not an object"),
        });
    }
    let count = |path: &str| token_count(dialect, u, prefix, path);
    let input = count("prompt_tokens")?;
    let output = count("completion_tokens")?;
    let cached = match count("prompt_tokens_details.cached_tokens")? {
        Some(n) => Some(n),
        None => count("prompt_cache_hit_tokens")?,
    };
    let reasoning = match count("completion_tokens_details.reasoning_tokens")? {
        Some(n) => Some(n),
        None => count("reasoning_tokens")?,
    };
    if [input, output, cached, reasoning]
        .iter()
        .all(|n| n.unwrap_or(0) == 0)
    {
        return Ok(None);
    }
    Ok(Some(UsageReport {
        source,
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        reasoning_tokens: reasoning,
    }))
}

/// Reads llama.cpp's `timings` object. Anything but an object is ignored: `timings` is
/// informational, and only its counts matter here.
fn timings_report(dialect: &'static str, t: &Value) -> Result<Option<UsageReport>, DecodeError> {
    if !t.is_object() {
        return Ok(None);
    }
    let output = token_count(dialect, t, "timings", "predicted_n")?;
    let processed = token_count(dialect, t, "timings", "prompt_n")?;
    let cache = token_count(dialect, t, "timings", "cache_n")?;
    if output.is_none() && processed.is_none() {
        return Ok(None);
    }
    Ok(Some(UsageReport {
        source: TokenSource::Timings,
        input_tokens: processed.map(|p| p.saturating_add(cache.unwrap_or(0))),
        output_tokens: output,
        cached_input_tokens: cache,
        reasoning_tokens: None,
    }))
}

/// The error signal for data under `event: error`: a JSON error body when it is one, else the
/// text itself.
fn error_event(data: &str) -> Signal {
    match serde_json::from_str::<Chunk<'_>>(data) {
        Ok(chunk) => match chunk.error.filter(|e| !e.is_null()) {
            Some(error) => error_from_value(&error, chunk.error_type.as_ref().map(|t| &*t.0)),
            None => stream_error(
                chunk.message.as_ref().map(|m| &*m.0),
                chunk
                    .kind
                    .as_ref()
                    .map(|k| &*k.0)
                    .or(chunk.error_type.as_ref().map(|t| &*t.0)),
                chunk.code.as_ref(),
            ),
        },
        Err(_) => stream_error(Some(data), None, None),
    }
}

fn error_from_value(error: &Value, error_type: Option<&str>) -> Signal {
    match error {
        Value::Object(o) => stream_error(
            o.get("message").and_then(Value::as_str),
            o.get("type").and_then(Value::as_str).or(error_type),
            o.get("code"),
        ),
        Value::String(s) => stream_error(Some(s), error_type, None),
        other => stream_error(None, error_type, Some(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(events: &[(&str, &str)]) -> Result<Vec<Signal>, DecodeError> {
        super::super::decode_all::<Decoder>(events)
    }

    fn one(data: &str) -> Vec<Signal> {
        decode_all(&[("", data)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn answer(t: &str) -> Signal {
        Signal::Output {
            kind: OutputKind::Answer,
            text: t.to_string(),
        }
    }

    #[test]
    fn content_delta_is_answer_and_model_is_reported_once() {
        let got = decode_all(&[
            (
                "",
                r#"{"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            ),
            (
                "message",
                r#"{"model":"m1","choices":[{"index":0,"delta":{"content":"Hi\n"},"finish_reason":null}]}"#,
            ),
            (
                "",
                r#"{"model":"m2","choices":[{"index":0,"delta":{"content":"!"}}],"usage":null}"#,
            ),
        ]);
        assert_eq!(
            got,
            Ok(vec![
                Signal::Model("m1".into()),
                answer("Hi\n"),
                Signal::Model("m2".into()),
                answer("!"),
            ])
        );
    }

    #[test]
    fn done_finish_and_usage() {
        assert_eq!(one(" [DONE] "), vec![Signal::Done]);
        assert_eq!(
            one(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#),
            vec![Signal::FinishReason("length".into())]
        );
        assert_eq!(
            one(
                r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":8}}}"#
            ),
            vec![usage(TokenSource::Usage, Some(12), Some(5), Some(8), None)]
        );
        assert_eq!(
            one(
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":null}}"#
            ),
            vec![usage(TokenSource::Usage, Some(3), Some(1), None, None)]
        );
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

    #[test]
    fn usage_in_the_finish_chunk_and_provider_fields() {
        // Usage riding on the chunk that carries finish_reason (Mistral, DeepSeek, Gemini).
        assert_eq!(
            one(
                r#"{"choices":[{"index":0,"delta":{"content":"."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,"prompt_cache_hit_tokens":8,"prompt_cache_miss_tokens":1,"completion_tokens_details":{"reasoning_tokens":2}}}"#
            ),
            vec![
                answer("."),
                Signal::FinishReason("stop".into()),
                usage(TokenSource::Usage, Some(9), Some(4), Some(8), Some(2)),
            ]
        );
        // SGLang's top-level reasoning_tokens; OpenAI's cached_tokens wins over DeepSeek's.
        assert_eq!(
            one(
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"reasoning_tokens":3,"prompt_tokens_details":{"cached_tokens":5},"prompt_cache_hit_tokens":8}}"#
            ),
            vec![usage(
                TokenSource::Usage,
                Some(9),
                Some(4),
                Some(5),
                Some(3)
            )]
        );
        // Groq: x_groq.usage; both present in one chunk, each is reported with its source.
        assert_eq!(
            one(
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"queue_time":0.01,"prompt_tokens":40,"prompt_time":0.002,"completion_tokens":7,"completion_time":0.01,"total_tokens":47,"total_time":0.012}}}"#
            ),
            vec![
                Signal::FinishReason("stop".into()),
                usage(TokenSource::XGroqUsage, Some(40), Some(7), None, None),
            ]
        );
        // llama.cpp timings: prompt_n processed + cache_n reused.
        assert_eq!(
            one(
                r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"timings":{"cache_n":12,"prompt_n":5,"prompt_ms":3.1,"predicted_n":6,"predicted_ms":40.2}}"#
            ),
            vec![
                Signal::FinishReason("stop".into()),
                usage(TokenSource::Timings, Some(17), Some(6), Some(12), None),
            ]
        );
        // Ollama's all-zero placeholder on every completions chunk is not a report.
        assert_eq!(
            one(
                r#"{"choices":[{"index":0,"text":"x","finish_reason":null}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}"#
            ),
            vec![]
        );
        // An integral float is a count.
        assert_eq!(
            one(r#"{"choices":[],"usage":{"prompt_tokens":3.0,"completion_tokens":1}}"#),
            vec![usage(TokenSource::Usage, Some(3), Some(1), None, None)]
        );
    }

    #[test]
    fn implausible_usage_is_a_decode_error_naming_the_field() {
        let cases = [
            (
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":18446744073709551615}}"#,
                "implausible usage: usage.completion_tokens = 18446744073709551615 (more than 100000000 tokens)",
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1e30}}"#,
                "implausible usage: usage.completion_tokens = 1e+30 (more than 100000000 tokens)",
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":2}}"#,
                "implausible usage: usage.prompt_tokens = -1 (not a token count)",
            ),
            (
                r#"{"choices":[],"x_groq":{"usage":{"completion_tokens":"many"}}}"#,
                "implausible usage: x_groq.usage.completion_tokens = \"many\" (not a token count)",
            ),
            (
                r#"{"choices":[],"timings":{"prompt_n":1,"predicted_n":100000001}}"#,
                "implausible usage: timings.predicted_n = 100000001 (more than 100000000 tokens)",
            ),
            (
                r#"{"choices":[],"usage":7}"#,
                "implausible usage: usage is not an object",
            ),
        ];
        for (data, want) in cases {
            let got = decode_all(&[("", data)]);
            assert_eq!(
                got,
                Err(DecodeError {
                    dialect: "openai-chat",
                    reason: want.to_string()
                }),
                "{data}"
            );
        }
        // The bound itself is accepted.
        assert_eq!(
            one(r#"{"choices":[],"usage":{"completion_tokens":100000000}}"#),
            vec![usage(
                TokenSource::Usage,
                None,
                Some(100_000_000),
                None,
                None
            )]
        );
    }

    #[test]
    fn reasoning_answer_and_tool_call_kinds() {
        assert_eq!(
            one(
                r#"{"choices":[{"delta":{"reasoning_content":"think","reasoning":"think","content":"ans"}}]}"#
            ),
            vec![
                Signal::Output {
                    kind: OutputKind::Reasoning,
                    text: "think".into()
                },
                answer("ans"),
            ]
        );
        assert_eq!(
            one(r#"{"choices":[{"delta":{"reasoning":"r"}}]}"#),
            vec![Signal::Output {
                kind: OutputKind::Reasoning,
                text: "r".into()
            }]
        );
        assert_eq!(
            one(
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}},{"index":1,"function":{"arguments":":1}"}}]}}]}"#
            ),
            vec![Signal::Output {
                kind: OutputKind::ToolCall,
                text: "{\"a\":1}".into()
            }]
        );
        // The tool call's opening chunk names the function but carries no arguments yet.
        assert_eq!(
            one(
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#
            ),
            vec![Signal::ToolCall {
                id: Some("call_1".into()),
                name: "f".into(),
                signature: None
            }]
        );
    }

    #[test]
    fn role_only_and_empty_choices_produce_nothing() {
        assert_eq!(
            one(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#),
            vec![]
        );
        assert_eq!(one(r#"{"choices":[{"delta":{"content":null}}]}"#), vec![]);
        assert_eq!(one(r#"{"choices":[]}"#), vec![]);
        assert_eq!(one("  "), vec![]);
    }

    #[test]
    fn in_stream_errors() {
        assert_eq!(
            one(
                r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
            ),
            vec![Signal::Error {
                kind: ErrorCondition::RateLimited,
                message: "requests (rate_limit_exceeded): Rate limit reached".into()
            }]
        );
        assert_eq!(
            one(
                r#"{"object":"error","message":"boom","type":"InternalServerError","param":null,"code":500}"#
            ),
            vec![Signal::Error {
                kind: ErrorCondition::Other,
                message: "InternalServerError (500): boom".into()
            }]
        );
        assert_eq!(
            one(
                r#"{"error":"Request failed during generation: overloaded","error_type":"generation"}"#
            ),
            vec![Signal::Error {
                kind: ErrorCondition::Other,
                message: "generation: Request failed during generation: overloaded".into()
            }]
        );
        assert_eq!(
            one(r#"{"error":{"code":429,"message":"slow down"}}"#),
            vec![Signal::Error {
                kind: ErrorCondition::RateLimited,
                message: "429: slow down".into()
            }]
        );
        assert_eq!(
            decode_all(&[(
                "error",
                r#"{"error":{"type":"overloaded_error","message":"Overloaded"}}"#
            )]),
            Ok(vec![Signal::Error {
                kind: ErrorCondition::Overloaded,
                message: "overloaded_error: Overloaded".into()
            }])
        );
        assert_eq!(
            one(
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_2","error":"over capacity"}}"#
            ),
            vec![Signal::Error {
                kind: ErrorCondition::Other,
                message: "x_groq.error: over capacity".into()
            }]
        );
        assert_eq!(
            one(
                r#"{"error":{"message":"Service Unavailable","type":"server_error","code":"service_unavailable"}}"#
            ),
            vec![Signal::Error {
                kind: ErrorCondition::Overloaded,
                message: "server_error (service_unavailable): Service Unavailable".into()
            }]
        );
        assert_eq!(
            decode_all(&[("error", "upstream went away")]),
            Ok(vec![Signal::Error {
                kind: ErrorCondition::Other,
                message: "upstream went away".into()
            }])
        );
    }

    #[test]
    fn other_named_events_are_ignored_and_bad_json_is_an_error() {
        assert_eq!(decode_all(&[("ping", "not json")]), Ok(vec![]));
        let err = decode_all(&[("", "{\"choices\":")]);
        assert!(
            matches!(&err, Err(DecodeError { dialect: "openai-chat", reason }) if reason.starts_with("invalid JSON chunk: ")),
            "{err:?}"
        );
    }

    #[test]
    fn error_messages_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate("h\u{e9}llo", 2), "h");
        assert_eq!(truncate("h\u{e9}llo", 3), "h\u{e9}");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
