//! The simulator's Ollama `/api/chat`: NDJSON lines (`application/x-ndjson`), one per token,
//! then a final `done: true` line with counts and durations, as Ollama's `streamResponse`
//! writes them. Errors after the first byte are one more line `{"error": "..."}`; before it,
//! an HTTP status with the same body.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::super::wire::{ErrorKind, FinishReason, SimToolCall};
use super::Timing;

/// The response content type of a stream.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// `created_at` of every line: Ollama sends an RFC 3339 timestamp; the simulator's is derived
/// from the response's creation second.
fn created_at(created: u64) -> String {
    let secs = i64::try_from(created).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

fn line(v: &Value) -> Bytes {
    Bytes::from(format!("{v}\n"))
}

/// An error body (HTTP) or in-stream error object: Ollama has only the text.
pub fn error_json(_kind: ErrorKind, message: &str) -> Value {
    json!({ "error": message })
}

/// One token's line.
pub fn token(model: &str, created: u64, text: &str, reasoning: bool) -> Bytes {
    let message = if reasoning {
        json!({"role": "assistant", "content": "", "thinking": text})
    } else {
        json!({"role": "assistant", "content": text})
    };
    line(&json!({
        "model": model, "created_at": created_at(created), "message": message, "done": false,
    }))
}

/// A whole tool call in one line, as Ollama sends a call once it has parsed it; the final line
/// then says `done_reason: stop`, as Ollama does after a call.
pub fn tool_call(model: &str, created: u64, call: &SimToolCall) -> Bytes {
    let args: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
    line(&json!({
        "model": model, "created_at": created_at(created),
        "message": {"role": "assistant", "content": "",
                    "tool_calls": [{"function": {"index": 0, "name": call.name,
                                                 "arguments": args}}]},
        "done": false,
    }))
}

/// The final line's fields besides the message, with the given durations (zero ones left out,
/// as Go's `omitempty` does).
fn final_fields(
    v: &mut Value,
    finish: FinishReason,
    prompt_tokens: u32,
    output_tokens: u32,
    t: &Timing,
) {
    v["done"] = json!(true);
    v["done_reason"] = json!(if finish == FinishReason::Length {
        "length"
    } else {
        "stop"
    });
    set_durations(v, t);
    if prompt_tokens > 0 {
        v["prompt_eval_count"] = json!(prompt_tokens);
    }
    if output_tokens > 0 {
        v["eval_count"] = json!(output_tokens);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn set_durations(v: &mut Value, t: &Timing) {
    let Value::Object(o) = v else { return };
    for (field, d) in [
        ("total_duration", t.total),
        ("load_duration", t.load),
        ("prompt_eval_duration", t.prompt_eval),
        ("eval_duration", t.eval),
    ] {
        if d.is_zero() {
            o.remove(field);
        } else {
            o.insert(field.to_string(), json!(nanos(d)));
        }
    }
}

/// The final line. Its durations are the plan's; [`stamp`] replaces them with the real ones
/// when the line is sent.
pub fn close(
    model: &str,
    created: u64,
    finish: FinishReason,
    prompt_tokens: u32,
    output_tokens: u32,
    planned: &Timing,
) -> Bytes {
    let mut v = json!({
        "model": model, "created_at": created_at(created),
        "message": {"role": "assistant", "content": ""},
    });
    final_fields(&mut v, finish, prompt_tokens, output_tokens, planned);
    line(&v)
}

/// The in-stream error line.
pub fn error(message: &str) -> Bytes {
    line(&error_json(ErrorKind::Server, message))
}

/// A line cut inside its JSON object.
pub fn malformed(model: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"{model}\",\"message\":{{\"role\":\"assistant\",\"content\":\n"
    ))
}

/// The non-streamed answer (`stream: false`).
#[allow(clippy::too_many_arguments)]
pub fn whole(
    model: &str,
    created: u64,
    reasoning: &str,
    answer: &str,
    finish: FinishReason,
    prompt_tokens: u32,
    output_tokens: u32,
    planned: &Timing,
) -> Value {
    let mut message = json!({"role": "assistant", "content": answer});
    if !reasoning.is_empty() {
        message["thinking"] = json!(reasoning);
    }
    let mut v = json!({"model": model, "created_at": created_at(created), "message": message});
    final_fields(&mut v, finish, prompt_tokens, output_tokens, planned);
    v
}

/// The final line (or whole answer) with the real durations; other bytes unchanged.
pub fn stamp(bytes: &Bytes, t: &Timing) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(bytes) else {
        return bytes.clone();
    };
    if v.get("done") != Some(&Value::Bool(true)) {
        return bytes.clone();
    }
    set_durations(&mut v, t);
    line(&v)
}

/// A JSON answer with the real durations.
pub fn stamp_json(v: &mut Value, t: &Timing) {
    if v.get("done") == Some(&Value::Bool(true)) {
        set_durations(v, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(ms: [u64; 4]) -> Timing {
        Timing {
            total: Duration::from_millis(ms[0]),
            load: Duration::from_millis(ms[1]),
            prompt_eval: Duration::from_millis(ms[2]),
            eval: Duration::from_millis(ms[3]),
        }
    }

    #[test]
    fn lines_and_stamping() {
        let t = token("m", 1_700_000_000, " one", false);
        assert_eq!(
            t,
            Bytes::from(
                "{\"created_at\":\"2023-11-14T22:13:20.000000Z\",\"done\":false,\"message\":{\"content\":\" one\",\"role\":\"assistant\"},\"model\":\"m\"}\n"
            )
        );
        let r = token("m", 0, " alpha", true);
        assert!(String::from_utf8_lossy(&r).contains("\"thinking\":\" alpha\""));
        let end = close("m", 0, FinishReason::Length, 7, 3, &timing([0, 0, 0, 0]));
        let v: Value = serde_json::from_slice(&end).unwrap_or_default();
        assert_eq!(v["done_reason"], "length");
        assert_eq!(
            (v["prompt_eval_count"].as_u64(), v["eval_count"].as_u64()),
            (Some(7), Some(3))
        );
        assert!(
            v.get("total_duration").is_none(),
            "zero durations are left out"
        );
        let stamped = stamp(&end, &timing([400, 1, 300, 80]));
        let v: Value = serde_json::from_slice(&stamped).unwrap_or_default();
        assert_eq!(v["total_duration"].as_u64(), Some(400_000_000));
        assert_eq!(v["load_duration"].as_u64(), Some(1_000_000));
        assert_eq!(v["prompt_eval_duration"].as_u64(), Some(300_000_000));
        assert_eq!(v["eval_duration"].as_u64(), Some(80_000_000));
        assert!(stamped.ends_with(b"\n"));
        // Token lines are not touched.
        assert_eq!(stamp(&t, &timing([1, 1, 1, 1])), t);
        assert!(serde_json::from_slice::<Value>(&malformed("m")).is_err());
        assert_eq!(error("boom"), Bytes::from("{\"error\":\"boom\"}\n"));
    }
}
