//! The subset of JSON Schema that tool parameters use, to check a model's tool-call arguments.
//!
//! Tool definitions in the OpenAI, Anthropic, Gemini, Ollama and Bedrock APIs describe their
//! parameters with a small part of JSON Schema: object `properties`, `required`, `type`, `enum`
//! and nested `items`. [`supported`] accepts exactly the keywords [`validate`] enforces, plus
//! annotations that do not constrain values (`description`, `title`, `default`, `examples`,
//! `$schema`); a schema with any other keyword is a config error, so that no schema is checked
//! less strictly than it reads.

use serde_json::{Map, Value};

/// Keywords that constrain values and are checked.
const CHECKED: [&str; 16] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "items",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "anyOf",
    "nullable",
];

/// Keywords that only annotate (`format` is an annotation unless a validator opts in, as JSON
/// Schema 2019-09 and later specify).
const ANNOTATIONS: [&str; 6] = [
    "description",
    "title",
    "default",
    "examples",
    "format",
    "$schema",
];

/// The JSON types `type` may name.
const TYPES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// Nesting depth beyond which a schema or a value is not examined (and is an error).
const MAX_DEPTH: usize = 32;

/// Checks that `schema` uses only keywords [`validate`] enforces. The error names the JSON
/// pointer of the offending place (`/properties/city/pattern`).
pub fn supported(schema: &Value) -> Result<(), String> {
    check_schema(schema, "", 0)
}

fn check_schema(schema: &Value, at: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: nested deeper than {MAX_DEPTH} levels",
            here(at)
        ));
    }
    let Some(obj) = schema.as_object() else {
        return match schema {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("{}: a schema must be an object", here(at))),
        };
    };
    for (k, v) in obj {
        let path = format!("{at}/{k}");
        match k.as_str() {
            "type" => {
                let names: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                for n in names {
                    match n.as_str() {
                        Some(t) if TYPES.contains(&t) => {}
                        _ => {
                            return Err(format!(
                                "{path}: unknown type {n}; expected one of {}",
                                TYPES.join(", ")
                            ))
                        }
                    }
                }
            }
            "properties" => {
                let props = v
                    .as_object()
                    .ok_or_else(|| format!("{path}: must be an object of schemas"))?;
                for (name, sub) in props {
                    check_schema(sub, &format!("{path}/{name}"), depth + 1)?;
                }
            }
            "items" | "additionalProperties" => check_schema(v, &path, depth + 1)?,
            "anyOf" => {
                let alts = v
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| format!("{path}: must be a non-empty list of schemas"))?;
                for (i, sub) in alts.iter().enumerate() {
                    check_schema(sub, &format!("{path}/{i}"), depth + 1)?;
                }
            }
            "required" => {
                if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                    return Err(format!("{path}: must be a list of property names"));
                }
            }
            "enum" => {
                if !v.is_array() {
                    return Err(format!("{path}: must be a list"));
                }
            }
            "minimum" | "maximum" => {
                if !v.is_number() {
                    return Err(format!("{path}: must be a number"));
                }
            }
            "minLength" | "maxLength" | "minItems" | "maxItems" => {
                if !v.is_u64() {
                    return Err(format!("{path}: must be a non-negative integer"));
                }
            }
            "pattern" => {
                let ok = v.as_str().is_some_and(|p| pattern(p).is_ok());
                if !ok {
                    return Err(format!("{path}: must be a regular expression"));
                }
            }
            "nullable" => {
                if !v.is_boolean() {
                    return Err(format!("{path}: must be true or false"));
                }
            }
            "const" => {}
            k if ANNOTATIONS.contains(&k) => {}
            other => {
                return Err(format!(
                    "{path}: keyword {other:?} is not checked by inferprobe; use only {} \
                     (and the annotations {})",
                    CHECKED.join(", "),
                    ANNOTATIONS.join(", ")
                ))
            }
        }
    }
    Ok(())
}

fn here(at: &str) -> &str {
    if at.is_empty() {
        "/"
    } else {
        at
    }
}

