//! API dialects: how to build a streaming request and how to read its events.
//!
//! A dialect never touches the clock, the network, metrics or scheduling. It turns a
//! [`ProbeRequest`] into a JSON body and turns each framed event into [`Signal`]s; the engine
//! stamps the time at which the bytes of each event arrived, whatever the framing
//! ([`crate::probe::framing`]).
//!
//! **Adding a dialect** is one file here and one row in [`dialect_table!`] below:
//! 1. `src/probe/dialect/<name>.rs` with `build_body`, a [`StreamDecoder`] and
//!    `pub static DIALECT: Dialect` (name, framing, URL path, auth, fixed headers, accepted
//!    content types, end of stream), unit-tested on recorded streams;
//! 2. the row `VariantName => module_name,` in the table, which declares the module and adds the
//!    [`DialectKind`] variant and its place in [`DialectKind::ALL`].
//!
//! Everything else (config, CLI, engine, metrics, the conformance suite) reads the table. The
//! simulator speaks each dialect too (`src/sim/dialects/`); `tests/conformance.rs` fails for a
//! dialect the simulator cannot serve.

pub mod common;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use crate::probe::result::ErrorCondition;
pub use crate::probe::trace::{TokenSource, UsageReport};

/// How a dialect's response body is cut into events (see [`crate::probe::framing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events (`text/event-stream`).
    Sse,
    /// Newline-delimited JSON (`application/x-ndjson`).
    Ndjson,
    /// AWS event-stream binary messages (`application/vnd.amazon.eventstream`).
    AwsEventStream,
}

/// How the API key is sent: the config's `auth:` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible servers, Bedrock API keys).
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKey,
    /// `x-goog-api-key: <key>` (Gemini).
    XGoogApiKey,
    /// AWS Signature Version 4 with credentials from the environment or the shared
    /// credentials file (Amazon Bedrock); `api_key` is not used.
    AwsSigv4,
}

/// What an [`AuthStyle`] puts on the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The key in a header, after `scheme` and a space when there is one.
    Header {
        /// Header name.
        name: &'static str,
        /// Scheme before the key (`Bearer`), if any.
        scheme: Option<&'static str>,
    },
    /// A request signature computed over method, URL, headers and body.
    AwsSigV4 {
        /// The signing service name (`bedrock`).
        service: &'static str,
    },
}

impl AuthStyle {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthStyle::Bearer => "bearer",
            AuthStyle::XApiKey => "x-api-key",
            AuthStyle::ApiKey => "api-key",
            AuthStyle::XGoogApiKey => "x-goog-api-key",
            AuthStyle::AwsSigv4 => "aws-sigv4",
        }
    }

    /// What this style puts on a request.
    pub fn auth(self) -> Auth {
        let header = |name, scheme| Auth::Header { name, scheme };
        match self {
            AuthStyle::Bearer => header("authorization", Some("Bearer")),
            AuthStyle::XApiKey => header("x-api-key", None),
            AuthStyle::ApiKey => header("api-key", None),
            AuthStyle::XGoogApiKey => header("x-goog-api-key", None),
            AuthStyle::AwsSigv4 => Auth::AwsSigV4 { service: "bedrock" },
        }
    }
}

