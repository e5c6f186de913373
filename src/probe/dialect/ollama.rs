//! Ollama's native chat API (`POST {base_url}/api/chat`), streamed as NDJSON
//! (`application/x-ndjson`): one JSON object per line.
//!
//! Shapes follow Ollama's `docs/api.md` and `api/types.go` (`ChatResponse`, `Metrics`), and
//! the server's `streamResponse` for errors:
//! - `message.content` is answer text, `message.thinking` reasoning text (thinking models, with
//!   `think` set through `extra_body`), `message.tool_calls` whole tool calls: Ollama parses a
//!   call before sending it, so each call arrives complete in one line: [`Signal::ToolCall`]
//!   (`function.name`, and `id` where the server sends one), then its `function.arguments`
//!   object as one tool-call output (serialized JSON).
//! - `model` is reported once, from the first line that carries it.
//! - The last line has `done: true`, with `done_reason` (`stop`, `length`, ...), the counts
//!   `prompt_eval_count` (input) and `eval_count` (output, thinking included;
//!   [`TokenSource::EvalCount`]), and the server's own durations in nanoseconds (Go
//!   `time.Duration`), reported as [`Signal::ServerTiming`]: `load_duration` (`load`),
//!   `prompt_eval_duration` (`prompt_eval`), `eval_duration` (`eval`) and `total_duration`
//!   (`total`). Zero values are omitted by the server (`omitempty`) and absent ones are skipped.
//!   That line is the end marker ([`Signal::Done`]).
//! - An error after the stream started is a line `{"error": "<text>"}` with no type or code (an
//!   error before any byte is an HTTP status with the same body). The text is Ollama's only
//!   classifier, so it is read for the error table's words: "rate limit exceeded" (Ollama's
//!   cloud models) is a rate limit, anything else an API error.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::common::{
    arguments_object, function_tools, merge_extra, truncate, Text, MAX_ERROR_MESSAGE,
};
use super::{
    token_count, AuthStyle, DecodeError, Dialect, ErrorCondition, FramedEvent, Framing, OutputKind,
    ProbeRequest, Signal, StreamDecoder, TokenSource, UsageReport,
};

const DIALECT_NAME: &str = "ollama";

/// The dialect's row: `POST {base_url}/api/chat`, NDJSON, Bearer (Ollama's cloud API keys; a
/// local server ignores it); complete only at the `done: true` line.
pub static DIALECT: Dialect = Dialect {
    name: DIALECT_NAME,
    framing: Framing::Ndjson,
    path,
    default_auth: AuthStyle::Bearer,
    fixed_headers: &[],
    content_types: &["application/x-ndjson"],
    build_body,
    decoder: || Box::new(Decoder::default()),
    finish_reason_ends_stream: false,
    end_marker: "a line with done: true",
    reports_model: true,
    supports_tools: true,
    simulator_prefix: "",
};

/// Largest duration accepted from the server: one day, in nanoseconds. A larger (or negative,
/// or fractional) value is a malformed stream rather than a histogram outlier.
const MAX_PLAUSIBLE_NANOS: u64 = 86_400 * 1_000_000_000;

/// Request path under the base URL (the model goes in the body).
pub fn path(_model: &str) -> String {
    "/api/chat".to_string()
}

