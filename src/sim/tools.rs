//! Tool calls in the simulator: arguments made up from a tool's JSON schema, the pieces they
//! stream in, and the answer tokens that repeat a tool's result.

use serde_json::{Map, Number, Value};

/// Deepest schema nesting followed; deeper values are `null`-free placeholders (`{}`, `"sim"`).
const MAX_DEPTH: usize = 8;

/// Most items generated for one array (`minItems` above it is not met: a bounded answer wins).
const MAX_ITEMS: u64 = 16;

/// Most values (of any kind, nested ones included) in one array of generated arguments.
const MAX_NODES: usize = 1024;

/// Values in `v`, itself included.
fn nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(nodes).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(nodes).sum::<usize>(),
        _ => 1,
    }
}

/// Longest string generated.
const MAX_STRING: u64 = 256;

/// Most characters of a tool result repeated at the start of the answer.
pub const MAX_RESULT_CHARS: usize = 200;

/// Longest piece of a word: a long word (or JSON without spaces) is sent in pieces of at most
/// this many characters.
const MAX_PIECE_CHARS: usize = 8;

/// Arguments that satisfy `schema`: every declared property (required or not), strings `"sim"`
/// (or the first `enum` value, or `const`; padded to `minLength`, cut to `maxLength`), numbers
/// inside `minimum`/`maximum`, `true`, one item per array (or `minItems`, up to 16), objects
/// recursively. `anyOf` takes its first branch; a list of types its first non-null one.
pub fn example(schema: &Value) -> Value {
    value(schema, 0)
}

fn value(schema: &Value, depth: usize) -> Value {
    let Some(s) = schema.as_object() else {
        return Value::from("sim");
    };
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(first) = s
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(first) = s
        .get("anyOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        if depth < MAX_DEPTH {
            return value(first, depth + 1);
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if s.contains_key("properties") => "object",
        _ if s.contains_key("items") => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if depth < MAX_DEPTH {
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    for (k, sub) in props {
                        out.insert(k.clone(), value(sub, depth + 1));
                    }
                }
            }
            // Required properties without a schema of their own.
            for k in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                out.entry(k.to_string())
                    .or_insert_with(|| Value::from("sim"));
            }
            Value::Object(out)
        }
        "array" => {
            let n = s
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, MAX_ITEMS);
            let n = match s.get("maxItems").and_then(Value::as_u64) {
                Some(max) => n.min(max),
                None => n,
            };
            let item = match s.get("items") {
                Some(items) if depth < MAX_DEPTH => value(items, depth + 1),
                _ => Value::from("sim"),
            };
            // Nested arrays multiply: keep the whole answer under MAX_NODES values.
            let n = n.min((MAX_NODES / nodes(&item)).max(1) as u64);
            Value::Array((0..n).map(|_| item.clone()).collect())
        }
        "integer" | "number" => number(s, ty == "integer"),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => string(s),
    }
}

fn string(s: &Map<String, Value>) -> Value {
    let min = s
        .get("minLength")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(MAX_STRING);
    let max = s.get("maxLength").and_then(Value::as_u64);
    let mut text = String::from("sim");
    while (text.chars().count() as u64) < min {
        text.push('m');
    }
    if let Some(max) = max {
        text = text.chars().take(max as usize).collect();
    }
    Value::from(text)
}

/// A number inside the bounds: the middle of `minimum`..`maximum`, else just above the
/// minimum or just below the maximum, else 1 (rounded inward for integers).
fn number(s: &Map<String, Value>, integer: bool) -> Value {
    let min = s.get("minimum").and_then(Value::as_f64);
    let max = s.get("maximum").and_then(Value::as_f64);
    let x = match (min, max) {
        (Some(a), Some(b)) => a + (b - a) / 2.0,
        (Some(a), None) => a.max(1.0),
        (None, Some(b)) => b.min(1.0),
        (None, None) => 1.0,
    };
    if integer {
        let mut n = x.floor();
        if min.is_some_and(|a| n < a) {
            n = x.ceil();
        }
        if n.is_finite() && n.abs() < 9.0e15 {
            return Value::from(n as i64);
        }
        return Value::from(1);
    }
    Number::from_f64(x).map_or(Value::from(1), Value::Number)
}

