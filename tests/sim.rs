//! The simulator driven over loopback with a plain HTTP client and hand-written SSE parsing
//! (deliberately not the prober's code).

use std::time::{Duration, Instant};

use inferprobe::config::simulator::SimulatorConfig;
use inferprobe::sim::{self, SimHandle};
use serde_json::{json, Value};

/// Starts a simulator with fast defaults, then applies `patch` (control field names).
async fn sim(patch: Value) -> SimHandle {
    let cfg: SimulatorConfig = serde_json::from_value(json!({
        "ttft": "30ms", "itl": "5ms", "output_tokens": 5, "seed": 1,
    }))
    .unwrap();
    let h = sim::start(cfg).await.unwrap();
    h.update(patch).unwrap();
    h
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

/// One server-sent event, with the time its last byte arrived.
#[derive(Debug)]
struct Event {
    name: String,
    data: String,
    at: Duration,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

/// A streamed response as the client saw it.
#[derive(Debug)]
struct Streamed {
    status: u16,
    headers: reqwest::header::HeaderMap,
    headers_at: Duration,
    events: Vec<Event>,
    /// A body error, or `None` after a clean end.
    error: Option<String>,
    /// Bytes after the last complete event.
    rest: String,
}

fn api_path(api: &str) -> &'static str {
    match api {
        "chat" => "/v1/chat/completions",
        "completions" => "/v1/completions",
        _ => "/v1/messages",
    }
}

fn body_for(api: &str, stream: bool, max_tokens: Option<u32>) -> Value {
    let mut b = match api {
        "chat" => json!({"model": "asked-model", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Count to ten."}]}),
        "completions" => json!({"model": "asked-model", "prompt": "Count to ten, please."}),
        _ => json!({"model": "asked-model", "max_tokens": 100, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "Count to ten."}]}),
    };
    b["stream"] = json!(stream);
    if api != "anthropic" && stream {
        b["stream_options"] = json!({"include_usage": true});
    }
    if let Some(m) = max_tokens {
        b["max_tokens"] = json!(m);
    }
    b
}

/// Reads a stream to its end, its error, or a silence longer than `idle`.
async fn read_stream(resp: reqwest::Response, t0: Instant, idle: Duration) -> Streamed {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let headers_at = t0.elapsed();
    let mut resp = resp;
    let mut buf = String::new();
    let mut events = Vec::new();
    let mut error = None;
    loop {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Err(_) => {
                error = Some("idle timeout".to_string());
                break;
            }
            Ok(Err(e)) => {
                error = Some(format!("body error: {e:?}"));
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                let at = t0.elapsed();
                buf.push_str(std::str::from_utf8(&chunk).unwrap());
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let mut ev = Event {
                        name: String::new(),
                        data: String::new(),
                        at,
                    };
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event: ") {
                            ev.name = v.to_string();
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            ev.data = v.to_string();
                        }
                    }
                    events.push(ev);
                }
            }
        }
    }
    Streamed {
        status,
        headers,
        headers_at,
        events,
        error,
        rest: buf,
    }
}

async fn stream(h: &SimHandle, api: &str, body: Value) -> Streamed {
    let t0 = Instant::now();
    let resp = client()
        .post(format!("{}{}", h.base_url(), api_path(api)))
        .json(&body)
        .send()
        .await
        .unwrap();
    read_stream(resp, t0, Duration::from_secs(5)).await
}

