//! The Gemini API (`POST /v1beta/models/{model}:streamGenerateContent?alt=sse`, and
//! `:generateContent` unstreamed) as the simulator writes it: one `data:` chunk per token with
//! the text in `candidates[0].content.parts` (`thought: true` for reasoning), a running
//! `usageMetadata` (`candidatesTokenCount` answer tokens, `thoughtsTokenCount` reasoning
//! tokens, both output), `modelVersion` and `responseId` on every chunk; the last chunk carries
//! `finishReason` (`STOP`, or `MAX_TOKENS` when the token cap cut the answer). No `[DONE]`.
//! A tool call is one chunk with a whole `functionCall` part (and a `thoughtSignature`), the
//! finish reason `STOP` as the API gives for calls.
//! Errors use the REST shape `{"error": {code, message, status}}`, in a body or as a chunk.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::sim::wire::{Ctx, ErrorKind, SimToolCall, SIM_SIGNATURE};

fn data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// Token counts sent so far.
#[derive(Debug, Default)]
pub struct Wire {
    reasoning_tokens: u32,
    answer_tokens: u32,
}

fn usage(c: &Ctx, reasoning: u32, answer: u32) -> Value {
    let mut u = json!({
        "promptTokenCount": c.prompt_tokens,
        "totalTokenCount": c.prompt_tokens + reasoning + answer,
    });
    if answer > 0 {
        u["candidatesTokenCount"] = json!(answer);
    }
    if reasoning > 0 {
        u["thoughtsTokenCount"] = json!(reasoning);
    }
    u
}

fn chunk(c: &Ctx, parts: Value, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": c.model,
           "responseId": c.id})
}

impl Wire {
    /// Nothing: the first chunk carries the first token.
    pub fn open(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    /// One token's chunk.
    pub fn token(&mut self, c: &Ctx, reasoning: bool, text: &str) -> (Vec<Bytes>, Bytes) {
        let part = if reasoning {
            self.reasoning_tokens += 1;
            json!({"text": text, "thought": true})
        } else {
            self.answer_tokens += 1;
            json!({"text": text})
        };
        let u = usage(c, self.reasoning_tokens, self.answer_tokens);
        (Vec::new(), data(&chunk(c, json!([part]), None, u)))
    }

    /// A whole function call in one chunk (the Gemini API does not stream arguments), its
    /// part carrying a `thoughtSignature` as thinking models' calls do.
    pub fn tool_call(&mut self, c: &Ctx, call: &SimToolCall) -> Bytes {
        self.answer_tokens += 1;
        let args: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
        let part = json!({"functionCall": {"name": call.name, "args": args},
                          "thoughtSignature": SIM_SIGNATURE});
        let u = usage(c, self.reasoning_tokens, self.answer_tokens);
        data(&chunk(c, json!([part]), None, u))
    }

    /// The last chunk: an empty text part with the finish reason and the final usage.
    pub fn close(&mut self, c: &Ctx, length: bool) -> Bytes {
        let reason = if length { "MAX_TOKENS" } else { "STOP" };
        let u = usage(c, self.reasoning_tokens, self.answer_tokens);
        data(&chunk(c, json!([{"text": ""}]), Some(reason), u))
    }

    /// An error chunk (code 500, `INTERNAL`).
    pub fn error(&mut self, message: &str) -> Bytes {
        data(&error_json(ErrorKind::Server, message))
    }

    /// A chunk whose data is cut inside the JSON.
    pub fn malformed(&mut self) -> Bytes {
        Bytes::from_static(b"data: {\"candidates\": [{\"content\": \n\n")
    }
}

/// The REST error body: `{"error": {code, message, status}}`.
pub fn error_json(kind: ErrorKind, message: &str) -> Value {
    let (code, status) = match kind {
        ErrorKind::InvalidRequest => (400, "INVALID_ARGUMENT"),
        ErrorKind::Authentication => (401, "UNAUTHENTICATED"),
        ErrorKind::RateLimit => (429, "RESOURCE_EXHAUSTED"),
        ErrorKind::Server => (500, "INTERNAL"),
        ErrorKind::Overloaded => (503, "UNAVAILABLE"),
    };
    json!({"error": {"code": code, "message": message, "status": status}})
}

/// The whole answer of `:generateContent`.
pub fn whole(c: &Ctx, reasoning: &str, answer: &str, r: u32, a: u32, length: bool) -> Value {
    let mut parts = Vec::new();
    if r > 0 {
        parts.push(json!({"text": reasoning, "thought": true}));
    }
    parts.push(json!({"text": answer}));
    let reason = if length { "MAX_TOKENS" } else { "STOP" };
    chunk(c, Value::Array(parts), Some(reason), usage(c, r, a))
}

/// Splits the last path segment of `/v1beta/models/{segment}` into the model and the method
/// (`gemini-x:streamGenerateContent` → (`gemini-x`, `streamGenerateContent`)).
pub fn model_and_method(segment: &str) -> Option<(&str, &str)> {
    segment
        .rsplit_once(':')
        .filter(|(m, method)| !m.is_empty() && !method.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Api;

    fn ctx() -> Ctx {
        Ctx {
            api: Api::Gemini,
            id: "sim1".to_string(),
            created: 1_700_000_000,
            model: "m".to_string(),
            include_usage: false,
            prompt_tokens: 5,
            tool_call: None,
            answer_prefix: Vec::new(),
        }
    }

    fn parse(b: &Bytes) -> Value {
        let s = String::from_utf8_lossy(b);
        let body = s
            .strip_prefix("data: ")
            .and_then(|s| s.strip_suffix("\n\n"));
        serde_json::from_str(body.unwrap_or("")).unwrap_or(Value::Null)
    }

    #[test]
    fn chunks_carry_parts_running_usage_and_the_finish() {
        let c = ctx();
        let mut w = Wire::default();
        assert!(w.open().is_empty());
        let (pre, t1) = w.token(&c, true, " alpha");
        assert!(pre.is_empty());
        let (_, t2) = w.token(&c, false, " one");
        let last = parse(&w.close(&c, false));
        let t1 = parse(&t1);
        let t2 = parse(&t2);
        assert_eq!(
            t1["candidates"][0]["content"]["parts"][0],
            json!({"text": " alpha", "thought": true})
        );
        assert_eq!(
            t1["usageMetadata"],
            json!({"promptTokenCount": 5, "thoughtsTokenCount": 1, "totalTokenCount": 6})
        );
        assert_eq!(t2["candidates"][0]["content"]["parts"][0]["text"], " one");
        assert_eq!(t2["modelVersion"], "m");
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            last["usageMetadata"],
            json!({"promptTokenCount": 5, "candidatesTokenCount": 1, "thoughtsTokenCount": 1,
                   "totalTokenCount": 7})
        );
        assert_eq!(
            parse(&Wire::default().close(&c, true))["candidates"][0]["finishReason"],
            "MAX_TOKENS"
        );
        assert_eq!(
            parse(&Wire::default().error("x"))["error"]["status"],
            "INTERNAL"
        );
        assert_eq!(
            error_json(ErrorKind::RateLimit, "slow")["error"],
            json!({"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"})
        );
    }

    #[test]
    fn path_segment_splits_at_the_last_colon() {
        assert_eq!(
            model_and_method("gemini-x:streamGenerateContent"),
            Some(("gemini-x", "streamGenerateContent"))
        );
        assert_eq!(
            model_and_method("a:b:generateContent"),
            Some(("a:b", "generateContent"))
        );
        assert_eq!(model_and_method("gemini-x"), None);
        assert_eq!(model_and_method(":generateContent"), None);
    }
}
