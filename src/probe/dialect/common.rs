//! Helpers every dialect may use: body merging, error signals, bounded text.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ErrorCondition, Signal};

/// Merges `extra_body` at the top level, overriding. A `null` value removes the field, so a
/// scenario can drop a default (e.g. `max_tokens: null` with `max_completion_tokens: 64` for
/// models that reject `max_tokens`).
pub fn merge_extra(body: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (k, v) in extra {
        if v.is_null() {
            body.remove(k);
        } else {
            body.insert(k.clone(), v.clone());
        }
    }
}

/// The messages as `[{"role", "content"}]`, roles unchanged (OpenAI Chat, Ollama), with the
/// OpenAI Chat tool fields: an assistant message's `tool_calls`
/// (`[{id, type: "function", function: {name, arguments}}]`, arguments as a string; `content`
/// `null` when the turn is only calls) and a tool message's `tool_call_id`.
pub fn role_content_messages(messages: &[super::Message]) -> Value {
    messages
        .iter()
        .map(|m| {
            let mut o = Map::with_capacity(3);
            o.insert("role".into(), Value::from(m.role.as_str()));
            if m.tool_calls.is_empty() || !m.content.is_empty() {
                o.insert("content".into(), Value::from(m.content.as_str()));
            } else {
                o.insert("content".into(), Value::Null);
            }
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let mut f = Map::with_capacity(2);
                        f.insert("name".into(), Value::from(c.name.as_str()));
                        f.insert("arguments".into(), Value::from(c.arguments.as_str()));
                        let mut call = Map::with_capacity(3);
                        call.insert("id".into(), Value::from(c.id.as_str()));
                        call.insert("type".into(), Value::from("function"));
                        call.insert("function".into(), Value::Object(f));
                        Value::Object(call)
                    })
                    .collect();
                o.insert("tool_calls".into(), Value::Array(calls));
            }
            if m.role == "tool" {
                if let Some(id) = &m.tool_call_id {
                    o.insert("tool_call_id".into(), Value::from(id.as_str()));
                }
            }
            Value::Object(o)
        })
        .collect::<Vec<_>>()
        .into()
}

/// A tool call's arguments as a JSON object, for APIs that take them as an object (Anthropic
/// `input`, Gemini `args`, Ollama `arguments`, Bedrock `input`): the streamed text parsed, or
/// `{}` when it is empty, invalid or not an object (the model's text is then lost, but the
/// request stays valid).
pub fn arguments_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    }
}

/// OpenAI-style tool definitions (OpenAI Chat, Ollama):
/// `[{"type": "function", "function": {name, description, parameters}}]`.
pub fn function_tools(tools: &[super::ToolSpec]) -> Value {
    tools
        .iter()
        .map(|t| {
            let mut f = Map::with_capacity(3);
            f.insert("name".into(), Value::from(t.name.as_str()));
            if !t.description.is_empty() {
                f.insert("description".into(), Value::from(t.description.as_str()));
            }
            f.insert("parameters".into(), t.parameters.clone());
            let mut o = Map::with_capacity(2);
            o.insert("type".into(), Value::from("function"));
            o.insert("function".into(), Value::Object(f));
            Value::Object(o)
        })
        .collect::<Vec<_>>()
        .into()
}

/// The tools to declare for a request: the offered ones, or, when none are offered but the
/// history holds tool calls (APIs that reject tool history without tool definitions:
/// Anthropic, Bedrock), one permissive definition per tool name called, in order of first call.
pub fn declared_tools(req: &super::ProbeRequest<'_>) -> Vec<super::ToolSpec> {
    if !req.tools.is_empty() {
        return req.tools.to_vec();
    }
    let mut out: Vec<super::ToolSpec> = Vec::new();
    let names = req.messages.iter().flat_map(|m| {
        m.tool_calls
            .iter()
            .map(|c| c.name.as_str())
            .chain(m.tool_name.as_deref())
    });
    for name in names {
        if !name.is_empty() && !out.iter().any(|t| t.name == name) {
            let mut schema = Map::with_capacity(1);
            schema.insert("type".into(), Value::from("object"));
            out.push(super::ToolSpec {
                name: name.to_string(),
                description: String::new(),
                parameters: Value::Object(schema),
            });
        }
    }
    out
}

/// A one-key JSON object.
pub fn obj1(key: &str, value: Value) -> Value {
    let mut o = Map::with_capacity(1);
    o.insert(key.into(), value);
    Value::Object(o)
}

/// A JSON string that borrows from the event when it has no escapes.
#[derive(Deserialize)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// The signal for an answer the server withheld because of its content (see
/// [`Signal::Withheld`]).
pub fn content_withheld(field: &'static str, reason: &str) -> Signal {
    Signal::Withheld {
        field,
        reason: truncate(reason, 60).to_string(),
    }
}

/// Longest error message kept, in bytes; server messages can echo large inputs.
pub const MAX_ERROR_MESSAGE: usize = 300;

/// Builds an error signal from the usual `{message, type, code}` fields.
pub fn stream_error(message: Option<&str>, kind: Option<&str>, code: Option<&Value>) -> Signal {
    let code_text = match code {
        Some(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
        Some(Value::Number(n)) => Some(Cow::Owned(n.to_string())),
        _ => None,
    };
    let condition =
        ErrorCondition::of_error_words([kind, code_text.as_deref()].into_iter().flatten());
    let kind = kind.filter(|k| !k.is_empty());
    let code = code_text.as_deref().filter(|c| !c.is_empty());
    let mut text = match (kind, code) {
        (Some(k), Some(c)) => format!("{k} ({c})"),
        (Some(k), None) => k.to_string(),
        (None, Some(c)) => c.to_string(),
        (None, None) => String::new(),
    };
    match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(truncate(m, MAX_ERROR_MESSAGE));
        }
        None if text.is_empty() => text.push_str("unknown error"),
        None => {}
    }
    Signal::Error {
        kind: condition,
        message: text,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_borrows_unless_escaped() {
        let plain: Result<Text<'_>, _> = serde_json::from_str(r#""abc""#);
        assert!(matches!(plain, Ok(Text(Cow::Borrowed("abc")))));
        let escaped: Result<Text<'_>, _> = serde_json::from_str(r#""a\nb""#);
        assert!(matches!(escaped, Ok(Text(Cow::Owned(ref s))) if s == "a\nb"));
    }
}