/// Builds the streaming request body: `model`, `messages` (see [`messages`]; `system`
/// included), `stream: true` and `options` with `num_predict`, `temperature` and `stop`.
///
/// `extra_body` is merged at the top level (e.g. `think: true`, `keep_alive`), except that an
/// `options` object is merged into ours field by field, so `extra_body: {options: {num_ctx:
/// 8192}}` keeps the scenario's limit and temperature.
pub fn build_body(req: &ProbeRequest<'_>) -> Value {
    let messages = messages(req.messages);
    let mut options = Map::new();
    options.insert("num_predict".into(), Value::from(req.max_tokens));
    options.insert("temperature".into(), Value::from(req.temperature));
    if !req.stop.is_empty() {
        options.insert("stop".into(), Value::from(req.stop.to_vec()));
    }
    let mut extra = req.extra_body.clone();
    if let Some(Value::Object(more)) = extra.remove("options") {
        merge_extra(&mut options, &more);
    } else if let Some(Value::Null) = req.extra_body.get("options") {
        // `options: null` drops ours, as `null` does for any other field.
        options.clear();
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::from(req.model));
    body.insert("messages".into(), messages);
    body.insert("stream".into(), Value::Bool(true));
    if !req.tools.is_empty() {
        body.insert("tools".into(), function_tools(req.tools));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    merge_extra(&mut body, &extra);
    Value::Object(body)
}

/// The messages, roles unchanged: an assistant turn's calls as `tool_calls`
/// (`[{function: {name, arguments}}]`, arguments as an object), a tool result as a `tool`
/// message naming its tool in `tool_name` (Ollama matches results to calls by name).
fn messages(messages: &[super::Message]) -> Value {
    messages
        .iter()
        .map(|m| {
            let mut o = Map::with_capacity(3);
            o.insert("role".into(), Value::from(m.role.as_str()));
            o.insert("content".into(), Value::from(m.content.as_str()));
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let mut f = Map::with_capacity(2);
                        f.insert("name".into(), Value::from(c.name.as_str()));
                        f.insert("arguments".into(), arguments_object(&c.arguments));
                        let mut call = Map::with_capacity(1);
                        call.insert("function".into(), Value::Object(f));
                        Value::Object(call)
                    })
                    .collect();
                o.insert("tool_calls".into(), Value::Array(calls));
            }
            if m.role == "tool" {
                if let Some(name) = &m.tool_name {
                    o.insert("tool_name".into(), Value::from(name.as_str()));
                }
            }
            Value::Object(o)
        })
        .collect::<Vec<_>>()
        .into()
}

/// Per-probe decoding state.
#[derive(Default)]
pub struct Decoder {
    model_sent: bool,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    model: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<LineMessage<'a>>,
    done: Option<bool>,
    #[serde(borrow)]
    done_reason: Option<Text<'a>>,
    /// A string on current servers; anything else is shown as JSON.
    error: Option<Value>,
}

#[derive(Deserialize)]
struct LineMessage<'a> {
    #[serde(borrow)]
    content: Option<Text<'a>>,
    #[serde(borrow)]
    thinking: Option<Text<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    function: Option<Function<'a>>,
}

/// The arguments are kept as the JSON text that was sent, so the output is never longer than
/// the line that carried it.
#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// The server-reported durations of the final line: field and phase name.
const DURATIONS: [(&str, &str); 4] = [
    ("load_duration", "load"),
    ("prompt_eval_duration", "prompt_eval"),
    ("eval_duration", "eval"),
    ("total_duration", "total"),
];

fn output(out: &mut Vec<Signal>, kind: OutputKind, text: Option<Text<'_>>) {
    if let Some(Text(text)) = text.filter(|t| !t.0.is_empty()) {
        out.push(Signal::Output {
            kind,
            text: text.into_owned(),
        });
    }
}