/// Checks `value` against `schema` (a schema [`supported`] accepts). The error names the JSON
/// pointer of the first offending value (`/city`) and what was expected, without echoing more
/// than a few characters of the value.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check_value(schema, value, "", 0)
}

fn check_value(schema: &Value, value: &Value, at: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: nested deeper than {MAX_DEPTH} levels",
            here(at)
        ));
    }
    let obj = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{}: no value is allowed here", here(at))),
        Value::Object(o) => o,
        _ => return Ok(()),
    };
    if value.is_null() && obj.get("nullable") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    if let Some(t) = obj.get("type") {
        let allowed: Vec<&str> = match t {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            one => one.as_str().into_iter().collect(),
        };
        if !allowed.iter().any(|t| has_type(value, t)) {
            return Err(format!(
                "{}: expected {}, got {}",
                here(at),
                allowed.join(" or "),
                describe(value)
            ));
        }
    }
    if let Some(Value::Array(options)) = obj.get("enum") {
        if !options.contains(value) {
            return Err(format!(
                "{}: {} is not one of the {} allowed values",
                here(at),
                describe(value),
                options.len()
            ));
        }
    }
    if let Some(c) = obj.get("const") {
        if c != value {
            return Err(format!(
                "{}: {} is not the constant",
                here(at),
                describe(value)
            ));
        }
    }
    if let Some(Value::Array(alts)) = obj.get("anyOf") {
        if !alts
            .iter()
            .any(|s| check_value(s, value, at, depth + 1).is_ok())
        {
            return Err(format!(
                "{}: {} matches none of the anyOf schemas",
                here(at),
                describe(value)
            ));
        }
    }
    match value {
        Value::Object(map) => check_object(obj, map, at, depth),
        Value::Array(items) => {
            let n = items.len() as u64;
            bound(obj, "minItems", n, |min| n >= min, at, "items")?;
            bound(obj, "maxItems", n, |max| n <= max, at, "items")?;
            if let Some(item_schema) = obj.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_value(item_schema, item, &format!("{at}/{i}"), depth + 1)?;
                }
            }
            Ok(())
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            bound(obj, "minLength", n, |min| n >= min, at, "characters")?;
            bound(obj, "maxLength", n, |max| n <= max, at, "characters")?;
            match obj.get("pattern").and_then(Value::as_str).map(pattern) {
                Some(Ok(re)) if !re.is_match(s) => Err(format!(
                    "{}: {} does not match the pattern",
                    here(at),
                    describe(value)
                )),
                _ => Ok(()),
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
                if x < min {
                    return Err(format!("{}: {x} is below the minimum {min}", here(at)));
                }
            }
            if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
                if x > max {
                    return Err(format!("{}: {x} is above the maximum {max}", here(at)));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_object(
    schema: &Map<String, Value>,
    map: &Map<String, Value>,
    at: &str,
    depth: usize,
) -> Result<(), String> {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                return Err(format!(
                    "{}: required property {:?} is missing",
                    here(at),
                    crate::probe::clip(name, 40)
                ));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in map {
        let path = format!("{at}/{}", crate::probe::clip(k, 40));
        match props.and_then(|p| p.get(k)) {
            Some(sub) => check_value(sub, v, &path, depth + 1)?,
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    return Err(format!("{path}: property not allowed by the schema"))
                }
                Some(extra @ Value::Object(_)) => check_value(extra, v, &path, depth + 1)?,
                _ => {}
            },
        }
    }
    Ok(())
}

fn bound(
    schema: &Map<String, Value>,
    key: &str,
    n: u64,
    ok: impl Fn(u64) -> bool,
    at: &str,
    unit: &str,
) -> Result<(), String> {
    match schema.get(key).and_then(Value::as_u64) {
        Some(limit) if !ok(limit) => Err(format!("{}: {n} {unit}, {key} is {limit}", here(at))),
        _ => Ok(()),
    }
}

