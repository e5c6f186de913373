//! The simulator's Bedrock ConverseStream (`POST /model/{modelId}/converse-stream`): AWS
//! event-stream frames (`application/vnd.amazon.eventstream`) encoded with
//! `aws-smithy-eventstream`, in the order Bedrock sends them: `messageStart`,
//! `contentBlockDelta`s (reasoning in block 0 when there is any, then the answer),
//! `contentBlockStop`s, `messageStop` and `metadata` with usage and `latencyMs`. A tool call is
//! a `contentBlockStart` with `start.toolUse` (`toolUseId`, `name`), its input in
//! `delta.toolUse.input` pieces, and `stopReason: tool_use`. HTTP errors are
//! `{"message": ...}` bodies; errors inside the stream are exception frames.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use aws_smithy_eventstream::frame::{write_message_to, DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

use super::super::wire::{ErrorKind, FinishReason, SimToolCall};
use super::Timing;

/// The response content type of a stream.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

fn header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_string().into()))
}

fn encode(m: &Message) -> Bytes {
    let mut out = Vec::new();
    // Writing to a Vec fails only for messages over the format's 16 MiB limit, which these
    // few-hundred-byte frames never reach; an empty chunk is then sent instead.
    match write_message_to(m, &mut out) {
        Ok(()) => Bytes::from(out),
        Err(_) => Bytes::new(),
    }
}

/// One `:message-type: event` frame.
pub fn event(event_type: &str, payload: &Value) -> Bytes {
    encode(
        &Message::new(Bytes::from(payload.to_string()))
            .add_header(header(":event-type", event_type))
            .add_header(header(":content-type", "application/json"))
            .add_header(header(":message-type", "event")),
    )
}

/// One `:message-type: exception` frame.
pub fn exception(exception_type: &str, payload: &Value) -> Bytes {
    encode(
        &Message::new(Bytes::from(payload.to_string()))
            .add_header(header(":exception-type", exception_type))
            .add_header(header(":content-type", "application/json"))
            .add_header(header(":message-type", "exception")),
    )
}

/// An HTTP error body; the exception's name goes in `x-amzn-ErrorType` ([`error_type`]).
pub fn error_json(_kind: ErrorKind, message: &str) -> Value {
    json!({ "message": message })
}

/// The `x-amzn-ErrorType` of an HTTP error.
pub fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "ValidationException",
        ErrorKind::Authentication => "UnrecognizedClientException",
        ErrorKind::RateLimit => "ThrottlingException",
        ErrorKind::Server => "InternalServerException",
        ErrorKind::Overloaded => "ServiceUnavailableException",
    }
}

/// The access key id of an `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request,
/// ...` authorization value.
pub fn sigv4_access_key(authorization: &str) -> Option<&str> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let cred = rest.split(',').next()?.trim().strip_prefix("Credential=")?;
    cred.split('/').next().filter(|k| !k.is_empty())
}

/// The frames before the first token.
pub fn open() -> Vec<Bytes> {
    vec![event("messageStart", &json!({"role": "assistant"}))]
}

/// Where the answer goes: block 1 after a reasoning block, else block 0.
fn answer_block(reasoning_sent: u32) -> u32 {
    u32::from(reasoning_sent > 0)
}

/// One token's frame, and the frames to send before it (closing the reasoning block when the
/// answer starts). `reasoning_sent` counts reasoning tokens already sent, `answer_sent` answer
/// tokens.
pub fn token(
    text: &str,
    reasoning: bool,
    reasoning_sent: u32,
    answer_sent: u32,
) -> (Vec<Bytes>, Bytes) {
    if reasoning {
        let tok = event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": text}}}),
        );
        return (Vec::new(), tok);
    }
    let mut pre = Vec::new();
    if answer_sent == 0 && reasoning_sent > 0 {
        pre.extend(close_reasoning());
    }
    let tok = event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": answer_block(reasoning_sent), "delta": {"text": text}}),
    );
    (pre, tok)
}

