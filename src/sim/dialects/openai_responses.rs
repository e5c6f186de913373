//! OpenAI Responses (`POST /v1/responses`) as the simulator writes it: named SSE events
//! (`event:` equal to the JSON `type`), a `sequence_number` on every event, reasoning as a
//! `reasoning` output item with `response.reasoning_text.delta` events (as vLLM streams it),
//! the answer as a `message` item with `response.output_text.delta` events, and
//! `response.completed` (or `response.incomplete` with `max_output_tokens` when the token cap
//! cut the answer) carrying `usage`. A tool call is a `function_call` item (`call_id`, `name`)
//! whose arguments stream as `response.function_call_arguments.delta` events. An in-stream failure is `response.failed` with
//! `response.error.code` `server_error`. No `[DONE]`. HTTP error bodies are OpenAI's, shared with
//! the chat API in `super::super::wire`.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::sim::wire::{Ctx, SimToolCall};

/// `event: TYPE` + `data: JSON`, the type read from the object.
fn event(v: &Value) -> Bytes {
    let ty = v.get("type").and_then(Value::as_str).unwrap_or("message");
    Bytes::from(format!("event: {ty}\ndata: {v}\n\n"))
}

/// Where a stream is: which output items are open and what they said so far.
#[derive(Debug, Default)]
pub struct Wire {
    seq: u64,
    /// Output index of the open reasoning item.
    reasoning_item: Option<u32>,
    /// Output index of the message item, once opened.
    message_item: Option<u32>,
    next_item: u32,
    reasoning: String,
    answer: String,
    reasoning_tokens: u32,
    answer_tokens: u32,
    /// Finished output items, for the final response object.
    output: Vec<Value>,
    /// Output index of the open function call item and the arguments so far.
    call_item: Option<u32>,
    arguments: String,
}

fn reasoning_id(c: &Ctx) -> String {
    format!("rs_{}", c.id.trim_start_matches("resp_"))
}

fn message_id(c: &Ctx) -> String {
    format!("msg_{}", c.id.trim_start_matches("resp_"))
}

/// The response object in a given state.
fn response(c: &Ctx, status: &str, output: &[Value], usage: Option<Value>) -> Value {
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": c.id, "object": "response", "created_at": c.created, "status": status,
        "model": c.model, "output": output, "error": null, "incomplete_details": incomplete,
        "usage": usage,
    })
}

fn usage(c: &Ctx, reasoning: u32, answer: u32) -> Value {
    let out = reasoning + answer;
    json!({
        "input_tokens": c.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": c.prompt_tokens + out,
    })
}

fn reasoning_item(c: &Ctx, text: Option<&str>) -> Value {
    let content = match text {
        Some(t) => json!([{"type": "reasoning_text", "text": t}]),
        None => json!([]),
    };
    json!({"id": reasoning_id(c), "type": "reasoning", "summary": [], "content": content})
}

fn call_item_id(c: &Ctx) -> String {
    format!("fc_{}", c.id.trim_start_matches("resp_"))
}

/// A `function_call` output item: in progress with no arguments yet, or completed.
fn call_item(c: &Ctx, call: &SimToolCall, arguments: Option<&str>) -> Value {
    let status = if arguments.is_some() {
        "completed"
    } else {
        "in_progress"
    };
    json!({"id": call_item_id(c), "type": "function_call", "status": status,
           "arguments": arguments.unwrap_or_default(), "call_id": call.id, "name": call.name})
}

fn message_item(c: &Ctx, text: Option<&str>) -> Value {
    let (status, content) = match text {
        Some(t) => (
            "completed",
            json!([{"type": "output_text", "text": t, "annotations": []}]),
        ),
        None => ("in_progress", json!([])),
    };
    json!({"id": message_id(c), "type": "message", "status": status, "role": "assistant",
           "content": content})
}

impl Wire {
    fn ev(&mut self, mut v: Value) -> Bytes {
        v["sequence_number"] = json!(self.seq);
        self.seq += 1;
        event(&v)
    }

    /// `response.created` and `response.in_progress`.
    pub fn open(&mut self, c: &Ctx) -> Vec<Bytes> {
        let r = response(c, "in_progress", &[], None);
        vec![
            self.ev(json!({"type": "response.created", "response": r})),
            self.ev(json!({"type": "response.in_progress", "response": r})),
        ]
    }

    fn open_reasoning(&mut self, c: &Ctx) -> Vec<Bytes> {
        let index = self.next_item;
        self.next_item += 1;
        self.reasoning_item = Some(index);
        vec![
            self.ev(
                json!({"type": "response.output_item.added", "output_index": index,
                           "item": reasoning_item(c, None)}),
            ),
            self.ev(
                json!({"type": "response.content_part.added", "item_id": reasoning_id(c),
                           "output_index": index, "content_index": 0,
                           "part": {"type": "reasoning_text", "text": ""}}),
            ),
        ]
    }

