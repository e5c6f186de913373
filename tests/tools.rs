//! Tool calls on the wire, for every dialect that supports them: the request bodies (tools,
//! tool calls and tool results in each API's shape), the decoders' tool-call signals, and a
//! round trip against the simulator (a call of the offered tool whose arguments match its
//! schema, then an answer to the tool's result), with fault scoping by `x-sim-fault-on`.

mod common;

use std::time::Duration;

use inferprobe::config::{BaseUrl, ExpectTool, Scenario, Target};
use inferprobe::probe::dialect::{
    DialectKind, Message, OutputKind, ProbeRequest, Signal, ToolCall, ToolSpec,
};
use inferprobe::probe::engine;
use inferprobe::probe::{Outcome, ProbeResult};
use inferprobe::runtime::simulator_base_url;
use serde_json::{json, Map, Value};

fn weather_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 2},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "hourly": {"type": "boolean"},
            "fields": {"type": "array", "items": {"type": "string"}, "minItems": 1}
        },
        "required": ["city", "unit"],
        "additionalProperties": false
    })
}

fn weather() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Current weather for a city.".into(),
        parameters: weather_schema(),
    }
}

fn msg(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
        ..Message::default()
    }
}

fn tool_result(call: &ToolCall, content: &str) -> Message {
    Message {
        role: "tool".into(),
        content: content.into(),
        tool_call_id: Some(call.id.clone()),
        tool_name: Some(call.name.clone()),
        ..Message::default()
    }
}

async fn probe(t: &Target, scenario: &Scenario) -> Outcome {
    let url = match &t.base_url {
        BaseUrl::Url(u) => u.clone(),
        BaseUrl::Simulator => unreachable!(),
    };
    let client = engine::client_for(&t.timeouts).expect("client");
    engine::run_probe(&client, t, &url, scenario).await
}

/// The finish reason each API gives after a tool call.
fn tool_finish_reason(dialect: DialectKind) -> Option<&'static str> {
    match dialect {
        DialectKind::OpenaiChat => Some("tool_calls"),
        DialectKind::AnthropicMessages | DialectKind::BedrockConverse => Some("tool_use"),
        // Responses has no tool finish reason: the response simply completes.
        DialectKind::OpenaiResponses => Some("completed"),
        DialectKind::Gemini => Some("STOP"),
        // Ollama says `stop` after a call.
        DialectKind::Ollama => Some("stop"),
        DialectKind::OpenaiCompletions => None,
    }
}

fn asking() -> Scenario {
    let mut s = Scenario::builtin_default();
    s.name = "weather".into();
    s.messages = vec![msg("user", "What is the weather in Oslo?")];
    s.tools = vec![weather()];
    s.checks.expect_tool = Some(ExpectTool {
        name: "get_weather".into(),
        schema: weather_schema(),
    });
    s
}

const RESULT: &str = r#"{"temperature_c": 17, "conditions": "drizzle"}"#;

fn answering(call: &ToolCall) -> Scenario {
    let mut s = asking();
    s.name = "weather-answer".into();
    s.checks.expect_tool = None;
    s.checks.must_contain = vec!["drizzle".into()];
    s.messages = vec![
        msg("user", "What is the weather in Oslo?"),
        Message {
            role: "assistant".into(),
            tool_calls: vec![call.clone()],
            ..Message::default()
        },
        tool_result(call, RESULT),
    ];
    s
}