/// A duration in nanoseconds at `field`, as seconds; `None` when absent or `null`.
fn duration(v: &Value, field: &str) -> Result<Option<f64>, DecodeError> {
    let bad = |what: String| DecodeError {
        dialect: DIALECT_NAME,
        reason: format!("implausible duration: {field} = {what}"),
    };
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ns) if ns <= MAX_PLAUSIBLE_NANOS => Ok(Some(ns as f64 / 1e9)),
            _ => Err(bad(format!("{n} (not a count of nanoseconds up to a day)"))),
        },
        Some(other) => {
            let text: String = other.to_string().chars().take(40).collect();
            Err(bad(format!("{text} (not a count of nanoseconds)")))
        }
    }
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, event: &FramedEvent<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let line: Line<'_> = serde_json::from_str(data).map_err(|e| DecodeError {
            dialect: DIALECT_NAME,
            reason: format!("invalid JSON line: {e}"),
        })?;
        if let Some(err) = &line.error {
            out.push(error_signal(err));
            return Ok(());
        }
        if !self.model_sent {
            if let Some(Text(model)) = line.model.filter(|m| !m.0.is_empty()) {
                self.model_sent = true;
                out.push(Signal::Model(model.into_owned()));
            }
        }
        if let Some(m) = line.message {
            output(out, OutputKind::Reasoning, m.thinking);
            output(out, OutputKind::Answer, m.content);
            for call in m.tool_calls.unwrap_or_default() {
                let Some(f) = call.function else { continue };
                // A whole call: its start, then its arguments.
                if let Some(Text(name)) = f.name.filter(|n| !n.0.is_empty()) {
                    out.push(Signal::ToolCall {
                        id: call.id.map(|i| i.0.into_owned()).filter(|i| !i.is_empty()),
                        name: name.into_owned(),
                        signature: None,
                    });
                }
                let args = f
                    .arguments
                    .map(|a| a.get().trim())
                    .filter(|a| !a.is_empty() && *a != "null");
                if let Some(args) = args {
                    out.push(Signal::Output {
                        kind: OutputKind::ToolCall,
                        text: args.to_string(),
                    });
                }
            }
        }
        if line.done == Some(true) {
            // The final line once more as a tree, for its counts and durations.
            let v: Value = serde_json::from_str(data).map_err(|e| DecodeError {
                dialect: DIALECT_NAME,
                reason: format!("invalid JSON line: {e}"),
            })?;
            if let Some(Text(reason)) = line.done_reason.filter(|r| !r.0.is_empty()) {
                out.push(Signal::FinishReason(reason.into_owned()));
            }
            let input = token_count(DIALECT_NAME, &v, "", "prompt_eval_count")?;
            let output = token_count(DIALECT_NAME, &v, "", "eval_count")?;
            if input.is_some() || output.is_some() {
                out.push(Signal::Usage(UsageReport {
                    source: TokenSource::EvalCount,
                    input_tokens: input,
                    output_tokens: output,
                    cached_input_tokens: None,
                    reasoning_tokens: None,
                }));
            }
            for (field, name) in DURATIONS {
                if let Some(seconds) = duration(&v, field)? {
                    out.push(Signal::ServerTiming { name, seconds });
                }
            }
            out.push(Signal::Done);
        }
        Ok(())
    }
}

