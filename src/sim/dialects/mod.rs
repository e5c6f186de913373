//! The simulator's wire formats for the APIs added after the first three, one file each: the
//! frames of a streamed answer (open, a token, close with usage, an in-stream error, a malformed
//! event), the error body and the whole (non-streamed) answer. `wire.rs` calls them from its
//! per-API `match`es and keeps the pacing and fault logic shared. Ollama and Bedrock also report
//! server-side durations, stamped here once the real ones are known.

pub mod bedrock_converse;
pub mod gemini;
pub mod ollama;
pub mod openai_responses;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::record::RequestRecord;
use super::Api;

/// Durations a server reports about its own work, measured on the simulator's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// Arrival to the end of the answer.
    pub total: Duration,
    /// Arrival to the decode slot (Ollama's `load_duration`: the wait before generation).
    pub load: Duration,
    /// Decode slot to the first token (`prompt_eval_duration`).
    pub prompt_eval: Duration,
    /// First token to the last (`eval_duration`).
    pub eval: Duration,
}

impl Timing {
    /// The real durations of a request that ends at `end`.
    pub fn of(r: &RequestRecord, end: Instant) -> Timing {
        let start = r.decode_start.unwrap_or(r.arrival);
        let first = r.tokens.first().copied().unwrap_or(end);
        let last = r.tokens.last().copied().unwrap_or(first);
        Timing {
            total: end.saturating_duration_since(r.arrival),
            load: start.saturating_duration_since(r.arrival),
            prompt_eval: first.saturating_duration_since(start),
            eval: last.saturating_duration_since(first),
        }
    }
}

/// The stream's last bytes with the server-reported durations made real, for the APIs that
/// report them (Ollama, Bedrock); other bytes are returned unchanged.
pub fn stamp_end(r: &RequestRecord, bytes: Bytes, end: Instant) -> Bytes {
    match r.api {
        Api::Ollama => ollama::stamp(&bytes, &Timing::of(r, end)),
        Api::BedrockConverse => bedrock_converse::stamp(&bytes, &Timing::of(r, end)),
        _ => bytes,
    }
}

/// A whole (non-streamed) JSON answer with real durations.
pub fn stamp_whole(r: &RequestRecord, v: &mut Value, end: Instant) {
    if r.api == Api::Ollama {
        ollama::stamp_json(v, &Timing::of(r, end));
    }
}