#[tokio::test]
async fn every_tool_dialect_calls_the_tool_and_answers_its_result() {
    let sim = common::sim("ttft: 20ms\nitl: 5ms\noutput_tokens: 12\n").await;
    let mut covered = 0;
    for dialect in DialectKind::ALL {
        let expected_finish = tool_finish_reason(dialect);
        assert_eq!(
            expected_finish.is_some(),
            dialect.supports_tools(),
            "{dialect:?}: tell this test the finish reason of a tool call"
        );
        let Some(expected_finish) = expected_finish else {
            continue;
        };
        covered += 1;
        let t = common::sim_target(dialect, simulator_base_url(&sim.base_url(), dialect));
        let first = probe(&t, &asking()).await;
        assert_eq!(
            first.result,
            ProbeResult::Success,
            "{dialect:?}: {:?}",
            first.error
        );
        assert_eq!(first.tool_calls.len(), 1, "{dialect:?}: {first:?}");
        let call = &first.tool_calls[0];
        assert_eq!(call.name, "get_weather", "{dialect:?}");
        assert!(!call.id.is_empty(), "{dialect:?}");
        let args: Value = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|e| panic!("{dialect:?}: {e}: {}", call.arguments));
        inferprobe::journey::schema::validate(&weather_schema(), &args)
            .unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
        assert_eq!(
            first.finish_reason.as_deref(),
            Some(expected_finish),
            "{dialect:?}"
        );
        if dialect == DialectKind::Gemini {
            assert!(call.signature.is_some(), "Gemini calls carry a signature");
        }
        // The arguments are output, paced like tokens: TTFT is the simulator's, and the APIs
        // that stream arguments send them in several events.
        let ttft = first.ttft.expect("TTFT");
        assert!(ttft >= Duration::from_millis(20), "{dialect:?}: {ttft:?}");
        let whole = matches!(dialect, DialectKind::Gemini | DialectKind::Ollama);
        assert_eq!(first.output_events == 1, whole, "{dialect:?}: {first:?}");

        let second = probe(&t, &answering(call)).await;
        assert_eq!(
            second.result,
            ProbeResult::Success,
            "{dialect:?}: {:?}",
            second.error
        );
        assert!(second.tool_calls.is_empty(), "{dialect:?}");
        // The answer repeats the result; Gemini's result travels as an object, so it comes
        // back as that object's JSON.
        let repeated = if dialect == DialectKind::Gemini {
            r#"{"conditions":"drizzle","temperature_c":17}"#
        } else {
            RESULT
        };
        assert!(
            second.answer.starts_with(repeated),
            "{dialect:?}: {:?}",
            second.answer
        );
        assert!(second.output_tokens >= 12, "{dialect:?}");
        let (a, b) = (first.input_tokens.unwrap(), second.input_tokens.unwrap());
        assert!(b > a, "{dialect:?}: input tokens {a} then {b}");
    }
    assert_eq!(covered, 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_on_scopes_a_fault_to_tool_requests() {
    let sim = common::sim("ttft: 20ms\nitl: 5ms\noutput_tokens: 8\n").await;
    for dialect in DialectKind::ALL.into_iter().filter(|d| d.supports_tools()) {
        let mut t = common::sim_target(dialect, simulator_base_url(&sim.base_url(), dialect));
        t.headers.insert("x-sim-fault".into(), "http_5xx".into());
        t.headers
            .insert("x-sim-fault-on".into(), "tool-result".into());
        let first = probe(&t, &asking()).await;
        assert_eq!(
            first.result,
            ProbeResult::Success,
            "{dialect:?}: {:?}",
            first.error
        );
        let second = probe(&t, &answering(&first.tool_calls[0])).await;
        assert_eq!(second.result, ProbeResult::Http5xx, "{dialect:?}");

        // `tools`: a request without tools is spared, one with tools is hit.
        t.headers.insert("x-sim-fault".into(), "api_error".into());
        t.headers.insert("x-sim-fault-on".into(), "tools".into());
        let plain = probe(&t, &Scenario::builtin_default()).await;
        assert_eq!(plain.result, ProbeResult::Success, "{dialect:?}");
        let tooled = probe(&t, &asking()).await;
        assert_eq!(tooled.result, ProbeResult::ApiError, "{dialect:?}");
    }
    sim.shutdown().await;

    // A fault drawn from the configured probabilities is scoped the same way.
    let sim =
        common::sim("ttft: 20ms\nitl: 5ms\noutput_tokens: 8\nfaults: {http_5xx: 1.0}\n").await;
    let dialect = DialectKind::BedrockConverse;
    let mut t = common::sim_target(dialect, simulator_base_url(&sim.base_url(), dialect));
    t.headers
        .insert("x-sim-fault-on".into(), "tool-result".into());
    let first = probe(&t, &asking()).await;
    assert_eq!(first.result, ProbeResult::Success, "{:?}", first.error);
    let second = probe(&t, &answering(&first.tool_calls[0])).await;
    assert_eq!(second.result, ProbeResult::Http5xx);

    // An unknown scope is the simulator's 400, naming the header.
    let dialect = DialectKind::OpenaiChat;
    let mut t = common::sim_target(dialect, simulator_base_url(&sim.base_url(), dialect));
    t.headers
        .insert("x-sim-fault-on".into(), "sometimes".into());
    let o = probe(&t, &asking()).await;
    assert_eq!(o.result, ProbeResult::Http4xx);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_truncated_tool_call_is_not_a_valid_call() {
    // A token cap below the argument pieces cuts the call: the schema check fails.
    let sim = common::sim("ttft: 10ms\nitl: 2ms\noutput_tokens: 8\n").await;
    let dialect = DialectKind::AnthropicMessages;
    let t = common::sim_target(dialect, simulator_base_url(&sim.base_url(), dialect));
    let mut s = asking();
    s.max_tokens = 2;
    let o = probe(&t, &s).await;
    assert_eq!(o.result, ProbeResult::CheckFailed, "{o:?}");
    assert_eq!(o.finish_reason.as_deref(), Some("max_tokens"));
    sim.shutdown().await;
}

// ---- request bodies ----

fn history() -> Vec<Message> {
    let c1 = ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: r#"{"city":"Oslo","unit":"celsius"}"#.into(),
        signature: Some("c2ln".into()),
    };
    let c2 = ToolCall {
        id: "call_2".into(),
        name: "get_time".into(),
        arguments: "not json".into(),
        signature: None,
    };
    vec![
        msg("system", "Be brief."),
        msg("user", "Weather and time in Oslo?"),
        Message {
            role: "assistant".into(),
            tool_calls: vec![c1.clone(), c2.clone()],
            ..Message::default()
        },
        tool_result(&c1, r#"{"temperature_c":17}"#),
        tool_result(&c2, "12:00"),
    ]
}

fn body(dialect: DialectKind, messages: &[Message], tools: &[ToolSpec]) -> Value {
    let extra = Map::new();
    dialect.build_body(&ProbeRequest {
        model: "m",
        messages,
        max_tokens: 16,
        temperature: 0.0,
        stop: &[],
        extra_body: &extra,
        include_usage: false,
        tools,
    })
}

fn small_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Weather.".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }
}

#[test]
fn openai_chat_body() {
    let b = body(DialectKind::OpenaiChat, &history(), &[small_tool()]);
    assert_eq!(
        b["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather and time in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                 "arguments": "{\"city\":\"Oslo\",\"unit\":\"celsius\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time",
                 "arguments": "not json"}}]},
            {"role": "tool", "content": "{\"temperature_c\":17}", "tool_call_id": "call_1"},
            {"role": "tool", "content": "12:00", "tool_call_id": "call_2"}
        ])
    );
    assert_eq!(
        b["tools"],
        json!([{"type": "function", "function": {"name": "get_weather",
                "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
    );
    // No tools offered: no tools field at all.
    let b = body(DialectKind::OpenaiChat, &history()[..2], &[]);
    assert!(b.get("tools").is_none());
}

#[test]
fn anthropic_body() {
    let b = body(DialectKind::AnthropicMessages, &history(), &[small_tool()]);
    assert_eq!(b["system"], "Be brief.");
    assert_eq!(
        b["messages"],
        json!([
            {"role": "user", "content": "Weather and time in Oslo?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather",
                 "input": {"city": "Oslo", "unit": "celsius"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1",
                 "content": "{\"temperature_c\":17}"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "12:00"}]}
        ])
    );
    assert_eq!(
        b["tools"],
        json!([{"name": "get_weather", "description": "Weather.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    );
    // Tool history without tools offered: the tools called are declared; a user turn after
    // the results joins their message.
    let mut h = history();
    h[2].content = "Checking.".into();
    h.push(msg("user", "Thanks!"));
    let b = body(DialectKind::AnthropicMessages, &h, &[]);
    assert_eq!(
        b["tools"],
        json!([{"name": "get_weather", "input_schema": {"type": "object"}},
               {"name": "get_time", "input_schema": {"type": "object"}}])
    );
    assert_eq!(
        b["messages"][1]["content"][0],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(b["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        b["messages"][2]["content"][2],
        json!({"type": "text", "text": "Thanks!"})
    );
}

#[test]
fn responses_body() {
    let b = body(DialectKind::OpenaiResponses, &history(), &[small_tool()]);
    assert_eq!(b["instructions"], "Be brief.");
    assert_eq!(
        b["input"],
        json!([
            {"role": "user", "content": "Weather and time in Oslo?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": "{\"city\":\"Oslo\",\"unit\":\"celsius\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_time",
             "arguments": "not json"},
            {"type": "function_call_output", "call_id": "call_1",
             "output": "{\"temperature_c\":17}"},
            {"type": "function_call_output", "call_id": "call_2", "output": "12:00"}
        ])
    );
    assert_eq!(
        b["tools"],
        json!([{"type": "function", "name": "get_weather", "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": false}])
    );
}

#[test]
fn gemini_body() {
    let b = body(DialectKind::Gemini, &history(), &[small_tool()]);
    assert_eq!(
        b["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather and time in Oslo?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather",
                                  "args": {"city": "Oslo", "unit": "celsius"}},
                 "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "get_time", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather",
                                      "response": {"temperature_c": 17}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}}]}
        ])
    );
    assert_eq!(
        b["tools"],
        json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}])
    );
}