    fn close_reasoning(&mut self, c: &Ctx) -> Vec<Bytes> {
        let Some(index) = self.reasoning_item.take() else {
            return Vec::new();
        };
        let text = std::mem::take(&mut self.reasoning);
        let item = reasoning_item(c, Some(&text));
        let out = vec![
            self.ev(
                json!({"type": "response.reasoning_text.done", "item_id": reasoning_id(c),
                           "output_index": index, "content_index": 0, "text": text}),
            ),
            self.ev(
                json!({"type": "response.content_part.done", "item_id": reasoning_id(c),
                           "output_index": index, "content_index": 0,
                           "part": {"type": "reasoning_text", "text": text}}),
            ),
            self.ev(
                json!({"type": "response.output_item.done", "output_index": index,
                           "item": item}),
            ),
        ];
        self.output.push(item);
        out
    }

    fn open_message(&mut self, c: &Ctx) -> Vec<Bytes> {
        if self.message_item.is_some() {
            return Vec::new();
        }
        let mut out = self.close_reasoning(c);
        let index = self.next_item;
        self.next_item += 1;
        self.message_item = Some(index);
        out.push(self.ev(
            json!({"type": "response.output_item.added", "output_index": index,
                                "item": message_item(c, None)}),
        ));
        out.push(self.ev(json!({"type": "response.content_part.added",
                                "item_id": message_id(c), "output_index": index,
                                "content_index": 0,
                                "part": {"type": "output_text", "text": "", "annotations": []}})));
        out
    }

    /// One token: the events that open its item first, then its delta event.
    pub fn token(&mut self, c: &Ctx, reasoning: bool, text: &str) -> (Vec<Bytes>, Bytes) {
        if reasoning {
            let pre = if self.reasoning_item.is_none() && self.reasoning_tokens == 0 {
                self.open_reasoning(c)
            } else {
                Vec::new()
            };
            self.reasoning_tokens += 1;
            self.reasoning.push_str(text);
            let index = self.reasoning_item.unwrap_or(0);
            let tok = self.ev(json!({"type": "response.reasoning_text.delta",
                                     "item_id": reasoning_id(c), "output_index": index,
                                     "content_index": 0, "delta": text}));
            (pre, tok)
        } else {
            let pre = self.open_message(c);
            self.answer_tokens += 1;
            self.answer.push_str(text);
            let index = self.message_item.unwrap_or(0);
            let tok = self.ev(json!({"type": "response.output_text.delta",
                                     "item_id": message_id(c), "output_index": index,
                                     "content_index": 0, "delta": text, "logprobs": []}));
            (pre, tok)
        }
    }

    /// One piece of a function call's arguments: a `response.function_call_arguments.delta`,
    /// after the `function_call` item is added for the first piece.
    pub fn tool_token(
        &mut self,
        c: &Ctx,
        call: &SimToolCall,
        first: bool,
        piece: &str,
    ) -> (Vec<Bytes>, Bytes) {
        let mut pre = Vec::new();
        if first {
            pre.extend(self.close_reasoning(c));
            let index = self.next_item;
            self.next_item += 1;
            self.call_item = Some(index);
            pre.push(self.ev(
                json!({"type": "response.output_item.added", "output_index": index,
                                    "item": call_item(c, call, None)}),
            ));
        }
        self.answer_tokens += 1;
        self.arguments.push_str(piece);
        let index = self.call_item.unwrap_or(0);
        let tok = self.ev(json!({"type": "response.function_call_arguments.delta",
                                 "item_id": call_item_id(c), "output_index": index,
                                 "delta": piece}));
        (pre, tok)
    }

    /// Every event after the last token: the message item's (or function call item's)
    /// `.done` events, then `response.completed`, or `response.incomplete` when `length` (the
    /// token cap) ended it.
    pub fn close(&mut self, c: &Ctx, length: bool, called: bool) -> Bytes {
        let mut out = Vec::new();
        if let (true, Some(call), Some(index)) = (called, &c.tool_call, self.call_item) {
            let arguments = std::mem::take(&mut self.arguments);
            out.push(
                self.ev(json!({"type": "response.function_call_arguments.done",
                                    "item_id": call_item_id(c), "output_index": index,
                                    "arguments": arguments})),
            );
            let item = call_item(c, call, Some(&arguments));
            out.push(self.ev(
                json!({"type": "response.output_item.done", "output_index": index,
                                    "item": item}),
            ));
            self.output.push(item);
            return self.finish(c, length, out);
        }
        out.extend(self.open_message(c));
        let index = self.message_item.unwrap_or(0);
        let text = std::mem::take(&mut self.answer);
        let item = message_item(c, Some(&text));
        out.push(self.ev(
            json!({"type": "response.output_text.done", "item_id": message_id(c),
                                "output_index": index, "content_index": 0, "text": text,
                                "logprobs": []}),
        ));
        out.push(self.ev(json!({"type": "response.content_part.done",
                                "item_id": message_id(c), "output_index": index,
                                "content_index": 0,
                                "part": {"type": "output_text", "text": text,
                                         "annotations": []}})));
        out.push(self.ev(
            json!({"type": "response.output_item.done", "output_index": index,
                                "item": item}),
        ));
        self.output.push(item);
        self.finish(c, length, out)
    }

