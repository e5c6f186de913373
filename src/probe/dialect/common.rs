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

/// The messages as `[{"role", "content"}]`, roles unchanged (OpenAI Chat, Ollama).
pub fn role_content_messages(messages: &[super::Message]) -> Value {
    messages
        .iter()
        .map(|m| {
            let mut o = Map::with_capacity(2);
            o.insert("role".into(), Value::from(m.role.as_str()));
            o.insert("content".into(), Value::from(m.content.as_str()));
            Value::Object(o)
        })
        .collect::<Vec<_>>()
        .into()
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