#[test]
fn ollama_body() {
    let b = body(DialectKind::Ollama, &history(), &[small_tool()]);
    assert_eq!(
        b["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather and time in Oslo?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather",
                              "arguments": {"city": "Oslo", "unit": "celsius"}}},
                {"function": {"name": "get_time", "arguments": {}}}]},
            {"role": "tool", "content": "{\"temperature_c\":17}", "tool_name": "get_weather"},
            {"role": "tool", "content": "12:00", "tool_name": "get_time"}
        ])
    );
    assert_eq!(
        b["tools"],
        body(DialectKind::OpenaiChat, &history(), &[small_tool()])["tools"]
    );
}

#[test]
fn bedrock_body() {
    let b = body(DialectKind::BedrockConverse, &history(), &[small_tool()]);
    assert_eq!(b["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        b["messages"],
        json!([
            {"role": "user", "content": [{"text": "Weather and time in Oslo?"}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "call_1", "name": "get_weather",
                             "input": {"city": "Oslo", "unit": "celsius"}}},
                {"toolUse": {"toolUseId": "call_2", "name": "get_time", "input": {}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_1",
                                "content": [{"text": "{\"temperature_c\":17}"}]}},
                {"toolResult": {"toolUseId": "call_2", "content": [{"text": "12:00"}]}}]}
        ])
    );
    assert_eq!(
        b["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather.",
                "inputSchema": {"json": {"type": "object",
                                         "properties": {"city": {"type": "string"}}}}}}]})
    );
    // Tool history without tools offered still declares the tools (Bedrock requires it).
    let b = body(DialectKind::BedrockConverse, &history(), &[]);
    assert_eq!(
        b["toolConfig"]["tools"][1],
        json!({"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}})
    );
}

#[test]
fn completions_ignore_tools() {
    let b = body(
        DialectKind::OpenaiCompletions,
        &history()[..2],
        &[small_tool()],
    );
    assert!(b.get("tools").is_none(), "{b}");
}

// ---- decoders on recorded streams ----

fn fixture(dialect: DialectKind, name: &str) -> Vec<u8> {
    let dir = match dialect {
        DialectKind::Gemini => "gemini",
        _ => unreachable!(),
    };
    let path = format!(
        "{}/tests/fixtures/sse/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn gemini_parallel_calls_keep_the_signature_of_their_part() {
    let bytes = fixture(DialectKind::Gemini, "function_call_signature.txt");
    let got = common::decode(DialectKind::Gemini, &bytes, None).expect("decodes");
    let tool = |text: &str| Signal::Output {
        kind: OutputKind::ToolCall,
        text: text.into(),
    };
    assert_eq!(
        got[..5],
        [
            Signal::Model("gemini-probe-pro-001".into()),
            Signal::ToolCall {
                id: None,
                name: "get_weather".into(),
                signature: Some("CpQBAdHtim9sIGRlIHBydWViYQ==".into()),
            },
            tool(r#"{"city":"Oslo","unit":"celsius"}"#),
            Signal::ToolCall {
                id: None,
                name: "get_time".into(),
                signature: None,
            },
            tool(r#"{"tz":"Europe/Oslo"}"#),
        ]
    );
    assert_eq!(got.last(), Some(&Signal::FinishReason("STOP".into())));
}

#[test]
fn openai_parallel_calls_in_one_chunk_are_told_apart() {
    let mut d = DialectKind::OpenaiChat.decoder();
    let mut out = Vec::new();
    for data in [
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\""}},{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":""}}]}}]}"#,
        // Some servers repeat the id on every chunk: still the same call.
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"arguments":"{}"}}]}}]}"#,
    ] {
        d.decode(
            &inferprobe::probe::dialect::FramedEvent { event: "", data },
            &mut out,
        )
        .expect("decodes");
    }
    let start = |id: &str, name: &str| Signal::ToolCall {
        id: Some(id.into()),
        name: name.into(),
        signature: None,
    };
    let args = |text: &str| Signal::Output {
        kind: OutputKind::ToolCall,
        text: text.into(),
    };
    assert_eq!(
        out,
        [
            start("call_a", "f"),
            args("{\"x\""),
            start("call_b", "g"),
            args("{}")
        ]
    );
}

