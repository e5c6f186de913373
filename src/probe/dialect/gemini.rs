//! Google Gemini API (`POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse`).
//!
//! Request: the key goes in the `x-goog-api-key` header, never in the query string. `system`
//! (and `developer`) messages become `systemInstruction`, `assistant` messages are sent with
//! the role `model`, every other message with the role `user`, each as one text part. An
//! assistant turn's tool calls are `functionCall` parts (`{name, args}`, with the call's
//! `thoughtSignature` beside it on the part when the server gave one); tool results are
//! `functionResponse` parts (`{name, response}`, the response an object: a non-object result
//! is wrapped as `{"result": ...}`) of one `user` turn. Offered tools are sent as
//! `tools: [{functionDeclarations: [{name, description, parameters}]}]`.
//! `generationConfig` carries `maxOutputTokens`, `temperature` and `stopSequences`.
//! `extra_body` is merged last; unlike the other dialects an object value is merged into the
//! object already there, one level deep, so `generationConfig: {thinkingConfig: {...}}` adds
//! to the generated config instead of replacing it (`null` still removes a field).
//!
//! Stream: one `data:` JSON chunk per event, no `[DONE]`. Per chunk:
//! - `candidates[].content.parts[]`: `text` is answer text, or reasoning when the part has
//!   `thought: true` (thought summaries, sent only when `thinkingConfig.includeThoughts` is
//!   set); a `functionCall` part is a whole tool call: [`Signal::ToolCall`] (its `name`, its
//!   `id` when the server gives one, and the part's `thoughtSignature`), then its `args` as
//!   JSON text (the Gemini API sends a call whole, not as argument deltas).
//! - `candidates[].finishReason` is reported as sent (`STOP`, `MAX_TOKENS`, ...); the stream is
//!   complete when a finish reason is followed by a clean end of body. A reason in
//!   [`WITHHELD`] (`SAFETY`, `RECITATION`, ...) or a `promptFeedback.blockReason` means the
//!   server withheld the answer for its content: [`Signal::Withheld`], which makes the probe
//!   `check_failed`.
//! - `usageMetadata` is a running total on every chunk. It is normalized to the OpenAI
//!   meaning: input = `promptTokenCount` (which includes `cachedContentTokenCount`) +
//!   `toolUsePromptTokenCount`; output = `candidatesTokenCount` + `thoughtsTokenCount` (both
//!   billed as output); reasoning = `thoughtsTokenCount`; cached = `cachedContentTokenCount`.
//! - `modelVersion` is the model; reported when first seen and when it changes.
//! - A chunk with a top-level `error` (`{code, message, status}`) is an in-stream error,
//!   classified by `status` and `code` (`RESOURCE_EXHAUSTED` / 429 is a rate limit,
//!   `UNAVAILABLE` / 503 an overload).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::common::{arguments_object, content_withheld, obj1, stream_error};
use super::{
    path_segment, token_count, AuthStyle, DecodeError, Dialect, FramedEvent,
    Framing, OutputKind, ProbeRequest, Signal, StreamDecoder, TokenSource, UsageReport,
};

const NAME: &str = "gemini";

/// The table row.
pub static DIALECT: Dialect = Dialect {
    name: NAME,
    framing: Framing::Sse,
    path,
    default_auth: AuthStyle::XGoogApiKey,
    fixed_headers: &[],
    content_types: &["text/event-stream"],
    build_body,
    decoder: || Box::new(Decoder::default()),
    finish_reason_ends_stream: true,
    end_marker: "a finishReason",
    reports_model: true,
    supports_tools: true,
    simulator_prefix: "",
};