/// Answer text of OpenAI chat deltas.
fn chat_text(events: &[Event], field: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| {
            e.json()["choices"][0]["delta"][field]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn openai_chat_stream_is_faithful() {
    let h = sim(json!({"reasoning_tokens": 2})).await;
    let s = stream(&h, "chat", body_for("chat", true, None)).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.error, None);
    assert_eq!(s.rest, "");
    assert_eq!(
        s.headers["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let ev = &s.events;
    // role, 2 reasoning, 5 content, finish, usage, [DONE]
    assert_eq!(ev.len(), 11);
    let first = ev[0].json();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "asked-model");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let id = first["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("chatcmpl-"));
    assert_eq!(s.headers["x-request-id"].to_str().unwrap(), id);
    assert_eq!(chat_text(ev, "reasoning_content"), [" alpha", " beta"]);
    assert_eq!(
        chat_text(ev, "content"),
        [" one", " two", " three", " four", " five"]
    );
    assert_eq!(ev[8].json()["choices"][0]["finish_reason"], "stop");
    let usage = ev[9].json();
    assert_eq!(usage["choices"], json!([]));
    // "Be brief." (9) + "Count to ten." (13) = 22 characters -> 6 tokens.
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13,
               "completion_tokens_details": {"reasoning_tokens": 2}})
    );
    assert_eq!(ev[10].data, "[DONE]");
    assert!(ev.iter().all(|e| e.name.is_empty()));

    let gt = h.ground_truth();
    assert_eq!(gt.len(), 1);
    assert_eq!(gt[0].id, id);
    assert_eq!(gt[0].tokens.len(), 7);
    assert_eq!(gt[0].reasoning_tokens, 2);
    assert_eq!(gt[0].finish, Some("stop"));
    h.shutdown().await;
}

