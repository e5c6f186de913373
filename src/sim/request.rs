//! Reading a generation request body: only the fields the simulator acts on.

use serde_json::Value;

use super::Api;

/// The parts of a request that shape the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenRequest {
    /// The `model` field (empty when absent; Gemini names it in the path).
    pub model: String,
    /// `"stream": true` (Gemini: the path's method).
    pub stream: bool,
    /// `max_completion_tokens`, else `max_tokens` (Responses: `max_output_tokens`; Gemini:
    /// `generationConfig.maxOutputTokens`).
    pub max_tokens: Option<u32>,
    /// OpenAI: `stream_options.include_usage`.
    pub include_usage: bool,
    /// Characters of prompt text: messages, system prompt or `prompt`, and the tool parts of
    /// a conversation (offered tools, tool calls and tool results) as JSON text.
    pub prompt_chars: usize,
    /// The first tool offered: its name and the JSON schema of its arguments.
    pub tool: Option<(String, Value)>,
    /// What the conversation's last turn is.
    pub turn: Turn,
}

/// The last turn of a conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Turn {
    /// A user message (or a completions prompt).
    #[default]
    User,
    /// Results of tool calls: their text, joined by newlines when there are several.
    ToolResult(String),
    /// Anything else (an assistant turn, no message at all).
    Other,
}

impl GenRequest {
    /// Input tokens: one per 4 prompt characters, rounded up, at least 1 (a rough rule of thumb
    /// for English text; the simulator has no tokenizer).
    pub fn prompt_tokens(&self) -> u32 {
        u32::try_from(self.prompt_chars.div_ceil(4).max(1)).unwrap_or(u32::MAX)
    }
}

/// Parses a request body; the error names the offending field, as a real API's 400 would.
pub fn parse(api: Api, body: &[u8]) -> Result<GenRequest, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "the body must be a JSON object".to_string())?;

    let model = match obj.get("model") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("model: must be a string".to_string()),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("stream: must be a boolean".to_string()),
    };
    let max_tokens = match api {
        Api::OpenaiChat => match token_cap(obj, "max_completion_tokens")? {
            Some(n) => Some(n),
            None => token_cap(obj, "max_tokens")?,
        },
        Api::OpenaiCompletions => token_cap(obj, "max_tokens")?,
        Api::AnthropicMessages => Some(
            token_cap(obj, "max_tokens")?
                .ok_or_else(|| "max_tokens: Field required".to_string())?,
        ),
        Api::OpenaiResponses => token_cap(obj, "max_output_tokens")?,
        Api::Gemini => match obj.get("generationConfig") {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => {
                token_cap(c, "maxOutputTokens").map_err(|e| format!("generationConfig.{e}"))?
            }
            Some(_) => return Err("generationConfig: must be an object".to_string()),
        },
        Api::Ollama => match obj.get("options") {
            Some(Value::Object(o)) => match o.get("num_predict") {
                // Ollama: a negative num_predict means no limit.
                Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => None,
                _ => token_cap(o, "num_predict").map_err(|e| format!("options.{e}"))?,
            },
            _ => None,
        },
        Api::BedrockConverse => match obj.get("inferenceConfig") {
            Some(Value::Object(o)) => {
                token_cap(o, "maxTokens").map_err(|e| format!("inferenceConfig.{e}"))?
            }
            _ => None,
        },
    };
    // Ollama streams unless told not to; ConverseStream always streams.
    let stream = match api {
        Api::Ollama => !matches!(obj.get("stream"), Some(Value::Bool(false))),
        Api::BedrockConverse => true,
        _ => stream,
    };
    let include_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let prompt_chars = match api {
        Api::OpenaiChat | Api::AnthropicMessages | Api::Ollama | Api::BedrockConverse => {
            let messages = obj
                .get("messages")
                .and_then(Value::as_array)
                .ok_or_else(|| "messages: Field required (an array of messages)".to_string())?;
            let mut n = 0;
            for (i, m) in messages.iter().enumerate() {
                n += content_chars(m.get("content"))
                    .map_err(|e| format!("messages[{i}].content: {e}"))?;
            }
            if matches!(api, Api::AnthropicMessages | Api::BedrockConverse) {
                n += content_chars(obj.get("system")).map_err(|e| format!("system: {e}"))?;
            }
            n
        }
        Api::OpenaiCompletions => match obj.get("prompt") {
            Some(Value::String(s)) => s.chars().count(),
            Some(Value::Array(items)) => {
                let mut n = 0;
                for (i, it) in items.iter().enumerate() {
                    match it {
                        Value::String(s) => n += s.chars().count(),
                        // A token-id prompt: count each id as one token's worth of characters.
                        Value::Number(_) => n += 4,
                        _ => return Err(format!("prompt[{i}]: must be a string")),
                    }
                }
                n
            }
            _ => return Err("prompt: Field required (a string)".to_string()),
        },
        Api::OpenaiResponses => {
            let mut n =
                content_chars(obj.get("instructions")).map_err(|e| format!("instructions: {e}"))?;
            match obj.get("input") {
                Some(Value::String(s)) => n += s.chars().count(),
                Some(Value::Array(items)) => {
                    for (i, it) in items.iter().enumerate() {
                        n += content_chars(it.get("content"))
                            .map_err(|e| format!("input[{i}].content: {e}"))?;
                    }
                }
                _ => return Err("input: Field required (a string or an array of items)".into()),
            }
            n
        }
        Api::Gemini => {
            let contents = obj
                .get("contents")
                .and_then(Value::as_array)
                .ok_or_else(|| "contents: Field required (an array of contents)".to_string())?;
            let mut n = content_chars(obj.get("systemInstruction").and_then(|s| s.get("parts")))
                .map_err(|e| format!("systemInstruction.parts: {e}"))?;
            for (i, c) in contents.iter().enumerate() {
                n += content_chars(c.get("parts"))
                    .map_err(|e| format!("contents[{i}].parts: {e}"))?;
            }
            n
        }
    };

    let prompt_chars = prompt_chars + tool_chars(api, obj);
    Ok(GenRequest {
        model,
        stream,
        max_tokens,
        include_usage,
        prompt_chars,
        tool: first_tool(api, obj),
        turn: last_turn(api, obj),
    })
}

