//! The engine against upstreams that misbehave the way real ones do: streams cut without their end
//! marker, keep-alive connections closed under a reused request, redirects, compressed bodies.
//!
//! A scripted HTTP/1.1 server (raw TCP on 127.0.0.1:0) answers each request with bytes written by
//! the test, so every shape on the wire is exact, and it records what it received.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferprobe::config::{BaseUrl, Loaded, Target};
use inferprobe::probe::dialect::{DialectKind, Framing};
use inferprobe::probe::engine::{self, ProbeClient};
use inferprobe::probe::trace::{ConnectionUse, RetryReason};
use inferprobe::probe::{Outcome, ProbeResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does for one request.
#[derive(Clone)]
enum Step {
    Write(Vec<u8>),
    Sleep(Duration),
    /// Close the connection (after the steps before it).
    Close,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Script = Arc<dyn Fn(&Seen, usize) -> Vec<Step> + Send + Sync>;

struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// `script(request, index of the request on its connection)` says what to answer.
    async fn start(script: impl Fn(&Seen, usize) -> Vec<Step> + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(0usize));
        let script: Script = Arc::new(script);
        let task = {
            let seen = seen.clone();
            let conns = conns.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        return;
                    };
                    *conns.lock().unwrap() += 1;
                    tokio::spawn(serve(sock, script.clone(), seen.clone()));
                }
            })
        };
        Upstream {
            port,
            seen,
            conns,
            task,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.conns.lock().unwrap()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut sock: TcpStream, script: Script, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    let mut n_on_conn = 0;
    loop {
        // Read one request: headers, then a Content-Length body.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let req = Seen {
            method,
            path,
            headers,
            body,
        };
        seen.lock().unwrap().push(req.clone());
        for step in script(&req, n_on_conn) {
            match step {
                Step::Write(b) => {
                    if sock.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Close => return,
            }
        }
        n_on_conn += 1;
    }
}

/// The dialects framed as SSE, whose streams these tests write as text. The NDJSON and AWS
/// event-stream dialects (Ollama, Bedrock) get the same hostile bodies in
/// `tests/ollama_bedrock.rs`.
fn sse_dialects() -> impl Iterator<Item = DialectKind> {
    DialectKind::ALL
        .into_iter()
        .filter(|d| d.framing() == Framing::Sse)
}

/// Three answer events, a finish and the end marker, in each dialect's own shape. Returns
/// (events before the finish, the finish event(s), the end marker event).
fn stream_parts(dialect: DialectKind) -> (Vec<String>, Vec<String>, String) {
    let ev = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let data = |d: &str| format!("data: {d}\n\n");
    match dialect {
        DialectKind::OpenaiChat => (
            ["A", "B", "C"]
                .iter()
                .map(|t| {
                    data(&format!(
                        r#"{{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{{"index":0,"delta":{{"content":"{t}"}},"finish_reason":null}}]}}"#
                    ))
                })
                .collect(),
            vec![data(
                r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            )],
            data("[DONE]"),
        ),
        DialectKind::OpenaiCompletions => (
            ["A", "B", "C"]
                .iter()
                .map(|t| {
                    data(&format!(
                        r#"{{"id":"c1","object":"text_completion","model":"m","choices":[{{"index":0,"text":"{t}","finish_reason":null}}]}}"#
                    ))
                })
                .collect(),
            vec![data(
                r#"{"id":"c1","object":"text_completion","model":"m","choices":[{"index":0,"text":"","finish_reason":"stop"}]}"#,
            )],
            data("[DONE]"),
        ),
        DialectKind::AnthropicMessages => {
            let mut before = vec![
                ev(
                    "message_start",
                    r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#,
                ),
                ev(
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                ),
            ];
            for t in ["A", "B", "C"] {
                before.push(ev(
                    "content_block_delta",
                    &format!(
                        r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{t}"}}}}"#
                    ),
                ));
            }
            (
                before,
                vec![
                    ev(
                        "content_block_stop",
                        r#"{"type":"content_block_stop","index":0}"#,
                    ),
                    ev(
                        "message_delta",
                        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
                    ),
                ],
                ev("message_stop", r#"{"type":"message_stop"}"#),
            )
        }
        // The finish reason comes with the end marker: no finish event of its own.
        DialectKind::OpenaiResponses => (
            ["A", "B", "C"]
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    ev(
                        "response.output_text.delta",
                        &format!(
                            r#"{{"type":"response.output_text.delta","sequence_number":{i},"item_id":"msg_1","output_index":0,"content_index":0,"delta":"{t}"}}"#
                        ),
                    )
                })
                .collect(),
            Vec::new(),
            ev(
                "response.completed",
                r#"{"type":"response.completed","sequence_number":3,"response":{"id":"resp_1","status":"completed","model":"m","usage":{"input_tokens":5,"output_tokens":3}}}"#,
            ),
        ),
        // No end marker: a usage-only chunk after the finish stands in for one.
        DialectKind::Gemini => (
            ["A", "B", "C"]
                .iter()
                .map(|t| {
                    data(&format!(
                        r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{t}"}}],"role":"model"}},"index":0}}],"modelVersion":"m"}}"#
                    ))
                })
                .collect(),
            vec![data(
                r#"{"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP","index":0}],"modelVersion":"m"}"#,
            )],
            data(r#"{"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3,"totalTokenCount":8},"modelVersion":"m"}"#),
        ),
        DialectKind::Ollama | DialectKind::BedrockConverse => {
            panic!("{dialect:?} is not framed as SSE: see tests/ollama_bedrock.rs")
        }
    }
}

