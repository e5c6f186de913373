//! API dialects: how to build a streaming request and how to read its events.
//!
//! A dialect never touches the clock, the network, metrics or scheduling. It turns a
//! [`ProbeRequest`] into a JSON body and turns each SSE event into [`Signal`]s; the engine stamps
//! the time at which the bytes of each event arrived. Adding a dialect is one file here plus one
//! arm in each `match` of [`DialectKind`].

pub mod anthropic_messages;
pub mod openai_chat;
pub mod openai_completions;

use serde::Deserialize;

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

/// Whether an in-stream error means "slow down" or something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamErrorKind {
    /// Rate limit or overload (e.g. Anthropic `overloaded_error`, `rate_limit_error`).
    RateLimited,
    /// Any other error object.
    Other,
}

/// What one SSE event meant. A single event may produce several signals.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// Generated output. `text` is the delta; the engine accumulates answer text for checks.
    Output { kind: OutputKind, text: String },
    /// Token usage reported by the server. Fields the event does not carry are `None`; later
    /// reports overwrite earlier ones field by field. `input_tokens` is the whole prompt, cached
    /// part included (OpenAI `prompt_tokens`; Anthropic `input_tokens` + cache reads + cache
    /// writes), and `cached_input_tokens` is the part served from the provider's prompt cache.
    Usage {
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        cached_input_tokens: Option<u64>,
    },
    /// The model name the server says it used.
    Model(String),
    /// Why generation stopped (`stop`, `length`, `end_turn`, ...).
    FinishReason(String),
    /// The stream's end marker (`[DONE]`, `message_stop`).
    Done,
    /// An error object inside a 200 stream.
    Error {
        kind: StreamErrorKind,
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