    /// `response.completed` (or `response.incomplete`) after `out`.
    fn finish(&mut self, c: &Ctx, length: bool, mut out: Vec<Bytes>) -> Bytes {
        let (ty, status) = if length {
            ("response.incomplete", "incomplete")
        } else {
            ("response.completed", "completed")
        };
        let u = usage(c, self.reasoning_tokens, self.answer_tokens);
        let r = response(c, status, &self.output, Some(u));
        out.push(self.ev(json!({"type": ty, "response": r})));
        Bytes::from(out.concat())
    }

    /// `response.failed` with a `server_error`.
    pub fn error(&mut self, c: &Ctx, message: &str) -> Bytes {
        let mut r = response(c, "failed", &self.output, None);
        r["error"] = json!({"code": "server_error", "message": message});
        self.ev(json!({"type": "response.failed", "response": r}))
    }

    /// A delta event whose data is cut inside the JSON.
    pub fn malformed(&mut self) -> Bytes {
        Bytes::from_static(
            b"event: response.output_text.delta\ndata: {\"type\": \"response.output_text.delta\", \"delta\": \n\n",
        )
    }
}

/// The whole response object of a non-streamed request.
pub fn whole(c: &Ctx, reasoning: &str, answer: &str, r: u32, a: u32, length: bool) -> Value {
    let mut output = Vec::new();
    if r > 0 {
        output.push(reasoning_item(c, Some(reasoning)));
    }
    output.push(message_item(c, Some(answer)));
    let status = if length { "incomplete" } else { "completed" };
    response(c, status, &output, Some(usage(c, r, a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Api;

    fn ctx() -> Ctx {
        Ctx {
            api: Api::OpenaiResponses,
            id: "resp_sim1".to_string(),
            created: 1_700_000_000,
            model: "m".to_string(),
            include_usage: false,
            prompt_tokens: 5,
            tool_call: None,
            answer_prefix: Vec::new(),
        }
    }

    fn events(b: &[Bytes]) -> Vec<Value> {
        let text: String = b.iter().map(|b| String::from_utf8_lossy(b)).collect();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut lines = e.lines();
                let name = lines.next().and_then(|l| l.strip_prefix("event: "));
                let data = lines.next().and_then(|l| l.strip_prefix("data: "));
                let v: Value = serde_json::from_str(data.unwrap_or("")).unwrap_or(Value::Null);
                assert_eq!(name, v["type"].as_str(), "{e}");
                v
            })
            .collect()
    }

    #[test]
    fn stream_with_reasoning_answer_and_usage() {
        let c = ctx();
        let mut w = Wire::default();
        let mut all = w.open(&c);
        for (reasoning, text) in [(true, " alpha"), (false, " one"), (false, " two")] {
            let (pre, tok) = w.token(&c, reasoning, text);
            all.extend(pre);
            all.push(tok);
        }
        all.push(w.close(&c, false, false));
        let evs = events(&all);
        let types: Vec<&str> = evs.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(
            types,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let seqs: Vec<u64> = evs
            .iter()
            .filter_map(|e| e["sequence_number"].as_u64())
            .collect();
        assert_eq!(seqs, (0..16).collect::<Vec<_>>());
        let last = &evs[15]["response"];
        assert_eq!(last["status"], "completed");
        assert_eq!(last["usage"]["output_tokens"], 3);
        assert_eq!(
            last["usage"]["output_tokens_details"]["reasoning_tokens"],
            1
        );
        assert_eq!(last["usage"]["input_tokens"], 5);
        assert_eq!(last["output"][1]["content"][0]["text"], " one two");
        assert_eq!(last["output"][0]["content"][0]["text"], " alpha");
    }

    #[test]
    fn truncated_failed_and_malformed() {
        let c = ctx();
        let mut w = Wire::default();
        let (_, _) = w.token(&c, false, " one");
        let evs = events(&[w.close(&c, true, false)]);
        let last = evs.last().cloned().unwrap_or_default();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        let evs = events(&[Wire::default().error(&c, "boom")]);
        assert_eq!(evs[0]["response"]["error"]["code"], "server_error");
        let m = Wire::default().malformed();
        assert!(String::from_utf8_lossy(&m).contains("\"delta\": \n\n"));
        let v = whole(&c, "", " one", 0, 1, false);
        assert_eq!(v["output"][0]["content"][0]["text"], " one");
        assert_eq!(v["usage"]["output_tokens"], 1);
    }
}