const SSE_CHUNKED: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                           transfer-encoding: chunked\r\n\r\n";
const SSE_CLOSE: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

fn chunk(s: &str) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", s.len()).into_bytes();
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// A complete chunked stream, kept alive.
fn complete_chunked(dialect: DialectKind) -> Vec<Step> {
    let (before, finish, end) = stream_parts(dialect);
    let mut steps = vec![Step::Write(SSE_CHUNKED.as_bytes().to_vec())];
    for e in before
        .iter()
        .chain(finish.iter())
        .chain(std::iter::once(&end))
    {
        steps.push(Step::Write(chunk(e)));
    }
    steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
    steps
}

fn config(yaml_targets: &str) -> Loaded {
    common::load(&format!(
        "global:\n  timeouts: {{connect: 2s, first_token: 5s, idle: 5s, total: 10s}}\n\
         targets:\n{yaml_targets}"
    ))
}

fn target_yaml(name: &str, dialect: DialectKind, base: &str, extra: &str) -> String {
    let base = match dialect {
        DialectKind::AnthropicMessages => base.to_string(),
        _ => format!("{base}/v1"),
    };
    format!(
        "  - name: {name}\n    dialect: {}\n    base_url: {base}\n    model: m\n{extra}",
        dialect.as_str()
    )
}

fn one_target(dialect: DialectKind, base: &str, extra: &str) -> Arc<Target> {
    let loaded = config(&target_yaml("t", dialect, base, extra));
    loaded.targets[0].clone()
}

async fn probe(client: &ProbeClient, t: &Target) -> Outcome {
    let url = match &t.base_url {
        BaseUrl::Url(u) => u.clone(),
        BaseUrl::Simulator => unreachable!(),
    };
    let scenario = t.scenarios[0].0.clone();
    engine::run_probe(client, t, &url, &scenario).await
}

fn client() -> ProbeClient {
    engine::client_for(&Default::default()).expect("client")
}

#[tokio::test]
async fn a_stream_cut_before_its_end_is_never_a_success() {
    for dialect in sse_dialects() {
        let (before, finish, end) = stream_parts(dialect);
        let body: String = before.concat();
        let half_end = &end[..end.len() / 2];
        // (name, bytes after the headers) of each way a body can stop short.
        let cuts: Vec<(&str, String, bool)> = vec![
            // Clean close after three output events, no end marker.
            ("clean close", body.clone(), false),
            // The chunked terminator after three output events, no end marker.
            ("chunked end", body.clone(), true),
            // The connection closes in the middle of the end marker's line.
            ("mid-line", format!("{body}{half_end}"), false),
            // The end marker's data line came, its blank line never did.
            (
                "no blank line",
                format!("{body}{}", end.trim_end_matches('\n')),
                false,
            ),
            // After the finish, an event cut off mid-line.
            (
                "cut after finish",
                format!("{body}{}{half_end}", finish.concat()),
                false,
            ),
        ];
        for (name, bytes, chunked) in cuts {
            let up = Upstream::start(move |_, _| {
                if chunked {
                    vec![
                        Step::Write(SSE_CHUNKED.as_bytes().to_vec()),
                        Step::Write(chunk(&bytes)),
                        Step::Write(b"0\r\n\r\n".to_vec()),
                        Step::Close,
                    ]
                } else {
                    vec![
                        Step::Write(SSE_CLOSE.as_bytes().to_vec()),
                        Step::Write(bytes.clone().into_bytes()),
                        Step::Close,
                    ]
                }
            })
            .await;
            let t = one_target(dialect, &up.base(), "");
            let o = probe(&client(), &t).await;
            let what = format!("{dialect:?} {name}");
            assert_eq!(
                o.result,
                ProbeResult::StreamAborted,
                "{what}: {:?}",
                o.error
            );
            let e = o.error.as_deref().unwrap_or("");
            assert!(e.contains("after 3 output events"), "{what}: {e}");
            assert!(o.ttft.is_some(), "{what}: reached milestones stay");
            assert_eq!(o.e2e, None, "{what}: no E2E for a cut stream");
            assert_eq!(o.tpot, None, "{what}: no TPOT for a cut stream");
            assert_eq!(o.output_tokens_per_second, None, "{what}");
        }
    }
}