// ---- against botocore (the AWS SDK for Python), where python3 can import it ----

const BOTOCORE: &str = r#"
import json, sys
import botocore.session
from botocore import parsers
from botocore.eventstream import EventStream
from botocore.validate import ParamValidator

job = json.load(sys.stdin)
op = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("ConverseStream")
params = dict(job["body"], modelId="m")
report = ParamValidator().validate(params, op.input_shape)
class Raw:
    def __init__(self, b): self.b = b
    def stream(self): yield self.b
    def close(self): pass
events = list(EventStream(Raw(bytes.fromhex(job["hex"])), op.output_shape.members["stream"],
                          parsers.EventStreamJSONParser(), "ConverseStream"))
print(json.dumps({"errors": report.generate_report(), "events": events}))
"#;

#[tokio::test]
async fn botocore_accepts_the_tool_body_and_parses_the_simulators_tool_use() {
    let body = body(DialectKind::BedrockConverse, &history(), &[weather()]);
    let sim = common::sim("ttft: 10ms\nitl: 2ms\noutput_tokens: 3\n").await;
    engine::install_crypto_provider();
    let mut ask = body.clone();
    ask["messages"] = json!([{"role": "user", "content": [{"text": "Weather in Oslo?"}]}]);
    let resp = reqwest::Client::new()
        .post(format!("{}/model/m/converse-stream", sim.base_url()))
        .body(ask.to_string())
        .send()
        .await
        .expect("send");
    let stream = resp.bytes().await.expect("body");
    sim.shutdown().await;
    let hex: String = stream.iter().map(|x| format!("{x:02x}")).collect();
    let Some(out) = common::botocore(BOTOCORE, &json!({"body": body, "hex": hex})) else {
        return;
    };
    assert_eq!(out["errors"], "", "botocore rejects the request body");
    let events = out["events"].as_array().expect("events");
    let start = events
        .iter()
        .find_map(|e| e.get("contentBlockStart"))
        .expect("a contentBlockStart");
    assert_eq!(start["start"]["toolUse"]["name"], "get_weather");
    let input: String = events
        .iter()
        .filter_map(|e| e["contentBlockDelta"]["delta"]["toolUse"]["input"].as_str())
        .collect();
    let args: Value = serde_json::from_str(&input).expect("JSON arguments");
    inferprobe::journey::schema::validate(&weather_schema(), &args).expect("valid arguments");
    let stop = events
        .iter()
        .find_map(|e| e.get("messageStop"))
        .expect("messageStop");
    assert_eq!(stop["stopReason"], "tool_use");
}

