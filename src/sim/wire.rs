//! The bytes the simulator sends, per API, apart from any timing: SSE events, whole JSON
//! answers and error bodies. Written here by hand (no SSE library) so the simulator shares no
//! framing code with the prober it tests.

use bytes::Bytes;
use serde_json::{json, Value};

use super::dialects::{self, gemini, openai_responses, Timing};
use super::sample::Plan;
use super::Api;
use crate::config::simulator::FaultKind;

/// Tokens sent before a `stream_aborted`, `timeout_idle` or `malformed_stream` fault strikes.
pub const FAULT_TOKENS: u32 = 3;

/// Answer tokens cycle through these words, each with a leading space.
pub const ANSWER_WORDS: [&str; 10] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];

/// Reasoning tokens cycle through these words, each with a leading space.
pub const REASONING_WORDS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

/// The text of answer token `i` (0-based).
pub fn answer_token(i: u32) -> String {
    format!(" {}", ANSWER_WORDS[i as usize % ANSWER_WORDS.len()])
}

/// The text of reasoning token `i` (0-based).
pub fn reasoning_token(i: u32) -> String {
    format!(" {}", REASONING_WORDS[i as usize % REASONING_WORDS.len()])
}

/// Why a request ended, as vLLM's `finished_reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The answer ended on its own.
    Stop,
    /// The request's token cap cut it short.
    Length,
    /// It did not end normally (fault, error or client gone).
    Abort,
}

impl FinishReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

/// One step of a streamed answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Bytes sent as soon as the previous step is done.
    Event(Bytes),
    /// One output token's event, sent at its scheduled time.
    Token(Bytes),
    /// Silence for `stall_duration`.
    Stall,
    /// The last bytes of the stream.
    End(Bytes, FinishReason),
    /// Cut the connection without ending the chunked body.
    Abort,
}

/// What a response says about itself.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The API.
    pub api: Api,
    /// The response id.
    pub id: String,
    /// Unix seconds at arrival.
    pub created: u64,
    /// The model the response reports.
    pub model: String,
    /// OpenAI: send a usage chunk (and `usage: null` on the others).
    pub include_usage: bool,
    /// Input tokens.
    pub prompt_tokens: u32,
    /// The tool call the answer makes instead of text, if any.
    pub tool_call: Option<SimToolCall>,
    /// Answer tokens sent before the usual words (a tool result repeated).
    pub answer_prefix: Vec<String>,
}

/// A tool call the simulator makes: its arguments stream as the answer's tokens, one piece
/// each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimToolCall {
    /// The call's id.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The whole arguments (JSON text).
    pub arguments: String,
    /// The arguments cut into the pieces streamed, one per token.
    pub pieces: Vec<String>,
}

/// The opaque `thoughtSignature` the simulator puts on a Gemini function call.
pub const SIM_SIGNATURE: &str = "c2ltdWxhdGVk";

impl Ctx {
    /// The text of answer token `i`: the prefix first, then the usual words.
    pub fn answer_text(&self, i: u32) -> String {
        match self.answer_prefix.get(i as usize) {
            Some(t) => t.clone(),
            None => answer_token(i),
        }
    }
}

/// `data: JSON` as one SSE event.
fn data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// `event: NAME` + `data: JSON` as one SSE event.
fn event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

const DONE: &str = "data: [DONE]\n\n";

/// The kinds of HTTP error the simulator answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400.
    InvalidRequest,
    /// 401.
    Authentication,
    /// 429.
    RateLimit,
    /// 500, and in-stream errors.
    Server,
    /// 503.
    Overloaded,
}

/// An error body shaped like the API's own.
pub fn error_json(api: Api, kind: ErrorKind, message: &str) -> Value {
    match api {
        Api::OpenaiChat | Api::OpenaiCompletions | Api::OpenaiResponses => {
            let (ty, code) = match kind {
                ErrorKind::InvalidRequest => ("invalid_request_error", Value::Null),
                ErrorKind::Authentication => ("invalid_request_error", json!("invalid_api_key")),
                ErrorKind::RateLimit => ("requests", json!("rate_limit_exceeded")),
                ErrorKind::Server => ("server_error", Value::Null),
                ErrorKind::Overloaded => ("server_error", json!("service_unavailable")),
            };
            json!({"error": {"message": message, "type": ty, "param": null, "code": code}})
        }
        Api::AnthropicMessages => {
            let ty = match kind {
                ErrorKind::InvalidRequest => "invalid_request_error",
                ErrorKind::Authentication => "authentication_error",
                ErrorKind::RateLimit => "rate_limit_error",
                ErrorKind::Server => "api_error",
                ErrorKind::Overloaded => "overloaded_error",
            };
            json!({"type": "error", "error": {"type": ty, "message": message}})
        }
        Api::Gemini => gemini::error_json(kind, message),
        Api::Ollama => dialects::ollama::error_json(kind, message),
        Api::BedrockConverse => dialects::bedrock_converse::error_json(kind, message),
    }
}

