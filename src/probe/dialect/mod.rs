//! API dialects: how to build a streaming request and how to read its events.
//!
//! A dialect never touches the clock, the network, metrics or scheduling. It turns a
//! [`ProbeRequest`] into a JSON body and turns each SSE event into [`Signal`]s; the engine stamps
//! the time at which the bytes of each event arrived. Adding a dialect is one file here plus one
//! arm in each `match` of [`DialectKind`].

pub mod anthropic_messages;
pub mod gemini;
pub mod openai_chat;
pub mod openai_completions;
pub mod openai_responses;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use crate::probe::result::ErrorCondition;
pub use crate::probe::trace::{TokenSource, UsageReport};

/// The API dialects inferprobe speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DialectKind {
    /// OpenAI Chat Completions: `POST {base_url}/chat/completions`.
    OpenaiChat,
    /// OpenAI legacy Completions: `POST {base_url}/completions`.
    OpenaiCompletions,
    /// Anthropic Messages: `POST {base_url}/v1/messages`.
    AnthropicMessages,
}

/// How the API key is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible servers).
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKey,
}

/// One chat message of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// Everything a dialect needs to build a request body. Built by the engine from a scenario.
#[derive(Clone, Debug)]
pub struct ProbeRequest<'a> {
    /// Model name sent in the body.
    pub model: &'a str,
    /// Conversation, system message included as a `system` role message if any.
    pub messages: &'a [Message],
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Stop sequences (omitted from the body when empty).
    pub stop: &'a [String],
    /// Extra top-level body fields, merged last (they may override anything above).
    pub extra_body: &'a serde_json::Map<String, serde_json::Value>,
    /// OpenAI dialects: send `stream_options: {include_usage: true}`.
    pub include_usage: bool,
}

/// One server-sent event after framing (the `event:` field and the joined `data:` lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, empty when absent.
    pub event: &'a str,
    /// The `data:` lines joined by `\n`.
    pub data: &'a str,
}

/// What kind of generated output an event carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Answer text (`delta.content`, `text`, `text_delta`).
    Answer,
    /// Reasoning text (`reasoning_content`, `reasoning`, `thinking_delta`).
    Reasoning,
    /// Tool-call arguments (`tool_calls[].function.arguments`, `input_json_delta`).
    ToolCall,
}

/// What an in-stream error means: the decoders classify the error's `type`/`code` with
/// [`ErrorCondition::of_error_words`], and the engine maps the condition to a result through the
/// one table, [`crate::probe::result::CONDITIONS`].
pub type StreamErrorKind = ErrorCondition;

/// What one SSE event meant. A single event may produce several signals.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// Generated output. `text` is the delta; the engine accumulates answer text for checks.
    Output { kind: OutputKind, text: String },
    /// Token usage reported by the server, with the field it came from. Counts the event does
    /// not carry are `None`; the engine merges reports with [`crate::probe::trace::UsageTotals`].
    /// `input_tokens` is the whole prompt, cached part included (OpenAI `prompt_tokens`;
    /// Anthropic `input_tokens` + cache reads + cache writes; llama.cpp `prompt_n` + `cache_n`).
    Usage(UsageReport),
    /// The model name the server says it used.
    Model(String),
    /// Why generation stopped (`stop`, `length`, `end_turn`, ...).
    FinishReason(String),
    /// The stream's end marker (`[DONE]`, `message_stop`).
    Done,
    /// An error object inside a 200 stream.
    Error {
        kind: ErrorCondition,
        message: String,
    },
}

/// An event the dialect could not interpret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {dialect} event: {reason}")]
pub struct DecodeError {
    /// The dialect's name.
    pub dialect: &'static str,
    /// What was wrong, without echoing the (possibly large) payload.
    pub reason: String,
}