/// One dialect: everything the engine, config and simulator need to know about an API.
pub struct Dialect {
    /// The config / CLI name (`openai-chat`).
    pub name: &'static str,
    /// How the response body is cut into events.
    pub framing: Framing,
    /// Request path (and query) appended to the base URL's path, given the model name. It
    /// percent-encodes the model where the model goes into the path.
    pub path: fn(model: &str) -> String,
    /// The auth style used when the target does not choose one.
    pub default_auth: AuthStyle,
    /// Headers every request carries (besides auth, accept and content type).
    pub fixed_headers: &'static [(&'static str, &'static str)],
    /// Response media types accepted as a stream (lowercase, without parameters); the first is
    /// sent as `Accept`.
    pub content_types: &'static [&'static str],
    /// The streaming request body.
    pub build_body: fn(&ProbeRequest<'_>) -> Value,
    /// A fresh decoder for one probe.
    pub decoder: fn() -> Box<dyn StreamDecoder>,
    /// True when a finish reason followed by a clean end of body completes a stream (servers
    /// and proxies that omit an end marker); false when only [`Signal::Done`] does.
    pub finish_reason_ends_stream: bool,
    /// What completes a stream, for error messages.
    pub end_marker: &'static str,
    /// Whether responses name the model that answered (`expect_model` checks need it).
    pub reports_model: bool,
    /// Whether the API takes tools and streams tool calls (journeys with tools need it).
    pub supports_tools: bool,
    /// Path prefix of the simulator's routes: `base_url: simulator` resolves to the simulator's
    /// root plus this, the base URL each provider's SDK would take.
    pub simulator_prefix: &'static str,
}

impl std::fmt::Debug for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialect").field("name", &self.name).finish()
    }
}

/// The dialect table: one row per dialect, `Variant => module`. Declares each dialect's module
/// and generates [`DialectKind`], [`DialectKind::ALL`] and [`DialectKind::spec`].
macro_rules! dialect_table {
    ($($variant:ident => $module:ident,)*) => {
        $(pub mod $module;)*

        /// The API dialects inferprobe speaks: a cheap handle on a row of the dialect table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DialectKind {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant,
            )*
        }

        impl DialectKind {
            /// Every dialect, in table order.
            pub const ALL: [DialectKind; [$(stringify!($variant)),*].len()] =
                [$(DialectKind::$variant),*];

            /// The dialect's row.
            pub fn spec(self) -> &'static Dialect {
                match self {
                    $(DialectKind::$variant => &$module::DIALECT,)*
                }
            }
        }
    };
}

dialect_table! {
    OpenaiChat => openai_chat,
    OpenaiCompletions => openai_completions,
    AnthropicMessages => anthropic_messages,
    OpenaiResponses => openai_responses,
    Gemini => gemini,
    Ollama => ollama,
    BedrockConverse => bedrock_converse,
}

impl<'de> Deserialize<'de> for DialectKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        DialectKind::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown dialect {:?}, expected one of: {}",
                crate::probe::clip(&name, 40),
                DialectKind::names().join(", ")
            ))
        })
    }
}

/// One chat message of a scenario or a journey's conversation.
///
/// | role | `content` | tool fields |
/// |---|---|---|
/// | `system`, `user` | the text | none |
/// | `assistant` | the answer text (may be empty) | `tool_calls`: the calls the model made |
/// | `tool` | the tool's result (JSON text or plain text) | `tool_call_id`, `tool_name`: the call it answers |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// `assistant` messages: the tool calls the model made in that turn, in order.
    pub tool_calls: Vec<ToolCall>,
    /// `tool` messages: the id of the call this result answers.
    pub tool_call_id: Option<String>,
    /// `tool` messages: the name of the tool whose result this is (Gemini and Ollama match
    /// results by name).
    pub tool_name: Option<String>,
}

/// A tool call the model made, as carried into the next request of a conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id as the server gave it, or `call_<n>` (n from 1 in the turn) for APIs
    /// without ids (Gemini, older Ollama).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model streamed them (JSON text, possibly invalid).
    pub arguments: String,
    /// An opaque signature the server asks to get back with the call (Gemini's
    /// `thoughtSignature`), if any.
    pub signature: Option<String>,
}

/// A tool offered to the model: a function with JSON-schema parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// The function name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: Value,
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
    /// Tools offered to the model (omitted from the body when empty). Only dialects whose
    /// [`Dialect::supports_tools`] is true are given any.
    pub tools: &'a [ToolSpec],
}

/// One event after framing.
///
/// | framing | `event` | `data` |
/// |---|---|---|
/// | SSE | the `event:` field, empty when absent | the `data:` lines joined by `\n` |
/// | NDJSON | empty | one line |
/// | AWS event-stream | `:event-type`, or `:exception-type` for an exception, or `error` | the payload (for `error`: `{"code", "message"}` from the headers) |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramedEvent<'a> {
    /// The event's name.
    pub event: &'a str,
    /// The event's payload.
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