// ---- against the providers' own Python SDKs, where they can be imported ----
//
// Each SDK streams a tool call from the simulator with its own stream reader and accumulator,
// then sends the tool's result back in its own message shapes. Python is `python3`, or
// `INFERPROBE_SDK_PYTHON` (e.g. a virtual environment with `openai`, `anthropic`,
// `google-genai` and `ollama`); an SDK that cannot be imported is skipped with a message.

const SDKS: &str = r##"
import json, sys
root = sys.argv[1]
schema = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}
out = {}
def run(name, f):
    try:
        out[name] = f()
    except ImportError as e:
        out[name] = {"skipped": str(e)}
    except Exception as e:
        out[name] = {"error": f"{type(e).__name__}: {e}"}

def openai_chat():
    import openai
    c = openai.OpenAI(base_url=root + "/v1", api_key="k")
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "w", "parameters": schema}}]
    msgs = [{"role": "user", "content": "Weather in Oslo?"}]
    with c.chat.completions.stream(model="m", messages=msgs, tools=tools, max_tokens=64) as s:
        final = s.get_final_completion()
    ch = final.choices[0]
    tc = ch.message.tool_calls[0]
    msgs += [ch.message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": tc.id, "content": '{"sky": "drizzle"}'}]
    with c.chat.completions.stream(model="m", messages=msgs, tools=tools, max_tokens=64) as s:
        f2 = s.get_final_completion()
    return {"finish": ch.finish_reason, "name": tc.function.name, "args": json.loads(tc.function.arguments), "id": tc.id,
            "answer": f2.choices[0].message.content}

def openai_responses():
    import openai
    c = openai.OpenAI(base_url=root + "/v1", api_key="k")
    tools = [{"type": "function", "name": "get_weather", "description": "w", "parameters": schema, "strict": False}]
    with c.responses.stream(model="m", input="Weather in Oslo?", tools=tools, max_output_tokens=64) as s:
        final = s.get_final_response()
    fc = [o for o in final.output if o.type == "function_call"][0]
    inp = [{"role": "user", "content": "Weather in Oslo?"}, {"type": "function_call", "call_id": fc.call_id, "name": fc.name, "arguments": fc.arguments},
           {"type": "function_call_output", "call_id": fc.call_id, "output": '{"sky": "drizzle"}'}]
    with c.responses.stream(model="m", input=inp, tools=tools, max_output_tokens=64) as s:
        f2 = s.get_final_response()
    return {"status": final.status, "name": fc.name, "args": json.loads(fc.arguments), "id": fc.call_id, "answer": f2.output_text}

def anthropic_messages():
    import anthropic
    c = anthropic.Anthropic(base_url=root, api_key="k")
    tools = [{"name": "get_weather", "description": "w", "input_schema": schema}]
    msgs = [{"role": "user", "content": "Weather in Oslo?"}]
    with c.messages.stream(model="m", max_tokens=64, messages=msgs, tools=tools) as s:
        final = s.get_final_message()
    tu = [b for b in final.content if b.type == "tool_use"][0]
    msgs += [{"role": "assistant", "content": [b.model_dump() for b in final.content]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": '{"sky": "drizzle"}'}]}]
    with c.messages.stream(model="m", max_tokens=64, messages=msgs, tools=tools) as s:
        f2 = s.get_final_message()
    return {"stop": final.stop_reason, "name": tu.name, "args": tu.input, "id": tu.id, "answer": f2.content[0].text}

def gemini():
    from google import genai
    from google.genai import types
    c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=root))
    cfg = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather", description="w", parameters_json_schema=schema)])], max_output_tokens=64)
    chunks = list(c.models.generate_content_stream(model="m", contents="Weather in Oslo?", config=cfg))
    parts = [p for ch in chunks for cand in (ch.candidates or []) for p in (cand.content.parts or [])]
    fcp = [p for p in parts if p.function_call][0]
    finish = [cand.finish_reason for ch in chunks for cand in (ch.candidates or []) if cand.finish_reason][-1]
    contents = [types.Content(role="user", parts=[types.Part(text="Weather in Oslo?")]),
                types.Content(role="model", parts=[fcp]),
                types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"sky": "drizzle"})])]
    ans = "".join(ch.text or "" for ch in c.models.generate_content_stream(model="m", contents=contents, config=cfg))
    return {"finish": getattr(finish, "value", str(finish)), "name": fcp.function_call.name, "args": fcp.function_call.args, "signature": bool(fcp.thought_signature), "answer": ans}