fn error_signal(err: &Value) -> Signal {
    let text = match err {
        Value::String(s) => s.trim().to_string(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| err.to_string(), |s| s.trim().to_string()),
        other => other.to_string(),
    };
    let text = truncate(&text, MAX_ERROR_MESSAGE);
    // Ollama's error has no type or code: its text is the only thing to classify.
    let kind = ErrorCondition::of_error_words([text]);
    Signal::Error {
        kind,
        message: if text.is_empty() {
            "unknown error".to_string()
        } else {
            text.to_string()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::dialect::Message;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/sse/ollama/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Decodes a fixture line by line (see `SOURCES.md` beside the fixtures).
    fn decode_fixture(name: &str) -> Result<Vec<Signal>, DecodeError> {
        let text = fixture(name);
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for line in text.lines() {
            d.decode(
                &FramedEvent {
                    event: "",
                    data: line,
                },
                &mut out,
            )?;
        }
        Ok(out)
    }

    fn out(kind: OutputKind, text: &str) -> Signal {
        Signal::Output {
            kind,
            text: text.into(),
        }
    }

    fn usage(input: u64, output: u64) -> Signal {
        Signal::Usage(UsageReport {
            source: TokenSource::EvalCount,
            input_tokens: Some(input),
            output_tokens: Some(output),
            cached_input_tokens: None,
            reasoning_tokens: None,
        })
    }

    fn timing(name: &'static str, seconds: f64) -> Signal {
        Signal::ServerTiming { name, seconds }
    }

    #[test]
    fn chat_stream() {
        assert_eq!(
            decode_fixture("chat.ndjson"),
            Ok(vec![
                Signal::Model("llama3.2:3b".into()),
                out(OutputKind::Answer, "Blue"),
                out(OutputKind::Answer, " light"),
                out(OutputKind::Answer, " scatters."),
                Signal::FinishReason("stop".into()),
                usage(31, 4),
                timing("load", 0.021_503_417),
                timing("prompt_eval", 0.118_204_25),
                timing("eval", 0.064_411_5),
                timing("total", 0.250_876_041),
                Signal::Done,
            ])
        );
    }

    #[test]
    fn thinking_then_answer() {
        let got = decode_fixture("thinking.ndjson").unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<_> = got
            .iter()
            .filter_map(|s| match s {
                Signal::Output { kind, text } => Some((*kind, text.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (OutputKind::Reasoning, "The user"),
                (OutputKind::Reasoning, " wants a number."),
                (OutputKind::Answer, "Seven"),
                (OutputKind::Answer, "."),
            ]
        );
        assert!(got.contains(&usage(18, 9)), "{got:?}");
        assert_eq!(got.last(), Some(&Signal::Done));
    }

    #[test]
    fn whole_tool_call_is_one_output() {
        let got = decode_fixture("tool_call.ndjson").unwrap_or_else(|e| panic!("{e}"));
        let calls: Vec<_> = got
            .iter()
            .filter(|s| matches!(s, Signal::Output { .. }))
            .collect();
        assert_eq!(
            calls,
            [&out(OutputKind::ToolCall, r#"{"city":"Lisbon","unit":"celsius"}"#)]
        );
        assert!(got.contains(&Signal::FinishReason("stop".into())));
        assert_eq!(got.last(), Some(&Signal::Done));
    }

    #[test]
    fn in_stream_errors() {
        let got = decode_fixture("error_midstream.ndjson").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got.last(),
            Some(&Signal::Error {
                kind: ErrorCondition::Other,
                message: "an error was encountered while running the model: unexpected EOF"
                    .into()
            })
        );
        assert!(!got.contains(&Signal::Done));
        let got = decode_fixture("rate_limited.ndjson").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got.last(),
            Some(&Signal::Error {
                kind: ErrorCondition::RateLimited,
                message: "rate limit exceeded".into()
            })
        );
    }

    #[test]
    fn truncated_stream_has_no_end_marker() {
        let got = decode_fixture("truncated.ndjson").unwrap_or_else(|e| panic!("{e}"));
        assert!(got.iter().any(|s| matches!(s, Signal::Output { .. })));
        assert!(!got.contains(&Signal::Done), "{got:?}");
        // A line cut inside its JSON is malformed, not silently skipped.
        let mut d = Decoder::default();
        let err = d.decode(
            &FramedEvent {
                event: "",
                data: r#"{"model":"m","message":{"role":"assistant","content":"Hel"#,
            },
            &mut Vec::new(),
        );
        assert!(
            matches!(&err, Err(e) if e.reason.starts_with("invalid JSON line")),
            "{err:?}"
        );
    }

    #[test]
    fn implausible_final_line_is_an_error_naming_the_field() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let err = d.decode(
            &FramedEvent {
                event: "",
                data: r#"{"done":true,"eval_count":5,"eval_duration":-4}"#,
            },
            &mut out,
        );
        assert_eq!(
            err,
            Err(DecodeError {
                dialect: "ollama",
                reason: "implausible duration: eval_duration = -4 (not a count of nanoseconds \
                         up to a day)"
                    .into()
            })
        );
        let err = d.decode(
            &FramedEvent {
                event: "",
                data: r#"{"done":true,"eval_count":"5"}"#,
            },
            &mut out,
        );
        assert!(
            matches!(&err, Err(e) if e.reason == "implausible usage: .eval_count = \"5\" (not a token count)"),
            "{err:?}"
        );
    }

    #[test]
    fn body_has_options_and_merges_extra() {
        let messages = [
            Message {
                role: "system".into(),
                content: "Be brief.".into(),
                ..Default::default()
            },
            Message {
                role: "user".into(),
                content: "Hi".into(),
                ..Default::default()
            },
        ];
        let stop = ["\n\n".to_string()];
        let extra: Map<String, Value> = serde_json::from_str(
            r#"{"think": true, "keep_alive": "10m", "options": {"num_ctx": 8192, "temperature": 0.5}}"#,
        )
        .unwrap_or_default();
        let req = ProbeRequest {
            model: "qwen3:8b",
            messages: &messages,
            max_tokens: 64,
            temperature: 0.0,
            stop: &stop,
            extra_body: &extra,
            include_usage: true,
            tools: &[],
        };
        let body = build_body(&req);
        assert_eq!(
            body,
            serde_json::json!({
                "model": "qwen3:8b",
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Hi"}],
                "stream": true,
                "options": {"num_predict": 64, "temperature": 0.5, "stop": ["\n\n"],
                            "num_ctx": 8192},
                "think": true,
                "keep_alive": "10m",
            })
        );
        assert_eq!(path("anything"), "/api/chat");
    }
}