/// Finish reasons that mean the server withheld (part of) the answer because of its content.
pub const WITHHELD: [&str; 8] = [
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

/// The request path: `models/{model}` unless the model already names its collection
/// (`models/...` or `tunedModels/...`, as the Google SDKs accept). The model id is
/// percent-encoded as one path segment, so a `/`, `:` or `?` in it cannot change the request.
pub fn path(model: &str) -> String {
    let (collection, id) = match model.split_once('/') {
        Some((c @ ("models" | "tunedModels"), id)) => (c, id),
        _ => ("models", model),
    };
    format!(
        "/v1beta/{collection}/{}:streamGenerateContent?alt=sse",
        path_segment(id)
    )
}

fn text_part(text: &str) -> Value {
    let mut part = Map::with_capacity(1);
    part.insert("text".into(), Value::from(text));
    Value::Object(part)
}

/// Builds the streaming request body.
pub fn build_body(req: &ProbeRequest<'_>) -> Value {
    let mut system = String::new();
    let mut contents = Vec::with_capacity(req.messages.len());
    for m in req.messages {
        let (role, parts) = match m.role.as_str() {
            "system" | "developer" => {
                if !system.is_empty() {
                    system.push_str("\n\n");
                }
                system.push_str(&m.content);
                continue;
            }
            "assistant" | "model" => {
                let mut parts = Vec::with_capacity(m.tool_calls.len() + 1);
                if !m.content.is_empty() || m.tool_calls.is_empty() {
                    parts.push(text_part(&m.content));
                }
                for c in &m.tool_calls {
                    let mut call = Map::with_capacity(2);
                    call.insert("name".into(), Value::from(c.name.as_str()));
                    call.insert("args".into(), arguments_object(&c.arguments));
                    let mut part = Map::with_capacity(2);
                    part.insert("functionCall".into(), Value::Object(call));
                    if let Some(sig) = &c.signature {
                        part.insert("thoughtSignature".into(), Value::from(sig.as_str()));
                    }
                    parts.push(Value::Object(part));
                }
                ("model", parts)
            }
            "tool" => {
                let mut resp = Map::with_capacity(2);
                resp.insert(
                    "name".into(),
                    Value::from(m.tool_name.as_deref().unwrap_or_default()),
                );
                resp.insert("response".into(), response_object(&m.content));
                let part = obj1("functionResponse", Value::Object(resp));
                // Results of parallel calls go together in one user turn.
                if let Some(last) = contents.last_mut().filter(|c: &&mut Value| {
                    c.get("parts")
                        .and_then(Value::as_array)
                        .and_then(|p| p.last())
                        .is_some_and(|p| p.get("functionResponse").is_some())
                }) {
                    if let Some(Value::Array(parts)) = last.get_mut("parts") {
                        parts.push(part);
                        continue;
                    }
                }
                ("user", vec![part])
            }
            _ => ("user", vec![text_part(&m.content)]),
        };
        let mut o = Map::with_capacity(2);
        o.insert("role".into(), Value::from(role));
        o.insert("parts".into(), Value::Array(parts));
        contents.push(Value::Object(o));
    }
    let mut config = Map::new();
    config.insert("maxOutputTokens".into(), Value::from(req.max_tokens));
    config.insert("temperature".into(), Value::from(req.temperature));
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), Value::from(req.stop.to_vec()));
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        let mut si = Map::with_capacity(1);
        si.insert("parts".into(), Value::Array(vec![text_part(&system)]));
        body.insert("systemInstruction".into(), Value::Object(si));
    }
    body.insert("generationConfig".into(), Value::Object(config));
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = Map::with_capacity(3);
                d.insert("name".into(), Value::from(t.name.as_str()));
                if !t.description.is_empty() {
                    d.insert("description".into(), Value::from(t.description.as_str()));
                }
                d.insert("parameters".into(), t.parameters.clone());
                Value::Object(d)
            })
            .collect();
        body.insert(
            "tools".into(),
            Value::Array(vec![obj1("functionDeclarations", Value::Array(decls))]),
        );
    }
    merge_one_level(&mut body, req.extra_body);
    Value::Object(body)
}

/// A tool result as a `functionResponse.response`, which must be an object: a JSON object
/// result as is, anything else (text, a number, a list) as `{"result": ...}`.
fn response_object(content: &str) -> Value {
    match serde_json::from_str::<Value>(content) {
        Ok(v @ Value::Object(_)) => v,
        Ok(v) => obj1("result", v),
        Err(_) => obj1("result", Value::from(content)),
    }
}