def ollama_chat():
    import ollama
    c = ollama.Client(host=root)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "w", "parameters": schema}}]
    msgs = [{"role": "user", "content": "Weather in Oslo?"}]
    calls, done = [], None
    for ch in c.chat(model="m", messages=msgs, tools=tools, stream=True):
        calls += ch.message.tool_calls or []
        if ch.done: done = ch.done_reason
    tc = calls[0]
    msgs += [{"role": "assistant", "content": "", "tool_calls": [tc.model_dump()]}, {"role": "tool", "content": '{"sky": "drizzle"}', "tool_name": tc.function.name}]
    ans = "".join(ch.message.content or "" for ch in c.chat(model="m", messages=msgs, tools=tools, stream=True))
    return {"done_reason": done, "name": tc.function.name, "args": dict(tc.function.arguments), "answer": ans}

for n, f in [("openai-chat", openai_chat), ("openai-responses", openai_responses), ("anthropic", anthropic_messages), ("gemini", gemini), ("ollama", ollama_chat)]:
    run(n, f)
print(json.dumps(out, default=str))
"##;

#[tokio::test]
async fn official_sdks_read_the_simulators_tool_calls() {
    use std::process::Command;
    let python = std::env::var("INFERPROBE_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    let sim = common::sim("ttft: 10ms\nitl: 2ms\noutput_tokens: 6\n").await;
    let root = sim.base_url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python).args(["-c", SDKS, &root]).output()
    })
    .await
    .expect("join");
    sim.shutdown().await;
    let Ok(out) = out else {
        eprintln!("SKIPPED: no python to run the SDKs");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_slice(&out.stdout).expect("JSON from the SDK script");
    let expected_finish = [
        ("openai-chat", "finish", "tool_calls"),
        ("openai-responses", "status", "completed"),
        ("anthropic", "stop", "tool_use"),
        ("gemini", "finish", "STOP"),
        ("ollama", "done_reason", "stop"),
    ];
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                        "required": ["city"]});
    for (sdk, field, finish) in expected_finish {
        let r = &results[sdk];
        if let Some(why) = r.get("skipped") {
            eprintln!("SKIPPED: {sdk}: {why}");
            continue;
        }
        assert!(r.get("error").is_none(), "{sdk}: {r}");
        assert_eq!(r[field], finish, "{sdk}: {r}");
        assert_eq!(r["name"], "get_weather", "{sdk}: {r}");
        inferprobe::journey::schema::validate(&schema, &r["args"])
            .unwrap_or_else(|e| panic!("{sdk}: {e}"));
        let answer = r["answer"].as_str().unwrap_or_default();
        assert!(answer.contains("drizzle"), "{sdk}: {answer:?}");
    }
    if results["gemini"].get("signature").is_some() {
        assert_eq!(results["gemini"]["signature"], true);
    }
}