/// One piece of a tool call's input, after the `contentBlockStart` naming the call for the
/// first piece (and the reasoning block's end, if any).
pub fn tool_token(
    call: &SimToolCall,
    first: bool,
    piece: &str,
    reasoning_sent: u32,
) -> (Vec<Bytes>, Bytes) {
    let index = answer_block(reasoning_sent);
    let mut pre = Vec::new();
    if first {
        if reasoning_sent > 0 {
            pre.extend(close_reasoning());
        }
        pre.push(event(
            "contentBlockStart",
            &json!({"contentBlockIndex": index,
                    "start": {"toolUse": {"toolUseId": call.id, "name": call.name}}}),
        ));
    }
    let tok = event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}),
    );
    (pre, tok)
}

fn close_reasoning() -> Vec<Bytes> {
    vec![
        event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0,
                    "delta": {"reasoningContent": {"signature": "c2ltdWxhdGVk"}}}),
        ),
        event("contentBlockStop", &json!({"contentBlockIndex": 0})),
    ]
}

/// Everything after the last token: the open block's stop, `messageStop`, `metadata`. The
/// latency is the plan's; [`stamp`] replaces it with the real one when it is sent.
pub fn close(
    finish: FinishReason,
    reasoning_sent: u32,
    answer_sent: u32,
    called: bool,
    prompt_tokens: u32,
    planned: &Timing,
) -> Bytes {
    let mut out: Vec<Bytes> = Vec::new();
    if reasoning_sent > 0 && answer_sent == 0 {
        out.extend(close_reasoning());
    }
    if answer_sent > 0 {
        out.push(event(
            "contentBlockStop",
            &json!({"contentBlockIndex": answer_block(reasoning_sent)}),
        ));
    }
    let reason = match (finish == FinishReason::Length, called) {
        (true, _) => "max_tokens",
        (false, true) => "tool_use",
        (false, false) => "end_turn",
    };
    out.push(event("messageStop", &json!({"stopReason": reason})));
    let output = reasoning_sent + answer_sent;
    out.push(event(
        "metadata",
        &json!({
            "usage": {"inputTokens": prompt_tokens, "outputTokens": output,
                      "totalTokens": prompt_tokens + output},
            "metrics": {"latencyMs": latency_ms(planned)},
        }),
    ));
    Bytes::from(out.concat())
}

fn latency_ms(t: &Timing) -> u64 {
    u64::try_from(t.total.as_millis()).unwrap_or(u64::MAX)
}

/// The in-stream error: the model failed while streaming.
pub fn error(message: &str) -> Bytes {
    exception(
        "modelStreamErrorException",
        &json!({"message": message, "originalStatusCode": 500,
                "originalMessage": "simulated model failure"}),
    )
}

/// A well-framed event whose JSON payload is cut short.
pub fn malformed() -> Bytes {
    encode(
        &Message::new(Bytes::from_static(b"{\"contentBlockIndex\":0,\"delta\":{"))
            .add_header(header(":event-type", "contentBlockDelta"))
            .add_header(header(":content-type", "application/json"))
            .add_header(header(":message-type", "event")),
    )
}

/// The non-streamed Converse answer (the simulator streams ConverseStream only; this is the
/// shape a `whole` answer takes if one is ever asked for).
pub fn whole(
    reasoning: &str,
    answer: &str,
    finish: FinishReason,
    prompt_tokens: u32,
    output_tokens: u32,
) -> Value {
    let mut content = Vec::new();
    if !reasoning.is_empty() {
        content.push(json!({"reasoningContent": {"reasoningText": {"text": reasoning}}}));
    }
    content.push(json!({"text": answer}));
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": if finish == FinishReason::Length { "max_tokens" } else { "end_turn" },
        "usage": {"inputTokens": prompt_tokens, "outputTokens": output_tokens,
                  "totalTokens": prompt_tokens + output_tokens},
        "metrics": {"latencyMs": 0},
    })
}

