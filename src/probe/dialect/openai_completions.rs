//! OpenAI legacy Completions (`POST {base_url}/completions`), still served by vLLM, SGLang,
//! TGI and llama.cpp for raw-prompt probes.
//!
//! The prompt is the scenario's messages flattened to plain text: the contents of the `system`
//! messages first, then the other messages' contents in order, all joined by a blank line
//! (`"\n\n"`), without role labels or a chat template. Decoding is the chat dialect's (see
//! [`super::openai_chat`]) with `choices[].text` as answer text.

use serde_json::{Map, Value};

use super::common::merge_extra;
use super::openai_chat::{insert_openai_common, Mode, State, OPENAI_END_MARKER};
use super::{
    AuthStyle, DecodeError, Dialect, FramedEvent, Framing, Message, ProbeRequest, Signal,
    StreamDecoder,
};

/// The dialect's row: `POST {base_url}/completions`, SSE, bearer auth.
pub static DIALECT: Dialect = Dialect {
    name: "openai-completions",
    framing: Framing::Sse,
    path: |_| "/completions".to_string(),
    default_auth: AuthStyle::Bearer,
    fixed_headers: &[],
    content_types: &["text/event-stream"],
    build_body,
    decoder: || Box::new(Decoder::default()),
    finish_reason_ends_stream: true,
    end_marker: OPENAI_END_MARKER,
    reports_model: true,
    supports_tools: false,
    simulator_prefix: "/v1",
};

/// Builds the streaming request body.
pub fn build_body(req: &ProbeRequest<'_>) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), Value::from(req.model));
    body.insert("prompt".into(), Value::from(flatten_prompt(req.messages)));
    insert_openai_common(&mut body, req);
    merge_extra(&mut body, req.extra_body);
    Value::Object(body)
}

/// The messages as one prompt: system contents first, then the rest, joined by blank lines.
pub fn flatten_prompt(messages: &[Message]) -> String {
    let system = messages.iter().filter(|m| m.role == "system");
    let rest = messages.iter().filter(|m| m.role != "system");
    let mut prompt = String::new();
    for m in system.chain(rest) {
        if !prompt.is_empty() {
            prompt.push_str("\n\n");
        }
        prompt.push_str(&m.content);
    }
    prompt
}

/// Per-probe decoding state.
#[derive(Default)]
pub struct Decoder {
    state: State,
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, event: &FramedEvent<'_>, out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        self.state.decode(Mode::Completions, event, out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::OutputKind;
    use super::*;

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
            ..Default::default()
        }
    }

    #[test]
    fn flattens_system_first_then_turns() {
        let m = [
            msg("user", "Q1"),
            msg("system", "Be brief."),
            msg("assistant", "A1"),
            msg("user", "Q2"),
        ];
        assert_eq!(flatten_prompt(&m), "Be brief.\n\nQ1\n\nA1\n\nQ2");
        assert_eq!(flatten_prompt(&[msg("user", "Hi")]), "Hi");
        assert_eq!(flatten_prompt(&[]), "");
    }

    #[test]
    fn text_is_answer_and_delta_is_not_read() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let events = [
            r#"{"object":"text_completion","model":"m","choices":[{"index":0,"text":" Hello","logprobs":null,"finish_reason":null}]}"#,
            r#"{"model":"m","choices":[{"index":0,"text":"","delta":{"content":"x"},"finish_reason":"stop"}]}"#,
            r#"{"model":"m","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#,
            "[DONE]",
        ];
        for data in events {
            assert_eq!(d.decode(&FramedEvent { event: "", data }, &mut out), Ok(()));
        }
        assert_eq!(
            out,
            vec![
                Signal::Model("m".into()),
                Signal::Output {
                    kind: OutputKind::Answer,
                    text: " Hello".into()
                },
                Signal::FinishReason("stop".into()),
                Signal::Usage(super::super::UsageReport {
                    source: super::super::TokenSource::Usage,
                    input_tokens: Some(4),
                    output_tokens: Some(2),
                    cached_input_tokens: None,
                    reasoning_tokens: None,
                }),
                Signal::Done,
            ]
        );
        let err = d.decode(
            &FramedEvent {
                event: "",
                data: "nope",
            },
            &mut out,
        );
        assert!(matches!(
            err,
            Err(DecodeError {
                dialect: "openai-completions",
                ..
            })
        ));
    }
}