#[tokio::test]
async fn max_tokens_caps_output_with_finish_reason_length() {
    let h = sim(json!({})).await;
    let mut body = body_for("chat", true, None);
    body["max_completion_tokens"] = json!(3);
    let s = stream(&h, "chat", body).await;
    assert_eq!(chat_text(&s.events, "content"), [" one", " two", " three"]);
    let n = s.events.len();
    assert_eq!(
        s.events[n - 3].json()["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(s.events[n - 2].json()["usage"]["completion_tokens"], 3);

    let s = stream(&h, "anthropic", {
        let mut b = body_for("anthropic", true, None);
        b["max_tokens"] = json!(2);
        b
    })
    .await;
    let delta = s
        .events
        .iter()
        .find(|e| e.name == "message_delta")
        .unwrap()
        .json();
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 2);
    h.shutdown().await;
}

#[tokio::test]
async fn openai_completions_stream_is_faithful() {
    let h = sim(json!({"served_model": "swapped-model", "reasoning_tokens": 4})).await;
    let s = stream(&h, "completions", body_for("completions", true, None)).await;
    assert_eq!((s.status, s.error.as_deref()), (200, None));
    // 5 text chunks, finish, usage, [DONE]; no role chunk and no reasoning in this API.
    assert_eq!(s.events.len(), 8);
    let texts: Vec<String> = s.events[..5]
        .iter()
        .map(|e| {
            let v = e.json();
            assert_eq!(v["object"], "text_completion");
            assert_eq!(v["model"], "swapped-model");
            v["choices"][0]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(texts, [" one", " two", " three", " four", " five"]);
    assert_eq!(s.events[5].json()["choices"][0]["finish_reason"], "stop");
    // "Count to ten, please." is 21 characters -> 6 tokens.
    assert_eq!(
        s.events[6].json()["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11})
    );
    assert_eq!(s.events[7].data, "[DONE]");
    h.shutdown().await;
}

#[tokio::test]
async fn anthropic_stream_is_faithful() {
    let h = sim(json!({"reasoning_tokens": 1, "output_tokens": 2})).await;
    let s = stream(&h, "anthropic", body_for("anthropic", true, None)).await;
    assert_eq!((s.status, s.error.as_deref()), (200, None));
    let names: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for e in &s.events {
        assert_eq!(e.json()["type"], e.name.as_str());
    }
    let start = s.events[0].json();
    assert!(start["message"]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["message"]["model"], "asked-model");
    assert_eq!(
        start["message"]["usage"],
        json!({"input_tokens": 6, "output_tokens": 1})
    );
    assert_eq!(s.events[1].json()["content_block"]["type"], "thinking");
    assert_eq!(
        s.events[3].json()["delta"],
        json!({"type": "thinking_delta", "thinking": " alpha"})
    );
    assert_eq!(s.events[4].json()["delta"]["type"], "signature_delta");
    assert_eq!(s.events[6].json()["content_block"]["type"], "text");
    let text: Vec<Value> = s.events[7..9]
        .iter()
        .map(|e| e.json()["delta"].clone())
        .collect();
    assert_eq!(
        text,
        [
            json!({"type": "text_delta", "text": " one"}),
            json!({"type": "text_delta", "text": " two"})
        ]
    );
    let delta = s.events[10].json();
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 3);
    h.shutdown().await;
}

#[tokio::test]
async fn non_streaming_answers_for_every_api() {
    let h = sim(json!({"output_tokens": 3})).await;
    let c = client();
    for api in ["chat", "completions", "anthropic"] {
        let t0 = Instant::now();
        let resp = c
            .post(format!("{}{}", h.base_url(), api_path(api)))
            .json(&body_for(api, false, None))
            .send()
            .await
            .unwrap();
        // Headers come with the whole answer: after TTFT + 2 ITL.
        assert!(t0.elapsed() >= Duration::from_millis(40), "{api}");
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        match api {
            "chat" => {
                assert_eq!(v["object"], "chat.completion");
                assert_eq!(v["choices"][0]["message"]["content"], " one two three");
                assert_eq!(v["choices"][0]["finish_reason"], "stop");
                assert_eq!(v["usage"]["completion_tokens"], 3);
            }
            "completions" => {
                assert_eq!(v["object"], "text_completion");
                assert_eq!(v["choices"][0]["text"], " one two three");
                assert_eq!(v["usage"]["prompt_tokens"], 6);
            }
            _ => {
                assert_eq!(v["type"], "message");
                assert_eq!(v["content"][0]["text"], " one two three");
                assert_eq!(v["stop_reason"], "end_turn");
                assert_eq!(v["usage"], json!({"input_tokens": 6, "output_tokens": 3}));
            }
        }
    }
    let gt = h.ground_truth();
    assert_eq!(gt.len(), 3);
    assert!(gt
        .iter()
        .all(|r| !r.stream && r.tokens.is_empty() && r.finish == Some("stop")));
    h.shutdown().await;
}

#[tokio::test]
async fn timing_follows_ttft_and_itl() {
    let h = sim(json!({"ttft": "300ms", "itl": "50ms", "output_tokens": 4})).await;
    let s = stream(&h, "chat", body_for("chat", true, None)).await;
    let tokens: Vec<Duration> = s
        .events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .map(|e| e.at)
        .collect();
    assert_eq!(tokens.len(), 4);
    // The role chunk and the headers come well before the first token.
    assert!(
        s.headers_at < Duration::from_millis(200),
        "{:?}",
        s.headers_at
    );
    assert!(s.events[0].at < Duration::from_millis(200));
    let ttft = tokens[0];
    assert!(
        ttft >= Duration::from_millis(300) && ttft < Duration::from_millis(400),
        "{ttft:?}"
    );
    // Tokens are due at absolute deadlines, so one late token shortens the next gap: check the
    // span of the three gaps (150 ms nominal) and only a loose bound per gap.
    let span = tokens[3] - tokens[0];
    assert!(
        span >= Duration::from_millis(140) && span < Duration::from_millis(450),
        "{span:?}"
    );
    for w in tokens.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap < Duration::from_millis(300), "{gap:?}");
    }
    // Ground truth: the simulator's own stamps, relative to arrival.
    let r = &h.ground_truth()[0];
    let first = r.tokens[0] - r.arrival;
    assert!(first >= Duration::from_millis(300) && first < Duration::from_millis(350));
    // Deadlines are absolute: the last token is due at decode start + 300 + 3 × 50 ms.
    let last = r.tokens[3] - r.decode_start.unwrap();
    assert!(
        last >= Duration::from_millis(450) && last < Duration::from_millis(500),
        "{last:?}"
    );
    assert!(r.headers_sent.unwrap() <= r.first_event.unwrap());
    assert!(r.first_event.unwrap() < r.tokens[0]);
    assert!(r.end.unwrap() >= r.tokens[3]);
    h.shutdown().await;
}

#[tokio::test]
async fn http_error_faults() {
    let h = sim(json!({"faults": {"rate_limited": 1.0}})).await;
    let c = client();
    let post = |api: &'static str| {
        c.post(format!("{}{}", h.base_url(), api_path(api)))
            .json(&body_for(api, true, None))
            .send()
    };
    let r = post("chat").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let r = post("anthropic").await.unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");

    h.update(json!({"faults": {"rate_limited": 0.0, "http_4xx": 1.0}}))
        .unwrap();
    let r = post("completions").await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    h.update(json!({"faults": {"http_4xx": 0.0, "http_5xx": 1.0}}))
        .unwrap();
    let statuses = [
        post("chat").await.unwrap().status().as_u16(),
        post("chat").await.unwrap().status().as_u16(),
        post("anthropic").await.unwrap().status().as_u16(),
    ];
    assert_eq!(statuses, [500, 503, 500]);

    let gt = h.ground_truth();
    let recorded: Vec<u16> = gt.iter().map(|r| r.status).collect();
    assert_eq!(recorded, [429, 429, 400, 500, 503, 500]);
    assert!(gt.iter().all(|r| r.tokens.is_empty()));
    h.shutdown().await;
}