/// The closing frames with the real latency in `metadata`; other bytes unchanged.
pub fn stamp(bytes: &Bytes, t: &Timing) -> Bytes {
    let mut buf = BytesMut::from(&bytes[..]);
    let mut frames = MessageFrameDecoder::new();
    let mut out: Vec<Bytes> = Vec::new();
    let mut changed = false;
    while let Ok(DecodedFrame::Complete(m)) = frames.decode_frame(&mut buf) {
        let is_metadata = m.headers().iter().any(|h| {
            h.name().as_str() == ":event-type"
                && matches!(h.value(), HeaderValue::String(s) if s.as_str() == "metadata")
        });
        if is_metadata {
            if let Ok(mut v) = serde_json::from_slice::<Value>(m.payload()) {
                v["metrics"]["latencyMs"] = json!(latency_ms(t));
                out.push(event("metadata", &v));
                changed = true;
                continue;
            }
        }
        out.push(encode(&m));
    }
    if !changed || !buf.is_empty() {
        return bytes.clone();
    }
    Bytes::from(out.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Frames back to `(event type, payload)`.
    fn frames(b: &Bytes) -> Vec<(String, Value)> {
        let mut buf = BytesMut::from(&b[..]);
        let mut d = MessageFrameDecoder::new();
        let mut out = Vec::new();
        while let Ok(DecodedFrame::Complete(m)) = d.decode_frame(&mut buf) {
            let name = m
                .headers()
                .iter()
                .find(|h| matches!(h.name().as_str(), ":event-type" | ":exception-type"))
                .and_then(|h| h.value().as_string().ok().map(|s| s.as_str().to_string()))
                .unwrap_or_default();
            out.push((
                name,
                serde_json::from_slice(m.payload()).unwrap_or(Value::Null),
            ));
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn access_key_of_a_sigv4_authorization() {
        assert_eq!(
            sigv4_access_key(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260302/us-west-2/bedrock/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=ab12"
            ),
            Some("AKIDEXAMPLE")
        );
        assert_eq!(sigv4_access_key("Bearer AKIDEXAMPLE"), None);
        assert_eq!(sigv4_access_key("AWS4-HMAC-SHA256 Credential=/x"), None);
    }

    #[test]
    fn reasoning_then_answer_and_a_stamped_close() {
        let (pre, r) = token(" alpha", true, 0, 0);
        assert!(pre.is_empty());
        assert_eq!(
            frames(&r),
            [(
                "contentBlockDelta".to_string(),
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": " alpha"}}})
            )]
        );
        let (pre, a) = token(" one", false, 1, 0);
        let pre_names: Vec<String> = pre.iter().flat_map(frames).map(|f| f.0).collect();
        assert_eq!(pre_names, ["contentBlockDelta", "contentBlockStop"]);
        assert_eq!(frames(&a)[0].1["contentBlockIndex"], 1);
        let planned = Timing::default();
        let end = close(FinishReason::Length, 1, 1, false, 9, &planned);
        let names: Vec<String> = frames(&end).into_iter().map(|f| f.0).collect();
        assert_eq!(names, ["contentBlockStop", "messageStop", "metadata"]);
        let t = Timing {
            total: Duration::from_millis(512),
            ..Timing::default()
        };
        let stamped = frames(&stamp(&end, &t));
        assert_eq!(stamped[1].1, json!({"stopReason": "max_tokens"}));
        assert_eq!(
            stamped[2].1,
            json!({"usage": {"inputTokens": 9, "outputTokens": 2, "totalTokens": 11},
                   "metrics": {"latencyMs": 512}})
        );
        assert_eq!(stamp(&a, &t), a, "token frames are not touched");
        let err = frames(&error("x"));
        assert_eq!(err[0].0, "modelStreamErrorException");
        let bad = malformed();
        let mut buf = BytesMut::from(&bad[..]);
        let decoded = MessageFrameDecoder::new().decode_frame(&mut buf);
        assert!(
            matches!(decoded, Ok(DecodedFrame::Complete(ref m)) if serde_json::from_slice::<Value>(m.payload()).is_err())
        );
    }
}