/// The plan's durations, before the real ones are known (replaced when the end is sent).
fn planned_timing(p: &Plan) -> Timing {
    let eval: std::time::Duration = p
        .itls
        .iter()
        .take(p.total().saturating_sub(1) as usize)
        .sum();
    Timing {
        total: p.ttft + eval,
        load: std::time::Duration::ZERO,
        prompt_eval: p.ttft,
        eval,
    }
}

/// Builds the events of one API, tracking which Anthropic content blocks are open.
struct Emitter<'a> {
    c: &'a Ctx,
    planned: Timing,
    reasoning_sent: u32,
    answer_sent: u32,
    thinking_open: bool,
    /// Index of the open text block, once opened.
    text_block: Option<u32>,
    /// Index of the open tool_use block (Anthropic), once opened.
    tool_block: Option<u32>,
    next_block: u32,
    responses: openai_responses::Wire,
    gemini: gemini::Wire,
}

impl<'a> Emitter<'a> {
    fn new(c: &'a Ctx, planned: Timing) -> Self {
        Emitter {
            c,
            planned,
            reasoning_sent: 0,
            answer_sent: 0,
            thinking_open: false,
            text_block: None,
            tool_block: None,
            next_block: 0,
            responses: openai_responses::Wire::default(),
            gemini: gemini::Wire::default(),
        }
    }