#[tokio::test]
async fn in_stream_error_malformed_and_empty_faults() {
    let h = sim(json!({"faults": {"api_error": 1.0}})).await;
    let s = stream(&h, "chat", body_for("chat", true, None)).await;
    assert_eq!(
        (s.status, s.events.len(), s.error.as_deref()),
        (200, 2, None)
    );
    assert_eq!(
        s.events[0].json()["choices"][0]["delta"]["role"],
        "assistant"
    );
    assert_eq!(s.events[1].json()["error"]["type"], "server_error");
    let s = stream(&h, "anthropic", body_for("anthropic", true, None)).await;
    assert_eq!(s.events[1].name, "error");
    assert_eq!(s.events[1].json()["error"]["type"], "api_error");

    h.update(json!({"faults": {"api_error": 0.0, "malformed_stream": 1.0}}))
        .unwrap();
    let s = stream(&h, "chat", body_for("chat", true, None)).await;
    let bad: Vec<&Event> = s
        .events
        .iter()
        .filter(|e| e.data != "[DONE]" && serde_json::from_str::<Value>(&e.data).is_err())
        .collect();
    assert_eq!(bad.len(), 1);
    assert!(bad[0].data.contains("\"choices\": ["));

    h.update(json!({"faults": {"malformed_stream": 0.0, "empty_response": 1.0}}))
        .unwrap();
    let s = stream(&h, "chat", body_for("chat", true, None)).await;
    assert_eq!(s.events.len(), 4);
    assert!(chat_text(&s.events, "content").is_empty());
    assert_eq!(s.events[1].json()["choices"][0]["finish_reason"], "stop");
    assert_eq!(s.events[2].json()["usage"]["completion_tokens"], 0);
    assert_eq!(s.events[3].data, "[DONE]");
    let s = stream(&h, "anthropic", body_for("anthropic", true, None)).await;
    assert!(s.events.iter().all(|e| e.name != "content_block_delta"));
    assert_eq!(s.events.last().unwrap().name, "message_stop");
    h.shutdown().await;
}