/// `text` cut into about `max_pieces` pieces of similar length, on character boundaries; the
/// pieces join back into `text`.
pub fn pieces(text: &str, max_pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let n = chars
        .len()
        .div_ceil(MAX_PIECE_CHARS)
        .clamp(1, max_pieces.max(1));
    let size = chars.len().div_ceil(n);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The answer tokens that repeat a tool result: its first [`MAX_RESULT_CHARS`] characters at
/// most, cut on token boundaries. A token is a word with the whitespace before it, and a long
/// word is sent in pieces of at most [`MAX_PIECE_CHARS`] characters.
pub fn result_tokens(result: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    for ch in result.chars() {
        let space = ch.is_whitespace();
        if (space && in_word) || (!space && cur.chars().count() >= MAX_PIECE_CHARS) {
            tokens.push(std::mem::take(&mut cur));
        }
        in_word = !space;
        cur.push(ch);
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let mut total = 0;
    tokens
        .into_iter()
        .take_while(|t| {
            total += t.chars().count();
            total <= MAX_RESULT_CHARS
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn examples_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 5},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 10},
                "ratio": {"type": "number", "minimum": 0.5},
                "hourly": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 2}},
                "at": {"type": "object", "properties": {"lat": {"type": "number", "maximum": -3}}},
                "maybe": {"type": ["null", "integer"]},
                "either": {"anyOf": [{"type": "boolean"}, {"type": "string"}]}
            },
            "required": ["city", "extra"]
        });
        assert_eq!(
            example(&schema),
            json!({"city": "simmm", "unit": "celsius", "days": 5, "ratio": 1.0,
                   "hourly": true, "tags": ["si"], "at": {"lat": -3.0}, "maybe": 1,
                   "either": true, "extra": "sim"})
        );
        assert_eq!(
            example(&json!({"type": "integer", "minimum": 2.5})),
            json!(3)
        );
        assert_eq!(
            example(&json!({"type": "array", "minItems": 3, "items": {"const": 7}})),
            json!([7, 7, 7])
        );
        assert_eq!(example(&json!(true)), json!("sim"));
    }

    #[test]
    fn nested_arrays_stay_bounded() {
        let mut schema = json!({"type": "integer"});
        for _ in 0..8 {
            schema = json!({"type": "array", "minItems": 16, "items": schema});
        }
        let v = example(&schema);
        assert!(nodes(&v) <= 2 * MAX_NODES, "{}", nodes(&v));
        assert_eq!(
            v.as_array().map(Vec::len),
            Some(1),
            "the outer array gives way"
        );
    }

    #[test]
    fn examples_of_deep_schemas_are_bounded() {
        let mut schema = json!({"type": "string"});
        for _ in 0..50 {
            schema = json!({"type": "object", "properties": {"a": schema}});
        }
        let text = example(&schema).to_string();
        assert!(text.len() < 200, "{text}");
    }

    #[test]
    fn pieces_join_back() {
        let text = r#"{"city":"Zürich","days":3}"#;
        let p = pieces(text, 4);
        assert_eq!(p.len(), 4);
        assert_eq!(p.concat(), text);
        assert_eq!(pieces("{}", 4), ["{}"]);
        assert_eq!(pieces("", 4), [""]);
    }

    #[test]
    fn result_tokens_are_clipped_on_token_boundaries() {
        assert_eq!(
            result_tokens("21 C and sunny"),
            ["21", " C", " and", " sunny"]
        );
        assert_eq!(result_tokens(r#"{"temp":21}"#), [r#"{"temp":"#, "21}"]);
        let long = "word ".repeat(100);
        let t = result_tokens(&long);
        let joined = t.concat();
        assert!(joined.chars().count() <= MAX_RESULT_CHARS);
        assert!(joined.chars().count() > MAX_RESULT_CHARS - 10);
        assert!(long.starts_with(&joined));
    }
}