#[tokio::test]
async fn a_finish_reason_then_a_clean_end_completes_an_openai_stream_only() {
    for dialect in sse_dialects() {
        let (before, finish, _) = stream_parts(dialect);
        let body = format!("{}{}", before.concat(), finish.concat());
        let up = Upstream::start(move |_, _| {
            vec![
                Step::Write(SSE_CLOSE.as_bytes().to_vec()),
                Step::Write(body.clone().into_bytes()),
                Step::Close,
            ]
        })
        .await;
        let t = one_target(dialect, &up.base(), "");
        let o = probe(&client(), &t).await;
        if dialect.finish_reason_ends_stream() {
            assert_eq!(o.result, ProbeResult::Success, "{dialect:?}: {:?}", o.error);
            assert!(o.e2e.is_some());
            assert_eq!(
                o.finish_reason.map(|f| f.to_ascii_lowercase()).as_deref(),
                Some("stop")
            );
        } else {
            // Anthropic: stop_reason in message_delta, but no message_stop.
            assert_eq!(o.result, ProbeResult::StreamAborted, "{dialect:?}");
            let e = o.error.as_deref().unwrap_or("");
            let want = format!("without {} after 3 output events", dialect.end_marker());
            assert!(e.contains(&want), "{e}");
        }
    }
}

#[tokio::test]
async fn a_kept_alive_connection_is_reused_even_when_the_body_ends_after_the_marker() {
    for dialect in sse_dialects() {
        // The body's own end comes 300 ms after the end marker: the engine reads on to it, so
        // the connection goes back to the pool.
        let up = Upstream::start(move |_, _| {
            let mut steps = complete_chunked(dialect);
            let last = steps.pop().expect("terminator");
            steps.push(Step::Sleep(Duration::from_millis(300)));
            steps.push(last);
            steps
        })
        .await;
        let t = one_target(dialect, &up.base(), "");
        let c = client();
        let first = probe(&c, &t).await;
        assert_eq!(first.result, ProbeResult::Success, "{:?}", first.error);
        assert_eq!(first.connection.used, Some(ConnectionUse::New));
        let second = probe(&c, &t).await;
        assert_eq!(second.result, ProbeResult::Success, "{:?}", second.error);
        assert_eq!(
            second.connection.used,
            Some(ConnectionUse::Reused),
            "{dialect:?}"
        );
        assert_eq!(second.connection.retried, None);
        assert_eq!(
            up.connections(),
            1,
            "{dialect:?}: one connection for both probes"
        );
        // The timings end at the marker, not at the body's end 300 ms later.
        assert!(
            second.e2e.unwrap() < Duration::from_millis(280),
            "{:?}",
            second.e2e
        );
    }
}

