//! Ground truth: when the simulator really handed each request's bytes to the HTTP layer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Api;
use crate::config::simulator::FaultKind;

/// Requests kept; older ones are dropped first.
pub const RECORD_CAPACITY: usize = 10_000;

/// What happened to one generation request, stamped on the simulator's monotonic clock.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    /// The response id (`chatcmpl-…`, `cmpl-…`, `msg_…`), also in the `x-request-id` header.
    pub id: String,
    /// The API called.
    pub api: Api,
    /// The model the response reported.
    pub model: String,
    /// The request asked for a stream.
    pub stream: bool,
    /// The injected fault, if any.
    pub fault: Option<FaultKind>,
    /// The HTTP status sent (0 until the headers go out).
    pub status: u16,
    /// Input tokens counted from the prompt.
    pub prompt_tokens: u32,
    /// How many of the first `tokens` are reasoning tokens.
    pub reasoning_tokens: u32,
    /// When the request arrived (its handler started).
    pub arrival: Instant,
    /// When it got a decode slot.
    pub decode_start: Option<Instant>,
    /// When the response headers were handed to the HTTP layer.
    pub headers_sent: Option<Instant>,
    /// When the first body event of a stream was handed over.
    pub first_event: Option<Instant>,
    /// When each output token's event was handed over (streams only; reasoning first).
    pub tokens: Vec<Instant>,
    /// When the last bytes were handed over (or the connection was cut, or the client left).
    pub end: Option<Instant>,
    /// `stop`, `length` or `abort` once finished; `None` while running or for error replies.
    pub finish: Option<&'static str>,
}

impl RequestRecord {
    /// A record of a request that just arrived.
    pub fn new(id: String, api: Api, arrival: Instant) -> RequestRecord {
        RequestRecord {
            id,
            api,
            model: String::new(),
            stream: false,
            fault: None,
            status: 0,
            prompt_tokens: 0,
            reasoning_tokens: 0,
            arrival,
            decode_start: None,
            headers_sent: None,
            first_event: None,
            tokens: Vec::new(),
            end: None,
            finish: None,
        }
    }

    /// The JSON form: instants as microseconds after arrival.
    pub fn to_json(&self) -> RecordJson {
        let us = |t: Instant| micros(t.saturating_duration_since(self.arrival));
        RecordJson {
            id: self.id.clone(),
            api: self.api.as_str(),
            model: self.model.clone(),
            stream: self.stream,
            fault: self.fault.map(FaultKind::as_str),
            status: self.status,
            prompt_tokens: self.prompt_tokens,
            reasoning_tokens: self.reasoning_tokens,
            output_tokens: u32::try_from(self.tokens.len()).unwrap_or(u32::MAX),
            decode_start_us: self.decode_start.map(us),
            headers_sent_us: self.headers_sent.map(us),
            first_event_us: self.first_event.map(us),
            tokens_us: self.tokens.iter().map(|t| us(*t)).collect(),
            end_us: self.end.map(us),
            finish: self.finish,
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A [`RequestRecord`] as `GET /ground-truth` returns it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordJson {
    /// See [`RequestRecord::id`].
    pub id: String,
    /// `openai-chat`, `openai-completions` or `anthropic-messages`.
    pub api: &'static str,
    /// See [`RequestRecord::model`].
    pub model: String,
    /// See [`RequestRecord::stream`].
    pub stream: bool,
    /// See [`RequestRecord::fault`].
    pub fault: Option<&'static str>,
    /// See [`RequestRecord::status`].
    pub status: u16,
    /// See [`RequestRecord::prompt_tokens`].
    pub prompt_tokens: u32,
    /// See [`RequestRecord::reasoning_tokens`].
    pub reasoning_tokens: u32,
    /// Token events handed over (the length of `tokens_us`).
    pub output_tokens: u32,
    /// Microseconds after arrival.
    pub decode_start_us: Option<u64>,
    /// Microseconds after arrival.
    pub headers_sent_us: Option<u64>,
    /// Microseconds after arrival.
    pub first_event_us: Option<u64>,
    /// Microseconds after arrival, one per token.
    pub tokens_us: Vec<u64>,
    /// Microseconds after arrival.
    pub end_us: Option<u64>,
    /// See [`RequestRecord::finish`].
    pub finish: Option<&'static str>,
}

/// A shared, updatable record.
pub type SharedRecord = Arc<Mutex<RequestRecord>>;

/// Locks a record; a poisoned lock still holds usable stamps.
pub fn lock(r: &SharedRecord) -> MutexGuard<'_, RequestRecord> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// The bounded ring of recent records. A record joins at arrival and is updated in place, so a
/// reader sees a stream's stamps as soon as its bytes are handed over.
#[derive(Debug, Default)]
pub struct Records {
    ring: Mutex<VecDeque<SharedRecord>>,
}

impl Records {
    /// Adds a record, dropping the oldest beyond [`RECORD_CAPACITY`].
    pub fn push(&self, r: RequestRecord) -> SharedRecord {
        let shared = Arc::new(Mutex::new(r));
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() >= RECORD_CAPACITY {
            ring.pop_front();
        }
        ring.push_back(Arc::clone(&shared));
        shared
    }

    /// Copies of every kept record, oldest first.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        let ring: Vec<SharedRecord> = {
            let g = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            g.iter().cloned().collect()
        };
        ring.iter().map(|r| lock(r).clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_json_is_relative() {
        let recs = Records::default();
        let t0 = Instant::now();
        for i in 0..RECORD_CAPACITY + 2 {
            recs.push(RequestRecord::new(format!("r{i}"), Api::OpenaiChat, t0));
        }
        let snap = recs.snapshot();
        assert_eq!(snap.len(), RECORD_CAPACITY);
        assert_eq!(snap[0].id, "r2");

        let mut r = RequestRecord::new("x".to_string(), Api::AnthropicMessages, t0);
        r.tokens = vec![
            t0 + Duration::from_micros(1500),
            t0 + Duration::from_millis(3),
        ];
        r.end = Some(t0 + Duration::from_millis(4));
        r.fault = Some(FaultKind::SlowHeaders);
        let j = serde_json::to_value(r.to_json()).unwrap();
        assert_eq!(j["api"], "anthropic-messages");
        assert_eq!(j["tokens_us"], serde_json::json!([1500, 3000]));
        assert_eq!(j["output_tokens"], 2);
        assert_eq!(j["end_us"], 4000);
        assert_eq!(j["fault"], "slow_headers");
        assert_eq!(j["headers_sent_us"], serde_json::Value::Null);
    }
}