fn token_cap(obj: &serde_json::Map<String, Value>, field: &str) -> Result<Option<u32>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!("{field}: must be a whole number of at least 1")),
        },
    }
}

/// Characters of a message content: a string, or an array of parts where a part's `text`
/// counts, and a part without text (a tool call or a tool result) counts as its JSON text.
fn content_chars(content: Option<&Value>) -> Result<usize, String> {
    match content {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => Ok(s.chars().count()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .map(|p| match p.get("text").and_then(Value::as_str) {
                Some(t) => t.chars().count(),
                None => json_chars(p),
            })
            .sum()),
        Some(_) => Err("must be a string or an array of content parts".to_string()),
    }
}

/// Characters of a value written as JSON.
fn json_chars(v: &Value) -> usize {
    v.to_string().chars().count()
}

/// Characters of the tool parts that [`parse`]'s content count does not see: the offered tools,
/// and tool calls and results held outside message contents (OpenAI and Ollama `tool_calls`,
/// Responses `function_call` / `function_call_output` items).
fn tool_chars(api: Api, obj: &serde_json::Map<String, Value>) -> usize {
    let tools = obj
        .get("tools")
        .or_else(|| obj.get("toolConfig"))
        .map_or(0, json_chars);
    let history = match api {
        Api::OpenaiChat | Api::Ollama => messages(obj, "messages")
            .filter_map(|m| m.get("tool_calls"))
            .map(json_chars)
            .sum(),
        Api::OpenaiResponses => messages(obj, "input")
            .filter(|it| it.get("content").is_none())
            .map(json_chars)
            .sum(),
        _ => 0,
    };
    tools + history
}

fn messages<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a Value> {
    items(obj.get(key))
}