/// What one event meant. A single event may produce several signals.
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
    /// The server withheld (part of) the answer because of its content: a safety filter, a
    /// recitation check, a blocked prompt, a refusal stop. Does not end the stream; the engine
    /// turns an otherwise successful probe into `check_failed`.
    Withheld {
        /// Where the reason was read (`finishReason`, `promptFeedback.blockReason`, ...).
        field: &'static str,
        /// The server's reason (`SAFETY`, `content_filter`, ...), at most 60 bytes.
        reason: String,
    },
    /// A duration the server reports about this request (Ollama's `load_duration`, Bedrock's
    /// `metrics.latencyMs`), exported beside ours as
    /// `inferprobe_server_reported_duration_seconds{phase=name}`.
    ServerTiming { name: &'static str, seconds: f64 },
    /// A tool call starts: the model calls tool `name`. Its arguments follow as
    /// [`Signal::Output`] with [`OutputKind::ToolCall`] (in the same event or later ones) and
    /// belong to the latest call started. APIs that send whole calls emit this signal first,
    /// then the arguments.
    ToolCall {
        /// The call's id, when the API gives one.
        id: Option<String>,
        /// The tool's name.
        name: String,
        /// An opaque signature to send back with the call (Gemini's `thoughtSignature`).
        signature: Option<String>,
    },
}

/// Every `name` a [`Signal::ServerTiming`] may carry: Ollama's `load` (model load),
/// `prompt_eval`, `eval` (generation) and `total`; Bedrock's `latency`.
pub const SERVER_TIMING_PHASES: [&str; 5] = ["load", "prompt_eval", "eval", "total", "latency"];

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
    fn decode(&mut self, event: &FramedEvent<'_>, out: &mut Vec<Signal>)
        -> Result<(), DecodeError>;
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
    // Gemini nests its limit in `generationConfig`.
    let nested = extra_body
        .get("generationConfig")
        .and_then(|g| g.get("maxOutputTokens"));
    match nested {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64() {
            Some(n) => limit = Some(limit.map_or(n, |l| l.max(n))),
            None => return None,
        },
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
    /// The config / CLI name.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Parses a config / CLI name.
    pub fn parse(s: &str) -> Option<DialectKind> {
        DialectKind::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Every dialect's name, in table order.
    pub fn names() -> Vec<&'static str> {
        DialectKind::ALL.iter().map(|d| d.as_str()).collect()
    }

    /// How the response body is cut into events.
    pub fn framing(self) -> Framing {
        self.spec().framing
    }

    /// Path (and query) appended to the target's `base_url` for `model`.
    pub fn path(self, model: &str) -> String {
        (self.spec().path)(model)
    }

    /// The auth style used when the target does not choose one.
    pub fn default_auth(self) -> AuthStyle {
        self.spec().default_auth
    }

    /// Headers every request of this dialect carries (besides auth and content type).
    pub fn fixed_headers(self) -> &'static [(&'static str, &'static str)] {
        self.spec().fixed_headers
    }

    /// Response media types accepted as a stream.
    pub fn content_types(self) -> &'static [&'static str] {
        self.spec().content_types
    }

    /// The streaming request body.
    pub fn build_body(self, req: &ProbeRequest<'_>) -> Value {
        (self.spec().build_body)(req)
    }

    /// True when a finish reason followed by a clean end of body completes a stream.
    pub fn finish_reason_ends_stream(self) -> bool {
        self.spec().finish_reason_ends_stream
    }

    /// Whether the API takes tools and streams tool calls.
    pub fn supports_tools(self) -> bool {
        self.spec().supports_tools
    }

    /// What completes a stream of this dialect, for error messages.
    pub fn end_marker(self) -> &'static str {
        self.spec().end_marker
    }

    /// A fresh decoder for one probe.
    pub fn decoder(self) -> Box<dyn StreamDecoder> {
        (self.spec().decoder)()
    }

    /// The simulator's base URL for this dialect, given the simulator's root URL.
    pub fn simulator_base_url(self, root: &str) -> String {
        format!(
            "{}{}",
            root.trim_end_matches('/'),
            self.spec().simulator_prefix
        )
    }
}