#[tokio::test]
async fn stream_aborted_is_a_body_error_not_a_clean_end() {
    let h = sim(json!({"faults": {"stream_aborted": 1.0}})).await;
    for api in ["chat", "anthropic"] {
        let s = stream(&h, api, body_for(api, true, None)).await;
        assert_eq!(s.status, 200);
        let err = s.error.expect("the stream must fail");
        assert!(err.starts_with("body error"), "{err}");
        // role/message_start, then 3 tokens (plus Anthropic's block start and ping).
        let n = if api == "chat" { 4 } else { 6 };
        assert_eq!(s.events.len(), n, "{api}");
    }
    let gt = h.ground_truth();
    assert!(gt
        .iter()
        .all(|r| r.tokens.len() == 3 && r.finish == Some("abort")));

    // Non-streamed: half a JSON body, then the connection is cut.
    let resp = client()
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .json(&body_for("chat", false, None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err());
    h.shutdown().await;
}

#[tokio::test]
async fn timeout_idle_stalls_and_slow_headers_delay() {
    let h = sim(json!({"faults": {"timeout_idle": 1.0}})).await;
    let t0 = Instant::now();
    let resp = client()
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .json(&body_for("chat", true, None))
        .send()
        .await
        .unwrap();
    let s = read_stream(resp, t0, Duration::from_millis(300)).await;
    assert_eq!(s.error.as_deref(), Some("idle timeout"));
    assert_eq!(chat_text(&s.events, "content"), [" one", " two", " three"]);

    // A stall shorter than the client's patience: the rest follows after it.
    h.update(json!({"stall_duration": "200ms"})).unwrap();
    let s = stream(&h, "chat", body_for("chat", true, None)).await;
    assert_eq!(s.error, None);
    assert_eq!(chat_text(&s.events, "content").len(), 5);
    let tokens: Vec<Duration> = s.events[1..6].iter().map(|e| e.at).collect();
    assert!(tokens[3] - tokens[2] >= Duration::from_millis(200));

    h.update(json!({"faults": {"timeout_idle": 0.0, "slow_headers": 1.0}, "slow_headers_delay": "300ms"}))
        .unwrap();
    let s = stream(&h, "anthropic", body_for("anthropic", true, None)).await;
    assert!(
        s.headers_at >= Duration::from_millis(300),
        "{:?}",
        s.headers_at
    );
    assert_eq!(s.error, None);
    assert_eq!(s.events.last().unwrap().name, "message_stop");
    h.shutdown().await;
}

#[tokio::test]
async fn control_endpoint_changes_behaviour_live() {
    let h = sim(json!({})).await;
    let c = client();
    let url = format!("{}/control", h.base_url());
    let v: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["ttft"], "30ms");
    assert_eq!(v["faults"]["http_5xx"], 0.0);

    let r = c
        .patch(&url)
        .json(&json!({"ttft": "400ms", "faults": {"http_5xx": 0.5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["ttft"].as_str(), v["faults"]["http_5xx"].as_f64()),
        (Some("400ms"), Some(0.5))
    );
    assert_eq!(v["itl"], "5ms");

    let r = c
        .patch(&url)
        .json(&json!({"faults": {"http_5xx": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("faults.http_5xx: "),
        "{v}"
    );

    h.update(json!({"faults": {"http_5xx": 0.0}})).unwrap();
    let s = stream(&h, "completions", body_for("completions", true, None)).await;
    assert!(
        s.events[0].at >= Duration::from_millis(400),
        "{:?}",
        s.events[0].at
    );
    h.shutdown().await;
}

#[tokio::test]
async fn capacity_queues_beyond_slots() {
    let h = sim(json!({"slots": 2, "ttft": "100ms", "itl": "50ms", "output_tokens": 5})).await;
    let c = client();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = c.clone();
        let url = format!("{}/v1/chat/completions", h.base_url());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let resp = c
                .post(url)
                .json(&body_for("chat", true, None))
                .send()
                .await
                .unwrap();
            let s = read_stream(resp, t0, Duration::from_secs(5)).await;
            // Time to the first content token.
            s.events
                .iter()
                .find(|e| {
                    e.data != "[DONE]"
                        && e.json()["choices"][0]["delta"]["content"]
                            .as_str()
                            .is_some_and(|t| !t.is_empty())
                })
                .map(|e| e.at)
                .unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    let metrics = c
        .get(format!("{}/metrics", h.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "too slow to check mid-flight"
    );
    assert!(
        metrics.contains("vllm:num_requests_running{model_name=\"sim-llm\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("vllm:num_requests_waiting{model_name=\"sim-llm\"} 2\n"));
    assert!(metrics.contains("vllm:kv_cache_usage_perc{model_name=\"sim-llm\"} 1\n"));

    let mut ttfts = Vec::new();
    for t in tasks {
        ttfts.push(t.await.unwrap());
    }
    ttfts.sort();
    // One full generation: 100 ms + 4 gaps of 50 ms × 1.05 (two running) = 310 ms.
    let generation = Duration::from_millis(310);
    assert!(ttfts[0] < generation, "{ttfts:?}");
    assert!(ttfts[1] < generation, "{ttfts:?}");
    assert!(ttfts[2] >= generation, "{ttfts:?}");
    assert!(ttfts[3] >= generation, "{ttfts:?}");

    // The simulator's own view: the later two started decoding when the earlier ones ended.
    let mut gt = h.ground_truth();
    gt.sort_by_key(|r| r.decode_start);
    let first_end = gt[..2].iter().filter_map(|r| r.end).min().unwrap();
    assert!(gt[2].decode_start.unwrap() >= first_end);
    assert!(gt[3].decode_start.unwrap() >= first_end);
    h.shutdown().await;
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_requests_and_tokens() {
    let h = sim(json!({"model": "sim-test"})).await;
    for _ in 0..3 {
        let s = stream(&h, "completions", body_for("completions", true, None)).await;
        assert_eq!(s.error, None);
    }
    let s = stream(&h, "completions", body_for("completions", true, Some(2))).await;
    assert_eq!(s.error, None);
    let text = client()
        .get(format!("{}/metrics", h.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let l = "{model_name=\"sim-test\"}";
    assert_eq!(metric(&text, &format!("vllm:prompt_tokens_total{l}")), 24.0);
    assert_eq!(
        metric(&text, &format!("vllm:generation_tokens_total{l}")),
        17.0
    );
    assert_eq!(
        metric(&text, &format!("vllm:num_preemptions_total{l}")),
        0.0
    );
    assert_eq!(metric(&text, &format!("vllm:num_requests_running{l}")), 0.0);
    assert_eq!(metric(&text, &format!("vllm:num_requests_waiting{l}")), 0.0);
    assert_eq!(metric(&text, &format!("vllm:kv_cache_usage_perc{l}")), 0.0);
    assert_eq!(
        metric(
            &text,
            "vllm:request_success_total{finished_reason=\"stop\",model_name=\"sim-test\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "vllm:request_success_total{finished_reason=\"length\",model_name=\"sim-test\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&text, &format!("vllm:time_to_first_token_seconds_count{l}")),
        4.0
    );
    assert_eq!(
        metric(&text, &format!("vllm:inter_token_latency_seconds_count{l}")),
        13.0
    );
    assert_eq!(
        metric(&text, &format!("vllm:e2e_request_latency_seconds_count{l}")),
        4.0
    );
    h.shutdown().await;
}

#[tokio::test]
async fn ground_truth_endpoint_and_housekeeping_routes() {
    let h = sim(json!({"api_key": "sim-secret"})).await;
    let c = client();
    let base = h.base_url();

    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&body_for("chat", true, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{base}/v1/messages"))
        .json(&body_for("anthropic", true, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");

    let t0 = Instant::now();
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sim-secret")
        .json(&body_for("chat", true, None))
        .send()
        .await
        .unwrap();
    let s = read_stream(r, t0, Duration::from_secs(5)).await;
    assert_eq!((s.status, s.error.as_deref()), (200, None));
    let t0 = Instant::now();
    let r = c
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "sim-secret")
        .json(&body_for("anthropic", true, None))
        .send()
        .await
        .unwrap();
    let s = read_stream(r, t0, Duration::from_secs(5)).await;
    assert_eq!((s.status, s.error.as_deref()), (200, None));

    let v: Value = c
        .get(format!("{base}/ground-truth"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recs = v["requests"].as_array().unwrap();
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[0]["status"], 401);
    assert_eq!(recs[2]["api"], "openai-chat");
    assert_eq!(recs[3]["api"], "anthropic-messages");
    for r in &recs[2..] {
        let toks: Vec<u64> = r["tokens_us"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        assert_eq!(toks.len(), 5);
        assert_eq!(r["output_tokens"], 5);
        assert!(toks.windows(2).all(|w| w[0] < w[1]));
        assert!(toks[0] >= 30_000);
        assert!(r["end_us"].as_u64().unwrap() >= toks[4]);
    }
    // The key never shows in the control view.
    let ctl = c
        .get(format!("{base}/control"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!ctl.contains("sim-secret"));

    let r = c.get(format!("{base}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = c
        .get(format!("{base}/v1/models"))
        .bearer_auth("sim-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["id"], "sim-llm");
    let r = c.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_a_stalled_stream() {
    let h = sim(json!({"faults": {"timeout_idle": 1.0}})).await;
    let t0 = Instant::now();
    let resp = client()
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .json(&body_for("chat", true, None))
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_stream(resp, t0, Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.shutdown().await;
    let s = reader.await.unwrap();
    assert!(s.error.unwrap().starts_with("body error"));
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn start_rejects_an_invalid_config() {
    let mut cfg = SimulatorConfig::default();
    cfg.faults.http_5xx = 3.0;
    let e = sim::start(cfg).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid simulator config: faults.http_5xx: must be a probability between 0 and 1, got 3"
    );
}