/// The content type of a streamed answer.
pub fn stream_content_type(api: Api) -> &'static str {
    match api {
        Api::Ollama => ollama::CONTENT_TYPE,
        Api::BedrockConverse => bedrock_converse::CONTENT_TYPE,
        _ => "text/event-stream; charset=utf-8",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BytesMut;
    use serde_json::Value;

    use super::super::sample::Plan;
    use super::super::wire::{script, Ctx, Step};
    use super::super::Api;
    use crate::config::simulator::FaultKind;
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};

    fn ctx(api: Api) -> Ctx {
        Ctx {
            api,
            id: "id-1".to_string(),
            created: 1_700_000_000,
            model: "m".to_string(),
            include_usage: false,
            prompt_tokens: 5,
            tool_call: None,
            answer_prefix: Vec::new(),
        }
    }

    fn plan(reasoning: u32, answer: u32, fault: Option<FaultKind>) -> Plan {
        Plan {
            fault,
            ttft: Duration::from_millis(300),
            itls: vec![Duration::from_millis(20); (reasoning + answer) as usize],
            reasoning,
            answer,
            truncated: false,
        }
    }

    /// Each step as a letter (e event, t token, s stall, E end, A abort) and every body byte.
    fn flatten(steps: &[Step]) -> (String, Vec<u8>) {
        let mut kinds = String::new();
        let mut body = Vec::new();
        for s in steps {
            match s {
                Step::Event(b) => {
                    kinds.push('e');
                    body.extend_from_slice(b);
                }
                Step::Token(b) => {
                    kinds.push('t');
                    body.extend_from_slice(b);
                }
                Step::Stall => kinds.push('s'),
                Step::End(b, _) => {
                    kinds.push('E');
                    body.extend_from_slice(b);
                }
                Step::Abort => kinds.push('A'),
            }
        }
        (kinds, body)
    }

    fn lines(body: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(body)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect()
    }

    fn frame_names(body: &[u8]) -> Vec<String> {
        let mut buf = BytesMut::from(body);
        let mut d = MessageFrameDecoder::new();
        let mut out = Vec::new();
        while let Ok(DecodedFrame::Complete(m)) = d.decode_frame(&mut buf) {
            let name = m
                .headers()
                .iter()
                .find(|h| matches!(h.name().as_str(), ":event-type" | ":exception-type"))
                .and_then(|h| h.value().as_string().ok().map(|s| s.as_str().to_string()))
                .unwrap_or_default();
            let ok = serde_json::from_slice::<Value>(m.payload()).is_ok();
            out.push(if ok { name } else { format!("{name}!") });
        }
        assert!(buf.is_empty(), "bytes left after the last frame");
        out
    }

    #[test]
    fn ollama_stream_and_faults() {
        let c = ctx(Api::Ollama);
        let (kinds, body) = flatten(&script(&c, &plan(1, 2, None)));
        assert_eq!(kinds, "tttE");
        let l = lines(&body);
        assert_eq!(l[0]["message"]["thinking"], " alpha");
        assert_eq!(l[1]["message"]["content"], " one");
        assert_eq!(l[3]["done"], true);
        assert_eq!(l[3]["eval_count"], 3);
        assert_eq!(l[3]["prompt_eval_count"], 5);
        // The plan's durations until the real ones are stamped: 300 ms, then 2 × 20 ms.
        assert_eq!(l[3]["prompt_eval_duration"], 300_000_000);
        assert_eq!(l[3]["eval_duration"], 40_000_000);

        let (kinds, body) = flatten(&script(&c, &plan(0, 5, Some(FaultKind::ApiError))));
        assert_eq!(kinds, "E");
        assert_eq!(
            lines(&body),
            [serde_json::json!({"error": "simulated error while generating"})]
        );
        let (kinds, _) = flatten(&script(&c, &plan(0, 5, Some(FaultKind::StreamAborted))));
        assert_eq!(kinds, "tttA");
        let (kinds, _) = flatten(&script(&c, &plan(0, 5, Some(FaultKind::TimeoutIdle))));
        assert_eq!(kinds, "tttsttE");
        let (kinds, body) = flatten(&script(&c, &plan(0, 5, Some(FaultKind::MalformedStream))));
        assert_eq!(kinds, "ttteE");
        assert_eq!(lines(&body)[3], Value::Null, "the fourth line is not JSON");
        let (kinds, body) = flatten(&script(&c, &plan(0, 0, Some(FaultKind::EmptyResponse))));
        assert_eq!(kinds, "E");
        let l = lines(&body);
        assert_eq!(
            (l[0]["done"].as_bool(), l[0].get("eval_count")),
            (Some(true), None)
        );
    }

    #[test]
    fn bedrock_stream_and_faults() {
        let c = ctx(Api::BedrockConverse);
        let (kinds, body) = flatten(&script(&c, &plan(2, 1, None)));
        assert_eq!(kinds, "etteetE");
        assert_eq!(
            frame_names(&body),
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        let (kinds, body) = flatten(&script(&c, &plan(0, 5, Some(FaultKind::ApiError))));
        assert_eq!(kinds, "eE");
        assert_eq!(
            frame_names(&body),
            ["messageStart", "modelStreamErrorException"]
        );
        let (_, body) = flatten(&script(&c, &plan(0, 5, Some(FaultKind::MalformedStream))));
        assert_eq!(frame_names(&body)[4], "contentBlockDelta!");
        let (kinds, body) = flatten(&script(&c, &plan(0, 0, Some(FaultKind::EmptyResponse))));
        assert_eq!(kinds, "eE");
        assert_eq!(
            frame_names(&body),
            ["messageStart", "messageStop", "metadata"]
        );
    }
}