/// Per-probe decoding state.
pub trait StreamDecoder: Send {
    /// Interprets one event, appending what it meant to `out`. Keep-alive or unknown-but-valid
    /// events append nothing.
    fn decode(&mut self, event: &SseEvent<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError>;
}

/// Largest token count a usage report may carry: ten times the largest context window any model
/// offers today (10M tokens). A larger value (e.g. `u64::MAX` from a broken server) is a
/// malformed stream, so that it can never wrap `inferprobe_tokens_total` or inflate cost.
pub const MAX_PLAUSIBLE_TOKENS: u64 = 100_000_000;

/// Reads the token count at `path` (dot-separated keys) under `v`, naming `prefix.path` in the
/// error. Missing or `null` is `None`; the count must be a non-negative integer (an integral
/// float such as `12.0` is accepted) of at most [`MAX_PLAUSIBLE_TOKENS`].
pub(crate) fn token_count(
    dialect: &'static str,
    v: &Value,
    prefix: &str,
    path: &str,
) -> Result<Option<u64>, DecodeError> {
    let mut cur = v;
    for key in path.split('.') {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return Ok(None),
        }
    }
    let bad = |what: String| DecodeError {
        dialect,
        reason: format!("implausible usage: {prefix}.{path} = {what}"),
    };
    let too_many =
        |n: &dyn std::fmt::Display| bad(format!("{n} (more than {MAX_PLAUSIBLE_TOKENS} tokens)"));
    let n = match cur {
        Value::Null => return Ok(None),
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u,
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 => {
                if f > MAX_PLAUSIBLE_TOKENS as f64 {
                    return Err(too_many(n));
                }
                f as u64
            }
            _ => return Err(bad(format!("{n} (not a token count)"))),
        },
        other => {
            // At most 40 characters (not bytes: a cut inside a character would panic).
            let text: String = other.to_string().chars().take(40).collect();
            return Err(bad(format!("{text} (not a token count)")));
        }
    };
    if n > MAX_PLAUSIBLE_TOKENS {
        return Err(too_many(&n));
    }
    Ok(Some(n))
}

/// Output-limit fields a request body may carry: OpenAI, OpenAI reasoning models, TGI,
/// llama.cpp, Ollama and Gemini spellings.
const OUTPUT_LIMIT_FIELDS: [&str; 6] = [
    "max_tokens",
    "max_completion_tokens",
    "max_new_tokens",
    "n_predict",
    "num_predict",
    "max_output_tokens",
];

/// The largest output limit a request carries: the scenario's `max_tokens` unless `extra_body`
/// removes it (`null`) or overrides it, and any other limit field `extra_body` adds. `None` when
/// the request sets no limit (or an unlimited one, e.g. llama.cpp `n_predict: -1`).
pub fn requested_output_limit(max_tokens: u32, extra_body: &Map<String, Value>) -> Option<u64> {
    let mut limit = Some(u64::from(max_tokens));
    for key in OUTPUT_LIMIT_FIELDS {
        match extra_body.get(key) {
            None => {}
            Some(Value::Null) if key == "max_tokens" => limit = None,
            Some(v) => match v.as_u64() {
                Some(n) if key == "max_tokens" => limit = Some(n),
                Some(n) => limit = Some(limit.map_or(n, |l| l.max(n))),
                // A negative or non-integer limit means "no limit" to the servers that take it.
                None => return None,
            },
        }
    }
    limit
}

/// Whether a reported output count is beyond what the request allowed: more than four times
/// its output limit plus 64. Servers stop at the limit; the slack absorbs counting quirks
/// (end-of-sequence tokens, speculative decoding, a reasoning budget counted apart) so that only
/// absurd reports are rejected.
pub fn output_count_is_implausible(output_tokens: u64, limit: Option<u64>) -> bool {
    limit.is_some_and(|l| output_tokens > l.saturating_mul(4).saturating_add(64))
}

impl DialectKind {
    /// Every dialect, for conformance tests and help text.
    pub const ALL: [DialectKind; 3] = [
        DialectKind::OpenaiChat,
        DialectKind::OpenaiCompletions,
        DialectKind::AnthropicMessages,
    ];