/// A schema `pattern`: unanchored, as JSON Schema specifies, with a size limit so that a
/// config cannot make a huge automaton.
fn pattern(p: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(p).size_limit(1 << 20).build()
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// A short description of a value: its type, and for scalars a clipped rendering.
fn describe(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::String(s) => format!("string {:?}", crate::probe::clip(s, 24)),
        other => crate::probe::clip(&other.to_string(), 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn weather() -> Value {
        json!({
            "type": "object",
            "description": "where",
            "properties": {
                "city": {"type": "string", "minLength": 1},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
            },
            "required": ["city"],
            "additionalProperties": false
        })
    }

    #[test]
    fn accepts_arguments_that_match() {
        let s = weather();
        supported(&s).unwrap();
        validate(&s, &json!({"city": "Lisbon"})).unwrap();
        validate(
            &s,
            &json!({"city": "Lisbon", "unit": "celsius", "days": 3, "tags": ["a"]}),
        )
        .unwrap();
        validate(&s, &json!({"city": "x", "days": 2.0})).unwrap();
    }

    #[test]
    fn names_the_first_wrong_place() {
        let s = weather();
        let err = |v: Value| validate(&s, &v).unwrap_err();
        assert_eq!(err(json!({})), "/: required property \"city\" is missing");
        assert_eq!(err(json!({"city": 3})), "/city: expected string, got 3");
        assert_eq!(
            err(json!({"city": "x", "unit": "kelvin"})),
            "/unit: string \"kelvin\" is not one of the 2 allowed values"
        );
        assert_eq!(
            err(json!({"city": "x", "days": 9})),
            "/days: 9 is above the maximum 7"
        );
        assert_eq!(
            err(json!({"city": "x", "days": 1.5})),
            "/days: expected integer, got 1.5"
        );
        assert_eq!(
            err(json!({"city": "x", "tags": ["a", 1]})),
            "/tags/1: expected string, got 1"
        );
        assert_eq!(
            err(json!({"city": "x", "tags": ["a", "b", "c"]})),
            "/tags: 3 items, maxItems is 2"
        );
        assert_eq!(
            err(json!({"city": "x", "zip": "1"})),
            "/zip: property not allowed by the schema"
        );
        assert_eq!(
            err(json!({"city": ""})),
            "/city: 0 characters, minLength is 1"
        );
        assert_eq!(err(json!([1])), "/: expected object, got an array");
    }

    #[test]
    fn unsupported_keywords_are_refused_with_their_place() {
        let s = json!({"type": "object", "properties": {"zip": {"type": "string", "$ref": "#/x"}}});
        let e = supported(&s).unwrap_err();
        assert!(
            e.starts_with("/properties/zip/$ref: keyword \"$ref\" is not checked"),
            "{e}"
        );
        assert_eq!(
            supported(&json!({"type": "string", "pattern": "("})).unwrap_err(),
            "/pattern: must be a regular expression"
        );
        assert!(supported(&json!({"type": "decimal"}))
            .unwrap_err()
            .contains("unknown type"));
        assert!(supported(&json!("object")).is_err());
        supported(&json!({"anyOf": [{"type": "string"}, {"type": "null"}]})).unwrap();
    }

    #[test]
    fn patterns_are_unanchored_and_format_only_annotates() {
        let s = json!({"type": "string", "pattern": "^[0-9]{4}$", "format": "zip"});
        supported(&s).unwrap();
        validate(&s, &json!("1234")).unwrap();
        assert_eq!(
            validate(&s, &json!("12a4")).unwrap_err(),
            "/: string \"12a4\" does not match the pattern"
        );
        validate(&json!({"pattern": "b"}), &json!("abc")).unwrap();
    }

    #[test]
    fn any_of_and_nullable() {
        let s = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        validate(&s, &json!("a")).unwrap();
        validate(&s, &json!(2)).unwrap();
        assert!(validate(&s, &json!(true)).is_err());
        let n = json!({"type": "string", "nullable": true});
        validate(&n, &Value::Null).unwrap();
    }

    #[test]
    fn deep_values_are_bounded() {
        let mut v = json!(1);
        for _ in 0..100 {
            v = json!([v]);
        }
        let s = json!({});
        validate(&s, &v).unwrap();
        let mut deep = json!({"type": "array"});
        for _ in 0..40 {
            deep = json!({"type": "array", "items": deep});
        }
        assert!(supported(&deep).unwrap_err().contains("deeper"));
    }
}