// ---- arguments for arbitrary schemas ----

/// A random schema of the subset inferprobe checks (`inferprobe::journey::schema`), with
/// satisfiable bounds.
fn random_schema(rng: &mut impl rand::Rng, depth: u32) -> Value {
    let pick = if depth >= 3 {
        rng.random_range(0..5)
    } else {
        rng.random_range(0..8)
    };
    let mut s = match pick {
        0 => {
            let mut s = json!({"type": "string"});
            if rng.random_bool(0.5) {
                s["minLength"] = json!(rng.random_range(0..20));
            }
            if rng.random_bool(0.3) {
                s["maxLength"] = json!(rng.random_range(20..40));
            }
            s
        }
        1 | 2 => {
            let ty = if pick == 1 { "integer" } else { "number" };
            let mut s = json!({"type": ty});
            let lo = rng.random_range(-50..50);
            match rng.random_range(0..4) {
                0 => {}
                1 => s["minimum"] = json!(lo),
                2 => s["maximum"] = json!(lo),
                _ => {
                    s["minimum"] = json!(lo);
                    s["maximum"] = json!(lo + rng.random_range(0..9));
                }
            }
            s
        }
        3 => json!({"type": "boolean"}),
        4 => json!({"enum": ["red", "green", 3]}),
        5 => {
            let mut s = json!({"type": "array", "items": random_schema(rng, depth + 1)});
            if rng.random_bool(0.5) {
                s["minItems"] = json!(rng.random_range(0..4));
            }
            s
        }
        6 => json!({"anyOf": [random_schema(rng, depth + 1), {"type": "null"}]}),
        _ => random_object(rng, depth + 1),
    };
    if rng.random_bool(0.1) {
        s["nullable"] = json!(true);
    }
    s
}

