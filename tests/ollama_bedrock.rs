//! The Ollama (NDJSON) and Bedrock ConverseStream (AWS event-stream) dialects on their fixtures
//! (`tests/fixtures/sse/ollama/`, `tests/fixtures/sse/bedrock-converse/`, each with a
//! SOURCES.md): first through the real framer under several chunkings, then through the whole
//! engine against a scripted local upstream that serves the fixture bytes, including bodies cut
//! short.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::decode;
use inferprobe::config::{BaseUrl, Target};
use inferprobe::probe::dialect::{DialectKind, ErrorCondition, OutputKind, Signal};
use inferprobe::probe::engine;
use inferprobe::probe::framing::aws_eventstream::encode_readable;
use inferprobe::probe::trace::TokenSource;
use inferprobe::probe::{Outcome, ProbeResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const O: DialectKind = DialectKind::Ollama;
const B: DialectKind = DialectKind::BedrockConverse;

fn read(dialect: DialectKind, name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/sse/{}/{name}",
        env!("CARGO_MANIFEST_DIR"),
        dialect.as_str()
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The bytes a server sends for a fixture: NDJSON as is, `.events` encoded to frames.
fn body(dialect: DialectKind, name: &str) -> Vec<u8> {
    let text = read(dialect, name);
    if dialect == O {
        return text.into_bytes();
    }
    encode_readable(&text)
}

/// The same signals whatever the chunking (and, for NDJSON, the line ending).
fn decode_every_way(dialect: DialectKind, name: &str) -> Result<Vec<Signal>, String> {
    let bytes = body(dialect, name);
    let mut variants = vec![bytes.clone()];
    if dialect == O {
        variants.push(
            String::from_utf8_lossy(&bytes)
                .replace('\n', "\r\n")
                .into_bytes(),
        );
    }
    let first = decode(dialect, &bytes, None);
    for v in &variants {
        for size in [Some(1), Some(7), None] {
            assert_eq!(
                decode(dialect, v, size),
                first,
                "{}/{name} chunk={size:?}",
                dialect.as_str()
            );
        }
    }
    first
}

fn outputs(signals: &[Signal]) -> Vec<(OutputKind, String)> {
    signals
        .iter()
        .filter_map(|s| match s {
            Signal::Output { kind, text } => Some((*kind, text.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn ollama_fixtures_through_the_framer() {
    let s = decode_every_way(O, "chat.ndjson").expect("chat");
    assert_eq!(
        outputs(&s).into_iter().map(|o| o.1).collect::<String>(),
        "Blue light scatters."
    );
    assert_eq!(s.last(), Some(&Signal::Done));
    let timings: Vec<_> = s
        .iter()
        .filter_map(|s| match s {
            Signal::ServerTiming { name, seconds } => Some((*name, *seconds)),
            _ => None,
        })
        .collect();
    assert_eq!(
        timings,
        [
            ("load", 0.021_503_417),
            ("prompt_eval", 0.118_204_25),
            ("eval", 0.064_411_5),
            ("total", 0.250_876_041)
        ]
    );
    let s = decode_every_way(O, "thinking.ndjson").expect("thinking");
    assert_eq!(outputs(&s)[0].0, OutputKind::Reasoning);
    let s = decode_every_way(O, "tool_call.ndjson").expect("tool call");
    let start = Signal::ToolCall {
        id: Some("call_7kq2m1xz".into()),
        name: "get_weather".into(),
        signature: None,
    };
    assert_eq!(s.iter().filter(|x| **x == start).count(), 1, "{s:?}");
    assert_eq!(
        outputs(&s),
        [(
            OutputKind::ToolCall,
            r#"{"city":"Lisbon","unit":"celsius"}"#.to_string()
        )]
    );
    let s = decode_every_way(O, "rate_limited.ndjson").expect("rate limited");
    assert!(matches!(
        s.last(),
        Some(Signal::Error {
            kind: ErrorCondition::RateLimited,
            ..
        })
    ));
    let s = decode_every_way(O, "truncated.ndjson").expect("truncated");
    assert!(!s.contains(&Signal::Done));
}

#[test]
fn bedrock_fixtures_through_the_framer() {
    let s = decode_every_way(B, "text.events").expect("text");
    assert_eq!(
        outputs(&s).into_iter().map(|o| o.1).collect::<String>(),
        "Tides follow the moon."
    );
    assert!(s.contains(&Signal::ServerTiming {
        name: "latency",
        seconds: 0.412
    }));
    assert_eq!(s.last(), Some(&Signal::Done));
    let s = decode_every_way(B, "tool_use.events").expect("tool use");
    let start = Signal::ToolCall {
        id: Some("tooluse_Zq81kPwd3xYt".into()),
        name: "get_weather".into(),
        signature: None,
    };
    assert_eq!(s.iter().position(|x| *x == start), Some(0), "{s:?}");
    assert_eq!(
        outputs(&s).into_iter().map(|o| o.1).collect::<String>(),
        r#"{"city": "Porto"}"#
    );
    let s = decode_every_way(B, "throttled.events").expect("throttled");
    assert!(matches!(
        s.as_slice(),
        [Signal::Error {
            kind: ErrorCondition::RateLimited,
            ..
        }]
    ));
    // Cut inside the last frame: the framer says so at the end of the body.
    let bytes = body(B, "text.events");
    let e = decode(B, &bytes[..bytes.len() - 5], Some(7));
    assert!(e.is_err(), "{e:?}");
}

/// A one-request-per-connection upstream that answers every request with `head` then `body`
/// (in two pieces, 20 ms apart) and closes; it records each request's path and headers.
/// Path and headers of each request received.
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

struct Upstream {
    port: u16,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(content_type: &'static str, body: Vec<u8>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let body = body.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let path = lines
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("")
                        .to_string();
                    let headers = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    seen.lock().expect("lock").push((path, headers));
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let (a, b) = body.split_at(body.len() / 2);
                    let _ = sock.write_all(a).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = sock.write_all(b).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Upstream { port, seen, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn target(dialect: DialectKind, port: u16, model: &str) -> Arc<Target> {
    let loaded = common::load(&format!(
        "global:\n  timeouts: {{connect: 2s, first_token: 5s, idle: 5s, total: 10s}}\n\
         targets:\n  - name: t\n    dialect: {}\n    base_url: http://127.0.0.1:{port}\n    \
         model: \"{model}\"\n    api_key: test-key-ollama-bedrock\n",
        dialect.as_str()
    ));
    loaded.targets[0].clone()
}

async fn probe_with(dialect: DialectKind, model: &str, body: Vec<u8>) -> (Outcome, Upstream) {
    let ct = dialect.content_types()[0];
    let up = Upstream::start(ct, body).await;
    let t = target(dialect, up.port, model);
    let url = match &t.base_url {
        BaseUrl::Url(u) => u.clone(),
        BaseUrl::Simulator => unreachable!(),
    };
    let client = engine::client_for(&Default::default()).expect("client");
    let scenario = t.scenarios[0].0.clone();
    let o = engine::run_probe(&client, &t, &url, &scenario).await;
    (o, up)
}

#[tokio::test]
async fn every_fixture_through_the_engine() {
    let cases: [(DialectKind, &str, ProbeResult); 12] = [
        (O, "chat.ndjson", ProbeResult::Success),
        (O, "thinking.ndjson", ProbeResult::Success),
        (O, "tool_call.ndjson", ProbeResult::Success),
        (O, "error_midstream.ndjson", ProbeResult::ApiError),
        (O, "rate_limited.ndjson", ProbeResult::RateLimited),
        (O, "truncated.ndjson", ProbeResult::StreamAborted),
        (B, "text.events", ProbeResult::Success),
        (B, "reasoning.events", ProbeResult::Success),
        (B, "tool_use.events", ProbeResult::Success),
        (B, "throttled.events", ProbeResult::RateLimited),
        (B, "model_stream_error.events", ProbeResult::ApiError),
        (B, "truncated.events", ProbeResult::StreamAborted),
    ];
    for (dialect, name, want) in cases {
        let (o, _up) = probe_with(dialect, "m", body(dialect, name)).await;
        assert_eq!(o.result, want, "{}/{name}: {:?}", dialect.as_str(), o.error);
    }

    let (o, up) = probe_with(O, "llama3.2:3b", body(O, "chat.ndjson")).await;
    let seen = up.seen.lock().expect("lock").clone();
    assert_eq!(seen[0].0, "/api/chat");
    let header = |name: &str| {
        seen[0]
            .1
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("authorization").as_deref(),
        Some("Bearer test-key-ollama-bedrock")
    );
    assert_eq!(header("accept").as_deref(), Some("application/x-ndjson"));
    assert_eq!((o.output_tokens, o.input_tokens), (4, Some(31)));
    assert_eq!(o.token_source, TokenSource::EvalCount);
    assert_eq!(o.finish_reason.as_deref(), Some("stop"));
    assert_eq!(o.response_model.as_deref(), Some("llama3.2:3b"));
    assert_eq!(o.server_timings.len(), 4, "{:?}", o.server_timings);

    let (o, up) = probe_with(
        B,
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        body(B, "reasoning.events"),
    )
    .await;
    assert_eq!((o.output_tokens, o.input_tokens), (88, Some(1552)));
    assert_eq!(o.token_source, TokenSource::MetadataUsage);
    assert_eq!(o.server_timings, [("latency", 2.38)]);
    assert!(o.ttft.is_some());
    let seen = up.seen.lock().expect("lock").clone();
    assert_eq!(
        seen[0].0, "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream",
        "the model id is one encoded path segment"
    );
}

#[tokio::test]
async fn bodies_cut_short_are_never_a_success() {
    // Ollama: a final line cut inside its JSON.
    let mut b = body(O, "chat.ndjson");
    b.truncate(b.len() - 30);
    let (o, _up) = probe_with(O, "m", b).await;
    assert_eq!(o.result, ProbeResult::StreamAborted, "{:?}", o.error);
    assert!(
        o.error
            .as_deref()
            .unwrap_or("")
            .contains("after 3 output events"),
        "{:?}",
        o.error
    );

    // Bedrock: the last frame (metadata) cut in the middle.
    let mut b = body(B, "text.events");
    b.truncate(b.len() - 20);
    let (o, _up) = probe_with(B, "m", b).await;
    assert_eq!(o.result, ProbeResult::StreamAborted, "{:?}", o.error);

    // Bedrock: a clean end right after messageStop (no metadata) completes the stream; the
    // count falls back to events.
    let text = read(B, "text.events");
    let cut: String = text
        .lines()
        .filter(|l| !l.starts_with("event metadata"))
        .map(|l| format!("{l}\n"))
        .collect();
    let b = encode_readable(&cut);
    let (o, _up) = probe_with(B, "m", b).await;
    assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
    assert_eq!(o.token_source, TokenSource::CountedEvents);
    assert_eq!(o.finish_reason.as_deref(), Some("end_turn"));

    // Bedrock: output, then the body ends before messageStop.
    let (o, _up) = probe_with(B, "m", body(B, "truncated.events")).await;
    assert!(
        o.error
            .as_deref()
            .unwrap_or("")
            .contains("without metadata after messageStop"),
        "{:?}",
        o.error
    );
}

// ---------------------------------------------------------------------------------------------
// Against botocore, the AWS SDK for Python: its SigV4 signer and its ConverseStream parser
// (driven by the bedrock-runtime service model) are an implementation of both formats that
// shares no code with ours. Skipped, with a message, where python3 cannot import botocore.

const BOTOCORE: &str = r#"
import datetime, json, sys
from unittest import mock
import botocore.auth, botocore.session
from botocore import parsers
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStream

job = json.load(sys.stdin)
if job["kind"] == "sign":
    out = []
    for r in job["requests"]:
        creds = Credentials(r["key"], r["secret"], r.get("token"))
        req = AWSRequest(method="POST", url=r["url"], data=r["body"].encode(),
                         headers={"content-type": "application/json"})
        when = datetime.datetime.fromtimestamp(r["time"], datetime.timezone.utc).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            SigV4Auth(creds, "bedrock", r["region"]).add_auth(req)
        out.append(req.headers["Authorization"])
    print(json.dumps(out))
else:
    op = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("ConverseStream")
    class Raw:
        def __init__(self, b): self.b = b
        def stream(self): yield self.b
        def close(self): pass
    events = []
    stream = EventStream(Raw(bytes.fromhex(job["hex"])), op.output_shape.members["stream"],
                         parsers.EventStreamJSONParser(), "ConverseStream")
    try:
        for ev in stream:
            events.append(ev)
    except Exception as e:
        events.append({"exception": e.response["Error"]["Code"]})
    print(json.dumps(events))
"#;

#[test]
fn signatures_match_botocore() {
    use inferprobe::probe::aws::{sign, Credentials, SignInput};
    let cases = [
        (
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-lite-v1%3A0/converse-stream",
            "us-east-1",
            None,
            r#"{"messages":[]}"#,
            1_700_000_000u64,
        ),
        (
            "https://bedrock-runtime.eu-west-3.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aeu-west-3%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
            "eu-west-3",
            Some("IQoJb3JpZ2luX2VjEXAMPLE//token+with/slashes="),
            r#"{"messages":[{"role":"user","content":[{"text":"Grüße"}]}],"inferenceConfig":{"maxTokens":5}}"#,
            1_767_225_599,
        ),
        (
            "http://127.0.0.1:8080/gateway/model/m/converse-stream",
            "ap-south-1",
            None,
            "{}",
            1_600_000_000,
        ),
    ];
    let job = serde_json::json!({
        "kind": "sign",
        "requests": cases.iter().map(|(url, region, token, body, time)| serde_json::json!({
            "url": url, "region": region, "token": token, "body": body, "time": time,
            "key": "AKIDEXAMPLE", "secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        })).collect::<Vec<_>>(),
    });
    let Some(theirs) = common::botocore(BOTOCORE, &job) else {
        return;
    };
    for (i, (url, region, token, body, time)) in cases.iter().enumerate() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
            source: "test".into(),
        };
        let ours = sign(
            &SignInput {
                method: "POST",
                url,
                headers: &[("content-type", "application/json")],
                body: body.as_bytes(),
            },
            &creds,
            region,
            "bedrock",
            std::time::UNIX_EPOCH + Duration::from_secs(*time),
        )
        .expect("sign");
        let auth = ours
            .iter()
            .find(|(n, _)| n == "authorization")
            .and_then(|(_, v)| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(auth, theirs[i].as_str().unwrap_or_default(), "{url}");
    }
}

#[tokio::test]
async fn botocore_parses_the_simulators_converse_stream() {
    let sim = common::sim("ttft: 10ms\nitl: 2ms\noutput_tokens: 3\nreasoning_tokens: 2\n").await;
    let url = format!(
        "{}/model/us.amazon.nova-lite-v1%3A0/converse-stream",
        sim.base_url()
    );
    engine::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut bodies = Vec::new();
    for fault in ["none", "api_error"] {
        let resp = client
            .post(&url)
            .header("x-sim-fault", fault)
            .body(r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#)
            .send()
            .await
            .expect("send");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/vnd.amazon.eventstream")
        );
        bodies.push(resp.bytes().await.expect("body"));
    }
    sim.shutdown().await;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let Some(events) = common::botocore(
        BOTOCORE,
        &serde_json::json!({"kind": "parse", "hex": hex(&bodies[0])}),
    ) else {
        return;
    };
    let names: Vec<String> = events
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e.as_object()?.keys().next().cloned())
        .collect();
    assert_eq!(
        names,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert_eq!(
        events[1]["contentBlockDelta"]["delta"]["reasoningContent"]["text"],
        " alpha"
    );
    assert_eq!(events[5]["contentBlockDelta"]["delta"]["text"], " one");
    assert_eq!(events[10]["metadata"]["usage"]["outputTokens"], 5);
    assert!(events[10]["metadata"]["metrics"]["latencyMs"].as_u64() >= Some(10));
    let Some(events) = common::botocore(
        BOTOCORE,
        &serde_json::json!({"kind": "parse", "hex": hex(&bodies[1])}),
    ) else {
        return;
    };
    assert_eq!(
        events,
        serde_json::json!([{"messageStart": {"role": "assistant"}},
                           {"exception": "modelStreamErrorException"}])
    );
}