/// Merges `extra` into `body`: `null` removes a field, an object merges into an object already
/// there (its own `null`s removing), anything else replaces.
fn merge_one_level(body: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (k, v) in extra {
        match (body.get_mut(k), v) {
            (_, Value::Null) => {
                body.remove(k);
            }
            (Some(Value::Object(old)), Value::Object(new)) => {
                for (nk, nv) in new {
                    if nv.is_null() {
                        old.remove(nk);
                    } else {
                        old.insert(nk.clone(), nv.clone());
                    }
                }
            }
            _ => {
                body.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Per-probe decoding state.
#[derive(Default)]
pub struct Decoder {
    /// The model last reported, to report it again only when it changes.
    model: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    candidates: Option<Vec<Candidate>>,
    usage_metadata: Option<Value>,
    model_version: Option<String>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    parts: Option<Vec<Part>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    thought: Option<bool>,
    function_call: Option<Value>,
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

fn append(slot: &mut Option<String>, text: &str) {
    if text.is_empty() {
        return;
    }
    match slot {
        Some(s) => s.push_str(text),
        None => *slot = Some(text.to_string()),
    }
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, event: &FramedEvent<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| DecodeError {
            dialect: NAME,
            reason: format!("invalid JSON chunk: {e}"),
        })?;
        if let Some(e) = chunk.error.filter(|e| !e.is_null()) {
            out.push(match e {
                Value::Object(o) => stream_error(
                    o.get("message").and_then(Value::as_str),
                    o.get("status").and_then(Value::as_str),
                    o.get("code"),
                ),
                Value::String(s) => stream_error(Some(&s), None, None),
                other => stream_error(None, None, Some(&other)),
            });
            return Ok(());
        }
        if let Some(model) = chunk.model_version.filter(|m| !m.is_empty()) {
            if self.model.as_deref() != Some(&*model) {
                self.model = Some(model.clone());
                out.push(Signal::Model(model));
            }
        }

        let (mut reasoning, mut answer) = (None, None);
        let mut tools = Vec::new();
        let mut finish = None;
        for c in chunk.candidates.into_iter().flatten() {
            for p in c.content.and_then(|c| c.parts).into_iter().flatten() {
                if let Some(text) = &p.text {
                    if p.thought == Some(true) {
                        append(&mut reasoning, text);
                    } else {
                        append(&mut answer, text);
                    }
                }
                if let Some(call) = p.function_call.filter(|f| !f.is_null()) {
                    // A whole call: its start (Gemini gives no id unless asked; the signature
                    // sits on the part), then its arguments.
                    if let Some(name) = call.get("name").and_then(Value::as_str) {
                        tools.push(Signal::ToolCall {
                            id: call
                                .get("id")
                                .and_then(Value::as_str)
                                .filter(|i| !i.is_empty())
                                .map(str::to_string),
                            name: name.to_string(),
                            signature: p.thought_signature.clone().filter(|s| !s.is_empty()),
                        });
                    }
                    let args = match call.get("args").or_else(|| call.get("partialArgs")) {
                        Some(a) if !a.is_null() => a.to_string(),
                        _ => "{}".to_string(),
                    };
                    tools.push(Signal::Output {
                        kind: OutputKind::ToolCall,
                        text: args,
                    });
                }
            }
            if finish.is_none() {
                finish = c.finish_reason.filter(|f| !f.is_empty());
            }
        }
        let outputs = [
            (OutputKind::Reasoning, reasoning),
            (OutputKind::Answer, answer),
        ];
        for (kind, text) in outputs {
            if let Some(text) = text {
                out.push(Signal::Output { kind, text });
            }
        }
        out.extend(tools);
        if let Some(u) = &chunk.usage_metadata {
            usage(u, out)?;
        }
        if let Some(reason) = chunk
            .prompt_feedback
            .and_then(|f| f.block_reason)
            .filter(|r| !r.is_empty())
        {
            // The server answers nothing more: the block reason is the finish.
            out.push(Signal::FinishReason(reason.clone()));
            out.push(content_withheld("promptFeedback.blockReason", &reason));
            return Ok(());
        }
        if let Some(reason) = finish {
            let withheld = WITHHELD.contains(&reason.as_str());
            out.push(Signal::FinishReason(reason.clone()));
            if withheld {
                out.push(content_withheld("finishReason", &reason));
            }
        }
        Ok(())
    }
}

/// Reads `usageMetadata`.
fn usage(u: &Value, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
    if u.is_null() {
        return Ok(());
    }
    if !u.is_object() {
        return Err(DecodeError {
            dialect: NAME,
            reason: "implausible usage: usageMetadata is not an object".into(),
        });
    }
    let count = |field: &str| token_count(NAME, u, "usageMetadata", field);
    let prompt = count("promptTokenCount")?;
    let tool_prompt = count("toolUsePromptTokenCount")?;
    let candidates = count("candidatesTokenCount")?;
    let thoughts = count("thoughtsTokenCount")?;
    let cached = count("cachedContentTokenCount")?;
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    };
    let report = UsageReport {
        source: TokenSource::UsageMetadata,
        input_tokens: prompt.map(|p| p.saturating_add(tool_prompt.unwrap_or(0))),
        output_tokens: sum(candidates, thoughts),
        cached_input_tokens: cached,
        reasoning_tokens: thoughts,
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

    fn one(data: &str) -> Vec<Signal> {
        decode_all(&[("", data)]).unwrap_or_else(|e| panic!("{e}"))
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
            source: TokenSource::UsageMetadata,
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            reasoning_tokens: reasoning,
        })
    }

    #[test]
    fn path_encodes_the_model_and_keeps_a_collection_prefix() {
        let p = "?alt=sse";
        assert_eq!(
            path("gemini-2.5-flash"),
            format!("/v1beta/models/gemini-2.5-flash:streamGenerateContent{p}")
        );
        assert_eq!(
            path("models/gemini-2.5-pro"),
            format!("/v1beta/models/gemini-2.5-pro:streamGenerateContent{p}")
        );
        assert_eq!(
            path("tunedModels/my-model-7"),
            format!("/v1beta/tunedModels/my-model-7:streamGenerateContent{p}")
        );
        assert_eq!(
            path("a/../b:x?key=1 é"),
            format!("/v1beta/models/a%2F..%2Fb%3Ax%3Fkey%3D1%20%C3%A9:streamGenerateContent{p}")
        );
    }

    #[test]
    fn body_maps_roles_system_and_generation_config() {
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
                role: "assistant".into(),
                content: "One.".into(),
                ..Default::default()
            },
            Message {
                role: "user".into(),
                content: "Go on.".into(),
                ..Default::default()
            },
        ];
        let extra = match json!({
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "temperature": null},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let stop = ["END".to_string()];
        let req = ProbeRequest {
            model: "gemini-x",
            messages: &messages,
            max_tokens: 64,
            temperature: 0.5,
            stop: &stop,
            extra_body: &extra,
            include_usage: true,
            tools: &[],
        };
        assert_eq!(
            build_body(&req),
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "Count."}]},
                    {"role": "model", "parts": [{"text": "One."}]},
                    {"role": "user", "parts": [{"text": "Go on."}]},
                ],
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "generationConfig": {
                    "maxOutputTokens": 64,
                    "stopSequences": ["END"],
                    "thinkingConfig": {"thinkingBudget": 0},
                },
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            })
        );
    }

    #[test]
    fn parts_usage_model_and_finish() {
        let got = decode_all(&[
            (
                "",
                r#"{"candidates":[{"content":{"parts":[{"text":"Plan first.","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"totalTokenCount":40,"thoughtsTokenCount":28},"modelVersion":"gemini-x-001","responseId":"r1"}"#,
            ),
            (
                "",
                r#"{"candidates":[{"content":{"parts":[{"text":"Hello"},{"text":" there","thought":false}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":2,"totalTokenCount":42,"thoughtsTokenCount":28},"modelVersion":"gemini-x-001"}"#,
            ),
            (
                "",
                r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_time","args":{"tz":"UTC"}}},{"thoughtSignature":"c2ln"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":9,"thoughtsTokenCount":28,"cachedContentTokenCount":4,"toolUsePromptTokenCount":3,"totalTokenCount":52},"modelVersion":"gemini-x-002"}"#,
            ),
        ]);
        assert_eq!(
            got,
            Ok(vec![
                Signal::Model("gemini-x-001".into()),
                out(OutputKind::Reasoning, "Plan first."),
                usage_report(Some(12), Some(28), None, Some(28)),
                out(OutputKind::Answer, "Hello there"),
                usage_report(Some(12), Some(30), None, Some(28)),
                Signal::Model("gemini-x-002".into()),
                Signal::ToolCall {
                    id: None,
                    name: "get_time".into(),
                    signature: None,
                },
                out(OutputKind::ToolCall, r#"{"tz":"UTC"}"#),
                usage_report(Some(15), Some(37), Some(4), Some(28)),
                Signal::FinishReason("STOP".into()),
            ])
        );
    }

    #[test]
    fn withheld_content_follows_its_finish_reason() {
        for reason in ["SAFETY", "RECITATION", "PROHIBITED_CONTENT"] {
            let data = format!(
                r#"{{"candidates":[{{"content":{{"parts":[{{"text":""}}],"role":"model"}},"finishReason":"{reason}","index":0}}]}}"#
            );
            assert_eq!(
                one(&data),
                vec![
                    Signal::FinishReason(reason.into()),
                    Signal::Withheld {
                        field: "finishReason",
                        reason: reason.into()
                    }
                ]
            );
        }
        assert_eq!(
            one(r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}"#),
            vec![
                usage_report(Some(7), None, None, None),
                Signal::FinishReason("SAFETY".into()),
                Signal::Withheld {
                    field: "promptFeedback.blockReason",
                    reason: "SAFETY".into()
                }
            ]
        );
        // Other reasons only finish the stream.
        assert_eq!(
            one(r#"{"candidates":[{"finishReason":"MAX_TOKENS","index":0}]}"#),
            vec![Signal::FinishReason("MAX_TOKENS".into())]
        );
    }

    #[test]
    fn in_stream_errors_are_classified_by_status_and_code() {
        let cases = [
            (
                r#"{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}"#,
                ErrorCondition::RateLimited,
                "RESOURCE_EXHAUSTED (429): Quota exceeded.",
            ),
            (
                r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
                ErrorCondition::Overloaded,
                "UNAVAILABLE (503): The model is overloaded.",
            ),
            (
                r#"{"error":{"code":500,"message":"Internal error.","status":"INTERNAL"}}"#,
                ErrorCondition::Other,
                "INTERNAL (500): Internal error.",
            ),
            (r#"{"error":"boom"}"#, ErrorCondition::Other, "boom"),
        ];
        for (data, kind, message) in cases {
            assert_eq!(
                one(data),
                vec![Signal::Error {
                    kind,
                    message: message.into()
                }],
                "{data}"
            );
        }
    }

    #[test]
    fn bad_chunks_are_decode_errors() {
        assert_eq!(decode_all(&[("", "  ")]), Ok(vec![]));
        let err = decode_all(&[("", r#"{"candidates": ["#)]);
        assert!(
            matches!(&err, Err(e) if e.dialect == "gemini" && e.reason.starts_with("invalid JSON chunk")),
            "{err:?}"
        );
        assert_eq!(
            decode_all(&[(
                "",
                r#"{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":"9"}}"#
            )]),
            Err(DecodeError {
                dialect: "gemini",
                reason: "implausible usage: usageMetadata.candidatesTokenCount = \"9\" \
                         (not a token count)"
                    .into()
            })
        );
    }
}