fn random_object(rng: &mut impl rand::Rng, depth: u32) -> Value {
    let n = rng.random_range(0..5);
    let mut props = Map::new();
    let mut required = Vec::new();
    for i in 0..n {
        let name = format!("p{i}");
        if rng.random_bool(0.5) {
            required.push(json!(name));
        }
        props.insert(name, random_schema(rng, depth));
    }
    json!({"type": "object", "properties": props, "required": required,
           "additionalProperties": false})
}

#[tokio::test]
async fn the_simulators_arguments_match_arbitrary_schemas() {
    use rand::SeedableRng;
    let sim = common::sim("ttft: 1ms\nitl: 1ms\noutput_tokens: 2\n").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20_261_206);
    let dialects: Vec<DialectKind> = DialectKind::ALL
        .into_iter()
        .filter(|d| d.supports_tools())
        .collect();
    for i in 0..60 {
        let schema = random_object(&mut rng, 0);
        inferprobe::journey::schema::supported(&schema).expect("a schema of the subset");
        let dialect = dialects[i % dialects.len()];
        let t = common::sim_target(dialect, simulator_base_url(&sim.base_url(), dialect));
        let mut s = asking();
        s.max_tokens = 4096;
        s.tools[0].parameters = schema.clone();
        s.checks.expect_tool = Some(ExpectTool {
            name: "get_weather".into(),
            schema: schema.clone(),
        });
        let o = probe(&t, &s).await;
        assert_eq!(
            o.result,
            ProbeResult::Success,
            "{dialect:?} schema {schema}: {:?} {:?}",
            o.error,
            o.tool_calls
        );
    }
    sim.shutdown().await;
}

#[test]
fn ollama_tool_fixture_signals_the_call_then_its_arguments() {
    let read = |dir: &str, name: &str| {
        let path = format!(
            "{}/tests/fixtures/sse/{dir}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let tool = |text: &str| Signal::Output {
        kind: OutputKind::ToolCall,
        text: text.into(),
    };
    let got = common::decode(
        DialectKind::Ollama,
        &read("ollama", "tool_call.ndjson"),
        None,
    )
    .expect("decodes");
    assert_eq!(
        got[..3],
        [
            Signal::Model("llama3.1:8b".into()),
            Signal::ToolCall {
                id: Some("call_7kq2m1xz".into()),
                name: "get_weather".into(),
                signature: None,
            },
            tool(r#"{"city":"Lisbon","unit":"celsius"}"#),
        ]
    );
    assert_eq!(got[3], Signal::FinishReason("stop".into()));
    assert_eq!(got.last(), Some(&Signal::Done));
}

#[tokio::test]
async fn tool_call_pieces_are_paced_and_recorded_like_tokens() {
    let sim = common::sim("ttft: 80ms\nitl: 20ms\noutput_tokens: 5\n").await;
    for dialect in [DialectKind::OpenaiChat, DialectKind::BedrockConverse] {
        let t = common::sim_target(dialect, simulator_base_url(&sim.base_url(), dialect));
        let o = probe(&t, &asking()).await;
        assert_eq!(o.result, ProbeResult::Success, "{dialect:?}: {:?}", o.error);
        let gt = sim.ground_truth();
        let r = gt.last().expect("a record");
        // One recorded token per argument piece, each an output event of the probe.
        assert!(r.tokens.len() >= 3, "{dialect:?}: {}", r.tokens.len());
        assert_eq!(r.tokens.len() as u64, o.output_events, "{dialect:?}");
        let first = r.tokens[0] - r.arrival;
        assert!(first >= Duration::from_millis(80), "{dialect:?}: {first:?}");
        for w in r.tokens.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(15), "{dialect:?}");
        }
        assert!(o.ttft.expect("TTFT") >= first, "{dialect:?}");
    }
    sim.shutdown().await;
}