#[tokio::test]
async fn fresh_mode_and_a_short_keep_alive_open_a_connection_per_probe() {
    let dialect = DialectKind::OpenaiChat;
    let up = Upstream::start(move |_, _| complete_chunked(dialect)).await;
    let t = one_target(dialect, &up.base(), "    connection: fresh\n");
    let c = client();
    for _ in 0..3 {
        let o = probe(&c, &t).await;
        assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
        assert_eq!(o.connection.used, Some(ConnectionUse::New));
    }
    assert_eq!(up.connections(), 3);

    // A server that keeps idle connections for one second only: never worth reusing.
    let up = Upstream::start(move |_, _| {
        let mut steps = complete_chunked(dialect);
        if let Step::Write(h) = &mut steps[0] {
            *h = SSE_CHUNKED
                .replace("\r\n\r\n", "\r\nkeep-alive: timeout=1, max=100\r\n\r\n")
                .into_bytes();
        }
        steps
    })
    .await;
    let t = one_target(dialect, &up.base(), "");
    let c = client();
    for _ in 0..3 {
        let o = probe(&c, &t).await;
        assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
        assert_eq!(o.connection.used, Some(ConnectionUse::New));
    }
    assert_eq!(up.connections(), 3);

    // An idle timeout shorter than the gap between probes: a new connection, no retry.
    let up = Upstream::start(move |_, _| complete_chunked(dialect)).await;
    let t = one_target(dialect, &up.base(), "    connection_idle_timeout: 100ms\n");
    let c = client();
    assert_eq!(probe(&c, &t).await.result, ProbeResult::Success);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let o = probe(&c, &t).await;
    assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
    assert_eq!(o.connection.used, Some(ConnectionUse::New));
    assert_eq!(o.connection.retried, None);
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn a_pooled_connection_closed_under_the_next_request_is_retried_once() {
    let dialect = DialectKind::OpenaiChat;
    // Each connection serves one stream, then closes when the next request arrives on it
    // without answering: the server-side keep-alive close racing the client's reuse.
    let up = Upstream::start(move |_, n| {
        if n == 0 {
            complete_chunked(dialect)
        } else {
            vec![Step::Close]
        }
    })
    .await;
    let t = one_target(dialect, &up.base(), "");
    let c = client();
    let first = probe(&c, &t).await;
    assert_eq!(first.result, ProbeResult::Success, "{:?}", first.error);
    assert_eq!(first.connection.retried, None);
    let second = probe(&c, &t).await;
    assert_eq!(second.result, ProbeResult::Success, "{:?}", second.error);
    assert_eq!(
        second.connection.retried,
        Some(RetryReason::StaleConnection)
    );
    assert_eq!(second.connection.used, Some(ConnectionUse::New));
    assert_eq!(up.connections(), 2);
    assert_eq!(up.seen().len(), 3, "the stale request, then its retry");

    // The retry is counted.
    let registry = prometheus::Registry::new();
    let metrics =
        inferprobe::metrics::ProbeMetrics::register(&registry, &Default::default()).unwrap();
    metrics.precreate(&t.name, &t.model, "default");
    metrics.observe(&first);
    metrics.observe(&second);
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    let l = |extra: (&'static str, &'static str)| {
        [
            ("target", "t"),
            ("model", "m"),
            ("scenario", "default"),
            extra,
        ]
    };
    assert_eq!(
        common::sample(
            &text,
            "inferprobe_probe_retries_total",
            &l(("reason", "stale_connection"))
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        common::sample(
            &text,
            "inferprobe_probe_connections_total",
            &l(("connection", "new"))
        ),
        Some(2.0)
    );
    assert_eq!(
        common::sample(
            &text,
            "inferprobe_probe_connections_total",
            &l(("connection", "reused"))
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn no_retry_once_response_bytes_arrived() {
    let dialect = DialectKind::OpenaiChat;
    let (before, _, _) = stream_parts(dialect);
    let up = Upstream::start(move |_, n| {
        if n == 0 {
            complete_chunked(dialect)
        } else {
            vec![
                Step::Write(SSE_CHUNKED.as_bytes().to_vec()),
                Step::Write(chunk(&before[0])),
                Step::Close,
            ]
        }
    })
    .await;
    let t = one_target(dialect, &up.base(), "");
    let c = client();
    assert_eq!(probe(&c, &t).await.result, ProbeResult::Success);
    let o = probe(&c, &t).await;
    assert_eq!(o.result, ProbeResult::StreamAborted, "{:?}", o.error);
    assert_eq!(o.connection.retried, None);
    assert_eq!(o.connection.used, Some(ConnectionUse::Reused));
    assert_eq!(up.seen().len(), 2);
}

fn redirect(status: u16, location: &str) -> Vec<Step> {
    vec![Step::Write(
        format!("HTTP/1.1 {status} Moved\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
            .into_bytes(),
    )]
}

const SECRET_HEADERS: &str =
    "    api_key: {env: UPSTREAM_TEST_KEY}\n    headers: {x-tenant-token: tenant-secret-42}\n";

#[tokio::test]
async fn redirects_are_not_followed_unless_asked_and_never_carry_credentials_away() {
    std::env::set_var("UPSTREAM_TEST_KEY", "sk-upstream-test-key-123");
    for dialect in sse_dialects() {
        let other = Upstream::start(move |_, _| complete_chunked(dialect)).await;
        let other_base = other.base();
        let path = if dialect == DialectKind::AnthropicMessages {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        let target_url = format!("{other_base}{path}");
        let up = Upstream::start(move |_, _| redirect(302, &target_url)).await;

        // Not followed: a failure that names the status and the new host.
        let t = one_target(dialect, &up.base(), SECRET_HEADERS);
        let o = probe(&client(), &t).await;
        assert_eq!(o.result, ProbeResult::Http4xx, "{dialect:?}");
        assert_eq!(o.http_status, Some(302));
        let e = o.error.as_deref().unwrap_or("");
        assert!(e.contains("302 redirect to 127.0.0.1"), "{e}");
        assert!(e.contains("follow_redirects"), "{e}");
        assert!(other.seen().is_empty());

        // Followed to another origin: same method and body, no credential, no custom header.
        let t = one_target(
            dialect,
            &up.base(),
            &format!("{SECRET_HEADERS}    follow_redirects: true\n"),
        );
        let o = probe(&client(), &t).await;
        assert_eq!(o.result, ProbeResult::Success, "{dialect:?}: {:?}", o.error);
        assert_eq!(o.connection.redirects, 1);
        let first = &up.seen()[1];
        let moved = &other.seen()[0];
        assert_eq!(moved.method, "POST");
        assert_eq!(moved.body, first.body);
        assert!(
            first.header("x-tenant-token").is_some(),
            "the origin gets them"
        );
        for h in [
            "authorization",
            "x-api-key",
            "api-key",
            "x-goog-api-key",
            "x-tenant-token",
        ] {
            assert_eq!(
                moved.header(h),
                None,
                "{dialect:?}: {h} went to another origin"
            );
        }
        assert!(
            !String::from_utf8_lossy(&format!("{:?}", moved.headers).into_bytes())
                .contains("sk-upstream-test-key-123")
        );
    }
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_method_and_credentials() {
    std::env::set_var("UPSTREAM_TEST_KEY", "sk-upstream-test-key-123");
    let dialect = DialectKind::OpenaiChat;
    let up = Upstream::start(move |req, _| {
        if req.path.starts_with("/v1/") {
            redirect(301, "/v2/chat/completions")
        } else {
            complete_chunked(dialect)
        }
    })
    .await;
    let t = one_target(
        dialect,
        &up.base(),
        &format!("{SECRET_HEADERS}    follow_redirects: true\n"),
    );
    let o = probe(&client(), &t).await;
    assert_eq!(o.result, ProbeResult::Success, "{:?}", o.error);
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].path, "/v2/chat/completions");
    assert_eq!(
        seen[1].method, "POST",
        "a 301 does not turn the POST into a GET"
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some("Bearer sk-upstream-test-key-123")
    );
    assert_eq!(seen[1].header("x-tenant-token"), Some("tenant-secret-42"));

    // A redirect loop ends after a bounded number of hops.
    let up = Upstream::start(move |_, _| redirect(307, "/v1/chat/completions")).await;
    let t = one_target(dialect, &up.base(), "    follow_redirects: true\n");
    let o = probe(&client(), &t).await;
    assert_eq!(o.result, ProbeResult::Http4xx);
    assert!(o
        .error
        .as_deref()
        .unwrap_or("")
        .contains("more than 5 redirects"));
    assert_eq!(up.seen().len(), 6);
}

#[tokio::test]
async fn a_compressed_stream_is_malformed_not_empty() {
    let dialect = DialectKind::OpenaiChat;
    let up = Upstream::start(move |_, _| {
        vec![
            Step::Write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\nconnection: close\r\n\r\n\x1f\x8b\x08\x00\x00\x00\x00\x00"
                    .to_vec(),
            ),
            Step::Close,
        ]
    })
    .await;
    let t = one_target(dialect, &up.base(), "");
    let o = probe(&client(), &t).await;
    assert_eq!(o.result, ProbeResult::MalformedStream, "{:?}", o.error);
    assert!(o.error.as_deref().unwrap_or("").contains("gzip"));
    assert_eq!(up.seen()[0].header("accept-encoding"), Some("identity"));
}

#[tokio::test]
async fn an_error_body_on_http_200_is_classified_by_the_same_table() {
    let dialect = DialectKind::AnthropicMessages;
    for (body, want) in [
        (
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            ProbeResult::RateLimited,
        ),
        (
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ProbeResult::ApiError,
        ),
        (
            r#"{"error":{"message":"bad things","type":"server_error","code":null}}"#,
            ProbeResult::ApiError,
        ),
    ] {
        let up = Upstream::start(move |_, _| {
            vec![
                Step::Write(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes(),
                ),
                Step::Close,
            ]
        })
        .await;
        let t = one_target(dialect, &up.base(), "");
        let o = probe(&client(), &t).await;
        assert_eq!(o.result, want, "{body}: {:?}", o.error);
        assert!(o
            .error
            .as_deref()
            .unwrap_or("")
            .starts_with("error body on HTTP 200"));
    }
}