    fn usage_null(&self, mut v: Value) -> Value {
        if self.c.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    fn chat_chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        self.usage_null(json!({
            "id": self.c.id, "object": "chat.completion.chunk", "created": self.c.created,
            "model": self.c.model, "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }

    fn completion_chunk(&self, text: &str, finish: Option<&str>) -> Value {
        self.usage_null(json!({
            "id": self.c.id, "object": "text_completion", "created": self.c.created,
            "model": self.c.model, "system_fingerprint": null,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}],
        }))
    }

    fn completion_tokens(&self) -> u32 {
        self.reasoning_sent + self.answer_sent
    }

    fn openai_usage(&self) -> Value {
        let out = self.completion_tokens();
        let mut u = json!({
            "prompt_tokens": self.c.prompt_tokens,
            "completion_tokens": out,
            "total_tokens": self.c.prompt_tokens + out,
        });
        if self.reasoning_sent > 0 {
            u["completion_tokens_details"] = json!({"reasoning_tokens": self.reasoning_sent});
        }
        u
    }

    /// Events before the first token.
    fn open(&mut self) -> Vec<Bytes> {
        match self.c.api {
            Api::OpenaiChat => vec![data(
                &self.chat_chunk(json!({"role": "assistant", "content": ""}), None),
            )],
            // The legacy completions stream has no role chunk: the first event carries text.
            Api::OpenaiCompletions => Vec::new(),
            Api::AnthropicMessages => vec![event(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": self.c.id, "type": "message", "role": "assistant", "content": [],
                    "model": self.c.model, "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": self.c.prompt_tokens, "output_tokens": 1},
                }}),
            )],
            Api::OpenaiResponses => self.responses.open(self.c),
            Api::Gemini => self.gemini.open(),
            // Ollama's first line already carries text.
            Api::Ollama => Vec::new(),
            Api::BedrockConverse => dialects::bedrock_converse::open(),
        }
    }

    fn block_start(&mut self, block: Value) -> Vec<Bytes> {
        let index = self.next_block;
        self.next_block += 1;
        let mut out = vec![event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        )];
        // The real API sends one ping after the first block opens.
        if index == 0 {
            out.push(event("ping", &json!({"type": "ping"})));
        }
        out
    }

    fn close_thinking(&mut self) -> Vec<Bytes> {
        if !self.thinking_open {
            return Vec::new();
        }
        self.thinking_open = false;
        let index = self.next_block - 1;
        vec![
            event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": "c2ltdWxhdGVk"}}),
            ),
            event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ),
        ]
    }

    fn open_text(&mut self) -> Vec<Bytes> {
        if self.text_block.is_some() {
            return Vec::new();
        }
        let mut out = self.close_thinking();
        self.text_block = Some(self.next_block);
        out.extend(self.block_start(json!({"type": "text", "text": ""})));
        out
    }

    /// The next token: events to send first (block changes), then the token's own event.
    fn token(&mut self, reasoning: bool) -> (Vec<Bytes>, Bytes) {
        let mut pre = Vec::new();
        let tok = if reasoning {
            let text = reasoning_token(self.reasoning_sent);
            self.reasoning_sent += 1;
            match self.c.api {
                Api::Ollama => dialects::ollama::token(&self.c.model, self.c.created, &text, true),
                Api::BedrockConverse => {
                    let (before, tok) = dialects::bedrock_converse::token(
                        &text,
                        true,
                        self.reasoning_sent - 1,
                        self.answer_sent,
                    );
                    pre.extend(before);
                    tok
                }
                Api::OpenaiChat => data(&self.chat_chunk(json!({"reasoning_content": text}), None)),
                Api::OpenaiCompletions => data(&self.completion_chunk(&text, None)),
                Api::AnthropicMessages => {
                    if !self.thinking_open && self.reasoning_sent == 1 {
                        self.thinking_open = true;
                        pre.extend(self.block_start(json!({"type": "thinking", "thinking": ""})));
                    }
                    event(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": self.next_block - 1,
                                "delta": {"type": "thinking_delta", "thinking": text}}),
                    )
                }
                Api::OpenaiResponses => {
                    let (p, tok) = self.responses.token(self.c, true, &text);
                    pre.extend(p);
                    tok
                }
                Api::Gemini => self.gemini.token(self.c, true, &text).1,
            }
        } else if let Some(call) = &self.c.tool_call {
            let i = self.answer_sent;
            self.answer_sent += 1;
            let piece = call.pieces.get(i as usize).cloned().unwrap_or_default();
            let first = i == 0;
            let (before, tok) = self.tool_token(call, first, &piece);
            pre.extend(before);
            tok
        } else {
            let text = self.c.answer_text(self.answer_sent);
            self.answer_sent += 1;
            match self.c.api {
                Api::Ollama => dialects::ollama::token(&self.c.model, self.c.created, &text, false),
                Api::BedrockConverse => {
                    let (before, tok) = dialects::bedrock_converse::token(
                        &text,
                        false,
                        self.reasoning_sent,
                        self.answer_sent - 1,
                    );
                    pre.extend(before);
                    tok
                }
                Api::OpenaiChat => data(&self.chat_chunk(json!({"content": text}), None)),
                Api::OpenaiCompletions => data(&self.completion_chunk(&text, None)),
                Api::AnthropicMessages => {
                    pre.extend(self.open_text());
                    event(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": self.text_block,
                                "delta": {"type": "text_delta", "text": text}}),
                    )
                }
                Api::OpenaiResponses => {
                    let (p, tok) = self.responses.token(self.c, false, &text);
                    pre.extend(p);
                    tok
                }
                Api::Gemini => self.gemini.token(self.c, false, &text).1,
            }
        };
        (pre, tok)
    }

    /// One piece of a tool call's arguments, and the events that open the call before the
    /// first piece.
    fn tool_token(&mut self, call: &SimToolCall, first: bool, piece: &str) -> (Vec<Bytes>, Bytes) {
        let mut pre = Vec::new();
        let tok = match self.c.api {
            Api::OpenaiChat => {
                if first {
                    pre.push(data(&self.chat_chunk(
                        json!({"tool_calls": [{"index": 0, "id": call.id, "type": "function",
                                               "function": {"name": call.name, "arguments": ""}}]}),
                        None,
                    )));
                }
                data(&self.chat_chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    None,
                ))
            }
            Api::AnthropicMessages => {
                if first {
                    pre.extend(self.close_thinking());
                    self.tool_block = Some(self.next_block);
                    pre.extend(self.block_start(json!({"type": "tool_use", "id": call.id,
                                                       "name": call.name, "input": {}})));
                }
                event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": self.tool_block,
                            "delta": {"type": "input_json_delta", "partial_json": piece}}),
                )
            }
            Api::OpenaiResponses => {
                let (p, tok) = self.responses.tool_token(self.c, call, first, piece);
                pre.extend(p);
                tok
            }
            Api::Gemini => self.gemini.tool_call(self.c, call),
            Api::Ollama => dialects::ollama::tool_call(&self.c.model, self.c.created, call),
            Api::BedrockConverse => {
                let (before, tok) =
                    dialects::bedrock_converse::tool_token(call, first, piece, self.reasoning_sent);
                pre.extend(before);
                tok
            }
            // The completions API has no tools; the server never plans a call for it.
            Api::OpenaiCompletions => data(&self.completion_chunk(piece, None)),
        };
        (pre, tok)
    }

    /// Whether the answer was a tool call (at least one piece sent).
    fn called(&self) -> bool {
        self.c.tool_call.is_some() && self.answer_sent > 0
    }

    /// Every event after the last token, as one chunk.
    fn close(&mut self, finish: FinishReason) -> Bytes {
        let length = finish == FinishReason::Length;
        let mut out: Vec<Bytes> = Vec::new();
        match self.c.api {
            Api::OpenaiChat | Api::OpenaiCompletions => {
                let reason = match (length, self.called()) {
                    (true, _) => "length",
                    (false, true) => "tool_calls",
                    (false, false) => "stop",
                };
                let last = if self.c.api == Api::OpenaiChat {
                    self.chat_chunk(json!({}), Some(reason))
                } else {
                    self.completion_chunk("", Some(reason))
                };
                out.push(data(&last));
                if self.c.include_usage {
                    let object = if self.c.api == Api::OpenaiChat {
                        "chat.completion.chunk"
                    } else {
                        "text_completion"
                    };
                    out.push(data(&json!({
                        "id": self.c.id, "object": object, "created": self.c.created,
                        "model": self.c.model, "system_fingerprint": null, "choices": [],
                        "usage": self.openai_usage(),
                    })));
                }
                out.push(Bytes::from_static(DONE.as_bytes()));
            }
            Api::AnthropicMessages => {
                let index = match self.tool_block {
                    Some(i) => i,
                    None => {
                        out.extend(self.open_text());
                        self.text_block.unwrap_or(0)
                    }
                };
                out.push(event(
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": index}),
                ));
                let reason = match (length, self.called()) {
                    (true, _) => "max_tokens",
                    (false, true) => "tool_use",
                    (false, false) => "end_turn",
                };
                out.push(event(
                    "message_delta",
                    &json!({"type": "message_delta",
                            "delta": {"stop_reason": reason, "stop_sequence": null},
                            "usage": {"output_tokens": self.completion_tokens()}}),
                ));
                out.push(event("message_stop", &json!({"type": "message_stop"})));
            }
            Api::OpenaiResponses => out.push(self.responses.close(self.c, length, self.called())),
            Api::Gemini => out.push(self.gemini.close(self.c, length)),
            Api::Ollama => out.push(dialects::ollama::close(
                &self.c.model,
                self.c.created,
                finish,
                self.c.prompt_tokens,
                self.completion_tokens(),
                &self.planned,
            )),
            Api::BedrockConverse => out.push(dialects::bedrock_converse::close(
                finish,
                self.reasoning_sent,
                self.answer_sent,
                self.called(),
                self.c.prompt_tokens,
                &self.planned,
            )),
        }
        Bytes::from(out.concat())
    }

    fn error(&mut self) -> Bytes {
        let msg = "simulated error while generating";
        let body = error_json(self.c.api, ErrorKind::Server, msg);
        match self.c.api {
            Api::OpenaiChat | Api::OpenaiCompletions => data(&body),
            Api::AnthropicMessages => event("error", &body),
            Api::OpenaiResponses => self.responses.error(self.c, msg),
            Api::Gemini => self.gemini.error(msg),
            Api::Ollama => dialects::ollama::error(msg),
            Api::BedrockConverse => dialects::bedrock_converse::error(msg),
        }
    }

    fn malformed(&mut self) -> Bytes {
        match self.c.api {
            Api::OpenaiChat | Api::OpenaiCompletions => {
                Bytes::from(format!("data: {{\"id\": \"{}\", \"choices\": [\n\n", self.c.id))
            }
            Api::AnthropicMessages => Bytes::from_static(
                b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"delta\": {\n\n",
            ),
            Api::OpenaiResponses => self.responses.malformed(),
            Api::Gemini => self.gemini.malformed(),
            Api::Ollama => dialects::ollama::malformed(&self.c.model),
            Api::BedrockConverse => dialects::bedrock_converse::malformed(),
        }
    }
}