/// Percent-encodes `s` for use as one URL path segment (everything but RFC 3986 unreserved
/// characters), for dialects that put the model in the path.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Test helper: decodes `(event, data)` pairs with a fresh decoder of type `D`.
#[cfg(test)]
pub(crate) fn decode_all<D: StreamDecoder + Default>(
    events: &[(&str, &str)],
) -> Result<Vec<Signal>, DecodeError> {
    let mut d = D::default();
    let mut out = Vec::new();
    for (event, data) in events {
        d.decode(&FramedEvent { event, data }, &mut out)?;
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
    fn withheld_answers_are_reported_in_every_dialect_that_has_them() {
        let cases: [(DialectKind, &str, &str, &str, &str); 5] = [
            (
                DialectKind::OpenaiChat,
                "",
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}"#,
                "finish_reason",
                "content_filter",
            ),
            (
                DialectKind::AnthropicMessages,
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"refusal"},"usage":{"output_tokens":3}}"#,
                "stop_reason",
                "refusal",
            ),
            (
                DialectKind::BedrockConverse,
                "messageStop",
                r#"{"stopReason":"guardrail_intervened"}"#,
                "stopReason",
                "guardrail_intervened",
            ),
            (
                DialectKind::Gemini,
                "",
                r#"{"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"RECITATION"}]}"#,
                "finishReason",
                "RECITATION",
            ),
            (
                DialectKind::OpenaiResponses,
                "response.incomplete",
                r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"content_filter"}}}"#,
                "incomplete_details.reason",
                "content_filter",
            ),
        ];
        for (dialect, event, data, field, reason) in cases {
            let mut d = dialect.decoder();
            let mut out = Vec::new();
            d.decode(&FramedEvent { event, data }, &mut out)
                .unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
            assert!(
                out.contains(&Signal::FinishReason(reason.into())),
                "{dialect:?}: {out:?}"
            );
            assert!(
                out.contains(&Signal::Withheld {
                    field,
                    reason: reason.into()
                }),
                "{dialect:?}: {out:?}"
            );
        }
        // An ordinary stop is not withheld content.
        let mut d = DialectKind::OpenaiChat.decoder();
        let mut out = Vec::new();
        let stop = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        d.decode(
            &FramedEvent {
                event: "",
                data: stop,
            },
            &mut out,
        )
        .expect("decodes");
        assert_eq!(out, [Signal::FinishReason("stop".into())]);
    }

    #[test]
    fn model_names_are_one_path_segment() {
        assert_eq!(path_segment("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(
            path_segment("arn:aws:bedrock:us-east-1:1:inference-profile/x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx"
        );
        assert_eq!(path_segment("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn every_row_is_complete_and_names_are_unique() {
        let mut names = DialectKind::names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DialectKind::ALL.len());
        for d in DialectKind::ALL {
            assert_eq!(DialectKind::parse(d.as_str()), Some(d));
            assert!(!d.content_types().is_empty(), "{}", d.as_str());
            assert!(d.path("m").starts_with('/'), "{}", d.as_str());
            assert!(!d.end_marker().is_empty(), "{}", d.as_str());
        }
        let err = serde_json::from_value::<DialectKind>(serde_json::json!("openai-chatt"))
            .expect_err("unknown name");
        assert!(
            err.to_string()
                .starts_with("unknown dialect \"openai-chatt\", expected one of: openai-chat, "),
            "{err}"
        );
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
        assert_eq!(
            requested_output_limit(
                64,
                &extra(json!({"generationConfig": {"maxOutputTokens": 8192}}))
            ),
            Some(8192),
            "Gemini's nested limit"
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