    /// The config / CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            DialectKind::OpenaiChat => "openai-chat",
            DialectKind::OpenaiCompletions => "openai-completions",
            DialectKind::AnthropicMessages => "anthropic-messages",
        }
    }

    /// Parses a config / CLI name.
    pub fn parse(s: &str) -> Option<DialectKind> {
        DialectKind::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Path appended to the target's `base_url`.
    pub fn path(self) -> &'static str {
        match self {
            DialectKind::OpenaiChat => "/chat/completions",
            DialectKind::OpenaiCompletions => "/completions",
            DialectKind::AnthropicMessages => "/v1/messages",
        }
    }

    /// The auth header style used when the target does not choose one.
    pub fn default_auth(self) -> AuthStyle {
        match self {
            DialectKind::OpenaiChat | DialectKind::OpenaiCompletions => AuthStyle::Bearer,
            DialectKind::AnthropicMessages => AuthStyle::XApiKey,
        }
    }

    /// Headers every request of this dialect carries (besides auth and content type).
    pub fn fixed_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            DialectKind::OpenaiChat | DialectKind::OpenaiCompletions => &[],
            DialectKind::AnthropicMessages => anthropic_messages::FIXED_HEADERS,
        }
    }

    /// The streaming request body.
    pub fn build_body(self, req: &ProbeRequest<'_>) -> serde_json::Value {
        match self {
            DialectKind::OpenaiChat => openai_chat::build_body(req),
            DialectKind::OpenaiCompletions => openai_completions::build_body(req),
            DialectKind::AnthropicMessages => anthropic_messages::build_body(req),
        }
    }

    /// True when a non-null finish reason followed by a clean end of body completes a stream
    /// (OpenAI dialects: some servers and proxies omit `[DONE]`). Anthropic streams are complete
    /// only at `message_stop`.
    pub fn finish_reason_ends_stream(self) -> bool {
        match self {
            DialectKind::OpenaiChat | DialectKind::OpenaiCompletions => true,
            DialectKind::AnthropicMessages => false,
        }
    }

    /// What completes a stream of this dialect, for error messages.
    pub fn end_marker(self) -> &'static str {
        match self {
            DialectKind::OpenaiChat | DialectKind::OpenaiCompletions => "[DONE] or a finish_reason",
            DialectKind::AnthropicMessages => "message_stop",
        }
    }

    /// A fresh decoder for one probe.
    pub fn decoder(self) -> Box<dyn StreamDecoder> {
        match self {
            DialectKind::OpenaiChat => Box::new(openai_chat::Decoder::default()),
            DialectKind::OpenaiCompletions => Box::new(openai_completions::Decoder::default()),
            DialectKind::AnthropicMessages => Box::new(anthropic_messages::Decoder::default()),
        }
    }
}

/// Test helper: decodes `(event, data)` pairs with a fresh decoder of type `D`.
#[cfg(test)]
pub(crate) fn decode_all<D: StreamDecoder + Default>(
    events: &[(&str, &str)],
) -> Result<Vec<Signal>, DecodeError> {
    let mut d = D::default();
    let mut out = Vec::new();
    for (event, data) in events {
        d.decode(&SseEvent { event, data }, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extra(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn output_limit_follows_the_body_sent() {
        assert_eq!(requested_output_limit(64, &Map::new()), Some(64));
        assert_eq!(
            requested_output_limit(64, &extra(json!({"max_tokens": 2048}))),
            Some(2048)
        );
        // A reasoning model: max_tokens removed, max_completion_tokens set.
        assert_eq!(
            requested_output_limit(
                64,
                &extra(json!({"max_tokens": null, "max_completion_tokens": 4096}))
            ),
            Some(4096)
        );
        assert_eq!(
            requested_output_limit(64, &extra(json!({"max_tokens": null}))),
            None
        );
        assert_eq!(
            requested_output_limit(64, &extra(json!({"n_predict": -1}))),
            None,
            "llama.cpp's unlimited"
        );
        assert_eq!(
            requested_output_limit(64, &extra(json!({"num_predict": 32}))),
            Some(64),
            "the largest limit the body carries"
        );
    }

    #[test]
    fn only_absurd_output_counts_are_implausible() {
        assert!(!output_count_is_implausible(320, Some(64)));
        assert!(output_count_is_implausible(321, Some(64)));
        assert!(!output_count_is_implausible(64, Some(0)));
        assert!(output_count_is_implausible(65, Some(0)));
        assert!(!output_count_is_implausible(MAX_PLAUSIBLE_TOKENS, None));
        assert!(!output_count_is_implausible(u64::MAX, Some(u64::MAX)));
    }

    #[test]
    fn token_counts_are_bounded_non_negative_integers() {
        let v = json!({"a": {"b": 7}, "f": 12.0, "n": null, "neg": -2, "s": "3", "big": 1e9});
        let c = |path| token_count("d", &v, "u", path);
        assert_eq!(c("a.b"), Ok(Some(7)));
        assert_eq!(c("f"), Ok(Some(12)));
        assert_eq!(c("n"), Ok(None));
        assert_eq!(c("missing"), Ok(None));
        assert_eq!(c("a.missing"), Ok(None));
        for (path, reason) in [
            ("neg", "implausible usage: u.neg = -2 (not a token count)"),
            ("s", "implausible usage: u.s = \"3\" (not a token count)"),
            (
                "big",
                "implausible usage: u.big = 1000000000.0 (more than 100000000 tokens)",
            ),
        ] {
            assert_eq!(
                c(path),
                Err(DecodeError {
                    dialect: "d",
                    reason: reason.to_string()
                }),
                "{path}"
            );
        }
    }
}