/// The steps of a streamed answer to a request with this plan.
pub fn script(c: &Ctx, p: &Plan) -> Vec<Step> {
    let mut e = Emitter::new(c, planned_timing(p));
    let mut steps: Vec<Step> = e.open().into_iter().map(Step::Event).collect();
    if p.fault == Some(FaultKind::ApiError) {
        steps.push(Step::End(e.error(), FinishReason::Abort));
        return steps;
    }
    let total = p.total();
    let strike = match p.fault {
        Some(FaultKind::StreamAborted | FaultKind::TimeoutIdle | FaultKind::MalformedStream) => {
            Some(FAULT_TOKENS.min(total))
        }
        _ => None,
    };
    let mut finish = if p.truncated {
        FinishReason::Length
    } else {
        FinishReason::Stop
    };
    for t in 0..=total {
        if Some(t) == strike {
            match p.fault {
                Some(FaultKind::StreamAborted) => {
                    steps.push(Step::Abort);
                    return steps;
                }
                Some(FaultKind::TimeoutIdle) => steps.push(Step::Stall),
                _ => {
                    steps.push(Step::Event(e.malformed()));
                    finish = FinishReason::Abort;
                    break;
                }
            }
        }
        if t == total {
            break;
        }
        let (pre, tok) = e.token(t < p.reasoning);
        steps.extend(pre.into_iter().map(Step::Event));
        steps.push(Step::Token(tok));
    }
    let reason = if finish == FinishReason::Abort {
        FinishReason::Stop
    } else {
        finish
    };
    steps.push(Step::End(e.close(reason), finish));
    steps
}