/// The elements of an array (none when it is not one).
fn items(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

/// The first function tool the request offers, in each API's shape.
fn first_tool(api: Api, obj: &serde_json::Map<String, Value>) -> Option<(String, Value)> {
    let mut tools = messages(obj, "tools");
    let found = match api {
        Api::OpenaiCompletions => None,
        Api::OpenaiChat | Api::Ollama => tools
            .filter_map(|t| t.get("function"))
            .find_map(|f| Some((str_at(f, &["name"])?, f.get("parameters")))),
        Api::AnthropicMessages => {
            tools.find_map(|t| Some((str_at(t, &["name"])?, t.get("input_schema"))))
        }
        Api::OpenaiResponses => tools
            .filter(|t| str_at(t, &["type"]) == Some("function"))
            .find_map(|t| Some((str_at(t, &["name"])?, t.get("parameters")))),
        // The API reads protobuf JSON, where a field may also be spelt as in the proto
        // (google-genai sends `parameters_json_schema`).
        Api::Gemini => tools
            .filter_map(|t| {
                t.get("functionDeclarations")
                    .or_else(|| t.get("function_declarations"))
                    .and_then(Value::as_array)
            })
            .flatten()
            .find_map(|d| {
                let schema = [
                    "parameters",
                    "parametersJsonSchema",
                    "parameters_json_schema",
                ]
                .into_iter()
                .find_map(|k| d.get(k));
                Some((str_at(d, &["name"])?, schema))
            }),
        Api::BedrockConverse => obj
            .get("toolConfig")
            .and_then(|c| c.get("tools"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("toolSpec"))
            .find_map(|s| {
                let schema = s.get("inputSchema").and_then(|i| i.get("json"));
                Some((str_at(s, &["name"])?, schema))
            }),
    };
    found.map(|(name, schema)| {
        let schema = schema
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object"}));
        (name.to_string(), schema)
    })
}

/// A tool result's content as text: a string as is, text blocks joined, anything else as JSON.
fn result_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(
                |b| match (b.get("text").and_then(Value::as_str), b.get("json")) {
                    (Some(t), _) => t.to_string(),
                    (None, Some(j)) => j.to_string(),
                    (None, None) => b.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
    }
}

/// Joins the results found, or says the turn is `fallback` when there are none.
fn results_or(results: Vec<String>, fallback: Turn) -> Turn {
    if results.is_empty() {
        fallback
    } else {
        Turn::ToolResult(results.join("\n"))
    }
}

/// What the conversation's last turn is, in each API's shape.
fn last_turn(api: Api, obj: &serde_json::Map<String, Value>) -> Turn {
    let role = |m: &Value| str_at(m, &["role"]).unwrap_or_default().to_string();
    match api {
        Api::OpenaiCompletions => Turn::User,
        Api::OpenaiChat | Api::Ollama => {
            let all: Vec<&Value> = messages(obj, "messages").collect();
            let results: Vec<String> = all
                .iter()
                .rev()
                .take_while(|m| role(m) == "tool")
                .map(|m| result_text(m.get("content")))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let fallback = match all.last().map(|m| role(m)) {
                Some(r) if r == "user" => Turn::User,
                _ => Turn::Other,
            };
            results_or(results, fallback)
        }
        Api::AnthropicMessages | Api::BedrockConverse => {
            let Some(last) = messages(obj, "messages").last() else {
                return Turn::Other;
            };
            if role(last) != "user" {
                return Turn::Other;
            }
            let results = items(last.get("content"))
                .filter_map(|b| {
                    if str_at(b, &["type"]) == Some("tool_result") {
                        Some(result_text(b.get("content")))
                    } else {
                        b.get("toolResult").map(|r| result_text(r.get("content")))
                    }
                })
                .collect();
            results_or(results, Turn::User)
        }
        Api::OpenaiResponses => match obj.get("input") {
            Some(Value::String(_)) => Turn::User,
            Some(Value::Array(items)) => {
                let results: Vec<String> = items
                    .iter()
                    .rev()
                    .take_while(|it| str_at(it, &["type"]) == Some("function_call_output"))
                    .map(|it| result_text(it.get("output")))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let fallback = match items.last().map(&role) {
                    Some(r) if r == "user" => Turn::User,
                    _ => Turn::Other,
                };
                results_or(results, fallback)
            }
            _ => Turn::Other,
        },
        Api::Gemini => {
            let Some(last) = messages(obj, "contents").last() else {
                return Turn::Other;
            };
            if role(last) != "user" && last.get("role").is_some() {
                return Turn::Other;
            }
            let results = items(last.get("parts"))
                .filter_map(|p| p.get("functionResponse"))
                .map(|r| match r.get("response") {
                    // A wrapped non-object result: its value.
                    Some(Value::Object(o)) if o.len() == 1 && o.contains_key("result") => {
                        result_text(o.get("result"))
                    }
                    other => result_text(other),
                })
                .collect();
            results_or(results, Turn::User)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_request() {
        let r = parse(
            Api::OpenaiChat,
            r#"{"model":"m","stream":true,"max_tokens":50,"max_completion_tokens":20,
                "stream_options":{"include_usage":true},
                "messages":[{"role":"system","content":"abcd"},
                            {"role":"user","content":[{"type":"text","text":"héllo"}]}]}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            r,
            GenRequest {
                model: "m".to_string(),
                stream: true,
                max_tokens: Some(20),
                include_usage: true,
                prompt_chars: 9,
                tool: None,
                turn: Turn::User,
            }
        );
        assert_eq!(r.prompt_tokens(), 3);
    }

    #[test]
    fn completions_and_anthropic_requests() {
        let r = parse(Api::OpenaiCompletions, br#"{"prompt":"12345678"}"#).unwrap();
        assert_eq!(
            (r.stream, r.max_tokens, r.prompt_tokens()),
            (false, None, 2)
        );
        let r = parse(
            Api::AnthropicMessages,
            br#"{"model":"c","max_tokens":8,"system":"sys!","messages":[{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (r.max_tokens, r.prompt_chars, r.prompt_tokens()),
            (Some(8), 5, 2)
        );
        let r = parse(Api::OpenaiChat, br#"{"messages":[]}"#).unwrap();
        assert_eq!(r.prompt_tokens(), 1);
    }

    #[test]
    fn responses_and_gemini_requests() {
        let r = parse(
            Api::OpenaiResponses,
            br#"{"model":"m","stream":true,"max_output_tokens":16,"instructions":"abcd",
                 "input":[{"role":"user","content":"efgh"},
                          {"role":"user","content":[{"type":"input_text","text":"ij"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            (r.model.as_str(), r.stream, r.max_tokens, r.prompt_chars),
            ("m", true, Some(16), 10)
        );
        let r = parse(Api::OpenaiResponses, br#"{"input":"hello"}"#).unwrap();
        assert_eq!((r.max_tokens, r.prompt_chars), (None, 5));
        let r = parse(
            Api::Gemini,
            br#"{"contents":[{"role":"user","parts":[{"text":"abcd"},{"text":"ef"}]}],
                 "systemInstruction":{"parts":[{"text":"sys"}]},
                 "generationConfig":{"maxOutputTokens":12,"temperature":0}}"#,
        )
        .unwrap();
        assert_eq!((r.max_tokens, r.prompt_chars), (Some(12), 9));
        assert_eq!(
            parse(
                Api::Gemini,
                br#"{"contents":[],"generationConfig":{"maxOutputTokens":0}}"#
            )
            .unwrap_err(),
            "generationConfig.maxOutputTokens: must be a whole number of at least 1"
        );
        assert_eq!(
            parse(Api::Gemini, br#"{"generationConfig":{}}"#).unwrap_err(),
            "contents: Field required (an array of contents)"
        );
        assert_eq!(
            parse(Api::OpenaiResponses, br#"{"model":"m"}"#).unwrap_err(),
            "input: Field required (a string or an array of items)"
        );
    }

    #[test]
    fn ollama_and_bedrock_requests() {
        let r = parse(
            Api::Ollama,
            br#"{"model":"llama3.2","messages":[{"role":"user","content":"12345"}],"options":{"num_predict":9}}"#,
        )
        .unwrap();
        assert_eq!(
            (r.stream, r.max_tokens, r.prompt_chars),
            (true, Some(9), 5),
            "Ollama streams unless told not to"
        );
        let r = parse(
            Api::Ollama,
            br#"{"messages":[],"stream":false,"options":{"num_predict":-1}}"#,
        )
        .unwrap();
        assert_eq!((r.stream, r.max_tokens), (false, None));
        assert_eq!(
            parse(
                Api::Ollama,
                br#"{"messages":[],"options":{"num_predict":0}}"#
            )
            .unwrap_err(),
            "options.num_predict: must be a whole number of at least 1"
        );
        let r = parse(
            Api::BedrockConverse,
            br#"{"model":"a.b-v1:0","messages":[{"role":"user","content":[{"text":"abc"}]}],
                "system":[{"text":"sys"}],"inferenceConfig":{"maxTokens":7}}"#,
        )
        .unwrap();
        assert_eq!(
            (r.model.as_str(), r.stream, r.max_tokens, r.prompt_chars),
            ("a.b-v1:0", true, Some(7), 6)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = |api, body: &[u8]| parse(api, body).unwrap_err();
        assert_eq!(
            e(Api::AnthropicMessages, br#"{"messages":[]}"#),
            "max_tokens: Field required"
        );
        assert_eq!(
            e(Api::OpenaiChat, br#"{"messages":[],"max_tokens":0}"#),
            "max_tokens: must be a whole number of at least 1"
        );
        assert_eq!(
            e(Api::OpenaiChat, br#"{"stream":"yes","messages":[]}"#),
            "stream: must be a boolean"
        );
        assert_eq!(
            e(Api::OpenaiCompletions, br#"{"model":"m"}"#),
            "prompt: Field required (a string)"
        );
        assert_eq!(e(Api::OpenaiChat, b"[]"), "the body must be a JSON object");
        assert!(e(Api::OpenaiChat, b"{").starts_with("invalid JSON body"));
    }

    #[test]
    fn tools_and_last_turns_in_each_shape() {
        let tool = |api, body: &str| parse(api, body.as_bytes()).unwrap().tool;
        let schema = serde_json::json!({"type": "object"});
        let want = Some(("f".to_string(), schema.clone()));
        assert_eq!(
            tool(
                Api::OpenaiChat,
                r#"{"messages":[],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#
            ),
            want
        );
        assert_eq!(
            tool(
                Api::AnthropicMessages,
                r#"{"max_tokens":1,"messages":[],"tools":[{"name":"f","input_schema":{"type":"object"}}]}"#
            ),
            want
        );
        assert_eq!(
            tool(
                Api::OpenaiResponses,
                r#"{"input":"x","tools":[{"type":"web_search"},{"type":"function","name":"f","parameters":{"type":"object"}}]}"#
            ),
            want
        );
        assert_eq!(
            tool(
                Api::Gemini,
                r#"{"contents":[],"tools":[{"functionDeclarations":[{"name":"f"}]}]}"#
            ),
            want,
            "a declaration without parameters takes any object"
        );
        assert_eq!(
            tool(
                Api::Gemini,
                r#"{"contents":[],"tools":[{"function_declarations":[{"name":"f","parameters_json_schema":{"type":"object"}}]}]}"#
            ),
            want,
            "protobuf field names"
        );
        assert_eq!(
            tool(
                Api::BedrockConverse,
                r#"{"messages":[],"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}]}}"#
            ),
            want
        );
        assert_eq!(
            tool(
                Api::OpenaiCompletions,
                r#"{"prompt":"x","tools":[{"type":"function","function":{"name":"f"}}]}"#
            ),
            None
        );

        let turn = |api, body: &str| parse(api, body.as_bytes()).unwrap().turn;
        let result = |s: &str| Turn::ToolResult(s.to_string());
        assert_eq!(
            turn(
                Api::OpenaiChat,
                r#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[]},{"role":"tool","content":"a"},{"role":"tool","content":"b"}]}"#
            ),
            result("a\nb")
        );
        assert_eq!(
            turn(
                Api::Ollama,
                r#"{"messages":[{"role":"assistant","content":"x"}]}"#
            ),
            Turn::Other
        );
        assert_eq!(
            turn(
                Api::AnthropicMessages,
                r#"{"max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"17 C"}]},{"type":"text","text":"and?"}]}]}"#
            ),
            result("17 C")
        );
        assert_eq!(
            turn(
                Api::OpenaiResponses,
                r#"{"input":[{"role":"user","content":"q"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"done"}]}"#
            ),
            result("done")
        );
        assert_eq!(
            turn(
                Api::Gemini,
                r#"{"contents":[{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"result":"12:00"}}},{"functionResponse":{"name":"g","response":{"t":1}}}]}]}"#
            ),
            result("12:00\n{\"t\":1}")
        );
        assert_eq!(
            turn(
                Api::BedrockConverse,
                r#"{"messages":[{"role":"user","content":[{"toolResult":{"toolUseId":"t","content":[{"json":{"a":1}}]}}]}]}"#
            ),
            result("{\"a\":1}")
        );
        assert_eq!(
            turn(
                Api::BedrockConverse,
                r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#
            ),
            Turn::User
        );
    }

    #[test]
    fn prompt_counts_tools_calls_and_results() {
        let chars = |body: &str| {
            parse(Api::OpenaiChat, body.as_bytes())
                .unwrap()
                .prompt_chars
        };
        let q = r#"{"role":"user","content":"abcd"}"#;
        let plain = chars(&format!(r#"{{"messages":[{q}]}}"#));
        let tools = r#""tools":[{"type":"function","function":{"name":"f"}}]"#;
        let offered = chars(&format!(r#"{{"messages":[{q}],{tools}}}"#));
        let call = r#"{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}"#;
        let result = r#"{"role":"tool","tool_call_id":"c","content":"sunny"}"#;
        let answered = chars(&format!(r#"{{"messages":[{q},{call},{result}],{tools}}}"#));
        assert_eq!(plain, 4);
        assert!(
            offered > plain && answered > offered + 5,
            "{plain} {offered} {answered}"
        );
        // Content blocks without text (Anthropic tool_use) count as their JSON.
        let r = parse(
            Api::AnthropicMessages,
            br#"{"max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            r.prompt_chars,
            r#"{"id":"t","input":{},"name":"f","type":"tool_use"}"#.len()
        );
    }
}