/// A non-streamed answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Whole {
    /// A JSON body (the answer, or an in-band error object for `api_error`).
    Json(Value, FinishReason),
    /// A body cut short: sent as is; `then_abort` also cuts the connection afterwards.
    Partial {
        /// The bytes sent.
        text: String,
        /// Cut the connection after them.
        then_abort: bool,
    },
}

/// The whole (non-streamed) answer to a request with this plan.
pub fn whole(c: &Ctx, p: &Plan) -> Whole {
    if p.fault == Some(FaultKind::ApiError) {
        let body = error_json(c.api, ErrorKind::Server, "simulated error while generating");
        return Whole::Json(body, FinishReason::Abort);
    }
    let reasoning: String = (0..p.reasoning).map(reasoning_token).collect();
    let answer: String = (0..p.answer).map(|i| c.answer_text(i)).collect();
    let finish = if p.truncated {
        FinishReason::Length
    } else {
        FinishReason::Stop
    };
    let out = p.total();
    let body = match c.api {
        Api::OpenaiChat => {
            let mut message = json!({"role": "assistant", "content": answer});
            if p.reasoning > 0 {
                message["reasoning_content"] = json!(reasoning);
            }
            let mut usage = json!({"prompt_tokens": c.prompt_tokens, "completion_tokens": out,
                                   "total_tokens": c.prompt_tokens + out});
            if p.reasoning > 0 {
                usage["completion_tokens_details"] = json!({"reasoning_tokens": p.reasoning});
            }
            json!({
                "id": c.id, "object": "chat.completion", "created": c.created, "model": c.model,
                "system_fingerprint": null,
                "choices": [{"index": 0, "message": message, "logprobs": null,
                             "finish_reason": finish.as_str()}],
                "usage": usage,
            })
        }
        Api::OpenaiCompletions => json!({
            "id": c.id, "object": "text_completion", "created": c.created, "model": c.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "text": answer, "logprobs": null,
                         "finish_reason": finish.as_str()}],
            "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": out,
                      "total_tokens": c.prompt_tokens + out},
        }),
        Api::AnthropicMessages => {
            let mut content = Vec::new();
            if p.reasoning > 0 {
                content.push(json!({"type": "thinking", "thinking": reasoning,
                                    "signature": "c2ltdWxhdGVk"}));
            }
            content.push(json!({"type": "text", "text": answer}));
            json!({
                "id": c.id, "type": "message", "role": "assistant", "model": c.model,
                "content": content,
                "stop_reason": if p.truncated { "max_tokens" } else { "end_turn" },
                "stop_sequence": null,
                "usage": {"input_tokens": c.prompt_tokens, "output_tokens": out},
            })
        }
        Api::OpenaiResponses => {
            openai_responses::whole(c, &reasoning, &answer, p.reasoning, p.answer, p.truncated)
        }
        Api::Gemini => gemini::whole(c, &reasoning, &answer, p.reasoning, p.answer, p.truncated),
        Api::Ollama => dialects::ollama::whole(
            &c.model,
            c.created,
            &reasoning,
            &answer,
            finish,
            c.prompt_tokens,
            out,
            &planned_timing(p),
        ),
        Api::BedrockConverse => {
            dialects::bedrock_converse::whole(&reasoning, &answer, finish, c.prompt_tokens, out)
        }
    };
    match p.fault {
        Some(FaultKind::MalformedStream) => {
            let text = body.to_string();
            let cut = text
                .find("\"choices\"")
                .or_else(|| text.find("\"content\""));
            let end = cut.map_or(text.len() / 2, |i| i + 12);
            Whole::Partial {
                text: text[..end.min(text.len())].to_string(),
                then_abort: false,
            }
        }
        Some(FaultKind::StreamAborted) => {
            let text = body.to_string();
            Whole::Partial {
                text: text[..text.len() / 2].to_string(),
                then_abort: true,
            }
        }
        _ => Whole::Json(body, finish),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx(api: Api, include_usage: bool) -> Ctx {
        Ctx {
            api,
            id: "id-1".to_string(),
            created: 1_700_000_000,
            model: "m".to_string(),
            include_usage,
            prompt_tokens: 5,
            tool_call: None,
            answer_prefix: Vec::new(),
        }
    }

    fn plan(reasoning: u32, answer: u32, fault: Option<FaultKind>) -> Plan {
        Plan {
            fault,
            ttft: Duration::ZERO,
            itls: Vec::new(),
            reasoning,
            answer,
            truncated: false,
        }
    }

    /// The stream as text, with `|` before each token step and markers for the others.
    fn render(steps: &[Step]) -> String {
        let mut s = String::new();
        for st in steps {
            match st {
                Step::Event(b) => s.push_str(&String::from_utf8_lossy(b)),
                Step::Token(b) => {
                    s.push('|');
                    s.push_str(&String::from_utf8_lossy(b));
                }
                Step::Stall => s.push_str("<stall>\n"),
                Step::End(b, f) => {
                    s.push_str(&String::from_utf8_lossy(b));
                    s.push_str(&format!("<end {}>\n", f.as_str()));
                }
                Step::Abort => s.push_str("<abort>\n"),
            }
        }
        s
    }

    #[test]
    fn openai_chat_stream_with_reasoning_and_usage() {
        let steps = script(&ctx(Api::OpenaiChat, true), &plan(1, 2, None));
        let tail = r#""created":1700000000,"id":"id-1","model":"m","object":"chat.completion.chunk","system_fingerprint":null"#;
        let chunk = |delta: &str, finish: &str| {
            format!(
                "data: {{\"choices\":[{{\"delta\":{delta},\"finish_reason\":{finish},\"index\":0,\"logprobs\":null}}],{tail},\"usage\":null}}\n\n"
            )
        };
        let expected = [
            chunk(r#"{"content":"","role":"assistant"}"#, "null"),
            format!("|{}", chunk(r#"{"reasoning_content":" alpha"}"#, "null")),
            format!("|{}", chunk(r#"{"content":" one"}"#, "null")),
            format!("|{}", chunk(r#"{"content":" two"}"#, "null")),
            chunk("{}", r#""stop""#),
            format!("data: {{\"choices\":[],{tail},\"usage\":{{\"completion_tokens\":3,\"completion_tokens_details\":{{\"reasoning_tokens\":1}},\"prompt_tokens\":5,\"total_tokens\":8}}}}\n\n"),
            "data: [DONE]\n\n<end stop>\n".to_string(),
        ]
        .concat();
        assert_eq!(render(&steps), expected);
    }

    #[test]
    fn openai_completions_stream_without_usage() {
        let mut p = plan(0, 2, None);
        p.truncated = true;
        let steps = script(&ctx(Api::OpenaiCompletions, false), &p);
        let tail = r#""created":1700000000,"id":"id-1","model":"m","object":"text_completion","system_fingerprint":null"#;
        let chunk = |text: &str, finish: &str| {
            format!(
                "data: {{\"choices\":[{{\"finish_reason\":{finish},\"index\":0,\"logprobs\":null,\"text\":\"{text}\"}}],{tail}}}\n\n"
            )
        };
        let expected = [
            format!("|{}", chunk(" one", "null")),
            format!("|{}", chunk(" two", "null")),
            chunk("", r#""length""#),
            "data: [DONE]\n\n<end length>\n".to_string(),
        ]
        .concat();
        assert_eq!(render(&steps), expected);
    }

    #[test]
    fn anthropic_stream_with_thinking() {
        let steps = script(&ctx(Api::AnthropicMessages, false), &plan(2, 1, None));
        let expected = "event: message_start\ndata: {\"message\":{\"content\":[],\"id\":\"id-1\",\"model\":\"m\",\"role\":\"assistant\",\"stop_reason\":null,\"stop_sequence\":null,\"type\":\"message\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}},\"type\":\"message_start\"}\n\n\
            event: content_block_start\ndata: {\"content_block\":{\"thinking\":\"\",\"type\":\"thinking\"},\"index\":0,\"type\":\"content_block_start\"}\n\n\
            event: ping\ndata: {\"type\":\"ping\"}\n\n\
            |event: content_block_delta\ndata: {\"delta\":{\"thinking\":\" alpha\",\"type\":\"thinking_delta\"},\"index\":0,\"type\":\"content_block_delta\"}\n\n\
            |event: content_block_delta\ndata: {\"delta\":{\"thinking\":\" beta\",\"type\":\"thinking_delta\"},\"index\":0,\"type\":\"content_block_delta\"}\n\n\
            event: content_block_delta\ndata: {\"delta\":{\"signature\":\"c2ltdWxhdGVk\",\"type\":\"signature_delta\"},\"index\":0,\"type\":\"content_block_delta\"}\n\n\
            event: content_block_stop\ndata: {\"index\":0,\"type\":\"content_block_stop\"}\n\n\
            event: content_block_start\ndata: {\"content_block\":{\"text\":\"\",\"type\":\"text\"},\"index\":1,\"type\":\"content_block_start\"}\n\n\
            |event: content_block_delta\ndata: {\"delta\":{\"text\":\" one\",\"type\":\"text_delta\"},\"index\":1,\"type\":\"content_block_delta\"}\n\n\
            event: content_block_stop\ndata: {\"index\":1,\"type\":\"content_block_stop\"}\n\n\
            event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}}\n\n\
            event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n<end stop>\n";
        assert_eq!(render(&steps), expected);
    }

    #[test]
    fn anthropic_empty_response_has_no_deltas() {
        let steps = script(
            &ctx(Api::AnthropicMessages, false),
            &plan(0, 0, Some(FaultKind::EmptyResponse)),
        );
        let text = render(&steps);
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(render(&steps).contains("\"usage\":{\"output_tokens\":0}"));
    }

    #[test]
    fn fault_scripts() {
        let c = ctx(Api::OpenaiChat, true);
        let kinds = |steps: &[Step]| -> String {
            steps
                .iter()
                .map(|s| match s {
                    Step::Event(_) => 'e',
                    Step::Token(_) => 't',
                    Step::Stall => 's',
                    Step::End(..) => 'E',
                    Step::Abort => 'A',
                })
                .collect()
        };
        let s = script(&c, &plan(0, 5, Some(FaultKind::StreamAborted)));
        assert_eq!(kinds(&s), "etttA");
        let s = script(&c, &plan(0, 5, Some(FaultKind::TimeoutIdle)));
        assert_eq!(kinds(&s), "etttsttE");
        let s = script(&c, &plan(0, 1, Some(FaultKind::TimeoutIdle)));
        assert_eq!(kinds(&s), "etsE");
        let s = script(&c, &plan(0, 5, Some(FaultKind::MalformedStream)));
        assert_eq!(kinds(&s), "ettteE");
        assert!(render(&s).contains("data: {\"id\": \"id-1\", \"choices\": [\n\n"));
        assert!(render(&s).contains("\"completion_tokens\":3"));
        assert!(render(&s).ends_with("<end abort>\n"));
        let s = script(&c, &plan(0, 5, Some(FaultKind::ApiError)));
        assert_eq!(kinds(&s), "eE");
        assert_eq!(
            render(&s).lines().nth(2),
            Some(
                r#"data: {"error":{"code":null,"message":"simulated error while generating","param":null,"type":"server_error"}}"#
            )
        );
        let s = script(
            &ctx(Api::AnthropicMessages, false),
            &plan(0, 5, Some(FaultKind::ApiError)),
        );
        assert!(render(&s).contains(
            "event: error\ndata: {\"error\":{\"message\":\"simulated error while generating\",\"type\":\"api_error\"},\"type\":\"error\"}\n\n"
        ));
    }

    #[test]
    fn whole_answers() {
        let c = ctx(Api::OpenaiChat, false);
        let Whole::Json(v, f) = whole(&c, &plan(1, 3, None)) else {
            panic!("expected JSON");
        };
        assert_eq!(f, FinishReason::Stop);
        assert_eq!(v["choices"][0]["message"]["content"], " one two three");
        assert_eq!(v["choices"][0]["message"]["reasoning_content"], " alpha");
        assert_eq!(v["usage"]["completion_tokens"], 4);
        let c = ctx(Api::AnthropicMessages, false);
        let Whole::Json(v, _) = whole(&c, &plan(0, 2, None)) else {
            panic!("expected JSON");
        };
        assert_eq!(v["content"][0]["text"], " one two");
        assert_eq!(v["usage"]["output_tokens"], 2);
        let Whole::Partial { text, then_abort } =
            whole(&c, &plan(0, 2, Some(FaultKind::MalformedStream)))
        else {
            panic!("expected a partial body");
        };
        assert!(!then_abort);
        assert!(serde_json::from_str::<Value>(&text).is_err());
    }

    #[test]
    fn token_words_cycle() {
        assert_eq!(answer_token(0), " one");
        assert_eq!(answer_token(10), " one");
        assert_eq!(answer_token(12), " three");
        assert_eq!(reasoning_token(5), " beta");
    }

    fn tool_ctx(api: Api) -> Ctx {
        let mut c = ctx(api, false);
        c.tool_call = Some(SimToolCall {
            id: "call_9".to_string(),
            name: "f".to_string(),
            arguments: r#"{"a":1}"#.to_string(),
            pieces: vec![r#"{"a""#.to_string(), ":1}".to_string()],
        });
        c
    }

    #[test]
    fn openai_chat_tool_call_stream() {
        let steps = script(&tool_ctx(Api::OpenaiChat), &plan(0, 2, None));
        let tail = r#""created":1700000000,"id":"id-1","model":"m","object":"chat.completion.chunk","system_fingerprint":null"#;
        let chunk = |delta: &str, finish: &str| {
            format!(
                "data: {{\"choices\":[{{\"delta\":{delta},\"finish_reason\":{finish},\"index\":0,\"logprobs\":null}}],{tail}}}\n\n"
            )
        };
        let expected = [
            chunk(r#"{"content":"","role":"assistant"}"#, "null"),
            chunk(
                r#"{"tool_calls":[{"function":{"arguments":"","name":"f"},"id":"call_9","index":0,"type":"function"}]}"#,
                "null",
            ),
            format!(
                "|{}",
                chunk(r#"{"tool_calls":[{"function":{"arguments":"{\"a\""},"index":0}]}"#, "null")
            ),
            format!(
                "|{}",
                chunk(r#"{"tool_calls":[{"function":{"arguments":":1}"},"index":0}]}"#, "null")
            ),
            chunk("{}", r#""tool_calls""#),
            "data: [DONE]\n\n<end stop>\n".to_string(),
        ]
        .concat();
        assert_eq!(render(&steps), expected);
    }

    #[test]
    fn anthropic_tool_use_stream() {
        let steps = script(&tool_ctx(Api::AnthropicMessages), &plan(1, 2, None));
        let text = render(&steps);
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim_start_matches('|').strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(text.contains(
            r#"{"content_block":{"id":"call_9","input":{},"name":"f","type":"tool_use"},"index":1,"type":"content_block_start"}"#
        ));
        assert!(
            text.contains(r#""delta":{"partial_json":":1}","type":"input_json_delta"},"index":1"#)
        );
        assert!(text.contains(r#""stop_reason":"tool_use""#));
    }

    #[test]
    fn an_empty_response_makes_no_call_and_answers_start_with_the_prefix() {
        let steps = script(
            &tool_ctx(Api::OpenaiChat),
            &plan(0, 0, Some(FaultKind::EmptyResponse)),
        );
        let text = render(&steps);
        assert!(!text.contains("tool_calls"), "{text}");
        assert!(text.contains(r#""finish_reason":"stop""#));
        let mut c = ctx(Api::OpenaiChat, false);
        c.answer_prefix = vec!["17".to_string(), " C".to_string()];
        let Whole::Json(v, _) = whole(&c, &plan(0, 4, None)) else {
            panic!("expected JSON");
        };
        assert_eq!(v["choices"][0]["message"]["content"], "17 C three four");
    }
}
